use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use polars::prelude::DataType;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

use super::*;
use crate::source::http::stub::{Reply, Seen, Stub, decode};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/bigquery")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

const USA_NAMES: &str = "python-bigquery/jobs_query_response_usa_names.json";
const NAMES: [&str; 9] = ["Tiarra", "Timothy", "Tina", "Tierra", "Tia", "Tiara", "Tiana", "Tiffany", "Tiffani"];
const NUMBERS: [i64; 9] = [6, 325, 26, 10, 17, 22, 6, 229, 8];
const TOKEN: &str = "ya29.a-test-access-token";

fn fields_of(schema: &Value) -> Vec<Field> {
    schema["schema"]["fields"].as_array().unwrap().iter().map(|f| Field::parse(f).unwrap()).collect()
}

fn decode_fixture(schema: &str, data: &str) -> DataFrame {
    let data = fixture(data);
    decode_page(&fields_of(&fixture(schema)), data["rows"].as_array().unwrap(), 0).unwrap()
}

fn strings(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
    frame.column(name).unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect()
}

fn ints(frame: &DataFrame, name: &str) -> Vec<Option<i64>> {
    frame.column(name).unwrap().i64().unwrap().iter().collect()
}

#[test]
fn the_jobs_query_answer_decodes_to_its_nine_rows() {
    let answer = fixture(USA_NAMES);
    let frame = decode_page(&fields_of(&answer), answer["rows"].as_array().unwrap(), 0).unwrap();
    assert_eq!(frame.height(), 9);
    assert_eq!(frame.column("name").unwrap().dtype(), &DataType::String);
    assert_eq!(frame.column("number").unwrap().dtype(), &DataType::Int64);
    assert_eq!(strings(&frame, "name"), NAMES.map(|s| Some(s.to_string())));
    assert_eq!(ints(&frame, "number"), NUMBERS.map(Some));
}

#[test]
fn tabledata_rows_decode_integer_string_and_date() {
    let frame = decode_fixture("bigrquery/schema_field-simple.json", "bigrquery/tabledata_list_data-simple.json");
    assert_eq!(ints(&frame, "x"), [5, 1, 3, 2, 4].map(Some));
    assert_eq!(strings(&frame, "y"), ["a", "e", "c", "d", "b"].map(|s| Some(s.to_string())));
    assert_eq!(frame.column("z").unwrap().dtype(), &DataType::Date);
    let days: Vec<Option<i32>> = frame.column("z").unwrap().date().unwrap().physical().iter().collect();
    let jan = |d: u32| Some((NaiveDate::from_ymd_opt(2018, 1, d).unwrap() - NaiveDate::default()).num_days() as i32);
    assert_eq!(days, [jan(5), jan(1), jan(3), jan(2), jan(4)]);
}

#[test]
fn records_and_repeated_values_become_json_text_with_the_field_names() {
    let cases = [
        ("bigrquery/parse-schema-struct.json", "bigrquery/parse-values-struct.json", r#"{"a":1,"b":"abc"}"#),
        ("bigrquery/parse-schema-array.json", "bigrquery/parse-values-array.json", "[1,2,3]"),
        (
            "bigrquery/parse-schema-array-struct.json",
            "bigrquery/parse-values-array-struct.json",
            r#"[{"a":1,"b":"a"},{"a":2,"b":"b"},{"a":3,"b":"c"}]"#,
        ),
        (
            "bigrquery/parse-schema-struct-array.json",
            "bigrquery/parse-values-struct-array.json",
            r#"{"a":[1,2,3],"b":["a","b"]}"#,
        ),
        ("bigrquery/parse-schema-array.json", "bigrquery/tabledata_list_data-array.json", "[1,2,3,4,5,6,7,8,9,10]"),
    ];
    for (schema, data, expected) in cases {
        let frame = decode_fixture(schema, data);
        assert_eq!(frame.column("x").unwrap().dtype(), &DataType::String, "{data}");
        assert_eq!(strings(&frame, "x"), [Some(expected.to_string())], "{data}");
    }
}

/// A schema with every type, as BigQuery's REST API writes it, and one row of values plus one of nulls.
fn every_type() -> (Vec<Field>, Vec<Value>) {
    let schema = json!({"schema": {"fields": [
        {"name": "i", "type": "INTEGER"}, {"name": "i64", "type": "INT64", "mode": "REQUIRED"},
        {"name": "f", "type": "FLOAT"}, {"name": "f64", "type": "FLOAT64"},
        {"name": "n", "type": "NUMERIC"}, {"name": "bn", "type": "BIGNUMERIC"},
        {"name": "b", "type": "BOOLEAN"}, {"name": "b2", "type": "BOOL"},
        {"name": "s", "type": "STRING"}, {"name": "by", "type": "BYTES"},
        {"name": "d", "type": "DATE"}, {"name": "dt", "type": "DATETIME"}, {"name": "t", "type": "TIME"},
        {"name": "ts", "type": "TIMESTAMP"}, {"name": "ts_text", "type": "TIMESTAMP"},
        {"name": "g", "type": "GEOGRAPHY"}, {"name": "j", "type": "JSON"},
        {"name": "rec", "type": "RECORD", "fields": [
            {"name": "n", "type": "NUMERIC"}, {"name": "ok", "type": "BOOLEAN"}, {"name": "x", "type": "FLOAT"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"}]},
        {"name": "nums", "type": "INTEGER", "mode": "REPEATED"}
    ]}});
    let cells = |vs: Vec<Value>| json!({"f": vs.into_iter().map(|v| json!({"v": v})).collect::<Vec<_>>()});
    let full = cells(vec![
        json!("-9223372036854775808"),
        json!("42"),
        json!("1.5"),
        json!("NaN"),
        json!("123.456"),
        json!("-0.000000001"),
        json!("true"),
        json!("false"),
        json!("héllo"),
        json!("AAEC/w=="),
        json!("2024-02-29"),
        json!("2024-02-29T23:59:58.123456"),
        json!("12:34:56.5"),
        json!("1514764800123456"),
        json!("1.514764800123456E9"),
        json!("POINT(1 2)"),
        json!("{\"k\":[1,2]}"),
        json!({"f": [{"v": "0.1"}, {"v": "true"}, {"v": "-Infinity"}, {"v": [{"v": "p"}, {"v": "q"}]}]}),
        json!([{"v": "7"}, {"v": "8"}]),
    ]);
    let mut nulls = vec![Value::Null; 19];
    nulls[1] = json!("0");
    nulls[18] = json!([]);
    let nulls = cells(nulls);
    (fields_of(&schema), vec![full, nulls])
}

#[test]
fn every_type_has_its_column_type_and_nulls_stay_null() {
    let (fields, rows) = every_type();
    let f = decode_page(&fields, &rows, 0).unwrap();
    let dtype = |n: &str| f.column(n).unwrap().dtype().clone();
    for n in ["i", "i64"] {
        assert_eq!(dtype(n), DataType::Int64);
    }
    for n in ["f", "f64", "n", "bn"] {
        assert_eq!(dtype(n), DataType::Float64);
    }
    for n in ["b", "b2"] {
        assert_eq!(dtype(n), DataType::Boolean);
    }
    for n in ["s", "by", "t", "g", "j", "rec", "nums"] {
        assert_eq!(dtype(n), DataType::String, "{n}");
    }
    assert_eq!(dtype("d"), DataType::Date);
    assert_eq!(dtype("dt"), DataType::Datetime(TimeUnit::Microseconds, None));
    assert_eq!(dtype("ts"), DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)));
    assert_eq!(dtype("ts_text"), DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)));

    assert_eq!(ints(&f, "i"), [Some(i64::MIN), None]);
    assert_eq!(ints(&f, "i64"), [Some(42), Some(0)]);
    let floats = |n: &str| -> Vec<Option<f64>> { f.column(n).unwrap().f64().unwrap().iter().collect() };
    assert_eq!(floats("f"), [Some(1.5), None]);
    assert!(floats("f64")[0].unwrap().is_nan());
    assert_eq!(floats("n"), [Some(123.456), None]);
    assert_eq!(floats("bn"), [Some(-1e-9), None]);
    let bools: Vec<Option<bool>> = f.column("b").unwrap().bool().unwrap().iter().collect();
    assert_eq!(bools, [Some(true), None]);
    assert_eq!(strings(&f, "s"), [Some("héllo".to_string()), None]);
    assert_eq!(strings(&f, "by"), [Some("AAEC/w==".to_string()), None]);
    assert_eq!(strings(&f, "t"), [Some("12:34:56.5".to_string()), None]);
    let days: Vec<Option<i32>> = f.column("d").unwrap().date().unwrap().physical().iter().collect();
    assert_eq!(days, [Some(19_782), None]);
    let micros = |n: &str| -> Vec<Option<i64>> { f.column(n).unwrap().datetime().unwrap().physical().iter().collect() };
    // 2024-02-29T23:59:58.123456 as wall time
    assert_eq!(micros("dt"), [Some(1_709_251_198_123_456), None]);
    assert_eq!(micros("ts"), [Some(1_514_764_800_123_456), None]);
    assert_eq!(micros("ts_text"), [Some(1_514_764_800_123_456), None]);
    assert_eq!(strings(&f, "g"), [Some("POINT(1 2)".to_string()), None]);
    assert_eq!(strings(&f, "j"), [Some("{\"k\":[1,2]}".to_string()), None]);
    assert_eq!(
        strings(&f, "rec"),
        [Some(r#"{"n":"0.1","ok":true,"x":"-Infinity","tags":["p","q"]}"#.to_string()), None]
    );
    assert_eq!(strings(&f, "nums"), [Some("[7,8]".to_string()), Some("[]".to_string())]);
}

#[test]
fn timestamps_are_read_in_both_of_bigquerys_forms() {
    for (text, micros) in [
        ("1514764800000000", 1_514_764_800_000_000),
        ("-1000000", -1_000_000),
        ("1.5147648E9", 1_514_764_800_000_000),
        ("1514764800.5", 1_514_764_800_500_000),
        ("1.514764800123456e9", 1_514_764_800_123_456),
        ("-1.5E0", -1_500_000),
        ("0.0000015", 2),
        ("0", 0),
    ] {
        assert_eq!(parse_timestamp(text), Ok(micros), "{text}");
    }
    for bad in ["", ".", "1e", "abc", "1.2.3", "1e999"] {
        assert!(parse_timestamp(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_cell_that_does_not_fit_its_type_is_named_by_row_and_column() {
    let (fields, mut rows) = every_type();
    rows[1]["f"][0]["v"] = json!("12x");
    let err = decode_page(&fields, &rows, 2000).unwrap_err();
    assert_eq!(err.to_string(), "BigQuery: malformed answer: row 2002: column i (INTEGER): \"12x\" is not an integer");
}

#[test]
fn thousands_are_separated() {
    assert_eq!(thousands(9), "9");
    assert_eq!(thousands(2000), "2,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
}

// ---- against a stub server ----

/// An RSA key made for this test run: (folder holding `key.pem`, the public key as PKCS#1 DER).
fn test_key() -> &'static (tempfile::TempDir, Vec<u8>) {
    static KEY: OnceLock<(tempfile::TempDir, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let der = dir.path().join("public.der");
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().expect("the tests need openssl to make an RSA key");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem.to_str().unwrap()]);
        run(&[
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        let public = std::fs::read(&der).unwrap();
        (dir, public)
    })
}

/// A service-account key file whose `token_uri` is the stub's, in its own folder.
fn key_file(token_uri: &str) -> (tempfile::TempDir, PathBuf) {
    let (key_dir, _) = test_key();
    let pem = std::fs::read_to_string(key_dir.path().join("key.pem")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    let key = json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0123",
        "private_key": pem,
        "client_email": "kiln-test@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    });
    std::fs::write(&path, key.to_string()).unwrap();
    (dir, path)
}

/// What the token endpoint checks of an assertion: Google's rules, with the public half of the test key.
fn check_assertion(seen: &Seen, token_uri: &str) -> Result<(), String> {
    let form: Vec<(String, String)> = String::from_utf8(seen.body.clone())
        .unwrap()
        .split('&')
        .map(|p| p.split_once('=').map(|(k, v)| (decode(k), decode(v))).unwrap())
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).ok_or(format!("no {k}"));
    if get("grant_type")? != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return Err("grant_type".into());
    }
    if seen.header("Content-Type") != Some("application/x-www-form-urlencoded") {
        return Err("content type".into());
    }
    let jwt = get("assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not three parts".into());
    }
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &test_key().1)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    if header != json!({"alg": "RS256", "typ": "JWT"}) {
        return Err(format!("header {header}"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let iat = claims["iat"].as_i64().unwrap();
    let ok = claims["iss"] == "kiln-test@test-project.iam.gserviceaccount.com"
        && claims["scope"] == "https://www.googleapis.com/auth/bigquery.readonly"
        && claims["aud"] == token_uri
        && (now - iat).abs() < 60
        && claims["exp"].as_i64() == Some(iat + 3600);
    if ok { Ok(()) } else { Err(format!("claims {claims}")) }
}

/// `rows` of the usa_names answer, as a page.
fn names_page(range: std::ops::Range<usize>, page_token: Option<&str>) -> Value {
    let all = fixture(USA_NAMES);
    let mut page = json!({
        "kind": "bigquery#getQueryResultsResponse",
        "jobReference": all["jobReference"].clone(),
        "schema": all["schema"].clone(),
        "totalRows": "9",
        "jobComplete": true,
        "rows": all["rows"].as_array().unwrap()[range].to_vec(),
    });
    if let Some(t) = page_token {
        page["pageToken"] = json!(t);
    }
    page
}

fn fetch(req: &BigQueryRequest) -> Result<crate::source::http::stub::Collected, FetchError> {
    crate::source::http::stub::collect(req, fetch_bigquery)
}

fn request(base: &str, auth: BigQueryAuth) -> BigQueryRequest {
    let mut req = BigQueryRequest::new("test-project", "SELECT name, number FROM names", auth);
    req.base_url = base.to_string();
    req.http.retries = 1;
    req.http.base_delay = std::time::Duration::from_millis(10);
    req
}

fn bearer_ok(seen: &Seen, token: &str) -> bool {
    seen.header("Authorization") == Some(format!("Bearer {token}").as_str())
}

#[test]
fn a_key_file_signs_in_then_a_slow_job_is_polled_and_read_page_by_page() {
    // the token endpoint and the API on one stub, as a key's token_uri may point anywhere
    let polls = Arc::new(AtomicUsize::new(0));
    let token_uri = Arc::new(Mutex::new(String::new()));
    let (p, uri) = (polls.clone(), token_uri.clone());
    let stub = Stub::start(move |seen| {
        let uri = uri.lock().unwrap().clone();
        match (seen.method.as_str(), seen.path()) {
            ("POST", "/token") => match check_assertion(seen, &uri) {
                Ok(()) => Reply::json(200, json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string()),
                Err(why) => Reply::json(400, json!({"error": "invalid_grant", "error_description": why}).to_string()),
            },
            _ if !bearer_ok(seen, TOKEN) => Reply::json(401, r#"{"error":{"code":401,"message":"Request had invalid authentication credentials."}}"#),
            ("POST", "/bigquery/v2/projects/test-project/queries") => Reply::json(
                200,
                json!({"jobReference": {"projectId": "test-project", "jobId": "job_1", "location": "EU"}, "jobComplete": false})
                    .to_string(),
            ),
            ("GET", "/bigquery/v2/projects/test-project/queries/job_1") => {
                let page = match seen.query("pageToken").as_deref() {
                    None if p.fetch_add(1, Ordering::SeqCst) == 0 => {
                        json!({"jobReference": {"jobId": "job_1"}, "jobComplete": false})
                    }
                    None => names_page(0..3, Some("token/2")),
                    Some("token/2") => names_page(3..6, Some("token=3")),
                    Some("token=3") => names_page(6..9, None),
                    Some(other) => panic!("page token {other}"),
                };
                Reply::json(200, page.to_string())
            }
            other => panic!("unexpected {other:?}"),
        }
    });
    *token_uri.lock().unwrap() = format!("{}/token", stub.url);
    let (_dir, key) = key_file(&format!("{}/token", stub.url));
    let mut req = request(&stub.url, BigQueryAuth::KeyFile(key));
    req.max_results = Some(3);
    req.location = Some("EU".into());
    req.timeout_ms = 500;

    let (pages, summary, notes) = fetch(&req).unwrap();

    assert_eq!(pages.len(), 3);
    for p in &pages {
        assert_eq!(p.schema(), pages[0].schema());
        assert_eq!(p.height(), 3);
    }
    let names: Vec<String> = pages.iter().flat_map(|p| strings(p, "name")).map(Option::unwrap).collect();
    assert_eq!(names, NAMES);
    let numbers: Vec<i64> = pages.iter().flat_map(|p| ints(p, "number")).map(Option::unwrap).collect();
    assert_eq!(numbers, NUMBERS);
    assert_eq!((summary.rows, summary.pages, summary.dropped_null_bars), (9, 3, 0));
    assert_eq!(
        notes,
        [
            "BigQuery: signed in as kiln-test@test-project.iam.gserviceaccount.com",
            "job job_1 is running; waiting for it",
            "page 1 of about 3: 3 rows",
            "page 2 of about 3: 3 rows",
            "page 3 of about 3: 3 rows",
        ]
    );
    assert_eq!(summary.notes, notes);

    let seen = stub.requests();
    let what: Vec<(String, String)> = seen.iter().map(|s| (s.method.clone(), s.path().to_string())).collect();
    let q = "/bigquery/v2/projects/test-project/queries".to_string();
    let r = format!("{q}/job_1");
    assert_eq!(
        what,
        [
            ("POST".into(), "/token".into()),
            ("POST".into(), q.clone()),
            ("GET".into(), r.clone()),
            ("GET".into(), r.clone()),
            ("GET".into(), r.clone()),
            ("GET".into(), r.clone()),
        ]
    );
    let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body["query"], "SELECT name, number FROM names");
    assert_eq!(body["useLegacySql"], false);
    assert_eq!(body["timeoutMs"], 500);
    assert_eq!(body["maxResults"], 3);
    assert_eq!(body["location"], "EU");
    assert_eq!(body["formatOptions"], json!({"useInt64Timestamp": true}));
    assert!(body["requestId"].as_str().unwrap().starts_with("kiln-"));
    for s in &seen[2..] {
        assert_eq!(s.query("location").as_deref(), Some("EU"));
        assert_eq!(s.query("maxResults").as_deref(), Some("3"));
        assert_eq!(s.query("timeoutMs").as_deref(), Some("500"));
        assert_eq!(s.query("formatOptions.useInt64Timestamp").as_deref(), Some("true"));
    }
    assert_eq!(seen[4].query("pageToken").as_deref(), Some("token/2"));
    assert_eq!(seen[5].query("pageToken").as_deref(), Some("token=3"));
    // the token went only into the Authorization header
    assert!(seen[1..].iter().all(|s| bearer_ok(s, TOKEN)));
    assert!(notes.iter().all(|n| !n.contains(TOKEN)));
}

#[test]
fn a_token_from_the_environment_reads_a_one_page_answer() {
    // cargo sets CARGO_PKG_NAME for the tests it runs: a variable that is there without an unsafe set_var
    let stub = Stub::start(|seen| {
        if !bearer_ok(seen, "kiln-data") {
            return Reply::json(401, "{}");
        }
        Reply::json(200, serde_json::to_vec(&fixture(USA_NAMES)).unwrap())
    });
    let req = request(&stub.url, BigQueryAuth::Token { token: "kiln-data".into(), from: "variable T".into() });
    let (pages, summary, notes) = fetch(&req).unwrap();
    assert_eq!((pages.len(), summary.rows), (1, 9));
    assert_eq!(strings(&pages[0], "name"), NAMES.map(|s| Some(s.to_string())));
    assert_eq!(notes, ["page 1 of about 1: 9 rows"]);
    assert_eq!(stub.requests().len(), 1);

    let empty = BigQueryAuth::Token { token: " ".into(), from: "environment variable KILN_TEST_BQ_TOKEN".into() };
    let err = fetch(&request(&stub.url, empty)).unwrap_err();
    assert!(matches!(err, FetchError::Credentials(_)), "{err:?}");
    assert_eq!(err.to_string(), "BigQuery: the access token from environment variable KILN_TEST_BQ_TOKEN is empty");
    // the token is not in the request's Debug
    let secret = BigQueryAuth::Token { token: "ya29.SECRET".into(), from: "variable T".into() };
    assert!(!format!("{:?}", request(&stub.url, secret)).contains("SECRET"));
}

/// The error of a query answered with `status` and `body`, with `TOKEN` as the access token.
fn error_of(status: u16, body: Value) -> (FetchError, usize) {
    let body = body.to_string();
    let stub = Stub::start(move |_| Reply::json(status, body.clone()));
    let req = request(&stub.url, BigQueryAuth::Token { token: "unused".into(), from: "a test".into() });
    let err = fetch_with(&req, Auth::Env(TOKEN.to_string()), &mut |_| Ok(()), &mut |_| {}).unwrap_err();
    (err, stub.requests().len())
}

#[test]
fn bigquerys_error_answers_are_shown_with_their_message() {
    let google = |code: u16, message: &str, reason: &str| json!({"error": {"code": code, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}], "status": "X"}});
    let (err, n) = error_of(
        400,
        google(400, "Syntax error: Expected end of input but got identifier \"FORM\" at [1:10]", "invalidQuery"),
    );
    assert_eq!(n, 1);
    assert!(matches!(err, FetchError::Http { status: 400, .. }), "{err:?}");
    assert!(
        err.to_string().ends_with(
            "/bigquery/v2/projects/test-project/queries: HTTP 400: Syntax error: Expected end of input but got identifier \"FORM\" at [1:10] (invalidQuery)"
        ),
        "{err}"
    );
    let (err, _) = error_of(
        403,
        google(
            403,
            "Access Denied: Project test-project: User does not have bigquery.jobs.create permission",
            "accessDenied",
        ),
    );
    assert!(err.to_string().contains("HTTP 403: Access Denied: Project test-project"), "{err}");
    let (err, _) =
        error_of(404, google(404, "Not found: Dataset test-project:nope was not found in location US", "notFound"));
    assert!(err.to_string().contains("HTTP 404: Not found: Dataset test-project:nope"), "{err}");
    // a service echoing the token back does not get it printed
    let (err, _) = error_of(401, json!({"error": {"code": 401, "message": format!("token {TOKEN} expired")}}));
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(err.to_string().contains("HTTP 401: token [redacted] expired"), "{err}");
}

#[test]
fn a_failed_job_is_a_service_error_with_bigquerys_reason() {
    let (err, _) = error_of(
        200,
        json!({"jobReference": {"projectId": "test-project", "jobId": "job_9"}, "jobComplete": true,
               "errors": [{"reason": "invalidQuery", "message": "division by zero: 1 / 0"}]}),
    );
    assert!(matches!(err, FetchError::Service { .. }), "{err:?}");
    assert_eq!(err.to_string(), "BigQuery job job_9: division by zero: 1 / 0 (invalidQuery)");
    let (err, _) = error_of(
        200,
        json!({"jobReference": {"jobId": "job_8"}, "jobComplete": false,
               "status": {"state": "DONE", "errorResult": {"reason": "quotaExceeded", "message": "Quota exceeded"}}}),
    );
    assert_eq!(err.to_string(), "BigQuery job job_8: Quota exceeded (quotaExceeded)");
}

#[test]
fn no_rows_is_an_empty_fetch() {
    let (err, _) = error_of(
        200,
        json!({"jobReference": {"jobId": "job_7"}, "jobComplete": true, "totalRows": "0",
               "schema": {"fields": [{"name": "x", "type": "INTEGER"}]}}),
    );
    assert!(matches!(err, FetchError::Empty(_)), "{err:?}");
    assert_eq!(err.to_string(), "BigQuery: the query returned no rows");
}

#[test]
fn a_refused_key_is_a_credentials_error() {
    let stub =
        Stub::start(|_| Reply::json(400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#));
    let uri = format!("{}/token", stub.url);
    let (_dir, key) = key_file(&uri);
    let err = fetch(&request(&stub.url, BigQueryAuth::KeyFile(key))).unwrap_err();
    assert!(matches!(err, FetchError::Credentials(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "BigQuery: the token endpoint {uri} refused the key of kiln-test@test-project.iam.gserviceaccount.com: HTTP 400: invalid_grant: Invalid JWT Signature."
        )
    );
}

fn key_error(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    let err = ServiceAccount::from_file(&path).unwrap_err();
    assert!(matches!(err, FetchError::Credentials(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("BigQuery key file {}: ", path.display())), "{text}");
    text[format!("BigQuery key file {}: ", path.display()).len()..].to_string()
}

#[test]
fn a_file_that_is_not_a_key_says_what_is_wrong_and_never_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        key_error(d, "a.json", "id,secret-in-a-csv\n1,2"),
        "not JSON (line 1, column 1); a service-account key is the JSON file the Google Cloud console downloads"
    );
    assert_eq!(key_error(d, "b.json", "[1]"), "not a JSON object; a service-account key is one");
    assert_eq!(
        key_error(d, "c.json", r#"{"type":"authorized_user","client_id":"x","refresh_token":"SECRET-REFRESH"}"#),
        "a credential of type \"authorized_user\", not a service-account key (type \"service_account\")"
    );
    assert_eq!(
        key_error(d, "d.json", r#"{"type":"service_account","client_email":"a@b"}"#),
        "no `private_key`; is it a service-account key?"
    );
    let pem = |body: &str| json!({"client_email": "a@b", "private_key": body}).to_string();
    assert_eq!(
        key_error(d, "e.json", &pem("SECRETSECRET")),
        "`private_key` is not a PEM private key (no -----BEGIN ...----- / -----END ...----- lines)"
    );
    let garbled = "-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n";
    let text = key_error(d, "f.json", &pem(garbled));
    assert!(text.starts_with("`private_key` is not a usable RSA private key ("), "{text}");
    assert!(!text.contains("U0VDUkVU"), "{text}");
    let ec = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert_eq!(
        key_error(d, "g.json", &pem(ec)),
        "`private_key` is a PEM EC PRIVATE KEY, not an RSA private key (BEGIN PRIVATE KEY)"
    );
    let missing = d.join("missing.json");
    let err = ServiceAccount::from_file(&missing).unwrap_err().to_string();
    assert!(err.starts_with(&format!("BigQuery key file {}: cannot be read: ", missing.display())), "{err}");
    // and a good key reads, its token_uri defaulting to Google's
    let (key_dir, _) = test_key();
    let good = std::fs::read_to_string(key_dir.path().join("key.pem")).unwrap();
    let path = d.join("good.json");
    std::fs::write(&path, pem(&good)).unwrap();
    let account = ServiceAccount::from_file(&path).unwrap();
    assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
    assert!(!format!("{account:?}").contains("PRIVATE"));
}

#[test]
fn bad_requests_are_refused_before_anything_is_sent() {
    let req = BigQueryRequest::new(" ", "SELECT 1", BigQueryAuth::Token { token: "X".into(), from: "a test".into() });
    assert_eq!(fetch(&req).unwrap_err().to_string(), "BigQuery: no project to run the query in");
    let req = BigQueryRequest::new("p", "", BigQueryAuth::Token { token: "X".into(), from: "a test".into() });
    assert_eq!(fetch(&req).unwrap_err().to_string(), "BigQuery: the query is empty");
}

#[test]
fn the_stubs_check_refuses_an_assertion_not_signed_by_the_key() {
    let (_dir, path) = key_file("http://127.0.0.1:1/token");
    let account = ServiceAccount::from_file(&path).unwrap();
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let jwt = account.assertion(SCOPE, iat).unwrap();
    let seen = |jwt: &str| Seen {
        method: "POST".into(),
        target: "/token".into(),
        headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
        body: format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}").into_bytes(),
    };
    assert_eq!(check_assertion(&seen(&jwt), "http://127.0.0.1:1/token"), Ok(()));
    // the same signature over other claims
    let (head, rest) = jwt.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged = URL_SAFE_NO_PAD.encode(
        json!({"iss": "someone@else", "scope": SCOPE, "aud": "http://127.0.0.1:1/token", "iat": iat, "exp": iat + 3600})
            .to_string(),
    );
    assert_eq!(
        check_assertion(&seen(&format!("{head}.{forged}.{signature}")), "http://127.0.0.1:1/token"),
        Err("bad signature".to_string())
    );
}

#[test]
fn a_token_about_to_expire_is_renewed_before_the_next_call() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let t = tokens.clone();
    let stub = Stub::start(move |seen| match (seen.method.as_str(), seen.path()) {
        ("POST", "/token") => {
            let n = t.fetch_add(1, Ordering::SeqCst);
            // 60 s of life: renewed a minute early, so at once
            Reply::json(200, json!({"access_token": format!("tok-{n}"), "expires_in": 60}).to_string())
        }
        ("POST", _) => Reply::json(200, json!({"jobReference": {"jobId": "j"}, "jobComplete": false}).to_string()),
        _ => Reply::json(200, serde_json::to_vec(&fixture(USA_NAMES)).unwrap()),
    });
    let (_dir, key) = key_file(&format!("{}/token", stub.url));
    let (_, summary, _) = fetch(&request(&stub.url, BigQueryAuth::KeyFile(key))).unwrap();
    assert_eq!(summary.rows, 9);
    let seen = stub.requests();
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    assert!(bearer_ok(&seen[1], "tok-0") && bearer_ok(&seen[3], "tok-1"), "{seen:?}");
}
