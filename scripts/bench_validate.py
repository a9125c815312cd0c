"""`kiln validate` against pandera on one file, the same 20 checks, in one run.

    python scripts/bench_validate.py [--rows 1000000] [--work DIR] [--kiln PATH] [--format csv|parquet] [--repeat N]

Generates an OHLC-like panel (date, symbol, open, high, low, close, volume: 200 symbols of business days, rows
ordered by date then symbol) with a few broken rows (a missing close, a negative volume, high below low, a repeated
(symbol, date), a step back in time), writes kiln's schema and runs, each in a fresh process under
`/usr/bin/time -v`:

- `kiln validate --schema ... --json ...` (reads the file chunk by chunk and checks it);
- the pandera peer (this script with `pandera FILE`): `pd.read_csv` (or `pd.read_parquet`), then
  `DataFrameSchema.validate(df, lazy=True)`, which collects every failure as kiln does.

Both get the same 20 checks; the script checks that both found the same failing rows per check (kiln's report
keeps counts and the first rows; pandera's failure cases give every row), then prints wall time and peak RSS.
With `--repeat N` the two run in turns, N times each; a single run moves by 10-40% on a 2-core VM, so the verdict is
the ratio of the medians (the ratio of the best runs is printed beside it).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KILN_SCHEMA = """\
columns:
  symbol: {type: string, nullable: false, regex: "[A-Z]{4}"}
  open: {type: number, nullable: false}
  high: {type: number}
  low: {type: number, nullable: false}
  close: {type: number, nullable: false, min: 0}
  volume: {type: integer, min: 0}
unique_key: [symbol, date]
time: {column: date, series_column: symbol, max_gap: {business_days: 5}}
rules:
  - {name: low_le_high, expr: "low <= high"}
  - {name: open_in_range, expr: "low <= open and open <= high"}
  - {name: close_in_range, expr: "low <= close and close <= high"}
"""

# kiln's 20 checks, in its report's order (pandera gets the same rules)
CHECKS = [
    ("type", "date"), ("type", "symbol"), ("not_null", "symbol"), ("regex", "symbol"),
    ("type", "open"), ("not_null", "open"),
    ("type", "high"),
    ("type", "low"), ("not_null", "low"),
    ("type", "close"), ("not_null", "close"), ("min", "close"),
    ("type", "volume"), ("min", "volume"),
    ("unique_key", "symbol,date"), ("time_order", "date"), ("max_gap", "date"),
    ("rule", "low_le_high"), ("rule", "open_in_range"), ("rule", "close_in_range"),
]


def generate(path: Path, rows: int, fmt: str) -> None:
    import numpy as np
    import pandas as pd

    symbols = 200
    days = rows // symbols
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("1990-01-01", periods=days)
    names = ["".join(chr(65 + (i // 26**k) % 26) for k in range(4)) for i in range(symbols)]
    date = np.repeat(dates.values, symbols)
    symbol = np.tile(np.array(names, dtype=object), days)
    n = len(date)
    close = 50 + np.cumsum(rng.normal(0, 0.5, size=(days, symbols)), axis=0).ravel()
    close = np.abs(close) + 1
    open_ = close * (1 + rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, n)))
    volume = rng.integers(0, 1_000_000, n).astype(float)
    df = pd.DataFrame({"date": date, "symbol": symbol, "open": open_.round(4), "high": high.round(4),
                       "low": low.round(4), "close": close.round(4), "volume": volume})
    broken = rng.choice(n - 1000, size=50, replace=False) + 500
    for j, row in enumerate(broken):
        kind = j % 5
        if kind == 0:
            df.loc[row, "close"] = np.nan
        elif kind == 1:
            df.loc[row, "volume"] = -5
        elif kind == 2:
            high_, low_ = df.at[row, "high"], df.at[row, "low"]
            df.at[row, "high"], df.at[row, "low"] = low_, high_
        elif kind == 3:
            df.loc[row, "date"] = df.loc[row - symbols, "date"]  # the symbol's previous date: a repeat and a step back
        else:
            df.loc[row, "symbol"] = "bad1"
    df["volume"] = df["volume"].astype("Int64")
    df["date"] = pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df["date"] = pd.to_datetime(df["date"])
        df.to_parquet(path, index=False, row_group_size=100_000)


def pandera_schema():
    import numpy as np
    import pandas as pd
    import pandera.pandas as pa

    def time_order(df):
        step = df.groupby("symbol", sort=False)["date"].diff()
        return ~(step <= pd.Timedelta(0))

    def max_gap(df):
        prev = df.groupby("symbol", sort=False)["date"].shift()
        ok = prev.notna() & df["date"].notna()
        out = pd.Series(True, index=df.index)
        a = prev[ok].values.astype("datetime64[D]")
        b = df["date"][ok].values.astype("datetime64[D]")
        out[ok] = np.busday_count(a, b) <= 5
        return out

    def rule(expr_cols, fn):
        def check(df):
            known = df[expr_cols].notna().all(axis=1)
            return fn(df) | ~known
        return check

    return pa.DataFrameSchema(
        {
            "date": pa.Column("datetime64[ns]", nullable=True),
            "symbol": pa.Column(str, nullable=False, checks=pa.Check.str_matches(r"^[A-Z]{4}$")),
            "open": pa.Column(float, nullable=False),
            "high": pa.Column(float, nullable=True),
            "low": pa.Column(float, nullable=False),
            "close": pa.Column(float, nullable=False, checks=pa.Check.ge(0)),
            "volume": pa.Column("Int64", nullable=True, checks=pa.Check.ge(0)),
        },
        checks=[
            pa.Check(time_order, name="time_order", ignore_na=False),
            pa.Check(max_gap, name="max_gap", ignore_na=False),
            pa.Check(rule(["low", "high"], lambda d: d.low <= d.high), name="low_le_high", ignore_na=False),
            pa.Check(rule(["low", "open", "high"], lambda d: (d.low <= d.open) & (d.open <= d.high)),
                     name="open_in_range", ignore_na=False),
            pa.Check(rule(["low", "close", "high"], lambda d: (d.low <= d.close) & (d.close <= d.high)),
                     name="close_in_range", ignore_na=False),
        ],
        unique=["symbol", "date"],
        report_duplicates="all",
    )


def run_pandera(path: str, out: str) -> None:
    """The peer: read, validate lazily, write the failing rows per check."""
    import pandas as pd
    import pandera.pandas as pa

    t0 = time.perf_counter()
    if path.endswith(".csv"):
        df = pd.read_csv(path, parse_dates=["date"], dtype={"symbol": str, "volume": "Int64"})
    else:
        df = pd.read_parquet(path)
    t1 = time.perf_counter()
    failures = {}
    try:
        pandera_schema().validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
        # a dataframe check's failure is listed once per column: its rows are the union
        fc = fc.assign(column=fc["column"].where(fc["schema_context"] != "DataFrameSchema", ""))
        for (ctx, col, check), rows in fc.groupby(["schema_context", "column", "check"], dropna=False)["index"]:
            failures[f"{ctx}|{col}|{check}"] = sorted({int(i) for i in rows.dropna()})
    t2 = time.perf_counter()
    Path(out).write_text(json.dumps({"read_s": t1 - t0, "validate_s": t2 - t1, "failures": failures}))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of `cmd` under /usr/bin/time -v."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if p.returncode not in (0, 2):
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr).group(1)
    parts = [float(x) for x in wall.split(":")]
    seconds = sum(x * 60 ** (len(parts) - 1 - i) for i, x in enumerate(parts))
    return seconds, rss, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/kiln-bench-validate")
    ap.add_argument("--format", choices=["csv", "parquet"], default="csv")
    ap.add_argument("--kiln", default=os.environ.get("KILN", str(ROOT / "target/release/kiln")))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"ohlc_{args.rows}.{args.format}"
    if not data.exists():
        generate(data, args.rows, args.format)
    schema = work / "schema.yaml"
    schema.write_text(KILN_SCHEMA)
    report = work / "kiln_report.json"
    peer = work / "pandera_failures.json"
    results = {"kiln": [], "pandera": []}
    for _ in range(args.repeat):
        results["kiln"].append(timed([args.kiln, "validate", "--schema", str(schema), str(data), "--json", str(report)])[:2])
        results["pandera"].append(timed([sys.executable, __file__, "pandera", str(data), str(peer)])[:2])
    kiln = json.loads(report.read_text())
    pandera = json.loads(peer.read_text())
    counts = {(c["check"], c["column"]): c["failing_rows"] for c in kiln["checks"]}
    assert [(c["check"], c["column"]) for c in kiln["checks"]] == [(a, b) for a, b in CHECKS], kiln["checks"]
    # every failing row pandera found, per check, against kiln's count and first rows
    mapping = {
        ("not_null", "close"): "Column|close|not_nullable",
        ("min", "volume"): "Column|volume|greater_than_or_equal_to(0)",
        ("regex", "symbol"): r"Column|symbol|str_matches('^[A-Z]{4}$')",
        ("unique_key", "symbol,date"): "DataFrameSchema||multiple_fields_uniqueness",
        ("time_order", "date"): "DataFrameSchema||time_order",
        ("max_gap", "date"): "DataFrameSchema||max_gap",
        ("rule", "low_le_high"): "DataFrameSchema||low_le_high",
        ("rule", "open_in_range"): "DataFrameSchema||open_in_range",
        ("rule", "close_in_range"): "DataFrameSchema||close_in_range",
    }
    by_kiln = {(c["check"], c["column"]): [s["row"] for s in c["samples"]] for c in kiln["checks"]}
    for key, pkey in mapping.items():
        rows = pandera["failures"].get(pkey, [])
        assert counts[key] == len(rows), (key, counts[key], len(rows))
        assert by_kiln[key] == rows[: len(by_kiln[key])], (key, by_kiln[key], rows[:5])
    others = {k for k, n in counts.items() if n} - set(mapping)
    assert not others, others
    size = data.stat().st_size / 1e6
    print(f"{args.rows:,} rows, {len(kiln['checks'])} checks, {args.format} {size:.0f} MB; "
          f"failing rows: {sum(counts.values())} (equal in kiln and pandera for every check)")
    print(f"pandera inside its process: read {pandera['read_s']:.2f} s, validate {pandera['validate_s']:.2f} s")
    print("| run | wall s (each run) | peak RSS MB |")
    print("| --- | ---: | ---: |")
    for name, runs in results.items():
        walls = ", ".join(f"{w:.2f}" for w, _ in runs)
        print(f"| {name} | {walls} | {max(r for _, r in runs):.0f} |")
    best = {k: min(w for w, _ in v) for k, v in results.items()}
    median = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    print(f"kiln is {median['pandera'] / median['kiln']:.1f}x faster by the medians of {args.repeat} runs in turns "
          f"({median['kiln']:.3f} s against {median['pandera']:.3f} s), {best['pandera'] / best['kiln']:.1f}x by the "
          f"best runs")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "pandera":
        run_pandera(sys.argv[2], sys.argv[3])
    else:
        main()
