//! Unit tests of the feature kernels, the recipe and the fitted pipeline, on hand-computed series and on the real
//! ECB reference-rate and ETTh1 data sets in `data/`.

use std::collections::BTreeSet;
use std::f64::consts::TAU;
use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_domain::{Code, Column, Frame, millis_from_civil};

use crate::{
    CalendarAt, CalendarPart, FeatureError, FeatureRow, FeatureSpec, FeatureTable, FittedPipeline, Lookback,
    PipelineInput, RollingStat, TargetTransform, TimeSeriesRecipe,
};

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

const ALL_STATS: [RollingStat; 5] =
    [RollingStat::Mean, RollingStat::Std, RollingStat::Min, RollingStat::Max, RollingStat::Sum];

const ALL_PARTS: [CalendarPart; 5] = [
    CalendarPart::DayOfWeek,
    CalendarPart::Month,
    CalendarPart::Hour,
    CalendarPart::DayOfYear,
    CalendarPart::DayOfMonth,
];

/// Bit-for-bit equality, where every NaN equals every NaN.
fn same_bits(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Equality within 1e-12 relative (absolute near zero), NaN equal to NaN.
fn close(actual: f64, expected: f64) -> bool {
    if expected.is_nan() || actual.is_nan() {
        return expected.is_nan() && actual.is_nan();
    }
    (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
}

fn assert_close_series(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            close(a, e),
            "{what}[{i}]: expected {e:?}, got {a:?}\n  actual:   {actual:?}\n  expected: {expected:?}"
        );
    }
}

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn parse_cell(cell: &str) -> f64 {
    let cell = cell.trim();
    if cell.is_empty() || cell == "N/A" {
        f64::NAN
    } else {
        cell.parse().unwrap_or_else(|e| panic!("cannot parse {cell:?} as a number: {e}"))
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`, UTC.
fn parse_datetime(text: &str) -> i64 {
    let (date, time) = text.trim().split_once(' ').unwrap_or((text.trim(), "00:00:00"));
    let d: Vec<u32> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<u32> = time.split(':').map(|p| p.parse().unwrap()).collect();
    assert_eq!((d.len(), t.len()), (3, 3), "bad date {text:?}");
    millis_from_civil(i64::from(d[0]), d[1], d[2], t[0], t[1], t[2]).unwrap_or_else(|| panic!("bad date {text:?}"))
}

/// Reads `columns` of a CSV file into a frame sorted ascending by `time_column` (which becomes a timestamp column).
fn load_csv(file: &str, time_column: &str, columns: &[&str]) -> Frame {
    let mut reader = csv::Reader::from_path(data_file(file)).unwrap();
    let headers = reader.headers().unwrap().clone();
    let index =
        |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("{file}: no column {name}"));
    let time_index = index(time_column);
    let value_index: Vec<usize> = columns.iter().map(|c| index(c)).collect();
    let mut rows: Vec<(i64, Vec<f64>)> = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let values = value_index.iter().map(|&i| parse_cell(&record[i])).collect();
            (parse_datetime(&record[time_index]), values)
        })
        .collect();
    rows.sort_by_key(|row| row.0);
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "{file}: duplicate timestamps");
    let mut named = vec![(time_column.to_string(), Column::Timestamp(rows.iter().map(|r| r.0).collect()))];
    for (j, name) in columns.iter().enumerate() {
        named.push((name.to_string(), Column::Numeric(rows.iter().map(|r| r.1[j]).collect())));
    }
    Frame::new(named).unwrap()
}

/// ECB daily reference rates, oldest first. USD/JPY/GBP are complete; ISK has a 2341-day gap of N/A in the middle,
/// BGN starts and ends with N/A.
fn ecb() -> &'static Frame {
    static FRAME: OnceLock<Frame> = OnceLock::new();
    FRAME.get_or_init(|| load_csv("ecb_eurofxref-hist.csv", "Date", &["USD", "JPY", "GBP", "ISK", "BGN"]))
}

/// ETTh1 hourly electricity transformer data.
fn etth1() -> &'static Frame {
    static FRAME: OnceLock<Frame> = OnceLock::new();
    FRAME.get_or_init(|| load_csv("ETTh1.csv", "date", &["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]))
}

fn recipe(time_column: &str, target: &str, features: Vec<FeatureSpec>) -> TimeSeriesRecipe {
    TimeSeriesRecipe {
        time_format: None,
        na_values: None,
        multi_step: None,
        time_column: time_column.to_string(),
        target: target.to_string(),
        series_column: None,
        wide: None,
        horizon: 1,
        target_transform: TargetTransform::None,
        features,
    }
}

/// One feature spec per kernel kind (and per variant of it worth checking) reading `column`.
fn one_spec_per_kernel(column: &str) -> Vec<FeatureSpec> {
    let c = || column.to_string();
    vec![
        FeatureSpec::Lag { column: c(), lags: vec![1, 2, 7] },
        FeatureSpec::Current { columns: vec![c()] },
        FeatureSpec::Diff { column: c(), periods: vec![1, 5] },
        FeatureSpec::PctChange { column: c(), periods: vec![1, 5] },
        FeatureSpec::LogReturn { column: c(), periods: vec![1, 5] },
        FeatureSpec::Rolling { column: c(), windows: vec![2, 5, 21], stats: ALL_STATS.to_vec() },
        FeatureSpec::ExpandingMean { column: c(), min_periods: 1 },
        FeatureSpec::ExpandingMean { column: c(), min_periods: 10 },
        FeatureSpec::Ewm { column: c(), spans: vec![1.0, 2.5, 3.0, 10.0, 50.0] },
        FeatureSpec::Calendar { parts: ALL_PARTS.to_vec(), cyclical: false, at: CalendarAt::Origin },
        FeatureSpec::Calendar { parts: ALL_PARTS.to_vec(), cyclical: true, at: CalendarAt::Origin },
    ]
}

/// A recipe using every kernel kind at once (its lookback is `All`).
fn everything_recipe(time_column: &str, target: &str, columns: &[&str]) -> TimeSeriesRecipe {
    let mut features = Vec::new();
    for column in columns {
        let c = || column.to_string();
        features.extend([
            FeatureSpec::Lag { column: c(), lags: vec![1, 3] },
            FeatureSpec::Current { columns: vec![c()] },
            FeatureSpec::Diff { column: c(), periods: vec![1] },
            FeatureSpec::PctChange { column: c(), periods: vec![2] },
            FeatureSpec::LogReturn { column: c(), periods: vec![1] },
            FeatureSpec::Rolling { column: c(), windows: vec![3, 10], stats: ALL_STATS.to_vec() },
            FeatureSpec::ExpandingMean { column: c(), min_periods: 5 },
            FeatureSpec::Ewm { column: c(), spans: vec![4.0, 20.0] },
        ]);
    }
    features.push(FeatureSpec::Calendar { parts: ALL_PARTS.to_vec(), cyclical: true, at: CalendarAt::Origin });
    recipe(time_column, target, features)
}

/// Origin rows to check: every row for the first few hundred past the warm-up, a sample across the whole series,
/// the rows around every start or end of a run of missing values in `columns`, and the last row.
fn origins(frame: &Frame, warmup: usize, columns: &[&str]) -> Vec<usize> {
    let n = frame.n_rows();
    let mut out: BTreeSet<usize> = (warmup..n.min(warmup + 300)).collect();
    out.extend((warmup..n).step_by((n / 150).max(1)));
    out.insert(n - 1);
    for column in columns {
        let Ok(x) = frame.numeric(column) else {
            continue;
        };
        for (i, pair) in x.windows(2).enumerate() {
            if pair[0].is_nan() != pair[1].is_nan() {
                let start = i + 1;
                out.extend(start.saturating_sub(3).max(warmup)..(start + 25).min(n));
            }
        }
    }
    out.into_iter().collect()
}

fn assert_tables_identical(a: &FeatureTable, b: &FeatureTable) {
    assert_eq!(a.x.names, b.x.names);
    assert_eq!((a.x.n_rows, a.warmup_dropped), (b.x.n_rows, b.warmup_dropped));
    assert_eq!(a.times, b.times);
    for (what, a, b) in [
        ("x", &a.x.data, &b.x.data),
        ("current", &a.current, &b.current),
        ("future", &a.future, &b.future),
        ("label", &a.label, &b.label),
    ] {
        assert_eq!(a.len(), b.len(), "{what}");
        assert!(a.iter().zip(b).all(|(&a, &b)| same_bits(a, b)), "{what} differs");
    }
}

fn assert_row_matches(table: &FeatureTable, i: usize, row: &FeatureRow, what: &str) {
    assert_eq!(row.time, table.times[i], "{what}: time");
    assert!(same_bits(row.current, table.current[i]), "{what}: current {} vs {}", row.current, table.current[i]);
    let batch = table.x.row(i);
    assert_eq!(row.values.len(), batch.len(), "{what}: width");
    for ((name, &online), &batch) in table.x.names.iter().zip(&row.values).zip(batch) {
        assert!(
            same_bits(online, batch),
            "{what}: feature {name}: online {online:?} ({:#x}) != batch {batch:?} ({:#x})",
            online.to_bits(),
            batch.to_bits()
        );
    }
}

/// `build_last_row` on the prefix ending at each origin row equals that row of `build_table`, bit for bit; for a
/// `Lookback::Rows(k)` recipe, so does a window of just the last `k` rows (and of a few more).
fn assert_batch_equals_online(recipe: &TimeSeriesRecipe, frame: &Frame, nan_columns: &[&str]) {
    let frame = frame.select(&recipe.input_columns()).unwrap();
    let table = recipe.build_table(&frame).unwrap();
    let warmup = table.warmup_dropped;
    assert_eq!(table.x.n_rows, frame.n_rows() - warmup);
    let lookback = recipe.lookback();
    let origins = origins(&frame, warmup, nan_columns);
    assert!(origins.len() > 300, "too few origins checked");
    for &t in &origins {
        let i = t - warmup;
        let what = format!("{:?} at row {t}", recipe.feature_names());
        let prefix = frame.slice(0, t + 1);
        assert_row_matches(&table, i, &recipe.build_last_row(&prefix).unwrap(), &format!("{what}, whole prefix"));
        if let Lookback::Rows(k) = lookback {
            assert!(t + 1 >= k, "lookback {k} longer than warm-up {warmup} + 1");
            let window = frame.slice(t + 1 - k, t + 1);
            assert_row_matches(&table, i, &recipe.build_last_row(&window).unwrap(), &format!("{what}, last {k} rows"));
            let start = (t + 1).saturating_sub(k + 3);
            let window = frame.slice(start, t + 1);
            assert_row_matches(&table, i, &recipe.build_last_row(&window).unwrap(), &format!("{what}, rows {start}.."));
        }
    }
}

/// The whole-length series of one feature: NaN for the dropped warm-up rows, then the table's column.
fn feature_series(recipe: &TimeSeriesRecipe, frame: &Frame, name: &str) -> Vec<f64> {
    let table = recipe.build_table(frame).unwrap();
    let j = table.x.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no feature {name}"));
    let mut out = vec![f64::NAN; table.warmup_dropped];
    out.extend(table.x.column(j));
    out
}

/// A daily frame starting 2024-01-01 with one numeric column `x`.
fn small_frame(x: &[f64]) -> Frame {
    let start = millis_from_civil(2024, 1, 1, 0, 0, 0).unwrap();
    let times = (0..x.len() as i64).map(|i| start + i * MS_PER_DAY).collect();
    Frame::new(vec![("time".to_string(), Column::Timestamp(times)), ("x".to_string(), Column::Numeric(x.to_vec()))])
        .unwrap()
}

/// The series of feature `name` made by `spec` on `x`.
fn small_series(spec: FeatureSpec, x: &[f64], name: &str) -> Vec<f64> {
    feature_series(&recipe("time", "x", vec![spec]), &small_frame(x), name)
}

/// `frame` with every value after row `t` changed: numeric values by `change`, timestamps pushed later.
fn with_future_changed(frame: &Frame, t: usize, change: impl Fn(f64) -> f64) -> Frame {
    let columns = frame
        .columns()
        .map(|(name, column)| {
            let column = match column {
                Column::Numeric(v) => {
                    Column::Numeric(v.iter().enumerate().map(|(i, &x)| if i > t { change(x) } else { x }).collect())
                }
                Column::Timestamp(v) => Column::Timestamp(
                    v.iter()
                        .enumerate()
                        .map(|(i, &ms)| if i > t { ms + 40 * MS_PER_DAY + 5 * MS_PER_HOUR } else { ms })
                        .collect(),
                ),
                other => other.clone(),
            };
            (name.to_string(), column)
        })
        .collect();
    Frame::new(columns).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// 1. batch == online, bit for bit
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn batch_equals_online_bit_for_bit_for_every_kernel_on_ecb_usd() {
    for spec in one_spec_per_kernel("USD") {
        assert_batch_equals_online(&recipe("Date", "USD", vec![spec]), ecb(), &[]);
    }
}

#[test]
fn batch_equals_online_bit_for_bit_for_every_kernel_on_ecb_columns_with_missing_values() {
    // ISK: a run of N/A in the middle of the series; BGN: N/A at the start and at the end
    for column in ["ISK", "BGN"] {
        for spec in one_spec_per_kernel(column) {
            assert_batch_equals_online(&recipe("Date", "USD", vec![spec]), ecb(), &[column]);
        }
    }
}

#[test]
fn batch_equals_online_bit_for_bit_for_every_kernel_on_etth1_ot_and_hourly_calendar() {
    for spec in one_spec_per_kernel("OT") {
        assert_batch_equals_online(&recipe("date", "OT", vec![spec]), etth1(), &[]);
    }
}

#[test]
fn batch_equals_online_bit_for_bit_for_a_recipe_combining_every_kernel() {
    let ecb_recipe = everything_recipe("Date", "USD", &["USD", "ISK", "BGN"]);
    assert_eq!(ecb_recipe.lookback(), Lookback::All);
    assert_batch_equals_online(&ecb_recipe, ecb(), &["ISK", "BGN"]);
    let ett_recipe = everything_recipe("date", "OT", &["OT", "HUFL"]);
    assert_batch_equals_online(&ett_recipe, etth1(), &[]);
}

#[test]
fn windowed_recipe_serves_from_exactly_its_lookback_rows() {
    let frame = ecb();
    let recipe = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1, 10] },
            FeatureSpec::Rolling { column: "ISK".into(), windows: vec![30], stats: ALL_STATS.to_vec() },
            FeatureSpec::LogReturn { column: "GBP".into(), periods: vec![12] },
            FeatureSpec::Calendar { parts: vec![CalendarPart::DayOfWeek], cyclical: true, at: CalendarAt::Origin },
        ],
    );
    assert_eq!(recipe.lookback(), Lookback::Rows(30));
    assert_eq!(recipe.min_window_rows(), 30);
    let table = recipe.build_table(frame).unwrap();
    let n = frame.n_rows();
    for t in [29, 30, 31, 500, 2546, 2560, 4887, 4900, n - 1] {
        let window = frame.slice(t + 1 - 30, t + 1);
        assert_row_matches(&table, t - 29, &recipe.build_last_row(&window).unwrap(), &format!("row {t}"));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. no look-ahead
// ---------------------------------------------------------------------------------------------------------------

/// A named change applied to every value after the origin row.
type FutureChange = (&'static str, fn(f64) -> f64);

fn assert_no_look_ahead(recipe: &TimeSeriesRecipe, frame: &Frame) {
    let frame = frame.select(&recipe.input_columns()).unwrap();
    let original = recipe.build_table(&frame).unwrap();
    let warmup = original.warmup_dropped;
    let n = frame.n_rows();
    let changes: [FutureChange; 3] = [("1e9", |_| 1e9), ("NaN", |_| f64::NAN), ("-x", |x| -x)];
    for t in [warmup, warmup + 1, warmup + 7, 100, 1000, 2600, n / 2, n - 3, n - 2] {
        for (label, change) in changes {
            let changed = recipe.build_table(&with_future_changed(&frame, t, change)).unwrap();
            for i in 0..=t - warmup {
                let what = format!("future set to {label} after row {t}, row {}", i + warmup);
                assert_eq!(changed.times[i], original.times[i], "{what}: time");
                assert!(same_bits(changed.current[i], original.current[i]), "{what}: current");
                let (a, b) = (changed.x.row(i), original.x.row(i));
                for ((name, &a), &b) in original.x.names.iter().zip(a).zip(b) {
                    assert!(same_bits(a, b), "{what}: feature {name} changed from {b} to {a}");
                }
            }
            // the change is visible right after t, so the comparison above is not vacuous
            let after = t + 1 - warmup;
            assert!(
                changed.x.row(after).iter().zip(original.x.row(after)).any(|(&a, &b)| !same_bits(a, b)),
                "changing the future after row {t} changed nothing at row {}",
                t + 1
            );
        }
    }
}

#[test]
fn no_feature_at_or_before_t_changes_when_every_later_value_changes_on_ecb() {
    assert_no_look_ahead(&everything_recipe("Date", "USD", &["USD", "ISK"]), ecb());
}

#[test]
fn no_feature_at_or_before_t_changes_when_every_later_value_changes_on_etth1() {
    assert_no_look_ahead(&everything_recipe("date", "OT", &["OT", "LULL"]), etth1());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. hand-computed values
// ---------------------------------------------------------------------------------------------------------------

const X: [f64; 7] = [1.0, 2.0, 4.0, 7.0, 11.0, 16.0, 22.0];
const NAN: f64 = f64::NAN;

#[test]
fn lag_current_and_diff_match_hand_computed_values() {
    let lag = |lags: Vec<usize>| FeatureSpec::Lag { column: "x".into(), lags };
    assert_close_series(&small_series(lag(vec![1]), &X, "x_lag_1"), &[NAN, 1., 2., 4., 7., 11., 16.], "lag 1");
    assert_close_series(&small_series(lag(vec![1, 2]), &X, "x_lag_2"), &[NAN, NAN, 1., 2., 4., 7., 11.], "lag 2");
    assert_close_series(&small_series(FeatureSpec::Current { columns: vec!["x".into()] }, &X, "x"), &X, "current");
    let diff = |periods: Vec<usize>| FeatureSpec::Diff { column: "x".into(), periods };
    assert_close_series(&small_series(diff(vec![1]), &X, "x_diff_1"), &[NAN, 1., 2., 3., 4., 5., 6.], "diff 1");
    assert_close_series(&small_series(diff(vec![1, 3]), &X, "x_diff_3"), &[NAN, NAN, NAN, 6., 9., 12., 15.], "diff 3");
    // a missing value propagates to every feature that reads it
    let gappy = [1.0, NAN, 4.0, 7.0];
    let spec = FeatureSpec::Diff { column: "x".into(), periods: vec![1] };
    assert_close_series(&small_series(spec, &gappy, "x_diff_1"), &[NAN, NAN, NAN, 3.0], "diff 1 with a gap");
    let spec = FeatureSpec::Lag { column: "x".into(), lags: vec![1] };
    assert_close_series(&small_series(spec, &gappy, "x_lag_1"), &[NAN, 1.0, NAN, 4.0], "lag 1 with a gap");
}

#[test]
fn pct_change_and_log_return_match_hand_computed_values() {
    let pct = |periods: Vec<usize>| FeatureSpec::PctChange { column: "x".into(), periods };
    let expected = [NAN, 1.0, 1.0, 0.75, 4.0 / 7.0, 5.0 / 11.0, 0.375];
    assert_close_series(&small_series(pct(vec![1]), &X, "x_pct_change_1"), &expected, "pct_change 1");
    let expected = [NAN, NAN, 3.0, 2.5, 1.75, 16.0 / 7.0 - 1.0, 1.0];
    assert_close_series(&small_series(pct(vec![2, 1]), &X, "x_pct_change_2"), &expected, "pct_change 2");
    let log = |periods: Vec<usize>| FeatureSpec::LogReturn { column: "x".into(), periods };
    let expected = [
        NAN,
        2f64.ln(),
        2f64.ln(),
        (7.0f64 / 4.0).ln(),
        (11.0f64 / 7.0).ln(),
        (16.0f64 / 11.0).ln(),
        (22.0f64 / 16.0).ln(),
    ];
    assert_close_series(&small_series(log(vec![1]), &X, "x_log_return_1"), &expected, "log_return 1");
    let expected = [NAN, NAN, 4f64.ln(), 3.5f64.ln(), 2.75f64.ln(), (16.0f64 / 7.0).ln(), 2f64.ln()];
    assert_close_series(&small_series(log(vec![1, 2]), &X, "x_log_return_2"), &expected, "log_return 2");
}

#[test]
fn rolling_statistics_match_hand_computed_values_with_sample_std() {
    let spec = || FeatureSpec::Rolling { column: "x".into(), windows: vec![3], stats: ALL_STATS.to_vec() };
    let series = |stat: &str| small_series(spec(), &X, &format!("x_rolling_{stat}_3"));
    let mean = [NAN, NAN, 7.0 / 3.0, 13.0 / 3.0, 22.0 / 3.0, 34.0 / 3.0, 49.0 / 3.0];
    assert_close_series(&series("mean"), &mean, "rolling mean 3");
    assert_close_series(&series("sum"), &[NAN, NAN, 7.0, 13.0, 22.0, 34.0, 49.0], "rolling sum 3");
    assert_close_series(&series("min"), &[NAN, NAN, 1.0, 2.0, 4.0, 7.0, 11.0], "rolling min 3");
    assert_close_series(&series("max"), &[NAN, NAN, 4.0, 7.0, 11.0, 16.0, 22.0], "rolling max 3");
    // sample standard deviation (ddof = 1): [1,2,4] has squared deviations 16/9 + 1/9 + 25/9 = 42/9, over 2
    // the rest are pandas' `x.rolling(3).std()`
    let std =
        [NAN, NAN, (7.0f64 / 3.0).sqrt(), 2.5166114784235836, 3.5118845842842465, 4.509249752822894, 5.507570547286103];
    assert_close_series(&series("std"), &std, "rolling std 3");

    // a window holding a missing value is missing; a constant window has exactly zero spread
    let gappy = [1.0, 2.0, NAN, 4.0, 5.0, 6.0, 0.1, 0.1, 0.1];
    let series = |stat: &str| small_series(spec(), &gappy, &format!("x_rolling_{stat}_3"));
    assert_close_series(&series("sum"), &[NAN, NAN, NAN, NAN, NAN, 15.0, 11.1, 6.2, 0.30000000000000004], "sum");
    let std = series("std");
    assert!(std[..5].iter().all(|v| v.is_nan()), "{std:?}");
    assert_eq!(std[5].to_bits(), 1.0f64.to_bits());
    assert_eq!(std[8].to_bits(), 0.0f64.to_bits(), "constant window: {std:?}");
}

#[test]
fn expanding_mean_skips_missing_values_and_honors_min_periods() {
    let x = [1.0, 2.0, NAN, 4.0, 7.0];
    let spec = |min_periods| FeatureSpec::ExpandingMean { column: "x".into(), min_periods };
    // pandas: x.expanding(min_periods=3).mean() and x.expanding().mean()
    let expected = [NAN, NAN, NAN, 7.0 / 3.0, 3.5];
    assert_close_series(&small_series(spec(3), &x, "x_expanding_mean"), &expected, "min_periods 3");
    let expected = [1.0, 1.5, 1.5, 7.0 / 3.0, 3.5];
    assert_close_series(&small_series(spec(1), &x, "x_expanding_mean"), &expected, "min_periods 1");
    let expected = [NAN, NAN, 2.0, 2.0, 3.0];
    assert_close_series(
        &small_series(spec(1), &[NAN, NAN, 2.0, NAN, 4.0], "x_expanding_mean"),
        &expected,
        "leading NaN",
    );
}

#[test]
fn ewm_matches_pandas_span_adjust_false() {
    let spec = |spans: Vec<f64>| FeatureSpec::Ewm { column: "x".into(), spans };
    // span 3: alpha = 1/2, s_0 = x_0, s_t = x_t/2 + s_{t-1}/2 (exact in binary)
    let expected = [1.0, 1.5, 2.75, 4.875, 7.9375, 11.96875, 16.984375];
    let actual = small_series(spec(vec![3.0, 10.0]), &X, "x_ewm_3");
    assert_eq!(actual, expected);
    // span 10: alpha = 2/11; reference values from pandas `x.ewm(span=10, adjust=False).mean()`
    let expected = [
        1.0,
        1.1818181818181817,
        1.6942148760330578,
        2.6589030803906835,
        4.175466156683287,
        6.325381400922689,
        9.175312055300381,
    ];
    assert_close_series(&small_series(spec(vec![3.0, 10.0]), &X, "x_ewm_10"), &expected, "span 10");
    // the same from the recursion written out
    let alpha = 2.0 / 11.0;
    let mut s = X[0];
    let recursion: Vec<f64> = X
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i > 0 {
                s = alpha * x + (1.0 - alpha) * s;
            }
            s
        })
        .collect();
    assert_close_series(&small_series(spec(vec![10.0]), &X, "x_ewm_10"), &recursion, "span 10 recursion");
    // span 1: alpha = 1, the series itself
    assert_close_series(&small_series(spec(vec![1.0]), &X, "x_ewm_1"), &X, "span 1");

    // missing values (ignore_na=False): a gap holds the mean, still ages its weight; pandas' values for span 4
    let gappy = [1.0, NAN, 4.0, NAN, NAN, 10.0];
    let expected = [1.0, 1.0, 2.5789473684210527, 2.5789473684210527, 2.5789473684210527, 7.397812713602187];
    assert_close_series(&small_series(spec(vec![4.0]), &gappy, "x_ewm_4"), &expected, "span 4 with gaps");
    // leading missing values: NaN until the first observation, which starts the mean
    let expected = [NAN, NAN, 4.0, 5.0];
    assert_close_series(&small_series(spec(vec![3.0]), &[NAN, NAN, 4.0, 6.0], "x_ewm_3"), &expected, "leading NaN");
}

#[test]
fn kernels_agree_with_pandas_on_real_ecb_rows() {
    // reference values from pandas 3.1 on the same file (N/A as NaN, sorted by date), at rows 100 (1999-05-24),
    // 2550 (2008-12-16, inside ISK's gap), 4890 (2018-02-06, just after it) and 7125 (2026-10-30, the last).
    // The rolling std values are the exact ones (rational arithmetic, then rounded): pandas' online rolling variance
    // drifts by up to 1e-10 relative on this series, kiln's two-pass formula does not.
    let rows = [100, 2550, 4890, 7125];
    let cases: [(&str, &str, [f64; 4]); 12] = [
        ("USD", "ewm_10", [1.0637184835804143, 1.316248611301862, 1.2386428420900246, 1.1177149815015213]),
        ("USD", "ewm_2.5", [1.059303036858466, 1.3560313828064445, 1.238274576500852, 1.11573793132581]),
        ("USD", "expanding_mean", [1.1017168316831683, 1.1540548804390436, 1.2079827642608874, 1.1815505613247266]),
        (
            "USD",
            "rolling_std_20",
            [0.006725620691371955, 0.03214531929584118, 0.014321426715166851, 0.0035131931794009723],
        ),
        ("USD", "rolling_mean_20", [1.065585, 1.287545, 1.23003, 1.1195599999999999]),
        (
            "USD",
            "pct_change_5",
            [-0.009358914365933613, 0.06636547748870525, -0.007406811045809425, -0.0018761726078798668],
        ),
        ("ISK", "ewm_10", [78.34754739597714, 282.46079896158506, 125.02981968444777, 136.1557959009751]),
        ("ISK", "ewm_2.5", [78.19173639884744, 289.9680287933204, 125.02177842565598, 135.95869765925926]),
        ("ISK", "expanding_mean", [79.10039603960396, 89.38072270227809, 89.43667843137254, 115.13498432601881]),
        ("ISK", "rolling_std_20", [0.3839116537626026, NAN, NAN, 0.3972272318009052]),
        ("ISK", "rolling_mean_20", [78.4125, NAN, NAN, 136.41]),
        ("ISK", "pct_change_5", [-0.0022962112514351984, NAN, NAN, -0.001468428781204012]),
    ];
    let mut features = Vec::new();
    for column in ["USD", "ISK"] {
        let c = || column.to_string();
        features.extend([
            FeatureSpec::Ewm { column: c(), spans: vec![10.0, 2.5] },
            FeatureSpec::ExpandingMean { column: c(), min_periods: 1 },
            FeatureSpec::Rolling { column: c(), windows: vec![20], stats: vec![RollingStat::Std, RollingStat::Mean] },
            FeatureSpec::PctChange { column: c(), periods: vec![5] },
        ]);
    }
    let recipe = recipe("Date", "USD", features);
    let table = recipe.build_table(ecb()).unwrap();
    for (column, feature, expected) in cases {
        let name = format!("{column}_{feature}");
        let j = table.x.names.iter().position(|n| *n == name).unwrap();
        for (&t, &e) in rows.iter().zip(&expected) {
            let actual = table.x.row(t - table.warmup_dropped)[j];
            let ok = if e.is_nan() { actual.is_nan() } else { (actual - e).abs() <= 1e-12 * e.abs() };
            assert!(ok, "{name} at row {t}: pandas {e:?}, kiln {actual:?}");
        }
    }
}

#[test]
fn calendar_parts_follow_pandas_conventions_and_cyclical_encoding() {
    let stamps = [
        (1969, 12, 31, 23), // before the epoch
        (2000, 2, 29, 12),
        (2023, 12, 31, 6),
        (2024, 1, 1, 13), // a Monday
        (2024, 3, 3, 0),  // a Sunday
        (2024, 12, 31, 23),
    ];
    let times: Vec<i64> = stamps.iter().map(|&(y, m, d, h)| millis_from_civil(y, m, d, h, 0, 0).unwrap()).collect();
    let frame = Frame::new(vec![
        ("time".to_string(), Column::Timestamp(times)),
        ("x".to_string(), Column::Numeric(vec![0.0; stamps.len()])),
    ])
    .unwrap();
    let recipe = recipe(
        "time",
        "x",
        vec![FeatureSpec::Calendar { parts: ALL_PARTS.to_vec(), cyclical: true, at: CalendarAt::Origin }],
    );
    let expected: [(&str, [f64; 6], f64); 5] = [
        ("day_of_week", [2.0, 1.0, 6.0, 0.0, 6.0, 1.0], 7.0),
        ("month", [12.0, 2.0, 12.0, 1.0, 3.0, 12.0], 12.0),
        ("hour", [23.0, 12.0, 6.0, 13.0, 0.0, 23.0], 24.0),
        ("day_of_year", [365.0, 60.0, 365.0, 1.0, 63.0, 366.0], 366.0),
        ("day_of_month", [31.0, 29.0, 31.0, 1.0, 3.0, 31.0], 31.0),
    ];
    for (part, raw, period) in expected {
        assert_eq!(feature_series(&recipe, &frame, part), raw, "{part}");
        let sin: Vec<f64> = raw.iter().map(|v| (TAU * v / period).sin()).collect();
        let cos: Vec<f64> = raw.iter().map(|v| (TAU * v / period).cos()).collect();
        assert_close_series(&feature_series(&recipe, &frame, &format!("{part}_sin")), &sin, &format!("{part}_sin"));
        assert_close_series(&feature_series(&recipe, &frame, &format!("{part}_cos")), &cos, &format!("{part}_cos"));
    }
    for part in ALL_PARTS {
        assert_eq!(part.period(), expected.iter().find(|e| e.0 == part.as_str()).unwrap().2);
    }
    // the ETTh1 data starts on Friday 2016-07-01 at midnight and is hourly
    let calendar = self::recipe(
        "date",
        "OT",
        vec![FeatureSpec::Calendar {
            parts: vec![CalendarPart::Hour, CalendarPart::DayOfWeek],
            cyclical: false,
            at: CalendarAt::Origin,
        }],
    );
    let hours = feature_series(&calendar, etth1(), "hour");
    let days = feature_series(&calendar, etth1(), "day_of_week");
    assert_eq!(&hours[..26], &(0..26).map(|h| f64::from(h % 24)).collect::<Vec<_>>()[..]);
    assert_eq!((days[0], days[23], days[24], days[24 * 3]), (4.0, 4.0, 5.0, 0.0));
}

// ---------------------------------------------------------------------------------------------------------------
// 4. label and horizon
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn label_is_the_target_transform_of_current_and_the_target_horizon_steps_ahead() {
    let cases = [(ecb(), "Date", "USD", 5), (ecb(), "Date", "GBP", 1), (etth1(), "date", "OT", 24)];
    for (frame, time, target, horizon) in cases {
        let y = frame.numeric(target).unwrap();
        let n = y.len();
        for transform in [TargetTransform::None, TargetTransform::Difference, TargetTransform::LogReturn] {
            let mut recipe = recipe(time, target, vec![FeatureSpec::Lag { column: target.into(), lags: vec![1, 4] }]);
            recipe.horizon = horizon;
            recipe.target_transform = transform;
            let table = recipe.build_table(frame).unwrap();
            let warmup = table.warmup_dropped;
            assert_eq!(warmup, 4);
            assert_eq!((table.current.len(), table.future.len(), table.label.len()), (n - 4, n - 4, n - 4));
            for i in 0..table.label.len() {
                let t = i + warmup;
                assert!(same_bits(table.current[i], y[t]), "current at {t}");
                if t + horizon < n {
                    assert!(same_bits(table.future[i], y[t + horizon]), "future at {t}");
                    let label = transform.apply(y[t], y[t + horizon]);
                    assert!(same_bits(table.label[i], label), "{} label at {t}", transform.as_str());
                    let back = transform.invert(table.current[i], table.label[i]);
                    let defined =
                        transform != TargetTransform::LogReturn || (table.current[i] > 0.0 && table.future[i] > 0.0);
                    assert!(
                        !defined || (back - table.future[i]).abs() <= 1e-12 * table.future[i].abs(),
                        "{}: invert(apply) = {back}, future {}",
                        transform.as_str(),
                        table.future[i]
                    );
                } else {
                    assert!(table.future[i].is_nan() && table.label[i].is_nan(), "row {t} is within the horizon");
                }
            }
            // exactly the last `horizon` rows have no future
            let len = table.future.len();
            assert!(table.future[len - horizon..].iter().all(|v| v.is_nan()));
            assert!(table.label[len - horizon..].iter().all(|v| v.is_nan()));
            assert!(!table.future[len - horizon - 1].is_nan());
        }
    }
}

#[test]
fn target_transform_round_trips_within_1e_12_relative() {
    let pairs = [(1.1789, 1.1172), (100.0, 250.5), (30.531, 27.787), (0.5, 0.5), (1e-3, 7e3), (-4.0, 3.0)];
    for (current, future) in pairs {
        for transform in [TargetTransform::None, TargetTransform::Difference, TargetTransform::LogReturn] {
            if transform == TargetTransform::LogReturn && current <= 0.0 {
                continue;
            }
            let back = transform.invert(current, transform.apply(current, future));
            assert!(
                (back - future).abs() <= 1e-12 * future.abs(),
                "{}: {current} -> {future} -> {back}",
                transform.as_str()
            );
        }
    }
    assert_eq!(TargetTransform::None.apply(2.0, 3.0), 3.0);
    assert_eq!(TargetTransform::Difference.apply(2.0, 3.0), 1.0);
    assert_eq!(TargetTransform::LogReturn.apply(2.0, 4.0), 2f64.ln());
    assert_eq!(TargetTransform::default(), TargetTransform::None);
}

#[test]
fn label_at_a_missing_target_is_missing() {
    // BGN is missing at both ends of the ECB series
    let mut recipe = recipe("Date", "BGN", vec![FeatureSpec::Lag { column: "USD".into(), lags: vec![1] }]);
    recipe.target_transform = TargetTransform::Difference;
    let table = recipe.build_table(ecb()).unwrap();
    for i in 0..table.label.len() {
        if table.current[i].is_nan() || table.future[i].is_nan() {
            assert!(table.label[i].is_nan(), "row {i}");
        } else {
            assert!(!table.label[i].is_nan(), "row {i}");
        }
    }
    assert!(table.label.iter().any(|v| v.is_nan()) && table.label.iter().any(|v| !v.is_nan()));
}

// ---------------------------------------------------------------------------------------------------------------
// 5. warm-up, names, lookback
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn warm_up_rows_are_dropped_and_feature_names_follow_the_recipe_order() {
    let recipe = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1, 2] },
            FeatureSpec::Current { columns: vec!["USD".into(), "JPY".into()] },
            FeatureSpec::Diff { column: "USD".into(), periods: vec![1] },
            FeatureSpec::PctChange { column: "GBP".into(), periods: vec![3] },
            FeatureSpec::LogReturn { column: "USD".into(), periods: vec![1] },
            FeatureSpec::Rolling {
                column: "USD".into(),
                windows: vec![5, 20],
                stats: vec![RollingStat::Mean, RollingStat::Std],
            },
            FeatureSpec::ExpandingMean { column: "JPY".into(), min_periods: 30 },
            FeatureSpec::Ewm { column: "USD".into(), spans: vec![10.0, 2.5] },
            FeatureSpec::Calendar {
                parts: vec![CalendarPart::DayOfWeek, CalendarPart::Month],
                cyclical: true,
                at: CalendarAt::Origin,
            },
            FeatureSpec::Calendar { parts: vec![CalendarPart::DayOfYear], cyclical: false, at: CalendarAt::Origin },
        ],
    );
    let names = [
        "USD_lag_1",
        "USD_lag_2",
        "USD",
        "JPY",
        "USD_diff_1",
        "GBP_pct_change_3",
        "USD_log_return_1",
        "USD_rolling_mean_5",
        "USD_rolling_std_5",
        "USD_rolling_mean_20",
        "USD_rolling_std_20",
        "JPY_expanding_mean",
        "USD_ewm_10",
        "USD_ewm_2.5",
        "day_of_week",
        "day_of_week_sin",
        "day_of_week_cos",
        "month",
        "month_sin",
        "month_cos",
        "day_of_year",
    ];
    assert_eq!(recipe.feature_names(), names);
    assert_eq!(recipe.input_columns(), ["Date", "USD", "JPY", "GBP"]);
    assert_eq!(recipe.warmup(), 29);
    assert_eq!(recipe.lookback(), Lookback::All);
    assert_eq!(recipe.min_window_rows(), 30);

    let frame = ecb();
    let table = recipe.build_table(frame).unwrap();
    assert_eq!(table.warmup_dropped, recipe.warmup());
    assert_eq!(table.x.names, names);
    assert_eq!(table.x.n_rows, frame.n_rows() - 29);
    assert_eq!(table.x.data.len(), table.x.n_rows * names.len());
    assert_eq!(table.times, frame.timestamps("Date").unwrap()[29..]);
    // past the warm-up, on complete data, no feature is missing
    assert!(table.x.data.iter().all(|v| v.is_finite()));
}

#[test]
fn warm_up_and_lookback_of_each_kernel() {
    let cases: [(FeatureSpec, usize, Lookback); 10] = [
        (FeatureSpec::Lag { column: "USD".into(), lags: vec![3, 1] }, 3, Lookback::Rows(4)),
        (FeatureSpec::Current { columns: vec!["USD".into()] }, 0, Lookback::Rows(1)),
        (FeatureSpec::Diff { column: "USD".into(), periods: vec![2] }, 2, Lookback::Rows(3)),
        (FeatureSpec::PctChange { column: "USD".into(), periods: vec![5] }, 5, Lookback::Rows(6)),
        (FeatureSpec::LogReturn { column: "USD".into(), periods: vec![7] }, 7, Lookback::Rows(8)),
        (
            FeatureSpec::Rolling { column: "USD".into(), windows: vec![21, 5], stats: vec![RollingStat::Max] },
            20,
            Lookback::Rows(21),
        ),
        (FeatureSpec::ExpandingMean { column: "USD".into(), min_periods: 1 }, 0, Lookback::All),
        (FeatureSpec::ExpandingMean { column: "USD".into(), min_periods: 12 }, 11, Lookback::All),
        (FeatureSpec::Ewm { column: "USD".into(), spans: vec![10.0] }, 0, Lookback::All),
        (
            FeatureSpec::Calendar { parts: vec![CalendarPart::Hour], cyclical: true, at: CalendarAt::Origin },
            0,
            Lookback::Rows(1),
        ),
    ];
    for (spec, warmup, lookback) in cases {
        let kind = spec.kind();
        let recipe = recipe("Date", "USD", vec![spec]);
        assert_eq!(recipe.warmup(), warmup, "{kind}");
        assert_eq!(recipe.lookback(), lookback, "{kind}");
        let table = recipe.build_table(ecb()).unwrap();
        assert_eq!((table.warmup_dropped, table.x.n_rows), (warmup, ecb().n_rows() - warmup), "{kind}");
        // the first kept row is complete: the warm-up is exactly long enough
        assert!(table.x.row(0).iter().all(|v| v.is_finite()), "{kind}: {:?}", table.x.row(0));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 6. errors
// ---------------------------------------------------------------------------------------------------------------

fn spec_error(recipe: &TimeSeriesRecipe) -> String {
    let error = recipe.validate().unwrap_err();
    assert!(matches!(error, FeatureError::Spec { .. }), "{error:?}");
    assert_eq!(error.code(), Code::FeatureSpec);
    assert_eq!(error.code().as_str(), "feature_spec");
    // building checks the recipe first, with the same error
    assert_eq!(recipe.build_table(ecb()).unwrap_err(), error);
    assert_eq!(recipe.build_last_row(ecb()).unwrap_err(), error);
    error.to_string()
}

#[test]
fn validate_names_the_key_path_at_fault() {
    let lag = FeatureSpec::Lag { column: "USD".into(), lags: vec![1] };
    let with = |features: Vec<FeatureSpec>| recipe("Date", "USD", features);
    let cases: Vec<(TimeSeriesRecipe, &str)> = vec![
        (
            with(vec![
                lag.clone(),
                FeatureSpec::Rolling { column: "USD".into(), windows: vec![0], stats: vec![RollingStat::Mean] },
            ]),
            "features[1].rolling.windows[0]: must be >= 1, got 0",
        ),
        (
            with(vec![FeatureSpec::Rolling { column: "USD".into(), windows: vec![5, 1], stats: ALL_STATS.to_vec() }]),
            "features[0].rolling.windows[1]: must be >= 2 for the std statistic, got 1",
        ),
        (
            with(vec![FeatureSpec::Rolling { column: "USD".into(), windows: vec![3], stats: vec![] }]),
            "features[0].rolling.stats: must not be empty",
        ),
        (
            with(vec![FeatureSpec::Lag { column: "USD".into(), lags: vec![1, 1] }]),
            "features[0]: produces the feature 'USD_lag_1' twice",
        ),
        (
            with(vec![lag.clone(), FeatureSpec::Lag { column: "USD".into(), lags: vec![2, 1] }]),
            "features[1]: produces the feature 'USD_lag_1', which features[0] already produces",
        ),
        (
            with(vec![
                FeatureSpec::Current { columns: vec!["day_of_week".into()] },
                FeatureSpec::Calendar { parts: vec![CalendarPart::DayOfWeek], cyclical: false, at: CalendarAt::Origin },
            ]),
            "features[1]: produces the feature 'day_of_week', which features[0] already produces",
        ),
        (with(vec![]), "features: must not be empty"),
        (
            with(vec![FeatureSpec::Lag { column: "USD".into(), lags: vec![] }]),
            "features[0].lag.lags: must not be empty",
        ),
        (
            with(vec![lag.clone(), lag.clone(), FeatureSpec::Diff { column: "USD".into(), periods: vec![2, 0] }]),
            "features[2].diff.periods[1]: must be >= 1, got 0",
        ),
        (
            with(vec![FeatureSpec::PctChange { column: String::new(), periods: vec![1] }]),
            "features[0].pct_change.column: must not be empty",
        ),
        (with(vec![FeatureSpec::Current { columns: vec![] }]), "features[0].current.columns: must not be empty"),
        (
            with(vec![FeatureSpec::Current { columns: vec!["USD".into(), String::new()] }]),
            "features[0].current.columns[1]: must not be empty",
        ),
        (
            with(vec![FeatureSpec::ExpandingMean { column: "USD".into(), min_periods: 0 }]),
            "features[0].expanding_mean.min_periods: must be >= 1, got 0",
        ),
        (
            with(vec![FeatureSpec::Ewm { column: "USD".into(), spans: vec![10.0, 0.5] }]),
            "features[0].ewm.spans[1]: must be a finite number >= 1, got 0.5",
        ),
        (
            with(vec![FeatureSpec::Ewm { column: "USD".into(), spans: vec![f64::NAN] }]),
            "features[0].ewm.spans[0]: must be a finite number >= 1, got NaN",
        ),
        (
            with(vec![FeatureSpec::Ewm { column: "USD".into(), spans: vec![] }]),
            "features[0].ewm.spans: must not be empty",
        ),
        (
            with(vec![FeatureSpec::Calendar { parts: vec![], cyclical: true, at: CalendarAt::Origin }]),
            "features[0].calendar.parts: must not be empty",
        ),
        (TimeSeriesRecipe { horizon: 0, ..with(vec![lag.clone()]) }, "horizon: must be >= 1, got 0"),
        (TimeSeriesRecipe { target: String::new(), ..with(vec![lag.clone()]) }, "target: must not be empty"),
        (TimeSeriesRecipe { time_column: String::new(), ..with(vec![lag.clone()]) }, "time_column: must not be empty"),
    ];
    for (recipe, message) in cases {
        assert_eq!(spec_error(&recipe), message);
    }
    // std is only restricted when it is asked for
    let ok =
        with(vec![FeatureSpec::Rolling { column: "USD".into(), windows: vec![1], stats: vec![RollingStat::Mean] }]);
    assert_eq!(ok.validate(), Ok(()));
}

#[test]
fn missing_column_error_names_the_column_and_who_needs_it() {
    let frame = ecb();
    let mut bad = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1] },
            FeatureSpec::Rolling { column: "XAU".into(), windows: vec![3], stats: vec![RollingStat::Mean] },
        ],
    );
    let error = bad.build_table(frame).unwrap_err();
    assert_eq!(
        error,
        FeatureError::MissingColumn { needed_by: "feature 'rolling' (features[1])".into(), column: "XAU".into() }
    );
    assert_eq!(error.to_string(), "feature 'rolling' (features[1]) needs column 'XAU', which is not in the data");
    assert_eq!((error.code(), error.code().as_str()), (Code::MissingColumn, "missing_column"));
    assert_eq!(bad.build_last_row(frame).unwrap_err(), error);

    bad.features.truncate(1);
    bad.target = "OT".into();
    assert_eq!(bad.build_table(frame).unwrap_err().to_string(), "target needs column 'OT', which is not in the data");
    bad.target = "USD".into();
    bad.time_column = "date".into();
    assert_eq!(
        bad.build_table(frame).unwrap_err().to_string(),
        "time_column needs column 'date', which is not in the data"
    );
}

#[test]
fn column_type_error_names_the_expected_and_actual_type() {
    let n = 5;
    let frame = Frame::new(vec![
        ("time".to_string(), Column::Timestamp((0..n).map(|i| i * MS_PER_DAY).collect())),
        ("y".to_string(), Column::Numeric((0..n).map(|i| i as f64).collect())),
        ("kind".to_string(), Column::Categorical(vec![Some("a".to_string()); n as usize])),
    ])
    .unwrap();
    let lag = |column: &str| FeatureSpec::Lag { column: column.into(), lags: vec![1] };

    let error = recipe("time", "y", vec![lag("kind")]).build_table(&frame).unwrap_err();
    assert_eq!(
        error,
        FeatureError::ColumnType {
            needed_by: "feature 'lag' (features[0])".into(),
            column: "kind".into(),
            expected: "numeric",
            actual: "categorical"
        }
    );
    assert_eq!(
        error.to_string(),
        "feature 'lag' (features[0]) needs column 'kind' to be numeric, but it is categorical"
    );
    assert_eq!((error.code(), error.code().as_str()), (Code::ColumnType, "column_type"));

    let error = recipe("y", "y", vec![lag("y")]).build_last_row(&frame).unwrap_err();
    assert_eq!(error.to_string(), "time_column needs column 'y' to be timestamp, but it is numeric");
    let error = recipe("time", "time", vec![lag("y")]).build_table(&frame).unwrap_err();
    assert_eq!(error.to_string(), "target needs column 'time' to be numeric, but it is timestamp");
    assert_eq!(error.code(), Code::ColumnType);
}

#[test]
fn unsorted_time_column_error_names_the_rows() {
    let recipe = recipe("time", "y", vec![FeatureSpec::Lag { column: "y".into(), lags: vec![1] }]);
    let frame = |times: Vec<i64>| {
        let n = times.len();
        Frame::new(vec![
            ("time".to_string(), Column::Timestamp(times)),
            ("y".to_string(), Column::Numeric(vec![1.0; n])),
        ])
        .unwrap()
    };
    let error = recipe.build_table(&frame(vec![0, 10, 20, 15, 30])).unwrap_err();
    assert_eq!(error, FeatureError::NotSorted { column: "time".into(), prev_row: Some(2), row: 3, prev: 20, next: 15 });
    assert_eq!(
        error.to_string(),
        "time column 'time' must be strictly increasing, but row 4 (1970-01-01T00:00:00.015) does not come after row 3 (1970-01-01T00:00:00.020)"
    );
    assert_eq!((error.code(), error.code().as_str()), (Code::DataShape, "data_shape"));
    // a repeated timestamp is not strictly increasing either, and the serving path checks the same
    let error = recipe.build_last_row(&frame(vec![0, 10, 10, 30])).unwrap_err();
    assert_eq!(error, FeatureError::NotSorted { column: "time".into(), prev_row: Some(1), row: 2, prev: 10, next: 10 });
    // the ECB file as stored (newest first) is rejected
    let newest_first = ecb().take(&(0..ecb().n_rows()).rev().collect::<Vec<_>>());
    let recipe = self::recipe("Date", "USD", vec![FeatureSpec::Lag { column: "USD".into(), lags: vec![1] }]);
    assert!(matches!(
        recipe.build_table(&newest_first),
        Err(FeatureError::NotSorted { prev_row: Some(0), row: 1, .. })
    ));
}

#[test]
fn too_few_rows_error_says_how_many_are_needed() {
    let frame = ecb();
    let windowed = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1] },
            FeatureSpec::Rolling { column: "USD".into(), windows: vec![10], stats: vec![RollingStat::Sum] },
        ],
    );
    assert_eq!(windowed.min_window_rows(), 10);
    let error = windowed.build_last_row(&frame.slice(100, 109)).unwrap_err();
    assert_eq!(error, FeatureError::NotEnoughRows { what: "the last feature row".into(), needed: 10, given: 9 });
    assert_eq!(error.to_string(), "the last feature row needs at least 10 rows, got 9");
    assert_eq!((error.code(), error.code().as_str()), (Code::NotEnoughRows, "not_enough_rows"));
    assert!(windowed.build_last_row(&frame.slice(100, 110)).is_ok());

    let history = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![3] },
            FeatureSpec::Ewm { column: "USD".into(), spans: vec![5.0] },
        ],
    );
    assert_eq!(history.min_window_rows(), 4);
    let error = history.build_last_row(&frame.slice(0, 3)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the last feature row (expanding and ewm features need the whole history) needs at least 4 rows, got 3"
    );
    assert!(history.build_last_row(&frame.slice(0, 4)).is_ok());

    let error = windowed.build_table(&frame.slice(0, 9)).unwrap_err();
    assert_eq!(error, FeatureError::NotEnoughRows { what: "the feature table".into(), needed: 10, given: 9 });
    assert_eq!(windowed.build_table(&frame.slice(0, 10)).unwrap().x.n_rows, 1);
    let error = windowed.build_last_row(&frame.slice(0, 0)).unwrap_err();
    assert_eq!(error.code(), Code::NotEnoughRows);
}

// ---------------------------------------------------------------------------------------------------------------
// 7. serde
// ---------------------------------------------------------------------------------------------------------------

const RECIPE_JSON: &str = r#"{
    "time_column": "Date",
    "target": "USD",
    "horizon": 5,
    "target_transform": "log_return",
    "features": [
        {"lag": {"column": "USD", "lags": [1, 2]}},
        {"current": {"columns": ["JPY"]}},
        {"diff": {"column": "USD", "periods": [1]}},
        {"pct_change": {"column": "GBP", "periods": [5]}},
        {"log_return": {"column": "USD", "periods": [1]}},
        {"rolling": {"column": "USD", "windows": [5, 20], "stats": ["mean", "std", "min", "max", "sum"]}},
        {"expanding_mean": {"column": "USD"}},
        {"ewm": {"column": "USD", "spans": [10, 2.5]}},
        {"calendar": {"parts": ["day_of_week", "month", "hour", "day_of_year", "day_of_month"], "cyclical": true}},
        {"calendar": {"parts": ["day_of_week"]}}
    ]
}"#;

#[test]
fn recipe_parses_from_json_with_externally_tagged_features_and_defaults() {
    let parsed: TimeSeriesRecipe = serde_json::from_str(RECIPE_JSON).unwrap();
    let expected = TimeSeriesRecipe {
        time_format: None,
        na_values: None,
        multi_step: None,
        time_column: "Date".into(),
        series_column: None,
        wide: None,
        target: "USD".into(),
        horizon: 5,
        target_transform: TargetTransform::LogReturn,
        features: vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1, 2] },
            FeatureSpec::Current { columns: vec!["JPY".into()] },
            FeatureSpec::Diff { column: "USD".into(), periods: vec![1] },
            FeatureSpec::PctChange { column: "GBP".into(), periods: vec![5] },
            FeatureSpec::LogReturn { column: "USD".into(), periods: vec![1] },
            FeatureSpec::Rolling { column: "USD".into(), windows: vec![5, 20], stats: ALL_STATS.to_vec() },
            FeatureSpec::ExpandingMean { column: "USD".into(), min_periods: 1 },
            FeatureSpec::Ewm { column: "USD".into(), spans: vec![10.0, 2.5] },
            FeatureSpec::Calendar { parts: ALL_PARTS.to_vec(), cyclical: true, at: CalendarAt::Origin },
            FeatureSpec::Calendar { parts: vec![CalendarPart::DayOfWeek], cyclical: false, at: CalendarAt::Origin },
        ],
    };
    assert_eq!(parsed, expected);
    // `calendar` twice produces day_of_week twice
    assert!(parsed.validate().unwrap_err().to_string().contains("'day_of_week'"));

    // the target transform defaults to none
    let minimal =
        r#"{"time_column": "t", "target": "y", "horizon": 1, "features": [{"lag": {"column": "y", "lags": [1]}}]}"#;
    let minimal: TimeSeriesRecipe = serde_json::from_str(minimal).unwrap();
    assert_eq!(minimal.target_transform, TargetTransform::None);
    assert_eq!(minimal.validate(), Ok(()));

    // serialization round-trips, in the same externally tagged shape
    let text = serde_json::to_string(&expected).unwrap();
    assert!(text.contains(r#"{"lag":{"column":"USD","lags":[1,2]}}"#), "{text}");
    assert!(text.contains(r#""target_transform":"log_return""#), "{text}");
    assert_eq!(serde_json::from_str::<TimeSeriesRecipe>(&text).unwrap(), expected);
}

#[test]
fn recipe_json_rejects_unknown_fields_variants_and_values() {
    let base: serde_json::Value = serde_json::from_str(RECIPE_JSON).unwrap();
    let reject = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut value = base.clone();
        edit(&mut value);
        let error = serde_json::from_value::<TimeSeriesRecipe>(value).unwrap_err().to_string();
        assert!(error.contains(needle), "expected {needle:?} in {error:?}");
    };
    reject(&|v| v["horizn"] = 3.into(), "unknown field `horizn`");
    reject(&|v| v["features"][0]["lag"]["lag"] = 3.into(), "unknown field `lag`");
    reject(&|v| v["features"][6]["expanding_mean"]["min_period"] = 3.into(), "unknown field `min_period`");
    reject(&|v| v["features"][8]["calendar"]["cyclic"] = true.into(), "unknown field `cyclic`");
    reject(
        &|v| v["features"][0] = serde_json::json!({"lagg": {"column": "USD", "lags": [1]}}),
        "unknown variant `lagg`",
    );
    reject(&|v| v["features"][5]["rolling"]["stats"][0] = "median".into(), "unknown variant `median`");
    reject(&|v| v["features"][8]["calendar"]["parts"][0] = "week".into(), "unknown variant `week`");
    reject(&|v| v["target_transform"] = "log".into(), "unknown variant `log`");
    reject(&|v| v["features"][0]["lag"]["lags"][0] = (-1).into(), "invalid value");
    reject(
        &|v| {
            v.as_object_mut().unwrap().remove("horizon");
        },
        "missing field `horizon`",
    );
}

#[test]
fn fitted_pipeline_round_trips_through_json_and_builds_the_recipe_features() {
    let recipe: TimeSeriesRecipe = serde_json::from_str(RECIPE_JSON).unwrap();
    let mut recipe = recipe;
    recipe.features.pop(); // the duplicate calendar
    let frame = ecb();
    let pipeline = FittedPipeline::new(recipe.clone(), &recipe.feature_names());
    let text = serde_json::to_string_pretty(&pipeline).unwrap();
    let loaded: FittedPipeline = serde_json::from_str(&text).unwrap();
    assert_eq!(loaded, pipeline);
    assert_eq!(loaded.feature_names, recipe.feature_names());

    let prepared = loaded.transform(frame).unwrap();
    let table = recipe.build_table(frame).unwrap();
    let as_table = FeatureTable {
        x: prepared.x,
        times: prepared.times.unwrap(),
        current: prepared.current.unwrap(),
        future: prepared.future.unwrap(),
        label: table.label.clone(),
        step_futures: Vec::new(),
        step_ahead: Vec::new(),
        warmup_dropped: prepared.warmup_dropped,
        panel: None,
    };
    assert_tables_identical(&as_table, &table);
    let window = frame.slice(0, 3000);
    let row = loaded.transform_last(&window).unwrap();
    assert_row_matches(&table, 3000 - 1 - table.warmup_dropped, &row, "pipeline row 2999");

    // unknown fields are rejected here too
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["version"] = 2.into();
    let error = serde_json::from_value::<FittedPipeline>(value).unwrap_err().to_string();
    assert!(error.contains("unknown field `version`"), "{error}");
}

#[test]
fn fitted_pipeline_rejects_a_feature_names_mismatch() {
    let recipe = recipe(
        "Date",
        "USD",
        vec![
            FeatureSpec::Lag { column: "USD".into(), lags: vec![1, 2] },
            FeatureSpec::Ewm { column: "USD".into(), spans: vec![10.0] },
        ],
    );
    let frame = ecb();
    let reordered: Vec<String> = ["USD_lag_2", "USD_lag_1", "USD_ewm_10"].map(String::from).to_vec();
    let missing: Vec<String> = ["USD_lag_1", "USD_lag_2"].map(String::from).to_vec();
    for names in [reordered, missing] {
        let pipeline = FittedPipeline::new(recipe.clone(), &names);
        let error = pipeline.transform(frame).unwrap_err();
        assert!(matches!(&error, FeatureError::Spec { path, .. } if path == "feature_names"), "{error:?}");
        assert_eq!(error.code(), Code::FeatureSpec);
        let message = error.to_string();
        assert!(message.starts_with("feature_names: the pipeline makes"), "{message}");
        assert!(message.contains(&format!("{names:?}")), "{message}");
        assert_eq!(pipeline.transform_last(frame).unwrap_err(), error);
    }
    // a recipe whose output changed since training (another span) is caught the same way
    let mut trained = FittedPipeline::new(recipe.clone(), &recipe.feature_names());
    let PipelineInput::Forecast(trained_recipe) = &mut trained.input else { unreachable!() };
    trained_recipe.features[1] = FeatureSpec::Ewm { column: "USD".into(), spans: vec![12.0] };
    assert!(trained.transform(frame).unwrap_err().to_string().contains("USD_ewm_12"));
}

// ---------------------------------------------------------------------------------------------------------------
// chunk by chunk
// ---------------------------------------------------------------------------------------------------------------

/// The ETTh1 experiment's recipe (conf/tasks/etth1.yaml): lags up to 168 rows, rolling windows, an EWM and an
/// expanding mean, so both the carried rows and the carried recursions are exercised.
fn etth1_recipe() -> TimeSeriesRecipe {
    let ot = || "OT".to_string();
    let mut r = recipe(
        "date",
        "OT",
        vec![
            FeatureSpec::Current {
                columns: ["OT", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"].map(String::from).to_vec(),
            },
            FeatureSpec::Lag { column: ot(), lags: vec![1, 2, 3, 24, 168] },
            FeatureSpec::Diff { column: ot(), periods: vec![1, 24] },
            FeatureSpec::Rolling {
                column: ot(),
                windows: vec![6, 24],
                stats: vec![RollingStat::Mean, RollingStat::Std, RollingStat::Min, RollingStat::Max],
            },
            FeatureSpec::Ewm { column: ot(), spans: vec![12.0] },
            FeatureSpec::ExpandingMean { column: ot(), min_periods: 1 },
            FeatureSpec::Lag { column: "HUFL".into(), lags: vec![1, 24] },
            FeatureSpec::Calendar {
                parts: vec![CalendarPart::Hour, CalendarPart::DayOfWeek, CalendarPart::DayOfYear],
                cyclical: true,
                at: CalendarAt::Origin,
            },
        ],
    );
    r.target_transform = TargetTransform::Difference;
    r
}

/// Pushes `frame` in chunks of `size` rows and checks that the rows put together are the whole table, bit for bit.
fn assert_stream_equals_table(recipe: &TimeSeriesRecipe, frame: &Frame, size: usize) {
    let table = recipe.build_table(frame).unwrap();
    let mut stream = recipe.stream().unwrap();
    let (mut data, mut times, mut current, mut dropped) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let n = frame.n_rows();
    for start in (0..n).step_by(size) {
        let chunk = stream.push(&frame.slice(start, (start + size).min(n))).unwrap();
        assert_eq!(chunk.features.names(), table.x.names);
        assert_eq!(chunk.features.n_rows(), chunk.times.len());
        data.extend(crate::frame_to_matrix(&chunk.features).unwrap().data);
        times.extend(chunk.times);
        current.extend(chunk.current);
        dropped += chunk.warmup_dropped;
    }
    assert_eq!(stream.rows(), n);
    assert_eq!(dropped, table.warmup_dropped, "chunks of {size}");
    assert_eq!(times, table.times, "chunks of {size}");
    assert_eq!(data.len(), table.x.data.len());
    let width = table.x.n_cols();
    for (i, (&a, &b)) in data.iter().zip(&table.x.data).enumerate() {
        assert!(
            same_bits(a, b),
            "chunks of {size}: row {} feature {}: {a} != {b}",
            i / width,
            table.x.names[i % width]
        );
    }
    assert!(current.iter().zip(&table.current).all(|(&a, &b)| same_bits(a, b)), "chunks of {size}: current");
}

#[test]
fn chunk_by_chunk_equals_the_whole_table_bit_for_bit_on_etth1() {
    let recipe = etth1_recipe();
    assert_eq!(recipe.stream().unwrap().history(), 168);
    for size in [1, 7, 167, 168, 169, 1000, 20_000] {
        assert_stream_equals_table(&recipe, etth1(), size);
    }
}

#[test]
fn chunk_by_chunk_equals_the_whole_table_bit_for_bit_on_ecb_with_missing_values() {
    let recipe = everything_recipe("Date", "USD", &["USD", "ISK", "BGN"]);
    for size in [1, 2, 7, 10, 11, 500, 7126] {
        assert_stream_equals_table(&recipe, ecb(), size);
    }
}

#[test]
fn a_chunk_that_goes_back_in_time_is_refused_with_series_row_numbers() {
    let recipe = recipe("Date", "USD", vec![FeatureSpec::Lag { column: "USD".into(), lags: vec![1] }]);
    let frame = ecb();
    let mut stream = recipe.stream().unwrap();
    stream.push(&frame.slice(10, 20)).unwrap();
    let error = stream.push(&frame.slice(15, 25)).unwrap_err();
    assert!(matches!(error, FeatureError::NotSorted { prev_row: Some(9), row: 10, .. }), "{error:?}");

    let mut stream = recipe.stream().unwrap();
    stream.push(&frame.slice(0, 5)).unwrap();
    let times = frame.timestamps("Date").unwrap();
    let usd = frame.numeric("USD").unwrap();
    let swapped = Frame::new(vec![
        ("Date".into(), Column::Timestamp(vec![times[6], times[5]])),
        ("USD".into(), Column::Numeric(vec![usd[6], usd[5]])),
    ])
    .unwrap();
    let error = stream.push(&swapped).unwrap_err();
    assert!(matches!(error, FeatureError::NotSorted { prev_row: Some(5), row: 6, .. }), "{error:?}");
}

#[test]
fn pipeline_stream_carries_forward_fill_across_chunks() {
    use crate::{ImputeSpec, ImputeStrategy, PreprocessSpec, Preprocessor, TabularInput};
    let values = [1.0, f64::NAN, f64::NAN, 4.0, f64::NAN, f64::NAN, f64::NAN, 8.0, f64::NAN];
    let labels = [Some("a"), None, Some("b"), None, None, None, Some("c"), None, None];
    let frame = Frame::new(vec![
        ("x".into(), Column::Numeric(values.to_vec())),
        ("y".into(), Column::Numeric((0..9).map(f64::from).collect())),
        ("k".into(), Column::Categorical(labels.iter().map(|l| l.map(String::from)).collect())),
    ])
    .unwrap();
    let ffill = |columns: &[&str]| {
        Preprocessor::new(vec![PreprocessSpec::Impute(ImputeSpec {
            columns: crate::Columns::Named(columns.iter().map(|c| c.to_string()).collect()),
            exclude: Vec::new(),
            strategy: ImputeStrategy::ForwardFill,
            value: None,
        })])
    };
    let xy = ["x".to_string(), "y".to_string()];
    let (fitted, _) = ffill(&["x"]).fit_transform(&frame.slice(0, 1).select(&xy).unwrap()).unwrap();
    let pipeline = FittedPipeline {
        input: PipelineInput::Tabular(TabularInput { columns: xy.to_vec(), id_column: None }),
        preprocess: Some(fitted),
        selection: None,
        decision: None,
        feature_names: xy.to_vec(),
        step: None,
        intervals: None,
    };
    let whole = pipeline.transform(&frame).unwrap();
    for size in [1, 2, 4] {
        let mut stream = pipeline.stream().unwrap();
        let mut data = Vec::new();
        for start in (0..9).step_by(size) {
            data.extend(stream.push(frame.slice(start, (start + size).min(9))).unwrap().x.data);
        }
        assert_eq!(data, whole.x.data, "chunks of {size}");
    }

    // labels too, straight through the preprocessing
    let (fitted, _) = ffill(&["x", "k"]).fit_transform(&frame.slice(0, 1)).unwrap();
    let whole = fitted.transform(&frame).unwrap();
    let mut carried = fitted.clone();
    let mut labels = Vec::new();
    for start in (0..9).step_by(2) {
        let out = carried.transform_chunk(frame.slice(start, (start + 2).min(9))).unwrap();
        labels.extend(out.categorical("k").unwrap().to_vec());
    }
    assert_eq!(labels, whole.categorical("k").unwrap());
    assert_eq!(labels[5].as_deref(), Some("b"));
}

#[test]
fn input_kinds_follow_the_recipe_or_the_preprocessing() {
    use kiln_domain::ColumnKind::{Categorical, Numeric, Timestamp};
    let pipeline = FittedPipeline::new(etth1_recipe(), &etth1_recipe().feature_names());
    let kinds = pipeline.input_kinds();
    assert_eq!(kinds[0], ("date".to_string(), Timestamp));
    assert_eq!(kinds[1], ("OT".to_string(), Numeric));
    assert_eq!(kinds.len(), 8);
    assert!(kinds[1..].iter().all(|(_, k)| *k == Numeric));

    use crate::{OneHotDrop, OneHotSpec, OneHotUnknown, PreprocessSpec, Preprocessor, RatioSpec, TabularInput};
    let frame = Frame::new(vec![
        ("id".into(), Column::Categorical(vec![Some("a".into()), Some("b".into())])),
        ("plan".into(), Column::Categorical(vec![Some("x".into()), Some("y".into())])),
        ("total".into(), Column::Numeric(vec![10.0, 20.0])),
        ("monthly".into(), Column::Numeric(vec![1.0, 2.0])),
        ("age".into(), Column::Numeric(vec![30.0, 40.0])),
    ])
    .unwrap();
    let steps = Preprocessor::new(vec![
        PreprocessSpec::Ratio(RatioSpec { numerator: "total".into(), denominator: "monthly".into(), into: "m".into() }),
        PreprocessSpec::OneHot(OneHotSpec {
            columns: crate::Columns::Categorical,
            exclude: Vec::new(),
            unknown: OneHotUnknown::Ignore,
            drop: OneHotDrop::None,
        }),
    ]);
    let columns: Vec<String> = ["plan", "total", "monthly", "age"].map(String::from).to_vec();
    let (fitted, out) = steps.fit_transform(&frame.select(&columns).unwrap()).unwrap();
    let pipeline = FittedPipeline {
        input: PipelineInput::Tabular(TabularInput { columns, id_column: Some("id".into()) }),
        preprocess: Some(fitted),
        selection: None,
        decision: None,
        feature_names: out.names().to_vec(),
        step: None,
        intervals: None,
    };
    let kinds: Vec<(String, kiln_domain::ColumnKind)> = ["plan", "total", "monthly", "age"]
        .into_iter()
        .zip([Categorical, Numeric, Numeric, Numeric])
        .map(|(n, k)| (n.to_string(), k))
        .collect();
    assert_eq!(pipeline.input_kinds(), kinds);
}

#[test]
fn a_decision_labels_a_probability_at_its_threshold() {
    use crate::Decision;
    let named = Decision { positive: "Yes".into(), negative: Some("No".into()), threshold: 0.4 };
    assert_eq!(named.class_of(0.4), "Yes", "the threshold itself is positive");
    assert_eq!(named.class_of(0.9), "Yes");
    assert_eq!(named.class_of(0.39), "No");
    assert_eq!(named.class_of(f64::NAN), "No");
    let unnamed = Decision { positive: "churn".into(), negative: None, threshold: 0.5 };
    assert_eq!(unnamed.class_of(0.1), "not churn");
}

#[path = "tests/panel.rs"]
mod panel;

#[path = "tests/ahead.rs"]
mod ahead;

/// The batch path's rolling windows, computed side by side, equal the serving path's one window at a time bit for
/// bit: every stat, windows 0-9 (shorter and longer than the lanes), every start, over values with NaNs, infinities,
/// constant runs and a sign change; and so do lags and the current value.
#[test]
fn rolling_lanes_equal_one_window_at_a_time() {
    use crate::kernels::{Input, Kernel};
    let mut x: Vec<f64> = (0..61).map(|i| ((i * 37 % 23) as f64 - 11.0) * 0.3 + f64::from(i).sin()).collect();
    x[7] = f64::NAN;
    x[30] = f64::INFINITY;
    x[31] = f64::NEG_INFINITY;
    for v in &mut x[40..50] {
        *v = 2.5;
    }
    x[55] = f64::NAN;
    let mut kernels: Vec<Kernel> =
        ALL_STATS.iter().flat_map(|&stat| (0..10).map(move |window| Kernel::Rolling { window, stat })).collect();
    // lags and the current value have their own batch loop too
    kernels.extend((0..10).map(Kernel::Lag));
    kernels.push(Kernel::Current);
    for kernel in kernels {
        for start in [0, 1, 5, 13, 58, 61] {
            let mut state = kernel.state();
            let batch = kernel.series_from(Input::Numeric(&x), start, &mut state);
            assert_eq!(batch.len(), x.len() - start);
            for (t, &value) in (start..).zip(&batch) {
                let one = kernel.last(Input::Numeric(&x[..=t]));
                assert!(same_bits(value, one), "{kernel:?} start {start} row {t}: {value} vs {one}");
            }
        }
    }
}
