//! The operational routes on real models: `/metrics` moves with the predictions and parses as Prometheus'
//! text format, `/openapi.json` describes every route and the model's fields (and its examples are accepted by the
//! routes they document), `/docs` is a page.

use std::collections::{BTreeMap, HashSet};

use axum::body::Body;
use axum::http::Request;
use kiln_domain::Code;
use kiln_serve::{ApiKeys, HttpConfig, ServeConfig};
use serde_json::{Value, json};

use crate::helpers::{churn, eurusd, get, post, read, row, state_for, text};

/// Checks every line against the text exposition format (0.0.4) and returns `series -> value`: `# HELP name
/// text`, `# TYPE name kind` before a family's samples, and `name{label="value",...} number`.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("bad HELP: {line}"));
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE: {line}"));
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "stray line: {line:?}");
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut i = 0;
            loop {
                let eq = i + body[i..].find('=').unwrap_or_else(|| panic!("label without '=': {line}"));
                let label = &body[i..eq];
                assert!(valid_name(label) && !label.contains(':'), "label {label:?}: {line}");
                assert_eq!(&body[eq + 1..eq + 2], "\"", "{line}");
                let mut value = String::new();
                let mut j = eq + 2;
                loop {
                    let c = body[j..].chars().next().unwrap_or_else(|| panic!("unterminated: {line}"));
                    j += c.len_utf8();
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = body[j..].chars().next().unwrap();
                            assert!(matches!(e, '\\' | '"' | 'n'), "bad escape: {line}");
                            value.push(if e == 'n' { '\n' } else { e });
                            j += 1;
                        }
                        c => value.push(c),
                    }
                }
                labels.push(format!("{label}={value}"));
                match &body[j..j + 1] {
                    "," => i = j + 1,
                    "}" => {
                        rest = &body[j + 1..];
                        break;
                    }
                    other => panic!("after a label: {other:?} in {line}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value: {line}"));
        let value = value.split(' ').next().unwrap();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().unwrap_or_else(|_| panic!("bad value {v:?}: {line}")),
        };
        let key = format!("{name}{{{}}}", labels.join(","));
        assert!(samples.insert(key, v).is_none(), "series twice: {line}");
    }
    samples
}

/// The cumulative buckets of a histogram series (labels besides `le` given as `prefix`) must not decrease and end
/// at `_count`.
fn check_histogram(samples: &BTreeMap<String, f64>, name: &str, labels: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}_bucket{{{labels},le=");
    let buckets: Vec<(String, f64)> = samples
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|le| (le.trim_end_matches('}').to_string(), *v)))
        .collect();
    assert!(!buckets.is_empty(), "no {prefix}");
    let mut sorted = buckets.clone();
    sorted.sort_by(|a, b| {
        let f = |s: &str| if s == "+Inf" { f64::INFINITY } else { s.parse::<f64>().unwrap() };
        f(&a.0).total_cmp(&f(&b.0))
    });
    for pair in sorted.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "{name} buckets decrease: {pair:?}");
    }
    let count = samples[&format!("{name}_count{{{labels}}}")];
    assert_eq!(sorted.last().unwrap(), &("+Inf".to_string(), count));
    sorted
}

fn churn_record(i: usize) -> Value {
    row(&churn().frame, &read(churn()).pipeline.input_columns(), i)
}

#[tokio::test]
async fn metrics_move_with_requests_and_parse_as_prometheus_text() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    assert_eq!(post(&state, "/predict", &churn_record(0)).await.status, 200);
    let batch = json!({"records": [churn_record(1), churn_record(2), churn_record(3)]});
    let answer = post(&state, "/predict/batch", &batch).await;
    assert_eq!(answer.status, 200);
    let yes = answer.body["predictions"].as_array().unwrap().iter().filter(|p| p["class"] == "Yes").count();
    let one = answer.body["predictions"][0]["probability"].as_f64().unwrap();
    assert_eq!(post(&state, "/predict", &json!({"tenure": "x"})).await.status, 422);

    let (status, ct, body) = text(&state, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let s = parse_exposition(&body);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{body}"));
    assert_eq!(get("kiln_http_requests_total{route=/predict,method=POST,status=200}"), 1.0);
    assert_eq!(get("kiln_http_requests_total{route=/predict/batch,method=POST,status=200}"), 1.0);
    assert_eq!(get("kiln_http_requests_total{route=/predict,method=POST,status=422}"), 1.0);
    assert_eq!(get("kiln_records_scored_total{}"), 4.0);
    let rejected: f64 = s.iter().filter(|(k, _)| k.starts_with("kiln_http_rejections_total{")).map(|(_, v)| v).sum();
    assert_eq!(rejected, 1.0);
    assert_eq!(s.keys().filter(|k| k.starts_with("kiln_http_rejections_total{")).count(), Code::HTTP_API.len());
    assert_eq!(get("kiln_http_requests_in_flight{}"), 1.0, "the scrape itself is in flight");
    check_histogram(&s, "kiln_http_request_duration_seconds", "route=/predict");
    assert_eq!(get("kiln_http_request_duration_seconds_count{route=/predict}"), 2.0);

    let run = &churn().run_id;
    let info = format!(
        "kiln_model_info{{name=churn,version=1,alias=production,run_id={run},reference=models:/churn@production,task=classification}}"
    );
    assert_eq!(get(&info), 1.0);
    let buckets = check_histogram(&s, "kiln_prediction_value", "version=1");
    assert_eq!(buckets.len(), 11, "0.1 .. 1 and +Inf: {buckets:?}");
    assert_eq!(get("kiln_prediction_value_count{version=1}"), 4.0);
    let sum = get("kiln_prediction_value_sum{version=1}");
    assert!(sum >= one && sum <= 4.0, "{sum}");
    let yes_total = get("kiln_predictions_total{version=1,class=Yes}");
    let no_total = get("kiln_predictions_total{version=1,class=No}");
    assert_eq!(yes_total + no_total, 4.0);
    assert!(yes_total >= yes as f64);
    let loaded = get("kiln_model_loaded_timestamp_seconds{}");
    assert!(loaded > 1.7e9, "{loaded}");
    assert_eq!(get("kiln_model_created_timestamp_seconds{}"), 1.7e9);
    assert!(get("kiln_model_age_seconds{}") > 0.0);
    assert_eq!(get("kiln_model_reloads_total{outcome=ok}"), 0.0);

    // the reload outcomes hot reload reports
    state.record_reload(Some("registry unreachable: \"timeout\"\nretrying"));
    state.record_reload(None);
    let (_, _, body) = text(&state, "/metrics").await;
    let s = parse_exposition(&body);
    assert_eq!(s["kiln_model_reloads_total{outcome=ok}"], 1.0);
    assert_eq!(s["kiln_model_reloads_total{outcome=failed}"], 1.0);
    let last = s.iter().find(|(k, _)| k.starts_with("kiln_model_reload_last_error{")).unwrap();
    assert!(last.0.contains("registry unreachable: \"timeout\"\nretrying"), "{}", last.0);
    assert!(*last.1 > 1.7e9);
}

#[tokio::test]
async fn a_forecasts_buckets_come_from_its_test_metrics() {
    let state = state_for(eurusd(), "eurusd", ServeConfig::default());
    let (_, _, body) = text(&state, "/metrics").await;
    let s = parse_exposition(&body);
    assert!(body.contains("implied by the bundle's test mae, mape, rmse and r2"), "{body}");
    let buckets = check_histogram(&s, "kiln_prediction_value", "version=1");
    let bounds: Vec<f64> = buckets.iter().filter(|(le, _)| le != "+Inf").map(|(le, _)| le.parse().unwrap()).collect();
    assert_eq!(bounds.len(), 13);
    // EUR/USD lives around 1.1 in the test years; the buckets must straddle it
    assert!(bounds[0] < 1.1 && *bounds.last().unwrap() > 1.1, "{bounds:?}");
    assert!(!body.contains("kiln_predictions_total"), "no classes for a forecast");
}

#[tokio::test]
async fn openapi_describes_every_route_and_the_models_fields_and_its_examples_work() {
    for (trained, name) in [(churn(), "churn"), (eurusd(), "eurusd")] {
        let keys = ApiKeys::new("x-kiln-key", ["k1".to_string()]).unwrap();
        let config = ServeConfig {
            http: HttpConfig { api_keys: Some(keys), ..HttpConfig::default() },
            ..ServeConfig::default()
        };
        let guarded = state_for(trained, name, config);
        let request = Request::get("/openapi.json").header("x-kiln-key", "k1").body(Body::empty()).unwrap();
        let answer = crate::helpers::call(&guarded, request).await;
        assert_eq!(answer.status, 200);
        let doc = answer.body;
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["name"], "x-kiln-key");
        assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
        let paths: HashSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for route in ["/health", "/ready", "/model", "/predict", "/predict/batch", "/metrics", "/openapi.json", "/docs"]
        {
            assert!(paths.contains(route), "{name}: {route} missing");
        }
        let codes: HashSet<&str> =
            doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
        assert_eq!(codes, Code::HTTP_API.iter().map(|c| c.as_str()).collect());
        let unauthorized = &doc["paths"]["/predict"]["post"]["responses"]["401"];
        assert!(unauthorized["description"].as_str().unwrap().contains("unauthorized"));

        // the model's fields, with their types
        let schemas = &doc["components"]["schemas"];
        let fields = if name == "eurusd" { &schemas["Row"] } else { &schemas["Record"] };
        let input = read(trained).pipeline.input_columns();
        let props: HashSet<&str> = fields["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(props, input.iter().map(String::as_str).collect(), "{name}");
        if name == "churn" {
            assert_eq!(fields["properties"]["tenure"]["type"], json!(["number", "null"]));
            assert_eq!(fields["properties"]["customerID"]["type"], json!(["string", "number", "null"]));
            assert!(!fields["required"].as_array().unwrap().contains(&json!("customerID")));
            assert!(fields["properties"]["Contract"]["examples"].as_array().unwrap().contains(&json!("Two year")));
            assert_eq!(schemas["Answer"]["properties"]["class"]["enum"], json!(["Yes", "No"]));
        } else {
            assert_eq!(fields["properties"]["USD"]["type"], "number");
            let window = &schemas["Record"]["oneOf"][0]["properties"]["window"];
            assert!(window["minItems"].as_u64().unwrap() > 20, "{window}");
        }
        assert_eq!(schemas["Batch"]["properties"]["records"]["maxItems"], ServeConfig::DEFAULT_MAX_BATCH_RECORDS);

        // the examples are requests the service accepts
        let open = state_for(trained, name, ServeConfig::default());
        for (path, op) in [("/predict", "post"), ("/predict/batch", "post")] {
            let example = &doc["paths"][path][op]["requestBody"]["content"]["application/json"]["example"];
            let answer = post(&open, path, example).await;
            assert_eq!(answer.status, 200, "{name} {path}: {}", answer.body);
        }
    }
}

#[tokio::test]
async fn docs_is_a_self_contained_page_and_unknown_routes_list_the_routes() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    let (status, ct, body) = text(&state, "/docs").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(body.starts_with("<!doctype html>") && body.contains("openapi.json"));
    assert!(!body.contains("http://") && !body.contains("https://"), "the page loads nothing from elsewhere");

    let answer = get(&state, "/nope").await;
    let message = answer.body["error"]["message"].as_str().unwrap();
    for route in ["GET /metrics", "GET /openapi.json", "GET /docs", "POST /observe", "POST /predict/batch"] {
        assert!(message.contains(route), "{message}");
    }
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_says_what_the_server_does() {
    for (trained, name) in [(churn(), "churn"), (eurusd(), "eurusd")] {
        let state = state_for(trained, name, ServeConfig::default());
        let doc = get(&state, "/openapi.json").await.body;
        let schemas = &doc["components"]["schemas"];
        // every reference points at a schema of the document
        let mut found = Vec::new();
        refs(&doc, &mut found);
        for r in found {
            let schema = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{name}: {r}"));
            assert!(schemas.get(schema).is_some(), "{name}: {r} does not exist");
        }
        let observe = [doc["paths"].get("/observe"), doc["paths"].get("/observe/{series}")];
        if name == "churn" {
            // a classifier keeps no series: no /observe routes in its document, and the server refuses them
            assert_eq!(observe, [None, None], "{name}");
            let answer = post(&state, "/observe", &json!({"series": "a", "rows": []})).await;
            assert_eq!(answer.status, 400);
            assert_eq!(answer.body["error"]["code"], "not_a_forecast_model");
            // a null id is accepted, and documented so
            let mut record =
                doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"].clone();
            record["customerID"] = Value::Null;
            let answer = post(&state, "/predict", &record).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let types = schemas["Record"]["properties"]["customerID"]["type"].as_array().unwrap();
            assert!(types.contains(&json!("null")), "{types:?}");
            assert!(doc["paths"]["/predict"]["post"]["responses"].get("404").is_none());
        } else {
            assert!(observe.iter().all(Option::is_some), "{name}");
            // a record naming a series nobody observed: 404 series_not_found, documented
            for (path, body) in [
                ("/predict", json!({"series": "nobody"})),
                ("/predict/batch", json!({"records": [{"series": "nobody"}]})),
            ] {
                let answer = post(&state, path, &body).await;
                assert_eq!(answer.status, 404, "{path}: {}", answer.body);
                assert_eq!(answer.body["error"]["code"], "series_not_found");
                let documented = &doc["paths"][path]["post"]["responses"]["404"]["description"];
                assert!(documented.as_str().unwrap_or("").contains("series_not_found"), "{path}: {documented}");
            }
        }
    }
}
