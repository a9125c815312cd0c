//! Building features from raw rows: [`TimeSeriesRecipe::build_table`] for training and batch scoring (every origin
//! time), [`TimeSeriesRecipe::build_last_row`] for serving (the last row of a window). Both resolve columns the same
//! way and run the same kernels; nothing here does arithmetic on feature values itself.

use kiln_domain::{Column, Frame, Matrix};

use crate::kernels::Input;
use crate::spec::{Output, Source};
use crate::{FeatureError, Lookback, TimeSeriesRecipe};

/// The feature table of a whole frame: one row per origin time `t` past the warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    /// one row per kept origin time, columns = [`TimeSeriesRecipe::feature_names`]
    pub x: Matrix,
    /// origin time `t` of each row, UTC milliseconds
    pub times: Vec<i64>,
    /// target value at `t`
    pub current: Vec<f64>,
    /// target value at `t + horizon`; NaN when that is past the end of the data
    pub future: Vec<f64>,
    /// `target_transform.apply(current, future)`; NaN where `future` is NaN
    pub label: Vec<f64>,
    /// rows dropped at the start (the recipe's warm-up)
    pub warmup_dropped: usize,
}

/// The features of the last row of a window, for serving.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// origin time, UTC milliseconds
    pub time: i64,
    /// target value at the origin time (to invert the target transform)
    pub current: f64,
    /// one value per [`TimeSeriesRecipe::feature_names`]
    pub values: Vec<f64>,
}

/// The recipe's columns, checked and borrowed from a frame.
pub(crate) struct Resolved<'a> {
    pub(crate) outputs: Vec<Output>,
    pub(crate) times: &'a [i64],
    pub(crate) target: &'a [f64],
    pub(crate) inputs: Vec<Input<'a>>,
}

impl TimeSeriesRecipe {
    /// The feature table of a whole frame (sorted by time), for training and batch scoring. Rows before the warm-up
    /// are dropped; the last `horizon` rows are kept with a NaN label (they can still be scored).
    ///
    /// # Errors
    /// An invalid recipe, a missing or mistyped column, a time column that is not strictly increasing, or no row
    /// past the warm-up.
    pub fn build_table(&self, frame: &Frame) -> Result<FeatureTable, FeatureError> {
        let resolved = self.resolve(frame)?;
        let n = resolved.times.len();
        let warmup = self.warmup();
        if n <= warmup {
            return Err(FeatureError::NotEnoughRows {
                what: "the feature table".to_string(),
                needed: warmup.saturating_add(1),
                given: n,
            });
        }
        let columns: Vec<Vec<f64>> =
            resolved.outputs.iter().zip(&resolved.inputs).map(|(o, &input)| o.kernel.series(input)).collect();
        let kept = n - warmup;
        let mut data = Vec::with_capacity(kept * columns.len());
        for t in warmup..n {
            data.extend(columns.iter().map(|c| c[t]));
        }
        let names = resolved.outputs.into_iter().map(|o| o.name).collect();
        let current = resolved.target[warmup..].to_vec();
        let future: Vec<f64> = (warmup..n)
            .map(|t| match t.checked_add(self.horizon) {
                Some(i) if i < n => resolved.target[i],
                _ => f64::NAN,
            })
            .collect();
        let label = current
            .iter()
            .zip(&future)
            .map(|(&c, &f)| if f.is_nan() { f64::NAN } else { self.target_transform.apply(c, f) })
            .collect();
        Ok(FeatureTable {
            x: Matrix { names, data, n_rows: kept },
            times: resolved.times[warmup..].to_vec(),
            current,
            future,
            label,
            warmup_dropped: warmup,
        })
    }

    /// The features of the last row of `window` (raw rows sorted by time), for serving. With [`Lookback::Rows`]
    /// any window of at least that many rows gives exactly the batch value; with [`Lookback::All`] the window must
    /// be the whole history from the first training row on.
    ///
    /// # Errors
    /// An invalid recipe, a missing or mistyped column, a time column that is not strictly increasing, or fewer rows
    /// than [`TimeSeriesRecipe::min_window_rows`].
    pub fn build_last_row(&self, window: &Frame) -> Result<FeatureRow, FeatureError> {
        let resolved = self.resolve(window)?;
        let n = resolved.times.len();
        let needed = self.min_window_rows();
        if n < needed {
            let what = match self.lookback() {
                Lookback::Rows(_) => "the last feature row".to_string(),
                Lookback::All => "the last feature row (expanding and ewm features need the whole history)".to_string(),
            };
            return Err(FeatureError::NotEnoughRows { what, needed, given: n });
        }
        let values = resolved.outputs.iter().zip(&resolved.inputs).map(|(o, &input)| o.kernel.last(input)).collect();
        Ok(FeatureRow { time: resolved.times[n - 1], current: resolved.target[n - 1], values })
    }

    /// Validates the recipe and borrows its columns from `frame`, checking types and time order.
    pub(crate) fn resolve<'a>(&self, frame: &'a Frame) -> Result<Resolved<'a>, FeatureError> {
        self.validate()?;
        let times = match column(frame, &self.time_column, "time_column")? {
            Column::Timestamp(v) => v.as_slice(),
            other => return Err(type_error("time_column", &self.time_column, "timestamp", other)),
        };
        if let Some(row) = (1..times.len()).find(|&i| times[i] <= times[i - 1]) {
            return Err(FeatureError::NotSorted {
                column: self.time_column.clone(),
                prev_row: Some(row - 1),
                row,
                prev: times[row - 1],
                next: times[row],
            });
        }
        let target = numeric(frame, &self.target, "target")?;
        let outputs = self.outputs();
        let mut inputs = Vec::with_capacity(outputs.len());
        for output in &outputs {
            inputs.push(match &output.source {
                Source::Time => Input::Time(times),
                Source::Column(name) => {
                    let needed_by =
                        format!("feature '{}' (features[{}])", self.features[output.feature].kind(), output.feature);
                    Input::Numeric(numeric(frame, name, &needed_by)?)
                }
            });
        }
        Ok(Resolved { outputs, times, target, inputs })
    }
}

fn column<'a>(frame: &'a Frame, name: &str, needed_by: &str) -> Result<&'a Column, FeatureError> {
    // `Frame::column` fails only when the column is absent
    frame
        .column(name)
        .map_err(|_| FeatureError::MissingColumn { needed_by: needed_by.to_string(), column: name.to_string() })
}

fn numeric<'a>(frame: &'a Frame, name: &str, needed_by: &str) -> Result<&'a [f64], FeatureError> {
    match column(frame, name, needed_by)? {
        Column::Numeric(v) => Ok(v),
        other => Err(type_error(needed_by, name, "numeric", other)),
    }
}

fn type_error(needed_by: &str, name: &str, expected: &'static str, actual: &Column) -> FeatureError {
    FeatureError::ColumnType {
        needed_by: needed_by.to_string(),
        column: name.to_string(),
        expected,
        actual: actual.kind().as_str(),
    }
}
