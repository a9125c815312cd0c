"""No silent regressions: registration compares a new model with the alias's holder, `kiln evaluate` judges a model
on new labelled rows, `kiln retrain` trains a challenger and moves the alias only when it beats the champion.

The scores kiln compares are checked against scikit-learn on the predictions `kiln predict` writes for the same
rows (tolerance 1e-9: the same float64 predictions, a different summation order)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_squared_error, roc_auc_score

from conftest import REPO, run_kiln

TELCO = REPO / "data/Telco-Customer-Churn_IBM.csv"
ETTH1 = REPO / "data/ETTh1.csv"


def write_config(path: Path, extends: str, body: str = "") -> Path:
    path.write_text(f"extends: {REPO / extends}\n{body}")
    return path


def run_tags(store: Path, run_id: str) -> dict:
    [run] = [p for p in store.glob(f"*/{run_id}") if p.is_dir()]
    return {t.name: t.read_text() for t in (run / "tags").iterdir()}


def alias_holder(store: Path, name: str, alias: str = "production") -> int:
    """The version `models:/name@alias` resolves to, from MLflow's file-store layout (`aliases/<alias>`)."""
    return int((store / "models" / name / "aliases" / alias).read_text().strip())


def last_run_id(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if l.startswith("run "))
    return line.split()[1]


def test_a_worse_model_does_not_take_the_alias_unless_forced(tmp_path):
    store = tmp_path / "mlruns"
    first = run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", store)
    assert "no version held 'production'" in first.stdout
    assert alias_holder(store, "churn") == 1

    # XGBoost scores a lower test ROC-AUC than LightGBM (0.8540 against 0.8582): registered, the alias stays
    worse = run_kiln("train", "--config", "conf/experiments/churn_xgboost.yaml", "--register", "--tracking-uri", store)
    assert "does NOT take it" in worse.stdout, worse.stdout
    assert "roc_auc 0.854013 against version 1's 0.858201 on the same 1409 rows" in worse.stdout, worse.stdout
    assert "registered churn version 2 (aliases: none)" in worse.stdout
    assert alias_holder(store, "churn") == 1
    tags = run_tags(store, last_run_id(worse.stdout))
    assert tags["kiln.alias_decision"] == "refused"
    [run] = [p for p in store.glob(f"*/{last_run_id(worse.stdout)}") if p.is_dir()]
    metric = lambda key: float((run / "metrics" / key).read_text().split()[1])  # noqa: E731  (MLflow: "ts value step")
    assert metric("registry/new_roc_auc") == pytest.approx(0.854013, abs=1e-6)
    assert metric("registry/holder_roc_auc") == pytest.approx(0.858201, abs=1e-6)
    # and on the versions, where MLflow's file store keeps them
    v2_tags = store / "models/churn/version-2/tags"
    assert (v2_tags / "kiln.alias_decision").read_text() == "refused"
    assert (store / "models/churn/version-1/tags/kiln.last_challenge").read_text().startswith(
        "challenged by version 2: refused")
    assert "stays on version 1" in tags["kiln.alias_reason"]
    assert tags["kiln.registered"] == "churn/2"

    # --force moves it, and says so
    forced = run_kiln("train", "--config", "conf/experiments/churn_xgboost.yaml", "--register", "--force",
                      "--tracking-uri", store)
    assert "takes (FORCED)" in forced.stdout and "moved by --force" in forced.stdout, forced.stdout
    assert alias_holder(store, "churn") == 3
    assert run_tags(store, last_run_id(forced.stdout))["kiln.alias_decision"] == "forced"

    # the same model again is as good as itself: it takes the alias
    again = run_kiln("train", "--config", "conf/experiments/churn_xgboost.yaml", "--register", "--tracking-uri", store)
    assert "the new version takes it" in again.stdout and "version 3's 0.854013" in again.stdout, again.stdout
    assert alias_holder(store, "churn") == 4

    # --force without --register is refused by the flags
    proc = run_kiln("train", "--config", "conf/experiments/churn.yaml", "--force", "--tracking-uri", store, check=False)
    assert proc.returncode == 2 and "--register" in proc.stderr


def test_the_comparison_on_an_mlflow_server_tags_both_versions(mlflow_server, tmp_path):
    """The holder is downloaded from the server (bundle cache) and scored; MLflow's own API shows the decision as
    tags on both versions, and the alias where it was."""
    better = write_config(tmp_path / "better.yaml", "conf/experiments/churn.yaml",
                          "registry:\n  model_name: churn-watch\n")
    worse = write_config(tmp_path / "worse.yaml", "conf/experiments/churn_xgboost.yaml",
                         "registry:\n  model_name: churn-watch\n")
    run_kiln("train", "--config", better, "--register", "--tracking-uri", mlflow_server.url)
    proc = run_kiln("train", "--config", worse, "--register", "--tracking-uri", mlflow_server.url)
    assert "does NOT take it" in proc.stdout, proc.stdout
    alias = mlflow_server.get("/api/2.0/mlflow/registered-models/alias", name="churn-watch", alias="production")
    assert alias["model_version"]["version"] == "1"
    v2 = mlflow_server.get("/api/2.0/mlflow/model-versions/get", name="churn-watch", version="2")["model_version"]
    tags = {t["key"]: t["value"] for t in v2.get("tags", [])}
    assert tags["kiln.alias_decision"] == "refused" and tags["kiln.compared_with_version"] == "1", tags
    assert float(tags["kiln.compared.roc_auc"]) == pytest.approx(0.854013, abs=1e-6)
    v1 = mlflow_server.get("/api/2.0/mlflow/model-versions/get", name="churn-watch", version="1")["model_version"]
    tags = {t["key"]: t["value"] for t in v1.get("tags", [])}
    assert tags["kiln.last_challenge"].startswith("challenged by version 2: refused"), tags


def test_registry_compare_and_margin_are_checked(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", "conf/experiments/churn.yaml",
                       "registry:\n  model_name: churn\n  compare: auroc\n")
    proc = run_kiln("train", "--config", bad, "--register", "--tracking-uri", tmp_path / "m", check=False)
    assert proc.returncode == 2 and "registry.compare: unknown metric 'auroc'" in proc.stderr, proc.stderr
    bad = write_config(tmp_path / "bad2.yaml", "conf/experiments/churn.yaml",
                       "registry:\n  model_name: churn\n  margin: 1.5\n")
    proc = run_kiln("train", "--config", bad, "--register", "--tracking-uri", tmp_path / "m", check=False)
    assert proc.returncode == 2 and "registry.margin" in proc.stderr, proc.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").glob("models/*")), "nothing registered"


@pytest.fixture(scope="module")
def churn_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("watch") / "mlruns"
    run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", store)
    return store


def test_evaluate_equals_scikit_learn_and_is_logged(churn_store, tmp_path):
    report = tmp_path / "eval.json"
    proc = run_kiln("evaluate", "--model", "models:/churn@production", "--input", TELCO, "--tracking-uri",
                    churn_store, "--json", report)
    assert proc.returncode == 0
    got = json.loads(report.read_text())
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", "models:/churn@production", "--tracking-uri", churn_store, "--input", TELCO,
             "--output", out)
    p = pd.read_csv(out)["probability"].to_numpy()
    y = pd.read_csv(TELCO)["Churn"].eq("Yes").astype(int).to_numpy()
    a = got["assessment"]
    assert a["rows"] == 7043 and a["without_truth"] == 0
    assert abs(a["metrics"]["roc_auc"] - roc_auc_score(y, p)) < 1e-9
    # the naive baseline is the constant prevalence: ROC-AUC 0.5
    assert a["baseline"]["roc_auc"] == 0.5
    j = got["judgement"]
    assert j["metric"] == "roc_auc" and not j["degraded"] and j["bundle_test"] == pytest.approx(0.858201, abs=1e-6)
    assert got["version"] == 1
    tags = run_tags(churn_store, got["run_id"])
    assert tags["kiln.run.kind"] == "evaluation"
    assert tags["kiln.evaluated.model"] == "churn" and tags["kiln.evaluated.version"] == "1"
    assert tags["kiln.degraded"] == "false"


def test_evaluate_says_degraded_with_exit_4(churn_store, tmp_path):
    # labels that no longer follow the features: the churn flags shuffled among the customers
    df = pd.read_csv(TELCO)
    df["Churn"] = df["Churn"].sample(frac=1.0, random_state=7).to_numpy()
    shuffled = tmp_path / "shuffled.csv"
    df.to_csv(shuffled, index=False)
    proc = run_kiln("evaluate", "--model", "models:/churn@production", "--input", shuffled, "--tracking-uri",
                    churn_store, "--json", "-", check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    got = json.loads(proc.stdout[proc.stdout.index("{\n"):])
    assert got["judgement"]["degraded"] and got["assessment"]["metrics"]["roc_auc"] < 0.55
    assert "DEGRADED" in got["judgement"]["reason"]
    assert run_tags(churn_store, got["run_id"])["kiln.degraded"] == "true"


def test_evaluate_bad_input(churn_store, tmp_path):
    df = pd.read_csv(TELCO)
    no_target = tmp_path / "no_target.csv"
    df.drop(columns=["Churn"]).to_csv(no_target, index=False)
    proc = run_kiln("evaluate", "--model", "models:/churn@production", "--input", no_target, "--tracking-uri",
                    churn_store, "--no-log", check=False)
    assert proc.returncode == 2 and "column 'Churn' not found" in proc.stderr, proc.stderr
    no_column = tmp_path / "no_column.csv"
    df.drop(columns=["tenure"]).to_csv(no_column, index=False)
    proc = run_kiln("evaluate", "--model", "models:/churn@production", "--input", no_column, "--tracking-uri",
                    churn_store, "--no-log", check=False)
    assert proc.returncode == 2 and "tenure" in proc.stderr, proc.stderr
    proc = run_kiln("evaluate", "--model", "models:/churn@production", "--input", TELCO, "--tracking-uri",
                    churn_store, "--metric", "rmse", "--no-log", check=False)
    assert proc.returncode == 2 and "rmse is a regression metric" in proc.stderr, proc.stderr


def test_retrain_on_etth1_moves_the_alias_only_for_a_better_challenger(tmp_path):
    """The champion learned the first 12,000 hours; challengers learn every hour. All are scored on the
    challenger's held-out test tail (the newest 20% of hours), so the comparison is on the same recent rows."""
    early = tmp_path / "early.csv"
    early.write_text("".join(ETTH1.read_text().splitlines(keepends=True)[:12001]))
    store = tmp_path / "mlruns"
    champion = write_config(tmp_path / "champion.yaml", "conf/experiments/etth1.yaml", f"data:\n  path: {early}\n")
    run_kiln("train", "--config", champion, "--register", "--tracking-uri", store)
    assert alias_holder(store, "etth1") == 1

    # a challenger on fresh data, the same recipe: better on the recent window, it takes the alias
    proc = run_kiln("retrain", "--config", "conf/experiments/etth1.yaml", "--tracking-uri", store)
    assert "the new version takes it" in proc.stdout, proc.stdout
    assert alias_holder(store, "etth1") == 2
    tags = run_tags(store, last_run_id(proc.stdout))
    assert tags["kiln.retrain.when"] == "always" and tags["kiln.retrain.champion_version"] == "1"
    assert tags["kiln.alias_decision"] == "takes" and tags["mlflow.source.name"] == "kiln retrain"
    new, old = parse_scores(tags["kiln.alias_reason"])
    assert new < old

    # the champion's score is scikit-learn's RMSE of its `kiln predict` forecasts on those very origins
    times = recent_test_origins(tmp_path, store)
    for version, expected in ((1, old), (2, new)):
        out = tmp_path / f"v{version}.csv"
        run_kiln("predict", "--model", f"models:/etth1/{version}", "--tracking-uri", store, "--input", ETTH1,
                 "--output", out)
        pred = pd.read_csv(out, parse_dates=["date", "target_time"])
        pred = pred[pred["date"].isin(times)]
        truth = pd.read_csv(ETTH1, parse_dates=["date"]).set_index("date")["OT"]
        rmse = np.sqrt(mean_squared_error(truth.loc[pred["target_time"]].to_numpy(), pred["prediction"]))
        assert len(pred) == len(times)
        assert abs(rmse - expected) < 5e-7, (version, rmse, expected)  # the reason prints 6 decimals

    # a worse challenger (3 boosting rounds): refused, registered without the alias, the reason recorded
    weak = write_config(tmp_path / "weak.yaml", "conf/experiments/etth1.yaml", "model:\n  params:\n    num_iterations: 3\n")
    proc = run_kiln("retrain", "--config", weak, "--tracking-uri", store)
    assert "does NOT take it" in proc.stdout and "stays on version 2" in proc.stdout, proc.stdout
    assert alias_holder(store, "etth1") == 2
    tags = run_tags(store, last_run_id(proc.stdout))
    assert tags["kiln.alias_decision"] == "refused"
    new, old = parse_scores(tags["kiln.alias_reason"])
    assert new > old

    # the same recipe again ties the champion: a 1% margin refuses it
    proc = run_kiln("retrain", "--config", "conf/experiments/etth1.yaml", "--tracking-uri", store, "--margin", "0.01")
    assert "not better by at least 1.0000%" in proc.stdout, proc.stdout
    assert alias_holder(store, "etth1") == 2

    # --when degraded: the champion is fine on the newest window, so nothing is trained
    before = sorted(p.name for p in store.glob("*/*") if p.is_dir())
    proc = run_kiln("retrain", "--config", "conf/experiments/etth1.yaml", "--tracking-uri", store, "--when", "degraded")
    assert "ok: rmse" in proc.stdout and "no challenger trained" in proc.stdout, proc.stdout
    assert sorted(p.name for p in store.glob("*/*") if p.is_dir()) == before

    # --when drift: the newest hours are not distributed like the champion's training hours (ETTh1's oil
    # temperature drifts over the two years): a challenger is trained, and ties the champion, so it takes the alias
    proc = run_kiln("retrain", "--config", "conf/experiments/etth1.yaml", "--tracking-uri", store, "--when", "drift")
    assert "retrain --when drift: DRIFT in the newest" in proc.stdout, proc.stdout
    assert "the new version takes it" in proc.stdout
    assert run_tags(store, last_run_id(proc.stdout))["kiln.retrain.when"] == "drift"

    proc = run_kiln("retrain", "--config", "conf/experiments/etth1.yaml", "--tracking-uri", store, "--margin", "2",
                    check=False)
    assert proc.returncode == 2 and "--margin" in proc.stderr


def test_retrain_when_drift_trains_nothing_on_data_like_the_training_rows(churn_store):
    before = sorted(p.name for p in churn_store.glob("*/*") if p.is_dir())
    proc = run_kiln("retrain", "--config", "conf/experiments/churn.yaml", "--tracking-uri", churn_store,
                    "--when", "drift")
    assert "no drift in the newest 7043 rows" in proc.stdout and "no challenger trained" in proc.stdout, proc.stdout
    assert sorted(p.name for p in churn_store.glob("*/*") if p.is_dir()) == before


def parse_scores(reason: str):
    """(new, holder) from 'rmse 0.628077 against version 1's 0.704197 on the same ...'."""
    words = reason.split()
    return float(words[1]), float(words[5])


def recent_test_origins(tmp_path, store):
    """The origins of the challenger's test part: the metrics.json of its run lists the test rows' count; the test
    part is the tail of the origins with a known target."""
    metrics = sorted(store.glob("*/*/artifacts/metrics.json"), key=lambda p: p.stat().st_mtime)[-1]
    rows = json.loads(metrics.read_text())["rows"]["test"]
    df = pd.read_csv(ETTH1, parse_dates=["date"])
    # the last row has no next-hour target; the test part is the `rows` origins before it
    return set(df["date"].iloc[-1 - rows:-1])
