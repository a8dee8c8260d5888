// Fieldday on Azure: one resource group per environment (staging, prod).
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/env/<env>.bicepparam
// First deployment: docs/deployment.md (infrastructure, image, apps + migration job, then the domain).
targetScope = 'resourceGroup'

@allowed([ 'staging', 'prod' ])
param environmentName string
param location string = resourceGroup().location
@description('Short name used in every resource name, e.g. fd-staging.')
@maxLength(16)
param prefix string = 'fd-${environmentName}'
@description('Tenants get <subdomain>.<baseDomain>; owners use app.<baseDomain>.')
param baseDomain string
@description('Container image, e.g. <registry>.azurecr.io/fieldday:<git sha>.')
param image string

// Scaling
@minValue(1)
param webMinReplicas int = 1
param webMaxReplicas int = 10
param webConcurrentRequests int = 50
param workerMinReplicas int = 0
param workerMaxReplicas int = 10

// PostgreSQL Flexible Server
param postgresSkuName string = 'Standard_B2s'
@allowed([ 'Burstable', 'GeneralPurpose', 'MemoryOptimized' ])
param postgresSkuTier string = 'Burstable'
param postgresStorageSizeGB int = 64
@minValue(7)
@maxValue(35)
param postgresBackupRetentionDays int = 7
@allowed([ 'Enabled', 'Disabled' ])
param postgresGeoRedundantBackup string = 'Disabled'
@allowed([ 'Disabled', 'ZoneRedundant', 'SameZone' ])
param postgresHighAvailability string = 'Disabled'
param postgresPgbouncerEnabled bool = false
param postgresAdminLogin string = 'fieldday_admin'
@secure()
param postgresAdminPassword string
@secure()
@description('Password of fieldday_owner (migrations; DATABASE_OWNER_URL).')
param dbOwnerPassword string
@secure()
@description('Password of fieldday_app (web, worker, scheduler; DATABASE_URL).')
param dbAppPassword string

// Azure Cache for Redis
@allowed([ 'Basic', 'Standard', 'Premium' ])
param redisSkuName string = 'Standard'
param redisCapacity int = 1

// App settings and secrets
@secure()
param secretKey string
param s3EndpointUrl string
param s3Bucket string
param s3Region string = 'us-east-1'
@secure()
param s3AccessKeyId string
@secure()
param s3SecretAccessKey string
param smtpHost string
param smtpPort int = 587
param smtpUsername string
@secure()
param smtpPassword string
param mailFrom string
param mapTileUrl string = ''
@secure()
param stripeSecretKey string
@secure()
param stripeConnectWebhookSecret string
@secure()
@description('Signing secret of the platform endpoint /webhooks/stripe/billing (the businesses\' subscriptions)')
param stripeBillingWebhookSecret string
@secure()
param twilioAuthToken string
@secure()
@description('Twilio account SID (with the auth token, the SDK credentials)')
param twilioAccountSid string
@description('OAuth client id of the Google Cloud project (Calendar); empty: the integration is off.')
param googleClientId string = ''
@secure()
param googleClientSecret string
@secure()
@description('Fernet key for secrets encrypted at rest (calendar refresh tokens).')
param fernetKey string

// First deployment only: false creates everything but the apps and the job (the registry must
// exist before the first image can be pushed to it). docs/deployment.md, "First deployment".
param deployApps bool = true

// Custom domain
param bindCustomDomains bool = false
param wildcardCertificateName string = 'wildcard-cert'
param keyVaultAdminObjectIds array = []
@minValue(30)
param logRetentionDays int = 30

var tags = { app: 'fieldday', environment: environmentName }
var dbName = 'fieldday'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { prefix: prefix, location: location, tags: tags, logRetentionDays: logRetentionDays }
}

module network 'modules/network.bicep' = {
  name: 'network'
  params: { prefix: prefix, location: location, tags: tags }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { prefix: prefix, location: location, tags: tags }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    prefix: prefix
    location: location
    tags: tags
    vnetId: network.outputs.vnetId
    subnetId: network.outputs.postgresSubnetId
    skuName: postgresSkuName
    skuTier: postgresSkuTier
    storageSizeGB: postgresStorageSizeGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    highAvailability: postgresHighAvailability
    adminLogin: postgresAdminLogin
    adminPassword: postgresAdminPassword
    databaseName: dbName
    pgbouncerEnabled: postgresPgbouncerEnabled
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: {
    prefix: prefix
    location: location
    tags: tags
    vnetId: network.outputs.vnetId
    endpointsSubnetId: network.outputs.endpointsSubnetId
    skuName: redisSkuName
    capacity: redisCapacity
  }
}

resource redisCache 'Microsoft.Cache/redis@2024-03-01' existing = {
  name: '${prefix}-redis'
}

resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: '${prefix}-insights'
}

var pgHost = postgres.outputs.fqdn
var pgPort = postgres.outputs.port
var redisKey = redisCache.listKeys().primaryKey

module keyvault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  dependsOn: [ redis, monitoring ]
  params: {
    prefix: prefix
    location: location
    tags: tags
    appsPrincipalId: identity.outputs.principalId
    adminObjectIds: keyVaultAdminObjectIds
    secretValues: {
      'secret-key': secretKey
      // The app role: no table ownership, no BYPASSRLS (DESIGN §3). TLS required by the server.
      'database-url': 'postgresql+psycopg://fieldday_app:${uriComponent(dbAppPassword)}@${pgHost}:${pgPort}/${dbName}?sslmode=require'
      // The owner role: migrations only; only the migration job gets this secret. Always the
      // direct port: migrations take session-level locks PgBouncer's transaction mode cannot keep.
      'database-owner-url': 'postgresql+psycopg://fieldday_owner:${uriComponent(dbOwnerPassword)}@${pgHost}:5432/${dbName}?sslmode=require'
      'database-admin-url': 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${pgHost}:5432/postgres?sslmode=require'
      'db-owner-password': dbOwnerPassword
      'db-app-password': dbAppPassword
      'redis-url': 'rediss://:${uriComponent(redisKey)}@${redis.outputs.host}:${redis.outputs.sslPort}/0'
      'redis-password': redisKey
      's3-access-key-id': s3AccessKeyId
      's3-secret-access-key': s3SecretAccessKey
      'smtp-password': smtpPassword
      'stripe-secret-key': stripeSecretKey
      'stripe-connect-webhook-secret': stripeConnectWebhookSecret
      'stripe-billing-webhook-secret': stripeBillingWebhookSecret
      'twilio-auth-token': twilioAuthToken
      'twilio-account-sid': twilioAccountSid
      'google-client-secret': googleClientSecret
      'fernet-key': fernetKey
      'applicationinsights-connection-string': insights.properties.ConnectionString
    }
  }
}

module apps 'modules/apps.bicep' = if (deployApps) {
  name: 'apps'
  params: {
    prefix: prefix
    location: location
    tags: tags
    environmentName: environmentName
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    appsSubnetId: network.outputs.appsSubnetId
    identityId: identity.outputs.id
    registryLoginServer: identity.outputs.registryLoginServer
    image: image
    vaultUri: keyvault.outputs.uri
    baseDomain: baseDomain
    redisHost: redis.outputs.host
    redisSslPort: redis.outputs.sslPort
    s3EndpointUrl: s3EndpointUrl
    s3Bucket: s3Bucket
    s3Region: s3Region
    smtpHost: smtpHost
    smtpPort: smtpPort
    smtpUsername: smtpUsername
    mailFrom: mailFrom
    mapTileUrl: mapTileUrl
    googleClientId: googleClientId
    webMinReplicas: webMinReplicas
    webMaxReplicas: webMaxReplicas
    webConcurrentRequests: webConcurrentRequests
    workerMinReplicas: workerMinReplicas
    workerMaxReplicas: workerMaxReplicas
    bindCustomDomains: bindCustomDomains
    wildcardCertificateName: wildcardCertificateName
  }
}

output appUrl string = 'https://app.${baseDomain}'
output bookingSiteUrlPattern string = 'https://<subdomain>.${baseDomain}'
output webDefaultUrl string = deployApps ? 'https://${apps.outputs.webFqdn}' : ''
output registryLoginServer string = identity.outputs.registryLoginServer
output keyVaultName string = keyvault.outputs.name
output migrateJobName string = deployApps ? apps.outputs.migrateJobName : ''
output customDomainVerificationId string = deployApps ? apps.outputs.customDomainVerificationId : ''
output dnsRecords array = deployApps ? [
  { type: 'CNAME', name: '*.${baseDomain}', value: apps.outputs.webFqdn }
  { type: 'CNAME', name: 'app.${baseDomain}', value: apps.outputs.webFqdn }
  { type: 'TXT', name: 'asuid.${baseDomain}', value: apps.outputs.customDomainVerificationId }
  { type: 'TXT', name: 'asuid.app.${baseDomain}', value: apps.outputs.customDomainVerificationId }
] : []
