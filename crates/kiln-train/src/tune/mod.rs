//! The search-space and sampler core of `kiln tune`, Optuna 4.9's algorithms and defaults in pure code:
//! distributions with Optuna's internal representation and `distribution_json` text ([`space`]), trials mapping
//! 1:1 onto Optuna's storage schema ([`trial`]), random, grid and TPE samplers seeded and reproducible (the same
//! seed and history give Optuna's own suggestions: the generator is numpy's legacy Mersenne Twister), and the
//! median and successive-halving pruners. No I/O, no storage, no objective: the tuning loop that runs trials and
//! stores the study in Optuna's schema builds on this.

mod importance;
mod parzen;
mod pruner;
mod report;
mod sampler;
mod space;
mod study;
mod trial;
mod truncnorm;

#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;

pub use importance::ped_anova_importances;
pub use parzen::{ParzenEstimator, ParzenParams, default_weights};
pub use pruner::{
    MedianPruner, MinResource, PercentilePruner, Pruner, SuccessiveHalvingPruner, ThresholdPruner, WilcoxonPruner,
    nan_percentile, wilcoxon_zsplit_p_value,
};
pub use report::{edf_chart, study_charts};

pub use sampler::{
    GridSampler, RandomSampler, Sampler, SearchSpace, TpeOptions, TpeSampler, TrialDraw, best_candidate, default_gamma,
    sample_trial, split,
};
pub use space::{Distribution, ParamValue};
pub use study::{
    CANDIDATE_PARAM, Candidate, Competition, Heartbeat, Interrupt, LeaderRow, Objective, PipelineParam, PrunerSpec,
    SamplerSpec, Section, StudyRun, StudySpec, TrialRecord, TuneOutcome, TunePorts, Winner, check_enqueue, check_space,
    frozen, leaderboard_header, leaderboard_rows, pipeline_with, scored_over_steps, tune,
};
pub use trial::{Direction, FrozenTrial, TrialState};

use kiln_domain::Code;

/// A search space, a stored distribution or a sampler that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// a distribution that Optuna would refuse
    #[error("search space: {0}")]
    Space(String),
    /// a `distribution_json` text that is not one Optuna writes or reads
    #[error("distribution_json: {0}")]
    DistributionJson(String),
    #[error("sampler: {0}")]
    Sampler(String),
    #[error("pruner: {0}")]
    Pruner(String),
}

impl TuneError {
    pub fn code(&self) -> Code {
        match self {
            TuneError::Space(_) | TuneError::Sampler(_) | TuneError::Pruner(_) => Code::ConfigInvalid,
            TuneError::DistributionJson(_) => Code::StoreCorrupt,
        }
    }
}
