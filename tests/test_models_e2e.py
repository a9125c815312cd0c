"""Every model kind end to end, classification on Telco churn, and the no-leakage guarantee.

References: scikit-learn for the classification metrics, MLflow's Python client and the xgboost package for the
XGBoost bundle, numpy for the SHAP additivity."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conftest import REPO, run_kiln
from stub_sources import SourceStub

EXPERIMENTS = sorted(p.name for p in (REPO / "conf/experiments").glob("*.yaml"))
KINDS = ["lightgbm", "xgboost", "random_forest", "linear", "ridge", "lasso", "elastic_net", "logistic"]


def _run_dir(store: Path) -> Path:
    runs = [m.parent for m in store.glob("*/*/meta.yaml") if (m.parent / "artifacts").is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _metrics(run: Path) -> dict:
    """Every metric's last value, by key (`test/rmse`: keys with `/` are sub-folders in MLflow's file store)."""
    root = run / "metrics"
    return {p.relative_to(root).as_posix(): float(p.read_text().splitlines()[-1].split()[1])
            for p in root.rglob("*") if p.is_file()}


def test_there_is_an_example_experiment_for_every_model_kind():
    kinds = set()
    for name in EXPERIMENTS:
        text = (REPO / "conf/experiments" / name).read_text()
        proc = run_kiln("config", "show", f"conf/experiments/{name}")
        shown = proc.stdout
        kinds.add(shown.split("model:\n  kind: ")[1].split("\n")[0])
        assert text  # the file itself is the example
    assert set(KINDS) <= kinds, set(KINDS) - kinds


@pytest.fixture(scope="module")
def source_stub():
    server = SourceStub()
    yield server
    server.stop()


def example_data(name: str, tmp_path: Path, request) -> tuple:
    """The experiment file to train and its data file. An experiment on a `kiln fetch` snapshot (stocks.yaml) is
    fetched first, from the stub replaying Yahoo's recorded answers, into a store of the test's own."""
    config = REPO / "conf/experiments" / name
    import yaml
    data = yaml.safe_load(run_kiln("config", "show", config).stdout)["data"]
    if "snapshot" not in data:
        return config, REPO / data["path"]
    stub = request.getfixturevalue("source_stub")
    root = tmp_path / "raw"
    run_kiln("fetch", "--config", config, "--root", root, env={"KILN_YAHOO_URL": stub.url})
    wrapper = tmp_path / name
    wrapper.write_text(f"extends: {config}\ndata: {{snapshot_root: {json.dumps(str(root))}}}\n")
    [snapshot] = json.loads(run_kiln("data", "list", "--root", root, "--json").stdout)
    return wrapper, Path(snapshot["path"])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_example_experiment_trains(name, tmp_path, request):
    store = tmp_path / "mlruns"
    config, data = example_data(name, tmp_path, request)
    proc = run_kiln("train", "--config", config, "--tracking-uri", store)
    run = _run_dir(store)
    assert "status: 3" in (run / "meta.yaml").read_text()  # FINISHED
    m = _metrics(run)
    assert "test/rmse" in m or "test/roc_auc" in m, sorted(m)
    assert (run / "artifacts/model/MLmodel").is_file()
    # the model's metrics are printed beside its naive baseline's
    assert ("persistence (test)" in proc.stdout) or ("majority (test)" in proc.stdout), proc.stdout
    # the charts of its task kind: a forecast's values and residuals over time, a classifier's confusion matrix
    charts = {"forecast": ["actual_vs_predicted.png", "residuals.png"],
              "classification": ["confusion_matrix.png", "roc_curve.png", "pr_curve.png"]}
    for png in ["feature_importance.png"] + charts.get((run / "params/task.kind").read_text(), []):
        assert (run / "artifacts" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # kiln's Python package scores the raw rows exactly as `kiln predict` does (pandas 3 reads floats back round-trip,
    # so equality is bit for bit)
    import kiln
    out = tmp_path / "cli.csv"
    run_kiln("predict", "--model", run / "artifacts/model", "--input", data, "--output", out)
    cli = pd.read_csv(out)
    rows = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data)
    python = kiln.Predictor.load(run / "artifacts/model").predict(rows)
    assert list(python.columns) == list(cli.columns)
    for column in cli.columns:
        if pd.api.types.is_datetime64_any_dtype(python[column]):
            assert (pd.to_datetime(cli[column]).to_numpy() == python[column].to_numpy()).all(), column
        elif pd.api.types.is_float_dtype(python[column]):
            assert np.array_equal(cli[column].to_numpy(), python[column].to_numpy()), column
        else:
            assert list(cli[column].astype(str)) == list(python[column].astype(str)), column


def test_xgboost_bundle_loads_with_mlflow_and_predicts_like_kiln(tmp_path):
    import mlflow.xgboost
    import xgboost

    store = tmp_path / "mlruns"
    run_kiln("train", "--config", "conf/experiments/eurusd_xgboost.yaml", "--tracking-uri", store)
    bundle = _run_dir(store) / "artifacts/model"
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", bundle, "--input", "data/ecb_eurofxref-hist.csv", "--output", out,
             "--with-features")
    df = pd.read_csv(out)
    booster = mlflow.xgboost.load_model(str(bundle))
    assert isinstance(booster, xgboost.Booster)
    features = booster.feature_names
    assert features == list(df.columns[4:]), (features, list(df.columns))
    python = booster.predict(xgboost.DMatrix(df[features].to_numpy(dtype=np.float32), feature_names=features))
    diff = np.max(np.abs(python - df["raw_prediction"].to_numpy()))
    assert diff < 1e-6, diff


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    root = tmp_path_factory.mktemp("churn")
    store = root / "mlruns"
    proc = run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", store)
    return {"store": store, "run": _run_dir(store), "stdout": proc.stdout, "root": root}


def test_churn_metrics_equal_scikit_learn_and_beat_the_majority_class(churn):
    run = churn["run"]
    preds = json.loads((run / "artifacts/predictions.json").read_text())
    logged = _metrics(run)
    t = preds["threshold"]
    for part in ["train", "test"]:
        y = np.array(preds[part]["y_true"])
        p = np.array(preds[part]["proba"])
        yhat = (p >= t).astype(int)
        ref = {
            "roc_auc": skm.roc_auc_score(y, p),
            "pr_auc": skm.average_precision_score(y, p),
            "log_loss": skm.log_loss(y, p),
            "accuracy": skm.accuracy_score(y, yhat),
            "precision": skm.precision_score(y, yhat, zero_division=0),
            "recall": skm.recall_score(y, yhat),
            "f1": skm.f1_score(y, yhat),
        }
        reported = json.loads((run / "artifacts/metrics.json").read_text())["model"][part]
        for name, value in ref.items():
            assert abs(logged[f"{part}/{name}"] - value) < 1e-9, (part, name, logged[f"{part}/{name}"], value)
            assert abs(reported[name] - value) < 1e-9, ("metrics.json", part, name)
    assert logged["test/roc_auc"] > 0.8
    assert logged["test/roc_auc"] > logged["baseline/test/roc_auc"]
    assert logged["test/f1"] > logged["baseline/test/f1"]
    cm = json.loads((run / "artifacts/confusion_matrix.json").read_text())["matrix"]
    y = np.array(preds["test"]["y_true"])
    yhat = (np.array(preds["test"]["proba"]) >= t).astype(int)
    assert cm == skm.confusion_matrix(y, yhat).tolist()
    # the classes are named by the target's values
    assert json.loads((run / "artifacts/confusion_matrix.json").read_text())["labels"] == ["0 (No)", "1 (Yes)"]
    for png in ["confusion_matrix.png", "roc_curve.png", "pr_curve.png", "feature_importance.png", "shap_summary.png"]:
        assert (run / "artifacts" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (run / "artifacts/selection.json").is_file()
    assert "registered churn version 1" in churn["stdout"]


def test_churn_predict_explain_contributions_add_up(churn, tmp_path):
    out = tmp_path / "churn.csv"
    run_kiln("predict", "--model", "models:/churn@production", "--tracking-uri", churn["store"], "--input",
             "data/Telco-Customer-Churn_IBM.csv", "--output", out, "--with-features", "--explain")
    df = pd.read_csv(out)
    assert list(df.columns[:3]) == ["customerID", "probability", "class"]
    assert len(df) == 7043
    assert set(df["class"]) <= {"Yes", "No"}
    shap = df[[c for c in df.columns if c.startswith("shap_")]].to_numpy()
    margin = shap.sum(axis=1)
    # LightGBM's binary contributions are in log-odds: the sigmoid of their sum is the probability
    assert np.max(np.abs(1 / (1 + np.exp(-margin)) - df["probability"])) < 1e-9


LEAKAGE_CONFIG = """
extends: {base}
data: {{path: {data}}}
preprocess:
  - impute: {{columns: [TotalCharges], strategy: median}}
  - impute: {{columns: categorical, strategy: most_frequent}}
  - bin: {{column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long], into: tenure_group, include_lowest: true}}
  - ratio: {{numerator: TotalCharges, denominator: MonthlyCharges, into: months_billed}}
  - product: {{columns: [tenure, MonthlyCharges], into: tenure_x_monthly}}
  - ordinal: {{columns: [Contract], unknown: use_encoded_value, unknown_value: -1}}
  - one_hot: {{columns: categorical, unknown: ignore, drop: if_binary}}
  - scale: {{columns: [tenure], method: standard}}
  - scale: {{columns: [MonthlyCharges], method: minmax}}
  - scale: {{columns: [TotalCharges, months_billed, tenure_x_monthly], method: robust}}
selection:
  - variance_threshold: {{threshold: 0.0}}
  - k_best: {{k: 25, score: f_classif}}
  - k_best: {{k: 22, score: mutual_info}}
  - importance: {{threshold: 0.0}}
  - rfe: {{n_features: 15, step: 2}}
  - rfecv: {{min_features: 8, step: 3, cv: 3, scoring: roc_auc}}
model:
  params: {{num_iterations: 60}}
"""


def test_nothing_leaks_from_test_rows_into_any_fitted_step(tmp_path):
    """Fit once; perturb every test row wildly; fit again: the bundle (fitted preprocessing, selection, model) must
    be byte-identical, because only training rows reach any fitted step."""
    raw = pd.read_csv(REPO / "data/Telco-Customer-Churn_IBM.csv", dtype=str, keep_default_na=False)

    def train(csv: Path, store: Path) -> Path:
        exp = tmp_path / f"{store.name}.yaml"
        exp.write_text(LEAKAGE_CONFIG.format(base=REPO / "conf/experiments/churn.yaml", data=csv))
        run_kiln("train", "--config", exp, "--tracking-uri", store)
        return _run_dir(store)

    original = tmp_path / "original.csv"
    raw.to_csv(original, index=False)
    first = train(original, tmp_path / "a")
    test_ids = set(json.loads((first / "artifacts/predictions.json").read_text())["test"]["id"])
    assert len(test_ids) > 1000

    perturbed = raw.copy()
    rows = perturbed["customerID"].isin(test_ids)
    for col in ["tenure", "MonthlyCharges", "TotalCharges"]:
        values = pd.to_numeric(perturbed.loc[rows, col], errors="coerce") * 1000 + 7
        perturbed.loc[rows, col] = values.astype(str).replace("nan", "")
    for col in ["Contract", "PaymentMethod", "InternetService", "gender"]:
        perturbed.loc[rows, col] = "perturbed_" + perturbed.loc[rows, col]
    changed = tmp_path / "perturbed.csv"
    perturbed.to_csv(changed, index=False)
    second = train(changed, tmp_path / "b")

    for rel in ["model/model.lgb", "model/kiln/pipeline.json", "selection.json"]:
        a = (first / "artifacts" / rel).read_bytes()
        b = (second / "artifacts" / rel).read_bytes()
        assert a == b, f"{rel} changed when only test rows changed"
    # and the perturbation did reach the test rows: their predictions moved
    pa = json.loads((first / "artifacts/predictions.json").read_text())["test"]["proba"]
    pb = json.loads((second / "artifacts/predictions.json").read_text())["test"]["proba"]
    assert pa != pb
