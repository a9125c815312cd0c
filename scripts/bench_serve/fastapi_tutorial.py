"""The LightGBM model served the way a typical FastAPI tutorial does: a pydantic model with one field per feature, a
pandas DataFrame built per request, `booster.predict(df)` with LightGBM's defaults, a sync endpoint.

    BENCH_MODEL_FILE=<bundle>/model.lgb gunicorn -w 2 -k uvicorn.workers.UvicornWorker -b 127.0.0.1:PORT \
        --chdir scripts/bench_serve fastapi_tutorial:app
"""

import os

import lightgbm as lgb
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

booster = lgb.Booster(model_file=os.environ["BENCH_MODEL_FILE"])
app = FastAPI(title="LightGBM regression")


class Record(BaseModel):
    f01: float
    f02: float
    f03: float
    f04: float
    f05: float
    f06: float
    f07: float
    f08: float
    f09: float
    f10: float
    f11: float
    f12: float
    f13: float
    f14: float
    f15: float
    f16: float
    f17: float
    f18: float
    f19: float
    f20: float


@app.get("/ready")
def ready():
    return {"status": "ready"}


@app.post("/predict")
def predict(record: Record):
    df = pd.DataFrame([record.model_dump()])
    prediction = booster.predict(df)
    return {"prediction": float(prediction[0])}
