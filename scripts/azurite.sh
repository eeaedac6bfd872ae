#!/usr/bin/env bash
# Start Azurite (blob, queue, table) on 127.0.0.1 with in-memory persistence, if it is not
# already answering on the blob port. Installs it with npm (package.json) when missing.
# Usage: scripts/azurite.sh [start|stop|status]
set -euo pipefail
cd "$(dirname "$0")/.."
BLOB_PORT="${AZURITE_BLOB_PORT:-10000}"
QUEUE_PORT="${AZURITE_QUEUE_PORT:-10001}"
TABLE_PORT="${AZURITE_TABLE_PORT:-10002}"
PIDFILE=".azurite/azurite.pid"
bin="node_modules/.bin/azurite"

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$BLOB_PORT") 2>/dev/null; }

case "${1:-start}" in
  start)
    if answering; then echo "Azurite already answering on 127.0.0.1:$BLOB_PORT"; exit 0; fi
    [ -x "$bin" ] || npm install --no-audit --no-fund --silent
    mkdir -p .azurite
    nohup "$bin" --silent --inMemoryPersistence --disableTelemetry --skipApiVersionCheck \
      --blobHost 127.0.0.1 --blobPort "$BLOB_PORT" --queueHost 127.0.0.1 --queuePort "$QUEUE_PORT" \
      --tableHost 127.0.0.1 --tablePort "$TABLE_PORT" >.azurite/azurite.log 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do answering && { echo "Azurite started on 127.0.0.1:$BLOB_PORT"; exit 0; }; sleep 0.1; done
    echo "Azurite did not start; see .azurite/azurite.log" >&2; exit 1 ;;
  stop)
    [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE" ;;
  status)
    answering && echo "answering on 127.0.0.1:$BLOB_PORT" || { echo "not answering"; exit 1; } ;;
esac
