//! The tuning loop of `kiln tune`: trials drawn by a sampler from a study kept in a [`StudyStorage`] (Optuna's
//! schema, so Optuna, its dashboard and Python workers share it), each trial scored on the backtest folds of the
//! training part (the pipeline refitted in every fold, the test tail never seen), pruned on its folds' scores, and
//! tracked as a nested MLflow run under the study's parent run; then a leaderboard of the candidates read back from
//! the storage (so trials of earlier invocations, other workers and Python count) and the winner's configuration.
//!
//! Key decisions: the design is built and folded once per study, not once per trial (the features do not depend on
//! the hyperparameters); folds of one trial run in order (a pruner judges fold k against the other trials' fold k),
//! trials run `jobs` at a time, each model with `cores / jobs` library threads so the cores are never
//! oversubscribed; trial numbers come from the storage, so any number of processes may share a study. A trial whose
//! fit fails or whose score is not finite is recorded FAIL with its reason (`fail_reason`) and the study goes on;
//! an error of the storage or the tracker stops the study. A pruned trial keeps its last fold score as its value,
//! as Optuna records it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use kiln_domain::{
    CLASSIC_ML_KIND, EXPERIMENT_KIND_TAG, Enqueued, ExperimentId, Frame, MetricPoint, RELATIVE_PARAMS_KEY, RunId,
    RunInfo, RunStatus, StoredParam, StoredTrial, StudyStorage, Tracker,
};
use kiln_eval::{Size, Splitter};
use kiln_features::{PreprocessSpec, SelectorSpec};
use kiln_models::{ModelConfig, ModelSpec};
use serde_json::Value;

use super::{
    Direction, Distribution, FrozenTrial, GridSampler, MedianPruner, ParamValue, PercentilePruner, Pruner,
    RandomSampler, Sampler, SuccessiveHalvingPruner, ThresholdPruner, TpeOptions, TpeSampler, TrialDraw, TrialState,
    TuneError, WilcoxonPruner,
};
use crate::TrainError;
use crate::backtest::{BacktestSpec, FoldOutcome, FoldPlan, FoldedRows, fit_fold, plan_folds};
use crate::fit::{FitSpec, Progress, check_model_fits_task};
use crate::prepare::TaskSpec;
use crate::train::{Ports, log_params_chunked};

/// The name of the parameter that picks the candidate in a joint study of several candidates.
pub const CANDIDATE_PARAM: &str = "model";

/// One competing model: a model kind with fixed params and a search space over others.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// unique among the candidates (default: the kind)
    pub name: String,
    /// a `model.kind` of the table
    pub kind: String,
    /// params every trial of this candidate gets
    pub params: serde_json::Map<String, Value>,
    /// the searched params, in the order they are drawn
    pub space: Vec<(String, Distribution)>,
}

impl Candidate {
    /// The model of this candidate with `values` for its searched params.
    ///
    /// # Errors
    /// The model table's message: an unknown param (naming the known ones) or a value out of its range.
    pub fn model_config(&self, values: &[(String, ParamValue)]) -> Result<ModelConfig, String> {
        let mut params = self.params.clone();
        for (name, value) in values {
            params.insert(name.clone(), serde_json::to_value(value).map_err(|e| e.to_string())?);
        }
        let config = serde_json::json!({"kind": self.kind, "params": params});
        serde_json::from_value(config).map_err(|e| e.to_string())
    }

    /// The checked model for `values`.
    ///
    /// # Errors
    /// As [`Candidate::model_config`], or the model's own range checks.
    pub fn model(&self, values: &[(String, ParamValue)], classification: bool) -> Result<ModelSpec, String> {
        self.model_config(values)?.check(classification).map_err(|e| e.to_string())
    }
}

/// Which pipeline section a searched pipeline parameter changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Preprocess,
    Selection,
}

/// A searched parameter of the pipeline: `selection.k_best.k` is field `k` of the `k_best` step of `selection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineParam {
    pub section: Section,
    pub step: String,
    pub field: String,
}

impl PipelineParam {
    /// Reads `preprocess.<step>.<field>` or `selection.<step>.<field>`.
    ///
    /// # Errors
    /// A name of another shape, with the shape expected.
    pub fn parse(name: &str) -> Result<PipelineParam, String> {
        let parts: Vec<&str> = name.split('.').collect();
        let section = match parts.first() {
            Some(&"preprocess") => Section::Preprocess,
            Some(&"selection") => Section::Selection,
            _ => {
                return Err(format!(
                    "'{name}' is not a pipeline parameter (preprocess.<step>.<field> or selection.<step>.<field>)"
                ));
            }
        };
        match parts.as_slice() {
            [_, step, field] if !step.is_empty() && !field.is_empty() => {
                Ok(PipelineParam { section, step: (*step).to_string(), field: (*field).to_string() })
            }
            _ => Err(format!(
                "'{name}' should name a step and its field, e.g. selection.k_best.k or preprocess.scale.method"
            )),
        }
    }
}

/// The pipeline (preprocessing and selection) with searched values set.
///
/// # Errors
/// A step that is not in the section (naming those that are), a step that appears twice, or a value the step
/// refuses (its own message).
pub fn pipeline_with(
    preprocess: &[PreprocessSpec],
    selection: &[SelectorSpec],
    values: &[(PipelineParam, ParamValue)],
) -> Result<(Vec<PreprocessSpec>, Vec<SelectorSpec>), String> {
    let mut pre = serde_json::to_value(preprocess).map_err(|e| e.to_string())?;
    let mut sel = serde_json::to_value(selection).map_err(|e| e.to_string())?;
    for (param, value) in values {
        let (list, section) = match param.section {
            Section::Preprocess => (&mut pre, "preprocess"),
            Section::Selection => (&mut sel, "selection"),
        };
        let steps = list.as_array_mut().ok_or("a pipeline section is not a list")?;
        let names: Vec<String> =
            steps.iter().filter_map(|s| s.as_object().and_then(|o| o.keys().next().cloned())).collect();
        let at: Vec<usize> = names.iter().enumerate().filter(|(_, n)| **n == param.step).map(|(i, _)| i).collect();
        let i = match at.as_slice() {
            [i] => *i,
            [] => {
                return Err(format!(
                    "{section} has no '{}' step (it has: {})",
                    param.step,
                    if names.is_empty() { "no steps".to_string() } else { names.join(", ") }
                ));
            }
            _ => {
                return Err(format!(
                    "{section} has {} '{}' steps; only a step that appears once can be searched",
                    at.len(),
                    param.step
                ));
            }
        };
        let step = steps[i].get_mut(&param.step).ok_or("a pipeline step without a body")?;
        let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
        match step {
            Value::Object(fields) => {
                fields.insert(param.field.clone(), value);
            }
            other => *other = serde_json::json!({ param.field.clone(): value }),
        }
    }
    let pre: Vec<PreprocessSpec> =
        serde_json::from_value(pre).map_err(|e| format!("preprocess with the searched values: {e}"))?;
    let sel: Vec<SelectorSpec> =
        serde_json::from_value(sel).map_err(|e| format!("selection with the searched values: {e}"))?;
    Ok((pre, sel))
}

/// Which sampler draws the trials (each seeded; Optuna's defaults where not set).
#[derive(Debug, Clone)]
pub enum SamplerSpec {
    Tpe {
        options: TpeOptions,
        seed: u32,
    },
    Random {
        seed: u32,
    },
    /// every combination of the grid (each searched param's choices), in Optuna's random order
    Grid {
        seed: u32,
    },
}

/// Which pruner judges a trial after each fold.
#[derive(Debug, Clone)]
pub enum PrunerSpec {
    None,
    Median(MedianPruner),
    Percentile(PercentilePruner),
    Threshold(ThresholdPruner),
    SuccessiveHalving(SuccessiveHalvingPruner),
    Wilcoxon(WilcoxonPruner),
}

/// How candidates compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Competition {
    /// one study: the candidate is a categorical parameter (`model`), each candidate's space conditional on it
    Joint,
    /// one study per candidate (`<study>.<candidate>`), each with the trial budget
    PerCandidate,
}

/// What a tuning study is scored by: the mean over the folds of a test metric, or the composite score of the
/// folds (and the trading simulation of their out-of-fold forecasts).
#[derive(Debug, Clone)]
pub struct Objective {
    /// a metric name of the task (`rmse`, `roc_auc`, ...), read from each fold's `test/<metric>`; `score` with
    /// `score` set
    pub metric: String,
    pub direction: Direction,
    /// the composite score (`backtest.score`), computed once every fold is scored (no intermediate values: a pruner
    /// has nothing to judge)
    pub score: Option<crate::ScoreSpec>,
    /// the trading simulation the score may weigh (`backtest.trading`)
    pub trading: Option<kiln_eval::TradingSpec>,
}

/// When the study sends heartbeats, and when a silent trial counts as dead.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub interval: Duration,
    /// a running trial whose last heartbeat is older than this is failed by the next worker that starts a trial
    pub grace: Duration,
}

/// Everything a study needs.
#[derive(Debug, Clone)]
pub struct StudySpec<'a> {
    /// the study name in the storage
    pub name: String,
    pub candidates: Vec<Candidate>,
    pub competition: Competition,
    /// searched pipeline params, drawn after the candidate's
    pub pipeline: Vec<(String, Distribution)>,
    pub task: &'a TaskSpec,
    pub preprocess: &'a [PreprocessSpec],
    pub selection: &'a [SelectorSpec],
    /// the folds of the training part every trial is scored on
    pub splitter: Splitter,
    pub validation: Option<Size>,
    pub seed: u64,
    pub objective: Objective,
    pub sampler: SamplerSpec,
    pub pruner: PrunerSpec,
    /// trials this invocation runs (per study with [`Competition::PerCandidate`]); `None`: until `timeout`
    pub n_trials: Option<usize>,
    /// no trial starts after this
    pub timeout: Option<Duration>,
    /// trials run at once
    pub jobs: usize,
    pub heartbeat: Option<Heartbeat>,
    /// configurations to try first (Optuna's `enqueue_trial(..., skip_if_exists=True)`): parameter values by the
    /// study's names (`model`, `lightgbm.num_leaves`, `preprocess.scale.method`); with
    /// [`Competition::PerCandidate`], `model` names the candidate's study. Checked by [`check_enqueue`].
    pub enqueue: Vec<BTreeMap<String, ParamValue>>,
}

/// The tracking of a study: the MLflow experiment, the parent run's name and tags, the params describing the inputs.
#[derive(Debug, Clone)]
pub struct StudyRun {
    pub experiment: String,
    pub run_name: String,
    pub tags: Vec<(String, String)>,
    pub input_params: Vec<(String, String)>,
    pub config_yaml: String,
}

/// How a trial of this invocation ended.
#[derive(Debug, Clone)]
pub struct TrialRecord {
    pub study: String,
    pub number: i64,
    pub candidate: String,
    pub state: TrialState,
    pub value: Option<f64>,
    pub params: Vec<(String, ParamValue)>,
    pub seconds: f64,
    pub fail_reason: Option<String>,
    pub run_id: RunId,
    /// the naive baseline's mean test metric over the same folds (persistence, the training mean or the majority
    /// class: the same for every trial), when every fold was scored
    pub baseline: Option<f64>,
}

/// One line of the leaderboard: a candidate's best complete trial over every trial in the storage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaderRow {
    pub candidate: String,
    pub study: String,
    /// the best trial's number and objective value (`None`: no complete trial)
    pub best_trial: Option<i64>,
    pub best_value: Option<f64>,
    /// mean and sample standard deviation of the best trial's fold scores
    pub fold_mean: Option<f64>,
    pub fold_sd: Option<f64>,
    /// the best trial's fit time over its folds, seconds
    pub fit_seconds: Option<f64>,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    /// the best trial's params, as the objective saw them (without the candidate prefix)
    pub best_params: Vec<(String, String)>,
}

/// The best configuration found: what `kiln tune` refits on the whole training part.
#[derive(Debug, Clone)]
pub struct Winner {
    pub candidate: String,
    pub study: String,
    pub trial: i64,
    pub value: f64,
    pub model: ModelSpec,
    pub preprocess: Vec<PreprocessSpec>,
    pub selection: Vec<SelectorSpec>,
    /// its params as the objective saw them (model params by name, pipeline params by path)
    pub params: Vec<(String, ParamValue)>,
}

/// What a study produced.
#[derive(Debug)]
pub struct TuneOutcome {
    pub parent: RunInfo,
    /// the trials this invocation ran, by study and number
    pub trials: Vec<TrialRecord>,
    /// best first (the candidates without a complete trial last)
    pub leaderboard: Vec<LeaderRow>,
    pub winner: Option<Winner>,
    /// trials of killed workers that this invocation failed (by heartbeat)
    pub stale_failed: Vec<(String, i64)>,
    /// the naive baseline's mean test metric over the folds every trial is scored on
    pub baseline: Option<f64>,
}

/// The ports of a study: the trial storage beside the tracking ones, shared by the trials running at once.
/// A request to stop a study at once (Ctrl-C, SIGTERM): no trial starts after it; this process's running trials are
/// marked FAIL with the reason `interrupted` and the parent run KILLED, then `exit` ends the process (a fit in
/// progress inside a library cannot be stopped). Without it, a killed worker's trials stay RUNNING until another
/// worker's heartbeat check fails them.
pub struct Interrupt<'a> {
    /// set by the signal handler
    pub requested: &'a AtomicBool,
    /// ends the process once the study's state is written
    pub exit: &'a (dyn Fn() + Sync),
}

/// How often a study checks for an [`Interrupt`].
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

pub struct TunePorts<'a> {
    pub storage: &'a dyn StudyStorage,
    pub tracker: &'a (dyn Tracker + Sync),
    pub artifacts: &'a (dyn kiln_domain::ArtifactStore + Sync),
    pub registry: &'a (dyn kiln_domain::ModelRegistry + Sync),
    pub charts: &'a (dyn kiln_domain::ChartRenderer + Sync),
    /// milliseconds since the epoch, now
    pub clock: &'a (dyn Fn() -> i64 + Sync),
    /// stops the study at once when requested
    pub interrupt: Option<&'a Interrupt<'a>>,
}

impl<'a> TunePorts<'a> {
    /// The tracking ports as the train use case takes them.
    pub fn tracking(&self) -> Ports<'a> {
        Ports {
            tracker: self.tracker,
            artifacts: self.artifacts,
            registry: self.registry,
            charts: self.charts,
            clock: self.clock,
            champion: None,
        }
    }
}

/// Checks every candidate's and the pipeline's searched names and ranges before anything runs: each searched
/// parameter at its low and high end (every choice of a categorical) must make a model the table accepts and a
/// pipeline the steps accept. Returns `(key, message)` for the first that does not, `key` relative to `tune.`.
pub fn check_space(
    candidates: &[Candidate],
    pipeline: &[(String, Distribution)],
    preprocess: &[PreprocessSpec],
    selection: &[SelectorSpec],
    classification: bool,
) -> Result<(), (String, String)> {
    for (c, candidate) in candidates.iter().enumerate() {
        if let Err(e) = candidate.model_config(&[]) {
            return Err((format!("candidates[{c}].params"), e));
        }
        let ends = |high: bool| -> Vec<(String, ParamValue)> {
            candidate.space.iter().map(|(n, d)| (n.clone(), end_value(d, high))).collect()
        };
        for (name, dist) in &candidate.space {
            // the name alone first, so that an unknown name is reported as such
            if let Err(e) = candidate.model_config(&[(name.clone(), end_value(dist, false))]) {
                return Err((format!("candidates[{c}].space.{name}"), e));
            }
        }
        for high in [false, true] {
            if let Err(e) = candidate.model(&ends(high), classification) {
                let which = if high { "high" } else { "low" };
                let key = candidate
                    .space
                    .iter()
                    .find(|(n, _)| e.contains(n.as_str()))
                    .map_or_else(|| format!("candidates[{c}].space"), |(n, _)| format!("candidates[{c}].space.{n}"));
                return Err((key, format!("at the {which} end of the space: {e}")));
            }
        }
        for (name, dist) in &candidate.space {
            if let Distribution::Categorical { choices } = dist {
                for choice in choices {
                    let mut values = ends(false);
                    if let Some(v) = values.iter_mut().find(|(n, _)| n == name) {
                        v.1 = choice.clone();
                    }
                    if let Err(e) = candidate.model(&values, classification) {
                        return Err((format!("candidates[{c}].space.{name}"), format!("choice {choice}: {e}")));
                    }
                }
            }
        }
    }
    let mut params = Vec::new();
    for (name, _) in pipeline {
        params.push(PipelineParam::parse(name).map_err(|e| (format!("space.{name}"), e))?);
    }
    for (i, (name, dist)) in pipeline.iter().enumerate() {
        let mut values = Vec::new();
        match dist {
            Distribution::Categorical { choices } => values.extend(choices.iter().cloned()),
            _ => {
                values.push(end_value(dist, false));
                values.push(end_value(dist, true));
            }
        }
        for v in values {
            pipeline_with(preprocess, selection, &[(params[i].clone(), v.clone())])
                .map_err(|e| (format!("space.{name}"), format!("value {v}: {e}")))?;
        }
    }
    Ok(())
}

/// A distribution's low or high end (a categorical's first choice), as the objective sees it.
fn end_value(dist: &Distribution, high: bool) -> ParamValue {
    match dist {
        Distribution::Float { low, high: h, .. } => ParamValue::Float(if high { *h } else { *low }),
        Distribution::Int { low, high: h, .. } => ParamValue::Int(if high { *h } else { *low }),
        Distribution::Categorical { choices } => choices.first().cloned().unwrap_or(ParamValue::Null),
    }
}

/// The sampler of a spec.
///
/// # Errors
/// A grid over a float range without a step (a grid needs finite choices).
fn make_sampler(spec: &StudySpec<'_>, candidates: &[Candidate]) -> Result<Box<dyn Sampler + Send>, TuneError> {
    Ok(match &spec.sampler {
        SamplerSpec::Tpe { options, seed } => Box::new(TpeSampler::new(*options, *seed)),
        SamplerSpec::Random { seed } => Box::new(RandomSampler::new(*seed)),
        SamplerSpec::Grid { seed } => {
            let mut grid: BTreeMap<String, Vec<ParamValue>> = BTreeMap::new();
            if candidates.len() > 1 {
                grid.insert(
                    CANDIDATE_PARAM.to_string(),
                    candidates.iter().map(|c| ParamValue::Str(c.name.clone())).collect(),
                );
                if candidates.iter().any(|c| !c.space.is_empty()) {
                    return Err(TuneError::Sampler(
                        "a grid over several candidates in one study needs every candidate's space empty; use \
                         competition: per_candidate for a grid per candidate"
                            .to_string(),
                    ));
                }
            }
            for (name, dist) in
                candidates.iter().flat_map(|c| c.space.iter().map(move |(n, d)| (param_name(candidates, c, n), d)))
            {
                let values = grid_values(&name, dist)?;
                grid.insert(name, values);
            }
            for (name, dist) in &spec.pipeline {
                grid.insert(name.clone(), grid_values(name, dist)?);
            }
            Box::new(GridSampler::new(grid, *seed))
        }
    })
}

/// The finite values of a distribution for a grid.
fn grid_values(name: &str, dist: &Distribution) -> Result<Vec<ParamValue>, TuneError> {
    match dist {
        Distribution::Categorical { choices } => Ok(choices.clone()),
        Distribution::Int { low, high, step, .. } => {
            Ok((*low..=*high).step_by((*step).max(1) as usize).map(ParamValue::Int).collect())
        }
        Distribution::Float { low, high, step: Some(step), .. } => {
            let n = ((high - low) / step).round() as i64;
            Ok((0..=n).map(|k| ParamValue::Float(low + k as f64 * step)).collect())
        }
        Distribution::Float { .. } => Err(TuneError::Sampler(format!(
            "the grid sampler needs finite choices: '{name}' is a float range without a step"
        ))),
    }
}

fn make_pruner(spec: &PrunerSpec) -> Option<Box<dyn Pruner + Send>> {
    match spec {
        PrunerSpec::None => None,
        PrunerSpec::Median(p) => Some(Box::new(*p)),
        PrunerSpec::Percentile(p) => Some(Box::new(*p)),
        PrunerSpec::Threshold(p) => Some(Box::new(*p)),
        PrunerSpec::SuccessiveHalving(p) => Some(Box::new(*p)),
        PrunerSpec::Wilcoxon(p) => Some(Box::new(*p)),
    }
}

/// A parameter's name in the storage: the candidate's own name alone in a study of one candidate, prefixed by the
/// candidate (`lightgbm.num_leaves`) in a joint study, so that two kinds' params of one name never share a
/// distribution.
fn param_name(candidates: &[Candidate], candidate: &Candidate, name: &str) -> String {
    if candidates.len() > 1 { format!("{}.{name}", candidate.name) } else { name.to_string() }
}

/// Every parameter a study of `candidates` can draw, by its stored name: the candidate (`model`, when several),
/// each candidate's space, the pipeline's.
fn study_space(
    candidates: &[Candidate],
    pipeline: &[(String, Distribution)],
) -> Result<BTreeMap<String, Distribution>, TuneError> {
    let mut space: BTreeMap<String, Distribution> = BTreeMap::new();
    if candidates.len() > 1 {
        space.insert(
            CANDIDATE_PARAM.to_string(),
            Distribution::categorical(candidates.iter().map(|c| ParamValue::Str(c.name.clone())).collect())?,
        );
    }
    for c in candidates {
        for (n, d) in &c.space {
            space.insert(param_name(candidates, c, n), d.clone());
        }
    }
    for (n, d) in pipeline {
        space.insert(n.clone(), d.clone());
    }
    Ok(space)
}

/// An `enqueue` entry's study (its index) and its values there.
type EnqueueTarget = (usize, BTreeMap<String, ParamValue>);

/// Which study each `enqueue` entry goes to (its index in the studies [`tune`] opens: one joint study, or one per
/// candidate in order) and its values there (with [`Competition::PerCandidate`], without `model`).
fn enqueue_targets(
    entries: &[BTreeMap<String, ParamValue>],
    candidates: &[Candidate],
    competition: Competition,
) -> Result<Vec<EnqueueTarget>, (String, String)> {
    let names = || candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.is_empty() {
            return Err((format!("enqueue[{i}]"), "an empty entry: give the values of some parameters".into()));
        }
        let model = match entry.get(CANDIDATE_PARAM) {
            None => None,
            Some(v) => Some(
                candidates.iter().position(|c| ParamValue::Str(c.name.clone()).same_choice(v)).ok_or_else(|| {
                    (
                        format!("enqueue[{i}].{CANDIDATE_PARAM}"),
                        format!("'{v}' is not a candidate; they are {}", names()),
                    )
                })?,
            ),
        };
        match competition {
            Competition::Joint => out.push((0, entry.clone())),
            Competition::PerCandidate => {
                let c = match model {
                    Some(c) => c,
                    None if candidates.len() == 1 => 0,
                    None => {
                        return Err((
                            format!("enqueue[{i}]"),
                            format!("name the candidate's study with `{CANDIDATE_PARAM}:` (one of {})", names()),
                        ));
                    }
                };
                let mut values = entry.clone();
                values.remove(CANDIDATE_PARAM);
                out.push((c, values));
            }
        }
    }
    Ok(out)
}

/// Checks the `enqueue` entries against the studies' spaces before anything runs: each name one the study draws
/// (in a joint study, of the entry's own `model`), each value one its distribution holds. Errors name the entry
/// and key relative to `tune.` (`enqueue[0].lightgbm.num_leaves`).
///
/// # Errors
/// `(key, message)` of the first bad entry.
pub fn check_enqueue(
    entries: &[BTreeMap<String, ParamValue>],
    candidates: &[Candidate],
    pipeline: &[(String, Distribution)],
    competition: Competition,
) -> Result<(), (String, String)> {
    let targets = enqueue_targets(entries, candidates, competition)?;
    for (i, (study, values)) in targets.iter().enumerate() {
        let own: &[Candidate] = match competition {
            Competition::Joint => candidates,
            Competition::PerCandidate => std::slice::from_ref(&candidates[*study]),
        };
        let space = study_space(own, pipeline).map_err(|e| (format!("enqueue[{i}]"), e.to_string()))?;
        let model = entries[i].get(CANDIDATE_PARAM);
        for (name, value) in values {
            let at = format!("enqueue[{i}].{name}");
            let Some(dist) = space.get(name) else {
                let known = space.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
                return Err((at, format!("not a parameter the study draws; it draws {known}")));
            };
            if let (Competition::Joint, Some(model)) = (competition, model)
                && let Some(owner) = own.iter().find(|c| own.len() > 1 && name.starts_with(&format!("{}.", c.name)))
                && !ParamValue::Str(owner.name.clone()).same_choice(model)
            {
                return Err((
                    at,
                    format!("belongs to candidate '{}', and this entry's {CANDIDATE_PARAM} is {model}", owner.name),
                ));
            }
            let x = dist.to_internal(value).map_err(|e| (at.clone(), e.to_string()))?;
            if !dist.contains(x) {
                return Err((at, format!("{value} is outside {}", dist.distribution_json())));
            }
        }
    }
    Ok(())
}

/// Enqueues this invocation's `enqueue` entries (see [`StudySpec::enqueue`]) that no trial of their study has yet:
/// one whose given values, or drawn ones when it was not enqueued, are the same (Optuna's `skip_if_exists`).
fn enqueue_entries(
    spec: &StudySpec<'_>,
    studies: &[Study<'_>],
    storage: &dyn StudyStorage,
    progress: &(dyn Progress + Sync),
) -> Result<(), TrainError> {
    // checked here too, so that a caller of the library cannot enqueue values its study would refuse
    let bad = |(key, message): (String, String)| TuneError::Space(format!("tune.{key}: {message}"));
    check_enqueue(&spec.enqueue, &spec.candidates, &spec.pipeline, spec.competition).map_err(bad)?;
    let targets = enqueue_targets(&spec.enqueue, &spec.candidates, spec.competition).map_err(bad)?;
    for (index, values) in targets {
        let study = &studies[index];
        let same = |t: &StoredTrial| {
            let given: Option<BTreeMap<String, ParamValue>> =
                t.fixed_params.as_deref().and_then(|j| serde_json::from_str(j).ok());
            let shown = given.unwrap_or_else(|| {
                t.params
                    .iter()
                    .filter_map(|p| {
                        let d = Distribution::from_distribution_json(&p.distribution_json).ok()?;
                        Some((p.name.clone(), d.to_external(p.internal).ok()?))
                    })
                    .collect()
            });
            shown.len() == values.len() && values.iter().all(|(k, v)| shown.get(k).is_some_and(|s| s.same_choice(v)))
        };
        let text = serde_json::to_string(&values).map_err(|e| TuneError::Space(e.to_string()))?;
        match storage.enqueue_trial(study.id, &text, &same)? {
            Enqueued::Exists { number } => {
                progress.step(&format!("study {}: {text} is trial {number} already; not enqueued again", study.name));
            }
            Enqueued::New { number, .. } => {
                progress.step(&format!("study {}: trial {number} enqueued with {text}", study.name));
            }
        }
    }
    Ok(())
}

/// A stored trial as the samplers see it.
///
/// # Errors
/// A stored distribution that is not Optuna's.
pub fn frozen(stored: &StoredTrial) -> Result<FrozenTrial, TuneError> {
    let mut trial = FrozenTrial::running(stored.number);
    trial.state = stored.state;
    trial.value = stored.value;
    for p in &stored.params {
        trial.params.insert(p.name.clone(), p.internal);
        trial.distributions.insert(p.name.clone(), Distribution::from_distribution_json(&p.distribution_json)?);
    }
    trial.intermediate_values = stored.intermediate.iter().copied().collect();
    // a relative draw shared in chunks (a half-written one does not parse and is left out, as Optuna leaves it)
    if let Some(shared) = join_relative_params(&stored.relative_params).and_then(|t| serde_json::from_str(&t).ok()) {
        trial.system_attrs.insert(RELATIVE_PARAMS_KEY.to_string(), shared);
    }
    Ok(trial)
}

/// Optuna's `_SYSTEM_ATTR_MAX_LENGTH`: the most characters of one chunk of a shared relative draw.
const SYSTEM_ATTR_MAX_LENGTH: usize = 2045;

/// The system attributes (key, JSON text) that share a relative draw (`params`, a JSON object of external values)
/// as Optuna's TPE writes them: its JSON text in chunks of at most 2,045 characters, each a JSON string, under
/// `tpe:relative_params:<i>`.
pub(crate) fn relative_params_chunks(params: &Value) -> Vec<(String, String)> {
    let text: Vec<char> = params.to_string().chars().collect();
    text.chunks(SYSTEM_ATTR_MAX_LENGTH)
        .enumerate()
        .map(|(i, chunk)| (format!("{RELATIVE_PARAMS_KEY}:{i}"), Value::String(chunk.iter().collect()).to_string()))
        .collect()
}

/// The JSON text [`relative_params_chunks`] split, from the chunks (key, JSON text) in any order: those numbered
/// from 0 on while they follow each other, as Optuna reads them; `None` without chunk 0 or when one is not a JSON
/// string.
pub(crate) fn join_relative_params(chunks: &[(String, String)]) -> Option<String> {
    let mut numbered: Vec<(usize, &str)> = chunks
        .iter()
        .filter_map(|(key, value)| {
            Some((key.strip_prefix(RELATIVE_PARAMS_KEY)?.strip_prefix(':')?.parse().ok()?, value.as_str()))
        })
        .collect();
    numbered.sort_unstable_by_key(|c| c.0);
    let mut text = String::new();
    for (expected, (i, value)) in numbered.into_iter().enumerate() {
        if i != expected {
            break;
        }
        text.push_str(&serde_json::from_str::<String>(value).ok()?);
    }
    (!text.is_empty()).then_some(text)
}

/// One study of the run: its storage id and the candidates it draws from.
struct Study<'s> {
    name: String,
    id: i64,
    candidates: &'s [Candidate],
    sampler: Mutex<Box<dyn Sampler + Send>>,
    pruner: Option<Mutex<Box<dyn Pruner + Send>>>,
    /// the best complete trial so far (value, number), stored ones included, for the progress lines
    best: Mutex<Option<(f64, i64)>>,
}

/// Runs the study (or one study per candidate), then reads the leaderboard back from the storage.
///
/// # Errors
/// A storage or tracking failure, a study whose stored direction or space differs (naming it), folds the data
/// cannot make. A trial's own failure is recorded, not returned.
pub fn tune(
    spec: &StudySpec<'_>,
    run: &StudyRun,
    frame: &Frame,
    ports: &TunePorts<'_>,
    progress: &(dyn Progress + Sync),
) -> Result<TuneOutcome, TrainError> {
    let classification = spec.task.is_classification();
    // the studies, created (or loaded and checked) before the parent run exists
    let mut studies = Vec::new();
    match spec.competition {
        Competition::Joint => studies.push(open_study(spec, spec.name.clone(), &spec.candidates, ports)?),
        Competition::PerCandidate => {
            for c in &spec.candidates {
                studies.push(open_study(spec, format!("{}.{}", spec.name, c.name), std::slice::from_ref(c), ports)?);
            }
        }
    }
    enqueue_entries(spec, &studies, ports.storage, progress)?;
    // the parent run is started on the tracking server while this thread makes the design and the folds
    let (parent, plan) = std::thread::scope(|scope| {
        let parent = scope.spawn(|| start_parent(spec, run, ports, progress, &studies));
        let plan = plan_study_folds(spec, frame, progress, classification);
        let parent = parent.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (parent, plan)
    });
    let (experiment, parent) = parent?;
    let steps = plan.and_then(|plan| {
        study_steps(spec, frame, ports, progress, &experiment, &parent.run_id, &studies, &plan, classification)
    });
    match steps {
        Ok((trials, leaderboard, winner, stale_failed)) => {
            let tracker = ports.tracker;
            tracker.end_run(&parent.run_id, RunStatus::Finished, (ports.clock)())?;
            let parent = tracker.get_run(&parent.run_id)?;
            let baseline = trials.iter().find_map(|t| t.baseline);
            Ok(TuneOutcome { parent, trials, leaderboard, winner, stale_failed, baseline })
        }
        Err(e) => {
            crate::train::fail_run(&ports.tracking(), &parent.run_id, &e, progress);
            Err(e)
        }
    }
}

/// The study's parent run, started with its tags, params and config: the experiment (made if missing), then the
/// run. A failure after the run exists marks it failed.
fn start_parent(
    spec: &StudySpec<'_>,
    run: &StudyRun,
    ports: &TunePorts<'_>,
    progress: &(dyn Progress + Sync),
    studies: &[Study<'_>],
) -> Result<(ExperimentId, RunInfo), TrainError> {
    let tracker = ports.tracker;
    let experiment = tracker.experiment_by_name(&run.experiment)?;
    tracker.ensure_experiment_tag(&experiment, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND)?;
    let mut tags = run.tags.clone();
    tags.push(("mlflow.runName".into(), run.run_name.clone()));
    tags.push(("kiln.run.kind".into(), "tune".into()));
    tags.push(("kiln.study".into(), studies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(",")));
    let parent = tracker.create_run(&experiment, &run.run_name, &tags, (ports.clock)())?;
    progress.step(&format!("parent run {} started in experiment '{}'", parent.run_id, run.experiment));
    let mut params = run.input_params.clone();
    params.extend(study_params(spec));
    let logged = log_params_chunked(tracker, &parent.run_id, &params).and_then(|()| {
        ports.artifacts.put_bytes(&parent.run_id, "config.yaml", run.config_yaml.as_bytes()).map_err(TrainError::from)
    });
    if let Err(e) = logged {
        crate::train::fail_run(&ports.tracking(), &parent.run_id, &e, progress);
        return Err(e);
    }
    Ok((experiment, parent))
}

/// The design and the folds every trial is scored on.
fn plan_study_folds(
    spec: &StudySpec<'_>,
    frame: &Frame,
    progress: &(dyn Progress + Sync),
    classification: bool,
) -> Result<FoldPlan, TrainError> {
    let first = spec.candidates.first().ok_or_else(|| TuneError::Space("no candidate to tune".to_string()))?;
    let base_model = first.model(&[], classification).map_err(TuneError::Space)?;
    let base = BacktestSpec {
        fit: FitSpec {
            task: spec.task,
            preprocess: spec.preprocess,
            selection: spec.selection,
            model: &base_model,
            cache: None,
        },
        splitter: spec.splitter,
        validation: spec.validation,
        seed: spec.seed,
        threads: spec.jobs,
        refit_every: 1,
        rows: FoldedRows::TrainingPart,
        season: None,
    };
    plan_folds(&base, frame, progress)
}

/// Creates or loads a study and checks that its stored trials' distributions agree with this space (Optuna's
/// rule: the same kind of distribution under one name, and the same choices for a categorical).
fn open_study<'s>(
    spec: &StudySpec<'_>,
    name: String,
    candidates: &'s [Candidate],
    ports: &TunePorts<'_>,
) -> Result<Study<'s>, TrainError> {
    let id = match ports.storage.create_or_load_study(&name, spec.objective.direction) {
        Err(e) if e.code == kiln_domain::Code::AlreadyExists => {
            return Err(TuneError::Space(format!(
                "study '{name}' exists with the other direction ({e}); this experiment's metric {} is to {}; name \
                 another study (tune.study, --study)",
                spec.objective.metric,
                spec.objective.direction.name().to_lowercase()
            ))
            .into());
        }
        other => other?,
    };
    let space = study_space(candidates, &spec.pipeline)?;
    let mut best: Option<(f64, i64)> = None;
    for trial in ports.storage.trials(id)? {
        if let (TrialState::Complete, Some(v)) = (trial.state, trial.value)
            && v.is_finite()
            && best.is_none_or(|(b, _)| spec.objective.direction.better(v, b))
        {
            best = Some((v, trial.number));
        }
        for p in &trial.params {
            let Some(ours) = space.get(&p.name) else { continue };
            let theirs = Distribution::from_distribution_json(&p.distribution_json)?;
            let compatible = match (ours, &theirs) {
                (Distribution::Categorical { choices: a }, Distribution::Categorical { choices: b }) => a == b,
                (Distribution::Float { .. }, Distribution::Float { .. })
                | (Distribution::Int { .. }, Distribution::Int { .. }) => true,
                _ => false,
            };
            if !compatible {
                return Err(TuneError::Space(format!(
                    "study '{name}' already has trials whose '{}' was drawn from {}, but the experiment searches {}; \
                     keep the space or name a new study (tune.study)",
                    p.name,
                    theirs.distribution_json(),
                    ours.distribution_json()
                ))
                .into());
            }
        }
    }
    let sampler = Mutex::new(make_sampler(spec, candidates)?);
    let pruner = make_pruner(&spec.pruner).map(Mutex::new);
    Ok(Study { name, id, candidates, sampler, pruner, best: Mutex::new(best) })
}

type StudyResults = (Vec<TrialRecord>, Vec<LeaderRow>, Option<Winner>, Vec<(String, i64)>);

#[allow(clippy::too_many_arguments)] // the study's spec, tracking and state, each needed once
fn study_steps(
    spec: &StudySpec<'_>,
    frame: &Frame,
    ports: &TunePorts<'_>,
    progress: &(dyn Progress + Sync),
    experiment: &ExperimentId,
    parent: &RunId,
    studies: &[Study<'_>],
    plan: &FoldPlan,
    classification: bool,
) -> Result<StudyResults, TrainError> {
    let tracker = ports.tracker;
    progress.step(&format!(
        "each trial: {} folds of the training part, scored by the mean test {} ({}); {} trial{} at a time",
        plan.parts.len(),
        spec.objective.metric,
        spec.objective.direction.name().to_lowercase(),
        spec.jobs,
        if spec.jobs == 1 { "" } else { "s" }
    ));
    let cores = kiln_models::default_threads() as usize;
    let model_threads = (cores / spec.jobs.max(1)).max(1);

    let mut records = Vec::new();
    let mut stale = Vec::new();
    let started = Instant::now();
    for study in studies {
        let ctx = TrialContext {
            spec,
            frame,
            plan,
            ports,
            progress,
            experiment,
            parent,
            study,
            classification,
            model_threads,
            started,
            running: Mutex::new(Vec::new()),
            datasets: kiln_models::FitCache::default(),
            spare: AtomicUsize::new(0),
        };
        let (mut r, mut s) = run_trials(&ctx)?;
        records.append(&mut r);
        stale.append(&mut s);
    }
    records.sort_by(|a, b| (a.study.as_str(), a.number).cmp(&(b.study.as_str(), b.number)));

    let (leaderboard, winner) = leaderboard(spec, studies, ports, classification)?;
    let now = (ports.clock)();
    let mut metrics = Vec::new();
    let mut best_params = Vec::new();
    if let Some(w) = &winner {
        metrics.push(MetricPoint {
            key: format!("best/{}", spec.objective.metric),
            value: w.value,
            timestamp_ms: now,
            step: 0,
        });
        best_params.push(("best.candidate".to_string(), w.candidate.clone()));
        best_params.push(("best.trial".to_string(), format!("{}#{}", w.study, w.trial)));
        best_params.extend(w.params.iter().map(|(n, v)| (format!("best.{n}"), plain(v))));
    }
    for row in &leaderboard {
        if let Some(v) = row.best_value {
            metrics.push(MetricPoint {
                key: format!("leaderboard/{}/{}", row.candidate, spec.objective.metric),
                value: v,
                timestamp_ms: now,
                step: 0,
            });
        }
    }
    if let Some(b) = records.iter().find_map(|t| t.baseline) {
        metrics.push(MetricPoint {
            key: format!("baseline/{}", spec.objective.metric),
            value: b,
            timestamp_ms: now,
            step: 0,
        });
    }
    for (state, n) in state_counts(&records) {
        metrics.push(MetricPoint { key: format!("trials/{state}"), value: n as f64, timestamp_ms: now, step: 0 });
    }
    let artifacts = ports.artifacts;
    artifacts.put_bytes(parent, "leaderboard.csv", leaderboard_csv(&leaderboard, &spec.objective.metric).as_bytes())?;
    artifacts.put_bytes(
        parent,
        "leaderboard.json",
        serde_json::to_string_pretty(&leaderboard)
            .map_err(|e| kiln_domain::PortError::io(format!("cannot write the leaderboard as JSON: {e}")))?
            .as_bytes(),
    )?;
    artifacts.put_bytes(parent, "trials.csv", trials_csv(&records).as_bytes())?;
    // the study's pictures (optimisation history, parameter importances, parallel coordinates, fold scores, slice
    // plot) over every stored trial, and the importances as metrics; a joint study of several candidates also gets
    // them per candidate, over that candidate's trials and parameters (its own names, as the objective saw them).
    // Each candidate's trials are kept for the competition's distribution chart
    let mut by_candidate: Vec<(String, Vec<FrozenTrial>)> = Vec::new();
    for study in studies {
        let trials = study_history(study, ports.storage, None)?;
        let folder = if studies.len() > 1 { format!("{}/", study.name) } else { String::new() };
        let joint_of_several = study.candidates.len() > 1;
        let per_candidate = study.candidates.iter().filter(|_| joint_of_several);
        let mut views: Vec<(String, Vec<FrozenTrial>)> = per_candidate
            .map(|c| (format!("{folder}{}/", c.name), candidate_trials(&trials, study.candidates, c)))
            .collect();
        views.insert(0, (folder.clone(), trials));
        for (at, trials) in &views {
            let joint = joint_of_several && at == &folder;
            for (name, png) in
                super::study_charts(trials, spec.objective.direction, &spec.objective.metric, ports.charts)?
            {
                // a joint study's own importances, parallel coordinates and slice plot mix every candidate's
                // parameters
                if joint && name != "optimization_history.png" && name != "intermediate_values.png" {
                    continue;
                }
                artifacts.put_bytes(parent, &format!("{at}{name}"), &png)?;
            }
            if joint {
                continue;
            }
            metrics.extend(super::ped_anova_importances(trials, spec.objective.direction).into_iter().map(
                |(param, value)| MetricPoint {
                    key: format!("importance/{at}{param}"),
                    value,
                    timestamp_ms: now,
                    step: 0,
                },
            ));
        }
        // each candidate's view (the study's own when it has one candidate) goes on to the distribution chart
        let own = usize::from(joint_of_several);
        by_candidate
            .extend(study.candidates.iter().map(|c| c.name.clone()).zip(views.into_iter().skip(own).map(|(_, t)| t)));
    }
    // how the candidates' trials compare, over every study (a joint one, or one per candidate)
    if let Some(png) = super::edf_chart(&by_candidate, &spec.objective.metric, ports.charts)? {
        artifacts.put_bytes(parent, "edf.png", &png)?;
    }
    let note = format!(
        "kiln tune: {} trial{} in this run ({})\n\n{}",
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        state_counts(&records).iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", "),
        leaderboard_markdown(&leaderboard, &spec.objective.metric)
    );
    // the study's metrics (best, leaderboard, baseline, trial counts, importances), best params and note: one
    // request to a server, after the pictures
    tracker.log_batch(parent, &best_params, &metrics, &[("mlflow.note.content".to_string(), note)])?;
    Ok((records, leaderboard, winner, stale))
}

/// The study's settings as params of the parent run.
fn study_params(spec: &StudySpec<'_>) -> Vec<(String, String)> {
    let mut out = vec![
        ("tune.study".to_string(), spec.name.clone()),
        ("tune.metric".to_string(), spec.objective.metric.clone()),
        ("tune.direction".to_string(), spec.objective.direction.name().to_lowercase()),
        ("tune.jobs".to_string(), spec.jobs.to_string()),
        (
            "tune.competition".to_string(),
            match spec.competition {
                Competition::Joint => "joint",
                Competition::PerCandidate => "per_candidate",
            }
            .to_string(),
        ),
        ("tune.candidates".to_string(), spec.candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")),
    ];
    if let Some(n) = spec.n_trials {
        out.push(("tune.n_trials".to_string(), n.to_string()));
    }
    if let Some(t) = spec.timeout {
        out.push(("tune.timeout".to_string(), t.as_secs_f64().to_string()));
    }
    out.push((
        "tune.sampler".to_string(),
        match &spec.sampler {
            SamplerSpec::Tpe { options, seed } => {
                format!(
                    "tpe(seed={seed}, n_startup_trials={}, n_ei_candidates={}, multivariate={}, group={}, constant_liar={})",
                    options.n_startup_trials,
                    options.n_ei_candidates,
                    options.multivariate,
                    options.group,
                    options.constant_liar
                )
            }
            SamplerSpec::Random { seed } => format!("random(seed={seed})"),
            SamplerSpec::Grid { seed } => format!("grid(seed={seed})"),
        },
    ));
    out.push((
        "tune.pruner".to_string(),
        match &spec.pruner {
            PrunerSpec::None => "none".to_string(),
            PrunerSpec::Median(_) => "median".to_string(),
            PrunerSpec::Percentile(_) => "percentile".to_string(),
            PrunerSpec::Threshold(_) => "threshold".to_string(),
            PrunerSpec::SuccessiveHalving(_) => "successive_halving".to_string(),
            PrunerSpec::Wilcoxon(_) => "wilcoxon".to_string(),
        },
    ));
    for c in &spec.candidates {
        for (name, dist) in &c.space {
            out.push((format!("tune.space.{}.{name}", c.name), dist.distribution_json()));
        }
    }
    for (name, dist) in &spec.pipeline {
        out.push((format!("tune.space.{name}"), dist.distribution_json()));
    }
    out
}

/// What every trial of one study shares.
struct TrialContext<'c, 'a> {
    spec: &'c StudySpec<'a>,
    frame: &'c Frame,
    plan: &'c FoldPlan,
    ports: &'c TunePorts<'c>,
    progress: &'c (dyn Progress + Sync),
    experiment: &'c ExperimentId,
    parent: &'c RunId,
    study: &'c Study<'c>,
    classification: bool,
    model_threads: usize,
    started: Instant,
    /// the storage ids of this process's running trials
    running: Mutex<Vec<i64>>,
    /// each fold's binned LightGBM datasets, made once and boosted on by every trial
    datasets: kiln_models::FitCache,
    /// cores of workers with no trial left to start, lent to the folds of the trials still running ([`fit_folds`])
    spare: AtomicUsize,
}

/// Runs the study's trials, `jobs` at a time, until `n_trials` have started or the timeout has passed (or the grid
/// is exhausted). Workers pull trial slots from one counter; a storage or tracking failure stops every worker.
/// The trials of killed workers failed by heartbeat: (study, number).
type StaleTrials = Vec<(String, i64)>;

/// A trial's child run, written whole by the study's logger thread once the trial has ended, so that no worker
/// waits on the tracking server between trials (its run shows in MLflow as each trial finishes).
struct TrialLog {
    study: String,
    number: i64,
    run_name: String,
    tags: Vec<(String, String)>,
    params: Vec<(String, String)>,
    metrics: Vec<MetricPoint>,
    status: RunStatus,
    start_ms: i64,
    end_ms: i64,
}

/// Writes one trial's child run in three requests to a server: the run, created under its parent (its name is the
/// server's `mlflow.runName`); its params, fold scores and other tags in one batch (MLflow's file store reads the
/// run's meta file again for every tag of a create, once for a batch); its end.
fn write_trial_run(ctx: &TrialContext<'_, '_>, log: &TrialLog) -> Result<RunId, TrainError> {
    let tracker = ctx.ports.tracker;
    let (at_create, later): (Vec<_>, Vec<_>) = log.tags.iter().cloned().partition(|(k, _)| k == "mlflow.parentRunId");
    let run = tracker.create_run(ctx.experiment, &log.run_name, &at_create, log.start_ms)?;
    tracker.log_batch(&run.run_id, &log.params, &log.metrics, &later)?;
    tracker.end_run(&run.run_id, log.status, log.end_ms)?;
    Ok(run.run_id)
}

/// Runs the study's trials, `jobs` at a time, until `n_trials` have started or the timeout has passed (or the grid
/// is exhausted). Workers pull trial slots from one counter and hand each finished trial's child run to one logger
/// thread; a storage or tracking failure stops every worker.
fn run_trials(ctx: &TrialContext<'_, '_>) -> Result<(Vec<TrialRecord>, StaleTrials), TrainError> {
    let spec = ctx.spec;
    let slots = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let records = Mutex::new(Vec::new());
    let stale = Mutex::new(Vec::new());
    let error: Mutex<Option<TrainError>> = Mutex::new(None);
    let fail = |e: TrainError| {
        stop.store(true, Ordering::Relaxed);
        let mut slot = error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    let run_ids: Mutex<BTreeMap<(String, i64), RunId>> = Mutex::new(BTreeMap::new());
    let workers = spec.jobs.max(1).min(spec.n_trials.unwrap_or(usize::MAX));
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if let Some(interrupt) = ctx.ports.interrupt {
            let finished = &finished;
            scope.spawn(move || {
                while !finished.load(Ordering::Relaxed) {
                    if interrupt.requested.load(Ordering::Relaxed) {
                        interrupted(ctx, interrupt);
                    }
                    std::thread::sleep(INTERRUPT_POLL);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel::<TrialLog>();
        let (fail, run_ids) = (&fail, &run_ids);
        let logger = scope.spawn(move || {
            for log in rx {
                match write_trial_run(ctx, &log) {
                    Ok(id) => {
                        run_ids.lock().unwrap_or_else(PoisonError::into_inner).insert((log.study, log.number), id);
                    }
                    Err(e) => fail(e),
                }
            }
        });
        let mut handles = Vec::with_capacity(workers + 1);
        for _ in 0..workers {
            let tx = tx.clone();
            let (slots, stop, records, stale) = (&slots, &stop, &records, &stale);
            handles.push(scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let slot = slots.fetch_add(1, Ordering::Relaxed);
                    if spec.n_trials.is_some_and(|n| slot >= n)
                        || spec.timeout.is_some_and(|t| ctx.started.elapsed() >= t)
                    {
                        // nothing left to start: this worker's core goes to the folds of the running trials
                        ctx.spare.fetch_add(1, Ordering::AcqRel);
                        break;
                    }
                    match one_trial(ctx) {
                        Ok(TrialStep::Ran(record, failed, log)) => {
                            stale.lock().unwrap_or_else(PoisonError::into_inner).extend(failed);
                            records.lock().unwrap_or_else(PoisonError::into_inner).push(*record);
                            let _ = tx.send(log);
                        }
                        Ok(TrialStep::GridDone) => {
                            stop.store(true, Ordering::Relaxed);
                        }
                        Ok(TrialStep::Refused) => {}
                        Err(e) => fail(e),
                    }
                }
            }));
        }
        // the logger ends when every worker's sender is gone
        drop(tx);
        handles.push(logger);
        // the interrupt watcher stops once the workers and the logger are done (a panic is raised again after)
        let joined: Vec<_> = handles.into_iter().map(std::thread::ScopedJoinHandle::join).collect();
        finished.store(true, Ordering::Relaxed);
        for j in joined {
            if let Err(panic) = j {
                std::panic::resume_unwind(panic);
            }
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let run_ids = run_ids.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut records: Vec<TrialRecord> = records.into_inner().unwrap_or_else(PoisonError::into_inner);
    for r in &mut records {
        if let Some(id) = run_ids.get(&(r.study.clone(), r.number)) {
            r.run_id = id.clone();
        }
    }
    Ok((records, stale.into_inner().unwrap_or_else(PoisonError::into_inner)))
}

/// What an [`Interrupt`] does: this process's running trials FAIL (`fail_reason`: interrupted), the parent run
/// KILLED, then the process ends. The running list stays locked, so no trial is created after it is read.
fn interrupted(ctx: &TrialContext<'_, '_>, interrupt: &Interrupt<'_>) {
    let running = ctx.running.lock().unwrap_or_else(PoisonError::into_inner);
    let storage = ctx.ports.storage;
    let reason = Value::String("interrupted (the study was stopped while the trial ran)".to_string()).to_string();
    let mut failed = Vec::new();
    for &id in running.iter() {
        // best effort: the process ends either way, and a trial left RUNNING is failed later by heartbeat
        let _ = storage.set_trial_user_attr(id, "fail_reason", &reason);
        if let Ok(true) = storage.finish_trial(id, TrialState::Fail, None) {
            failed.push(id);
        }
    }
    let tracker = ctx.ports.tracker;
    let parent = tracker
        .set_tags(ctx.parent, &[("kiln.error".to_string(), "interrupted".to_string())])
        .and_then(|()| tracker.end_run(ctx.parent, RunStatus::Killed, (ctx.ports.clock)()))
        .map_or_else(|e| format!("not ended ({e})"), |()| "KILLED".to_string());
    ctx.progress.step(&format!(
        "interrupted: {} of {} running trial(s) of study {} marked FAIL, parent run {} {parent}",
        failed.len(),
        running.len(),
        ctx.study.name,
        ctx.parent
    ));
    (interrupt.exit)();
}

enum TrialStep {
    /// the trial's record, the stale trials failed before it started, and its child run to write
    Ran(Box<TrialRecord>, Vec<(String, i64)>, TrialLog),
    /// an enqueued trial whose given values this study cannot take: failed with the reason, nothing run
    Refused,
    /// a grid with every point taken: nothing was started
    GridDone,
}

/// The draw of a trial: the candidate, its model params and the pipeline params, as the objective sees them.
struct Drawn {
    /// the relative draw to share with the other workers (see [`relative_params_chunks`])
    shared: Option<Value>,
    candidate: usize,
    model_values: Vec<(String, ParamValue)>,
    pipeline_values: Vec<(PipelineParam, ParamValue)>,
    /// every param by its stored name, for the child run
    shown: Vec<(String, ParamValue)>,
}

fn one_trial(ctx: &TrialContext<'_, '_>) -> Result<TrialStep, TrainError> {
    let (spec, study, storage) = (ctx.spec, ctx.study, ctx.ports.storage);
    let mut stale = Vec::new();
    if let Some(hb) = spec.heartbeat {
        for n in storage.fail_stale_trials(study.id, hb.grace)? {
            ctx.progress.step(&format!(
                "study {}: trial {n} sent no heartbeat for {:.0} s (its worker died); marked FAIL",
                study.name,
                hb.grace.as_secs_f64()
            ));
            stale.push((study.name.clone(), n));
        }
    }
    if let SamplerSpec::Grid { .. } = spec.sampler {
        // a grid sampler with every point visited would repeat one: stop instead (Optuna stops the study)
        let history_before = study_history(study, storage, None)?;
        let exhausted = {
            let sampler = study.sampler.lock().unwrap_or_else(PoisonError::into_inner);
            sampler.exhausted(&history_before)
        };
        if exhausted {
            return Ok(TrialStep::GridDone);
        }
    }
    // an enqueued trial first (the oldest waiting, as Optuna's `ask` takes it), else a new one; taken and listed
    // under the lock an interrupt takes: every trial it does not see is never started
    let (trial_id, number, given) = {
        let mut running = ctx.running.lock().unwrap_or_else(PoisonError::into_inner);
        let (id, number, given) = match storage.pop_waiting_trial(study.id)? {
            Some(waiting) => waiting,
            None => {
                let (id, number) = storage.create_trial(study.id)?;
                (id, number, None)
            }
        };
        running.push(id);
        (id, number, given)
    };
    if spec.heartbeat.is_some() {
        storage.heartbeat(trial_id)?;
    }
    let history = study_history(study, storage, Some(number))?;
    let drawn = match &given {
        None => draw(ctx, &history, number, BTreeMap::new())?,
        // an enqueued trial whose values do not fit this study fails with the reason, and the study goes on
        Some(json) => match serde_json::from_str::<BTreeMap<String, ParamValue>>(json)
            .map_err(|e| {
                TrainError::from(TuneError::Space(format!(
                    "its fixed_params {json} are not a JSON object of values: {e}"
                )))
            })
            .and_then(|fixed| Ok((draw(ctx, &history, number, fixed.clone())?, fixed)))
        {
            Ok((drawn, fixed)) => {
                warn_outside(ctx, &drawn, number, &fixed)?;
                drawn
            }
            Err(e) => return refuse_enqueued(ctx, trial_id, number, &e.to_string()),
        },
    };
    for (key, chunk) in drawn.shared.as_ref().map(relative_params_chunks).unwrap_or_default() {
        storage.set_trial_system_attr(trial_id, &key, &chunk)?;
    }
    for (name, value) in &drawn.shown {
        let dist = drawn_distribution(ctx, &drawn, name)?;
        storage.set_param(
            trial_id,
            &StoredParam {
                name: name.clone(),
                internal: dist.to_internal(value)?,
                distribution_json: dist.distribution_json(),
            },
        )?;
    }
    let candidate = &study.candidates[drawn.candidate];
    storage.set_trial_user_attr(trial_id, "candidate", &Value::String(candidate.name.clone()).to_string())?;

    // the child run: written by the study's logger thread once the trial ends (see `TrialLog`)
    let run_name = format!("{}-trial-{number}", study.name);
    let mut tags = vec![
        ("mlflow.parentRunId".to_string(), ctx.parent.0.clone()),
        ("kiln.run.kind".to_string(), "trial".to_string()),
        ("kiln.study".to_string(), study.name.clone()),
        ("kiln.trial.number".to_string(), number.to_string()),
        ("kiln.candidate".to_string(), candidate.name.clone()),
        ("kiln.model.kind".to_string(), candidate.kind.clone()),
    ];
    let mut params: Vec<(String, String)> = drawn.shown.iter().map(|(n, v)| (n.clone(), plain(v))).collect();
    params.push(("model.kind".to_string(), candidate.kind.clone()));
    let start_ms = (ctx.ports.clock)();

    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        // the heartbeat thread beats every interval until the trial drops its sender, which wakes it at once
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let beat = spec.heartbeat.map(|hb| {
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(hb.interval) {
                    // a lost heartbeat only risks the trial being failed as stale later; the fit goes on
                    let _ = storage.heartbeat(trial_id);
                }
            })
        });
        let outcome = score_trial(ctx, &drawn, trial_id, number);
        drop(done);
        if let Some(b) = beat {
            let _ = b.join();
        }
        outcome
    });
    let seconds = started.elapsed().as_secs_f64();
    let (scored, mut metrics) = outcome?;
    let (state, value, reason) = match scored {
        Scored::Complete { value } => (TrialState::Complete, Some(value), None),
        Scored::Pruned { value } => (TrialState::Pruned, value, None),
        Scored::Failed { reason } => (TrialState::Fail, None, Some(reason)),
    };
    storage.set_trial_user_attr(trial_id, "fit_seconds", &json_number(seconds))?;
    if let Some(r) = &reason {
        storage.set_trial_user_attr(trial_id, "fail_reason", &Value::String(r.clone()).to_string())?;
    }
    let finished = storage.finish_trial(trial_id, state, value)?;
    ctx.running.lock().unwrap_or_else(PoisonError::into_inner).retain(|&id| id != trial_id);
    let baseline_key = format!("folds/baseline/test/{}", ctx.spec.objective.metric);
    let baseline: Vec<f64> = metrics.iter().filter(|m| m.key == baseline_key).map(|m| m.value).collect();
    let baseline =
        (baseline.len() == ctx.plan.parts.len()).then(|| kiln_eval::pairwise_sum(&baseline) / baseline.len() as f64);
    let now = (ctx.ports.clock)();
    metrics.push(MetricPoint { key: "trial/seconds".to_string(), value: seconds, timestamp_ms: now, step: 0 });
    if let Some(v) = value.filter(|v| v.is_finite()) {
        metrics.push(MetricPoint { key: ctx.spec.objective.metric.clone(), value: v, timestamp_ms: now, step: 0 });
    }
    tags.push(("kiln.trial.state".to_string(), if finished { state.name() } else { "FAIL" }.to_string()));
    if !finished {
        tags.push(("kiln.error".to_string(), "the trial was failed as stale by another worker".to_string()));
    } else if let Some(r) = &reason {
        tags.push(("kiln.error".to_string(), r.clone()));
    }
    let status = if state == TrialState::Fail || !finished { RunStatus::Failed } else { RunStatus::Finished };
    let log =
        TrialLog { study: study.name.clone(), number, run_name, tags, params, metrics, status, start_ms, end_ms: now };
    let shown = if given.is_some() { format!("{}, enqueued", candidate.name) } else { candidate.name.clone() };
    ctx.progress.step(&trial_line(ctx, number, &shown, state, value, reason.as_deref(), seconds));
    Ok(TrialStep::Ran(
        Box::new(TrialRecord {
            study: study.name.clone(),
            number,
            candidate: candidate.name.clone(),
            state: if finished { state } else { TrialState::Fail },
            value,
            params: drawn
                .model_values
                .iter()
                .cloned()
                .chain(drawn.pipeline_values.iter().map(|(p, v)| (pipeline_name(p), v.clone())))
                .collect(),
            seconds,
            fail_reason: reason,
            // filled in once the logger thread has written the run
            run_id: RunId(String::new()),
            baseline,
        }),
        stale,
        log,
    ))
}

/// The study's trials as the samplers and pruners see them, leaving out trial `except` (the one being drawn).
fn study_history(
    study: &Study<'_>,
    storage: &dyn StudyStorage,
    except: Option<i64>,
) -> Result<Vec<FrozenTrial>, TrainError> {
    // read before taking the sampler, so that no other worker waits on this read to draw
    let stored = storage.trials(study.id)?;
    let mut out = Vec::with_capacity(stored.len());
    let sampler = study.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    for t in stored {
        if Some(t.number) == except {
            continue;
        }
        let mut f = frozen(&t)?;
        sampler.recall(&mut f);
        out.push(f);
    }
    Ok(out)
}

/// "preprocess.scale.method"
fn pipeline_name(p: &PipelineParam) -> String {
    let section = match p.section {
        Section::Preprocess => "preprocess",
        Section::Selection => "selection",
    };
    format!("{section}.{}.{}", p.step, p.field)
}

/// The distribution a shown param was drawn from.
fn drawn_distribution(ctx: &TrialContext<'_, '_>, drawn: &Drawn, name: &str) -> Result<Distribution, TuneError> {
    let candidates = ctx.study.candidates;
    if candidates.len() > 1 && name == CANDIDATE_PARAM {
        return Distribution::categorical(candidates.iter().map(|c| ParamValue::Str(c.name.clone())).collect());
    }
    let c = &candidates[drawn.candidate];
    if let Some((_, d)) = c.space.iter().find(|(n, _)| param_name(candidates, c, n) == name) {
        return Ok(d.clone());
    }
    ctx.spec
        .pipeline
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, d)| d.clone())
        .ok_or_else(|| TuneError::Space(format!("no distribution for '{name}'")))
}

/// Fails an enqueued trial whose given values this study cannot take, with the reason.
fn refuse_enqueued(
    ctx: &TrialContext<'_, '_>,
    trial_id: i64,
    number: i64,
    reason: &str,
) -> Result<TrialStep, TrainError> {
    let storage = ctx.ports.storage;
    let reason = format!("enqueued values refused: {reason}");
    storage.set_trial_user_attr(trial_id, "fail_reason", &Value::String(reason.clone()).to_string())?;
    storage.finish_trial(trial_id, TrialState::Fail, None)?;
    ctx.running.lock().unwrap_or_else(PoisonError::into_inner).retain(|&id| id != trial_id);
    ctx.progress.step(&format!("study {} trial {number} FAIL: {reason}", ctx.study.name));
    Ok(TrialStep::Refused)
}

/// Says which given values of an enqueued trial lie outside their distribution (used as given, as Optuna uses them).
fn warn_outside(
    ctx: &TrialContext<'_, '_>,
    drawn: &Drawn,
    number: i64,
    fixed: &BTreeMap<String, ParamValue>,
) -> Result<(), TuneError> {
    for (name, value) in &drawn.shown {
        if !fixed.contains_key(name) {
            continue;
        }
        let dist = drawn_distribution(ctx, drawn, name)?;
        if !dist.contains(dist.to_internal(value)?) {
            ctx.progress.step(&format!(
                "study {} trial {number}: the enqueued {name} = {value} is outside {}; used as given",
                ctx.study.name,
                dist.distribution_json()
            ));
        }
    }
    Ok(())
}

/// Draws a trial: the candidate (a joint study of several), then its params, then the pipeline's.
fn draw(
    ctx: &TrialContext<'_, '_>,
    history: &[FrozenTrial],
    number: i64,
    fixed: BTreeMap<String, ParamValue>,
) -> Result<Drawn, TrainError> {
    let (spec, study) = (ctx.spec, ctx.study);
    let candidates = study.candidates;
    let direction = spec.objective.direction;
    let mut sampler = study.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    let sampler: &mut dyn Sampler = &mut **sampler;
    let mut draw = TrialDraw::start(sampler, history, number, fixed);
    let mut shown = Vec::new();
    let candidate = if candidates.len() > 1 {
        let dist = Distribution::categorical(candidates.iter().map(|c| ParamValue::Str(c.name.clone())).collect())?;
        let x = draw.suggest(sampler, history, direction, CANDIDATE_PARAM, &dist)?;
        shown.push((CANDIDATE_PARAM.to_string(), dist.to_external(x)?));
        x as usize
    } else {
        0
    };
    let c = &candidates[candidate];
    let mut model_values = Vec::new();
    for (name, dist) in &c.space {
        let stored = param_name(candidates, c, name);
        let x = draw.suggest(sampler, history, direction, &stored, dist)?;
        let v = dist.to_external(x)?;
        shown.push((stored, v.clone()));
        model_values.push((name.clone(), v));
    }
    let mut pipeline_values = Vec::new();
    for (name, dist) in &spec.pipeline {
        let x = draw.suggest(sampler, history, direction, name, dist)?;
        let v = dist.to_external(x)?;
        shown.push((name.clone(), v.clone()));
        pipeline_values.push((PipelineParam::parse(name).map_err(TuneError::Space)?, v));
    }
    let shared = draw.trial.system_attrs.get(RELATIVE_PARAMS_KEY).cloned();
    Ok(Drawn { shared, candidate, model_values, pipeline_values, shown })
}

enum Scored {
    Complete { value: f64 },
    Pruned { value: Option<f64> },
    Failed { reason: String },
}

/// Fits and scores the trial's folds in order, reporting each fold's score and asking the pruner after each.
/// Returns how the trial ended and its fold scores as metric steps (for its child run).
fn score_trial(
    ctx: &TrialContext<'_, '_>,
    drawn: &Drawn,
    trial_id: i64,
    number: i64,
) -> Result<(Scored, Vec<MetricPoint>), TrainError> {
    let (spec, study) = (ctx.spec, ctx.study);
    let candidate = &study.candidates[drawn.candidate];
    let model = match candidate.model(&drawn.model_values, ctx.classification) {
        Ok(m) => m.with_threads(ctx.model_threads),
        Err(e) => return Ok((Scored::Failed { reason: format!("model: {e}") }, Vec::new())),
    };
    let (preprocess, selection) = match pipeline_with(spec.preprocess, spec.selection, &drawn.pipeline_values) {
        Ok(p) => p,
        Err(e) => return Ok((Scored::Failed { reason: e }, Vec::new())),
    };
    let fit = FitSpec {
        task: spec.task,
        preprocess: &preprocess,
        selection: &selection,
        model: &model,
        cache: Some(&ctx.datasets),
    };
    if let Err(e) = check_model_fits_task(&fit) {
        return Ok((Scored::Failed { reason: e.to_string() }, Vec::new()));
    }
    let bspec = BacktestSpec {
        fit,
        splitter: spec.splitter,
        validation: spec.validation,
        seed: spec.seed,
        threads: 1,
        refit_every: 1,
        rows: FoldedRows::TrainingPart,
        season: None,
    };
    let key = format!("test/{}", spec.objective.metric);
    let mut trial = FrozenTrial::running(number);
    trial.params = drawn_params(ctx, drawn)?;
    let mut scores = Vec::new();
    let mut points = Vec::new();
    let mut folds = Vec::new();
    let outcome = fold_scores(ctx, &bspec, &key, trial_id, number, &mut trial, &mut scores, &mut points, &mut folds);
    if let Some(scored) = outcome? {
        return Ok((scored, points));
    }
    if let Some(score) = &spec.objective.score {
        return Ok((composite(ctx, &bspec, score, folds), points));
    }
    let value = kiln_eval::pairwise_sum(&scores) / scores.len() as f64;
    if !value.is_finite() {
        return Ok((Scored::Failed { reason: format!("the mean {key} over the folds is {value}") }, points));
    }
    Ok((Scored::Complete { value }, points))
}

/// A multi-step forecast's fold metrics with `test/<metric>` and `baseline/test/<metric>` as their means over the
/// steps (`test/step_<k>/<metric>`, what `kiln backtest` and `kiln train` report as `mean_over_steps`), so that a
/// study optimises the forecast it will serve rather than its first step; unchanged for a one-step model or a
/// metric not scored per step.
fn over_steps(mut metrics: Vec<(String, f64)>, metric: &str) -> Vec<(String, f64)> {
    for prefix in ["test", "baseline/test"] {
        let per_step: Vec<f64> = (1..)
            .map_while(|k| {
                let key = format!("{prefix}/step_{k}/{metric}");
                metrics.iter().find(|(m, _)| *m == key).map(|(_, v)| *v)
            })
            .collect();
        if per_step.is_empty() {
            continue;
        }
        let mean = kiln_eval::pairwise_sum(&per_step) / per_step.len() as f64;
        let key = format!("{prefix}/{metric}");
        match metrics.iter_mut().find(|(m, _)| *m == key) {
            Some((_, v)) => *v = mean,
            None => metrics.push((key, mean)),
        }
    }
    metrics
}

/// Whether a multi-step forecast's trials are scored on the mean over its steps of `metric` ([`over_steps`]):
/// the metrics every step is scored by.
pub fn scored_over_steps(metric: &str) -> bool {
    matches!(metric, "rmse" | "mae")
}

/// Fits and scores the folds in order into `scores` and `points`; `Some` when the trial ends early (failed, pruned).
#[allow(clippy::too_many_arguments)] // the trial's state, filled in as the folds go
fn fold_scores(
    ctx: &TrialContext<'_, '_>,
    bspec: &BacktestSpec<'_>,
    key: &str,
    trial_id: i64,
    number: i64,
    trial: &mut FrozenTrial,
    scores: &mut Vec<f64>,
    points: &mut Vec<MetricPoint>,
    folds: &mut Vec<FoldOutcome>,
) -> Result<Option<Scored>, TrainError> {
    let (spec, study) = (ctx.spec, ctx.study);
    // without a pruner no fold waits on the one before it: they are fitted first, on spare cores too
    let mut fitted = if study.pruner.is_none() { fit_folds(ctx, bspec) } else { Vec::new() };
    for i in 0..ctx.plan.parts.len() {
        let fitted = match fitted.get_mut(i).and_then(Option::take) {
            Some(outcome) => outcome,
            None => fit_fold(bspec, ctx.frame, ctx.plan, i).map_err(|e| e.to_string()),
        };
        let fold: FoldOutcome = match fitted {
            Ok(f) => f,
            Err(e) => return Ok(Some(Scored::Failed { reason: format!("fold {}: {e}", i + 1) })),
        };
        let metrics = over_steps(fold.metrics(), &spec.objective.metric);
        if spec.objective.score.is_some() {
            // the composite score needs every fold; each fold's metrics still go to the child run
            let now = (ctx.ports.clock)();
            let step = i as i64 + 1;
            points.extend(
                metrics.iter().filter(|(k, v)| k.starts_with("test/") && v.is_finite()).map(|(k, v)| MetricPoint {
                    key: format!("folds/{k}"),
                    value: *v,
                    timestamp_ms: now,
                    step,
                }),
            );
            folds.push(fold);
            continue;
        }
        let score = metrics.iter().find(|(k, _)| *k == key).map_or(f64::NAN, |(_, v)| *v);
        // Optuna's steps count from 0, so that a pruner's `n_warmup_steps: 1` spares the first fold; MLflow's fold
        // steps count from 1, as `kiln backtest` logs them
        let step = i as i64;
        ctx.ports.storage.report(trial_id, step, score)?;
        // the trial's fold scores as steps (the objective's metric and its baseline), logged once the trial ends:
        // one write per key in a folder store
        let now = (ctx.ports.clock)();
        for (k, v) in &metrics {
            if (*k == key || *k == format!("baseline/{key}")) && v.is_finite() {
                points.push(MetricPoint { key: format!("folds/{k}"), value: *v, timestamp_ms: now, step: step + 1 });
            }
        }
        if !score.is_finite() {
            return Ok(Some(Scored::Failed {
                reason: format!("fold {}: {key} is {score}, not a finite score", i + 1),
            }));
        }
        scores.push(score);
        trial.intermediate_values.insert(step, score);
        if let Some(pruner) = &study.pruner {
            let prune = {
                let mut pruner = pruner.lock().unwrap_or_else(PoisonError::into_inner);
                // the other trials as they are now: a pruner compares this fold with theirs
                let now = study_history(study, ctx.ports.storage, Some(number))?;
                pruner.prune(&now, trial, spec.objective.direction)
            };
            if prune && i + 1 < ctx.plan.parts.len() {
                return Ok(Some(Scored::Pruned { value: Some(score) }));
            }
        }
    }
    Ok(None)
}

/// Fits and scores every fold of a trial on this thread and on the cores that workers with no trial left to start
/// have lent ([`TrialContext::spare`]): at the end of a study the last trials' folds run side by side instead of one
/// after another beside idle cores. A helper is taken while at least two folds are untaken (one for it, one for this
/// thread) and gives its core back when no fold is left. Folds are taken in order and each is fitted and scored
/// alone, so the outcomes do not depend on the thread; once one fails no further fold is taken, and every fold
/// before a failed one has been fitted, as in the loop that fits them one by one. `None`: a fold not fitted.
fn fit_folds(ctx: &TrialContext<'_, '_>, bspec: &BacktestSpec<'_>) -> Vec<Option<Result<FoldOutcome, String>>> {
    let n = ctx.plan.parts.len();
    let slots: Vec<OnceLock<Result<FoldOutcome, String>>> = (0..n).map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // one fold, if any is left: false once none is
    let take_one = || {
        if failed.load(Ordering::Acquire) {
            return false;
        }
        let i = next.fetch_add(1, Ordering::AcqRel);
        if i >= n {
            return false;
        }
        let outcome = fit_fold(bspec, ctx.frame, ctx.plan, i).map_err(|e| e.to_string());
        if outcome.is_err() {
            failed.store(true, Ordering::Release);
        }
        // each index is taken once (`fetch_add`), so its slot is empty and `set` cannot refuse the value
        let _ = slots[i].set(outcome);
        true
    };
    let take_spare = || ctx.spare.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| s.checked_sub(1)).is_ok();
    std::thread::scope(|scope| {
        loop {
            while next.load(Ordering::Acquire) + 1 < n && !failed.load(Ordering::Acquire) && take_spare() {
                scope.spawn(|| {
                    while take_one() {}
                    ctx.spare.fetch_add(1, Ordering::AcqRel);
                });
            }
            if !take_one() {
                break;
            }
        }
    });
    slots.into_iter().map(OnceLock::into_inner).collect()
}

/// The composite score of a trial's folds (and the trading of their out-of-fold forecasts): a trial whose score
/// cannot be made, or is not finite, fails with the reason.
fn composite(
    ctx: &TrialContext<'_, '_>,
    bspec: &BacktestSpec<'_>,
    score: &crate::ScoreSpec,
    folds: Vec<FoldOutcome>,
) -> Scored {
    let oof = crate::backtest::out_of_fold(&ctx.plan.design, &folds);
    let outcome = crate::BacktestOutcome { folds, oof, rows: ctx.plan.design.rows, splitter: bspec.splitter };
    let trading = match &ctx.spec.objective.trading {
        Some(t) => match crate::trade(ctx.spec.task, &outcome, t) {
            Ok(sim) => Some(sim),
            Err(e) => return Scored::Failed { reason: format!("trading: {e}") },
        },
        None => None,
    };
    match crate::composite_score(score, &outcome, trading.as_ref(), ctx.classification) {
        Ok(s) if s.value.is_finite() => Scored::Complete { value: s.value },
        Ok(s) => Scored::Failed { reason: format!("the composite score is {}", s.value) },
        Err(e) => Scored::Failed { reason: format!("score: {e}") },
    }
}

/// The trial's params by stored name as internal values (what a pruner sees).
fn drawn_params(ctx: &TrialContext<'_, '_>, drawn: &Drawn) -> Result<BTreeMap<String, f64>, TuneError> {
    let mut out = BTreeMap::new();
    for (name, value) in &drawn.shown {
        out.insert(name.clone(), drawn_distribution(ctx, drawn, name)?.to_internal(value)?);
    }
    Ok(out)
}

/// "trial 7 [lightgbm] rmse 0.004120 (1.2 s); best 0.004051 (trial 3)", the candidate "lightgbm, enqueued" for an
/// enqueued trial
fn trial_line(
    ctx: &TrialContext<'_, '_>,
    number: i64,
    candidate: &str,
    state: TrialState,
    value: Option<f64>,
    reason: Option<&str>,
    seconds: f64,
) -> String {
    let metric = &ctx.spec.objective.metric;
    let what = match (state, value, reason) {
        (TrialState::Fail, _, Some(r)) => format!("FAIL: {r}"),
        (TrialState::Pruned, Some(v), _) => format!("PRUNED at fold score {v:.6}"),
        (_, Some(v), _) => format!("{metric} {v:.6}"),
        _ => state.name().to_string(),
    };
    let study =
        if ctx.spec.competition == Competition::PerCandidate { format!("{} ", ctx.study.name) } else { String::new() };
    let best = {
        let mut best = ctx.study.best.lock().unwrap_or_else(PoisonError::into_inner);
        if let (TrialState::Complete, Some(v)) = (state, value)
            && best.is_none_or(|(b, _)| ctx.spec.objective.direction.better(v, b))
        {
            *best = Some((v, number));
        }
        match *best {
            Some((_, n)) if n == number => "; the best so far".to_string(),
            Some((b, n)) => format!("; best {b:.6} (trial {n})"),
            None => String::new(),
        }
    };
    format!("{study}trial {number} [{candidate}] {what} ({seconds:.1} s){best}")
}

fn json_number(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// A value as a param text: a string without quotes, a number as Python prints it.
fn plain(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => s.clone(),
        ParamValue::Float(f) => super::space::py_float(*f),
        other => other.to_string(),
    }
}

/// How many trials ended in each state (those with any), as "complete", "pruned", "failed".
fn state_counts(records: &[TrialRecord]) -> Vec<(&'static str, usize)> {
    [(TrialState::Complete, "complete"), (TrialState::Pruned, "pruned"), (TrialState::Fail, "failed")]
        .into_iter()
        .map(|(state, word)| (word, records.iter().filter(|r| r.state == state).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The leaderboard over every trial in the storage, and the winner's configuration.
fn leaderboard(
    spec: &StudySpec<'_>,
    studies: &[Study<'_>],
    ports: &TunePorts<'_>,
    classification: bool,
) -> Result<(Vec<LeaderRow>, Option<Winner>), TrainError> {
    let direction = spec.objective.direction;
    let mut rows = Vec::new();
    let mut best: Option<(f64, usize, &StoredTrial, String)> = None;
    let all: Vec<Vec<StoredTrial>> =
        studies.iter().map(|study| ports.storage.trials(study.id)).collect::<Result<_, _>>()?;
    for (s, study) in studies.iter().enumerate() {
        let trials = &all[s];
        let of: Vec<Option<String>> =
            trials.iter().map(|t| trial_candidate(study.candidates, t)).collect::<Result<_, _>>()?;
        for candidate in study.candidates {
            let mine: Vec<&StoredTrial> = trials
                .iter()
                .zip(&of)
                .filter(|(_, c)| c.as_deref() == Some(candidate.name.as_str()))
                .map(|(t, _)| t)
                .collect();
            let count = |state: TrialState| mine.iter().filter(|t| t.state == state).count();
            let best_trial = mine
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(|t| t.value.filter(|v| v.is_finite()).map(|v| (v, *t)))
                .fold(None::<(f64, &StoredTrial)>, |acc, (v, t)| match acc {
                    Some((bv, _)) if !direction.better(v, bv) => acc,
                    _ => Some((v, t)),
                });
            let folds: Vec<f64> =
                best_trial.map(|(_, t)| t.intermediate.iter().map(|(_, v)| *v).collect()).unwrap_or_default();
            let (fold_mean, fold_sd) = mean_sd(&folds);
            let fit_seconds = best_trial.and_then(|(_, t)| {
                t.user_attrs.iter().find(|(k, _)| k == "fit_seconds").and_then(|(_, v)| v.parse::<f64>().ok())
            });
            let best_params = match best_trial {
                Some((_, t)) => {
                    external_params(study.candidates, candidate, t)?.into_iter().map(|(n, v)| (n, plain(&v))).collect()
                }
                None => Vec::new(),
            };
            if let Some((v, t)) = best_trial
                && best.as_ref().is_none_or(|(bv, ..)| direction.better(v, *bv))
            {
                best = Some((v, s, t, candidate.name.clone()));
            }
            rows.push(LeaderRow {
                candidate: candidate.name.clone(),
                study: study.name.clone(),
                best_trial: best_trial.map(|(_, t)| t.number),
                best_value: best_trial.map(|(v, _)| v),
                fold_mean,
                fold_sd,
                fit_seconds,
                complete: count(TrialState::Complete),
                pruned: count(TrialState::Pruned),
                failed: count(TrialState::Fail),
                best_params,
            });
        }
    }
    rows.sort_by(|a, b| match (a.best_value, b.best_value) {
        (Some(x), Some(y)) => {
            if direction.better(x, y) {
                std::cmp::Ordering::Less
            } else if direction.better(y, x) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let winner = match best {
        None => None,
        Some((value, s, trial, name)) => {
            let study = &studies[s];
            let candidate =
                study.candidates.iter().find(|c| c.name == name).ok_or_else(|| TuneError::Space(name.clone()))?;
            let params = external_params(study.candidates, candidate, trial)?;
            let mut model_values = Vec::new();
            let mut pipeline_values = Vec::new();
            for (n, v) in &params {
                if let Some((_, _)) = candidate.space.iter().find(|(cn, _)| cn == n) {
                    model_values.push((n.clone(), v.clone()));
                } else if let Ok(p) = PipelineParam::parse(n) {
                    pipeline_values.push((p, v.clone()));
                }
            }
            let model = candidate.model(&model_values, classification).map_err(TuneError::Space)?;
            let (preprocess, selection) =
                pipeline_with(spec.preprocess, spec.selection, &pipeline_values).map_err(TuneError::Space)?;
            Some(Winner {
                candidate: name,
                study: study.name.clone(),
                trial: trial.number,
                value,
                model,
                preprocess,
                selection,
                params,
            })
        }
    };
    Ok((rows, winner))
}

/// The trials of `candidate` in a joint study, with its parameters under their own names (the candidate prefix and
/// the candidate parameter taken off).
fn candidate_trials(trials: &[FrozenTrial], candidates: &[Candidate], candidate: &Candidate) -> Vec<FrozenTrial> {
    let Ok(pick) = Distribution::categorical(candidates.iter().map(|c| ParamValue::Str(c.name.clone())).collect())
    else {
        return Vec::new();
    };
    let Ok(mine) = pick.to_internal(&ParamValue::Str(candidate.name.clone())) else { return Vec::new() };
    let prefix = format!("{}.", candidate.name);
    trials
        .iter()
        .filter(|t| t.params.get(CANDIDATE_PARAM) == Some(&mine))
        .map(|t| {
            let mut out = t.clone();
            let rename = |name: &String| name.strip_prefix(&prefix).map_or_else(|| name.clone(), str::to_string);
            out.params = t.params.iter().filter(|(n, _)| *n != CANDIDATE_PARAM).map(|(n, v)| (rename(n), *v)).collect();
            out.distributions = t
                .distributions
                .iter()
                .filter(|(n, _)| *n != CANDIDATE_PARAM)
                .map(|(n, d)| (rename(n), d.clone()))
                .collect();
            out
        })
        .collect()
}

/// The candidate of a stored trial: its `model` param in a joint study of several, else the study's one; `None` for
/// a trial that has not drawn one yet (a running trial, or one a Python worker failed early).
///
/// # Errors
/// A stored distribution that is not Optuna's.
fn trial_candidate(candidates: &[Candidate], trial: &StoredTrial) -> Result<Option<String>, TuneError> {
    if candidates.len() == 1 {
        return Ok(Some(candidates[0].name.clone()));
    }
    let Some(p) = trial.params.iter().find(|p| p.name == CANDIDATE_PARAM) else { return Ok(None) };
    let dist = Distribution::from_distribution_json(&p.distribution_json)?;
    Ok(Some(match dist.to_external(p.internal)? {
        ParamValue::Str(s) => s,
        other => other.to_string(),
    }))
}

/// A stored trial's params of `candidate` and the pipeline, as the objective saw them (the candidate prefix taken
/// off; the candidate param left out).
fn external_params(
    candidates: &[Candidate],
    candidate: &Candidate,
    trial: &StoredTrial,
) -> Result<Vec<(String, ParamValue)>, TuneError> {
    let mut out = Vec::new();
    for p in &trial.params {
        if candidates.len() > 1 && p.name == CANDIDATE_PARAM {
            continue;
        }
        let dist = Distribution::from_distribution_json(&p.distribution_json)?;
        let value = dist.to_external(p.internal)?;
        let name = match candidate.space.iter().find(|(n, _)| param_name(candidates, candidate, n) == p.name) {
            Some((n, _)) => n.clone(),
            None => p.name.clone(),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Mean and sample standard deviation, as the backtest's fold summary computes them; `None` where undefined.
fn mean_sd(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let sd = crate::backtest::sample_sd(values);
    (Some(crate::backtest::mean(values)), sd.is_finite().then_some(sd))
}

/// The leaderboard as a table: one row per candidate, best first.
pub fn leaderboard_rows(rows: &[LeaderRow]) -> Vec<Vec<String>> {
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), crate::number);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.candidate.clone(),
                num(r.best_value),
                num(r.fold_mean),
                num(r.fold_sd),
                r.fit_seconds.map_or_else(|| "-".to_string(), |s| format!("{s:.1}")),
                format!("{}/{}/{}", r.complete, r.pruned, r.failed),
                r.best_trial.map_or_else(|| "-".to_string(), |t| t.to_string()),
            ]
        })
        .collect()
}

/// The header of [`leaderboard_rows`].
pub fn leaderboard_header(metric: &str) -> Vec<String> {
    ["rank", "candidate", &format!("best {metric}"), "fold mean", "fold sd", "fit s", "complete/pruned/failed", "trial"]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
}

fn leaderboard_csv(rows: &[LeaderRow], metric: &str) -> String {
    let mut out = format!(
        "rank,candidate,study,best_trial,best_{metric},fold_mean,fold_sd,fit_seconds,complete,pruned,failed,best_params\n"
    );
    let num = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    for (i, r) in rows.iter().enumerate() {
        let params = r.best_params.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            i + 1,
            r.candidate,
            r.study,
            r.best_trial.map_or_else(String::new, |t| t.to_string()),
            num(r.best_value),
            num(r.fold_mean),
            num(r.fold_sd),
            num(r.fit_seconds),
            r.complete,
            r.pruned,
            r.failed,
            params.replace('"', "\"\"")
        ));
    }
    out
}

fn leaderboard_markdown(rows: &[LeaderRow], metric: &str) -> String {
    let header = leaderboard_header(metric);
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
    for row in leaderboard_rows(rows) {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

fn trials_csv(records: &[TrialRecord]) -> String {
    let mut out = "study,number,candidate,state,value,seconds,run_id,params,fail_reason\n".to_string();
    for r in records {
        let params = r.params.iter().map(|(n, v)| format!("{n}={}", plain(v))).collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "{},{},{},{},{},{:.3},{},\"{}\",\"{}\"\n",
            r.study,
            r.number,
            r.candidate,
            r.state.name(),
            r.value.map_or_else(String::new, |v| format!("{v}")),
            r.seconds,
            r.run_id,
            params.replace('"', "\"\""),
            r.fail_reason.clone().unwrap_or_default().replace('"', "\"\"")
        ));
    }
    out
}
