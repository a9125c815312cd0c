"""kiln's native tree evaluation gives the libraries' own predictions on the shipped models.

kiln predicts LightGBM and XGBoost models with its own evaluation of their trees (`crates/kiln-models/src/native`,
whose Rust tests compare it with the libraries bit for bit on 100,000 probe rows per objective). Here the shipped
experiments are trained, scored by `kiln predict --with-features` into Parquet (exact doubles), and the same feature
rows are predicted by Python's LightGBM from the bundle's `model.lgb`: equal bit for bit. XGBoost models are
predicted by Python's xgboost 3.2 from `model.json` (kiln links the same 3.2.0; both sum the f32 leaves in the same
order): equal bit for bit too (with kiln's XGBoost 1.6.2 this was only within 1e-6 relative)."""

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_kiln

# (experiment, its data file)
LIGHTGBM = [("eurusd", "data/ecb_eurofxref-hist.csv"), ("etth1", "data/ETTh1.csv"),
            ("churn", "data/Telco-Customer-Churn_IBM.csv")]
XGBOOST = [("eurusd_xgboost", "data/ecb_eurofxref-hist.csv"),
           ("churn_xgboost", "data/Telco-Customer-Churn_IBM.csv")]


def scored(experiment, data, tmp_path):
    store = tmp_path / "mlruns"
    run_kiln("train", "--config", f"conf/experiments/{experiment}.yaml", "--tracking-uri", store)
    bundle = next(store.glob("*/*/artifacts/model"))
    out = tmp_path / "scored.parquet"
    run_kiln("predict", "--model", bundle, "--input", REPO / data, "--output", out, "--with-features")
    return bundle, pd.read_parquet(out)


@pytest.mark.parametrize("experiment,data", LIGHTGBM, ids=[e for e, _ in LIGHTGBM])
def test_lightgbm_models_predict_as_lightgbm_bit_for_bit(experiment, data, tmp_path):
    import lightgbm

    bundle, df = scored(experiment, data, tmp_path)
    booster = lightgbm.Booster(model_file=str(bundle / "model.lgb"))
    features = booster.feature_name()
    python = booster.predict(df[features].to_numpy(dtype=np.float64), num_threads=1)
    kiln = df["raw_prediction"].to_numpy()
    assert len(kiln) > 1000
    differ = np.flatnonzero(python.view(np.uint64) != kiln.view(np.uint64))
    assert differ.size == 0, (experiment, differ[:5], python[differ[:5]], kiln[differ[:5]])


@pytest.mark.parametrize("experiment,data", XGBOOST, ids=[e for e, _ in XGBOOST])
def test_xgboost_models_predict_as_xgboost(experiment, data, tmp_path):
    import xgboost

    bundle, df = scored(experiment, data, tmp_path)
    booster = xgboost.Booster(model_file=str(bundle / "model.json"))
    features = booster.feature_names
    python = booster.predict(xgboost.DMatrix(df[features].to_numpy(dtype=np.float32), feature_names=features))
    kiln = df["raw_prediction"].to_numpy()
    assert len(kiln) > 1000
    python = python.astype(np.float64)
    differ = np.flatnonzero(python.view(np.uint64) != kiln.view(np.uint64))
    assert differ.size == 0, (experiment, differ[:5], python[differ[:5]], kiln[differ[:5]])
