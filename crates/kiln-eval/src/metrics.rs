//! Regression metrics with scikit-learn 1.x's definitions (`mean_squared_error`, `mean_absolute_error`,
//! `r2_score`, `mean_absolute_percentage_error`) plus sMAPE.
//!
//! Sums use numpy's pairwise summation ([`pairwise_sum`]), the algorithm behind `np.sum`/`np.mean` on contiguous
//! float64 arrays, and every element-wise expression is written in the same order as scikit-learn's. The values
//! therefore equal scikit-learn's to the last bit in practice (the tests check 1e-12 relative on real data), and
//! the summation error grows with `log n` rather than `n`. Inputs must be finite and hold at least two rows.

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// The regression metrics kiln computes, with their stable snake_case names (also the MLflow metric suffixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// root mean squared error
    Rmse,
    /// mean absolute error
    Mae,
    /// coefficient of determination, as scikit-learn's `r2_score`
    R2,
    /// mean absolute percentage error, as a fraction (0.05 = 5 %), as scikit-learn's
    Mape,
    /// symmetric mean absolute percentage error, as a fraction in [0, 2]
    Smape,
}

impl MetricName {
    /// Every metric, in the order of tables and of [`RegressionMetrics::iter`].
    pub const ALL: [MetricName; 5] =
        [MetricName::Rmse, MetricName::Mae, MetricName::R2, MetricName::Mape, MetricName::Smape];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricName::Rmse => "rmse",
            MetricName::Mae => "mae",
            MetricName::R2 => "r2",
            MetricName::Mape => "mape",
            MetricName::Smape => "smape",
        }
    }

    /// Parses a snake_case name (exact, as in YAML).
    pub fn parse(name: &str) -> Option<MetricName> {
        MetricName::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// True for r2 only; the error metrics are better when lower.
    pub fn higher_is_better(self) -> bool {
        matches!(self, MetricName::R2)
    }

    /// Whether `a` is strictly better than `b` for this metric (a tie is not better).
    pub fn is_better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() { a > b } else { a < b }
    }
}

impl std::fmt::Display for MetricName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The regression metrics of one prediction set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionMetrics {
    /// `sqrt(mean((y - p)^2))`
    pub rmse: f64,
    /// `mean(|y - p|)`
    pub mae: f64,
    /// `1 - SS_res / SS_tot`; when `SS_tot == 0` (constant `y`): 1.0 for a perfect prediction, else 0.0
    pub r2: f64,
    /// `mean(|y - p| / max(|y|, f64::EPSILON))`, a fraction; huge when `y` has zeros, as in scikit-learn
    pub mape: f64,
    /// `mean(2 |y - p| / (|y| + |p|))`, a fraction in [0, 2]; a row where `y == p == 0` counts 0
    pub smape: f64,
}

impl RegressionMetrics {
    /// Computes every metric of `y_pred` against `y_true`.
    ///
    /// # Errors
    /// [`EvalError::LengthMismatch`] when the lengths differ, [`EvalError::NotEnoughRows`] for fewer than two rows,
    /// [`EvalError::NonFinite`] naming the input (`y_true` or `y_pred`) and the first NaN or infinite value.
    pub fn compute(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionMetrics, EvalError> {
        if y_true.len() != y_pred.len() {
            return Err(EvalError::LengthMismatch { y_true: y_true.len(), y_pred: y_pred.len() });
        }
        check_finite("y_true", y_true)?;
        check_finite("y_pred", y_pred)?;
        let n = y_true.len();
        if n < 2 {
            return Err(EvalError::NotEnoughRows { rows: n });
        }
        let nf = n as f64;
        let pairs = || y_true.iter().zip(y_pred);

        // sklearn: np.average((y_true - y_pred) ** 2); r2's numerator is the same squares summed
        let squares: Vec<f64> = pairs()
            .map(|(t, p)| {
                let d = t - p;
                d * d
            })
            .collect();
        let ss_res = pairwise_sum(&squares);
        let rmse = (ss_res / nf).sqrt();

        // sklearn: np.average(np.abs(y_pred - y_true))
        let abs_err: Vec<f64> = pairs().map(|(t, p)| (p - t).abs()).collect();
        let mae = pairwise_sum(&abs_err) / nf;

        // sklearn: np.sum((y_true - np.average(y_true)) ** 2)
        let mean = pairwise_sum(y_true) / nf;
        let dev: Vec<f64> = y_true
            .iter()
            .map(|t| {
                let d = t - mean;
                d * d
            })
            .collect();
        let ss_tot = pairwise_sum(&dev);
        let r2 = if ss_res == 0.0 {
            1.0
        } else if ss_tot == 0.0 {
            0.0
        } else {
            1.0 - ss_res / ss_tot
        };

        // sklearn: np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), eps)
        let ape: Vec<f64> = abs_err.iter().zip(y_true).map(|(e, t)| e / t.abs().max(f64::EPSILON)).collect();
        let mape = pairwise_sum(&ape) / nf;

        let sape: Vec<f64> = abs_err
            .iter()
            .zip(pairs())
            .map(|(e, (t, p))| {
                let denom = t.abs() + p.abs();
                if denom == 0.0 { 0.0 } else { 2.0 * e / denom }
            })
            .collect();
        let smape = pairwise_sum(&sape) / nf;

        Ok(RegressionMetrics { rmse, mae, r2, mape, smape })
    }

    /// The value of one metric.
    pub fn get(&self, name: MetricName) -> f64 {
        match name {
            MetricName::Rmse => self.rmse,
            MetricName::Mae => self.mae,
            MetricName::R2 => self.r2,
            MetricName::Mape => self.mape,
            MetricName::Smape => self.smape,
        }
    }

    /// Every metric with its name, in [`MetricName::ALL`] order (for logging and tables).
    pub fn iter(&self) -> [(MetricName, f64); 5] {
        MetricName::ALL.map(|m| (m, self.get(m)))
    }
}

fn check_finite(input: &'static str, values: &[f64]) -> Result<(), EvalError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(EvalError::NonFinite { input, index, value: values[index] }),
        None => Ok(()),
    }
}

/// The sum of `values` by numpy's pairwise algorithm (`pairwise_sum_DOUBLE`): blocks of at most 128 values summed
/// with eight interleaved accumulators, halves (cut at a multiple of 8) summed recursively. `np.sum` of a
/// contiguous float64 array returns exactly this.
pub fn pairwise_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        let mut res = 0.0;
        for v in values {
            res += v;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += values[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&values[..n2]) + pairwise_sum(&values[n2..])
    }
}
