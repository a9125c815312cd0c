"""Checks kiln's LightGBM adapter against the Python LightGBM package and the bundle against MLflow's loaders.

First export with Rust (writes <tmp>/kiln-lgb-crosscheck):
    cargo test --release -p kiln-models -- --ignored export_for_python_crosscheck
then run, with a Python that has lightgbm==4.7.0 (and mlflow==3.17.2 for the bundle part):
    python crates/kiln-models/scripts/lgb_crosscheck.py [export dir]
Passes when Python's predictions equal kiln's within 1e-9 (float64 input on both sides).
"""

import os
import sys
import tempfile

import lightgbm as lgb
import numpy as np

TOLERANCE = 1e-9
FEATURES = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.gettempdir(), "kiln-lgb-crosscheck")
with open(os.path.join(d, "model.lgb")) as f:
    booster = lgb.Booster(model_str=f.read())
x = np.loadtxt(os.path.join(d, "x.csv"), delimiter=",", dtype=np.float64, ndmin=2)
kiln = np.loadtxt(os.path.join(d, "pred.csv"), dtype=np.float64)
python = booster.predict(x)
diff = float(np.max(np.abs(python - kiln)))
print(f"lightgbm {lgb.__version__}: {len(kiln)} rows ({int(np.isnan(x).any(axis=1).sum())} with NaN), "
      f"{booster.num_trees()} trees, max |python - kiln| = {diff:.3e}, identical rows: {int((python == kiln).sum())}")
assert diff < TOLERANCE, f"max diff {diff} exceeds {TOLERANCE}"

if os.path.isdir(os.path.join(d, "bundle")):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import pandas as pd

    bundle = os.path.join(d, "bundle")
    expected = np.loadtxt(os.path.join(d, "bundle_pred.csv"), dtype=np.float64)
    native = mlflow.lightgbm.load_model(bundle).predict(x[:5])
    frame = pd.DataFrame(x[:5], columns=FEATURES)
    pyfunc = np.asarray(mlflow.pyfunc.load_model(bundle).predict(frame), dtype=np.float64)
    bdiff = float(max(np.max(np.abs(native - expected)), np.max(np.abs(pyfunc - expected))))
    print(f"mlflow {mlflow.__version__}: lightgbm and pyfunc loaders read the bundle, max |diff| = {bdiff:.3e}")
    assert bdiff < TOLERANCE, f"bundle max diff {bdiff} exceeds {TOLERANCE}"
print("ok")
