use polars::prelude::{DataFrame, DataType, IntoColumn, NamedFrom, Series};

use super::*;

fn page(dates: &[i32], close: &[f64]) -> DataFrame {
    let date = Series::new("date".into(), dates).cast(&DataType::Date).unwrap();
    let close = Series::new("close".into(), close);
    DataFrame::new(dates.len(), vec![date.into_column(), close.into_column()]).unwrap()
}

fn write(store: &SnapshotStore, pages: &[DataFrame]) -> Result<SnapshotOutcome, FetchError> {
    let mut w =
        SnapshotWriter::begin(store, "yahoo", "NVDA_1d", serde_json::json!({"symbols": ["NVDA"]}), Some("date"))?;
    for p in pages {
        w.page(p)?;
    }
    w.finish(vec!["1 all-null bar dropped".to_string()])
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_is_a_parquet_file_and_its_manifest_and_the_same_data_twice_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(tmp.path());
    // 2021-01-04 is day 18631
    let pages = [page(&[18631, 18632], &[1.0, 2.0]), page(&[18633], &[3.0])];
    let SnapshotOutcome::Written(first) = write(&store, &pages).unwrap() else { panic!("expected a new snapshot") };
    let m = &first.manifest;
    assert_eq!((m.source.as_str(), m.name.as_str(), m.rows), ("yahoo", "NVDA_1d", 3));
    assert_eq!(m.time_range, Some(["2021-01-04".to_string(), "2021-01-06".to_string()]));
    assert_eq!(
        m.columns,
        vec![
            ManifestColumn { name: "date".into(), dtype: "date".into() },
            ManifestColumn { name: "close".into(), dtype: "f64".into() }
        ]
    );
    assert_eq!(m.sha256, sha256_file(&first.path).unwrap());
    assert!(m.file.ends_with(&format!("-{}.parquet", &m.sha256[..SHA_PREFIX])), "{}", m.file);
    assert_eq!(m.notes, vec!["1 all-null bar dropped".to_string()]);
    assert_eq!(m.request["symbols"][0], "NVDA");
    let dir = tmp.path().join("yahoo/NVDA_1d");
    assert_eq!(files(&dir).len(), 2, "{:?}", files(&dir));

    // the same rows again: the same bytes, nothing new, no temporary file left
    let again = write(&store, &pages).unwrap();
    assert_eq!(again, SnapshotOutcome::Unchanged(first.clone()));
    assert_eq!(files(&dir).len(), 2, "{:?}", files(&dir));

    // the file reads back as the rows written
    let frame = crate::read_frame(&first.path, &crate::ReadOptions::default()).unwrap();
    assert_eq!(frame.numeric("close").unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(frame.timestamps("date").unwrap()[0], 18631 * 86_400_000);
}

#[test]
fn references_resolve_to_the_latest_or_a_prefix_and_name_what_there_is_when_they_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(tmp.path());
    assert!(store.list().unwrap().is_empty());
    let a = write(&store, &[page(&[18631], &[1.0])]).unwrap().snapshot().clone();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = write(&store, &[page(&[18631], &[1.5])]).unwrap().snapshot().clone();
    assert_ne!(a.manifest.sha256, b.manifest.sha256);
    assert_eq!(store.list().unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(store.resolve("yahoo/NVDA_1d@latest").unwrap(), b);
    assert_eq!(store.resolve("yahoo/NVDA_1d").unwrap(), b);
    assert_eq!(store.resolve(&format!("yahoo/NVDA_1d@{}", &a.manifest.sha256[..8])).unwrap(), a);
    assert_eq!(store.resolve(&a.reference()).unwrap(), a);

    let e = store.resolve("yahoo/MSFT_1d@latest").unwrap_err().to_string();
    assert!(e.contains("no snapshot yahoo/MSFT_1d") && e.contains("yahoo/NVDA_1d"), "{e}");
    let e = store.resolve("yahoo/NVDA_1d@ffffffff").unwrap_err().to_string();
    assert!(e.contains("matches 'ffffffff'") || e.contains("no snapshot of yahoo/NVDA_1d matches"), "{e}");
    let e = store.resolve("NVDA_1d").unwrap_err().to_string();
    assert!(e.contains("expected <source>/<name>"), "{e}");
    let e = store.resolve("yahoo/../etc@latest").unwrap_err().to_string();
    assert!(e.contains("snapshot name '../etc'"), "{e}");
    let e = store.resolve("yahoo/NVDA_1d@ab").unwrap_err().to_string();
    assert!(e.contains("at least 4"), "{e}");
}

#[test]
fn a_failed_or_abandoned_fetch_leaves_no_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(tmp.path());
    let dir = tmp.path().join("yahoo/NVDA_1d");
    // pages that disagree on their columns: an error, and the temporary file goes with the writer
    let other = DataFrame::new(1, vec![Series::new("open".into(), &[1.0]).into_column()]).unwrap();
    let e = write(&store, &[page(&[18631], &[1.0]), other]).unwrap_err().to_string();
    assert!(e.contains("a page has the columns"), "{e}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // no rows at all
    let e = write(&store, &[]).unwrap_err().to_string();
    assert!(e.contains("gave no rows"), "{e}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // a Parquet file whose manifest was never written (a crash between the two) is not a snapshot
    std::fs::write(dir.join("20260101T000000Z-000000000000.parquet"), b"PAR1").unwrap();
    assert!(store.list().unwrap().is_empty());
    // a manifest that is not one is reported, not skipped
    std::fs::write(dir.join("20260101T000000Z-000000000000.json"), b"{").unwrap();
    let e = store.list().unwrap_err().to_string();
    assert!(e.contains("not a kiln snapshot manifest"), "{e}");
}

#[test]
fn a_source_or_name_must_be_one_plain_folder_name() {
    for bad in ["", ".hidden", "a/b", "a b", "x\\y"] {
        assert!(check_segment("snapshot name", bad).is_err(), "{bad:?}");
    }
    for good in ["EURUSD=X", "^GSPC_1d", "usa_names.2024"] {
        check_segment("snapshot name", good).unwrap();
    }
}

#[test]
fn the_same_rows_in_other_pages_make_the_same_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(tmp.path());
    let days: Vec<i32> = (0..150_000).collect();
    let close: Vec<f64> = days.iter().map(|d| f64::from(*d) * 0.5).collect();
    let whole = page(&days, &close);
    let SnapshotOutcome::Written(first) = write(&store, std::slice::from_ref(&whole)).unwrap() else { panic!() };
    // the same rows in three uneven pages, then in pages of one row group and a tail
    let pages = [whole.slice(0, 7), whole.slice(7, 70_000), whole.slice(70_007, 79_993)];
    assert_eq!(write(&store, &pages).unwrap(), SnapshotOutcome::Unchanged(first.clone()));
    let pages = [whole.slice(0, ROW_GROUP), whole.slice(ROW_GROUP as i64, 150_000 - ROW_GROUP)];
    assert_eq!(write(&store, &pages).unwrap(), SnapshotOutcome::Unchanged(first.clone()));
    let frame = crate::read_frame(&first.path, &crate::ReadOptions::default()).unwrap();
    assert_eq!(frame.n_rows(), 150_000);
    assert_eq!(frame.numeric("close").unwrap()[149_999], 149_999.0 * 0.5);
}
