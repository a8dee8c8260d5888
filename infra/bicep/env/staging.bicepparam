// Staging: smallest sizes, worker scales to zero, no HA, local backups only.
// Secrets come from the environment (the pipeline maps them from GitHub environment secrets).
using '../main.bicep'

param environmentName = 'staging'
param baseDomain = readEnvironmentVariable('FIELDDAY_BASE_DOMAIN', 'staging.fieldday.example')
param image = readEnvironmentVariable('FIELDDAY_IMAGE')

param webMinReplicas = 1
param webMaxReplicas = 3
param workerMinReplicas = 0
param workerMaxReplicas = 3

param postgresSkuName = 'Standard_B2s'
param postgresSkuTier = 'Burstable'
param postgresStorageSizeGB = 32
param postgresBackupRetentionDays = 7
param postgresGeoRedundantBackup = 'Disabled'
param postgresHighAvailability = 'Disabled'
param postgresAdminPassword = readEnvironmentVariable('POSTGRES_ADMIN_PASSWORD')
param dbOwnerPassword = readEnvironmentVariable('DB_OWNER_PASSWORD')
param dbAppPassword = readEnvironmentVariable('DB_APP_PASSWORD')

param redisSkuName = 'Basic'
param redisCapacity = 0

param secretKey = readEnvironmentVariable('SECRET_KEY')
param s3EndpointUrl = readEnvironmentVariable('S3_ENDPOINT_URL')
param s3Bucket = readEnvironmentVariable('S3_BUCKET', 'fieldday-staging-media')
param s3Region = readEnvironmentVariable('S3_REGION', 'us-east-1')
param s3AccessKeyId = readEnvironmentVariable('S3_ACCESS_KEY_ID')
param s3SecretAccessKey = readEnvironmentVariable('S3_SECRET_ACCESS_KEY')
param smtpHost = readEnvironmentVariable('SMTP_HOST')
param smtpUsername = readEnvironmentVariable('SMTP_USERNAME')
param smtpPassword = readEnvironmentVariable('SMTP_PASSWORD')
param mailFrom = readEnvironmentVariable('MAIL_FROM', 'Fieldday Staging <no-reply@staging.fieldday.example>')
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
param logRetentionDays = 30
