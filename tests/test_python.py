"""kiln in a Python notebook: `import kiln` and MLflow's python_function flavor score raw rows with kiln's own Rust
pipeline and give exactly what `kiln predict` writes.

References: `kiln predict` (the CLI, read back with pandas 3, whose float parsing round-trips, so equality is bit for
bit), MLflow 3.17's client (`mlflow.pyfunc.load_model`, `mlflow.models.get_model_info`) and `mlflow models serve`
against a real MLflow server on a store kiln trained and registered into."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conftest import REPO, VENV_BIN, MlflowServer, free_port, run_kiln

MODELS = {
    "churn": "data/Telco-Customer-Churn_IBM.csv",
    "etth1": "data/ETTh1.csv",
    "eurusd": "data/ecb_eurofxref-hist.csv",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """churn, ETTh1 and EUR/USD trained and registered (alias production) into one folder store, a real MLflow server
    on it, and each model's `kiln predict` output for its whole data file."""
    root = tmp_path_factory.mktemp("python")
    store = root / "mlruns"
    cli = {}
    for name, data in MODELS.items():
        run_kiln("train", "--config", f"conf/experiments/{name}.yaml", "--register", "--tracking-uri", store)
        out = root / f"{name}.csv"
        run_kiln("predict", "--model", f"models:/{name}@production", "--tracking-uri", store, "--input", data,
                 "--output", out)
        cli[name] = pd.read_csv(out)
    server = MlflowServer(store, root / "mlflow-server.log")
    yield {"root": root, "store": store, "server": server, "cli": cli}
    server.stop()


def assert_same(python: pd.DataFrame, cli: pd.DataFrame):
    """Python's predictions equal the CLI's file: the same columns, floats bit for bit, times to the millisecond."""
    assert list(python.columns) == list(cli.columns)
    assert len(python) == len(cli)
    for column in cli.columns:
        got = python[column]
        if pd.api.types.is_datetime64_any_dtype(got):
            expected = pd.to_datetime(cli[column]).to_numpy(dtype="datetime64[ms]")
            assert np.array_equal(got.to_numpy(dtype="datetime64[ms]"), expected), column
        elif pd.api.types.is_float_dtype(got):
            assert np.array_equal(got.to_numpy(), cli[column].to_numpy()), column
        else:
            assert list(got.astype(str)) == list(cli[column].astype(str)), column


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mlflow_pyfunc_predicts_raw_rows_like_kiln_predict(store, name, monkeypatch):
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["server"].url)
    model = mlflow.pyfunc.load_model(f"models:/{name}@production")
    raw = pd.read_csv(REPO / MODELS[name])  # every column as pandas reads the file, extra columns included
    assert_same(model.predict(raw), store["cli"][name])
    # the flavor is kiln's own predictor
    assert isinstance(model.get_raw_model(), __import__("kiln").Predictor)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kiln_predictor_equals_kiln_predict(store, name):
    import kiln

    p = kiln.Predictor.load(f"models:/{name}@production", tracking_uri=str(store["store"]))
    assert p.version == (name, 1)
    assert p.task == ("classification" if name == "churn" else "forecast")
    assert p.metadata["run_id"] in p.label
    raw = pd.read_csv(REPO / MODELS[name])
    expected = store["cli"][name]
    assert_same(p.predict(raw), expected)
    assert_same(p.predict(REPO / MODELS[name]), expected)  # a file path is read by kiln's own reader
    assert_same(p.predict(pa.Table.from_pandas(raw)), expected)  # an Arrow table
    if name != "churn":
        out = p.predict(raw)
        assert out.attrs["warmup_dropped"] == len(raw) - len(out) > 0
        # parsed times (datetime64) give the same predictions as the file's texts
        time_column = p.input_columns[0]
        parsed = raw.assign(**{time_column: pd.to_datetime(raw[time_column])})
        assert_same(p.predict(parsed), expected)
        # a time-zone-aware time column is read as the UTC instants it names (as a file's "+09:00" times are), and
        # the predictions come back in its zone
        aware = parsed.assign(**{time_column: parsed[time_column].dt.tz_localize("Asia/Tokyo")})
        out = p.predict(aware)
        assert str(out[time_column].dt.tz) == "Asia/Tokyo"
        as_utc = p.predict(aware.assign(**{time_column: aware[time_column].dt.tz_convert("UTC").dt.tz_localize(None)}))
        assert (out[time_column].dt.tz_convert("UTC").dt.tz_localize(None) == as_utc[time_column]).all()
        assert np.array_equal(out["prediction"].to_numpy(), as_utc["prediction"].to_numpy())


def test_kiln_predictor_names_what_is_wrong(store):
    import kiln

    p = kiln.Predictor.load("models:/churn@production", tracking_uri=str(store["store"]))
    raw = pd.read_csv(REPO / MODELS["churn"]).head(50)
    with pytest.raises(kiln.KilnError) as e:
        p.predict(raw.drop(columns=["tenure"]))
    assert "tenure" in str(e.value) and "pandas DataFrame" in str(e.value), str(e.value)
    assert e.value.code == "missing_column"
    bad = raw.astype({"MonthlyCharges": str})
    bad.loc[7, "MonthlyCharges"] = "lots"
    with pytest.raises(kiln.KilnError) as e:
        p.predict(bad)
    assert "MonthlyCharges" in str(e.value) and "lots" in str(e.value) and "row 8" in str(e.value), str(e.value)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        p.predict([1, 2, 3])
    with pytest.raises(kiln.KilnError) as e:
        kiln.Predictor.load("models:/nope@production", tracking_uri=str(store["store"]))
    assert "nope" in str(e.value)


def test_the_mlflow_client_sees_the_signature_and_input_example(store, monkeypatch):
    import mlflow.models
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["server"].url)
    info = mlflow.models.get_model_info("models:/churn@production")
    inputs = {c["name"]: c["type"] for c in info.signature.inputs.to_dict()}
    assert inputs["customerID"] == "string" and inputs["tenure"] == "long" and inputs["MonthlyCharges"] == "double"
    assert "Churn" not in inputs  # the target is not an input
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["customerID", "probability", "class"]
    assert info.saved_input_example_info["type"] == "dataframe"
    model = mlflow.pyfunc.load_model("models:/churn@production")
    example = model.input_example
    assert list(example.columns) == list(inputs)
    expected = store["cli"]["churn"].head(len(example))
    assert_same(model.predict(example), expected)

    forecast = mlflow.models.get_model_info("models:/etth1@production")
    assert {c["name"]: c["type"] for c in forecast.signature.inputs.to_dict()}["date"] == "string"
    outputs = {c["name"]: c["type"] for c in forecast.signature.outputs.to_dict()}
    assert outputs == {"date": "datetime", "target_time": "datetime", "prediction": "double"}
    etth1 = mlflow.pyfunc.load_model("models:/etth1@production")
    assert len(etth1.predict(etth1.input_example)) == 5  # the example holds the warm-up and five rows to predict


def test_mlflow_models_serve_answers_a_raw_record_with_kiln_s_probability(store):
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=store["server"].url, MLFLOW_DISABLE_TELEMETRY="true",
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")  # serve runs the venv's uvicorn
    log = open(store["root"] / "models-serve.log", "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/churn@production", "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, (store["root"] / "models-serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.time() < deadline, "mlflow models serve did not answer /ping in 90 s"
                time.sleep(0.5)
        raw = pd.read_csv(REPO / MODELS["churn"]).iloc[[0, 1, 488]]  # row 488's TotalCharges is blank (" ")
        body = {"dataframe_split": json.loads(raw.to_json(orient="split", index=False))}
        req = urllib.request.Request(url + "/invocations", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())["predictions"]
        expected = store["cli"]["churn"].iloc[[0, 1, 488]]
        assert [a["customerID"] for a in answer] == list(expected["customerID"])
        assert [a["probability"] for a in answer] == list(expected["probability"])  # JSON floats round-trip
        assert [a["class"] for a in answer] == list(expected["class"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_without_the_package_pyfunc_says_what_to_install(store):
    bundle = next(store["store"].glob("*/*/artifacts/model/MLmodel")).parent
    code = (
        "import sys; sys.modules['kiln'] = None\n"  # as if kiln's package were not installed
        "import mlflow.pyfunc\n"
        f"mlflow.pyfunc.load_model({str(bundle)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0
    assert "kiln's Python package" in proc.stderr and "kiln predict" in proc.stderr, proc.stderr[-2000:]
