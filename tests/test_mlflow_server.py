"""kiln against a real MLflow 3.17.2 server (sqlite backend, artifact proxy), as a team would run it.

What is checked: train + register + predict through the server; the MLflow Python client sees and loads what kiln
logged (same predictions, 1e-9); training curves; the registry commands; a server that dies in the middle of a run
(with the local fallback nothing is lost after `kiln sync`; without it the run ends FAILED once the server is back);
and no secret in any log, param, tag or artifact of a run made with credentials set."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, MlflowServer, kiln_bin, run_kiln

TOL = 1e-9


def _env(server, tmp_path, **extra):
    env = {"KILN_CACHE_DIR": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": server.url,
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0.2"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    srv = MlflowServer(root / "mlflow.db", root / "mlflow.log", backend=f"sqlite:///{root}/mlflow.db",
                       artifacts=root / "artifacts")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    proc = run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register",
                    "--tracking-uri", server.url, env=_env(server, tmp))
    return {"stdout": proc.stdout, "stderr": proc.stderr, "tmp": tmp}


def _client(server):
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow

    return mlflow


def test_train_register_and_predict_through_the_server(server, trained, tmp_path):
    assert f"in {server.url}" in trained["stdout"]
    assert "registered eurusd version 1 (aliases: production)" in trained["stdout"]
    out = tmp_path / "pred.csv"
    first = run_kiln("predict", "--model", "models:/eurusd@production", "--tracking-uri", server.url,
                     "--input", "data/ecb_eurofxref-hist.csv", "--output", out, env=_env(server, trained["tmp"]))
    assert "downloaded models:/eurusd@production" in first.stderr or "cached models:/eurusd@production" in first.stderr
    second = run_kiln("predict", "--model", "models:/eurusd@production", "--tracking-uri", server.url,
                      "--input", "data/ecb_eurofxref-hist.csv", "--output", tmp_path / "again.csv",
                      env=_env(server, trained["tmp"]))
    assert "cached models:/eurusd@production" in second.stderr, second.stderr
    assert pd.read_csv(out).equals(pd.read_csv(tmp_path / "again.csv"))
    # the same bundle through every kind of reference resolves and predicts the same
    run_id = trained["stdout"].split("run ")[-1].split()[0]
    for ref in ["models:/eurusd/1", "models:/eurusd/latest", f"runs:/{run_id}/model"]:
        other = tmp_path / "other.csv"
        run_kiln("predict", "--model", ref, "--tracking-uri", server.url, "--input", "data/ecb_eurofxref-hist.csv",
                 "--output", other, env=_env(server, trained["tmp"]))
        assert pd.read_csv(out).equals(pd.read_csv(other)), ref


def test_python_client_sees_and_loads_what_kiln_logged(server, trained, tmp_path):
    mlflow = _client(server)
    import mlflow.lightgbm
    from mlflow import MlflowClient

    runs = mlflow.search_runs(experiment_names=["eurusd"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED"
    assert row["tags.mlflow.runName"] == "eurusd-lightgbm"
    assert row["tags.mlflow.source.name"] == "kiln train"
    assert "metrics.test/rmse" in runs.columns and row["metrics.test/rmse"] > 0
    assert "| model" in row["tags.mlflow.note.content"]
    client = MlflowClient()
    version = client.get_model_version_by_alias("eurusd", "production")
    assert version.version == "1" and version.source.startswith("models:/m-")
    # the bundle is an MLflow 3 logged model, the run's output
    run = client.get_run(row["run_id"])
    assert [o.model_id for o in run.outputs.model_outputs] == [version.source.removeprefix("models:/")]
    # training curves: one point per boosting round
    history = client.get_metric_history(row["run_id"], "train_curve/valid/l2")
    assert len(history) >= int(row["metrics.model/best_iteration"]) and [m.step for m in history] == list(range(len(history)))
    # each point carries the wall time its round ended: within the run, never decreasing, not all the same
    times = [m.timestamp for m in history]
    assert times == sorted(times) and times[-1] > times[0], (times[0], times[-1])
    assert row["start_time"].timestamp() * 1000 <= times[0] <= times[-1] <= row["end_time"].timestamp() * 1000

    booster = mlflow.lightgbm.load_model("models:/eurusd@production")
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", "models:/eurusd@production", "--tracking-uri", server.url,
             "--input", "data/ecb_eurofxref-hist.csv", "--output", out, "--with-features",
             env=_env(server, trained["tmp"]))
    df = pd.read_csv(out)
    features = booster.feature_name()
    python = booster.predict(df[features].to_numpy(dtype=np.float64))
    assert np.max(np.abs(python - df["raw_prediction"].to_numpy())) < TOL


def test_registry_commands_work_on_the_server(server, trained, tmp_path):
    env = _env(server, trained["tmp"])
    run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", server.url,
             "--run-name", "second", env=env)
    listed = run_kiln("registry", "list", "eurusd", "--tracking-uri", server.url, env=env).stdout
    assert "production" in listed.splitlines()[-1] and listed.splitlines()[-1].startswith("2 "), listed
    back = run_kiln("registry", "rollback", "eurusd", "--alias", "production", "--tracking-uri", server.url, env=env)
    assert "version 2 -> version 1" in back.stdout
    run_kiln("registry", "promote", "eurusd", "2", "--stage", "Production", "--tracking-uri", server.url, env=env)
    mlflow = _client(server)
    from mlflow import MlflowClient

    client = MlflowClient()
    assert client.get_model_version_by_alias("eurusd", "production").version == "1"
    assert client.get_model_version("eurusd", "2").current_stage == "Production"
    out = tmp_path / "stage.csv"
    run_kiln("predict", "--model", "models:/eurusd/Production", "--tracking-uri", server.url,
             "--input", "data/ecb_eurofxref-hist.csv", "--output", out, env=env)
    assert len(pd.read_csv(out)) > 7000
    run_kiln("registry", "promote", "eurusd", "2", "--alias", "production", "--tracking-uri", server.url, env=env)
    assert mlflow.MlflowClient().get_model_version_by_alias("eurusd", "production").version == "2"
    bad = run_kiln("registry", "promote", "eurusd", "9", "--alias", "production", "--tracking-uri", server.url,
                   env=env, check=False)
    assert bad.returncode == 2 and "version 9" in bad.stderr, bad.stderr


def test_a_client_error_shows_mlflows_error_code(server, tmp_path):
    proc = run_kiln("predict", "--model", "models:/nope@production", "--tracking-uri", server.url,
                    "--input", "data/ecb_eurofxref-hist.csv", "--output", tmp_path / "x.csv",
                    env=_env(server, tmp_path), check=False)
    assert proc.returncode == 2
    assert "nope" in proc.stderr


SLOW = """extends: {repo}/conf/experiments/etth1.yaml
name: slow
tracking:
  fallback: {fallback}
  fallback_uri: {local}
model:
  params:
    num_iterations: 700
    num_leaves: 63
    learning_rate: 0.01
    early_stopping_rounds: 700
registry:
  model_name: slow
# this run is about surviving a dead server, not about beating persistence (700 rounds without early stopping
# overfit): the gate that would refuse the registration is switched off
gates:
  beat_baseline: null
"""


def _kill_mid_run(tmp_path, fallback):
    """Starts a slow training run on a fresh server, stops the server while the model is being fitted, waits for
    kiln to finish, and restarts the server on the same port and database."""
    root = tmp_path / "srv"
    root.mkdir()
    srv = MlflowServer(root / "x", root / "mlflow.log", backend=f"sqlite:///{root}/mlflow.db",
                       artifacts=root / "artifacts")
    cfg = tmp_path / "slow.yaml"
    local = tmp_path / "local-mlruns"
    cfg.write_text(SLOW.format(repo=REPO, fallback=fallback, local=local))
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(_env(srv, tmp_path))
    proc = subprocess.Popen([kiln_bin(), "train", "--config", cfg, "--register", "--tracking-uri", srv.url],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            exp = srv.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name="slow")["experiment"]
            runs = srv.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]}).get("runs", [])
            if runs:
                break
        except Exception:  # noqa: BLE001  (not created yet)
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("the run never appeared on the server")
    server_run = runs[0]["info"]["run_id"]
    assert proc.poll() is None, "the training finished before the server could be stopped; make SLOW slower"
    port = srv.port
    srv.stop()
    stdout, stderr = proc.communicate(timeout=300)
    srv2 = MlflowServer(root / "x", root / "mlflow2.log", backend=f"sqlite:///{root}/mlflow.db",
                        artifacts=root / "artifacts", port=port)
    return srv2, proc.returncode, stdout, stderr, server_run, local, env


def test_server_dies_mid_run_with_fallback_nothing_is_lost_after_sync(tmp_path):
    srv, code, stdout, stderr, server_run, local, env = _kill_mid_run(tmp_path, "local")
    try:
        assert code == 0, stderr
        assert "became unreachable" in stderr and "kiln sync" in stderr, stderr
        assert "registered slow version 1" in stdout
        sync = subprocess.run([kiln_bin(), "sync", "--from", local, "--to", srv.url], cwd=REPO, env=env,
                              capture_output=True, text=True)
        assert sync.returncode == 0, sync.stderr
        again = subprocess.run([kiln_bin(), "sync", "--from", local, "--to", srv.url], cwd=REPO, env=env,
                               capture_output=True, text=True)
        assert "0 copied" in again.stdout, again.stdout
        exp = srv.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name="slow")["experiment"]
        runs = srv.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        by_id = {r["info"]["run_id"]: r for r in runs}
        assert by_id[server_run]["info"]["status"] == "FAILED"
        copies = [r for r in runs if r["info"]["run_id"] != server_run]
        assert len(copies) == 1 and copies[0]["info"]["status"] == "FINISHED"
        copy = copies[0]
        metrics = {m["key"] for m in copy["data"]["metrics"]}
        assert {"test/rmse", "baseline/test/rmse", "train_curve/valid/l2", "rows/train"} <= metrics
        params = {p["key"] for p in copy["data"]["params"]}
        assert "model.num_leaves" in params or any("num_leaves" in p for p in params), params
        # what the server had before it died was replayed into the local copy (the experiment's kind, the dataset)
        # and came back with the sync
        assert [p.read_text() for p in local.glob("*/tags/mlflow.experimentKind")] == ["custom_model_development"]
        inputs = copy["inputs"]["dataset_inputs"]
        assert [(i["dataset"]["name"], i["tags"]) for i in inputs] == [
            ("ETTh1", [{"key": "mlflow.data.context", "value": "training"}])], inputs
        exp_tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
        assert exp_tags.get("mlflow.experimentKind") == "custom_model_development", exp_tags
        files = srv.get("/api/2.0/mlflow/artifacts/list", run_id=copy["info"]["run_id"])["files"]
        assert {"model", "metrics.json", "config.yaml"} <= {f["path"] for f in files}
        history = srv.get("/api/2.0/mlflow/metrics/get-history", run_id=copy["info"]["run_id"],
                          metric_key="train_curve/valid/l2")["metrics"]
        assert len(history) == 700
        # the registry came along: the model predicts from the server
        out = tmp_path / "pred.csv"
        pred = subprocess.run([kiln_bin(), "predict", "--model", "models:/slow@production", "--tracking-uri",
                               srv.url, "--input", "data/ETTh1.csv", "--output", out], cwd=REPO, env=env,
                              capture_output=True, text=True)
        assert pred.returncode == 0, pred.stderr
    finally:
        srv.stop()


def test_server_dies_mid_run_without_fallback_the_run_ends_failed(tmp_path):
    srv, code, stdout, stderr, server_run, local, env = _kill_mid_run(tmp_path, "none")
    try:
        assert code == 1, (code, stderr)
        assert "cannot reach the MLflow server" in stderr, stderr
        assert "marks it FAILED the next time" in stderr, stderr
        # any kiln command that reaches the server writes the pending status
        listed = subprocess.run([kiln_bin(), "registry", "list", "--tracking-uri", srv.url], cwd=REPO, env=env,
                                capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert server_run in listed.stderr
        run = srv.get("/api/2.0/mlflow/runs/get", run_id=server_run)["run"]
        assert run["info"]["status"] == "FAILED"
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert "cannot reach the MLflow server" in tags["kiln.error"]
        assert not local.exists()
    finally:
        srv.stop()


def test_no_secret_in_any_log_param_tag_or_artifact(server, tmp_path):
    password, token = "pw-Zq81-never-log-me", "tok-Xe42-never-log-me"
    env = _env(server, tmp_path, MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=password)
    host = server.url.removeprefix("http://")
    texts = []
    for extra, uri in [({}, server.url), ({"MLFLOW_TRACKING_TOKEN": token}, server.url),
                       ({}, f"http://alice:{password}@{host}")]:
        proc = run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--tracking-uri", uri,
                        "--run-name", "secrets", env={**env, **extra})
        texts += [proc.stdout, proc.stderr]
        # an error path too: an unknown model
        bad = run_kiln("predict", "--model", "models:/missing@x", "--tracking-uri", uri, "--input",
                       "data/ecb_eurofxref-hist.csv", "--output", tmp_path / "x.csv", env={**env, **extra},
                       check=False)
        texts += [bad.stdout, bad.stderr]
    exp = server.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name="eurusd")["experiment"]
    runs = server.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                       "filter": "tags.mlflow.runName = 'secrets'"})["runs"]
    assert len(runs) == 3
    texts.append(json.dumps(runs))
    texts.append(Path(server.log.name).read_text())
    artifacts = Path(server.artifacts)
    for f in artifacts.rglob("*"):
        if f.is_file():
            texts.append(f.read_bytes().decode("utf-8", "replace"))
    blob = "\n".join(texts)
    assert password not in blob and token not in blob


def test_basic_auth_server_accepts_credentials_and_names_a_refusal(tmp_path):
    """A server with MLflow's basic-auth app: kiln works with the credentials from the environment, and without them
    (or with a wrong password) fails with the 401 and what to set, never printing the password."""
    admin_pw = "adm-Pw7-not-in-logs"
    root = tmp_path / "auth"
    root.mkdir()
    srv = MlflowServer(root / "x", root / "mlflow.log", backend=f"sqlite:///{root}/mlflow.db",
                       artifacts=root / "artifacts", extra_args=["--app-name", "basic-auth"],
                       extra_env={"MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
                                  "MLFLOW_AUTH_ADMIN_PASSWORD": admin_pw}, cwd=root)
    try:
        base = _env(srv, tmp_path)
        refused = run_kiln("registry", "list", "--tracking-uri", srv.url, env=base, check=False)
        assert refused.returncode == 2, refused.stderr
        assert "401" in refused.stderr and "MLFLOW_TRACKING_USERNAME" in refused.stderr, refused.stderr
        wrong = {**base, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong-" + admin_pw}
        bad = run_kiln("registry", "list", "--tracking-uri", srv.url, env=wrong, check=False)
        assert bad.returncode == 2 and "401" in bad.stderr and admin_pw not in bad.stderr + bad.stdout
        good = {**base, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin_pw}
        train = run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri",
                         srv.url, env=good)
        assert "registered eurusd version 1" in train.stdout
        out = tmp_path / "p.csv"
        pred = run_kiln("predict", "--model", "models:/eurusd@production", "--tracking-uri", srv.url, "--input",
                        "data/ecb_eurofxref-hist.csv", "--output", out, env=good)
        assert len(pd.read_csv(out)) > 7000
        assert admin_pw not in train.stdout + train.stderr + pred.stdout + pred.stderr
    finally:
        srv.stop()


def test_registry_commands_work_on_the_local_store_too(tmp_path):
    store = tmp_path / "mlruns"
    for name in ["first", "second"]:
        run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", store,
                 "--run-name", name)
    listed = run_kiln("registry", "list", "--tracking-uri", store).stdout
    assert "eurusd  2         v2      production=v2" in listed, listed
    back = run_kiln("registry", "rollback", "eurusd", "--tracking-uri", store)
    assert "eurusd@production: version 2 -> version 1" in back.stdout
    run_kiln("registry", "promote", "eurusd", "2", "--stage", "Staging", "--tracking-uri", store)
    table = run_kiln("registry", "list", "eurusd", "--tracking-uri", store).stdout.splitlines()
    assert table[-2].split()[:3] == ["1", "None", "production"], table
    assert table[-1].split()[:2] == ["2", "Staging"], table
    none = run_kiln("registry", "rollback", "eurusd", "--tracking-uri", store, check=False)
    assert none.returncode == 2 and "no version below 1" in none.stderr, none.stderr
