// The Event Grid custom topic every stored event is published to (by the outbox relay), in the
// CloudEvents 1.0 schema the event store already writes. The apps publish with their managed
// identities (EventGrid Data Sender); the topic's access keys stay enabled for operators' tools
// but no app setting carries one. The topic's own identity writes dead letters (storage.bicep).

param name string
param location string
param tags object

@description('Principal ids of the identities that publish to the topic.')
param senderPrincipalIds array

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: false
  }
}

resource senders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in senderPrincipalIds: {
    scope: topic
    name: guid(topic.id, principalId, eventGridDataSender)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

output name string = topic.name
output endpoint string = topic.properties.endpoint
output principalId string = topic.identity.principalId
