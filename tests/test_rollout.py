"""Safe rollouts in `kiln serve`, end to end over real HTTP against the real binary: two churn models trained by
`kiln train` from the shipped configs (LightGBM, conf/experiments/churn.yaml, as `churn@production`; logistic
regression, churn_logistic.yaml, as `churn@challenger`), served as canary variants 90/10 with a shadow, asked with
the rows of the Telco file.

The assignment rule is reimplemented here independently (FNV-1a 64 of the key's UTF-8 bytes, mod 10000, against
the cumulative weights in the order given), so every request's variant is checked exactly, not only the share.
Then the bad inputs of issue 15 part 9: each exits 2 with its message and starts nothing."""

import csv
import http.client
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, free_port, kiln_bin, run_kiln


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def expected_variant(key: str, split=(("champion", 9000), ("challenger", 1000))) -> str:
    slot = fnv1a64(key.encode()) % 10000
    upper = 0
    for name, bp in split:
        upper += bp
        if slot < upper:
            return name
    return split[-1][0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """churn version 1 (LightGBM) @production, version 2 (logistic) @challenger; eurusd version 1 @production."""
    root = tmp_path_factory.mktemp("rollout")
    store = root / "mlruns"
    for config in ["churn.yaml", "churn_logistic.yaml", "eurusd.yaml"]:
        run_kiln("train", "--config", f"conf/experiments/{config}", "--register", "--tracking-uri", store)
    # explicit aliases, whatever training did with them
    run_kiln("registry", "promote", "churn", "1", "--alias", "production", "--tracking-uri", store)
    run_kiln("registry", "promote", "churn", "2", "--alias", "challenger", "--tracking-uri", store)
    return store


def telco_records():
    """Every row of the Telco file as a record of the model's input (blank TotalCharges as null)."""
    numeric = {"SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"}
    out = []
    with open(REPO / "data/Telco-Customer-Churn_IBM.csv", newline="") as f:
        for row in csv.DictReader(f):
            row.pop("Churn")
            out.append({k: (float(v) if v.strip() else None) if k in numeric else v for k, v in row.items()})
    return out


class Server:
    def __init__(self, store, log, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [kiln_bin(), "serve", "--tracking-uri", str(store), "--port", str(self.port), *args],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"kiln serve exited {self.proc.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"kiln serve not ready after 30 s:\n{log.read_text()}")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            body = r.read().decode()
            return json.loads(body) if path != "/metrics" else body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def post_many(port, jobs, threads=4):
    """POST each (path, body, headers) of `jobs` over keep-alive connections; returns (status, headers, body) in
    order."""
    results = [None] * len(jobs)

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(k, len(jobs), threads):
            path, body, headers = jobs[i]
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json", **headers})
            r = conn.getresponse()
            results[i] = (r.status, dict((k.lower(), v) for k, v in r.getheaders()), json.loads(r.read()))
        conn.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def metric(text, name, **labels):
    """The value of one sample of `name` with exactly these labels (in any order)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    raise AssertionError(f"no {name}{labels} in the metrics")


def access_lines(log):
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts"') and '"path"' in line]


def test_canary_split_sticky_keys_shadow_and_metrics(store, tmp_path):
    log = tmp_path / "serve.log"
    server = Server(store, log, "--variant", "champion=models:/churn@production:90",
                    "--variant", "challenger=models:/churn@challenger:10",
                    "--shadow", "candidate=models:/churn/2", "--sticky-key", "header:X-User-Id")
    try:
        info = server.get("/model")
        assert [(v["name"], v["role"], v.get("weight"), v["model"]["version"]) for v in info["variants"]] == [
            ("champion", "canary", 90.0, 1), ("challenger", "canary", 10.0, 2), ("candidate", "shadow", None, 2)]
        assert info["sticky_key"] == "header:x-user-id" and info["model"]["version"] == 1

        records = telco_records()
        n = 10_000
        keys = [f"user-{k}" for k in range(n)]
        jobs = [("/predict", records[k % len(records)], {"X-User-Id": keys[k]}) for k in range(n)]
        results = post_many(server.port, jobs)
        assert all(status == 200 for status, _, _ in results), [r for r in results if r[0] != 200][:3]
        variants = [body["variant"] for _, _, body in results]
        # never a shadow's answer; the header and the body agree, and name the variant's model
        assert set(variants) == {"champion", "challenger"}
        for status, headers, body in results:
            assert headers["x-kiln-variant"] == body["variant"]
            assert body["model"]["version"] == {"champion": 1, "challenger": 2}[body["variant"]]
            assert headers["x-kiln-model-version"] == str(body["model"]["version"])
        # every request where the rule puts it, so the share is the rule's: within 1 percentage point of 10%
        assert variants == [expected_variant(k) for k in keys]
        share = variants.count("challenger") / n
        assert abs(share - 0.10) <= 0.01, share

        # the same key, again and again: the same variant (400 keys, 3 times each, from 4 connections)
        again = post_many(server.port, [("/predict", records[0], {"X-User-Id": keys[k % 400]}) for k in range(1200)])
        for k, (_, _, body) in enumerate(again):
            assert body["variant"] == variants[k % 400], k
        # without the key: a draw per request, both variants appear
        drawn = post_many(server.port, [("/predict", records[1], {}) for _ in range(400)])
        assert {b["variant"] for _, _, b in drawn} == {"champion", "challenger"}
        total = n + 1200 + 400

        # the shadow scored every request after it was answered (or counted it as dropped), off the answers
        deadline = time.time() + 30
        while time.time() < deadline:
            text = server.get("/metrics")
            shadowed = metric(text, "kiln_variant_requests_total", variant="candidate", role="shadow")
            dropped = metric(text, "kiln_shadow_dropped_total")
            if shadowed + dropped == total:
                break
            time.sleep(0.2)
        assert shadowed + dropped == total, (shadowed, dropped)
        assert shadowed > 0
        time.sleep(0.2)  # the access log writer's batch pause
        lines = access_lines(log)
        canary = {l["request_id"]: l for l in lines if l.get("role") != "shadow" and l["path"] == "/predict"}
        shadow = [l for l in lines if l.get("role") == "shadow"]
        assert len(canary) == total and len(shadow) == shadowed
        assert {l["variant"] for l in canary.values()} == {"champion", "challenger"}
        assert all(l["variant"] == "candidate" and l["status"] == 200 and l["model_version"] == 2 for l in shadow)
        # a shadow line names the request it scored again (x-request-id); where version 2 also answered it as the
        # challenger, the shadow's logged prediction is that answer, exactly
        by_id = {l["request_id"]: l for l in shadow}
        checked = 0
        for _, headers, body in results:
            line = by_id.get(headers["x-request-id"])
            if line is not None and body["variant"] == "challenger":
                assert line["predictions"] == [body["probability"]]
                checked += 1
        assert checked > 0.9 * variants.count("challenger") * shadowed / total
        assert all(len(l["predictions"]) == 1 and 0 <= l["predictions"][0] <= 1 for l in shadow)

        # per-variant metrics add up to the requests answered
        text = server.get("/metrics")
        champion = metric(text, "kiln_variant_requests_total", variant="champion", role="canary")
        challenger = metric(text, "kiln_variant_requests_total", variant="challenger", role="canary")
        assert champion + challenger == total
        assert metric(text, "kiln_http_requests_total", route="/predict", method="POST", status="200") == total
        for name, count in [("champion", champion), ("challenger", challenger), ("candidate", shadowed)]:
            assert metric(text, "kiln_variant_request_duration_seconds_count", variant=name) == count
            assert metric(text, "kiln_variant_request_duration_seconds_bucket", variant=name, le="+Inf") == count
            assert metric(text, "kiln_variant_prediction_value_count", variant=name) == count
        assert metric(text, "kiln_variant_info", variant="challenger", role="canary", weight="10", model="churn",
                      version="2", reference="models:/churn@challenger") == 1
    finally:
        server.stop()


def test_sticky_field_and_variants_file(store, tmp_path):
    spec = tmp_path / "variants.yaml"
    spec.write_text("variants:\n"
                    "  - {name: champion, model: 'models:/churn@production', weight: 75.5}\n"
                    "  - {name: challenger, model: 'models:/churn@challenger', weight: 24.5}\n"
                    "sticky_key: field:customerID\n")
    server = Server(store, tmp_path / "serve.log", "--variants", spec)
    try:
        records = telco_records()[:2000]
        results = post_many(server.port, [("/predict", r, {}) for r in records])
        split = (("champion", 7550), ("challenger", 2450))
        got = [body["variant"] for _, _, body in results]
        assert got == [expected_variant(r["customerID"], split) for r in records]
        # a batch goes where its first record's key goes
        batch = post_many(server.port, [("/predict/batch", {"records": records[k:k + 3]}, {}) for k in range(50)])
        for k, (status, headers, body) in enumerate(batch):
            assert status == 200 and body["variant"] == got[k] == headers["x-kiln-variant"]
            assert len(body["predictions"]) == 3
    finally:
        server.stop()


def test_one_model_is_served_as_before_as_the_default_variant(store, tmp_path):
    server = Server(store, tmp_path / "serve.log", "--model", "models:/churn@production")
    try:
        (status, headers, body), = post_many(server.port, [("/predict", telco_records()[0], {})])
        assert status == 200 and body["variant"] == "default" and headers["x-kiln-variant"] == "default"
        assert body["model"]["version"] == 1
        info = server.get("/model")
        assert [v["name"] for v in info["variants"]] == ["default"] and info["sticky_key"] is None
    finally:
        server.stop()


@pytest.mark.parametrize("args, message", [
    (["--variant", "champion=models:/churn@production:90", "--variant", "challenger=models:/churn@challenger:5"],
     "the canary weights sum to 95% (champion 90 + challenger 5), not 100%"),
    (["--variant", "a=models:/churn@production:50", "--variant", "a=models:/churn@challenger:50"],
     "the variant name 'a' is used twice"),
    (["--variant", "champion=models:/churn@production:90", "--variant", "challenger"],
     "--variant 'challenger' has no '='"),
    (["--variant", "champion=models:/churn@production:ninety"], "'ninety' is not a weight in percent"),
    (["--variant", "champion=models:/churn@production:100", "--shadow", "oops"], "--shadow 'oops' is not NAME=REF"),
    (["--variant", "champion=models:/churn@production:100", "--sticky-key", "cookie:id"],
     "'cookie:id' is not a sticky key"),
    (["--model", "models:/churn@production", "--sticky-key", "field:account"],
     "the sticky key field 'account' is not a field of the records"),
    # two inputs: a tabular churn record against a forecast window of the ECB rates
    (["--variant", "champion=models:/churn@production:50", "--variant", "fx=models:/eurusd@production:50"],
     "variant 'fx' takes another input than 'champion': the first takes tabular records, the second forecast "
     "windows; 'customerID' (id) only in the first"),
])
def test_bad_variants_exit_2_and_start_nothing(store, args, message):
    proc = run_kiln("serve", "--tracking-uri", store, "--port", free_port(), *args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "listening" not in proc.stdout


def test_a_bad_variants_file_exits_2(store, tmp_path):
    spec = tmp_path / "variants.yaml"
    spec.write_text("variants:\n  - {name: a, model: 'models:/churn@production', weight: 100, colour: red}\n")
    proc = run_kiln("serve", "--tracking-uri", store, "--variants", spec, check=False)
    assert proc.returncode == 2 and "unknown field `colour`" in proc.stderr, proc.stderr
    proc = run_kiln("serve", "--tracking-uri", store, "--variants", spec, "--model", "x", check=False)
    assert proc.returncode == 2 and "cannot be used with" in proc.stderr, proc.stderr


# ---- live drift ----

def _profile(store, model="churn", version=1):
    """The reference profile in the bundle of a registered version (its logged model's copy)."""
    meta = (store / "models" / model / f"version-{version}" / "meta.yaml").read_text()
    model_id = re.search(r"^model_id: (\S+)$", meta, re.M).group(1)
    (path,) = store.glob(f"*/models/{model_id}/artifacts/kiln/profile.json")
    return json.loads(path.read_text())


def numpy_psi(edges, fractions, values):
    """PSI of `values` against the reference bins, written from the definition: bins by np.searchsorted(edges,
    side='right'); empty fractions of either side filled with 0.0001, or a millionth of the smallest non-zero
    fraction when that is below 0.0001 (Evidently's rule); sum((c - r) * ln(c / r))."""
    import numpy as np

    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(fractions))
    current = counts / counts.sum()

    def fill(f):
        f = np.asarray(f, dtype=float)
        nz = f[f > 0].min()
        return np.where(f == 0, nz / 1e6 if nz <= 1e-4 else 1e-4, f)

    r, c = fill(fractions), fill(current)
    return float(np.sum((c - r) * np.log(c / r)))


def _drift_psi(server):
    text = server.get("/metrics")
    psi = {m.group(1): float(m.group(2))
           for m in re.finditer(r'^kiln_feature_drift_psi\{feature="([^"]+)"\} (\S+)$', text, re.M)}
    return psi, metric(text, "kiln_feature_drift_window_rows"), metric(text, "kiln_feature_drift_dropped_rows_total")


def test_live_drift_psi_equals_numpy_over_the_same_window(store, tmp_path):
    import numpy as np

    profile = {f["name"]: f["numeric"] for f in _profile(store)["features"] if f.get("numeric")}
    window = 1000
    server = Server(store, tmp_path / "serve.log", "--model", "models:/churn@production", "--access-log", "off",
                    "--drift-window", str(window), "--drift-interval", "0.2")
    try:
        assert "live drift: PSI of" in (tmp_path / "serve.log").read_text()
        rng = np.random.default_rng(15)
        # rows with a TotalCharges (a blank one is imputed with the training median: not an input value)
        pool = [r for r in telco_records() if r["TotalCharges"] is not None]
        same = [pool[i] for i in rng.choice(len(pool), window, replace=False)]
        # shifted: the same customers two years later, paying 40% more a month
        shifted = [dict(r, tenure=r["tenure"] + 24, MonthlyCharges=r["MonthlyCharges"] * 1.4,
                        TotalCharges=r["TotalCharges"] + 24 * r["MonthlyCharges"] * 1.4) for r in same]
        for records, small in [(same, True), (shifted, False)]:
            # one connection, in order: the window holds exactly these records
            post_many(server.port, [("/predict", r, {}) for r in records], threads=1)
            time.sleep(1.0)  # a few drift intervals
            psi, rows, dropped = _drift_psi(server)
            assert (rows, dropped) == (window, 0)
            features = {
                "tenure": [r["tenure"] for r in records],
                "MonthlyCharges": [r["MonthlyCharges"] for r in records],
                "TotalCharges": [r["TotalCharges"] for r in records],
                "months_billed": [r["TotalCharges"] / r["MonthlyCharges"] for r in records],
            }
            for name, values in features.items():
                expected = numpy_psi(profile[name]["edges"], profile[name]["fractions"], np.asarray(values))
                # the same bins and counts; only the summation order of <= 10 terms may differ
                assert psi[name] == pytest.approx(expected, rel=1e-12, abs=1e-15), (name, psi[name], expected)
            if small:
                assert max(psi[n] for n in features) < 0.1, psi
            else:
                assert min(psi[n] for n in ["tenure", "MonthlyCharges", "TotalCharges"]) > 0.25, psi
    finally:
        server.stop()


def test_live_drift_can_be_turned_off(store, tmp_path):
    server = Server(store, tmp_path / "serve.log", "--model", "models:/churn@production", "--no-live-drift")
    try:
        post_many(server.port, [("/predict", telco_records()[0], {})])
        assert "kiln_feature_drift" not in server.get("/metrics")
        assert "live drift: off (--no-live-drift)" in (tmp_path / "serve.log").read_text()
    finally:
        server.stop()
