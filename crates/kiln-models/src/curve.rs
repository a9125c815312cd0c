//! The evaluation history of a boosted fit: after every round, each eval metric on the training rows and on the
//! validation rows, as LightGBM or XGBoost computed it while training. kiln never recomputes these values; it only
//! collects what the library reports, so a curve is exactly what Python's `evals_result` would hold.
//!
//! Not here: logging the curves (that is `kiln-train`'s), and any history for a model read back from a file or a
//! bundle (the libraries do not store it in the model).

/// The rows a curve was evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalData {
    /// the rows the model was fitted on
    Train,
    /// the validation rows (early stopping's)
    Valid,
}

impl EvalData {
    /// The name kiln gives the rows, and passes to XGBoost as the evaluation name: `train` or `valid`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalData::Train => "train",
            EvalData::Valid => "valid",
        }
    }
}

/// One eval metric on one set of rows, one value per boosting round run: `values[i]` is the metric after round `i`
/// (0-based). When early stopping stopped the fit, the rounds after the best one are still here (they were run and
/// evaluated), although the model keeps only the rounds up to its best.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCurve {
    pub data: EvalData,
    /// the library's own name of the metric (`l2`, `rmse`, `binary_logloss`, `logloss`, ...)
    pub metric: String,
    pub values: Vec<f64>,
    /// milliseconds from the start of the fit to the end of each round (`elapsed_ms[i]` goes with `values[i]`):
    /// the wall time a curve point was produced, so a tracker can stamp it with a real time
    pub elapsed_ms: Vec<u64>,
}

/// Appends one round's evaluations, `(rows, metric, value)` in the library's order, to `curves`. The first round
/// creates the curves; every later round must report the same metrics in the same order.
pub(crate) fn push_round(
    curves: &mut Vec<EvalCurve>,
    round: usize,
    evals: Vec<(EvalData, String, f64)>,
    started: std::time::Instant,
) -> Result<(), String> {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if round == 0 {
        *curves = evals
            .into_iter()
            .map(|(data, metric, v)| EvalCurve { data, metric, values: vec![v], elapsed_ms: vec![elapsed_ms] })
            .collect();
        return Ok(());
    }
    let same = evals.len() == curves.len()
        && curves.iter().zip(&evals).all(|(c, (data, metric, _))| c.data == *data && c.metric == *metric);
    if !same {
        let names = |it: Vec<(EvalData, &str)>| {
            it.iter().map(|(d, m)| format!("{}-{m}", d.as_str())).collect::<Vec<_>>().join(", ")
        };
        return Err(format!(
            "round {} evaluated [{}], earlier rounds [{}]",
            round + 1,
            names(evals.iter().map(|(d, m, _)| (*d, m.as_str())).collect()),
            names(curves.iter().map(|c| (c.data, c.metric.as_str())).collect()),
        ));
    }
    for (curve, (_, _, v)) in curves.iter_mut().zip(evals) {
        curve.values.push(v);
        curve.elapsed_ms.push(elapsed_ms);
    }
    Ok(())
}
