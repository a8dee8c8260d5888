// Production: zone-redundant HA, geo-redundant backups kept 35 days, two web replicas minimum.
// Secrets come from the environment (the pipeline maps them from GitHub environment secrets).
using '../main.bicep'

param environmentName = 'prod'
param baseDomain = readEnvironmentVariable('FIELDDAY_BASE_DOMAIN', 'fieldday.example')
param image = readEnvironmentVariable('FIELDDAY_IMAGE')

param webMinReplicas = 2
param webMaxReplicas = 20
param workerMinReplicas = 1
param workerMaxReplicas = 20

param postgresSkuName = 'Standard_D4ds_v5'
param postgresSkuTier = 'GeneralPurpose'
param postgresStorageSizeGB = 256
param postgresBackupRetentionDays = 35
param postgresGeoRedundantBackup = 'Enabled'
param postgresHighAvailability = 'ZoneRedundant'
param postgresAdminPassword = readEnvironmentVariable('POSTGRES_ADMIN_PASSWORD')
param dbOwnerPassword = readEnvironmentVariable('DB_OWNER_PASSWORD')
param dbAppPassword = readEnvironmentVariable('DB_APP_PASSWORD')

param redisSkuName = 'Standard'
param redisCapacity = 1

param secretKey = readEnvironmentVariable('SECRET_KEY')
param s3EndpointUrl = readEnvironmentVariable('S3_ENDPOINT_URL')
param s3Bucket = readEnvironmentVariable('S3_BUCKET', 'fieldday-prod-media')
param s3Region = readEnvironmentVariable('S3_REGION', 'us-east-1')
param s3AccessKeyId = readEnvironmentVariable('S3_ACCESS_KEY_ID')
param s3SecretAccessKey = readEnvironmentVariable('S3_SECRET_ACCESS_KEY')
param smtpHost = readEnvironmentVariable('SMTP_HOST')
param smtpUsername = readEnvironmentVariable('SMTP_USERNAME')
param smtpPassword = readEnvironmentVariable('SMTP_PASSWORD')
param mailFrom = readEnvironmentVariable('MAIL_FROM', 'Fieldday <no-reply@fieldday.example>')
param stripeSecretKey = readEnvironmentVariable('STRIPE_SECRET_KEY')
param stripeConnectWebhookSecret = readEnvironmentVariable('STRIPE_CONNECT_WEBHOOK_SECRET')
param stripeBillingWebhookSecret = readEnvironmentVariable('STRIPE_BILLING_WEBHOOK_SECRET')
param twilioAuthToken = readEnvironmentVariable('TWILIO_AUTH_TOKEN', 'not-configured')
param twilioAccountSid = readEnvironmentVariable('TWILIO_ACCOUNT_SID', 'not-configured')
param googleClientId = readEnvironmentVariable('GOOGLE_CLIENT_ID', '')
param googleClientSecret = readEnvironmentVariable('GOOGLE_CLIENT_SECRET', 'not-configured')
param fernetKey = readEnvironmentVariable('FERNET_KEY')

param deployApps = bool(readEnvironmentVariable('DEPLOY_APPS', 'true'))
param bindCustomDomains = bool(readEnvironmentVariable('BIND_CUSTOM_DOMAINS', 'false'))
param wildcardCertificateName = 'wildcard-cert'
param logRetentionDays = 90
