"""kiln's feature kernels against pandas, on the shipped data: the features `kiln predict --with-features` writes
for the EUR/USD and ETTh1 models are recomputed here with pandas (shift, pct_change, rolling, expanding, ewm with
adjust=False, dt accessors) from the raw CSV and must agree within 1e-12 (relative for large values).

pandas is the reference a data scientist would otherwise use to build these features by hand."""

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_kiln

# kiln recomputes each window while pandas' rolling kernels keep running sums, so the two may differ in the last
# bits; 1e-12 is far below any value that matters and far above that rounding.
RTOL = 1e-12
ATOL = 1e-12


def rolling_std(x: pd.Series, window: int) -> pd.Series:
    """The sample standard deviation (ddof=1) of each full window, two-pass with numpy.

    Not pandas' `rolling().std()`: its running-moment algorithm drifts on long series (up to 3.5e-9 relative on the
    ECB USD column, and 2.95e-7 instead of 0 on constant ETTh1 windows), so it is not an exact reference."""
    values = x.to_numpy(dtype=float)
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(values, window)
        out[window - 1:] = windows.std(axis=1, ddof=1)
    return pd.Series(out, index=x.index)


def _calendar(ts: pd.Series, out: dict, parts, cyclical=True):
    periods = {"day_of_week": 7, "month": 12, "hour": 24, "day_of_year": 366, "day_of_month": 31}
    values = {
        "day_of_week": ts.dt.day_of_week,
        "month": ts.dt.month,
        "hour": ts.dt.hour,
        "day_of_year": ts.dt.day_of_year,
        "day_of_month": ts.dt.day,
    }
    for part in parts:
        v = values[part].astype(float)
        out[part] = v
        if cyclical:
            out[f"{part}_sin"] = np.sin(2 * np.pi * v / periods[part])
            out[f"{part}_cos"] = np.cos(2 * np.pi * v / periods[part])


def eurusd_features(raw: pd.DataFrame) -> pd.DataFrame:
    x = raw["USD"]
    out = {}
    for p in [1, 2, 5, 10, 20]:
        out[f"USD_log_return_{p}"] = np.log(x / x.shift(p))
    for w in [5, 20, 60]:
        out[f"USD_rolling_mean_{w}"] = x.rolling(w).mean()
        out[f"USD_rolling_std_{w}"] = rolling_std(x, w)
    for s in [10, 50]:
        out[f"USD_ewm_{s}"] = x.ewm(span=s, adjust=False).mean()
    for k in [1, 2, 5]:
        out[f"USD_lag_{k}"] = x.shift(k)
    _calendar(raw["Date"], out, ["day_of_week", "month"])
    return pd.DataFrame(out)


def etth1_features(raw: pd.DataFrame) -> pd.DataFrame:
    x = raw["OT"]
    out = {c: raw[c] for c in ["OT", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]}
    for k in [1, 2, 3, 24, 168]:
        out[f"OT_lag_{k}"] = x.shift(k)
    for p in [1, 24]:
        out[f"OT_diff_{p}"] = x.diff(p)
    for w in [6, 24]:
        r = x.rolling(w)
        for stat in ["mean", "std", "min", "max"]:
            out[f"OT_rolling_{stat}_{w}"] = rolling_std(x, w) if stat == "std" else getattr(r, stat)()
    out["OT_ewm_12"] = x.ewm(span=12, adjust=False).mean()
    out["OT_expanding_mean"] = x.expanding().mean()
    for k in [1, 24]:
        out[f"HUFL_lag_{k}"] = raw["HUFL"].shift(k)
    _calendar(raw["date"], out, ["hour", "day_of_week", "day_of_year"])
    return pd.DataFrame(out)


CASES = {
    "eurusd": ("conf/experiments/eurusd.yaml", "data/ecb_eurofxref-hist.csv", "Date", eurusd_features),
    "etth1": ("conf/experiments/etth1.yaml", "data/ETTh1.csv", "date", etth1_features),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_features_equal_pandas(name, tmp_path):
    config, data, time_col, reference = CASES[name]
    store = tmp_path / "mlruns"
    run_kiln("train", "--config", config, "--tracking-uri", store)
    bundle = next(store.glob("*/*/artifacts/model"))
    out = tmp_path / "features.parquet"
    run_kiln("predict", "--model", bundle, "--input", data, "--output", out, "--with-features")
    kiln = pd.read_parquet(out)

    raw = pd.read_csv(REPO / data, na_values=["N/A"])
    raw = raw.loc[:, ~raw.columns.str.startswith("Unnamed")]
    raw[time_col] = pd.to_datetime(raw[time_col])
    raw = raw.sort_values(time_col).reset_index(drop=True)
    ref = reference(raw)
    ref[time_col] = raw[time_col]
    # kiln drops the warm-up rows; align on the origin time
    kiln[time_col] = pd.to_datetime(kiln[time_col]).dt.tz_localize(None)
    merged = kiln.merge(ref, on=time_col, how="left", suffixes=("", "__pandas"), validate="one_to_one")
    assert len(merged) == len(kiln) and len(kiln) > 7000
    feature_names = [c for c in kiln.columns if c not in (time_col, "target_time", "prediction", "raw_prediction")]
    assert set(feature_names) == set(ref.columns) - {time_col}, (feature_names, list(ref.columns))
    for col in feature_names:
        k = merged[col].to_numpy(dtype=float)
        p = merged[f"{col}__pandas"].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(k), np.isnan(p)), f"{name}.{col}: NaN positions differ"
        ok = ~np.isnan(k)
        np.testing.assert_allclose(k[ok], p[ok], rtol=RTOL, atol=ATOL, err_msg=f"{name}.{col}")
