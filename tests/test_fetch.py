"""`kiln fetch`, snapshots and training on them: files and URLs, the Yahoo chart API and BigQuery REST (replayed by
the local stub in stub_sources.py from the real recorded answers in tests/fixtures/), `kiln data list`,
`data.snapshot` in an experiment, and times as Yahoo's and yfinance's files write them."""

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPO, run_kiln
from stub_sources import ACCESS_TOKEN, SourceStub

ECB = REPO / "data/ecb_eurofxref-hist.csv"


@pytest.fixture(scope="module")
def stub():
    server = SourceStub()
    yield server
    server.stop()


def snapshot_files(root: Path) -> list:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_experiment(path: Path, base: str, **sections) -> Path:
    """An experiment extending a shipped one, with some sections replaced (JSON is YAML)."""
    path.write_text("\n".join([f"extends: {REPO / base}", *(f"{k}: {json.dumps(v)}" for k, v in sections.items())]))
    return path


# --- files and URLs, snapshots ---------------------------------------------------------------------------------

def test_a_file_becomes_a_snapshot_and_the_same_data_again_writes_nothing(tmp_path):
    root = tmp_path / "raw"
    out = run_kiln("fetch", "--root", root, "--json", tmp_path / "f.json", "file", REPO / "data/ETTh1.csv",
                   "--time-column", "date")
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["written"] is True
    m = report["manifest"]
    assert (m["source"], m["name"], m["rows"]) == ("file", "ETTh1", 17420)
    assert m["time_range"] == ["2016-07-01T00:00:00Z", "2018-06-26T19:00:00Z"]
    assert [c["name"] for c in m["columns"]] == ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert m["kiln_version"] and m["fetched_at"].endswith("Z")
    data = Path(report["path"])
    assert data.name == m["file"] and data.name.endswith(f"-{m['sha256'][:12]}.parquet")
    assert f"wrote snapshot file/ETTh1@{data.stem}" in out.stdout
    # the Parquet file holds the CSV's rows, its times as UTC datetimes
    table = pq.read_table(data)
    assert table.num_rows == 17420 and str(table.schema.field("date").type) == "timestamp[ms]"
    with open(REPO / "data/ETTh1.csv") as f:
        first = next(csv.DictReader(f))
    assert table.column("OT")[0].as_py() == float(first["OT"])

    before = snapshot_files(root)
    again = run_kiln("fetch", "--root", root, "file", REPO / "data/ETTh1.csv", "--time-column", "date")
    assert "unchanged: the data equals snapshot file/ETTh1@" in again.stdout and "nothing written" in again.stdout
    assert snapshot_files(root) == before

    listing = run_kiln("data", "list", "--root", root)
    assert f"file/ETTh1@{data.stem}" in listing.stdout and "17420" in listing.stdout
    assert "2016-07-01T00:00:00Z .. 2018-06-26T19:00:00Z" in listing.stdout
    listed = json.loads(run_kiln("data", "list", "--root", root, "--json").stdout)
    assert [s["manifest"]["sha256"] for s in listed] == [m["sha256"]]


def test_a_url_is_fetched_like_a_file_and_the_manifest_keeps_no_query_string(tmp_path, stub):
    root = tmp_path / "raw"
    url = f"{stub.url}/files/ETTh1.csv?token=SECRET-IN-QUERY"
    run_kiln("fetch", "--root", root, "--json", tmp_path / "f.json", "file", url, "--time-column", "date")
    m = json.loads((tmp_path / "f.json").read_text())["manifest"]
    assert (m["source"], m["name"], m["rows"]) == ("url", "ETTh1", 17420)
    assert m["request"]["location"] == f"{stub.url}/files/ETTh1.csv"
    assert not any("SECRET-IN-QUERY" in p.read_text(errors="ignore") for p in root.rglob("*.json"))
    # a URL that is not there: a clear error, nothing left behind
    bad = run_kiln("fetch", "--root", root, "file", f"{stub.url}/files/nope.csv", check=False)
    assert bad.returncode != 0 and "404" in bad.stderr and "nope.csv" in bad.stderr
    assert len(list(root.rglob("*.parquet"))) == 1


def test_training_reads_a_snapshot_by_reference_and_the_run_names_it(tmp_path):
    root = tmp_path / "raw"
    run_kiln("fetch", "--root", root, "--name", "ecb", "file", ECB, "--time-column", "Date")
    snap = json.loads(run_kiln("data", "list", "--root", root, "--json").stdout)[0]
    store = tmp_path / "mlruns"
    config = write_experiment(tmp_path / "exp.yaml", "conf/experiments/eurusd.yaml",
                              data={"path": "", "snapshot": "file/ecb@latest", "snapshot_root": str(root),
                                    "time_column": "Date"})
    run_kiln("train", "--config", config, "--tracking-uri", store)
    run = next(store.glob("*/*/tags")).parent
    tags = {p.name: p.read_text() for p in (run / "tags").iterdir()}
    assert tags["kiln.data.snapshot"] == snap["reference"]
    assert tags["kiln.data.sha256"] == snap["manifest"]["sha256"]
    # the same model as from the CSV itself: the snapshot holds the same rows
    direct = tmp_path / "direct"
    run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--tracking-uri", direct)
    metric = lambda r: (r / "metrics/test/rmse").read_text().split()[1]  # noqa: E731
    assert metric(run) == metric(next(direct.glob("*/*/metrics")).parent)

    # a snapshot edited after the fetch is refused, naming both digests
    data = Path(snap["path"])
    shutil.copy(REPO / "data/ETTh1.csv", tmp_path / "x.csv")
    data.write_bytes(data.read_bytes()[:-8] + b"\0" * 8)
    bad = run_kiln("train", "--config", config, "--tracking-uri", store, check=False)
    assert bad.returncode == 2 and "has changed since it was fetched" in bad.stderr, bad.stderr
    # an unknown snapshot names what there is
    config2 = write_experiment(tmp_path / "exp2.yaml", "conf/experiments/eurusd.yaml",
                               data={"path": "", "snapshot": "file/nope@latest", "snapshot_root": str(root),
                                     "time_column": "Date"})
    bad = run_kiln("train", "--config", config2, "--tracking-uri", store, check=False)
    assert bad.returncode == 2 and "no snapshot file/nope" in bad.stderr and "file/ecb" in bad.stderr, bad.stderr
    # path and snapshot together are refused with the key
    config3 = write_experiment(tmp_path / "exp3.yaml", "conf/experiments/eurusd.yaml",
                               data={"path": str(ECB), "snapshot": "file/ecb@latest", "time_column": "Date"})
    bad = run_kiln("train", "--config", config3, "--tracking-uri", store, check=False)
    assert bad.returncode == 2 and "data.snapshot" in bad.stderr and "not both" in bad.stderr, bad.stderr


# --- times as yfinance writes them, and formats that travel in the bundle ---------------------------------------

def ecb_usd() -> list:
    with open(ECB) as f:
        rows = [(r["Date"], r["USD"]) for r in csv.DictReader(f) if r["USD"] not in ("N/A", "")]
    return sorted(rows)


def test_a_yfinance_export_trains_and_predicts_without_a_time_format(tmp_path):
    # yfinance's daily EUR/USD export dates each bar by the session's start in UTC: `2006-05-15 23:00:00+00:00`
    path = tmp_path / "EURUSD=X.csv"
    path.write_text("Date,USD\n" + "".join(f"{d} 23:00:00+00:00,{v}\n" for d, v in ecb_usd()))
    store = tmp_path / "mlruns"
    config = write_experiment(tmp_path / "exp.yaml", "conf/experiments/eurusd.yaml",
                              data={"path": str(path), "time_column": "Date"})
    run_kiln("train", "--config", config, "--tracking-uri", store)
    run_id = next(store.glob("*/*/artifacts/model")).parent.parent.name
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", f"runs:/{run_id}/model", "--input", path, "--output", out,
             "--tracking-uri", store)
    rows = list(csv.DictReader(open(out)))
    assert rows[0]["Date"].endswith("T23:00:00") and len(rows) > 7000
    # the same predictions as the model trained on the plain dates: only the time of day differs
    plain = tmp_path / "plain"
    run_kiln("train", "--config", "conf/experiments/eurusd.yaml", "--tracking-uri", plain)
    metric = lambda s: next(s.glob("*/*/metrics/test/rmse")).read_text().split()[1]  # noqa: E731
    assert metric(store) == metric(plain)


def test_a_custom_time_format_travels_in_the_bundle_so_predict_reads_the_training_file(tmp_path):
    path = tmp_path / "dmy.csv"
    path.write_text("Date,USD\n" + "".join(f"{d[8:10]}/{d[5:7]}/{d[:4]},{v}\n" for d, v in ecb_usd()))
    store = tmp_path / "mlruns"
    config = write_experiment(tmp_path / "exp.yaml", "conf/experiments/eurusd.yaml",
                              data={"path": str(path), "time_column": "Date", "time_format": "%d/%m/%Y"})
    run_kiln("train", "--config", config, "--tracking-uri", store)
    model = next(store.glob("*/*/artifacts/model"))
    recipe = json.loads((model / "kiln/pipeline.json").read_text())["input"]
    assert json.dumps(recipe).count('"time_format": "%d/%m/%Y"') == 1, recipe
    out = tmp_path / "pred.csv"
    run_kiln("predict", "--model", f"runs:/{model.parent.parent.name}/model", "--input", path, "--output", out,
             "--tracking-uri", store)
    rows = list(csv.DictReader(open(out)))
    assert rows[0]["Date"] == "1999-03-26" and len(rows) > 7000


# --- Yahoo Finance ---------------------------------------------------------------------------------------------

def yahoo_bars(symbol: str) -> dict:
    """The recorded answer's bars by local date (New York for these stocks) as (close, adjclose)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from stub_sources import yahoo_answer
    r = yahoo_answer(symbol)["chart"]["result"][0]
    zone = ZoneInfo(r["meta"]["exchangeTimezoneName"])
    q = r["indicators"]["quote"][0]
    adj = r["indicators"]["adjclose"][0]["adjclose"]
    return {datetime.fromtimestamp(t, zone).date().isoformat(): (q["close"][i], adj[i])
            for i, t in enumerate(r["timestamp"])}


def test_yahoo_symbols_become_one_panel_snapshot_with_exchange_dates_splits_and_dividends(tmp_path, stub):
    root = tmp_path / "raw"
    run_kiln("fetch", "--root", root, "--json", tmp_path / "f.json", "yahoo", "NVDA", "MSFT", "TSLA",
             "--start", "2021-02-01", "--end", "2022-02-01", "--base-url", stub.url)
    report = json.loads((tmp_path / "f.json").read_text())
    m = report["manifest"]
    assert (m["source"], m["name"]) == ("yahoo", "NVDA-MSFT-TSLA_1d")
    assert m["time_range"] == ["2021-02-01", "2022-01-31"]
    assert m["request"]["symbols"] == ["NVDA", "MSFT", "TSLA"] and m["request"]["interval"] == "1d"
    table = pq.read_table(report["path"]).to_pylist()
    assert [c["name"] for c in m["columns"]] == ["symbol", "date", "open", "high", "low", "close", "adj_close",
                                                 "volume", "dividends", "splits"]
    by = {}
    for row in table:
        by.setdefault(row["symbol"], {})[row["date"].isoformat()] = row
    # NVDA and MSFT were recorded up to 2022-01-28; TSLA's full history also has 2022-01-31
    assert {s: len(v) for s, v in by.items()} == {"NVDA": 252, "MSFT": 252, "TSLA": 253}
    # every bar is the recorded one, on its New York date
    for symbol in ("NVDA", "MSFT"):
        recorded = yahoo_bars(symbol)
        assert set(by[symbol]) == set(recorded)
        for day, (close, adj) in recorded.items():
            assert by[symbol][day]["close"] == close and by[symbol][day]["adj_close"] == adj
    # NVDA's 4:1 split on 2021-07-20; MSFT's dividends on their ex-dates, 0 elsewhere (as yfinance writes them)
    assert by["NVDA"]["2021-07-20"]["splits"] == 4.0
    assert sum(r["splits"] != 0 for r in by["NVDA"].values()) == 1
    from stub_sources import yahoo_answer
    dividends = yahoo_answer("MSFT")["chart"]["result"][0]["events"]["dividends"].values()
    paid = {d: r["dividends"] for d, r in by["MSFT"].items() if r["dividends"] != 0}
    assert len(paid) == len(dividends) == 4 and sorted(paid.values()) == sorted(d["amount"] for d in dividends)
    # the requests asked for what yfinance asks: adjusted closes and the events
    asked = [r for r in stub.requests if r["path"] == "/v8/finance/chart/NVDA"][-1]["query"]
    assert asked["interval"] == "1d" and asked["events"] == "div,splits" and asked["includeAdjustedClose"] == "true"


def test_yahoo_errors_name_the_symbol_and_leave_no_snapshot(tmp_path, stub):
    root = tmp_path / "raw"
    cases = {
        "NOPE": "No data found, symbol may be delisted",  # the error envelope with HTTP 404
        "GONE200": "No data found, symbol may be delisted",  # the same envelope with HTTP 200
        "EMPTY": "no bars",  # an empty range: meta and indicators, no timestamp
        "GARBAGE": "malformed",  # not JSON
    }
    for symbol, expected in cases.items():
        proc = run_kiln("fetch", "--root", root, "yahoo", "MSFT", symbol, "--base-url", stub.url,
                        "--start", "2021-03-01", "--end", "2021-03-06", check=False)
        assert proc.returncode != 0, symbol
        assert symbol in proc.stderr and expected.lower() in proc.stderr.lower(), proc.stderr
    assert not list(root.rglob("*.parquet")) and not list(root.rglob("*.json"))
    # a bad request is refused before anything is sent
    proc = run_kiln("fetch", "--root", root, "yahoo", "MSFT", "--interval", "7d", "--base-url", stub.url,
                    check=False)
    assert proc.returncode == 2 and "7d" in proc.stderr, proc.stderr


def test_yahoo_retries_429_with_retry_after_then_503_and_gives_up_on_a_dead_host(tmp_path, stub):
    root = tmp_path / "raw"
    proc = run_kiln("fetch", "--root", root, "yahoo", "FLAKY", "--range", "1y", "--base-url", stub.url)
    assert "HTTP 429" in proc.stderr and "HTTP 503" in proc.stderr
    attempts = [r for r in stub.requests if r["path"] == "/v8/finance/chart/FLAKY"]
    assert len(attempts) == 3
    proc = run_kiln("fetch", "--root", root, "yahoo", "DOWN", "--range", "1y", "--base-url", stub.url, check=False)
    assert proc.returncode != 0 and "503" in proc.stderr and "gave up after 5 attempts" in proc.stderr, proc.stderr
    assert len([r for r in stub.requests if r["path"] == "/v8/finance/chart/DOWN"]) == 5


def test_fetch_then_train_on_latest_and_mlflow_sees_the_dataset_input(tmp_path, stub, mlflow_server):
    """The stocks experiment end to end: kiln fetch of a panel of three symbols, then kiln train on @latest into a
    real MLflow server, whose Python client shows the run's dataset input with the snapshot's digest."""
    env = {"KILN_YAHOO_URL": stub.url}
    run_kiln("fetch", "--config", "conf/experiments/stocks.yaml", "--root", tmp_path / "raw", "--json",
             tmp_path / "f.json", env=env)
    snap = json.loads((tmp_path / "f.json").read_text())
    config = write_experiment(tmp_path / "stocks.yaml", "conf/experiments/stocks.yaml",
                              data={"snapshot": "yahoo/NVDA-MSFT-TSLA_1d@latest",
                                    "snapshot_root": str(tmp_path / "raw"), "time_column": "date",
                                    "series_column": "symbol"})
    # kiln validate checks the snapshot against the experiment's validate: section (every check passes)
    checked = run_kiln("validate", "--config", config, "--json", tmp_path / "v.json")
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["errors"] == report["warnings"] == 0 and len(report["checks"]) >= 25, report
    assert Path(snap["path"]).name in checked.stdout
    out = run_kiln("train", "--config", config, "--tracking-uri", mlflow_server.url, env=env)
    assert "validating" in out.stderr
    run_id = out.stdout.split("\nrun ")[1].split()[0]
    from mlflow.tracking import MlflowClient
    run = MlflowClient(mlflow_server.url).get_run(run_id)
    assert run.data.tags["kiln.data.snapshot"] == snap["reference"]
    assert run.data.tags["kiln.data.sha256"] == snap["manifest"]["sha256"]
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == snap["manifest"]["sha256"][:8]
    assert json.loads(dataset_input.dataset.source)["uri"].endswith(Path(snap["path"]).name)
    schema = json.loads(dataset_input.dataset.schema)["mlflow_colspec"]
    assert {c["name"] for c in schema} >= {"symbol", "date", "adj_close", "volume"}


# --- BigQuery --------------------------------------------------------------------------------------------------

def assert_no_secret(stub, root, *texts):
    """The access token and the signed assertion appear nowhere kiln wrote or said."""
    assertions = [r["body"] for r in stub.requests if r["path"] == "/token"]
    secrets = [ACCESS_TOKEN] + [a.split("assertion=")[-1][:40] for a in assertions if "assertion=" in a]
    written = [p.read_bytes().decode(errors="ignore") for p in Path(root).rglob("*") if p.is_file()]
    for secret in secrets:
        for text in [*texts, *written]:
            assert secret not in text


def test_bigquery_signs_in_with_a_service_account_key_and_keeps_the_types(tmp_path, stub):
    key = stub.key_file(tmp_path / "key.json")
    root = tmp_path / "raw"
    before = len(stub.jwt_checks)
    out = run_kiln("fetch", "--root", root, "--json", tmp_path / "f.json", "bigquery", "--project", "test-project",
                   "--base-url", stub.url, "--key-file", key, "--query", "SELECT name, number FROM usa_names")
    # the token endpoint verified the JWT's RS256 signature with the public half of the key the test generated
    assert stub.jwt_checks[before:] == ["ok"]
    report = json.loads((tmp_path / "f.json").read_text())
    m = report["manifest"]
    assert m["source"] == "bigquery" and m["rows"] == 9
    assert [(c["name"], c["dtype"]) for c in m["columns"]] == [("name", "str"), ("number", "i64")]
    assert m["request"]["auth"] == {"key_file": str(key)}
    table = pq.read_table(report["path"])
    assert str(table.schema.field("number").type) == "int64"
    from stub_sources import usa_names
    assert table.to_pylist() == [{"name": r["f"][0]["v"], "number": int(r["f"][1]["v"])}
                                 for r in usa_names()["rows"]]
    assert_no_secret(stub, root, out.stdout, out.stderr)


def test_bigquery_polls_a_job_follows_every_page_and_retries(tmp_path, stub):
    key = stub.key_file(tmp_path / "key.json")
    root = tmp_path / "raw"
    from stub_sources import usa_names
    expected = [r["f"][0]["v"] for r in usa_names()["rows"]]
    digests = set()
    for query, name in [("SELECT * FROM slow", "slow"), ("SELECT * FROM paged", "paged"),
                        ("SELECT * FROM flaky", "flaky")]:
        out = run_kiln("fetch", "--root", root, "--name", name, "--json", tmp_path / f"{name}.json", "bigquery",
                       "--project", "test-project", "--base-url", stub.url, "--key-file", key, "--query", query)
        report = json.loads((tmp_path / f"{name}.json").read_text())
        path = report["path"]
        digests.add(report["manifest"]["sha256"])
        assert [r["name"] for r in pq.read_table(path).to_pylist()] == expected, name
        assert_no_secret(stub, root, out.stdout, out.stderr)
    # the same nine rows make the same file, in one page or in three
    assert len(digests) == 1, digests
    polls = [r for r in stub.requests if r["path"].endswith("/queries/job_slow")]
    assert len(polls) >= 2
    pages = [r["query"].get("pageToken") for r in stub.requests if r["path"].endswith("/queries/job_paged")]
    assert pages == ["page-1", "page-2"]


def test_bigquery_nested_and_repeated_values_are_json_text(tmp_path, stub):
    key = stub.key_file(tmp_path / "key.json")
    run_kiln("fetch", "--root", tmp_path / "raw", "--json", tmp_path / "f.json", "bigquery", "--project",
             "test-project", "--base-url", stub.url, "--key-file", key, "--query", "SELECT * FROM nested")
    [row] = pq.read_table(json.loads((tmp_path / "f.json").read_text())["path"]).to_pylist()
    # bigrquery's recorded cells, as BigQuery's own clients return them (integers as numbers)
    assert json.loads(row["s"]) == {"a": 1, "b": "abc"}
    assert json.loads(row["a"]) == [1, 2, 3]
    assert json.loads(row["as_"]) == [{"a": 1, "b": "a"}, {"a": 2, "b": "b"}, {"a": 3, "b": "c"}]
    assert json.loads(row["sa"]) == {"a": [1, 2, 3], "b": ["a", "b"]}


def test_bigquery_errors_are_shown_with_bigquerys_message_and_leave_nothing(tmp_path, stub):
    key = stub.key_file(tmp_path / "key.json")
    root = tmp_path / "raw"
    cases = {
        "SELEC syntax": "Syntax error: Unexpected identifier",
        "SELECT denied": "Access Denied: Project test-project",
        "SELECT * FROM missing": "Not found: Dataset test-project:nope",
        "SELECT failing": "Resources exceeded during query execution",
    }
    for query, message in cases.items():
        proc = run_kiln("fetch", "--root", root, "bigquery", "--project", "test-project", "--base-url", stub.url,
                        "--key-file", key, "--query", query, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (query, proc.stderr)
        assert_no_secret(stub, root, proc.stdout, proc.stderr)
    assert not list(root.rglob("*.parquet")) and not list(root.rglob("*.json"))


def test_bigquery_credentials_that_cannot_be_used_are_named_never_shown(tmp_path, stub):
    from stub_sources import other_key
    root = tmp_path / "raw"
    # a key the service does not know: the token endpoint refuses the signature
    wrong = stub.key_file(tmp_path / "wrong.json", private_key=other_key())
    proc = run_kiln("fetch", "--root", root, "bigquery", "--project", "test-project", "--base-url", stub.url,
                    "--key-file", wrong, "--query", "SELECT 1", check=False)
    assert proc.returncode != 0 and "Invalid JWT Signature" in proc.stderr, proc.stderr
    pem = json.loads(wrong.read_text())["private_key"]
    body = pem.splitlines()[5]
    # files that are not keys: the file is named, its content never shown
    not_json = tmp_path / "not_json.json"
    not_json.write_text("PRIVATE " + body)
    no_key = tmp_path / "no_key.json"
    no_key.write_text(json.dumps({"type": "service_account", "client_email": "x@y", "token_uri": stub.url + "/token"}))
    bad_pem = tmp_path / "bad_pem.json"
    bad_pem.write_text(json.dumps({"type": "service_account", "client_email": "x@y", "token_uri": stub.url + "/token",
                                   "private_key": "-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n"}))
    for path in (not_json, no_key, bad_pem, tmp_path / "absent.json"):
        proc = run_kiln("fetch", "--root", root, "bigquery", "--project", "test-project", "--base-url", stub.url,
                        "--key-file", path, "--query", "SELECT 1", check=False)
        assert proc.returncode != 0 and str(path) in proc.stderr, proc.stderr
        assert body not in proc.stderr and body not in proc.stdout
    # a token from the environment instead of a key
    proc = run_kiln("fetch", "--root", root, "--name", "from_env", "bigquery", "--project", "test-project",
                    "--base-url", stub.url, "--token-env", "BQ_TOKEN", "--query", "SELECT * FROM usa_names",
                    env={"BQ_TOKEN": ACCESS_TOKEN})
    assert "wrote snapshot bigquery/from_env@" in proc.stdout
    assert_no_secret(stub, root, proc.stdout, proc.stderr)
    proc = run_kiln("fetch", "--root", root, "bigquery", "--project", "test-project", "--base-url", stub.url,
                    "--token-env", "BQ_TOKEN", "--query", "SELECT 1", check=False, env={"BQ_TOKEN": ""})
    assert proc.returncode != 0 and "BQ_TOKEN" in proc.stderr, proc.stderr


def test_train_refuses_a_snapshot_that_fails_validation_and_starts_no_run(tmp_path, stub):
    env = {"KILN_YAHOO_URL": stub.url}
    root = tmp_path / "raw"
    run_kiln("fetch", "--config", "conf/experiments/stocks.yaml", "--root", root, env=env)
    config = write_experiment(tmp_path / "stocks.yaml", "conf/experiments/stocks.yaml",
                              data={"snapshot": "yahoo/NVDA-MSFT-TSLA_1d@latest", "snapshot_root": str(root),
                                    "time_column": "date", "series_column": "symbol"})
    # the same rules with a price ceiling NVDA, MSFT and TSLA all crossed in 2021
    strict = config.read_text() + "\nvalidate: {columns: {adj_close: {type: number, max: 300}}, " \
        "time: {column: date, series_column: symbol, freshness: 30d}}\n"
    config.write_text(strict)
    store = tmp_path / "mlruns"
    proc = run_kiln("train", "--config", config, "--tracking-uri", store, check=False, env=env)
    assert proc.returncode == 2 and "failed validation" in proc.stderr and "no run was started" in proc.stderr, \
        proc.stderr
    assert "adj_close" in proc.stderr
    assert not list(store.glob("*/*/meta.yaml"))
    # freshness is measured from the snapshot's fetch time, not from the bars' dates alone: a snapshot fetched
    # now whose last bar is from January 2022 is stale
    assert "freshness" in proc.stderr
