//! One column of new data against its reference: every statistic, the default test Evidently would choose, its
//! threshold and the verdict; and the dataset verdict over the columns.
//!
//! The default rule is Evidently's (`legacy/calculations/stattests/registry.py`, `_get_default_stattest`), over
//! the non-missing values, with the number of distinct values counted over both samples together:
//!
//! | reference values | column | test | drift when |
//! | --- | --- | --- | --- |
//! | <= 1000 | numeric, > 5 distinct | Kolmogorov-Smirnov | p <= 0.05 |
//! | <= 1000 | numeric <= 5 distinct, or categorical | chi-square (> 2 distinct), else two-proportion z-test | p < 0.05 |
//! | > 1000 | numeric, > 5 distinct | Wasserstein / max(sd of the reference, 0.001) | >= 0.1 |
//! | > 1000 | numeric <= 5 distinct, or categorical | Jensen-Shannon distance over the values' frequencies | >= 0.1 |
//!
//! The dataset drifts when the share of drifted columns is at least `drift_share` (0.5). PSI is reported beside,
//! over the reference deciles (the bins a bundle's profile keeps, so live PSI and `kiln drift` agree), not
//! Evidently's equal-width Sturges bins, and is not a default test (as in Evidently).

use std::collections::BTreeMap;

use serde::Serialize;

use super::profile::{bin_index, psi, quantile_edges};
use super::stats::{
    TestResult, chi2_contingency, chisquare, jensenshannon, ks_2samp_sorted, proportions_z_test, wasserstein_sorted,
};
use crate::pairwise_sum;

/// Evidently's size limit: a reference of at most this many values gets the exact tests (KS, chi-square, z).
pub const SMALL_REFERENCE: usize = 1000;
/// At most this many distinct values (over both samples) make a numeric column categorical for the test choice.
pub const FEW_VALUES: usize = 5;

/// Thresholds and the dataset rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DriftOptions {
    /// p-value threshold of KS, chi-square and the z-test
    pub p_value: f64,
    /// distance threshold of the normed Wasserstein distance and Jensen-Shannon
    pub distance: f64,
    /// the dataset drifts when at least this share of its columns drift
    pub drift_share: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions { p_value: 0.05, distance: 0.1, drift_share: 0.5 }
    }
}

/// The test that decides a column's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DriftTest {
    #[serde(rename = "ks")]
    Ks,
    #[serde(rename = "chisquare")]
    ChiSquare,
    #[serde(rename = "z")]
    ZTest,
    #[serde(rename = "wasserstein")]
    Wasserstein,
    #[serde(rename = "jensenshannon")]
    JensenShannon,
}

impl DriftTest {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftTest::Ks => "ks",
            DriftTest::ChiSquare => "chisquare",
            DriftTest::ZTest => "z",
            DriftTest::Wasserstein => "wasserstein",
            DriftTest::JensenShannon => "jensenshannon",
        }
    }

    /// Whether the score is a p-value (drift below the threshold) rather than a distance (drift at or above it).
    pub fn is_p_value(self) -> bool {
        matches!(self, DriftTest::Ks | DriftTest::ChiSquare | DriftTest::ZTest)
    }
}

/// A column's values on one side: sorted finite numbers, or category counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// sorted, finite
    Numeric(Vec<f64>),
    /// value -> rows
    Categorical(BTreeMap<String, u64>),
}

impl Sample {
    fn len(&self) -> usize {
        match self {
            Sample::Numeric(v) => v.len(),
            Sample::Categorical(c) => c.values().sum::<u64>() as usize,
        }
    }
}

/// What one column's comparison found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    pub name: String,
    /// `numeric` or `categorical`
    pub kind: &'static str,
    /// non-missing values compared on each side
    pub reference_values: usize,
    pub current_values: usize,
    /// the size the test choice is made on (the reference's rows; with a profile, the training rows)
    pub reference_rows: usize,
    pub current_missing_fraction: f64,
    /// distinct values over both samples
    pub distinct: usize,
    pub test: DriftTest,
    pub threshold: f64,
    /// the chosen test's p-value or distance
    pub score: f64,
    pub drifted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<TestResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// over Evidently's bins: the values' frequencies, or Sturges equal-width bins of both samples for a numeric
    /// column with more than 20 distinct reference values
    pub jensenshannon: f64,
    /// Evidently's chi-square: observed current counts against the reference counts scaled to the current size
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chisquare: Option<TestResult>,
    /// the 2 x k table of reference and current counts (scipy's `chi2_contingency`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_contingency: Option<TestResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z_test: Option<TestResult>,
}

/// The numeric reference a profile gives instead of the whole reference: its sample (sorted), the training rows,
/// their sd and their decile bins.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSummary<'a> {
    pub rows: usize,
    pub sd: f64,
    pub edges: &'a [f64],
    pub fractions: &'a [f64],
}

/// numpy's `np.std` (ddof 0).
pub fn population_sd(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = pairwise_sum(values) / n;
    let sq: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
    (pairwise_sum(&sq) / n).sqrt()
}

fn value_counts(sorted: &[f64]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for v in sorted {
        *out.entry(format!("{v:?}")).or_insert(0) += 1;
    }
    out
}

/// The distinct values of two sorted samples together (a merge, no sort).
fn distinct_sorted(a: &[f64], b: &[f64]) -> usize {
    let (mut i, mut j, mut n) = (0usize, 0usize, 0usize);
    let mut last: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let v = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if last != Some(v) {
            n += 1;
            last = Some(v);
        }
    }
    n
}

/// Compares one column. `reference`: the reference values (a profile's sample) with, for a profile, its summary;
/// `current`: the new values; `current_missing`: the new rows without a value.
pub fn compare_column(
    name: &str,
    reference: &Sample,
    summary: Option<ReferenceSummary<'_>>,
    current: &Sample,
    current_missing: usize,
    opts: &DriftOptions,
) -> ColumnDrift {
    let reference_rows = summary.map_or(reference.len(), |s| s.rows);
    let current_values = current.len();
    let missing_fraction = if current_values + current_missing == 0 {
        0.0
    } else {
        current_missing as f64 / (current_values + current_missing) as f64
    };
    match (reference, current) {
        (Sample::Numeric(r), Sample::Numeric(c)) => {
            numeric(name, r, summary, c, reference_rows, missing_fraction, opts)
        }
        _ => {
            let to_counts = |s: &Sample| match s {
                Sample::Numeric(v) => value_counts(v),
                Sample::Categorical(c) => c.clone(),
            };
            categorical(name, &to_counts(reference), &to_counts(current), reference_rows, missing_fraction, opts)
        }
    }
}

fn numeric(
    name: &str,
    r: &[f64],
    summary: Option<ReferenceSummary<'_>>,
    c: &[f64],
    reference_rows: usize,
    missing_fraction: f64,
    opts: &DriftOptions,
) -> ColumnDrift {
    let distinct = distinct_sorted(r, c);
    if distinct <= FEW_VALUES || r.is_empty() || c.is_empty() {
        let mut out = categorical(name, &value_counts(r), &value_counts(c), reference_rows, missing_fraction, opts);
        out.kind = "numeric";
        return out;
    }
    let ks = ks_2samp_sorted(r, c);
    let w = wasserstein_sorted(r, c);
    let sd = summary.map_or_else(|| population_sd(r), |s| s.sd);
    let w_norm = w / sd.max(0.001);
    let own_edges;
    let (edges, fractions): (&[f64], Vec<f64>) = match summary {
        Some(s) => (s.edges, s.fractions.to_vec()),
        None => {
            own_edges = quantile_edges(r, super::profile::QUANTILE_BINS);
            let mut counts = vec![0u64; own_edges.len() + 1];
            for &v in r {
                counts[bin_index(&own_edges, v)] += 1;
            }
            let n = r.len() as f64;
            (&own_edges, counts.iter().map(|&k| k as f64 / n).collect())
        }
    };
    let mut counts = vec![0u64; edges.len() + 1];
    for &v in c {
        counts[bin_index(edges, v)] += 1;
    }
    let psi_value = psi(&fractions, &counts);
    let js = jensenshannon_evidently_numeric(r, c);
    let (test, threshold, score, drifted) = if reference_rows <= SMALL_REFERENCE {
        (DriftTest::Ks, opts.p_value, ks.pvalue, ks.pvalue <= opts.p_value)
    } else {
        (DriftTest::Wasserstein, opts.distance, w_norm, w_norm >= opts.distance)
    };
    ColumnDrift {
        name: name.to_string(),
        kind: "numeric",
        reference_values: r.len(),
        current_values: c.len(),
        reference_rows,
        current_missing_fraction: missing_fraction,
        distinct,
        test,
        threshold,
        score,
        drifted,
        ks: Some(ks),
        wasserstein: Some(w),
        wasserstein_norm: Some(w_norm),
        psi: Some(psi_value),
        jensenshannon: js,
        chisquare: None,
        chi2_contingency: None,
        z_test: None,
    }
}

/// Evidently's Jensen-Shannon binning of a numeric column: Sturges equal-width bins over both samples
/// (`np.histogram_bin_edges(ref + cur, "sturges")`) when the reference has more than 20 distinct values, else the
/// values' frequencies.
fn jensenshannon_evidently_numeric(r: &[f64], c: &[f64]) -> f64 {
    let mut ref_distinct = r.to_vec();
    ref_distinct.dedup();
    if ref_distinct.len() <= 20 {
        let (rc, cc) = (value_counts(r), value_counts(c));
        let (p, q) = frequencies(&rc, &cc);
        return jensenshannon(&p, &q);
    }
    let n = (r.len() + c.len()) as f64;
    let bins = (n.log2() + 1.0).ceil() as usize;
    let lo = r[0].min(c[0]);
    let hi = r[r.len() - 1].max(c[c.len() - 1]);
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
    edges[bins] = hi;
    let hist = |values: &[f64]| -> Vec<f64> {
        let mut counts = vec![0u64; bins];
        for &v in values {
            // np.histogram: [e_i, e_{i+1}), the last bin closed
            let i = edges.partition_point(|&e| e <= v).saturating_sub(1).min(bins - 1);
            counts[i] += 1;
        }
        counts.iter().map(|&k| k as f64 / values.len() as f64).collect()
    };
    jensenshannon(&hist(r), &hist(c))
}

/// The fractions of each value (union of both sides' values) on each side.
fn frequencies(r: &BTreeMap<String, u64>, c: &BTreeMap<String, u64>) -> (Vec<f64>, Vec<f64>) {
    let keys: std::collections::BTreeSet<&String> = r.keys().chain(c.keys()).collect();
    let (nr, nc) = (r.values().sum::<u64>() as f64, c.values().sum::<u64>() as f64);
    let p = keys.iter().map(|k| r.get(*k).copied().unwrap_or(0) as f64 / nr).collect();
    let q = keys.iter().map(|k| c.get(*k).copied().unwrap_or(0) as f64 / nc).collect();
    (p, q)
}

fn categorical(
    name: &str,
    r: &BTreeMap<String, u64>,
    c: &BTreeMap<String, u64>,
    reference_rows: usize,
    missing_fraction: f64,
    opts: &DriftOptions,
) -> ColumnDrift {
    let keys: Vec<&String> = r.keys().chain(c.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let distinct = keys.len();
    let (nr, nc) = (r.values().sum::<u64>(), c.values().sum::<u64>());
    let (p, q) = frequencies(r, c);
    let empty = nr == 0 || nc == 0;
    let js = if empty { f64::NAN } else { jensenshannon(&p, &q) };
    let chi = (!empty && distinct >= 2).then(|| {
        let k_norm = nc as f64 / nr as f64;
        let f_exp: Vec<f64> = keys.iter().map(|k| r.get(*k).copied().unwrap_or(0) as f64 * k_norm).collect();
        let f_obs: Vec<f64> = keys.iter().map(|k| c.get(*k).copied().unwrap_or(0) as f64).collect();
        chisquare(&f_obs, &f_exp).unwrap_or(TestResult { statistic: f64::NAN, pvalue: f64::NAN })
    });
    let contingency = (!empty && distinct >= 2).then(|| {
        let table = vec![
            keys.iter().map(|k| r.get(*k).copied().unwrap_or(0) as f64).collect(),
            keys.iter().map(|k| c.get(*k).copied().unwrap_or(0) as f64).collect(),
        ];
        chi2_contingency(&table).map_or(TestResult { statistic: f64::NAN, pvalue: f64::NAN }, |(t, _)| t)
    });
    let z = (!empty && distinct <= 2).then(|| {
        if distinct == 1 {
            return TestResult { statistic: 0.0, pvalue: 1.0 };
        }
        let first = keys[0];
        let ones = |m: &BTreeMap<String, u64>| m.iter().filter(|(k, _)| *k != first).map(|(_, v)| v).sum::<u64>();
        proportions_z_test(ones(r), nr, ones(c), nc)
    });
    let (test, threshold, score, drifted) = if reference_rows <= SMALL_REFERENCE {
        if distinct > 2 {
            let p = chi.map_or(f64::NAN, |t| t.pvalue);
            (DriftTest::ChiSquare, opts.p_value, p, p < opts.p_value)
        } else {
            let p = z.map_or(f64::NAN, |t| t.pvalue);
            (DriftTest::ZTest, opts.p_value, p, p < opts.p_value)
        }
    } else {
        (DriftTest::JensenShannon, opts.distance, js, js >= opts.distance)
    };
    ColumnDrift {
        name: name.to_string(),
        kind: "categorical",
        reference_values: nr as usize,
        current_values: nc as usize,
        reference_rows,
        current_missing_fraction: missing_fraction,
        distinct,
        test,
        threshold,
        score,
        drifted,
        ks: None,
        wasserstein: None,
        wasserstein_norm: None,
        psi: (!empty).then(|| super::profile::psi_fractions(&p, &q)),
        jensenshannon: js,
        chisquare: chi,
        chi2_contingency: contingency,
        z_test: z,
    }
}

/// The dataset verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub columns: usize,
    pub drifted_columns: usize,
    pub share: f64,
    pub drift_share: f64,
    pub drifted: bool,
}

/// The share of drifted columns against `drift_share` (no column: no drift).
pub fn dataset_drift(columns: &[ColumnDrift], opts: &DriftOptions) -> DatasetDrift {
    let drifted_columns = columns.iter().filter(|c| c.drifted).count();
    let share = if columns.is_empty() { 0.0 } else { drifted_columns as f64 / columns.len() as f64 };
    DatasetDrift {
        columns: columns.len(),
        drifted_columns,
        share,
        drift_share: opts.drift_share,
        drifted: !columns.is_empty() && share >= opts.drift_share,
    }
}
