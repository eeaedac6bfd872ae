// User-assigned managed identities: one for the function app (every data-plane call the app
// makes), and, only when an IoT Hub is deployed, one for the hub's route into Event Hubs. The hub
// gets its own identity so that the app never holds the Event Hubs Data Sender role, and so that
// the role can be granted before the hub (and its route) is created.

@description('Azure region of the identities.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Name of the function app identity.')
param appIdentityName string

@description('Name of the IoT Hub routing identity (used only when deployIotHub is true).')
param iotHubIdentityName string

@description('Create the IoT Hub routing identity.')
param deployIotHub bool = false

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: appIdentityName
  location: location
  tags: tags
}

resource iotHubIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (deployIotHub) {
  name: iotHubIdentityName
  location: location
  tags: tags
}

output appIdentityId string = appIdentity.id
output appIdentityName string = appIdentity.name
output appIdentityClientId string = appIdentity.properties.clientId
output appIdentityPrincipalId string = appIdentity.properties.principalId
output iotHubIdentityId string = deployIotHub ? iotHubIdentity.id : ''
output iotHubIdentityPrincipalId string = deployIotHub ? iotHubIdentity.properties.principalId : ''
