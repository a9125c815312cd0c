//! `kiln retrain`: a champion and a challenger. `--when` decides on the fresh data whether to train at all; the
//! challenger is then trained and registered as `kiln train --register` does, and takes the alias only when it
//! beats the champion (scored on the challenger's held-out test rows) by the margin (`kiln_train::decide`).

use std::time::Instant;

use anyhow::Result;
use kiln_domain::LoadedData;
use kiln_eval::drift::DriftOptions;
use kiln_train::{AssessRows, Progress, TaskSpec};

use crate::cli::{DriftArgs, RetrainArgs, RetrainWhen, TrainArgs};
use crate::commands::{Precondition, TrainHooks, train_with};
use crate::exit::bad_input;
use crate::settings::Settings;

pub(crate) fn retrain(args: RetrainArgs) -> Result<u8> {
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bad_input!("--tolerance must be a fraction >= 0 (0.1: 10% worse allowed), not {}", args.tolerance);
    }
    let when = args.when;
    let tolerance = args.tolerance;
    let config = args.config.clone();
    let check = move |settings: &Settings,
                      data: &LoadedData,
                      task: &TaskSpec,
                      uri: &str,
                      progress: &dyn Progress|
          -> Result<Precondition> {
        let Some(registry) = &settings.experiment.registry else {
            bad_input!(
                "{}: kiln retrain needs a 'registry' section (the champion is its model_name@alias)",
                config.display()
            )
        };
        let reference = format!("models:/{}@{}", registry.model_name, registry.alias);
        let mut tags = vec![("kiln.retrain.when".to_string(), when_str(when).to_string())];
        // loaded once, for the decision to train and for the drift report alike
        let champion = match kiln::load_bundle(&reference, uri) {
            Ok(loaded) => loaded,
            Err(e) if e.code() == kiln_domain::Code::NotFound => {
                let reason = format!("retrain: no version holds {reference} yet: training the first one");
                tags.push(("kiln.retrain.trigger".to_string(), reason.clone()));
                return Ok(Precondition { go: true, reason, tags });
            }
            Err(e) => return Err(e.into()),
        };
        let version = champion.version.as_ref().map_or(0, |v| v.version);
        tags.push(("kiln.retrain.champion_version".to_string(), version.to_string()));
        let (go, reason) = match when {
            RetrainWhen::Always => {
                (true, format!("retrain --when always: training a challenger to {reference} (version {})", version))
            }
            RetrainWhen::Degraded => {
                let rows = recent_window(settings, data, task)?;
                progress.step(&format!("judging {reference} (version {}) on the newest rows", version));
                let assessment = kiln_train::assess(&champion.bundle, &data.frame, &rows)?;
                let metric = kiln_train::default_compare_metric(&champion.bundle);
                let j = crate::evaluate_cmd::judge(&champion.bundle, &assessment, metric, tolerance);
                (j.degraded, format!("retrain --when degraded: {reference} (version {}): {}", version, j.reason))
            }
            RetrainWhen::Drift => {
                progress.step(&format!(
                    "comparing the newest rows with the reference profile of {reference} (version {})",
                    version
                ));
                let window = match recent_window(settings, data, task)? {
                    AssessRows::Origins { from, .. } => {
                        let time = data.frame.timestamps(&settings_time(task))?;
                        let rows: Vec<usize> = (0..time.len()).filter(|&i| time[i] >= from).collect();
                        data.frame.take(&rows)
                    }
                    _ => data.frame.clone(),
                };
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("recent.parquet");
                kiln_data::write_frame(&path, &window)?;
                let args = DriftArgs {
                    model: Some(reference.clone()),
                    reference: None,
                    input: path,
                    columns: None,
                    series: false,
                    json: false,
                    report: None,
                    p_value: 0.05,
                    distance: 0.1,
                    drift_share: 0.5,
                    tracking_uri: Some(uri.to_string()),
                    experiment: None,
                    chunk_rows: 20_000,
                };
                let opts = DriftOptions { p_value: 0.05, distance: 0.1, drift_share: 0.5 };
                let report = crate::drift_cmd::against_loaded(&args, &champion, &opts, 20_000, Instant::now())?;
                let d = &report.dataset;
                let verdict = if d.drifted { "DRIFT" } else { "no drift" };
                (
                    d.drifted,
                    format!(
                        "retrain --when drift: {verdict} in the newest {} rows against {reference} (version {}): \
                         {} of {} columns drifted ({:.0}%, the bar is {:.0}%)",
                        window.n_rows(),
                        version,
                        d.drifted_columns,
                        d.columns,
                        d.share * 100.0,
                        d.drift_share * 100.0
                    ),
                )
            }
        };
        tags.push(("kiln.retrain.trigger".to_string(), reason.clone()));
        let reason = if go { reason } else { format!("{reason}; no challenger trained") };
        Ok(Precondition { go, reason, tags })
    };
    let train = TrainArgs {
        config: args.config.clone(),
        register: true,
        force: false,
        tracking_uri: args.tracking_uri.clone(),
        run_name: None,
        cv: None,
    };
    let hooks = TrainHooks {
        input: args.input.clone(),
        margin: args.margin,
        command: Some("kiln retrain"),
        precondition: Some(&check),
    };
    train_with(train, hooks)
}

fn settings_time(task: &TaskSpec) -> String {
    match task {
        TaskSpec::Forecast { recipe, .. } => recipe.time_column.clone(),
        TaskSpec::Tabular { .. } => String::new(),
    }
}

fn when_str(when: RetrainWhen) -> &'static str {
    match when {
        RetrainWhen::Always => "always",
        RetrainWhen::Degraded => "degraded",
        RetrainWhen::Drift => "drift",
    }
}

/// The newest rows of the fresh data, as many as the experiment's test part: a forecast's last `split.test_size`
/// distinct times (the origins the challenger will be tested on, less its gap); every row of a tabular file, whose
/// rows have no order.
fn recent_window(settings: &Settings, data: &LoadedData, task: &TaskSpec) -> Result<AssessRows> {
    match task {
        TaskSpec::Tabular { .. } => Ok(AssessRows::All),
        TaskSpec::Forecast { recipe, .. } => {
            let mut times = data.frame.timestamps(&recipe.time_column)?.to_vec();
            times.sort_unstable();
            times.dedup();
            let n = settings.experiment.split.test_size.rows_of(times.len(), "split.test_size")?;
            let from = times[times.len().saturating_sub(n.max(1))];
            Ok(AssessRows::Origins { from, to: i64::MAX })
        }
    }
}
