// meterwatch on Azure: `azd up` creates everything below, with managed identity instead of keys.
//
//   devices ─▶ IoT Hub (optional) ─route─▶ Event Hub ─▶ ingest function ─▶ raw container
//   raw container ─BlobCreated─▶ Event Grid ─webhook─▶ raw_blob_trigger ─▶ results, deadletter
//   training container ─BlobCreated─▶ Event Grid ─webhook─▶ mv_training_upload ─▶ Durable training
//
// Modules by concern: identity, monitoring, keyvault, storage, eventhubs, api (function app),
// rbac (every role assignment), iothub (optional), eventgrid. App settings: the app's own settings are
// assembled here (appSettings), the host and identity settings in app/api.bicep;
// tests/infra/test_infra.py checks that together they set exactly what shared/settings.py reads.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region of every resource (one that offers Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person (or CI service principal) running azd: gets data roles to debug locally against the cloud resources. Empty for none.')
param principalId string = ''

@description('Kind of principal principalId is.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Resource group name; empty for rg-<environmentName>.')
param resourceGroupName string = ''

@description('Event Hub the ingest function reads (EVENTHUB_NAME).')
param eventHubName string = 'telemetry'

@description('Event Hub the alerts are published to (ANOMALIES_EVENTHUB_NAME).')
param anomaliesEventHubName string = 'anomalies'

@description('Stream-state shard documents (LIVE_STATE_SHARDS): about the number of series / 100.')
@minValue(1)
@maxValue(9999)
param liveStateShards int = 64

@description('Points a series learns between detector snapshots (LIVE_SNAPSHOT_POINTS).')
@minValue(1)
param liveSnapshotPoints int = 60

@description('Days of history a series without state starts from (LIVE_BOOTSTRAP_DAYS).')
@minValue(0)
@maxValue(62)
param liveBootstrapDays int = 3

@description('Partitions of the Event Hub: the most instances that ingest at once; fixed after creation.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Days the Event Hub keeps events (1-7).')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 1

@description('Event Hubs throughput units (1 TU: 1,000 events/s or 1 MB/s in).')
@minValue(1)
@maxValue(20)
param eventHubCapacity int = 1

@description('Most function app instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of one function app instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Deploy an IoT Hub whose route feeds the Event Hub.')
param deployIotHub bool = false

@description('IoT Hub tier when deployIotHub is true.')
@allowed([
  'F1'
  'B1'
  'S1'
])
param iotHubSku string = 'B1'

@description('Create the Event Grid subscription of the blob trigger; set by the postdeploy hook once the code is deployed.')
param blobTriggerSubscriptionEnabled bool = false

@description('DETECT_GRANULARITY: v1.1 granularity, or auto to infer it from timestamps.')
param detectGranularity string = 'auto'

@description('DETECT_CUSTOM_INTERVAL: v1.1 customInterval; empty to infer it.')
param detectCustomInterval string = ''

@description('DETECT_PERIOD: period in points; empty to detect it.')
param detectPeriod string = ''

@description('DETECT_SENSITIVITY: 0-99, higher flags more.')
@minValue(0)
@maxValue(99)
param detectSensitivity int = 95

@description('DETECT_MAX_ANOMALY_RATIO: upper bound of the flagged share, in (0, 0.5].')
param detectMaxAnomalyRatio string = '0.25'

@description('DETECT_IMPUTE_MODE: how gaps are filled.')
@allowed([
  'auto'
  'previous'
  'linear'
  'fixed'
  'zero'
  'notFill'
])
param detectImputeMode string = 'auto'

@description('DETECT_IMPUTE_FIXED_VALUE: fill value when detectImputeMode is fixed.')
param detectImputeFixedValue string = ''

@description('DETECT_WINDOW_POINTS: points of history assembled per detection.')
@minValue(12)
@maxValue(8640)
param detectWindowPoints int = 1440

@description('MV_POLL_INTERVAL_SECONDS: how often the training orchestrator polls the training status.')
@minValue(1)
param mvPollIntervalSeconds int = 10

@description('MV_TRAINING_DEADLINE_MINUTES: training not READY by then is marked FAILED.')
@minValue(1)
param mvTrainingDeadlineMinutes int = 60

@description('MV_MAX_UPLOAD_MB: largest accepted multivariate dataset upload, in MB.')
@minValue(1)
param mvMaxUploadMB int = 200

@secure()
@description('METERWATCH_API_KEYS: comma-separated keys of the v1.1 REST API, kept in Key Vault. azd generates one on the first provision.')
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 40
      noSpecial: true
    }
  }
})
param meterwatchApiKeys string

@description('ANOMALY_DETECTOR_ENDPOINT: a remote v1.1-compatible endpoint; empty to detect in-process.')
param anomalyDetectorEndpoint string = ''

@secure()
@description('ANOMALY_DETECTOR_KEY: key of that endpoint, kept in Key Vault; empty for none.')
param anomalyDetectorKey string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-meterwatch-${resourceToken}'
var storageAccountName = 'st${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var appConsumerGroupName = 'meterwatch'
var localDebugConsumerGroupName = 'local-debug'

// One container per *_CONTAINER setting; the names are shared.settings' defaults.
var containerSettings = {
  RAW_CONTAINER: 'raw-telemetry'
  RESULTS_CONTAINER: 'detection-results'
  DEADLETTER_CONTAINER: 'deadletter'
  TRAINING_CONTAINER: 'mv-training'
  MODELS_CONTAINER: 'mv-models'
  HISTORY_CONTAINER: 'history'
}
var appContainerNames = [for container in items(containerSettings): container.value]

// The app's blob triggers (Functions names, as in functions/) and the container each watches:
// Event Grid calls each one's webhook for BlobCreated in its container.
var blobTriggers = [
  {
    functionName: 'raw_blob_trigger'
    containerName: containerSettings.RAW_CONTAINER
  }
  {
    functionName: 'mv_training_upload'
    containerName: containerSettings.TRAINING_CONTAINER
  }
]

// The app's own settings (shared.settings); host and identity settings are added in app/api.bicep.
var appSettings = union(containerSettings, {
  EVENTHUB_NAME: eventHubName
  EVENTHUB_CONSUMER_GROUP: appConsumerGroupName
  BLOB_TRIGGER_SOURCE: 'EventGrid'
  DETECT_GRANULARITY: detectGranularity
  DETECT_CUSTOM_INTERVAL: detectCustomInterval
  DETECT_PERIOD: detectPeriod
  DETECT_SENSITIVITY: string(detectSensitivity)
  DETECT_MAX_ANOMALY_RATIO: detectMaxAnomalyRatio
  DETECT_IMPUTE_MODE: detectImputeMode
  DETECT_IMPUTE_FIXED_VALUE: detectImputeFixedValue
  DETECT_WINDOW_POINTS: string(detectWindowPoints)
  HISTORY_COMPACTION_SCHEDULE: '0 0 * * * *'
  SCHEDULED_DETECTION_SCHEDULE: '0 10 * * * *'
  SCHEDULED_DETECTION_LOOKBACK_HOURS: '24'
  LIVE_STATE_SHARDS: string(liveStateShards)
  LIVE_SNAPSHOT_POINTS: string(liveSnapshotPoints)
  LIVE_BOOTSTRAP_DAYS: string(liveBootstrapDays)
  ANOMALIES_EVENTHUB_NAME: anomaliesEventHubName
  MV_POLL_INTERVAL_SECONDS: string(mvPollIntervalSeconds)
  MV_TRAINING_DEADLINE_MINUTES: string(mvTrainingDeadlineMinutes)
  MV_MAX_UPLOAD_MB: string(mvMaxUploadMB)
  // Secrets are Key Vault references, resolved by the platform with the app's identity.
  METERWATCH_API_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.apiKeysSecretUri})'
  API_ALLOW_LOCAL_PATHS: 'false'
  // The base of Location and nextLink URLs: the app's own host, never a request's Host header.
  API_PUBLIC_URL: 'https://${functionAppName}.azurewebsites.net/api'
  ANOMALY_DETECTOR_ENDPOINT: anomalyDetectorEndpoint
  ANOMALY_DETECTOR_KEY: empty(anomalyDetectorKey) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.anomalyDetectorKeySecretUri})'
})

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    appIdentityName: 'id-api-${resourceToken}'
    iotHubIdentityName: 'id-iot-${resourceToken}'
    deployIotHub: deployIotHub
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    keyVaultName: 'kv-${resourceToken}'
    apiKeys: meterwatchApiKeys
    anomalyDetectorKey: anomalyDetectorKey
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: storageAccountName
    appContainerNames: appContainerNames
    deploymentContainerName: deploymentContainerName
  }
}

module eventHubs './app/eventhubs.bicep' = {
  name: 'eventhubs'
  scope: rg
  params: {
    location: location
    tags: tags
    namespaceName: 'evhns-${resourceToken}'
    eventHubName: eventHubName
    anomaliesEventHubName: anomaliesEventHubName
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
    capacity: eventHubCapacity
    consumerGroupName: appConsumerGroupName
    localDebugConsumerGroupName: localDebugConsumerGroupName
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    location: location
    tags: tags
    functionAppName: functionAppName
    planName: 'plan-${resourceToken}'
    storageAccountName: storage.outputs.storageAccountName
    deploymentContainerName: deploymentContainerName
    identityId: identity.outputs.appIdentityId
    identityClientId: identity.outputs.appIdentityClientId
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    appSettings: appSettings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.storageAccountName
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    anomaliesEventHubName: eventHubs.outputs.anomaliesEventHubName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.keyVaultName
    appPrincipalId: identity.outputs.appIdentityPrincipalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    iotHubPrincipalId: identity.outputs.iotHubIdentityPrincipalId
  }
}

// The route is validated when the hub is created, so the sender role must exist first.
module iotHub './app/iothub.bicep' = if (deployIotHub) {
  name: 'iothub'
  scope: rg
  params: {
    location: location
    tags: tags
    iotHubName: 'iot-${resourceToken}'
    skuName: iotHubSku
    routingIdentityId: identity.outputs.iotHubIdentityId
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
  }
  dependsOn: [
    rbac
  ]
}

module eventGrid './app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    systemTopicName: 'evgt-${storageAccountName}'
    storageAccountName: storage.outputs.storageAccountName
    functionAppName: api.outputs.functionAppName
    blobTriggers: blobTriggers
    subscriptionEnabled: blobTriggerSubscriptionEnabled
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.functionAppName
output SERVICE_API_NAME string = api.outputs.functionAppName
output SERVICE_API_URI string = 'https://${api.outputs.functionAppHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.storageAccountName
output EVENTHUB_FULLY_QUALIFIED_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP string = eventHubs.outputs.localDebugConsumerGroupName
output IOTHUB_NAME string = deployIotHub ? iotHub.outputs.iotHubName : ''
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.keyVaultName
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.systemTopicName
// The cloud app settings as JSON (no key or connection string: the tests check), for
// scripts/postprovision.sh to turn into local.settings.json.
output MW_APP_SETTINGS_JSON string = api.outputs.appSettingsJson
