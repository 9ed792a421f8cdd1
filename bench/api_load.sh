#!/usr/bin/env bash
# Load test of `GET /v1/jobs/{id}` with wrk on loopback (needs a release build and `wrk`).
#
# Usage: bench/api_load.sh [SECONDS] [CONNECTIONS]
# Starts redis-server, one mta-api and one mta-worker, runs the shipped sample to completion,
# then lets wrk (2 threads) hammer the job's status for SECONDS (default 15) over CONNECTIONS
# (default 64) connections, and prints requests/s and the latency percentiles.
set -euo pipefail
SECONDS_=${1:-15}
CONNECTIONS=${2:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
command -v wrk >/dev/null || { echo "install wrk first (apt-get install wrk)" >&2; exit 2; }
WORK=$(mktemp -d); PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); APORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null & PIDS+=($!)
export REDIS_URL=redis://127.0.0.1:$RPORT MTA_STORE=file://$WORK/store MTA_BIND=127.0.0.1:$APORT RUST_LOG=warn
# Every request is authenticated and counted against the key's quota (a Redis round trip
# each, as in production); the quota itself is set high enough not to refuse the load.
export MTA_RATE_LIMIT_PER_HOUR=1000000000 MTA_RATE_LIMIT_GLOBAL_PER_MINUTE=0
sleep 0.3
"$BIN/mta-api" & PIDS+=($!)
MTA_WORKER_BIND=127.0.0.1:$(free_port) "$BIN/mta-worker" & PIDS+=($!)
BASE=http://127.0.0.1:$APORT
until curl -sf "$BASE/health/live" >/dev/null; do sleep 0.05; done
KEY=$("$BIN/mta" keys create --tenant bench --role submit --name load --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
AUTH="Authorization: Bearer $KEY"
UPLOAD=$(curl -sf -H "$AUTH" --data-binary @"$ROOT/samples/events.csv" "$BASE/v1/uploads" | python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_id"])')
JOB=$(curl -sf -H "$AUTH" -H 'content-type: application/json' -d "{\"upload_id\":\"$UPLOAD\"}" "$BASE/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
until curl -sf -H "$AUTH" "$BASE/v1/jobs/$JOB" | grep -q '"succeeded"'; do sleep 0.1; done
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_}s" --latency -H "$AUTH" "$BASE/v1/jobs/$JOB"
