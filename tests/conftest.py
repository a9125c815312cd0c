"""End-to-end fixtures: the kiln binary, a trained EUR/USD store, and a real MLflow 3.17.2 server on that store.

The server is started by the tests themselves on a free port, with the lean settings from the MLflow notes, and
stopped by its own PID. If it cannot start, the tests fail loudly (they are the point)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def kiln_bin() -> str:
    path = os.environ.get("KILN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/kiln-target"))
        path = str(Path(target) / "release" / "kiln")
    assert Path(path).exists(), f"kiln binary not found at {path}; run `make build` (or set KILN)"
    return path


def run_kiln(*args, check=True, env=None, cwd=REPO):
    full_env = dict(os.environ)
    full_env.pop("MLFLOW_TRACKING_URI", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([kiln_bin(), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"kiln {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, store: Path, log: Path, backend=None, artifacts=None, port=None, extra_args=(), extra_env=None,
                 cwd=None):
        """A server on the file store `store`, or on `backend` (e.g. sqlite:///...) with `artifacts`."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = artifacts or store
        env = dict(os.environ)
        env.update(
            MLFLOW_ALLOW_FILE_STORE="true",
            MLFLOW_DISABLE_TELEMETRY="true",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        env.update(extra_env or {})
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", str(backend or store), "--artifacts-destination", str(self.artifacts),
             *extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            assert self.proc.poll() is None, f"mlflow server died, see {log}:\n{Path(log).read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"mlflow server not healthy after 90 s, see {log}")

    def get(self, endpoint, **params):
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{endpoint}?{query}", timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


import urllib.parse  # noqa: E402  (used by MlflowServer.get)


@pytest.fixture(scope="session")
def eurusd_store(tmp_path_factory):
    """A store with one registered EUR/USD model (version 1, alias production), trained by `kiln train`."""
    root = tmp_path_factory.mktemp("eurusd")
    store = root / "mlruns"
    proc = run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", store)
    return {"root": root, "store": store, "train_stdout": proc.stdout}


@pytest.fixture(scope="session")
def mlflow_server(eurusd_store):
    server = MlflowServer(eurusd_store["store"], eurusd_store["root"] / "mlflow-server.log")
    yield server
    server.stop()
