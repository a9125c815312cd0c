"""The foundation end to end: `kiln train --register` on the shipped EUR/USD data, then a real MLflow 3.17.2 server
on the produced folder, the MLflow Python client, scikit-learn as the reference for the metrics, and
`kiln predict` with every kind of model reference."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conftest import REPO, run_kiln

TOL = 1e-9


def test_rest_shows_the_run_its_params_metrics_tags_and_artifacts(mlflow_server):
    exp = mlflow_server.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name="eurusd")["experiment"]
    runs = mlflow_server.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    # every hyperparameter and the feature recipe are params
    for key in ["model.learning_rate", "model.num_leaves", "model.num_iterations", "model.seed", "model.num_threads",
                "model.deterministic", "task.target", "task.horizon", "task.target_transform", "features.0.log_return",
                "split.test_size"]:
        assert key in params, key
    assert params["task.target"] == "USD" and params["task.target_transform"] == "log_return"
    for key in ["test/rmse", "test/mae", "test/r2", "test/mape", "test/smape", "baseline/test/rmse", "train/rmse",
                "rows/warmup_dropped", "rows/train", "rows/test", "model/best_iteration"]:
        assert key in metrics, key
    assert metrics["rows/warmup_dropped"] > 0
    assert len(tags["kiln.data.sha256"]) == 64
    assert tags["kiln.config.path"] == "conf/experiments/eurusd.yaml"
    assert tags["mlflow.runName"] == "eurusd-lightgbm"
    assert "kiln.version" in tags and "mlflow.note.content" in tags
    listing = mlflow_server.get("/api/2.0/mlflow/artifacts/list", run_id=run["info"]["run_id"])
    paths = {f["path"] for f in listing["files"]}
    assert {"model", "config.yaml", "metrics.json", "feature_importance.json", "feature_importance.png",
            "predictions.json", "shap_summary.json", "shap_summary.png", "actual_vs_predicted.png",
            "residuals.png"} <= paths, paths
    model_files = {f["path"] for f in mlflow_server.get("/api/2.0/mlflow/artifacts/list", run_id=run["info"]["run_id"],
                                                          path="model")["files"]}
    assert {"model/MLmodel", "model/model.lgb", "model/kiln"} <= model_files, model_files


def test_registry_has_version_1_with_alias_production(mlflow_server):
    mv = mlflow_server.get("/api/2.0/mlflow/registered-models/alias", name="eurusd", alias="production")["model_version"]
    assert mv["version"] == "1"
    assert mv["source"].startswith("models:/m-")  # the run's logged model
    assert "production" in mv["aliases"]


def _client_env(server):
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


def test_python_client_loads_the_model_and_predicts_like_kiln(mlflow_server, eurusd_store, tmp_path):
    _client_env(mlflow_server)
    import mlflow.lightgbm

    booster = mlflow.lightgbm.load_model("models:/eurusd@production")
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", "models:/eurusd@production", "--tracking-uri", eurusd_store["store"],
             "--input", "data/ecb_eurofxref-hist.csv", "--output", out, "--with-features")
    df = pd.read_csv(out)
    features = booster.feature_name()
    assert features == list(df.columns[4:]), (features, list(df.columns))
    python = booster.predict(df[features].to_numpy(dtype=np.float64))
    diff = np.max(np.abs(python - df["raw_prediction"].to_numpy()))
    assert diff < TOL, diff
    # and the prediction in USD is the inverted log return: current * exp(raw)
    usd = pd.read_csv(REPO / "data/ecb_eurofxref-hist.csv", usecols=["Date", "USD"]).set_index("Date")["USD"]
    current = usd.loc[df["Date"]].to_numpy()
    assert np.max(np.abs(current * np.exp(df["raw_prediction"]) - df["prediction"])) < 1e-12


def test_metrics_equal_scikit_learn_on_the_same_vectors(mlflow_server):
    exp = mlflow_server.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name="eurusd")["experiment"]
    run = mlflow_server.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"][0]
    run_id = run["info"]["run_id"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/{exp['experiment_id']}/{run_id}/artifacts"
    import urllib.request
    with urllib.request.urlopen(mlflow_server.url + base + "/predictions.json") as r:
        preds = json.loads(r.read())
    with urllib.request.urlopen(mlflow_server.url + base + "/metrics.json") as r:
        reported = json.loads(r.read())
    logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    for part in ["train", "test"]:
        y, p, b = (np.array(preds[part][k]) for k in ["y_true", "y_pred", "persistence"])
        for who, yhat, block in [("model", p, reported["model"][part]), ("persistence", b, reported["persistence"][part])]:
            ref = {
                "rmse": np.sqrt(skm.mean_squared_error(y, yhat)),
                "mae": skm.mean_absolute_error(y, yhat),
                "r2": skm.r2_score(y, yhat),
                "mape": skm.mean_absolute_percentage_error(y, yhat),
                "smape": np.mean(2 * np.abs(y - yhat) / (np.abs(y) + np.abs(yhat))),
            }
            for name, value in ref.items():
                assert abs(block[name] - value) < TOL, (who, part, name, block[name], value)
                prefix = part if who == "model" else f"baseline/{part}"
                assert abs(logged[f"{prefix}/{name}"] - value) < TOL, (prefix, name)


def test_predict_agrees_for_every_kind_of_reference(eurusd_store, tmp_path):
    store = eurusd_store["store"]
    exp_dirs = [p for p in store.iterdir() if p.is_dir() and p.name not in ("0", ".trash", "models")]
    run_dir = next(r for e in exp_dirs for r in e.iterdir() if (r / "artifacts" / "model").is_dir())
    refs = ["models:/eurusd@production", "models:/eurusd/1", "models:/eurusd/latest", f"runs:/{run_dir.name}/model",
            str(run_dir / "artifacts" / "model")]
    outputs = []
    for i, ref in enumerate(refs):
        out = tmp_path / f"p{i}.parquet"
        run_kiln("predict", "--model", ref, "--tracking-uri", store, "--input", "data/ecb_eurofxref-hist.csv",
                 "--output", out)
        outputs.append(pd.read_parquet(out))
    for df in outputs[1:]:
        pd.testing.assert_frame_equal(outputs[0], df)
    assert list(outputs[0].columns) == ["Date", "target_time", "prediction"]
    assert len(outputs[0]) > 7000


def test_a_failing_gate_registers_nothing(eurusd_store, tmp_path):
    store = tmp_path / "mlruns"
    exp = tmp_path / "strict.yaml"
    exp.write_text(f"extends: {REPO / 'conf/experiments/eurusd.yaml'}\ngates:\n  max: {{rmse: 0.0000001}}\n")
    proc = run_kiln("train", "--config", exp, "--register", "--tracking-uri", store, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "rmse" in proc.stderr and "not registered" in proc.stderr
    assert not (store / "models" / "eurusd").exists() or not any((store / "models" / "eurusd").glob("version-*"))


def test_a_run_that_fails_midway_is_marked_failed(tmp_path):
    store = tmp_path / "mlruns"
    csv = tmp_path / "short.csv"
    csv.write_text("Date,USD\n" + "".join(f"2020-01-{d:02d},1.{d:02d}\n" for d in range(1, 29)))
    exp = tmp_path / "short.yaml"
    exp.write_text(f"extends: {REPO / 'conf/experiments/eurusd.yaml'}\ndata: {{path: {csv}}}\n")
    proc = run_kiln("train", "--config", exp, "--tracking-uri", store, check=False)
    assert proc.returncode != 0
    metas = [p for p in store.glob("*/*/meta.yaml")]
    assert len(metas) == 1, metas
    text = metas[0].read_text()
    assert "status: 4" in text, text  # FAILED
    assert (metas[0].parent / "tags" / "kiln.error").read_text()


def test_etth1_trains_and_beats_persistence(tmp_path):
    proc = run_kiln("train", "--config", "conf/experiments/etth1.yaml", "--register", "--tracking-uri", tmp_path / "m")
    assert "beats persistence" in proc.stdout, proc.stdout
