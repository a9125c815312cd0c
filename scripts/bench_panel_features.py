"""Panel feature benchmark: the forecast features of 500 series x 2,000 daily steps in one long file, built by pandas
(groupby), mlforecast (`MLForecast.preprocess`) and `kiln features`, each reading the panel from Parquet and writing
its feature table to Parquet.

The features are mlforecast's `lags=[1..7]` and `lag_transforms={1: [RollingMean(7), RollingStd(7), RollingMean(28),
RollingStd(28)]}`; kiln's recipe (`current` y, `lag` 1-6, `rolling` 7/28 mean/std of y, horizon 1) is the same table
shifted by one step: kiln's row at origin t is mlforecast's row at the next day of the same series, with kiln's
`label` as mlforecast's `y`. kiln also keeps the last origin of every series (label null), so it writes one row more
per series; the check compares its labelled rows with the others' rows, and its values with mlforecast's.

The panel is synthetic and deterministic (numpy seed 0): random walks with a series-specific level and volatility,
columns unique_id, ds (UTC days), y, written as Parquet and CSV into a temporary folder. Every run is a fresh process
under a small parent that reads the child's peak RSS from getrusage(RUSAGE_CHILDREN); each tool runs --repeats times
(median wall time, max peak RSS). "wall" includes starting the interpreter or binary, reading and writing; "compute"
is the feature step alone where the tool lets it be timed apart (pandas, mlforecast). pandas runs in the main .venv
(pandas 3), mlforecast in .venv-forecast (pandas 2, tests/requirements-forecast.txt: `make venv-forecast`); both on
one thread. If `kiln features` fails (or is missing) its row says "failed" with the end of its stderr, and the others
are still reported.

Usage: KILN=path/to/kiln .venv/bin/python scripts/bench_panel_features.py
       [--series 500] [--steps 2000] [--repeats 3] [--keep DIR]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILN = os.environ.get("KILN", str(Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/kiln-target"))
                                  / "release/kiln"))
MAIN_PY = REPO / ".venv/bin/python"
FORECAST_PY = REPO / ".venv-forecast/bin/python"
LAGS = range(1, 8)
WINDOWS = (7, 28)
FEATURES = ([f"lag{k}" for k in LAGS]
            + [f"rolling_{s}_lag1_window_size{w}" for w in WINDOWS for s in ("mean", "std")])
CONFIG = """name: bench-panel
data: {{path: {panel}, time_column: ds, series_column: unique_id}}
task: {{kind: forecast, target: y, horizon: 1}}
features:
  - current: {{columns: [y]}}
  - lag: {{column: y, lags: [1, 2, 3, 4, 5, 6]}}
  - rolling: {{column: y, windows: [7, 28], stats: [mean, std]}}
model: {{kind: lightgbm, params: {{objective: regression}}}}
split: {{test_size: 0.2}}
"""


# -- the panel -----------------------------------------------------------------------------------------------------

def generate(folder, series, steps):
    """folder/panel.parquet and folder/panel.csv: `series` random walks of `steps` days each."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    level = rng.uniform(10.0, 1000.0, series)
    volatility = level * rng.uniform(0.001, 0.03, series)
    walks = level[:, None] + np.cumsum(rng.standard_normal((series, steps)) * volatility[:, None], axis=1)
    days = pd.date_range("2019-01-01", periods=steps, freq="D", tz="UTC").astype("datetime64[us, UTC]")
    panel = pd.DataFrame({
        "unique_id": np.repeat([f"s{i:04d}" for i in range(series)], steps),
        "ds": np.tile(days, series),
        "y": walks.ravel(),
    })
    panel.to_parquet(folder / "panel.parquet", index=False)
    panel.assign(ds=panel["ds"].dt.strftime("%Y-%m-%d")).to_csv(folder / "panel.csv", index=False)
    return len(panel)


# -- the workers (each runs in its own process; they print a JSON line of their inner timings) ----------------------

def work_pandas(source, target):
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_parquet(source)
    read = time.perf_counter()
    df = df.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
    by_series = df.groupby("unique_id", sort=False)["y"]
    for k in LAGS:
        df[f"lag{k}"] = by_series.shift(k)
    lag1 = df["lag1"].groupby(df["unique_id"], sort=False)
    for w in WINDOWS:
        rolling = lag1.rolling(w)
        df[f"rolling_mean_lag1_window_size{w}"] = rolling.mean().reset_index(level=0, drop=True)
        df[f"rolling_std_lag1_window_size{w}"] = rolling.std().reset_index(level=0, drop=True)
    df = df.dropna(subset=FEATURES, ignore_index=True)
    computed = time.perf_counter()
    df.to_parquet(target, index=False)
    done = time.perf_counter()
    return {"read_s": read - started, "compute_s": computed - read, "write_s": done - computed, "rows": len(df)}


def work_mlforecast(source, target):
    import pandas as pd
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, RollingStd

    started = time.perf_counter()
    df = pd.read_parquet(source)
    read = time.perf_counter()
    # the synthetic days have no gaps, so freq="D" passes mlforecast's timestamp validation as it is. The UTC
    # timestamps go in naive and come back as UTC: with a tz-aware ds, utilsforecast's sort turns the column into an
    # object array of Timestamps (about 4 s of the 4.1 s here instead of 0.1 s)
    df["ds"] = df["ds"].dt.tz_convert("UTC").dt.tz_localize(None)
    forecaster = MLForecast(models=[], freq="D", lags=list(LAGS),
                            lag_transforms={1: [stat(w) for w in WINDOWS for stat in (RollingMean, RollingStd)]})
    table = forecaster.preprocess(df, id_col="unique_id", time_col="ds", target_col="y", static_features=[],
                                  dropna=True)
    table["ds"] = table["ds"].dt.tz_localize("UTC")
    computed = time.perf_counter()
    table.to_parquet(target, index=False)
    done = time.perf_counter()
    return {"read_s": read - started, "compute_s": computed - read, "write_s": done - computed, "rows": len(table)}


WORKERS = {"pandas": work_pandas, "mlforecast": work_mlforecast}


def measure(command):
    """Run `command` as this process's only child: wall time, its peak RSS, return code, output."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except OSError as e:
        rc, out, err = 127, "", f"{command[0]}: {e}"
    wall = time.perf_counter() - started
    return {"rc": rc, "wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "stdout": out[-4000:], "stderr": err[-4000:]}


# -- the driver ----------------------------------------------------------------------------------------------------

def run_measured(command, cwd):
    """`command` under a fresh measuring parent (this script's `_measure`), so every run gets its own peak RSS."""
    proc = subprocess.run([sys.executable, __file__, "_measure", "--", *map(str, command)], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def bench(name, command, cwd, repeats, inner=False):
    runs = []
    for _ in range(repeats):
        run = run_measured(command, cwd)
        if run["rc"] != 0:
            return {"name": name, "failed": f"exit {run['rc']}", "stderr": run["stderr"][-1500:]}
        if inner:
            run.update(json.loads(run["stdout"].strip().splitlines()[-1]))
        runs.append(run)
    result = {"name": name, "wall_s": statistics.median(r["wall_s"] for r in runs),
              "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "walls": [r["wall_s"] for r in runs]}
    if inner:
        for key in ("read_s", "compute_s", "write_s"):
            result[key] = statistics.median(r[key] for r in runs)
    return result


def row_counts(path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    counts = {"rows": table.num_rows}
    if "label" in table.column_names:
        counts["labelled"] = table.num_rows - table.column("label").null_count
        # a NaN label counts as missing too
        import pyarrow.compute as pc
        counts["labelled"] -= pc.sum(pc.is_nan(table.column("label").drop_null())).as_py() or 0
    return counts


def compare(folder, results):
    """Agreement of the outputs: pandas vs mlforecast row by row, kiln vs mlforecast on the next day's row."""
    import numpy as np
    import pandas as pd

    lines = []
    ref = pd.read_parquet(folder / "mlforecast.parquet")
    ref["ds"] = pd.to_datetime(ref["ds"], utc=True)
    ref = ref.sort_values(["unique_id", "ds"], ignore_index=True)
    if "failed" not in results["pandas"]:
        pdf = pd.read_parquet(folder / "pandas.parquet").sort_values(["unique_id", "ds"], ignore_index=True)
        if len(pdf) == len(ref):
            diff = max(float(np.nanmax(np.abs(pdf[c].to_numpy() - ref[c].to_numpy()))) for c in ["y", *FEATURES])
            lines.append(f"pandas vs mlforecast: max |difference| {diff:.3g} over y and the 11 features")
    if "failed" not in results["kiln"]:
        kiln = pd.read_parquet(folder / "kiln.parquet")
        kiln["ds"] = pd.to_datetime(kiln["ds"], utc=True) + pd.Timedelta(days=1)
        names = {"y": "lag1", "label": "y", **{f"y_lag_{k}": f"lag{k + 1}" for k in range(1, 7)},
                 **{f"y_rolling_{s}_{w}": f"rolling_{s}_lag1_window_size{w}" for w in WINDOWS
                    for s in ("mean", "std")}}
        missing = [c for c in names if c not in kiln.columns]
        if missing:
            lines.append(f"kiln vs mlforecast: kiln's output lacks {missing} (columns: {list(kiln.columns)})")
        else:
            kiln["unique_id"] = kiln["unique_id"].astype(str)
            joined = ref.merge(kiln.rename(columns=names), on=["unique_id", "ds"], how="outer",
                               suffixes=("", "_kiln"), indicator=True)
            only = joined["_merge"].value_counts()
            unlabelled_extra = int(((joined["_merge"] == "right_only") & joined["y_kiln"].isna()).sum())
            both = joined[joined["_merge"] == "both"]
            diff = max(float(np.nanmax(np.abs(both[c].to_numpy() - both[f"{c}_kiln"].to_numpy())))
                       for c in names.values())
            lines.append(f"kiln vs mlforecast: {only.get('both', 0)} rows matched, {only.get('left_only', 0)} only in "
                         f"mlforecast, {only.get('right_only', 0)} only in kiln ({unlabelled_extra} of them "
                         f"unlabelled last origins); max |difference| {diff:.3g}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the panel and the outputs here (kept) instead of a temp dir")
    args = parser.parse_args()
    if not FORECAST_PY.exists():
        sys.exit(f"{FORECAST_PY} is missing: run `make venv-forecast` (mlforecast needs pandas < 3)")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_panel_"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows_in = generate(folder, args.series, args.steps)
    print(f"panel: {args.series} series x {args.steps} days = {rows_in} rows, "
          f"{(folder / 'panel.parquet').stat().st_size / 1e6:.1f} MB Parquet, "
          f"{(folder / 'panel.csv').stat().st_size / 1e6:.1f} MB CSV, in {folder} "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    config = folder / "bench_panel.yaml"
    config.write_text(CONFIG.format(panel=folder / "panel.parquet"))
    panel = folder / "panel.parquet"

    results = {
        "pandas": bench("pandas groupby", [MAIN_PY, __file__, "_work", "pandas", panel, folder / "pandas.parquet"],
                        REPO, args.repeats, inner=True),
        "mlforecast": bench("mlforecast preprocess",
                            [FORECAST_PY, __file__, "_work", "mlforecast", panel, folder / "mlforecast.parquet"],
                            REPO, args.repeats, inner=True),
        "kiln": bench("kiln features", [KILN, "features", "--config", config, "--output", folder / "kiln.parquet"],
                      folder, args.repeats),
    }
    for key, result in results.items():
        if "failed" not in result:
            result.update(row_counts(folder / f"{key}.parquet"))

    print(f"\n{args.series} series x {args.steps} days ({rows_in} rows), Parquet in and out, "
          f"median of {args.repeats} runs, peak RSS the max of the runs\n")
    print("| tool | wall s | compute s | peak RSS MB | rows out |")
    print("|---|---:|---:|---:|---:|")
    for result in results.values():
        if "failed" in result:
            print(f"| {result['name']} | failed ({result['failed']}) | | | |")
            continue
        compute = f"{result['compute_s']:.3f}" if "compute_s" in result else "—"
        rows = f"{result['rows']}" + (f" ({result['labelled']} labelled)" if "labelled" in result else "")
        print(f"| {result['name']} | {result['wall_s']:.3f} | {compute} | {result['peak_rss_mb']:.0f} | {rows} |")
    print()
    for key, result in results.items():
        if "failed" in result:
            print(f"{key}: failed ({result['failed']}), the end of its stderr:\n{result['stderr'].rstrip()}\n")
        elif "read_s" in result:
            print(f"{result['name']}: read {result['read_s']:.3f} s, compute {result['compute_s']:.3f} s, "
                  f"write {result['write_s']:.3f} s (medians); walls {', '.join(f'{w:.2f}' for w in result['walls'])}")

    ok = {k: r for k, r in results.items() if "failed" not in r}
    counts = {k: r.get("labelled", r["rows"]) for k, r in ok.items()}
    expected = args.series * (args.steps - max(WINDOWS))
    verdict = "same" if len(set(counts.values())) == 1 else "DIFFERENT"
    print(f"\nrows (kiln: labelled rows): {counts} -> {verdict}; expected {expected} "
          f"({args.series} x ({args.steps} - {max(WINDOWS)}))")
    if "mlforecast" in ok:
        for line in compare(folder, results):
            print(line)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if verdict != "same":
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        print(json.dumps(measure(sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_work":
        print(json.dumps(WORKERS[sys.argv[2]](sys.argv[3], sys.argv[4])))
    else:
        main()
