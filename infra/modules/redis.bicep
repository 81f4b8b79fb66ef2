// Azure Cache for Redis (Basic C0): django-eventstream hands a live update only to browsers
// connected to the process that sent it; with more than one web replica, Redis carries live
// updates between them (EVENTSTREAM_REDIS). TLS only, on port 6380.

param name string
param location string
param tags object

resource redis 'Microsoft.Cache/redis@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: { name: 'Basic', family: 'C', capacity: 0 }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    redisVersion: '6'
  }
}

output name string = redis.name
output hostName string = redis.properties.hostName
output sslPort int = redis.properties.sslPort
