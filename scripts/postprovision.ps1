# azd postprovision hook (Windows): write local.settings.json for `func start` against the cloud
# resources. Same rules as scripts/postprovision.sh (read it for the reasons):
# identity based, no keys, local Event Hubs consumer group and Durable task hub, console logs.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')

$azd = if ($env:AZD) { $env:AZD } else { 'azd' }
$out = if ($env:MW_LOCAL_SETTINGS) { $env:MW_LOCAL_SETTINGS } else { 'local.settings.json' }
$backup = if ($env:MW_LOCAL_SETTINGS_BACKUP) { $env:MW_LOCAL_SETTINGS_BACKUP } else { '.azure/local.settings.previous.json' }

$envValues = (& $azd env get-values --output json | Out-String) | ConvertFrom-Json
if (-not $envValues.MW_APP_SETTINGS_JSON -or -not $envValues.EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP) {
    throw 'postprovision: azd outputs MW_APP_SETTINGS_JSON / EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP are missing; run `azd provision` first.'
}
$cloud = $envValues.MW_APP_SETTINGS_JSON | ConvertFrom-Json
$previous = if (Test-Path $out) { Get-Content -Raw $out } else { '' }
$previousValues = $null
if ($previous) { try { $previousValues = ($previous | ConvertFrom-Json).Values } catch { $previousValues = $null } }

$local = [ordered]@{ FUNCTIONS_WORKER_RUNTIME = 'python' }
foreach ($setting in ($cloud.PSObject.Properties | Sort-Object Name)) {
    if ($setting.Name -like '*__credential' -or $setting.Name -like '*__clientId' -or $setting.Name -like 'APPLICATIONINSIGHTS_*') {
        continue
    }
    $value = if ($null -eq $setting.Value) { '' } else { [string]$setting.Value }
    # func start cannot resolve Key Vault references.
    $local[$setting.Name] = if ($value.StartsWith('@Microsoft.KeyVault(')) { '' } else { $value }
}
$local['BLOB_TRIGGER_SOURCE'] = 'LogsAndContainerScan'
$local['EVENTHUB_CONSUMER_GROUP'] = $envValues.EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP
$local['AzureFunctionsJobHost__extensions__durableTask__hubName'] = 'meterwatchlocal'
if ($local.Contains('METERWATCH_API_KEYS')) {
    $kept = if ($previousValues) { [string]$previousValues.METERWATCH_API_KEYS } else { '' }
    if (-not $kept -or $kept.StartsWith('@Microsoft.KeyVault(')) {
        $bytes = New-Object byte[] 32
        [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
        $kept = [Convert]::ToBase64String($bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_')
    }
    $local['METERWATCH_API_KEYS'] = $kept
}
if ($local.Contains('ANOMALY_DETECTOR_KEY') -and -not $local['ANOMALY_DETECTOR_KEY']) {
    $local['ANOMALY_DETECTOR_ENDPOINT'] = ''
}
if ($local.Contains('API_PUBLIC_URL')) {  # the cloud app's address; a local host writes its own
    $local['API_PUBLIC_URL'] = ''
}

$document = [ordered]@{ IsEncrypted = $false; Values = $local } | ConvertTo-Json -Depth 5
if ($previous) {
    if ($previous.Trim() -ne $document.Trim()) {
        New-Item -ItemType Directory -Force -Path (Split-Path -Parent $backup) | Out-Null
        Copy-Item $out $backup -Force
        Write-Host "postprovision: kept the previous $out as $backup"
    }
}
Set-Content -Path $out -Value $document -Encoding utf8
Write-Host "postprovision: wrote $out ($($local.Count) settings, identity based, no keys)"
