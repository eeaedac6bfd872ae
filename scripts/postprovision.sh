#!/bin/sh
# azd postprovision hook: write local.settings.json for `func start` against the cloud resources.
#
# It starts from the app settings the templates gave the cloud app (azd output
# MW_APP_SETTINGS_JSON: no key or connection string) and adapts them to a developer machine:
#   - no __credential/__clientId: locally the host and the SDKs use your own Entra ID login
#     (az login / azd auth login), which provisioning granted the same data roles (rbac.bicep);
#   - no APPLICATIONINSIGHTS_*: local logs go to the console;
#   - BLOB_TRIGGER_SOURCE=LogsAndContainerScan: Event Grid cannot call a laptop;
#   - EVENTHUB_CONSUMER_GROUP=<the local-debug group>, and a task hub of its own for Durable
#     Functions, so the laptop never takes partitions or work items from the cloud app;
#   - Key Vault references (func start cannot resolve them): METERWATCH_API_KEYS gets a random
#     local key (kept across runs), ANOMALY_DETECTOR_KEY and its endpoint are emptied.
# An existing local.settings.json (for example the Azurite one) is kept as
# .azure/local.settings.previous.json.
#
# Environment (for tests): AZD (default azd), MW_LOCAL_SETTINGS (default ./local.settings.json),
# MW_LOCAL_SETTINGS_BACKUP (default ./.azure/local.settings.previous.json).
set -eu

cd "$(dirname "$0")/.."

AZD="${AZD:-azd}"
OUT="${MW_LOCAL_SETTINGS:-local.settings.json}"
BACKUP="${MW_LOCAL_SETTINGS_BACKUP:-.azure/local.settings.previous.json}"

if [ -x .venv/bin/python ]; then
    PYTHON=.venv/bin/python
else
    PYTHON=python3
fi

values="$(mktemp)"
trap 'rm -f "$values"' EXIT
"$AZD" env get-values --output json >"$values"

"$PYTHON" - "$values" "$OUT" "$BACKUP" <<'PY'
import json
import os
import secrets
import shutil
import sys

values_path, out_path, backup_path = sys.argv[1:4]
with open(values_path, encoding="utf-8") as handle:
    env = json.load(handle)

missing = [k for k in ("MW_APP_SETTINGS_JSON", "EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP") if not env.get(k)]
if missing:
    sys.exit(f"postprovision: azd outputs {missing} are missing; run `azd provision` first.")

previous = ""
previous_values = {}
if os.path.exists(out_path):
    with open(out_path, encoding="utf-8") as handle:
        previous = handle.read()
    try:
        previous_values = json.loads(previous).get("Values", {})
    except ValueError:
        previous_values = {}

def is_key_vault_reference(value):
    return str(value).startswith("@Microsoft.KeyVault(")

cloud = json.loads(env["MW_APP_SETTINGS_JSON"])
local = {"FUNCTIONS_WORKER_RUNTIME": "python"}
for name, value in sorted(cloud.items()):
    if name.endswith(("__credential", "__clientId")) or name.startswith("APPLICATIONINSIGHTS_"):
        continue
    value = "" if value is None else str(value)
    local[name] = "" if is_key_vault_reference(value) else value
local["BLOB_TRIGGER_SOURCE"] = "LogsAndContainerScan"
local["EVENTHUB_CONSUMER_GROUP"] = env["EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP"]
local["AzureFunctionsJobHost__extensions__durableTask__hubName"] = "meterwatchlocal"
if "METERWATCH_API_KEYS" in local:
    kept = str(previous_values.get("METERWATCH_API_KEYS", ""))
    usable = kept and not is_key_vault_reference(kept)
    local["METERWATCH_API_KEYS"] = kept if usable else secrets.token_urlsafe(32)
if "ANOMALY_DETECTOR_KEY" in local and not local["ANOMALY_DETECTOR_KEY"]:
    local["ANOMALY_DETECTOR_ENDPOINT"] = ""
if "API_PUBLIC_URL" in local:  # the cloud app's address; a local host writes its own
    local["API_PUBLIC_URL"] = ""

document = json.dumps({"IsEncrypted": False, "Values": local}, indent=2) + "\n"
if previous:
    if previous != document:
        os.makedirs(os.path.dirname(backup_path) or ".", exist_ok=True)
        shutil.copyfile(out_path, backup_path)
        print(f"postprovision: kept the previous {out_path} as {backup_path}")
with open(out_path, "w", encoding="utf-8") as handle:
    handle.write(document)
print(f"postprovision: wrote {out_path} ({len(local)} settings: identity based, no cloud keys)")
PY
