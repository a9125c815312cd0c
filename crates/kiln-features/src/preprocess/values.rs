//! The serde forms the steps share: the column selector, the fill value of `impute`, and floats that may be infinite
//! or NaN. JSON has no infinity or NaN (serde_json writes them as `null`, and kiln's config passes YAML through
//! JSON's data model, so even YAML's `.inf` arrives as `null`), so such floats are written as the strings `inf`,
//! `-inf` and `nan` and read back from them.

use std::fmt;

use serde::de::{self, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which columns a step applies to: a list of names (`columns: [tenure, MonthlyCharges]`), or every column of one
/// type (`columns: numeric`, `columns: categorical`) of the data the step sees, in frame order, less the step's
/// `exclude` list. A type selector is resolved when the step is fitted, and the fitted step stores the names it
/// chose, so scoring data with extra columns encodes exactly the training columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Columns {
    /// exactly these columns, in this order
    Named(Vec<String>),
    /// every numeric column, less `exclude`
    Numeric,
    /// every categorical column, less `exclude`
    Categorical,
}

impl Serialize for Columns {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Columns::Named(names) => names.serialize(serializer),
            Columns::Numeric => serializer.serialize_str("numeric"),
            Columns::Categorical => serializer.serialize_str("categorical"),
        }
    }
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Columns, D::Error> {
        struct ColumnsVisitor;

        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = Columns;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of column names, `numeric` or `categorical`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Columns, E> {
                match v {
                    "numeric" => Ok(Columns::Numeric),
                    "categorical" => Ok(Columns::Categorical),
                    other => Err(E::invalid_value(Unexpected::Str(other), &self)),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Columns, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Columns::Named(names))
            }
        }

        deserializer.deserialize_any(ColumnsVisitor)
    }
}

/// A fill value: a number for a numeric column, a string for a categorical one (`value: 0`, `value: missing`).
#[derive(Debug, Clone, PartialEq)]
pub enum FillValue {
    /// for a numeric column
    Number(f64),
    /// for a categorical column
    Text(String),
}

impl FillValue {
    /// `number` or `string`, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            FillValue::Number(_) => "a number",
            FillValue::Text(_) => "a string",
        }
    }
}

impl Serialize for FillValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FillValue::Number(v) => serializer.serialize_f64(*v),
            FillValue::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for FillValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FillValue, D::Error> {
        struct FillVisitor;

        impl Visitor<'_> for FillVisitor {
            type Value = FillValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FillValue, E> {
                Ok(FillValue::Number(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FillValue, E> {
                Ok(FillValue::Number(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FillValue, E> {
                Ok(FillValue::Number(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<FillValue, E> {
                Ok(FillValue::Text(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FillValue, E> {
                Err(E::invalid_type(Unexpected::Bool(v), &self))
            }
        }

        deserializer.deserialize_any(FillVisitor)
    }
}

/// An f64 that serializes infinity and NaN as the strings `inf`, `-inf` and `nan`.
struct ExtFloat(f64);

impl Serialize for ExtFloat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            serializer.serialize_str("nan")
        } else if v == f64::INFINITY {
            serializer.serialize_str("inf")
        } else if v == f64::NEG_INFINITY {
            serializer.serialize_str("-inf")
        } else {
            serializer.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for ExtFloat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ExtFloat, D::Error> {
        struct FloatVisitor;

        impl Visitor<'_> for FloatVisitor {
            type Value = ExtFloat;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, `inf`, `-inf` or `nan`")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExtFloat, E> {
                Ok(ExtFloat(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtFloat, E> {
                Ok(ExtFloat(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExtFloat, E> {
                Ok(ExtFloat(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtFloat, E> {
                match v.to_ascii_lowercase().as_str() {
                    "inf" | "+inf" | ".inf" | "+.inf" | "infinity" | "+infinity" => Ok(ExtFloat(f64::INFINITY)),
                    "-inf" | "-.inf" | "-infinity" => Ok(ExtFloat(f64::NEG_INFINITY)),
                    "nan" | ".nan" => Ok(ExtFloat(f64::NAN)),
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }

        deserializer.deserialize_any(FloatVisitor)
    }
}

/// `#[serde(with = ...)]` for a `Vec<f64>` whose values may be infinite or NaN.
pub(crate) mod float_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::ExtFloat;

    pub(crate) fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(|&v| ExtFloat(v)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<ExtFloat>::deserialize(deserializer)?.into_iter().map(|v| v.0).collect())
    }
}

/// `#[serde(with = ...)]` for an `Option<f64>` whose value may be infinite or NaN.
pub(crate) mod float_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ExtFloat;

    pub(crate) fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(ExtFloat).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<ExtFloat>::deserialize(deserializer)?.map(|v| v.0))
    }
}
