"""A 50-trial LightGBM study on EUR/USD with MLflow logging: `kiln tune` against Optuna 4.9 + `MLflowCallback`, in
one run, on the same MLflow server, with the same space, sampler settings, folds, features and LightGBM parameters.

Both sides score a trial by the mean test RMSE (in USD, the log-return forecast inverted) over the same 5
walk-forward folds of the training part (scikit-learn's `TimeSeriesSplit(5)` over the first 80% of the feature rows,
the last 10% of each fold's training rows for early stopping), LightGBM on one thread with 2 trials at a time
(`--jobs 2`, `n_jobs=2`: both cores). Python gets kiln's feature table (`kiln features`) for free, outside its timing:
what is timed is the search. kiln's time is its whole process (start, reading, the parent run, the charts).

Beside each wall time it measures the CPU used: the side's own (kiln's process from `getrusage` of the finished child;
Python's process over `study.optimize`, all its threads) and the MLflow server's (its process tree, from `/proc`), and
prints the cores busy, (side + server CPU) / wall, against the machine's cores.

The two sides run in turns, `--repeats` times (a fresh kiln storage and a fresh Optuna study each time, one MLflow
server for all): a single run of either moves by 10-20% on this 2-core machine, so the verdict is the ratio of the
medians. Prints every run's wall time and best RMSE, then the medians and their ratio.

Usage: .venv/bin/python scripts/bench_tune.py [--trials 50] [--repeats 5] (KILN=path/to/kiln)
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts" / "bench_serve"))
from bench import tree_cpu  # noqa: E402  (the MLflow server's CPU: its process and descendants)
KILN = os.environ.get("KILN", str(Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/kiln-target"))
                                  / "release/kiln"))
FOLDS = 5
PARAMS = {"objective": "regression", "num_iterations": 300, "early_stopping_rounds": 30, "num_threads": 1,
          "seed": 42, "deterministic": True}


def config_text(trials):
    return f"""extends: [{REPO}/conf/tasks/eurusd.yaml, {REPO}/conf/base/lightgbm.yaml]
backtest: {{folds: {FOLDS}}}
tune:
  metric: rmse
  n_trials: {trials}
  sampler: {{kind: tpe, seed: 42, n_startup_trials: 10}}
  candidates:
    - kind: lightgbm
      params: {{objective: regression, num_iterations: 300, early_stopping_rounds: 30, num_threads: 1, seed: 42,
               deterministic: true}}
      space:
        learning_rate: {{float: {{low: 0.01, high: 0.2, log: true}}}}
        num_leaves: {{int: {{low: 4, high: 64, log: true}}}}
        min_data_in_leaf: {{int: {{low: 20, high: 200, step: 10}}}}
        feature_fraction: {{float: {{low: 0.5, high: 1.0}}}}
        lambda_l2: {{float: {{low: 0.001, high: 10.0, log: true}}}}
"""


def python_study(features, usd, trials, tracking_uri):
    import lightgbm as lgb
    import optuna
    from optuna.integration.mlflow import MLflowCallback
    from sklearn.model_selection import TimeSeriesSplit

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X = features.drop(columns=["Date", "label"]).to_numpy(dtype=np.float64)
    y = features["label"].to_numpy(dtype=np.float64)
    current = usd.loc[features["Date"]].to_numpy()
    truth = current * np.exp(y)
    n = len(y)
    test = math.ceil(0.2 * n)
    train_part = n - test
    folds = list(TimeSeriesSplit(FOLDS).split(np.zeros(train_part)))

    def objective(trial):
        params = dict(PARAMS)
        params.update(
            learning_rate=trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            num_leaves=trial.suggest_int("num_leaves", 4, 64, log=True),
            min_data_in_leaf=trial.suggest_int("min_data_in_leaf", 20, 200, step=10),
            feature_fraction=trial.suggest_float("feature_fraction", 0.5, 1.0),
            lambda_l2=trial.suggest_float("lambda_l2", 0.001, 10.0, log=True),
            verbosity=-1,
        )
        rounds = params.pop("num_iterations")
        stop = params.pop("early_stopping_rounds")
        scores = []
        for k, (tr, te) in enumerate(folds):
            n_val = math.ceil(0.1 * len(tr))
            fit, val = tr[:-n_val], tr[-n_val:]
            booster = lgb.train(params, lgb.Dataset(X[fit], y[fit]), rounds,
                                valid_sets=[lgb.Dataset(X[val], y[val])],
                                callbacks=[lgb.early_stopping(stop, verbose=False)])
            pred = current[te] * np.exp(booster.predict(X[te], num_iteration=booster.best_iteration))
            score = float(np.sqrt(np.mean((pred - truth[te]) ** 2)))
            scores.append(score)
            trial.report(score, k)
        return float(np.mean(scores))

    callback = MLflowCallback(tracking_uri=tracking_uri, metric_name="rmse")
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=42, n_startup_trials=10))
    cpu, started = own_cpu(resource.RUSAGE_SELF), time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=2, callbacks=[callback])
    return time.perf_counter() - started, own_cpu(resource.RUSAGE_SELF) - cpu, study.best_value


def own_cpu(who):
    """User + system CPU seconds of this process (`RUSAGE_SELF`, every thread) or of its finished children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from conftest import MlflowServer

    tmp = Path(tempfile.mkdtemp(prefix="bench_tune_"))
    server = MlflowServer(tmp / "mlruns", tmp / "mlflow.log")
    runs = []
    try:
        config = tmp / "tune.yaml"
        config.write_text(config_text(args.trials))
        features_file = tmp / "features.csv"
        subprocess.run([KILN, "features", "--config", config, "--output", features_file], cwd=REPO, check=True,
                       capture_output=True)
        features = pd.read_csv(features_file).dropna(subset=["label"])
        usd = pd.read_csv(REPO / "data/ecb_eurofxref-hist.csv", usecols=["Date", "USD"]).set_index("Date")["USD"]
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "optuna-bench"
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

        for r in range(args.repeats):
            server_cpu, kiln_cpu, started = tree_cpu(server.proc.pid), own_cpu(resource.RUSAGE_CHILDREN), \
                time.perf_counter()
            proc = subprocess.run([KILN, "tune", "--config", config, "--tracking-uri", server.url, "--storage",
                                   f"sqlite:///{tmp / f'kiln{r}.db'}", "--jobs", "2", "--no-refit", "--json",
                                   tmp / "k.json"], cwd=REPO, capture_output=True, text=True)
            kiln_s = time.perf_counter() - started
            kiln_cpu = own_cpu(resource.RUSAGE_CHILDREN) - kiln_cpu
            kiln_server = tree_cpu(server.proc.pid) - server_cpu
            if proc.returncode != 0:
                sys.exit(proc.stdout + proc.stderr)
            kiln_best = json.loads((tmp / "k.json").read_text())["leaderboard"][0]["best_value"]
            server_cpu = tree_cpu(server.proc.pid)
            py_s, py_cpu, py_best = python_study(features, usd, args.trials, server.url)
            py_server = tree_cpu(server.proc.pid) - server_cpu
            runs.append((kiln_s, py_s, kiln_best, py_best, kiln_cpu, py_cpu, kiln_server, py_server))
            print(f"run {r + 1}: kiln {kiln_s:.2f} s (best {kiln_best:.6f}, CPU {kiln_cpu:.2f} + server "
                  f"{kiln_server:.2f} s), Optuna {py_s:.2f} s (best {py_best:.6f}, CPU {py_cpu:.2f} + server "
                  f"{py_server:.2f} s), ratio {kiln_s / py_s:.2f}", file=sys.stderr, flush=True)
    finally:
        server.stop()
    kiln_med = statistics.median(r[0] for r in runs)
    py_med = statistics.median(r[1] for r in runs)
    print(f"{args.trials} trials x {FOLDS} folds, LightGBM on one thread, 2 trials at a time, logged to MLflow; "
          f"median of {args.repeats} runs in turns")
    print(f"{'':28}{'wall s':>8}{'min-max':>12}{'trials/s':>10}{'best rmse':>12}{'CPU s':>8}{'server':>8}"
          f"{'cores':>7}")
    for name, i in [("kiln tune --jobs 2", 0), ("Optuna + MLflowCallback", 1)]:
        times = [r[i] for r in runs]
        med = statistics.median(times)
        best = statistics.median(r[i + 2] for r in runs)
        cpu = statistics.median(r[i + 4] for r in runs)
        server_cpu = statistics.median(r[i + 6] for r in runs)
        cores = statistics.median((r[i + 4] + r[i + 6]) / r[i] for r in runs)
        print(f"{name:28}{med:8.2f}{min(times):6.2f}-{max(times):<5.2f}{args.trials / med:10.2f}{best:12.6f}"
              f"{cpu:8.2f}{server_cpu:8.2f}{cores:7.2f}")
    print(f"cores: (the side's CPU + the server's) / wall, median over the runs; this machine has {os.cpu_count()}")
    print(f"kiln / Optuna wall time (medians): {kiln_med / py_med:.2f}; per run: "
          + ", ".join(f"{r[0] / r[1]:.2f}" for r in runs))


if __name__ == "__main__":
    main()
