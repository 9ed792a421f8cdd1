#!/usr/bin/env python3
"""Slow, literal pure-Python reference of the five rule models (DESIGN.md 2.4 and 3).

Used to validate `duckdb_rules.py` (and `mta`) on small files: it walks each user's events one
by one exactly as the contract words it, with no SQL. Writes the same JSON shape as
`duckdb_rules.py` (without engine/timing fields). Needs `duckdb` only to read the Parquet file.

Usage: reference_rules.py EVENTS.parquet OUT.json [--lookback-days 30] [--half-life-days 7]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import duckdb

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
US_PER_DAY = 86_400 * 1_000_000


def weights(model: str, times: list[int], conversion_us: int, half_life_us: float) -> list[float]:
    n = len(times)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "position_based":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
    decay = [2.0 ** (-(conversion_us - t) / half_life_us) for t in times]
    total = sum(decay)
    return [d / total for d in decay]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--lookback-days", type=float, default=30.0)
    parser.add_argument("--half-life-days", type=float, default=7.0)
    args = parser.parse_args()
    lookback_us = int(args.lookback_days * US_PER_DAY)
    half_life_us = args.half_life_days * US_PER_DAY

    rows = duckdb.sql(
        "SELECT user_id, epoch_us(timestamp), channel, conversion, conversion_value, "
        "file_row_number FROM read_parquet(?, file_row_number = true)",
        params=[args.input],
    ).fetchall()
    by_user: dict[str, list[tuple]] = defaultdict(list)
    for user, ts, channel, conversion, value, row_no in rows:
        by_user[user].append((ts, bool(conversion), row_no, channel, value or 0.0))

    credit = {m: defaultdict(lambda: [0.0, 0.0]) for m in MODELS}
    summary = defaultdict(float)
    for events in by_user.values():
        # Timestamp, then touches (False) before conversions (True), then file order.
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        pending: list[tuple[int, str]] = []  # touches since the previous conversion
        for ts, conversion, _, channel, value in events:
            if not conversion:
                pending.append((ts, channel))
                continue
            journey = [(t, c) for t, c in pending if lookback_us == 0 or t >= ts - lookback_us]
            pending = []
            summary["conversions"] += 1
            summary["conversion_value"] += value
            if not journey:
                summary["unattributed_conversions"] += 1
                summary["unattributed_value"] += value
                continue
            summary["attributed_conversions"] += 1
            summary["attributed_value"] += value
            summary["journey_touches"] += len(journey)
            times = [t for t, _ in journey]
            for model in MODELS:
                model_weights = weights(model, times, ts, half_life_us)
                for (_, channel_), w in zip(journey, model_weights, strict=True):
                    credit[model][channel_][0] += w
                    credit[model][channel_][1] += w * value

    result = {
        "models": {
            m: {c: {"conversions": v[0], "value": v[1]} for c, v in sorted(ch.items())}
            for m, ch in credit.items()
        },
        "summary": dict(summary),
    }
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
