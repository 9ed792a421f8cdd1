#!/usr/bin/env python3
"""The benchmark matrix: the same rows in the shapes real exports have, `mta attribute
--models all` against the DuckDB baseline (`duckdb_rules.py`, the five rule models) on each.

Writes, from `mta-gen`'s file of ROWS rows (generated if missing), under bench/data/shapes_<ROWS>/:

  gen        mta-gen itself: BOOLEAN flags, null values on touches, 1M-row groups
  pyarrow    pyarrow.parquet: INT32 flags, 0.0 values on touches, 262,144-row groups
  duckdb     DuckDB COPY with its defaults (122,880-row groups) of the same columns
  epoch_ms   INT64 epoch milliseconds, user ids as strings of integers, INT8 flags, DECIMAL(12,2)
             values, written by DuckDB
  strings    ISO 8601 string times, "true"/"false" flags, written by DuckDB
  csv        uncompressed CSV written by DuckDB (header, ISO 8601 times, 0/1 flags)
  spark      Spark's defaults, written by pyarrow: INT96 times, row groups of about 128 MB
  parquet_gzip  the gen shape's columns written by pyarrow with the GZIP codec (jobs that set it), 1M-row groups
  csv_gz     the csv shape, gzip-compressed by DuckDB (one stream: read by one thread)
  ndjson     newline-delimited JSON written by DuckDB (ISO 8601 times, boolean flags)

then runs every (shape, tool) pair once per round, REPEAT rounds (default 3), the order of the
pairs rotating by one each round, and reports per shape the median wall seconds, CPU seconds
and peak RSS of each tool (from the child's rusage), DuckDB ÷ mta, and whether the mta results
of every shape agree with the first shape's and DuckDB's (`compare.py`).

Usage: bench/shapes.py ROWS [--repeat 3] [--shapes gen,csv] [--mta target/release/mta]
Writes bench/results/shapes_<ROWS>.md; raw outputs go to bench/data/shapes_<ROWS>/runs/.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = BENCH / ".venv" / "bin" / "python"

SHAPES = ("gen", "pyarrow", "duckdb", "epoch_ms", "strings", "csv", "spark", "parquet_gzip", "csv_gz", "ndjson")
# The file name of each shape that is not Parquet.
EXTENSIONS = {"csv": "csv", "csv_gz": "csv.gz", "ndjson": "ndjson"}

# DuckDB COPY statements, from the mta-gen file `src` into `dst`.
DUCKDB_COPIES = {
    "duckdb": "COPY (SELECT * FROM '{src}') TO '{dst}' (FORMAT parquet)",
    "epoch_ms": (
        "COPY (SELECT CAST(CAST(substr(user_id, 2) AS BIGINT) AS VARCHAR) AS user_id, "
        "epoch_ms(timestamp) AS timestamp, channel, CAST(conversion AS TINYINT) AS conversion, "
        "CAST(COALESCE(conversion_value, 0) AS DECIMAL(12,2)) AS conversion_value FROM '{src}') "
        "TO '{dst}' (FORMAT parquet)"
    ),
    "strings": (
        "COPY (SELECT user_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') AS timestamp, channel, "
        "CASE WHEN conversion THEN 'true' ELSE 'false' END AS conversion, conversion_value FROM '{src}') "
        "TO '{dst}' (FORMAT parquet)"
    ),
    "csv": (
        "COPY (SELECT user_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') AS timestamp, channel, "
        "CAST(conversion AS INTEGER) AS conversion, conversion_value FROM '{src}') "
        "TO '{dst}' (FORMAT csv, HEADER true)"
    ),
    "csv_gz": (
        "COPY (SELECT user_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') AS timestamp, channel, "
        "CAST(conversion AS INTEGER) AS conversion, conversion_value FROM '{src}') "
        "TO '{dst}' (FORMAT csv, HEADER true, COMPRESSION gzip)"
    ),
    "ndjson": (
        "COPY (SELECT user_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') AS timestamp, channel, "
        "conversion, conversion_value FROM '{src}') TO '{dst}' (FORMAT json)"
    ),
}


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def write_pyarrow(src: Path, dst: Path) -> None:
    """INT32 flags and 0.0 values on touches, as warehouse exports read into pandas write them."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(src)
    writer = None
    for batch in reader.iter_batches(batch_size=262_144):
        table = pa.Table.from_batches([batch])
        table = table.set_column(
            table.schema.get_field_index("conversion"), "conversion", pc.cast(table["conversion"], pa.int32())
        )
        table = table.set_column(
            table.schema.get_field_index("conversion_value"),
            "conversion_value",
            pc.fill_null(table["conversion_value"], 0.0),
        )
        if writer is None:
            writer = pq.ParquetWriter(dst, table.schema)
        writer.write_table(table, row_group_size=262_144)
    if writer is not None:
        writer.close()


def write_spark(src: Path, dst: Path) -> None:
    """Spark's default layout (`spark.sql.parquet.outputTimestampType` INT96, `parquet.block.size` 128 MB): as many
    rows per group as fill about 128 MB of the source's compressed column chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(src)
    metadata = source.metadata
    compressed = sum(
        metadata.row_group(g).column(c).total_compressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    rows_per_group = max(1, int(metadata.num_rows * (128 << 20) / max(compressed, 1)))
    with pq.ParquetWriter(dst, source.schema_arrow, use_deprecated_int96_timestamps=True) as writer:
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in source.iter_batches(batch_size=1 << 20):
            pending.append(batch)
            rows += batch.num_rows
            if rows >= rows_per_group:
                table = pa.Table.from_batches(pending)
                writer.write_table(table.slice(0, rows_per_group), row_group_size=rows_per_group)
                pending = table.slice(rows_per_group).to_batches()
                rows -= rows_per_group
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=rows_per_group)


def write_parquet_gzip(src: Path, dst: Path) -> None:
    """The source's columns and row groups, compressed with GZIP instead of snappy."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(src)
    with pq.ParquetWriter(dst, source.schema_arrow, compression="gzip") as writer:
        for batch in source.iter_batches(batch_size=1 << 20):
            writer.write_batch(batch, row_group_size=1 << 20)


def write_shape(shape: str, src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if shape == "pyarrow":
        write_pyarrow(src, tmp)
    elif shape == "spark":
        write_spark(src, tmp)
    elif shape == "parquet_gzip":
        write_parquet_gzip(src, tmp)
    else:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET TimeZone = 'UTC'")
        con.execute(DUCKDB_COPIES[shape].format(src=src, dst=tmp))
    tmp.rename(dst)


def run(command: list[str], log_path: Path) -> dict[str, float]:
    """Runs `command`, returning wall seconds, CPU seconds and peak RSS (MiB) of the child."""
    with open(log_path, "w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    if status != 0:
        sys.exit(f"{' '.join(command)} failed (status {status}); see {log_path}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def busy_share() -> float:
    """The share of CPU time other work used over the last second (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = sample()
    time.sleep(1)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--mta", default=str(ROOT / "target" / "release" / "mta"))
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        sys.exit(f"unknown shapes {unknown}; known: {', '.join(SHAPES)}")

    data = BENCH / "data" / f"shapes_{args.rows}"
    runs = data / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    gen = BENCH / "data" / f"events_{args.rows}.parquet"
    if not gen.exists():
        log(f"generating {gen}")
        subprocess.run([str(ROOT / "target" / "release" / "mta-gen"), "--rows", str(args.rows), "--out", str(gen)], check=True)
    files = {}
    for shape in shapes:
        path = gen if shape == "gen" else data / f"{shape}.{EXTENSIONS.get(shape, 'parquet')}"
        if not path.exists():
            log(f"writing the {shape} shape to {path}")
            # In a child process: a child's peak RSS starts from its parent's (Linux keeps the high-water mark
            # across fork and exec), so the tools' figures would carry the writer's memory.
            writer = multiprocessing.get_context("fork").Process(target=write_shape, args=(shape, gen, path))
            writer.start()
            writer.join()
            if writer.exitcode != 0:
                sys.exit(f"writing the {shape} shape failed")
        files[shape] = path

    pairs = [(shape, tool) for shape in shapes for tool in ("mta", "duckdb")]
    figures: dict[tuple[str, str], list[dict[str, float]]] = {pair: [] for pair in pairs}
    busy: list[float] = []
    for round_no in range(args.repeat):
        order = pairs[round_no % len(pairs) :] + pairs[: round_no % len(pairs)]
        for shape, tool in order:
            subprocess.run(["cat", str(files[shape])], stdout=subprocess.DEVNULL, check=True)
            busy.append(busy_share())
            out = runs / f"{shape}.{tool}.json"
            if tool == "mta":
                command = [args.mta, "attribute", str(files[shape]), "--models", "all", "--output", str(out)]
            else:
                command = [str(PY), str(BENCH / "duckdb_rules.py"), str(files[shape]), str(out), "--threads", "2", "--memory-limit", "4GB"]
            figure = run(command, runs / f"{shape}.{tool}.{round_no}.log")
            figures[(shape, tool)].append(figure)
            log(f"round {round_no + 1}: {shape} {tool} {figure['wall']:.2f} s, {figure['rss']:.0f} MiB")

    lines = [
        f"# Shapes: {args.rows:,} rows, `mta attribute --models all` vs DuckDB (5 rule models, 2 threads)",
        "",
        f"{args.repeat} alternating rounds; the second before each run was {min(busy):.0%}–{max(busy):.0%} busy "
        f"with other work. Medians; every run's wall seconds in brackets.",
        "",
        "| shape | mta wall s | mta CPU s | mta peak RSS MiB | DuckDB wall s | DuckDB CPU s | DuckDB peak RSS MiB | DuckDB ÷ mta |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in shapes:
        m, d = figures[(shape, "mta")], figures[(shape, "duckdb")]
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        walls = lambda runs: " ".join(f"{r['wall']:.2f}" for r in runs)  # noqa: E731
        lines.append(
            f"| {shape} | {med(m, 'wall'):.2f} ({walls(m)}) | {med(m, 'cpu'):.2f} | {max(r['rss'] for r in m):.0f} "
            f"| {med(d, 'wall'):.2f} ({walls(d)}) | {med(d, 'cpu'):.2f} | {max(r['rss'] for r in d):.0f} "
            f"| {med(d, 'wall') / med(m, 'wall'):.2f} |"
        )
    lines += ["", "Cross-checks (`compare.py`):", ""]
    first = shapes[0]
    failed = False
    for shape in shapes:
        checks = [(f"{shape}.mta.json", f"{shape}.duckdb.json", ["mta", "duckdb"], [])]
        if shape != first:
            # Every model, to 1e-9: row groups decode in parallel, so sums may add in another order.
            names = [f"mta-{first}", f"mta-{shape}"]
            checks.append((f"{first}.mta.json", f"{shape}.mta.json", names, ["--every-model", "--tol", "1e-9"]))
        for a, b, names, flags in checks:
            done = subprocess.run(
                [sys.executable, str(BENCH / "compare.py"), str(runs / a), str(runs / b), "--names", *names, *flags],
                capture_output=True,
                text=True,
            )
            verdict = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            failed |= done.returncode != 0
            lines.append(f"- {shape}: {names[0]} vs {names[1]}: {verdict}")
    report = "\n".join(lines) + "\n"
    print(report)
    (BENCH / "results" / f"shapes_{args.rows}.md").write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
