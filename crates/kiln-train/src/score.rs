//! The composite score of a backtest (`backtest.score`), one number to rank configurations by:
//!
//! `score = sum over the weighted metrics of weight * g(value)`, where `value` is the mean over the folds of a test
//! metric (`rmse`, `r2`, `roc_auc`, ...) or the strategy's trading metric (`sharpe`, `cagr`, ...), and `g` orients
//! it so that higher is better: `g(v) = v` for a metric where higher is better, `-v` for one where lower is better
//! (errors, `log_loss`, `volatility`, `turnover`, `max_drawdown_periods`), and `1 - |v|` for `drawdown` (the max
//! drawdown). Seed 003's `0.3 r2 + 0.4 sharpe + 0.3 (1 - |drawdown|)` is `weights: {r2: 0.3, sharpe: 0.4,
//! drawdown: 0.3}`.

use std::collections::BTreeMap;

use kiln_eval::{ClassificationMetricName, EvalError, MetricName, Simulation};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::backtest::{BacktestOutcome, fold_summary};

/// `backtest.score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// metric name -> weight
    pub weights: BTreeMap<String, f64>,
}

/// The trading metrics a score may weigh, and whether higher is better.
const TRADING: [(&str, bool); 11] = [
    ("total_return", true),
    ("cagr", true),
    ("volatility", false),
    ("sharpe", true),
    ("sortino", true),
    ("max_drawdown_periods", false),
    ("calmar", true),
    ("hit_rate", true),
    ("turnover", false),
    ("exposure", true),
    ("final_equity", true),
];

/// How a metric enters the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orientation {
    Higher,
    Lower,
    /// `1 - |v|`
    Drawdown,
}

/// Where a weighted metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// the mean over folds of `test/<name>`
    Folds,
    /// the strategy's trading metric
    Trading,
}

fn resolve(name: &str, classification: bool) -> Option<(Source, Orientation)> {
    if name == "drawdown" || name == "max_drawdown" {
        return Some((Source::Trading, Orientation::Drawdown));
    }
    if let Some((_, higher)) = TRADING.iter().find(|(n, _)| *n == name) {
        return Some((Source::Trading, if *higher { Orientation::Higher } else { Orientation::Lower }));
    }
    let higher = if classification {
        ClassificationMetricName::parse(name).map(ClassificationMetricName::higher_is_better)
    } else {
        MetricName::parse(name).map(MetricName::higher_is_better)
    }?;
    Some((Source::Folds, if higher { Orientation::Higher } else { Orientation::Lower }))
}

fn known(classification: bool) -> String {
    let folds: Vec<&str> = if classification {
        ClassificationMetricName::ALL.iter().map(|m| m.as_str()).collect()
    } else {
        MetricName::ALL.iter().map(|m| m.as_str()).collect()
    };
    let trading: Vec<&str> = std::iter::once("drawdown").chain(TRADING.iter().map(|(n, _)| *n)).collect();
    format!("fold metrics {}; trading metrics {}", folds.join(", "), trading.join(", "))
}

impl ScoreSpec {
    /// Checks every name and weight before anything runs.
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] naming `backtest.score.weights.<name>`: an unknown metric (the known ones listed),
    /// a trading metric without `backtest.trading`, a weight that is not finite, or no weight at all.
    pub fn check(&self, classification: bool, trading: bool) -> Result<(), TrainError> {
        let bad = |key: String, reason: String| Err(EvalError::InvalidSpec { key, reason }.into());
        if self.weights.is_empty() {
            return bad("backtest.score.weights".into(), "names no metric".into());
        }
        for (name, weight) in &self.weights {
            let key = format!("backtest.score.weights.{name}");
            if !weight.is_finite() {
                return bad(key, format!("the weight {weight} is not a number"));
            }
            match resolve(name, classification) {
                None => return bad(key, format!("unknown metric '{name}'; known: {}", known(classification))),
                Some((Source::Trading, _)) if !trading => {
                    return bad(key, format!("'{name}' is a trading metric: it needs a backtest.trading section"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// One weighted metric of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreTerm {
    pub name: String,
    pub weight: f64,
    /// the metric's value (fold mean or trading metric)
    pub value: f64,
    /// the value oriented so that higher is better (`g(value)`)
    pub oriented: f64,
    /// `g` written out: `r2`, `-rmse`, `(1 - |drawdown|)`
    pub expression: String,
}

/// A composite score and its terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub value: f64,
    pub terms: Vec<ScoreTerm>,
}

impl Score {
    /// `0.3 × r2 (0.986) + 0.4 × sharpe (-0.675) + 0.3 × (1 - |drawdown|) (0.258) = -0.04`
    pub fn formula(&self) -> String {
        let terms: Vec<String> =
            self.terms.iter().map(|t| format!("{} × {} ({:.6})", t.weight, t.expression, t.oriented)).collect();
        format!("{} = {:.6}", terms.join(" + "), self.value)
    }
}

/// The score of a backtest (see the module documentation).
///
/// # Errors
/// As [`ScoreSpec::check`].
pub fn composite_score(
    spec: &ScoreSpec,
    outcome: &BacktestOutcome,
    trading: Option<&Simulation>,
    classification: bool,
) -> Result<Score, TrainError> {
    spec.check(classification, trading.is_some())?;
    let summary = fold_summary(&outcome.folds);
    let mut terms = Vec::new();
    for (name, &weight) in &spec.weights {
        let Some((source, orientation)) = resolve(name, classification) else {
            continue;
        };
        let value = match (source, trading) {
            (Source::Folds, _) => {
                let key = format!("test/{name}");
                summary.iter().find(|(k, ..)| *k == key).map_or(f64::NAN, |(_, mean, _)| *mean)
            }
            (Source::Trading, Some(sim)) => {
                let metric = if name == "drawdown" { "max_drawdown" } else { name.as_str() };
                sim.strategy.iter().into_iter().find(|(n, _)| *n == metric).map_or(f64::NAN, |(_, v)| v)
            }
            (Source::Trading, None) => f64::NAN,
        };
        let (oriented, expression) = match orientation {
            Orientation::Higher => (value, name.clone()),
            Orientation::Lower => (-value, format!("-{name}")),
            Orientation::Drawdown => (1.0 - value.abs(), format!("(1 - |{name}|)")),
        };
        terms.push(ScoreTerm { name: name.clone(), weight, value, oriented, expression });
    }
    let value = terms.iter().map(|t| t.weight * t.oriented).sum();
    Ok(Score { value, terms })
}
