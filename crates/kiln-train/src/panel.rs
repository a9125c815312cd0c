//! A panel's test metrics series by series: the model and its persistence baseline on each series' own test rows,
//! so that one bad series is named instead of hidden in the average over all of them.

use kiln_eval::RegressionMetrics;
use serde::Serialize;

use crate::TrainError;
use crate::prepare::{Design, Parts, TaskSpec};

/// One series' test metrics.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesMetrics {
    pub series: String,
    /// test rows of this series
    pub rows: usize,
    pub model: RegressionMetrics,
    /// persistence (the value at the origin)
    pub baseline: RegressionMetrics,
}

/// The test metrics of every series with at least two test rows, worst RMSE relative to its baseline first (the
/// series where the model helps least); `None` for a single series or a tabular task.
///
/// # Errors
/// A metric that cannot be computed (a non-finite prediction).
pub(crate) fn series_metrics(
    task: &TaskSpec,
    design: &Design,
    parts: &Parts,
    outputs: &[f64],
) -> Result<Option<Vec<SeriesMetrics>>, TrainError> {
    let TaskSpec::Forecast { recipe, .. } = task else {
        return Ok(None);
    };
    if design.series.is_empty() {
        return Ok(None);
    }
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); design.series_keys.len()];
    for &r in &parts.test {
        rows_of[design.series[r] as usize].push(r);
    }
    let mut out = Vec::new();
    for (s, rows) in rows_of.iter().enumerate() {
        if rows.len() < 2 {
            continue;
        }
        let truth: Vec<f64> = rows.iter().map(|&r| design.truth[r]).collect();
        let predicted: Vec<f64> =
            rows.iter().map(|&r| recipe.target_transform.invert(design.current[r], outputs[r])).collect();
        let persistence: Vec<f64> = rows.iter().map(|&r| design.current[r]).collect();
        out.push(SeriesMetrics {
            series: design.series_keys[s].clone(),
            rows: rows.len(),
            model: RegressionMetrics::compute(&truth, &predicted)?,
            baseline: RegressionMetrics::compute(&truth, &persistence)?,
        });
    }
    out.sort_by(|a, b| relative(b).total_cmp(&relative(a)).then_with(|| a.series.cmp(&b.series)));
    Ok(Some(out))
}

/// The model's test RMSE over its baseline's (above 1: worse than persistence).
pub fn relative(m: &SeriesMetrics) -> f64 {
    m.model.rmse / m.baseline.rmse
}

/// The per-series table as CSV, one row per series, worst first.
pub fn series_metrics_csv(series: &[SeriesMetrics]) -> String {
    let mut out = String::from("series,test_rows,rmse,mae,r2,baseline_rmse,baseline_mae,rmse_vs_baseline\n");
    for m in series {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(&m.series),
            m.rows,
            m.model.rmse,
            m.model.mae,
            m.model.r2,
            m.baseline.rmse,
            m.baseline.mae,
            relative(m)
        ));
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}
