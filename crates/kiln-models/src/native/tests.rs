use std::path::Path;

use kiln_domain::{Estimator, Matrix, Predictor};
use serde_json::Value;

use super::{forest, lightgbm, xgboost};
use crate::tests::noise;
use crate::*;

/// Rows each model is probed with.
const PROBE_ROWS: usize = 100_000;
/// Every this many probe rows also goes through the single-row paths.
const ROW_STEP: usize = 97;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("f{j}")).collect()
}

/// 3000 training rows of 8 features meant to give every kind of split: NaNs in `f0` and `f1` (missing type NaN),
/// many exact zeros in `f2` (thresholds at ±kZeroThreshold), integers in `f3`, tiny values in `f4`; and a signal
/// `s` over them (a NaN `f0` counted as the value it hides, so that NaN tells nothing and LightGBM splits NaN from
/// every number, at a threshold of `inf`; a NaN `f1` as large as both ends of `f1`, so that splits below and above
/// its middle send NaN opposite ways and no number stands in for it).
fn training() -> (Matrix, Vec<f64>) {
    const N: usize = 3000;
    const COLS: usize = 8;
    let u = noise(N * COLS * 2, 11);
    let mut data = Vec::with_capacity(N * COLS);
    let mut signal = Vec::with_capacity(N);
    for i in 0..N {
        let r = |j: usize| u[(i * COLS + j) * 2];
        let pick = |j: usize| (u[(i * COLS + j) * 2 + 1] + 1.0) / 2.0;
        let f0 = if pick(0) < 0.1 { f64::NAN } else { r(0) };
        let f1 = if pick(1) < 0.2 { f64::NAN } else { r(1) * 3.0 };
        let f2 = if pick(2) < 0.3 { 0.0 } else { r(2) };
        let f3 = ((r(3) + 1.0) * 5.0).floor();
        let f4 = r(4) * 1e-3;
        let row = [f0, f1, f2, f3, f4, r(5), r(6), r(7)];
        signal.push(
            (3.0 * r(0)).sin()
                + if f1.is_nan() { 2.5 } else { f1.powi(2) / 3.0 }
                + if f2 == 0.0 { 0.8 } else { f2 }
                + f3 * 0.1
                + 200.0 * f4
                - row[5] * row[6],
        );
        data.extend(row);
    }
    (Matrix::new(names(COLS), data), signal)
}

/// Labels for `objective` from the signal: the signal plus noise, shifted away from 0 for `mape`, counts for
/// `poisson`, 0/1 for the classifiers.
fn labels(objective: &str, signal: &[f64]) -> Vec<f64> {
    let e = noise(signal.len(), 5);
    signal
        .iter()
        .zip(&e)
        .map(|(s, e)| match objective {
            "poisson" => ((s * 0.7).exp() * (1.0 + e)).floor().max(0.0),
            "binary" | "binary:logistic" => f64::from(s + e > 1.0),
            "mape" => s + 5.0 + e * 0.3,
            _ => s + e * 0.3,
        })
        .collect()
}

/// [`PROBE_ROWS`] rows of `thresholds.len()` features: ordinary values, NaN, ±0, each feature's own split
/// thresholds and their f64 neighbours, near-zeros at and around kZeroThreshold, small integers and, unless
/// `finite_f32`, infinities and values beyond f32 (else values near f32's limit).
fn probe(thresholds: &[Vec<f64>], finite_f32: bool, seed: u64) -> Matrix {
    let cols = thresholds.len();
    let u = noise(PROBE_ROWS * cols * 3, seed);
    let zero = f64::from(1e-35_f32);
    let data = (0..PROBE_ROWS * cols)
        .map(|k| {
            let (a, b, c) = ((u[3 * k] + 1.0) / 2.0, u[3 * k + 1], (u[3 * k + 2] + 1.0) / 2.0);
            let own = &thresholds[k % cols];
            let threshold = || own.get((c * own.len() as f64) as usize).copied().unwrap_or(b);
            let sign = if b < 0.0 { -1.0 } else { 1.0 };
            match a {
                a if a < 0.30 => b * 3.0,
                a if a < 0.40 => f64::NAN,
                a if a < 0.46 => 0.0,
                a if a < 0.49 => -0.0,
                a if a < 0.70 => threshold(),
                a if a < 0.78 && b < 0.0 => threshold().next_down(),
                a if a < 0.78 => threshold().next_up(),
                a if a < 0.82 && finite_f32 => sign * 3e38,
                a if a < 0.82 => [f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300][(c * 4.0) as usize],
                a if a < 0.92 => {
                    sign * [zero, zero.next_up(), zero.next_down(), 1e-36, 1e-35, 1e-300][(c * 6.0) as usize]
                }
                _ => (c * 12.0).floor() - 1.0,
            }
        })
        .collect();
    Matrix::new(names(cols), data)
}

fn assert_same_bits(native: &[f64], library: &[f64], what: &str) {
    assert_eq!(native.len(), library.len(), "{what}");
    if let Some(i) = native.iter().zip(library).position(|(a, b)| a.to_bits() != b.to_bits()) {
        panic!("{what}: row {i}: native {:?}, library {:?}", native[i], library[i]);
    }
}

/// Native LightGBM equals LightGBM's own predictions bit for bit: batch, raw and single rows, on `x` and on `x`
/// without NaN and near-zero values (whose blocks and rows take the native walk's one-comparison path).
fn check_lightgbm(model: &LightGbmModel, x: &Matrix, what: &str) {
    check_lightgbm_rows(model, x, what);
    let zero = f64::from(1e-35_f32);
    let complete = x.data.iter().map(|&v| if v.is_nan() || v.abs() <= zero { 1.0 } else { v }).collect();
    let complete = Matrix::new(x.names.clone(), complete);
    check_lightgbm_rows(model, &complete, &format!("{what} (no missing values)"));
    // blocks that mix rows with and without missing values (grouped apart, each walk on its own lanes): every
    // third row of `x`, the others complete
    let width = x.n_cols();
    let mixed = (0..x.n_rows)
        .flat_map(|i| if i % 3 == 0 { x.row(i) } else { complete.row(i) }.iter().copied())
        .collect::<Vec<f64>>();
    debug_assert_eq!(mixed.len(), x.n_rows * width);
    check_lightgbm_rows(model, &Matrix::new(x.names.clone(), mixed), &format!("{what} (mixed blocks)"));
    // every complete row alone (the walk by depth) equals the batch (the walk in blocks), which equals LightGBM
    let batch = model.predict(&complete).unwrap();
    let single: Vec<f64> = (0..complete.n_rows).map(|i| model.predict_row(complete.row(i)).unwrap()).collect();
    assert_same_bits(&single, &batch, &format!("{what} (every complete row alone)"));
}

fn check_lightgbm_rows(model: &LightGbmModel, x: &Matrix, what: &str) {
    assert!(model.is_native(), "{what}: the model fell back to LightGBM");
    assert_same_bits(&model.predict(x).unwrap(), &model.predict_library(x).unwrap(), what);
    assert_same_bits(&model.predict_raw(x).unwrap(), &model.predict_raw_library(x).unwrap(), &format!("{what} (raw)"));
    let rows: Vec<usize> = (0..x.n_rows).step_by(ROW_STEP).collect();
    let native: Vec<f64> = rows.iter().map(|&i| model.predict_row(x.row(i)).unwrap()).collect();
    let library: Vec<f64> = rows.iter().map(|&i| model.predict_row_library(x.row(i)).unwrap()).collect();
    assert_same_bits(&native, &library, &format!("{what} (single rows)"));
}

fn lightgbm_probe(model: &LightGbmModel, finite_f32: bool) -> Matrix {
    let forest = lightgbm::Forest::parse(&model.to_model_string().unwrap()).unwrap();
    let mut x = probe(&forest.thresholds(), finite_f32, 23);
    x.names = model.feature_names().to_vec();
    x
}

/// Checks each objective's model on the probe rows; returns how many have splits of infinite threshold decided while
/// widening (cuts).
fn check_lightgbm_objectives(objectives: &[&str]) -> usize {
    let (x, signal) = training();
    let mut with_cuts = 0;
    for objective in objectives {
        let yaml = format!("{{objective: {objective}, num_iterations: 60, min_data_in_leaf: 5}}");
        let params: LightGbmParams = serde_yaml::from_str(&yaml).unwrap();
        let model = params.check().unwrap().fit(&x, &labels(objective, &signal), None).unwrap();
        let probe = lightgbm_probe(&model, false);
        // every row walks with one comparison a split once widened: features whose splits' missing rules disagree
        // get a column per rule (these models have such features, so the probe exercises them), and no widened
        // value is one the missing rules decide
        let forest = lightgbm::Forest::parse(&model.to_model_string().unwrap()).unwrap();
        assert!(forest.has_rule_columns(), "{objective}: no feature has a column per missing rule");
        // and single rows walk the compact layout
        assert!(forest.has_compact(), "{objective}: no compact layout for single rows");
        with_cuts += usize::from(forest.has_cuts());
        for i in 0..probe.n_rows {
            let widened = forest.widened(probe.row(i)).unwrap();
            assert!(
                widened.iter().all(|v| v.abs() > 1e-35_f32 as f64 || *v == 0.0),
                "{objective}: row {i} {widened:?}"
            );
        }
        check_lightgbm(&model, &probe, objective);
    }
    with_cuts
}

#[test]
fn lightgbm_regression_objectives_equal_lightgbm_bit_for_bit() {
    let with_cuts = check_lightgbm_objectives(&["regression", "regression_l1", "huber", "fair"]);
    // the probe then holds `inf` and its neighbours, NaN and near-zeros for a split of NaN against every number
    assert!(with_cuts > 0, "no model split NaN from every number: the cuts go untested");
}

#[test]
fn lightgbm_quantile_mape_poisson_binary_equal_lightgbm_bit_for_bit() {
    check_lightgbm_objectives(&["quantile", "mape", "poisson", "binary"]);
}

#[test]
fn lightgbm_early_stopped_model_uses_the_kept_trees() {
    let (x, signal) = training();
    let y = labels("regression", &signal);
    let (train, valid) = (x.rows(0, 2000), x.rows(2000, x.n_rows));
    let params: LightGbmParams =
        serde_yaml::from_str("{num_iterations: 400, learning_rate: 0.3, early_stopping_rounds: 5}").unwrap();
    let model = params.check().unwrap().fit(&train, &y[..2000], Some((&valid, &y[2000..]))).unwrap();
    assert!(model.best_iteration() < 400, "early stopping never stopped");
    check_lightgbm(&model, &lightgbm_probe(&model, false), "early stopped");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src/native/fixtures").join(name),
    )
    .unwrap()
}

/// The rows of a `make_fixtures.py` CSV and Python's raw and transformed predictions for them.
fn fixture_rows(name: &str) -> (Matrix, Vec<f64>, Vec<f64>) {
    let text = fixture(name);
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    let n = header.len() - 2;
    let (mut data, mut raw, mut pred) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines {
        let v: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        data.extend(&v[..n]);
        raw.push(v[n]);
        pred.push(v[n + 1]);
    }
    (Matrix::new(header[..n].to_vec(), data), raw, pred)
}

/// Python's LightGBM models with categorical splits (unseen, negative, fractional and huge categories) and with
/// missing type Zero: native equals Python's predictions, and kiln's LightGBM, bit for bit.
#[test]
fn python_lightgbm_fixtures_are_reproduced_bit_for_bit() {
    for name in ["categorical", "zero_missing"] {
        let model = LightGbmModel::from_model_string(&fixture(&format!("{name}.lgb"))).unwrap();
        let (x, raw, pred) = fixture_rows(&format!("{name}_rows.csv"));
        assert!(model.is_native(), "{name}");
        assert_same_bits(&model.predict_raw(&x).unwrap(), &raw, &format!("{name} raw vs Python"));
        assert_same_bits(&model.predict(&x).unwrap(), &pred, &format!("{name} vs Python"));
        let rows: Vec<f64> = (0..x.n_rows).map(|i| model.predict_row(x.row(i)).unwrap()).collect();
        assert_same_bits(&rows, &pred, &format!("{name} single rows vs Python"));
        check_lightgbm(&model, &lightgbm_probe(&model, false), name);
    }
}

#[test]
fn lightgbm_models_native_evaluation_cannot_match_fall_back() {
    let text = fixture("zero_missing.lgb");
    assert!(lightgbm::Forest::parse(&text).is_some());
    let linear = text.replacen("is_linear=0", "is_linear=1", 1);
    assert!(lightgbm::Forest::parse(&linear).is_none(), "linear trees");
    let tweedie = text.replacen("objective=binary sigmoid:1", "objective=tweedie tweedie_variance_power:1.5", 1);
    assert!(lightgbm::Forest::parse(&tweedie).is_none(), "an objective kiln does not train");
    let sqrt = fixture("categorical.lgb").replacen("objective=regression", "objective=regression sqrt", 1);
    assert!(lightgbm::Forest::parse(&sqrt).is_none(), "reg_sqrt");
    let rf = text.replacen("feature_names=", "average_output\nfeature_names=", 1);
    assert!(lightgbm::Forest::parse(&rf).is_none(), "a random forest");
    let cycle = text.replacen("left_child=1 ", "left_child=0 ", 1);
    assert_ne!(cycle, text);
    assert!(lightgbm::Forest::parse(&cycle).is_none(), "a node that is its own child");
    let truncated = &text[..text.find("end of trees").unwrap()];
    assert!(lightgbm::Forest::parse(truncated).is_none(), "a truncated model");

    // such a model still predicts, through LightGBM
    let model = LightGbmModel::from_model_string(&tweedie).unwrap();
    assert!(!model.is_native());
    let (x, ..) = fixture_rows("zero_missing_rows.csv");
    assert_same_bits(&model.predict(&x).unwrap(), &model.predict_library(&x).unwrap(), "fallback");
    assert_eq!(model.predict_row(x.row(0)).unwrap(), model.predict_row_library(x.row(0)).unwrap());
    // and kiln predict / kiln serve say so
    let note = crate::FittedModel::new(model).native_note().unwrap();
    assert!(note.starts_with("note: this lightgbm model holds what kiln's native tree evaluation"), "{note}");
    let native = LightGbmModel::from_model_string(&text).unwrap();
    assert_eq!(crate::FittedModel::new(native).native_note(), None);
}

// ---- XGBoost ----

fn xgboost_probe(model: &XgBoostModel) -> Matrix {
    let json: Value = serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap();
    let forest = xgboost::Forest::from_json(&json).unwrap();
    probe(&forest.thresholds(), true, 29)
}

/// Native XGBoost equals XGBoost's own predictions bit for bit: batch, margins and single rows.
fn check_xgboost(model: &XgBoostModel, x: &Matrix, what: &str) {
    assert!(model.is_native(), "{what}: the model fell back to XGBoost");
    assert_same_bits(&model.predict(x).unwrap(), &model.predict_library(x).unwrap(), what);
    assert_same_bits(
        &model.predict_raw(x).unwrap(),
        &model.predict_raw_library(x).unwrap(),
        &format!("{what} (margin)"),
    );
    let rows: Vec<usize> = (0..x.n_rows).step_by(ROW_STEP * 4).collect();
    let native: Vec<f64> = rows.iter().map(|&i| model.predict_row(x.row(i)).unwrap()).collect();
    let library: Vec<f64> = rows.iter().map(|&i| model.predict_row_library(x.row(i)).unwrap()).collect();
    assert_same_bits(&native, &library, &format!("{what} (single rows)"));
}

#[test]
fn xgboost_objectives_equal_xgboost_bit_for_bit() {
    let (x, signal) = training();
    for (objective, extra) in [
        ("reg:squarederror", ""),
        ("reg:squarederror", ", base_score: 1.7"),
        ("reg:pseudohubererror", ""),
        ("reg:absoluteerror", ""),
        ("binary:logistic", ""),
        ("binary:logistic", ", base_score: 0.3"),
    ] {
        let yaml = format!("{{objective: '{objective}', num_boost_round: 60, max_depth: 6{extra}}}");
        let params: XgBoostParams = serde_yaml::from_str(&yaml).unwrap();
        let model = params.check().unwrap().fit(&x, &labels(objective, &signal), None).unwrap();
        check_xgboost(&model, &xgboost_probe(&model), &format!("{objective}{extra}"));
    }
}

/// A model kiln wrote with XGBoost 1.6.2, before 3.2 (`kiln train` of `churn_xgboost.yaml` with 12 rounds of depth
/// 3, `fixtures/xgboost_1_6_2_churn.json`): its scalar `base_score` and missing `iteration_indptr` still load, and
/// the native trees predict what XGBoost 3.2 predicts for it, bit for bit.
#[test]
fn xgboost_models_written_by_1_6_2_still_load_and_evaluate() {
    let bytes = fixture("xgboost_1_6_2_churn.json");
    let json: Value = serde_json::from_str(&bytes).unwrap();
    assert_eq!(json["version"], serde_json::json!([1, 6, 2]));
    assert_eq!(json.pointer("/learner/learner_model_param/base_score").unwrap(), "5E-1");
    let model = XgBoostModel::from_json_bytes(bytes.as_bytes()).unwrap();
    assert_eq!((model.num_trees(), model.feature_names().len()), (12, 45));
    let mut probe = xgboost_probe(&model);
    probe.names = model.feature_names().to_vec();
    check_xgboost(&model, &probe, "a model of XGBoost 1.6.2");
}

#[test]
fn xgboost_refuses_what_xgboost_refuses_and_falls_back_on_what_it_cannot_match() {
    let (x, signal) = training();
    let params: XgBoostParams = serde_yaml::from_str("{num_boost_round: 5}").unwrap();
    let model = params.check().unwrap().fit(&x, &labels("regression", &signal), None).unwrap();
    let mut row = x.row(0).to_vec();
    row[3] = f64::INFINITY;
    let native = model.predict_row(&row).unwrap_err().to_string();
    assert_eq!(native, model.predict_row_library(&row).unwrap_err().to_string());
    let batch = Matrix::new(x.names.clone(), [x.row(1), &row].concat());
    assert_eq!(model.predict(&batch).unwrap_err().to_string(), model.predict_library(&batch).unwrap_err().to_string());

    let json: Value = serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap();
    assert!(xgboost::Forest::from_json(&json).is_some());
    let edited = |pointer: &str, value: Value| {
        let mut j = json.clone();
        *j.pointer_mut(pointer).unwrap() = value;
        xgboost::Forest::from_json(&j)
    };
    let tree = "/learner/gradient_booster/model/trees/0";
    let n = json.pointer(&format!("{tree}/split_type")).unwrap().as_array().unwrap().len();
    let mut types = vec![Value::from(0); n];
    types[0] = Value::from(1);
    assert!(edited(&format!("{tree}/split_type"), Value::from(types)).is_none(), "a categorical split");
    assert!(
        edited("/learner/objective/name", Value::from("count:poisson")).is_none(),
        "an objective kiln does not train"
    );
    assert!(edited(&format!("{tree}/left_children/0"), Value::from(0)).is_none(), "a node that is its own child");
}

// ---- smartcore random forests ----

/// `x` with every NaN and infinity replaced by a finite value (smartcore models take no other): NaN by `f64::MAX`,
/// infinities by `±f64::MAX`.
fn finite(x: &Matrix) -> Matrix {
    let data = x.data.iter().map(|&v| if v.is_nan() { f64::MAX } else { v.clamp(f64::MIN, f64::MAX) }).collect();
    Matrix::new(x.names.clone(), data)
}

/// [`training`] with its NaNs as 0.
fn finite_training() -> (Matrix, Vec<f64>) {
    let (x, signal) = training();
    let data = x.data.iter().map(|&v| if v.is_nan() { 0.0 } else { v }).collect();
    (Matrix::new(x.names, data), signal)
}

fn forest_probe(model: &SmartcoreModel) -> Matrix {
    let native = forest::Forest::from_smartcore(model.forest().unwrap(), model.feature_names().len()).unwrap();
    finite(&probe(&native.thresholds(), false, 31))
}

/// Native forests equal smartcore's own predictions bit for bit: batch and single rows.
fn check_forest(model: &SmartcoreModel, x: &Matrix, what: &str) {
    assert!(model.is_native(), "{what}: the model fell back to smartcore");
    assert_same_bits(&model.predict(x).unwrap(), &model.predict_library(x).unwrap(), what);
    let rows: Vec<usize> = (0..x.n_rows).step_by(ROW_STEP).collect();
    let native: Vec<f64> = rows.iter().map(|&i| model.predict_row(x.row(i)).unwrap()).collect();
    let library: Vec<f64> = rows.iter().flat_map(|&i| model.predict_library(&x.rows(i, i + 1)).unwrap()).collect();
    assert_same_bits(&native, &library, &format!("{what} (single rows)"));
}

#[test]
fn random_forests_equal_smartcore_bit_for_bit() {
    let (x, signal) = finite_training();
    for (classifier, max_depth) in [(false, ""), (false, ", max_depth: 6"), (true, ""), (true, ", max_depth: 8")] {
        let yaml = format!("{{n_trees: 50{max_depth}}}");
        let params: RandomForestParams = serde_yaml::from_str(&yaml).unwrap();
        let y = labels(if classifier { "binary" } else { "regression" }, &signal);
        let model = params.check(classifier).unwrap().fit(&x, &y, None).unwrap();
        let what = format!("{} {yaml}", model.kind());
        let probe = forest_probe(&model);
        check_forest(&model, &probe, &what);
        // the model as a bundle holds it, kiln's JSON written and read back: still native, the same bits
        let loaded = SmartcoreModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
        assert!(loaded.is_native(), "{what}: the loaded model fell back to smartcore");
        let predictions = model.predict(&probe).unwrap();
        assert_same_bits(&loaded.predict(&probe).unwrap(), &predictions, &format!("{what} (loaded)"));
        let rows: Vec<f64> =
            (0..probe.n_rows).step_by(ROW_STEP).map(|i| loaded.predict_row(probe.row(i)).unwrap()).collect();
        let expected: Vec<f64> = predictions.iter().step_by(ROW_STEP).copied().collect();
        assert_same_bits(&rows, &expected, &format!("{what} (loaded, single rows)"));
        assert_eq!(crate::FittedModel::new(loaded).native_note(), None);
    }
}

/// A `min_samples_split` above the row count gives trees that are a single leaf (a root without splits): native,
/// and smartcore's value.
#[test]
fn forests_of_single_leaves_equal_smartcore() {
    let (x, signal) = finite_training();
    let params: RandomForestParams = serde_yaml::from_str("{n_trees: 9, min_samples_split: 100000}").unwrap();
    let model = params.check(false).unwrap().fit(&x, &labels("regression", &signal), None).unwrap();
    let native = forest::Forest::from_smartcore(model.forest().unwrap(), x.n_cols()).unwrap();
    assert!(native.thresholds().iter().all(Vec::is_empty), "a split");
    let probe = forest_probe(&model);
    check_forest(&model, &probe.rows(0, 2000), "constant labels");
    assert_eq!(model.predict_row(probe.row(0)).unwrap(), model.predict_library(&probe.rows(0, 1)).unwrap()[0]);
}

#[test]
fn forests_native_evaluation_cannot_read_fall_back_and_linear_models_have_no_trees() {
    let (x, signal) = finite_training();
    let params: RandomForestParams = serde_yaml::from_str("{n_trees: 3, max_depth: 2}").unwrap();
    let model = params.check(false).unwrap().fit(&x, &labels("regression", &signal), None).unwrap();
    let n = model.feature_names().len();
    assert!(forest::Forest::from_smartcore(model.forest().unwrap(), n).is_some());
    assert!(forest::Forest::from_smartcore(model.forest().unwrap(), n + 1).is_none(), "another feature count");
    assert_eq!(crate::Fitted::native_trees(&model), Some(true));

    let linear = LinearParams::default().check().unwrap().fit(&x, &labels("regression", &signal), None).unwrap();
    assert!(!linear.is_native());
    assert_eq!(crate::Fitted::native_trees(&linear), None);
}
