"""mlforecast's side of kiln's panel (many series in one long file) reference tests, run in the pandas < 3 venv.

mlforecast needs pandas < 3, so this script runs with .venv-forecast/bin/python (`make venv-forecast`, pinned by
tests/requirements-forecast.txt), not with the main .venv: the tests call it as a subprocess and read back the Parquet
file it writes. It has no pytest dependency.

Usage:
  .venv-forecast/bin/python tests/panel_reference.py preprocess --input LONG.csv|LONG.parquet \\
      --id unique_id --time ds --target y --output OUT.parquet
  .venv-forecast/bin/python tests/panel_reference.py ecb-panel --input data/ecb_eurofxref-hist.csv \\
      --output PANEL.parquet          (the ECB currencies with a full history, melted to unique_id/ds/y)
  .venv-forecast/bin/python tests/panel_reference.py recursive --input LONG [--id unique_id] --time ds --target y \\
      --h 5 --params '{"n_estimators": 50, ...}' [--lags 1,...,7] [--rolling-mean 7,28] [--exog HUFL,MUFL] \\
      --output OUT.parquet
  .venv-forecast/bin/python tests/panel_reference.py direct --input LONG [--id unique_id --series CAD] --time ds \\
      --target y --h 5 --params JSON [--lags ...] [--rolling-mean ...] [--exog HUFL,MUFL] --output OUT.parquet
  .venv-forecast/bin/python tests/panel_reference.py conformal --input LONG --id unique_id --time ds --target y \\
      --h 5 --n-windows 4 [--levels 80,95] [--method conformal_distribution|conformal_error] --params JSON \\
      [--lags ...] [--rolling-mean ...] --output OUT.parquet

recursive / direct / conformal: LightGBM multi-step forecasts (mlforecast recursive, skforecast ForecasterDirect,
mlforecast conformal prediction intervals); `--params` is a JSON object of LGBMRegressor keyword arguments, passed
unchanged (plus verbosity=-1). Outputs, sorted by id then step: recursive: <id>, step (1..h), prediction, origin;
direct: step, prediction, origin; conformal: <id>, step, prediction, lo_<L>, hi_<L> for each level L ascending,
origin. `origin` is the series' last original timestamp (UTC) with a target. The exact algorithms are in the
docstrings of recursive_forecast, direct_forecast and conformal_forecast; the LightGBM parameter mapping in
lgb_regressor's.

Known-in-advance covariates (`--exog C1,C2`, recursive and direct; kiln's `known_in_advance: {columns: [C1, C2]}`):
the input holds, after each series' last row with a target, FUTURE rows whose target is empty and whose C columns are
filled -- the very file `kiln predict --input` takes, so both sides read one file. History rows train the model (every
C column must be filled there); the first h future rows of each series are the covariates at the forecast's target
times: mlforecast's `predict(h, X_df=...)` (dynamic exogenous columns, fit with static_features=[]) and skforecast's
`predict(steps=h, exog=...)`. Outputs then also have `target_time` (the future row's own UTC timestamp). A series with
fewer than h future rows is an error; a row with an empty target before a series' last target is an error.
`--id` may be left out for a single series (the whole file; the output then has no id column).

CSV numbers are parsed with float_precision='round_trip' (correctly rounded, as kiln's Rust parser): pandas' default
parser is off by one ulp on about 14% of ETTh1's 16-17 digit values (on the ECB rates both parse identically).

preprocess: the feature table of
  MLForecast(models=[], freq=1, lags=[1..7],
             lag_transforms={1: [RollingMean(7), RollingStd(7), RollingMean(28), RollingStd(28)]})
  .preprocess(df, id_col, time_col, target_col, static_features=[], dropna=True)
Output columns: <id> (string), <time> (timestamp, UTC: the row's own original timestamp), <target> (y[t]), lag1..lag7,
rolling_mean_lag1_window_size7, rolling_std_lag1_window_size7, rolling_mean_lag1_window_size28,
rolling_std_lag1_window_size28 (mlforecast's names), sorted by id then time.

Irregular dates: mlforecast's lags and lag transforms are row based within each series, but `preprocess` validates
the timestamps against `freq` and refuses series with gaps ("Series contain missing or duplicate timestamps with the
specified freq"): the ECB rates are business days with the TARGET holidays missing, so neither 'B' nor 'D' passes, and
`fill_gaps` would add rows. So each series' timestamps are replaced by a per-series integer counter 0, 1, 2, ...
(freq=1, which mlforecast validates as gap-free by construction) and the original timestamps are joined back on
(id, counter) afterwards: the rows are exactly the input rows, in their own order within each series.

How this maps onto `kiln features` (current y, lag 1-6, rolling 7/28 mean/std of y, horizon 1): kiln's row at origin
t of series s is this table's row at the NEXT timestamp of s, with kiln's y = lag1, y_lag_k = lag{k+1},
y_rolling_<stat>_<w> = rolling_<stat>_lag1_window_size<w>, and kiln's label = this table's y. kiln also keeps the last
origin of every series (label null), which has no row here.
"""

import argparse
import json
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMax, RollingMean, RollingMin, RollingStd
from mlforecast.utils import PredictionIntervals

COUNTER = "__kiln_step"  # the per-series integer time index handed to mlforecast
LAGS = list(range(1, 8))
ROLLING_WINDOWS = (7, 28)


# -- input / output -------------------------------------------------------------------------------------------------

SINGLE = "__kiln_series"  # the id column given to the libraries when the file is one series (no --id)


def read_long(path, id_col, time_col, target_col, exog=()):
    """A long panel file (CSV or Parquet) as a frame of id (str), time (datetime64 UTC), target (float64) and the
    `exog` columns (float64, in the order given), sorted by id then time. Naive timestamps are taken as UTC. With
    id_col None the file is one series: the id column SINGLE (value '0') is added."""
    path = Path(path)
    exog = list(exog)
    wanted = ([id_col] if id_col else []) + [time_col, target_col] + exog
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path, columns=wanted)
    else:
        frame = pd.read_csv(path, usecols=wanted, dtype={id_col: str} if id_col else None, na_values=["N/A"],
                            float_precision="round_trip")
    if not id_col:
        id_col = SINGLE
        frame[id_col] = "0"
    frame = frame[[id_col, time_col, target_col] + exog]
    frame[id_col] = frame[id_col].astype(str)
    frame[time_col] = pd.to_datetime(frame[time_col], utc=True)
    for column in [target_col] + exog:
        frame[column] = frame[column].astype("float64")
    if frame.duplicated([id_col, time_col]).any():
        sys.exit(f"{path}: duplicate ({id_col}, {time_col}) rows")
    return frame.sort_values([id_col, time_col], kind="stable").reset_index(drop=True)


def split_future(frame, id_col, target_col, exog):
    """(history, future): each series' rows up to its last target, and the rows after it (empty target: the known
    covariates of the target times to forecast). Refuses an empty target before a series' last target, an empty
    `exog` value anywhere, and future rows without `exog` columns to read."""
    has_target = frame[target_col].notna()
    seen_after = has_target[::-1].groupby(frame[id_col][::-1], sort=False).cummax()[::-1]  # a target here or later
    future = ~seen_after
    gaps = ~has_target & seen_after
    if gaps.any():
        row = frame[gaps].iloc[0]
        sys.exit(f"series {row[id_col]!r}: empty {target_col} before the series' last target ({row.iloc[1]})")
    if future.any() and not exog:
        sys.exit("rows with an empty target (future rows) need --exog: the covariates they hold")
    if exog and frame[exog].isna().any().any():
        sys.exit(f"an empty value in the known covariates {exog}")
    if (~future).groupby(frame[id_col]).sum().min() == 0:
        sys.exit("a series has no row with a target")
    return frame[~future].reset_index(drop=True), frame[future].reset_index(drop=True)


def future_rows(future, id_col, h, ids):
    """The first h future rows of every series in `ids` (error if a series has fewer)."""
    first = future[future.groupby(id_col, sort=False).cumcount() < h]
    counts = first.groupby(id_col).size().reindex(ids, fill_value=0)
    if (counts < h).any():
        short = counts[counts < h]
        sys.exit(f"fewer than h={h} future rows (target empty, covariates filled) for series "
                 f"{', '.join(f'{i!r} ({n})' for i, n in short.items())}")
    return first.reset_index(drop=True)


def with_counter(frame, id_col, time_col):
    """The frame with the time column replaced by a per-series integer counter, and the (id, counter) -> original
    timestamp map to restore it. Rows must be sorted by id then time (read_long does)."""
    counter = frame.groupby(id_col, sort=False).cumcount().astype("int64")
    times = pd.DataFrame({id_col: frame[id_col], COUNTER: counter, time_col: frame[time_col]})
    indexed = frame.drop(columns=[time_col]).assign(**{COUNTER: counter})
    return indexed, times


def restore_time(table, times, id_col, time_col):
    """Replace the counter in mlforecast's output by the original UTC timestamps (same position: second column)."""
    restored = table.merge(times, on=[id_col, COUNTER], how="left", validate="one_to_one")
    if restored[time_col].isna().any():
        raise AssertionError("a row of mlforecast's output has no original timestamp")
    columns = [id_col, time_col] + [c for c in table.columns if c not in (id_col, COUNTER)]
    restored = restored[columns].sort_values([id_col, time_col], kind="stable").reset_index(drop=True)
    restored[id_col] = restored[id_col].astype(str)
    restored[time_col] = restored[time_col].astype("datetime64[us, UTC]")
    return restored


def write_parquet(frame, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


# -- mlforecast ----------------------------------------------------------------------------------------------------

def make_forecaster(models=None, num_threads=1):
    """The MLForecast whose features the panel tests compare kiln against (freq=1: the integer counter)."""
    return MLForecast(
        models=models if models is not None else [],
        freq=1,
        lags=LAGS,
        lag_transforms={1: [stat(w) for w in ROLLING_WINDOWS for stat in (RollingMean, RollingStd)]},
        num_threads=num_threads,
    )


def features(frame, id_col, time_col, target_col):
    """mlforecast's preprocess of a long frame (read_long's), with the original timestamps restored."""
    indexed, times = with_counter(frame, id_col, time_col)
    table = make_forecaster().preprocess(indexed, id_col=id_col, time_col=COUNTER, target_col=target_col,
                                         static_features=[], dropna=True)
    return restore_time(table, times, id_col, time_col)


# -- forecasting models (recursive, direct, conformal) --------------------------------------------------------------

MODEL = "lgb"  # the model's name in mlforecast's output columns


def lgb_regressor(params):
    """LGBMRegressor(**params), plus verbosity=-1 unless params set verbosity/verbose themselves.

    LightGBM 4.7's sklearn wrapper hands its constructor arguments to the native library under their sklearn names,
    which LightGBM resolves as aliases (checked: lgb.train with the native names below builds identical trees, and
    booster_.model_to_string()'s parameters section lists them):
      n_estimators -> num_iterations (given to lgb.train as num_boost_round)   boosting_type -> boosting
      min_child_samples -> min_data_in_leaf      min_child_weight -> min_sum_hessian_in_leaf
      min_split_gain -> min_gain_to_split        subsample -> bagging_fraction       subsample_freq -> bagging_freq
      colsample_bytree -> feature_fraction       reg_alpha -> lambda_l1              reg_lambda -> lambda_l2
      subsample_for_bin -> bin_construct_sample_cnt    random_state -> seed          n_jobs -> num_threads
    plus objective='regression' and metric='l2' (LGBMRegressor's), and any other keyword (deterministic,
    force_row_wise, max_bin, ...) passed through as is. The wrapper's defaults equal the native ones (num_leaves 31,
    max_depth -1, learning_rate 0.1, 100 iterations, min_data_in_leaf 20, min_sum_hessian_in_leaf 1e-3,
    bagging_fraction 1, bagging_freq 0 -- so subsample < 1 does nothing without subsample_freq > 0, natively too --,
    feature_fraction 1, lambda_l1/l2 0, min_gain_to_split 0, bin_construct_sample_cnt 200000), except:
      random_state=None passes no seed (native sub-seeds keep their defaults); an int becomes `seed`, from which
        LightGBM derives bagging_seed, feature_fraction_seed, data_random_seed, ... (seed=1: 18467, 26500, 41);
      n_jobs=None becomes num_threads = the number of PHYSICAL cores (native default 0 = OpenMP's default);
        negative n_jobs follow joblib (-1 = all cores);
      verbosity: the native default is 1; set to -1 here (no effect on the model).
    """
    params = dict(params)
    if "verbosity" not in params and "verbose" not in params:
        params["verbosity"] = -1
    return lgb.LGBMRegressor(**params)


def rolling_transform(window):
    """RollingMean(w) for a window w; RollingMin(w) or RollingMax(w) for ('min', w) or ('max', w)."""
    if isinstance(window, tuple):
        stat, w = window
        return {"min": RollingMin, "max": RollingMax}[stat](w)
    return RollingMean(window)


def transform_windows(args):
    """The lag-1 transforms of the flags, in mlforecast's (and kiln's) order: the means, then min and max per
    window."""
    return parse_ints(args.rolling_mean) + [(stat, w) for w in parse_ints(args.rolling_minmax)
                                           for stat in ("min", "max")]


def make_model_forecaster(params, lags, windows):
    """MLForecast(models={'lgb': LGBMRegressor(**params)}, freq=1, lags, lag_transforms={1: RollingMean(w)...})."""
    return MLForecast(
        models={MODEL: lgb_regressor(params)},
        freq=1,
        lags=lags,
        lag_transforms={1: [rolling_transform(w) for w in windows]} if windows else {},
        num_threads=1,
    )


def with_step(predictions, frame, id_col, time_col, value_cols):
    """mlforecast's forecast frame (id, counter, value columns) as id, step (1..h), the value columns (float64) and
    origin (each series' last original UTC timestamp), sorted by id then step."""
    ends = frame.groupby(id_col, sort=False).agg(**{"__n": (time_col, "size"), "origin": (time_col, "last")})
    out = predictions.merge(ends, left_on=id_col, right_index=True, how="left", validate="many_to_one")
    out["step"] = (out[COUNTER] - out["__n"] + 1).astype("int64")  # the last row's counter is n - 1
    out = out.rename(columns=value_cols)[[id_col, "step", *value_cols.values(), "origin"]]
    for c in value_cols.values():
        out[c] = out[c].astype("float64")
    out[id_col] = out[id_col].astype(str)
    out["origin"] = out["origin"].astype("datetime64[us, UTC]")
    return out.sort_values([id_col, "step"], kind="stable").reset_index(drop=True)


def with_target_time(out, future, id_col, time_col):
    """`out` (id, step, ...) with `target_time`: the time of each series' step-th future row (UTC)."""
    times = future[[id_col, time_col]].assign(step=future.groupby(id_col, sort=False).cumcount() + 1)
    times = times.rename(columns={time_col: "target_time"})
    out = out.merge(times, on=[id_col, "step"], how="left", validate="one_to_one")
    out["target_time"] = out["target_time"].astype("datetime64[us, UTC]")
    return out


def recursive_forecast(frame, id_col, time_col, target_col, h, params, lags, windows, exog=()):
    """mlforecast 1.1.0's recursive forecast: MLForecast(models={'lgb': LGBMRegressor(**params)}, freq=1,
    lags=lags, lag_transforms={1: [RollingMean(w) for w in windows]}).fit(df, static_features=[]).predict(h).

    Time: each series' rows (sorted by time) get the integer counter 0..n_s-1 (see the module docstring), so
    irregular dates do not matter; only the row order within a series counts.

    Training rows (preprocess with dropna=True): for every series s and every row index t (0-based) of s,
      features  lag<k> = y[t-k] for each k in lags (in the given order), then
                rolling_mean_lag1_window_size<w> = mean(y[t-w], ..., y[t-1]) for each w in windows (in order),
      target    y[t];
    a row is kept iff no feature is missing, i.e. t >= max(max(lags), max(windows)) (28 for the defaults): no
    padding, no partial windows. One model is trained on the rows of all series stacked, series sorted by id, time
    ascending within each. LightGBM gets the features in exactly this order, as a float64 pandas frame:
    lag1..lag7, rolling_mean_lag1_window_size7, rolling_mean_lag1_window_size28 (defaults; fc.ts.features_order_).
    Floating point of the training rolling mean (coreforecast, reproduced bit for bit on all 17 ECB series):
      acc = 0; for i in 0..n-1: acc = acc + y[i] if i < w else acc + (y[i] - y[i-w]); m[i] = acc / w (i >= w-1)
    and the feature of row t is m[t-1] (a running sum, NOT a fresh sum of each window).

    Forecast (recursive, per series, from its last row): let e = the series' values, extended with each prediction
    as it is made. For step j = 1..h, with T = len(e) (= n_s + j - 1):
      lag<k> = e[T-k], rolling_mean_lag1_window_size<w> = (((e[T-w] + e[T-w+1]) + ...) + e[T-1]) / w
    (a fresh left-to-right sum of the last w values, divided by w: at predict time coreforecast does NOT continue the
    running sum), prediction_j = model(features), then e.append(prediction_j). So lags and rolling means include
    earlier predictions once the step passes them. Checked: hand-computed features + a native lgb.train model
    reproduce mlforecast's predictions exactly.

    With `exog` (known covariates C1..Cm, dynamic exogenous columns: fit with static_features=[] treats every column
    but id, time and target as one): the fit frame's columns are id, target, C1..Cm, counter, so mlforecast's
    features_order_ puts C1..Cm FIRST (in the --exog order), then the lags, then the transforms. The training row of
    target index t holds Ci = x_i[t] (the covariate at the row's own, i.e. the target's, time; no lag) and is kept
    by the same warm-up rule (covariates are never missing in the history). Forecast step j holds Ci = the j-th
    future row's value (X_df, one row per series per step, the counters n_s .. n_s+h-1 continuing the history's),
    i.e. x_i at the step's target time. So in kiln's terms (origin t = target index - 1): known_in_advance Ci_at_target
    = x_i[t+1] for training (the next-step model) and x_i[t+j] for step j of the forecast from t.
    """
    exog = list(exog)
    history, future = split_future(frame, id_col, target_col, exog)
    counted = pd.concat([history, future]).sort_values([id_col, time_col], kind="stable").reset_index(drop=True)
    indexed_all, _ = with_counter(counted, id_col, time_col)
    is_future = counted[target_col].isna().to_numpy()
    indexed = indexed_all[~is_future].reset_index(drop=True)
    fcst = make_model_forecaster(params, lags, windows)
    fcst.fit(indexed, id_col=id_col, time_col=COUNTER, target_col=target_col, static_features=[])
    if not exog:
        return with_step(fcst.predict(h=h), history, id_col, time_col, {MODEL: "prediction"})
    if list(fcst.ts.features_order_[:len(exog)]) != exog:
        raise AssertionError(f"mlforecast's feature order {fcst.ts.features_order_} does not start with {exog}")
    x_df = future_rows(indexed_all[is_future].reset_index(drop=True), id_col, h, history[id_col].unique())
    predictions = fcst.predict(h=h, X_df=x_df[[id_col, COUNTER, *exog]])
    out = with_step(predictions, history, id_col, time_col, {MODEL: "prediction"})
    return with_target_time(out, future, id_col, time_col)


def direct_forecast(frame, id_col, time_col, target_col, series, h, params, lags, windows, exog=()):
    """skforecast 0.26's ForecasterDirect(estimator=LGBMRegressor(**params), steps=h, lags=lags,
    window_features=RollingFeatures(stats=['mean', ...], window_sizes=windows), n_jobs=1) on ONE series (0.26's
    argument is `estimator`; `regressor` is gone), fit on its whole y with a RangeIndex, predict(steps=h).

    Let y[0..n-1] be the series' values in time order and S = window_size = max(max(lags), max(windows)) (28 for the
    defaults). A training row is an ORIGIN t0 = last observed index, for t0 = S-1, ..., n-1-h (n - S - h + 1 rows):
      lag_k = y[t0+1-k]                        (lag_1 = y[t0]; columns lag_1..lag_K in the order of `lags`)
      roll_mean_w = mean(y[t0+1-w], ..., y[t0])  (pandas rolling(w, closed='left') at index t0+1: the w values
                                                  before the step-1 target, i.e. up to and including y[t0])
      feature order: lag_1..lag_7, roll_mean_7, roll_mean_28 (defaults), fitted as a numpy array;
      target of step s (1..h): y[t0+s].
    So with t = t0+1 (the step-1 target index) this is exactly mlforecast's row t: lag k = y[t-k], window over
    y[t-w..t-1]. The SAME X rows serve every step: each step's model s is a separate LGBMRegressor (a clone, same
    params, same seed) fitted on X with targets y[t0+s]; origins whose step-h target is beyond the data
    (t0 > n-1-h) are dropped for ALL steps, also for step 1 (skforecast's sliding_window_view of length S+h).
    Origins before S-1 (incomplete warm-up) are dropped too. Checked against create_train_X_y and
    filter_train_X_y_for_step, and by a native lgb.train re-implementation (exact).
    Prediction: all steps use ONE feature row from the last S values (origin n-1): lag_k = y[n-k],
    roll_mean_w = np.mean(y[n-w..n-1]); prediction_s = model_s(that row). No recursion.
    Floating point (both reproduced bit for bit on all 17 ECB series):
      training roll_mean: pandas' rolling mean (Kahan-compensated running sum): for each new index i the values
        leaving the window are removed, then the entering ones added, each with its own compensation c:
        remove v: yk = -v - c_rem; t = sum + yk; c_rem = (t - sum) - yk; sum = t
        add v:    yk = v - c_add;  t = sum + yk; c_add = (t - sum) - yk; sum = t
        mean = sum / nobs (and = the value itself when the last nobs values are all equal, 0 when the sign is
        impossible); windows are [i-w, i) over the whole series from index 0.
      predict roll_mean: numpy's pairwise sum / w: w < 8: sequential sum; 8 <= w <= 128: eight accumulators
        r[j] = x[j] + x[j+8] + x[j+16] + ... over the first w - w%8 values, then
        ((r0+r1)+(r2+r3)) + ((r4+r5)+(r6+r7)), then the last w%8 values added one by one.

    With `exog` (known covariates C1..Cm): fit(y, exog=<the history's C columns, same RangeIndex>) and
    predict(steps=h, exog=<the first h future rows' C columns, index n..n+h-1>). skforecast builds the columns
    C1_step_1, .., Cm_step_1, C1_step_2, .. for the origin t0 from x[t0+s] (the covariate at step s's TARGET time),
    and model s is fitted on lag_*, the window features, then C1_step_s..Cm_step_s (exog LAST, in the --exog order;
    checked with create_train_X_y / filter_train_X_y_for_step). The training origins are unchanged (the covariates of
    every kept origin's steps lie inside the history). At predict time model s gets the s-th future row's values. In
    kiln's terms: known_in_advance listed AFTER the lags and windows, Ci_at_target = x_i[t0+s] for step s's model.
    """
    from skforecast.direct import ForecasterDirect
    from skforecast.preprocessing import RollingFeatures

    exog = list(exog)
    if series is None:
        if frame[id_col].nunique() != 1:
            sys.exit("direct: --series is required when the file has more than one series")
        series = frame[id_col].iloc[0]
    rows = frame[frame[id_col] == series].reset_index(drop=True)
    if rows.empty:
        sys.exit(f"no rows for series {series!r}")
    rows, future = split_future(rows, id_col, target_col, exog)
    y = pd.Series(rows[target_col].to_numpy(dtype="float64"), index=pd.RangeIndex(len(rows)), name=target_col)
    forecaster = ForecasterDirect(
        estimator=lgb_regressor(params),
        steps=h,
        lags=list(lags) if lags else None,
        window_features=RollingFeatures(
            stats=[w[0] if isinstance(w, tuple) else "mean" for w in windows],
            window_sizes=[w[1] if isinstance(w, tuple) else w for w in windows],
        ) if windows else None,
        n_jobs=1,
    )
    if not exog:
        forecaster.fit(y=y)
        pred = forecaster.predict(steps=h)
    else:
        ahead = future_rows(future, id_col, h, [series])
        forecaster.fit(y=y, exog=pd.DataFrame(rows[exog].to_numpy(dtype="float64"), columns=exog,
                                              index=pd.RangeIndex(len(rows))))
        pred = forecaster.predict(steps=h, exog=pd.DataFrame(ahead[exog].to_numpy(dtype="float64"), columns=exog,
                                                             index=pd.RangeIndex(len(rows), len(rows) + h)))
        step_columns = list(forecaster.X_train_features_names_out_)  # one step model's columns, exog unsuffixed
        if step_columns[-len(exog):] != exog or set(step_columns[:-len(exog)]) & set(exog):
            raise AssertionError(f"skforecast's step columns {step_columns} do not end with {exog}")
    out = pd.DataFrame({
        "step": np.arange(1, h + 1, dtype="int64"),
        "prediction": pred.to_numpy(dtype="float64"),
        "origin": pd.Series([rows[time_col].iloc[-1]] * h).astype("datetime64[us, UTC]"),
    })
    if exog:
        out["target_time"] = ahead[time_col].to_numpy()
        out["target_time"] = out["target_time"].astype("datetime64[us, UTC]")
    return out


def level_name(level):
    return str(int(level)) if float(level).is_integer() else str(level)


def conformal_forecast(frame, id_col, time_col, target_col, h, n_windows, levels, method, params, lags, windows):
    """mlforecast 1.1.0's conformal prediction intervals: the recursive_forecast model, fitted with
    prediction_intervals=PredictionIntervals(n_windows=W, h=h, method=method), then predict(h=h, level=levels).
    Output: prediction (= recursive_forecast's, bit for bit) and lo_<L>, hi_<L> (mlforecast's lgb-lo-L/lgb-hi-L).

    Read from forecast.py (fit -> _conformity_scores -> cross_validation(refit=False)), utilsforecast's
    backtest_splits and conformal_prediction.py, and re-implemented independently (numpy + native lgb.train): bit
    for bit equal, both methods, also with series of different lengths and end dates.

    1. Windows (per series s with n_s rows; step_size = h; test size W*h): window i = 0..W-1 has the training part
       = the first n_s - (W-i)*h rows of s and the validation part = the next h rows. So the windows are W
       consecutive, non-overlapping blocks of h rows that tile the LAST W*h rows of each series, each cut relative to
       that series' own end. Needs n_s >= W*h + 1 (mlforecast raises otherwise), and the first window's training
       part must still leave rows after the warm-up.
    2. Models: refit=False: ONE calibration model, fitted exactly like recursive_forecast (same params and seed,
       same warm-up dropping) on window 0's training parts of all series stacked (each series truncated to its first
       n_s - W*h rows). For every window i that same model forecasts h steps recursively from the end of window i's
       training part (features rebuilt from that history as in recursive_forecast; window 0 included). The final
       forecast uses a separate model fitted on the full data (= recursive_forecast).
    3. Scores: absolute errors, per series, per window, per step: s[i, s, j] = |yhat_i[s, j] - y_s[n_s-(W-i)*h+j-1]|
       for j = 1..h; array shape (W, n_series, h), series sorted by id. Nothing is pooled across series or steps:
       intervals depend on the series and on the step.
    4. Intervals for mean forecast m[s, j] (the final model's), levels sorted ascending, alpha_L = 100 - L, values
       computed with np.quantile's default method 'linear' along the window axis:
       conformal_distribution (mlforecast's default):
         the 2W numbers P = {m[s,j] - s[i,s,j] : i} U {m[s,j] + s[i,s,j] : i} (each computed in float64 first);
         lo_L = Q(P, alpha_L/200), hi_L = Q(P, 1 - alpha_L/200), with alpha_L/200 and 1 - alpha_L/200 computed in
         Python floats (L = 80: 0.1 and 0.9; L = 95: 0.025 and 0.975).
       conformal_error:
         q = Q({s[i,s,j] : i}, L/100) over the W scores; lo_L = m[s,j] - q, hi_L = m[s,j] + q.
       Q(x, p), numpy 'linear': sort x ascending (x_0..x_{n-1}), v = (n-1)*p (float64), if v >= n-1 return x_{n-1};
         k = floor(v), g = v - k, a = x_k, b = x_{k+1}, d = b - a; return b - d*(1-g) if g >= 0.5 else a + d*g.
       (With few windows the extreme levels just interpolate between the largest scores: W = 4, L = 95 gives
       v = 7*0.975 = 6.825 between the 7th and 8th of the 8 path values.)
    Only with PredictionIntervals(h=1) and a longer predict horizon would one width be reused for every step
    (mlforecast warns); this subcommand always calibrates with the same h it predicts.
    """
    indexed, _ = with_counter(frame, id_col, time_col)
    fcst = make_model_forecaster(params, lags, windows)
    fcst.fit(indexed, id_col=id_col, time_col=COUNTER, target_col=target_col, static_features=[],
             prediction_intervals=PredictionIntervals(n_windows=n_windows, h=h, method=method))
    levels = [int(lv) if float(lv).is_integer() else float(lv) for lv in levels]
    predictions = fcst.predict(h=h, level=levels)
    value_cols = {MODEL: "prediction"}
    for lv in sorted(levels):
        value_cols[f"{MODEL}-lo-{lv}"] = f"lo_{level_name(lv)}"
        value_cols[f"{MODEL}-hi-{lv}"] = f"hi_{level_name(lv)}"
    return with_step(predictions, frame, id_col, time_col, value_cols)


# -- subcommands ---------------------------------------------------------------------------------------------------

def cmd_preprocess(args):
    frame = read_long(args.input, args.id, args.time, args.target)
    table = features(frame, args.id, args.time, args.target)
    write_parquet(table, args.output)
    print(f"{args.output}: {len(table)} rows x {table.shape[1]} columns, {table[args.id].nunique()} series "
          f"(from {len(frame)} input rows)", file=sys.stderr)


def ecb_panel(path):
    """The ECB reference rates (wide: Date newest first, one column per currency, 'N/A' for missing, a trailing empty
    column) as a long panel unique_id/ds/y of the currencies with no missing value at all, sorted by id then date."""
    wide = pd.read_csv(path, na_values=["N/A"])
    wide = wide.loc[:, [c for c in wide.columns if not c.startswith("Unnamed")]]
    currencies = [c for c in wide.columns if c != "Date" and wide[c].notna().all()]
    long = wide.melt(id_vars="Date", value_vars=currencies, var_name="unique_id", value_name="y")
    long = long.rename(columns={"Date": "ds"})[["unique_id", "ds", "y"]]
    long["ds"] = pd.to_datetime(long["ds"], utc=True).astype("datetime64[us, UTC]")
    long["y"] = long["y"].astype("float64")
    return long.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def cmd_ecb_panel(args):
    panel = ecb_panel(args.input)
    if str(args.output).lower().endswith(".csv"):
        panel.assign(ds=panel["ds"].dt.strftime("%Y-%m-%d")).to_csv(args.output, index=False)
    else:
        write_parquet(panel, args.output)
    print(f"{args.output}: {panel['unique_id'].nunique()} series ({', '.join(panel['unique_id'].unique())}), "
          f"{len(panel)} rows", file=sys.stderr)


def parse_ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def parse_floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def report(args, table, what):
    print(f"{args.output}: {what}, {len(table)} rows", file=sys.stderr)


def parse_names(text):
    return [v.strip() for v in str(text).split(",") if v.strip()]


def cmd_recursive(args):
    exog = parse_names(args.exog)
    frame = read_long(args.input, args.id, args.time, args.target, exog)
    id_col = args.id or SINGLE
    table = recursive_forecast(frame, id_col, args.time, args.target, args.h, json.loads(args.params),
                               parse_ints(args.lags), transform_windows(args), exog)
    n_series = table[id_col].nunique()
    if not args.id:
        table = table.drop(columns=[SINGLE])
    write_parquet(table, args.output)
    report(args, table, f"recursive h={args.h} for {n_series} series" + (f", known {exog}" if exog else ""))


def cmd_direct(args):
    exog = parse_names(args.exog)
    frame = read_long(args.input, args.id, args.time, args.target, exog)
    if args.series is not None and not args.id:
        sys.exit("direct: --series needs --id")
    table = direct_forecast(frame, args.id or SINGLE, args.time, args.target, args.series, args.h,
                            json.loads(args.params), parse_ints(args.lags), transform_windows(args), exog)
    write_parquet(table, args.output)
    report(args, table, f"direct h={args.h} for " + (f"series {args.series}" if args.series else "the one series")
                        + (f", known {exog}" if exog else ""))


def cmd_conformal(args):
    frame = read_long(args.input, args.id, args.time, args.target)
    table = conformal_forecast(frame, args.id, args.time, args.target, args.h, args.n_windows,
                               parse_floats(args.levels), args.method, json.loads(args.params),
                               parse_ints(args.lags), transform_windows(args))
    write_parquet(table, args.output)
    report(args, table, f"conformal h={args.h} n_windows={args.n_windows} levels={args.levels} "
                        f"for {table[args.id].nunique()} series")


def parser():
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preprocess", help="mlforecast's feature table of a long panel file")
    pre.add_argument("--input", required=True, help="long panel: CSV or Parquet")
    pre.add_argument("--id", required=True, help="the series column")
    pre.add_argument("--time", required=True, help="the time column")
    pre.add_argument("--target", required=True, help="the target column")
    pre.add_argument("--output", required=True, help="Parquet file to write")
    pre.set_defaults(func=cmd_preprocess)
    ecb = sub.add_parser("ecb-panel", help="melt the wide ECB rates file to a long panel (full-history currencies)")
    ecb.add_argument("--input", default=str(Path(__file__).resolve().parent.parent / "data/ecb_eurofxref-hist.csv"))
    ecb.add_argument("--output", required=True, help="Parquet (or .csv) file to write")
    ecb.set_defaults(func=cmd_ecb_panel)

    def model_parser(name, help_text, func, known=False):
        """known: the id may be left out (a file of one series) and --exog is taken (recursive, direct)."""
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--input", required=True, help="long panel: CSV or Parquet")
        cmd.add_argument("--id", required=not known,
                         help="the series column" + (" (leave out for a file of one series)" if known else ""))
        if known:
            cmd.add_argument("--exog", default="",
                             help="comma-separated known covariates (kiln's known_in_advance), taken at the target "
                                  "time; the input's rows after each series' last target hold their future values")
        cmd.add_argument("--time", required=True, help="the time column")
        cmd.add_argument("--target", required=True, help="the target column")
        cmd.add_argument("--h", type=int, required=True, help="forecast horizon (steps)")
        cmd.add_argument("--params", required=True, help="LGBMRegressor keyword arguments as a JSON object")
        cmd.add_argument("--lags", default=",".join(map(str, LAGS)), help="comma-separated lags (default 1..7)")
        cmd.add_argument("--rolling-mean", default="7,28",
                         help="comma-separated rolling-mean windows over lag 1 (default 7,28; '' for none)")
        cmd.add_argument("--rolling-minmax", default="",
                         help="comma-separated windows of a rolling min and max over lag 1")
        cmd.add_argument("--output", required=True, help="Parquet file to write")
        cmd.set_defaults(func=func)
        return cmd

    model_parser("recursive", "mlforecast recursive multi-step LightGBM forecast of every series", cmd_recursive,
                 known=True)
    direct = model_parser("direct", "skforecast ForecasterDirect LightGBM forecast of one series", cmd_direct,
                          known=True)
    direct.add_argument("--series", help="the id of the series to forecast (needed when the file has several)")
    conf = model_parser("conformal", "mlforecast recursive forecast with conformal prediction intervals",
                        cmd_conformal)
    conf.add_argument("--n-windows", type=int, required=True, help="PredictionIntervals(n_windows=...)")
    conf.add_argument("--levels", default="80,95", help="comma-separated interval levels in percent")
    conf.add_argument("--method", default="conformal_distribution",
                      choices=["conformal_distribution", "conformal_error"],
                      help="PredictionIntervals(method=...) (mlforecast's default: conformal_distribution)")
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
