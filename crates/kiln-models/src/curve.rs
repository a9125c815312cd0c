//! The evaluation history of a boosted fit: each eval metric on the validation rows after every round and on the
//! training rows after about [`TRAIN_POINTS`] of the rounds, as LightGBM or XGBoost computed it while training. kiln
//! never recomputes these values; it only collects what the library reports, so a curve's points are exactly what
//! Python's `evals_result` would hold for those rounds.
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

/// One eval metric on one set of rows: `values[i]` is the metric after round `rounds[i]` (0-based). The validation
/// rows are evaluated after every round (early stopping watches them); the training rows after the first round,
/// every [`train_stride`]-th round and the last round run, at most about [`TRAIN_POINTS`] points, because their
/// evaluation after every round cost 10-15% of an XGBoost fit and a curve needs no more. When early stopping stopped
/// the fit, the rounds after the best one are still here (they were run and evaluated), although the model keeps only
/// the rounds up to its best.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCurve {
    pub data: EvalData,
    /// the library's own name of the metric (`l2`, `rmse`, `binary_logloss`, `logloss`, ...)
    pub metric: String,
    /// the round (0-based) after which each value was taken, ascending
    pub rounds: Vec<usize>,
    pub values: Vec<f64>,
    /// milliseconds from the start of the fit to the end of each evaluated round (`elapsed_ms[i]` goes with
    /// `values[i]`): the wall time a curve point was produced, so a tracker can stamp it with a real time
    pub elapsed_ms: Vec<u64>,
}

/// About how many points a training-rows curve holds.
pub(crate) const TRAIN_POINTS: usize = 100;

/// Every how many rounds the training rows are evaluated in a fit of `total` rounds: 1 up to [`TRAIN_POINTS`]
/// rounds, then `ceil(total / TRAIN_POINTS)`.
pub(crate) fn train_stride(total: usize) -> usize {
    total.div_ceil(TRAIN_POINTS).max(1)
}

/// Whether the training rows are evaluated after round `round` (0-based) of `total`: the first round, the end of
/// every stride, the last round; `stopping`: early stopping ends the fit after this round.
pub(crate) fn train_due(round: usize, total: usize, stopping: bool) -> bool {
    round == 0 || (round + 1).is_multiple_of(train_stride(total)) || round + 1 == total || stopping
}

/// Appends one round's evaluations, `(rows, metric, value)` in the library's order, to `curves`: the first round
/// that evaluates a set of rows creates its curves; every later round that evaluates it must report the same
/// metrics in the same order.
pub(crate) fn push_round(
    curves: &mut Vec<EvalCurve>,
    round: usize,
    evals: Vec<(EvalData, String, f64)>,
    started: std::time::Instant,
) -> Result<(), String> {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    for data in [EvalData::Train, EvalData::Valid] {
        let now: Vec<(&str, f64)> = evals.iter().filter(|e| e.0 == data).map(|(_, m, v)| (m.as_str(), *v)).collect();
        if now.is_empty() {
            continue;
        }
        let earlier: Vec<usize> = (0..curves.len()).filter(|&i| curves[i].data == data).collect();
        if earlier.is_empty() {
            curves.extend(now.iter().map(|&(metric, v)| EvalCurve {
                data,
                metric: metric.to_string(),
                rounds: vec![round],
                values: vec![v],
                elapsed_ms: vec![elapsed_ms],
            }));
            continue;
        }
        let same = earlier.len() == now.len() && earlier.iter().zip(&now).all(|(&i, (m, _))| curves[i].metric == *m);
        if !same {
            let names =
                |it: Vec<&str>| it.iter().map(|m| format!("{}-{m}", data.as_str())).collect::<Vec<_>>().join(", ");
            return Err(format!(
                "round {} evaluated [{}], earlier rounds [{}]",
                round + 1,
                names(now.iter().map(|(m, _)| *m).collect()),
                names(earlier.iter().map(|&i| curves[i].metric.as_str()).collect()),
            ));
        }
        for (&i, (_, v)) in earlier.iter().zip(now) {
            curves[i].rounds.push(round);
            curves[i].values.push(v);
            curves[i].elapsed_ms.push(elapsed_ms);
        }
    }
    Ok(())
}
