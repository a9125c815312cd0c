use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::{Code, Column, Frame, millis_from_civil};

use super::{ReadOptions, read_chunks, read_frame, sha256_file};
use crate::error::{Location, ReadError};
use crate::write::{FrameWriter, format_number, write_frame};

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
fn iso_times_with_utc_offsets_are_instants_as_yfinance_writes_them() {
    // yfinance's daily export: the session's start in UTC with an explicit offset
    let text = "Date,Close\n2006-05-15 23:00:00+00:00,1.25\n2006-05-16 23:00:00+00:00,1.5\n";
    let (_dir, path) = temp_file("eurusd.csv", text);
    let frame = read_frame(&path, &with_time("Date")).unwrap();
    let t0 = millis_from_civil(2006, 5, 15, 23, 0, 0).unwrap();
    assert_eq!(frame.timestamps("Date").unwrap(), [t0, t0 + 86_400_000]);

    // every offset form, each converted to UTC; the same instant written four ways would repeat, so one hour apart
    let text = "t,x\n2020-01-01T09:30:00-05:00,1\n2020-01-01T15:30:00+0000,2\n2020-01-01T17:30+01,3\n\
                2020-01-01T18:30:00.500Z,4\n";
    let (_dir, path) = temp_file("offsets.csv", text.replace("17:30+01", "17:30:00+01").as_str());
    let frame = read_frame(&path, &with_time("t")).unwrap();
    let nine_thirty_ny = millis_from_civil(2020, 1, 1, 14, 30, 0).unwrap();
    assert_eq!(
        frame.timestamps("t").unwrap(),
        [
            nine_thirty_ny,
            nine_thirty_ny + 3_600_000,
            nine_thirty_ny + 2 * 3_600_000,
            nine_thirty_ny + 4 * 3_600_000 + 500
        ]
    );

    // %z in a user format
    let (_dir, path) = temp_file("z.csv", "when,x\n15/05/2006 23:00 +0200,1\n");
    let opts = ReadOptions { time_format: Some("%d/%m/%Y %H:%M %z".into()), ..with_time("when") };
    let frame = read_frame(&path, &opts).unwrap();
    assert_eq!(frame.timestamps("when").unwrap(), [millis_from_civil(2006, 5, 15, 21, 0, 0).unwrap()]);

    // not an offset: still an error naming the line
    let (_, err) = read_err("t,x\n2020-01-01T00:00:00+25:00,1\n", &with_time("t"));
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
    // a file that is not there is bad input (exit 2)
    assert_eq!(err.code(), Code::NotFound);
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

// ---------------------------------------------------------------------------------------------------------------
// chunk by chunk

/// The rows of `frames` one after another (same columns in each).
fn concat(frames: &[Frame]) -> Frame {
    let first = &frames[0];
    let columns = first
        .columns()
        .map(|(name, column)| {
            let parts = frames.iter().map(|f| f.column(name).unwrap());
            let joined = match column {
                Column::Numeric(_) => Column::Numeric(
                    parts.flat_map(|c| if let Column::Numeric(v) = c { v.clone() } else { panic!("{name}") }).collect(),
                ),
                Column::Categorical(_) => Column::Categorical(
                    parts
                        .flat_map(|c| if let Column::Categorical(v) = c { v.clone() } else { panic!("{name}") })
                        .collect(),
                ),
                Column::Timestamp(_) => Column::Timestamp(
                    parts
                        .flat_map(|c| if let Column::Timestamp(v) = c { v.clone() } else { panic!("{name}") })
                        .collect(),
                ),
            };
            (name.to_string(), joined)
        })
        .collect();
    Frame::new(columns).unwrap()
}

fn chunks(path: &Path, opts: &ReadOptions, size: usize) -> Vec<Frame> {
    read_chunks(path, opts, size).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

fn chunks_err(text: &str, opts: &ReadOptions, size: usize) -> (PathBuf, ReadError) {
    let (_dir, path) = temp_file("x.csv", text);
    let err = read_chunks(&path, opts, size).unwrap().find_map(Result::err).expect("an error");
    (path, err)
}

#[test]
fn chunks_put_together_are_the_whole_file_for_csv() {
    let etth1 = data("ETTh1.csv");
    let whole = read_frame(&etth1, &with_time("date")).unwrap();
    for size in [1, 7, 1000, 17_420, 100_000] {
        let parts = chunks(&etth1, &with_time("date"), size);
        assert_eq!(parts.len(), 17_420_usize.div_ceil(size), "chunks of {size}");
        assert!(parts[..parts.len() - 1].iter().all(|p| p.n_rows() == size));
        same(&concat(&parts), &whole);
    }
    let telco = data("Telco-Customer-Churn_IBM.csv");
    let whole = read_frame(&telco, &ReadOptions::default()).unwrap();
    for size in [7, 500] {
        let parts = chunks(&telco, &ReadOptions::default(), size);
        same(&concat(&parts), &whole);
    }
    // a projection keeps only the named columns, in order
    let opts = ReadOptions { columns: Some(vec!["OT".into(), "HUFL".into()]), ..with_time("date") };
    let parts = chunks(&etth1, &opts, 5000);
    assert_eq!(parts[0].names(), ["date", "OT", "HUFL"]);
    same(&concat(&parts), &read_frame(&etth1, &opts).unwrap());
}

#[test]
fn chunks_put_together_are_the_whole_file_for_parquet_across_row_groups() {
    let whole = read_frame(&data("ETTh1.csv"), &with_time("date")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // one row group per written chunk: 18 row groups of 1000 rows (the last shorter)
    let path = dir.path().join("etth1.parquet");
    let mut writer = FrameWriter::create(&path).unwrap();
    for start in (0..whole.n_rows()).step_by(1000) {
        writer.write(&whole.slice(start, (start + 1000).min(whole.n_rows()))).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 17_420);
    same(&read_frame(&path, &with_time("date")).unwrap(), &whole);
    // and one group of 17,420 rows, more than tests keep decoded (`MAX_BUFFERED_GROUP_ROWS`): read slice by slice
    let one_group = dir.path().join("etth1_one_group.parquet");
    let mut writer = FrameWriter::create(&one_group).unwrap();
    writer.write(&whole).unwrap();
    assert_eq!(writer.finish().unwrap(), 17_420);
    for file in [&path, &one_group] {
        for size in [7, 999, 1000, 2500, 17_420] {
            let mut reader = read_chunks(file, &with_time("date"), size).unwrap();
            assert_eq!(reader.progress().total_rows, Some(17_420));
            let parts = reader.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
            assert_eq!(reader.progress().rows, 17_420);
            // every chunk but the last has the rows asked for, whatever the row groups
            assert!(parts[..parts.len() - 1].iter().all(|p| p.n_rows() == size), "chunks of {size}");
            same(&concat(&parts), &whole);
        }
    }
    let opts = ReadOptions { columns: Some(vec!["OT".into()]), ..with_time("date") };
    let parts = chunks(&path, &opts, 3000);
    assert_eq!(parts[0].names(), ["date", "OT"]);
}

#[test]
fn csv_progress_counts_bytes_up_to_the_file_size() {
    let path = data("ETTh1.csv");
    let size = fs::metadata(&path).unwrap().len();
    let mut reader = read_chunks(&path, &with_time("date"), 5000).unwrap();
    let start = reader.progress();
    assert_eq!((start.rows, start.total_bytes, start.total_rows), (0, Some(size), None));
    reader.next().unwrap().unwrap();
    let after = reader.progress();
    assert_eq!(after.rows, 5000);
    assert!(after.bytes.unwrap() > start.bytes.unwrap() && after.bytes.unwrap() < size);
    reader.by_ref().for_each(|c| drop(c.unwrap()));
    assert_eq!(reader.progress().bytes, Some(size));
    assert_eq!(reader.progress().rows, 17_420);
}

#[test]
fn a_file_without_rows_gives_one_empty_chunk() {
    let (_dir, path) = temp_file("x.csv", "t,x\n");
    let parts = chunks(&path, &with_time("t"), 10);
    assert_eq!(parts.len(), 1);
    assert_eq!((parts[0].n_rows(), parts[0].names()), (0, &["t".to_string(), "x".to_string()][..]));
    let (_dir, path) = temp_file("y.csv", "t,x\n2020-01-01,1\n2020-01-02,2\n");
    assert_eq!(chunks(&path, &with_time("t"), 2).len(), 1, "no empty chunk after a full one");
}

#[test]
fn a_step_back_in_time_names_both_lines() {
    let text = "t,x\n2020-01-01,1\n2020-01-02,2\n2020-01-04,3\n2020-01-03,4\n";
    for size in [1, 2, 10] {
        let (path, err) = chunks_err(text, &with_time("t"), size);
        assert_eq!(
            err.to_string(),
            format!(
                "{} line 5: time column 't' is 2020-01-03, which does not come after 2020-01-04 (line 4); rows read \
                 chunk by chunk must be in strictly increasing time order",
                path.display()
            ),
            "chunks of {size}"
        );
        assert_eq!(err.code(), Code::DataShape);
    }
    let (_, err) = chunks_err("t,x\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n", &with_time("t"), 2);
    assert!(matches!(err, ReadError::NotSorted { location: Location::Line(4), .. }), "{err:?}");
    // the whole-file reader sorts the same file
    let (_dir, path) = temp_file("x.csv", text);
    assert_eq!(read_frame(&path, &with_time("t")).unwrap().numeric("x").unwrap(), [1.0, 2.0, 4.0, 3.0]);
}

#[test]
fn a_newest_first_file_is_recognised_on_its_first_two_rows() {
    let mut reader = read_chunks(&data("ecb_eurofxref-hist.csv"), &with_time("Date"), 1000).unwrap();
    let err = reader.next().unwrap().unwrap_err();
    assert!(
        matches!(&err, ReadError::NewestFirst { first, second, .. } if first == "2026-10-30" && second == "2026-10-29"),
        "{err:?}"
    );
    assert!(err.to_string().contains("newest first"), "{err}");
    assert!(reader.next().is_none(), "the iterator ends after an error");
}

#[test]
fn a_cell_that_is_not_a_number_names_line_and_column() {
    let opts = ReadOptions { numeric: vec!["b".into()], ..ReadOptions::default() };
    let (path, err) = chunks_err("a,b\n1,2\n3,NA\n4,x1\n", &opts, 2);
    assert_eq!(err.to_string(), format!("{} line 4, column 'b': cannot parse 'x1' as a number", path.display()));
    assert_eq!(err.code(), Code::DataParse);
    // the whole-file reader too, for a declared column
    let (_, err) = read_err("a,b\n1,2\n3,x1\n", &opts);
    assert!(matches!(err, ReadError::NotNumber { location: Location::Line(3), .. }), "{err:?}");

    // a column the first chunk found numeric stays numeric, and says why
    let (_, err) = chunks_err("a,b\n1,2\n3,4\n5,six\n", &ReadOptions::default(), 2);
    assert!(
        err.to_string().ends_with(
            "line 4, column 'b': cannot parse 'six' as a number (the column was read as numeric because its first \
             2 rows were numbers; declare it categorical if it holds text)"
        ),
        "{err}"
    );
    // a categorical first chunk keeps later numbers as text
    let (_dir, path) = temp_file("x.csv", "a,b\n1,x\n3,4\n");
    let parts = chunks(&path, &ReadOptions::default(), 1);
    assert_eq!(concat(&parts).categorical("b").unwrap(), [Some("x".to_string()), Some("4".to_string())]);
}

#[test]
fn a_parquet_text_cell_that_is_not_a_number_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let frame = Frame::new(vec![
        ("a".into(), Column::Numeric(vec![1.0, 2.0, 3.0])),
        ("b".into(), Column::Categorical(vec![Some("1.5".into()), None, Some("x".into())])),
    ])
    .unwrap();
    write_frame(&path, &frame).unwrap();
    let opts = ReadOptions { numeric: vec!["b".into()], ..ReadOptions::default() };
    let err = read_chunks(&path, &opts, 2).unwrap().find_map(Result::err).unwrap();
    assert_eq!(err.to_string(), format!("{} row 3, column 'b': cannot parse 'x' as a number", path.display()));
    let parts: Vec<Frame> = read_chunks(&path, &opts, 2).unwrap().take(1).collect::<Result<_, _>>().unwrap();
    let b = parts[0].numeric("b").unwrap();
    assert!(b[0] == 1.5 && b[1].is_nan());
}

#[test]
fn written_chunk_by_chunk_is_written_whole() {
    let frame = read_frame(&data("ETTh1.csv"), &with_time("date")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["csv", "parquet"] {
        let whole = dir.path().join(format!("whole.{ext}"));
        write_frame(&whole, &frame).unwrap();
        let chunked = dir.path().join(format!("chunked.{ext}"));
        let mut writer = FrameWriter::create(&chunked).unwrap();
        for start in (0..frame.n_rows()).step_by(7) {
            writer.write(&frame.slice(start, (start + 7).min(frame.n_rows()))).unwrap();
        }
        assert!(!chunked.exists(), "nothing under the final name before finish");
        writer.finish().unwrap();
        if ext == "csv" {
            assert_eq!(fs::read(&whole).unwrap(), fs::read(&chunked).unwrap());
        }
        same(&read_frame(&chunked, &with_time("date")).unwrap(), &frame);
    }
    // every chunk must have the first one's columns
    let mut writer = FrameWriter::create(&dir.path().join("x.csv")).unwrap();
    writer.write(&frame.slice(0, 2)).unwrap();
    let other = frame.select(&["date".to_string(), "OT".to_string()]).unwrap();
    assert!(matches!(writer.write(&other), Err(ReadError::Internal { .. })));
    drop(writer);
    assert!(!dir.path().join("x.csv").exists());
}

#[test]
fn a_later_chunk_with_finer_times_is_printed_finer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut writer = FrameWriter::create(&path).unwrap();
    let stamps = |v: Vec<i64>| Frame::new(vec![("t".into(), Column::Timestamp(v))]).unwrap();
    writer.write(&stamps(vec![day(2020, 1, 1)])).unwrap();
    writer.write(&stamps(vec![day(2020, 1, 2) + 3_600_000])).unwrap();
    writer.write(&stamps(vec![day(2020, 1, 3)])).unwrap();
    writer.finish().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "t\n2020-01-01\n2020-01-02T01:00:00\n2020-01-03T00:00:00\n");
}

#[test]
fn crlf_files_report_the_lines_an_editor_shows() {
    let (_dir, path) = temp_file("crlf.csv", "Date,USD\r\n2020-01-01,1\r\n2020-01-02,x\r\n");
    let opts = ReadOptions { numeric: vec!["USD".into()], ..with_time("Date") };
    let err = read_frame(&path, &opts).unwrap_err();
    assert!(err.to_string().contains("line 3, column 'USD'"), "{err}");
}

#[test]
fn infinite_values_are_refused_with_their_line_and_nan_is_missing() {
    let (_dir, path) = temp_file("inf.csv", "Date,USD\n2020-01-01,nan\n2020-01-02,1e400\n");
    let err = read_frame(&path, &with_time("Date")).unwrap_err();
    assert_eq!(err.code(), Code::DataParse);
    assert!(err.to_string().contains("line 3, column 'USD': '1e400' is not a finite number"), "{err}");
    let (_dir, path) = temp_file("inf.csv", "Date,USD\n2020-01-01,nan\n2020-01-02,-inf\n");
    assert!(read_frame(&path, &with_time("Date")).unwrap_err().to_string().contains("'-inf'"));
    let (_dir, path) = temp_file("nan.csv", "Date,USD\n2020-01-01,nan\n2020-01-02,2\n");
    let frame = read_frame(&path, &with_time("Date")).unwrap();
    assert!(matches!(frame.column("USD").unwrap(), kiln_domain::Column::Numeric(v) if v[0].is_nan() && v[1] == 2.0));
}

#[test]
fn a_header_of_too_many_columns_is_refused() {
    let header = vec!["c"; crate::MAX_COLUMNS + 1].join(",");
    let (_dir, path) = temp_file("wide.csv", &format!("{header}\n"));
    let err = read_frame(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReadError::TooWide { .. }), "{err}");
}

#[test]
fn lenient_numeric_columns_keep_cells_that_are_not_numbers_aside() {
    let (_dir, path) = temp_file("x.csv", "a,b\n1,x\n2,\n3,inf\n4,5\n");
    let opts = ReadOptions { lenient_numeric: vec!["b".into()], ..ReadOptions::default() };
    let mut chunks = read_chunks(&path, &opts, 2).unwrap();
    let first = chunks.next().unwrap().unwrap();
    assert!(first.numeric("b").unwrap().iter().all(|v| v.is_nan()));
    assert_eq!(chunks.unparsed(), [super::Unparsed { column: "b".into(), row: 0, text: "x".into() }]);
    assert_eq!(chunks.lines(), Some(&[2, 3][..]));
    let second = chunks.next().unwrap().unwrap();
    assert!(second.numeric("b").unwrap()[0].is_nan());
    assert_eq!(second.numeric("b").unwrap()[1], 5.0);
    assert_eq!(chunks.unparsed(), [super::Unparsed { column: "b".into(), row: 0, text: "inf".into() }]);
    let mut parser = super::TimeTextParser::new(None).unwrap();
    assert_eq!(parser.parse("2024-01-02"), Some(day(2024, 1, 2)));
    assert_eq!(parser.parse("2024-01-02 10:00:00"), None);
}

#[test]
fn a_cell_is_trimmed_as_str_trim_does() {
    let cells = [
        "",
        " ",
        "a",
        " a",
        "a ",
        "\ta\r",
        "1.5",
        "\u{a0}7\u{a0}",
        "\u{3000}x",
        "x\u{2003}",
        "é",
        " é ",
        "\u{b}9",
        "9\u{c}",
        "~",
        "!x!",
        "a b",
    ];
    for cell in cells {
        assert_eq!(super::trim_cell(cell), cell.trim(), "{cell:?}");
    }
}

#[test]
fn missing_markers_are_found_as_a_set_finds_them() {
    let long = "m".repeat(70);
    let values: Vec<String> = ["", " NA ", "N/A", "NaN", "null", "-", long.as_str(), "null"].map(String::from).to_vec();
    let na = super::NaValues::new(&values);
    let set: std::collections::HashSet<&str> = values.iter().map(|v| v.trim()).collect();
    let longer = "m".repeat(71);
    for cell in ["", "NA", " NA ", "N/A", "NaN", "nan", "null", "nul", "-", "--", "1.5", long.as_str(), longer.as_str()]
    {
        assert_eq!(na.contains(cell), set.contains(cell), "{cell:?}");
    }
}

/// Chunks handed back with `recycle` have their strings written over by later chunks: every chunk read that way
/// equals the chunk read without it, in CSV and Parquet, with missing texts, texts longer and shorter than the
/// ones they overwrite, and a last chunk shorter than the others.
#[test]
fn recycled_chunks_read_as_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 103;
    let label = |i: usize| match i % 7 {
        0 => None,
        3 => Some("a much longer label than the others, ".repeat(i % 3 + 1)),
        _ => Some(format!("L{}", i * 37 % 11)),
    };
    let frame = Frame::new(vec![
        ("x".into(), Column::Numeric((0..rows).map(|i| i as f64).collect())),
        ("label".into(), Column::Categorical((0..rows).map(label).collect())),
        ("other".into(), Column::Categorical((0..rows).map(|i| label(i + 3)).collect())),
    ])
    .unwrap();
    for name in ["f.csv", "f.parquet"] {
        let path = dir.path().join(name);
        write_frame(&path, &frame).unwrap();
        let opts = ReadOptions { categorical: vec!["label".into(), "other".into()], ..ReadOptions::default() };
        let fresh = chunks(&path, &opts, 10);
        let mut reader = read_chunks(&path, &opts, 10).unwrap();
        let mut recycled = Vec::new();
        while let Some(chunk) = reader.next() {
            let chunk = chunk.unwrap();
            recycled.push(chunk.clone());
            reader.recycle(chunk);
        }
        assert_eq!(recycled, fresh, "{name}");
        assert_eq!(recycled.len(), 11);
    }
}
