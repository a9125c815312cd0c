//! The one metric vocabulary of kiln: [`Metric`], every metric a user can name in YAML (a selector's `scoring:`,
//! later a tuning objective), with its direction, its [`Task`] and how it is computed from labels and predictions.
//!
//! Key decision: a [`Metric`] is a regression [`MetricName`] or a [`ClassificationMetricName`], so each name, its
//! direction and its computation are written once, beside the metric structs that compute them; this module only
//! joins the two. It adds no computation of its own: [`Metric::compute`] is [`RegressionMetrics::compute`] or
//! [`ClassificationMetrics::compute`] and picks one field.

use std::fmt;

use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{ClassificationMetricName, ClassificationMetrics, EvalError, MetricName, RegressionMetrics};

/// The kind of supervised task; it decides which metrics make sense and how rows are stratified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// a numeric target
    Regression,
    /// a class label (each distinct value of the target is a class)
    Classification,
}

impl Task {
    /// The snake_case name, as in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Regression => "regression",
            Task::Classification => "classification",
        }
    }
}

/// A metric kiln computes, named as in YAML (`rmse`, `roc_auc`, ...). Serialized as that name; an unknown name is an
/// error that names it and lists [`Metric::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// a metric of numeric predictions
    Regression(MetricName),
    /// a metric of probabilities of class 1 against 0/1 labels
    Classification(ClassificationMetricName),
}

const N_METRICS: usize = MetricName::ALL.len() + ClassificationMetricName::ALL.len();

impl Metric {
    /// Every metric: the regression ones, then the classification ones, each in its table order.
    pub const ALL: [Metric; N_METRICS] = {
        let mut all = [Metric::Regression(MetricName::Rmse); N_METRICS];
        let mut i = 0;
        while i < MetricName::ALL.len() {
            all[i] = Metric::Regression(MetricName::ALL[i]);
            i += 1;
        }
        let mut j = 0;
        while j < ClassificationMetricName::ALL.len() {
            all[i + j] = Metric::Classification(ClassificationMetricName::ALL[j]);
            j += 1;
        }
        all
    };

    /// The names of [`Metric::ALL`], in the same order (the values a YAML file may write).
    pub const NAMES: [&'static str; N_METRICS] = {
        let mut names = [""; N_METRICS];
        let mut i = 0;
        while i < N_METRICS {
            names[i] = Metric::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// The stable snake_case name, as in YAML and in MLflow metric keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Regression(m) => m.as_str(),
            Metric::Classification(m) => m.as_str(),
        }
    }

    /// Parses a snake_case name (exact, as in YAML).
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The task the metric belongs to.
    pub fn task(self) -> Task {
        match self {
            Metric::Regression(_) => Task::Regression,
            Metric::Classification(_) => Task::Classification,
        }
    }

    /// Whether a larger value is better: r2 and the classification scores; the error metrics and log_loss are
    /// better when lower.
    pub fn higher_is_better(self) -> bool {
        match self {
            Metric::Regression(m) => m.higher_is_better(),
            Metric::Classification(m) => m.higher_is_better(),
        }
    }

    /// Whether `a` is strictly better than `b` for this metric (a tie is not better).
    pub fn is_better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() { a > b } else { a < b }
    }

    /// The metric of `y_pred` against `y_true`, in its natural units (an rmse, not its negative): for a regression
    /// metric, [`RegressionMetrics::compute`]; for a classification metric, `y_pred` holds probabilities of class 1
    /// and [`ClassificationMetrics::compute`] predicts 1 from 0.5 up.
    ///
    /// # Errors
    /// The [`EvalError`] of the computation (lengths, too few rows, a non-finite value, a label other than 0/1, a
    /// single class for the threshold-free classification metrics).
    pub fn compute(self, y_true: &[f64], y_pred: &[f64]) -> Result<f64, EvalError> {
        Ok(match self {
            Metric::Regression(m) => RegressionMetrics::compute(y_true, y_pred)?.get(m),
            Metric::Classification(m) => ClassificationMetrics::compute(y_true, y_pred, 0.5)?.get(m),
        })
    }
}

impl From<MetricName> for Metric {
    fn from(m: MetricName) -> Metric {
        Metric::Regression(m)
    }
}

impl From<ClassificationMetricName> for Metric {
    fn from(m: ClassificationMetricName) -> Metric {
        Metric::Classification(m)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Serialized and deserialized as a unit variant named `as_str()`, exactly as a derived enum of the twelve names
// would be: the same YAML and JSON, and the same `unknown variant` error listing every name.
impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index = Metric::ALL.iter().position(|m| m == self).unwrap_or_default();
        s.serialize_unit_variant("Metric", index as u32, self.as_str())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        d.deserialize_enum("Metric", &Metric::NAMES, MetricVisitor)
    }
}

struct MetricVisitor;

impl<'de> Visitor<'de> for MetricVisitor {
    type Value = Metric;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metric name")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Metric, A::Error> {
        let (MetricTag(metric), variant) = data.variant()?;
        variant.unit_variant()?;
        Ok(metric)
    }
}

/// The variant name of a [`Metric`], read as an identifier.
struct MetricTag(Metric);

impl<'de> Deserialize<'de> for MetricTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricTag, D::Error> {
        d.deserialize_identifier(MetricTagVisitor)
    }
}

struct MetricTagVisitor;

impl Visitor<'_> for MetricTagVisitor {
    type Value = MetricTag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricTag, E> {
        Metric::parse(v).map(MetricTag).ok_or_else(|| E::unknown_variant(v, &Metric::NAMES))
    }
}
