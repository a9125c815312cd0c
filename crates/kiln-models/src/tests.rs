use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use kiln_domain::{Code, Estimator, Matrix, Predictor};
use serde::{Deserialize, Serialize};

use crate::*;

pub(crate) const FEATURES: [&str; 6] = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"];

/// The first `n` rows of ETTh1 (hourly transformer data): the six load columns as features, oil temperature `OT`
/// as the target. Parsed by hand so the test needs no CSV crate.
pub(crate) fn etth1(n: usize) -> (Matrix, Vec<f64>) {
    let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data/ETTh1.csv");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]);
    let (mut data, mut y) = (Vec::new(), Vec::new());
    for line in lines.take(n) {
        let values: Vec<f64> = line.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        data.extend_from_slice(&values[..6]);
        y.push(values[6]);
    }
    (Matrix::new(FEATURES.iter().map(|s| s.to_string()).collect(), data), y)
}

fn params(yaml: &str) -> LightGbmParams {
    serde_yaml::from_str(yaml).unwrap()
}

fn fit(yaml: &str, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> LightGbmModel {
    params(yaml).check().unwrap().fit(x, y, valid).unwrap()
}

/// Deterministic noise in [-1, 1) (xorshift64*).
pub(crate) fn noise(n: usize, mut state: u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            r as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// Runs `script` with the project's Python (the reference tools live in `.venv`) and `args`; returns its stdout.
pub(crate) fn run_python(script: &str, args: &[&Path]) -> String {
    let python = format!(
        "{}/../../.venv/bin/python",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    );
    assert!(Path::new(&python).exists(), "{python} is missing: run `make venv` to install the Python reference tools");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of `x` as CSV without a header, every value written so that it parses back to the same f64.
pub(crate) fn write_rows(path: &Path, x: &Matrix) {
    let mut text = String::new();
    for i in 0..x.n_rows {
        let row: Vec<String> = x.row(i).iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// One f64 per line, as Python prints them with `repr`.
pub(crate) fn parse_floats(text: &str) -> Vec<f64> {
    text.split_whitespace().map(|v| v.parse().unwrap()).collect()
}

// ---- hyperparameters ----

#[test]
fn defaults_are_lightgbms() {
    let p = params("{}");
    assert_eq!(p, LightGbmParams::default());
    let checked = p.check().unwrap();
    assert_eq!(checked.metric(), LgbMetric::L2);
    let logged: BTreeMap<String, String> = checked.as_params().into_iter().collect();
    for (k, v) in [
        ("objective", "regression"),
        ("metric", "l2"),
        ("num_iterations", "100"),
        ("learning_rate", "0.1"),
        ("num_leaves", "31"),
        ("max_depth", "-1"),
        ("min_data_in_leaf", "20"),
        ("min_sum_hessian_in_leaf", "0.001"),
        ("feature_fraction", "1.0"),
        ("bagging_freq", "0"),
        ("early_stopping_rounds", "None"),
        ("seed", "42"),
        ("bagging_seed", "42"),
        ("feature_fraction_seed", "42"),
        ("data_random_seed", "42"),
        ("deterministic", "true"),
        ("force_row_wise", "true"),
        ("verbosity", "-1"),
    ] {
        assert_eq!(logged.get(k).map(String::as_str), Some(v), "{k}");
    }
    // left out, the threads are every core, logged as the number
    assert_eq!(logged["num_threads"], crate::default_threads().to_string());
    assert!(!logged.contains_key("alpha"), "alpha only matters for huber and quantile");
    let q = params("objective: quantile\nalpha: 0.1").check().unwrap();
    assert_eq!(q.metric(), LgbMetric::Quantile);
    assert!(q.as_params().contains(&("alpha".into(), "0.1".into())));
    assert_eq!(params("objective: l1\nmetric: mae").objective, LgbObjective::RegressionL1);
}

#[test]
fn kiln_gives_fewer_threads_only_where_it_chose_them() {
    let logged = |spec: &crate::ModelSpec| -> String {
        spec.params().into_iter().find(|(k, _)| k == "num_threads").map(|(_, v)| v).unwrap()
    };
    let chosen = crate::ModelSpec::new(params("early_stopping_rounds: 5").check().unwrap());
    assert_eq!(logged(&chosen), crate::default_threads().to_string());
    let fold = chosen.with_threads(1);
    assert_eq!(logged(&fold), "1");
    // the selectors' fits without early stopping keep the count the fold was given
    assert_eq!(logged(&fold.without_early_stopping().unwrap()), "1");
    let fixed = crate::ModelSpec::new(params("num_threads: 3").check().unwrap());
    assert_eq!(logged(&fixed.with_threads(1)), "3");
}

#[test]
fn bad_params_name_the_parameter_value_and_range() {
    for (yaml, expect) in [
        ("learning_rate: 0", "model.params.learning_rate = 0: must be > 0"),
        ("learning_rate: .nan", "model.params.learning_rate = NaN: must be > 0"),
        ("num_iterations: 0", "model.params.num_iterations = 0: must be >= 1"),
        ("num_leaves: 1", "model.params.num_leaves = 1: must be in 2..=131072"),
        ("num_leaves: 200000", "model.params.num_leaves = 200000: must be in 2..=131072"),
        ("max_depth: 0", "model.params.max_depth = 0: must be -1 (no limit) or >= 1"),
        ("feature_fraction: 1.5", "model.params.feature_fraction = 1.5: must be in (0, 1]"),
        ("bagging_fraction: 0", "model.params.bagging_fraction = 0: must be in (0, 1]"),
        ("bagging_fraction: 0.8", "model.params.bagging_freq = 0: must be >= 1 when bagging_fraction is 0.8"),
        ("lambda_l2: -1", "model.params.lambda_l2 = -1: must be >= 0"),
        ("min_sum_hessian_in_leaf: -0.5", "model.params.min_sum_hessian_in_leaf = -0.5: must be >= 0"),
        ("early_stopping_rounds: 0", "model.params.early_stopping_rounds = 0: must be >= 1"),
        ("metric: auc", "model.params.metric = auc: needs objective binary, not regression"),
        ("objective: quantile\nalpha: 1.5", "model.params.alpha = 1.5: must be in (0, 1) for objective quantile"),
        ("scale_pos_weight: 3", "model.params.scale_pos_weight = 3: only applies to objective binary"),
        ("objective: binary\nis_unbalance: true\nscale_pos_weight: 2", "cannot be combined with is_unbalance"),
        ("seed: 3000000000", "model.params.seed = 3000000000: must be <= 2147483647"),
        ("num_threads: 0", "model.params.num_threads = 0: must be >= 1"),
    ] {
        let err = params(yaml).check().unwrap_err();
        assert_eq!(err.code(), Code::ModelParams, "{yaml}");
        assert!(err.to_string().contains(expect), "{yaml}: got '{err}', want '{expect}'");
    }
    // unknown keys are refused by the config parser, with the key's name
    let err = serde_yaml::from_str::<LightGbmParams>("max_bin: 63").unwrap_err().to_string();
    assert!(err.contains("max_bin"), "{err}");
}

// ---- fitting and predicting ----

#[test]
fn fit_is_deterministic_and_beats_the_mean() {
    let (x, y) = etth1(2000);
    let yaml = "num_iterations: 60\nfeature_fraction: 0.8\nbagging_fraction: 0.7\nbagging_freq: 1";
    let a = fit(yaml, &x, &y, None);
    let b = fit(yaml, &x, &y, None);
    let text = a.to_model_string().unwrap();
    assert_eq!(text, b.to_model_string().unwrap(), "two fits with the same seed differ");
    assert!(text.contains("feature_names=HUFL HULL MUFL MULL LUFL LULL"));
    assert!(text.contains("[objective: regression]") && text.contains("[bagging_seed: 42]"), "params reach LightGBM");
    assert_eq!((a.num_trees(), a.best_iteration()), (60, 60));
    assert_eq!(a.feature_names(), FEATURES);

    let other_seed = fit(&format!("{yaml}\nseed: 7"), &x, &y, None);
    assert_ne!(text, other_seed.to_model_string().unwrap(), "the seed must drive bagging");

    let pred = a.predict(&x).unwrap();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let sse: f64 = pred.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum();
    let sst: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
    // the loads explain most of the oil temperature (in-sample R^2 is about 0.79 with these settings)
    assert!(sse < 0.5 * sst, "in-sample R^2 {} is too low", 1.0 - sse / sst);

    let importance = a.feature_importance().unwrap();
    assert_eq!(importance.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), FEATURES);
    assert!(importance.iter().all(|(_, gain, split)| *gain >= 0.0 && *split >= 0.0));
    let splits: f64 = importance.iter().map(|(_, _, s)| s).sum();
    assert!(splits > 60.0, "every tree splits at least once: {splits}");
}

#[test]
fn predict_row_equals_batch_predict_exactly() {
    let (x, y) = etth1(1500);
    let model = fit("num_iterations: 40", &x, &y, None);
    let mut test = x.rows(1000, 1500);
    test.data[3] = f64::NAN; // a missing value takes LightGBM's default direction in both paths
    let batch = model.predict(&test).unwrap();
    for (i, expected) in batch.iter().enumerate() {
        let one = model.predict_row(test.row(i)).unwrap();
        assert_eq!(one.to_bits(), expected.to_bits(), "row {i}");
        let single = model.predict(&test.rows(i, i + 1)).unwrap();
        assert_eq!(single[0].to_bits(), expected.to_bits(), "row {i} as a batch of one");
    }
    assert!(model.predict(&test.rows(0, 0)).unwrap().is_empty());
}

#[test]
fn model_text_round_trips_to_identical_predictions() {
    let (x, y) = etth1(1200);
    let model = fit("num_iterations: 30\nobjective: huber\nalpha: 2.0", &x, &y, None);
    let text = model.to_model_string().unwrap();
    let back = LightGbmModel::from_model_string(&text).unwrap();
    assert_eq!(back.feature_names(), FEATURES);
    assert_eq!(back.num_trees(), 30);
    assert_eq!(back.to_model_string().unwrap(), text);
    let (a, b) = (model.predict(&x).unwrap(), back.predict(&x).unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));

    for bad in ["", "hello", "tree\nversion=v4\n", "a\0b"] {
        let err = LightGbmModel::from_model_string(bad).unwrap_err();
        assert_eq!(err.code(), Code::BundleFormat, "{bad:?}: {err}");
    }
}

#[test]
fn early_stopping_stops_on_a_noisy_target() {
    let (x, _) = etth1(3000);
    let y = noise(3000, 0x9e37_79b9_7f4a_7c15);
    let (train, valid) = (x.rows(0, 2400), x.rows(2400, 3000));
    let yaml = "num_iterations: 500\nlearning_rate: 0.1\nearly_stopping_rounds: 10";
    let model = fit(yaml, &train, &y[..2400], Some((&valid, &y[2400..])));
    assert!(model.best_iteration() < 100, "stopped at {} of 500 on pure noise", model.best_iteration());
    assert_eq!(model.num_trees(), model.best_iteration(), "rounds after the best one are dropped");

    // the validation metric at the kept round is the best one: one round more or less is not better
    let l2 = |m: &LightGbmModel| {
        let p = m.predict(&valid).unwrap();
        p.iter().zip(&y[2400..]).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / p.len() as f64
    };
    let kept = l2(&model);
    let n = model.best_iteration();
    let longer = fit(&format!("num_iterations: {}", n + 5), &train, &y[..2400], None);
    assert!(kept <= l2(&longer), "more rounds were better on the validation set");

    // with a validation set but no early stopping, every round is kept
    let full = fit("num_iterations: 50", &train, &y[..2400], Some((&valid, &y[2400..])));
    assert_eq!(full.num_trees(), 50);

    let err = params(yaml).check().unwrap().fit(&train, &y[..2400], None).unwrap_err();
    assert_eq!(err.code(), Code::ModelParams);
    assert!(err.to_string().contains("early_stopping_rounds = 10: needs a validation set"), "{err}");
}

/// Fits that reuse binned datasets through a [`FitCache`] (a tuning study's folds) grow the trees fits on fresh
/// datasets grow, whatever hyperparameters each fit has, early stopping included; and the cache keeps one set per
/// distinct rows, handing it back to the next fit on the same rows.
#[test]
fn fits_reusing_binned_datasets_equal_fits_on_fresh_ones() {
    let (x, y) = etth1(3000);
    let (train, valid) = (x.rows(0, 2400), x.rows(2400, 3000));
    let (other, other_valid) = (x.rows(600, 3000), x.rows(0, 600));
    let cache = FitCache::default();
    let grids = [
        "num_iterations: 60\nlearning_rate: 0.1\nnum_leaves: 7\nmin_data_in_leaf: 200\nearly_stopping_rounds: 5",
        "num_iterations: 80\nlearning_rate: 0.05\nnum_leaves: 31\nmin_data_in_leaf: 20\nfeature_fraction: 0.6",
        "num_iterations: 40\nlambda_l2: 3.0\nmin_data_in_leaf: 5\nbagging_fraction: 0.7\nbagging_freq: 1",
    ];
    for yaml in grids {
        let checked = params(yaml).check().unwrap();
        let fresh = checked.fit(&train, &y[..2400], Some((&valid, &y[2400..]))).unwrap();
        for _ in 0..2 {
            let reused = checked.fit_reusing(&train, &y[..2400], Some((&valid, &y[2400..])), Some(&cache)).unwrap();
            assert_eq!(reused.to_model_string().unwrap(), fresh.to_model_string().unwrap(), "{yaml}");
        }
        let other_valid = Some((&other_valid, &y[..600]));
        let other_fit = checked.fit_reusing(&other, &y[600..], other_valid, Some(&cache)).unwrap();
        assert_eq!(
            other_fit.to_model_string().unwrap(),
            checked.fit(&other, &y[600..], other_valid).unwrap().to_model_string().unwrap()
        );
    }
    assert_eq!(format!("{cache:?}"), "FitCache { sets: 2 }", "one set per distinct rows");
}

/// The mean squared error of `model` on `x`, against the labels as LightGBM stores them (f32).
fn mse_f32_labels(model: &LightGbmModel, x: &Matrix, y: &[f64]) -> f64 {
    let p = model.predict(x).unwrap();
    p.iter().zip(y).map(|(p, &t)| (p - f64::from(t as f32)).powi(2)).sum::<f64>() / p.len() as f64
}

pub(crate) fn assert_rel(got: f64, expected: f64, what: &str) {
    let rel = ((got - expected) / expected).abs();
    assert!(rel <= 1e-9, "{what}: {got} vs {expected} (relative difference {rel:e})");
}

#[test]
fn eval_curves_hold_lightgbms_metric_as_it_trains() {
    let (x, y) = etth1(3000);
    let (train, valid) = (x.rows(0, 2400), x.rows(2400, 3000));
    let (ty, vy) = (&y[..2400], &y[2400..]);

    // no early stopping: one value per round (at most 100 rounds: the training rows too), and the last ones are the
    // final model's l2 (the MSE)
    let model = fit("num_iterations: 40", &train, ty, Some((&valid, vy)));
    let curves = model.eval_curves();
    let shape: Vec<_> = curves.iter().map(|c| (c.data, c.metric.as_str(), c.values.len())).collect();
    assert_eq!(shape, [(EvalData::Train, "l2", 40), (EvalData::Valid, "l2", 40)]);
    assert_rel(curves[0].values[39], mse_f32_labels(&model, &train, ty), "training l2 after the last round");
    assert_rel(curves[1].values[39], mse_f32_labels(&model, &valid, vy), "validation l2 after the last round");
    assert!(curves[0].values[39] < 0.5 * curves[0].values[0], "the training loss falls: {:?}", curves[0].values);

    // early stopping on rmse: the curves run to the round that stopped the fit, the model ends at the best one
    let yaml = "num_iterations: 300\nlearning_rate: 0.05\nmetric: rmse\nearly_stopping_rounds: 5";
    let model = fit(yaml, &train, ty, Some((&valid, vy)));
    let best = model.best_iteration();
    assert!(best > 10 && best < 295, "stopped at {best}");
    let curves = model.eval_curves();
    let shape: Vec<_> = curves.iter().map(|c| (c.data, c.metric.as_str())).collect();
    assert_eq!(shape, [(EvalData::Train, "rmse"), (EvalData::Valid, "rmse")]);
    // the validation rows after every round run; the training rows after the first, every third (300 rounds: a
    // stride of 3) and the one that stopped the fit
    assert_eq!(curves[1].rounds, (0..best + 5).collect::<Vec<_>>());
    let due: Vec<usize> = (0..best + 5).filter(|&r| r == 0 || (r + 1) % 3 == 0 || r == best + 4).collect();
    assert_eq!((&curves[0].rounds, curves[0].values.len()), (&due, due.len()));
    let valid_curve = &curves[1].values;
    let kept = valid_curve[best - 1];
    assert_rel(kept, mse_f32_labels(&model, &valid, vy).sqrt(), "validation rmse at the best round");
    // the kept round improved on every earlier one, and none of the 5 after it improved on it
    assert!(valid_curve[..best - 1].iter().all(|&v| v > kept), "{valid_curve:?}");
    assert!(valid_curve[best..].iter().all(|&v| v >= kept), "{valid_curve:?}");

    // without a validation set only the training curve; a model read back from text has none
    let plain = fit("num_iterations: 15", &train, ty, None);
    assert_eq!(
        plain.eval_curves().iter().map(|c| (c.data, c.values.len())).collect::<Vec<_>>(),
        [(EvalData::Train, 15)]
    );
    let back = LightGbmModel::from_model_string(&plain.to_model_string().unwrap()).unwrap();
    assert!(back.eval_curves().is_empty());
}

#[test]
fn binary_objective_predicts_probabilities() {
    let (x, y) = etth1(2000);
    let mut sorted = y.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let labels: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v > median))).collect();
    let model = fit("objective: binary\nmetric: auc\nnum_iterations: 30", &x, &labels, None);
    let p = model.predict(&x).unwrap();
    assert!(p.iter().all(|&v| v > 0.0 && v < 1.0));
    let correct = p.iter().zip(&labels).filter(|(p, l)| (**p > 0.5) == (**l == 1.0)).count();
    assert!(correct as f64 > 0.8 * labels.len() as f64, "accuracy {correct}/2000");
    assert_eq!(model.predict_row(x.row(7)).unwrap().to_bits(), p[7].to_bits());

    let mut bad = labels.clone();
    bad[17] = 2.0;
    let err = params("objective: binary").check().unwrap().fit(&x, &bad, None).unwrap_err();
    assert_eq!(err.code(), Code::ModelTrain);
    assert!(err.to_string().contains("label at row 17 is 2"), "{err}");
}

#[test]
fn bad_data_and_inputs_are_named() {
    let (x, y) = etth1(300);
    let checked = params("num_iterations: 5").check().unwrap();
    let mut y_nan = y.clone();
    y_nan[4] = f64::NAN;
    let err = checked.fit(&x, &y_nan, None).unwrap_err();
    assert!(err.to_string().contains("training label at row 4 is NaN"), "{err}");
    let err = checked.fit(&x, &y[..10], None).unwrap_err();
    assert!(err.to_string().contains("300 rows but 10 labels"), "{err}");

    let mut spaced = x.clone();
    spaced.names[2] = "MU FL".into();
    let err = checked.fit(&spaced, &y, None).unwrap_err();
    assert!(err.to_string().contains("feature name 'MU FL'"), "{err}");
    let mut dup = x.clone();
    dup.names[1] = "HUFL".into();
    assert!(checked.fit(&dup, &y, None).unwrap_err().to_string().contains("'HUFL' appears twice"));

    let mut renamed = x.clone();
    renamed.names[5] = "other".into();
    let err = checked.fit(&x, &y, Some((&renamed, &y))).unwrap_err();
    assert!(err.to_string().contains("validation set's columns"), "{err}");

    let model = checked.fit(&x, &y, None).unwrap();
    let err = model.predict(&renamed).unwrap_err();
    assert_eq!(err.code(), Code::ModelPredict);
    assert!(err.to_string().contains("input column 5 is 'other', the model expects 'LULL'"), "{err}");
    let narrow = Matrix::new(vec!["HUFL".into()], vec![1.0, 2.0]);
    assert!(model.predict(&narrow).unwrap_err().to_string().contains("1 feature columns, the model was fitted on 6"));
    assert!(model.predict_row(&[1.0; 5]).unwrap_err().to_string().contains("5 feature columns"));
}

#[test]
fn a_fitted_model_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LightGbmModel>();
    assert_send_sync::<FittedModel>();

    let (x, y) = etth1(1000);
    let model = std::sync::Arc::new(fit("num_iterations: 20", &x, &y, None));
    let expected = model.predict(&x).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (model, x) = (model.clone(), x.clone());
            std::thread::spawn(move || {
                let rows: Vec<f64> =
                    (0..x.n_rows).map(|i| model.predict_row(x.row((i + t * 97) % x.n_rows)).unwrap()).collect();
                (t, rows, model.predict(&x).unwrap())
            })
        })
        .collect();
    for h in handles {
        let (t, rows, batch) = h.join().unwrap();
        assert_eq!(batch, expected);
        assert!((0..x.n_rows).all(|i| rows[i] == expected[(i + t * 97) % x.n_rows]));
    }
}

#[test]
fn contributions_sum_to_the_raw_score_and_match_python() {
    let (x, y) = etth1(2000);
    let model = fit("num_iterations: 50\nfeature_fraction: 0.8\nbagging_fraction: 0.7\nbagging_freq: 1", &x, &y, None);
    let mut test = x.rows(1500, 2000);
    test.data[2] = f64::NAN;
    let c = model.contributions(&test).unwrap();
    let mut names: Vec<&str> = FEATURES.to_vec();
    names.push("bias");
    assert_eq!((c.names.clone(), c.n_rows), (names.iter().map(|s| s.to_string()).collect(), 500));
    let raw = model.predict_raw(&test).unwrap();
    let pred = model.predict(&test).unwrap();
    assert!(raw.iter().zip(&pred).all(|(r, p)| r.to_bits() == p.to_bits()), "regression: raw score = prediction");
    let worst = (0..c.n_rows).map(|i| (c.row(i).iter().sum::<f64>() - raw[i]).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-9, "a row of contributions is {worst} away from the raw score");
    let one = model.contributions(&test.rows(7, 8)).unwrap();
    assert!(one.data.iter().zip(c.row(7)).all(|(a, b)| (a - b).abs() < 1e-12), "a single row through the fast path");
    assert_eq!(model.contributions(&test.rows(0, 0)).unwrap().n_rows, 0);

    let mut sorted = y.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let labels: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v > median))).collect();
    let clf = fit("objective: binary\nnum_iterations: 30", &x, &labels, None);
    let cc = clf.contributions(&test).unwrap();
    let raw = clf.predict_raw(&test).unwrap();
    let worst = (0..cc.n_rows).map(|i| (cc.row(i).iter().sum::<f64>() - raw[i]).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-9, "a row of contributions is {worst} away from the log-odds");
    let p = clf.predict(&test).unwrap();
    assert!(raw.iter().zip(&p).all(|(r, p)| (1.0 / (1.0 + (-r).exp()) - p).abs() < 1e-12));
    let clf_text = clf.to_model_string().unwrap();
    let fitted = FittedModel::new(clf);
    assert_eq!(fitted.contributions(&test).unwrap().unwrap().data, cc.data);
    assert_eq!(fitted.predict_raw(&test).unwrap().unwrap(), raw);

    // Python's LightGBM, from the same model text and the same f64 rows
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for (i, (text, contributions)) in
        [(model.to_model_string().unwrap(), model.contributions(&test).unwrap()), (clf_text, cc)]
            .into_iter()
            .enumerate()
    {
        let path = tmp.path().join(format!("model{i}.lgb"));
        fs::write(&path, text).unwrap();
        expected.push((path, contributions));
    }
    let rows = tmp.path().join("x.csv");
    write_rows(&rows, &test);
    let script = r#"
import sys
import numpy as np, lightgbm as lgb
x = np.loadtxt(sys.argv[1], delimiter=",", dtype=np.float64, ndmin=2)
for path in sys.argv[2:]:
    c = lgb.Booster(model_file=path).predict(x, pred_contrib=True)
    print(" ".join(repr(float(v)) for v in c.ravel()))
"#;
    let out = run_python(script, &[&rows, &expected[0].0, &expected[1].0]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, (path, ours)) in lines.iter().zip(&expected) {
        let python = parse_floats(line);
        assert_eq!(python.len(), ours.data.len());
        let diff = python.iter().zip(&ours.data).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-9, "{}: contributions differ from Python's pred_contrib by up to {diff}", path.display());
    }
}

// ---- bundles ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TestPipeline {
    pub(crate) columns: Vec<String>,
    pub(crate) scale: f64,
}

fn small_bundle() -> (Bundle<TestPipeline>, Matrix) {
    let (x, y) = etth1(800);
    let model = fit("num_iterations: 15", &x, &y, None);
    let metadata = BundleMetadata {
        kiln_version: KILN_VERSION.into(),
        model_kind: "lightgbm".into(),
        created_ms: 1_795_333_905_191,
        run_id: Some("440f7b8fcc914c7b82ca17ffae352fb9".into()),
        metrics: [("rmse".to_string(), 1.25), ("mase".to_string(), f64::NAN)].into_iter().collect(),
        params: [("num_iterations".to_string(), "15".to_string())].into_iter().collect(),
        data_sha256: "ab".repeat(32),
        feature_names: FEATURES.iter().map(|s| s.to_string()).collect(),
        target: "OT".into(),
        horizon: Some(1),
        files: BTreeMap::new(),
    };
    let pipeline = TestPipeline { columns: FEATURES.iter().map(|s| s.to_string()).collect(), scale: 0.1 + 0.2 };
    (
        Bundle {
            pipeline,
            model: FittedModel::new(model),
            step_models: Vec::new(),
            per_series: None,
            metadata,
            profile: None,
        },
        x,
    )
}

#[test]
fn a_bundle_carries_its_profile_checksummed_and_one_without_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let (mut bundle, _) = small_bundle();
    bundle.profile = Some(br#"{"version":1}"#.to_vec());
    let written = write_bundle(&dir, &bundle).unwrap();
    assert!(written.files.contains_key(crate::PROFILE), "{:?}", written.files.keys());
    let back: Bundle<TestPipeline> = read_bundle(&dir).unwrap();
    assert_eq!(back.profile.as_deref(), Some(&br#"{"version":1}"#[..]));
    fs::write(dir.join(crate::PROFILE), br#"{"version":2}"#).unwrap();
    let e = read_bundle::<TestPipeline>(&dir).unwrap_err().to_string();
    assert!(e.contains("kiln/profile.json") && e.contains("sha256"), "{e}");

    let old = tmp.path().join("old");
    bundle.profile = None;
    write_bundle(&old, &bundle).unwrap();
    assert!(read_bundle::<TestPipeline>(&old).unwrap().profile.is_none());
}

#[test]
fn bundle_round_trip_gives_identical_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/model");
    let (bundle, x) = small_bundle();
    let written = write_bundle(&dir, &bundle).unwrap();
    let names: Vec<&str> = written.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["MLmodel", "code/kiln_mlflow_loader.py", "kiln/pipeline.json", "model.lgb"]);
    let leftovers: Vec<_> = fs::read_dir(dir.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["model"], "no temporary folder is left behind");

    let back: Bundle<TestPipeline> = read_bundle(&dir).unwrap();
    assert_eq!(back.pipeline, bundle.pipeline);
    assert_eq!(back.metadata.files, written.files);
    assert_eq!(back.metadata.metrics["rmse"], 1.25);
    assert!(back.metadata.metrics["mase"].is_nan(), "NaN is stored as null and read back as NaN");
    assert_eq!(back.model.kind().as_str(), "lightgbm");
    let (a, b) = (bundle.model.predict(&x).unwrap(), back.model.predict(&x).unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert_eq!(back.model.predict_row(x.row(3)).unwrap().to_bits(), a[3].to_bits());
    // NaN != NaN, so the metadata is compared as the JSON it is stored as
    let verified = serde_json::to_string(&verify_bundle(&dir).unwrap()).unwrap();
    assert_eq!(verified, serde_json::to_string(&written).unwrap());

    let metadata_text = fs::read_to_string(dir.join("kiln/metadata.json")).unwrap();
    assert!(metadata_text.contains("\"mase\": null"), "{metadata_text}");
    let mlmodel = fs::read_to_string(dir.join("MLmodel")).unwrap();
    for line in [
        "loader_module: kiln_mlflow_loader",
        "code: code",
        "data: model.lgb",
        "lgb_version: 4.7.0",
        "model_class: lightgbm.basic.Booster",
        "utc_time_created: 2026-11-22 07:51:45.191000",
        "run_id: 440f7b8fcc914c7b82ca17ffae352fb9",
        "pipeline: kiln/pipeline.json",
    ] {
        assert!(mlmodel.contains(line), "MLmodel lacks '{line}':\n{mlmodel}");
    }

    // the same bundle written again is byte for byte the same
    let again = tmp.path().join("again");
    write_bundle(&again, &bundle).unwrap();
    for rel in ["MLmodel", "model.lgb", "kiln/pipeline.json", "kiln/metadata.json"] {
        assert_eq!(fs::read(dir.join(rel)).unwrap(), fs::read(again.join(rel)).unwrap(), "{rel}");
    }

    // an existing bundle is never overwritten; an empty folder is fine
    let err = write_bundle(&dir, &bundle).unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    write_bundle(&empty, &bundle).unwrap();
    verify_bundle(&empty).unwrap();
}

#[test]
fn signature_and_input_example_are_written_as_mlflow_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = small_bundle();
    let interface = ModelInterface {
        inputs: vec![ColSpec::new("date", "datetime"), ColSpec::new("OT", "double")],
        outputs: vec![ColSpec::new("prediction", "double")],
        example: vec![vec![serde_json::json!("2016-07-01T00:00:00"), serde_json::json!(30.5)]],
    };
    let dir = tmp.path().join("b");
    let written = write_bundle_with(&dir, &bundle, &interface).unwrap();
    assert!(
        written.files.contains_key("input_example.json") && written.files.contains_key("serving_input_example.json")
    );
    let mlmodel = fs::read_to_string(dir.join("MLmodel")).unwrap();
    for line in [
        r#"inputs: '[{"type":"datetime","name":"date","required":true},{"type":"double","name":"OT","required":true}]'"#,
        r#"outputs: '[{"type":"double","name":"prediction","required":true}]'"#,
        "artifact_path: input_example.json",
        "serving_input_path: serving_input_example.json",
        "pandas_orient: split",
    ] {
        assert!(mlmodel.contains(line), "MLmodel lacks '{line}':\n{mlmodel}");
    }
    let example: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("input_example.json")).unwrap()).unwrap();
    assert_eq!(example, serde_json::json!({"columns": ["date", "OT"], "data": [["2016-07-01T00:00:00", 30.5]]}));
    let serving: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("serving_input_example.json")).unwrap()).unwrap();
    assert_eq!(serving["dataframe_split"], example);
    read_bundle::<TestPipeline>(&dir).unwrap();
}

#[test]
fn bundles_with_the_native_pyfunc_loader_still_read() {
    // bundles written before kiln's loader named LightGBM's over the model file
    let tmp = tempfile::tempdir().unwrap();
    let dir = written_bundle(tmp.path());
    let mlmodel = fs::read_to_string(dir.join("MLmodel")).unwrap();
    let legacy = mlmodel
        .replace("loader_module: kiln_mlflow_loader", "loader_module: mlflow.lightgbm")
        .replace("    code: code\n", "    data: model.lgb\n");
    assert!(legacy.contains("loader_module: mlflow.lightgbm") && !legacy.contains("code: code"), "{legacy}");
    let meta_path = dir.join("kiln/metadata.json");
    let mut meta: BundleMetadata = serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    meta.files.insert("MLmodel".into(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(legacy.as_bytes())));
    fs::write(dir.join("MLmodel"), &legacy).unwrap();
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    read_bundle::<TestPipeline>(&dir).unwrap();

    // any other loader is refused by name
    let other = legacy.replace("loader_module: mlflow.lightgbm", "loader_module: somebody.else");
    meta.files.insert("MLmodel".into(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(other.as_bytes())));
    fs::write(dir.join("MLmodel"), &other).unwrap();
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let err = read_bundle::<TestPipeline>(&dir).unwrap_err();
    assert!(err.to_string().contains("flavors.python_function.loader_module: expected 'kiln_mlflow_loader'"), "{err}");
}

#[test]
fn write_bundle_refuses_metadata_that_contradicts_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut bundle, _) = small_bundle();
    bundle.metadata.feature_names.pop();
    let err = write_bundle(&tmp.path().join("b"), &bundle).unwrap_err();
    assert_eq!(err.code(), Code::BundleFormat);
    assert!(err.to_string().contains("kiln/metadata.json: feature_names"), "{err}");
    assert!(!tmp.path().join("b").exists());
}

fn written_bundle(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("bundle");
    write_bundle(&dir, &small_bundle().0).unwrap();
    dir
}

fn read_err(dir: &Path) -> BundleError {
    read_bundle::<TestPipeline>(dir).unwrap_err()
}

#[test]
fn tampering_is_caught_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();

    let dir = written_bundle(&tmp.path().join("a"));
    let model_path = dir.join("model.lgb");
    let mut bytes = fs::read(&model_path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
    fs::write(&model_path, bytes).unwrap();
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleChecksum);
    assert!(err.to_string().contains("file 'model.lgb' has sha256"), "{err}");
    assert_eq!(verify_bundle(&dir).unwrap_err().code(), Code::BundleChecksum);

    let dir = written_bundle(&tmp.path().join("b"));
    fs::remove_file(dir.join("kiln/pipeline.json")).unwrap();
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleChecksum);
    assert!(err.to_string().contains("file 'kiln/pipeline.json' is listed in kiln/metadata.json but missing"), "{err}");

    let dir = written_bundle(&tmp.path().join("c"));
    fs::write(dir.join("kiln/extra.json"), "{}").unwrap();
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleChecksum);
    assert!(err.to_string().contains("file 'kiln/extra.json' is not listed"), "{err}");

    // MLflow's client adds the registered name and version to a model it downloads by its models:/ URI
    let dir = written_bundle(&tmp.path().join("mlflow"));
    fs::write(dir.join("registered_model_meta"), "model_name: churn\nmodel_version: '1'\n").unwrap();
    let _: Bundle<TestPipeline> = read_bundle(&dir).unwrap();

    let dir = written_bundle(&tmp.path().join("d"));
    fs::remove_file(dir.join("kiln/metadata.json")).unwrap();
    let err = read_err(&dir);
    // a folder without kiln's metadata is not a bundle at all: a wrong path (invalid input, exit 2)
    assert_eq!(err.code(), Code::ModelRefInvalid);
    assert!(err.to_string().contains("not a kiln bundle (no kiln/metadata.json)"), "{err}");

    let err = read_err(&tmp.path().join("nope"));
    assert_eq!(err.code(), Code::NotFound);
}

/// Rewrites a file and its checksum, as a bundle written by a different (broken) writer would look.
fn replace_consistently(dir: &Path, rel: &str, content: &str) {
    fs::write(dir.join(rel), content).unwrap();
    let meta_path = dir.join("kiln/metadata.json");
    let mut meta: BundleMetadata = serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    meta.files.insert(rel.to_string(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes())));
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

#[test]
fn bad_content_names_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();

    let dir = written_bundle(&tmp.path().join("a"));
    let mlmodel = fs::read_to_string(dir.join("MLmodel")).unwrap();
    replace_consistently(
        &dir,
        "MLmodel",
        &mlmodel.replace("    data: model.lgb\n    lgb_version", "    data: m.txt\n    lgb_version"),
    );
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleFormat);
    assert!(err.to_string().contains("MLmodel: flavors.lightgbm.data: expected 'model.lgb', found 'm.txt'"), "{err}");

    let dir = written_bundle(&tmp.path().join("b"));
    replace_consistently(&dir, "kiln/pipeline.json", "{\"columns\": [\"a\"], \"scale\": \"high\"}");
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleFormat);
    assert!(err.to_string().contains("kiln/pipeline.json: scale: invalid type"), "{err}");

    let dir = written_bundle(&tmp.path().join("c"));
    replace_consistently(&dir, "model.lgb", "tree\nversion=v4\nfeature_names=a b\n");
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleFormat, "{err}");

    let dir = written_bundle(&tmp.path().join("d"));
    let meta_path = dir.join("kiln/metadata.json");
    let text = fs::read_to_string(&meta_path).unwrap().replace("\"horizon\": 1", "\"horizon\": \"one\"");
    fs::write(&meta_path, text).unwrap();
    let err = read_err(&dir);
    assert_eq!(err.code(), Code::BundleFormat);
    assert!(err.to_string().contains("kiln/metadata.json: horizon: invalid type"), "{err}");
}

/// Not a test: writes a model, its input rows and kiln's predictions (and a whole bundle) for
/// `scripts/lgb_crosscheck.py`, which checks them against Python's LightGBM and MLflow.
/// Run with `cargo test --release -p kiln-models -- --ignored export_for_python_crosscheck`.
#[test]
#[ignore]
fn export_for_python_crosscheck() {
    let out = std::env::temp_dir().join("kiln-lgb-crosscheck");
    if out.exists() {
        fs::remove_dir_all(&out).unwrap();
    }
    fs::create_dir_all(&out).unwrap();
    let (x, y) = etth1(4000);
    let (train, valid) = (x.rows(0, 3000), x.rows(3000, 3500));
    let model = fit(
        "num_iterations: 300\nlearning_rate: 0.05\nnum_leaves: 63\nfeature_fraction: 0.9\nbagging_fraction: 0.8\nbagging_freq: 1\nearly_stopping_rounds: 20",
        &train,
        &y[..3000],
        Some((&valid, &y[3000..3500])),
    );
    let mut test = x.rows(3500, 4000);
    test.data[0] = f64::NAN;
    let pred = model.predict(&test).unwrap();
    fs::write(out.join("model.lgb"), model.to_model_string().unwrap()).unwrap();
    let mut rows = String::new();
    for i in 0..test.n_rows {
        let row: Vec<String> = test.row(i).iter().map(|v| format!("{v:?}")).collect();
        rows.push_str(&row.join(","));
        rows.push('\n');
    }
    fs::write(out.join("x.csv"), rows).unwrap();
    fs::write(out.join("pred.csv"), pred.iter().map(|v| format!("{v:?}\n")).collect::<String>()).unwrap();
    let (bundle, _) = small_bundle();
    write_bundle(&out.join("bundle"), &bundle).unwrap();
    let bundle_rows: Vec<String> =
        (0..5).map(|i| format!("{:?}", bundle.model.predict_row(test.row(i)).unwrap())).collect();
    fs::write(out.join("bundle_pred.csv"), bundle_rows.join("\n") + "\n").unwrap();
    println!("wrote {} (best iteration {})", out.display(), model.best_iteration());
}

// ---- the table of kinds ----

/// Every row of the table: `model: {kind, params: {}}` reads into that kind with its defaults, checks for its task,
/// fits, and its bundle reads back into a model that predicts the same bits; `from_native_bytes` finds the format
/// by its `model_kind`. A new row that misses one of these fails here.
#[test]
fn every_kind_of_the_table_reads_checks_fits_and_round_trips_through_a_bundle() {
    let (x, y) = etth1(400);
    let median = {
        let mut s = y.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let labels: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v > median))).collect();
    let tmp = tempfile::tempdir().unwrap();
    for &kind in ModelConfig::KINDS {
        let config: ModelConfig = serde_yaml::from_str(&format!("kind: {kind}\nparams: {{}}")).unwrap();
        assert_eq!(config.kind(), kind);
        let classification = kind == "logistic";
        let spec = config.check(classification).unwrap();
        assert_eq!((spec.kind(), spec.is_classifier()), (kind, classification), "{kind}");
        assert!(!spec.params().is_empty(), "{kind} logs no params");
        let model = spec.fit(&x, if classification { &labels } else { &y }, None).unwrap();
        let expected = model.predict(&x).unwrap();
        let again = FittedModel::from_native_bytes(model.kind().as_str(), &model.to_native_bytes().unwrap()).unwrap();
        assert_eq!(again.predict(&x).unwrap(), expected, "{kind}: native bytes");

        let dir = tmp.path().join(kind);
        let metadata = BundleMetadata {
            kiln_version: KILN_VERSION.into(),
            model_kind: model.kind().as_str().into(),
            created_ms: 1_795_333_905_191,
            run_id: None,
            metrics: BTreeMap::new(),
            params: spec.params().into_iter().collect(),
            data_sha256: "ab".repeat(32),
            feature_names: x.names.clone(),
            target: "OT".into(),
            horizon: None,
            files: BTreeMap::new(),
        };
        let pipeline = TestPipeline { columns: x.names.clone(), scale: 1.0 };
        write_bundle(
            &dir,
            &Bundle { pipeline, model, step_models: Vec::new(), per_series: None, metadata, profile: None },
        )
        .unwrap();
        let back: Bundle<TestPipeline> = read_bundle(&dir).unwrap();
        let got = back.model.predict(&x).unwrap();
        assert!(got.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{kind}: bundle");
    }
    let err = FittedModel::from_native_bytes("arima", b"{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "model text is invalid: unknown model_kind 'arima' (known: lightgbm, xgboost, smartcore)"
    );
}
