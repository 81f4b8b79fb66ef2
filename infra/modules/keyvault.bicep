// Key Vault (RBAC mode) with the deployment's secrets. The apps read them through Key Vault
// references (the Function app's `@Microsoft.KeyVault(SecretUri=...)` settings, the Container
// App's `keyVaultUrl` secrets), each identity holding Key Vault Secrets User on exactly the
// secrets it reads, not on the vault.

param name string
param location string
param tags object

@secure()
param djangoSecretKey string
@secure()
param eventGridReceiverKey string
param postgresAdminLogin string
@secure()
param postgresAdminPassword string
param postgresFqdn string
param databaseName string
param redisName string

param webPrincipalId string
param functionsPrincipalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    publicNetworkAccess: 'Enabled'
  }
}

resource redis 'Microsoft.Cache/redis@2024-03-01' existing = {
  name: redisName
}

resource secretKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'django-secret-key'
  properties: { value: djangoSecretKey }
}

resource postgresPassword 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'postgres-password'
  properties: { value: postgresAdminPassword }
}

// userinfo is percent-encoded, as URLs require; libpq and dj-database-url decode it.
resource databaseUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'database-url'
  properties: {
    value: 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgresFqdn}:5432/${databaseName}?sslmode=require'
  }
}

resource receiverKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'eventgrid-receiver-key'
  properties: { value: eventGridReceiverKey }
}

resource redisUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'redis-url'
  properties: {
    value: 'rediss://:${uriComponent(redis.listKeys().primaryKey)}@${redis.properties.hostName}:${redis.properties.sslPort}/0'
  }
}

// Who reads which secret: the web all it needs to serve, the Functions only the database.
var readers = [
  { principalId: webPrincipalId, secret: secretKey.name }
  { principalId: webPrincipalId, secret: databaseUrl.name }
  { principalId: webPrincipalId, secret: receiverKey.name }
  { principalId: webPrincipalId, secret: redisUrl.name }
  { principalId: functionsPrincipalId, secret: databaseUrl.name }
]

resource readable 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [
  for reader in readers: {
    parent: vault
    name: reader.secret
  }
]

resource secretsUsers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (reader, i) in readers: {
    scope: readable[i]
    name: guid(vault.id, reader.secret, reader.principalId, keyVaultSecretsUser)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
      principalId: reader.principalId
      principalType: 'ServicePrincipal'
    }
    dependsOn: [secretKey, databaseUrl, receiverKey, redisUrl]
  }
]

output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless URIs: a rotated secret reaches the apps without a redeployment.
output secretKeyUri string = secretKey.properties.secretUri
output databaseUrlUri string = databaseUrl.properties.secretUri
output receiverKeyUri string = receiverKey.properties.secretUri
output redisUrlUri string = redisUrl.properties.secretUri
