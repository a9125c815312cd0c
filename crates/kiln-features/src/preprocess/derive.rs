//! The stateless steps, whose spec is their fitted state: `bin` (labelled intervals, `pandas.cut`), `ratio` and
//! `product` (derived numeric columns) and `drop`. `bin`, `ratio` and `product` append their new column at the end
//! of the frame; its name must be new.

use serde::{Deserialize, Serialize};

use super::values::float_vec;
use super::{At, Draft, check_names};
use crate::FeatureError;
use kiln_domain::{Column, Frame};

/// `- bin: {column: tenure, edges: [0, 12, 24, 48, inf], labels: [New, Medium, Long, Very_Long], into: tenure_group}`
///
/// `pandas.cut(x, edges, labels=labels, right=right, include_lowest=include_lowest)`: the label of the interval
/// `(edges[i], edges[i+1]]` (`[edges[i], edges[i+1])` with `right: false`), written to the new categorical column
/// `into`. A value outside the edges (with `right: true`, the lowest edge itself too, unless `include_lowest`) or
/// a missing value gives a missing label. Edges increase strictly; write infinity as `inf` / `-inf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinSpec {
    /// the numeric column to bin
    pub column: String,
    #[serde(with = "float_vec")]
    pub edges: Vec<f64>,
    /// one label per interval, `edges.len() - 1` of them
    pub labels: Vec<String>,
    /// the name of the new categorical column
    pub into: String,
    /// intervals closed on the right (pandas' default) or on the left
    #[serde(default = "default_right")]
    pub right: bool,
    /// with `right: true`, also put the lowest edge itself into the first interval
    #[serde(default)]
    pub include_lowest: bool,
}

fn default_right() -> bool {
    true
}

/// `- ratio: {numerator: TotalCharges, denominator: tenure, into: charges_per_month}`: `numerator / denominator`;
/// a zero denominator gives NaN (not an infinity), as does a missing operand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    pub numerator: String,
    pub denominator: String,
    pub into: String,
}

/// `- product: {columns: [tenure, MonthlyCharges], into: expected_total}`: the product of two or more numeric
/// columns; a missing operand gives NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    pub columns: Vec<String>,
    pub into: String,
}

/// `- drop: {columns: [customerID]}`: removes the columns, which must exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropSpec {
    pub columns: Vec<String>,
}

fn non_empty(value: &str, field: &str, at: At) -> Result<(), FeatureError> {
    if value.is_empty() { Err(at.spec(field, "must not be empty")) } else { Ok(()) }
}

impl BinSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        non_empty(&self.column, "column", at)?;
        non_empty(&self.into, "into", at)?;
        if self.edges.len() < 2 {
            return Err(at.spec("edges", format!("needs at least 2 edges, got {}", self.edges.len())));
        }
        let edge = |i: usize| format!("{}[{i}]", at.field("edges"));
        if let Some(i) = self.edges.iter().position(|e| e.is_nan()) {
            return Err(FeatureError::spec(edge(i), "must be a number, got nan"));
        }
        if let Some(i) = (1..self.edges.len()).find(|&i| self.edges[i] <= self.edges[i - 1]) {
            return Err(FeatureError::spec(
                edge(i),
                format!("edges must increase strictly, but {} follows {}", self.edges[i], self.edges[i - 1]),
            ));
        }
        if self.labels.len() != self.edges.len() - 1 {
            return Err(at.spec(
                "labels",
                format!(
                    "needs one label per interval: {} edges make {} intervals, got {} labels",
                    self.edges.len(),
                    self.edges.len() - 1,
                    self.labels.len()
                ),
            ));
        }
        check_names(&self.labels, &at.field("labels"))
    }

    /// The label index of `x`, pandas' `searchsorted` rule.
    fn interval(&self, x: f64) -> Option<usize> {
        if x.is_nan() {
            return None;
        }
        let mut id =
            if self.right { self.edges.partition_point(|&e| e < x) } else { self.edges.partition_point(|&e| e <= x) };
        if self.include_lowest && x == self.edges[0] {
            id = 1;
        }
        (id > 0 && id < self.edges.len()).then(|| id - 1)
    }

    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let values = at.numeric(&frame, &self.column)?;
        let labels = values.iter().map(|&x| self.interval(x).map(|i| self.labels[i].clone())).collect();
        let mut draft = Draft::of(frame);
        draft.push(self.into.clone(), Column::Categorical(labels));
        draft.finish(at)
    }
}

impl RatioSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        non_empty(&self.numerator, "numerator", at)?;
        non_empty(&self.denominator, "denominator", at)?;
        non_empty(&self.into, "into", at)
    }

    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let num = at.numeric(&frame, &self.numerator)?;
        let den = at.numeric(&frame, &self.denominator)?;
        let ratio = num.iter().zip(den).map(|(&a, &b)| if b == 0.0 { f64::NAN } else { a / b }).collect();
        let mut draft = Draft::of(frame);
        draft.push(self.into.clone(), Column::Numeric(ratio));
        draft.finish(at)
    }
}

impl ProductSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        check_names(&self.columns, &at.field("columns"))?;
        if self.columns.len() < 2 {
            return Err(at.spec("columns", format!("needs at least 2 columns, got {}", self.columns.len())));
        }
        non_empty(&self.into, "into", at)
    }

    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let mut product = vec![1.0; frame.n_rows()];
        for name in &self.columns {
            for (p, &x) in product.iter_mut().zip(at.numeric(&frame, name)?) {
                *p *= x;
            }
        }
        let mut draft = Draft::of(frame);
        draft.push(self.into.clone(), Column::Numeric(product));
        draft.finish(at)
    }
}

impl DropSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        check_names(&self.columns, &at.field("columns"))
    }

    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        for name in &self.columns {
            at.column(&frame, name)?;
        }
        let mut draft = Draft::of(frame);
        for name in &self.columns {
            draft.remove(name);
        }
        draft.finish(at)
    }
}
