//! Training the two models once, and calling the router.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kiln_data::ReadOptions;
use kiln_domain::{Column, Frame};
use kiln_eval::{ClassificationGateSpec, GateSpec, HoldoutSpec, Size};
use kiln_features::{FittedPipeline, PreprocessSpec, SelectorSpec, TabularInput, TimeSeriesRecipe};
use kiln_models::{Bundle, LgbObjective, LightGbmParams};
use kiln_serve::{AppState, LoadedModel, ModelIdentity, ServeConfig};
use kiln_store::{LocalStore, PlotChartRenderer};
use kiln_train::{Gates, ModelSpec, Ports, Progress, ShuffledSplit, TabularKind, TaskSpec, ThresholdRule, TrainSpec};
use serde_json::Value;
use tower::ServiceExt;

/// A trained model's bundle folder, its run and the raw frame it was trained on.
pub(crate) struct Trained {
    pub(crate) bundle_dir: PathBuf,
    pub(crate) run_id: String,
    pub(crate) frame: Frame,
    _store: tempfile::TempDir,
}

struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

fn data(name: &str) -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    Path::new(&manifest).join("../../data").join(name)
}

fn lightgbm(objective: LgbObjective) -> ModelSpec {
    // conf/base/lightgbm.yaml, with fewer rounds to keep the tests quick
    let params = LightGbmParams {
        objective,
        num_iterations: 150,
        learning_rate: 0.05,
        num_leaves: 15,
        min_data_in_leaf: 50,
        feature_fraction: 0.9,
        bagging_fraction: 0.8,
        bagging_freq: 1,
        lambda_l2: 1.0,
        early_stopping_rounds: Some(30),
        is_unbalance: objective == LgbObjective::Binary,
        ..LightGbmParams::default()
    };
    ModelSpec::new(params.check().unwrap())
}

fn train(name: &str, task: TaskSpec, preprocess: Vec<PreprocessSpec>, frame: Frame, gates: Gates) -> Trained {
    let store_dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(&store_dir.path().join("mlruns")).unwrap();
    let charts = PlotChartRenderer::default();
    let clock = || 1_700_000_000_000_i64;
    let ports =
        Ports { tracker: &store, artifacts: &store, registry: &store, charts: &charts, clock: &clock, champion: None };
    let selection: Vec<SelectorSpec> = serde_json::from_str(r#"[{"variance_threshold": {"threshold": 0.0}}]"#).unwrap();
    let model = lightgbm(if matches!(gates, Gates::Classification(_)) {
        LgbObjective::Binary
    } else {
        LgbObjective::Regression
    });
    let spec = TrainSpec {
        experiment: name.to_string(),
        run_name: format!("{name}-serve-test"),
        task,
        preprocess,
        selection: if name == "churn" { selection } else { Vec::new() },
        model,
        gates,
        register: None,
        tags: Vec::new(),
        input_params: Vec::new(),
        config_yaml: String::new(),
        data_sha256: "0".repeat(64),
        data_origin: String::new(),
        kiln_version: "test".to_string(),
        cv: None,
    };
    let outcome = kiln_train::train(&spec, &frame, &ports, &Quiet).unwrap();
    let run_id = outcome.run.run_id.0.clone();
    let bundle_dir = store.artifact_dir(&outcome.run.run_id).unwrap().join("model");
    Trained { bundle_dir, run_id, frame, _store: store_dir }
}

/// Next-day EUR/USD from the ECB rates, with the recipe of conf/tasks/eurusd.yaml.
pub(crate) fn eurusd() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let recipe: TimeSeriesRecipe = serde_json::from_value(serde_json::json!({
            "time_column": "Date",
            "target": "USD",
            "horizon": 1,
            "target_transform": "log_return",
            "features": [
                {"log_return": {"column": "USD", "periods": [1, 2, 5, 10, 20]}},
                {"rolling": {"column": "USD", "windows": [5, 20, 60], "stats": ["mean", "std"]}},
                {"ewm": {"column": "USD", "spans": [10, 50]}},
                {"lag": {"column": "USD", "lags": [1, 2, 5]}},
                {"calendar": {"parts": ["day_of_week", "month"], "cyclical": true}}
            ]
        }))
        .unwrap();
        let opts = ReadOptions {
            time_column: Some("Date".into()),
            columns: Some(recipe.input_columns()),
            ..ReadOptions::default()
        };
        let frame = kiln_data::read_frame(&data("ecb_eurofxref-hist.csv"), &opts).unwrap();
        let split = HoldoutSpec { test_size: Size::Fraction(0.2), validation_size: Some(Size::Fraction(0.1)), gap: 0 };
        let task =
            TaskSpec::Forecast { recipe, split, missing: Default::default(), intervals: None, per_series: false };
        train("eurusd", task, Vec::new(), frame, Gates::Regression(GateSpec::default()))
    })
}

/// The ECB file's `currencies` columns (and `Date`) over their last `days` days, wide as the file is.
fn ecb_tail(currencies: &[String], days: usize) -> Frame {
    let columns = std::iter::once("Date".to_string()).chain(currencies.iter().cloned()).collect();
    let opts = ReadOptions { time_column: Some("Date".into()), columns: Some(columns), ..ReadOptions::default() };
    let wide = kiln_data::read_frame(&data("ecb_eurofxref-hist.csv"), &opts).unwrap();
    let n = wide.n_rows();
    wide.slice(n - days, n)
}

/// A panel forecast of `recipe` with the tests' split (the last 20% to test, 10% before it to validate),
/// `intervals` (levels, windows) and `model.per_series`.
fn panel_task(recipe: TimeSeriesRecipe, intervals: Option<(Vec<f64>, usize)>, per_series: bool) -> TaskSpec {
    TaskSpec::Forecast {
        recipe,
        split: HoldoutSpec { test_size: Size::Fraction(0.2), validation_size: Some(Size::Fraction(0.1)), gap: 0 },
        missing: Default::default(),
        intervals: intervals.map(|(levels, windows)| kiln_features::IntervalSpec { levels, windows }),
        per_series,
    }
}

/// A recipe over the ECB rates as a `currency` panel (time `Date`, target `rate` as log returns, one step a row),
/// with `extra`'s fields (the strategy, the features, a wide file's columns) added.
fn ecb_recipe(extra: serde_json::Value) -> TimeSeriesRecipe {
    let mut recipe = serde_json::json!({
        "time_column": "Date",
        "series_column": "currency",
        "target": "rate",
        "horizon": 1,
        "target_transform": "log_return"
    });
    recipe.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(recipe).unwrap()
}

/// Three ECB currencies (USD, JPY, GBP) over their last 1200 days as one long panel (a `currency` column), 1 to 3
/// days ahead by recursion with 80% and 95% conformal intervals: conf/tasks/ecb_panel_5d.yaml made small.
pub(crate) fn ecb_panel() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let recipe = ecb_recipe(serde_json::json!({
            "multi_step": {"steps": 3, "strategy": "recursive"},
            "features": [
                {"current": {"columns": ["rate"]}},
                {"lag": {"column": "rate", "lags": [1, 2, 3]}},
                {"log_return": {"column": "rate", "periods": [1, 5]}},
                {"rolling": {"column": "rate", "windows": [7], "stats": ["mean", "std"]}},
                {"calendar": {"parts": ["day_of_week"], "cyclical": true}}
            ]
        }));
        let currencies: Vec<String> = ["USD", "JPY", "GBP"].map(String::from).to_vec();
        let (frame, _) = ecb_tail(&currencies, 1200).melt(&currencies, "currency", "rate").unwrap();
        let task = panel_task(recipe, Some((vec![80.0, 95.0], 3)), false);
        train("ecb-panel", task, Vec::new(), frame, Gates::Regression(GateSpec::default()))
    })
}

/// The panel of [`ecb_panel`] 1 to 3 days ahead by one model per step (`strategy: direct`), with an EWM feature (which
/// a recursive recipe refuses) and no intervals.
pub(crate) fn ecb_direct() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let recipe = ecb_recipe(serde_json::json!({
            "multi_step": {"steps": 3, "strategy": "direct"},
            "features": [
                {"current": {"columns": ["rate"]}},
                {"lag": {"column": "rate", "lags": [1, 2, 3]}},
                {"ewm": {"column": "rate", "spans": [5.0]}}
            ]
        }));
        let task = panel_task(recipe, None, false);
        train("ecb-direct", task, Vec::new(), ecb_panel().frame.clone(), Gates::Regression(GateSpec::default()))
    })
}

/// The panel of [`ecb_panel`] with one model per series (`model.per_series`), 1 to 3 days ahead by recursion with
/// 80% and 95% intervals.
pub(crate) fn ecb_per_series() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let trained = ecb_panel();
        let bundle: kiln_models::Bundle<kiln_features::FittedPipeline> =
            kiln_models::read_bundle(&trained.bundle_dir).unwrap();
        let kiln_features::PipelineInput::Forecast(recipe) = bundle.pipeline.input else { unreachable!() };
        let task = panel_task(recipe, Some((vec![80.0, 95.0], 3)), true);
        train("ecb-per-series", task, Vec::new(), trained.frame.clone(), Gates::Regression(GateSpec::default()))
    })
}

/// The wide ECB file itself (USD and JPY columns, last 600 days) melted by the recipe into a `currency` panel,
/// 1 to 2 days ahead by recursion with 80% intervals: a bundle trained on a wide file, served as its long panel.
pub(crate) fn ecb_wide() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let recipe = ecb_recipe(serde_json::json!({
            "wide": {"columns": ["USD", "JPY"], "name": "currency"},
            "multi_step": {"steps": 2, "strategy": "recursive"},
            "features": [
                {"lag": {"column": "rate", "lags": [1, 2, 3]}},
                {"rolling": {"column": "rate", "windows": [5], "stats": ["mean"]}}
            ]
        }));
        let frame = ecb_tail(&["USD", "JPY"].map(String::from), 600);
        let task = panel_task(recipe, Some((vec![80.0], 2)), false);
        train("ecb-wide", task, Vec::new(), frame, Gates::Regression(GateSpec::default()))
    })
}

/// Telco churn with the preprocessing of conf/tasks/churn.yaml.
pub(crate) fn churn() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let frame = kiln_data::read_frame(&data("Telco-Customer-Churn_IBM.csv"), &ReadOptions::default()).unwrap();
        let columns: Vec<String> =
            frame.names().iter().filter(|c| *c != "customerID" && *c != "Churn").cloned().collect();
        let preprocess: Vec<PreprocessSpec> = serde_json::from_value(serde_json::json!([
            {"impute": {"columns": ["TotalCharges"], "strategy": "median"}},
            {"bin": {"column": "tenure", "edges": [0, 12, 24, 48, "inf"], "labels": ["New", "Medium", "Long", "Very_Long"],
                     "into": "tenure_group", "include_lowest": true}},
            {"ratio": {"numerator": "TotalCharges", "denominator": "MonthlyCharges", "into": "months_billed"}},
            {"one_hot": {"columns": "categorical", "unknown": "ignore", "drop": "if_binary"}}
        ]))
        .unwrap();
        let task = TaskSpec::Tabular {
            input: TabularInput { columns, id_column: Some("customerID".into()) },
            target: "Churn".into(),
            kind: TabularKind::Classification { positive: "Yes".into(), threshold: ThresholdRule::BestF1 },
            split: ShuffledSplit { test_size: Size::Fraction(0.2), validation_size: Some(Size::Fraction(0.1)), seed: 42 },
            missing: Default::default(),
        };
        train("churn", task, preprocess, frame, Gates::Classification(ClassificationGateSpec::default()))
    })
}

/// Telco churn on its numeric columns as they are (no preprocessing, `TotalCharges` blank as missing): a model whose
/// records go straight to a row.
pub(crate) fn churn_numeric() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let frame = kiln_data::read_frame(&data("Telco-Customer-Churn_IBM.csv"), &ReadOptions::default()).unwrap();
        let columns = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"].map(String::from).to_vec();
        let task = TaskSpec::Tabular {
            input: TabularInput { columns, id_column: Some("customerID".into()) },
            target: "Churn".into(),
            kind: TabularKind::Classification { positive: "Yes".into(), threshold: ThresholdRule::BestF1 },
            split: ShuffledSplit {
                test_size: Size::Fraction(0.2),
                validation_size: Some(Size::Fraction(0.1)),
                seed: 42,
            },
            missing: Default::default(),
        };
        train("churn-numeric", task, Vec::new(), frame, Gates::Classification(ClassificationGateSpec::default()))
    })
}

pub(crate) fn read(trained: &Trained) -> Bundle<FittedPipeline> {
    kiln_models::read_bundle(&trained.bundle_dir).unwrap()
}

/// A router serving `trained` as version 1 of `name` under the alias `production`.
pub(crate) fn state_for(trained: &Trained, name: &str, config: ServeConfig) -> AppState {
    let identity = ModelIdentity {
        reference: format!("models:/{name}@production"),
        name: Some(name.to_string()),
        version: Some(1),
        alias: Some("production".into()),
        run_id: Some(trained.run_id.clone()),
    };
    AppState::with_model(config, LoadedModel::new(read(trained), identity).unwrap())
}

/// A response: status, headers and the JSON body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// `(code, field)` of an error answer, checking its shape.
    pub(crate) fn error(&self) -> (String, Option<String>) {
        let e = &self.body["error"];
        let keys: Vec<&String> =
            e.as_object().unwrap_or_else(|| panic!("not an error: {}", self.body)).keys().collect();
        assert_eq!(keys, ["code", "message", "field"], "{}", self.body);
        assert!(!e["message"].as_str().unwrap().is_empty());
        (e["code"].as_str().unwrap().to_string(), e["field"].as_str().map(str::to_string))
    }
}

pub(crate) async fn call(state: &AppState, request: Request<Body>) -> Answer {
    let response = kiln_serve::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    Answer { status, headers, body }
}

/// Status, content type and text of a GET (for the routes that do not answer JSON).
pub(crate) async fn text(state: &AppState, path: &str) -> (u16, String, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = kiln_serve::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let ct = response.headers()["content-type"].to_str().unwrap().to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(bytes.to_vec()).unwrap())
}

pub(crate) async fn get(state: &AppState, path: &str) -> Answer {
    call(state, Request::get(path).body(Body::empty()).unwrap()).await
}

pub(crate) async fn post_raw(state: &AppState, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let mut request = Request::post(path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    call(state, request.body(Body::from(body)).unwrap()).await
}

pub(crate) async fn post(state: &AppState, path: &str, body: &Value) -> Answer {
    post_raw(state, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await
}

/// A JSON value of row `i` of a column: numbers (null for NaN), strings, ISO times.
pub(crate) fn cell(column: &Column, i: usize) -> Value {
    match column {
        Column::Numeric(v) => serde_json::Number::from_f64(v[i]).map_or(Value::Null, Value::Number),
        Column::Categorical(v) => v[i].clone().map_or(Value::Null, Value::String),
        Column::Timestamp(v) => Value::String(iso(v[i])),
    }
}

/// `YYYY-MM-DD` (the shipped series are daily or hourly on whole hours).
pub(crate) fn iso(ms: i64) -> String {
    let c = kiln_domain::civil_from_millis(ms);
    if ms % 86_400_000 == 0 {
        format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
    } else {
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
    }
}

/// Row `i` of `frame` as a JSON object of `columns`.
pub(crate) fn row(frame: &Frame, columns: &[String], i: usize) -> Value {
    let mut map = serde_json::Map::new();
    for name in columns {
        map.insert(name.clone(), cell(frame.column(name).unwrap(), i));
    }
    Value::Object(map)
}
