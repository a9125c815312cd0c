"""`kiln serve` against hostile connections: thousands of idle sockets at the open-file limit, more connections than
`--max-connections`, and a slow-loris head. The server must keep answering (a clear 503 at the cap, never a hang),
keep hot reload working (it opens the new bundle's files), and close what stalls within `--header-timeout-ms`."""

import json
import re
import resource
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, free_port, kiln_bin, run_kiln


@pytest.fixture(autouse=True, scope="module")
def _many_files():
    """This process opens thousands of sockets: raise its soft open-file limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room for thousands of sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Server:
    def __init__(self, store, log, *extra, nofile=None):
        """`kiln serve` on models:/eurusd@production; `nofile` caps its open-file limit (soft and hard)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = open(log, "w")

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [kiln_bin(), "serve", "--model", "models:/eurusd@production", "--tracking-uri", str(store),
             "--port", str(self.port), "--access-log", "off", *extra],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"kiln serve exited {self.proc.returncode}:\n{log.read_text()}"
            if self.get("/health", timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"kiln serve not ready after 30 s:\n{log.read_text()}")

    def get(self, path, timeout=5):
        """(status, JSON body), or (None, the error) when no answer came"""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError as e:
            return None, e

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _idle(port, n, batch=100, wait=2.5):
    """Up to n connected sockets that send nothing, connected `batch` at a time without blocking (one by one, each
    SYN the accept queue drops would cost a second). Those still not connected `wait` seconds after their batch
    started are dropped: the server cannot take more, which is the point."""
    socks = []
    while len(socks) < n:
        pending = {}
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        connected, deadline = [], time.time() + wait
        while pending and time.time() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                s = pending.pop(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.append(s)
                else:
                    s.close()
        _close(pending.values())
        socks += connected
        if not connected:
            break
    return socks


def _close(socks):
    for s in socks:
        s.close()


def _read_all(s, timeout):
    """What the server sends until it closes the connection; raises socket.timeout when it does not."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _assert_too_many_connections(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert b"connection: close" in head.lower(), answer
    error = json.loads(body)["error"]
    assert error["code"] == "too_many_connections" and error["message"], error


def test_thousands_of_idle_connections_at_the_open_file_limit_leave_health_and_hot_reload_working(tmp_path):
    store = tmp_path / "mlruns"
    for _ in range(2):
        run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--register", "--tracking-uri", store)
    run_kiln("registry", "promote", "eurusd", "1", "--alias", "production", "--tracking-uri", store)
    log = tmp_path / "serve.log"
    # 2048 open files for the server, 3000 idle sockets against it
    # a long header timeout: the idle sockets must stay open for the whole test (connecting them takes seconds)
    server = Server(store, log, "--reload-interval", "0.2", "--header-timeout-ms", "60000", nofile=2048)
    socks = []
    try:
        socks = _idle(server.port, 3000)
        time.sleep(1)
        started = time.time()
        status, body = server.get("/health", timeout=3)
        # at the cap a new connection is told so at once; it is never left waiting
        assert status in (200, 503), f"/health got no answer: {body}\n{log.read_text()[-2000:]}"
        assert status == 200 or body["error"]["code"] == "too_many_connections", body
        assert time.time() - started < 2
        # hot reload opens the new version's files while every connection is taken
        run_kiln("registry", "promote", "eurusd", "2", "--alias", "production", "--tracking-uri", store)
        deadline = time.time() + 5
        while "model_reloaded" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        text = log.read_text()
        assert "model_reloaded" in text, text[-3000:]
        assert "model_reload_failed" not in text and "model_watch_failed" not in text, text[-3000:]
    finally:
        _close(socks)
    try:
        deadline = time.time() + 5
        while server.get("/ready", timeout=2)[0] != 200 and time.time() < deadline:
            time.sleep(0.1)
        status, ready = server.get("/ready")
        assert (status, ready["model"]["version"]) == (200, 2), ready
        assert "Too many open files" not in log.read_text()
        assert len(socks) >= 2000, "the server should have taken or refused every connection"
    finally:
        server.stop()


def test_connections_over_the_cap_get_a_clear_503_and_idle_ones_are_closed_at_the_header_timeout(
        eurusd_store, tmp_path):
    # a header timeout with room for the three refused connections below on a busy machine (with 3 s, a CI run once
    # had a 200 where the 503 was due: most likely the held connections had already been closed)
    server = Server(eurusd_store["store"], tmp_path / "serve.log", "--max-connections", "20",
                    "--header-timeout-ms", "5000")
    held = []
    try:
        opened = time.time()
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.3)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
                extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                _assert_too_many_connections(_read_all(extra, timeout=3))
        status, body = server.get("/health")
        assert (status, body["error"]["code"]) == (503, "too_many_connections"), body
        # the idle ones never sent a head: closed at the header timeout, with nothing written
        for s in held:
            assert _read_all(s, timeout=8) == b""
        assert 4.5 < time.time() - opened < 8
        assert server.get("/health")[0] == 200
    finally:
        _close(held)
        server.stop()


def test_a_slow_loris_head_is_closed_at_the_header_timeout(eurusd_store, tmp_path):
    server = Server(eurusd_store["store"], tmp_path / "serve.log", "--header-timeout-ms", "2000")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            started = time.time()
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            closed = None
            for _ in range(10):
                time.sleep(1)
                try:
                    s.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = time.time() - started
                    break
                s.settimeout(0.01)
                try:
                    if s.recv(4096) == b"":
                        closed = time.time() - started
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed = time.time() - started
                    break
            assert closed is not None, "a head sent a byte a second was never closed"
            assert 1.5 < closed < 4, closed
        # the server still answers others
        assert server.get("/health")[0] == 200
    finally:
        server.stop()


def test_keep_alive_requests_are_served_and_an_idle_keep_alive_connection_is_closed(eurusd_store, tmp_path):
    server = Server(eurusd_store["store"], tmp_path / "serve.log", "--header-timeout-ms", "1000")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            for _ in range(3):
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                s.settimeout(5)
                answer = s.recv(4096)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                time.sleep(0.3)
            started = time.time()
            assert _read_all(s, timeout=4) == b""
            assert time.time() - started < 2
    finally:
        server.stop()


def test_more_connections_than_the_open_file_limit_allows_are_refused(eurusd_store):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))

    proc = subprocess.run(
        [kiln_bin(), "serve", "--model", "models:/eurusd@production", "--tracking-uri", str(eurusd_store["store"]),
         "--port", "0", "--max-connections", "4000"],
        cwd=REPO, capture_output=True, text=True, timeout=30, preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"--max-connections 4000 leaves fewer than 512 of the 4096 open files .* use at most 3584",
                     proc.stderr), proc.stderr


def test_a_kept_alive_connection_idle_past_the_idle_timeout_is_closed(eurusd_store, tmp_path):
    server = Server(eurusd_store["store"], tmp_path / "serve.log", "--idle-timeout-ms", "500")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.time()
            # the header timeout (10 s) is far: the idle timeout closes it
            assert _read_all(s, timeout=4) == b""
            assert 0.3 < time.time() - started < 2
    finally:
        server.stop()


def test_the_rate_limit_keys_on_the_peer_address(eurusd_store, tmp_path):
    # ConnectInfo reaches the rate limiter through the accept loop: one request, then 429
    server = Server(eurusd_store["store"], tmp_path / "serve.log", "--rate-limit", "1", "--rate-burst", "1")
    try:
        statuses = [server.get("/model")[0] for _ in range(3)]
        assert statuses[0] == 200 and 429 in statuses, statuses
    finally:
        server.stop()


def test_sigterm_lets_a_request_in_flight_finish_and_refuses_new_connections(eurusd_store, tmp_path):
    log = tmp_path / "serve.log"
    server = Server(eurusd_store["store"], log)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            body = b'{"series": "nobody"}'
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # the listener is closed: a new connection is refused
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            assert server.proc.poll() is None, "stopped before the request in flight was answered"
            s.sendall(body[5:])
            answer = _read_all(s, timeout=5)
            # the request was answered (a forecast record naming an unknown series: 404), then the server closed
            assert answer.startswith(b"HTTP/1.1 404"), answer
        assert server.proc.wait(timeout=10) == 0
        assert "SIGTERM: finishing the requests in flight" in log.read_text()
    finally:
        server.stop()
