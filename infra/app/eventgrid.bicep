// Event Grid system topic on the storage account, and one subscription per blob trigger that
// feeds it the BlobCreated events of its container (the triggers' source is EventGrid: Flex
// Consumption supports only the event-based blob trigger).
//
// Each subscription's endpoint is the blob extension's webhook with the blobs_extension system
// key. That key, and the webhook's answer to Event Grid's validation handshake, exist only once
// the function code is deployed, so the subscriptions are created on the provision that follows
// the first deploy (azure.yaml's postdeploy hook sets EVENTGRID_SUBSCRIPTION_ENABLED and provisions
// again). The key is read here, at deployment time, and is never written to an app setting or
// an output.

@description('Azure region of the system topic (the storage account\'s region).')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('System topic name.')
param systemTopicName string

@description('Storage account whose blob events are published.')
param storageAccountName string

@description('Function app that hosts the blob trigger.')
param functionAppName string

@description('The app\'s blob triggers: [{ functionName, containerName }], functionName being the Functions name (Python v2: @function_name or the decorated function\'s name).')
param blobTriggers array

@description('Create the subscriptions (needs the function code deployed; see the header).')
param subscriptionEnabled bool = false

@description('Minutes Event Grid keeps retrying an undelivered event (1440 = 24 h, the service maximum).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource functionHost 'Microsoft.Web/sites/host@2024-04-01' existing = {
  parent: functionApp
  name: 'default'
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// No subscription before the code is deployed (an empty loop), one per trigger after.
var subscribedTriggers = subscriptionEnabled ? blobTriggers : []

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [for trigger in subscribedTriggers: {
  parent: systemTopic
  name: 'blob-created-${replace(trigger.functionName, '_', '-')}'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${trigger.functionName}&code=${functionHost.listKeys().systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${trigger.containerName}/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
  }
}]

output systemTopicName string = systemTopic.name
output subscriptionCount int = length(subscribedTriggers)
