//! Many steps ahead by recursion (mlforecast's strategy): the model of the next step reads the features of the
//! origin; its forecast is appended to the target's history as if it had been observed; the features of the next
//! virtual origin are computed from that history; and so on. The first step is exactly the one-step forecast of the
//! batch path: the features come from the same kernels over the same window of actual values.
//!
//! Key decision: a recursive recipe reads only the target (and the calendar of each virtual origin, known in
//! advance), and only through windowed kernels, so that each step's features are a function of the last
//! [`TimeSeriesRecipe::min_window_rows`] values (actual or forecast). Other columns' future values are unknown, and
//! history-dependent kernels (expanding mean, EWM) would need their state after every forecast; both are refused when
//! the recipe is checked, naming the feature.

use std::collections::HashMap;

use kiln_domain::{Frame, Matrix};

use crate::kernels::Input;
use crate::spec::Source;
use crate::{FeatureError, FittedPipeline, Lookback, SeriesStep, TimeSeriesRecipe};

/// One origin of a recursive forecast: the target's values up to and including the origin (the last
/// [`TimeSeriesRecipe::min_window_rows`] are read) and the origin's time.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub history: &'a [f64],
    pub time: i64,
    /// a panel: the origin's series (read by the series feature, `series: {}`)
    pub series: Option<&'a str>,
    /// the `known_in_advance` values of the rows after the origin, `[k - 1][a]` for each step `k` (see
    /// [`crate::FeatureRow::ahead`]); empty for a recipe without such columns. Missing values are NaN.
    pub ahead: &'a [f64],
}

impl TimeSeriesRecipe {
    /// Checks that the recipe can feed its forecasts back: windowed kernels over the target only, plus calendar
    /// parts.
    ///
    /// # Errors
    /// [`FeatureError::Spec`] naming the first feature that reads another column or the whole history.
    pub fn check_recursive(&self) -> Result<(), FeatureError> {
        for (i, feature) in self.features.iter().enumerate() {
            if matches!(feature, crate::FeatureSpec::KnownInAdvance { .. }) {
                continue;
            }
            if let Some(other) = feature.columns().into_iter().find(|c| *c != self.target) {
                return Err(FeatureError::spec(
                    format!("features[{i}]"),
                    format!(
                        "reads column '{other}', whose values after the origin are unknown: a recursive forecast \
                         (task.strategy: recursive) feeds back only the target '{}'",
                        self.target
                    ),
                ));
            }
        }
        let outputs = self.outputs();
        if let Some(o) = outputs.iter().find(|o| o.kernel.needs_all_history()) {
            return Err(FeatureError::spec(
                format!("features[{}]", o.feature),
                format!(
                    "'{}' depends on the whole history; a recursive forecast recomputes each step's features from \
                     a window of the last values, so use lags and rolling windows",
                    o.name
                ),
            ));
        }
        Ok(())
    }
}

impl FittedPipeline {
    /// `steps` forecasts from every origin, in the target's units: `out[k][o]` is step `k + 1` from origin `o`.
    /// `predict` is the model's prediction over a model matrix (one row per origin); it is called once per step.
    ///
    /// # Errors
    /// A recipe that cannot recurse ([`TimeSeriesRecipe::check_recursive`]), an origin with fewer values than the
    /// window needs, a fitted step that fails, or `predict`'s error.
    pub fn forecast_recursive<E: From<FeatureError>>(
        &self,
        origins: &[Origin<'_>],
        steps: usize,
        step: SeriesStep,
        predict: &mut dyn FnMut(&Matrix) -> Result<Vec<f64>, E>,
    ) -> Result<Vec<Vec<f64>>, E> {
        let recipe = self.recipe().ok_or_else(|| FeatureError::spec("input", "a tabular pipeline has no steps"))?;
        recipe.check_recursive()?;
        let window = match recipe.lookback() {
            Lookback::Rows(n) => n,
            Lookback::All => return Err(FeatureError::spec("features", "needs the whole history").into()),
        };
        if let Some(short) = origins.iter().find(|o| o.history.len() < window) {
            return Err(FeatureError::NotEnoughRows {
                what: "a recursive forecast's origin".to_string(),
                needed: window,
                given: short.history.len(),
            }
            .into());
        }
        let outputs = recipe.outputs();
        let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
        let ahead_columns = recipe.ahead_columns();
        let known = ahead_columns.len();
        // each origin's window, extended by its forecasts: the last `window` values are read
        let mut windows: Vec<Vec<f64>> = origins
            .iter()
            .map(|o| {
                let mut w = Vec::with_capacity(window + steps);
                w.extend_from_slice(&o.history[o.history.len() - window..]);
                w
            })
            .collect();
        let mut out = Vec::with_capacity(steps);
        for k in 0..steps {
            let mut data = Vec::with_capacity(origins.len() * outputs.len());
            for (o, w) in origins.iter().zip(&windows) {
                let values = &w[w.len() - window..];
                let time = step.advance(o.time, k);
                data.extend(outputs.iter().enumerate().map(|(j, output)| match output.source {
                    // a column (or the calendar) at this step's target time
                    _ if matches!(output.kernel, crate::kernels::Kernel::Ahead(_)) => {
                        let a = ahead_columns.iter().position(|&c| c == j).unwrap_or(0);
                        o.ahead.get(k * known + a).copied().unwrap_or(f64::NAN)
                    }
                    Source::Time => output.kernel.last(Input::Time(&[time])),
                    Source::Column(_) => output.kernel.last(Input::Numeric(values)),
                }));
            }
            let base = Matrix { names: names.clone(), data, n_rows: origins.len() };
            let keys: Option<Vec<String>> = recipe
                .series_feature()
                .then(|| origins.iter().map(|o| o.series.unwrap_or_default().to_string()).collect());
            let x = self.finish(recipe.with_series_feature(crate::matrix_to_frame(&base)?, keys.as_deref())?)?;
            let raw = predict(&x)?;
            let forecasts: Vec<f64> = raw
                .iter()
                .zip(&mut windows)
                .map(|(&r, w)| {
                    let current = w.last().copied().unwrap_or(f64::NAN);
                    let forecast = recipe.target_transform.invert(current, r);
                    w.push(forecast);
                    forecast
                })
                .collect();
            out.push(forecasts);
        }
        Ok(out)
    }
}

/// Every origin of a frame (each series' rows past the warm-up, a panel's in the frame's order), with what a
/// multi-step forecast needs: its series, time and the target's history up to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origins {
    /// a panel: the series of each origin
    pub series: Option<Vec<String>>,
    pub times: Vec<i64>,
    /// each origin's history: `histories[h]` is one series' target values in time order; origin `o` reads
    /// `histories[at[o].0][..=at[o].1]`
    pub histories: Vec<Vec<f64>>,
    pub at: Vec<(usize, usize)>,
    /// a recipe with `known_in_advance` columns: each origin's values of them at the rows after it (`known *
    /// ahead_rows` values per origin, see [`Origin::ahead`]; NaN past the rows given); empty otherwise
    pub ahead: Vec<f64>,
    /// rows in the warm-up (per series)
    pub warmup_dropped: usize,
}

impl Origins {
    /// The [`Origin`] of every origin, for [`FittedPipeline::forecast_recursive`].
    pub fn origins(&self) -> Vec<Origin<'_>> {
        self.at
            .iter()
            .zip(&self.times)
            .enumerate()
            .map(|(o, (&(h, i), &time))| Origin {
                history: &self.histories[h][..=i],
                time,
                series: self.series.as_ref().map(|s| s[o].as_str()),
                ahead: self.ahead_of(o),
            })
            .collect()
    }

    /// Origin `o`'s `known_in_advance` values (see [`Origin::ahead`]).
    pub fn ahead_of(&self, o: usize) -> &[f64] {
        let stride = if self.times.is_empty() { 0 } else { self.ahead.len() / self.times.len() };
        &self.ahead[o * stride..(o + 1) * stride]
    }
}

/// The origins of long frames pushed chunk by chunk (each series in time order; a panel's series may interleave):
/// per series, the last values a window reads are carried to the next chunk, so memory is bounded by the series
/// count and the window, not by the rows pushed.
#[derive(Debug, Clone)]
pub struct OriginStream {
    recipe: TimeSeriesRecipe,
    /// values kept per series between chunks (the window minus one)
    keep: usize,
    /// per series: its values carried from earlier chunks, its last time and its row count
    tails: HashMap<String, (Vec<f64>, i64, usize)>,
}

impl TimeSeriesRecipe {
    /// An [`OriginStream`] at the start of the input.
    ///
    /// # Errors
    /// A recipe that cannot recurse.
    pub fn origin_stream(&self) -> Result<OriginStream, FeatureError> {
        self.check_recursive()?;
        self.history_stream()
    }

    /// An [`OriginStream`] for any recipe, recursive or not: the origins and the target's history of each series
    /// (what a seasonal naive forecast of every step reads).
    ///
    /// # Errors
    /// An invalid recipe.
    pub fn history_stream(&self) -> Result<OriginStream, FeatureError> {
        self.validate()?;
        let keep = match self.lookback() {
            Lookback::Rows(n) => n.saturating_sub(1),
            Lookback::All => 0,
        };
        Ok(OriginStream { recipe: self.clone(), keep, tails: HashMap::new() })
    }
}

impl OriginStream {
    /// The origins of the next chunk (raw rows), in the chunk's order; `offset` is the chunk's first row in the
    /// whole input (for error messages).
    ///
    /// # Errors
    /// A missing or mistyped column, a row without a series, a series that steps back in time.
    pub fn push(&mut self, chunk: &Frame, offset: usize) -> Result<Origins, FeatureError> {
        let long = self.recipe.long_frame(chunk)?;
        let resolved = self.recipe.resolve_unsorted(&long)?;
        let (codes, keys) = match &self.recipe.series_column {
            Some(column) => crate::table::series_codes(&long, column).map_err(|e| match e {
                FeatureError::MissingSeriesKey { column, row } => {
                    FeatureError::MissingSeriesKey { column, row: row + offset }
                }
                other => other,
            })?,
            None => (vec![0; long.n_rows()], vec![String::new()]),
        };
        let warmup = self.recipe.warmup();
        // known_in_advance: each origin reads the values of the rows after it in this chunk (the whole frame, where
        // a caller needs them); rows without a target are future rows, never origins
        let ahead_columns = self.recipe.ahead_columns();
        let ahead_rows = self.recipe.ahead_rows();
        let known: Vec<(crate::kernels::Kernel, crate::kernels::Input<'_>)> =
            ahead_columns.iter().map(|&j| (resolved.outputs[j].kernel, resolved.inputs[j])).collect();
        let mut ahead_of = vec![Vec::new(); long.n_rows()];
        let mut histories: Vec<Vec<f64>> = Vec::with_capacity(keys.len());
        let mut at = vec![(0, 0); long.n_rows()];
        let mut keep_row = vec![false; long.n_rows()];
        let mut warmup_dropped = 0;
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (i, &c) in codes.iter().enumerate() {
            rows_of[c as usize].push(i);
        }
        for (code, rows) in rows_of.iter().enumerate() {
            let key = &keys[code];
            let (tail, last_time, count) = self.tails.remove(key).unwrap_or((Vec::new(), i64::MIN, 0));
            let mut values = tail;
            let carried = values.len();
            let mut prev = if count == 0 { None } else { Some(last_time) };
            for (k, &r) in rows.iter().enumerate() {
                let t = resolved.times[r];
                if let Some(p) = prev
                    && t <= p
                {
                    return Err(FeatureError::NotSorted {
                        column: self.recipe.time_column.clone(),
                        prev_row: None,
                        row: offset + r,
                        prev: p,
                        next: t,
                    });
                }
                prev = Some(t);
                values.push(resolved.target[r]);
                if !known.is_empty() {
                    // a future row, or an origin without a row at every step's target time: not forecast
                    if resolved.target[r].is_nan() || k + ahead_rows >= rows.len() {
                        continue;
                    }
                    ahead_of[r] = (1..=ahead_rows)
                        .flat_map(|s| {
                            let later = rows.get(k + s).copied();
                            known
                                .iter()
                                .map(move |(kernel, input)| later.map_or(f64::NAN, |l| kernel.ahead_at(*input, l)))
                        })
                        .collect();
                }
                if count + k >= warmup {
                    keep_row[r] = true;
                    at[r] = (histories.len(), carried + k);
                } else {
                    warmup_dropped += 1;
                }
            }
            let n = count + rows.len();
            let last = prev.unwrap_or(last_time);
            let tail = values[values.len() - self.keep.min(values.len())..].to_vec();
            self.tails.insert(key.clone(), (tail, last, n));
            histories.push(values);
        }
        let kept: Vec<usize> = (0..long.n_rows()).filter(|&r| keep_row[r]).collect();
        Ok(Origins {
            series: self
                .recipe
                .series_column
                .as_ref()
                .map(|_| kept.iter().map(|&r| keys[codes[r] as usize].clone()).collect()),
            times: kept.iter().map(|&r| resolved.times[r]).collect(),
            histories,
            at: kept.iter().map(|&r| at[r]).collect(),
            ahead: kept.iter().flat_map(|&r| std::mem::take(&mut ahead_of[r])).collect(),
            warmup_dropped,
        })
    }
}
