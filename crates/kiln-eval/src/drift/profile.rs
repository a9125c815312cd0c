//! The reference profile a bundle carries (`kiln/profile.json`): what the training rows looked like, column by
//! column, so that new data can be compared with them without the training file.
//!
//! Key decisions: built from the training rows only; a numeric column keeps its quantile bins (the reference
//! deciles, deduplicated, as numpy's linear `np.quantile`), the fraction of rows in each, mean, population sd
//! (numpy's `np.std`, ddof 0, what Evidently normalises the Wasserstein distance by), min, max, the number of
//! distinct values, and a deterministic sample of at most [`SAMPLE_CAP`] values for the exact two-sample tests; a
//! categorical column keeps the counts of its [`CATEGORY_CAP`] most frequent values. Missing values (NaN, infinite,
//! empty) are counted, never binned. Serialised as compact JSON with the version first; reading refuses unknown
//! fields and other versions, naming the field.

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// The version of `kiln/profile.json` this kiln writes and reads.
pub const PROFILE_VERSION: u32 = 1;
/// At most this many values of a numeric column are kept as its sample (a seeded reservoir when there are more).
pub const SAMPLE_CAP: usize = 500;
/// At most this many values of a categorical column are kept with their counts (the most frequent; the rest are
/// summed in `other`).
pub const CATEGORY_CAP: usize = 50;
/// The sample cap of each series of a panel (many series, so fewer values each).
pub const SERIES_SAMPLE_CAP: usize = 200;
/// Quantile bins of a numeric column: the reference deciles.
pub const QUANTILE_BINS: usize = 10;
/// The seed of the reservoir sample (the sample depends on the rows alone).
const SAMPLE_SEED: u64 = 0x6b69_6c6e_2d64_7269;

/// What the training rows looked like: every raw input column, every model feature, the predictions and the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// [`PROFILE_VERSION`]
    pub version: u32,
    /// the rows profiled (the training rows)
    pub rows: u64,
    /// the raw input columns the pipeline reads (the time column of a forecast is left out: it drifts by design)
    pub inputs: Vec<ColumnProfile>,
    /// the model's input columns, after preprocessing and selection (bins and moments, no sample)
    pub features: Vec<ColumnProfile>,
    /// the model's output on the training rows (a classifier: the probability of the positive class)
    pub prediction: Option<ColumnProfile>,
    /// the target in its own units on the training rows
    pub target: Option<ColumnProfile>,
    /// a panel: the raw input columns, the prediction and the target of each series, in key order
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<SeriesProfile>,
}

/// One series of a panel's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesProfile {
    pub series: String,
    pub rows: u64,
    pub inputs: Vec<ColumnProfile>,
    pub prediction: Option<ColumnProfile>,
    pub target: Option<ColumnProfile>,
}

/// One column of the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProfile {
    pub name: String,
    /// rows, missing ones included
    pub count: u64,
    /// rows without a value (NaN, infinite, empty)
    pub missing: u64,
    /// `missing / count` (0 when there are no rows)
    pub null_fraction: f64,
    /// a numeric column with at least one value
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericProfile>,
    /// a categorical column with at least one value
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical: Option<CategoricalProfile>,
}

/// The distribution of a numeric column's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericProfile {
    pub mean: f64,
    /// population standard deviation (ddof 0, numpy's `np.std`)
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    /// distinct values
    pub unique: u64,
    /// the inner bin edges, strictly increasing: bin 0 is `x < edges[0]`, bin i is `edges[i-1] <= x < edges[i]`,
    /// the last `x >= edges[last]` ([`bin_index`]); `edges.len() + 1` bins
    pub edges: Vec<f64>,
    /// the fraction of the values in each bin (sums to 1)
    pub fractions: Vec<f64>,
    /// at most [`SAMPLE_CAP`] of the values, a seeded reservoir sample (all of them, in order, when fewer); empty
    /// for a model feature (watched by PSI over its bins)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<f64>,
}

/// The distribution of a categorical column's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalProfile {
    /// distinct values
    pub unique: u64,
    /// the [`CATEGORY_CAP`] most frequent values with their counts, most frequent first (ties by value)
    pub values: Vec<CategoryCount>,
    /// the count of the values beyond the cap
    pub other: u64,
}

/// A value and how many rows hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryCount {
    pub value: String,
    pub count: u64,
}

impl Profile {
    /// Reads `kiln/profile.json`.
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] naming the field that does not parse, or the version when it is not
    /// [`PROFILE_VERSION`].
    pub fn from_json(bytes: &[u8]) -> Result<Profile, EvalError> {
        let invalid = |reason: String| EvalError::InvalidSpec { key: "kiln/profile.json".into(), reason };
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(|e| invalid(format!("version: {e}")))?;
        if version.version != PROFILE_VERSION {
            return Err(invalid(format!(
                "version: this kiln reads version {PROFILE_VERSION}, the profile has {}",
                version.version
            )));
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| invalid(e.to_string()))
    }

    /// The profile as `kiln/profile.json` holds it (compact JSON, a newline at the end).
    pub fn to_json(&self) -> Vec<u8> {
        // a profile holds numbers, strings and lists only (no map with non-string keys), which serde_json always
        // writes: a failure would be a bug in this type, never an empty profile written in silence
        let mut bytes = serde_json::to_vec(self).expect("a profile serializes to JSON");
        bytes.push(b'\n');
        bytes
    }

    /// The profile of a model feature, by name.
    pub fn feature(&self, name: &str) -> Option<&ColumnProfile> {
        self.features.iter().find(|c| c.name == name)
    }

    /// The profile of a raw input column, by name.
    pub fn input(&self, name: &str) -> Option<&ColumnProfile> {
        self.inputs.iter().find(|c| c.name == name)
    }
}

impl ColumnProfile {
    /// The profile of a numeric column; NaN and infinite values count as missing.
    pub fn numeric(name: &str, values: &[f64]) -> ColumnProfile {
        ColumnProfile::numeric_sampled(name, values, SAMPLE_CAP)
    }

    /// [`ColumnProfile::numeric`] with a sample of at most `cap` values (a panel's series keep fewer).
    pub fn numeric_sampled(name: &str, values: &[f64], cap: usize) -> ColumnProfile {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let missing = (values.len() - finite.len()) as u64;
        ColumnProfile {
            name: name.to_string(),
            count: values.len() as u64,
            missing,
            null_fraction: fraction(missing, values.len() as u64),
            numeric: NumericProfile::sampled(&finite, cap),
            categorical: None,
        }
    }

    /// The profile of a categorical column; `None` and empty texts count as missing.
    pub fn categorical<S: AsRef<str>>(name: &str, values: &[Option<S>]) -> ColumnProfile {
        let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        let mut missing = 0u64;
        for v in values {
            match v.as_ref().map(AsRef::as_ref) {
                Some(s) if !s.is_empty() => *counts.entry(s).or_default() += 1,
                _ => missing += 1,
            }
        }
        let categorical = (!counts.is_empty()).then(|| {
            let unique = counts.len() as u64;
            let mut all: Vec<(&str, u64)> = counts.into_iter().collect();
            all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let other = all.iter().skip(CATEGORY_CAP).map(|(_, c)| c).sum();
            all.truncate(CATEGORY_CAP);
            CategoricalProfile {
                unique,
                values: all.into_iter().map(|(v, count)| CategoryCount { value: v.to_string(), count }).collect(),
                other,
            }
        });
        ColumnProfile {
            name: name.to_string(),
            count: values.len() as u64,
            missing,
            null_fraction: fraction(missing, values.len() as u64),
            numeric: None,
            categorical,
        }
    }
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

impl NumericProfile {
    /// The profile of finite values; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<NumericProfile> {
        NumericProfile::sampled(values, SAMPLE_CAP)
    }

    /// [`NumericProfile::of`] with a sample of at most `cap` values.
    pub fn sampled(values: &[f64], cap: usize) -> Option<NumericProfile> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = crate::pairwise_sum(values) / n;
        let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
        let sd = (crate::pairwise_sum(&squares) / n).sqrt();
        let mut sorted = values.to_vec();
        // values equal under `total_cmp` have the same bits, so an unstable sort gives the very same order
        sorted.sort_unstable_by(f64::total_cmp);
        let unique = 1 + sorted.windows(2).filter(|w| w[0] != w[1]).count() as u64;
        let edges = quantile_edges(&sorted, QUANTILE_BINS);
        let mut counts = vec![0u64; edges.len() + 1];
        for &v in values {
            counts[bin_index(&edges, v)] += 1;
        }
        let fractions = counts.iter().map(|&c| c as f64 / n).collect();
        Some(NumericProfile {
            mean,
            sd,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            unique,
            edges,
            fractions,
            sample: reservoir(values, cap, SAMPLE_SEED),
        })
    }
}

/// numpy's `np.quantile(x, q)` (method `linear`) of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    // numpy's virtual index for `linear` (alpha = beta = 1), computed as numpy computes it
    let n = sorted.len() as f64;
    let (alpha, beta) = (1.0, 1.0);
    let pos = (n * q + (alpha + q * (1.0 - alpha - beta)) - 1.0).clamp(0.0, n - 1.0);
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    // numpy's _lerp: a + (b - a) * t, and b - (b - a) * (1 - t) when t >= 0.5
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if frac >= 0.5 { b - diff * (1.0 - frac) } else { a + diff * frac }
}

/// The inner edges of `bins` quantile bins of sorted values: `np.unique(np.quantile(x, [1/bins, ..., (bins-1)/bins]))`.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|i| quantile_sorted(sorted, i as f64 / bins as f64)).collect();
    edges.dedup();
    edges
}

/// The bin of `x` among inner edges (strictly increasing): the number of edges `<= x`, numpy's
/// `np.searchsorted(edges, x, side="right")`. A NaN falls in bin 0; callers count missing values apart.
pub fn bin_index(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e <= x)
}

/// The smallest fraction an empty bin is given before taking logarithms, Evidently's rule: 0.0001, or a millionth
/// of the smallest non-zero fraction when that is below 0.0001.
pub fn fill_empty(fractions: &[f64]) -> Vec<f64> {
    let min_nonzero = fractions.iter().copied().filter(|&f| f > 0.0).fold(f64::INFINITY, f64::min);
    let eps = if min_nonzero <= 0.0001 { min_nonzero / 1e6 } else { 0.0001 };
    fractions.iter().map(|&f| if f == 0.0 { eps } else { f }).collect()
}

/// The population stability index of current counts against reference fractions, over the same bins:
/// `sum((c - r) * ln(c / r))` with `c` the current fractions, empty bins of either side filled by [`fill_empty`].
/// NaN when there is no current value or the bins differ in number.
pub fn psi(reference_fractions: &[f64], current_counts: &[u64]) -> f64 {
    let total: u64 = current_counts.iter().sum();
    if total == 0 || reference_fractions.len() != current_counts.len() {
        return f64::NAN;
    }
    let current: Vec<f64> = current_counts.iter().map(|&c| c as f64 / total as f64).collect();
    psi_fractions(reference_fractions, &current)
}

/// [`psi`] over two vectors of fractions.
pub fn psi_fractions(reference: &[f64], current: &[f64]) -> f64 {
    let r = fill_empty(reference);
    let c = fill_empty(current);
    let terms: Vec<f64> = r.iter().zip(&c).map(|(r, c)| (c - r) * (c / r).ln()).collect();
    crate::pairwise_sum(&terms)
}

/// A deterministic sample of at most `cap` values: all of them in order when there are no more, else reservoir
/// sampling (Algorithm R) driven by a splitmix64 stream seeded with `seed`.
pub fn reservoir(values: &[f64], cap: usize, seed: u64) -> Vec<f64> {
    if values.len() <= cap {
        return values.to_vec();
    }
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut sample = values[..cap].to_vec();
    for (i, &v) in values.iter().enumerate().skip(cap) {
        let j = (next() % (i as u64 + 1)) as usize;
        if j < cap {
            sample[j] = v;
        }
    }
    sample
}
