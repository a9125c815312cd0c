use kiln_data::ReadProgress;

use super::{fraction, thousands};

#[test]
fn numbers_get_thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
}

#[test]
fn the_share_done_comes_from_bytes_or_rows() {
    let csv = ReadProgress { rows: 10, total_rows: None, bytes: Some(25), total_bytes: Some(100) };
    assert_eq!(fraction(&csv), Some(0.25));
    let parquet = ReadProgress { rows: 10, total_rows: Some(40), bytes: None, total_bytes: Some(100) };
    assert_eq!(fraction(&parquet), Some(0.25));
    assert_eq!(fraction(&ReadProgress { rows: 10, ..ReadProgress::default() }), None);
}
