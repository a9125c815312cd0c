"""`kiln serve`'s `/openapi.json` against the server itself, by schemathesis (pinned in tests/requirements.txt): a
classifier (Telco churn, trained here) and a forecaster (EUR/USD, the session's store) are served, and schemathesis
derives requests from each document (its examples, the boundary values of every schema, then random ones, valid
and not) and runs every check on each answer: no 5xx, the status and content type documented, the body valid
against the documented schema, valid requests accepted and invalid ones refused. The seed is fixed and the number
of examples bounded, so a run takes seconds and a failure can be replayed.

Two declared gaps. A batch over `maxItems` is refused with 413 (`too_many_records`), which schemathesis does not count
as a refusal by default. A forecast window's rows must be strictly increasing in time, and `/observe`'s rows must come
after the series' newest, which JSON Schema cannot say; a schema-valid window that breaks it is refused with 422
(`window_not_sorted`, and `prediction_not_finite` for values the model cannot forecast from). For the forecaster's
`/predict`, `/predict/batch` and `/observe` only, 422 is therefore an accepted answer to schema-valid data."""

import subprocess
import time
import urllib.request

import pytest

from conftest import REPO, VENV_BIN, free_port, kiln_bin, run_kiln

# schemathesis' default answers to valid data, plus 422 for what the schema cannot express
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# schemathesis' default refusals of invalid data, plus 413: a batch over `maxItems` is refused with the documented
# 413 `too_many_records` (a body over the size limit with 413 `payload_too_large`)
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

CONFIG = f"""
[checks.negative_data_rejection]
expected-statuses = {REFUSED!r}
"""

# and no warnings there: schemathesis warns of a "validation mismatch" when every schema-valid case of an operation in
# a phase got a 4xx, which happens to these three whenever the cases drawn are all windows out of time order (seen
# once in four runs at a fixed seed, since two workers share the draws); that 422 is the declared gap above
FORECAST_CONFIG = CONFIG + f"""
[[operations]]
include-path = ["/predict", "/predict/batch", "/observe"]
checks.positive_data_acceptance.expected-statuses = {ACCEPTED!r}
warnings = false
"""


@pytest.fixture(scope="module")
def churn_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("churn-schemathesis") / "mlruns"
    run_kiln("train", "--config", "conf/experiments/churn.yaml", "--register", "--tracking-uri", store)
    return store


def _serve(model, store, log):
    port = free_port()
    proc = subprocess.Popen(
        [kiln_bin(), "serve", "--model", model, "--tracking-uri", str(store), "--port", str(port),
         "--access-log", "off"],
        cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None, f"kiln serve exited {proc.returncode}:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"kiln serve not ready after 30 s:\n{log.read_text()}")


def _schemathesis(model, store, tmp_path, config=CONFIG):
    proc, port = _serve(model, store, tmp_path / "serve.log")
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    try:
        run = subprocess.run(
            [str(VENV_BIN / "schemathesis"), "--config-file", str(config_file), "--no-color", "run",
             f"http://127.0.0.1:{port}/openapi.json", "--checks", "all", "--max-examples", "40", "--seed", "1",
             "--generation-database", "none", "--workers", "2", "--request-timeout", "10"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    finally:
        proc.kill()
        proc.wait()
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis found the document and the server disagreeing:\n{report[-12000:]}"
    assert "No issues found" in report, report[-4000:]
    return report


def test_a_classifiers_openapi_document_is_what_the_server_does(churn_store, tmp_path):
    report = _schemathesis("models:/churn@production", churn_store, tmp_path)
    # every operation of the document was tested: the 7 of a classifier (no /observe routes)
    assert "Tested: 7" in report, report[-4000:]


def test_a_forecasters_openapi_document_is_what_the_server_does(eurusd_store, tmp_path):
    report = _schemathesis("models:/eurusd@production", eurusd_store["store"], tmp_path, FORECAST_CONFIG)
    # the classifier's 7 and /observe, GET and DELETE /observe/{series}
    assert "Tested: 10" in report, report[-4000:]
