//! Drift: is new data distributed like the training data? The reference [`Profile`] a bundle carries, the
//! two-sample statistics (Kolmogorov-Smirnov with scipy's exact and asymptotic p-values, Wasserstein, Jensen-Shannon,
//! chi-square, PSI), and the per-column test choice with the dataset verdict.
//!
//! Key decision: every statistic equals scipy's on the same samples (tested to 1e-9 in `tests/test_drift.py`); the
//! default test per column is Evidently's, so a verdict can be compared with Evidently's report. Pure functions
//! over slices: no file, no chart, no clock.

mod compare;
mod profile;
mod stats;

pub use compare::{
    ColumnDrift, DatasetDrift, DriftOptions, DriftTest, FEW_VALUES, ReferenceSummary, SMALL_REFERENCE, Sample,
    compare_column, dataset_drift, population_sd,
};
pub use profile::{
    CATEGORY_CAP, CategoricalProfile, CategoryCount, ColumnProfile, NumericProfile, PROFILE_VERSION, Profile,
    QUANTILE_BINS, SAMPLE_CAP, SERIES_SAMPLE_CAP, SeriesProfile, bin_index, fill_empty, psi, psi_fractions,
    quantile_edges, quantile_sorted, reservoir,
};

pub use stats::{
    KS_MAX_EXACT_N, TestResult, chi2_contingency, chi2_sf, chisquare, gamma_q, jensenshannon, ks_2samp,
    ks_2samp_pvalue, ks_2samp_sorted, kstwo_sf, proportions_z_test, smirnov, wasserstein_distance, wasserstein_sorted,
};

#[cfg(test)]
mod tests;
