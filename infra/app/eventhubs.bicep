// Event Hubs: the telemetry door. Local (SAS) authentication is disabled, so producers and the
// function app authenticate with Entra ID. Standard tier: the app needs its own consumer group
// (Basic allows only $Default), and the hub's partitions bound how many instances read in parallel.

@description('Azure region of the namespace.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Event Hubs namespace name.')
param namespaceName string

@description('Event Hub the ingest function reads (EVENTHUB_NAME).')
param eventHubName string

@description('Partitions of the hub: the most function instances that read it at once. Fixed after creation on the Standard tier.')
@minValue(1)
@maxValue(32)
param partitionCount int = 4

@description('Days events stay readable (Standard: 1-7): how long the app may be down without losing telemetry.')
@minValue(1)
@maxValue(7)
param messageRetentionInDays int = 1

@description('Throughput units of the namespace (1 TU: 1 MB/s or 1,000 events/s in, 2 MB/s out).')
@minValue(1)
@maxValue(20)
param capacity int = 1

@description('Event Hub the live detection publishes its alerts to (ANOMALIES_EVENTHUB_NAME).')
param anomaliesEventHubName string = 'anomalies'

@description('Consumer group of the cloud function app (EVENTHUB_CONSUMER_GROUP).')
param consumerGroupName string

@description('Consumer group for a developer debugging locally against the cloud hub, so the laptop never steals partitions from the cloud app.')
param localDebugConsumerGroupName string

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
  }
}

// The alerts: one event per anomaly (schema meterwatch.alert/1), sent by the blob trigger's
// output binding with the app's identity (Azure Event Hubs Data Sender on this hub only).
resource anomaliesHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: anomaliesEventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
  }
}

resource appConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
  properties: {
    userMetadata: 'meterwatch function app (ingest trigger)'
  }
}

resource localDebugConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: localDebugConsumerGroupName
  properties: {
    userMetadata: 'func start on a developer machine (scripts/postprovision.sh)'
  }
}

output namespaceName string = namespace.name
output namespaceId string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output eventHubName string = hub.name
output eventHubId string = hub.id
output anomaliesEventHubName string = anomaliesHub.name
output anomaliesEventHubId string = anomaliesHub.id
output consumerGroupName string = appConsumerGroup.name
output localDebugConsumerGroupName string = localDebugConsumerGroup.name
