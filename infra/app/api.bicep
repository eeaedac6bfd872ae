// The function app on the Flex Consumption plan (FC1), Python 3.11, with a user-assigned managed
// identity. App settings hold no key and no connection string: storage and Event Hubs are
// identity based (<Connection>__serviceUri / __fullyQualifiedNamespace, __credential, __clientId)
// and Application Insights ingestion uses Entra ID. FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not app settings on Flex Consumption: functionAppConfig.runtime
// sets them.

@description('Azure region of the plan and the app.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('azd service name in azure.yaml that deploys to this app.')
param serviceName string = 'api'

@description('Function app name (also its host name: <name>.azurewebsites.net).')
param functionAppName string

@description('Flex Consumption plan name.')
param planName string

@description('Storage account of the host and the app.')
param storageAccountName string

@description('Container that holds the deployment package.')
param deploymentContainerName string

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('Application Insights component the app reports to.')
param applicationInsightsName string

@description('Fully qualified Event Hubs namespace (<name>.servicebus.windows.net).')
param eventHubFullyQualifiedNamespace string

@description('The app\'s own settings (every setting shared.settings reads that is not host or identity configuration).')
param appSettings object

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Host and identity settings; the app's own settings come from main.bicep (appSettings).
var hostSettings = {
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  EventHubConnection__fullyQualifiedNamespace: eventHubFullyQualifiedNamespace
  EventHubConnection__credential: 'managedidentity'
  EventHubConnection__clientId: identityClientId
  // The alerts' output binding (the anomalies hub, same namespace, same identity).
  AnomaliesConnection__fullyQualifiedNamespace: eventHubFullyQualifiedNamespace
  AnomaliesConnection__credential: 'managedidentity'
  AnomaliesConnection__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}
var siteSettings = union(hostSettings, appSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is not offered in every Flex Consumption region, so enabling it by default would make azd up fail there; opt in with zoneRedundant where the region supports it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The app must be publicly reachable: Event Grid delivers BlobCreated events to its blob-extension webhook, and there is no VNet in this deployment. Every endpoint needs a key (system or function).
  // checkov:skip=CKV_AZURE_17: Event Grid webhook deliveries carry no client certificate; calls are authorized by the blobs_extension system key instead, so requiring client certificates would stop the blob trigger.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero and replaces failed instances itself; a minimum (always-ready) instance count would be billed at rest. Add alwaysReady per function group when latency matters more than cost.
  // checkov:skip=CKV_AZURE_213: App Service health check pulls instances from a pool of always-on workers; Flex Consumption instances are event-driven and managed (and scaled to zero) by the platform, which offers no health check setting.
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (the app's secrets) resolve with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(siteSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployments authenticate with Entra ID (azd uses a token), so basic (publishing profile)
// credentials are switched off for both FTP and the SCM site.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output functionAppName string = functionApp.name
output functionAppHostName string = functionApp.properties.defaultHostName
// Every app setting as JSON, for local.settings.json (scripts/postprovision.sh); none is a secret.
output appSettingsJson string = string(siteSettings)
