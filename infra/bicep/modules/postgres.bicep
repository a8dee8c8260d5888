// PostgreSQL Flexible Server with private access only: a subnet delegated to the server and a
// private DNS zone linked to the VNet; no public endpoint, TLS required.
// Version 16: from 16 on, the server admin (azure_pg_admin, not a superuser) may create roles with
// BYPASSRLS, which scripts/db_roles.sql needs for fieldday_definer (docs/deployment.md).
param prefix string
param location string
param tags object
param vnetId string
param subnetId string
param version string = '16'
param skuName string
@allowed([ 'Burstable', 'GeneralPurpose', 'MemoryOptimized' ])
param skuTier string
param storageSizeGB int
@minValue(7)
@maxValue(35)
param backupRetentionDays int
@allowed([ 'Enabled', 'Disabled' ])
param geoRedundantBackup string
@allowed([ 'Disabled', 'ZoneRedundant', 'SameZone' ])
param highAvailability string
param adminLogin string
@secure()
param adminPassword string
param databaseName string = 'fieldday'
@description('Built-in PgBouncer on port 6432. Off until the app\'s connection settings are transaction-mode safe (docs/scale-out.md).')
param pgbouncerEnabled bool = false

resource dnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: '${prefix}.private.postgres.database.azure.com'
  location: 'global'
  tags: tags
}

resource dnsLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: dnsZone
  name: '${prefix}-postgres-link'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: vnetId }
  }
}

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: '${prefix}-pg'
  location: location
  tags: tags
  sku: { name: skuName, tier: skuTier }
  properties: {
    version: version
    administratorLogin: adminLogin
    administratorLoginPassword: adminPassword
    authConfig: { activeDirectoryAuth: 'Disabled', passwordAuth: 'Enabled' }
    storage: { storageSizeGB: storageSizeGB, autoGrow: 'Enabled' }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup
    }
    highAvailability: { mode: highAvailability }
    network: {
      delegatedSubnetResourceId: subnetId
      privateDnsZoneArmResourceId: dnsZone.id
      publicNetworkAccess: 'Disabled'
    }
  }
  dependsOn: [ dnsLink ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: { charset: 'UTF8', collation: 'en_US.utf8' }
}

// btree_gist (the no-double-booking exclusion constraint) and pg_trgm (search) must be allow-listed
// on Flexible Server before a migration can CREATE EXTENSION them.
resource extensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: { value: 'BTREE_GIST,PG_TRGM,PGCRYPTO', source: 'user-override' }
}

resource pgbouncer 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'pgbouncer.enabled'
  properties: { value: pgbouncerEnabled ? 'true' : 'false', source: 'user-override' }
  dependsOn: [ extensions ] // configuration updates on one server must not run in parallel
}

output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
output port int = pgbouncerEnabled ? 6432 : 5432
