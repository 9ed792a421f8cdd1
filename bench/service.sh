#!/usr/bin/env bash
# Benchmark the whole service on one machine against `mta attribute` on the same file.
#
# Usage: [FORMAT=csv|csv.gz|parquet] [RUNS=3] [LAYOUTS="0 1 2"] [AGAIN=1] [BIN=dir] bench/service.sh ROWS
# (BIN defaults to target/release: cargo build --release --workspace)
#
# 1. `mta attribute FILE --models all` (the local baseline), timed.
# 2. One job end to end (upload → split → attribute → reduce → result, from the first byte uploaded to the result
#    downloaded) on three layouts: the all-in-one process (`mta serve --workers 1`), redis-server + mta-api + one
#    mta-worker, and mta-api + two mta-worker processes (default concurrency each). Each stage's time comes from
#    the job timeline (first start to last end of its units); "waiting" is what the end-to-end time has beyond
#    the upload and the three stages (hand-overs, polling, the result download), and the peak RSS of each of the
#    service's processes (redis-server aside). LAYOUTS picks some of them: 0 all-in-one, 1 and 2 worker processes.
#    Then AGAIN further jobs (default 1) on each layout's service, each at once, on the same upload (a service
#    kept busy: the memory the job before freed is still warm; docs/benchmarks.md, "2026-12-07 (midnight)"), with the
#    processes' RSS after each: AGAIN=10 shows whether a process's memory keeps growing from job to job.
# 3. The attribute stage with 1 and with 2 worker processes of concurrency 1 each (the horizontal scaling
#    figure), measured from the job timeline, alternating, median of RUNS runs of each (default 3; 0 skips it),
#    with each run's units per process and their median time.
# Prints a markdown table and writes it to bench/results/service_<FORMAT>_<ROWS>.md.
set -euo pipefail

ROWS=${1:?usage: bench/service.sh ROWS}
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
BIN=${BIN:-$ROOT/target/release}
FORMAT=${FORMAT:-csv}
DATA=$BENCH/data/events_$ROWS.$FORMAT
REPORT=$BENCH/results/service_${FORMAT}_$ROWS.md
mkdir -p "$BENCH/data" "$BENCH/results"
for exe in mta mta-api mta-worker mta-gen; do
    [[ -x $BIN/$exe ]] || { echo "build first: cargo build --release --workspace ($exe missing)" >&2; exit 2; }
done
if [[ ! -f $DATA && $FORMAT == csv.gz ]]; then
    CSV=$BENCH/data/events_$ROWS.csv
    [[ -f $CSV ]] || "$BIN/mta-gen" --rows "$ROWS" --format csv --out "$CSV"
    gzip -c "$CSV" > "$DATA.tmp" && mv "$DATA.tmp" "$DATA"
fi
[[ -f $DATA ]] || "$BIN/mta-gen" --rows "$ROWS" --format "$FORMAT" --out "$DATA"

WORK=$(mktemp -d)
PIDS=()
SERVICE_PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts redis + api + N worker processes with worker concurrency C (N = 0: the all-in-one
# `mta serve --workers 1` instead of mta-api and mta-worker); sets BASE and RUN_DIR.
start_service() {
    local workers=$1 concurrency=$2 dir=$WORK/run$RANDOM
    RUN_DIR=$dir
    mkdir -p "$dir"
    local rport aport
    rport=$(free_port); aport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
    PIDS+=($!)
    export REDIS_URL=redis://127.0.0.1:$rport MTA_STORE=file://$dir/store MTA_BIND=127.0.0.1:$aport RUST_LOG=warn
    export MTA_WORKER_CONCURRENCY=$concurrency
    # The job is polled every 50 ms and run many times: quotas must not be what is measured.
    export MTA_RATE_LIMIT_PER_HOUR=100000000 MTA_RATE_LIMIT_GLOBAL_PER_MINUTE=0
    sleep 0.3
    if [[ $workers == 0 ]]; then
        MTA_DATA_DIR=$dir MTA_WORKER_BIND=127.0.0.1:$(free_port) "$BIN/mta" serve --workers 1 & SERVICE_PIDS=($!)
    else
        "$BIN/mta-api" & SERVICE_PIDS=($!)
        # Each worker process has its own health and metrics port.
        for _ in $(seq "$workers"); do MTA_WORKER_BIND=127.0.0.1:$(free_port) "$BIN/mta-worker" & SERVICE_PIDS+=($!); done
    fi
    PIDS+=("${SERVICE_PIDS[@]}")
    BASE=http://127.0.0.1:$aport
    until curl -sf "$BASE/health/live" >/dev/null; do sleep 0.05; done
    AUTH="Authorization: Bearer $(new_key)"
}

# A submit key for tenant `bench`, made straight in Redis as an operator would.
new_key() {
    "$BIN/mta" keys create --tenant bench --role submit --name bench --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# Each service process's FIELD of /proc/PID/status (VmRSS now, VmHWM its peak) in MiB, in start order.
service_memory() {
    for pid in "${SERVICE_PIDS[@]}"; do awk -v field="$1:" '$1 == field { printf "%d ", $2 / 1024 }' "/proc/$pid/status"; done
}

# Each run's store goes with its service. Left behind, every run's upload stayed in the page cache
# and each later run wrote and allocated into memory the machine had not touched lately, which
# on a VM costs about 2 ns a byte: the runs measured last (2 worker processes) took up to half as
# long again as on a clean store (docs/benchmarks.md, "2026-12-07 (afternoon)").
# Sets PEAK_RSS to each service process's peak RSS in MiB, in start order (the API first), read before it stops.
stop_service() {
    PEAK_RSS=$(service_memory VmHWM)
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    rm -rf "$RUN_DIR"
}

# Uploads, submits, waits; prints "total_seconds upload_seconds job_id upload_id".
run_job() {
    local t0 t1 upload job
    t0=$(now)
    upload=$(curl -sf -X POST -H "$AUTH" -H "Expect:" -T "$DATA" "$BASE/v1/uploads" | python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_id"])')
    t1=$(now)
    read -r _ job < <(job_on "{\"upload_id\":\"$upload\"}")
    echo "$(echo "$(now) - $t0" | bc) $(echo "$t1 - $t0" | bc) $job $upload"
}

# Submits the job spec SPEC (JSON), waits for it and downloads its result; prints "seconds job_id".
job_on() {
    local t0 job
    t0=$(now)
    job=$(curl -sf -H "$AUTH" -H 'content-type: application/json' -d "$1" "$BASE/v1/jobs" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    # One process polls every 50 ms over one kept-alive connection: a new curl (or Python)
    # process per poll would take a good part of a core from the workers being measured.
    python3 - "$BASE" "$AUTH" "$job" <<'PY' || exit 1
import http.client, json, sys, time, urllib.parse
base, auth, job = sys.argv[1:]
url = urllib.parse.urlsplit(base)
connection = http.client.HTTPConnection(url.hostname, url.port)
name, value = auth.split(": ", 1)
while True:
    connection.request("GET", f"/v1/jobs/{job}", headers={name: value})
    state = json.loads(connection.getresponse().read())["state"]
    if state == "succeeded":
        break
    if state in ("failed", "cancelled"):
        sys.exit(f"job {state}")
    time.sleep(0.05)
PY
    curl -sf -H "$AUTH" "$BASE/v1/jobs/$job/result" >/dev/null
    echo "$(echo "$(now) - $t0" | bc) $job"
}

# Seconds from the first start to the last end of the units of stage STAGE (split, attribute, reduce) in a job's
# timeline (its per-stage spans, counted over every entry: the list itself keeps the latest 1,000); the reduce
# stage ends when the job succeeds (its unit's end is logged later, once the chunk files are deleted).
stage_seconds() {
    local job_json
    job_json=$(curl -sf -H "$AUTH" "$BASE/v1/jobs/$1")
    curl -sf -H "$AUTH" "$BASE/v1/jobs/$1/timeline" | python3 -c "
import datetime, json, sys
span = json.load(sys.stdin)['stages']['$2']
if '$2' == 'reduce':
    finished = datetime.datetime.fromisoformat(json.loads(sys.argv[1])['finished_at'].replace('Z', '+00:00'))
    last = finished.timestamp() * 1000
else:
    last = span['last_end_ms']
print(round((last - span['first_start_ms']) / 1000, 3))" "$job_json"
}

echo "==> mta attribute (local baseline)" >&2
t0=$(now)
/usr/bin/time -f %M -o "$WORK/local_rss" "$BIN/mta" attribute "$DATA" --models all >/dev/null
LOCAL=$(echo "$(now) - $t0" | bc); LOCAL_RSS=$(( $(tail -1 "$WORK/local_rss") / 1024 ))

# One job end to end on a layout (see start_service); appends a table row to ROWS_MD.
ROWS_MD=""
AGAIN_MD=""
end_to_end() {
    local label=$1 workers=$2 total upload job upload_id split attribute reduce waiting again seconds again_job rss
    echo "==> service: $label" >&2
    start_service "$workers" "$(nproc)"
    read -r total upload job upload_id < <(run_job)
    split=$(stage_seconds "$job" split); attribute=$(stage_seconds "$job" attribute); reduce=$(stage_seconds "$job" reduce)
    waiting=$(echo "$total - $upload - $split - $attribute - $reduce" | bc)
    # The same upload again at once, AGAIN times (default 1), under specs the result cache does not
    # answer (a path limit one higher each time: the same work). On this VM, memory the host has
    # not lent the guest lately costs 1.5-3 ns a byte to touch the first time, and the first job
    # writes its split's object into such memory; the next ones write into what the one before
    # freed (docs/benchmarks.md, "2026-12-07 (midnight)"). The RSS column is each process's after the job.
    for again in $(seq "${AGAIN:-1}"); do
        read -r seconds again_job < <(job_on "{\"upload_id\":\"$upload_id\",\"options\":{\"max_report_paths\":$((100000 + again))}}")
        rss=$(service_memory VmRSS)
        AGAIN_MD+="| $label | $((again + 1)) | $seconds | $(echo "scale=2; ($upload + $seconds) / $LOCAL" | bc) | $(stage_seconds "$again_job" split) | $(stage_seconds "$again_job" attribute) | $(stage_seconds "$again_job" reduce) | ${rss% } |"$'\n'
    done
    stop_service
    ROWS_MD+="| $label | $total | $(echo "scale=2; $total / $LOCAL" | bc) | $upload | $split | $attribute | $reduce | $waiting | ${PEAK_RSS% } |"$'\n'
}
for layout in ${LAYOUTS:-0 1 2}; do
    case $layout in
        0) end_to_end "all-in-one (mta serve --workers 1)" 0 ;;
        1) end_to_end "mta-api + 1 mta-worker" 1 ;;
        2) end_to_end "mta-api + 2 mta-worker processes" 2 ;;
        *) echo "LAYOUTS: 0, 1 or 2, not $layout" >&2; exit 2 ;;
    esac
done

# The attribute stage with 1 and with 2 worker processes of one slot each, alternating, RUNS runs
# of each (this machine's speed drifts over minutes: runs of one layout after the other's
# compared two different machines); medians, and each run's times.
RUNS=${RUNS:-3}
# Prints the attribute stage's seconds, then how its units fell on the worker processes: each
# process's unit count and median unit time (ms), from the job timeline's entries. A spread
# of the stage's time with balanced counts and steady gaps is in the units' own times: two
# processes slow each other down on this machine's shared cache and memory.
attribute_seconds() {
    local job
    start_service "$1" 1; read -r _ _ job _ < <(run_job)
    echo "$(stage_seconds "$job" attribute) $(unit_balance "$job")"
    stop_service
}
unit_balance() {
    curl -sf -H "$AUTH" "$BASE/v1/jobs/$1/timeline" | python3 -c "
import collections, json, statistics, sys
started, units = {}, collections.defaultdict(list)
for entry in json.load(sys.stdin)['events']:
    if not entry['unit'].startswith('attribute:'):
        continue
    process = entry['worker'].rsplit('-', 1)[0]
    if entry['event'] == 'start':
        started[entry['unit']] = entry['at_ms']
    elif entry['event'] == 'end' and entry['unit'] in started:
        units[process].append(entry['at_ms'] - started.pop(entry['unit']))
counts = '/'.join(str(len(times)) for times in units.values())
medians = '/'.join(str(round(statistics.median(times))) for times in units.values())
print(f'{counts}:{medians}')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ONE=(); TWO=(); ONE_UNITS=(); TWO_UNITS=()
for run in $(seq "$RUNS"); do
    echo "==> attribute stage, run $run of $RUNS: 1, then 2 worker processes x concurrency 1" >&2
    read -r seconds units < <(attribute_seconds 1); ONE+=("$seconds"); ONE_UNITS+=("$units")
    read -r seconds units < <(attribute_seconds 2); TWO+=("$seconds"); TWO_UNITS+=("$units")
done

scaling_table() {
    local one two
    one=$(median "${ONE[@]}"); two=$(median "${TWO[@]}")
    echo
    echo "| attribute stage | seconds | ratio |"
    echo "|---|---:|---:|"
    echo "| 1 worker process × 1 slot (median of $RUNS) | $one | 1.00 |"
    echo "| 2 worker processes × 1 slot (median of $RUNS) | $two | $(echo "scale=2; $one / $two" | bc) × faster |"
    echo
    echo "Each run (1 worker process / 2): $(for i in "${!ONE[@]}"; do printf '%s / %s (%s×)  ' "${ONE[$i]}" "${TWO[$i]}" "$(echo "scale=2; ${ONE[$i]} / ${TWO[$i]}" | bc)"; done)"
    echo
    echo "Units per process and their median ms (1 worker process / 2): $(for i in "${!ONE[@]}"; do
        printf '%s units, %s ms / %s units, %s ms;  ' "${ONE_UNITS[$i]%%:*}" "${ONE_UNITS[$i]#*:}" "${TWO_UNITS[$i]%%:*}" "${TWO_UNITS[$i]#*:}"
    done)"
}

{
    echo "## Service on $ROWS $FORMAT rows ($(du -hL "$DATA" | cut -f1)), $(nproc) cores"
    echo
    echo "\`mta attribute --models all\` (local): $LOCAL s, peak RSS $LOCAL_RSS MiB"
    echo
    echo "| layout | end to end (s) | ÷ local | upload | split | attribute | reduce | waiting | peak RSS MiB (API first) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s' "$ROWS_MD"
    if [[ -n $AGAIN_MD ]]; then
        echo
        echo "Further jobs on the same service, each as soon as the one before ended (the same upload, under a spec"
        echo "the result cache does not answer): seconds from submit to result, ÷ local with the first job's upload"
        echo "added, and each service process's RSS after the job (API first)."
        echo
        echo "| layout | job | seconds | ÷ local (+ upload) | split | attribute | reduce | RSS MiB after |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        printf '%s' "$AGAIN_MD"
    fi
    if (( RUNS > 0 )); then scaling_table; fi
} | tee "$REPORT"
