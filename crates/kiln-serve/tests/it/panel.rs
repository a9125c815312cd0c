//! A multi-step panel model (three ECB currencies in one long file, 1 to 3 days ahead by recursion, with 80% and
//! 95% conformal intervals): a window of one series' rows, or the series fed row by row through `/observe`, answers
//! every step with its bounds, equal to `kiln_score::score` (what `kiln predict` runs) bit for bit.

use std::collections::HashSet;

use kiln_serve::ServeConfig;
use serde_json::{Value, json};

use crate::helpers::{ecb_panel, get, iso, post, read, row};

fn columns() -> Vec<String> {
    ["Date", "currency", "rate"].map(String::from).to_vec()
}

/// The rows of `series` in the training frame, in time order.
fn rows_of(series: &str) -> Vec<usize> {
    let frame = &ecb_panel().frame;
    let keys = frame.categorical("currency").unwrap();
    (0..frame.n_rows()).filter(|&i| keys[i].as_deref() == Some(series)).collect()
}

/// The last `n` rows of `series`, as JSON rows.
fn last_rows(series: &str, n: usize) -> Vec<Value> {
    let rows = rows_of(series);
    rows[rows.len() - n..].iter().map(|&i| row(&ecb_panel().frame, &columns(), i)).collect()
}

fn min_rows() -> usize {
    read(ecb_panel()).pipeline.recipe().unwrap().min_window_rows()
}

fn state() -> kiln_serve::AppState {
    crate::helpers::state_for(ecb_panel(), "ecb-panel", ServeConfig::default())
}

/// Checks `answer` (one record's answer) against what `kiln_score::score` gives for the last origin of `series`
/// in the whole training frame: every step's prediction, target time and bounds, bit for bit.
fn check_against_score(answer: &Value, series: &str) {
    let bundle = read(ecb_panel());
    let scored = kiln_score::score(&bundle, &ecb_panel().frame, false).unwrap();
    let kiln_score::RowKeys::Times { values: times, .. } = &scored.keys else { panic!() };
    let (_, keys) = scored.series.as_ref().unwrap();
    let steps = scored.steps.as_ref().unwrap();
    let bounds = scored.bounds.as_ref().unwrap();
    let target_times = scored.target_times.as_ref().unwrap();
    // the last origin of the series: its rows are the last `steps` rows of that series in the output
    let mine: Vec<usize> = (0..keys.len()).filter(|&r| keys[r] == series).collect();
    let last = &mine[mine.len() - 3..];
    assert_eq!(answer["series"], series);
    assert_eq!(answer["time"], iso(times[last[0]]));
    let got = answer["steps"].as_array().unwrap();
    assert_eq!(got.len(), 3, "{answer}");
    for (k, &r) in last.iter().enumerate() {
        let step = &got[k];
        assert_eq!(step["step"], steps[r], "{step}");
        assert_eq!(step["target_time"], iso(target_times[r]));
        let p = step["prediction"].as_f64().unwrap();
        assert_eq!(
            p.to_bits(),
            scored.predictions[r].to_bits(),
            "{series} step {}: {p} vs {}",
            k + 1,
            scored.predictions[r]
        );
        let names: Vec<&str> = step.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names, ["step", "target_time", "prediction", "lo_80", "hi_80", "lo_95", "hi_95"]);
        for (name, values) in bounds {
            let b = step[name].as_f64().unwrap_or_else(|| panic!("{name}: {step}"));
            assert_eq!(b.to_bits(), values[r].to_bits(), "{series} step {} {name}: {b} vs {}", k + 1, values[r]);
        }
        assert!(step["lo_95"].as_f64() <= step["lo_80"].as_f64() && step["hi_80"].as_f64() <= step["hi_95"].as_f64());
    }
}

#[tokio::test]
async fn a_window_answers_every_step_with_bounds_equal_to_batch_scoring() {
    let state = state();
    for series in ["USD", "JPY"] {
        // the shortest window, and a longer one: the same forecast
        for n in [min_rows(), min_rows() + 30] {
            let answer = post(&state, "/predict", &json!({"window": last_rows(series, n)})).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            check_against_score(&answer.body, series);
            assert_eq!(answer.body["model"]["name"], "ecb-panel");
            assert!(answer.body.get("prediction").is_none() && answer.body.get("target_time").is_none());
        }
    }
    // a batch of windows of two series answers each as alone
    let records = json!({"records": [{"window": last_rows("GBP", 20)}, {"window": last_rows("USD", 20)}]});
    let batch = post(&state, "/predict/batch", &records).await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    let predictions = batch.body["predictions"].as_array().unwrap();
    check_against_score(&predictions[0], "GBP");
    check_against_score(&predictions[1], "USD");
    // every step's forecast is counted in the prediction histogram (2 series x 2 window lengths + 2, 3 steps each)
    let (_, _, metrics) = crate::helpers::text(&state, "/metrics").await;
    let count =
        metrics.lines().find(|l| l.starts_with("kiln_prediction_value_count")).unwrap_or_else(|| panic!("{metrics}"));
    assert!(count.ends_with(" 18"), "{count}");
    // one row too few
    let short = post(&state, "/predict", &json!({"window": last_rows("USD", min_rows() - 1)})).await;
    assert_eq!((short.status.as_u16(), short.error()), (422, ("not_enough_rows".into(), Some("window".into()))));
}

#[tokio::test]
async fn observe_row_by_row_answers_as_the_window_of_the_same_rows() {
    let state = state();
    let rows = last_rows("JPY", 25);
    for (i, r) in rows.iter().enumerate() {
        // the series column may be left out of an observed row: the key names the series
        let mut r = r.clone();
        if i % 2 == 0 {
            r.as_object_mut().unwrap().remove("currency");
        }
        let observed = post(&state, "/observe", &json!({"series": "JPY", "rows": [r]})).await;
        assert_eq!(observed.status, 200, "{}", observed.body);
        assert_eq!(observed.body["ready"], i + 1 >= min_rows(), "row {i}: {}", observed.body);
    }
    let from_series = post(&state, "/predict", &json!({"series": "JPY"})).await;
    assert_eq!(from_series.status, 200, "{}", from_series.body);
    let from_window = post(&state, "/predict", &json!({"window": rows})).await;
    assert_eq!(from_series.body, from_window.body);
    check_against_score(&from_series.body, "JPY");

    // a row of another series under this key is refused, naming it, and the series is left as it was
    let mut other = last_rows("USD", 1)[0].clone();
    other["Date"] = json!("2100-01-01");
    let refused = post(&state, "/observe", &json!({"series": "JPY", "rows": [other]})).await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (422, ("invalid_value".into(), Some("rows[0].currency".into())))
    );
    let again = post(&state, "/predict", &json!({"series": "JPY"})).await;
    assert_eq!(again.body, from_window.body);
}

#[tokio::test]
async fn a_window_mixing_series_is_refused_naming_the_row() {
    let state = state();
    let mut rows = last_rows("USD", min_rows() + 2);
    let at = rows.len() - 2;
    rows[at]["currency"] = json!("JPY");
    let single = post(&state, "/predict", &json!({"window": rows})).await;
    let field = format!("window[{at}].currency");
    assert_eq!((single.status.as_u16(), single.error()), (422, ("invalid_value".into(), Some(field))));
    let message = single.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'USD'") && message.contains("'JPY'"), "{message}");
    let batch =
        post(&state, "/predict/batch", &json!({"records": [{"window": last_rows("GBP", 20)}, {"window": rows}]})).await;
    assert_eq!(batch.error(), ("invalid_value".into(), Some(format!("records[1].window[{at}].currency"))));
    // every window row names its series
    let mut rows = last_rows("USD", min_rows());
    rows[0].as_object_mut().unwrap().remove("currency");
    let missing = post(&state, "/predict", &json!({"window": rows})).await;
    assert_eq!(missing.error(), ("missing_field".into(), Some("window[0].currency".into())));
}

#[tokio::test]
async fn a_series_the_calibration_never_saw_gets_null_bounds() {
    let state = state();
    let usd = post(&state, "/predict", &json!({"window": last_rows("USD", 20)})).await;
    let mut rows = last_rows("USD", 20);
    for r in &mut rows {
        r["currency"] = json!("XAU");
    }
    let unseen = post(&state, "/predict", &json!({"window": rows})).await;
    assert_eq!(unseen.status, 200, "{}", unseen.body);
    assert_eq!(unseen.body["series"], "XAU");
    for (a, b) in unseen.body["steps"].as_array().unwrap().iter().zip(usd.body["steps"].as_array().unwrap()) {
        // one global model: the same forecasts; no calibration for this series: no bounds
        assert_eq!(a["prediction"], b["prediction"]);
        for name in ["lo_80", "hi_80", "lo_95", "hi_95"] {
            assert_eq!(a[name], Value::Null, "{a}");
            assert!(b[name].is_number());
        }
    }
}

#[tokio::test]
async fn model_and_openapi_describe_the_steps_the_levels_and_the_series_column() {
    let state = state();
    let info = get(&state, "/model").await;
    assert_eq!(info.status, 200);
    let f = &info.body["forecast"];
    assert_eq!(f["multi_step"], json!({"steps": 3, "strategy": "recursive", "step": "business day"}));
    assert_eq!(f["series_column"], "currency");
    assert_eq!(f["horizon"], 1);
    assert_eq!(f["min_window_rows"], min_rows());
    assert_eq!(f["intervals"]["levels"], json!([80.0, 95.0]));
    assert_eq!(f["intervals"]["bounds"], json!(["lo_80", "hi_80", "lo_95", "hi_95"]));
    assert_eq!(f["intervals"]["windows"], 3);
    assert_eq!(f["intervals"]["series"], json!(["GBP", "JPY", "USD"]));
    assert!(f["intervals"]["unseen_series"].as_str().unwrap().contains("null"));
    assert!(f.get("wide_columns").is_none());
    assert_eq!(
        info.body["input_schema"],
        json!([
            {"name": "Date", "type": "timestamp", "required": true, "nullable": false},
            {"name": "currency", "type": "series", "required": true, "nullable": false},
            {"name": "rate", "type": "numeric", "required": true, "nullable": false}
        ])
    );

    let doc = get(&state, "/openapi.json").await.body;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Row"]["properties"]["currency"]["type"], json!(["string", "number"]));
    let required = |s: &Value| -> HashSet<String> {
        s["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    assert!(required(&schemas["Row"]).contains("currency"));
    assert!(!required(&schemas["ObserveRow"]).contains("currency"));
    let answer = &schemas["Answer"];
    assert_eq!(required(answer), ["time", "steps"].map(String::from).into());
    assert_eq!(answer["properties"]["steps"]["maxItems"], 3);
    let step = &answer["properties"]["steps"]["items"];
    assert_eq!(
        required(step),
        ["step", "target_time", "prediction", "lo_80", "hi_80", "lo_95", "hi_95"].map(String::from).into()
    );
    assert_eq!(step["properties"]["lo_95"]["type"], json!(["number", "null"]));
    assert!(answer["properties"]["series"].is_object());
    // the examples are requests the service accepts, with bounds (they name a calibrated series)
    for path in ["/observe", "/predict", "/predict/batch"] {
        let example = &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"];
        let answer = post(&state, path, example).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        if path == "/predict" {
            assert!(answer.body["steps"][2]["hi_95"].is_number(), "{}", answer.body);
        }
    }
}

#[tokio::test]
async fn a_bundle_trained_on_a_wide_file_is_served_as_its_long_panel() {
    let trained = crate::helpers::ecb_wide();
    let state = crate::helpers::state_for(trained, "ecb-wide", ServeConfig::default());
    let info = get(&state, "/model").await;
    assert_eq!(info.body["forecast"]["wide_columns"], json!(["USD", "JPY"]));
    assert_eq!(info.body["forecast"]["series_column"], "currency");
    let names: Vec<&str> =
        info.body["input_schema"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Date", "currency", "rate"]);

    // what `kiln predict` gives for the wide file: the last origin of JPY
    let bundle = read(trained);
    let scored = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    let (_, keys) = scored.series.as_ref().unwrap();
    let mine: Vec<usize> = (0..keys.len()).filter(|&r| keys[r] == "JPY").collect();
    let last = &mine[mine.len() - 2..];
    // the same rows in long form: the window of one series
    let frame = &trained.frame;
    let times = frame.timestamps("Date").unwrap();
    let jpy = frame.numeric("JPY").unwrap();
    let n = frame.n_rows();
    let rows: Vec<Value> =
        (n - 20..n).map(|i| json!({"Date": iso(times[i]), "currency": "JPY", "rate": jpy[i]})).collect();
    let answer = post(&state, "/predict", &json!({"window": rows})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let steps = answer.body["steps"].as_array().unwrap();
    let bounds = scored.bounds.as_ref().unwrap();
    for (k, &r) in last.iter().enumerate() {
        assert_eq!(steps[k]["prediction"].as_f64().unwrap().to_bits(), scored.predictions[r].to_bits());
        for (name, values) in bounds {
            assert_eq!(steps[k][name].as_f64().unwrap().to_bits(), values[r].to_bits(), "{name}");
        }
    }
    // a wide row is not what a window of one series takes
    let wide_row = json!({"Date": iso(times[n - 1]), "USD": 1.1, "JPY": 160.0});
    let refused = post(&state, "/predict", &json!({"window": [wide_row]})).await;
    assert_eq!(refused.error().0, "unknown_field");
}

/// A direct bundle (one model per step): a window and a series fed through `/observe` answer every step from the
/// step models, equal to `kiln_score::score` bit for bit (no bounds: intervals are a recursive model's).
#[tokio::test]
async fn a_direct_bundle_answers_every_step_from_its_step_models() {
    let trained = crate::helpers::ecb_direct();
    let state = crate::helpers::state_for(trained, "ecb-direct", ServeConfig::default());
    let bundle = read(trained);
    assert_eq!(bundle.step_models.len(), 2, "steps 2 and 3 have their own models");
    let scored = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    let (_, keys) = scored.series.as_ref().unwrap();
    let rows = rows_of("JPY");
    // the EWM reads the whole history: the window is every JPY row
    let window: Vec<Value> = rows.iter().map(|&i| row(&trained.frame, &columns(), i)).collect();
    let answer = post(&state, "/predict", &json!({ "window": window })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = answer.body;
    let mine: Vec<usize> = (0..keys.len()).filter(|&r| keys[r] == "JPY").collect();
    let last = &mine[mine.len() - 3..];
    let steps = answer["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{answer}");
    for (k, &r) in last.iter().enumerate() {
        assert_eq!(steps[k]["prediction"].as_f64().unwrap().to_bits(), scored.predictions[r].to_bits(), "step {k}");
        assert_eq!(steps[k].as_object().unwrap().len(), 3, "no bounds: {}", steps[k]);
    }
    // the same rows through /observe, then a forecast of the series
    let observe = post(&state, "/observe", &json!({ "series": "JPY", "rows": window })).await;
    assert_eq!(observe.status, 200, "{}", observe.body);
    let observed = post(&state, "/predict", &json!({ "series": "JPY" })).await;
    assert_eq!(observed.status, 200, "{}", observed.body);
    assert_eq!(observed.body["steps"], answer["steps"]);
}

/// One model per series: a window of each series is answered by its own model (equal to batch scoring, bounds
/// included), and a series the bundle has no model of is a 422 naming it.
#[tokio::test]
async fn a_per_series_bundle_answers_each_series_with_its_own_model() {
    let trained = crate::helpers::ecb_per_series();
    let state = crate::helpers::state_for(trained, "ecb-per-series", ServeConfig::default());
    let bundle = read(trained);
    assert_eq!(bundle.per_series.as_ref().unwrap().keys, ["GBP", "JPY", "USD"]);
    let scored = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    let (_, keys) = scored.series.as_ref().unwrap();
    for series in ["USD", "GBP"] {
        let rows = rows_of(series);
        let window: Vec<Value> = rows[rows.len() - 40..].iter().map(|&i| row(&trained.frame, &columns(), i)).collect();
        let answer = post(&state, "/predict", &json!({ "window": window })).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mine: Vec<usize> = (0..keys.len()).filter(|&r| keys[r] == series).collect();
        let steps = answer.body["steps"].as_array().unwrap();
        for (k, &r) in mine[mine.len() - 3..].iter().enumerate() {
            assert_eq!(steps[k]["prediction"].as_f64().unwrap().to_bits(), scored.predictions[r].to_bits());
        }
    }
    let rows = rows_of("JPY");
    let window: Vec<Value> = rows[rows.len() - 40..]
        .iter()
        .map(|&i| {
            let mut r = row(&trained.frame, &columns(), i);
            r["currency"] = json!("XAU");
            r
        })
        .collect();
    let refused = post(&state, "/predict", &json!({ "window": window })).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("'XAU'"), "{}", refused.body);
}
