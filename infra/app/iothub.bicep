// Optional IoT Hub for real devices. Devices send device-to-cloud messages to the hub; a route
// delivers every message to meterwatch's own Event Hub, authenticating with a user-assigned
// identity that holds Azure Event Hubs Data Sender on that hub only.
//
// Why a route and not the hub's built-in endpoint: the built-in (Event Hubs-compatible) endpoint
// is read with the hub's shared access policy key (a connection string), which would put a key in
// the app settings; it also has its own partitions and retention that cannot be shared with the
// direct Event Hubs path. Routing keeps one door for the app (EventHubConnection__*, identity
// based), identical with and without an IoT Hub, and lets producers that are not devices write
// to the same hub.

@description('Azure region of the IoT Hub.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('IoT Hub name.')
param iotHubName string

@description('IoT Hub tier: F1 (free, one per subscription), B1 (basic) or S1 (standard).')
@allowed([
  'F1'
  'B1'
  'S1'
])
param skuName string = 'B1'

@description('IoT Hub units.')
@minValue(1)
param capacity int = 1

@description('Resource id of the user-assigned identity the route authenticates with.')
param routingIdentityId string

@description('Fully qualified Event Hubs namespace (<name>.servicebus.windows.net).')
param eventHubFullyQualifiedNamespace string

@description('Event Hub that the route delivers to (the one the app reads).')
param eventHubName string

var routingEndpointName = 'meterwatch-telemetry'

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: iotHubName
  location: location
  tags: tags
  sku: {
    name: skuName
    capacity: capacity
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${routingIdentityId}': {}
    }
  }
  properties: {
    // Service APIs authenticate with Entra ID only; devices keep their own per-device
    // credentials (SAS or X.509), which Entra ID cannot replace for device-to-cloud messages.
    disableLocalAuth: true
    minTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    eventHubEndpoints: {
      events: {
        retentionTimeInDays: 1
        partitionCount: 2
      }
    }
    routing: {
      endpoints: {
        eventHubs: [
          {
            name: routingEndpointName
            authenticationType: 'identityBased'
            identity: {
              userAssignedIdentity: routingIdentityId
            }
            endpointUri: 'sb://${eventHubFullyQualifiedNamespace}'
            entityPath: eventHubName
            subscriptionId: subscription().subscriptionId
            resourceGroup: resourceGroup().name
          }
        ]
        serviceBusQueues: []
        serviceBusTopics: []
        storageContainers: []
      }
      routes: [
        {
          name: 'telemetry-to-meterwatch'
          source: 'DeviceMessages'
          condition: 'true'
          endpointNames: [
            routingEndpointName
          ]
          isEnabled: true
        }
      ]
      fallbackRoute: {
        name: '$fallback'
        source: 'DeviceMessages'
        condition: 'true'
        endpointNames: [
          'events'
        ]
        isEnabled: false
      }
    }
  }
}

output iotHubName string = iotHub.name
output iotHubHostName string = iotHub.properties.hostName
