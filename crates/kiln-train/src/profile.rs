//! The reference profile written into every bundle (`kiln/profile.json`), built from the training rows: the raw
//! input columns the pipeline reads, the model's features, its predictions and the target (and the same per series
//! of a panel). `kiln drift` and `kiln serve`'s live PSI compare new data with it.
//!
//! Key decision: the training part only (not validation or test). A tabular model's raw rows are the training
//! rows themselves; a forecast's raw rows are every row up to the last training origin (the history the training
//! features were computed from), the time column left out.

use kiln_domain::{Column, ColumnKind, Frame, Matrix};
use kiln_eval::drift::{ColumnProfile, PROFILE_VERSION, Profile, SERIES_SAMPLE_CAP, SeriesProfile};
use kiln_features::{FittedPipeline, PipelineInput};

use crate::prepare::{Design, Parts};

/// The profile of the training rows.
pub(crate) fn training_profile(
    pipeline: &FittedPipeline,
    frame: &Frame,
    design: &Design,
    parts: &Parts,
    x: &Matrix,
    outputs: &[f64],
) -> Profile {
    let train = &parts.train;
    let raw_rows = raw_training_rows(pipeline, frame, design, train);
    let columns: Vec<(String, ColumnKind)> =
        pipeline.input_kinds().into_iter().filter(|(_, kind)| *kind != ColumnKind::Timestamp).collect();
    let inputs = raw_profiles(frame, &columns, &raw_rows, kiln_eval::drift::SAMPLE_CAP);
    let features = (0..x.n_cols())
        .map(|j| {
            let values: Vec<f64> = train.iter().map(|&i| x.data[i * x.n_cols() + j]).collect();
            // no sample: the features are watched by PSI over their bins (live, in `kiln serve`); the exact tests
            // run on the raw inputs, which keeps the profile small
            ColumnProfile::numeric_sampled(&x.names[j], &values, 0)
        })
        .collect();
    let take = |v: &[f64], rows: &[usize]| -> Vec<f64> { rows.iter().filter_map(|&i| v.get(i).copied()).collect() };
    let prediction = Some(ColumnProfile::numeric("prediction", &take(outputs, train)));
    let target = Some(ColumnProfile::numeric("target", &take(&design.truth, train)));

    let mut series = Vec::new();
    if !design.series_keys.is_empty() && design.series.len() == design.truth.len() {
        let series_column = match &pipeline.input {
            PipelineInput::Forecast(r) => r.series_column.clone(),
            PipelineInput::Tabular(_) => None,
        };
        let raw_keys: Option<&[Option<String>]> = series_column.as_deref().and_then(|c| frame.categorical(c).ok());
        // each series' training rows and raw rows, in one pass over each (in their order)
        let n_series = design.series_keys.len();
        let mut train_of: Vec<Vec<usize>> = vec![Vec::new(); n_series];
        for &i in train {
            if let Some(rows) = train_of.get_mut(design.series[i] as usize) {
                rows.push(i);
            }
        }
        let mut raw_of: Vec<Vec<usize>> = vec![Vec::new(); n_series];
        if let Some(keys) = raw_keys {
            let code_of: std::collections::HashMap<&str, usize> =
                design.series_keys.iter().enumerate().map(|(code, key)| (key.as_str(), code)).collect();
            // a key equal to the row before's (rows grouped by series) skips the hash
            let mut previous: Option<(&str, Option<usize>)> = None;
            for &r in &raw_rows {
                let Some(key) = keys[r].as_deref() else { continue };
                let code = match previous {
                    Some((p, code)) if p == key => code,
                    _ => code_of.get(key).copied(),
                };
                previous = Some((key, code));
                if let Some(code) = code {
                    raw_of[code].push(r);
                }
            }
        }
        let own: Vec<(String, ColumnKind)> =
            columns.iter().filter(|(c, _)| Some(c) != series_column.as_ref()).cloned().collect();
        for (code, key) in design.series_keys.iter().enumerate() {
            let rows = &train_of[code];
            let inputs = match raw_keys {
                Some(_) => raw_profiles(frame, &own, &raw_of[code], SERIES_SAMPLE_CAP),
                None => Vec::new(),
            };
            series.push(SeriesProfile {
                series: key.clone(),
                rows: rows.len() as u64,
                inputs,
                prediction: Some(ColumnProfile::numeric_sampled("prediction", &take(outputs, rows), SERIES_SAMPLE_CAP)),
                target: Some(ColumnProfile::numeric_sampled("target", &take(&design.truth, rows), SERIES_SAMPLE_CAP)),
            });
        }
    }
    Profile { version: PROFILE_VERSION, rows: train.len() as u64, inputs, features, prediction, target, series }
}

/// The frame rows the training rows come from: a tabular model's training rows; a forecast's rows up to the last
/// training origin.
fn raw_training_rows(pipeline: &FittedPipeline, frame: &Frame, design: &Design, train: &[usize]) -> Vec<usize> {
    match &pipeline.input {
        PipelineInput::Tabular(_) => {
            let mut rows: Vec<usize> = train
                .iter()
                .filter_map(|&i| design.data_rows.get(i).map(|r| r - 1))
                .filter(|&r| r < frame.n_rows())
                .collect();
            rows.sort_unstable();
            rows
        }
        PipelineInput::Forecast(recipe) => {
            let last = train.iter().filter_map(|&i| design.times.get(i)).max().copied();
            match (frame.timestamps(&recipe.time_column), last) {
                (Ok(times), Some(last)) => (0..frame.n_rows()).filter(|&r| times[r] <= last).collect(),
                _ => Vec::new(),
            }
        }
    }
}

fn raw_profiles(frame: &Frame, columns: &[(String, ColumnKind)], rows: &[usize], cap: usize) -> Vec<ColumnProfile> {
    columns
        .iter()
        .filter_map(|(name, _)| match frame.column(name).ok()? {
            Column::Numeric(v) => {
                let values: Vec<f64> = rows.iter().map(|&r| v[r]).collect();
                Some(ColumnProfile::numeric_sampled(name, &values, cap))
            }
            Column::Categorical(v) => {
                let values: Vec<Option<&str>> = rows.iter().map(|&r| v[r].as_deref()).collect();
                Some(ColumnProfile::categorical(name, &values))
            }
            Column::Timestamp(_) => None,
        })
        .collect()
}
