#!/usr/bin/env bash
# Create or update .venv-tools (checkov for the infra tests) from requirements-tools.txt.
# Idempotent: does nothing when the venv already matches the requirements file.
# Usage: scripts/tools-venv.sh [PYTHON]   (default: python3; honours $PY too)
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${1:-${PY:-python3}}"
VENV=.venv-tools
REQ=requirements-tools.txt
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && -x "$VENV/bin/checkov" ]] && cmp -s "$REQ" "$STAMP"; then
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/checkov" --version >/dev/null
cp "$REQ" "$STAMP"
echo "$VENV ready: checkov $("$VENV/bin/checkov" --version)"
