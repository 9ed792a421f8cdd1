#!/usr/bin/env bash
# Benchmark `mta attribute --models all` against the DuckDB rule-model baseline on ROWS rows.
#
# Usage: bench/run.sh ROWS [SEED]        (env MTA_BIN: the mta binary to use;
#                                          REPEAT: runs per tool, alternating, default 3)
#
# Generates bench/data/events_<ROWS>.parquet with mta-gen if it is not there yet, runs
# target/release/mta (skipped with a message if it is not built) and bench/duckdb_rules.py,
# each under /usr/bin/time -v, prints a markdown table (wall seconds, rows/s, peak RSS) and the
# cross-check of the five rule models, and writes the same to bench/results/<ROWS>.md.
# Raw outputs (JSON results, time logs) go to bench/data/runs/<ROWS>/.
set -euo pipefail

ROWS=${1:?usage: bench/run.sh ROWS [SEED]}
SEED=${2:-42}
[[ $ROWS =~ ^[0-9]+$ ]] || { echo "ROWS must be a number, got '$ROWS'" >&2; exit 2; }

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
# The default seed keeps the plain names; another seed gets its own files.
NAME=$ROWS$([[ $SEED == 42 ]] || echo "_seed$SEED")
DATA=$BENCH/data/events_$NAME.parquet
RUNS=$BENCH/data/runs/$NAME
REPORT=$BENCH/results/$NAME.md
MTA=${MTA_BIN:-$ROOT/target/release/mta} # MTA_BIN: benchmark another build of mta
# Timings on a shared 2-core machine vary by ±10% from run to run: each tool runs REPEAT
# times, alternating with the other, and the report gives the medians.
REPEAT=${REPEAT:-3}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "REPEAT must be a positive number, got '$REPEAT'" >&2; exit 2; }
GEN=$ROOT/target/release/mta-gen
PY=$BENCH/.venv/bin/python
mkdir -p "$BENCH/data" "$RUNS" "$BENCH/results"

log() { echo "==> $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update && apt-get install -y time
fi
if [[ ! -x $PY ]] || ! "$PY" -c 'import duckdb' 2>/dev/null; then
    log "creating $BENCH/.venv with duckdb 2.x"
    python3 -m venv "$BENCH/.venv"
    "$PY" -m pip install --quiet 'duckdb>=2,<3'
fi

# --- data ----------------------------------------------------------------------------------
if [[ ! -f $DATA ]]; then
    log "building mta-gen"
    (cd "$ROOT" && cargo build --release -p mta-bench)
    log "generating $DATA"
    "$GEN" --rows "$ROWS" --seed "$SEED" --out "$DATA"
else
    log "using existing $DATA"
fi
# Read the file once so that both tools start with it in the page cache.
cat "$DATA" >/dev/null

# Share of CPU time busy over one second before the runs (from /proc/stat): other work
# (e.g. a cargo build) skews the timings.
cpu_busy_percent() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%.0f", (y[2] > x[2] ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0)
    }'
}
BUSY_BEFORE=$(cpu_busy_percent)
if ((BUSY_BEFORE > 10)); then
    log "warning: the CPUs were ${BUSY_BEFORE}% busy before the runs; timings need a quiet machine"
fi

# --- measurements --------------------------------------------------------------------------
# timed NAME CMD...: runs CMD under /usr/bin/time -v, logs to $RUNS/NAME.time; returns its status.
timed() {
    local name=$1
    shift
    /usr/bin/time -v -o "$RUNS/$name.time" "$@"
}
# wall_seconds FILE / peak_mib FILE: read /usr/bin/time -v output.
wall_seconds() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s
    }' "$1"
}
peak_mib() {
    awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"
}

MTA_OUT=$RUNS/mta.json
DUCK_OUT=$RUNS/duckdb.json
rm -f "$MTA_OUT" "$DUCK_OUT" "$RUNS"/*.time
mta_status=skipped
duck_status=ok
[[ -x $MTA ]] || log "SKIPPING mta: $MTA not found (build it with: cargo build --release --bin mta)"
for ((run = 1; run <= REPEAT; run++)); do
    if [[ -x $MTA && $mta_status =~ ^(ok|skipped)$ ]]; then
        log "mta attribute (all models), run $run of $REPEAT"
        if timed "mta.$run" "$MTA" attribute "$DATA" --models all --output "$MTA_OUT"; then
            [[ -s $MTA_OUT ]] && mta_status=ok || mta_status="failed (no $MTA_OUT written)"
        else
            mta_status="failed (exit $?, see $RUNS/mta.$run.time)"
        fi
    fi
    if [[ $duck_status == ok ]]; then
        log "duckdb rule models, run $run of $REPEAT"
        timed "duckdb.$run" "$PY" "$BENCH/duckdb_rules.py" "$DATA" "$DUCK_OUT" --threads 2 --memory-limit 4GB ||
            duck_status="failed (exit $?, see $RUNS/duckdb.$run.time)"
    fi
done

# median_wall TOOL / max_peak TOOL / all_walls TOOL: over the runs' time files.
median_wall() {
    for f in "$RUNS/$1".*.time; do wall_seconds "$f"; echo; done | sort -n |
        awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
max_peak() {
    for f in "$RUNS/$1".*.time; do peak_mib "$f"; echo; done | sort -n | tail -1
}
all_walls() {
    for f in "$RUNS/$1".*.time; do wall_seconds "$f"; echo; done | paste -sd ' ' -
}

# --- report --------------------------------------------------------------------------------
row() { # row TOOL STATUS NAME
    local tool=$1 status=$2 name=$3
    if [[ $status == ok ]]; then
        local wall
        wall=$(median_wall "$name")
        echo "| $tool | $wall | $(awk -v r="$ROWS" -v w="$wall" 'BEGIN { printf "%.0f", (w > 0 ? r / w : 0) }') | $(max_peak "$name") | $(all_walls "$name") |"
    else
        echo "| $tool | $status | | | |"
    fi
}
duck_version=$("$PY" -c 'import duckdb; print(duckdb.__version__)')
check_status=0
if [[ $mta_status == ok && $duck_status == ok ]]; then
    check=$("$PY" "$BENCH/compare.py" "$MTA_OUT" "$DUCK_OUT" --names mta duckdb) || check_status=$?
else
    check="not run (mta: $mta_status, duckdb: $duck_status)"
fi
{
    echo "# Benchmark: $ROWS rows"
    echo
    echo "- input: \`bench/data/$(basename "$DATA")\` ($(du -m "$DATA" | cut -f1) MiB, mta-gen seed $SEED)"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(free -g | awk '/Mem:/ { print $2 }') GiB RAM"
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); CPU busy before the runs: ${BUSY_BEFORE}%"
    echo
    echo "| tool | median wall s | rows/s | peak RSS MiB | runs (wall s) |"
    echo "|---|---:|---:|---:|---|"
    row "mta attribute --models all" "$mta_status" mta
    row "DuckDB $duck_version, 5 rule models, 2 threads" "$duck_status" duckdb
    echo
    if [[ $mta_status == ok && $duck_status == ok ]]; then
        ratio=$(awk -v d="$(median_wall duckdb)" -v m="$(median_wall mta)" \
            'BEGIN { printf "%.2f", (m > 0 ? d / m : 0) }')
        echo "**duckdb_time / mta_time = $ratio** (medians of $REPEAT alternating runs; > 1: mta is faster)"
        echo
    fi
    if [[ $duck_status == ok ]]; then
        q=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["query_seconds"])' "$DUCK_OUT")
        echo "DuckDB query alone (without interpreter start-up): $q s."
        echo
    fi
    echo "Cross-check of the rule models (per channel conversions and value, relative tolerance 1e-6):"
    echo
    echo '```'
    echo "$check"
    echo '```'
} | tee "$REPORT"
log "report written to $REPORT"
# Fail when a tool failed or the outputs disagree (a skipped mta is not a failure).
[[ $check_status == 0 && $duck_status == ok && $mta_status =~ ^(ok|skipped)$ ]]
