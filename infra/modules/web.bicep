// The web: the Django app (UI, REST API, live updates, the Event Grid receiver) on Container
// Apps, with the projector and the outbox relay in its process (the Functions do the tool work).
// Its settings come from the environment; the secret ones are Key Vault secrets read with the
// web's identity.

param name string
param environmentName string
param location string
param tags object
param workspaceName string

param identityId string
param identityClientId string

@description('The web image; empty: a placeholder (port 80) until the first image is built.')
param image string
param registryServer string
param minReplicas int
param maxReplicas int

@description('MAGICTOOLBOX_DEPLOYMENT: the CloudEvents source is /magictoolbox/<name>.')
param deploymentName string
param blobStorageUrl string
param topicEndpoint string
param secretKeySecretUri string
param databaseUrlSecretUri string
param receiverKeySecretUri string
param redisUrlSecretUri string

var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'
var port = empty(image) ? 80 : 8000

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource managedEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
  }
}

// Known before the app exists (<app>.<environment's domain>), so ALLOWED_HOSTS can name it.
var fqdn = '${name}.${managedEnvironment.properties.defaultDomain}'

resource web 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    managedEnvironmentId: managedEnvironment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        transport: 'auto'
        allowInsecure: false
      }
      registries: [{ server: registryServer, identity: identityId }]
      secrets: [
        { name: 'django-secret-key', keyVaultUrl: secretKeySecretUri, identity: identityId }
        { name: 'database-url', keyVaultUrl: databaseUrlSecretUri, identity: identityId }
        { name: 'eventgrid-receiver-key', keyVaultUrl: receiverKeySecretUri, identity: identityId }
        { name: 'redis-url', keyVaultUrl: redisUrlSecretUri, identity: identityId }
      ]
    }
    template: {
      containers: [
        {
          name: 'web'
          image: empty(image) ? placeholderImage : image
          resources: { cpu: json('1.0'), memory: '2Gi' }
          env: [
            { name: 'SECRET_KEY', secretRef: 'django-secret-key' }
            { name: 'DATABASE_URL', secretRef: 'database-url' }
            { name: 'EVENTGRID_RECEIVER_KEY', secretRef: 'eventgrid-receiver-key' }
            { name: 'EVENTSTREAM_REDIS', secretRef: 'redis-url' }
            { name: 'BLOB_STORAGE', value: blobStorageUrl }
            { name: 'MAGICTOOLBOX_DEPLOYMENT', value: deploymentName }
            { name: 'ALLOWED_HOSTS', value: fqdn }
            { name: 'CSRF_TRUSTED_ORIGINS', value: 'https://${fqdn}' }
            { name: 'BEHIND_HTTPS_PROXY', value: 'true' } // the ingress ends HTTPS
            { name: 'TRUSTED_PROXIES', value: '1' } // the ingress appends the client's address to X-Forwarded-For
            { name: 'EVENTGRID_TOPIC_ENDPOINT', value: topicEndpoint }
            // DefaultAzureCredential (blobs, the Event Grid relay) signs in as this identity.
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
            // Event Grid pushes tool work to the Functions; this process relays the outbox
            // right after each commit and keeps the read models current.
            { name: 'FUNCTIONS_IN_PROCESS', value: 'false' }
            { name: 'RELAY_IN_PROCESS', value: 'true' }
            { name: 'PROJECTOR_IN_PROCESS', value: 'true' }
          ]
          // /healthz reads the event store: it gates traffic (startup, readiness), while
          // liveness only asks whether the server answers, so a database outage does not
          // restart every replica. Django answers only its ALLOWED_HOSTS: the probes name it.
          probes: empty(image)
            ? []
            : [
                {
                  type: 'Startup'
                  httpGet: { path: '/healthz', port: port, httpHeaders: [{ name: 'Host', value: fqdn }] }
                  initialDelaySeconds: 10
                  periodSeconds: 10
                  failureThreshold: 10 // migrations run before the server starts
                }
                {
                  type: 'Readiness'
                  httpGet: { path: '/healthz', port: port, httpHeaders: [{ name: 'Host', value: fqdn }] }
                  periodSeconds: 10
                }
                {
                  type: 'Liveness'
                  tcpSocket: { port: port }
                  periodSeconds: 30
                }
              ]
        }
      ]
      scale: { minReplicas: minReplicas, maxReplicas: maxReplicas }
    }
  }
}

output name string = web.name
output fqdn string = web.properties.configuration.ingress.fqdn
output url string = 'https://${web.properties.configuration.ingress.fqdn}'
