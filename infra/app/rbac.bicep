// Every role assignment of the deployment, in one place. Each is named with guid(scope, principal,
// role), so a re-deployment finds the same assignment instead of failing on a duplicate.
//
// The function app's identity gets exactly seven data-plane roles, each at the narrowest scope that
// works:
//   Storage Blob Data Owner         storage account   host (leases, receipts, secrets), app containers,
//                                                     deployment package
//   Storage Queue Data Contributor  storage account   Durable Functions work queues, blob-trigger queue
//   Storage Table Data Contributor  storage account   Durable Functions history and instances
//   Azure Event Hubs Data Receiver  the event hub     ingest trigger (checkpoints live in blob storage)
//   Azure Event Hubs Data Sender    the anomalies hub the blob trigger's alert output binding
//   Monitoring Metrics Publisher    App Insights      Entra ID ingestion of telemetry
//   Key Vault Secrets User          the key vault     Key Vault references of the app's secrets
// The developer who runs azd (principalId, optional) gets the first four, to run `func start`
// against the cloud resources; the IoT Hub route's identity (optional) gets Azure Event Hubs Data
// Sender on the event hub only.

@description('Storage account of the host and the app.')
param storageAccountName string

@description('Event Hubs namespace.')
param eventHubNamespaceName string

@description('Event Hub the app reads.')
param eventHubName string

@description('Event Hub the alerts are published to (the blob trigger\'s output binding).')
param anomaliesEventHubName string

@description('Application Insights component.')
param applicationInsightsName string

@description('Key Vault holding the app\'s secrets.')
param keyVaultName string

@description('Principal id of the function app\'s user-assigned identity.')
param appPrincipalId string

@description('Principal id of the developer running azd (AZURE_PRINCIPAL_ID); empty for none.')
param userPrincipalId string = ''

@description('Kind of principal userPrincipalId is: a person, or a service principal in CI.')
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

@description('Principal id of the IoT Hub routing identity; empty when no IoT Hub is deployed.')
param iotHubPrincipalId string = ''

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

var withUser = !empty(userPrincipalId)
var withIotHub = !empty(iotHubPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: eventHubName
}

resource anomaliesHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: anomaliesEventHubName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// ---- the function app's identity ----

resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appEventHubsReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, appPrincipalId, roleIds.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.eventHubsDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appAnomaliesSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(anomaliesHub.id, appPrincipalId, roleIds.eventHubsDataSender)
  scope: anomaliesHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.eventHubsDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roleIds.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appKeyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, appPrincipalId, roleIds.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- the developer (local debugging against the cloud resources) ----

resource userBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withUser) {
  name: guid(storage.id, userPrincipalId, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withUser) {
  name: guid(storage.id, userPrincipalId, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withUser) {
  name: guid(storage.id, userPrincipalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userEventHubsReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withUser) {
  name: guid(eventHub.id, userPrincipalId, roleIds.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.eventHubsDataReceiver)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// ---- the IoT Hub route (optional) ----

resource iotHubEventHubsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withIotHub) {
  name: guid(eventHub.id, iotHubPrincipalId, roleIds.eventHubsDataSender)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.eventHubsDataSender)
    principalId: iotHubPrincipalId
    principalType: 'ServicePrincipal'
  }
}
