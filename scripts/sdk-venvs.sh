#!/usr/bin/env bash
# Create .venv-sdk/<release> for every azure-ai-anomalydetector release in requirements-sdk.txt,
# so the SDK tests can drive each release's own client against `meterwatch serve`.
# Idempotent: does nothing when the venvs already match the file.
# Usage: scripts/sdk-venvs.sh [PYTHON]   (default: python3; honours $PY too)
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${1:-${PY:-python3}}"
ROOT=.venv-sdk
REQ=requirements-sdk.txt
STAMP="$ROOT/.installed"

if [[ -f "$STAMP" ]] && cmp -s "$REQ" "$STAMP"; then
    exit 0
fi
mkdir -p "$ROOT"
grep -v '^\s*#' "$REQ" | while read -r release extras; do
    [[ -z "$release" ]] && continue
    venv="$ROOT/$release"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$PY" -m venv "$venv"
    fi
    # shellcheck disable=SC2086  # extras is a space-separated package list
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "azure-ai-anomalydetector==$release" requests $extras
    "$venv/bin/python" -c "import azure.ai.anomalydetector as sdk; assert sdk.__version__ == '$release', sdk.__version__"
    echo "$venv ready: azure-ai-anomalydetector $release"
done
cp "$REQ" "$STAMP"
