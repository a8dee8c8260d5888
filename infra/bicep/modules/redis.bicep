// Azure Cache for Redis: TLS only (port 6380, non-TLS port off, TLS 1.2+), reachable only through a
// private endpoint in the VNet. RQ queues, rate limits and the scheduler's locks live here.
param prefix string
param location string
param tags object
param vnetId string
param endpointsSubnetId string
@allowed([ 'Basic', 'Standard', 'Premium' ])
param skuName string
param capacity int

resource redis 'Microsoft.Cache/redis@2024-03-01' = {
  name: '${prefix}-redis'
  location: location
  tags: tags
  properties: {
    sku: { name: skuName, family: skuName == 'Premium' ? 'P' : 'C', capacity: capacity }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Disabled'
    redisConfiguration: {
      // RQ's keys must never be evicted to make room: fail writes instead.
      'maxmemory-policy': 'noeviction'
    }
  }
}

resource dnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: 'privatelink.redis.cache.windows.net'
  location: 'global'
  tags: tags
}

resource dnsLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: dnsZone
  name: '${prefix}-redis-link'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: vnetId }
  }
}

resource endpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = {
  name: '${prefix}-redis-pe'
  location: location
  tags: tags
  properties: {
    subnet: { id: endpointsSubnetId }
    privateLinkServiceConnections: [
      {
        name: 'redis'
        properties: { privateLinkServiceId: redis.id, groupIds: [ 'redisCache' ] }
      }
    ]
  }
}

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [ { name: 'redis', properties: { privateDnsZoneId: dnsZone.id } } ]
  }
}

output name string = redis.name
output host string = redis.properties.hostName
output sslPort int = redis.properties.sslPort
