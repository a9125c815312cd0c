//! Bad input through the real `kiln` binary: each error names the place (file, line, column or key) and the exit
//! code is non-zero.

use std::path::Path;

use crate::{kiln, repo};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// An experiment file in `dir` that extends the shipped base and reads `data`.
fn experiment(dir: &Path, data: &str, extra: &str) -> String {
    let base = repo().join("conf/base/forecast.yaml");
    let model = repo().join("conf/base/lightgbm.yaml");
    let text = format!(
        "extends: [{}, {}]\nname: bad\ndata: {{path: {data}, time_column: Date}}\ntask: {{kind: forecast, target: USD}}\n\
         features:\n  - lag: {{column: USD, lags: [1]}}\n{extra}",
        base.display(),
        model.display()
    );
    write(dir, "exp.yaml", &text)
}

#[test]
fn unknown_config_key_names_file_and_key_path() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "data/ecb_eurofxref-hist.csv", "model:\n  params:\n    learning_rat: 0.1\n");
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exp.yaml") && err.contains("model.params") && err.contains("learning_rat"), "{err}");
}

#[test]
fn wrong_type_names_file_and_key_path() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "data/ecb_eurofxref-hist.csv", "model:\n  params:\n    num_leaves: many\n");
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exp.yaml") && err.contains("model.params.num_leaves"), "{err}");
}

#[test]
fn missing_column_names_file_and_column() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(d.path(), "rates.csv", "Date,GBP\n2020-01-02,0.85\n2020-01-03,0.86\n");
    let exp = experiment(d.path(), &csv, "");
    let (code, err) =
        kiln(&["train", "--config", &exp, "--tracking-uri", &d.path().join("mlruns").display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rates.csv") && err.contains("USD"), "{err}");
}

#[test]
fn unparseable_date_names_file_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(d.path(), "rates.csv", "Date,USD\n2020-01-02,1.1\n2020-01-03,1.2\n2020-13-45,1.3\n");
    let exp = experiment(d.path(), &csv, "");
    let (code, err) =
        kiln(&["train", "--config", &exp, "--tracking-uri", &d.path().join("mlruns").display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rates.csv") && err.contains("line 4") && err.contains("Date") && err.contains("2020-13-45"),
        "{err}"
    );
}

#[test]
fn ragged_csv_row_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(d.path(), "rates.csv", "Date,USD\n2020-01-02,1.1\n2020-01-03,1.2,9\n2020-01-06,1.3\n");
    let exp = experiment(d.path(), &csv, "");
    let (code, err) =
        kiln(&["train", "--config", &exp, "--tracking-uri", &d.path().join("mlruns").display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rates.csv") && err.contains("line 3"), "{err}");
}

#[test]
fn bad_model_reference_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("p.csv").display().to_string();
    let (code, err) = kiln(&["predict", "--model", "models:/eurusd", "--input", "data/ETTh1.csv", "--output", &out]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("models:/eurusd"), "{err}");
}

/// A tabular churn experiment in `dir` with `extra` appended (later keys override).
fn churn_experiment(dir: &Path, extra: &str) -> String {
    let base = repo().join("conf/experiments/churn.yaml");
    write(dir, "churn.yaml", &format!("extends: {}\n{extra}", base.display()))
}

#[test]
fn classification_without_positive_class_names_the_key() {
    let d = tempfile::tempdir().unwrap();
    let base = repo().join("conf/base/classification.yaml");
    let lgb = repo().join("conf/base/lightgbm.yaml");
    let text = format!(
        "extends: [{}, {}]\nname: c\ndata: {{path: data/Telco-Customer-Churn_IBM.csv}}\ntask: {{target: Churn}}\n\
         features: __AUTO__\n",
        base.display(),
        lgb.display()
    );
    let exp = write(d.path(), "c.yaml", &text);
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("c.yaml") && err.contains("task.positive"), "{err}");
}

#[test]
fn out_of_range_hyperparameter_names_the_parameter_and_range() {
    let d = tempfile::tempdir().unwrap();
    let base = repo().join("conf/experiments/eurusd_xgboost.yaml");
    let exp = write(d.path(), "x.yaml", &format!("extends: {}\nmodel: {{params: {{eta: 0}}}}\n", base.display()));
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model.params.eta") && err.contains("eta"), "{err}");
}

#[test]
fn auto_features_on_a_forecast_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let base = repo().join("conf/experiments/eurusd.yaml");
    let exp = write(d.path(), "f.yaml", &format!("extends: {}\nfeatures: __AUTO__\n", base.display()));
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("f.yaml") && err.contains("'features'") && err.contains("tabular"), "{err}");
}

#[test]
fn unknown_preprocessing_field_names_the_step() {
    let d = tempfile::tempdir().unwrap();
    let exp = churn_experiment(d.path(), "preprocess:\n  - scale: {columns: [tenure], methd: standard}\n");
    let (code, err) = kiln(&["config", "show", &exp]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("churn.yaml") && err.contains("preprocess[0]") && err.contains("methd"), "{err}");
}

#[test]
fn a_feature_column_missing_from_the_data_is_named() {
    let d = tempfile::tempdir().unwrap();
    let exp = churn_experiment(d.path(), "features: [tenure, MonthlyCharge]\npreprocess: []\n");
    let store = d.path().join("mlruns").display().to_string();
    let (code, err) = kiln(&["train", "--config", &exp, "--tracking-uri", &store]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MonthlyCharge"), "{err}");
}

#[test]
fn serve_refuses_a_model_it_cannot_resolve_before_listening() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("mlruns").display().to_string();
    // a missing store is named, and not created
    let (code, err) = kiln(&["serve", "--model", "models:/nope@production", "--tracking-uri", &store, "--port", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&store) && err.contains("does not exist"), "{err}");
    assert!(!d.path().join("mlruns").exists());
    std::fs::create_dir(d.path().join("mlruns")).unwrap();
    let (code, err) = kiln(&["serve", "--model", "models:/nope@production", "--tracking-uri", &store, "--port", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope"), "{err}");
    let (code, err) = kiln(&["serve", "--model", "models:/nope@production", "--max-batch", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-batch"), "{err}");
}
