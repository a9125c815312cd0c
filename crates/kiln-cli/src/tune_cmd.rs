//! `kiln tune`: the `tune:` section read into kiln-train's study (candidates, spaces, sampler, pruner, storage),
//! every name and range checked before anything runs; the study run against an Optuna storage and the tracking
//! store; the leaderboard printed; the winner refitted, tested once on the held-out part and registered with
//! `--register`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiln::create_store;
use kiln_domain::{LoadedData, StudyDirection, StudyStorage};
use kiln_eval::{ClassificationMetricName, MetricName};
use kiln_store::PlotChartRenderer;
use kiln_train::tune::{
    Candidate, Competition, Distribution, Heartbeat, Interrupt, MedianPruner, MinResource, Objective, ParamValue,
    PercentilePruner, PrunerSpec, SamplerSpec, StudyRun, StudySpec, SuccessiveHalvingPruner, ThresholdPruner,
    TpeOptions, TunePorts, WilcoxonPruner,
};
use kiln_train::{Progress, TaskSpec, TrainSpec};
use serde::{Deserialize, Serialize};

use crate::backtest_cmd::{FoldSettings, splitter_for};
use crate::cli::TuneArgs;
use crate::commands::{StderrProgress, load_data, load_experiment, now_ms, report_training, run_tags};
use crate::config;
use crate::exit::{self, bad_input};
use crate::settings::Settings;
use crate::table::number_table;

/// Trials of one invocation when neither the flag nor the section says.
const DEFAULT_TRIALS: usize = 20;

/// The `tune:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TuneSettings {
    /// the study's name in the storage (default: the experiment's name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) study: Option<String>,
    /// `sqlite:///path.db` or `postgresql://user:password@host:port/db` (default: `optuna.db` beside the tracking
    /// folder)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<String>,
    /// the objective: a test metric of the task, averaged over the folds (default: rmse; roc_auc for a classifier);
    /// its direction is the metric's
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metric: Option<String>,
    /// trials per invocation (per candidate with `competition: per_candidate`; default 20)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) n_trials: Option<usize>,
    /// seconds after which no trial starts
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<f64>,
    /// trials at once (default 1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) jobs: Option<usize>,
    /// `joint` (default: one study, the candidate a categorical parameter `model`) or `per_candidate` (a study and
    /// a trial budget per candidate)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) competition: Option<CompetitionSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sampler: Option<SamplerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pruner: Option<PrunerSettings>,
    /// a running trial's heartbeat; a trial silent for `grace` seconds is failed by the next worker (default:
    /// every 10 s, grace 60 s)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat: Option<HeartbeatSettings>,
    /// configurations tried before the sampler's (Optuna's `enqueue_trial`, each once per study): parameter values
    /// by the study's names (`model: lightgbm`, `lightgbm.num_leaves: 31`); the others are drawn
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) enqueue: Vec<BTreeMap<String, serde_json::Value>>,
    /// the competing models; absent: the `model:` section, searched over `space`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) candidates: Vec<CandidateSettings>,
    /// searched pipeline params (`selection.k_best.k`, `preprocess.scale.method`) and, without `candidates`, the
    /// `model:` section's params; each a distribution (`{float: {low, high, log, step}}`, `{int: {...}}`,
    /// `{categorical: [...]}`) or a fixed value
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) space: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CompetitionSetting {
    Joint,
    PerCandidate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CandidateSettings {
    /// a `model.kind`
    pub(crate) kind: String,
    /// unique among the candidates (default: the kind)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// params every trial of this candidate gets
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub(crate) params: serde_json::Map<String, serde_json::Value>,
    /// searched params: a distribution or a fixed value each
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) space: BTreeMap<String, serde_json::Value>,
}

/// `sampler:`; Optuna's defaults for what is left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum SamplerSettings {
    Tpe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_startup_trials: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_ei_candidates: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multivariate: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        constant_liar: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prior_weight: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consider_endpoints: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consider_magic_clip: Option<bool>,
    },
    Random {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
    },
    Grid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
    },
}

/// `pruner:`; Optuna's defaults for what is left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum PrunerSettings {
    None,
    Median {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_startup_trials: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_warmup_steps: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_steps: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_min_trials: Option<usize>,
    },
    /// Optuna's `PercentilePruner`
    Percentile {
        percentile: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_startup_trials: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_warmup_steps: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_steps: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_min_trials: Option<usize>,
    },
    /// Optuna's `ThresholdPruner`
    Threshold {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_warmup_steps: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_steps: Option<i64>,
    },
    SuccessiveHalving {
        /// folds before the first rung, or `auto`
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_resource: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reduction_factor: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_early_stopping_rate: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bootstrap_count: Option<usize>,
    },
    /// Optuna's `WilcoxonPruner`: a signed-rank test of the trial's fold scores against the best trial's
    Wilcoxon {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p_threshold: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_startup_steps: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatSettings {
    /// seconds between heartbeats
    pub(crate) interval: f64,
    /// seconds without one after which a running trial is failed (default: 6 x interval)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) grace: Option<f64>,
}

/// The study as the section and the flags resolve it (before the data is read: everything checkable is checked).
struct Resolved {
    name: String,
    storage: String,
    candidates: Vec<Candidate>,
    competition: Competition,
    pipeline: Vec<(String, Distribution)>,
    objective: Objective,
    sampler: SamplerSpec,
    pruner: PrunerSpec,
    n_trials: usize,
    timeout: Option<Duration>,
    jobs: usize,
    heartbeat: Option<Heartbeat>,
    enqueue: Vec<BTreeMap<String, ParamValue>>,
}

/// Reads the `tune:` section with the flags applied; every error names its key.
fn resolve(settings: &Settings, args: &TuneArgs, tracking_uri: &str) -> Result<Resolved> {
    let exp = &settings.experiment;
    let loaded = &settings.loaded;
    let Some(section) = exp.tune.clone() else {
        bad_input!(
            "{}: kiln tune needs a `tune:` section (candidates and their search spaces); see the README's \
             \"Tuning\" section",
            args.config.display()
        );
    };
    let classification = settings.model.is_classifier();
    let metric = section.metric.clone().unwrap_or_else(|| if classification { "roc_auc" } else { "rmse" }.into());
    let backtest = exp.backtest.clone().unwrap_or_default();
    let (score, trading) = if metric == "score" {
        let Some(score) = backtest.score.clone() else {
            return Err(loaded
                .error_at(
                    "tune.metric",
                    "`score` ranks trials by the composite score of the backtest.score section, which is missing \
                     (e.g. backtest: {score: {weights: {r2: 0.3, sharpe: 0.4, drawdown: 0.3}}})",
                )
                .into());
        };
        score
            .check(classification, backtest.trading.is_some())
            .map_err(|e| loaded.error_at("backtest.score", e.to_string()))?;
        if let Some(t) = &backtest.trading {
            t.validate().map_err(|e| loaded.error_at("backtest.trading", e.to_string()))?;
        }
        if section.pruner.as_ref().is_some_and(|p| !matches!(p, PrunerSettings::None)) {
            return Err(loaded
                .error_at(
                    "tune.pruner",
                    "the composite score is known only once every fold is scored, so there is nothing to prune on; \
                     use pruner: {kind: none} or a fold metric",
                )
                .into());
        }
        (Some(score), backtest.trading)
    } else {
        (None, None)
    };
    let higher = if score.is_some() {
        Some(true)
    } else if classification {
        ClassificationMetricName::parse(&metric).map(ClassificationMetricName::higher_is_better)
    } else {
        MetricName::parse(&metric).map(MetricName::higher_is_better)
    };
    let Some(higher) = higher else {
        let known: Vec<&str> = if classification {
            ClassificationMetricName::ALL.iter().map(|m| m.as_str()).collect()
        } else {
            MetricName::ALL.iter().map(|m| m.as_str()).collect()
        };
        return Err(loaded
            .error_at(
                "tune.metric",
                format!(
                    "unknown metric '{metric}' for this task; known: {}, and score (backtest.score)",
                    known.join(", ")
                ),
            )
            .into());
    };
    let direction = if higher { StudyDirection::Maximize } else { StudyDirection::Minimize };

    // the space: pipeline params, and without candidates the model section's
    let mut pipeline = Vec::new();
    let mut model_space = BTreeMap::new();
    for (name, value) in &section.space {
        let key = format!("tune.space.{name}");
        if name.starts_with("preprocess.") || name.starts_with("selection.") {
            match value {
                serde_json::Value::Object(_) => {
                    pipeline.push((name.clone(), loaded.parse_at::<Distribution>(&key, value)?))
                }
                _ => {
                    return Err(loaded
                        .error_at(&key, "a pipeline value is set in the preprocess/selection section; search it with a distribution here")
                        .into());
                }
            }
        } else if section.candidates.is_empty() {
            model_space.insert(name.clone(), value.clone());
        } else {
            return Err(loaded
                .error_at(
                    &key,
                    "with tune.candidates, a model parameter is searched under its candidate's `space`; tune.space \
                     holds the pipeline's (preprocess.<step>.<field>, selection.<step>.<field>)",
                )
                .into());
        }
    }
    let candidate_settings: Vec<(String, CandidateSettings)> = if section.candidates.is_empty() {
        let model = serde_json::to_value(&exp.model).context("cannot read the model section")?;
        let kind = exp.model.kind().to_string();
        let Some(params) = model.get("params").and_then(|p| p.as_object()).cloned() else {
            bad_input!("the model section of {} has no params to search from", args.config.display());
        };
        vec![("tune.space".to_string(), CandidateSettings { kind, name: None, params, space: model_space })]
    } else {
        section.candidates.iter().enumerate().map(|(i, c)| (format!("tune.candidates[{i}]"), c.clone())).collect()
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    for (key, c) in &candidate_settings {
        if !kiln_models::ModelConfig::KINDS.contains(&c.kind.as_str()) {
            return Err(loaded
                .error_at(
                    &format!("{key}.kind"),
                    format!("unknown model kind '{}'; known: {}", c.kind, kiln_models::ModelConfig::KINDS.join(", ")),
                )
                .into());
        }
        let name = c.name.clone().unwrap_or_else(|| c.kind.clone());
        if candidates.iter().any(|o| o.name == name) {
            return Err(loaded
                .error_at(&format!("{key}.name"), format!("two candidates are named '{name}'; give each a unique name"))
                .into());
        }
        if name.is_empty() || name.contains(['.', ',']) {
            return Err(loaded.error_at(&format!("{key}.name"), format!("'{name}': a name without '.' or ','")).into());
        }
        let mut params = c.params.clone();
        let mut space = Vec::new();
        for (param, value) in &c.space {
            let at = if key == "tune.space" { format!("tune.space.{param}") } else { format!("{key}.space.{param}") };
            match value {
                serde_json::Value::Object(_) => {
                    space.push((param.clone(), loaded.parse_at::<Distribution>(&at, value)?))
                }
                fixed => {
                    params.insert(param.clone(), fixed.clone());
                }
            }
        }
        candidates.push(Candidate { name, kind: c.kind.clone(), params, space });
    }
    let key_of = |k: &str| -> String {
        // kiln-train names a candidate's key relative to `tune.`; without candidates, the model's space is tune.space
        if section.candidates.is_empty() {
            k.replacen("candidates[0].space", "space", 1).replacen("candidates[0].params", "space", 1)
        } else {
            k.to_string()
        }
    };
    kiln_train::tune::check_space(&candidates, &pipeline, &exp.preprocess, &exp.selection, classification)
        .map_err(|(key, message)| loaded.error_at(&format!("tune.{}", key_of(&key)), message))?;

    let competition = match section.competition {
        Some(CompetitionSetting::PerCandidate) => Competition::PerCandidate,
        _ => Competition::Joint,
    };
    let mut enqueue = Vec::new();
    for (i, entry) in section.enqueue.iter().enumerate() {
        let mut values = BTreeMap::new();
        for (name, value) in entry {
            let at = format!("tune.enqueue[{i}].{name}");
            values.insert(name.clone(), loaded.parse_at::<ParamValue>(&at, value)?);
        }
        enqueue.push(values);
    }
    kiln_train::tune::check_enqueue(&enqueue, &candidates, &pipeline, competition)
        .map_err(|(key, message)| loaded.error_at(&format!("tune.{key}"), message))?;
    let sampler = match section.sampler.clone().unwrap_or(SamplerSettings::Tpe {
        seed: None,
        n_startup_trials: None,
        n_ei_candidates: None,
        multivariate: None,
        group: None,
        constant_liar: None,
        prior_weight: None,
        consider_endpoints: None,
        consider_magic_clip: None,
    }) {
        SamplerSettings::Tpe {
            seed,
            n_startup_trials,
            n_ei_candidates,
            multivariate,
            group,
            constant_liar,
            prior_weight,
            consider_endpoints,
            consider_magic_clip,
        } => {
            let d = TpeOptions::default();
            let options = TpeOptions {
                n_startup_trials: n_startup_trials.unwrap_or(d.n_startup_trials),
                n_ei_candidates: n_ei_candidates.unwrap_or(d.n_ei_candidates),
                multivariate: multivariate.unwrap_or(d.multivariate),
                group: group.unwrap_or(d.group),
                constant_liar: constant_liar.unwrap_or(d.constant_liar),
                prior_weight: prior_weight.unwrap_or(d.prior_weight),
                consider_endpoints: consider_endpoints.unwrap_or(d.consider_endpoints),
                consider_magic_clip: consider_magic_clip.unwrap_or(d.consider_magic_clip),
                ..d
            };
            if options.group && !options.multivariate {
                // Optuna's TPESampler refuses it too
                return Err(loaded.error_at("tune.sampler.group", "needs `multivariate: true`").into());
            }
            if options.n_ei_candidates == 0 {
                return Err(loaded.error_at("tune.sampler.n_ei_candidates", "must be at least 1").into());
            }
            if options.prior_weight.is_nan() || options.prior_weight <= 0.0 {
                return Err(loaded.error_at("tune.sampler.prior_weight", "must be above 0").into());
            }
            SamplerSpec::Tpe { options, seed: seed.unwrap_or(42) }
        }
        SamplerSettings::Random { seed } => SamplerSpec::Random { seed: seed.unwrap_or(42) },
        SamplerSettings::Grid { seed } => SamplerSpec::Grid { seed: seed.unwrap_or(42) },
    };
    let pruner = match section.pruner.clone().unwrap_or(PrunerSettings::None) {
        PrunerSettings::None => PrunerSpec::None,
        PrunerSettings::Median { n_startup_trials, n_warmup_steps, interval_steps, n_min_trials } => {
            PrunerSpec::Median(
                MedianPruner::new(
                    n_startup_trials.unwrap_or(5),
                    n_warmup_steps.unwrap_or(0),
                    interval_steps.unwrap_or(1),
                    n_min_trials.unwrap_or(1),
                )
                .map_err(|e| loaded.error_at("tune.pruner", e.to_string()))?,
            )
        }
        PrunerSettings::Percentile { percentile, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials } => {
            PrunerSpec::Percentile(
                PercentilePruner::new(
                    percentile,
                    n_startup_trials.unwrap_or(5),
                    n_warmup_steps.unwrap_or(0),
                    interval_steps.unwrap_or(1),
                    n_min_trials.unwrap_or(1),
                )
                .map_err(|e| loaded.error_at("tune.pruner", e.to_string()))?,
            )
        }
        PrunerSettings::Threshold { lower, upper, n_warmup_steps, interval_steps } => PrunerSpec::Threshold(
            ThresholdPruner::new(lower, upper, n_warmup_steps.unwrap_or(0), interval_steps.unwrap_or(1))
                .map_err(|e| loaded.error_at("tune.pruner", e.to_string()))?,
        ),
        PrunerSettings::SuccessiveHalving {
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
            bootstrap_count,
        } => {
            let min_resource = match min_resource {
                None => MinResource::Auto,
                Some(serde_json::Value::String(s)) if s == "auto" => MinResource::Auto,
                Some(v) => match v.as_i64() {
                    Some(n) => MinResource::Steps(n),
                    None => {
                        return Err(loaded
                            .error_at("tune.pruner.min_resource", format!("{v} is neither a number of folds nor auto"))
                            .into());
                    }
                },
            };
            PrunerSpec::SuccessiveHalving(
                SuccessiveHalvingPruner::new(
                    min_resource,
                    reduction_factor.unwrap_or(4),
                    min_early_stopping_rate.unwrap_or(0),
                    bootstrap_count.unwrap_or(0),
                )
                .map_err(|e| loaded.error_at("tune.pruner", e.to_string()))?,
            )
        }
        PrunerSettings::Wilcoxon { p_threshold, n_startup_steps } => PrunerSpec::Wilcoxon(
            WilcoxonPruner::new(p_threshold.unwrap_or(0.1), n_startup_steps.unwrap_or(2))
                .map_err(|e| loaded.error_at("tune.pruner.p_threshold", e.to_string()))?,
        ),
    };
    // 0: no new trial, only the leaderboard of the stored ones and the winner's refit (the last step after many
    // workers)
    let n_trials = args.n_trials.or(section.n_trials).unwrap_or(DEFAULT_TRIALS);
    let timeout = args.timeout.or(section.timeout);
    if let Some(t) = timeout
        && !(t.is_finite() && t > 0.0)
    {
        return Err(loaded.error_at("tune.timeout", format!("{t} is not a number of seconds above 0")).into());
    }
    let jobs = args.jobs.or(section.jobs).unwrap_or(1);
    if jobs == 0 {
        bad_input!("tune.jobs (--jobs) must be at least 1");
    }
    let heartbeat = match section.heartbeat {
        None => Heartbeat { interval: Duration::from_secs(10), grace: Duration::from_secs(60) },
        Some(h) => {
            if !(h.interval.is_finite() && h.interval > 0.0) {
                return Err(loaded.error_at("tune.heartbeat.interval", "must be a number of seconds above 0").into());
            }
            let grace = h.grace.unwrap_or(6.0 * h.interval);
            if !(grace.is_finite() && grace > h.interval) {
                return Err(loaded
                    .error_at("tune.heartbeat.grace", "must be a number of seconds above the interval")
                    .into());
            }
            Heartbeat { interval: Duration::from_secs_f64(h.interval), grace: Duration::from_secs_f64(grace) }
        }
    };
    let name = args.study.clone().or(section.study.clone()).unwrap_or_else(|| exp.name.clone());
    if name.trim().is_empty() {
        bad_input!("tune.study (--study): the study needs a name");
    }
    let storage = args.storage.clone().or(section.storage.clone()).unwrap_or_else(|| default_storage(tracking_uri));
    Ok(Resolved {
        name,
        storage,
        candidates,
        competition,
        pipeline,
        objective: Objective { metric, direction, score, trading },
        sampler,
        pruner,
        n_trials,
        timeout: timeout.map(Duration::from_secs_f64),
        jobs,
        heartbeat: Some(heartbeat),
        enqueue,
    })
}

/// The naive baseline of the task, as the tables name it.
fn naive_baseline(settings: &Settings) -> &'static str {
    match settings.experiment.task.kind {
        crate::settings::TaskKind::Forecast => "persistence (the last value)",
        crate::settings::TaskKind::Regression => "the training mean",
        crate::settings::TaskKind::Classification => "the majority class",
    }
}

/// `optuna.db` beside the tracking folder (in the working folder for a tracking server).
fn default_storage(tracking_uri: &str) -> String {
    if tracking_uri.starts_with("http://") || tracking_uri.starts_with("https://") {
        return "sqlite:///optuna.db".to_string();
    }
    let folder = Path::new(tracking_uri.strip_prefix("file://").unwrap_or(tracking_uri));
    let beside = folder.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(PathBuf::new, Path::to_path_buf);
    format!("sqlite:///{}", beside.join("optuna.db").display())
}

/// Opens the study storage named by `url` (SQLite or PostgreSQL, as Optuna users write it).
fn open_storage(url: &str) -> Result<Box<dyn StudyStorage>> {
    Ok(kiln_store::open_study_storage(url)?)
}

pub(crate) fn tune(args: TuneArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (settings, merged) = load_experiment(&args.config)?;
    let exp = &settings.experiment;
    let uri = args.tracking_uri.clone().unwrap_or_else(|| exp.tracking.uri.clone());
    let resolved = resolve(&settings, &args, &uri)?;
    let register = match (&exp.registry, args.register) {
        (Some(r), true) => Some(crate::commands::register_spec(r, args.force, &args.config)?),
        (None, true) => {
            bad_input!("{}: --register needs a 'registry' section with 'model_name'", args.config.display())
        }
        (_, false) => None,
    };
    if register.is_some() && args.no_refit {
        bad_input!("--register registers the refitted winner; it cannot go with --no-refit");
    }
    // the storage before the data: an unreachable one fails fast
    let shown_storage = kiln_store::redact_storage_url(&resolved.storage);
    let storage = open_storage(&resolved.storage)?;
    progress.step(&format!("study '{}' in {shown_storage}", resolved.name));

    // the experiment's validate: section first, as kiln train does: invalid data starts no run (exit 2)
    crate::validate_cmd::check_experiment_data(&settings, &progress)?;
    let (LoadedData { frame, sha256: data_sha256, origin: data_origin }, task) = load_data(&settings, &progress)?;
    let section = exp.backtest.clone().unwrap_or_default();
    let fold_settings = FoldSettings::of_section(&section, section.folds.unwrap_or(5));
    let seed = exp.split.seed.unwrap_or(42);
    let splitter = splitter_for(&task, &fold_settings, seed)?;
    if let TaskSpec::Forecast { recipe, .. } = &task
        && let Some(multi) = &recipe.multi_step
    {
        let metric = &resolved.objective.metric;
        if resolved.objective.score.is_none() && kiln_train::tune::scored_over_steps(metric) {
            progress.step(&format!(
                "a {}-step forecast: each fold is scored by its {metric} averaged over the steps",
                multi.steps
            ));
        } else {
            progress.step(&format!(
                "note: a multi-step forecast is tuned on its one-step fold scores here ({} is not scored per step)",
                if resolved.objective.score.is_some() { "the composite score" } else { metric.as_str() }
            ));
        }
    }

    let opened = create_store(&uri)?;
    let store = opened.as_shared_store();
    let charts = PlotChartRenderer::default();
    let clock = now_ms;
    // Ctrl-C or SIGTERM: the running trials are marked FAIL and the parent run KILLED before the process ends (a
    // second Ctrl-C ends it at once)
    let requested = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, exit::INTERRUPTED, requested.clone())
            .and_then(|_| signal_hook::flag::register(signal, requested.clone()))
            .context("cannot install the Ctrl-C handler")?;
    }
    // outside the trials (the study's set-up, the leaderboard, the refit) no study watcher runs: this one ends
    // the process, after giving the study's watcher time to mark its running trials and end it first
    {
        let requested = requested.clone();
        std::thread::spawn(move || {
            while !requested.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(5));
            eprintln!("interrupted");
            std::process::exit(exit::INTERRUPTED);
        });
    }
    let exit_now = || std::process::exit(exit::INTERRUPTED);
    let interrupt = Interrupt { requested: &requested, exit: &exit_now };
    let ports = TunePorts {
        storage: storage.as_ref(),
        tracker: store,
        artifacts: store,
        registry: store,
        charts: &charts,
        clock: &clock,
        interrupt: Some(&interrupt),
    };
    let secrets = config::secret_env_values(std::env::vars());
    let kinds: Vec<&str> = resolved.candidates.iter().map(|c| c.kind.as_str()).collect();
    let mut tags = run_tags("kiln tune", &args.config, exp, &kinds.join(","), &data_sha256, &data_origin, &secrets);
    tags.push(("kiln.storage".to_string(), shown_storage.clone()));
    let experiment = exp.tracking.experiment.clone().unwrap_or_else(|| exp.name.clone());
    let run = StudyRun {
        experiment: experiment.clone(),
        run_name: args.run_name.clone().unwrap_or_else(|| format!("{}-tune", exp.name)),
        tags: tags.clone(),
        input_params: vec![
            ("data.path".to_string(), config::redact_text(&data_origin, &secrets)),
            ("data.rows".to_string(), frame.n_rows().to_string()),
            ("tune.storage".to_string(), shown_storage.clone()),
            ("tune.folds".to_string(), fold_settings.folds.to_string()),
        ],
        config_yaml: merged.clone(),
    };
    let spec = StudySpec {
        name: resolved.name.clone(),
        candidates: resolved.candidates.clone(),
        competition: resolved.competition,
        pipeline: resolved.pipeline.clone(),
        task: &task,
        preprocess: &exp.preprocess,
        selection: &exp.selection,
        splitter,
        validation: exp.split.validation_size,
        seed,
        objective: resolved.objective.clone(),
        sampler: resolved.sampler.clone(),
        pruner: resolved.pruner.clone(),
        n_trials: Some(resolved.n_trials),
        timeout: resolved.timeout,
        jobs: resolved.jobs,
        heartbeat: resolved.heartbeat,
        enqueue: resolved.enqueue.clone(),
    };
    let outcome = kiln_train::tune::tune(&spec, &run, &frame, &ports, &progress)?;

    println!();
    let metric = &resolved.objective.metric;
    let mut table = vec![kiln_train::tune::leaderboard_header(metric)];
    table.extend(kiln_train::tune::leaderboard_rows(&outcome.leaderboard));
    println!(
        "leaderboard ({} trials in this run; mean test {metric} over {} folds of the training part, {}):",
        outcome.trials.len(),
        fold_settings.folds,
        if resolved.objective.direction == StudyDirection::Minimize { "lower is better" } else { "higher is better" }
    );
    print!("{}", number_table(&table));
    for row in &outcome.leaderboard {
        if !row.best_params.is_empty() {
            let params: Vec<String> = row.best_params.iter().map(|(n, v)| format!("{n}={v}")).collect();
            println!("  {}: {}", row.candidate, params.join(", "));
        }
    }
    if let Some(b) = outcome.baseline {
        let naive = naive_baseline(&settings);
        println!("  {naive} over the same folds: {metric} {}", kiln_train::number(b));
        let best = outcome.leaderboard.first().and_then(|r| r.best_value);
        if best.is_some_and(|v| !resolved.objective.direction.better(v, b)) {
            println!("  note: no trial beats {naive} on these folds");
        }
    }
    for (study, n) in &outcome.stale_failed {
        println!("note: trial {n} of study {study} was failed: its worker stopped sending heartbeats");
    }
    println!();
    println!(
        "study {} in {shown_storage}; parent run {} in {}",
        resolved.name,
        outcome.parent.run_id,
        opened.display()
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "study": resolved.name,
            "storage": shown_storage,
            "metric": metric,
            "direction": resolved.objective.direction.name().to_lowercase(),
            "parent_run_id": outcome.parent.run_id.0,
            "leaderboard": outcome.leaderboard,
            "baseline": outcome.baseline,
            "trials": outcome.trials.iter().map(|t| serde_json::json!({
                "study": t.study,
                "number": t.number,
                "candidate": t.candidate,
                "state": t.state.name(),
                "value": t.value,
                "seconds": t.seconds,
                "run_id": t.run_id.0,
                "fail_reason": t.fail_reason,
                "baseline": t.baseline,
                "params": t.params.iter().cloned().collect::<BTreeMap<String, kiln_train::tune::ParamValue>>(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let Some(winner) = outcome.winner else {
        // a study of pruned and failed trials only has no result, refit or not
        let refit = if args.no_refit { "" } else { " to refit" };
        eprintln!("error: no trial of the study completed (each was pruned or failed, see above): no winner{refit}");
        return Ok(1);
    };
    if args.no_refit {
        return Ok(0);
    }
    println!();
    println!(
        "refitting the winner, {} (trial {} of study {}, {metric} {}), on the whole training part; tested once on the \
         held-out test part",
        winner.candidate,
        winner.trial,
        winner.study,
        kiln_train::number(winner.value)
    );
    let mut train_tags =
        run_tags("kiln tune", &args.config, exp, winner.model.kind(), &data_sha256, &data_origin, &secrets);
    train_tags.push(("mlflow.parentRunId".to_string(), outcome.parent.run_id.0.clone()));
    train_tags.push(("kiln.run.kind".to_string(), "tune_refit".to_string()));
    train_tags.push(("kiln.study".to_string(), winner.study.clone()));
    train_tags.push(("kiln.trial.number".to_string(), winner.trial.to_string()));
    let mut input_params = vec![
        ("data.path".to_string(), config::redact_text(&data_origin, &secrets)),
        ("data.rows".to_string(), frame.n_rows().to_string()),
        ("tune.study".to_string(), winner.study.clone()),
        ("tune.trial".to_string(), winner.trial.to_string()),
    ];
    input_params.extend(
        winner
            .params
            .iter()
            .filter(|(n, _)| n.starts_with("preprocess.") || n.starts_with("selection."))
            .map(|(n, v)| (format!("tuned.{n}"), v.to_string())),
    );
    let train_spec = TrainSpec {
        experiment,
        run_name: format!("{}-{}-tuned", exp.name, winner.candidate),
        task,
        preprocess: winner.preprocess.clone(),
        selection: winner.selection.clone(),
        model: winner.model.clone(),
        gates: settings.gates.clone(),
        register,
        tags: train_tags,
        input_params,
        config_yaml: merged,
        data_sha256,
        data_origin,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        cv: None,
    };
    let champion = crate::commands::champion_loader(uri.clone(), None);
    let tracking = kiln_train::Ports { champion: Some(&champion), ..ports.tracking() };
    let trained = kiln_train::train(&train_spec, &frame, &tracking, &progress)?;
    Ok(report_training(&trained, exp, &opened.display(), train_spec.register.is_some()))
}
