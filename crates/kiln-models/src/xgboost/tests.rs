use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use kiln_domain::{Code, Estimator, Matrix, Predictor};
use serde_json::Value;

use super::capi;
use crate::tests::{FEATURES, TestPipeline, assert_rel, etth1, noise, parse_floats, run_python, write_rows};
use crate::*;

fn params(yaml: &str) -> XgBoostParams {
    serde_yaml::from_str(yaml).unwrap()
}

fn fit(yaml: &str, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> XgBoostModel {
    params(yaml).check().unwrap().fit(x, y, valid).unwrap()
}

fn json(model: &XgBoostModel) -> Value {
    serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

const TELCO_FEATURES: [&str; 4] = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"];

/// The IBM Telco churn table: four numeric columns (a blank TotalCharges, 11 new customers, is NaN) and Churn
/// Yes/No as 1/0. No field of the columns used holds a comma, so a plain split reads it.
fn telco() -> (Matrix, Vec<f64>) {
    let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data/Telco-Customer-Churn_IBM.csv");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let cols: Vec<usize> = TELCO_FEATURES.iter().map(|n| col(n)).collect();
    let churn = col("Churn");
    let (mut data, mut y) = (Vec::new(), Vec::new());
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), header.len(), "{line}");
        for &c in &cols {
            let v = fields[c].trim();
            data.push(if v.is_empty() { f64::NAN } else { v.parse().unwrap() });
        }
        y.push(match fields[churn] {
            "Yes" => 1.0,
            "No" => 0.0,
            other => panic!("Churn is {other}"),
        });
    }
    (Matrix::new(TELCO_FEATURES.iter().map(|s| s.to_string()).collect(), data), y)
}

fn r_squared(pred: &[f64], y: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let sse: f64 = pred.iter().zip(y).map(|(p, t)| (p - t).powi(2)).sum();
    let sst: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
    1.0 - sse / sst
}

// ---- hyperparameters ----

#[test]
fn defaults_are_xgboosts() {
    let p = params("{}");
    assert_eq!(p, XgBoostParams::default());
    let checked = p.check().unwrap();
    assert_eq!(checked.metric(), XgbMetric::Rmse);
    assert!(!checked.is_classifier());
    let logged: BTreeMap<String, String> = checked.as_params().into_iter().collect();
    for (k, v) in [
        ("booster", "gbtree"),
        ("objective", "reg:squarederror"),
        ("eval_metric", "rmse"),
        ("num_boost_round", "100"),
        ("eta", "0.3"),
        ("max_depth", "6"),
        ("min_child_weight", "1.0"),
        ("subsample", "1.0"),
        ("colsample_bytree", "1.0"),
        ("lambda", "1.0"),
        ("alpha", "0.0"),
        ("gamma", "0.0"),
        ("max_bin", "256"),
        ("tree_method", "hist"),
        ("early_stopping_rounds", "None"),
        ("seed", "42"),
        ("verbosity", "0"),
    ] {
        assert_eq!(logged.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(logged["nthread"], crate::default_threads().to_string());
    for absent in ["scale_pos_weight", "huber_slope", "base_score"] {
        assert!(!logged.contains_key(absent), "{absent} does not apply to reg:squarederror with defaults");
    }
    let binary = params("objective: binary:logistic\nscale_pos_weight: 2.5\nbase_score: 0.3").check().unwrap();
    assert!(binary.is_classifier());
    assert_eq!(binary.metric(), XgbMetric::Logloss);
    let logged: BTreeMap<String, String> = binary.as_params().into_iter().collect();
    assert_eq!(logged["scale_pos_weight"], "2.5");
    assert_eq!(logged["base_score"], "0.3");
    let huber = params("objective: reg:pseudohubererror\nhuber_slope: 2").check().unwrap();
    assert_eq!(huber.metric(), XgbMetric::Mphe);
    assert!(huber.as_params().contains(&("huber_slope".into(), "2.0".into())));
    assert_eq!(params("eval_metric: mae\nearly_stopping_rounds: 7").check().unwrap().metric(), XgbMetric::Mae);
}

#[test]
fn bad_params_name_the_parameter_value_and_range() {
    for (yaml, expect) in [
        ("num_boost_round: 0", "model.params.num_boost_round = 0: must be >= 1"),
        ("eta: 0", "model.params.eta = 0: must be in (0, 1]"),
        ("eta: 1.5", "model.params.eta = 1.5: must be in (0, 1]"),
        ("eta: .nan", "model.params.eta = NaN: must be in (0, 1]"),
        ("max_depth: 0", "model.params.max_depth = 0: must be >= 1"),
        ("min_child_weight: -1", "model.params.min_child_weight = -1: must be >= 0"),
        ("subsample: 0", "model.params.subsample = 0: must be in (0, 1]"),
        ("colsample_bytree: 1.2", "model.params.colsample_bytree = 1.2: must be in (0, 1]"),
        ("lambda: -0.5", "model.params.lambda = -0.5: must be >= 0"),
        ("alpha: -1", "model.params.alpha = -1: must be >= 0"),
        ("gamma: .inf", "model.params.gamma = inf: must be >= 0"),
        ("max_bin: 1", "model.params.max_bin = 1: must be >= 2"),
        ("tree_method: exact", "model.params.tree_method = exact: must be hist"),
        ("tree_method: approx", "model.params.tree_method = approx: must be hist"),
        ("scale_pos_weight: 3", "model.params.scale_pos_weight = 3: only applies to objective binary:logistic"),
        ("objective: binary:logistic\nscale_pos_weight: 0", "model.params.scale_pos_weight = 0: must be > 0"),
        ("huber_slope: 2", "model.params.huber_slope = 2: only applies to objective reg:pseudohubererror"),
        ("objective: reg:pseudohubererror\nhuber_slope: 0", "model.params.huber_slope = 0: must be > 0"),
        (
            "eval_metric: logloss",
            "model.params.eval_metric = logloss: needs objective binary:logistic, not reg:squarederror",
        ),
        ("early_stopping_rounds: 0", "model.params.early_stopping_rounds = 0: must be >= 1"),
        ("objective: binary:logistic\nbase_score: 1", "model.params.base_score = 1: must be in (0, 1)"),
        ("base_score: .nan", "model.params.base_score = NaN: must be finite"),
        ("nthread: 0", "model.params.nthread = 0: must be >= 1"),
        ("seed: 18446744073709551615", "model.params.seed = 18446744073709551615: must be <= 9223372036854775807"),
        ("verbosity: 4", "model.params.verbosity = 4: must be in 0..=3"),
    ] {
        let err = params(yaml).check().unwrap_err();
        assert_eq!(err.code(), Code::ModelParams, "{yaml}");
        assert!(err.to_string().contains(expect), "{yaml}: got '{err}', want '{expect}'");
    }
    // unknown keys and values are refused by the config parser, with their names
    let err = serde_yaml::from_str::<XgBoostParams>("num_leaves: 63").unwrap_err().to_string();
    assert!(err.contains("num_leaves"), "{err}");
    let err = serde_yaml::from_str::<XgBoostParams>("objective: multi:softmax").unwrap_err().to_string();
    assert!(err.contains("multi:softmax"), "{err}");
}

// ---- fitting and predicting ----

#[test]
fn fit_is_deterministic_honours_the_round_count_and_beats_the_mean() {
    let (x, y) = etth1(2000);
    let yaml = "num_boost_round: 37\neta: 0.1\nsubsample: 0.8\ncolsample_bytree: 0.7\nmax_depth: 5";
    let a = fit(yaml, &x, &y, None);
    let b = fit(yaml, &x, &y, None);
    let text = a.to_json_bytes().unwrap();
    assert_eq!(text, b.to_json_bytes().unwrap(), "two fits with the same seed differ");
    assert_eq!((a.num_trees(), a.best_iteration()), (37, 37));
    assert_eq!(a.feature_names(), FEATURES);

    let model = json(&a);
    assert_eq!(model.pointer("/learner/gradient_booster/model/trees").unwrap().as_array().unwrap().len(), 37);
    assert_eq!(model.pointer("/learner/gradient_booster/model/gbtree_model_param/num_trees").unwrap(), "37");
    assert_eq!(model.pointer("/learner/feature_names").unwrap(), &serde_json::json!(FEATURES));
    assert_eq!(model.pointer("/learner/objective/name").unwrap(), "reg:squarederror");
    assert_eq!(model.pointer("/version").unwrap(), &serde_json::json!([3, 2, 0]));
    assert!(model.pointer("/learner/attributes/best_iteration").is_none(), "no early stopping, no best_iteration");

    let other_seed = fit(&format!("{yaml}\nseed: 7"), &x, &y, None);
    assert_ne!(text, other_seed.to_json_bytes().unwrap(), "the seed must drive the row and column sampling");

    // the loads explain most of the oil temperature in-sample
    let r2 = r_squared(&a.predict(&x).unwrap(), &y);
    assert!(r2 > 0.5, "in-sample R^2 {r2} is too low");

    let importance = a.feature_importance().unwrap();
    assert_eq!(importance.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), FEATURES);
    assert!(importance.iter().all(|(_, gain, split)| *gain >= 0.0 && *split >= 0.0));
    let splits: f64 = importance.iter().map(|(_, _, s)| s).sum();
    assert!(splits >= 37.0, "every tree splits at least once: {splits}");
}

#[test]
fn json_round_trip_and_predict_row_are_bit_identical() {
    let (x, y) = etth1(1500);
    let model = fit("num_boost_round: 25\nobjective: reg:pseudohubererror\nhuber_slope: 3", &x, &y, None);
    let mut test = x.rows(1000, 1500);
    test.data[3] = f64::NAN; // missing: XGBoost's default direction, in every path
    test.data[8] = 0.0; // zero is a value, not missing
    let batch = model.predict(&test).unwrap();

    let bytes = model.to_json_bytes().unwrap();
    let back = XgBoostModel::from_json_bytes(&bytes).unwrap();
    assert_eq!(back.feature_names(), FEATURES);
    assert_eq!((back.num_trees(), back.best_iteration()), (25, 25));
    assert_eq!(back.to_json_bytes().unwrap(), bytes);
    assert_eq!(bits(&back.predict(&test).unwrap()), bits(&batch));
    assert_eq!(back.feature_importance().unwrap(), model.feature_importance().unwrap());

    for (i, expected) in batch.iter().enumerate() {
        assert_eq!(model.predict_row(test.row(i)).unwrap().to_bits(), expected.to_bits(), "row {i}");
        assert_eq!(back.predict_row(test.row(i)).unwrap().to_bits(), expected.to_bits(), "row {i}, reloaded");
    }
    assert!(model.predict(&test.rows(0, 0)).unwrap().is_empty());
    assert_eq!(model.contributions(&test.rows(0, 0)).unwrap().n_rows, 0);

    for bad in [&b""[..], b"{}", b"hello", b"{\"learner\": {}}"] {
        let err = XgBoostModel::from_json_bytes(bad).unwrap_err();
        assert_eq!(err.code(), Code::BundleFormat, "{bad:?}: {err}");
    }
    // a model without feature names (Python, trained on an array) is refused by name
    let mut unnamed: Value = serde_json::from_slice(&bytes).unwrap();
    unnamed["learner"]["feature_names"] = serde_json::json!([]);
    let err = XgBoostModel::from_json_bytes(&serde_json::to_vec(&unnamed).unwrap()).unwrap_err();
    assert!(err.to_string().contains("no feature names"), "{err}");
}

#[test]
fn early_stopping_stops_and_keeps_the_best_round() {
    let (x, _) = etth1(3000);
    let y = noise(3000, 0x9e37_79b9_7f4a_7c15);
    let (train, valid) = (x.rows(0, 2400), x.rows(2400, 3000));
    let yaml = "num_boost_round: 500\neta: 0.1\nmax_depth: 4\nsubsample: 0.8\nearly_stopping_rounds: 10";
    let model = fit(yaml, &train, &y[..2400], Some((&valid, &y[2400..])));
    let best = model.best_iteration();
    assert!(best < 100, "stopped at {best} of 500 on pure noise");
    assert_eq!(model.num_trees(), best, "rounds after the best one are cut");
    let saved = json(&model);
    assert_eq!(saved.pointer("/learner/attributes/best_iteration").unwrap(), &Value::from((best - 1).to_string()));
    assert!(saved.pointer("/learner/attributes/best_score").is_some());

    // the cut model is the model of `best` rounds: the same trees, the same predictions
    let plain =
        fit(&format!("num_boost_round: {best}\neta: 0.1\nmax_depth: 4\nsubsample: 0.8"), &train, &y[..2400], None);
    let trees = |m: &XgBoostModel| json(m).pointer("/learner/gradient_booster/model").unwrap().clone();
    assert_eq!(trees(&model), trees(&plain));
    assert_eq!(bits(&model.predict(&valid).unwrap()), bits(&plain.predict(&valid).unwrap()));

    // the kept round is the best on the validation set: a few rounds more are not better
    let rmse = |m: &XgBoostModel| {
        let p = m.predict(&valid).unwrap();
        (p.iter().zip(&y[2400..]).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / p.len() as f64).sqrt()
    };
    let longer = fit(
        &format!("num_boost_round: {}\neta: 0.1\nmax_depth: 4\nsubsample: 0.8", best + 5),
        &train,
        &y[..2400],
        None,
    );
    assert!(rmse(&model) <= rmse(&longer), "more rounds were better on the validation set");

    // with a validation set but no early stopping, every round is kept
    let full = fit("num_boost_round: 30", &train, &y[..2400], Some((&valid, &y[2400..])));
    assert_eq!(full.num_trees(), 30);

    let err = params(yaml).check().unwrap().fit(&train, &y[..2400], None).unwrap_err();
    assert_eq!(err.code(), Code::ModelParams);
    assert!(err.to_string().contains("early_stopping_rounds = 10: needs a validation set"), "{err}");
}

/// The root mean squared error of `model` on `x` computed as XGBoost computes it: labels and predictions are
/// f32, each squared residual is computed in f32, the sum in f64.
fn rmse_f32_labels(model: &XgBoostModel, x: &Matrix, y: &[f64]) -> f64 {
    let p = model.predict(x).unwrap();
    let squares = p.iter().zip(y).map(|(&p, &t)| {
        let r = t as f32 - p as f32; // p is an f32 widened exactly
        f64::from(r * r)
    });
    (squares.sum::<f64>() / p.len() as f64).sqrt()
}

#[test]
fn eval_curves_hold_xgboosts_metric_as_it_trains() {
    let (x, y) = etth1(3000);
    let (train, valid) = (x.rows(0, 2400), x.rows(2400, 3000));
    let (ty, vy) = (&y[..2400], &y[2400..]);

    // no early stopping: one value per round (at most 100 rounds: the training rows too), and the last ones are
    // the final model's rmse
    let model = fit("num_boost_round: 30\neta: 0.1\nmax_depth: 4", &train, ty, Some((&valid, vy)));
    let curves = model.eval_curves();
    let shape: Vec<_> = curves.iter().map(|c| (c.data, c.metric.as_str(), c.values.len())).collect();
    assert_eq!(shape, [(EvalData::Train, "rmse", 30), (EvalData::Valid, "rmse", 30)]);
    assert_rel(curves[0].values[29], rmse_f32_labels(&model, &train, ty), "training rmse after the last round");
    assert_rel(curves[1].values[29], rmse_f32_labels(&model, &valid, vy), "validation rmse after the last round");
    assert!(curves[0].values.windows(2).all(|w| w[1] <= w[0]), "the training rmse never rises: {:?}", curves[0].values);

    // early stopping: the curves run to the round that stopped the fit, the model is cut to the best one
    let yaml = "num_boost_round: 300\neta: 0.05\nmax_depth: 4\nsubsample: 0.8\nearly_stopping_rounds: 5";
    let model = fit(yaml, &train, ty, Some((&valid, vy)));
    let best = model.best_iteration();
    assert!(best > 5 && best < 295, "stopped at {best}");
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
    assert_rel(kept, rmse_f32_labels(&model, &valid, vy), "validation rmse at the best round");
    assert!(valid_curve[..best - 1].iter().all(|&v| v > kept), "{valid_curve:?}");
    assert!(valid_curve[best..].iter().all(|&v| v >= kept), "{valid_curve:?}");
    let best_score = json(&model).pointer("/learner/attributes/best_score").unwrap().as_str().unwrap().to_string();
    assert_eq!(best_score.parse::<f64>().unwrap(), kept, "best_score is the curve's value, at full precision");

    // without a validation set only the training curve; a model read back from JSON has none
    let plain = fit("num_boost_round: 12", &train, ty, None);
    assert_eq!(
        plain.eval_curves().iter().map(|c| (c.data, c.values.len())).collect::<Vec<_>>(),
        [(EvalData::Train, 12)]
    );
    assert!(XgBoostModel::from_json_bytes(&plain.to_json_bytes().unwrap()).unwrap().eval_curves().is_empty());
}

#[test]
fn the_evaluation_line_is_parsed_at_full_precision() {
    let line = "[7]\ttrain-rmse:0.41234567890123456\tvalid-rmse:1.50000000000000000\tvalid-error@0.7:nan";
    let sets = [EvalData::Train, EvalData::Valid];
    let parsed = capi::parse_eval_line(line, &sets).unwrap();
    assert_eq!(parsed[0], (EvalData::Train, "rmse".to_string(), "0.41234567890123456".parse::<f64>().unwrap()));
    assert_ne!(parsed[0].2, f64::from(parsed[0].2 as f32), "the value is not rounded to f32");
    assert_eq!(parsed[1], (EvalData::Valid, "rmse".to_string(), 1.5));
    assert_eq!((parsed[2].0, parsed[2].1.as_str()), (EvalData::Valid, "error@0.7"));
    assert!(parsed[2].2.is_nan());
    for bad in ["train-rmse:0.1", "[0]\ttest-rmse:0.1", "[0]\ttrain-rmse", "[0]\ttrain-rmse:x"] {
        assert!(capi::parse_eval_line(bad, &sets).is_err(), "{bad}");
    }
}

#[test]
fn binary_logistic_predicts_churn_probabilities() {
    let (x, y) = telco();
    assert_eq!((x.n_rows, x.column(2).iter().filter(|v| v.is_nan()).count()), (7043, 11));
    let (train, test) = (x.rows(0, 5000), x.rows(5000, x.n_rows));
    let yaml = "objective: binary:logistic\nnum_boost_round: 200\neta: 0.05\nmax_depth: 3\neval_metric: error\n\
                early_stopping_rounds: 20";
    let model = fit(yaml, &train.rows(0, 4000), &y[..4000], Some((&train.rows(4000, 5000), &y[4000..5000])));
    assert!(model.best_iteration() < 200);
    let p = model.predict(&test).unwrap();
    assert!(p.iter().all(|&v| v > 0.0 && v < 1.0));
    let labels = &y[5000..];
    let correct = p.iter().zip(labels).filter(|(p, l)| (**p > 0.5) == (**l == 1.0)).count();
    let majority = labels.iter().filter(|&&l| l == 0.0).count();
    // always answering "no churn" is right for about 73% of customers; the model must beat that
    assert!(correct > majority, "accuracy {correct}/{} vs majority {majority}", labels.len());
    assert_eq!(model.predict_row(test.row(7)).unwrap().to_bits(), p[7].to_bits());
    let raw = model.predict_raw(&test).unwrap();
    for (r, p) in raw.iter().zip(&p) {
        assert!((1.0 / (1.0 + (-r).exp()) - p).abs() < 1e-6, "the margin is the log-odds: {r} vs {p}");
    }

    let mut bad = y.clone();
    bad[17] = 2.0;
    let err = params("objective: binary:logistic").check().unwrap().fit(&x, &bad, None).unwrap_err();
    assert_eq!(err.code(), Code::ModelTrain);
    assert!(err.to_string().contains("label at row 17 is 2"), "{err}");
}

/// The largest gap between a row's sum of contributions and its margin, relative to max(1, |margin|).
fn gap(c: &Matrix, margin: &[f64]) -> f64 {
    (0..c.n_rows)
        .map(|i| (c.row(i).iter().sum::<f64>() - margin[i]).abs() / margin[i].abs().max(1.0))
        .fold(0.0, f64::max)
}

#[test]
fn contributions_sum_to_the_margin() {
    let (x, y) = etth1(2000);
    let model = fit("num_boost_round: 60\neta: 0.1", &x, &y, None);
    let test = x.rows(1500, 2000);
    let c = model.contributions(&test).unwrap();
    let mut names: Vec<&str> = FEATURES.to_vec();
    names.push("bias");
    assert_eq!(c.names, names);
    assert_eq!(c.n_rows, 500);
    let raw = model.predict_raw(&test).unwrap();
    assert_eq!(bits(&raw), bits(&model.predict(&test).unwrap()), "squared error: the margin is the prediction");
    // XGBoost computes SHAP values and margins in f32 (epsilon 1.2e-7), so the gap scales with the margin: here
    // margins reach 33.8 and the worst gap measured 1.6e-5 (8.3e-7 relative); the bound is 1e-5 of max(1, |margin|)
    let worst = gap(&c, &raw);
    assert!(worst < 1e-5, "a row of contributions is {worst} (relative to max(1, |margin|)) away from the margin");

    let (tx, ty) = telco();
    let clf = fit("objective: binary:logistic\nnum_boost_round: 50", &tx, &ty, None);
    let c = clf.contributions(&tx).unwrap();
    let raw = clf.predict_raw(&tx).unwrap();
    let worst = gap(&c, &raw);
    assert!(worst < 1e-5, "a row of contributions is {worst} (relative to max(1, |margin|)) away from the log-odds");

    let fitted = FittedModel::new(clf);
    let via_enum = fitted.contributions(&tx).unwrap().unwrap();
    assert_eq!(bits(&via_enum.data), bits(&c.data));
}

#[test]
fn every_accepted_metric_drives_early_stopping() {
    let (x, y) = etth1(1200);
    let (train, valid) = (x.rows(0, 900), x.rows(900, 1200));
    for (objective, metric) in [
        ("reg:squarederror", "rmse"),
        ("reg:squarederror", "rmsle"),
        ("reg:squarederror", "mae"),
        ("reg:squarederror", "mape"),
        ("reg:squarederror", "mphe"),
        ("reg:absoluteerror", "mae"),
    ] {
        let yaml =
            format!("objective: {objective}\nnum_boost_round: 300\neval_metric: {metric}\nearly_stopping_rounds: 5");
        let model = fit(&yaml, &train, &y[..900], Some((&valid, &y[900..])));
        assert!(model.best_iteration() >= 1 && model.best_iteration() < 300, "{metric}: {}", model.best_iteration());
    }
    let (tx, ty) = telco();
    let (train, valid) = (tx.rows(0, 5000), tx.rows(5000, 7043));
    for metric in ["logloss", "error", "auc", "aucpr"] {
        let yaml = format!(
            "objective: binary:logistic\nnum_boost_round: 300\neval_metric: {metric}\nearly_stopping_rounds: 5"
        );
        let model = fit(&yaml, &train, &ty[..5000], Some((&valid, &ty[5000..])));
        assert!(model.best_iteration() >= 1 && model.best_iteration() < 300, "{metric}: {}", model.best_iteration());
    }
}

#[test]
fn bad_data_and_inputs_are_named() {
    let (x, y) = etth1(300);
    let checked = params("num_boost_round: 5").check().unwrap();
    let mut y_nan = y.clone();
    y_nan[4] = f64::NAN;
    let err = checked.fit(&x, &y_nan, None).unwrap_err();
    assert!(err.to_string().contains("training label at row 4 is NaN"), "{err}");
    let err = checked.fit(&x, &y[..10], None).unwrap_err();
    assert!(err.to_string().contains("300 rows but 10 labels"), "{err}");

    let mut huge = x.clone();
    huge.data[6 * 7 + 2] = 1e300;
    let err = checked.fit(&huge, &y, None).unwrap_err();
    assert!(
        err.to_string().contains("feature 'MUFL' at row 7 is 1e300; XGBoost reads features as finite f32"),
        "{err}"
    );

    let mut bracket = x.clone();
    bracket.names[2] = "MUFL[0]".into();
    let err = checked.fit(&bracket, &y, None).unwrap_err();
    assert!(err.to_string().contains("feature name 'MUFL[0]' contains '['"), "{err}");
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
    let err = model.predict_row(&[1.0, 2.0, f64::INFINITY, 4.0, 5.0, 6.0]).unwrap_err();
    assert!(err.to_string().contains("feature 'MUFL' at row 0 is inf"), "{err}");
}

#[test]
fn a_fitted_model_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<XgBoostModel>();

    let (x, y) = etth1(600);
    let model = std::sync::Arc::new(fit("num_boost_round: 20", &x, &y, None));
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
        assert_eq!(bits(&batch), bits(&expected));
        assert!((0..x.n_rows).all(|i| rows[i].to_bits() == expected[(i + t * 97) % x.n_rows].to_bits()));
    }
}

// ---- against Python's XGBoost and MLflow ----

/// Loads `model.json` with Python's XGBoost and predicts `x.csv` from float32 values of the same numbers; prints
/// the predictions, then the SHAP contributions, then `get_score` total gain and weight per feature.
const PY_XGB: &str = r#"
import json, sys
import numpy as np, xgboost as xgb
model, rows, names = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
x = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2).astype(np.float32)
booster = xgb.Booster(model_file=model)
assert booster.feature_names == names, booster.feature_names
d = xgb.DMatrix(x, feature_names=names, missing=np.nan)
pred = booster.predict(d)
contrib = booster.predict(d, pred_contribs=True)
gain = booster.get_score(importance_type="total_gain")
weight = booster.get_score(importance_type="weight")
print(" ".join(repr(float(v)) for v in pred))
print(" ".join(repr(float(v)) for v in contrib.ravel()))
print(" ".join(repr(float(gain.get(n, 0.0))) for n in names))
print(" ".join(repr(float(weight.get(n, 0.0))) for n in names))
"#;

fn python_check(model: &XgBoostModel, x: &Matrix) {
    let tmp = tempfile::tempdir().unwrap();
    let (model_path, rows_path) = (tmp.path().join("model.json"), tmp.path().join("x.csv"));
    fs::write(&model_path, model.to_json_bytes().unwrap()).unwrap();
    write_rows(&rows_path, x);
    let names = tmp.path().join("names.json");
    fs::write(&names, serde_json::to_string(&x.names).unwrap()).unwrap();
    let out = run_python(PY_XGB, &[&model_path, &rows_path, &names]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");

    let max_diff = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max)
    };
    let python = parse_floats(lines[0]);
    let diff = max_diff(&model.predict(x).unwrap(), &python);
    assert!(diff < 1e-6, "predictions differ from Python's XGBoost by up to {diff}");
    let contrib = parse_floats(lines[1]);
    let diff = max_diff(&model.contributions(x).unwrap().data, &contrib);
    assert!(diff < 1e-6, "contributions differ from Python's pred_contribs by up to {diff}");
    let importance = model.feature_importance().unwrap();
    let (gain, weight) = (parse_floats(lines[2]), parse_floats(lines[3]));
    // XGBoost adds a feature's gains in f32 (`GBTree::FeatureScore`), kiln the same f32 gains in f64: the relative gap
    // grows with the number of splits (1.2e-6 measured on ETTh1's LUFL); the bound is 1e-5
    for (i, (name, g, w)) in importance.iter().enumerate() {
        assert!((g - gain[i]).abs() <= 1e-5 * gain[i].abs().max(1.0), "{name}: total gain {g} vs Python's {}", gain[i]);
        assert_eq!(*w, weight[i], "{name}: split count");
    }
}

#[test]
fn python_xgboost_loads_the_model_and_predicts_the_same() {
    // regression with early stopping: Python must predict as the best round, from the cut model
    let (x, y) = etth1(4000);
    let (train, valid) = (x.rows(0, 3000), x.rows(3000, 3500));
    let yaml = "num_boost_round: 400\neta: 0.05\nmax_depth: 6\nsubsample: 0.8\ncolsample_bytree: 0.9\n\
                early_stopping_rounds: 20";
    let model = fit(yaml, &train, &y[..3000], Some((&valid, &y[3000..3500])));
    assert!(model.best_iteration() < 400);
    let mut test = x.rows(3500, 4000);
    test.data[0] = f64::NAN;
    test.data[13] = 0.0;
    python_check(&model, &test);

    // binary classification with missing values in the data itself
    let (x, y) = telco();
    let clf = fit("objective: binary:logistic\nnum_boost_round: 80\neta: 0.1\nmax_depth: 4", &x, &y, None);
    python_check(&clf, &x.rows(0, 1000));
    python_check(&clf, &x.take_rows(&(0..x.n_rows).filter(|&i| x.row(i)[2].is_nan()).collect::<Vec<_>>()));
}

#[test]
fn bundle_round_trip_and_mlflow_load_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/model");
    let (x, y) = etth1(1500);
    let model = fit("num_boost_round: 30\nmax_depth: 4", &x, &y, None);
    let metadata = BundleMetadata {
        kiln_version: KILN_VERSION.into(),
        model_kind: "xgboost".into(),
        created_ms: 1_795_333_905_191,
        run_id: Some("440f7b8fcc914c7b82ca17ffae352fb9".into()),
        metrics: [("rmse".to_string(), 1.25)].into_iter().collect(),
        params: [("num_boost_round".to_string(), "30".to_string())].into_iter().collect(),
        data_sha256: "ab".repeat(32),
        feature_names: FEATURES.iter().map(|s| s.to_string()).collect(),
        target: "OT".into(),
        horizon: Some(1),
        files: BTreeMap::new(),
    };
    let pipeline = TestPipeline { columns: FEATURES.iter().map(|s| s.to_string()).collect(), scale: 0.5 };
    let bundle = Bundle {
        pipeline,
        model: FittedModel::new(model),
        step_models: Vec::new(),
        per_series: None,
        metadata,
        profile: None,
    };
    let written = write_bundle(&dir, &bundle).unwrap();
    let names: Vec<&str> = written.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["MLmodel", "code/kiln_mlflow_loader.py", "kiln/pipeline.json", "model.json"]);
    assert_eq!(bundle.model.kind().as_str(), "xgboost");

    let back: Bundle<TestPipeline> = read_bundle(&dir).unwrap();
    assert_eq!(back.model.kind().as_str(), "xgboost");
    assert_eq!(back.pipeline, bundle.pipeline);
    let test = x.rows(1000, 1500);
    let expected = bundle.model.predict(&test).unwrap();
    assert_eq!(bits(&back.model.predict(&test).unwrap()), bits(&expected));
    assert_eq!(back.model.predict_row(test.row(3)).unwrap().to_bits(), expected[3].to_bits());
    assert_eq!(back.model.feature_importance().unwrap(), bundle.model.feature_importance().unwrap());

    let mlmodel = fs::read_to_string(dir.join("MLmodel")).unwrap();
    for line in [
        "loader_module: kiln_mlflow_loader",
        "data: model.json",
        "model_class: xgboost.core.Booster",
        "model_format: json",
        "xgb_version: 3.2.0",
        "run_id: 440f7b8fcc914c7b82ca17ffae352fb9",
    ] {
        assert!(mlmodel.contains(line), "MLmodel lacks '{line}':\n{mlmodel}");
    }
    assert!(!mlmodel.contains("lightgbm"), "{mlmodel}");

    // Python's MLflow loads the bundle as an XGBoost Booster that predicts what kiln predicts (its python_function
    // flavor runs kiln's whole pipeline through kiln's Python package: tests/test_python.py)
    let rows = tmp.path().join("x.csv");
    write_rows(&rows, &test);
    let script = r#"
import sys
import numpy as np, pandas as pd, mlflow.xgboost, mlflow.pyfunc
bundle, rows, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
df = pd.DataFrame(np.loadtxt(rows, delimiter=",", ndmin=2).astype(np.float32), columns=names)
import xgboost as xgb
booster = mlflow.xgboost.load_model(bundle)
assert isinstance(booster, xgb.Booster), type(booster)
print(" ".join(repr(float(v)) for v in booster.predict(xgb.DMatrix(df))))
"#;
    let names = FEATURES.join(",");
    let out = run_python(script, &[&dir, &rows, Path::new(&names)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    for line in lines {
        let python = parse_floats(line);
        assert_eq!(python.len(), expected.len());
        let diff = python.iter().zip(&expected).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-6, "MLflow's XGBoost predictions differ by up to {diff}");
    }

    // a bundle whose MLmodel lost its xgboost flavor is refused by name
    let other = tmp.path().join("other");
    write_bundle(&other, &bundle).unwrap();
    let meta_path = other.join("kiln/metadata.json");
    let text = mlmodel.replace("  xgboost:\n", "  xgboost_old:\n");
    assert_ne!(text, mlmodel);
    fs::write(other.join("MLmodel"), &text).unwrap();
    let mut meta: BundleMetadata = serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    meta.files.insert("MLmodel".into(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())));
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let err = read_bundle::<TestPipeline>(&other).unwrap_err();
    assert_eq!(err.code(), Code::BundleFormat);
    assert!(err.to_string().contains("flavors.xgboost: missing, but model_kind is xgboost"), "{err}");
}
