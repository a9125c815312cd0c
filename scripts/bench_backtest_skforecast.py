"""skforecast's side of scripts/bench_backtest.py, run in its own venv (.venv-forecast: skforecast needs pandas < 3).

Reads a JSON job on stdin (the data file, the LightGBM params, the fold layout) and prints a JSON result: wall time,
peak memory, and the RMSE of every fold of one-step-ahead walk-forward backtesting with refits, as kiln does it:
`TimeSeriesFold(steps=1, refit=test_size)` scores every test row one step ahead from the actual lags, refitting on the
expanding window at the start of every fold of `test_size` rows.
"""

import json
import resource
import sys
import time

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from skforecast.model_selection import TimeSeriesFold, backtesting_forecaster
from skforecast.recursive import ForecasterRecursive

job = json.load(sys.stdin)
started = time.perf_counter()
frame = pd.read_csv(job["data"], usecols=["Date", job["target"]], na_values=["N/A"])
frame["Date"] = pd.to_datetime(frame["Date"])
y = frame.sort_values("Date").set_index("Date")[job["target"]].reset_index(drop=True).astype(float)
p = job["params"]
estimator = LGBMRegressor(
    objective=p["objective"], n_estimators=int(p["num_iterations"]), learning_rate=p["learning_rate"],
    num_leaves=int(p["num_leaves"]), max_depth=int(p["max_depth"]), min_child_samples=int(p["min_data_in_leaf"]),
    min_child_weight=p["min_sum_hessian_in_leaf"], colsample_bytree=p["feature_fraction"],
    subsample=p["bagging_fraction"], subsample_freq=int(p["bagging_freq"]), reg_alpha=p["lambda_l1"],
    reg_lambda=p["lambda_l2"], min_split_gain=p["min_gain_to_split"], random_state=int(p["seed"]),
    n_jobs=int(p["num_threads"]), verbosity=-1, deterministic=True, force_row_wise=True,
    bagging_seed=int(p["seed"]), feature_fraction_seed=int(p["seed"]), data_random_seed=int(p["seed"]),
    extra_seed=int(p["seed"]), objective_seed=int(p["seed"]), extra_trees=False,
)
forecaster = ForecasterRecursive(estimator=estimator, lags=job["lags"])
cv = TimeSeriesFold(steps=1, initial_train_size=job["initial_train_size"], refit=job["test_size"],
                    fixed_train_size=False, gap=0, allow_incomplete_fold=True, verbose=False)
_, predictions = backtesting_forecaster(forecaster, y=y, cv=cv, metric="mean_squared_error",
                                        n_jobs=job["n_jobs"], show_progress=False)
predicted = predictions["pred"].to_numpy()
actual = y.iloc[job["initial_train_size"]:].to_numpy()[:len(predicted)]
folds = []
for k in range(job["folds"]):
    block = slice(k * job["test_size"], (k + 1) * job["test_size"])
    folds.append(float(np.sqrt(np.mean((actual[block] - predicted[block]) ** 2))))
print(json.dumps({
    "wall_s": time.perf_counter() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "fold_rmse": folds,
    "predictions": len(predicted),
}))
