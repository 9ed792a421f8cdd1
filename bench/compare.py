#!/usr/bin/env python3
"""Cross-check two attribution results: per rule model and channel, conversions and value.

Each input is either an `mta attribute` result (`models.<id>.channels[]` with `channel`,
`conversions`, `value`) or a `duckdb_rules.py` / `reference_rules.py` result
(`models.<id>.<channel>.{conversions,value}`). A channel missing on one side counts as 0.
Two numbers agree when |a - b| <= tol * max(|a|, |b|) (or both are below 1e-9).
Also compares `summary.conversions` and `summary.unattributed_conversions` when both have them.

Prints one line per model and exits 0 if everything agrees, 1 otherwise.

With `--every-model` (two `mta` results) every model of A is compared, not only the rule models.

Usage: compare.py A.json B.json [--tol 1e-6] [--names mta duckdb] [--every-model]
"""

from __future__ import annotations

import argparse
import json
import sys

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
SUMMARY_KEYS = ("conversions", "unattributed_conversions")


def channels(result: dict, model: str) -> dict[str, tuple[float, float]] | None:
    entry = result.get("models", {}).get(model)
    if entry is None:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("channels"), list):
        rows = entry["channels"]
        return {r["channel"]: (float(r["conversions"]), float(r["value"])) for r in rows}
    return {c: (float(v["conversions"]), float(v["value"])) for c, v in entry.items()}


def rel_diff(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale < 1e-9 else abs(a - b) / scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--names", nargs=2, default=("A", "B"))
    parser.add_argument(
        "--every-model", action="store_true", help="every model of A (two mta results), not only the rule models"
    )
    args = parser.parse_args()
    with open(args.a, encoding="utf-8") as fa, open(args.b, encoding="utf-8") as fb:
        a, b = json.load(fa), json.load(fb)
    name_a, name_b = args.names

    ok = True
    models = sorted(a.get("models", {})) if args.every_model else MODELS
    for model in models:
        ca, cb = channels(a, model), channels(b, model)
        if ca is None or cb is None:
            missing = name_a if ca is None else name_b
            print(f"  {model:15} MISSING in {missing}")
            ok = False
            continue
        worst, worst_at, bad = 0.0, "", []
        for channel in sorted(set(ca) | set(cb)):
            va, vb = ca.get(channel, (0.0, 0.0)), cb.get(channel, (0.0, 0.0))
            for what, x, y in (("conversions", va[0], vb[0]), ("value", va[1], vb[1])):
                d = rel_diff(x, y)
                if d > worst:
                    worst, worst_at = d, f"{channel}.{what}"
                if d > args.tol:
                    bad.append(f"{channel}.{what}: {name_a}={x!r} {name_b}={y!r} rel={d:.2e}")
        status = "agree" if not bad else "DIFFER"
        where = f" at {worst_at}" if worst_at else ""
        print(f"  {model:15} {status:6} max rel diff {worst:.1e}{where} ({len(ca)} channels)")
        for line in bad[:5]:
            print(f"      {line}")
        ok &= not bad

    sa, sb = a.get("summary", {}), b.get("summary", {})
    for key in SUMMARY_KEYS:
        if key in sa and key in sb:
            d = rel_diff(float(sa[key]), float(sb[key]))
            status = "agree" if d <= args.tol else "DIFFER"
            print(f"  summary.{key}: {status} ({name_a}={sa[key]}, {name_b}={sb[key]})")
            ok &= d <= args.tol
    what = "every model" if args.every_model else "the rule models"
    print(f"RESULT: {what} agree" if ok else f"RESULT: {what} DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
