"""A local HTTP server standing in for Yahoo Finance's chart API and BigQuery's REST API in the `kiln fetch` tests.

It replays the real recorded answers in tests/fixtures/ (see the README there): Yahoo's chart answers for NVDA,
MSFT, AAPL, EURUSD=X and TSLA (sliced to the requested period1/period2, as Yahoo does), and BigQuery's `jobs.query`
answer for usa_names and bigrquery's nested and repeated cells. Around them it plays the documented behaviours
the recordings cannot show on their own: an unknown symbol (Yahoo's error envelope with HTTP 404, or with 200), an
empty range (meta and indicators but no `timestamp`), 429 with Retry-After then 503 before an answer, a BigQuery job
that is not complete at first, results in three pages chained by `pageToken`, and BigQuery's error bodies.

The OAuth token endpoint checks the service-account JWT as Google does: RS256, signed by the private key whose
public half the test generated, with the right issuer, audience, scope and lifetime. Every request is recorded
(`stub.requests`) so that tests can check what kiln sent, and that no credential leaked into a URL.
"""

import base64
import copy
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FIXTURES = Path(__file__).resolve().parent / "fixtures"

YAHOO = {
    "NVDA": "chart_NVDA_1d_2021-02-01_2022-01-31_split.json",
    "MSFT": "chart_MSFT_1d_2021-02-01_2022-01-31_dividends.json",
    "AAPL": "chart_AAPL_1d_2020-08-31_2020-11-07.json",
    "AAPL1": "chart_AAPL_1d_2020-01-01_2020-01-03.json",
    "EURUSD=X": "chart_EURUSD=X_1d_2020-01-01_2020-01-03.json",
    "TSLA": "chart_TSLA_1d_max_to_2023-08-12.json",
}

ACCESS_TOKEN = "ya29.stub-access-token-DO-NOT-LEAK"
SCOPE = "https://www.googleapis.com/auth/bigquery.readonly"


def yahoo_answer(symbol: str) -> dict:
    return json.loads((FIXTURES / "yahoo" / YAHOO[symbol]).read_text())


def slice_chart(answer: dict, period1: int | None, period2: int | None) -> dict:
    """The answer with only the bars in [period1, period2), as Yahoo cuts a range out of a symbol's history."""
    answer = copy.deepcopy(answer)
    result = answer["chart"]["result"][0]
    stamps = result.get("timestamp", [])
    keep = [i for i, t in enumerate(stamps) if (period1 is None or t >= period1) and (period2 is None or t < period2)]
    result["timestamp"] = [stamps[i] for i in keep]
    quote = result["indicators"]["quote"][0]
    for key in list(quote):
        quote[key] = [quote[key][i] for i in keep]
    for adj in result["indicators"].get("adjclose", []):
        adj["adjclose"] = [adj["adjclose"][i] for i in keep]
    lo = period1 if period1 is not None else -(2**62)
    hi = period2 if period2 is not None else 2**62
    for kind, events in list(result.get("events", {}).items()):
        result["events"][kind] = {k: v for k, v in events.items() if lo <= int(v["date"]) < hi}
    if not keep:
        del result["timestamp"]
    return answer


def bq_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "bigquery" / name).read_text())


def nested_answer() -> dict:
    """One row of bigrquery's four recorded nested cells side by side: a RECORD, a REPEATED INTEGER, a REPEATED
    RECORD and a RECORD of REPEATED fields, each with its recorded schema (renamed s, a, as_, sa)."""
    parts = [("s", "struct"), ("a", "array"), ("as_", "array-struct"), ("sa", "struct-array")]
    fields, cells = [], []
    for name, part in parts:
        field = bq_fixture(f"bigrquery/parse-schema-{part}.json")["schema"]["fields"][0]
        field["name"] = name
        fields.append(field)
        cells.append(bq_fixture(f"bigrquery/parse-values-{part}.json")["rows"][0]["f"][0])
    return {"kind": "bigquery#queryResponse", "schema": {"fields": fields}, "rows": [{"f": cells}],
            "totalRows": "1", "jobComplete": True,
            "jobReference": {"projectId": "test-project", "jobId": "job_nested", "location": "US"}}


def usa_names() -> dict:
    return bq_fixture("python-bigquery/jobs_query_response_usa_names.json")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SourceStub:
    """Start with `SourceStub()`, use `.url`, stop with `.stop()`. `key_file(path)` writes a service-account key
    whose token_uri is this server."""

    def __init__(self):
        self.requests = []
        self.counts = {}
        self.lock = threading.Lock()
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self.private_key.public_key()
        self.jwt_checks = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.handle(self, "GET")

            def do_POST(self):
                stub.handle(self, "POST")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that closes its connection early is not the stub's problem

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def key_file(self, path: Path, private_key=None) -> Path:
        pem = (private_key or self.private_key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "test-project", "private_key_id": "stubkey1",
            "private_key": pem, "client_email": "kiln-test@test-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": self.url + "/token",
        }))
        return path

    def count(self, key: str) -> int:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    # --- plumbing -------------------------------------------------------------------------------------------
    def handle(self, h, method):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": query, "headers": dict(h.headers),
                                  "body": body.decode(errors="replace")})
        try:
            status, payload, headers = self.route(method, urllib.parse.unquote(url.path), query, h.headers, body)
        except Exception as e:  # a stub bug shows up as a 500 the test will report
            status, payload, headers = 500, {"stub_error": repr(e)}, {}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        headers = {"Content-Type": "application/json; charset=UTF-8", **headers}
        headers["Content-Length"] = str(len(data))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def route(self, method, path, query, headers, body):
        if path.startswith("/files/") and method == "GET":
            # a data file of the repository, for fetching by URL
            file = FIXTURES.parent.parent / "data" / path[len("/files/"):]
            if file.is_file() and ".." not in path:
                return 200, file.read_bytes(), {"Content-Type": "text/csv"}
            return 404, {"error": "no such file"}, {}
        if path.startswith("/v8/finance/chart/"):
            return self.yahoo(path.rsplit("/", 1)[1], query)
        if path == "/token" and method == "POST":
            return self.token(body)
        if path.startswith("/bigquery/v2/projects/"):
            if headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
                return 401, {"error": {"code": 401, "message": "Request is missing required authentication "
                                       "credential.", "status": "UNAUTHENTICATED"}}, {}
            rest = path[len("/bigquery/v2/projects/"):]
            project, _, tail = rest.partition("/")
            if method == "POST" and tail == "queries":
                return self.query(project, json.loads(body))
            if method == "GET" and tail.startswith("queries/"):
                return self.results(project, tail[len("queries/"):], query)
        return 404, {"error": f"no route {method} {path}"}, {}

    # --- Yahoo ----------------------------------------------------------------------------------------------
    def yahoo(self, symbol, query):
        not_found = {"chart": {"result": None, "error": {
            "code": "Not Found", "description": "No data found, symbol may be delisted"}}}
        if symbol == "FLAKY":
            n = self.count("yahoo:FLAKY")
            if n == 1:
                return 429, b"Too Many Requests", {"Retry-After": "1", "Content-Type": "text/plain"}
            if n == 2:
                return 503, b"<html>Service Unavailable</html>", {}
            return 200, yahoo_answer("AAPL1"), {}
        if symbol == "DOWN":
            return 503, b"<html>Service Unavailable</html>", {}
        if symbol == "EMPTY":
            answer = slice_chart(yahoo_answer("AAPL1"), 0, 1)
            return 200, answer, {}
        if symbol == "GONE200":
            return 200, not_found, {}
        if symbol == "GARBAGE":
            return 200, b"<html>this is not json</html>", {}
        if symbol not in YAHOO:
            return 404, not_found, {}
        p1 = int(query["period1"]) if "period1" in query else None
        p2 = int(query["period2"]) if "period2" in query else None
        return 200, slice_chart(yahoo_answer(symbol), p1, p2), {}

    # --- BigQuery -------------------------------------------------------------------------------------------
    def token(self, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        bad = lambda why: (400, {"error": "invalid_grant", "error_description": why}, {})  # noqa: E731
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return bad("Invalid grant_type.")
        try:
            head, claims, sig = form["assertion"].split(".")
            header = json.loads(b64url_decode(head))
            payload = json.loads(b64url_decode(claims))
        except (KeyError, ValueError):
            return bad("Invalid JWT.")
        if header.get("alg") != "RS256":
            return bad("Invalid JWT: alg must be RS256.")
        try:
            self.public_key.verify(b64url_decode(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except InvalidSignature:
            self.jwt_checks.append("bad signature")
            return bad("Invalid JWT Signature.")
        now = time.time()
        problems = []
        if payload.get("aud") != self.url + "/token":
            problems.append("aud")
        if payload.get("iss") != "kiln-test@test-project.iam.gserviceaccount.com":
            problems.append("iss")
        if SCOPE not in str(payload.get("scope", "")).split():
            problems.append("scope")
        if not (payload.get("iat", 0) - 300 <= now <= payload.get("exp", 0)) or payload["exp"] - payload["iat"] > 3600:
            problems.append("iat/exp")
        if problems:
            self.jwt_checks.append("bad claims: " + ",".join(problems))
            return bad("Invalid JWT claims: " + ",".join(problems))
        self.jwt_checks.append("ok")
        return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}, {}

    def query(self, project, request):
        sql = request.get("query", "").lower()
        ref = lambda job: {"projectId": project, "jobId": job, "location": "US"}  # noqa: E731
        if "flaky" in sql and self.count("bq:flaky") == 1:
            return 503, {"error": {"code": 503, "message": "The service is currently unavailable.",
                                   "status": "UNAVAILABLE"}}, {}
        if "syntax" in sql:
            return 400, {"error": {"code": 400, "message": "Syntax error: Unexpected identifier \"SELEC\" at [1:1]",
                                   "errors": [{"message": "Syntax error: Unexpected identifier \"SELEC\" at [1:1]",
                                               "domain": "global", "reason": "invalidQuery", "location": "q",
                                               "locationType": "parameter"}], "status": "INVALID_ARGUMENT"}}, {}
        if "denied" in sql:
            return 403, {"error": {"code": 403, "message": f"Access Denied: Project {project}: User does not have "
                                   "bigquery.jobs.create permission in project " + project + ".",
                                   "status": "PERMISSION_DENIED"}}, {}
        if "missing" in sql:
            return 404, {"error": {"code": 404, "message": f"Not found: Dataset {project}:nope was not found in "
                                   "location US", "status": "NOT_FOUND"}}, {}
        if "slow" in sql or "failing" in sql:
            job = "job_slow" if "slow" in sql else "job_failing"
            return 200, {"kind": "bigquery#queryResponse", "jobReference": ref(job), "jobComplete": False}, {}
        if "paged" in sql:
            return 200, self.page(project, 0), {}
        if "nested" in sql:
            return 200, nested_answer(), {}
        return 200, usa_names(), {}

    def page(self, project, index):
        """usa_names' nine rows as three pages of three, chained by pageToken."""
        answer = usa_names()
        answer["jobReference"] = {"projectId": project, "jobId": "job_paged", "location": "US"}
        answer["rows"] = answer["rows"][3 * index:3 * index + 3]
        if index < 2:
            answer["pageToken"] = f"page-{index + 1}"
        return answer

    def results(self, project, job, query):
        if job == "job_slow":
            if self.count("bq:job_slow") < 2:
                return 200, {"kind": "bigquery#getQueryResultsResponse", "jobReference":
                             {"projectId": project, "jobId": job, "location": "US"}, "jobComplete": False}, {}
            answer = usa_names()
            answer["kind"] = "bigquery#getQueryResultsResponse"
            return 200, answer, {}
        if job == "job_failing":
            return 400, {"error": {"code": 400, "message": "Resources exceeded during query execution: The query "
                                   "could not be executed in the allotted memory.", "status": "INVALID_ARGUMENT",
                                   "errors": [{"reason": "resourcesExceeded"}]}}, {}
        if job == "job_paged":
            token = query.get("pageToken", "")
            index = {"page-1": 1, "page-2": 2}.get(token)
            if index is None:
                return 400, {"error": {"code": 400, "message": f"Invalid page token {token!r}"}}, {}
            answer = self.page(project, index)
            answer["kind"] = "bigquery#getQueryResultsResponse"
            return 200, answer, {}
        return 404, {"error": {"code": 404, "message": f"Not found: Job {project}:US.{job}", "status": "NOT_FOUND"}}, {}


def other_key():
    """A key the stub does not know: its JWTs fail the signature check."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
