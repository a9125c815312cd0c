"""`kiln serve` end to end: the EUR/USD model trained and registered by `kiln train` (the session's store), served by
the binary on a free port, asked over real HTTP for the forecasts of windows built from the shipped ECB file, and
compared with `kiln predict`'s output file for the same dates.

The comparison is exact (==): `kiln predict` writes numbers in Rust's shortest round-trip form and the server's JSON
uses the same, so both parse back to the very double the pipeline computed. Then a few 4xx cases, and SIGTERM, after
which the server must exit 0."""

import csv
import http.client
import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, free_port, kiln_bin, run_kiln


def _rows():
    """(date, USD) of the ECB file, oldest first, as text (the file is newest first)."""
    with open(REPO / "data/ecb_eurofxref-hist.csv", newline="") as f:
        rows = [(r["Date"], r["USD"]) for r in csv.DictReader(f)]
    return sorted(rows)


def _window(rows, end):
    """The window of rows 0..=end: the model's EWM features need the whole history to equal batch scoring."""
    return {"window": [{"Date": d, "USD": float(v)} for d, v in rows[: end + 1]]}


class Served:
    def __init__(self, store, log, *extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [kiln_bin(), "serve", "--model", "models:/eurusd@production", "--tracking-uri", str(store),
             "--port", str(self.port), *extra],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"kiln serve exited {self.proc.returncode}:\n{open(log).read()}"
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"kiln serve not ready after 30 s:\n{open(log).read()}")

    def request(self, method, path, body=None, content_type="application/json"):
        """(status, headers, JSON body)"""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content_type else {}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def served(eurusd_store):
    server = Served(eurusd_store["store"], eurusd_store["root"] / "kiln-serve.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def predicted(eurusd_store, tmp_path_factory):
    """`kiln predict` on the whole file: date -> prediction, as the CSV has it."""
    out = tmp_path_factory.mktemp("serve") / "pred.csv"
    proc = subprocess.run(
        [kiln_bin(), "predict", "--model", "models:/eurusd@production", "--tracking-uri",
         str(eurusd_store["store"]), "--input", "data/ecb_eurofxref-hist.csv", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        return {r["Date"]: float(r["prediction"]) for r in csv.DictReader(f)}


def test_model_info_names_the_registered_version(served):
    status, headers, body = served.request("GET", "/model")
    assert status == 200
    assert body["model"]["name"] == "eurusd" and body["model"]["version"] == 1
    assert body["model"]["alias"] == "production" and body["model"]["run_id"]
    assert body["task"] == "forecast" and body["model_kind"] == "lightgbm"
    assert [f["name"] for f in body["input_schema"]] == ["Date", "USD"]
    assert "test/rmse" in body["metrics"]
    assert headers["x-kiln-model-version"] == "1"
    assert headers["x-kiln-model-run"] == body["model"]["run_id"]


def test_predictions_over_http_equal_kiln_predict_exactly(served, predicted):
    rows = _rows()
    n = len(rows)
    ends = [70, 1000, n // 2, n - 30, n - 1]
    singles = []
    for end in ends:
        date = rows[end][0]
        status, headers, body = served.request("POST", "/predict", _window(rows, end))
        assert status == 200, body
        assert body["time"] == date
        assert body["prediction"] == predicted[date], (date, body["prediction"], predicted[date])
        assert headers["x-kiln-model-version"] == "1" and body["model"]["version"] == 1
        singles.append(body["prediction"])
    status, _, body = served.request("POST", "/predict/batch", {"records": [_window(rows, e) for e in ends]})
    assert status == 200, body
    assert [p["prediction"] for p in body["predictions"]] == singles
    assert [p["time"] for p in body["predictions"]] == [rows[e][0] for e in ends]


def test_bad_requests_get_json_4xx_over_http(served):
    rows = _rows()
    status, _, body = served.request("POST", "/predict", _window(rows, 3))
    assert status == 422 and body["error"]["code"] == "not_enough_rows" and body["error"]["field"] == "window"
    bad = _window(rows, 100)
    bad["window"][50]["USD"] = "1.1"
    status, _, body = served.request("POST", "/predict", bad)
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "wrong_type", "window[50].USD")
    status, _, body = served.request("POST", "/predict", b'{"window": [', )
    assert (status, body["error"]["code"]) == (400, "malformed_json")
    status, _, body = served.request("POST", "/predict", b'{"window": [{"Date": "2024-01-02", "USD": NaN}]}')
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "not_finite", "window[0].USD")
    status, _, body = served.request("POST", "/predict", _window(rows, 100), content_type="text/plain")
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, _, body = served.request("GET", "/nothing-here")
    assert (status, body["error"]["code"]) == (404, "route_not_found")
    status, headers, body = served.request("GET", "/health")
    assert (status, body) == (200, {"status": "alive"})


def test_limits_from_flags_and_sigterm_exits_0(eurusd_store, tmp_path):
    server = Served(eurusd_store["store"], tmp_path / "serve.log", "--max-batch", "2", "--max-body-bytes", "20000")
    try:
        rows = _rows()
        w = _window(rows, 80)
        status, _, body = server.request("POST", "/predict/batch", {"records": [w, w, w]})
        assert (status, body["error"]["code"], body["error"]["field"]) == (413, "too_many_records", "records")
        # a body over the limit, with its length announced: rejected before it is read
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        payload = json.dumps(_window(rows, 2000)).encode()
        assert len(payload) > 20000
        conn.request("POST", "/predict", body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "payload_too_large"
        conn.close()
        # still serving
        status, _, _ = server.request("POST", "/predict", w)
        assert status == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
        log = (tmp_path / "serve.log").read_text()
        assert "listening on http://127.0.0.1:" in log and "SIGTERM" in log, log
    finally:
        server.stop()


def test_observed_series_forecast_equals_kiln_predict_exactly(served, predicted):
    rows = _rows()
    n = len(rows)
    observed = [{"Date": d, "USD": float(v)} for d, v in rows]
    for start in range(0, n, 1500):
        end = min(start + 1500, n)
        status, _, body = served.request("POST", "/observe", {"series": "ecb", "rows": observed[start:end]})
        assert status == 200, body
        assert body["observed"] == end and body["ready"] is True and body["last_time"] == rows[end - 1][0]
        status, _, body = served.request("POST", "/predict", {"series": "ecb"})
        assert status == 200, body
        date = rows[end - 1][0]
        assert body["time"] == date and body["prediction"] == predicted[date], (date, body, predicted[date])
    status, _, body = served.request("POST", "/observe", {"series": "ecb", "rows": observed[:1]})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "window_not_sorted", "rows[0].Date")
    status, _, body = served.request("DELETE", "/observe/ecb")
    assert (status, body["observed"]) == (200, n)
    status, _, body = served.request("POST", "/predict", {"series": "ecb"})
    assert (status, body["error"]["code"]) == (404, "series_not_found")


def _bundle_file(store, run_id, name):
    """The file of the bundle a registered version of `run_id` loads: its logged model's copy."""
    (path,) = [m.parent / "artifacts" / name for m in store.glob("*/models/m-*/meta.yaml")
               if f"source_run_id: {run_id}" in m.read_text()]
    return path


def test_hot_reload_switches_versions_without_a_failed_request_and_survives_a_corrupted_bundle(tmp_path):
    store = tmp_path / "mlruns"
    runs = []
    for _ in range(2):
        out = run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", store).stdout
        runs.append(re.search(r"run ([0-9a-f]{32}) \(FINISHED\)", out).group(1))
    run_kiln("registry", "promote", "eurusd", "1", "--alias", "production", "--tracking-uri", store)
    log = tmp_path / "serve.log"
    server = Served(store, log, "--reload-interval", "0.2")
    results, stop = [], threading.Event()
    rows = _rows()
    body = json.dumps(_window(rows, 200)).encode()

    def hammer(k):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while not stop.is_set():
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            results.append((response.status, response.getheader("x-kiln-model-version"), payload, k))
        conn.close()

    def wait_for(version, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if results and results[-1][1] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"still answering {results[-1][1] if results else None}:\n{log.read_text()}")

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(3)]
    try:
        for t in threads:
            t.start()
        wait_for("1")
        run_kiln("registry", "promote", "eurusd", "2", "--alias", "production", "--tracking-uri", store)
        wait_for("2")
        time.sleep(0.5)
        # a corrupted bundle behind the alias: the old version keeps answering, the failure is logged and counted
        model = _bundle_file(store, runs[0], "model.lgb")
        model.write_bytes(model.read_bytes().replace(b"tree", b"tres", 1))
        run_kiln("registry", "promote", "eurusd", "1", "--alias", "production", "--tracking-uri", store)
        deadline = time.time() + 15
        while "model_reload_failed" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert results and all(r[0] == 200 for r in results), [r for r in results if r[0] != 200][:3]
        for k in range(3):
            # each client, request after request: version 1, then version 2 only (a request in flight during the
            # swap may still finish on 1 after another client's first answer from 2)
            versions = [v for _, v, _, client in results if client == k]
            first_two = versions.index("2")
            assert set(versions[:first_two]) == {"1"} and set(versions[first_two:]) == {"2"}, "went back to 1"
        assert all(p["model"]["version"] == int(v) for _, v, p, _ in results)
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{\"ts\"")]
        reloaded = [e for e in events if e.get("event") == "model_reloaded"]
        assert [(e["from_version"], e["to_version"]) for e in reloaded] == [(1, 2)], events
        (failed,) = [e for e in events if e.get("event") == "model_reload_failed"]
        assert failed["to_version"] == 1 and "model.lgb" in failed["error"], failed
        status, _, ready = server.request("GET", "/ready")
        assert (status, ready["model"]["version"]) == (200, 2)
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
        assert 'kiln_model_reloads_total{outcome="failed"} 1' in metrics, metrics
        assert 'kiln_model_reloads_total{outcome="ok"} 1' in metrics, metrics
    finally:
        server.stop()
