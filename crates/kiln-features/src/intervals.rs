//! Conformal prediction intervals, as mlforecast's `PredictionIntervals(n_windows, h)` with its default
//! `conformal_distribution` method: the absolute errors of recursive forecasts over the last `windows` blocks of
//! `steps` rows of each series' training data (one calibration model fitted before them) are stored per series and
//! step; the interval of level L around a forecast m is the linearly interpolated (numpy's default) quantiles
//! `(100 - L) / 200` and `1 - (100 - L) / 200` of the 2W values `m - s_i` and `m + s_i`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FeatureError;

/// What intervals are asked for (`task.intervals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalSpec {
    /// coverage levels in percent, each in (0, 100)
    pub levels: Vec<f64>,
    /// calibration windows of `steps` rows at the end of each series' training data (at least 2)
    pub windows: usize,
}

impl IntervalSpec {
    /// # Errors
    /// [`FeatureError::Spec`] naming `levels[i]` or `windows`.
    pub fn validate(&self) -> Result<(), FeatureError> {
        if self.levels.is_empty() {
            return Err(FeatureError::spec("intervals.levels", "must not be empty"));
        }
        if let Some(i) = self.levels.iter().position(|l| !(l.is_finite() && *l > 0.0 && *l < 100.0)) {
            return Err(FeatureError::spec(
                format!("intervals.levels[{i}]"),
                format!("{} is not a coverage level in percent, strictly between 0 and 100", self.levels[i]),
            ));
        }
        if self.windows < 2 {
            return Err(FeatureError::spec(
                "intervals.windows",
                format!("must be at least 2 calibration windows, got {}", self.windows),
            ));
        }
        Ok(())
    }
}

/// Fitted conformal intervals, as a bundle stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConformalIntervals {
    /// levels in percent, ascending
    pub levels: Vec<f64>,
    pub windows: usize,
    /// per series key (`""` for a single series): `scores[step - 1]` holds the absolute errors of the windows
    pub scores: BTreeMap<String, Vec<Vec<f64>>>,
}

impl ConformalIntervals {
    /// The `(lo, hi)` of every level around forecast `m` of `step` (1-based) for `series`; NaN bounds for a series
    /// the calibration did not see.
    pub fn bounds(&self, series: &str, step: usize, m: f64) -> Vec<(f64, f64)> {
        let Some(scores) = self.scores.get(series).and_then(|s| s.get(step.wrapping_sub(1))) else {
            return vec![(f64::NAN, f64::NAN); self.levels.len()];
        };
        let mut values: Vec<f64> = scores.iter().map(|s| m - s).chain(scores.iter().map(|s| m + s)).collect();
        values.sort_by(f64::total_cmp);
        self.levels
            .iter()
            .map(|level| {
                let alpha = 100.0 - level;
                (quantile(&values, alpha / 200.0), quantile(&values, 1.0 - alpha / 200.0))
            })
            .collect()
    }

    /// The column names of the bounds: `lo_80`, `hi_80`, ... (`lo_97.5` for a fractional level).
    pub fn column_names(&self) -> Vec<String> {
        self.levels.iter().flat_map(|l| [format!("lo_{l}"), format!("hi_{l}")]).collect()
    }
}

/// numpy's default (`linear`) quantile of sorted values, with its interpolation (`_lerp`).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss)]
    let v = (n - 1) as f64 * p;
    #[allow(clippy::cast_precision_loss)]
    if v >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let k = v.floor() as usize;
    #[allow(clippy::cast_precision_loss)]
    let g = v - k as f64;
    let (a, b) = (sorted[k], sorted[k + 1]);
    let d = b - a;
    if g >= 0.5 { b - d * (1.0 - g) } else { a + d * g }
}
