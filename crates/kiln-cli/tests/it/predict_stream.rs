//! `kiln predict` streams a file in chunks: with chunks of a few rows (so that every lag, window, EWM and expanding
//! mean crosses many chunk borders) the predictions are bit for bit those of the whole-file path
//! (`kiln_data::read_frame` + `kiln_train::score`), for a forecast (EUR/USD, ETTh1) and a classifier (Telco churn),
//! CSV and Parquet in and out; rows out of time order and bad cells are reported with their line.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_data::{ReadOptions, read_frame, write_frame};
use kiln_features::FittedPipeline;
use kiln_train::RowKeys;

use crate::{kiln, repo};

/// A model trained once per test binary with a shipped experiment, and its bundle folder.
struct Trained {
    _store: tempfile::TempDir,
    bundle: PathBuf,
}

fn train(experiment: &str) -> Trained {
    let store = tempfile::tempdir().unwrap();
    let uri = store.path().display().to_string();
    let (code, err) = kiln(&["train", "--config", experiment, "--tracking-uri", &uri]);
    assert_eq!(code, 0, "{err}");
    let bundle = find_bundle(store.path()).expect("a bundle folder");
    Trained { _store: store, bundle }
}

fn find_bundle(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.join("MLmodel").is_file() {
                return Some(path);
            }
            if let Some(found) = find_bundle(&path) {
                return Some(found);
            }
        }
    }
    None
}

fn eurusd() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| train("conf/experiments/eurusd.yaml"))
}

fn etth1() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| train("conf/experiments/etth1.yaml"))
}

fn churn() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| train("conf/experiments/churn.yaml"))
}

/// Row keys (times as ms, or ids), predictions and classes.
#[derive(Debug)]
struct Predictions {
    times: Vec<i64>,
    ids: Vec<String>,
    values: Vec<f64>,
    classes: Vec<String>,
}

/// The whole-file path: the file read at once (sorted by time) and scored in one call.
fn reference(bundle: &Path, input: &Path) -> Predictions {
    let bundle = kiln_models::read_bundle::<FittedPipeline>(bundle).unwrap();
    let opts = ReadOptions {
        time_column: bundle.pipeline.recipe().map(|r| r.time_column.clone()),
        columns: Some(bundle.pipeline.input_columns()),
        ..ReadOptions::default()
    };
    let frame = read_frame(input, &opts).unwrap();
    let scored = kiln_train::score(&bundle, &frame, false).unwrap();
    let (times, ids) = match scored.keys {
        RowKeys::Times { values, .. } => (values, Vec::new()),
        RowKeys::Ids { values, .. } => (Vec::new(), values),
    };
    Predictions { times, ids, values: scored.predictions, classes: scored.classes.unwrap_or_default() }
}

/// What `kiln predict` wrote.
fn written(path: &Path, key: &str, forecast: bool) -> Predictions {
    let opts = if forecast {
        ReadOptions { time_column: Some(key.to_string()), ..ReadOptions::default() }
    } else {
        ReadOptions { categorical: vec![key.to_string(), "class".to_string()], ..ReadOptions::default() }
    };
    let frame = read_frame(path, &opts).unwrap();
    let labels = |name: &str| -> Vec<String> {
        frame.categorical(name).map_or_else(|_| Vec::new(), |v| v.iter().map(|c| c.clone().unwrap()).collect())
    };
    if forecast {
        Predictions {
            times: frame.timestamps(key).unwrap().to_vec(),
            ids: Vec::new(),
            values: frame.numeric("prediction").unwrap().to_vec(),
            classes: Vec::new(),
        }
    } else {
        Predictions {
            times: Vec::new(),
            ids: labels(key),
            values: frame.numeric("probability").unwrap().to_vec(),
            classes: labels("class"),
        }
    }
}

fn assert_same(actual: &Predictions, expected: &Predictions, what: &str) {
    assert_eq!(actual.times, expected.times, "{what}: times");
    assert_eq!(actual.ids, expected.ids, "{what}: ids");
    assert_eq!(actual.classes, expected.classes, "{what}: classes");
    assert_eq!(actual.values.len(), expected.values.len(), "{what}: rows");
    for (i, (a, e)) in actual.values.iter().zip(&expected.values).enumerate() {
        assert_eq!(a.to_bits(), e.to_bits(), "{what}: row {i}: {a} != {e}");
    }
}

/// `kiln predict` of `input` in chunks of `rows`, into `out`.
fn predict(bundle: &Path, input: &Path, out: &Path, rows: usize) -> String {
    let (code, err) = kiln(&[
        "predict",
        "--model",
        &bundle.display().to_string(),
        "--input",
        &input.display().to_string(),
        "--output",
        &out.display().to_string(),
        "--chunk-rows",
        &rows.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    err
}

/// Every combination of CSV and Parquet in and out, in chunks of 7 rows and of the default size.
fn check_chunked_equals_whole(trained: &Trained, csv_input: &Path, key: &str, forecast: bool) {
    let dir = tempfile::tempdir().unwrap();
    let parquet_input = dir.path().join("input.parquet");
    let frame = read_frame(csv_input, &ReadOptions::default()).unwrap();
    write_frame(&parquet_input, &frame).unwrap();
    let expected = reference(&trained.bundle, csv_input);
    assert!(expected.values.len() > 1000);
    for input in [csv_input, parquet_input.as_path()] {
        for out in ["out.csv", "out.parquet"] {
            for rows in [7, 20_000] {
                let out = dir.path().join(out);
                predict(&trained.bundle, input, &out, rows);
                let what = format!("{} -> {} in chunks of {rows}", input.display(), out.display());
                assert_same(&written(&out, key, forecast), &expected, &what);
            }
        }
    }
}

#[test]
fn etth1_forecast_in_chunks_equals_the_whole_file() {
    check_chunked_equals_whole(etth1(), &repo().join("data/ETTh1.csv"), "date", true);
}

#[test]
fn eurusd_forecast_in_chunks_equals_the_whole_file() {
    // the ECB file is newest first; streamed, it must be oldest first
    let dir = tempfile::tempdir().unwrap();
    let sorted = dir.path().join("ecb_oldest_first.csv");
    let ecb = repo().join("data/ecb_eurofxref-hist.csv");
    let opts = ReadOptions { time_column: Some("Date".into()), ..ReadOptions::default() };
    write_frame(&sorted, &read_frame(&ecb, &opts).unwrap()).unwrap();
    check_chunked_equals_whole(eurusd(), &sorted, "Date", true);
}

#[test]
fn a_newest_first_file_is_read_whole_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let ecb = repo().join("data/ecb_eurofxref-hist.csv");
    let err = predict(&eurusd().bundle, &ecb, &out, 7);
    assert!(err.contains("starts newest first") && err.contains("reading it whole"), "{err}");
    assert_same(&written(&out, "Date", true), &reference(&eurusd().bundle, &ecb), "newest first");
}

#[test]
fn churn_classifier_in_chunks_equals_the_whole_file() {
    check_chunked_equals_whole(churn(), &repo().join("data/Telco-Customer-Churn_IBM.csv"), "customerID", false);
}

/// ETTh1's first `n` lines with `edit` applied to the text.
fn etth1_head(dir: &Path, n: usize, edit: impl Fn(&mut Vec<String>)) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("data/ETTh1.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().take(n).map(str::to_string).collect();
    edit(&mut lines);
    let path = dir.join("etth1_head.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn predict_err(bundle: &Path, input: &Path, out: &Path) -> (i32, String) {
    kiln(&[
        "predict",
        "--model",
        &bundle.display().to_string(),
        "--input",
        &input.display().to_string(),
        "--output",
        &out.display().to_string(),
        "--chunk-rows",
        "50",
    ])
}

#[test]
fn rows_out_of_time_order_are_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    // line 301 (data row 300) moves before line 300
    let input = etth1_head(dir.path(), 400, |lines| lines.swap(299, 300));
    let out = dir.path().join("out.csv");
    let (code, err) = predict_err(&etth1().bundle, &input, &out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("etth1_head.csv line 301: time column 'date'") && err.contains("(line 300)"), "{err}");
    assert!(!out.exists(), "nothing is written on an error");
}

#[test]
fn a_bad_cell_is_refused_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    // line 251's HUFL
    let input = etth1_head(dir.path(), 400, |lines| {
        let mut fields: Vec<&str> = lines[250].split(',').collect();
        fields[1] = "n/a?";
        lines[250] = fields.join(",");
    });
    let out = dir.path().join("out.parquet");
    let (code, err) = predict_err(&etth1().bundle, &input, &out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("etth1_head.csv line 251, column 'HUFL': cannot parse 'n/a?' as a number"), "{err}");
    assert!(!out.exists());
}

#[test]
fn features_and_contributions_do_not_depend_on_the_chunking() {
    // ETTh1's first 168 rows are warm-up: the first chunks of 7 rows score nothing, and still fix the columns
    let dir = tempfile::tempdir().unwrap();
    let input = repo().join("data/ETTh1.csv");
    let bundle = etth1().bundle.display().to_string();
    for ext in ["csv", "parquet"] {
        let mut outputs = Vec::new();
        for rows in ["7", "1000000"] {
            let out = dir.path().join(format!("out_{rows}.{ext}"));
            let (code, err) = kiln(&[
                "predict",
                "--model",
                &bundle,
                "--input",
                &input.display().to_string(),
                "--output",
                &out.display().to_string(),
                "--chunk-rows",
                rows,
                "--with-features",
                "--explain",
            ]);
            assert_eq!(code, 0, "{err}");
            outputs.push(
                read_frame(&out, &ReadOptions { time_column: Some("date".into()), ..ReadOptions::default() }).unwrap(),
            );
        }
        let (a, b) = (&outputs[0], &outputs[1]);
        assert_eq!(a.names(), b.names());
        assert!(a.names().iter().any(|n| n == "shap_bias") && a.names().iter().any(|n| n == "OT_ewm_12"));
        for (name, column) in a.columns() {
            match (column, b.column(name).unwrap()) {
                (kiln_domain::Column::Numeric(x), kiln_domain::Column::Numeric(y)) => {
                    assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "{ext} {name}");
                }
                (x, y) => assert_eq!(x, y, "{ext} {name}"),
            }
        }
    }
}
