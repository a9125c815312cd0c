use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::{Code, Column, Frame, millis_from_civil};

use super::{ReadOptions, format_number, read_frame, sha256_file, write_frame};
use crate::error::ReadError;

fn data(name: &str) -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn with_time(column: &str) -> ReadOptions {
    ReadOptions { time_column: Some(column.to_string()), ..ReadOptions::default() }
}

fn day(y: i64, m: u32, d: u32) -> i64 {
    millis_from_civil(y, m, d, 0, 0, 0).unwrap()
}

/// Writes `text` to `name` in a fresh temporary folder.
fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    (dir, path)
}

fn read_err(text: &str, opts: &ReadOptions) -> (PathBuf, ReadError) {
    let (_dir, path) = temp_file("x.csv", text);
    let err = read_frame(&path, opts).unwrap_err();
    (path, err)
}

#[test]
fn ecb_rates_load_sorted_with_the_trailing_comma_dropped() {
    let frame = read_frame(&data("ecb_eurofxref-hist.csv"), &with_time("Date")).unwrap();
    assert_eq!(frame.n_rows(), 7126);
    assert_eq!(frame.n_cols(), 42, "Date plus 41 currencies, the unnamed trailing column dropped");
    assert_eq!(frame.names()[0], "Date");
    assert_eq!(frame.names()[41], "ZAR");
    let dates = frame.timestamps("Date").unwrap();
    assert_eq!(dates[0], day(1999, 1, 4));
    assert_eq!(dates[7125], day(2026, 10, 30));
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "sorted oldest first");
    for (name, column) in frame.columns().skip(1) {
        assert!(matches!(column, Column::Numeric(_)), "{name} should be numeric");
    }
    let usd = frame.numeric("USD").unwrap();
    assert_eq!((usd[0], usd[7125]), (1.1789, 1.1172));
    // BGN was N/A on the first day: missing values are NaN
    assert!(frame.numeric("BGN").unwrap()[0].is_nan());
}

#[test]
fn etth1_is_hourly_without_gaps() {
    let frame = read_frame(&data("ETTh1.csv"), &with_time("date")).unwrap();
    assert_eq!((frame.n_rows(), frame.n_cols()), (17420, 8));
    let stamps = frame.timestamps("date").unwrap();
    assert_eq!(stamps[0], day(2016, 7, 1));
    assert_eq!(stamps[17419], millis_from_civil(2018, 6, 26, 19, 0, 0).unwrap());
    assert!(stamps.windows(2).all(|w| w[1] - w[0] == 3_600_000));
    assert_eq!(frame.numeric("OT").unwrap()[0], 30.5310001373291);
}

#[test]
fn telco_blank_total_charges_are_missing_numbers() {
    let frame = read_frame(&data("Telco-Customer-Churn_IBM.csv"), &ReadOptions::default()).unwrap();
    assert_eq!((frame.n_rows(), frame.n_cols()), (7043, 21));
    let total = frame.numeric("TotalCharges").unwrap();
    assert_eq!(total.iter().filter(|v| v.is_nan()).count(), 11);
    let tenure = frame.numeric("tenure").unwrap();
    assert!(total.iter().zip(tenure).filter(|(t, _)| t.is_nan()).all(|(_, &n)| n == 0.0));
    let ids = frame.categorical("customerID").unwrap();
    assert_eq!(ids[0].as_deref(), Some("7590-VHVEG"));
    assert_eq!(frame.categorical("Churn").unwrap()[0].as_deref(), Some("No"));
    assert!(matches!(frame.column("SeniorCitizen").unwrap(), Column::Numeric(_)));

    let opts = ReadOptions {
        columns: Some(vec!["SeniorCitizen".into(), "Churn".into()]),
        categorical: vec!["SeniorCitizen".into()],
        ..ReadOptions::default()
    };
    let frame = read_frame(&data("Telco-Customer-Churn_IBM.csv"), &opts).unwrap();
    assert_eq!(frame.names(), ["SeniorCitizen", "Churn"]);
    assert_eq!(frame.categorical("SeniorCitizen").unwrap()[0].as_deref(), Some("0"));
}

#[test]
fn a_short_row_names_file_line_and_counts() {
    let (path, err) = read_err("a,b,c\n1,2,3\n4,5\n", &ReadOptions::default());
    assert!(matches!(err, ReadError::FieldCount { line: 3, expected: 3, actual: 2, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{} line 3: expected 3 fields (as in the header), found 2", path.display()));
    assert_eq!(err.code(), Code::DataShape);
}

#[test]
fn line_numbers_count_quoted_newlines() {
    let (_, err) = read_err("a,b\n\"x\ny\",2\n1,2,3\n", &ReadOptions::default());
    assert!(matches!(err, ReadError::FieldCount { line: 4, .. }), "{err:?}");
}

#[test]
fn an_unparseable_date_names_file_line_column_and_text() {
    let (path, err) = read_err("Date,x\n2020-01-02,1\n2020-13-45,2\n", &with_time("Date"));
    assert_eq!(
        err.to_string(),
        format!("{} line 3, column 'Date': cannot parse '2020-13-45' as a date (expected YYYY-MM-DD)", path.display())
    );
    assert_eq!(err.code(), Code::DataParse);

    // the first value fixes the shape; a later value of another shape is reported
    let (_, err) = read_err("t,x\n2020-01-02 10:00:00,1\n2020-01-03,2\n", &with_time("t"));
    assert!(
        err.to_string()
            .contains("line 3, column 't': cannot parse '2020-01-03' as a date (expected YYYY-MM-DD HH:MM:SS)"),
        "{err}"
    );

    // a missing time is an error too
    let (_, err) = read_err("t,x\n2020-01-02,1\nN/A,2\n", &with_time("t"));
    assert!(matches!(err, ReadError::BadTime { .. }), "{err:?}");
}

#[test]
fn iso_shapes_and_user_formats_parse() {
    let (_dir, path) = temp_file("x.csv", "t,x\n2020-01-02T03:04:05Z,1\n2020-01-01T00:00:00.250Z,2\n");
    let frame = read_frame(&path, &with_time("t")).unwrap();
    assert_eq!(
        frame.timestamps("t").unwrap(),
        [millis_from_civil(2020, 1, 1, 0, 0, 0).unwrap() + 250, millis_from_civil(2020, 1, 2, 3, 4, 5).unwrap()]
    );

    let (_dir, path) = temp_file("y.csv", "when,x\n31/12/2019 23:59,1\n1/1/2020 00:00,2\n");
    let opts = ReadOptions { time_format: Some("%d/%m/%Y %H:%M".into()), ..with_time("when") };
    let frame = read_frame(&path, &opts).unwrap();
    assert_eq!(
        frame.timestamps("when").unwrap(),
        [millis_from_civil(2019, 12, 31, 23, 59, 0).unwrap(), day(2020, 1, 1)]
    );

    let opts = ReadOptions { time_format: Some("%Y-%q".into()), ..with_time("when") };
    let err = read_frame(&path, &opts).unwrap_err();
    assert_eq!(err.code(), Code::ConfigInvalid);
    assert!(err.to_string().contains("unsupported directive '%q'"), "{err}");
}

#[test]
fn missing_columns_are_named_with_the_available_ones() {
    let opts = ReadOptions { columns: Some(vec!["a".into(), "nope".into()]), ..ReadOptions::default() };
    let (path, err) = read_err("a,b\n1,2\n", &opts);
    assert_eq!(err.to_string(), format!("{}: column 'nope' not found; available columns: a, b", path.display()));
    assert_eq!(err.code(), Code::MissingColumn);

    let (_, err) = read_err("a,b\n1,2\n", &with_time("Date"));
    assert!(matches!(&err, ReadError::MissingColumn { column, .. } if column == "Date"), "{err:?}");
}

#[test]
fn header_problems_are_reported() {
    let (_, err) = read_err("a,,b\n1,2,3\n", &ReadOptions::default());
    assert!(matches!(err, ReadError::EmptyHeader { index: 2, .. }), "{err:?}");
    // an unnamed trailing column must be empty in every row
    let (_, err) = read_err("a,b,\n1,2,\n3,4,5\n", &ReadOptions::default());
    assert!(matches!(err, ReadError::EmptyHeader { index: 3, .. }), "{err:?}");
    let (_, err) = read_err("a,b,a\n1,2,3\n", &ReadOptions::default());
    assert!(matches!(&err, ReadError::DuplicateColumn { column, .. } if column == "a"), "{err:?}");
    let (_, err) = read_err("", &ReadOptions::default());
    assert!(matches!(err, ReadError::NoHeader { .. }), "{err:?}");
}

#[test]
fn repeated_timestamps_name_the_file() {
    let (path, err) = read_err("d,x\n2020-01-02,1\n2020-01-01,2\n2020-01-02,3\n", &with_time("d"));
    assert_eq!(err.to_string(), format!("{}: time column 'd' repeats the timestamp 2020-01-02", path.display()));
}

#[test]
fn mixed_columns_become_categorical_and_na_values_are_configurable() {
    let (_dir, path) = temp_file("x.csv", "a,b,c\n1, x ,NA\n2,,-\n");
    let frame = read_frame(&path, &ReadOptions::default()).unwrap();
    assert_eq!(frame.numeric("a").unwrap(), [1.0, 2.0]);
    assert_eq!(frame.categorical("b").unwrap(), [Some("x".to_string()), None]);
    assert_eq!(frame.categorical("c").unwrap(), [None, Some("-".to_string())]);
    let opts = ReadOptions { na_values: vec!["-".into(), "NA".into()], ..ReadOptions::default() };
    let frame = read_frame(&path, &opts).unwrap();
    assert!(frame.numeric("c").unwrap().iter().all(|v| v.is_nan()));
}

fn same(a: &Frame, b: &Frame) {
    assert_eq!(a.names(), b.names());
    for ((name, x), (_, y)) in a.columns().zip(b.columns()) {
        match (x, y) {
            (Column::Numeric(x), Column::Numeric(y)) => {
                assert_eq!(x.len(), y.len());
                for (p, q) in x.iter().zip(y) {
                    assert!(p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()), "{name}: {p} != {q}");
                }
            }
            _ => assert_eq!(x, y, "{name}"),
        }
    }
}

fn sample_frame() -> Frame {
    Frame::new(vec![
        (
            "time".into(),
            Column::Timestamp(vec![
                day(2020, 1, 1),
                millis_from_civil(2020, 1, 1, 12, 30, 1).unwrap() + 7,
                day(2020, 1, 3),
            ]),
        ),
        ("x".into(), Column::Numeric(vec![0.1, f64::NAN, -1e-7])),
        ("big".into(), Column::Numeric(vec![1e300, 12345.678, 0.0])),
        ("label".into(), Column::Categorical(vec![Some("a, \"quoted\"".into()), None, Some("c".into())])),
    ])
    .unwrap()
}

#[test]
fn parquet_round_trip_keeps_types_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    let frame = sample_frame();
    write_frame(&path, &frame).unwrap();
    let back = read_frame(&path, &with_time("time")).unwrap();
    same(&frame, &back);
    // .pq too, and column selection
    let pq = dir.path().join("f.pq");
    write_frame(&pq, &frame).unwrap();
    let opts = ReadOptions { columns: Some(vec!["label".into()]), ..with_time("time") };
    let back = read_frame(&pq, &opts).unwrap();
    assert_eq!(back.names(), ["time", "label"]);
}

#[test]
fn csv_round_trip_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    let frame = sample_frame();
    write_frame(&path, &frame).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "time,x,big,label\n\
         2020-01-01T00:00:00.000,0.1,1e300,\"a, \"\"quoted\"\"\"\n\
         2020-01-01T12:30:01.007,,12345.678,\n\
         2020-01-03T00:00:00.000,-1e-7,0,c\n"
    );
    let back = read_frame(&path, &with_time("time")).unwrap();
    same(&frame, &back);

    let daily = Frame::new(vec![("d".into(), Column::Timestamp(vec![day(2021, 3, 4)]))]).unwrap();
    write_frame(&path, &daily).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "d\n2021-03-04\n");
}

#[test]
fn numbers_are_written_shortest() {
    for (v, text) in
        [(0.1, "0.1"), (1.0, "1"), (-2.5, "-2.5"), (1e16, "1e16"), (1e-6, "1e-6"), (123456.75, "123456.75")]
    {
        assert_eq!(format_number(v), text);
        assert_eq!(text.parse::<f64>().unwrap(), v);
    }
    assert_eq!(format_number(f64::NAN), "");
}

#[test]
fn real_ecb_file_round_trips_through_parquet() {
    let frame = read_frame(&data("ecb_eurofxref-hist.csv"), &with_time("Date")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ecb.parquet");
    write_frame(&path, &frame).unwrap();
    same(&frame, &read_frame(&path, &with_time("Date")).unwrap());
}

#[test]
fn sha256_and_unsupported_files() {
    let (_dir, path) = temp_file("abc.txt", "abc");
    assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let err = read_frame(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReadError::UnsupportedFormat { .. }), "{err:?}");
    let err = read_frame(Path::new("/nonexistent/x.csv"), &ReadOptions::default()).unwrap_err();
    assert_eq!(err.code(), Code::DataRead);
    assert!(err.to_string().starts_with("/nonexistent/x.csv: "), "{err}");
}

/// `testdata/pandas_types.parquet` was written by pandas 3.1.1 / pyarrow 25.0.1 (`DataFrame.to_parquet`): columns
/// ts timestamp[us], tsz timestamp[us, UTC], d date32, i nullable int64, f double with NaN, b bool, s string with a
/// null, c categorical (dictionary), rows not in time order.
#[test]
fn reads_a_parquet_file_written_by_pandas() {
    let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("testdata/pandas_types.parquet");
    let opts = ReadOptions {
        columns: Some(vec!["tsz".into(), "d".into(), "i".into(), "f".into(), "b".into(), "s".into()]),
        ..with_time("ts")
    };
    let frame = read_frame(&path, &opts).unwrap();
    let noon = millis_from_civil(2020, 1, 1, 12, 0, 0).unwrap();
    assert_eq!(frame.timestamps("ts").unwrap(), [noon, day(2020, 1, 2), day(2020, 1, 3)]);
    assert_eq!(frame.timestamps("tsz").unwrap(), [day(2020, 1, 1), day(2020, 1, 2), day(2020, 1, 3)]);
    assert_eq!(frame.timestamps("d").unwrap(), [day(2020, 1, 1), day(2020, 1, 2), day(2020, 1, 3)]);
    let i = frame.numeric("i").unwrap();
    assert!(i[0].is_nan() && i[1] == 1.0 && i[2] == 3.0);
    let f = frame.numeric("f").unwrap();
    assert!(f[0].is_nan() && f[1] == 0.5 && f[2] == 2.0);
    assert_eq!(frame.numeric("b").unwrap(), [0.0, 1.0, 1.0]);
    assert_eq!(frame.categorical("s").unwrap(), [None, Some("x".to_string()), Some("z".to_string())]);

    let opts = ReadOptions { columns: Some(vec!["c".into()]), ..with_time("ts") };
    let frame = read_frame(&path, &opts).unwrap();
    let expected = [Some("b".to_string()), Some("a".to_string()), Some("a".to_string())];
    assert_eq!(frame.categorical("c").unwrap(), expected);
}
