//! The layers on a state without a model (routes that need one answer 503 `not_ready`, which is enough to see a
//! request get past a layer), called with `oneshot`, no socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{AccessLog, AccessLogSink, ApiKeys, ConfigError, Cors, HttpConfig, RateLimit, apply};
use crate::{AppState, ServeConfig, router};

fn state(http: HttpConfig) -> AppState {
    AppState::new(ServeConfig { http, ..ServeConfig::default() })
}

fn keys() -> ApiKeys {
    ApiKeys::new("x-api-key", ["s3cret-one".to_string(), "s3cret-two".to_string()]).unwrap()
}

async fn send(state: &AppState, request: Request<Body>) -> Response<Body> {
    router(state.clone()).oneshot(request).await.unwrap()
}

fn get_req(path: &str) -> axum::http::request::Builder {
    Request::get(path)
}

async fn code(response: Response<Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    (status, v["error"]["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn api_keys_guard_every_route_but_the_probes_and_the_docs() {
    let s = state(HttpConfig { api_keys: Some(keys()), ..HttpConfig::default() });
    let answer = send(&s, get_req("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(code(answer).await, (401, "unauthorized".into()));
    let answer = send(&s, get_req("/model").header("x-api-key", "s3cret-on").body(Body::empty()).unwrap()).await;
    assert_eq!(code(answer).await, (401, "unauthorized".into()));
    let answer = send(&s, Request::post("/predict").header("x-api-key", "").body(Body::empty()).unwrap()).await;
    assert_eq!(code(answer).await, (401, "unauthorized".into()));
    // a right key gets through: /metrics answers, /model has no model to show
    for key in ["s3cret-one", "s3cret-two"] {
        let answer = send(&s, get_req("/metrics").header("x-api-key", key).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status(), 200, "{key}");
    }
    let answer = send(&s, get_req("/model").header("x-api-key", "s3cret-one").body(Body::empty()).unwrap()).await;
    assert_eq!(code(answer).await, (503, "not_ready".into()));
    for open in ["/health", "/docs"] {
        assert_eq!(send(&s, get_req(open).body(Body::empty()).unwrap()).await.status(), 200, "{open}");
    }
    assert_eq!(code(send(&s, get_req("/ready").body(Body::empty()).unwrap()).await).await, (503, "not_ready".into()));
    // unknown routes are guarded too (no probing of what exists)
    assert_eq!(code(send(&s, get_req("/nope").body(Body::empty()).unwrap()).await).await.0, 401);

    let custom = ApiKeys::new("Authorization-Key", ["k".repeat(40)]).unwrap();
    assert_eq!(custom.header(), "authorization-key");
    let s = state(HttpConfig { api_keys: Some(custom), ..HttpConfig::default() });
    let answer = send(&s, get_req("/metrics").header("authorization-key", "k".repeat(40)).body(Body::empty()).unwrap());
    assert_eq!(answer.await.status(), 200);
}

#[test]
fn api_keys_are_checked_when_configured_and_never_printed() {
    assert_eq!(ApiKeys::new("x-api-key", Vec::<String>::new()), Err(ConfigError::NoKeys));
    assert_eq!(ApiKeys::new("x api key", ["a".to_string()]), Err(ConfigError::HeaderName("x api key".into())));
    assert_eq!(ApiKeys::new("x-api-key", ["a".to_string(), "b c".to_string()]), Err(ConfigError::BadKey(2)));
    let k = keys();
    let shown = format!("{k:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert_eq!(k.check(b"s3cret-two"), Some(1));
    assert_eq!(k.check(b"s3cret-tw"), None);
    assert!(k.keys[0].id.starts_with("key-") && k.keys[0].id.len() == 12);
    assert_ne!(k.keys[0].id, k.keys[1].id);
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_answers_to_allowed_origins() {
    let cors = Cors::new(&["https://app.example.com".to_string(), "http://localhost:3000".to_string()]).unwrap();
    let s = state(HttpConfig { cors: Some(cors), api_keys: Some(keys()), ..HttpConfig::default() });
    let preflight = |origin: &str| {
        Request::options("/predict")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-api-key")
            .body(Body::empty())
            .unwrap()
    };
    // before the key check: browsers send no key on a preflight
    let answer = send(&s, preflight("https://app.example.com")).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let h = answer.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("content-type") && allowed.contains("x-api-key"), "{allowed}");
    assert!(h["vary"].to_str().unwrap().contains("origin"));
    assert!(h.contains_key("x-request-id"));

    let answer = send(&s, preflight("https://evil.example.com")).await;
    assert!(!answer.headers().contains_key("access-control-allow-origin"));

    // an actual request, rejected or not, carries the headers a browser needs to read it
    let request = get_req("/metrics").header("origin", "http://localhost:3000").body(Body::empty()).unwrap();
    let answer = send(&s, request).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert!(answer.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
    let request = get_req("/health").header("origin", "https://evil.example.com").body(Body::empty()).unwrap();
    assert!(!send(&s, request).await.headers().contains_key("access-control-allow-origin"));
    // without an Origin, nothing changes
    assert!(!send(&s, get_req("/health").body(Body::empty()).unwrap()).await.headers().contains_key("vary"));

    let any = state(HttpConfig { cors: Some(Cors::new(&["*".to_string()]).unwrap()), ..HttpConfig::default() });
    let answer = send(&any, preflight("https://anyone.example")).await;
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");

    for bad in ["app.example.com", "https://app.example.com/", "https://", "ftp://x"] {
        assert_eq!(Cors::new(&[bad.to_string()]), Err(ConfigError::Origin(bad.into())), "{bad}");
    }
    assert_eq!(Cors::new(&[]), Err(ConfigError::NoOrigins));
}

#[tokio::test]
async fn a_slow_request_is_answered_504_timeout() {
    let s = state(HttpConfig { request_timeout: Some(Duration::from_millis(20)), ..HttpConfig::default() });
    let slow = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "done"
            }),
        )
        .route("/fast", get(|| async { "done" }));
    let app = apply(slow, &s);
    let answer = app.clone().oneshot(get_req("/slow").body(Body::empty()).unwrap()).await.unwrap();
    assert!(answer.headers().contains_key("x-request-id"));
    assert_eq!(code(answer).await, (504, "timeout".into()));
    let answer = app.oneshot(get_req("/fast").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = crate::metrics::render(&s);
    assert!(text.contains("kiln_http_rejections_total{code=\"timeout\"} 1"), "{text}");
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_per_client() {
    let limit = RateLimit::new(1, 3).unwrap();
    let s = state(HttpConfig { rate_limit: Some(limit), ..HttpConfig::default() });
    let from = |ip: [u8; 4]| {
        let mut r = get_req("/metrics").body(Body::empty()).unwrap();
        r.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        r
    };
    for _ in 0..3 {
        assert_eq!(send(&s, from([10, 0, 0, 1])).await.status(), 200);
    }
    let answer = send(&s, from([10, 0, 0, 1])).await;
    let retry: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1);
    assert_eq!(code(answer).await, (429, "rate_limited".into()));
    // another client has its own bucket; the probes are never limited
    assert_eq!(send(&s, from([10, 0, 0, 2])).await.status(), 200);
    for _ in 0..5 {
        assert_eq!(send(&s, get_req("/health").body(Body::empty()).unwrap()).await.status(), 200);
    }

    // with keys, one bucket per key
    let s = state(HttpConfig {
        rate_limit: Some(RateLimit::new(1, 1).unwrap()),
        api_keys: Some(keys()),
        ..HttpConfig::default()
    });
    let with = |key: &str| get_req("/metrics").header("x-api-key", key).body(Body::empty()).unwrap();
    assert_eq!(send(&s, with("s3cret-one")).await.status(), 200);
    assert_eq!(send(&s, with("s3cret-one")).await.status(), 429);
    assert_eq!(send(&s, with("s3cret-two")).await.status(), 200);
    assert_eq!(RateLimit::new(0, 1), Err(ConfigError::RateLimit));
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_generated_otherwise() {
    let s = state(HttpConfig::default());
    let answer = send(&s, get_req("/health").header("x-request-id", "abc-123_x.y:z").body(Body::empty()).unwrap());
    assert_eq!(answer.await.headers()["x-request-id"], "abc-123_x.y:z");
    let mut seen = Vec::new();
    for given in [None, Some("has space"), Some(&*"x".repeat(200)), Some("")] {
        let mut r = get_req("/nope");
        if let Some(g) = given {
            r = r.header("x-request-id", g);
        }
        let answer = send(&s, r.body(Body::empty()).unwrap()).await;
        let id = answer.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!seen.contains(&id));
        seen.push(id);
    }
}

#[derive(Default)]
struct Capture(Mutex<Vec<String>>);

impl AccessLogSink for Capture {
    fn write_line(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn the_access_log_writes_one_json_line_per_request_without_the_key() {
    let s = state(HttpConfig { access_log: AccessLog::Json, api_keys: Some(keys()), ..HttpConfig::default() });
    let capture = Arc::new(Capture::default());
    assert!(s.set_access_log_sink(capture.clone()));
    assert!(!s.set_access_log_sink(capture.clone()), "a second sink is refused");
    let request = get_req("/metrics?x=1").header("x-api-key", "s3cret-two").header("x-request-id", "req-1");
    assert_eq!(send(&s, request.body(Body::empty()).unwrap()).await.status(), 200);
    send(&s, get_req("/model").header("x-api-key", "wrong").body(Body::empty()).unwrap()).await;

    let lines = capture.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(!line.contains("s3cret") && !line.contains("wrong"), "{line}");
        assert!(!line.contains('\n'));
    }
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["ts", "request_id", "method", "path", "status", "duration_ms", "model_version", "client", "error"]
    );
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(
        (first["method"].as_str(), first["path"].as_str(), first["status"].as_u64()),
        (Some("GET"), Some("/metrics"), Some(200))
    );
    assert!(first["client"].as_str().unwrap().starts_with("key-"));
    assert!(first["error"].is_null() && first["model_version"].is_null());
    assert!(first["duration_ms"].as_f64().unwrap() >= 0.0);
    let ts = first["ts"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!((second["status"].as_u64(), second["error"].as_str()), (Some(401), Some("unauthorized")));
    assert!(second["client"].is_null());

    // off: nothing is written
    let quiet = state(HttpConfig::default());
    let capture = Arc::new(Capture::default());
    quiet.set_access_log_sink(capture.clone());
    send(&quiet, get_req("/health").body(Body::empty()).unwrap()).await;
    assert!(capture.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn requests_are_counted_by_route_method_status_and_code() {
    let s = state(HttpConfig::default());
    send(&s, get_req("/health").body(Body::empty()).unwrap()).await;
    send(&s, get_req("/health").body(Body::empty()).unwrap()).await;
    send(&s, get_req("/nope").body(Body::empty()).unwrap()).await;
    send(&s, Request::delete("/health").body(Body::empty()).unwrap()).await;
    send(&s, get_req("/observe/abc").body(Body::empty()).unwrap()).await;
    let text = crate::metrics::render(&s);
    for expected in [
        "kiln_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2",
        "kiln_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "kiln_http_requests_total{route=\"/health\",method=\"other\",status=\"405\"} 1",
        "kiln_http_requests_total{route=\"/observe/{series}\",method=\"GET\",status=\"503\"} 1",
        "kiln_http_request_duration_seconds_count{route=\"/health\"} 3",
        "kiln_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 3",
        "kiln_http_rejections_total{code=\"route_not_found\"} 1",
        "kiln_http_rejections_total{code=\"method_not_allowed\"} 1",
        "kiln_http_requests_in_flight 0",
        "kiln_model_reloads_total{outcome=\"failed\"} 0",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
    assert!(!text.contains("kiln_model_info"), "no model, no info");
}
