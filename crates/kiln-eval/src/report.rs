//! Metric tables for people: an aligned text table for the terminal and the same content in Markdown (for an
//! MLflow run description). Values are shown with 6 significant digits; the exact values live in the tracker.

use crate::{MetricName, RegressionMetrics};

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

fn cells(rows: &[(&str, &RegressionMetrics)]) -> Vec<Vec<String>> {
    rows.iter().map(|(_, m)| m.iter().iter().map(|&(_, v)| format_value(v)).collect()).collect()
}

/// An aligned text table, one row per `(label, metrics)`, columns rmse mae r2 mape smape; each line ends with `\n`.
pub fn comparison_table(rows: &[(&str, &RegressionMetrics)]) -> String {
    let values = cells(rows);
    let label_width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = MetricName::ALL
        .iter()
        .enumerate()
        .map(|(j, m)| values.iter().map(|r| r[j].len()).chain([m.as_str().len()]).max().unwrap_or(0))
        .collect();
    let mut out = format!("{:label_width$}", "");
    for (m, w) in MetricName::ALL.iter().zip(&widths) {
        out.push_str(&format!("  {:>w$}", m.as_str()));
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

/// The same table in GitHub-flavoured Markdown, numbers right-aligned; `|` in a label is escaped.
pub fn markdown_table(rows: &[(&str, &RegressionMetrics)]) -> String {
    let mut out = String::from("| |");
    for m in MetricName::ALL {
        out.push_str(&format!(" {m} |"));
    }
    out.push_str("\n| --- |");
    for _ in MetricName::ALL {
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
