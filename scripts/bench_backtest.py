"""10-fold walk-forward backtest of an EUR/USD LightGBM forecaster: `kiln backtest` against skforecast's
`backtesting_forecaster`, in one run, with the same folds, the same lag features and the same LightGBM parameters.

The features are the ones skforecast's `ForecasterRecursive(lags=5)` builds (the last five daily rates; kiln's
`current` plus `lag` 1-4 are the same columns in the same order), the target is the rate itself, no early stopping,
no validation rows, LightGBM on one thread each. kiln fits its 10 folds on both cores (`--threads 2`); skforecast
scores every test day one step ahead from the actual lags, refitting at the start of each fold (`steps=1`,
`refit=<test size>`). Prints wall time, peak memory and the agreement of the per-fold RMSE.

Usage: .venv/bin/python scripts/bench_backtest.py   (KILN=path/to/kiln; .venv-forecast is made when missing)
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILN = os.environ.get("KILN", str(Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/kiln-target"))
                                  / "release/kiln"))
FORECAST_VENV = REPO / ".venv-forecast"
FOLDS = 10


def forecast_python():
    python = FORECAST_VENV / "bin/python"
    if not python.exists():
        print("making .venv-forecast (skforecast needs pandas < 3)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", FORECAST_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        REPO / "tests/requirements-forecast.txt"], check=True)
    return python


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bench_backtest_"))
    config = tmp / "eurusd_lags.yaml"
    config.write_text(f"""extends: [{REPO / 'conf/experiments/eurusd.yaml'}]
task:
  target_transform: none
features:
  - current: {{columns: [USD]}}
  - lag: {{column: USD, lags: [1, 2, 3, 4]}}
split:
  validation_size: null
model:
  params:
    early_stopping_rounds: null
    num_threads: 1
""")
    report = tmp / "kiln.json"
    # kiln: peak memory of the child from its own rusage
    started = time.perf_counter()
    proc = subprocess.Popen([KILN, "backtest", "--config", config, "--folds", str(FOLDS), "--threads", "2",
                             "--json", report, "--tracking-uri", tmp / "mlruns"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    kiln_wall = time.perf_counter() - started
    # kiln is this script's first child: the children's peak is its peak
    kiln_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        sys.exit(f"kiln backtest failed:\n{err.decode()[-3000:]}")
    kiln = json.loads(report.read_text())
    rows = kiln["rows"]
    n_design = rows["input"] - rows["warmup_dropped"] - rows["no_target_dropped"]
    test_size = kiln["folds"][0]["test_rows"]
    lags = 5
    params = {}
    for line in (tmp / "mlruns").glob("*/*/params/model.*"):
        params[line.name.removeprefix("model.")] = line.read_text()
    params = {k: (float(v) if v.replace(".", "", 1).replace("-", "", 1).isdigit() else v) for k, v in params.items()}
    job = {"data": str(REPO / "data/ecb_eurofxref-hist.csv"), "target": "USD", "params": params, "lags": lags,
           "initial_train_size": n_design - FOLDS * test_size + lags, "test_size": test_size, "folds": FOLDS,
           "n_jobs": "auto"}
    python = forecast_python()
    started = time.perf_counter()
    proc = subprocess.Popen([python, REPO / "scripts/bench_backtest_skforecast.py"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sk_out, sk_err = proc.communicate(json.dumps(job).encode())
    sk_wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"skforecast failed:\n{sk_err.decode()[-3000:]}")
    sk = json.loads(sk_out)
    kiln_rmse = [f["metrics"]["test/rmse"] for f in kiln["folds"]]
    diffs = [abs(a - b) for a, b in zip(kiln_rmse, sk["fold_rmse"])]
    print(json.dumps({
        "folds": FOLDS, "test_size": test_size, "design_rows": n_design,
        "kiln": {"wall_s": round(kiln_wall, 3), "peak_rss_mb": round(kiln_peak_mb, 1), "fold_rmse": kiln_rmse},
        "skforecast": {"wall_s": round(sk_wall, 3), "in_process_s": round(sk["wall_s"], 3),
                       "peak_rss_mb": round(sk["peak_rss_mb"], 1), "fold_rmse": sk["fold_rmse"]},
        "max_abs_rmse_difference": max(diffs),
        "speedup": round(sk_wall / kiln_wall, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
