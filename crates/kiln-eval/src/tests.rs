use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_domain::Code;

use crate::*;

// ---------------------------------------------------------------- metrics

/// Expected values as printed by scikit-learn 1.9.1 / numpy 2.4.6 (`repr(float(..))`), in the order rmse, mae, r2,
/// mape, smape; smape by numpy as `mean(where(|y|+|p| == 0, 0, 2|y-p| / (|y|+|p|)))`. The tolerance is 1e-12
/// relative; on these vectors the values are in fact bit-identical (checked once with a tolerance of 0).
fn check(y: &[f64], p: &[f64], expect: [f64; 5]) {
    let m = RegressionMetrics::compute(y, p).unwrap();
    for ((name, got), want) in m.iter().into_iter().zip(expect) {
        let tol = 1e-12 * want.abs().max(1.0);
        assert!((got - want).abs() <= tol, "{name}: got {got:?}, scikit-learn {want:?}");
    }
}

#[test]
fn metrics_on_hand_computed_vectors() {
    // errors .5 .5 0 1; mean(y) = 2.875, SS_tot = 29.1875, SS_res = 1.5
    check(
        &[3.0, -0.5, 2.0, 7.0],
        &[2.5, 0.0, 2.0, 8.0],
        [
            0.375f64.sqrt(),
            0.5,
            1.0 - 1.5 / 29.1875,
            (0.5 / 3.0 + 1.0 + 1.0 / 7.0) / 4.0,
            (1.0 / 5.5 + 2.0 + 2.0 / 15.0) / 4.0,
        ],
    );
    // the same numbers as scikit-learn printed them
    check(
        &[3.0, -0.5, 2.0, 7.0],
        &[2.5, 0.0, 2.0, 8.0],
        [0.6123724356957945, 0.5, 0.9486081370449679, 0.3273809523809524, 0.5787878787878787],
    );
}

#[test]
fn metrics_follow_sklearn_edge_cases() {
    // constant y, perfect prediction: r2 = 1 (sklearn's force_finite)
    check(&[2.0, 2.0, 2.0], &[2.0, 2.0, 2.0], [0.0, 0.0, 1.0, 0.0, 0.0]);
    // constant y, imperfect prediction: r2 = 0, not -inf
    check(
        &[2.0, 2.0, 2.0],
        &[1.0, 2.0, 3.0],
        [0.816496580927726, 0.6666666666666666, 0.0, 0.3333333333333333, 0.35555555555555557],
    );
    // zeros in y: mape divides by f64::EPSILON (huge, as sklearn); smape counts 0/0 as 0
    check(
        &[0.0, 1.0, 0.0],
        &[0.0, 2.0, 0.5],
        [0.6454972243679028, 0.5, -0.8749999999999998, 750599937895083.0, 0.8888888888888888],
    );
}

fn data_path(file: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(file)
}

/// One numeric column of a small comma-separated file with a header (no quoting in these files).
fn csv_column(file: &str, column: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(data_path(file)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let j = header.iter().position(|h| *h == column).unwrap();
    lines.filter(|l| !l.is_empty()).map(|l| l.split(',').nth(j).unwrap().parse::<f64>().unwrap()).collect()
}

#[test]
fn metrics_match_sklearn_on_real_data() {
    // ETTh1 oil temperature, persistence forecast (17419 rows, with zeros in y: mape is huge, as in sklearn)
    let ot = csv_column("ETTh1.csv", "OT");
    check(
        &ot[1..],
        &ot[..ot.len() - 1],
        [0.9181857076636433, 0.6142323901454961, 0.9885102770455116, 12149816734307.215, 0.0775150220842111],
    );

    // ETTh1 HUFL scored against MUFL, last 500 rows
    let hufl = csv_column("ETTh1.csv", "HUFL");
    let mufl = csv_column("ETTh1.csv", "MUFL");
    let tail = hufl.len() - 500;
    check(
        &hufl[tail..],
        &mufl[tail..],
        [3.976083920873466, 3.808362001821399, 0.8033825243181335, 24004185670288.188, 0.5982011079528083],
    );

    // ECB EUR/USD daily returns (oldest first), persistence of the previous return: negative r2, exact zeros in y
    let mut usd = csv_column("ecb_eurofxref-hist.csv", "USD");
    usd.reverse();
    let r: Vec<f64> = usd.windows(2).map(|w| (w[1] - w[0]) / w[0]).collect();
    check(
        &r[1..],
        &r[..r.len() - 1],
        [0.008232183707728524, 0.006144849278393188, -1.0130628729801665, 139342671400.0992, 1.4670769724799235],
    );
}

#[test]
fn pairwise_sum_is_exact_on_integers_and_close_to_naive() {
    for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000, 8193] {
        let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), (n * n.saturating_sub(1) / 2) as f64, "n = {n}");
    }
    // 0.1 ten thousand times: pairwise is closer to 1000 than a running sum
    let v = vec![0.1; 10_000];
    let naive: f64 = v.iter().sum();
    assert!((pairwise_sum(&v) - 1000.0).abs() < (naive - 1000.0).abs());
}

#[test]
fn metrics_reject_bad_input_naming_it() {
    let e = RegressionMetrics::compute(&[1.0, 2.0], &[1.0]).unwrap_err();
    assert_eq!(e.code(), Code::DataShape);
    assert_eq!(e.to_string(), "y_true has 2 values but y_pred has 1");

    let e = RegressionMetrics::compute(&[], &[]).unwrap_err();
    assert_eq!(e.code(), Code::NotEnoughRows);
    assert!(e.to_string().contains("got 0"), "{e}");
    let e = RegressionMetrics::compute(&[1.0], &[1.0]).unwrap_err();
    assert!(e.to_string().contains("at least 2 rows"), "{e}");

    let e = RegressionMetrics::compute(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, f64::NAN]).unwrap_err();
    assert_eq!(e.to_string(), "y_pred has a non-finite value (NaN) at index 1");
    let e = RegressionMetrics::compute(&[1.0, 2.0, f64::INFINITY], &[1.0, 2.0, 3.0]).unwrap_err();
    assert_eq!(e.to_string(), "y_true has a non-finite value (inf) at index 2");
    assert_eq!(e.code(), Code::DataShape);
}

#[test]
fn metric_names() {
    let names: Vec<&str> = MetricName::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["rmse", "mae", "r2", "mape", "smape"]);
    for m in MetricName::ALL {
        assert_eq!(MetricName::parse(m.as_str()), Some(m));
        let yaml: MetricName = serde_yaml::from_str(m.as_str()).unwrap();
        assert_eq!(yaml, m);
        assert_eq!(serde_yaml::to_string(&m).unwrap().trim(), m.as_str());
    }
    assert_eq!(MetricName::parse("RMSE"), None);
    assert!(MetricName::R2.higher_is_better() && !MetricName::Rmse.higher_is_better());
    assert!(MetricName::R2.is_better(0.9, 0.8) && MetricName::Mae.is_better(0.1, 0.2));
    assert!(!MetricName::Mae.is_better(0.1, 0.1), "a tie is not better");

    let m = RegressionMetrics { rmse: 1.0, mae: 2.0, r2: 3.0, mape: 4.0, smape: 5.0 };
    assert_eq!(m.get(MetricName::Mape), 4.0);
    assert_eq!(m.iter()[2], (MetricName::R2, 3.0));
}

#[test]
fn one_metric_vocabulary() {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
    let expected = [
        "rmse",
        "mae",
        "r2",
        "mape",
        "smape",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
    ];
    assert_eq!(names, expected);
    assert_eq!(Metric::NAMES, expected);
    for m in Metric::ALL {
        assert_eq!(Metric::parse(m.as_str()), Some(m));
        assert_eq!(m.to_string(), m.as_str());
        let yaml: Metric = serde_yaml::from_str(m.as_str()).unwrap();
        assert_eq!(yaml, m);
        assert_eq!(serde_yaml::to_string(&m).unwrap().trim(), m.as_str());
        let lower_is_better = matches!(m.as_str(), "rmse" | "mae" | "mape" | "smape" | "log_loss");
        assert_eq!(m.higher_is_better(), !lower_is_better, "{m}");
        let task = if names.iter().position(|n| *n == m.as_str()).unwrap() < 5 {
            Task::Regression
        } else {
            Task::Classification
        };
        assert_eq!(m.task(), task, "{m}");
    }
    assert_eq!(Metric::from(MetricName::R2), Metric::Regression(MetricName::R2));
    assert_eq!(Metric::from(ClassificationMetricName::RocAuc).as_str(), "roc_auc");
    assert_eq!(Metric::parse("RMSE"), None);
    assert!(Metric::from(MetricName::Mae).is_better(0.1, 0.2) && !Metric::from(MetricName::Mae).is_better(0.1, 0.1));
    assert_eq!((Task::Regression.as_str(), Task::Classification.as_str()), ("regression", "classification"));

    // a bad name in YAML is named, with every allowed one, as serde says it for any enum
    let e = serde_yaml::from_str::<Metric>("auc").unwrap_err().to_string();
    assert!(
        e.starts_with(
            "unknown variant `auc`, expected one of `rmse`, `mae`, `r2`, `mape`, `smape`, `accuracy`, `precision`, \
             `recall`, `f1`, `roc_auc`, `pr_auc`, `log_loss`"
        ),
        "{e}"
    );
}

#[test]
fn a_metric_computes_what_the_metric_tables_hold() {
    let y = [3.0, -0.5, 2.0, 7.0, 4.25, 1.0];
    let p = [2.5, 0.0, 2.0, 8.0, 4.0, 1.5];
    let table = RegressionMetrics::compute(&y, &p).unwrap();
    for name in MetricName::ALL {
        assert_eq!(Metric::from(name).compute(&y, &p).unwrap().to_bits(), table.get(name).to_bits(), "{name}");
    }
    let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let proba = [0.1, 0.8, 0.5, 0.6, 0.35, 0.2, 0.9];
    let table = ClassificationMetrics::compute(&labels, &proba, 0.5).unwrap();
    for name in ClassificationMetricName::ALL {
        assert_eq!(Metric::from(name).compute(&labels, &proba).unwrap().to_bits(), table.get(name).to_bits(), "{name}");
    }
    let e = Metric::from(ClassificationMetricName::RocAuc).compute(&[1.0, 1.0], &[0.2, 0.9]).unwrap_err();
    assert_eq!(e.code(), Code::NotEnoughRows);
    let e = Metric::from(MetricName::Rmse).compute(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err();
    assert_eq!(e.code(), Code::DataShape);
}

#[test]
fn splitters_cut_the_folds_of_their_functions() {
    let y = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
    assert_eq!(Splitter::kfold(3, None).split(&y).unwrap(), kfold(10, 3, None).unwrap());
    assert_eq!(Splitter::kfold(3, Some(7)).split(&y).unwrap(), kfold(10, 3, Some(7)).unwrap());
    assert_eq!(Splitter::stratified_kfold(2, None).split(&y).unwrap(), stratified_kfold(&y, 2, None).unwrap());
    assert_eq!(Splitter::stratified_kfold(3, Some(1)).split(&y).unwrap(), stratified_kfold(&y, 3, Some(1)).unwrap());
    let folds = Splitter::time_series(3, 1).split(&y).unwrap();
    let ranges = time_series_folds(10, 3, 1).unwrap();
    assert_eq!(folds.len(), ranges.len());
    for (f, r) in folds.iter().zip(ranges) {
        assert_eq!(f.train, r.train.collect::<Vec<_>>());
        assert_eq!(f.test, r.test.collect::<Vec<_>>());
    }
    assert_eq!(Splitter::time_series(4, 0).folds(), 4);
    assert_eq!(Splitter::kfold(1, None).split(&y).unwrap_err().to_string(), "invalid folds: must be at least 2, got 1");
    assert_eq!(Splitter::stratified_kfold(7, None).split(&y).unwrap_err().code(), Code::NotEnoughRows);
    assert_eq!(Splitter::time_series(3, 5).split(&y).unwrap_err().code(), Code::NotEnoughRows);
}

// ---------------------------------------------------------------- time holdout

fn spec(yaml: &str) -> HoldoutSpec {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn holdout_counts() {
    type R = std::ops::Range<usize>;
    // (n_rows, spec, min_gap, train, validation, gap, test)
    let cases: &[(usize, &str, usize, R, R, R, R)] = &[
        (100, "test_size: 0.2", 0, 0..80, 80..80, 80..80, 80..100),
        (100, "test_size: 20", 0, 0..80, 80..80, 80..80, 80..100),
        (101, "test_size: 0.2", 0, 0..80, 80..80, 80..80, 80..101), // 20.2 rounds up to 21
        (100, "test_size: 0.07", 0, 0..93, 93..93, 93..93, 93..100), // 7.000000000000001 is 7
        (100, "{test_size: 0.2, validation_size: 0.1}", 0, 0..70, 70..80, 80..80, 80..100),
        (100, "{test_size: 10, validation_size: 5, gap: 4}", 0, 0..81, 81..86, 86..90, 90..100),
        (100, "{test_size: 10, validation_size: 5, gap: 4}", 2, 0..81, 81..86, 86..90, 90..100), // config wider
        (100, "{test_size: 10, validation_size: 5}", 4, 0..81, 81..86, 86..90, 90..100),         // caller's minimum
        (100, "{test_size: 0.25, gap: 23}", 0, 0..52, 52..52, 52..75, 75..100),
        (2, "test_size: 1", 0, 0..1, 1..1, 1..1, 1..2),
        (17420, "{test_size: 0.2, validation_size: 0.1}", 23, 0..12171, 12171..13913, 13913..13936, 13936..17420),
    ];
    for (n, yaml, min_gap, train, validation, gap, test) in cases {
        let h = time_holdout(*n, &spec(yaml), *min_gap).unwrap();
        assert_eq!(
            h,
            Holdout { train: train.clone(), validation: validation.clone(), gap: gap.clone(), test: test.clone() },
            "{n} rows, {yaml}"
        );
        assert_eq!(h.fit_rows(), 0..validation.end.max(train.end));
        let parts = [&h.train, &h.validation, &h.gap, &h.test];
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start) && h.test.end == *n, "contiguous: {yaml}");
    }
}

#[test]
fn holdout_errors_name_the_part_and_counts() {
    let e = time_holdout(100, &spec("test_size: 100"), 0).unwrap_err();
    assert_eq!(e.code(), Code::NotEnoughRows);
    assert_eq!(e.to_string(), "time holdout of 100 rows leaves no rows for train (test 100, validation 0, gap 0)");
    let e = time_holdout(100, &spec("test_size: 500"), 0).unwrap_err();
    assert!(e.to_string().contains("no rows for train (test 500"), "{e}");
    let e = time_holdout(100, &spec("{test_size: 0.5, validation_size: 0.3}"), 20).unwrap_err();
    assert_eq!(e.to_string(), "time holdout of 100 rows leaves no rows for train (test 50, validation 30, gap 20)");
    let e = time_holdout(0, &spec("test_size: 0.2"), 0).unwrap_err();
    assert!(e.to_string().contains("no rows for test"), "{e}");

    // sizes built in code are checked too
    let bad = HoldoutSpec { test_size: Size::Fraction(1.5), validation_size: None, gap: 0 };
    let e = time_holdout(100, &bad, 0).unwrap_err();
    assert_eq!(e.code(), Code::ConfigInvalid);
    assert_eq!(e.to_string(), "invalid test_size: a fraction must be strictly between 0 and 1, got 1.5");
    let bad = HoldoutSpec { test_size: Size::Rows(5), validation_size: Some(Size::Rows(0)), gap: 0 };
    assert!(time_holdout(100, &bad, 0).unwrap_err().to_string().starts_with("invalid validation_size"));
}

#[test]
fn holdout_yaml_shape() {
    assert_eq!(spec("test_size: 0.2").test_size, Size::Fraction(0.2));
    assert_eq!(spec("test_size: 500").test_size, Size::Rows(500));
    for (yaml, needle) in [
        ("test_size: 1.0", "strictly between 0 and 1, got 1"),
        ("test_size: 0", "at least 1, got 0"),
        ("test_size: -3", "at least 1, got -3"),
        ("test_size: 0.0", "strictly between 0 and 1"),
        ("test_size: 500.0", "write a row count as an integer"),
        ("test_size: big", "a fraction strictly between 0 and 1 (0.2) or a row count"),
        ("{test_size: 0.2, tests_size: 3}", "unknown field `tests_size`"),
        ("validation_size: 0.1", "missing field `test_size`"),
    ] {
        let e = serde_yaml::from_str::<HoldoutSpec>(yaml).unwrap_err().to_string();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
    let s = spec("{test_size: 0.2, validation_size: 300, gap: 4}");
    let back: HoldoutSpec = serde_yaml::from_str(&serde_yaml::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

// ---------------------------------------------------------------- gates

fn metrics(rmse: f64, r2: f64) -> RegressionMetrics {
    RegressionMetrics { rmse, mae: rmse * 0.8, r2, mape: 0.02, smape: 0.021 }
}

#[test]
fn gates_pass_with_details() {
    let spec: GateSpec = serde_yaml::from_str(
        "{max: {rmse: 0.01, mape: 0.05}, min: {r2: 0.5}, beat_baseline: rmse, max_overfit_ratio: 1.5}",
    )
    .unwrap();
    spec.validate().unwrap();
    let report = check_gates(&spec, &metrics(0.0051, 0.83), &metrics(0.0042, 0.9), &metrics(0.006, 0.7));
    assert!(report.passed(), "{report:?}");
    assert!(report.failures().is_empty());
    report.ensure_passed().unwrap();
    let got: Vec<(&str, &str)> = report.checks.iter().map(|c| (c.name.as_str(), c.detail.as_str())).collect();
    assert_eq!(
        got,
        [
            ("max_rmse", "test rmse 0.0051 <= 0.01"),
            ("max_mape", "test mape 0.02 <= 0.05"),
            ("min_r2", "test r2 0.83 >= 0.5"),
            ("beat_baseline_rmse", "test rmse 0.0051 < baseline 0.006"),
            ("max_overfit_ratio", "test rmse / train rmse = 0.0051 / 0.0042 = 1.21429 <= 1.5"),
        ]
    );
}

#[test]
fn gates_fail_with_details() {
    let spec: GateSpec =
        serde_yaml::from_str("{max: {rmse: 0.01}, min: {r2: 0.5}, beat_baseline: r2, max_overfit_ratio: 1.2}").unwrap();
    let report = check_gates(&spec, &metrics(0.02, 0.3), &metrics(0.01, 0.9), &metrics(0.03, 0.3));
    assert!(!report.passed());
    let failed: Vec<&str> = report.failures().iter().map(|c| c.detail.as_str()).collect();
    assert_eq!(
        failed,
        [
            "test rmse 0.02 > 0.01",
            "test r2 0.3 < 0.5",
            "test r2 0.3 does not beat baseline 0.3 (higher is better)",
            "test rmse / train rmse = 0.02 / 0.01 = 2 > 1.2",
        ]
    );
    let e = report.ensure_passed().unwrap_err();
    assert_eq!(e.code(), Code::GateFailed);
    assert!(e.to_string().starts_with("4 of 4 gates failed: test rmse 0.02 > 0.01; test r2 0.3 < 0.5"), "{e}");

    // a value that differs from the limit beyond 6 digits is shown in full
    let spec = GateSpec { max: BTreeMap::from([(MetricName::Rmse, 0.01)]), ..GateSpec::default() };
    let report = check_gates(&spec, &metrics(0.0100000001, 0.9), &metrics(0.01, 0.9), &metrics(0.01, 0.9));
    assert_eq!(report.checks[0].detail, "test rmse 0.0100000001 > 0.01");
}

#[test]
fn gate_spec_yaml_and_validation() {
    let empty: GateSpec = serde_yaml::from_str("{}").unwrap();
    assert!(empty.is_empty());
    let report = check_gates(&empty, &metrics(1.0, 0.0), &metrics(1.0, 0.0), &metrics(1.0, 0.0));
    assert!(report.passed() && report.checks.is_empty());

    for (yaml, needle) in [
        ("{max: {rsme: 0.1}}", "unknown variant `rsme`"),
        ("{maximum: {rmse: 0.1}}", "unknown field `maximum`"),
        // classification metrics belong to classification gates (`ClassificationGateSpec`)
        ("{beat_baseline: accuracy}", "unknown variant `accuracy`"),
    ] {
        let e = serde_yaml::from_str::<GateSpec>(yaml).unwrap_err().to_string();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
    let nan: GateSpec = serde_yaml::from_str("{max: {mae: .nan}}").unwrap();
    let e = nan.validate().unwrap_err();
    assert_eq!(e.code(), Code::ConfigInvalid);
    assert_eq!(e.to_string(), "invalid gates.max.mae: must be a finite number, got NaN");
    let zero: GateSpec = serde_yaml::from_str("{max_overfit_ratio: 0}").unwrap();
    assert!(zero.validate().unwrap_err().to_string().starts_with("invalid gates.max_overfit_ratio"));
}

#[test]
fn overfit_ratio_and_verdict() {
    let r = overfit(&metrics(2.0, 0.9), &metrics(3.0, 0.8));
    assert_eq!((r.ratio, r.gap, r.verdict), (1.5, 1.0, OverfitVerdict::Ok), "1.5 itself is not a warning");
    let r = overfit(&metrics(2.0, 0.9), &metrics(3.2, 0.8));
    assert_eq!(r.verdict, OverfitVerdict::Warning);
    assert_eq!(overfit(&metrics(0.0, 1.0), &metrics(0.0, 1.0)).ratio, 1.0);
    let r = overfit(&metrics(0.0, 1.0), &metrics(0.1, 0.9));
    assert_eq!((r.ratio, r.verdict), (f64::INFINITY, OverfitVerdict::Warning));
    assert!(overfit(&metrics(2.0, 0.9), &metrics(1.0, 0.9)).ratio < 1.0);
}

// ---------------------------------------------------------------- tables

#[test]
fn value_formatting() {
    for (x, s) in [
        (0.0, "0"),
        (0.0051, "0.0051"),
        (1234.5678, "1234.57"),
        (-0.8749999999999998, "-0.875"),
        (1.0, "1"),
        (0.00012345678, "0.000123457"),
        (1.5e-7, "1.5e-7"),
        (12149816734307.215, "1.21498e13"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_eq!(format_value(x), s, "{x:?}");
    }
}

#[test]
fn tables() {
    let train = RegressionMetrics { rmse: 0.0042, mae: 0.0031, r2: 0.91, mape: 0.0123, smape: 0.0121 };
    let test = RegressionMetrics { rmse: 0.0051, mae: 0.0039, r2: 0.83, mape: 0.0151, smape: 0.015 };
    let naive = RegressionMetrics { rmse: 0.006, mae: 0.0045, r2: -0.0123, mape: 0.018, smape: 0.0178 };
    let rows = [("model train", &train), ("model test", &test), ("persistence test", &naive)];
    let text = comparison_table(&rows);
    let expect = concat!(
        "                    rmse     mae       r2    mape   smape\n",
        "model train       0.0042  0.0031     0.91  0.0123  0.0121\n",
        "model test        0.0051  0.0039     0.83  0.0151   0.015\n",
        "persistence test   0.006  0.0045  -0.0123   0.018  0.0178\n",
    );
    assert_eq!(text, expect, "\n{text}");
    let md = markdown_table(&[("model | test", &test)]);
    assert_eq!(
        md,
        "| | rmse | mae | r2 | mape | smape |\n| --- | ---: | ---: | ---: | ---: | ---: |\n\
         | model \\| test | 0.0051 | 0.0039 | 0.83 | 0.0151 | 0.015 |\n"
    );
}

// ---------------------------------------------------------------- classification

/// scikit-learn's docstring example (`roc_curve`, `precision_recall_curve`, `average_precision_score`):
/// y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8].
#[test]
fn classification_on_the_sklearn_docstring_example() {
    let (y, p) = ([0.0, 0.0, 1.0, 1.0], [0.1, 0.4, 0.35, 0.8]);
    let m = ClassificationMetrics::compute(&y, &p, 0.5).unwrap();
    assert_eq!(m.confusion, [[2, 0], [1, 1]]);
    assert_eq!((m.accuracy, m.precision, m.recall, m.f1), (0.75, 1.0, 0.5, 2.0 / 3.0));
    assert_eq!(m.roc_auc, 0.75);
    // AP = (1 - 0.5) * 1 + (0.5 - 0) * 2/3... by the docstring: 0.8333333333333333
    assert!((m.pr_auc - 0.8333333333333333).abs() < 1e-15, "{}", m.pr_auc);
    let by_hand = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
    assert!((m.log_loss - by_hand).abs() < 1e-15);

    let roc = roc_curve(&y, &p).unwrap();
    assert_eq!(roc.fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(roc.tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(roc.thresholds, [f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
    assert_eq!(roc.points()[2], (0.5, 0.5));
    let pr = precision_recall_curve(&y, &p).unwrap();
    assert_eq!(pr.precision, [0.5, 2.0 / 3.0, 0.5, 1.0, 1.0]);
    assert_eq!(pr.recall, [1.0, 1.0, 0.5, 0.5, 0.0]);
    assert_eq!(pr.thresholds, [0.1, 0.35, 0.4, 0.8]);
    // the staircase holds each precision until the next recall
    assert_eq!(
        pr.step_points(),
        [
            (1.0, 0.5),
            (1.0, 0.5),
            (1.0, 2.0 / 3.0),
            (0.5, 2.0 / 3.0),
            (0.5, 0.5),
            (0.5, 0.5),
            (0.5, 1.0),
            (0.0, 1.0),
            (0.0, 1.0)
        ]
    );
}

#[test]
fn classification_ties_and_thresholds() {
    // all scores tied: the ROC curve is the diagonal, AUC 0.5, AP the positive rate
    let y = [0.0, 1.0, 0.0, 0.0];
    let m = ClassificationMetrics::compute(&y, &[0.3; 4], 0.3).unwrap();
    assert_eq!((m.roc_auc, m.pr_auc), (0.5, 0.25));
    assert_eq!(m.confusion, [[0, 3], [0, 1]], "proba >= threshold is positive");
    // nothing predicted positive: precision and F1 are 0 (zero division), not NaN
    let m = ClassificationMetrics::compute(&y, &[0.1, 0.2, 0.3, 0.4], 0.9).unwrap();
    assert_eq!((m.precision, m.recall, m.f1, m.accuracy), (0.0, 0.0, 0.0, 0.75));
    // a tie between one positive and one negative counts half
    let m = ClassificationMetrics::compute(&[0.0, 1.0], &[0.5, 0.5], 0.5).unwrap();
    assert_eq!(m.roc_auc, 0.5);
    let m = ClassificationMetrics::compute(&[0.0, 1.0, 1.0], &[0.2, 0.2, 0.9], 0.5).unwrap();
    assert_eq!(m.roc_auc, 0.75);
    // exact 0 and 1 probabilities are clipped: the loss is finite
    let m = ClassificationMetrics::compute(&[0.0, 1.0], &[1.0, 0.0], 0.5).unwrap();
    assert_eq!(m.log_loss, -f64::EPSILON.ln());
    assert_eq!(m.iter()[6], (ClassificationMetricName::LogLoss, m.log_loss));
}

#[test]
fn classification_rejects_bad_input_naming_it() {
    let err = |y: &[f64], p: &[f64], t: f64| ClassificationMetrics::compute(y, p, t).unwrap_err();
    let e = err(&[0.0, 1.0], &[0.5], 0.5);
    assert_eq!((e.code(), e.to_string()), (Code::DataShape, "y_true has 2 values but proba has 1".to_string()));
    let e = err(&[], &[], 0.5);
    assert_eq!((e.code(), e.to_string()), (Code::NotEnoughRows, "no rows to evaluate: y_true is empty".to_string()));
    let e = err(&[0.0, 2.0], &[0.5, 0.5], 0.5);
    assert_eq!(e.to_string(), "y_true has 2 at index 1; binary labels must be 0 or 1");
    assert_eq!(e.code(), Code::DataShape);
    assert!(err(&[f64::NAN, 1.0], &[0.5, 0.5], 0.5).to_string().starts_with("y_true has NaN at index 0"));
    let e = err(&[0.0, 1.0], &[0.5, 1.5], 0.5);
    assert_eq!(e.to_string(), "proba has 1.5 at index 1; probabilities must lie in [0, 1]");
    assert!(err(&[0.0, 1.0], &[f64::NAN, 0.5], 0.5).to_string().starts_with("proba has NaN at index 0"));
    assert!(err(&[0.0, 1.0], &[-0.1, 0.5], 0.5).to_string().starts_with("proba has -0.1 at index 0"));
    let e = err(&[0.0, 1.0], &[0.5, 0.5], f64::NAN);
    assert_eq!(
        (e.code(), e.to_string()),
        (Code::ConfigInvalid, "invalid threshold: must be a probability in [0, 1], got NaN".to_string())
    );

    let e = err(&[1.0, 1.0, 1.0], &[0.2, 0.5, 0.9], 0.5);
    assert_eq!(e.code(), Code::NotEnoughRows);
    assert_eq!(e.to_string(), "roc_auc is undefined when y_true holds a single class (all 3 labels are 1)");
    let e = roc_curve(&[0.0, 0.0], &[0.2, 0.5]).unwrap_err();
    assert_eq!(e.to_string(), "the ROC curve is undefined when y_true holds a single class (all 2 labels are 0)");
    assert!(precision_recall_curve(&[1.0], &[0.2]).unwrap_err().to_string().contains("single class"));
}

#[test]
fn best_f1_threshold_breaks_ties_upwards() {
    // F1 at 0.9: 2/3; at 0.8: 1/2; at 0.7: 2/5; at 0.6: 2/3 again: the higher threshold wins
    let y = [1.0, 0.0, 0.0, 1.0];
    let best = best_f1_threshold(&y, &[0.9, 0.8, 0.7, 0.6]).unwrap();
    assert_eq!(best, F1Threshold { threshold: 0.9, f1: 2.0 / 3.0 });
    // all positive: the lowest score predicts everything positive, F1 = 1
    assert_eq!(best_f1_threshold(&[1.0, 1.0], &[0.2, 0.7]).unwrap(), F1Threshold { threshold: 0.2, f1: 1.0 });
    let e = best_f1_threshold(&[0.0, 0.0], &[0.2, 0.7]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the F1-optimal threshold is undefined when y_true holds a single class (all 2 labels are 0)"
    );
}

#[test]
fn majority_baseline() {
    let b = MajorityClassBaseline::fit(&[0.0, 1.0, 0.0, 0.0]).unwrap();
    assert_eq!((b.majority, b.positive_share), (0, 0.25));
    assert_eq!((b.predict(2), b.predict_proba(2)), (vec![0.0, 0.0], vec![0.25, 0.25]));
    let m = b.evaluate(&[1.0, 0.0, 0.0]).unwrap();
    assert_eq!(m.confusion, [[2, 0], [1, 0]]);
    assert_eq!((m.roc_auc, m.f1, m.accuracy), (0.5, 0.0, 2.0 / 3.0));
    // a tie makes class 1 the majority, whatever the threshold a model uses
    let b = MajorityClassBaseline::fit(&[0.0, 1.0]).unwrap();
    assert_eq!((b.majority, b.positive_share), (1, 0.5));
    assert_eq!(b.evaluate(&[0.0, 1.0]).unwrap().confusion, [[0, 1], [0, 1]]);
    assert_eq!(MajorityClassBaseline::fit(&[]).unwrap_err().to_string(), "no rows to evaluate: y_train is empty");
    assert!(MajorityClassBaseline::fit(&[0.0, 3.0]).is_err());
}

#[test]
fn classification_metric_names() {
    let names: Vec<&str> = ClassificationMetricName::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"]);
    for m in ClassificationMetricName::ALL {
        assert_eq!(ClassificationMetricName::parse(m.as_str()), Some(m));
        let yaml: ClassificationMetricName = serde_yaml::from_str(m.as_str()).unwrap();
        assert_eq!(yaml, m);
        assert_eq!(serde_yaml::to_string(&m).unwrap().trim(), m.as_str());
        assert_eq!(m.higher_is_better(), m != ClassificationMetricName::LogLoss, "{m}");
    }
    assert!(ClassificationMetricName::LogLoss.is_better(0.3, 0.4));
    assert!(ClassificationMetricName::RocAuc.is_better(0.8, 0.5) && !ClassificationMetricName::F1.is_better(0.5, 0.5));
}

fn class_metrics(roc_auc: f64, f1: f64, log_loss: f64) -> ClassificationMetrics {
    ClassificationMetrics {
        accuracy: 0.8,
        precision: 0.6,
        recall: 0.5,
        f1,
        roc_auc,
        pr_auc: 0.6,
        log_loss,
        confusion: [[900, 100], [150, 150]],
    }
}

#[test]
fn classification_gates() {
    let spec: ClassificationGateSpec = serde_yaml::from_str(
        "{max: {log_loss: 0.5}, min: {roc_auc: 0.8, f1: 0.5}, beat_baseline: roc_auc, max_overfit_ratio: 1.3}",
    )
    .unwrap();
    spec.validate().unwrap();
    let (test, train, base) =
        (class_metrics(0.84, 0.56, 0.42), class_metrics(0.88, 0.6, 0.36), class_metrics(0.5, 0.0, 0.58));
    let report = check_classification_gates(&spec, &test, &train, &base);
    let got: Vec<(&str, bool, &str)> =
        report.checks.iter().map(|c| (c.name.as_str(), c.passed, c.detail.as_str())).collect();
    assert_eq!(
        got,
        [
            ("max_log_loss", true, "test log_loss 0.42 <= 0.5"),
            ("min_f1", true, "test f1 0.56 >= 0.5"),
            ("min_roc_auc", true, "test roc_auc 0.84 >= 0.8"),
            ("beat_baseline_roc_auc", true, "test roc_auc 0.84 > baseline 0.5"),
            ("max_overfit_ratio", true, "test log_loss / train log_loss = 0.42 / 0.36 = 1.16667 <= 1.3"),
        ]
    );
    // log_loss is lower-is-better against the baseline too
    let spec: ClassificationGateSpec =
        serde_yaml::from_str("{beat_baseline: log_loss, max_overfit_ratio: 1.1}").unwrap();
    let report = check_classification_gates(&spec, &class_metrics(0.6, 0.1, 0.6), &train, &base);
    let failed: Vec<&str> = report.failures().iter().map(|c| c.detail.as_str()).collect();
    assert_eq!(
        failed,
        [
            "test log_loss 0.6 does not beat baseline 0.58 (lower is better)",
            "test log_loss / train log_loss = 0.6 / 0.36 = 1.66667 > 1.1"
        ]
    );
    let r = classification_overfit(&train, &class_metrics(0.6, 0.1, 0.6));
    assert_eq!(r.verdict, OverfitVerdict::Warning);

    // each task's gates know only its own metrics
    for (yaml, needle) in
        [("{min: {rmse: 0.1}}", "unknown variant `rmse`"), ("{beat_baseline: r2}", "unknown variant `r2`")]
    {
        let e = serde_yaml::from_str::<ClassificationGateSpec>(yaml).unwrap_err().to_string();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
    let e = serde_yaml::from_str::<GateSpec>("{min: {roc_auc: 0.8}}").unwrap_err().to_string();
    assert!(e.contains("unknown variant `roc_auc`"), "{e}");
    let nan: ClassificationGateSpec = serde_yaml::from_str("{min: {f1: .nan}}").unwrap();
    assert_eq!(nan.validate().unwrap_err().to_string(), "invalid gates.min.f1: must be a finite number, got NaN");
    assert!(ClassificationGateSpec::default().is_empty());
}

#[test]
fn classification_tables() {
    let rows = [
        ("model (train)", &class_metrics(0.88, 0.6, 0.36)),
        ("model (test)", &class_metrics(0.84, 0.56, 0.42)),
        ("majority (test)", &class_metrics(0.5, 0.0, 0.5784161766881627)),
    ];
    let text = classification_comparison_table(&rows);
    let expect = concat!(
        "                 accuracy  precision  recall    f1  roc_auc  pr_auc  log_loss\n",
        "model (train)         0.8        0.6     0.5   0.6     0.88     0.6      0.36\n",
        "model (test)          0.8        0.6     0.5  0.56     0.84     0.6      0.42\n",
        "majority (test)       0.8        0.6     0.5     0      0.5     0.6  0.578416\n",
    );
    assert_eq!(text, expect, "\n{text}");
    let md = classification_markdown_table(&rows[1..2]);
    assert_eq!(
        md,
        "| | accuracy | precision | recall | f1 | roc_auc | pr_auc | log_loss |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
         | model (test) | 0.8 | 0.6 | 0.5 | 0.56 | 0.84 | 0.6 | 0.42 |\n"
    );
    let text = confusion_table(["no", "yes"], [[4771, 403], [981, 888]]);
    let expect = concat!(
        "            predicted no  predicted yes\n",
        "actual no           4771            403\n",
        "actual yes           981            888\n",
    );
    assert_eq!(text, expect, "\n{text}");
}

// ---------------------------------------------------------------- shuffled splits and folds

#[test]
fn stratified_holdout_small_and_errors() {
    // 6 zeros and 4 ones, test 0.3 -> 3 rows: train keeps floor/largest remainder of (4.2, 2.8) = (4, 3)
    let labels = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
    let h = stratified_holdout(&labels, Size::Fraction(0.3), None, 1).unwrap();
    let ones = |rows: &[usize]| rows.iter().filter(|&&i| labels[i] == 1.0).count();
    assert_eq!((h.train.len(), ones(&h.train), h.test.len(), ones(&h.test)), (7, 3, 3, 1));
    assert!(h.validation.is_empty());

    let e = stratified_holdout(&[0.0, 0.0, 0.0, 1.0], Size::Rows(2), None, 0).unwrap_err();
    assert_eq!(e.code(), Code::NotEnoughRows);
    assert_eq!(
        e.to_string(),
        "cannot stratify: label 1 has only 1 row to share between train and test, at least 2 are needed"
    );
    let e = stratified_holdout(&labels, Size::Rows(1), None, 0).unwrap_err();
    assert_eq!(e.to_string(), "cannot stratify: test would get 1 rows, fewer than the 2 classes");
    let e = stratified_holdout(&labels, Size::Rows(5), Some(Size::Rows(5)), 0).unwrap_err();
    assert_eq!(e.to_string(), "cannot stratify: 10 rows leave none for train (test 5, validation 5)");
    let e = stratified_holdout(&labels, Size::Fraction(1.0), None, 0).unwrap_err();
    assert_eq!(e.code(), Code::ConfigInvalid);
    let e = stratified_holdout(&[0.0, f64::NAN], Size::Rows(1), None, 0).unwrap_err();
    assert_eq!(e.to_string(), "labels has a non-finite value (NaN) at index 1");
    assert_eq!(
        stratified_holdout(&[], Size::Rows(1), None, 0).unwrap_err().to_string(),
        "no rows to evaluate: labels is empty"
    );
    // any finite values are classes; -0.0 and 0.0 are one class
    let h = stratified_holdout(&[-0.0, 0.0, 2.5, 2.5], Size::Rows(2), None, 0).unwrap();
    assert_eq!((h.train.len(), h.test.len()), (2, 2));
}

#[test]
fn folds_small_and_errors() {
    let folds = kfold(7, 3, None).unwrap();
    let tests: Vec<Vec<usize>> = folds.iter().map(|f| f.test.clone()).collect();
    assert_eq!(tests, [vec![0, 1, 2], vec![3, 4], vec![5, 6]], "the first n % k folds are one larger");
    assert_eq!(folds[1].train, [0, 1, 2, 5, 6]);
    let e = kfold(7, 1, None).unwrap_err();
    assert_eq!(
        (e.code(), e.to_string()),
        (Code::ConfigInvalid, "invalid folds: must be at least 2, got 1".to_string())
    );
    assert_eq!(kfold(3, 5, None).unwrap_err().to_string(), "cannot make 5 folds: there are only 3 rows");

    // y = [1 1 0 0 0 1 0 0]: classes by first appearance (1, then 0), dealt round-robin: 3 ones over 2 folds (2, 1)
    let y = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let folds = stratified_kfold(&y, 2, None).unwrap();
    assert_eq!(folds[0].test, [0, 1, 2, 3]);
    assert_eq!(folds[1].test, [4, 5, 6, 7]);
    let e = stratified_kfold(&y, 6, None).unwrap_err();
    assert_eq!(e.to_string(), "cannot make 6 folds: no class has that many rows (the largest has 5)");
    assert_eq!(e.code(), Code::NotEnoughRows);

    let f = time_series_folds(10, 3, 1).unwrap();
    assert_eq!(f[0], TimeFold { train: 0..3, gap: 3..4, test: 4..6 });
    assert_eq!(f[2], TimeFold { train: 0..7, gap: 7..8, test: 8..10 });
    assert!(time_series_folds(10, 1, 0).unwrap_err().to_string().starts_with("invalid folds"));
}

#[test]
fn splitmix_shuffle_is_a_uniform_permutation() {
    let mut rng = crate::shuffled::SplitMix64::new(7);
    // SplitMix64's published first output for seed 0 (Vigna's reference C code): 0xE220A8397B1DCDAF
    assert_eq!(crate::shuffled::SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    let mut hits = [0u32; 3];
    for _ in 0..30_000 {
        let mut v = [0usize, 1, 2];
        rng.shuffle(&mut v);
        let mut sorted = v;
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2]);
        hits[v[0]] += 1;
        assert!(rng.below(5) < 5);
    }
    // each element first about a third of the time (binomial sd ~82)
    assert!(hits.iter().all(|&h| (9_500..10_500).contains(&h)), "{hits:?}");
}

#[test]
fn purge_and_embargo_leave_out_the_training_rows_around_each_test_row() {
    let y = vec![0.0; 100];
    let plain = Splitter::kfold(5, None).split(&y).unwrap();
    let purged = Splitter::kfold(5, None).with_purge(3, 2).split(&y).unwrap();
    for (p, f) in purged.iter().zip(&plain) {
        assert_eq!(p.test, f.test);
        let (a, b) = (f.test[0], *f.test.last().unwrap() + 1);
        // exactly the rows of [a - 3, a) and [b, b + 2) are gone, and no others
        let expected: Vec<usize> = f
            .train
            .iter()
            .copied()
            .filter(|&r| !(a.saturating_sub(3)..a).contains(&r) && !(b..b + 2).contains(&r))
            .collect();
        assert_eq!(p.train, expected);
        assert!(p.train.len() < f.train.len() || a == 0 && b == 100);
    }
    // a walk-forward splitter is left as it is (its gap is its purge)
    assert_eq!(Splitter::time_series(3, 1).with_purge(5, 5), Splitter::time_series(3, 1));
    // around scattered test rows (stratified), every test row's neighbourhood is left out
    let labels: Vec<f64> = (0..60).map(|i| f64::from(i % 3 == 0)).collect();
    for fold in Splitter::stratified_kfold(4, None).with_purge(1, 1).split(&labels).unwrap() {
        for &t in &fold.test {
            assert!(!fold.train.contains(&t.saturating_sub(1)) || fold.test.contains(&t.saturating_sub(1)));
            assert!(!fold.train.contains(&(t + 1)));
        }
    }
}
