// The Event Grid subscriptions of the topic: one per Event Grid-triggered function, with the
// filters its trigger binding declares (infra/event-subscriptions.json, checked against
// handlers/function_app.py by tests/infra), and one for the web's receiver, which wakes its
// projector. Event Grid checks an endpoint when a subscription is made, so these are created
// once the function code is published and the web image runs (main.bicep's subscribeEvents).
// Every subscription retries for a day and then dead-letters to the `deadletters` container,
// written with the topic's identity.

param topicName string
param functionAppId string
param webFqdn string
param deadLetterStorageId string
param deadLetterContainer string

@secure()
@description('Sent as the X-MagicToolbox-Key header to the web receiver (its EVENTGRID_RECEIVER_KEY).')
param receiverKey string

var functionSubscriptions = loadJsonContent('../event-subscriptions.json').subscriptions

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

resource functions 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = [
  for subscription in functionSubscriptions: {
    parent: topic
    name: 'fn-${subscription.name}'
    properties: {
      destination: {
        endpointType: 'AzureFunction'
        properties: {
          resourceId: '${functionAppId}/functions/${subscription.name}'
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      eventDeliverySchema: 'CloudEventSchemaV1_0'
      filter: {
        subjectBeginsWith: subscription.subjectBeginsWith
        subjectEndsWith: subscription.subjectEndsWith
        includedEventTypes: empty(subscription.includedEventTypes) ? null : subscription.includedEventTypes
      }
      retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
      deadLetterWithResourceIdentity: {
        identity: { type: 'SystemAssigned' }
        deadLetterDestination: {
          endpointType: 'StorageBlob'
          properties: { resourceId: deadLetterStorageId, blobContainerName: deadLetterContainer }
        }
      }
    }
  }
]

// Every event of the topic: the receiver only wakes the projector, which reads the store.
resource web 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'web'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // The key goes in the X-MagicToolbox-Key header (below, a secret attribute). It rides
        // in the URL too: Event Grid uses the URL for the validation handshakes, which may come
        // without the delivery attribute headers (Event Grid keeps the query string secret: only
        // endpointBaseUrl is ever shown), and the web's access log writes it as [redacted].
        endpointUrl: 'https://${webFqdn}/eventgrid/events?code=${receiverKey}'
        maxEventsPerBatch: 50
        preferredBatchSizeInKilobytes: 1024
        deliveryAttributeMappings: [
          {
            name: 'X-MagicToolbox-Key'
            type: 'Static'
            properties: { value: receiverKey, isSecret: true }
          }
        ]
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: deadLetterStorageId, blobContainerName: deadLetterContainer }
      }
    }
  }
}

