// The Container Apps environment (in the VNet, logs to Log Analytics) and Fieldday's four
// workloads, all from one image (docker/entrypoint.sh):
//   web        gunicorn, HTTP scaling, at least one replica, graceful shutdown on SIGTERM
//   worker     RQ worker, scaled by KEDA on the Redis list length of each RQ queue; warm shutdown
//   scheduler  `flask cron` + the RQ scheduler, exactly one replica
//   migrate    a manually triggered job: roles (as the server admin), `flask db upgrade` (as owner)
param prefix string
param location string
param tags object
param environmentName string
param logAnalyticsName string
param appsSubnetId string
param identityId string
param registryLoginServer string
param image string
param vaultUri string
param baseDomain string
param redisHost string
param redisSslPort int
param s3EndpointUrl string
param s3Bucket string
param s3Region string
param smtpHost string
param smtpPort int
param smtpUsername string
param mailFrom string
param mapTileUrl string
param googleClientId string
param webMinReplicas int
param webMaxReplicas int
param webConcurrentRequests int
param workerMinReplicas int
param workerMaxReplicas int
@description('Bind *.<baseDomain> and app.<baseDomain> to the web app. Needs the DNS records first (docs/deployment.md).')
param bindCustomDomains bool
@description('Name of the Key Vault certificate holding the wildcard certificate for *.<baseDomain>.')
param wildcardCertificateName string

// RQ queues the worker serves (app/config.py RQ_QUEUES); KEDA watches each one's Redis list.
var rqQueues = [ 'default', 'email' ]
// Longest RQ job_timeout is 180 s (app/jobs.py); the worker's grace period must exceed it.
var workerGraceSeconds = 300
var webGraceSeconds = 30

// Every Key Vault secret the running app reads; the migration job adds the owner/admin ones.
var appSecretNames = [
  'secret-key'
  'database-url'
  'redis-url'
  's3-access-key-id'
  's3-secret-access-key'
  'smtp-password'
  'stripe-secret-key'
  'stripe-connect-webhook-secret'
  'stripe-billing-webhook-secret'
  'twilio-auth-token'
  'twilio-account-sid'
  'google-client-secret'
  'fernet-key'
  'applicationinsights-connection-string'
]
var migrateSecretNames = concat(appSecretNames, [
  'database-owner-url'
  'database-admin-url'
  'db-owner-password'
  'db-app-password'
])
var appSecrets = [for name in appSecretNames: { name: name, keyVaultUrl: '${vaultUri}secrets/${name}', identity: identityId }]
var migrateSecrets = [for name in migrateSecretNames: { name: name, keyVaultUrl: '${vaultUri}secrets/${name}', identity: identityId }]
// KEDA's redis scaler authenticates with the access key alone.
var workerSecrets = concat(appSecrets, [ { name: 'redis-password', keyVaultUrl: '${vaultUri}secrets/redis-password', identity: identityId } ])

// Environment shared by every role. Names are app/config.py's; tests/test_infra.py checks the list.
var commonEnv = [
  { name: 'FIELDDAY_ENV', value: 'production' }
  { name: 'LOG_FORMAT', value: 'json' }
  { name: 'LOG_LEVEL', value: 'INFO' }
  { name: 'BASE_DOMAIN', value: baseDomain }
  { name: 'PUBLIC_SCHEME', value: 'https' }
  { name: 'PROXY_FIX_HOPS', value: '1' }
  { name: 'HSTS', value: 'true' }
  { name: 'SESSION_COOKIE_SECURE', value: 'true' }
  { name: 'SECRET_KEY', secretRef: 'secret-key' }
  { name: 'DATABASE_URL', secretRef: 'database-url' }
  { name: 'DB_STATEMENT_TIMEOUT_MS', value: '10000' }
  { name: 'DB_LOCK_TIMEOUT_MS', value: '5000' }
  { name: 'REDIS_URL', secretRef: 'redis-url' }
  { name: 'S3_ENDPOINT_URL', value: s3EndpointUrl }
  { name: 'S3_BUCKET', value: s3Bucket }
  { name: 'S3_REGION', value: s3Region }
  { name: 'S3_ACCESS_KEY_ID', secretRef: 's3-access-key-id' }
  { name: 'S3_SECRET_ACCESS_KEY', secretRef: 's3-secret-access-key' }
  { name: 'MAIL_BACKEND', value: 'smtp' }
  { name: 'SMTP_HOST', value: smtpHost }
  { name: 'SMTP_PORT', value: string(smtpPort) }
  { name: 'SMTP_USERNAME', value: smtpUsername }
  { name: 'SMTP_PASSWORD', secretRef: 'smtp-password' }
  { name: 'SMTP_STARTTLS', value: 'true' }
  { name: 'MAIL_FROM', value: mailFrom }
  { name: 'MAP_TILE_URL', value: mapTileUrl }
  { name: 'STRIPE_SECRET_KEY', secretRef: 'stripe-secret-key' }
  { name: 'STRIPE_CONNECT_WEBHOOK_SECRET', secretRef: 'stripe-connect-webhook-secret' }
  { name: 'STRIPE_BILLING_WEBHOOK_SECRET', secretRef: 'stripe-billing-webhook-secret' }
  { name: 'TWILIO_AUTH_TOKEN', secretRef: 'twilio-auth-token' }
  { name: 'TWILIO_ACCOUNT_SID', secretRef: 'twilio-account-sid' }
  { name: 'GOOGLE_CLIENT_ID', value: googleClientId }
  { name: 'GOOGLE_CLIENT_SECRET', secretRef: 'google-client-secret' }
  { name: 'FERNET_KEY', secretRef: 'fernet-key' }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', secretRef: 'applicationinsights-connection-string' }
  { name: 'OTEL_RESOURCE_ATTRIBUTES', value: 'deployment.environment=${environmentName}' }
]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource env 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: '${prefix}-env'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    vnetConfiguration: {
      infrastructureSubnetId: appsSubnetId
      internal: false
    }
    workloadProfiles: [ { name: 'Consumption', workloadProfileType: 'Consumption' } ]
  }
}

// *.<baseDomain> (covers app.<baseDomain> too). Managed certificates cannot be wildcards, so the
// certificate is ours, kept in Key Vault and read by the environment through the identity.
resource wildcardCert 'Microsoft.App/managedEnvironments/certificates@2025-01-01' = if (bindCustomDomains) {
  parent: env
  name: 'wildcard-${replace(baseDomain, '.', '-')}'
  location: location
  properties: {
    certificateKeyVaultProperties: {
      identity: identityId
      keyVaultUrl: '${vaultUri}secrets/${wildcardCertificateName}'
    }
  }
}

resource web 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-web'
  location: location
  tags: tags
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: env.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      registries: [ { server: registryLoginServer, identity: identityId } ]
      ingress: {
        external: true
        targetPort: 8000
        transport: 'auto'
        allowInsecure: false
        customDomains: bindCustomDomains ? [
          { name: '*.${baseDomain}', certificateId: wildcardCert.id, bindingType: 'SniEnabled' }
          { name: 'app.${baseDomain}', certificateId: wildcardCert.id, bindingType: 'SniEnabled' }
        ] : []
      }
    }
    template: {
      terminationGracePeriodSeconds: webGraceSeconds
      containers: [
        {
          name: 'web'
          image: image
          args: [ 'web' ]
          resources: { cpu: json('1.0'), memory: '2Gi' }
          env: concat(commonEnv, [
            { name: 'OTEL_SERVICE_NAME', value: 'fieldday-web' }
            { name: 'WEB_CONCURRENCY', value: '2' }
            { name: 'WEB_THREADS', value: '4' }
            { name: 'WEB_GRACEFUL_TIMEOUT', value: string(webGraceSeconds - 10) }
          ])
          probes: [
            { type: 'Startup', httpGet: { path: '/healthz', port: 8000 }, periodSeconds: 5, failureThreshold: 24 }
            // Liveness restarts a replica: tolerate a minute of dependency trouble before that.
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8000 }, periodSeconds: 15, failureThreshold: 4, timeoutSeconds: 5 }
            // Readiness keeps traffic off a replica whose code is ahead of the schema.
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8000 }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 }
          ]
        }
      ]
      scale: {
        minReplicas: webMinReplicas
        maxReplicas: webMaxReplicas
        rules: [
          { name: 'http', http: { metadata: { concurrentRequests: string(webConcurrentRequests) } } }
        ]
      }
    }
  }
}

resource worker 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-worker'
  location: location
  tags: tags
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: env.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: workerSecrets
      registries: [ { server: registryLoginServer, identity: identityId } ]
    }
    template: {
      // SIGTERM = RQ warm shutdown: the running job finishes, then the worker exits 0.
      terminationGracePeriodSeconds: workerGraceSeconds
      containers: [
        {
          name: 'worker'
          image: image
          args: [ 'worker' ]
          resources: { cpu: json('1.0'), memory: '2Gi' }
          env: concat(commonEnv, [ { name: 'OTEL_SERVICE_NAME', value: 'fieldday-worker' } ])
        }
      ]
      scale: {
        minReplicas: workerMinReplicas
        maxReplicas: workerMaxReplicas
        rules: [for queue in rqQueues: {
          name: 'rq-${queue}'
          custom: {
            type: 'redis'
            metadata: {
              address: '${redisHost}:${redisSslPort}'
              listName: 'rq:queue:${queue}'
              listLength: '20'
              enableTLS: 'true'
              databaseIndex: '0'
            }
            auth: [ { secretRef: 'redis-password', triggerParameter: 'password' } ]
          }
        }]
      }
    }
  }
}

resource scheduler 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-scheduler'
  location: location
  tags: tags
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: env.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      registries: [ { server: registryLoginServer, identity: identityId } ]
    }
    template: {
      terminationGracePeriodSeconds: webGraceSeconds
      containers: [
        {
          name: 'scheduler'
          image: image
          args: [ 'scheduler' ]
          resources: { cpu: json('0.25'), memory: '0.5Gi' }
          env: concat(commonEnv, [ { name: 'OTEL_SERVICE_NAME', value: 'fieldday-scheduler' } ])
        }
      ]
      // Exactly one: `flask cron` must not run twice (every sweep would be enqueued twice).
      scale: { minReplicas: 1, maxReplicas: 1 }
    }
  }
}

resource migrate 'Microsoft.App/jobs@2024-03-01' = {
  name: '${prefix}-migrate'
  location: location
  tags: tags
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: env.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Manual'
      manualTriggerConfig: { parallelism: 1, replicaCompletionCount: 1 }
      replicaTimeout: 1800
      replicaRetryLimit: 0
      secrets: migrateSecrets
      registries: [ { server: registryLoginServer, identity: identityId } ]
    }
    template: {
      containers: [
        {
          name: 'migrate'
          image: image
          args: [ 'migrate' ]
          resources: { cpu: json('0.5'), memory: '1Gi' }
          env: concat(commonEnv, [
            { name: 'OTEL_SERVICE_NAME', value: 'fieldday-migrate' }
            { name: 'DATABASE_OWNER_URL', secretRef: 'database-owner-url' }
            { name: 'DATABASE_ADMIN_URL', secretRef: 'database-admin-url' }
            { name: 'OWNER_PASSWORD', secretRef: 'db-owner-password' }
            { name: 'APP_PASSWORD', secretRef: 'db-app-password' }
          ])
        }
      ]
    }
  }
}

output environmentName string = env.name
output webName string = web.name
output webFqdn string = web.properties.configuration.ingress.fqdn
output migrateJobName string = migrate.name
output customDomainVerificationId string = env.properties.customDomainConfiguration.customDomainVerificationId
