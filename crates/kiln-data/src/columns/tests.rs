use std::path::{Path, PathBuf};

use kiln_domain::{Column, Frame};

use super::frame_from_columns;
use crate::error::{Location, ReadError};
use crate::read::{ReadOptions, read_frame};

fn data(name: &str) -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// Every column of a CSV file as its raw cell texts, as a caller holding the file's text in memory has them.
fn raw_columns(path: &Path) -> Vec<(String, Column)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).unwrap();
    let names: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let mut texts: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.unwrap();
        for (i, column) in texts.iter_mut().enumerate() {
            column.push(record.get(i).map(str::to_string));
        }
    }
    names.into_iter().zip(texts).map(|(n, t)| (n, Column::Categorical(t))).collect()
}

/// What pandas hands over: columns whose every cell parses are numbers (blank cells NaN), the rest texts.
fn pandas_like(columns: Vec<(String, Column)>) -> Vec<(String, Column)> {
    columns
        .into_iter()
        .map(|(name, column)| {
            let Column::Categorical(texts) = &column else { return (name, column) };
            let numbers: Option<Vec<f64>> = texts
                .iter()
                .map(|t| match t.as_deref() {
                    None | Some("") => Some(f64::NAN),
                    Some(cell) => cell.parse().ok(),
                })
                .collect();
            match numbers {
                Some(values) => (name, Column::Numeric(values)),
                None => (name, column),
            }
        })
        .collect()
}

fn same(a: &Frame, b: &Frame) {
    assert_eq!(a.names(), b.names());
    for ((name, x), (_, y)) in a.columns().zip(b.columns()) {
        match (x, y) {
            (Column::Numeric(x), Column::Numeric(y)) => {
                assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "column {name} differs");
            }
            _ => assert_eq!(x, y, "column {name} differs"),
        }
    }
}

#[test]
fn telco_texts_and_pandas_numbers_read_as_the_file_does() {
    let path = data("Telco-Customer-Churn_IBM.csv");
    let opts = ReadOptions {
        columns: Some(vec!["customerID".into(), "SeniorCitizen".into(), "tenure".into(), "TotalCharges".into()]),
        categorical: vec!["customerID".into(), "SeniorCitizen".into()],
        numeric: vec!["TotalCharges".into()],
        ..ReadOptions::default()
    };
    let from_file = read_frame(&path, &opts).unwrap();
    let raw = raw_columns(&path);
    same(&frame_from_columns("texts", raw.clone(), &opts).unwrap(), &from_file);
    // pandas reads TotalCharges (blanks are " ") as text, tenure as numbers
    same(&frame_from_columns("pandas DataFrame", pandas_like(raw), &opts).unwrap(), &from_file);
    // undeclared columns are inferred as a file's are
    let all = read_frame(&path, &ReadOptions::default()).unwrap();
    same(&frame_from_columns("texts", raw_columns(&path), &ReadOptions::default()).unwrap(), &all);
}

#[test]
fn etth1_time_texts_parse_and_rows_are_sorted() {
    let path = data("ETTh1.csv");
    let opts = ReadOptions {
        time_column: Some("date".into()),
        columns: Some(vec!["OT".into(), "HUFL".into()]),
        ..ReadOptions::default()
    };
    let from_file = read_frame(&path, &opts).unwrap();
    let mut raw = pandas_like(raw_columns(&path));
    // newest first in memory: still sorted by time, as the file reader sorts
    for (_, column) in &mut raw {
        *column = match column {
            Column::Numeric(v) => Column::Numeric(v.iter().rev().copied().collect()),
            Column::Categorical(v) => Column::Categorical(v.iter().rev().cloned().collect()),
            Column::Timestamp(v) => Column::Timestamp(v.iter().rev().copied().collect()),
        };
    }
    let frame = frame_from_columns("pandas DataFrame", raw, &opts).unwrap();
    same(&frame, &from_file);
    assert_eq!(frame.names(), ["date", "OT", "HUFL"]);
}

#[test]
fn errors_name_the_source_row_and_column() {
    let opts = ReadOptions { numeric: vec!["x".into()], time_column: Some("t".into()), ..ReadOptions::default() };
    let texts = |v: &[&str]| Column::Categorical(v.iter().map(|s| Some(s.to_string())).collect());
    let err = frame_from_columns(
        "pandas DataFrame",
        vec![("t".into(), texts(&["2024-01-01", "2024-01-02"])), ("x".into(), texts(&["1.5", "abc"]))],
        &opts,
    )
    .unwrap_err();
    assert!(matches!(&err, ReadError::NotNumber { location: Location::Row(2), column, .. } if column == "x"), "{err}");
    assert_eq!(err.to_string(), "pandas DataFrame row 2, column 'x': cannot parse 'abc' as a number");

    let err = frame_from_columns(
        "pandas DataFrame",
        vec![("t".into(), texts(&["2024-01-01", "soon"])), ("x".into(), texts(&["1", "2"]))],
        &opts,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("pandas DataFrame row 2, column 't': cannot parse 'soon' as a date"), "{err}");

    let err = frame_from_columns("pandas DataFrame", vec![("x".into(), texts(&["1"]))], &opts).unwrap_err();
    assert!(matches!(&err, ReadError::MissingColumn { column, .. } if column == "t"), "{err}");
}
