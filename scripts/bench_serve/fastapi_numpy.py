"""The LightGBM model served by an optimised FastAPI app: the same pydantic validation, but an `async` endpoint (no
thread-pool hop), the record turned into one float64 numpy row in the model's feature order (no DataFrame), and
`booster.predict(row, num_threads=1)` (no OpenMP fan-out for one row). Run by uvicorn's own supervisor with 2 worker
processes, uvloop and httptools, no access log:

    BENCH_MODEL_FILE=<bundle>/model.lgb uvicorn --app-dir scripts/bench_serve fastapi_numpy:app --workers 2 \
        --loop uvloop --http httptools --no-access-log --port PORT
"""

import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import create_model

booster = lgb.Booster(model_file=os.environ["BENCH_MODEL_FILE"])
FEATURES = booster.feature_name()
Record = create_model("Record", **{name: (float, ...) for name in FEATURES})
app = FastAPI(title="LightGBM regression (numpy row)")


@app.get("/ready")
async def ready():
    return {"status": "ready"}


@app.post("/predict")
async def predict(record: Record):
    row = np.array([[getattr(record, name) for name in FEATURES]], dtype=np.float64)
    return {"prediction": float(booster.predict(row, num_threads=1)[0])}
