// The one storage account: the Functions host (blobs, queues and tables for Durable Functions,
// Event Hubs checkpoints, blob receipts), the app's containers, and the Flex Consumption
// deployment package. Shared keys are disabled: everything authenticates with Entra ID.

@description('Azure region of the storage account.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Containers the app reads and writes (one per *_CONTAINER app setting).')
param appContainerNames array

@description('Container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Days a deleted blob or container can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The account must be reachable without a VNet: Flex Consumption without VNet integration, Event Grid and a developer's func start all use the public endpoint. Access is Entra ID only (allowSharedKeyAccess false, no anonymous blobs).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: publicNetworkAccess stays Enabled because this deployment has no VNet or private endpoints; no request succeeds without an Entra ID token and an RBAC role.
  // checkov:skip=CKV_AZURE_206: LRS keeps the cost at rest low. Raw telemetry can be replayed from the Event Hub within its retention and results are recomputed by detection; choose GRS/GZRS for production data if needed.
  // checkov:skip=CKV_AZURE_43: False positive: checkov reads the parameter's symbol, not its value. main.bicep builds the name as 'st' + uniqueString() (15 lowercase letters and digits), and @minLength/@maxLength bound it.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource appContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in appContainerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output storageAccountName string = storage.name
output storageAccountId string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
