// Key Vault holding every secret the app needs (RBAC authorization, soft delete and purge
// protection on). The apps' managed identity gets Key Vault Secrets User and nothing more; the
// container apps reference secrets by URL, so no secret value is stored in an app's definition.
param prefix string
param location string
param tags object
param appsPrincipalId string
@description('Object IDs (users or groups) that may manage secrets and upload the wildcard certificate.')
param adminObjectIds array = []
@secure()
@description('Secret name (kebab-case) -> value. Names are referenced by apps.bicep.')
param secretValues object

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var secretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var certificatesOfficerRoleId = 'a4417e6f-fecd-4de8-b567-7b0420556985'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${prefix}-kv-${uniqueString(resourceGroup().id)}', 24)
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' }
  }
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for item in items(secretValues): {
  parent: vault
  name: item.key
  properties: { value: item.value, contentType: 'text/plain' }
}]

resource appsReadSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appsPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: appsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource adminSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for id in adminObjectIds: {
  name: guid(vault.id, id, secretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRoleId)
    principalId: id
  }
}]

resource adminCertificates 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for id in adminObjectIds: {
  name: guid(vault.id, id, certificatesOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', certificatesOfficerRoleId)
    principalId: id
  }
}]

output name string = vault.name
output uri string = vault.properties.vaultUri
