//! Held-out evaluation of a fitted model beside its naive baseline, in the target's own units: persistence for a
//! forecast (tomorrow = today), the training mean for a tabular regression, the majority class for a classifier.

use kiln_domain::RunId;
use kiln_eval::{
    ClassificationGateSpec, ClassificationMetrics, GateCheck, GateReport, GateSpec, OverfitReport, RegressionMetrics,
};
use kiln_features::Decision;
use serde::Serialize;

use crate::TrainError;
use crate::prepare::{Design, Parts, TabularKind, TaskSpec, ThresholdRule};
use crate::train::{Ports, to_json};

/// The gates of an experiment, for its task kind.
#[derive(Debug, Clone)]
pub enum Gates {
    Regression(GateSpec),
    Classification(ClassificationGateSpec),
}

/// Metrics of the model and of its baseline on the training rows (train + validation) and on the test rows.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evaluation {
    Regression {
        /// `persistence` or `mean`
        baseline: &'static str,
        model_train: RegressionMetrics,
        model_test: RegressionMetrics,
        baseline_train: RegressionMetrics,
        baseline_test: RegressionMetrics,
        overfit: OverfitReport,
        /// why MAPE and sMAPE mean nothing on these rows (targets at or near zero), when they do not
        percentage_warning: Option<String>,
    },
    Classification {
        /// the decision threshold on the probability of the positive class
        threshold: f64,
        /// how the threshold was chosen
        threshold_rule: ThresholdRule,
        positive: String,
        model_train: ClassificationMetrics,
        model_test: ClassificationMetrics,
        baseline_train: ClassificationMetrics,
        baseline_test: ClassificationMetrics,
    },
}

/// Evaluates `outputs` (one model output per design row, in the label's space).
///
/// # Errors
/// A metric that cannot be computed (for example a test part with one class only for ROC-AUC).
pub(crate) fn evaluate(
    task: &TaskSpec,
    design: &Design,
    parts: &Parts,
    outputs: &[f64],
) -> Result<Evaluation, TrainError> {
    let fit_rows = parts.fit_rows();
    let pick = |values: &[f64], rows: &[usize]| -> Vec<f64> { rows.iter().map(|&i| values[i]).collect() };
    match task {
        TaskSpec::Forecast { recipe, .. } => {
            let predictions = forecast_predictions(recipe.target_transform, design, outputs);
            let regression = |rows: &[usize], baseline: &[f64]| -> Result<_, TrainError> {
                Ok((
                    RegressionMetrics::compute(&pick(&design.truth, rows), &pick(&predictions, rows))?,
                    RegressionMetrics::compute(&pick(&design.truth, rows), &pick(baseline, rows))?,
                ))
            };
            let (model_train, baseline_train) = regression(&fit_rows, &design.current)?;
            let (model_test, baseline_test) = regression(&parts.test, &design.current)?;
            let overfit = kiln_eval::overfit(&model_train, &model_test);
            Ok(Evaluation::Regression {
                baseline: "persistence",
                model_train,
                model_test,
                baseline_train,
                baseline_test,
                overfit,
                percentage_warning: percentage_warning(&design.truth, &design.series, &fit_rows, &parts.test),
            })
        }
        TaskSpec::Tabular { kind: TabularKind::Regression, .. } => {
            let train_y = pick(&design.truth, &parts.train);
            let mean = kiln_eval::pairwise_sum(&train_y) / train_y.len().max(1) as f64;
            let baseline = vec![mean; design.truth.len()];
            let m = |rows: &[usize], p: &[f64]| RegressionMetrics::compute(&pick(&design.truth, rows), &pick(p, rows));
            let model_train = m(&fit_rows, outputs)?;
            let model_test = m(&parts.test, outputs)?;
            let overfit = kiln_eval::overfit(&model_train, &model_test);
            Ok(Evaluation::Regression {
                baseline: "mean",
                model_train,
                model_test,
                baseline_train: m(&fit_rows, &baseline)?,
                baseline_test: m(&parts.test, &baseline)?,
                overfit,
                percentage_warning: percentage_warning(&design.truth, &design.series, &fit_rows, &parts.test),
            })
        }
        TaskSpec::Tabular { kind: TabularKind::Classification { positive, threshold }, .. } => {
            let threshold_value = match threshold {
                ThresholdRule::Fixed(t) => *t,
                ThresholdRule::BestF1 => {
                    let rows = if parts.validation.is_empty() { &parts.train } else { &parts.validation };
                    kiln_eval::best_f1_threshold(&pick(&design.label, rows), &pick(outputs, rows))?.threshold
                }
            };
            // the majority class for every row (its probability metrics use the training share of class 1)
            let baseline = kiln_eval::MajorityClassBaseline::fit(&pick(&design.label, &parts.train))?;
            let m = |rows: &[usize], p: &[f64]| {
                ClassificationMetrics::compute(&pick(&design.label, rows), &pick(p, rows), threshold_value)
            };
            Ok(Evaluation::Classification {
                threshold: threshold_value,
                threshold_rule: *threshold,
                positive: positive.clone(),
                model_train: m(&fit_rows, outputs)?,
                model_test: m(&parts.test, outputs)?,
                baseline_train: baseline.evaluate(&pick(&design.label, &fit_rows))?,
                baseline_test: baseline.evaluate(&pick(&design.label, &parts.test))?,
            })
        }
    }
}

/// A target within this share of its mean absolute value counts as "near zero" for MAPE and sMAPE.
const NEAR_ZERO_SHARE: f64 = 0.01;

/// Why MAPE and sMAPE are meaningless on these rows, if they are: a relative error divides by the target, so one
/// target at or near zero (within 1% of the mean |target|) dominates the mean (ETTh1's oil temperature crosses 0:
/// its MAPE is ~1e13). `None` when every target is well away from zero.
///
/// A panel's series are judged each against its own mean |target|: a relative error divides each row by its own
/// target, so a series on a small scale beside large ones does not make the pooled MAPE meaningless.
fn percentage_warning(truth: &[f64], series: &[u32], fit_rows: &[usize], test_rows: &[usize]) -> Option<String> {
    let check = |part: &str, rows: &[usize]| -> Option<String> {
        let abs: Vec<f64> = rows.iter().map(|&i| truth[i].abs()).collect();
        let mean = kiln_eval::pairwise_sum(&abs) / abs.len().max(1) as f64;
        let near = if series.is_empty() {
            abs.iter().filter(|a| **a <= NEAR_ZERO_SHARE * mean).count()
        } else {
            let mut sums: std::collections::HashMap<u32, (f64, usize)> = std::collections::HashMap::new();
            for (&i, &a) in rows.iter().zip(&abs) {
                let e = sums.entry(series[i]).or_insert((0.0, 0));
                e.0 += a;
                e.1 += 1;
            }
            #[allow(clippy::cast_precision_loss)]
            rows.iter()
                .zip(&abs)
                .filter(|(i, a)| {
                    let (sum, n) = sums[&series[**i]];
                    **a <= NEAR_ZERO_SHARE * sum / n as f64
                })
                .count()
        };
        let min = abs.iter().copied().fold(f64::INFINITY, f64::min);
        (near > 0).then(|| {
            let scale = if series.is_empty() {
                format!("the mean |target| ({})", kiln_eval::format_value(mean))
            } else {
                "their series' mean |target|".to_string()
            };
            format!(
                "{near} of {} {part} targets are within 1% of {scale} of zero (smallest |target| {}), so MAPE and \
                 sMAPE are meaningless there: judge by RMSE, MAE and R²",
                abs.len(),
                kiln_eval::format_value(min),
            )
        })
    };
    check("test", test_rows).or_else(|| check("training", fit_rows))
}

/// The forecast of the target in its own units: the target transform inverted with the value known at t.
pub(crate) fn forecast_predictions(
    transform: kiln_features::TargetTransform,
    design: &Design,
    outputs: &[f64],
) -> Vec<f64> {
    outputs.iter().zip(&design.current).map(|(o, c)| transform.invert(*c, *o)).collect()
}

impl Evaluation {
    /// Every gate of `spec` against the test metrics (and the baseline's).
    pub(crate) fn gates(&self, gates: &Gates) -> GateReport {
        match (self, gates) {
            (Evaluation::Regression { model_test, model_train, baseline_test, .. }, Gates::Regression(spec)) => {
                kiln_eval::check_gates(spec, model_test, model_train, baseline_test)
            }
            (
                Evaluation::Classification { model_test, model_train, baseline_test, .. },
                Gates::Classification(spec),
            ) => kiln_eval::check_classification_gates(spec, model_test, model_train, baseline_test),
            _ => GateReport {
                checks: vec![GateCheck {
                    name: "gates".to_string(),
                    passed: false,
                    detail: "the gates are for another task kind than the evaluation".to_string(),
                }],
            },
        }
    }

    /// The metrics as logged, grouped by `/` prefix as MLflow's UI groups them: `train/<m>`, `test/<m>`,
    /// `baseline/train/<m>`, `baseline/test/<m>`, and `model/overfit_ratio` or `model/threshold`.
    pub(crate) fn metric_values(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        match self {
            Evaluation::Regression { model_train, model_test, baseline_train, baseline_test, overfit, .. } => {
                for (prefix, m) in [
                    ("train", model_train),
                    ("test", model_test),
                    ("baseline/train", baseline_train),
                    ("baseline/test", baseline_test),
                ] {
                    out.extend(m.iter().iter().map(|(name, v)| (format!("{prefix}/{}", name.as_str()), *v)));
                }
                out.push(("model/overfit_ratio".to_string(), overfit.ratio));
            }
            Evaluation::Classification {
                threshold, model_train, model_test, baseline_train, baseline_test, ..
            } => {
                for (prefix, m) in [
                    ("train", model_train),
                    ("test", model_test),
                    ("baseline/train", baseline_train),
                    ("baseline/test", baseline_test),
                ] {
                    out.extend(m.iter().iter().map(|(name, v)| (format!("{prefix}/{}", name.as_str()), *v)));
                }
                out.push(("model/threshold".to_string(), *threshold));
            }
        }
        out
    }

    /// The evaluation as `metrics.json` shows it: `{"model": {"train", "test"}, "<baseline>": {"train", "test"}, ...}`,
    /// so that a reader finds a number as `model.test.rmse` or `persistence.test.rmse`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        fn value<T: Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
        }
        match self {
            Evaluation::Regression {
                baseline,
                model_train,
                model_test,
                baseline_train,
                baseline_test,
                overfit,
                percentage_warning,
            } => {
                let mut out = serde_json::Map::new();
                out.insert("task".into(), "regression".into());
                out.insert("baseline".into(), (*baseline).into());
                out.insert("model".into(), serde_json::json!({"train": value(model_train), "test": value(model_test)}));
                out.insert(
                    (*baseline).into(),
                    serde_json::json!({"train": value(baseline_train), "test": value(baseline_test)}),
                );
                out.insert("overfit".into(), value(overfit));
                if let Some(w) = percentage_warning {
                    out.insert("warnings".into(), serde_json::json!({"mape": w, "smape": w}));
                }
                serde_json::Value::Object(out)
            }
            Evaluation::Classification {
                threshold,
                threshold_rule,
                positive,
                model_train,
                model_test,
                baseline_train,
                baseline_test,
            } => serde_json::json!({
                "task": "classification",
                "baseline": "majority",
                "positive": positive,
                "threshold": threshold,
                "threshold_rule": value(threshold_rule),
                "model": {"train": value(model_train), "test": value(model_test)},
                "majority": {"train": value(baseline_train), "test": value(baseline_test)},
            }),
        }
    }

    /// What `kiln predict` needs to turn a probability into a class.
    pub(crate) fn decision(&self, design: &Design) -> Option<Decision> {
        match self {
            Evaluation::Classification { threshold, positive, .. } => {
                Some(Decision { positive: positive.clone(), negative: design.negative.clone(), threshold: *threshold })
            }
            Evaluation::Regression { .. } => None,
        }
    }

    /// A readable table, model beside baseline, train and test.
    pub fn table(&self) -> String {
        match self {
            Evaluation::Regression { baseline, model_train, model_test, baseline_train, baseline_test, .. } => {
                kiln_eval::comparison_table(&[
                    ("model (train)", model_train),
                    ("model (test)", model_test),
                    (&format!("{baseline} (train)"), baseline_train),
                    (&format!("{baseline} (test)"), baseline_test),
                ])
            }
            Evaluation::Classification { model_train, model_test, baseline_train, baseline_test, .. } => {
                kiln_eval::classification_comparison_table(&[
                    ("model (train)", model_train),
                    ("model (test)", model_test),
                    ("majority (train)", baseline_train),
                    ("majority (test)", baseline_test),
                ])
            }
        }
    }

    /// The same as a Markdown table (the run's note).
    pub(crate) fn markdown(&self) -> String {
        match self {
            Evaluation::Regression { baseline, model_train, model_test, baseline_test, .. } => {
                kiln_eval::markdown_table(&[
                    ("model (train)", model_train),
                    ("model (test)", model_test),
                    (&format!("{baseline} (test)"), baseline_test),
                ])
            }
            Evaluation::Classification { model_train, model_test, baseline_test, .. } => {
                kiln_eval::classification_markdown_table(&[
                    ("model (train)", model_train),
                    ("model (test)", model_test),
                    ("majority (test)", baseline_test),
                ])
            }
        }
    }

    /// Why the percentage errors (MAPE, sMAPE) of this evaluation mean nothing, when they do not.
    pub fn percentage_warning(&self) -> Option<&str> {
        match self {
            Evaluation::Regression { percentage_warning, .. } => percentage_warning.as_deref(),
            Evaluation::Classification { .. } => None,
        }
    }

    /// One line: does the model beat its baseline on the test rows?
    pub fn verdict(&self) -> String {
        match self {
            Evaluation::Regression { baseline, model_test, baseline_test, .. } => {
                let gain = 100.0 * (1.0 - model_test.rmse / baseline_test.rmse);
                if gain > 0.0 {
                    format!("the model beats {baseline} on test RMSE by {gain:.2}%")
                } else {
                    format!("the model does NOT beat {baseline} on test RMSE ({:.2}% worse)", -gain)
                }
            }
            Evaluation::Classification { model_test, baseline_test, threshold, .. } => {
                let beats = model_test.roc_auc > baseline_test.roc_auc;
                let v = kiln_eval::format_value;
                format!(
                    "the model {} the majority class: test ROC-AUC {} vs {}, F1 {} vs {} (threshold {})",
                    if beats { "beats" } else { "does NOT beat" },
                    v(model_test.roc_auc),
                    v(baseline_test.roc_auc),
                    v(model_test.f1),
                    v(baseline_test.f1),
                    v(*threshold)
                )
            }
        }
    }

    /// `predictions.json` (what the metrics were computed on, so anyone can recompute them); for a forecast, the
    /// test rows' actual and predicted values over time and their residuals (PNG, at the time each forecast is for,
    /// from `target_time`); for a classifier, the confusion matrix (JSON and PNG, the classes named by the
    /// target's values) and the ROC and precision-recall curves (PNG).
    #[allow(clippy::too_many_arguments)] // the run's parts, each needed once; a struct would only rename them
    pub(crate) fn log_artifacts(
        &self,
        task: &TaskSpec,
        ports: &Ports<'_>,
        run: &RunId,
        run_name: &str,
        design: &Design,
        parts: &Parts,
        outputs: &[f64],
        target_time: &dyn Fn(i64) -> i64,
    ) -> Result<(), TrainError> {
        let store = ports.artifacts;
        let fit_rows = parts.fit_rows();
        let pick = |values: &[f64], rows: &[usize]| -> Vec<f64> { rows.iter().map(|&i| values[i]).collect() };
        match self {
            Evaluation::Regression { baseline, .. } => {
                let (pred_all, base_all) = regression_vectors(task, design, outputs, parts);
                let split = |rows| PredictionRows {
                    design,
                    rows,
                    y_pred: &pred_all,
                    baseline_name: baseline,
                    baseline: &base_all,
                };
                let fit_rows = fit_rows.as_slice();
                // written as it is serialized (no JSON tree), compact: a panel's file holds millions of numbers
                let all = RegressionPredictions { train: split(fit_rows), test: split(&parts.test) };
                let json = serde_json::to_vec(&all).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
                store.put_bytes(run, "predictions.json", &json)?;
                if let TaskSpec::Forecast { recipe, .. } = task {
                    let test = ForecastTest {
                        target: &recipe.target,
                        horizon: recipe.horizon,
                        times: parts.test.iter().map(|&i| target_time(design.times[i])).collect(),
                        actual: pick(&design.truth, &parts.test),
                        predicted: pick(&pred_all, &parts.test),
                    };
                    test.log_charts(ports, run, run_name)?;
                }
            }
            Evaluation::Classification { threshold, model_test, positive, .. } => {
                let split = |rows: &[usize]| {
                    serde_json::json!({
                        "id": rows.iter().map(|&i| design.ids[i].clone()).collect::<Vec<_>>(),
                        "y_true": pick(&design.label, rows),
                        "proba": pick(outputs, rows),
                    })
                };
                let json =
                    serde_json::json!({"threshold": threshold, "train": split(&fit_rows), "test": split(&parts.test)});
                store.put_bytes(run, "predictions.json", &to_json(&json))?;
                let cm = model_test.confusion;
                // the target's own values: the positive class, and the other value when the target has two
                let negative = design.negative.clone().unwrap_or_else(|| format!("not {positive}"));
                let cm_json = serde_json::json!({
                    "labels": [format!("0 ({negative})"), format!("1 ({positive})")],
                    "rows": "true class", "columns": "predicted class",
                    "matrix": cm,
                    "threshold": threshold,
                });
                store.put_bytes(run, "confusion_matrix.json", &to_json(&cm_json))?;
                let png = ports.charts.confusion_matrix_chart(
                    &format!("{run_name}: confusion matrix (test, threshold {threshold:.3})"),
                    [negative.as_str(), positive.as_str()],
                    cm,
                )?;
                store.put_bytes(run, "confusion_matrix.png", &png)?;
                let y = pick(&design.label, &parts.test);
                let p = pick(outputs, &parts.test);
                let roc = kiln_eval::roc_curve(&y, &p)?;
                let png = ports.charts.line_chart(
                    &format!("{run_name}: ROC curve (test, AUC {:.4})", model_test.roc_auc),
                    "false positive rate",
                    "true positive rate",
                    &[("model".to_string(), roc.points())],
                    true,
                )?;
                store.put_bytes(run, "roc_curve.png", &png)?;
                let pr = kiln_eval::precision_recall_curve(&y, &p)?;
                let png = ports.charts.line_chart(
                    &format!("{run_name}: precision-recall curve (test, AP {:.4})", model_test.pr_auc),
                    "recall",
                    "precision",
                    &[("model".to_string(), pr.step_points())],
                    false,
                )?;
                store.put_bytes(run, "pr_curve.png", &png)?;
            }
        }
        Ok(())
    }
}

/// A forecast's test rows, for its charts over time.
struct ForecastTest<'a> {
    target: &'a str,
    horizon: usize,
    /// the time each forecast is for, UTC ms
    times: Vec<i64>,
    actual: Vec<f64>,
    predicted: Vec<f64>,
}

impl ForecastTest<'_> {
    /// `actual_vs_predicted.png` and `residuals.png` (actual - predicted).
    fn log_charts(&self, ports: &Ports<'_>, run: &RunId, run_name: &str) -> Result<(), TrainError> {
        let (target, n) = (self.target, self.times.len());
        let ahead = if self.horizon == 1 { "1 step".to_string() } else { format!("{} steps", self.horizon) };
        let png = ports.charts.series_chart(
            &format!("{run_name}: {target}, actual vs predicted {ahead} ahead (test, {n} rows)"),
            target,
            &self.times,
            &[("actual".to_string(), self.actual.clone()), ("predicted".to_string(), self.predicted.clone())],
        )?;
        ports.artifacts.put_bytes(run, "actual_vs_predicted.png", &png)?;
        let residuals: Vec<f64> = self.actual.iter().zip(&self.predicted).map(|(a, p)| a - p).collect();
        let png = ports.charts.residual_chart(
            &format!("{run_name}: residuals of {target}, actual - predicted (test, {n} rows)"),
            &format!("actual - predicted ({target})"),
            &self.times,
            &residuals,
        )?;
        ports.artifacts.put_bytes(run, "residuals.png", &png)?;
        Ok(())
    }
}

/// Predictions and baseline in the target's units, one per design row.
fn regression_vectors(task: &TaskSpec, design: &Design, outputs: &[f64], parts: &Parts) -> (Vec<f64>, Vec<f64>) {
    match task {
        TaskSpec::Forecast { recipe, .. } => {
            (forecast_predictions(recipe.target_transform, design, outputs), design.current.clone())
        }
        TaskSpec::Tabular { .. } => {
            let train_y: Vec<f64> = parts.train.iter().map(|&i| design.truth[i]).collect();
            let mean = kiln_eval::pairwise_sum(&train_y) / train_y.len().max(1) as f64;
            (outputs.to_vec(), vec![mean; outputs.len()])
        }
    }
}

/// `predictions.json` of a regression or forecast: the rows the model was fitted on, and the test rows.
#[derive(Serialize)]
struct RegressionPredictions<'a> {
    train: PredictionRows<'a>,
    test: PredictionRows<'a>,
}

/// Some rows of the design: their time (`time_ms`) or id, the truth, the model's prediction and the baseline's,
/// each a list in the rows' order (NaN as null).
struct PredictionRows<'a> {
    design: &'a Design,
    rows: &'a [usize],
    y_pred: &'a [f64],
    baseline_name: &'a str,
    baseline: &'a [f64],
}

impl Serialize for PredictionRows<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// `values` at `rows`, serialized as a list without a copy
        struct Picked<'a, T>(&'a [T], &'a [usize]);
        impl<T: Serialize> Serialize for Picked<'_, T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.1.iter().map(|&i| &self.0[i]))
            }
        }
        let d = self.design;
        let mut map = serializer.serialize_map(Some(4))?;
        if d.times.is_empty() {
            map.serialize_entry("id", &Picked(&d.ids, self.rows))?;
        } else {
            map.serialize_entry("time_ms", &Picked(&d.times, self.rows))?;
        }
        map.serialize_entry("y_true", &Picked(&d.truth, self.rows))?;
        map.serialize_entry("y_pred", &Picked(self.y_pred, self.rows))?;
        map.serialize_entry(self.baseline_name, &Picked(self.baseline, self.rows))?;
        map.end()
    }
}
