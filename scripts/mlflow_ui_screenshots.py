"""Screenshots of MLflow's UI on a store kiln wrote, taken with headless Chromium: what a user sees when they open
kiln's runs in MLflow 3.17 (`make screenshots`).

usage: mlflow_ui_screenshots.py STORE OUT_DIR [churn] [backtest]

STORE is a kiln folder store holding the churn experiment (trained with --register) and, for `backtest`, a
`kiln backtest` run of the eurusd experiment; an MLflow server is started on it for the duration. Writes
OUT_DIR/<page>.png for: the churn experiment's runs, the run's overview (params, metrics, dataset, logged model), the
run's model metrics (grouped by prefix), one boosting curve on the step axis, the registered version and the logged
model (`churn`); the backtest run's overview, its per-fold RMSE beside persistence on the step (= fold) axis, and its
artifacts (`backtest`). Both by default.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, endpoint, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=data,
                                 headers={"Content-Type": "application/json"}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium on PATH: `make screenshots` installs Debian's chromium package")


def shoot(browser, url, out, profile, height=1100):
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--virtual-time-budget=20000", f"--window-size=1800,{height}",
         f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120,
    )
    print(f"wrote {out}")


def metric_page(ui, exp, run, keys):
    """The URL of MLflow's metric page for `keys` of `run` on the step axis, as MLflow's own links write it: JSON
    lists and the metric key as a JSON string, the axis settings as plain words."""
    query = "&".join(f"{k}={urllib.parse.quote(v if isinstance(v, str) else json.dumps(v), safe='')}"
                     for k, v in {
        "runs": [run], "metric": json.dumps(keys[0]), "experiments": [exp], "plot_metric_keys": keys,
        "plot_layout": {}, "x_axis": "step", "y_axis_scale": "linear", "line_smoothness": "1",
        "show_point": "true", "deselected_curves": [], "last_linear_y_axis_range": [],
    }.items())
    return f"{ui}/metric?{query}"


def backtest_pages(browser, url, out, profile):
    """The latest `kiln backtest` run of the eurusd experiment: overview, folds on the step axis, artifacts."""
    exp = call(url, "experiments/get-by-name?experiment_name=eurusd")["experiment"]["experiment_id"]
    runs = call(url, "runs/search", {"experiment_ids": [exp], "max_results": 1,
                                     "filter": "tags.`kiln.run.kind` = 'backtest'",
                                     "order_by": ["attributes.start_time DESC"]})["runs"]
    run = runs[0]["info"]["run_id"]
    ui = f"{url}/#"
    shoot(browser, f"{ui}/experiments/{exp}/runs/{run}", out / "backtest-run.png", profile, height=1800)
    shoot(browser, metric_page(ui, exp, run, ["folds/test/rmse", "folds/baseline/test/rmse"]),
          out / "backtest-folds.png", profile)
    shoot(browser, f"{ui}/experiments/{exp}/runs/{run}/artifacts", out / "backtest-artifacts.png", profile,
          height=1300)


def main():
    if len(sys.argv) < 3 or any(a not in ("churn", "backtest") for a in sys.argv[3:]):
        sys.exit(__doc__)
    store, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    pages = set(sys.argv[3:]) or {"churn", "backtest"}
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "server.log", "w")
        server = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", str(store), "--artifacts-destination", str(store)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 90
            while True:
                try:
                    with urllib.request.urlopen(url + "/health", timeout=2):
                        break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        sys.exit(f"the MLflow server did not start:\n{(Path(tmp) / 'server.log').read_text()[-2000:]}")
                    time.sleep(0.5)
            profile = Path(tmp) / "chromium"
            if "backtest" in pages:
                backtest_pages(browser, url, out, profile)
            if "churn" not in pages:
                return
            exp = call(url, "experiments/get-by-name?experiment_name=churn")["experiment"]["experiment_id"]
            runs = call(url, "runs/search", {"experiment_ids": [exp], "max_results": 1,
                                          "order_by": ["attributes.start_time DESC"]})["runs"]
            run = runs[0]["info"]["run_id"]
            curve = sorted(m["key"] for m in runs[0]["data"]["metrics"] if m["key"].startswith("train_curve/valid/"))[0]
            version = call(url, "registered-models/get-latest-versions", {"name": "churn"})["model_versions"][-1]
            ui = f"{url}/#"
            shoot(browser, f"{ui}/experiments/{exp}/runs", out / "experiment.png", profile)
            shoot(browser, f"{ui}/experiments/{exp}/runs/{run}", out / "run.png", profile, height=1500)
            shoot(browser, f"{ui}/experiments/{exp}/runs/{run}/model-metrics", out / "run-metrics.png", profile,
                  height=3200)
            # the metric page's query, as MLflow's own links write it: JSON lists and the metric key as a JSON
            # string, the axis settings as plain words
            query = "&".join(f"{k}={urllib.parse.quote(v if isinstance(v, str) else json.dumps(v), safe='')}"
                             for k, v in {
                "runs": [run], "metric": json.dumps(curve), "experiments": [exp], "plot_metric_keys": [curve],
                "plot_layout": {}, "x_axis": "step", "y_axis_scale": "linear", "line_smoothness": "1",
                "show_point": "false", "deselected_curves": [], "last_linear_y_axis_range": [],
            }.items())
            shoot(browser, f"{ui}/metric?{query}", out / "curve.png", profile)
            shoot(browser, f"{ui}/models/churn/versions/{version['version']}", out / "model-version.png", profile)
            outputs = call(url, f"runs/get?run_id={run}")["run"].get("outputs", {}).get("model_outputs", [])
            if outputs:
                model_id = outputs[0]["model_id"]
                shoot(browser, f"{ui}/experiments/{exp}/models/{model_id}", out / "logged-model.png", profile,
                      height=1500)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
