// MagicToolbox on Azure, in one resource group: what ARCHITECTURE.md's "Azure" column names.
//
//   web (Container Apps) ──relay──▶ Event Grid topic ──▶ Functions (Flex Consumption), one per
//        │  ▲                              │               tool category, + timers
//        │  └──────── webhook (wake) ──────┘
//        ▼
//   PostgreSQL (events, read models) · Blob Storage (files) · Redis (live updates) · Key Vault
//
// Both apps run with user-assigned identities, made first so that their roles exist before the
// apps start: no connection string or key of Azure's own is an app setting. infra/README.md has
// the deployment steps; tests/infra checks this against the settings the code reads.

targetScope = 'resourceGroup'

@description('The deployment\'s name (lowercase letters and digits): MAGICTOOLBOX_DEPLOYMENT, so the CloudEvents source is /magictoolbox/<name>; also the stem of resource names.')
@minLength(2)
@maxLength(12)
param environmentName string

param location string = resourceGroup().location

@description('The web image (<registry>.azurecr.io/magictoolbox-web:<tag>). Empty: a placeholder image, for the first deployment, before the image is built.')
param webImage string = ''

@description('Create the Event Grid subscriptions. Event Grid calls an endpoint when its subscription is made, so the first deployment, before the function code is published and the web image runs, sets this to false.')
param subscribeEvents bool = true

param postgresAdminLogin string = 'magictoolbox'

@secure()
@description('The PostgreSQL admin password (8-128 characters, three of: upper, lower, digit, symbol).')
param postgresAdminPassword string

@secure()
@description('Django\'s SECRET_KEY.')
param djangoSecretKey string

@secure()
@description('EVENTGRID_RECEIVER_KEY: the web receiver accepts deliveries that carry it.')
param eventGridReceiverKey string

param postgresSkuName string = 'Standard_B1ms'
@allowed(['Burstable', 'GeneralPurpose', 'MemoryOptimized'])
param postgresTier string = 'Burstable'
param postgresStorageGB int = 32

@description('NCRONTAB (six fields, seconds first) of the sweep timer: timeouts and retries.')
param sweepSchedule string = '*/15 * * * * *'
@description('NCRONTAB of the retention timer: expiry of old executions\' files.')
param retentionSchedule string = '0 7 * * * *'
@description('NCRONTAB of the relay timer: publishes what the web\'s relay left behind.')
param relaySchedule string = '*/10 * * * * *'
@description('NCRONTAB of the webhooks timer: user webhook deliveries the web has not made.')
param webhooksSchedule string = '*/10 * * * * *'
@description('The wait before a failed execution\'s second attempt, doubling after each.')
param retryBackoffSeconds int = 30

param webMinReplicas int = 1
param webMaxReplicas int = 3
param functionsMaximumInstances int = 40
@allowed([512, 2048, 4096])
param functionsInstanceMemoryMB int = 2048

param tags object = {}

var env = toLower(environmentName)
var token = toLower(uniqueString(subscription().id, resourceGroup().id, env))
var allTags = union(tags, { application: 'magictoolbox', environment: env })

// -- identities ----------------------------------------------------------------------------------

resource webIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${env}-web'
  location: location
  tags: allTags
}

resource functionsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${env}-functions'
  location: location
  tags: allTags
}

// -- shared services -----------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: 'log-${env}'
    appInsightsName: 'appi-${env}'
    location: location
    tags: allTags
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    name: 'evgt-${env}-${token}'
    location: location
    tags: allTags
    senderPrincipalIds: [webIdentity.properties.principalId, functionsIdentity.properties.principalId]
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${token}'
    location: location
    tags: allTags
    blobContributorPrincipalIds: [webIdentity.properties.principalId, functionsIdentity.properties.principalId]
    deadLetterWriterPrincipalId: eventGrid.outputs.principalId
  }
}

module database 'modules/database.bicep' = {
  name: 'database'
  params: {
    name: 'psql-${env}-${token}'
    location: location
    tags: allTags
    databaseName: 'magictoolbox'
    adminLogin: postgresAdminLogin
    adminPassword: postgresAdminPassword
    skuName: postgresSkuName
    tier: postgresTier
    storageSizeGB: postgresStorageGB
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: {
    name: 'redis-${env}-${token}'
    location: location
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-${token}'
    location: location
    tags: allTags
    djangoSecretKey: djangoSecretKey
    eventGridReceiverKey: eventGridReceiverKey
    postgresAdminLogin: postgresAdminLogin
    postgresAdminPassword: postgresAdminPassword
    postgresFqdn: database.outputs.fqdn
    databaseName: database.outputs.databaseName
    redisName: redis.outputs.name
    webPrincipalId: webIdentity.properties.principalId
    functionsPrincipalId: functionsIdentity.properties.principalId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    name: 'cr${token}'
    location: location
    tags: allTags
    pullerPrincipalId: webIdentity.properties.principalId
  }
}

// -- the apps ------------------------------------------------------------------------------------

module functions 'modules/functions.bicep' = {
  name: 'functions'
  params: {
    name: 'func-${env}-${token}'
    planName: 'plan-${env}-functions'
    hostStorageName: 'stfn${token}'
    location: location
    tags: allTags
    identityId: functionsIdentity.id
    identityClientId: functionsIdentity.properties.clientId
    identityPrincipalId: functionsIdentity.properties.principalId
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: functionsMaximumInstances
    instanceMemoryMB: functionsInstanceMemoryMB
    deploymentName: env
    blobStorageUrl: storage.outputs.blobEndpoint
    topicEndpoint: eventGrid.outputs.endpoint
    databaseUrlSecretUri: keyVault.outputs.databaseUrlUri
    sweepSchedule: sweepSchedule
    retentionSchedule: retentionSchedule
    relaySchedule: relaySchedule
    webhooksSchedule: webhooksSchedule
    retryBackoffSeconds: retryBackoffSeconds
  }
}

module web 'modules/web.bicep' = {
  name: 'web'
  params: {
    name: 'web-${env}'
    environmentName: 'cae-${env}'
    location: location
    tags: allTags
    workspaceName: monitoring.outputs.workspaceName
    identityId: webIdentity.id
    identityClientId: webIdentity.properties.clientId
    image: webImage
    registryServer: registry.outputs.loginServer
    minReplicas: webMinReplicas
    maxReplicas: webMaxReplicas
    deploymentName: env
    blobStorageUrl: storage.outputs.blobEndpoint
    topicEndpoint: eventGrid.outputs.endpoint
    secretKeySecretUri: keyVault.outputs.secretKeyUri
    databaseUrlSecretUri: keyVault.outputs.databaseUrlUri
    receiverKeySecretUri: keyVault.outputs.receiverKeyUri
    redisUrlSecretUri: keyVault.outputs.redisUrlUri
  }
}

module subscriptions 'modules/subscriptions.bicep' = if (subscribeEvents) {
  name: 'subscriptions'
  params: {
    topicName: eventGrid.outputs.name
    functionAppId: functions.outputs.id
    webFqdn: web.outputs.fqdn
    deadLetterStorageId: storage.outputs.id
    deadLetterContainer: storage.outputs.deadLetterContainer
    receiverKey: eventGridReceiverKey
  }
}

// -- outputs -------------------------------------------------------------------------------------

output topicEndpoint string = eventGrid.outputs.endpoint
output webUrl string = web.outputs.url
output webAppName string = web.outputs.name
output functionAppName string = functions.outputs.name
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
output postgresFqdn string = database.outputs.fqdn
output registryName string = registry.outputs.name
output registryLoginServer string = registry.outputs.loginServer
