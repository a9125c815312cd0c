"""Panel forecast benchmark: multi-step training + prediction of one global LightGBM model over 500 series x 2,000
daily steps, by `kiln train` + `kiln predict` (task.strategy: recursive, horizon 24), mlforecast (`fit` +
`predict(h=24)`) and skforecast 0.26 (`ForecasterRecursiveMultiSeries.fit` + `predict(steps=24)`). The goal it
checks: kiln's whole train + 24-step predict at least 3x faster than mlforecast with the same LightGBM settings.

Model and features, the same for all three: LightGBM with objective regression, 100 iterations, learning rate 0.1,
31 leaves, min 20 rows a leaf, one thread, seed 1, deterministic (LGBMRegressor(n_estimators=100, learning_rate=0.1,
num_leaves=31, min_child_samples=20, n_jobs=1, random_state=1, deterministic=True, verbosity=-1)); the features are
mlforecast's `lags=[1..7]` and `lag_transforms={1: [RollingMean(7), RollingMean(28)]}`, skforecast's `lags=7` and
`RollingFeatures(stats=['mean', 'mean'], window_sizes=[7, 28])` (encoding=None: no series-id feature, as the others),
and kiln's recipe `current` y, `lag` 1-6, `rolling` 7/28 mean: the same 9 columns in the same order, since kiln's
row at origin t (label y[t+1]) is mlforecast's row t+1.

The same rows are trained on: mlforecast and skforecast get each series without its last 24 rows (1,976 of 2,000)
and drop the 28 warm-up rows (1,948 rows a series); kiln reads the whole panel with `split.test_size: 24` (the last 24
time steps of every series are its test part), drops 27 warm-up origins and the last origin (no label) per series,
and trains on the origins before the test part: t = 27 .. n-26, labels y[28 .. n-25], the same 1,948 rows. The rows
each tool trained are recorded (kiln: its `rows:` line; mlforecast, skforecast: the shape LightGBM's fit received)
and must agree. kiln's train also scores the 24-step forecasts from the test origins (one a series here: the only
one whose 24 steps are all in the file), logs metrics, SHAP values, plots and the bundle; that is in its time. A
second kiln row trains the same next-step model with `horizon: 1` (no multi-step scoring) to show what that costs.

Prediction: mlforecast and skforecast forecast 24 steps from the end of what they were fitted on (state kept in
the process). `kiln predict` reads a file: it gets the last 28 rows of each series' training part (the window the
features need), so it forecasts exactly one origin a series, the same last origin, 24 steps (12,000 rows for 500
series; the number written is reported). The forecasts of that origin are then compared, kiln vs mlforecast and
skforecast vs mlforecast, as a sanity check only (the rolling means differ in the last bits, which can move a split;
and above 200,000 training rows LightGBM builds its bins from a sample of bin_construct_sample_cnt = 200,000 rows
drawn by position, so tools that hand it the same rows in a different order get other bins, other trees: at
100 x 2000 (194,800 rows) kiln's forecasts equal mlforecast's within 2e-15, at 110 x 2000 (214,280) they do not).

The panel is bench_panel_features.py's (numpy seed 0: random walks with a series-specific level and volatility;
unique_id, ds in UTC days, y). Every run is a fresh process under a small parent that reads the child's peak RSS
(bench_panel_features.py's `_measure`), each --repeats times: median wall time, max peak RSS. kiln's "fit s" and
"predict s" are the walls of `kiln train` and `kiln predict` (start, read, everything they do, write); the Python
tools' are the in-process times of `fit` and `predict` alone, and their "total" is the whole process wall (start,
imports, reading the Parquet file, preparing the frame, fit, predict). The ratio columns divide the other tool's
total by kiln's (train + predict). mlforecast and skforecast run in .venv-forecast (pandas 2; `make venv-forecast`).
`--skforecast-series N` limits skforecast to the first N series (with the others on the full panel, in a separate
run of all three on N series).

Usage: KILN=path/to/kiln .venv/bin/python scripts/bench_panel_forecast.py [--series N --steps T --repeats R]
       [--skforecast-series N] [--keep DIR]
"""

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_panel_features import FORECAST_PY, KILN, REPO, generate, run_measured

HORIZON = 24
LAGS = list(range(1, 8))
WINDOWS = (7, 28)
WARMUP = max(WINDOWS)  # feature rows start at the 29th row of a series (mlforecast, skforecast)
LGB = dict(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=20, n_jobs=1, random_state=1,
           deterministic=True, verbosity=-1)
CONFIG = """name: bench-forecast
data: {{path: {panel}, time_column: ds, series_column: unique_id}}
task: {{kind: forecast, target: y, horizon: {horizon}{strategy}}}
features:
  - current: {{columns: [y]}}
  - lag: {{column: y, lags: [1, 2, 3, 4, 5, 6]}}
  - rolling: {{column: y, windows: [7, 28], stats: [mean]}}
split: {{test_size: {test}}}
model:
  kind: lightgbm
  params: {{objective: regression, num_iterations: 100, learning_rate: 0.1, num_leaves: 31, min_data_in_leaf: 20,
            num_threads: 1, seed: 1, deterministic: true}}
"""


# -- the Python workers (each runs in its own process in .venv-forecast; they print a JSON line of their timings) ---

def recording_regressor():
    """LGBMRegressor(**LGB) that records the shape of every X it is fitted on (mlforecast deep-copies it, skforecast
    clones it: a subclass survives both)."""
    from lightgbm import LGBMRegressor

    class Recording(LGBMRegressor):
        shapes = []

        def fit(self, X, y, *args, **kwargs):
            Recording.shapes.append([int(X.shape[0]), int(X.shape[1])])
            return super().fit(X, y, *args, **kwargs)

    return Recording(**LGB), Recording.shapes


def training_part(source, series_limit):
    """The panel without each series' last HORIZON rows, sorted by id then time, with a per-series counter `step`
    0, 1, ... (mlforecast's freq=1, as tests/panel_reference.py does it for irregular dates)."""
    import pandas as pd

    df = pd.read_parquet(source, columns=["unique_id", "ds", "y"])
    if series_limit:
        keep = sorted(df["unique_id"].unique())[:series_limit]
        df = df[df["unique_id"].isin(keep)]
    df = df.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
    df["step"] = df.groupby("unique_id", sort=False).cumcount().astype("int64")
    n = df.groupby("unique_id", sort=False)["step"].transform("size")
    return df[df["step"] < n - HORIZON].reset_index(drop=True)


def work_mlforecast(source, target, series_limit=0):
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    started = time.perf_counter()
    df = training_part(source, series_limit)[["unique_id", "step", "y"]]
    prepared = time.perf_counter()
    model, shapes = recording_regressor()
    forecaster = MLForecast(models={"lgb": model}, freq=1, lags=LAGS,
                            lag_transforms={1: [RollingMean(w) for w in WINDOWS]}, num_threads=1)
    forecaster.fit(df, id_col="unique_id", time_col="step", target_col="y", static_features=[])
    fitted = time.perf_counter()
    pred = forecaster.predict(h=HORIZON)
    predicted = time.perf_counter()
    last = df.groupby("unique_id", sort=False)["step"].max()
    pred["h"] = pred["step"] - pred["unique_id"].map(last)
    pred.rename(columns={"lgb": "prediction"})[["unique_id", "h", "prediction"]].to_parquet(target, index=False)
    return {"prep_s": prepared - started, "fit_s": fitted - prepared, "predict_s": predicted - fitted,
            "trained": shapes, "series": int(df["unique_id"].nunique()), "predictions": len(pred)}


def work_skforecast(source, target, series_limit=0):
    import warnings

    from skforecast.preprocessing import RollingFeatures
    from skforecast.recursive import ForecasterRecursiveMultiSeries

    started = time.perf_counter()
    df = training_part(source, series_limit)
    # one column per series over the counter (a RangeIndex): every series has the same length here
    wide = df.pivot(index="step", columns="unique_id", values="y")
    wide.index = __import__("pandas").RangeIndex(len(wide))  # the counter 0..n-1: skforecast wants a RangeIndex
    wide.columns = wide.columns.astype(str)
    wide.columns.name = None
    prepared = time.perf_counter()
    model, shapes = recording_regressor()
    forecaster = ForecasterRecursiveMultiSeries(
        estimator=model, lags=len(LAGS),
        window_features=RollingFeatures(stats=["mean"] * len(WINDOWS), window_sizes=list(WINDOWS)),
        encoding=None, transformer_series=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecaster.fit(series=wide, suppress_warnings=True)
        fitted = time.perf_counter()
        pred = forecaster.predict(steps=HORIZON, suppress_warnings=True)
    predicted = time.perf_counter()
    # long output: index = the future counter values, columns level and pred
    out = pred.reset_index(names="step")
    out["h"] = out["step"] - (len(wide) - 1)
    out.rename(columns={"level": "unique_id", "pred": "prediction"})[["unique_id", "h", "prediction"]].to_parquet(
        target, index=False)
    return {"prep_s": prepared - started, "fit_s": fitted - prepared, "predict_s": predicted - fitted,
            "trained": shapes, "series": wide.shape[1], "predictions": len(out)}


WORKERS = {"mlforecast": work_mlforecast, "skforecast": work_skforecast}


# -- the driver ----------------------------------------------------------------------------------------------------

STAGE = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")


def stages(stderr):
    """kiln's stage lines `[  1.2s] what` as (start, what) pairs."""
    return [(float(m.group(1)), m.group(2)) for m in map(STAGE.match, stderr.splitlines()) if m]


def median_run(runs):
    """The run with the median wall time (the middle one; the upper middle of an even count)."""
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def repeat(command, cwd, repeats, inner=False, each=None):
    """`command` `repeats` times, each in a fresh measured process; None and the failing run if one fails."""
    runs = []
    for _ in range(repeats):
        run = run_measured(command, cwd)
        if run["rc"] != 0:
            return None, run
        if inner:
            run.update(json.loads(run["stdout"].strip().splitlines()[-1]))
        if each:
            run.update(each(run))
        runs.append(run)
    return runs, None


def kiln_train_info(run):
    ids = re.findall(r"^run ([0-9a-f]+) \(FINISHED\)", run["stdout"], re.M)
    rows = re.search(r"train (\d+) \(\+(\d+) validation\), test (\d+)", run["stdout"])
    return {"run_id": ids[-1] if ids else None, "trained": int(rows.group(1)) if rows else None,
            "validation": int(rows.group(2)) if rows else None, "test": int(rows.group(3)) if rows else None,
            "stages": stages(run["stderr"])}


def kiln_predict_info(run):
    wrote = re.search(r"wrote (\d+) predictions \(steps 1\.\.(\d+) ahead of each of (\d+) origins", run["stderr"])
    timing = re.search(r"time: (.*?) \(", run["stderr"])
    return {"predictions": int(wrote.group(1)) if wrote else None, "origins": int(wrote.group(3)) if wrote else None,
            "kiln_timing": timing.group(1) if timing else None}


def summary(runs, keys=()):
    out = {"wall_s": statistics.median(r["wall_s"] for r in runs), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
           "walls": [r["wall_s"] for r in runs], "median": median_run(runs)}
    for key in keys:
        out[key] = statistics.median(r[key] for r in runs)
    return out


def failure(name, run):
    return f"{name}: failed (exit {run['rc']}), the end of its stderr:\n{run['stderr'][-1500:].rstrip()}"


def tail_file(folder, panel, window):
    """The last `window` rows of every series' training part (the panel less each series' last HORIZON rows)."""
    import pandas as pd

    df = pd.read_parquet(panel).sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
    pos = df.groupby("unique_id", sort=False).cumcount()
    n = df.groupby("unique_id", sort=False)["y"].transform("size")
    tail = df[(pos < n - HORIZON) & (pos >= n - HORIZON - window)]
    path = folder / "predict_input.parquet"
    tail.to_parquet(path, index=False)
    return path, len(tail), tail.groupby("unique_id", sort=False)["ds"].max()


def compare(reference, other, name, last_origin=None):
    """Relative differences of the 24-step forecasts of the last training origin, `other` vs mlforecast's."""
    import numpy as np
    import pandas as pd

    ref = pd.read_parquet(reference)
    oth = pd.read_parquet(other)
    if "h" not in oth.columns:  # kiln's output: unique_id, ds (the origin), target_time, step, prediction
        if last_origin is not None:
            origins = pd.to_datetime(oth["ds"], utc=True)
            expected = pd.to_datetime(oth["unique_id"].astype(str).map(last_origin), utc=True)
            if not (origins == expected).all():
                return f"{name}: {(origins != expected).sum()} rows are not from the last training origin"
        oth = oth.assign(h=oth["step"].astype("int64"))
    ref["unique_id"] = ref["unique_id"].astype(str)
    oth["unique_id"] = oth["unique_id"].astype(str)
    joined = ref.merge(oth[["unique_id", "h", "prediction"]], on=["unique_id", "h"], how="inner",
                       suffixes=("", "_other"))
    if joined.empty:
        return f"{name} vs mlforecast: no forecasts in common"
    rel = np.abs(joined["prediction_other"] - joined["prediction"]) / np.abs(joined["prediction"])
    by_step = rel.groupby(joined["h"]).median()
    exact = int((joined["prediction_other"] == joined["prediction"]).sum())
    return (f"{name} vs mlforecast: {len(joined)} forecasts matched ({joined['unique_id'].nunique()} series x "
            f"{joined['h'].nunique()} steps; {len(ref)} from mlforecast, {len(oth)} from {name}), {exact} equal bit "
            f"for bit; relative difference median {rel.median():.3g}, max {rel.max():.3g} (median at step 1 "
            f"{by_step.iloc[0]:.3g}, at step {by_step.index[-1]} {by_step.iloc[-1]:.3g})")


def python_tool(name, panel, folder, repeats, series_limit=0):
    out = folder / f"{name}{series_limit or ''}.parquet"
    runs, failed = repeat([FORECAST_PY, __file__, "_work", name, panel, out, series_limit], REPO, repeats, inner=True)
    if failed:
        return {"failed": failure(name, failed)}
    result = summary(runs, ("prep_s", "fit_s", "predict_s"))
    result.update(trained=runs[0]["trained"], series=runs[0]["series"], predictions=runs[0]["predictions"],
                  output=out)
    return result


def run_all(args, folder, panel, series, with_skforecast=True, skforecast_limit=0):
    """kiln (horizon 24 and horizon 1), mlforecast and skforecast on `panel`; a dict of results."""
    results = {}
    tracking = folder / "mlruns"
    config = folder / "bench_forecast.yaml"
    config.write_text(CONFIG.format(panel=panel, horizon=HORIZON, strategy=", strategy: recursive", test=HORIZON))
    config1 = folder / "bench_forecast_h1.yaml"
    config1.write_text(CONFIG.format(panel=panel, horizon=1, strategy="", test=HORIZON))

    runs, failed = repeat([KILN, "train", "--config", config, "--tracking-uri", tracking], folder, args.repeats,
                          each=kiln_train_info)
    if failed:
        results["kiln"] = {"failed": failure("kiln train", failed)}
    else:
        train = summary(runs)
        train.update(trained=runs[0]["trained"], test=runs[0]["test"], validation=runs[0]["validation"])
        predict_input, input_rows, last_origin = tail_file(folder, panel, WARMUP)
        model = f"runs:/{train['median']['run_id']}/model"
        pred_out = folder / "kiln_pred.parquet"
        pruns, pfailed = repeat([KILN, "predict", "--model", model, "--input", predict_input, "--output", pred_out,
                                 "--tracking-uri", tracking], folder, args.repeats, each=kiln_predict_info)
        if pfailed:
            results["kiln"] = {"failed": failure("kiln predict", pfailed)}
        else:
            predict = summary(pruns)
            predict.update(predictions=pruns[0]["predictions"], origins=pruns[0]["origins"], input_rows=input_rows,
                           kiln_timing=predict["median"]["kiln_timing"])
            results["kiln"] = {"train": train, "predict": predict, "output": pred_out, "last_origin": last_origin,
                               "total_s": train["wall_s"] + predict["wall_s"],
                               "peak_rss_mb": max(train["peak_rss_mb"], predict["peak_rss_mb"])}
    runs, failed = repeat([KILN, "train", "--config", config1, "--tracking-uri", tracking], folder, args.repeats,
                          each=kiln_train_info)
    if failed:
        results["kiln_h1"] = {"failed": failure("kiln train (horizon 1)", failed)}
    else:
        results["kiln_h1"] = summary(runs)
        results["kiln_h1"].update(trained=runs[0]["trained"])
    results["mlforecast"] = python_tool("mlforecast", panel, folder, args.repeats)
    if with_skforecast:
        results["skforecast"] = python_tool("skforecast", panel, folder, args.repeats, skforecast_limit)
    return results


def fmt(value, digits=2):
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else value


def report(title, results, series, steps):
    expected = series * (steps - WARMUP - HORIZON)
    print(f"\n### {title}\n")
    print(f"expected training rows: {series} x ({steps} - {WARMUP} warm-up - {HORIZON} test) = {expected}\n")
    print("| tool | fit s | predict s | total s | peak RSS MB | rows trained | total / kiln's |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    kiln = results.get("kiln", {})
    base = kiln.get("total_s")
    notes, counts = [], {}

    def ratio(total):
        return f"{total / base:.2f}x" if base else "—"

    if "failed" in kiln:
        print("| kiln train + predict | failed | | | | | |")
        notes.append(kiln["failed"])
    elif kiln:
        t, p = kiln["train"], kiln["predict"]
        counts["kiln"] = t["trained"]
        print(f"| kiln train + predict (horizon 24, recursive) | {fmt(t['wall_s'])} | {fmt(p['wall_s'])} | "
              f"{fmt(kiln['total_s'])} | {kiln['peak_rss_mb']:.0f} (train {t['peak_rss_mb']:.0f}, predict "
              f"{p['peak_rss_mb']:.0f}) | {t['trained']} | 1.00x |")
    h1 = results.get("kiln_h1")
    if h1 and "failed" not in h1:
        counts["kiln horizon 1"] = h1["trained"]
        print(f"| kiln train only, horizon 1 (same model, no 24-step scoring) | {fmt(h1['wall_s'])} | — | "
              f"{fmt(h1['wall_s'])} | {h1['peak_rss_mb']:.0f} | {h1['trained']} | — |")
    elif h1:
        notes.append(h1["failed"])
    for name in ("mlforecast", "skforecast"):
        r = results.get(name)
        if r is None:
            continue
        if "failed" in r:
            print(f"| {name} | failed | | | | | |")
            notes.append(r["failed"])
            continue
        rows = sum(s[0] for s in r["trained"])
        counts[name] = rows
        label = f"{name} fit + predict(h=24)" + (f" ({r['series']} series)" if r["series"] != series else "")
        print(f"| {label} | {fmt(r['fit_s'])} | {fmt(r['predict_s'])} | {fmt(r['wall_s'])} | "
              f"{r['peak_rss_mb']:.0f} | {rows} | {ratio(r['wall_s']) if r['series'] == series else '—'} |")
    print()
    if kiln and "failed" not in kiln:
        t, p = kiln["train"], kiln["predict"]
        print(f"kiln train: walls {', '.join(f'{w:.2f}' for w in t['walls'])} s; {t['trained']} train, "
              f"{t['validation']} validation, {t['test']} test rows; stages of the median run (stderr):")
        st = t["median"]["stages"]
        for i, (at, what) in enumerate(st):
            until = st[i + 1][0] if i + 1 < len(st) else t["median"]["wall_s"]
            print(f"  {at:6.1f} s  +{until - at:5.1f} s  {what}")
        print(f"kiln predict: walls {', '.join(f'{w:.2f}' for w in p['walls'])} s; input {p['input_rows']} rows "
              f"(the last {WARMUP} of each series' training part); wrote {p['predictions']} predictions from "
              f"{p['origins']} origins; its own timing: {p['kiln_timing']}")
        if h1 and "failed" not in h1:
            print(f"kiln train, horizon 1: walls {', '.join(f'{w:.2f}' for w in h1['walls'])} s")
    for name in ("mlforecast", "skforecast"):
        r = results.get(name)
        if r and "failed" not in r:
            print(f"{name}: read + prepare {r['prep_s']:.2f} s, fit {r['fit_s']:.2f} s, predict {r['predict_s']:.2f} s "
                  f"(medians); process walls {', '.join(f'{w:.2f}' for w in r['walls'])} s; LightGBM fitted on "
                  f"{r['trained']} (rows, features); {r['predictions']} predictions")
    for note in notes:
        print(note)
    verdict = "same" if len(set(counts.values())) == 1 and expected in counts.values() else "DIFFERENT"
    print(f"\nrows trained: {counts} -> {verdict} (expected {expected})")
    if "mlforecast" in results and "failed" not in results["mlforecast"]:
        ref = results["mlforecast"]["output"]
        if kiln and "failed" not in kiln:
            print(compare(ref, kiln["output"], "kiln", kiln["last_origin"]))
        sk = results.get("skforecast")
        if sk and "failed" not in sk:
            print(compare(ref, sk["output"], "skforecast"))
    if base and "mlforecast" in results and "failed" not in results["mlforecast"]:
        speedup = results["mlforecast"]["wall_s"] / base
        inner = results["mlforecast"]["fit_s"] + results["mlforecast"]["predict_s"]
        print(f"goal (kiln train + predict at least 3x faster than mlforecast's process): {speedup:.2f}x -> "
              f"{'met' if speedup >= 3 else 'NOT met'}; against mlforecast's fit + predict alone (no interpreter "
              f"start, imports or reading): {inner / base:.2f}x")
    return verdict == "same"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skforecast-series", type=int, default=0,
                        help="run skforecast on only this many series (and all three again on a panel that small)")
    parser.add_argument("--keep", type=Path, help="write the panel and the outputs here (kept) instead of a temp dir")
    args = parser.parse_args()
    if not FORECAST_PY.exists():
        sys.exit(f"{FORECAST_PY} is missing: run `make venv-forecast` (mlforecast and skforecast need pandas < 3)")
    if args.steps < WARMUP + HORIZON + 2:
        sys.exit(f"--steps must be at least {WARMUP + HORIZON + 2}")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_forecast_"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ok = True
    small = args.skforecast_series if 0 < args.skforecast_series < args.series else 0
    for series in [args.series] + ([small] if small else []):
        sub = folder / f"{series}x{args.steps}"
        sub.mkdir(exist_ok=True)
        rows = generate(sub, series, args.steps)
        (sub / "panel.csv").unlink(missing_ok=True)
        panel = sub / "panel.parquet"
        print(f"panel: {series} series x {args.steps} days = {rows} rows, {panel.stat().st_size / 1e6:.1f} MB "
              f"Parquet, in {sub} ({time.perf_counter() - started:.1f} s)", flush=True)
        results = run_all(args, sub, panel, series, with_skforecast=not small or series == small)
        title = (f"{series} series x {args.steps} days ({rows} rows), horizon {HORIZON}, median of {args.repeats} "
                 f"runs, peak RSS the max of the runs" + (" (skforecast: see the smaller panel)"
                                                          if small and series != small else ""))
        ok = report(title, results, series, args.steps) and ok
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_work":
        print(json.dumps(WORKERS[sys.argv[2]](sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5
                                              else 0)))
    else:
        main()
