//! `scale`: `(x - center) / scale` per numeric column, with the center and scale of scikit-learn's scalers learned
//! from the training rows:
//! - `standard` (`StandardScaler`): the mean and the population standard deviation (ddof = 0);
//! - `minmax` (`MinMaxScaler`, feature range [0, 1]): the minimum and the range `max - min`;
//! - `robust` (`RobustScaler`): the median and the interquartile range `q75 - q25`, numpy's linear quantiles.
//!
//! A constant column gets the scale 1, as in scikit-learn (`standard`: a variance within rounding error of 0 by
//! scikit-learn's `_is_constant_feature` test; `minmax` and `robust`: a range below `10 * f64::EPSILON`), so its
//! training values become 0. NaN is ignored when fitting and stays NaN; an infinite training value is an error.
//! Scoring values outside the training range are not clipped (scikit-learn's default).

use serde::{Deserialize, Serialize};

use super::{At, Columns, Draft, resolve, stats, validate_columns};
use crate::FeatureError;
use kiln_domain::{Column, Frame};

/// `- scale: {columns: [tenure, MonthlyCharges], method: standard}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    pub columns: Columns,
    /// columns left out of a `numeric` selector
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub method: ScaleMethod,
}

/// Which scikit-learn scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMethod {
    /// mean and population standard deviation (`StandardScaler`)
    Standard,
    /// minimum and range, to [0, 1] on the training rows (`MinMaxScaler`)
    #[serde(rename = "minmax")]
    MinMax,
    /// median and interquartile range (`RobustScaler`)
    Robust,
}

/// A fitted `scale` step: `(x - center) / scale` per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedScale {
    pub method: ScaleMethod,
    pub columns: Vec<ScaledColumn>,
}

/// One scaled column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaledColumn {
    pub name: String,
    /// the mean, minimum or median of the training values
    pub center: f64,
    /// the standard deviation, range or interquartile range of the training values; 1 for a constant column
    pub scale: f64,
}

impl ScaleSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        validate_columns(&self.columns, &self.exclude, at)
    }

    pub(crate) fn fit(&self, train: &Frame, at: At) -> Result<FittedScale, FeatureError> {
        let names = resolve(&self.columns, &self.exclude, train, at)?;
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let values = at.numeric(train, &name)?;
            if let Some(row) = values.iter().position(|v| v.is_infinite()) {
                return Err(at.fit_error_at(&name, row, "it holds an infinite value"));
            }
            let observed: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
            if observed.is_empty() {
                return Err(at.fit_error(&name, "it has no non-missing value in the training rows"));
            }
            let (center, scale) = match self.method {
                ScaleMethod::Standard => standard(&observed),
                ScaleMethod::MinMax => {
                    let sorted = stats::sorted(&observed);
                    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
                    (min, nonzero(max - min))
                }
                ScaleMethod::Robust => {
                    let sorted = stats::sorted(&observed);
                    let iqr = stats::quantile(&sorted, 0.75) - stats::quantile(&sorted, 0.25);
                    (stats::median(&sorted), nonzero(iqr))
                }
            };
            columns.push(ScaledColumn { name, center, scale });
        }
        Ok(FittedScale { method: self.method, columns })
    }
}

/// The mean and the standard deviation, 1 when scikit-learn's `_is_constant_feature` calls the variance zero:
/// `var <= n eps var + (n mean eps)^2`.
fn standard(values: &[f64]) -> (f64, f64) {
    let mean = stats::mean(values);
    let var = stats::variance(values, mean);
    let n = values.len() as f64;
    let eps = f64::EPSILON;
    let bound = n * eps * var + (n * mean * eps).powi(2);
    (mean, if var <= bound { 1.0 } else { var.sqrt() })
}

/// scikit-learn's `_handle_zeros_in_scale`: a scale below `10 eps` becomes 1.
fn nonzero(scale: f64) -> f64 {
    if scale < 10.0 * f64::EPSILON { 1.0 } else { scale }
}

impl FittedScale {
    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let mut scaled = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let values = at.numeric(&frame, &c.name)?;
            scaled.push(Column::Numeric(values.iter().map(|&x| (x - c.center) / c.scale).collect()));
        }
        let mut draft = Draft::of(frame);
        for (c, column) in self.columns.iter().zip(scaled) {
            draft.set(&c.name, column);
        }
        draft.finish(at)
    }
}
