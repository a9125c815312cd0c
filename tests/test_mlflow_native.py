"""kiln's runs as MLflow 3.17's own client and UI see them, on the embedded folder store (served by a real MLflow
server) and on a server kiln writes to over REST: the classic-ML experiment kind, the training data as the run's
dataset input, the bundle as a logged model linked as the run's output, and the registered version pointing at it.

Reference: MLflow's Python client (`MlflowClient`), reading what kiln wrote."""

import json

import pytest

from conftest import REPO, MlflowServer, run_kiln


@pytest.fixture(scope="module")
def folder_store(tmp_path_factory):
    """churn trained and registered into a folder store, and a real MLflow server on that folder."""
    root = tmp_path_factory.mktemp("native")
    store = root / "mlruns"
    run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", store)
    server = MlflowServer(store, root / "mlflow-server.log")
    yield {"store": store, "url": server.url}
    server.stop()


@pytest.fixture(scope="module")
def server_store(mlflow_server):
    """churn trained and registered into the shared MLflow server over REST."""
    run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", mlflow_server.url)
    return {"url": mlflow_server.url}


@pytest.mark.parametrize("where", ["folder_store", "server_store"])
def test_the_mlflow_client_sees_kind_dataset_logged_model_and_version(where, request):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=request.getfixturevalue(where)["url"])
    exp = client.get_experiment_by_name("churn")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development", exp.tags
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.status == "FINISHED"

    # the training data as the run's dataset input
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1, inputs
    dataset = inputs[0].dataset
    assert dataset.name == "Telco-Customer-Churn_IBM"
    assert dataset.digest == run.data.tags["kiln.data.sha256"][:8]
    assert dataset.source_type == "local"
    assert json.loads(dataset.source) == {"uri": "data/Telco-Customer-Churn_IBM.csv"}
    columns = {c["name"]: c["type"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
    assert columns["customerID"] == "string" and columns["tenure"] == "long" and columns["Churn"] == "string"
    assert len(columns) == 21
    assert json.loads(dataset.profile) == {"num_rows": 7043, "num_elements": 7043 * 21}
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training"}

    # the bundle as a READY logged model, the run's output
    outputs = run.outputs.model_outputs
    assert len(outputs) == 1, outputs
    model = client.get_logged_model(outputs[0].model_id)
    assert model.status.name == "READY", model.status
    assert model.source_run_id == run.info.run_id
    assert model.model_type == "lightgbm" and model.name == "model"
    found = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert model.model_id in {m.model_id for m in found}
    files = {f.path for f in client.list_logged_model_artifacts(model.model_id)}
    assert {"MLmodel", "model.lgb", "kiln"} <= files, files

    # the registered version points at it (MLflow 3.17's REST answer does not echo a version's model_id; the source
    # names the logged model)
    version = client.get_model_version_by_alias("churn", "production")
    assert version.run_id == run.info.run_id
    assert version.source == f"models:/{model.model_id}"
    # and the logged model lists the version (MLflow's UI shows it on the model's page)
    model = client.get_logged_model(model.model_id)
    listed = [(v["name"], int(v["version"])) for v in json.loads(model.tags["mlflow.modelVersions"])]
    assert ("churn", int(version.version)) in listed, listed


def test_kiln_loads_a_logged_model_version_from_a_folder_store(folder_store, tmp_path):
    # the version's source is the logged model; kiln predict finds its files in the folder
    out = tmp_path / "pred.csv"
    proc = run_kiln("predict", "--model", "models:/churn@production", "--tracking-uri", folder_store["store"],
                    "--input", "data/Telco-Customer-Churn_IBM.csv", "--output", out)
    assert "7043 predictions" in proc.stderr + proc.stdout
    assert (REPO / "data").is_dir()
