//! Binary classification metrics with scikit-learn 1.9's definitions: `accuracy_score`, `precision_score`,
//! `recall_score`, `f1_score` (positive class 1), `roc_auc_score`, `average_precision_score`, `log_loss`,
//! `confusion_matrix`, `roc_curve` and `precision_recall_curve`; the F1-optimal threshold and the majority-class
//! baseline.
//!
//! Key decisions:
//! - Labels are `0.0`/`1.0` and scores are probabilities of class 1 in [0, 1]; anything else is an error naming the
//!   first bad row. A row is predicted positive when `proba >= threshold` (the convention of the curves' thresholds
//!   and of scikit-learn's `FixedThresholdClassifier`), so a probability of exactly 0.5 is positive at 0.5.
//! - Precision, recall and F1 follow scikit-learn's `zero_division="warn"` default without the warning: a ratio
//!   whose denominator is 0 is 0.
//! - ROC AUC is the trapezoid under scikit-learn's ROC curve, whose points are the distinct scores (tied scores form
//!   one point, so ties count half), with its collinear points dropped as `drop_intermediate=True` does. Average
//!   precision is the step-wise sum `sum((R_n - R_{n-1}) P_n)` over the precision-recall curve, not a trapezoid.
//! - Log loss clips both `proba` and `1 - proba` to `[eps, 1 - eps]` with `eps = f64::EPSILON`, as scikit-learn 1.9
//!   does (`xp.finfo(dtype).eps` on the two-column probabilities).
//! - Metrics that need both classes (ROC AUC, average precision, their curves) refuse labels of a single class
//!   instead of returning NaN.
//! - Sums use numpy's pairwise summation ([`crate::pairwise_sum`]) in scikit-learn's order, so values agree with
//!   scikit-learn to the last bits (the tests check 1e-9).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{EvalError, pairwise_sum};

/// The classification metrics kiln computes, with their stable snake_case names (also the MLflow metric suffixes
/// and the YAML keys of classifier gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationMetricName {
    /// share of rows whose predicted label is right
    Accuracy,
    /// `tp / (tp + fp)`, 0 when nothing is predicted positive
    Precision,
    /// `tp / (tp + fn)`, 0 when there is no positive row
    Recall,
    /// `2 tp / (2 tp + fp + fn)`, 0 when that denominator is 0
    F1,
    /// area under the ROC curve (threshold-free)
    RocAuc,
    /// average precision, the step-wise area under the precision-recall curve (threshold-free)
    PrAuc,
    /// mean negative log-likelihood of the labels under the clipped probabilities (threshold-free)
    LogLoss,
}

impl ClassificationMetricName {
    /// Every classification metric, in the order of tables and of [`ClassificationMetrics::iter`].
    pub const ALL: [ClassificationMetricName; 7] = [
        ClassificationMetricName::Accuracy,
        ClassificationMetricName::Precision,
        ClassificationMetricName::Recall,
        ClassificationMetricName::F1,
        ClassificationMetricName::RocAuc,
        ClassificationMetricName::PrAuc,
        ClassificationMetricName::LogLoss,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClassificationMetricName::Accuracy => "accuracy",
            ClassificationMetricName::Precision => "precision",
            ClassificationMetricName::Recall => "recall",
            ClassificationMetricName::F1 => "f1",
            ClassificationMetricName::RocAuc => "roc_auc",
            ClassificationMetricName::PrAuc => "pr_auc",
            ClassificationMetricName::LogLoss => "log_loss",
        }
    }

    /// Parses a snake_case name (exact, as in YAML).
    pub fn parse(name: &str) -> Option<ClassificationMetricName> {
        ClassificationMetricName::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// False for log_loss only; every other classification metric is a score where higher is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, ClassificationMetricName::LogLoss)
    }

    /// Whether `a` is strictly better than `b` for this metric (a tie is not better).
    pub fn is_better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() { a > b } else { a < b }
    }
}

impl fmt::Display for ClassificationMetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The metrics of one set of binary predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationMetrics {
    /// `(tp + tn) / n` at the threshold
    pub accuracy: f64,
    /// `tp / (tp + fp)` at the threshold; 0 when no row is predicted positive
    pub precision: f64,
    /// `tp / (tp + fn)` at the threshold; 0 when no row is positive
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)` at the threshold; 0 when that denominator is 0
    pub f1: f64,
    /// area under the ROC curve, ties counted half (threshold-free)
    pub roc_auc: f64,
    /// average precision (threshold-free)
    pub pr_auc: f64,
    /// mean `-ln(p)` of the true class's probability clipped to `[eps, 1 - eps]` (threshold-free)
    pub log_loss: f64,
    /// `[[tn, fp], [fn, tp]]`: rows are the true label 0 and 1, columns the predicted label 0 and 1, as
    /// scikit-learn's `confusion_matrix`
    pub confusion: [[u64; 2]; 2],
}

impl ClassificationMetrics {
    /// Computes every metric of the probabilities `proba` (of class 1) against the 0/1 labels `y_true`; the label
    /// metrics and the confusion matrix predict 1 where `proba >= threshold`.
    ///
    /// # Errors
    /// [`EvalError::ProbaLengthMismatch`] when the lengths differ, [`EvalError::Empty`] for no rows,
    /// [`EvalError::NotBinaryLabel`] / [`EvalError::NotProbability`] naming the first bad row,
    /// [`EvalError::InvalidSpec`] (`threshold`) for a threshold outside [0, 1], and [`EvalError::SingleClass`] when
    /// `y_true` holds one class only (ROC AUC is undefined then).
    pub fn compute(y_true: &[f64], proba: &[f64], threshold: f64) -> Result<ClassificationMetrics, EvalError> {
        let labels = check_inputs(y_true, proba)?;
        check_threshold(threshold)?;
        let predicted: Vec<bool> = proba.iter().map(|&p| p >= threshold).collect();
        metrics_of(&labels, proba, &predicted)
    }

    /// The value of one metric.
    pub fn get(&self, name: ClassificationMetricName) -> f64 {
        match name {
            ClassificationMetricName::Accuracy => self.accuracy,
            ClassificationMetricName::Precision => self.precision,
            ClassificationMetricName::Recall => self.recall,
            ClassificationMetricName::F1 => self.f1,
            ClassificationMetricName::RocAuc => self.roc_auc,
            ClassificationMetricName::PrAuc => self.pr_auc,
            ClassificationMetricName::LogLoss => self.log_loss,
        }
    }

    /// Every metric with its name, in [`ClassificationMetricName::ALL`] order (for logging and tables).
    pub fn iter(&self) -> [(ClassificationMetricName, f64); 7] {
        ClassificationMetricName::ALL.map(|m| (m, self.get(m)))
    }

    /// The number of rows evaluated (the sum of the confusion matrix).
    pub fn n_rows(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }
}

/// scikit-learn's ROC curve (`roc_curve` with `drop_intermediate=True`): `fpr` and `tpr` rise from 0 to 1, one point
/// per kept distinct score, and `thresholds[i]` is the lowest score predicted positive at point `i`
/// (`thresholds[0]` is `+inf`: nothing predicted positive).
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// `(fpr, tpr)` pairs, for a line chart (the curve is piecewise linear, so straight segments are exact).
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.fpr.iter().copied().zip(self.tpr.iter().copied()).collect()
    }
}

/// scikit-learn's precision-recall curve (`precision_recall_curve`): recall falls from 1 to 0, `thresholds` rise
/// and hold one value fewer than the points (the last point, precision 1 at recall 0, has no threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct PrCurve {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub thresholds: Vec<f64>,
}

impl PrCurve {
    /// `(recall, precision)` pairs, as scikit-learn returns them.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.recall.iter().copied().zip(self.precision.iter().copied()).collect()
    }

    /// The curve as a staircase for a line chart: between two points, precision keeps its value until the next
    /// recall (matplotlib's `drawstyle="steps-post"`, which scikit-learn's `PrecisionRecallDisplay` uses), so the
    /// area under the drawn line is the average precision.
    pub fn step_points(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::with_capacity(2 * self.recall.len());
        for (i, (&r, &p)) in self.recall.iter().zip(&self.precision).enumerate() {
            if i > 0 {
                out.push((r, self.precision[i - 1]));
            }
            out.push((r, p));
        }
        out
    }
}

/// The ROC curve of `proba` against the 0/1 labels `y_true`, as scikit-learn's `roc_curve`.
///
/// # Errors
/// As [`ClassificationMetrics::compute`], without the threshold.
pub fn roc_curve(y_true: &[f64], proba: &[f64]) -> Result<RocCurve, EvalError> {
    let labels = check_inputs(y_true, proba)?;
    let counts = ThresholdCounts::new(&labels, proba);
    counts.require_both_classes("the ROC curve")?;
    Ok(counts.roc())
}

/// The precision-recall curve of `proba` against the 0/1 labels `y_true`, as scikit-learn's
/// `precision_recall_curve`.
///
/// # Errors
/// As [`ClassificationMetrics::compute`], without the threshold.
pub fn precision_recall_curve(y_true: &[f64], proba: &[f64]) -> Result<PrCurve, EvalError> {
    let labels = check_inputs(y_true, proba)?;
    let counts = ThresholdCounts::new(&labels, proba);
    counts.require_both_classes("the precision-recall curve")?;
    Ok(counts.precision_recall())
}

/// The trapezoidal area under a curve whose `x` never decreases, as `sklearn.metrics.auc` (numpy's `trapezoid`).
fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    let terms: Vec<f64> =
        x.windows(2).zip(y.windows(2)).map(|(dx, dy)| (dx[1] - dx[0]) * (dy[1] + dy[0]) / 2.0).collect();
    pairwise_sum(&terms)
}

/// A threshold chosen on validation data, with the F1 it reaches there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct F1Threshold {
    /// predict 1 where `proba >= threshold`; always one of the given probabilities
    pub threshold: f64,
    /// the F1 at that threshold on the data it was chosen on
    pub f1: f64,
}

/// The threshold that maximizes F1 on the given (validation) data.
///
/// The candidates are the distinct probabilities (any other threshold predicts the same labels as the next
/// candidate above it); a tie in F1 goes to the highest threshold, the one that predicts the fewest positives.
/// [`ClassificationMetrics::compute`] with the returned threshold reproduces the returned F1.
///
/// # Errors
/// As [`roc_curve`]; [`EvalError::SingleClass`] only when there is no positive label (F1 is then 0 everywhere),
/// while labels that are all 1 are fine.
pub fn best_f1_threshold(y_true: &[f64], proba: &[f64]) -> Result<F1Threshold, EvalError> {
    let labels = check_inputs(y_true, proba)?;
    let counts = ThresholdCounts::new(&labels, proba);
    let positives = counts.positives();
    if positives == 0.0 {
        return Err(EvalError::SingleClass { metric: "the F1-optimal threshold", label: 0, rows: labels.len() });
    }
    let mut best = F1Threshold { threshold: counts.thresholds[0], f1: f64::NEG_INFINITY };
    // descending thresholds: a later candidate must be strictly better, so ties keep the higher threshold
    for ((&tp, &fp), &threshold) in counts.tps.iter().zip(&counts.fps).zip(&counts.thresholds) {
        // scikit-learn: (1 + beta^2) tp / (beta^2 true_sum + pred_sum); pred_sum >= 1 here
        let f1 = 2.0 * tp / (positives + (tp + fp));
        if f1 > best.f1 {
            best = F1Threshold { threshold, f1 };
        }
    }
    Ok(best)
}

/// The majority-class baseline: every row gets the training majority class, with the probability of class 1 equal
/// to its share of the training labels (so its ROC AUC is 0.5 and its log loss is the cross-entropy of the class
/// shares). A tie (exactly half the training rows are 1) makes class 1 the majority.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MajorityClassBaseline {
    /// the predicted label, 0 or 1
    pub majority: u8,
    /// the share of 1 among the training labels, the probability predicted for every row
    pub positive_share: f64,
}

impl MajorityClassBaseline {
    /// Learns the class shares of the training labels.
    ///
    /// # Errors
    /// [`EvalError::Empty`] for no labels, [`EvalError::NotBinaryLabel`] for a label other than 0 or 1.
    pub fn fit(y_train: &[f64]) -> Result<MajorityClassBaseline, EvalError> {
        if y_train.is_empty() {
            return Err(EvalError::Empty { input: "y_train" });
        }
        let labels = check_labels(y_train)?;
        let ones = labels.iter().filter(|&&l| l).count();
        let majority = u8::from(2 * ones >= labels.len());
        Ok(MajorityClassBaseline { majority, positive_share: ones as f64 / labels.len() as f64 })
    }

    /// The probability of class 1 for `n_rows` rows (all the same).
    pub fn predict_proba(&self, n_rows: usize) -> Vec<f64> {
        vec![self.positive_share; n_rows]
    }

    /// The predicted labels for `n_rows` rows (all the majority class).
    pub fn predict(&self, n_rows: usize) -> Vec<f64> {
        vec![f64::from(self.majority); n_rows]
    }

    /// The baseline's metrics on `y_true`: label metrics from the majority class (whatever the model's
    /// threshold), the threshold-free ones from the constant probability.
    ///
    /// # Errors
    /// As [`ClassificationMetrics::compute`].
    pub fn evaluate(&self, y_true: &[f64]) -> Result<ClassificationMetrics, EvalError> {
        let proba = self.predict_proba(y_true.len());
        let labels = check_inputs(y_true, &proba)?;
        let predicted = vec![self.majority == 1; y_true.len()];
        metrics_of(&labels, &proba, &predicted)
    }
}

/// Checks labels and probabilities, returning the labels as booleans (true = class 1).
fn check_inputs(y_true: &[f64], proba: &[f64]) -> Result<Vec<bool>, EvalError> {
    if y_true.len() != proba.len() {
        return Err(EvalError::ProbaLengthMismatch { y_true: y_true.len(), proba: proba.len() });
    }
    if y_true.is_empty() {
        return Err(EvalError::Empty { input: "y_true" });
    }
    let labels = check_labels(y_true)?;
    if let Some(index) = proba.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(EvalError::NotProbability { index, value: proba[index] });
    }
    Ok(labels)
}

fn check_labels(y: &[f64]) -> Result<Vec<bool>, EvalError> {
    y.iter()
        .enumerate()
        .map(|(index, &value)| {
            if value == 1.0 {
                Ok(true)
            } else if value == 0.0 {
                Ok(false)
            } else {
                Err(EvalError::NotBinaryLabel { index, value })
            }
        })
        .collect()
}

fn check_threshold(threshold: f64) -> Result<(), EvalError> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(EvalError::InvalidSpec {
            key: "threshold".to_string(),
            reason: format!("must be a probability in [0, 1], got {threshold}"),
        })
    }
}

/// Every metric from checked inputs and the predicted labels.
fn metrics_of(labels: &[bool], proba: &[f64], predicted: &[bool]) -> Result<ClassificationMetrics, EvalError> {
    let counts = ThresholdCounts::new(labels, proba);
    counts.require_both_classes("roc_auc")?;

    let mut confusion = [[0u64; 2]; 2];
    for (&truth, &pred) in labels.iter().zip(predicted) {
        confusion[usize::from(truth)][usize::from(pred)] += 1;
    }
    let [[tn, fp], [fn_, tp]] = confusion.map(|row| row.map(|c| c as f64));
    let ratio = |num: f64, den: f64| if den == 0.0 { 0.0 } else { num / den };
    let n = labels.len() as f64;

    let roc = counts.roc();
    let pr = counts.precision_recall();
    // scikit-learn: max(0, -sum(diff(recall) * precision[:-1]))
    let steps: Vec<f64> = pr.recall.windows(2).zip(&pr.precision).map(|(r, p)| (r[1] - r[0]) * p).collect();
    let pr_auc = (-pairwise_sum(&steps)).max(0.0);

    let eps = f64::EPSILON;
    let losses: Vec<f64> = labels
        .iter()
        .zip(proba)
        .map(|(&truth, &p)| {
            let q = if truth { p } else { 1.0 - p };
            -q.clamp(eps, 1.0 - eps).ln()
        })
        .collect();

    Ok(ClassificationMetrics {
        accuracy: (tp + tn) / n,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2.0 * tp, (tp + fn_) + (tp + fp)),
        roc_auc: trapezoid(&roc.fpr, &roc.tpr),
        pr_auc,
        log_loss: pairwise_sum(&losses) / n,
        confusion,
    })
}

/// scikit-learn's `confusion_matrix_at_thresholds`: for each distinct score, highest first, the false and true
/// positives when every row with at least that score is predicted positive (counts as exact floats).
struct ThresholdCounts {
    fps: Vec<f64>,
    tps: Vec<f64>,
    thresholds: Vec<f64>,
    rows: usize,
}

impl ThresholdCounts {
    fn new(labels: &[bool], proba: &[f64]) -> ThresholdCounts {
        let mut order: Vec<usize> = (0..proba.len()).collect();
        order.sort_by(|&a, &b| proba[b].total_cmp(&proba[a]));
        let (mut fps, mut tps, mut thresholds) = (Vec::new(), Vec::new(), Vec::new());
        let mut tp = 0.0;
        for (k, &i) in order.iter().enumerate() {
            tp += f64::from(u8::from(labels[i]));
            // the last row of a run of equal scores closes that threshold (-0.0 == 0.0 joins them, as numpy)
            let last_of_run = order.get(k + 1).is_none_or(|&next| proba[next] != proba[i]);
            if last_of_run {
                tps.push(tp);
                fps.push((k + 1) as f64 - tp);
                thresholds.push(proba[i]);
            }
        }
        ThresholdCounts { fps, tps, thresholds, rows: labels.len() }
    }

    fn positives(&self) -> f64 {
        self.tps.last().copied().unwrap_or(0.0)
    }

    fn negatives(&self) -> f64 {
        self.fps.last().copied().unwrap_or(0.0)
    }

    fn require_both_classes(&self, metric: &'static str) -> Result<(), EvalError> {
        let label = if self.positives() == 0.0 {
            0
        } else if self.negatives() == 0.0 {
            1
        } else {
            return Ok(());
        };
        Err(EvalError::SingleClass { metric, label, rows: self.rows })
    }

    /// Needs both classes (checked by the callers).
    fn roc(&self) -> RocCurve {
        let m = self.tps.len();
        // drop_intermediate: keep the ends and every point where the curve bends (second differences != 0)
        let keep: Vec<usize> = if m > 2 {
            (0..m)
                .filter(|&i| {
                    i == 0 || i == m - 1 || {
                        let d2 = |v: &[f64]| (v[i + 1] - v[i]) - (v[i] - v[i - 1]);
                        d2(&self.fps) != 0.0 || d2(&self.tps) != 0.0
                    }
                })
                .collect()
        } else {
            (0..m).collect()
        };
        let (neg, pos) = (self.negatives(), self.positives());
        let mut curve = RocCurve { fpr: vec![0.0], tpr: vec![0.0], thresholds: vec![f64::INFINITY] };
        for i in keep {
            curve.fpr.push(self.fps[i] / neg);
            curve.tpr.push(self.tps[i] / pos);
            curve.thresholds.push(self.thresholds[i]);
        }
        curve
    }

    /// Needs at least one positive (checked by the callers).
    fn precision_recall(&self) -> PrCurve {
        let pos = self.positives();
        // reversed so that recall falls; every threshold predicts at least one row, so tp + fp > 0
        let mut precision: Vec<f64> = self.tps.iter().zip(&self.fps).rev().map(|(tp, fp)| tp / (tp + fp)).collect();
        let mut recall: Vec<f64> = self.tps.iter().rev().map(|tp| tp / pos).collect();
        precision.push(1.0);
        recall.push(0.0);
        PrCurve { precision, recall, thresholds: self.thresholds.iter().rev().copied().collect() }
    }
}
