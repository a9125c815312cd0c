//! `impute`: fills missing values with a statistic of the training rows, as scikit-learn's `SimpleImputer`
//! (`mean`, `median`, `most_frequent`, `constant`), or carries the last seen value forward (`forward_fill`).
//!
//! `mean` and `median` take numeric columns only; `most_frequent` and `constant` take numeric and categorical ones
//! (ties of `most_frequent` go to the smallest value, as in scikit-learn). A training column with no value, or with
//! an infinite one, cannot be fitted (scikit-learn drops the first and refuses the second). `forward_fill` is for
//! time-ordered rows: it learns the last non-missing training value of each column and starts the carry with it,
//! so scoring rows that continue the training rows and begin with a gap are filled from the training data. The
//! carry starts with that value for any frame, the training frame included, where it fills only a leading gap.

use serde::{Deserialize, Serialize};

use super::values::FillValue;
use super::{At, Columns, Draft, resolve, stats, validate_columns};
use crate::FeatureError;
use kiln_domain::{Column, Frame};

/// `- impute: {columns: [TotalCharges], strategy: median}`; `strategy: constant` needs `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImputeSpec {
    pub columns: Columns,
    /// columns left out of a `numeric` / `categorical` selector
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub strategy: ImputeStrategy,
    /// the fill value of `strategy: constant`: a number for numeric columns, a string for categorical ones
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<FillValue>,
}

/// How missing values are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputeStrategy {
    /// the mean of the training values (numeric)
    Mean,
    /// the median of the training values, the mean of the two middle ones for an even count (numeric)
    Median,
    /// the most frequent training value, the smallest among ties
    MostFrequent,
    /// the spec's `value`
    Constant,
    /// the last non-missing value before the row; the last training value before the first row
    ForwardFill,
}

impl ImputeStrategy {
    /// The snake_case name, as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ImputeStrategy::Mean => "mean",
            ImputeStrategy::Median => "median",
            ImputeStrategy::MostFrequent => "most_frequent",
            ImputeStrategy::Constant => "constant",
            ImputeStrategy::ForwardFill => "forward_fill",
        }
    }
}

/// A fitted `impute` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedImpute {
    pub strategy: ImputeStrategy,
    pub columns: Vec<ImputedColumn>,
}

/// One imputed column and its fill value (for `forward_fill`: the last training value, `None` when the training
/// column had none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImputedColumn {
    pub name: String,
    pub value: Option<FillValue>,
}

impl ImputeSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        validate_columns(&self.columns, &self.exclude, at)?;
        match (self.strategy, &self.value) {
            (ImputeStrategy::Constant, None) => Err(at.spec("value", "is required with `strategy: constant`")),
            (ImputeStrategy::Constant, Some(FillValue::Number(v))) if !v.is_finite() => {
                Err(at.spec("value", format!("must be a finite number, got {v}")))
            }
            (ImputeStrategy::Constant, Some(_)) | (_, None) => Ok(()),
            (strategy, Some(_)) => Err(at.spec(
                "value",
                format!("applies only to `strategy: constant`, not to `strategy: {}`", strategy.as_str()),
            )),
        }
    }

    pub(crate) fn fit(&self, train: &Frame, at: At) -> Result<FittedImpute, FeatureError> {
        let names = resolve(&self.columns, &self.exclude, train, at)?;
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let value = self.fit_column(at.column(train, &name)?, &name, at)?;
            columns.push(ImputedColumn { name, value });
        }
        Ok(FittedImpute { strategy: self.strategy, columns })
    }

    fn fit_column(&self, column: &Column, name: &str, at: At) -> Result<Option<FillValue>, FeatureError> {
        let no_value = || at.fit_error(name, "it has no non-missing value in the training rows");
        let value = match (self.strategy, column) {
            (_, Column::Timestamp(_)) => return Err(at.wrong_type(name, "numeric or categorical", column)),
            (ImputeStrategy::Mean | ImputeStrategy::Median, Column::Categorical(_)) => {
                return Err(at.wrong_type(name, "numeric", column));
            }
            (ImputeStrategy::Mean, Column::Numeric(v)) => FillValue::Number(stats::mean(&observed(v, name, at)?)),
            (ImputeStrategy::Median, Column::Numeric(v)) => {
                FillValue::Number(stats::median(&stats::sorted(&observed(v, name, at)?)))
            }
            (ImputeStrategy::MostFrequent, Column::Numeric(v)) => {
                FillValue::Number(stats::mode(&stats::sorted(&observed(v, name, at)?)))
            }
            (ImputeStrategy::MostFrequent, Column::Categorical(v)) => {
                let mode = stats::mode_label(v.iter().flatten().map(String::as_str)).ok_or_else(no_value)?;
                FillValue::Text(mode.to_string())
            }
            (ImputeStrategy::Constant, column) => {
                let value = self.value.clone().ok_or_else(|| at.spec("value", "is required"))?;
                let fits = matches!(
                    (&value, column),
                    (FillValue::Number(_), Column::Numeric(_)) | (FillValue::Text(_), Column::Categorical(_))
                );
                if !fits {
                    return Err(at.spec(
                        "value",
                        format!("is {}, but column '{name}' is {}", value.type_name(), column.kind().as_str()),
                    ));
                }
                value
            }
            (ImputeStrategy::ForwardFill, Column::Numeric(v)) => {
                return Ok(v.iter().rev().find(|x| !x.is_nan()).map(|&x| FillValue::Number(x)));
            }
            (ImputeStrategy::ForwardFill, Column::Categorical(v)) => {
                return Ok(v.iter().rev().flatten().next().map(|x| FillValue::Text(x.clone())));
            }
        };
        Ok(Some(value))
    }
}

/// The non-missing values of a training column; an infinite value or none at all is an error.
fn observed(values: &[f64], name: &str, at: At) -> Result<Vec<f64>, FeatureError> {
    if let Some(row) = values.iter().position(|v| v.is_infinite()) {
        return Err(at.fit_error_at(name, row, "it holds an infinite value"));
    }
    let out: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if out.is_empty() {
        return Err(at.fit_error(name, "it has no non-missing value in the training rows"));
    }
    Ok(out)
}

impl FittedImpute {
    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let mut fills = Vec::with_capacity(self.columns.len());
        for imputed in &self.columns {
            let name = imputed.name.as_str();
            let column = at.column(&frame, name)?;
            let filled = match (column, &imputed.value) {
                (Column::Timestamp(_), _) => return Err(at.wrong_type(name, "numeric or categorical", column)),
                (Column::Numeric(v), Some(FillValue::Number(fill))) => Column::Numeric(if self.forward() {
                    forward_fill_numeric(v, Some(*fill))
                } else {
                    v.iter().map(|&x| if x.is_nan() { *fill } else { x }).collect()
                }),
                (Column::Categorical(v), Some(FillValue::Text(fill))) => Column::Categorical(if self.forward() {
                    forward_fill_labels(v, Some(fill))
                } else {
                    v.iter().map(|x| Some(x.clone().unwrap_or_else(|| fill.clone()))).collect()
                }),
                (Column::Numeric(v), None) if self.forward() => Column::Numeric(forward_fill_numeric(v, None)),
                (Column::Categorical(v), None) if self.forward() => Column::Categorical(forward_fill_labels(v, None)),
                (column, None) => {
                    return Err(FeatureError::spec(
                        at.step(),
                        format!("the fitted step has no fill value for column '{name}' ({})", column.kind().as_str()),
                    ));
                }
                (column, Some(value)) => {
                    let expected = match value {
                        FillValue::Number(_) => "numeric",
                        FillValue::Text(_) => "categorical",
                    };
                    return Err(at.wrong_type(name, expected, column));
                }
            };
            fills.push(filled);
        }
        let mut draft = Draft::of(frame);
        for (imputed, filled) in self.columns.iter().zip(fills) {
            draft.set(&imputed.name, filled);
        }
        draft.finish(at)
    }

    /// For `forward_fill`: the last non-missing value of each column of `filled` (this step's output for one chunk)
    /// becomes the fill value of the next chunk's first rows; a column without one keeps its fill value.
    pub(crate) fn carry_forward(&mut self, filled: &Frame) {
        if !self.forward() {
            return;
        }
        for imputed in &mut self.columns {
            match filled.column(&imputed.name) {
                Ok(Column::Numeric(v)) => {
                    if let Some(&x) = v.iter().rev().find(|x| !x.is_nan()) {
                        imputed.value = Some(FillValue::Number(x));
                    }
                }
                Ok(Column::Categorical(v)) => {
                    if let Some(x) = v.iter().rev().flatten().next() {
                        imputed.value = Some(FillValue::Text(x.clone()));
                    }
                }
                Ok(Column::Timestamp(_)) | Err(_) => {}
            }
        }
    }

    fn forward(&self) -> bool {
        self.strategy == ImputeStrategy::ForwardFill
    }
}

fn forward_fill_numeric(values: &[f64], start: Option<f64>) -> Vec<f64> {
    let mut carry = start;
    values
        .iter()
        .map(|&x| {
            if x.is_nan() {
                carry.unwrap_or(f64::NAN)
            } else {
                carry = Some(x);
                x
            }
        })
        .collect()
}

fn forward_fill_labels(values: &[Option<String>], start: Option<&String>) -> Vec<Option<String>> {
    let mut carry = start;
    values
        .iter()
        .map(|x| match x {
            Some(label) => {
                carry = Some(label);
                Some(label.clone())
            }
            None => carry.cloned(),
        })
        .collect()
}
