"""`kiln tune` end to end: a study on EUR/USD tracked on a real MLflow 3.17.2 server and stored in Optuna's schema.

Checked against the independent readers: Optuna 4.9 (`optuna.load_study` sees the trials, params, values, states
and intermediate values kiln printed), optuna-dashboard 0.21 (its API lists the trials), the MLflow client (one
parent run, one nested child per trial with its fold scores as steps) and `mlflow.lightgbm` (the registered winner
loads and predicts as `kiln predict` does). Trial scores are the folds of `kiln train --cv` on the same configuration,
bit for bit. Bad input exits 2 naming the key, and leaves no study or run behind."""

import json
import math
import os
import sqlite3
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, MlflowServer, VENV_BIN, free_port, run_kiln

TOL = 1e-9

BASE = f"""
extends: [{REPO}/conf/tasks/eurusd.yaml, {REPO}/conf/base/lightgbm.yaml]
backtest:
  folds: 3
registry:
  model_name: eurusd-tuned
  alias: production
"""

# small and fast: two candidates, few rounds
SMALL = BASE + """
tune:
  n_trials: 6
  sampler: {kind: tpe, seed: 7, n_startup_trials: 3}
  pruner: {kind: none}
  candidates:
    - kind: lightgbm
      params: {objective: regression, num_iterations: 60, early_stopping_rounds: 10, num_threads: 1, seed: 42, deterministic: true}
      space:
        learning_rate: {float: {low: 0.02, high: 0.3, log: true}}
        num_leaves: {int: {low: 4, high: 32, log: true}}
    - kind: xgboost
      params: {objective: "reg:squarederror", num_boost_round: 60, early_stopping_rounds: 10, nthread: 1, seed: 42}
      space:
        eta: {float: {low: 0.02, high: 0.3, log: true}}
        max_depth: {int: {low: 2, high: 6}}
"""


def write(tmp_path, text, name="tune.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def optuna_study(storage, name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-server")
    server = MlflowServer(root / "mlruns", root / "mlflow.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("tune")
    config = write(root, SMALL)
    storage = f"sqlite:///{root / 'optuna.db'}"
    out = root / "tune.json"
    proc = run_kiln("tune", "--config", config, "--tracking-uri", server.url, "--storage", storage, "--json", out,
                    "--register", "--study", "eurusd-small")
    return {"root": root, "config": config, "storage": storage, "json": json.loads(out.read_text()),
            "stdout": proc.stdout, "stderr": proc.stderr}


def test_optuna_loads_the_study_kiln_wrote(tuned):
    study = optuna_study(tuned["storage"], "eurusd-small")
    ours = tuned["json"]["trials"]
    assert study.direction.name == "MINIMIZE"
    assert [t.number for t in study.trials] == [t["number"] for t in ours] == list(range(6))
    for theirs, mine in zip(study.trials, ours):
        assert theirs.state.name == mine["state"]
        assert theirs.user_attrs["candidate"] == mine["candidate"]
        assert theirs.params["model"] == mine["candidate"]
        for name, value in mine["params"].items():
            assert theirs.params[f"{mine['candidate']}.{name}"] == value, (name, theirs.params)
        if mine["state"] == "COMPLETE":
            assert theirs.value == mine["value"]
            # the objective is the mean test RMSE over the three folds, one intermediate value per fold
            folds = [theirs.intermediate_values[k] for k in sorted(theirs.intermediate_values)]
            assert sorted(theirs.intermediate_values) == [0, 1, 2]
            assert abs(np.mean(folds) - theirs.value) < 1e-15
    # the conditional space: an XGBoost trial has no LightGBM parameter and the other way round
    for t in study.trials:
        other = "xgboost" if t.params["model"] == "lightgbm" else "lightgbm"
        assert not any(name.startswith(other + ".") for name in t.params)
    best = min((t for t in ours if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert study.best_trial.number == best["number"]


def test_the_leaderboard_is_printed_and_names_the_best_of_each_candidate(tuned):
    board = tuned["json"]["leaderboard"]
    complete = [t for t in tuned["json"]["trials"] if t["state"] == "COMPLETE"]
    assert board[0]["candidate"] == min(complete, key=lambda t: t["value"])["candidate"]
    values = [row["best_value"] for row in board if row["best_value"] is not None]
    assert values == sorted(values)
    for row in board:
        mine = [t for t in tuned["json"]["trials"] if t["candidate"] == row["candidate"]]
        assert row["complete"] == sum(t["state"] == "COMPLETE" for t in mine)
        assert row["best_value"] == min(t["value"] for t in mine if t["state"] == "COMPLETE")
    assert "leaderboard" in tuned["stdout"] and "complete/pruned/failed" in tuned["stdout"]
    assert "refitting the winner" in tuned["stdout"]
    # the persistence baseline over the same folds, beside the leaderboard and in the parent run
    baseline = tuned["json"]["baseline"]
    assert math.isfinite(baseline) and f"persistence (the last value) over the same folds: rmse" in tuned["stdout"]
    assert all(t["baseline"] == baseline for t in tuned["json"]["trials"] if t["state"] == "COMPLETE")


def test_optuna_dashboard_lists_the_trials(tuned):
    port = free_port()
    db = tuned["storage"]
    proc = subprocess.Popen([str(VENV_BIN / "optuna-dashboard"), db, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        study_id = sqlite3.connect(db.removeprefix("sqlite:///")).execute(
            "select study_id from studies where study_name = 'eurusd-small'").fetchone()[0]
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                assert time.time() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()
    assert body["name"] == "eurusd-small"
    assert [t["number"] for t in body["trials"]] == list(range(6))
    assert body["directions"] == ["minimize"]


def test_mlflow_sees_one_parent_and_a_nested_child_per_trial(tuned, server):
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.url)
    parent_id = tuned["json"]["parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["kiln.run.kind"] == "tune"
    assert parent.data.params["tune.study"] == "eurusd-small"
    best = min((t for t in tuned["json"]["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert parent.data.params["best.candidate"] == best["candidate"]
    assert abs(parent.data.metrics["best/rmse"] - best["value"]) < 1e-15
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"leaderboard.csv", "leaderboard.json", "trials.csv", "config.yaml", "optimization_history.png",
            "intermediate_values.png", "lightgbm", "xgboost"} <= artifacts
    # a joint study's parameter views are per candidate, over its own parameters
    assert {a.path for a in client.list_artifacts(parent_id, "lightgbm")} >= {
        "lightgbm/parallel_coordinate.png", "lightgbm/param_importances.png", "lightgbm/optimization_history.png",
        "lightgbm/slice.png"}
    assert "slice.png" not in artifacts
    # the candidates' distributions of the objective side by side
    assert "edf.png" in artifacts
    importances = {k: v for k, v in parent.data.metrics.items() if k.startswith("importance/lightgbm/")}
    assert set(importances) == {"importance/lightgbm/learning_rate", "importance/lightgbm/num_leaves"}
    assert abs(sum(importances.values()) - 1.0) < 1e-9
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=100)
    trials = [r for r in children if r.data.tags.get("kiln.run.kind") == "trial"]
    refits = [r for r in children if r.data.tags.get("kiln.run.kind") == "tune_refit"]
    assert len(trials) == 6 and len(refits) == 1
    by_number = {int(r.data.tags["kiln.trial.number"]): r for r in trials}
    for t in tuned["json"]["trials"]:
        run = by_number[t["number"]]
        assert run.info.run_id == t["run_id"]
        assert run.data.tags["kiln.trial.state"] == t["state"]
        assert run.data.params["model"] == t["candidate"]
        assert run.info.status == ("FAILED" if t["state"] == "FAIL" else "FINISHED")
        if t["state"] == "COMPLETE":
            assert abs(run.data.metrics["rmse"] - t["value"]) < 1e-15
            history = client.get_metric_history(run.info.run_id, "folds/test/rmse")
            assert sorted(m.step for m in history) == [1, 2, 3]
            assert abs(np.mean([m.value for m in history]) - t["value"]) < 1e-12


def test_trial_scores_are_the_folds_of_train_cv_on_the_same_configuration(tuned, server, tmp_path):
    """Each trial refits the pipeline on the training part's folds, as `kiln train --cv` does for one configuration."""
    trial = next(t for t in tuned["json"]["trials"] if t["state"] == "COMPLETE" and t["candidate"] == "lightgbm")
    params = dict(trial["params"])
    # the candidate's params are its own (the library defaults for the rest), so the model section here is whole
    config = write(tmp_path, BASE.replace(f", {REPO}/conf/base/lightgbm.yaml", "") + f"""
tracking: {{experiment: cv-check}}
model:
  kind: lightgbm
  params: {{objective: regression, num_iterations: 60, early_stopping_rounds: 10, num_threads: 1, seed: 42,
            deterministic: true, learning_rate: {params['learning_rate']!r}, num_leaves: {params['num_leaves']}}}
""", "cv.yaml")
    run_kiln("train", "--config", config, "--cv", 3, "--tracking-uri", server.url)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("cv-check")
    run = client.search_runs([exp.experiment_id])[0]
    cv = sorted(client.get_metric_history(run.info.run_id, "cv/folds/test/rmse"), key=lambda m: m.step)
    study = optuna_study(tuned["storage"], "eurusd-small")
    folds = study.trials[trial["number"]].intermediate_values
    assert [m.value for m in cv] == [folds[k] for k in sorted(folds)]


MULTI_STEP = BASE.replace(f", {REPO}/conf/base/lightgbm.yaml", "") + """
task: {horizon: 3, strategy: direct}
model:
  kind: lightgbm
  params: {objective: regression, num_iterations: 40, early_stopping_rounds: 10, num_threads: 1, seed: 42,
           deterministic: true, learning_rate: 0.1, num_leaves: 8}
"""


def _fold_metric(mlruns, key):
    """A local store's metric history `key` of its only run, by step."""
    [path] = list(mlruns.glob(f"*/*/metrics/{key}"))
    rows = [line.split() for line in path.read_text().splitlines()]
    return [float(v) for _, v, _ in sorted(rows, key=lambda r: int(r[2]))]


def test_a_multi_step_forecast_is_tuned_on_its_rmse_averaged_over_the_steps(tmp_path):
    """Each fold of a 3-step direct forecast is scored by the mean over its three steps of the test RMSE: the
    per-step fold scores `kiln train --cv` reports for the same configuration, averaged."""
    config = write(tmp_path, MULTI_STEP + """
tune:
  n_trials: 2
  sampler: {kind: random, seed: 3}
  candidates:
    - kind: lightgbm
      params: {objective: regression, num_iterations: 40, early_stopping_rounds: 10, num_threads: 1, seed: 42,
               deterministic: true, learning_rate: 0.1}
      space:
        num_leaves: {int: {low: 4, high: 16}}
""")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "tune-mlruns", "--storage", storage,
                    "--no-refit", "--json", tmp_path / "tune.json")
    assert "3-step forecast: each fold is scored by its rmse averaged over the steps" in proc.stderr, proc.stderr
    trial = json.loads((tmp_path / "tune.json").read_text())["trials"][0]
    cv_config = write(tmp_path, MULTI_STEP.replace("num_leaves: 8", f"num_leaves: {trial['params']['num_leaves']}"),
                      "cv.yaml")
    run_kiln("train", "--config", cv_config, "--cv", 3, "--tracking-uri", tmp_path / "cv-mlruns")
    steps = [_fold_metric(tmp_path / "cv-mlruns", f"cv/folds/test/step_{k}/rmse") for k in (1, 2, 3)]
    expected = [sum(fold) / 3 for fold in zip(*steps)]
    folds = optuna_study(storage, "eurusd").trials[trial["number"]].intermediate_values
    got = [folds[k] for k in sorted(folds)]
    assert len(got) == 3 and all(abs(a - b) <= TOL * abs(b) for a, b in zip(got, expected)), (got, expected)
    one_step = _fold_metric(tmp_path / "cv-mlruns", "cv/folds/test/rmse")
    assert got != one_step


def test_the_registered_winner_loads_with_its_mlflow_flavor_and_predicts_as_kiln(tuned, server, tmp_path):
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow.lightgbm
    import mlflow.pyfunc

    winner = tuned["json"]["leaderboard"][0]["candidate"]
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", "models:/eurusd-tuned@production", "--tracking-uri", server.url,
             "--input", "data/ecb_eurofxref-hist.csv", "--output", out, "--with-features")
    df = pd.read_csv(out)
    features = list(df.columns[4:])
    if winner == "lightgbm":
        booster = mlflow.lightgbm.load_model("models:/eurusd-tuned@production")
        assert booster.feature_name() == features
        python = booster.predict(df[features].to_numpy(dtype=np.float64))
    else:
        import mlflow.xgboost
        import xgboost

        booster = mlflow.xgboost.load_model("models:/eurusd-tuned@production")
        assert booster.feature_names == features
        python = booster.predict(xgboost.DMatrix(df[features].to_numpy(dtype=np.float32), feature_names=features))
    # XGBoost predicts in float32 (its own), LightGBM in float64
    assert np.max(np.abs(python - df["raw_prediction"].to_numpy())) < (TOL if winner == "lightgbm" else 1e-6)
    # whatever won, the python_function flavor runs kiln's own pipeline and gives kiln's predictions
    model = mlflow.pyfunc.load_model("models:/eurusd-tuned@production")
    raw = pd.read_csv(REPO / "data/ecb_eurofxref-hist.csv")
    got = model.predict(raw)
    assert np.max(np.abs(np.asarray(got["prediction"], dtype=float) - df["prediction"].to_numpy())) < TOL


def test_rerunning_resumes_the_study(tuned, server):
    run_kiln("tune", "--config", tuned["config"], "--tracking-uri", server.url, "--storage", tuned["storage"],
             "--study", "eurusd-small", "--n-trials", 2, "--no-refit")
    study = optuna_study(tuned["storage"], "eurusd-small")
    assert [t.number for t in study.trials] == list(range(8))


def test_a_failed_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path):
    # k above the 22 features cannot be selected: those trials fail, the others complete
    config = write(tmp_path, BASE + """
selection:
  - k_best: {k: 10, score: f_regression}
tune:
  n_trials: 8
  sampler: {kind: random, seed: 3}
  candidates:
    - kind: ridge
  space:
    selection.k_best.k: {int: {low: 5, high: 40}}
""")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "t.json"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--json", out,
             "--no-refit")
    trials = json.loads(out.read_text())["trials"]
    study = optuna_study(storage, "eurusd")
    states = {t.number: t.state.name for t in study.trials}
    assert len(trials) == 8
    for t in trials:
        k = t["params"]["selection.k_best.k"]
        assert states[t["number"]] == ("FAIL" if k > 22 else "COMPLETE"), (k, t)
        if k > 22:
            assert "k" in t["fail_reason"] and study.trials[t["number"]].user_attrs["fail_reason"] == t["fail_reason"]
    assert any(s == "FAIL" for s in states.values()) and any(s == "COMPLETE" for s in states.values())


def test_two_jobs_run_every_trial_once(tmp_path):
    # with Optuna's constant liar, as a study with workers should be: each draw counts the trial still running
    config = write(tmp_path, SMALL.replace("n_startup_trials: 3}", "n_startup_trials: 3, constant_liar: true}"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--jobs", 2,
             "--n-trials", 6, "--no-refit")
    study = optuna_study(storage, "eurusd")
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    [sampler] = [p.read_text() for p in (tmp_path / "mlruns").glob("*/*/params/tune.sampler")]
    assert "constant_liar=true" in sampler


def test_grouped_multivariate_tpe_draws_what_optunas_draws_on_a_joint_competition(tmp_path):
    # TPESampler(multivariate=True, group=True): each candidate's own parameters are drawn jointly from the trials
    # that have them. Optuna's sampler, seeded alike and told kiln's values in turn, suggests what kiln drew
    import optuna

    sampler = "n_startup_trials: 3, multivariate: true, group: true}"
    config = write(tmp_path, SMALL.replace("n_startup_trials: 3}", sampler))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--n-trials", 9,
             "--no-refit")
    ours = optuna_study(storage, "eurusd").trials
    assert [t.state.name for t in ours] == ["COMPLETE"] * 9
    assert {t.params["model"] for t in ours} == {"lightgbm", "xgboost"}
    [logged] = [p.read_text() for p in (tmp_path / "mlruns").glob("*/*/params/tune.sampler")]
    assert "multivariate=true, group=true" in logged

    def objective(trial):
        kiln = ours[trial.number]
        for name, dist in kiln.distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        return kiln.value

    theirs = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7, n_startup_trials=3, multivariate=True,
                                                                    group=True))
    theirs.optimize(objective, n_trials=9)
    for k, o in zip(ours, theirs.trials):
        assert o.params.keys() == k.params.keys(), (k.number, k.params, o.params)
        for name, v in k.params.items():
            assert o.params[name] == pytest.approx(v, rel=1e-12) if isinstance(v, float) else o.params[name] == v
    # with the constant liar and two jobs, each trial shares its joint draw as Optuna's workers share theirs (the
    # system attributes tpe:relative_params:<i>): both candidates' values, read by Optuna
    liar = write(tmp_path, SMALL.replace("n_startup_trials: 3}", sampler.replace("}", ", constant_liar: true}")),
                 "liar.yaml")
    run_kiln("tune", "--config", liar, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--study",
             "liars", "--n-trials", 8, "--jobs", 2, "--no-refit")
    shared = [json.loads(t.system_attrs["tpe:relative_params:0"]) for t in optuna_study(storage, "liars").trials
              if "tpe:relative_params:0" in t.system_attrs]
    assert len(shared) >= 4, shared
    for s in shared:
        assert {"model", "lightgbm.learning_rate", "xgboost.eta"} <= s.keys(), s
        assert s["model"] in ("lightgbm", "xgboost") and 0.02 <= s["lightgbm.learning_rate"] <= 0.3, s
    # Optuna refuses group without multivariate, and so does kiln, naming the key
    bad = write(tmp_path, SMALL.replace("n_startup_trials: 3}", "n_startup_trials: 3, group: true}"), "bad.yaml")
    proc = run_kiln("tune", "--config", bad, "--tracking-uri", tmp_path / "bad-mlruns", "--storage",
                    f"sqlite:///{tmp_path / 'bad.db'}", check=False)
    assert proc.returncode == 2 and "tune.sampler.group" in proc.stderr and "multivariate" in proc.stderr, proc.stderr
    assert not (tmp_path / "bad.db").exists()


def test_enqueued_configurations_run_first_once_whoever_enqueued_them(tmp_path):
    # YAML's enqueue (Optuna's enqueue_trial with skip_if_exists): trial 0 takes the given values, the rest drawn
    config = write(tmp_path, SMALL.replace("  pruner: {kind: none}\n", """  pruner: {kind: none}
  enqueue:
    - {model: lightgbm, lightgbm.learning_rate: 0.05}
"""))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--no-refit"]
    first = run_kiln(*args, "--n-trials", 2)
    assert "trial 0 enqueued with" in first.stderr, first.stderr
    study = optuna_study(storage, "eurusd")
    t0 = study.trials[0]
    assert t0.system_attrs["fixed_params"] == {"model": "lightgbm", "lightgbm.learning_rate": 0.05}
    assert (t0.state.name, t0.params["model"], t0.params["lightgbm.learning_rate"]) == ("COMPLETE", "lightgbm", 0.05)
    assert 4 <= t0.params["lightgbm.num_leaves"] <= 32
    # a Python worker enqueues two: one this study can run, one naming a candidate it does not have
    study.enqueue_trial({"model": "xgboost", "xgboost.eta": 0.1, "xgboost.max_depth": 3})
    study.enqueue_trial({"model": "catboost"})
    second = run_kiln(*args, "--n-trials", 3)
    assert "is trial 0 already; not enqueued again" in second.stderr, second.stderr
    trials = optuna_study(storage, "eurusd").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE"]
    assert trials[2].params == {"model": "xgboost", "xgboost.eta": 0.1, "xgboost.max_depth": 3}
    assert trials[2].user_attrs["candidate"] == "xgboost"
    assert "catboost" in trials[3].user_attrs["fail_reason"] and "not one of the choices" in trials[3].user_attrs["fail_reason"]
    assert "trial 3 FAIL: enqueued values refused" in second.stderr, second.stderr
    assert "trial 2 [xgboost, enqueued] rmse" in second.stderr, second.stderr
    assert not any(t.state.name == "WAITING" for t in trials)


def test_folds_on_lent_cores_score_as_one_worker_scores_them(tmp_path):
    # with two jobs, a worker with no trial left to start lends its core to the folds of the trial still running;
    # each fold is fitted alone, so every draw gets the values and fold scores a single worker gives it (a random
    # sampler hands out the same draws in the same order whichever worker asks)
    config = write(tmp_path, BASE.replace("folds: 3", "folds: 5") + """
tune:
  n_trials: 5
  sampler: {kind: random, seed: 11}
  pruner: {kind: none}
  candidates:
    - kind: lightgbm
      params: {objective: regression, num_iterations: 80, early_stopping_rounds: 10, num_threads: 1, seed: 42, deterministic: true}
      space:
        learning_rate: {float: {low: 0.02, high: 0.3, log: true}}
        num_leaves: {int: {low: 4, high: 32, log: true}}
""")
    by_draw = {}
    for jobs in [1, 2]:
        storage = f"sqlite:///{tmp_path / f'jobs{jobs}.db'}"
        run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / f"mlruns{jobs}", "--storage", storage,
                 "--jobs", jobs, "--no-refit")
        study = optuna_study(storage, "eurusd")
        assert all(t.state.name == "COMPLETE" for t in study.trials)
        by_draw[jobs] = {tuple(sorted(t.params.items())): (t.value, t.intermediate_values) for t in study.trials}
    assert len(by_draw[1]) == 5 and by_draw[1] == by_draw[2]


def test_the_wilcoxon_pruner_stops_the_trials_optunas_stops(tmp_path):
    # Optuna's WilcoxonPruner on the folds: a trial worse than the best on enough folds (a signed-rank test) stops.
    # Optuna's own pruner, shown each trial's folds one by one with the trials before it, decides the same
    import datetime

    import optuna

    config = write(tmp_path, SMALL.replace("folds: 3", "folds: 6").replace("pruner: {kind: none}",
                                                                          "pruner: {kind: wilcoxon, p_threshold: 0.1}"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--n-trials", 12,
             "--no-refit")
    trials = optuna_study(storage, "eurusd").trials
    assert {t.state.name for t in trials} == {"COMPLETE", "PRUNED"}, [t.state.name for t in trials]
    pruner = optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    for i, t in enumerate(trials):
        before = optuna.create_study(direction="minimize")
        for past in trials[:i]:
            before.add_trial(past)
        steps = sorted(t.intermediate_values)
        decisions = []
        for k in range(1, len(steps) + 1):
            running = optuna.trial.FrozenTrial(
                number=t.number, state=optuna.trial.TrialState.RUNNING, value=None, values=None,
                datetime_start=datetime.datetime.now(), datetime_complete=None, params={}, distributions={},
                user_attrs={}, system_attrs={}, intermediate_values={s: t.intermediate_values[s] for s in steps[:k]},
                trial_id=t._trial_id)
            decisions.append(pruner.prune(before, running))
        expected = [False] * (len(steps) - 1) + [t.state.name == "PRUNED"]
        assert decisions == expected, (t.number, t.state.name, t.intermediate_values)
    bad = write(tmp_path, SMALL.replace("pruner: {kind: none}", "pruner: {kind: wilcoxon, p_threshold: 1.5}"), "bad.yaml")
    proc = run_kiln("tune", "--config", bad, "--tracking-uri", tmp_path / "bad-mlruns", "--storage",
                    f"sqlite:///{tmp_path / 'bad.db'}", check=False)
    assert proc.returncode == 2 and "tune.pruner.p_threshold" in proc.stderr, proc.stderr


def test_the_threshold_and_percentile_pruners_are_optunas(tmp_path):
    # ThresholdPruner(upper=0): every fold RMSE is above it, so each trial stops at its first fold
    config = write(tmp_path, SMALL.replace("pruner: {kind: none}", "pruner: {kind: threshold, upper: 0.0}"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage,
                    "--n-trials", 3, "--no-refit", check=False)
    trials = optuna_study(storage, "eurusd").trials
    assert [(t.state.name, list(t.intermediate_values)) for t in trials] == [("PRUNED", [0])] * 3
    # a study with no complete trial has no result: exit 1, saying why
    assert proc.returncode == 1 and "no trial of the study completed (each was pruned or failed" in proc.stderr
    [logged] = [p.read_text() for p in (tmp_path / "mlruns").glob("*/*/params/tune.pruner")]
    assert logged == "threshold"
    for pruner, key in [("{kind: threshold}", "lower"), ("{kind: threshold, lower: 1.0, upper: 0.5}", "lower <= upper"),
                        ("{kind: percentile, percentile: 120}", "between 0 and 100"),
                        ("{kind: percentile}", "percentile")]:
        bad = write(tmp_path, SMALL.replace("pruner: {kind: none}", f"pruner: {pruner}"), "bad.yaml")
        proc = run_kiln("tune", "--config", bad, "--tracking-uri", tmp_path / "bad-mlruns", "--storage",
                        f"sqlite:///{tmp_path / 'bad.db'}", check=False)
        assert proc.returncode == 2 and "tune.pruner" in proc.stderr and key in proc.stderr, proc.stderr
        assert not (tmp_path / "bad.db").exists()


@pytest.mark.parametrize("space, expected", [
    ("learning_rate_x: {float: {low: 0.01, high: 0.1}}", ["tune.candidates[0].space.learning_rate_x", "learning_rate"]),
    ("learning_rate: {float: {low: 0.3, high: 0.1}}", ["tune.candidates[0].space.learning_rate", "low"]),
    ("learning_rate: {float: {low: 0.0, high: 0.1, log: true}}", ["tune.candidates[0].space.learning_rate", "log"]),
    ("boosting: {categorical: []}", ["tune.candidates[0].space.boosting", "choices"]),
    ("num_leaves: {int: {low: 1, high: 8}}", ["tune.candidates[0].space.num_leaves", "num_leaves"]),
    ("num_leaves: {int: {low: 4, high: 8}}\n  enqueue: [{num_leaf: 6}]", ["tune.enqueue[0].num_leaf", "num_leaves"]),
    ("num_leaves: {int: {low: 4, high: 8}}\n  enqueue: [{num_leaves: 9}]", ["tune.enqueue[0].num_leaves", "outside"]),
])
def test_a_bad_space_exits_2_naming_the_key_before_anything_runs(tmp_path, space, expected):
    config = write(tmp_path, BASE + f"""
tune:
  candidates:
    - kind: lightgbm
      space:
        {space}
""")
    proc = run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage",
                    f"sqlite:///{tmp_path / 'optuna.db'}", check=False)
    assert proc.returncode == 2, proc.stderr
    for word in expected:
        assert word in proc.stderr, proc.stderr
    # nothing was created: no storage file, no tracking store
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_study_with_the_other_direction_is_refused_and_left_as_it_was(tuned, tmp_path):
    before = len(optuna_study(tuned["storage"], "eurusd-small").trials)
    config = write(tmp_path, SMALL + "  metric: r2\n")
    proc = run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", tuned["storage"],
                    "--study", "eurusd-small", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "eurusd-small" in proc.stderr and "direction" in proc.stderr.lower(), proc.stderr
    assert len(optuna_study(tuned["storage"], "eurusd-small").trials) == before


def test_an_unreachable_storage_fails_fast_and_hides_the_password(tmp_path):
    config = write(tmp_path, SMALL)
    port = free_port()
    started = time.time()
    proc = run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage",
                    f"postgresql://kiln:s3cret-pw@127.0.0.1:{port}/studies", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "***" in proc.stderr, proc.stderr
    assert time.time() - started < 30
    assert not (tmp_path / "mlruns").exists()


SLOW = BASE + """
tune:
  n_trials: 3
  heartbeat: {interval: 0.5, grace: 2}
  candidates:
    - kind: lightgbm
      params: {objective: regression, num_iterations: 3000, learning_rate: 0.001, num_threads: 1, seed: 42,
               deterministic: true}
      space:
        num_leaves: {int: {low: 30, high: 60}}
"""


def test_a_worker_killed_mid_trial_leaves_a_trial_that_turns_fail_after_the_grace_period(tmp_path):
    config = write(tmp_path, SLOW)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    from conftest import kiln_bin

    worker = subprocess.Popen([kiln_bin(), "tune", "--config", str(config), "--tracking-uri", str(tmp_path / "mlruns"),
                               "--storage", storage, "--no-refit"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            assert time.time() < deadline, "no trial started"
            if (tmp_path / "optuna.db").exists():
                try:
                    rows = sqlite3.connect(tmp_path / "optuna.db").execute(
                        "select t.number from trials t join trial_heartbeats h on h.trial_id = t.trial_id "
                        "where t.state = 'RUNNING'").fetchall()
                except sqlite3.OperationalError:
                    rows = []
                if rows:
                    break
            time.sleep(0.1)
    finally:
        worker.kill()
        worker.wait()
    killed = rows[0][0]
    assert optuna_study(storage, "eurusd").trials[killed].state.name == "RUNNING"
    time.sleep(2.5)
    # the next worker fails the silent trial before it starts its own, and says so
    # (the grace period is the study's: the next worker uses the same heartbeat settings)
    config_fast = write(tmp_path, SMALL + "  heartbeat: {interval: 0.5, grace: 2}\n", "fast.yaml")
    proc = run_kiln("tune", "--config", config_fast, "--tracking-uri", tmp_path / "mlruns", "--storage", storage,
                    "--no-refit", "--n-trials", 1, check=False)
    study = optuna_study(storage, "eurusd")
    assert study.trials[killed].state.name == "FAIL", proc.stderr
    assert f"trial {killed}" in proc.stderr and "heartbeat" in proc.stderr, proc.stderr


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_fails_the_running_trials_and_kills_the_parent_run_at_once(tmp_path, signal_name, monkeypatch):
    """Ctrl-C (or a scheduler's SIGTERM) mid-trial: the process ends within seconds with status 130, its running
    trials are FAIL with the reason (Optuna's reading of an interrupted trial), none is left RUNNING for the heartbeat
    check, and the parent run is KILLED."""
    import signal

    from conftest import kiln_bin
    from mlflow.tracking import MlflowClient

    config = write(tmp_path, SLOW)
    db = tmp_path / "optuna.db"
    storage = f"sqlite:///{db}"
    worker = subprocess.Popen([kiln_bin(), "tune", "--config", str(config), "--tracking-uri", str(tmp_path / "mlruns"),
                               "--storage", storage, "--no-refit", "--jobs", "2"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        rows = []
        while not rows:
            assert time.time() < deadline and worker.poll() is None, "no trial started"
            time.sleep(0.1)
            try:
                rows = sqlite3.connect(db).execute("select number from trials where state = 'RUNNING'").fetchall()
            except sqlite3.OperationalError:
                rows = []
        sent = time.time()
        worker.send_signal(getattr(signal, signal_name))
        _, stderr = worker.communicate(timeout=30)
        took = time.time() - sent
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 130, stderr
    assert took < 10, f"the study took {took:.1f} s to stop"
    assert "interrupted" in stderr and "marked FAIL" in stderr, stderr
    study = optuna_study(storage, "eurusd")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states, states
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert {t.number for t in interrupted} >= {r[0] for r in rows}, (rows, states)
    assert all("interrupted" in t.user_attrs["fail_reason"] for t in interrupted)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=str(tmp_path / "mlruns"))
    parents = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
               if r.data.tags.get("kiln.run.kind") == "tune"]
    assert [(p.info.status, p.data.tags.get("kiln.error")) for p in parents] == [("KILLED", "interrupted")]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A real PostgreSQL server for the module (scripts/pg_server.sh; stopped, and its folder removed, at the end or
    when this process dies)."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="kiln-pg-", dir="/tmp")
    os.chmod(folder, 0o755)
    script = REPO / "scripts/pg_server.sh"
    url = subprocess.run([script, "start", folder, str(os.getpid())], capture_output=True, text=True, check=True,
                         timeout=120).stdout.strip().splitlines()[-1]
    assert url.startswith("postgresql://"), url
    yield url
    subprocess.run([script, "stop", folder], capture_output=True, timeout=60)


def pg_database(url, name):
    """A fresh database on the server of `url`; its URL."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


def test_trials_python_optuna_adds_to_a_kiln_study_on_postgresql_are_seen_by_the_next_kiln_tune(postgres, tmp_path):
    import optuna

    storage = pg_database(postgres, "python_worker")
    config = write(tmp_path, SMALL)
    out = tmp_path / "first.json"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--n-trials", 3,
             "--no-refit", "--json", out)
    # a Python worker adds a trial far better than any kiln found, with the distributions kiln's space has
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="eurusd", storage=storage.replace("postgresql://", "postgresql+psycopg2://"))
    study.enqueue_trial({"model": "xgboost", "xgboost.eta": 0.1, "xgboost.max_depth": 3})
    trial = study.ask({
        "model": optuna.distributions.CategoricalDistribution(["lightgbm", "xgboost"]),
        "xgboost.eta": optuna.distributions.FloatDistribution(0.02, 0.3, log=True),
        "xgboost.max_depth": optuna.distributions.IntDistribution(2, 6),
    })
    assert trial.params == {"model": "xgboost", "xgboost.eta": 0.1, "xgboost.max_depth": 3}
    study.tell(trial, 1e-6)
    # the next kiln tune samples from it and ranks it: the leaderboard's best XGBoost trial is Python's
    out = tmp_path / "second.json"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--n-trials", 2,
             "--no-refit", "--json", out)
    board = {row["candidate"]: row for row in json.loads(out.read_text())["leaderboard"]}
    assert board["xgboost"]["best_trial"] == trial.number == 3
    assert board["xgboost"]["best_value"] == 1e-6
    numbers = [t["number"] for t in json.loads(out.read_text())["trials"]]
    assert numbers == [4, 5]
    assert len(optuna_study(storage.replace("postgresql://", "postgresql+psycopg2://"), "eurusd").trials) == 6


def test_three_kiln_tune_processes_share_one_postgresql_study(postgres, tmp_path):
    storage = pg_database(postgres, "three_workers")
    config = write(tmp_path, SMALL)
    from conftest import kiln_bin

    workers = [subprocess.Popen([kiln_bin(), "tune", "--config", str(config), "--tracking-uri",
                                 str(tmp_path / f"mlruns{i}"), "--storage", storage, "--n-trials", "4", "--no-refit"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(3)]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    study = optuna_study(storage.replace("postgresql://", "postgresql+psycopg2://"), "eurusd")
    assert sorted(t.number for t in study.trials) == list(range(12))
    assert all(t.state.name == "COMPLETE" for t in study.trials)


def test_a_killed_worker_on_postgresql_leaves_a_trial_that_turns_fail(postgres, tmp_path):
    storage = pg_database(postgres, "killed_worker")
    config = write(tmp_path, SLOW)
    from conftest import kiln_bin
    import psycopg2

    worker = subprocess.Popen([kiln_bin(), "tune", "--config", str(config), "--tracking-uri", str(tmp_path / "mlruns"),
                               "--storage", storage, "--no-refit"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        rows = []
        while not rows:
            assert time.time() < deadline, "no trial started"
            time.sleep(0.2)
            try:
                with psycopg2.connect(storage) as conn:
                    cur = conn.cursor()
                    cur.execute("select t.number from trials t join trial_heartbeats h on h.trial_id = t.trial_id "
                                "where t.state = 'RUNNING'")
                    rows = cur.fetchall()
            except psycopg2.Error:
                rows = []
    finally:
        worker.kill()
        worker.wait()
    killed = rows[0][0]
    time.sleep(2.5)
    config_fast = write(tmp_path, SMALL + "  heartbeat: {interval: 0.5, grace: 2}\n", "fast.yaml")
    proc = run_kiln("tune", "--config", config_fast, "--tracking-uri", tmp_path / "mlruns", "--storage", storage,
                    "--no-refit", "--n-trials", 1)
    study = optuna_study(storage.replace("postgresql://", "postgresql+psycopg2://"), "eurusd")
    assert study.trials[killed].state.name == "FAIL", proc.stderr
    assert f"trial {killed}" in proc.stderr


def test_the_composite_score_ranks_trials_and_refuses_a_pruner(tmp_path):
    # conf/tasks/eurusd.yaml's backtest section has seed 003's score (0.3 r2 + 0.4 sharpe + 0.3 (1 - |drawdown|))
    # over the folds and the trading simulation of their out-of-fold forecasts
    config = write(tmp_path, BASE + """
tune:
  metric: score
  n_trials: 3
  sampler: {kind: random, seed: 1}
  candidates:
    - kind: ridge
      space:
        alpha: {float: {low: 0.0001, high: 100.0, log: true}}
""")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "t.json"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--no-refit",
             "--json", out)
    study = optuna_study(storage, "eurusd")
    assert study.direction.name == "MAXIMIZE"
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert all(math.isfinite(t.value) for t in study.trials)
    assert json.loads(out.read_text())["leaderboard"][0]["best_value"] == study.best_value
    pruned = write(tmp_path, BASE + """
tune:
  metric: score
  pruner: {kind: median}
  candidates:
    - kind: ridge
""", "pruned.yaml")
    proc = run_kiln("tune", "--config", pruned, "--tracking-uri", tmp_path / "mlruns", "--storage", storage,
                    check=False)
    assert proc.returncode == 2 and "tune.pruner" in proc.stderr, proc.stderr


def test_per_candidate_competition_runs_a_study_per_candidate(tmp_path):
    config = write(tmp_path, SMALL + "  competition: per_candidate\n")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "t.json"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--n-trials", 2,
             "--no-refit", "--json", out)
    for candidate in ("lightgbm", "xgboost"):
        study = optuna_study(storage, f"eurusd.{candidate}")
        assert [t.number for t in study.trials] == [0, 1]
        # one candidate per study: its params under their own names, no `model` parameter
        own = {"lightgbm": {"learning_rate", "num_leaves"}, "xgboost": {"eta", "max_depth"}}[candidate]
        assert all(set(t.params) == own for t in study.trials), [t.params for t in study.trials]
    result = json.loads(out.read_text())
    board = result["leaderboard"]
    assert sorted(row["study"] for row in board) == ["eurusd.lightgbm", "eurusd.xgboost"]
    # the two studies' candidates compared in one distribution chart on the parent run
    parent = list((tmp_path / "mlruns").glob(f"*/{result['parent_run_id']}/artifacts"))
    assert len(parent) == 1 and (parent[0] / "edf.png").stat().st_size > 10_000


def test_a_grid_visits_each_point_once_and_then_stops(tmp_path):
    config = write(tmp_path, BASE + """
tune:
  n_trials: 10
  sampler: {kind: grid, seed: 3}
  candidates:
    - kind: ridge
      space:
        alpha: {categorical: [0.1, 1.0, 10.0]}
""")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--no-refit")
    study = optuna_study(storage, "eurusd")
    assert sorted(t.params["alpha"] for t in study.trials) == [0.1, 1.0, 10.0]
    # a second run finds the grid done and runs nothing
    run_kiln("tune", "--config", config, "--tracking-uri", tmp_path / "mlruns", "--storage", storage, "--no-refit")
    assert len(optuna_study(storage, "eurusd").trials) == 3
