//! Metric tables for people: an aligned text table for the terminal and the same content in Markdown (for an
//! MLflow run description), for regression and classification metrics, and a confusion matrix as text. Values are shown with 6 significant digits; the exact values live in the tracker.

use crate::{ClassificationMetricName, ClassificationMetrics, MetricName, RegressionMetrics};

const SIGNIFICANT: i32 = 6;

/// A metric value with 6 significant digits and no trailing zeros: `0.0051`, `1234.57`, `1.5e-7`, `NaN`.
pub fn format_value(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".to_string()
        } else if x > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if (-4..7).contains(&magnitude) {
        let decimals = (SIGNIFICANT - 1 - magnitude).max(0) as usize;
        trim_zeros(format!("{x:.decimals$}"))
    } else {
        let s = format!("{:.*e}", (SIGNIFICANT - 1) as usize, x);
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
            None => s,
        }
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A row of a metric table: column names and values in table order.
trait MetricRow {
    fn columns() -> Vec<&'static str>;
    fn values(&self) -> Vec<f64>;
}

impl MetricRow for RegressionMetrics {
    fn columns() -> Vec<&'static str> {
        MetricName::ALL.iter().map(|m| m.as_str()).collect()
    }
    fn values(&self) -> Vec<f64> {
        self.iter().iter().map(|&(_, v)| v).collect()
    }
}

impl MetricRow for ClassificationMetrics {
    fn columns() -> Vec<&'static str> {
        ClassificationMetricName::ALL.iter().map(|m| m.as_str()).collect()
    }
    fn values(&self) -> Vec<f64> {
        self.iter().iter().map(|&(_, v)| v).collect()
    }
}

/// An aligned text table, one row per `(label, metrics)`, columns rmse mae r2 mape smape; each line ends with `\n`.
pub fn comparison_table(rows: &[(&str, &RegressionMetrics)]) -> String {
    text_table(rows)
}

/// The same table in GitHub-flavoured Markdown, numbers right-aligned; `|` in a label is escaped.
pub fn markdown_table(rows: &[(&str, &RegressionMetrics)]) -> String {
    md_table(rows)
}

/// [`comparison_table`] for classifiers (model and majority baseline, train and test): columns accuracy precision
/// recall f1 roc_auc pr_auc log_loss.
pub fn classification_comparison_table(rows: &[(&str, &ClassificationMetrics)]) -> String {
    text_table(rows)
}

/// [`markdown_table`] for classifiers.
pub fn classification_markdown_table(rows: &[(&str, &ClassificationMetrics)]) -> String {
    md_table(rows)
}

/// A confusion matrix as an aligned text table, rows the true class and columns the predicted one, each line ending
/// with `\n`:
///
/// ```text
///             predicted no  predicted yes
/// actual no           4771            403
/// actual yes           981            888
/// ```
pub fn confusion_table(labels: [&str; 2], counts: [[u64; 2]; 2]) -> String {
    let rows: Vec<String> = labels.iter().map(|l| format!("actual {l}")).collect();
    let columns: Vec<String> = labels.iter().map(|l| format!("predicted {l}")).collect();
    let label_width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..2)
        .map(|j| counts.iter().map(|r| r[j].to_string().len()).chain([columns[j].chars().count()]).max().unwrap_or(0))
        .collect();
    let mut out = " ".repeat(label_width);
    for (c, w) in columns.iter().zip(&widths) {
        out.push_str(&format!("  {c:>w$}"));
    }
    out.push('\n');
    for (label, row) in rows.iter().zip(counts) {
        out.push_str(label);
        out.push_str(&" ".repeat(label_width - label.chars().count()));
        for (v, w) in row.iter().zip(&widths) {
            out.push_str(&format!("  {v:>w$}"));
        }
        out.push('\n');
    }
    out
}

fn cells<M: MetricRow>(rows: &[(&str, &M)]) -> Vec<Vec<String>> {
    rows.iter().map(|(_, m)| m.values().into_iter().map(format_value).collect()).collect()
}

fn text_table<M: MetricRow>(rows: &[(&str, &M)]) -> String {
    let columns = M::columns();
    let values = cells(rows);
    let label_width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(j, m)| values.iter().map(|r| r[j].len()).chain([m.len()]).max().unwrap_or(0))
        .collect();
    let mut out = format!("{:label_width$}", "");
    for (m, w) in columns.iter().zip(&widths) {
        out.push_str(&format!("  {m:>w$}"));
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(&values) {
        let pad = label_width - label.chars().count();
        out.push_str(label);
        out.push_str(&" ".repeat(pad));
        for (v, w) in row.iter().zip(&widths) {
            out.push_str(&format!("  {v:>w$}"));
        }
        out.push('\n');
    }
    out
}

fn md_table<M: MetricRow>(rows: &[(&str, &M)]) -> String {
    let columns = M::columns();
    let mut out = String::from("| |");
    for m in &columns {
        out.push_str(&format!(" {m} |"));
    }
    out.push_str("\n| --- |");
    for _ in &columns {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(cells(rows)) {
        out.push_str(&format!("| {} |", label.replace('|', "\\|")));
        for v in row {
            out.push_str(&format!(" {v} |"));
        }
        out.push('\n');
    }
    out
}
