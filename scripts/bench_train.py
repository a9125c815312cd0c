"""Training benchmark: the fit of kiln's LightGBM and XGBoost against the Python packages, on one and two threads.

The data is the serving benchmark's (`scripts/bench_serve/bench.py gen`: 20 numeric features, a smooth nonlinear
target with noise, numpy seed 7), 200,000 rows; kiln trains on its 160,000 training rows (`split.test_size: 0.2`,
shuffled with seed 42), Python on the first 160,000 rows of the same file (rows of one generator: the same cost).
The model is the serving benchmark's: LightGBM `objective: regression`, 500 rounds, learning rate 0.05, 31 leaves,
20 rows a leaf, seed 42, deterministic (kiln also forces row-wise histograms and evaluates the training metric every
round, for its training curve; the Python run is `lightgbm.train` as a user writes it, with kiln's other parameters);
XGBoost `reg:squarederror`, `hist`, 500 rounds, eta 0.05, depth 6, 256 bins, seed 42 (both sides XGBoost 3.2.0: kiln's built
from the sdist by `kiln-xgboost-sys`, Python's from PyPI's wheel).

"fit s" is the library's fit alone: kiln's from its progress lines ("fitting ..." to "predicting ...", 0.1 s
resolution), Python's `Dataset`/`DMatrix` construction + `train` timed in the process (after the imports). Each run is a fresh process;
the two sides run in turns (kiln, Python, kiln, ...), since this 2-core VM's speed moves over minutes and a side run
all at once can catch a slow stretch alone; every run's time is printed, then the median of --repeats runs each.

Usage: KILN=path/to/kiln .venv/bin/python scripts/bench_train.py [--rows N] [--repeats R] [--keep DIR]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILN = os.environ.get("KILN", str(Path.home() / ".cache/kiln-target/release/kiln"))
PY = sys.executable

CONFIG = """name: bench-train
data: {{path: {data}}}
task: {{kind: regression, target: y}}
features: __AUTO__
split: {{test_size: 0.2, seed: 42}}
model:
  kind: {kind}
  params:
{params}
gates: {{}}
tracking: {{uri: {store}}}
"""

LGB = dict(objective="regression", num_iterations=500, learning_rate=0.05, num_leaves=31, min_data_in_leaf=20,
           seed=42, deterministic=True)
XGB = dict(objective="reg:squarederror", num_boost_round=500, eta=0.05, max_depth=6, max_bin=256,
           tree_method="hist", seed=42)

PYTHON_FIT = r"""
import json, sys, time
import numpy as np, pandas as pd
kind, threads, path, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
df = pd.read_csv(path, nrows=rows)
x = df.drop(columns=["y"]).to_numpy(dtype=np.float64)
y = df["y"].to_numpy(dtype=np.float64)
if kind == "lightgbm":
    import lightgbm as lgb
else:
    import xgboost as xgb
started = time.perf_counter()
if kind == "lightgbm":
    params = dict(objective="regression", learning_rate=0.05, num_leaves=31, min_data_in_leaf=20, seed=42,
                  deterministic=True, force_row_wise=True, num_threads=threads, verbosity=-1)
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=500)
    trees = booster.num_trees()
else:
    params = dict(objective="reg:squarederror", eta=0.05, max_depth=6, max_bin=256, tree_method="hist", seed=42,
                  nthread=threads, verbosity=0)
    booster = xgb.train(params, xgb.DMatrix(x, y, nthread=threads), num_boost_round=500)
    trees = booster.num_boosted_rounds()
print(json.dumps({"fit": time.perf_counter() - started, "trees": trees}))
"""


def kiln_fit(work: Path, kind: str, threads: int) -> float:
    params = dict(LGB, num_threads=threads) if kind == "lightgbm" else dict(XGB, nthread=threads)
    lines = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in params.items())
    config = work / f"{kind}_{threads}.yaml"
    config.write_text(CONFIG.format(data=work / "train.csv", kind=kind, params=lines, store=work / "mlruns"))
    out = subprocess.run([KILN, "train", "--config", str(config)], capture_output=True, text=True, check=True)
    stamps = {}
    for line in out.stderr.splitlines() + out.stdout.splitlines():
        m = re.match(r"\[\s*([\d.]+)s\] (fitting|predicting)", line)
        if m:
            stamps[m.group(2)] = float(m.group(1))
    if set(stamps) != {"fitting", "predicting"}:
        sys.exit(f"kiln train's progress lines lack the fit's start or end:\n{out.stderr}")
    return stamps["predicting"] - stamps["fitting"]


def python_fit(work: Path, kind: str, threads: int, rows: int) -> float:
    out = subprocess.run([PY, "-c", PYTHON_FIT, kind, str(threads), str(work / "train.csv"), str(rows)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["trees"] == 500, result
    return result["fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="a folder to keep the data and runs in (reused when present)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="kiln-bench-train."))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "train.csv").exists():
        subprocess.run([PY, str(REPO / "scripts/bench_serve/bench.py"), "gen", str(work), str(args.rows), "1000"],
                       check=True)
    train_rows = args.rows - args.rows // 5
    print(f"{args.rows} rows x 20 features, {train_rows} training rows, 500 rounds; median of {args.repeats}",
          file=sys.stderr)
    table = []
    for kind in ["lightgbm", "xgboost"]:
        for threads in [1, 2]:
            runs = [(kiln_fit(work, kind, threads), python_fit(work, kind, threads, train_rows))
                    for _ in range(args.repeats)]
            kiln = statistics.median(k for k, _ in runs)
            python = statistics.median(p for _, p in runs)
            table.append((kind, threads, kiln, python))
            print(f"{kind} {threads} thread(s): kiln {kiln:.2f} s, Python {python:.2f} s (runs in turns: "
                  + ", ".join(f"{k:.2f}/{p:.2f}" for k, p in runs) + ")", file=sys.stderr)
    print("| library | threads | kiln fit s | Python fit s | Python / kiln |")
    print("|---|---:|---:|---:|---:|")
    for kind, threads, kiln, python in table:
        print(f"| {kind} | {threads} | {kiln:.2f} | {python:.2f} | {python / kiln:.2f}x |")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
