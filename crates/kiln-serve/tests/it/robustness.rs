//! Bad requests as a whole (media type, size, count, malformed JSON, routes), and garbage: truncated and mutated
//! bodies never get a 5xx or crash the service.

use kiln_serve::{ServeConfig, VERSION_HEADER};
use serde_json::{Value, json};

use crate::helpers::{churn, eurusd, get, post, post_raw, read, row, state_for};

fn churn_record(i: usize) -> Value {
    row(&churn().frame, &read(churn()).pipeline.input_columns(), i)
}

#[tokio::test]
async fn the_request_as_a_whole_is_checked() {
    let config = ServeConfig { max_batch_records: 2, max_body_bytes: 4096, ..ServeConfig::default() };
    let state = state_for(churn(), "churn", config);
    let body = serde_json::to_vec(&churn_record(0)).unwrap();

    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("json")] {
        let answer = post_raw(&state, "/predict", ct, body.clone()).await;
        assert_eq!((answer.status.as_u16(), answer.error()), (415, ("unsupported_media_type".into(), None)), "{ct:?}");
    }
    for ct in ["application/json; charset=utf-8", "Application/JSON", "application/vnd.kiln+json"] {
        assert_eq!(post_raw(&state, "/predict", Some(ct), body.clone()).await.status, 200, "{ct}");
    }

    let big = json!({"records": [churn_record(0)], "padding": "x".repeat(5000)});
    let answer = post(&state, "/predict/batch", &big).await;
    assert_eq!((answer.status.as_u16(), answer.error()), (413, ("payload_too_large".into(), None)));
    assert!(answer.body["error"]["message"].as_str().unwrap().contains("4096"));

    let three = json!({"records": [churn_record(0), churn_record(1), churn_record(2)]});
    let answer = post(&state, "/predict/batch", &three).await;
    assert_eq!((answer.status.as_u16(), answer.error()), (413, ("too_many_records".into(), Some("records".into()))));
    let two = json!({"records": [churn_record(0), churn_record(1)]});
    assert_eq!(post(&state, "/predict/batch", &two).await.status, 200);

    for bad in ["", "{", "{\"tenure\": }", "nul", "{\"tenure\" 1}", "\u{1}"] {
        let answer = post_raw(&state, "/predict", Some("application/json"), bad.as_bytes().to_vec()).await;
        assert_eq!((answer.status.as_u16(), answer.error()), (400, ("malformed_json".into(), None)), "{bad:?}");
        assert_eq!(answer.headers[VERSION_HEADER], "1");
    }
    let answer = post_raw(&state, "/predict", Some("application/json"), vec![0xff, 0xfe, b'{']).await;
    assert_eq!(answer.error().0, "malformed_json");

    let answer = get(&state, "/nope").await;
    assert_eq!((answer.status.as_u16(), answer.error()), (404, ("route_not_found".into(), None)));
    let answer = get(&state, "/predict").await;
    assert_eq!((answer.status.as_u16(), answer.error()), (405, ("method_not_allowed".into(), None)));
    let answer = post(&state, "/health", &json!({})).await;
    assert_eq!(answer.status, 405);
}

/// A small deterministic generator (a 64-bit LCG), so the garbage is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn assert_never_5xx(state: &kiln_serve::AppState, path: &str, valid: &[u8], seed: u64) -> usize {
    let mut rng = Lcg(seed);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // every truncation point of a short body, a sample of them for a long one
    let step = (valid.len() / 150).max(1);
    for cut in (0..valid.len()).step_by(step) {
        bodies.push(valid[..cut].to_vec());
    }
    // byte mutations: JSON punctuation, digits, letters, quotes, NaN, high bytes
    let pieces: [&[u8]; 12] = [b"{", b"}", b"[", b"]", b",", b":", b"\"", b"-", b"NaN", b"1e999", b"null", b"\xc3"];
    for _ in 0..300 {
        let mut body = valid.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len());
            match rng.below(3) {
                0 => {
                    body.remove(at);
                }
                1 => {
                    let piece = pieces[rng.below(pieces.len())];
                    body.splice(at..at, piece.iter().copied());
                }
                _ => body[at] = b"0a\"{}[],: x9.eE+-"[rng.below(17)],
            }
        }
        bodies.push(body);
    }
    let mut ok = 0;
    for body in bodies {
        let answer = post_raw(state, path, Some("application/json"), body.clone()).await;
        let status = answer.status.as_u16();
        assert!(status == 200 || (400..500).contains(&status), "{status} for {}", String::from_utf8_lossy(&body));
        if status == 200 {
            ok += 1;
        } else {
            answer.error();
        }
    }
    ok
}

#[tokio::test]
async fn truncated_and_mutated_records_never_get_a_5xx() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    let one = serde_json::to_vec(&churn_record(5)).unwrap();
    assert_never_5xx(&state, "/predict", &one, 1).await;
    let batch = serde_json::to_vec(&json!({"records": [churn_record(5), churn_record(6)]})).unwrap();
    assert_never_5xx(&state, "/predict/batch", &batch, 2).await;
    // the service still answers normally afterwards
    assert_eq!(post(&state, "/predict", &churn_record(5)).await.status, 200);
}

#[tokio::test]
async fn truncated_and_mutated_windows_never_get_a_5xx() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let n = trained.frame.n_rows();
    let columns = vec!["Date".to_string(), "USD".to_string()];
    let rows: Vec<Value> = (n - 80..n).map(|i| row(&trained.frame, &columns, i)).collect();
    let valid = serde_json::to_vec(&json!({ "window": rows })).unwrap();
    assert_never_5xx(&state, "/predict", &valid, 3).await;
    assert_eq!(post(&state, "/predict", &json!({ "window": rows })).await.status, 200);
}
