//! Panels: ETTh1's seven columns melted into seven series. Each series' features equal those of the series alone;
//! nothing crosses from one series to another or from after an origin to it; the chunked stream equals the table.

use super::*;
use crate::{PanelRows, WideInput};

const SENSORS: [&str; 7] = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"];

fn panel_recipe(horizon: usize) -> TimeSeriesRecipe {
    let mut r = everything_recipe("date", "value", &["value"]);
    r.series_column = Some("sensor".to_string());
    r.horizon = horizon;
    r
}

/// ETTh1 as a long panel (column `sensor`, values in `value`), rows by time then sensor.
fn long_etth1() -> Frame {
    let wide = WideInput { columns: SENSORS.iter().map(|s| s.to_string()).collect(), name: "sensor".to_string() };
    let mut r = panel_recipe(1);
    r.wide = Some(wide);
    r.long_frame(etth1()).unwrap().into_owned().sorted_by_series_time("sensor", "date").unwrap()
}

/// The rows of `series` in a panel table, in time order.
fn rows_of(table: &FeatureTable, series: &str) -> Vec<usize> {
    let panel: &PanelRows = table.panel.as_ref().unwrap();
    let code = panel.keys.iter().position(|k| k == series).unwrap() as u32;
    (0..table.times.len()).filter(|&i| panel.series[i] == code).collect()
}

fn single_series(frame: &Frame, column: &str) -> Frame {
    Frame::new(vec![
        ("date".to_string(), frame.column("date").unwrap().clone()),
        ("value".to_string(), frame.column(column).unwrap().clone()),
    ])
    .unwrap()
}

#[test]
fn each_series_of_a_panel_gets_exactly_the_features_of_the_series_alone() {
    let recipe = panel_recipe(3);
    let table = recipe.build_table(&long_etth1()).unwrap();
    let panel = table.panel.as_ref().unwrap();
    let mut sorted = SENSORS.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(panel.keys, sorted);
    assert!(table.times.windows(2).all(|w| w[0] <= w[1]), "rows by time, then series");
    let mut alone_recipe = recipe.clone();
    alone_recipe.series_column = None;
    for sensor in SENSORS {
        let alone = alone_recipe.build_table(&single_series(etth1(), sensor)).unwrap();
        let rows = rows_of(&table, sensor);
        assert_eq!(rows.len(), alone.times.len(), "{sensor}: one row per origin past the warm-up");
        for (k, &i) in rows.iter().enumerate() {
            assert_eq!(table.times[i], alone.times[k]);
            for (name, (a, b)) in [
                ("current", (table.current[i], alone.current[k])),
                ("future", (table.future[i], alone.future[k])),
                ("label", (table.label[i], alone.label[k])),
            ] {
                assert!(same_bits(a, b), "{sensor} row {k} {name}: {a} vs {b}");
            }
            for j in 0..table.x.n_cols() {
                let (a, b) = (table.x.row(i)[j], alone.x.row(k)[j]);
                assert!(same_bits(a, b), "{sensor} row {k} {}: {a} vs {b}", table.x.names[j]);
            }
        }
    }
    assert_eq!(table.warmup_dropped, SENSORS.len() * recipe.warmup());
}

#[test]
fn changing_one_series_or_the_values_after_an_origin_changes_nothing_else() {
    let recipe = panel_recipe(1);
    let long = long_etth1();
    let base = recipe.build_table(&long).unwrap();
    let sensors = long.categorical("sensor").unwrap().to_vec();
    let times = long.timestamps("date").unwrap().to_vec();
    let values = long.numeric("value").unwrap().to_vec();
    let origin = times[times.len() / 2];
    let with_values = |changed: Vec<f64>| {
        let mut columns = long.clone().into_columns();
        columns.iter_mut().find(|(n, _)| n == "value").unwrap().1 = Column::Numeric(changed);
        Frame::new(columns).unwrap()
    };
    // every value of HUFL doubled: no other series moves
    let doubled: Vec<f64> =
        values.iter().zip(&sensors).map(|(&v, s)| if s.as_deref() == Some("HUFL") { v * 2.0 } else { v }).collect();
    let changed = recipe.build_table(&with_values(doubled)).unwrap();
    // every OT value after the origin replaced: no OT feature at or before the origin moves
    let replaced: Vec<f64> = values
        .iter()
        .zip(&sensors)
        .zip(&times)
        .map(|((&v, s), &t)| if s.as_deref() == Some("OT") && t > origin { -1000.0 - v } else { v })
        .collect();
    let later = recipe.build_table(&with_values(replaced)).unwrap();
    let mut checked = (0, 0);
    for sensor in SENSORS {
        let (a, b, c) = (rows_of(&base, sensor), rows_of(&changed, sensor), rows_of(&later, sensor));
        for ((&i, &j), &k) in a.iter().zip(&b).zip(&c) {
            let row = |t: &FeatureTable, r: usize| -> Vec<u64> {
                (0..t.x.n_cols()).map(|col| t.x.row(r)[col].to_bits()).chain([t.current[r].to_bits()]).collect()
            };
            if sensor != "HUFL" {
                assert_eq!(row(&base, i), row(&changed, j), "{sensor} moved when HUFL changed");
                checked.0 += 1;
            }
            if sensor != "OT" || base.times[i] <= origin {
                assert_eq!(row(&base, i), row(&later, k), "{sensor} at {} moved", base.times[i]);
                checked.1 += 1;
            }
        }
    }
    assert!(checked.0 > 80_000 && checked.1 > 100_000, "{checked:?}");
}

#[test]
fn a_panel_streamed_in_tiny_chunks_equals_the_whole_table_in_the_input_order() {
    let recipe = panel_recipe(1);
    let long = long_etth1();
    let pipeline = FittedPipeline::new(recipe.clone(), &recipe.feature_names());
    let whole = pipeline.transform(&long).unwrap();
    for chunk in [1, 7, 500] {
        let mut stream = recipe.stream().unwrap();
        let mut rows = 0;
        let mut start = 0;
        while start < long.n_rows() {
            let end = (start + chunk).min(long.n_rows());
            let part = stream.push(&long.slice(start, end)).unwrap();
            let series = part.series.as_ref().unwrap();
            for (k, key) in series.iter().enumerate() {
                let i = rows + k;
                assert_eq!(part.times[k], whole.times.as_ref().unwrap()[i], "chunk {chunk}, row {i}");
                assert_eq!(key, &whole.series.as_ref().unwrap()[i]);
                for (j, name) in whole.x.names.iter().enumerate() {
                    let v = part.features.numeric(name).unwrap()[k];
                    assert!(same_bits(v, whole.x.row(i)[j]), "chunk {chunk}, row {i}, {name}");
                }
            }
            rows += part.times.len();
            start = end;
        }
        assert_eq!(rows, whole.x.n_rows, "chunk {chunk}");
    }
}

#[test]
fn panel_input_errors_name_the_series_and_row_and_short_series_are_listed() {
    let recipe = panel_recipe(1);
    let day = MS_PER_DAY;
    let frame = |sensors: Vec<Option<&str>>, times: Vec<i64>| {
        Frame::new(vec![
            ("date".to_string(), Column::Timestamp(times.clone())),
            ("sensor".to_string(), Column::Categorical(sensors.into_iter().map(|s| s.map(String::from)).collect())),
            ("value".to_string(), Column::Numeric((0..times.len()).map(|i| i as f64 + 1.0).collect())),
        ])
        .unwrap()
    };
    let long: Vec<i64> = (0..40).map(|i| i * day).collect();
    let mut sensors = vec![Some("a"); 40];
    let mut times = long.clone();
    // series b: two rows at day 3
    sensors.extend([Some("b"), Some("b"), Some("b")]);
    times.extend([2 * day, 3 * day, 3 * day]);
    match recipe.build_table(&frame(sensors.clone(), times.clone())) {
        Err(FeatureError::DuplicateSeriesTime { series, time, .. }) => {
            assert_eq!((series.as_str(), time), ("b", 3 * day));
        }
        other => panic!("{other:?}"),
    }
    // series b short (3 rows, the warm-up is longer): left out and listed; a row without a series is refused
    times[42] = 4 * day;
    let table = recipe.build_table(&frame(sensors.clone(), times.clone())).unwrap();
    assert_eq!(table.panel.as_ref().unwrap().short, vec![("b".to_string(), 3)]);
    sensors[5] = None;
    let err = recipe.build_table(&frame(sensors, times)).unwrap_err();
    assert!(matches!(&err, FeatureError::MissingSeriesKey { row: 5, .. }), "{err:?}");
    assert!(err.to_string().contains("row 6"), "{err}");
    assert_eq!(err.code(), Code::DataShape);
}

/// The table built a slice of rows at a time equals the whole table, row for row and bit for bit: every kernel
/// (the running ones carried from slice to slice), a known-in-advance column with a direct recipe's later steps,
/// rows interleaved by time (gathered per series) or grouped by series (read in place), and a series too short for
/// the warm-up.
#[test]
fn a_panel_table_built_in_slices_equals_the_whole_table() {
    use crate::{MultiStep, Strategy};
    let mut recipe = panel_recipe(2);
    recipe.wide = Some(WideInput { columns: SENSORS.iter().map(|s| s.to_string()).collect(), name: "sensor".into() });
    let long = recipe.long_frame(&etth1().slice(0, 400)).unwrap().into_owned();
    recipe.wide = None;
    recipe.features.push(FeatureSpec::KnownInAdvance { columns: vec!["known".into()] });
    recipe.multi_step = Some(MultiStep { steps: 3, strategy: Strategy::Direct });
    let sensors = long.categorical("sensor").unwrap().to_vec();
    let dates = long.timestamps("date").unwrap().to_vec();
    let known: Vec<f64> = long.numeric("value").unwrap().iter().map(|v| v * v - 1.0).collect();
    let mut columns = long.into_columns();
    columns.push(("known".to_string(), Column::Numeric(known)));
    let long = Frame::new(columns).unwrap();
    // OT keeps only its first 6 rows, shorter than the warm-up
    let kept: Vec<usize> = (0..long.n_rows())
        .filter(|&i| sensors[i].as_deref() != Some("OT") || dates[i] < dates[0] + 6 * MS_PER_HOUR)
        .collect();
    let mut by_series = kept.clone();
    by_series.sort_by_key(|&i| (sensors[i].clone(), dates[i]));
    let mut by_time = kept;
    by_time.sort_by_key(|&i| (dates[i], sensors[i].clone()));
    for (layout, order) in [("grouped by series", by_series), ("interleaved by time", by_time)] {
        let frame = long.take(&order);
        let whole = recipe.build_table(&frame).unwrap();
        assert_eq!(whole.panel.as_ref().unwrap().short, vec![("OT".to_string(), 6)], "{layout}");
        for rows in [1, 7, 64, 1 << 20] {
            let mut slices: Vec<FeatureTable> = Vec::new();
            recipe
                .for_each_table_chunk(&frame, rows, |slice| {
                    slices.push(slice);
                    Ok::<(), FeatureError>(())
                })
                .unwrap();
            assert_eq!(slices.len(), whole.times.len().div_ceil(rows), "{layout}, {rows} rows a slice");
            let what = |name: &str| format!("{layout}, {rows} rows a slice: {name}");
            let cat = |f: &dyn Fn(&FeatureTable) -> Vec<f64>| slices.iter().flat_map(f).collect::<Vec<f64>>();
            let bits = |a: &[f64], b: &[f64], name: &str| {
                assert_eq!(a.len(), b.len(), "{}", what(name));
                assert!(a.iter().zip(b).all(|(&x, &y)| same_bits(x, y)), "{}", what(name));
            };
            bits(&cat(&|s| s.x.data.clone()), &whole.x.data, "features");
            bits(&cat(&|s| s.current.clone()), &whole.current, "current");
            bits(&cat(&|s| s.future.clone()), &whole.future, "future");
            bits(&cat(&|s| s.label.clone()), &whole.label, "label");
            for k in 0..2 {
                bits(&cat(&|s| s.step_futures[k].clone()), &whole.step_futures[k], "step futures");
                bits(&cat(&|s| s.step_ahead[k][0].clone()), &whole.step_ahead[k][0], "step ahead");
            }
            let times: Vec<i64> = slices.iter().flat_map(|s| s.times.clone()).collect();
            assert_eq!(times, whole.times, "{}", what("times"));
            let panel = whole.panel.as_ref().unwrap();
            let series: Vec<u32> = slices.iter().flat_map(|s| s.panel.as_ref().unwrap().series.clone()).collect();
            assert_eq!(series, panel.series, "{}", what("series"));
            let frame_rows: Vec<usize> =
                slices.iter().flat_map(|s| s.panel.as_ref().unwrap().frame_rows.clone()).collect();
            assert_eq!(frame_rows, panel.frame_rows, "{}", what("frame rows"));
            for slice in &slices {
                let p = slice.panel.as_ref().unwrap();
                assert_eq!((&p.keys, &p.short), (&panel.keys, &panel.short), "{}", what("keys"));
                assert_eq!(slice.warmup_dropped, whole.warmup_dropped, "{}", what("warm-up"));
                assert_eq!(slice.x.names, whole.x.names, "{}", what("names"));
            }
        }
    }
}
