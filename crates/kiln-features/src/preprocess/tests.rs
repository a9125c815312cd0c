//! Tests of the preprocessing steps on the real Telco churn data (`data/Telco-Customer-Churn_IBM.csv`, 7043 rows),
//! against scikit-learn and pandas run at test time on the same CSV by `reference.py` (next to this file), and of
//! leakage, serde, YAML parsing and error messages.
//!
//! Every numeric comparison allows a maximum absolute difference of 1e-9 and requires missing values in the same
//! places.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use kiln_domain::{Code, Column, Frame};
use serde_json::Value;

use crate::{
    FeatureError, FillValue, FittedPreprocessor, FittedStep, ImputeStrategy, PreprocessSpec, Preprocessor, ScaleMethod,
    frame_to_matrix,
};

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

/// The training part: estimators are fitted on rows [0, TRAIN) and transform every row (as in reference.py).
const TRAIN: usize = 5000;
const NUMERIC: [&str; 4] = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"];
const TOLERANCE: f64 = 1e-9;

fn data_file() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data/Telco-Customer-Churn_IBM.csv")
}

/// The CSV as a frame: the numeric columns as numbers (a blank cell, as in 11 TotalCharges cells, is NaN), the
/// others as labels.
fn telco() -> Frame {
    let mut reader = csv::Reader::from_path(data_file()).expect("data/Telco-Customer-Churn_IBM.csv is readable");
    let headers: Vec<String> = reader.headers().expect("a header row").iter().map(str::to_string).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for record in reader.records() {
        let record = record.expect("a well-formed CSV row");
        for (j, cell) in record.iter().enumerate() {
            cells[j].push(cell.to_string());
        }
    }
    let columns = headers
        .into_iter()
        .zip(cells)
        .map(|(name, values)| {
            let column = if NUMERIC.contains(&name.as_str()) {
                Column::Numeric(
                    values
                        .iter()
                        .map(|v| if v.trim().is_empty() { f64::NAN } else { v.trim().parse().expect("a number") })
                        .collect(),
                )
            } else {
                Column::Categorical(values.into_iter().map(Some).collect())
            };
            (name, column)
        })
        .collect();
    Frame::new(columns).expect("a valid frame")
}

/// A copy of `frame` with the column `name` replaced.
fn with_column(frame: &Frame, name: &str, column: Column) -> Frame {
    let columns =
        frame.columns().map(|(n, c)| (n.to_string(), if n == name { column.clone() } else { c.clone() })).collect();
    Frame::new(columns).expect("same shape")
}

fn map_labels(frame: &Frame, name: &str, f: impl Fn(usize, &Option<String>) -> Option<String>) -> Frame {
    let values = frame.categorical(name).expect("a categorical column");
    with_column(frame, name, Column::Categorical(values.iter().enumerate().map(|(i, v)| f(i, v)).collect()))
}

fn map_numbers(frame: &Frame, name: &str, f: impl Fn(usize, f64) -> f64) -> Frame {
    let values = frame.numeric(name).expect("a numeric column");
    with_column(frame, name, Column::Numeric(values.iter().enumerate().map(|(i, &v)| f(i, v)).collect()))
}

/// The Telco frame with the edits reference.py makes: PaymentMethod missing on rows % 13 == 0; from row TRAIN on,
/// the unseen categories "Satellite" (InternetService, rows % 17 == 0) and "Four year" (Contract, rows % 101 == 0).
fn scenario() -> &'static Frame {
    static FRAME: OnceLock<Frame> = OnceLock::new();
    FRAME.get_or_init(|| {
        let frame = telco();
        assert_eq!(frame.n_rows(), 7043);
        let frame = map_labels(&frame, "PaymentMethod", |i, v| if i % 13 == 0 { None } else { v.clone() });
        let frame = map_labels(&frame, "InternetService", |i, v| {
            if i >= TRAIN && i % 17 == 0 { Some("Satellite".into()) } else { v.clone() }
        });
        map_labels(
            &frame,
            "Contract",
            |i, v| if i >= TRAIN && i % 101 == 0 { Some("Four year".into()) } else { v.clone() },
        )
    })
}

/// scikit-learn's and pandas' results, computed now by `reference.py` on the same CSV.
fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let python = format!(
            "{}/../../.venv/bin/python",
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
        );
        let script = format!(
            "{}/src/preprocess/reference.py",
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
        );
        let output = Command::new(&python).arg(script).arg(data_file()).output().unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); run `make venv` to create the Python reference environment")
        });
        assert!(output.status.success(), "reference.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
        let value: Value = serde_json::from_slice(&output.stdout).expect("reference.py prints JSON");
        assert_eq!(value["n_rows"], 7043);
        value
    })
}

/// Parses a `preprocess:` list the way kiln's config loader does: YAML, through JSON's data model, into the type.
fn parse(yaml: &str) -> Result<Preprocessor, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    serde_json::from_value(json).map_err(|e| e.to_string())
}

fn steps(yaml: &str) -> Preprocessor {
    parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn fit_train(pre: &Preprocessor, frame: &Frame) -> FittedPreprocessor {
    pre.fit(&frame.slice(0, TRAIN)).unwrap_or_else(|e| panic!("fit: {e}"))
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

fn labels(v: &Value) -> Vec<Option<String>> {
    v.as_array().expect("an array").iter().map(|x| x.as_str().map(str::to_string)).collect()
}

/// Checks `actual` against a reference array (null = NaN) and returns the largest absolute difference.
fn assert_close(actual: &[f64], expected: &Value, what: &str) -> f64 {
    let expected = numbers(expected);
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst = 0.0_f64;
    for (i, (&a, &e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a.is_nan(), e.is_nan(), "{what}[{i}]: expected {e}, got {a}");
        if !e.is_nan() {
            let diff = (a - e).abs();
            assert!(diff < TOLERANCE, "{what}[{i}]: expected {e}, got {a} (difference {diff:e})");
            worst = worst.max(diff);
        }
    }
    worst
}

fn assert_labels(actual: &[Option<String>], expected: &Value, what: &str) {
    let expected = labels(expected);
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "{what}[{i}]");
    }
}

/// Frames equal in names, types and values, NaN equal to NaN.
fn same_frame(a: &Frame, b: &Frame) -> bool {
    a.names() == b.names()
        && a.columns().zip(b.columns()).all(|((_, x), (_, y))| match (x, y) {
            (Column::Numeric(x), Column::Numeric(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
            }
            _ => x == y,
        })
}

fn error_of(pre: &Preprocessor, frame: &Frame) -> FeatureError {
    match pre.fit(frame) {
        Ok(_) => panic!("fitting {pre:?} should fail"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// against scikit-learn and pandas
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn scalers_match_scikit_learn() {
    let reference = reference();
    let scaled = ["tenure", "MonthlyCharges", "TotalCharges"];
    for method in ["standard", "minmax", "robust"] {
        let expected = &reference[format!("scale_{method}")];
        let pre = steps(&format!("- scale: {{columns: [tenure, MonthlyCharges, TotalCharges], method: {method}}}"));
        let fitted = fit_train(&pre, scenario());
        let FittedStep::Scale(step) = &fitted.steps()[0] else { panic!("a scale step") };
        let centers: Vec<f64> = step.columns.iter().map(|c| c.center).collect();
        let scales: Vec<f64> = step.columns.iter().map(|c| c.scale).collect();
        assert_close(&centers, &expected["center"], &format!("{method} center"));
        assert_close(&scales, &expected["scale"], &format!("{method} scale"));

        let out = fitted.transform(scenario()).expect("transform");
        let mut worst = 0.0_f64;
        for (j, name) in scaled.iter().enumerate() {
            let what = format!("{method} {name}");
            worst = worst.max(assert_close(out.numeric(name).expect("numeric"), &expected["out"][j], &what));
        }
        eprintln!("scale {method}: max abs difference to scikit-learn {worst:e}");

        // the type selector picks the same columns (SeniorCitizen excluded) and learns the same state
        let by_type = steps(&format!("- scale: {{columns: numeric, exclude: [SeniorCitizen], method: {method}}}"));
        assert_eq!(fit_train(&by_type, scenario()), fitted);

        // a constant column gets the scale 1 (scikit-learn's zero-variance rule), so it becomes 0
        let constant = Frame::new(vec![("c".into(), Column::Numeric(vec![0.1; 50]))]).expect("frame");
        let (_, out) = pre_scale_c(method).fit_transform(&constant).expect("fit constant");
        assert_close(out.numeric("c").expect("numeric"), &expected["constant"], &format!("{method} constant"));
    }
}

fn pre_scale_c(method: &str) -> Preprocessor {
    steps(&format!("- scale: {{columns: [c], method: {method}}}"))
}

#[test]
fn imputers_match_scikit_learn() {
    let reference = reference();
    for strategy in ["mean", "median", "most_frequent", "constant"] {
        let expected = &reference[format!("impute_{strategy}")];
        let value = if strategy == "constant" { ", value: -1.5" } else { "" };
        let pre = steps(&format!("- impute: {{columns: [TotalCharges], strategy: {strategy}{value}}}"));
        let fitted = fit_train(&pre, scenario());
        let FittedStep::Impute(step) = &fitted.steps()[0] else { panic!("an impute step") };
        let Some(FillValue::Number(stat)) = step.columns[0].value else { panic!("a numeric fill value") };
        assert_close(&[stat], &Value::Array(vec![expected["stat"].clone()]), &format!("{strategy} statistic"));
        let out = fitted.transform(scenario()).expect("transform");
        let worst = assert_close(out.numeric("TotalCharges").expect("numeric"), &expected["out"], strategy);
        assert!(out.numeric("TotalCharges").expect("numeric").iter().all(|v| !v.is_nan()));
        eprintln!("impute {strategy}: statistic {stat}, max abs difference to scikit-learn {worst:e}");
    }
    for strategy in ["most_frequent", "constant"] {
        let expected = &reference[format!("impute_cat_{strategy}")];
        let value = if strategy == "constant" { ", value: missing" } else { "" };
        let pre = steps(&format!("- impute: {{columns: [PaymentMethod], strategy: {strategy}{value}}}"));
        let fitted = fit_train(&pre, scenario());
        let FittedStep::Impute(step) = &fitted.steps()[0] else { panic!("an impute step") };
        assert_eq!(step.columns[0].value, Some(FillValue::Text(expected["stat"].as_str().expect("str").into())));
        let out = fitted.transform(scenario()).expect("transform");
        assert_labels(out.categorical("PaymentMethod").expect("categorical"), &expected["out"], strategy);
    }

    // ties of most_frequent go to the smallest value, as scikit-learn breaks them
    let ties = Frame::new(vec![
        ("n".into(), Column::Numeric(vec![3.0, 1.0, 3.0, 1.0, f64::NAN, 2.0])),
        (
            "c".into(),
            Column::Categorical(
                ["b", "a", "b", "a", "", "c"].iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect(),
            ),
        ),
    ])
    .expect("frame");
    let (_, out) = steps("- impute: {columns: [n, c], strategy: most_frequent}").fit_transform(&ties).expect("fit");
    assert_eq!(out.numeric("n").expect("n")[4], reference["ties"]["num"].as_f64().expect("number"));
    assert_eq!(out.categorical("c").expect("c")[4].as_deref(), reference["ties"]["cat"].as_str());
}

#[test]
fn forward_fill_continues_the_training_rows() {
    let reference = reference();
    // rows TRAIN-1 and TRAIN missing, as in reference.py: the training rows end with a gap, the scoring rows start
    // with one, which the last training value (row TRAIN-2) fills
    let gaps = map_numbers(scenario(), "TotalCharges", |i, v| if i == TRAIN - 1 || i == TRAIN { f64::NAN } else { v });
    let gaps = map_labels(&gaps, "PaymentMethod", |i, v| if i == TRAIN - 1 || i == TRAIN { None } else { v.clone() });
    let fitted = fit_train(&steps("- impute: {columns: [TotalCharges, PaymentMethod], strategy: forward_fill}"), &gaps);
    let FittedStep::Impute(step) = &fitted.steps()[0] else { panic!("an impute step") };
    assert_eq!(step.strategy, ImputeStrategy::ForwardFill);
    assert_eq!(step.columns[0].value, Some(FillValue::Number(gaps.numeric("TotalCharges").expect("n")[TRAIN - 2])));
    let label = gaps.categorical("PaymentMethod").expect("c")[TRAIN - 2].clone().expect("a label");
    assert_eq!(step.columns[1].value, Some(FillValue::Text(label)));

    let out = fitted.transform(&gaps.slice(TRAIN, gaps.n_rows())).expect("transform");
    assert_close(out.numeric("TotalCharges").expect("numeric"), &reference["ffill"]["num"], "ffill TotalCharges");
    assert_labels(out.categorical("PaymentMethod").expect("categorical"), &reference["ffill"]["cat"], "ffill labels");

    // inside one frame it is pandas' ffill; a training column with no value at all leaves its gaps
    let frame = Frame::new(vec![
        ("x".into(), Column::Numeric(vec![1.0, f64::NAN, f64::NAN, 4.0, f64::NAN])),
        ("y".into(), Column::Numeric(vec![f64::NAN; 5])),
    ])
    .expect("frame");
    let (fitted, out) =
        steps("- impute: {columns: [x, y], strategy: forward_fill}").fit_transform(&frame).expect("fit");
    assert_eq!(out.numeric("x").expect("x"), &[1.0, 1.0, 1.0, 4.0, 4.0]);
    assert!(out.numeric("y").expect("y").iter().all(|v| v.is_nan()));
    let FittedStep::Impute(step) = &fitted.steps()[0] else { panic!("an impute step") };
    assert_eq!(step.columns[1].value, None);
}

#[test]
fn one_hot_matches_scikit_learn() {
    let reference = reference();
    let encoded: Vec<String> = ["Contract", "PaymentMethod", "InternetService", "gender"].map(String::from).to_vec();
    let frame = scenario().select(&encoded).expect("columns");
    for drop in ["none", "first", "if_binary"] {
        let expected = &reference[format!("one_hot_{drop}")];
        let pre = steps(&format!(
            "- one_hot: {{columns: [Contract, PaymentMethod, InternetService, gender], unknown: ignore, drop: {drop}}}"
        ));
        let fitted = fit_train(&pre, &frame);
        let names: Vec<String> =
            expected["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("str").into()).collect();
        assert_eq!(fitted.output_names(), names.as_slice(), "drop: {drop}");
        let out = fitted.transform(&frame).expect("transform");
        assert_eq!(out.names(), names.as_slice());
        for (j, name) in names.iter().enumerate() {
            assert_close(out.numeric(name).expect("numeric"), &expected["out"][j], &format!("{drop} {name}"));
        }
        // the unseen categories of the scoring rows are all-zero rows
        let row = 5015; // InternetService "Satellite"
        assert!(
            names.iter().filter(|n| n.starts_with("InternetService_")).all(|n| out.numeric(n).expect("n")[row] == 0.0)
        );
    }

    // unknown: error refuses the first unseen category and names it
    let strict = steps("- one_hot: {columns: [Contract, PaymentMethod, InternetService, gender]}");
    let fitted = fit_train(&strict, &frame);
    let err = fitted.transform(&frame).expect_err("an unseen category");
    assert_eq!(
        err.to_string(),
        "preprocess[0].one_hot: column 'Contract' holds the category 'Four year' at row 5051, which the training rows \
         did not have (set `unknown: ignore` to accept it)"
    );
    assert_eq!(err.code(), Code::DataShape);
    // a missing value the training rows did not have is unknown too
    let payment = ["PaymentMethod".to_string()];
    let strict = steps("- one_hot: {columns: [PaymentMethod]}");
    let fitted = fit_train(&strict, &telco().select(&payment).expect("columns"));
    let err = fitted.transform(&scenario().select(&payment).expect("columns")).expect_err("a missing value");
    assert_eq!(
        err.to_string(),
        "preprocess[0].one_hot: column 'PaymentMethod' holds a missing value at row 1, which the training rows did \
         not have (set `unknown: ignore` to accept it)"
    );
}

#[test]
fn ordinal_matches_scikit_learn() {
    let reference = reference();
    let expected = &reference["ordinal"];
    let columns = ["Contract", "PaymentMethod", "InternetService", "gender"];
    let pre = steps(
        "- ordinal: {columns: [Contract, PaymentMethod, InternetService, gender], unknown: use_encoded_value, \
         unknown_value: -1}",
    );
    let fitted = fit_train(&pre, scenario());
    let FittedStep::Ordinal(step) = &fitted.steps()[0] else { panic!("an ordinal step") };
    for (j, column) in step.columns.iter().enumerate() {
        let cats: Vec<Option<String>> = column.categories.iter().cloned().map(Some).collect();
        assert_labels(&cats, &expected["categories"][j], &format!("{} categories", column.name));
    }
    let out = fitted.transform(scenario()).expect("transform");
    for (j, name) in columns.iter().enumerate() {
        assert_close(out.numeric(name).expect("numeric"), &expected["out"][j], &format!("ordinal {name}"));
    }
    // with unknown: error the training rows encode the same
    let strict = steps("- ordinal: {columns: [Contract, PaymentMethod, InternetService, gender]}");
    let train = scenario().slice(0, TRAIN);
    let (_, strict_out) = strict.fit_transform(&train).expect("fit");
    assert!(same_frame(&strict_out, &out.slice(0, TRAIN)));
    let err = strict.fit(&train).expect("fit").transform(scenario()).expect_err("an unseen category");
    assert_eq!(
        err.to_string(),
        "preprocess[0].ordinal: column 'Contract' holds the category 'Four year' at row 5051, which the training rows \
         did not have (set `unknown: use_encoded_value` to accept it)"
    );
}

#[test]
fn bin_matches_pandas_cut() {
    let reference = reference();
    let cases = [
        ("tenure_right", "column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long]"),
        (
            "tenure_left",
            "column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long], right: false",
        ),
        (
            "tenure_lowest",
            "column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long], include_lowest: true",
        ),
        (
            "charges_right",
            "column: MonthlyCharges, edges: [18.25, 35.5, 70.7, 89.85, 118.75], labels: [low, mid, high, top]",
        ),
        (
            "charges_left",
            "column: MonthlyCharges, edges: [18.25, 35.5, 70.7, 89.85, 118.75], labels: [low, mid, high, top], right: false",
        ),
    ];
    for (key, spec) in cases {
        let fitted = fit_train(&steps(&format!("- bin: {{{spec}, into: group}}")), scenario());
        let out = fitted.transform(scenario()).expect("transform");
        assert_eq!(out.names().last().map(String::as_str), Some("group"));
        let groups = out.categorical("group").expect("categorical");
        assert_labels(groups, &reference["bin"][key], key);
        if key == "tenure_right" {
            // tenure 0 is outside (0, 12]: missing, as pandas.cut has it
            assert_eq!(groups.iter().filter(|g| g.is_none()).count(), 11);
        }
    }
}

#[test]
fn ratio_and_product_match_pandas() {
    let reference = reference();
    let pre = steps(
        "- ratio: {numerator: MonthlyCharges, denominator: tenure, into: per_month}\n\
         - product: {columns: [tenure, MonthlyCharges], into: expected_total}",
    );
    let out = fit_train(&pre, scenario()).transform(scenario()).expect("transform");
    // a zero tenure gives NaN, not infinity
    assert_close(out.numeric("per_month").expect("numeric"), &reference["ratio"], "ratio");
    assert_close(out.numeric("expected_total").expect("numeric"), &reference["product"], "product");
    assert_eq!(&out.names()[out.n_cols() - 2..], ["per_month", "expected_total"]);
}

// ---------------------------------------------------------------------------------------------------------------
// leakage
// ---------------------------------------------------------------------------------------------------------------

/// Every row from TRAIN on changed wildly: numbers * 1000 + 7, every label renamed.
fn perturbed(frame: &Frame) -> Frame {
    let columns = frame
        .columns()
        .map(|(name, column)| {
            let column = match column {
                Column::Numeric(v) => Column::Numeric(
                    v.iter().enumerate().map(|(i, &x)| if i >= TRAIN { x * 1000.0 + 7.0 } else { x }).collect(),
                ),
                Column::Categorical(v) => Column::Categorical(
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| if i >= TRAIN { x.as_ref().map(|s| format!("{s} (renamed)")) } else { x.clone() })
                        .collect(),
                ),
                Column::Timestamp(v) => Column::Timestamp(v.clone()),
            };
            (name.to_string(), column)
        })
        .collect();
    Frame::new(columns).expect("same shape")
}

#[test]
fn fitting_sees_only_the_training_rows() {
    let frame = scenario()
        .select(&scenario().names().iter().filter(|n| n.as_str() != "customerID").cloned().collect::<Vec<_>>())
        .expect("columns");
    let changed = perturbed(&frame);
    // (step, whether fitting on all perturbed rows learns something else: the check that the perturbation would show)
    let cases = [
        ("impute: {columns: [TotalCharges], strategy: mean}", true),
        ("impute: {columns: [TotalCharges], strategy: median}", true),
        ("impute: {columns: [TotalCharges, PaymentMethod], strategy: most_frequent}", false),
        ("impute: {columns: [TotalCharges, PaymentMethod], strategy: forward_fill}", true),
        ("scale: {columns: numeric, method: standard}", true),
        ("scale: {columns: numeric, method: minmax}", true),
        ("scale: {columns: numeric, method: robust}", true),
        ("one_hot: {columns: categorical, unknown: ignore, drop: first}", true),
        ("ordinal: {columns: categorical, unknown: use_encoded_value, unknown_value: -1}", true),
        ("bin: {column: tenure, edges: [0, 12, 24, 48, inf], labels: [a, b, c, d], into: g}", false),
        ("ratio: {numerator: TotalCharges, denominator: tenure, into: r}", false),
        ("product: {columns: [tenure, MonthlyCharges], into: p}", false),
        ("drop: {columns: [gender]}", false),
    ];
    for (step, learns) in cases {
        let pre = steps(&format!("- {step}"));
        let clean = fit_train(&pre, &frame);
        let dirty = fit_train(&pre, &changed);
        let json = serde_json::to_string(&clean).expect("json");
        assert_eq!(
            json,
            serde_json::to_string(&dirty).expect("json"),
            "{step}: the fit saw rows past the training part"
        );
        let everything = serde_json::to_string(&pre.fit(&changed).expect("fit all")).expect("json");
        assert_eq!(
            json != everything,
            learns,
            "{step}: fitting on every row should {}differ",
            if learns { "" } else { "not " }
        );

        // the training rows transform the same whatever the later rows hold
        let train_out = clean.transform(&frame.slice(0, TRAIN)).expect("transform train");
        let all_out = clean.transform(&changed).expect("transform all");
        assert!(same_frame(&train_out, &all_out.slice(0, TRAIN)), "{step}: transform of the training rows changed");
        let (_, fit_out) = pre.fit_transform(&frame.slice(0, TRAIN)).expect("fit_transform");
        assert!(same_frame(&train_out, &fit_out), "{step}: fit_transform differs from transform");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// a whole pipeline, serde, parsing
// ---------------------------------------------------------------------------------------------------------------

const CHURN_PIPELINE: &str = "
- drop: {columns: [customerID]}
- impute: {columns: [TotalCharges], strategy: median}
- bin: {column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long], into: tenure_group,
        include_lowest: true}
- ratio: {numerator: TotalCharges, denominator: tenure, into: charges_per_month}
- impute: {columns: [charges_per_month], strategy: constant, value: 0}
- product: {columns: [tenure, MonthlyCharges], into: expected_total}
- scale: {columns: numeric, exclude: [SeniorCitizen], method: robust}
- one_hot: {columns: categorical, unknown: ignore, drop: if_binary}
";

/// The Telco features: every column but the target `Churn`.
fn churn_features() -> Frame {
    let names: Vec<String> = scenario().names().iter().filter(|n| n.as_str() != "Churn").cloned().collect();
    scenario().select(&names).expect("columns")
}

#[test]
fn churn_pipeline_builds_a_numeric_matrix() {
    let features = churn_features();
    let pre = steps(CHURN_PIPELINE);
    let fitted = fit_train(&pre, &features);
    let names = fitted.output_names();
    assert_eq!(names.len(), 47);
    assert_eq!(&names[..3], ["gender_Male", "SeniorCitizen", "Partner_Yes"]);
    assert_eq!(
        &names[names.len() - 6..],
        [
            "tenure_group_Long",
            "tenure_group_Medium",
            "tenure_group_New",
            "tenure_group_Very_Long",
            "charges_per_month",
            "expected_total"
        ]
    );
    let x = fitted.transform_matrix(&features).expect("matrix");
    assert_eq!((x.n_rows, x.n_cols()), (7043, 47));
    assert_eq!(x.names, names);
    assert!(x.data.iter().all(|v| v.is_finite()), "every gap is imputed and every label encoded");

    // one cell by hand: row 0 has tenure 1, MonthlyCharges 29.85, TotalCharges 29.85
    let FittedStep::Scale(scale) = &fitted.steps()[6] else { panic!("a scale step") };
    assert_eq!(scale.method, ScaleMethod::Robust);
    let per_month = scale.columns.iter().find(|c| c.name == "charges_per_month").expect("scaled");
    let j = names.iter().position(|n| n == "charges_per_month").expect("a column");
    assert_eq!(x.row(0)[j], (29.85 / 1.0 - per_month.center) / per_month.scale);

    // scoring rows in another column order, with an extra column, give the same matrix
    let mut reordered: Vec<String> = features.names().to_vec();
    reordered.reverse();
    let mut scoring = features.select(&reordered).expect("columns");
    scoring.push("Churn".into(), scenario().column("Churn").expect("Churn").clone()).expect("push");
    let y = fitted.transform_matrix(&scoring).expect("matrix");
    assert_eq!(y.names, x.names);
    assert!(x.data.iter().zip(&y.data).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn fitted_preprocessor_round_trips_through_json() {
    let features = churn_features();
    let fitted = fit_train(&steps(CHURN_PIPELINE), &features);
    let json = serde_json::to_string_pretty(&fitted).expect("json");
    assert!(json.contains(r#""inf""#), "an infinite edge is written as a string: {json}");
    let back: FittedPreprocessor = serde_json::from_str(&json).expect("read back");
    assert_eq!(back, fitted);
    assert!(same_frame(&back.transform(&features).expect("t"), &fitted.transform(&features).expect("t")));

    // ordinal with a NaN unknown value round-trips too
    let pre = steps("- ordinal: {columns: [Contract], unknown: use_encoded_value, unknown_value: nan}");
    let fitted = fit_train(&pre, scenario());
    let json = serde_json::to_string(&fitted).expect("json");
    let back: FittedPreprocessor = serde_json::from_str(&json).expect("read back");
    assert_eq!(serde_json::to_string(&back).expect("json"), json);
    assert!(back.transform(scenario()).expect("t").numeric("Contract").expect("n")[5050].is_nan());

    // unknown keys in a stored preprocessor are refused
    let tampered = json.replacen(r#""steps""#, r#""extra":1,"steps""#, 1);
    let err = serde_json::from_str::<FittedPreprocessor>(&tampered).expect_err("unknown field");
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
}

#[test]
fn specs_parse_from_yaml_and_json() {
    let pre = steps(CHURN_PIPELINE);
    assert_eq!(pre.steps.len(), 8);
    assert_eq!(
        pre.steps.iter().map(PreprocessSpec::kind).collect::<Vec<_>>(),
        ["drop", "impute", "bin", "ratio", "impute", "product", "scale", "one_hot"]
    );
    let PreprocessSpec::Bin(bin) = &pre.steps[2] else { panic!("a bin step") };
    assert_eq!(bin.edges, [0.0, 12.0, 24.0, 48.0, f64::INFINITY]);
    assert!(bin.right && bin.include_lowest);
    pre.validate().expect("valid");

    // JSON reads the same (serde_yaml on its own reads enums only from YAML tags, hence kiln's JSON detour)
    let json = serde_json::to_string(&pre).expect("json");
    assert_eq!(serde_json::from_str::<Preprocessor>(&json).expect("json"), pre);
    let json = r#"[{"scale": {"columns": "numeric", "method": "minmax"}}, {"one_hot": {"columns": ["a"]}}]"#;
    let from_json: Preprocessor = serde_json::from_str(json).expect("json");
    assert_eq!(from_json, steps("- scale: {columns: numeric, method: minmax}\n- one_hot: {columns: [a]}"));
}

#[test]
fn specs_refuse_unknown_fields_and_values() {
    let cases = [
        ("- scale: {columns: [a], method: standard, with_mean: true}", "unknown field `with_mean`"),
        ("- normalize: {columns: [a]}", "unknown variant `normalize`"),
        ("- scale: {columns: numerc, method: standard}", "expected a list of column names, `numeric` or `categorical`"),
        ("- scale: {columns: [a], method: zscore}", "unknown variant `zscore`"),
        ("- one_hot: {columns: [a], unknown: skip}", "unknown variant `skip`"),
        ("- impute: {columns: [a], strategy: constant, value: [1]}", "expected a number or a string"),
        // YAML's .inf cannot pass through JSON's data model (it becomes null); `inf` is the way to write it
        ("- bin: {column: a, edges: [0, .inf], labels: [x], into: b}", "expected a number, `inf`, `-inf` or `nan`"),
        ("- bin: {column: a, edges: [0, infinite], labels: [x], into: b}", "expected a number, `inf`, `-inf` or `nan`"),
        ("- drop: {columns: [a], also: [b]}", "unknown field `also`"),
    ];
    for (yaml, needle) in cases {
        let err = parse(yaml).expect_err(yaml);
        assert!(err.contains(needle), "{yaml}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn invalid_specs_name_the_key_path() {
    let cases = [
        ("- scale: {columns: [tenure, ''], method: standard}", "preprocess[0].scale.columns[1]: must not be empty"),
        ("- scale: {columns: [], method: standard}", "preprocess[0].scale.columns: must not be empty"),
        ("- scale: {columns: [a, b, a], method: robust}", "preprocess[0].scale.columns[2]: repeats 'a' (see [0])"),
        (
            "- scale: {columns: [a], exclude: [b], method: standard}",
            "preprocess[0].scale.exclude: applies only to `columns: numeric` or `columns: categorical`",
        ),
        (
            "- impute: {columns: [a], strategy: constant}",
            "preprocess[0].impute.value: is required with `strategy: constant`",
        ),
        (
            "- impute: {columns: [a], strategy: median, value: 0}",
            "preprocess[0].impute.value: applies only to `strategy: constant`, not to `strategy: median`",
        ),
        (
            "- ordinal: {columns: [a], unknown: use_encoded_value}",
            "preprocess[0].ordinal.unknown_value: is required with `unknown: use_encoded_value`",
        ),
        (
            "- ordinal: {columns: [a], unknown: use_encoded_value, unknown_value: 0.5}",
            "preprocess[0].ordinal.unknown_value: must be an integer or `nan`, got 0.5",
        ),
        (
            "- ordinal: {columns: [a], unknown_value: -1}",
            "preprocess[0].ordinal.unknown_value: applies only to `unknown: use_encoded_value`",
        ),
        (
            "- bin: {column: t, edges: [0, 12, 12], labels: [a, b], into: g}",
            "preprocess[0].bin.edges[2]: edges must increase strictly, but 12 follows 12",
        ),
        (
            "- bin: {column: t, edges: [0, 12, 24], labels: [a], into: g}",
            "preprocess[0].bin.labels: needs one label per interval: 3 edges make 2 intervals, got 1 labels",
        ),
        (
            "- bin: {column: t, edges: [0, 1, 2], labels: [a, a], into: g}",
            "preprocess[0].bin.labels[1]: repeats 'a' (see [0])",
        ),
        ("- product: {columns: [a], into: p}", "preprocess[0].product.columns: needs at least 2 columns, got 1"),
        (
            "- drop: {columns: [x]}\n- ratio: {numerator: '', denominator: b, into: c}",
            "preprocess[1].ratio.numerator: must not be empty",
        ),
    ];
    for (yaml, expected) in cases {
        let err = steps(yaml).validate().expect_err(yaml);
        assert_eq!(err.to_string(), expected, "{yaml}");
        assert_eq!(err.code(), Code::FeatureSpec);
        // fit validates first
        assert_eq!(error_of(&steps(yaml), scenario()).to_string(), expected);
    }
}

#[test]
fn data_errors_name_the_step_and_the_column() {
    let train = scenario().slice(0, TRAIN);
    let blank_rows = scenario().take(&[488, 753]); // TotalCharges is blank on both
    let infinite = map_numbers(&train, "tenure", |i, v| if i == 3 { f64::INFINITY } else { v });
    let cases: [(&str, &Frame, &str, Code); 11] = [
        (
            "- scale: {columns: [tenur], method: standard}",
            &train,
            "preprocess[0].scale needs column 'tenur', which is not in the data",
            Code::MissingColumn,
        ),
        (
            "- drop: {columns: [tenure]}\n- scale: {columns: [tenure], method: standard}",
            &train,
            "preprocess[1].scale needs column 'tenure', which is not in the data",
            Code::MissingColumn,
        ),
        (
            "- scale: {columns: [gender], method: standard}",
            &train,
            "preprocess[0].scale needs column 'gender' to be numeric, but it is categorical",
            Code::ColumnType,
        ),
        (
            "- impute: {columns: [Contract], strategy: mean}",
            &train,
            "preprocess[0].impute needs column 'Contract' to be numeric, but it is categorical",
            Code::ColumnType,
        ),
        (
            "- one_hot: {columns: [tenure]}",
            &train,
            "preprocess[0].one_hot needs column 'tenure' to be categorical, but it is numeric",
            Code::ColumnType,
        ),
        (
            "- impute: {columns: [tenure], strategy: constant, value: unknown}",
            &train,
            "preprocess[0].impute.value: is a string, but column 'tenure' is numeric",
            Code::FeatureSpec,
        ),
        (
            "- one_hot: {columns: categorical, exclude: [Churnn]}",
            &train,
            "preprocess[0].one_hot.exclude[0]: names the column 'Churnn', which is not in the data",
            Code::FeatureSpec,
        ),
        (
            "- ordinal: {columns: [Contract], unknown: use_encoded_value, unknown_value: 1}",
            &train,
            "preprocess[0].ordinal.unknown_value: 1 is the code of the category 'One year' of column 'Contract'; use a \
             negative value or `nan`",
            Code::FeatureSpec,
        ),
        (
            "- bin: {column: tenure, edges: [0, 12], labels: [a], into: gender}",
            &train,
            "preprocess[0].bin: produces the column 'gender', which the data already has (rename or drop one of them)",
            Code::FeatureSpec,
        ),
        (
            "- impute: {columns: [TotalCharges], strategy: median}",
            &blank_rows,
            "preprocess[0].impute: cannot fit column 'TotalCharges': it has no non-missing value in the training rows",
            Code::DataShape,
        ),
        (
            "- scale: {columns: [tenure], method: minmax}",
            &infinite,
            "preprocess[0].scale: cannot fit column 'tenure': it holds an infinite value (row 4 of the rows it is fitted on, counted from 1)",
            Code::DataShape,
        ),
    ];
    for (yaml, frame, expected, code) in cases {
        let err = error_of(&steps(yaml), frame);
        assert_eq!(err.to_string(), expected, "{yaml}");
        assert_eq!(err.code(), code, "{yaml}");
    }

    let numeric_only = Frame::new(vec![("x".into(), Column::Numeric(vec![1.0]))]).expect("frame");
    let err = error_of(&steps("- one_hot: {columns: categorical}"), &numeric_only);
    assert_eq!(err.to_string(), "preprocess[0].one_hot.columns: selects no categorical column of the data");

    let err = error_of(&steps("- scale: {columns: numeric, method: standard}"), &train.slice(0, 0));
    assert_eq!(err.to_string(), "fitting the preprocessing needs at least 1 rows, got 0");
    assert_eq!(err.code(), Code::NotEnoughRows);
}

#[test]
fn the_matrix_takes_only_numeric_columns() {
    let features = churn_features();
    let fitted = fit_train(&steps("- drop: {columns: [customerID]}"), &features);
    let err = fitted.transform_matrix(&features).expect_err("categorical columns left");
    assert_eq!(
        err.to_string(),
        "column 'gender' is categorical, but the model matrix takes only numeric columns: encode it with a `one_hot` \
         or `ordinal` preprocessing step, or drop it"
    );
    assert_eq!(err.code(), Code::ColumnType);

    // a scoring frame that lacks a column the model was trained on
    let fitted = fit_train(
        &steps("- scale: {columns: [tenure], method: standard}"),
        &features.select(&["tenure".into(), "MonthlyCharges".into()]).expect("cols"),
    );
    let err = fitted.transform_matrix(&features.select(&["tenure".into()]).expect("cols")).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "the fitted preprocessing's output needs column 'MonthlyCharges', which is not in the data"
    );
    assert_eq!(err.code(), Code::MissingColumn);

    // frame_to_matrix is row-major and keeps NaN
    let frame = Frame::new(vec![
        ("a".into(), Column::Numeric(vec![1.0, f64::NAN])),
        ("b".into(), Column::Numeric(vec![3.0, 4.0])),
    ])
    .expect("frame");
    let m = frame_to_matrix(&frame).expect("matrix");
    assert_eq!(m.names, ["a", "b"]);
    assert_eq!((m.n_rows, m.n_cols()), (2, 2));
    assert_eq!((m.data[0], m.data[1], m.data[3]), (1.0, 3.0, 4.0));
    assert!(m.data[2].is_nan());
}
