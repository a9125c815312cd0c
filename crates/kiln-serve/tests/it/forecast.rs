//! EUR/USD: a window of raw rows in, the forecast from its last row out, equal to `kiln_score::score` (what
//! `kiln predict` runs) bit for bit.

use kiln_serve::{RUN_HEADER, ServeConfig, VERSION_HEADER};
use serde_json::{Value, json};

use crate::helpers::{eurusd, get, iso, post, read, row, state_for};

fn input_columns() -> Vec<String> {
    vec!["Date".to_string(), "USD".to_string()]
}

/// `{"window": [...]}` of rows `start..=end`.
fn window(start: usize, end: usize) -> Value {
    let frame = &eurusd().frame;
    let rows: Vec<Value> = (start..=end).map(|i| row(frame, &input_columns(), i)).collect();
    json!({ "window": rows })
}

#[tokio::test]
async fn health_ready_and_model_describe_the_served_model() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let health = get(&state, "/health").await;
    assert_eq!((health.status.as_u16(), &health.body), (200, &json!({"status": "alive"})));
    let ready = get(&state, "/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["model"]["version"], 1);
    assert_eq!(ready.headers[VERSION_HEADER], "1");
    assert_eq!(ready.headers[RUN_HEADER], trained.run_id.as_str());

    let info = get(&state, "/model").await;
    assert_eq!(info.status, 200);
    let b = &info.body;
    assert_eq!(b["model"]["name"], "eurusd");
    assert_eq!(b["model"]["alias"], "production");
    assert_eq!(b["model"]["run_id"], trained.run_id.as_str());
    assert_eq!(b["model"]["reference"], "models:/eurusd@production");
    assert_eq!(
        (b["model_kind"].as_str(), b["task"].as_str(), b["target"].as_str()),
        (Some("lightgbm"), Some("forecast"), Some("USD"))
    );
    assert_eq!(b["input_format"], "window");
    assert_eq!(
        b["input_schema"],
        json!([
            {"name": "Date", "type": "timestamp", "required": true, "nullable": false},
            {"name": "USD", "type": "numeric", "required": true, "nullable": false}
        ])
    );
    let bundle = read(trained);
    let recipe = bundle.pipeline.recipe().unwrap();
    assert_eq!(b["forecast"]["min_window_rows"], recipe.min_window_rows());
    assert_eq!(b["forecast"]["window_needs_full_history"], true);
    assert_eq!(b["forecast"]["horizon"], 1);
    assert_eq!(b["forecast"]["target_transform"], "log_return");
    let features: Vec<String> = serde_json::from_value(b["features"].clone()).unwrap();
    assert_eq!(features, bundle.metadata.feature_names);
    let rmse = bundle.metadata.metrics["test/rmse"];
    assert_eq!(b["metrics"]["test/rmse"].as_f64(), Some(rmse));
    assert!(b["metrics"].as_object().unwrap().keys().all(|k| k.starts_with("test/")));
    assert_eq!(b["limits"]["max_batch_records"], 1000);
    assert_eq!(b["limits"]["max_body_bytes"], 4 * 1024 * 1024);
    assert_eq!(b["limits"]["max_series"], ServeConfig::DEFAULT_MAX_SERIES);
}

#[tokio::test]
async fn a_window_from_the_first_row_equals_batch_scoring_bit_for_bit() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let bundle = read(trained);
    let frame = &trained.frame;
    let n = frame.n_rows();
    // what `kiln predict` computes for every row of the whole file
    let all = kiln_score::score(&bundle, frame, false).unwrap();
    let kiln_score::RowKeys::Times { values: times, .. } = &all.keys else { panic!() };
    let min = bundle.pipeline.recipe().unwrap().min_window_rows();
    for end in [min - 1, min + 7, n / 2, n - 2, n - 1] {
        let answer = post(&state, "/predict", &window(0, end)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let got = answer.body["prediction"].as_f64().unwrap();
        let k = end - all.warmup_dropped;
        assert_eq!(got.to_bits(), all.predictions[k].to_bits(), "row {end}: {got} vs {}", all.predictions[k]);
        assert_eq!(answer.body["time"], iso(times[k]));
        // and scoring exactly the window's rows gives the same last value
        let part = kiln_score::score(&bundle, &frame.slice(0, end + 1), false).unwrap();
        assert_eq!(part.predictions.last().unwrap().to_bits(), got.to_bits());
        assert_eq!(answer.body["model"]["version"], 1);
        assert_eq!(answer.headers[VERSION_HEADER], "1");
        assert_eq!(answer.headers[RUN_HEADER], trained.run_id.as_str());
    }
}

#[tokio::test]
async fn a_batch_of_windows_equals_the_single_answers() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let n = trained.frame.n_rows();
    let ends = [100, 2000, n - 1];
    let records: Vec<Value> = ends.iter().map(|&e| window(0, e)).collect();
    let batch = post(&state, "/predict/batch", &json!({ "records": records })).await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    let predictions = batch.body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), ends.len());
    assert_eq!(batch.body["model"]["run_id"], trained.run_id.as_str());
    for (i, &end) in ends.iter().enumerate() {
        let single = post(&state, "/predict", &window(0, end)).await;
        let (b, s) = (predictions[i]["prediction"].as_f64().unwrap(), single.body["prediction"].as_f64().unwrap());
        assert_eq!(b.to_bits(), s.to_bits(), "record {i}");
        assert_eq!(predictions[i]["time"], single.body["time"]);
        assert!(predictions[i].get("model").is_none());
    }
}

#[tokio::test]
async fn bad_windows_get_4xx_with_the_field_at_fault() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let min = read(trained).pipeline.recipe().unwrap().min_window_rows();

    // too short: the message says how many rows the features need
    let short = post(&state, "/predict", &window(0, min - 2)).await;
    assert_eq!(short.status, 422);
    assert_eq!(short.error(), ("not_enough_rows".into(), Some("window".into())));
    let message = short.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("at least {min} rows")) && message.contains(&format!("got {}", min - 1)),
        "{message}"
    );
    let empty = post(&state, "/predict", &json!({"window": []})).await;
    assert_eq!(empty.error(), ("not_enough_rows".into(), Some("window".into())));

    // out of order, and a repeated time
    let mut w = window(0, min + 5);
    w["window"].as_array_mut().unwrap().swap(10, 11);
    let unsorted = post(&state, "/predict", &w).await;
    assert_eq!(
        (unsorted.status.as_u16(), unsorted.error()),
        (422, ("window_not_sorted".into(), Some("window[11].Date".into())))
    );
    let mut w = window(0, min + 5);
    w["window"][4]["Date"] = w["window"][3]["Date"].clone();
    let repeated = post(&state, "/predict", &w).await;
    assert_eq!(repeated.error(), ("window_not_sorted".into(), Some("window[4].Date".into())));

    // values
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!(null), "null_value", "window[3].USD"),
        (json!("1.1"), "wrong_type", "window[3].USD"),
        (json!(true), "wrong_type", "window[3].USD"),
        (json!([1.1]), "wrong_type", "window[3].USD"),
    ];
    for (value, code, field) in cases {
        let mut w = window(0, min + 5);
        w["window"][3]["USD"] = value.clone();
        let answer = post(&state, "/predict", &w).await;
        assert_eq!((answer.status.as_u16(), answer.error()), (422, (code.into(), Some(field.into()))), "{value}");
        assert_eq!(answer.headers[VERSION_HEADER], "1");
    }
    let mut w = window(0, min + 5);
    w["window"][2]["Date"] = json!("2024-13-01");
    assert_eq!(post(&state, "/predict", &w).await.error(), ("invalid_time".into(), Some("window[2].Date".into())));
    let mut w = window(0, min + 5);
    w["window"][2].as_object_mut().unwrap().remove("USD");
    assert_eq!(post(&state, "/predict", &w).await.error(), ("missing_field".into(), Some("window[2].USD".into())));
    let mut w = window(0, min + 5);
    w["window"][2]["JPY"] = json!(160.0);
    assert_eq!(post(&state, "/predict", &w).await.error(), ("unknown_field".into(), Some("window[2].JPY".into())));
    // a tabular-looking record for a forecast model
    let flat = post(&state, "/predict", &json!({"Date": "2024-01-02", "USD": 1.1})).await;
    assert_eq!(flat.error(), ("unknown_field".into(), Some("Date".into())));
    // NaN written by a client that does not follow JSON
    let mut text = serde_json::to_string(&window(0, min + 5)).unwrap();
    let at = text.find("\"USD\":").unwrap() + 6;
    let end = at + text[at..].find('}').unwrap();
    text.replace_range(at..end, "NaN");
    let nan = crate::helpers::post_raw(&state, "/predict", Some("application/json"), text.into_bytes()).await;
    assert_eq!((nan.status.as_u16(), nan.error()), (422, ("not_finite".into(), Some("window[0].USD".into()))));

    // in a batch, the record is named
    let records = json!({"records": [window(0, min + 5), window(0, 3)]});
    let answer = post(&state, "/predict/batch", &records).await;
    assert_eq!(answer.error(), ("not_enough_rows".into(), Some("records[1].window".into())));
}

#[tokio::test]
async fn extreme_rates_are_answered_or_rejected_never_a_5xx() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let n = trained.frame.n_rows();
    for value in [0.0, -1.0, 1e-300, 1e300, f64::MAX, -f64::MAX] {
        for at in [150, 199] {
            let mut w = window(n - 200, n - 1);
            w["window"][at]["USD"] = json!(value);
            let answer = post(&state, "/predict", &w).await;
            match answer.status.as_u16() {
                200 => assert!(answer.body["prediction"].as_f64().unwrap().is_finite()),
                422 => assert_eq!(answer.error().0, "prediction_not_finite", "{value} at {at}"),
                other => panic!("{value} at row {at}: {other} {}", answer.body),
            }
        }
    }
}
