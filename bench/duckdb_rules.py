#!/usr/bin/env python3
"""DuckDB baseline for the `mta` benchmark: the five rule-based attribution models in SQL.

Reads an event-level Parquet, CSV or NDJSON file (columns user_id, timestamp, channel, conversion,
conversion_value) and computes first_touch, last_touch, linear, position_based (0.4/0.2/0.4)
and time_decay (half-life 7 days) per channel, following DESIGN.md 2.4:

* per user, events are ordered by timestamp, touches before conversions at equal timestamps,
  then file order (the Parquet row number);
* each conversion closes a journey made of the user's touches since the user's previous
  conversion that lie within the lookback window (touch time >= conversion time - 30 days);
* a conversion with no touch in its journey is unattributed: counted, never credited.

Writes JSON:
  {"models": {"<model>": {"<channel>": {"conversions": x, "value": y}, ...}, ...},
   "summary": {"conversions", "conversion_value", "attributed_conversions",
               "attributed_value", "unattributed_conversions", "unattributed_value",
               "journey_touches"},
   "engine": {...}, "query_seconds": t}

Usage: duckdb_rules.py EVENTS.parquet OUT.json [--threads 2] [--memory-limit 4GB]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import duckdb

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")

# One pipeline: number every event with its journey, attach each conversion's in-window
# touches, position them within the journey, then give every touch its credit under each model.
# `$lookback_us` = 0 means an unlimited window. Timestamps are compared as epoch microseconds,
# so no time zone or calendar arithmetic is involved.
QUERY = """
WITH events AS NOT MATERIALIZED (
    SELECT CAST(user_id AS VARCHAR)          AS user_id,
           {ts_us}                           AS ts_us,
           channel,
           {conversion}                      AS conversion,
           coalesce(CAST(conversion_value AS DOUBLE), 0.0) AS value,
           {row_no}                          AS row_no
    FROM {source}
),
-- Only users who convert can have a converting journey: skip everyone else early.
converting_users AS (
    SELECT DISTINCT user_id FROM events WHERE conversion
),
-- journey_no = number of the user's conversions strictly before this event in journey order
-- (timestamp, touches before conversions, file order). A conversion with journey_no k closes
-- the journey of the touches with journey_no k.
sequenced AS (
    SELECT *,
           sum(conversion::INTEGER) OVER (
               PARTITION BY user_id
               ORDER BY ts_us, conversion, row_no
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) - conversion::INTEGER AS journey_no
    FROM events
    WHERE user_id IN (SELECT user_id FROM converting_users)
),
conversions AS (
    SELECT user_id, journey_no, ts_us AS conversion_us, value
    FROM sequenced
    WHERE conversion
),
touches AS (
    SELECT user_id, journey_no, ts_us, row_no, channel
    FROM sequenced
    WHERE NOT conversion
),
-- One row per touch of a converting journey, plus one row (without touch) per conversion
-- that has no touch in its window.
journey_touches AS (
    SELECT c.user_id, c.journey_no, c.conversion_us, c.value,
           t.channel, t.ts_us, t.row_no,
           t.ts_us IS NOT NULL AS attributed
    FROM conversions c
    LEFT JOIN touches t
           ON t.user_id = c.user_id
          AND t.journey_no = c.journey_no
          AND ($lookback_us = 0 OR t.ts_us >= c.conversion_us - $lookback_us)
),
positioned AS (
    SELECT channel, value, attributed,
           row_number() OVER journey AS pos,
           count(*) OVER (PARTITION BY user_id, journey_no) AS n,
           pow(2.0, -(conversion_us - ts_us) / $half_life_us) AS decay,
           sum(decay) OVER (PARTITION BY user_id, journey_no) AS decay_total
    FROM journey_touches
    WINDOW journey AS (PARTITION BY user_id, journey_no ORDER BY ts_us, row_no)
),
credits AS (
    SELECT channel, value, attributed,
           (pos = 1)::DOUBLE AS first_touch,
           (pos = n)::DOUBLE AS last_touch,
           1.0 / n AS linear,
           CASE WHEN n = 1 THEN 1.0
                WHEN n = 2 THEN 0.5
                WHEN pos = 1 OR pos = n THEN 0.4
                ELSE 0.2 / (n - 2)
           END AS position_based,
           coalesce(decay / decay_total, 1.0) AS time_decay
    FROM positioned
)
SELECT attributed, channel,
       count(*)                      AS touches,
       sum(first_touch)              AS first_touch_conversions,
       sum(first_touch * value)      AS first_touch_value,
       sum(last_touch)               AS last_touch_conversions,
       sum(last_touch * value)       AS last_touch_value,
       sum(linear)                   AS linear_conversions,
       sum(linear * value)           AS linear_value,
       sum(position_based)           AS position_based_conversions,
       sum(position_based * value)   AS position_based_value,
       sum(time_decay)               AS time_decay_conversions,
       sum(time_decay * value)       AS time_decay_value
FROM credits
GROUP BY attributed, channel
ORDER BY attributed, channel
"""

US_PER_DAY = 86_400 * 1_000_000


def events_sql(con: duckdb.DuckDBPyConnection, path: str) -> dict[str, str]:
    """The parts of the `events` CTE for this file's column types, read as `mta` reads them:
    any timestamp type or date; epoch numbers in seconds, milliseconds or microseconds by
    magnitude (as `mta` decides per value); ISO 8601 strings; flags as booleans, numbers (0/1)
    or words. CSV and NDJSON have no `file_row_number`: rows are numbered in file order by a
    window over an order-preserving scan."""
    csv = path.endswith((".csv", ".csv.gz"))
    ndjson = path.endswith((".ndjson", ".jsonl"))
    path = path.replace("'", "''")
    if csv:
        source = f"read_csv('{path}', header = true)"
    elif ndjson:
        source = f"read_json('{path}', format = 'newline_delimited')"
    else:
        source = f"read_parquet('{path}', file_row_number = true)"
    types = {name: kind.upper() for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    ts, flag = types["timestamp"], types["conversion"]
    if ts.startswith(("TIMESTAMP", "DATE")):
        ts_us = 'epoch_us(CAST("timestamp" AS TIMESTAMP))'
    elif ts == "VARCHAR":
        ts_us = 'epoch_us(CAST("timestamp" AS TIMESTAMPTZ))'
    else:
        ts_us = (
            'CAST(CASE WHEN abs("timestamp") < 1e11 THEN "timestamp" * 1e6 '
            'WHEN abs("timestamp") < 1e14 THEN "timestamp" * 1e3 ELSE "timestamp" END AS BIGINT)'
        )
    if flag == "BOOLEAN":
        conversion = "conversion"
    elif flag == "VARCHAR":
        conversion = "lower(trim(conversion)) IN ('1', 'true', 't', 'yes', 'y', '1.0')"
    else:
        conversion = "conversion <> 0"
    row_no = "row_number() OVER ()" if csv or ndjson else "file_row_number"
    return {"source": source, "ts_us": ts_us, "conversion": conversion, "row_no": row_no}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="event-level Parquet, CSV (.csv, .csv.gz) or NDJSON (.ndjson, .jsonl) file")
    parser.add_argument("output", help="JSON file to write")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--lookback-days", type=float, default=30.0, help="0 = unlimited")
    parser.add_argument("--half-life-days", type=float, default=7.0)
    parser.add_argument(
        "--temp-dir",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "duckdb_tmp"),
        help="where DuckDB may spill",
    )
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET memory_limit = ?", [args.memory_limit])
    con.execute("SET temp_directory = ?", [args.temp_dir])
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")

    parts = events_sql(con, args.input)
    if parts["row_no"] != "file_row_number":
        con.execute("SET preserve_insertion_order = true")
    started = time.perf_counter()
    rows = con.execute(
        QUERY.format(**parts),
        {
            "lookback_us": int(args.lookback_days * US_PER_DAY),
            "half_life_us": args.half_life_days * US_PER_DAY,
        },
    ).fetchall()
    query_seconds = time.perf_counter() - started

    models: dict[str, dict[str, dict[str, float]]] = {m: {} for m in MODELS}
    summary = {
        "conversions": 0.0,
        "conversion_value": 0.0,
        "attributed_conversions": 0.0,
        "attributed_value": 0.0,
        "unattributed_conversions": 0.0,
        "unattributed_value": 0.0,
        "journey_touches": 0,
    }
    for attributed, channel, touches, *sums in rows:
        # On the rows of unattributed conversions every model's credit is 1 per conversion.
        conversions, value = sums[0], sums[1]
        summary["conversions"] += conversions
        summary["conversion_value"] += value
        if not attributed:
            summary["unattributed_conversions"] += conversions
            summary["unattributed_value"] += value
            continue
        summary["attributed_conversions"] += conversions
        summary["attributed_value"] += value
        summary["journey_touches"] += touches
        for i, model in enumerate(MODELS):
            models[model][channel] = {"conversions": sums[2 * i], "value": sums[2 * i + 1]}

    result = {
        "models": models,
        "summary": summary,
        "engine": {
            "duckdb": duckdb.__version__,
            "threads": args.threads,
            "memory_limit": args.memory_limit,
        },
        "options": {"lookback_days": args.lookback_days, "half_life_days": args.half_life_days},
        "query_seconds": round(query_seconds, 3),
    }
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2, sort_keys=True)
        out.write("\n")
    print(
        f"duckdb_rules: conversions={summary['conversions']:.0f} "
        f"unattributed={summary['unattributed_conversions']:.0f} "
        f"query={query_seconds:.2f}s -> {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
