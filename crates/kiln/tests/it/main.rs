//! The facade on real models: a churn classifier and a EUR/USD forecaster, trained once per test binary on the
//! shipped data through `kiln_train::train` into a temporary folder store and registered there. `Predictor::predict`
//! must equal `kiln_score::score` on the same frame bit for bit, every kind of reference must load the same bundle,
//! `current_version` must follow an alias, and a bad reference must give an error naming it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::{Code, ErrorKind, Frame, Predictor, RowKeys, Task};
use kiln_data::ReadOptions;
use kiln_eval::{ClassificationGateSpec, GateSpec, HoldoutSpec, Size};
use kiln_features::{FittedPipeline, PreprocessSpec, SelectorSpec, TabularInput, TimeSeriesRecipe};
use kiln_models::{LgbObjective, LightGbmParams};
use kiln_registry::PromoteTarget;
use kiln_store::{LocalStore, PlotChartRenderer};
use kiln_train::{
    Gates, ModelSpec, Ports, Progress, RegisterSpec, ShuffledSplit, TabularKind, TaskSpec, ThresholdRule, TrainSpec,
};

/// A model trained and registered as version 1 of `name` with the alias `production`.
struct Trained {
    /// the folder store, as a tracking URI
    uri: String,
    run_id: String,
    /// the bundle folder in the run's artifacts
    bundle_dir: PathBuf,
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

fn train(name: &str, task: TaskSpec, preprocess: Vec<PreprocessSpec>, frame: &Frame, gates: Gates) -> Trained {
    let store_dir = tempfile::tempdir().unwrap();
    let root = store_dir.path().join("mlruns");
    let store = LocalStore::create(&root).unwrap();
    let charts = PlotChartRenderer::default();
    let clock = || 1_700_000_000_000_i64;
    let ports =
        Ports { tracker: &store, artifacts: &store, registry: &store, charts: &charts, clock: &clock, champion: None };
    let classifier = matches!(gates, Gates::Classification(_));
    let selection: Vec<SelectorSpec> = if classifier {
        serde_json::from_str(r#"[{"variance_threshold": {"threshold": 0.0}}]"#).unwrap()
    } else {
        Vec::new()
    };
    let spec = TrainSpec {
        experiment: name.to_string(),
        run_name: format!("{name}-facade-test"),
        task,
        preprocess,
        selection,
        model: lightgbm(if classifier { LgbObjective::Binary } else { LgbObjective::Regression }),
        gates,
        register: Some(RegisterSpec::new(name, "production")),
        tags: Vec::new(),
        input_params: Vec::new(),
        config_yaml: String::new(),
        data_sha256: "0".repeat(64),
        data_origin: String::new(),
        kiln_version: "test".to_string(),
        cv: None,
    };
    let outcome = kiln_train::train(&spec, frame, &ports, &Quiet).unwrap();
    assert!(outcome.registered.is_some(), "{name} was not registered: {:?}", outcome.gates.failures());
    let bundle_dir = store.artifact_dir(&outcome.run.run_id).unwrap().join("model");
    Trained { uri: root.display().to_string(), run_id: outcome.run.run_id.0.clone(), bundle_dir, _store: store_dir }
}

/// Telco churn with the preprocessing of conf/tasks/churn.yaml.
fn churn() -> &'static Trained {
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
        train("churn", task, preprocess, &frame, Gates::Classification(ClassificationGateSpec::default()))
    })
}

/// Next-day EUR/USD from the ECB rates, with the recipe of conf/tasks/eurusd.yaml.
fn eurusd() -> &'static Trained {
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
        train("eurusd", task, Vec::new(), &frame, Gates::Regression(GateSpec::default()))
    })
}

/// The reference path: the bundle read straight from its folder and `kiln_score::score` on `frame`.
fn reference_scores(trained: &Trained, frame: &Frame) -> kiln_score::Scored {
    let bundle = kiln_models::read_bundle::<FittedPipeline>(&trained.bundle_dir).unwrap();
    kiln_score::score(&bundle, frame, false).unwrap()
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn a_classifier_predicts_what_score_does_bit_for_bit() {
    let trained = churn();
    let predictor = Predictor::load_from("models:/churn@production", &trained.uri).unwrap();
    assert_eq!(predictor.task(), Task::Classification);
    let version = predictor.version().expect("a registered version");
    assert_eq!((version.name.as_str(), version.version), ("churn", 1));
    assert_eq!(version.aliases, ["production"]);
    // a folder store keeps the bundle as a logged model too, and the version points at it
    assert!(predictor.source().starts_with("models:/m-"), "{}", predictor.source());
    assert_eq!(predictor.label(), format!("models:/churn@production (run {})", trained.run_id));
    assert!(predictor.input_columns().contains(&"customerID".to_string()));
    assert_eq!(predictor.bundle().metadata.run_id.as_deref(), Some(trained.run_id.as_str()));

    let frame = kiln::read_frame(&data("Telco-Customer-Churn_IBM.csv"), &predictor.read_options()).unwrap();
    let predictions = predictor.predict(&frame).unwrap();
    let expected = reference_scores(trained, &frame);
    assert_eq!(predictions.len(), frame.n_rows());
    assert_eq!(bits(&predictions.values), bits(&expected.predictions));
    assert_eq!(predictions.classes, expected.classes);
    assert_eq!(predictions.keys, expected.keys);
    let RowKeys::Ids { column, values } = &predictions.keys else { panic!("a classifier's rows have ids") };
    assert_eq!((column.as_str(), values[0].as_str()), ("customerID", "7590-VHVEG"));
    let classes = predictions.classes.as_ref().unwrap();
    assert!(classes.iter().all(|c| c == "Yes" || c == "No"));
    assert!(predictions.values.iter().all(|p| (0.0..=1.0).contains(p)));

    // the columns kiln predict writes
    let out = predictions.to_frame().unwrap();
    assert_eq!(out.names(), ["customerID", "probability", "class"]);
    assert_eq!(out.n_rows(), frame.n_rows());
}

#[test]
fn a_forecast_predicts_what_score_does_and_every_reference_loads_the_same_bundle() {
    let trained = eurusd();
    let by_run = format!("runs:/{}/model", trained.run_id);
    let folder = trained.bundle_dir.display().to_string();
    let predictor = Predictor::load_from(&by_run, &trained.uri).unwrap();
    assert_eq!(predictor.task(), Task::Forecast);
    assert!(predictor.version().is_none(), "a runs:/ reference names no version");
    assert_eq!(predictor.source(), by_run);

    let frame = kiln::read_frame(&data("ecb_eurofxref-hist.csv"), &predictor.read_options()).unwrap();
    let predictions = predictor.predict(&frame).unwrap();
    let expected = reference_scores(trained, &frame);
    assert_eq!(bits(&predictions.values), bits(&expected.predictions));
    assert_eq!(predictions.keys, expected.keys);
    assert_eq!(predictions.classes, None);
    assert_eq!(predictions.warmup_dropped, expected.warmup_dropped);
    assert!(predictions.warmup_dropped > 0);
    assert_eq!(predictions.len() + predictions.warmup_dropped, frame.n_rows());
    assert_eq!(predictions.to_frame().unwrap().names(), ["Date", "target_time", "prediction"]);
    // the ECB series has weekdays only: each forecast is for the next weekday, which is the next row's date except
    // before a holiday (the target then names the holiday)
    let kiln::RowKeys::Times { values: origins, .. } = &predictions.keys else { panic!("a forecast has times") };
    let targets = predictions.target_times.as_ref().expect("a forecast bundle learns its step");
    assert_eq!(targets.len(), origins.len());
    let day = 86_400_000;
    let mut next_row = 0;
    for (i, (&t, &target)) in origins.iter().zip(targets).enumerate() {
        assert!(target == t + day || target == t + 3 * day, "row {i}: {t} -> {target}");
        if let Some(&next) = origins.get(i + 1) {
            assert!(target <= next, "row {i}");
            next_row += usize::from(target == next);
        }
    }
    assert!(next_row * 100 > 95 * origins.len(), "{next_row} of {}", origins.len());

    // the registry, a stage-less "latest", the version number and the folder itself: the same model
    for reference in ["models:/eurusd@production", "models:/eurusd/latest", "models:/eurusd/1", folder.as_str()] {
        let other = Predictor::load_from(reference, &trained.uri).unwrap();
        assert_eq!(bits(&other.predict(&frame).unwrap().values), bits(&predictions.values), "{reference}");
    }
    // a folder needs no store: Predictor::load ignores $MLFLOW_TRACKING_URI for it
    let in_place = Predictor::load(&folder).unwrap();
    assert_eq!((in_place.source(), in_place.version()), (folder.as_str(), None));
}

#[test]
fn load_bundle_names_the_version_and_current_version_follows_the_alias() {
    let trained = churn();
    let loaded = kiln::load_bundle("models:/churn/1", &trained.uri).unwrap();
    assert_eq!(loaded.version.as_ref().map(|v| v.version), Some(1));
    assert!(loaded.source.starts_with("models:/m-"), "{}", loaded.source);

    // a second model name, so that moving its alias cannot disturb the other tests
    let store = kiln::open_local_store(&trained.uri).unwrap();
    let run = kiln::RunId(trained.run_id.clone());
    for _ in 0..2 {
        kiln_registry::register(&store, "churn-moving", &run, "model", None).unwrap();
    }
    kiln_registry::promote(&store, "churn-moving", 1, PromoteTarget::Alias("live".into())).unwrap();
    let now = |reference: &str| kiln::current_version(reference, &trained.uri).unwrap().map(|v| v.version);
    assert_eq!(now("models:/churn-moving@live"), Some(1));
    kiln_registry::promote(&store, "churn-moving", 2, PromoteTarget::Alias("live".into())).unwrap();
    assert_eq!(now("models:/churn-moving@live"), Some(2));
    assert_eq!(now("models:/churn-moving/latest"), Some(2));
    // the two versions hold the same run's bundle: the same source, so a reload can tell nothing changed
    let v2 = kiln::load_bundle("models:/churn-moving@live", &trained.uri).unwrap();
    let v1 = kiln::load_bundle("models:/churn-moving/1", &trained.uri).unwrap();
    assert_eq!(v2.source, format!("runs:/{}/model", trained.run_id));
    assert_eq!(v2.source, v1.source);
    // references that do not move have no version, and are not looked up
    assert_eq!(now(&format!("runs:/{}/model", trained.run_id)), None);
    assert_eq!(kiln::current_version("/no/such/folder", "/no/such/store/either").unwrap(), None);
}

#[test]
fn a_bad_reference_is_an_error_naming_it() {
    let trained = churn();
    let err = |reference: &str| Predictor::load_from(reference, &trained.uri).unwrap_err();

    let e = err("models:/churn");
    assert_eq!(e.code(), Code::ModelRefInvalid);
    assert!(e.to_string().contains("'models:/churn'"), "{e}");

    let e = err("models:/churn@staging");
    assert_eq!(e.code().kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("'churn'") && e.to_string().contains("'staging'"), "{e}");

    let e = err("models:/no-such-model@production");
    assert_eq!(e.code().kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("no-such-model"), "{e}");

    let e = kiln::current_version("models:/churn/7", &trained.uri).unwrap_err();
    assert_eq!(e.code().kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("'churn'") && e.to_string().contains('7'), "{e}");

    let missing = trained.bundle_dir.join("no-such-bundle").display().to_string();
    let e = err(&missing);
    assert!(matches!(e, kiln::Error::Bundle { .. }), "{e:?}");
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the bundle error stays reachable");

    // a frame without the model's columns: the error names the column
    let predictor = Predictor::load_from("models:/churn@production", &trained.uri).unwrap();
    let frame = Frame::new(vec![("customerID".into(), kiln::Column::Categorical(vec![Some("a".into())]))]).unwrap();
    let e = predictor.predict(&frame).unwrap_err();
    assert_eq!(e.code().kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("gender") || e.to_string().contains("column"), "{e}");
}
