//! `one_hot` and `ordinal`: categorical columns to numbers, with the categories of the training rows sorted as
//! scikit-learn sorts strings (by code point).
//!
//! `one_hot` (`OneHotEncoder`) replaces a column in place by one 0/1 column per category, named
//! `<column>_<category>`. A missing value is a category of its own, sorted last and named `<column>_nan`, as
//! scikit-learn does with pandas' missing values. `drop: first` leaves out the first category's column,
//! `drop: if_binary` does so only for columns with exactly two categories. An unseen category (a missing value
//! too, when the training rows had none) is an error under `unknown: error` (the default, as in scikit-learn) and
//! an all-zero row under `unknown: ignore`.
//!
//! `ordinal` (`OrdinalEncoder`) replaces a column in place by the code `0..k-1` of its category. A missing value
//! stays missing (NaN) and is not a category; unlike scikit-learn, this holds also when the training rows had no
//! missing value (scikit-learn then treats it as unknown). An unseen category is an error under `unknown: error`
//! (the default) and `unknown_value` under `unknown: use_encoded_value`.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::values::float_option;
use super::{At, Columns, Draft, resolve, validate_columns};
use crate::FeatureError;
use kiln_domain::{Column, Frame};

/// `- one_hot: {columns: [Contract, PaymentMethod], unknown: ignore, drop: if_binary}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHotSpec {
    pub columns: Columns,
    /// columns left out of a `categorical` selector
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub unknown: OneHotUnknown,
    #[serde(default)]
    pub drop: OneHotDrop,
}

/// What `one_hot` does with a category the training rows did not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneHotUnknown {
    /// refuse the frame ([`FeatureError::UnknownCategory`])
    #[default]
    Error,
    /// encode the row as all zeros
    Ignore,
}

/// Which indicator column `one_hot` leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneHotDrop {
    /// keep every category's column
    #[default]
    None,
    /// leave out the first category's column of every column
    First,
    /// leave out the first category's column of columns with exactly two categories
    IfBinary,
}

/// A fitted `one_hot` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedOneHot {
    pub unknown: OneHotUnknown,
    pub columns: Vec<OneHotColumn>,
}

/// One encoded column: its sorted training categories (`None`, the missing value, last) and whether the first
/// one's indicator is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHotColumn {
    pub name: String,
    pub categories: Vec<Option<String>>,
    pub drop_first: bool,
}

impl OneHotColumn {
    /// The names of the indicator columns, in order.
    pub fn output_names(&self) -> Vec<String> {
        let skip = usize::from(self.drop_first);
        self.categories.iter().skip(skip).map(|c| format!("{}_{}", self.name, c.as_deref().unwrap_or("nan"))).collect()
    }
}

/// `- ordinal: {columns: [Contract], unknown: use_encoded_value, unknown_value: -1}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdinalSpec {
    pub columns: Columns,
    /// columns left out of a `categorical` selector
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub unknown: OrdinalUnknown,
    /// the code of an unseen category under `unknown: use_encoded_value`: an integer that is not a code of a
    /// training category (e.g. -1), or `nan`
    #[serde(default, skip_serializing_if = "Option::is_none", with = "float_option")]
    pub unknown_value: Option<f64>,
}

/// What `ordinal` does with a category the training rows did not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrdinalUnknown {
    /// refuse the frame ([`FeatureError::UnknownCategory`])
    #[default]
    Error,
    /// encode it as `unknown_value`
    UseEncodedValue,
}

/// A fitted `ordinal` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedOrdinal {
    pub unknown: OrdinalUnknown,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "float_option")]
    pub unknown_value: Option<f64>,
    pub columns: Vec<OrdinalColumn>,
}

/// One encoded column: category `categories[i]` becomes `i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdinalColumn {
    pub name: String,
    pub categories: Vec<String>,
}

/// The sorted distinct non-missing labels of a column, and whether it has a missing value.
fn categories(values: &[Option<String>]) -> (Vec<String>, bool) {
    let labels: BTreeSet<&str> = values.iter().flatten().map(String::as_str).collect();
    (labels.into_iter().map(str::to_string).collect(), values.iter().any(Option::is_none))
}

impl OneHotSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        validate_columns(&self.columns, &self.exclude, at)
    }

    pub(crate) fn fit(&self, train: &Frame, at: At) -> Result<FittedOneHot, FeatureError> {
        let names = resolve(&self.columns, &self.exclude, train, at)?;
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let (labels, has_missing) = categories(at.categorical(train, &name)?);
            let mut categories: Vec<Option<String>> = labels.into_iter().map(Some).collect();
            if has_missing {
                categories.push(None);
            }
            let drop_first = match self.drop {
                OneHotDrop::None => false,
                OneHotDrop::First => true,
                OneHotDrop::IfBinary => categories.len() == 2,
            };
            columns.push(OneHotColumn { name, categories, drop_first });
        }
        Ok(FittedOneHot { unknown: self.unknown, columns })
    }
}

impl FittedOneHot {
    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let n = frame.n_rows();
        let mut replacements = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let values = at.categorical(&frame, &c.name)?;
            let index: HashMap<Option<&str>, usize> =
                c.categories.iter().enumerate().map(|(i, cat)| (cat.as_deref(), i)).collect();
            let skip = usize::from(c.drop_first);
            let mut indicators = vec![vec![0.0; n]; c.categories.len().saturating_sub(skip)];
            for (row, value) in values.iter().enumerate() {
                match index.get(&value.as_deref()) {
                    Some(&j) if j >= skip => indicators[j - skip][row] = 1.0,
                    Some(_) => {}
                    None if self.unknown == OneHotUnknown::Ignore => {}
                    None => {
                        return Err(FeatureError::UnknownCategory {
                            step: at.step(),
                            column: c.name.clone(),
                            category: value.clone(),
                            row,
                            accept: "ignore",
                        });
                    }
                }
            }
            let replacement: Vec<(String, Column)> =
                c.output_names().into_iter().zip(indicators.into_iter().map(Column::Numeric)).collect();
            replacements.push(replacement);
        }
        let mut draft = Draft::of(frame);
        for (c, replacement) in self.columns.iter().zip(replacements) {
            draft.splice(&c.name, replacement);
        }
        draft.finish(at)
    }
}

impl OrdinalSpec {
    pub(crate) fn validate(&self, at: At) -> Result<(), FeatureError> {
        validate_columns(&self.columns, &self.exclude, at)?;
        match (self.unknown, self.unknown_value) {
            (OrdinalUnknown::UseEncodedValue, None) => {
                Err(at.spec("unknown_value", "is required with `unknown: use_encoded_value`"))
            }
            (OrdinalUnknown::UseEncodedValue, Some(v)) if !(v.is_nan() || (v.is_finite() && v.fract() == 0.0)) => {
                Err(at.spec("unknown_value", format!("must be an integer or `nan`, got {v}")))
            }
            (OrdinalUnknown::Error, Some(_)) => {
                Err(at.spec("unknown_value", "applies only to `unknown: use_encoded_value`"))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn fit(&self, train: &Frame, at: At) -> Result<FittedOrdinal, FeatureError> {
        let names = resolve(&self.columns, &self.exclude, train, at)?;
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let (categories, _) = categories(at.categorical(train, &name)?);
            if let (OrdinalUnknown::UseEncodedValue, Some(v)) = (self.unknown, self.unknown_value)
                && v >= 0.0
                && v < categories.len() as f64
            {
                return Err(at.spec(
                    "unknown_value",
                    format!(
                        "{v} is the code of the category '{}' of column '{name}'; use a negative value or `nan`",
                        categories[v as usize]
                    ),
                ));
            }
            columns.push(OrdinalColumn { name, categories });
        }
        Ok(FittedOrdinal { unknown: self.unknown, unknown_value: self.unknown_value, columns })
    }
}

impl FittedOrdinal {
    pub(crate) fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        let mut encoded = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let values = at.categorical(&frame, &c.name)?;
            let index: HashMap<&str, usize> =
                c.categories.iter().enumerate().map(|(i, cat)| (cat.as_str(), i)).collect();
            let mut codes = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                let Some(label) = value else {
                    codes.push(f64::NAN);
                    continue;
                };
                match (index.get(label.as_str()), self.unknown, self.unknown_value) {
                    (Some(&i), _, _) => codes.push(i as f64),
                    (None, OrdinalUnknown::UseEncodedValue, Some(v)) => codes.push(v),
                    (None, _, _) => {
                        return Err(FeatureError::UnknownCategory {
                            step: at.step(),
                            column: c.name.clone(),
                            category: Some(label.clone()),
                            row,
                            accept: "use_encoded_value",
                        });
                    }
                }
            }
            encoded.push(Column::Numeric(codes));
        }
        let mut draft = Draft::of(frame);
        for (c, column) in self.columns.iter().zip(encoded) {
            draft.set(&c.name, column);
        }
        draft.finish(at)
    }
}
