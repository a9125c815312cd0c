//! The stateful forecast mode: EUR/USD fed row chunk by row chunk through `POST /observe`, and `/predict` with the
//! series key answers what `kiln predict` (`kiln_score::score`) gives the newest row of the whole history, bit for
//! bit, though the recipe has EWM features that depend on every earlier row.

use kiln_serve::{LoadedModel, ModelIdentity, ServeConfig};
use serde_json::{Value, json};

use crate::helpers::{churn, eurusd, get, iso, post, read, row, state_for};

fn rows(start: usize, end: usize) -> Vec<Value> {
    let frame = &eurusd().frame;
    let columns = ["Date".to_string(), "USD".to_string()];
    (start..end).map(|i| row(frame, &columns, i)).collect()
}

fn observe(series: &str, start: usize, end: usize) -> Value {
    json!({"series": series, "rows": rows(start, end)})
}

async fn delete(state: &kiln_serve::AppState, path: &str) -> crate::helpers::Answer {
    let request = axum::http::Request::delete(path).body(axum::body::Body::empty()).unwrap();
    crate::helpers::call(state, request).await
}

#[tokio::test]
async fn observed_series_forecast_exactly_what_batch_scoring_gives_the_newest_row() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let bundle = read(trained);
    let all = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    let kiln_score::RowKeys::Times { values: times, .. } = &all.keys else { panic!() };
    let n = trained.frame.n_rows();
    let min = bundle.pipeline.recipe().unwrap().min_window_rows();

    // chunks of every size, including single rows, across the warm-up and on to the end
    let mut cuts = vec![0, 1, 2, 7, min - 1, min, min + 1, 500, 501, 3000, n - 1, n];
    cuts.dedup();
    for pair in cuts.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let answer = post(&state, "/observe", &observe("eurusd", start, end)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["observed"], end);
        assert_eq!(answer.body["rows_kept"], end.min(ServeConfig::DEFAULT_SERIES_ROWS));
        assert_eq!(answer.body["last_time"], iso(trained.frame.timestamps("Date").unwrap()[end - 1]));
        assert_eq!(answer.body["model"]["version"], 1);
        let forecast = post(&state, "/predict", &json!({"series": "eurusd"})).await;
        if end < min {
            assert_eq!(answer.body["ready"], false);
            assert_eq!(forecast.status, 422);
            assert_eq!(forecast.error(), ("not_enough_rows".into(), Some("series".into())));
            continue;
        }
        assert_eq!(answer.body["ready"], true);
        assert_eq!(forecast.status, 200, "{}", forecast.body);
        let k = end - 1 - all.warmup_dropped;
        let got = forecast.body["prediction"].as_f64().unwrap();
        assert_eq!(got.to_bits(), all.predictions[k].to_bits(), "after {end} rows: {got} vs {}", all.predictions[k]);
        assert_eq!(forecast.body["time"], iso(times[k]));
    }

    // a batch may mix series keys and windows
    let batch = json!({"records": [{"series": "eurusd"}, {"window": rows(0, n)}]});
    let answer = post(&state, "/predict/batch", &batch).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let p = answer.body["predictions"].as_array().unwrap();
    assert_eq!(p[0]["prediction"], p[1]["prediction"]);
    assert_eq!(p[0]["prediction"].as_f64().unwrap().to_bits(), all.predictions.last().unwrap().to_bits());

    let status = get(&state, "/observe/eurusd").await;
    assert_eq!((status.status.as_u16(), &status.body["observed"]), (200, &json!(n)));
}

#[tokio::test]
async fn series_are_independent_and_a_refused_chunk_changes_nothing() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig { max_series: 2, ..ServeConfig::default() });
    let all = kiln_score::score(&read(trained), &trained.frame, false).unwrap();
    let at = |end: usize| all.predictions[end - 1 - all.warmup_dropped];

    assert_eq!(post(&state, "/observe", &observe("a", 0, 1000)).await.status, 200);
    assert_eq!(post(&state, "/observe", &observe("b", 0, 2000)).await.status, 200);
    let forecast = |key: &'static str| {
        let state = state.clone();
        async move { post(&state, "/predict", &json!({ "series": key })).await.body["prediction"].as_f64().unwrap() }
    };
    assert_eq!(forecast("a").await.to_bits(), at(1000).to_bits());
    assert_eq!(forecast("b").await.to_bits(), at(2000).to_bits());

    // rows that do not come after the series' newest: refused, naming the row; the series is as it was
    let old = post(&state, "/observe", &observe("a", 990, 1010)).await;
    assert_eq!((old.status.as_u16(), old.error()), (422, ("window_not_sorted".into(), Some("rows[0].Date".into()))));
    let mut bad = observe("a", 1000, 1010);
    bad["rows"][3]["USD"] = json!("1.1");
    assert_eq!(post(&state, "/observe", &bad).await.error(), ("wrong_type".into(), Some("rows[3].USD".into())));
    let mut bad = observe("a", 1000, 1010);
    bad["rows"].as_array_mut().unwrap().swap(4, 5);
    assert_eq!(post(&state, "/observe", &bad).await.error(), ("window_not_sorted".into(), Some("rows[5].Date".into())));
    assert_eq!(get(&state, "/observe/a").await.body["observed"], 1000);
    assert_eq!(forecast("a").await.to_bits(), at(1000).to_bits());
    assert_eq!(post(&state, "/observe", &observe("a", 1000, 1010)).await.status, 200);
    assert_eq!(forecast("a").await.to_bits(), at(1010).to_bits());

    // the store is full: a third key is refused, nothing is evicted; deleting one makes room
    let third = post(&state, "/observe", &observe("c", 0, 10)).await;
    assert_eq!((third.status.as_u16(), third.error()), (409, ("too_many_series".into(), Some("series".into()))));
    let deleted = delete(&state, "/observe/b").await;
    assert_eq!((deleted.status.as_u16(), &deleted.body["observed"]), (200, &json!(2000)));
    assert_eq!(delete(&state, "/observe/b").await.error(), ("series_not_found".into(), Some("series".into())));
    assert_eq!(post(&state, "/observe", &observe("c", 0, 10)).await.status, 200);
    // a series whose first rows are refused is not kept
    let mut bad = observe("d", 0, 10);
    bad["rows"][0]["USD"] = json!(null);
    let (_, full) = (delete(&state, "/observe/c").await, post(&state, "/observe", &bad).await);
    assert_eq!(full.error(), ("null_value".into(), Some("rows[0].USD".into())));
    assert_eq!(get(&state, "/observe/d").await.status, 404);
}

#[tokio::test]
async fn bad_observe_bodies_and_unknown_keys_get_4xx_naming_the_field() {
    let trained = eurusd();
    let state = state_for(trained, "eurusd", ServeConfig::default());
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({"rows": rows(0, 3)}), 422, "missing_field", Some("series")),
        (json!({"series": "a"}), 422, "missing_field", Some("rows")),
        (json!({"series": "a", "rows": rows(0, 3), "x": 1}), 422, "unknown_field", Some("x")),
        (json!({"series": 5, "rows": rows(0, 3)}), 422, "wrong_type", Some("series")),
        (json!({"series": "", "rows": rows(0, 3)}), 422, "invalid_value", Some("series")),
        (json!({"series": "x".repeat(257), "rows": []}), 422, "invalid_value", Some("series")),
        (json!({"series": "a", "rows": {"Date": "2024-01-02"}}), 422, "wrong_type", Some("rows")),
        (json!({"series": "a", "rows": [{"Date": "2024-01-02"}]}), 422, "missing_field", Some("rows[0].USD")),
        (json!([1]), 422, "wrong_type", None),
    ];
    for (body, status, code, field) in cases {
        let answer = post(&state, "/observe", &body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error()),
            (status, (code.to_string(), field.map(str::to_string))),
            "{body}"
        );
    }
    let unknown = post(&state, "/predict", &json!({"series": "nope"})).await;
    assert_eq!((unknown.status.as_u16(), unknown.error()), (404, ("series_not_found".into(), Some("series".into()))));
    let batch =
        post(&state, "/predict/batch", &json!({"records": [{"window": rows(0, 100)}, {"series": "nope"}]})).await;
    assert_eq!(batch.error(), ("series_not_found".into(), Some("records[1].series".into())));
    let both = post(&state, "/predict", &json!({"series": "a", "window": rows(0, 100)})).await;
    assert_eq!(both.error(), ("conflicting_fields".into(), Some("series".into())));
    assert_eq!(get(&state, "/observe/nope").await.status, 404);

    // a tabular model keeps no series
    let churn = state_for(churn(), "churn", ServeConfig::default());
    let answer = post(&churn, "/observe", &observe("a", 0, 3)).await;
    assert_eq!((answer.status.as_u16(), answer.error()), (400, ("not_a_forecast_model".into(), None)));
}

#[tokio::test]
async fn a_new_model_rebuilds_each_series_from_its_kept_rows() {
    let trained = eurusd();
    let n = trained.frame.n_rows();
    let all = kiln_score::score(&read(trained), &trained.frame, false).unwrap();
    let identity = |version| ModelIdentity {
        reference: "models:/eurusd@production".into(),
        name: Some("eurusd".into()),
        version: Some(version),
        alias: Some("production".into()),
        run_id: Some(trained.run_id.clone()),
    };

    // every row kept: the rebuilt series is exact
    let state = state_for(trained, "eurusd", ServeConfig { series_rows: n, ..ServeConfig::default() });
    assert_eq!(post(&state, "/observe", &observe("s", 0, n)).await.status, 200);
    state.set_model(LoadedModel::new(read(trained), identity(2)).unwrap());
    let forecast = post(&state, "/predict", &json!({"series": "s"})).await;
    assert_eq!(forecast.body["model"]["version"], 2);
    assert_eq!(forecast.body["prediction"].as_f64().unwrap().to_bits(), all.predictions.last().unwrap().to_bits());
    assert_eq!(get(&state, "/observe/s").await.body["history_complete"], true);

    // only the last 300 rows kept: rebuilt from those, and the series says its history is not complete
    let state = state_for(trained, "eurusd", ServeConfig { series_rows: 300, ..ServeConfig::default() });
    let answer = post(&state, "/observe", &observe("s", 0, n)).await;
    assert_eq!((answer.body["rows_kept"].as_u64(), answer.body["history_complete"].as_bool()), (Some(300), Some(true)));
    state.set_model(LoadedModel::new(read(trained), identity(2)).unwrap());
    let forecast = post(&state, "/predict", &json!({"series": "s"})).await;
    assert_eq!(forecast.status, 200, "{}", forecast.body);
    let status = get(&state, "/observe/s").await;
    assert_eq!(
        (status.body["history_complete"].as_bool(), status.body["observed"].as_u64()),
        (Some(false), Some(n as u64))
    );
    // a later chunk goes on from the rebuilt state
    let more = post(&state, "/observe", &json!({"series": "s", "rows": [{"Date": "2099-01-01", "USD": 1.1}]})).await;
    assert_eq!(more.status, 200, "{}", more.body);
    assert_eq!(more.body["observed"], n + 1);
}
