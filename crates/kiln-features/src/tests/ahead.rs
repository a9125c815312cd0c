//! `known_in_advance` columns on ETTh1 (OT forecast, HUFL and MUFL as the columns known ahead): each is taken at the
//! target time in the table, the serving window, the multi-step forecasts and a direct recipe's later steps, and
//! a future row (no target) supplies it without ever being an origin.

use super::*;
use crate::{FittedPipeline, MultiStep, Origin, SeriesStep, Strategy};

const KNOWN: [&str; 2] = ["HUFL", "MUFL"];

fn known_recipe(horizon: usize) -> TimeSeriesRecipe {
    let mut r = recipe(
        "date",
        "OT",
        vec![
            FeatureSpec::KnownInAdvance { columns: KNOWN.iter().map(|c| c.to_string()).collect() },
            FeatureSpec::Lag { column: "OT".to_string(), lags: vec![1, 2] },
            FeatureSpec::Rolling { column: "OT".to_string(), windows: vec![3], stats: vec![RollingStat::Mean] },
        ],
    );
    r.horizon = horizon;
    r
}

fn first_rows(frame: &Frame, n: usize) -> Frame {
    frame.slice(0, n)
}

/// `frame` with the target left empty in its last `k` rows (future rows).
fn with_future_rows(frame: &Frame, k: usize) -> Frame {
    let n = frame.n_rows();
    let columns = frame
        .columns()
        .map(|(name, column)| {
            let column = match (name, column) {
                ("OT", Column::Numeric(v)) => {
                    Column::Numeric(v.iter().enumerate().map(|(i, &x)| if i + k >= n { f64::NAN } else { x }).collect())
                }
                _ => column.clone(),
            };
            (name.to_string(), column)
        })
        .collect();
    Frame::new(columns).unwrap()
}

#[test]
fn a_known_column_is_taken_at_the_target_time_in_the_table() {
    let frame = first_rows(etth1(), 500);
    for horizon in [1, 3] {
        let r = known_recipe(horizon);
        assert_eq!(r.feature_names()[..2], ["HUFL_at_target", "MUFL_at_target"]);
        assert_eq!(r.ahead_columns(), [0, 1]);
        assert_eq!(r.ahead_rows(), horizon);
        let table = r.build_table(&frame).unwrap();
        let warmup = table.warmup_dropped;
        for (a, column) in KNOWN.iter().enumerate() {
            let x = frame.numeric(column).unwrap();
            for i in 0..table.x.n_rows {
                let t = warmup + i;
                let expected = x.get(t + horizon).copied().unwrap_or(f64::NAN);
                assert!(same_bits(table.x.data[i * table.x.n_cols() + a], expected), "{column} h={horizon} row {i}");
            }
        }
        // the other features are those of the recipe without the known columns
        let mut plain = r.clone();
        plain.features.remove(0);
        let base = plain.build_table(&frame).unwrap();
        for i in 0..table.x.n_rows {
            assert_eq!(table.x.row(i)[2..], *base.x.row(i), "row {i}");
        }
    }
}

#[test]
fn a_direct_recipe_keeps_every_later_steps_known_values_and_a_panel_reads_its_own_series() {
    let frame = first_rows(etth1(), 300);
    let mut r = known_recipe(1);
    r.multi_step = Some(MultiStep { steps: 4, strategy: Strategy::Direct });
    let table = r.build_table(&frame).unwrap();
    assert_eq!(table.step_ahead.len(), 3);
    let hufl = frame.numeric("HUFL").unwrap();
    for (s, step) in table.step_ahead.iter().enumerate() {
        let k = s + 2;
        for (i, &value) in step[0].iter().enumerate() {
            let t = table.warmup_dropped + i;
            assert!(same_bits(value, hufl.get(t + k).copied().unwrap_or(f64::NAN)), "step {k} row {i}");
        }
    }
    // a panel of two copies of the series, the second with HUFL doubled: each series reads its own values
    let mut doubled = frame.clone();
    let twice: Vec<f64> = hufl.iter().map(|v| v * 2.0).collect();
    doubled = Frame::new(
        doubled
            .into_columns()
            .into_iter()
            .map(|(n, c)| if n == "HUFL" { (n, Column::Numeric(twice.clone())) } else { (n, c) })
            .collect(),
    )
    .unwrap();
    let key = |frame: &Frame, k: &str| {
        let mut columns: Vec<(String, Column)> = frame.columns().map(|(n, c)| (n.to_string(), c.clone())).collect();
        columns.push(("unit".to_string(), Column::Categorical(vec![Some(k.to_string()); frame.n_rows()])));
        Frame::new(columns).unwrap()
    };
    let (a, b) = (key(&frame, "a"), key(&doubled, "b"));
    let mut panel_columns = Vec::new();
    for ((name, ca), (_, cb)) in a.columns().zip(b.columns()) {
        let column = match (ca, cb) {
            (Column::Numeric(x), Column::Numeric(y)) => Column::Numeric(x.iter().chain(y).copied().collect()),
            (Column::Timestamp(x), Column::Timestamp(y)) => Column::Timestamp(x.iter().chain(y).copied().collect()),
            (Column::Categorical(x), Column::Categorical(y)) => {
                Column::Categorical(x.iter().chain(y).cloned().collect())
            }
            _ => unreachable!(),
        };
        panel_columns.push((name.to_string(), column));
    }
    let panel = Frame::new(panel_columns).unwrap();
    r.series_column = Some("unit".to_string());
    let table_panel = r.build_table(&panel).unwrap();
    let p = table_panel.panel.as_ref().unwrap();
    for i in 0..table_panel.x.n_rows {
        let own = &table.x.row(i / 2);
        let factor = if p.keys[p.series[i] as usize] == "b" { 2.0 } else { 1.0 };
        let got = table_panel.x.row(i)[0];
        assert!(same_bits(got, own[0] * factor), "panel row {i}: {got} vs {}", own[0] * factor);
        assert!(same_bits(table_panel.step_ahead[2][0][i], table.step_ahead[2][0][i / 2] * factor));
    }
}

#[test]
fn a_window_with_future_rows_serves_its_last_origin_exactly_as_the_table() {
    let frame = first_rows(etth1(), 400);
    for horizon in [1, 5] {
        let r = known_recipe(horizon);
        let table = r.build_table(&frame).unwrap();
        let pipeline = FittedPipeline::new(r.clone(), &r.feature_names());
        // the origin is row 394 - horizon: its window ends with `horizon` future rows (target empty)
        let origin = 399 - horizon;
        let window = with_future_rows(&frame.slice(origin + 1 - 10, 400), horizon);
        let row = pipeline.transform_last(&window).unwrap();
        let i = origin - table.warmup_dropped;
        assert_eq!(row.time, table.times[i]);
        for (j, (&got, &want)) in row.values.iter().zip(table.x.row(i)).enumerate() {
            assert!(same_bits(got, want), "h={horizon} feature {j}: {got} vs {want}");
        }
        assert_eq!(row.ahead.len(), horizon * KNOWN.len());
        // one future row short: refused, naming the target and the known columns
        let short = with_future_rows(&frame.slice(origin + 1 - 10, 399), horizon - 1);
        let err = pipeline.transform_last(&short).unwrap_err().to_string();
        assert!(err.contains("'HUFL', 'MUFL'") && err.contains(&format!("at least {horizon} rows")), "{err}");
    }
}

#[test]
fn a_recursive_forecast_reads_each_steps_known_values_and_future_rows_are_never_origins() {
    let frame = with_future_rows(&first_rows(etth1(), 200), 3);
    let mut r = known_recipe(1);
    r.multi_step = Some(MultiStep { steps: 3, strategy: Strategy::Recursive });
    r.check_recursive().unwrap();
    let pipeline = FittedPipeline::new(r.clone(), &r.feature_names());
    let origins = r.origin_stream().unwrap().push(&frame, 0).unwrap();
    // the 3 future rows are not origins; the last origin reads all three of them
    assert_eq!(origins.times.len(), 200 - 3 - r.warmup());
    let last = origins.times.len() - 1;
    let hufl = frame.numeric("HUFL").unwrap();
    let mufl = frame.numeric("MUFL").unwrap();
    assert_eq!(origins.ahead_of(last), [hufl[197], mufl[197], hufl[198], mufl[198], hufl[199], mufl[199]]);
    // a model that answers HUFL at the target time: every step's forecast is exactly that step's known value
    let list = origins.origins();
    let step = SeriesStep::Fixed { ms: MS_PER_HOUR };
    let forecasts = pipeline
        .forecast_recursive(&list, 3, step, &mut |x| {
            Ok::<_, FeatureError>((0..x.n_rows).map(|i| x.row(i)[0]).collect())
        })
        .unwrap();
    for (o, origin) in list.iter().enumerate() {
        for (k, forecast) in forecasts.iter().enumerate() {
            assert!(same_bits(forecast[o], origin.ahead[k * 2]), "origin {o} step {}", k + 1);
        }
    }
    assert!(same_bits(forecasts[2][last], hufl[199]));
    // an origin with no values ahead gets NaN for them, never another row's
    let bare = Origin { ahead: &[], ..list[0] };
    let f = pipeline.forecast_recursive(&[bare], 1, step, &mut |x| Ok::<_, FeatureError>(vec![x.row(0)[0]])).unwrap();
    assert!(f[0][0].is_nan());
}

#[test]
fn known_in_advance_may_not_name_the_target_or_the_time() {
    let mut r = known_recipe(1);
    r.features[0] = FeatureSpec::KnownInAdvance { columns: vec!["HUFL".to_string(), "OT".to_string()] };
    let err = r.validate().unwrap_err().to_string();
    assert!(err.starts_with("features[0].known_in_advance.columns[1]"), "{err}");
}

#[test]
fn a_calendar_at_the_target_time_reads_the_time_of_the_target_row() {
    let frame = with_future_rows(&first_rows(etth1(), 120), 5);
    let mut r = known_recipe(5);
    r.features.push(FeatureSpec::Calendar { parts: vec![CalendarPart::Hour], cyclical: true, at: CalendarAt::Target });
    let names = r.feature_names();
    let j = names.len() - 3;
    assert_eq!(names[j..], ["hour_at_target", "hour_at_target_sin", "hour_at_target_cos"]);
    let times = frame.timestamps("date").unwrap();
    let hour = |ms: i64| (ms.rem_euclid(MS_PER_DAY) / MS_PER_HOUR) as f64;
    let table = r.build_table(&frame).unwrap();
    for i in 0..table.x.n_rows {
        let t = table.warmup_dropped + i;
        let want = times.get(t + 5).map_or(f64::NAN, |&ms| hour(ms));
        assert!(same_bits(table.x.row(i)[j], want), "row {i}");
        assert!(same_bits(table.x.row(i)[j + 1], (TAU * want / 24.0).sin()), "row {i} sin");
    }
    // the serving window reads it from its future rows, as the table does
    let pipeline = FittedPipeline::new(r.clone(), &names);
    let row = pipeline.transform_last(&frame.slice(80, 120)).unwrap();
    let i = 114 - table.warmup_dropped;
    assert_eq!(row.time, table.times[i]);
    assert!(row.values.iter().zip(table.x.row(i)).all(|(&a, &b)| same_bits(a, b)));
    assert!(same_bits(row.values[j], hour(times[119])));
    // and a recursive forecast reads each step's from the origin's rows ahead
    let mut recursive = r.clone();
    recursive.horizon = 1;
    recursive.multi_step = Some(MultiStep { steps: 5, strategy: Strategy::Recursive });
    let origins = recursive.origin_stream().unwrap().push(&frame, 0).unwrap();
    let last = origins.times.len() - 1;
    let ahead = origins.ahead_of(last);
    assert_eq!(ahead.len(), 5 * 5);
    for k in 0..5 {
        assert!(same_bits(ahead[k * 5 + 2], hour(times[115 + k])), "step {}", k + 1);
    }
}
