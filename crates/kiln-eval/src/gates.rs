//! Registration gates: thresholds a trained model must meet before it is registered, and the overfitting check.
//!
//! Key decisions: every configured gate becomes one [`GateCheck`] with a readable detail, passed or not, so a
//! report shows all of them rather than stopping at the first failure. The overfit ratio compares an error metric,
//! `test / train`: rmse for regressors, log_loss for classifiers (1.0 when both are 0, infinite when only the train
//! value is 0); a ratio above [`OVERFIT_WARNING_RATIO`] is a warning. Comparisons are strict where "better" is asked
//! (a tie with the baseline does not beat it) and inclusive for thresholds (`max: {rmse: 0.01}` accepts 0.01).
//!
//! One [`GateSpec`] shape serves both tasks, generic over the metric names: `GateSpec` (=
//! `GateSpec<MetricName>`) for regressors, [`ClassificationGateSpec`] for classifiers, so a YAML key names only
//! metrics that the task has (`min: {roc_auc: 0.8}` does not parse as a regression gate).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::report::format_value;
use crate::{ClassificationMetricName, ClassificationMetrics, EvalError, MetricName, RegressionMetrics};

/// Above this `test rmse / train rmse` ratio, [`overfit`] says [`OverfitVerdict::Warning`].
pub const OVERFIT_WARNING_RATIO: f64 = 1.5;

/// The gates of an experiment; every field is optional, an empty spec passes everything. `M` is the metric name
/// type: [`MetricName`] for regressors (the default), [`ClassificationMetricName`] for classifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "M: Deserialize<'de> + Ord"))]
pub struct GateSpec<M = MetricName> {
    /// the model's test metric must be <= the value (`max: {rmse: 0.01}`, `max: {log_loss: 0.5}`)
    #[serde(default)]
    pub max: BTreeMap<M, f64>,
    /// the model's test metric must be >= the value (`min: {r2: 0.5}`, `min: {roc_auc: 0.8, f1: 0.5}`)
    #[serde(default)]
    pub min: BTreeMap<M, f64>,
    /// the model's test metric must be strictly better than the naive baseline's (persistence for forecasters,
    /// the majority class for classifiers)
    #[serde(default)]
    pub beat_baseline: Option<M>,
    /// `test / train` of the error metric (rmse for regressors, log_loss for classifiers) must be <= the value
    #[serde(default)]
    pub max_overfit_ratio: Option<f64>,
}

/// The gates of a classifier: `max: {log_loss: 0.5}`, `min: {roc_auc: 0.8, f1: 0.5}`, `beat_baseline: roc_auc`.
pub type ClassificationGateSpec = GateSpec<ClassificationMetricName>;

impl<M> Default for GateSpec<M> {
    fn default() -> Self {
        GateSpec { max: BTreeMap::new(), min: BTreeMap::new(), beat_baseline: None, max_overfit_ratio: None }
    }
}

impl<M> GateSpec<M> {
    /// True when no gate is configured.
    pub fn is_empty(&self) -> bool {
        self.max.is_empty() && self.min.is_empty() && self.beat_baseline.is_none() && self.max_overfit_ratio.is_none()
    }
}

impl<M: fmt::Display> GateSpec<M> {
    /// Checks the thresholds themselves: finite, and a positive overfit ratio.
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] naming the key (`gates.max.rmse`).
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |key: String, reason: String| Err(EvalError::InvalidSpec { key, reason });
        for (section, map) in [("max", &self.max), ("min", &self.min)] {
            for (metric, value) in map {
                if !value.is_finite() {
                    return bad(format!("gates.{section}.{metric}"), format!("must be a finite number, got {value}"));
                }
            }
        }
        if let Some(ratio) = self.max_overfit_ratio
            && !(ratio.is_finite() && ratio > 0.0)
        {
            return bad("gates.max_overfit_ratio".to_string(), format!("must be a positive number, got {ratio}"));
        }
        Ok(())
    }
}

/// The outcome of one gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateCheck {
    /// `max_rmse`, `min_r2`, `beat_baseline_rmse`, `max_overfit_ratio`
    pub name: String,
    pub passed: bool,
    /// what was compared, for example `test rmse 0.0051 <= 0.01`
    pub detail: String,
}

/// Every configured gate's outcome, in spec order: max, min, beat_baseline, max_overfit_ratio.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GateReport {
    pub checks: Vec<GateCheck>,
}

impl GateReport {
    /// True when every check passed (also when there is none).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<&GateCheck> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    /// `Ok` when every check passed.
    ///
    /// # Errors
    /// [`EvalError::GateFailed`] listing each failed check's detail.
    pub fn ensure_passed(&self) -> Result<(), EvalError> {
        let failures = self.failures();
        if failures.is_empty() {
            return Ok(());
        }
        let details = failures.iter().map(|c| c.detail.as_str()).collect::<Vec<_>>().join("; ");
        Err(EvalError::GateFailed { failed: failures.len(), total: self.checks.len(), details })
    }
}

/// Two values as text; when 6 significant digits would show them equal, the full values (so that a failed
/// `0.0100000001 <= 0.01` does not read `0.01 <= 0.01`).
fn pair(a: f64, b: f64) -> (String, String) {
    let (sa, sb) = (format_value(a), format_value(b));
    if sa == sb && a != b { (a.to_string(), b.to_string()) } else { (sa, sb) }
}

/// A metric name the gates can compare.
trait GateMetric: Copy + fmt::Display {
    fn higher_is_better(self) -> bool;
}

impl GateMetric for MetricName {
    fn higher_is_better(self) -> bool {
        MetricName::higher_is_better(self)
    }
}

impl GateMetric for ClassificationMetricName {
    fn higher_is_better(self) -> bool {
        ClassificationMetricName::higher_is_better(self)
    }
}

/// A set of metrics the gates can read, with the error metric of its overfit ratio.
trait Gated {
    type Name: GateMetric;
    /// the error metric of the overfit ratio
    const OVERFIT: &'static str;
    fn value(&self, name: Self::Name) -> f64;
    fn overfit_error(&self) -> f64;
}

impl Gated for RegressionMetrics {
    type Name = MetricName;
    const OVERFIT: &'static str = "rmse";
    fn value(&self, name: MetricName) -> f64 {
        self.get(name)
    }
    fn overfit_error(&self) -> f64 {
        self.rmse
    }
}

impl Gated for ClassificationMetrics {
    type Name = ClassificationMetricName;
    const OVERFIT: &'static str = "log_loss";
    fn value(&self, name: ClassificationMetricName) -> f64 {
        self.get(name)
    }
    fn overfit_error(&self) -> f64 {
        self.log_loss
    }
}

/// Checks `model_test` (and, for the overfit gate, `model_train`; for `beat_baseline`, `baseline_test`) against
/// every configured gate.
pub fn check_gates(
    spec: &GateSpec,
    model_test: &RegressionMetrics,
    model_train: &RegressionMetrics,
    baseline_test: &RegressionMetrics,
) -> GateReport {
    check(spec, model_test, model_train, baseline_test)
}

/// [`check_gates`] for a classifier: the thresholds and the baseline comparison on its test metrics, the overfit
/// ratio on log_loss (`test / train`).
pub fn check_classification_gates(
    spec: &ClassificationGateSpec,
    model_test: &ClassificationMetrics,
    model_train: &ClassificationMetrics,
    baseline_test: &ClassificationMetrics,
) -> GateReport {
    check(spec, model_test, model_train, baseline_test)
}

fn check<S: Gated>(spec: &GateSpec<S::Name>, model_test: &S, model_train: &S, baseline_test: &S) -> GateReport {
    let mut checks = Vec::new();
    for (&metric, &limit) in &spec.max {
        let value = model_test.value(metric);
        let passed = value <= limit;
        let (v, l) = pair(value, limit);
        let op = if passed { "<=" } else { ">" };
        checks.push(GateCheck { name: format!("max_{metric}"), passed, detail: format!("test {metric} {v} {op} {l}") });
    }
    for (&metric, &limit) in &spec.min {
        let value = model_test.value(metric);
        let passed = value >= limit;
        let (v, l) = pair(value, limit);
        let op = if passed { ">=" } else { "<" };
        checks.push(GateCheck { name: format!("min_{metric}"), passed, detail: format!("test {metric} {v} {op} {l}") });
    }
    if let Some(metric) = spec.beat_baseline {
        let (value, base) = (model_test.value(metric), baseline_test.value(metric));
        let higher = metric.higher_is_better();
        let passed = if higher { value > base } else { value < base };
        let (v, b) = pair(value, base);
        let detail = if passed {
            let op = if higher { ">" } else { "<" };
            format!("test {metric} {v} {op} baseline {b}")
        } else {
            let direction = if higher { "higher" } else { "lower" };
            format!("test {metric} {v} does not beat baseline {b} ({direction} is better)")
        };
        checks.push(GateCheck { name: format!("beat_baseline_{metric}"), passed, detail });
    }
    if let Some(limit) = spec.max_overfit_ratio {
        let (train, test) = (model_train.overfit_error(), model_test.overfit_error());
        let report = overfit_of(train, test);
        let passed = report.ratio <= limit;
        let (r, l) = pair(report.ratio, limit);
        let op = if passed { "<=" } else { ">" };
        let metric = S::OVERFIT;
        checks.push(GateCheck {
            name: "max_overfit_ratio".to_string(),
            passed,
            detail: format!(
                "test {metric} / train {metric} = {} / {} = {r} {op} {l}",
                format_value(test),
                format_value(train)
            ),
        });
    }
    GateReport { checks }
}

/// Whether the test error looks much worse than the training error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverfitVerdict {
    Ok,
    /// `ratio` > [`OVERFIT_WARNING_RATIO`]
    Warning,
}

/// Train versus test error (rmse for regressors, log_loss for classifiers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OverfitReport {
    /// `test error / train error`; 1.0 when both are 0, `inf` when only the train error is 0
    pub ratio: f64,
    /// `test error - train error`
    pub gap: f64,
    pub verdict: OverfitVerdict,
}

/// Compares the train and test rmse: the ratio `test / train`, the difference, and a warning above
/// [`OVERFIT_WARNING_RATIO`].
pub fn overfit(train: &RegressionMetrics, test: &RegressionMetrics) -> OverfitReport {
    overfit_of(train.rmse, test.rmse)
}

/// [`overfit`] for a classifier, on log_loss (the one error metric among the classification metrics).
pub fn classification_overfit(train: &ClassificationMetrics, test: &ClassificationMetrics) -> OverfitReport {
    overfit_of(train.log_loss, test.log_loss)
}

fn overfit_of(train: f64, test: f64) -> OverfitReport {
    let ratio = if train == 0.0 { if test == 0.0 { 1.0 } else { f64::INFINITY } } else { test / train };
    let verdict = if ratio > OVERFIT_WARNING_RATIO { OverfitVerdict::Warning } else { OverfitVerdict::Ok };
    OverfitReport { ratio, gap: test - train, verdict }
}
