use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::stub::{Reply, Stub};
use super::*;

fn policy(retries: u32) -> HttpPolicy {
    HttpPolicy {
        retries,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        min_interval: Duration::ZERO,
        timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    }
}

fn send(policy: &HttpPolicy, req: &Request<'_>) -> (Result<Answer, FetchError>, Vec<String>) {
    let mut notes = Vec::new();
    let result = HttpClient::new(policy).send(req, &mut |l| notes.push(l.to_string()));
    (result, notes)
}

#[test]
fn a_429_then_a_503_are_retried_honouring_retry_after() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let stub = Stub::start(move |_| match count.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::json(429, r#"{"error":{"code":429,"message":"slow down"}}"#).with_header("Retry-After", "1"),
        1 => Reply::json(503, "<html>busy</html>"),
        _ => Reply::json(200, r#"{"ok":true}"#),
    });
    let url = format!("{}/data?x=1", stub.url);
    let started = Instant::now();
    let (answer, notes) = send(&policy(4), &Request::get(&url));
    let answer = answer.unwrap();
    assert_eq!((answer.status, answer.body.as_slice()), (200, br#"{"ok":true}"#.as_slice()));
    assert_eq!(stub.requests().len(), 3);
    // Retry-After: 1 is waited whole; the 503 gets the first backoff (10 .. 20 ms)
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0], format!("HTTP 429 from {url}, retrying in 1.0 s (attempt 2 of 5)"));
    assert!(notes[1].starts_with(&format!("HTTP 503 from {url}, retrying in 0.0 s (attempt 3 of 5)")), "{}", notes[1]);
}

#[test]
fn it_gives_up_after_its_retries_with_the_services_message() {
    let stub = Stub::start(|_| {
        Reply::json(503, r#"{"error":{"code":503,"message":"Backend Error","errors":[{"reason":"backendError"}]}}"#)
    });
    let url = format!("{}/bigquery/v2/projects/p/queries", stub.url);
    let (result, notes) = send(&policy(2), &Request::get(&url));
    assert_eq!(stub.requests().len(), 3);
    assert_eq!(notes.len(), 2);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 503, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{url}: HTTP 503: Backend Error (backendError) (gave up after 3 attempts)"));
}

#[test]
fn retry_after_is_capped_by_max_delay() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let stub = Stub::start(move |_| match count.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::json(429, "{}").with_header("Retry-After", "120"),
        _ => Reply::json(200, "{}"),
    });
    let mut p = policy(1);
    p.max_delay = Duration::from_millis(100);
    let started = Instant::now();
    let (result, notes) = send(&p, &Request::get(&stub.url));
    result.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(notes[0].contains("retrying in 0.1 s"), "{}", notes[0]);
}

#[test]
fn other_client_errors_are_not_retried() {
    for status in [400u16, 401, 403, 404] {
        let stub = Stub::start(move |_| {
            Reply::json(
                status,
                r#"{"error":{"code":400,"message":"Syntax error: Unexpected identifier","status":"INVALID_ARGUMENT"}}"#,
            )
        });
        let (result, notes) = send(&policy(4), &Request::get(&stub.url));
        assert_eq!(stub.requests().len(), 1, "{status}");
        assert!(notes.is_empty());
        assert_eq!(
            result.unwrap_err().to_string(),
            format!("{}: HTTP {status}: Syntax error: Unexpected identifier (INVALID_ARGUMENT)", stub.url)
        );
    }
}

#[test]
fn a_passed_status_comes_back_as_an_answer() {
    let stub = Stub::start(|_| Reply::json(404, r#"{"chart":{"result":null}}"#));
    let mut req = Request::get(&stub.url);
    req.pass = &[404];
    let (answer, _) = send(&policy(4), &req);
    assert_eq!(answer.unwrap().status, 404);
    assert_eq!(stub.requests().len(), 1);
}

#[test]
fn a_refused_connection_is_retried_then_named_without_secrets() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://user:hunter2@127.0.0.1:{port}/x?access_token=SECRETVALUE&page=2");
    let (result, notes) = send(&policy(2), &Request::get(&url));
    assert_eq!(notes.len(), 2, "{notes:?}");
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Connection { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("http://127.0.0.1:{port}/x?access_token=[redacted]&page=2: connection failed")),
        "{text}"
    );
    assert!(text.ends_with("(gave up after 3 attempts)"), "{text}");
    for line in notes.iter().chain([&text]) {
        assert!(!line.contains("SECRETVALUE") && !line.contains("hunter2"), "{line}");
    }
}

#[test]
fn declared_secrets_are_scrubbed_from_messages() {
    let stub = Stub::start(|_| Reply::json(401, "token ya29.the-token-itself is expired"));
    let mut req = Request::get(&stub.url);
    req.headers.push(("Authorization", "Bearer ya29.the-token-itself".to_string()));
    req.secrets.push("ya29.the-token-itself".to_string());
    let (result, _) = send(&policy(0), &req);
    assert_eq!(result.unwrap_err().to_string(), format!("{}: HTTP 401: token [redacted] is expired", stub.url));
    assert_eq!(stub.requests()[0].header("Authorization"), Some("Bearer ya29.the-token-itself"));
}

#[test]
fn requests_keep_the_polite_interval() {
    let stub = Stub::start(|_| Reply::json(200, "{}"));
    let mut p = policy(0);
    p.min_interval = Duration::from_millis(300);
    let mut client = HttpClient::new(&p);
    let started = Instant::now();
    for _ in 0..3 {
        client.send(&Request::get(&stub.url), &mut |_| {}).unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let mut p = policy(10);
    p.base_delay = Duration::from_millis(100);
    p.max_delay = Duration::from_millis(1000);
    let mut client = HttpClient::new(&p);
    for (retry, full) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (9, 1000)] {
        let d = client.backoff(retry);
        assert!(d >= Duration::from_millis(full / 2) && d <= Duration::from_millis(full), "{retry}: {d:?}");
    }
}

#[test]
fn service_messages_are_read_from_each_services_envelope() {
    let yahoo = br#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#;
    assert_eq!(service_message(yahoo), "Not Found: No data found, symbol may be delisted");
    let google = br#"{"error":{"code":404,"message":"Not found: Table p:d.t was not found in location US","errors":[{"message":"...","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#;
    assert_eq!(service_message(google), "Not found: Table p:d.t was not found in location US (notFound)");
    let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    assert_eq!(service_message(oauth), "invalid_grant: Invalid JWT Signature.");
    assert_eq!(service_message(b"  "), "no message");
    assert_eq!(service_message(b"<!doctype html><p>x"), "an HTML page, not the service's answer");
    assert_eq!(service_message("x".repeat(400).as_bytes()), format!("{}...", "x".repeat(300)));
}

#[test]
fn shown_urls_lose_user_info_and_secret_values() {
    assert_eq!(shown_url("https://a:b@h.x/p?key=k1&q=NVDA"), "https://h.x/p?key=[redacted]&q=NVDA");
    assert_eq!(shown_url("https://h.x"), "https://h.x");
    assert_eq!(
        shown_url("https://h.x/v8/finance/chart/EURUSD%3DX?interval=1d"),
        "https://h.x/v8/finance/chart/EURUSD%3DX?interval=1d"
    );
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
    assert_eq!(parse_retry_after(" 2.5 "), Some(Duration::from_millis(2500)));
    assert_eq!(parse_retry_after("-1"), None);
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon"), None);
}

#[test]
fn components_are_percent_encoded() {
    assert_eq!(encode_component("EURUSD=X"), "EURUSD%3DX");
    assert_eq!(encode_component("^GSPC"), "%5EGSPC");
    assert_eq!(encode_component("BRK-B.x_~"), "BRK-B.x_~");
    assert_eq!(encode_component("a b/é"), "a%20b%2F%C3%A9");
}
