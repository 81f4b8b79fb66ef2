// The Functions app: handlers/function_app.py on Flex Consumption (Linux, Python 3.11), with the
// Event Grid-triggered workers (one per tool category) and the sweep, retention, relay and
// webhooks timers.
//
// The Functions host keeps its own state (timer leases, keys) and the deployment package in a
// storage account of its own, so the host's broad roles there (Blob Data Owner, Queue and Table
// Data Contributor, which identity-based AzureWebJobsStorage requires) never reach the
// execution blobs, where the app holds Blob Data Contributor only. On Flex Consumption the
// runtime and its version live in functionAppConfig, not in app settings
// (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE are refused).

param name string
param planName string
param hostStorageName string
param location string
param tags object

param identityId string
param identityClientId string
param identityPrincipalId string

param appInsightsConnectionString string
param maximumInstanceCount int
param instanceMemoryMB int

@description('MAGICTOOLBOX_DEPLOYMENT: the CloudEvents source is /magictoolbox/<name>.')
param deploymentName string
param blobStorageUrl string
param topicEndpoint string
param databaseUrlSecretUri string
param sweepSchedule string
param retentionSchedule string
param relaySchedule string
@description('NCRONTAB of the webhooks timer: user webhook deliveries and their retries.')
param webhooksSchedule string
param retryBackoffSeconds int

var deploymentContainerName = 'deploymentpackage'
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: hostStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource hostRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in items(roles): {
    scope: hostStorage
    name: guid(hostStorage.id, identityPrincipalId, role.value)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
      principalId: identityPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // The Functions host's own storage, by identity.
        { name: 'AzureWebJobsStorage__accountName', value: hostStorage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        // DefaultAzureCredential (blobs, the Event Grid relay) signs in as this identity.
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        // Settings the Functions read (handlers/settings.py). EVENTSTORE_URL defaults to DATABASE_URL.
        { name: 'DATABASE_URL', value: '@Microsoft.KeyVault(SecretUri=${databaseUrlSecretUri})' }
        { name: 'BLOB_STORAGE', value: blobStorageUrl }
        { name: 'MAGICTOOLBOX_DEPLOYMENT', value: deploymentName }
        { name: 'EVENTGRID_TOPIC_ENDPOINT', value: topicEndpoint }
        { name: 'RETRY_BACKOFF_SECONDS', value: string(retryBackoffSeconds) }
        // The timer triggers' %SCHEDULE% settings (NCRONTAB, six fields, seconds first).
        { name: 'SWEEP_SCHEDULE', value: sweepSchedule }
        { name: 'RETENTION_SCHEDULE', value: retentionSchedule }
        { name: 'RELAY_SCHEDULE', value: relaySchedule }
        { name: 'WEBHOOKS_SCHEDULE', value: webhooksSchedule }
      ]
    }
  }
  dependsOn: [deploymentContainer, hostRoles]
}

output name string = functionApp.name
output id string = functionApp.id
