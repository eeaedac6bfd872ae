// Key Vault for the app's own secrets: the v1.1 REST API keys and, when configured, the key of a
// remote v1.1 endpoint. The app settings hold Key Vault references
// (@Microsoft.KeyVault(SecretUri=...)) that the platform resolves with the app's identity, which
// holds Key Vault Secrets User on this vault only (rbac.bicep). Access is RBAC only: no access
// policies, no vault keys.

@description('Azure region of the vault.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Key Vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param keyVaultName string

@secure()
@description('Comma-separated keys accepted by the v1.1 REST API (METERWATCH_API_KEYS).')
param apiKeys string

@secure()
@description('Key of the remote v1.1 endpoint (ANOMALY_DETECTOR_KEY); empty for none.')
param anomalyDetectorKey string = ''

@description('Days a deleted vault or secret can be recovered.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: No VNet in this deployment: the platform resolves the app's Key Vault references over the public endpoint. Access is Entra ID RBAC only (Key Vault Secrets User for the app identity, no access policies).
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access stays enabled because there are no private endpoints; every request still needs an Entra ID token and an RBAC role on this vault.
  // checkov:skip=CKV_AZURE_110: Purge protection is off so that `azd down --purge` can remove the vault and a later `azd up` of the same environment can reuse its name; soft delete still keeps deleted secrets recoverable for the retention period.
  // checkov:skip=CKV_AZURE_42: Soft delete is on (softDeleteRetentionInDays); the check also requires purge protection, which is off for the reason given for CKV_AZURE_110.
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: API keys are rotated by provisioning a new value (azd env / parameter); an expiry date would lock every API client out when it passes, with nothing in the app to renew it.
  parent: vault
  name: 'meterwatch-api-keys'
  properties: {
    value: apiKeys
    contentType: 'text/plain; comma-separated API keys'
  }
}

resource anomalyDetectorKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(anomalyDetectorKey)) {
  // checkov:skip=CKV_AZURE_41: The remote endpoint's key expires on its issuer's schedule, not ours; an expiry date here would only stop detection early. Rotate by provisioning the new key.
  // checkov:skip=CKV_AZURE_114: False positive: contentType is set below; checkov does not read the properties of a resource declared with an if () condition.
  parent: vault
  name: 'anomaly-detector-key'
  properties: {
    value: anomalyDetectorKey
    contentType: 'text/plain; remote v1.1 endpoint key'
  }
}

output keyVaultName string = vault.name
// Versionless secret URIs: a Key Vault reference follows the latest version of the secret.
output apiKeysSecretUri string = apiKeysSecret.properties.secretUri
output anomalyDetectorKeySecretUri string = empty(anomalyDetectorKey) ? '' : anomalyDetectorKeySecret.properties.secretUri
