use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::{Code, DataSource};

use super::FileSource;
use crate::error::ReadError;
use crate::read::{ReadOptions, read_frame, sha256_file};

fn data(name: &str) -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

#[test]
fn a_file_loads_the_rows_and_the_fingerprint_the_readers_give() {
    let path = data("ecb_eurofxref-hist.csv");
    let opts =
        ReadOptions { time_column: Some("Date".into()), columns: Some(vec!["USD".into()]), ..Default::default() };
    let source = FileSource::new(&path, opts.clone());
    assert_eq!(source.describe(), path.display().to_string());
    let loaded = source.load().unwrap();
    assert_eq!(loaded.frame, read_frame(&path, &opts).unwrap());
    assert_eq!(loaded.frame.n_rows(), 7126);
    assert_eq!(loaded.sha256, sha256_file(&path).unwrap());
    assert_eq!(loaded.sha256.len(), 64);
    assert_eq!(loaded.origin, path.display().to_string());
}

/// The port's error shows exactly the reader's message and chain, with its code, and hands the [`ReadError`] out.
fn check_same_error(path: &Path, opts: &ReadOptions, code: Code) {
    let expected = read_frame(path, opts).unwrap_err();
    let err = FileSource::new(path, opts.clone()).load().unwrap_err();
    assert_eq!(err.code(), code);
    assert_eq!(err.code(), expected.code());
    assert_eq!(err.to_string(), expected.to_string());
    assert_eq!(err.source().map(|s| s.to_string()), expected.source().map(|s| s.to_string()));
    let inner = err.get_ref().downcast_ref::<ReadError>().expect("the reader's error, kept whole");
    assert_eq!(inner.to_string(), expected.to_string());
}

#[test]
fn errors_are_the_readers_own() {
    let dir = tempfile::tempdir().unwrap();
    check_same_error(&dir.path().join("absent.csv"), &ReadOptions::default(), Code::NotFound);

    let bad = dir.path().join("bad.csv");
    fs::write(&bad, "t,x\n2024-01-01,1\n2024-01-02,oops\n").unwrap();
    let opts = ReadOptions { time_column: Some("t".into()), numeric: vec!["x".into()], ..Default::default() };
    check_same_error(&bad, &opts, Code::DataParse);
    let msg = FileSource::new(&bad, opts).load().unwrap_err().to_string();
    assert!(msg.contains("line 3") && msg.contains("'oops'"), "{msg}");

    let missing = ReadOptions { columns: Some(vec!["y".into()]), ..Default::default() };
    check_same_error(&bad, &missing, Code::MissingColumn);
}
