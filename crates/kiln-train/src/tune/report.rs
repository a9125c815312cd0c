//! The charts a study's parent run holds, as Optuna's visualisations show a study: the optimisation history, the
//! parameter importances (PED-ANOVA, [`super::importance`]), parallel coordinates, the trials' fold scores and the
//! slice plot. All but the fold scores draw only complete trials with a finite value (their count and those of the
//! trials left out are in the titles), the fold scores the pruned trials too; a parameter missing from a trial (a
//! conditional space) breaks that trial's line, or leaves it out of that parameter's slice panel, instead of dropping
//! the trial. The charts are drawn behind the [`ChartRenderer`] port: no image format here.

use std::collections::{BTreeMap, BTreeSet};

use kiln_domain::{AxisScale, ChartAxis, ChartRenderer, PortError, SlicePanel};

use super::importance::ped_anova_importances;
use super::space::{Distribution, ParamValue};
use super::trial::{Direction, FrozenTrial, TrialState};

/// The study's charts as `(file name, PNG bytes)`: `optimization_history.png`, `param_importances.png`,
/// `parallel_coordinate.png`, `intermediate_values.png` (the fold scores) and `slice.png`, each left out when it has
/// nothing to show (no complete trial; importances with fewer than two complete trials or no parameter that varies;
/// parallel coordinates and the slice plot with no parameter; fold scores with none reported).
/// `objective_name` labels the value axis.
///
/// # Errors
/// What the renderer returns.
pub fn study_charts(
    trials: &[FrozenTrial],
    direction: Direction,
    objective_name: &str,
    charts: &dyn ChartRenderer,
) -> Result<Vec<(String, Vec<u8>)>, PortError> {
    let mut complete: Vec<&FrozenTrial> =
        trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite)).collect();
    complete.sort_by_key(|t| t.number);
    let mut out = Vec::new();
    if complete.is_empty() {
        return Ok(out);
    }
    let shown = shown_counts(trials, complete.len());
    out.push(("optimization_history.png".to_string(), history(&complete, direction, objective_name, &shown, charts)?));
    if let Some(png) = importances(trials, &complete, direction, charts)? {
        out.push(("param_importances.png".to_string(), png));
    }
    if let Some(png) = parallel(&complete, direction, objective_name, &shown, charts)? {
        out.push(("parallel_coordinate.png".to_string(), png));
    }
    if let Some(png) = intermediate(trials, objective_name, charts)? {
        out.push(("intermediate_values.png".to_string(), png));
    }
    if let Some(png) = slice(&complete, objective_name, &shown, charts)? {
        out.push(("slice.png".to_string(), png));
    }
    Ok(out)
}

/// The fold scores of the complete and pruned trials (Optuna's `plot_intermediate_values`): step `k` is fold
/// `k + 1`. Left out when no trial reported a finite one.
fn intermediate(
    trials: &[FrozenTrial],
    objective_name: &str,
    charts: &dyn ChartRenderer,
) -> Result<Option<Vec<u8>>, PortError> {
    let lines: Vec<(bool, Vec<(f64, f64)>)> = trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
        .filter(|t| t.intermediate_values.values().any(|v| v.is_finite()))
        .map(|t| {
            let points = t.intermediate_values.iter().map(|(step, v)| ((step + 1) as f64, *v)).collect();
            (t.state == TrialState::Pruned, points)
        })
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let pruned = lines.iter().filter(|(p, _)| *p).count();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let (complete, pruned_text) = (lines.len() - pruned, format!("{pruned} pruned"));
    let title = format!("Fold scores ({complete} complete trial{}, {pruned_text})", plural(complete));
    charts.intermediate_values_chart(&title, "fold", objective_name, &lines).map(Some)
}

/// "34 complete trials; 5 pruned, 1 failed not shown": what a chart of the complete trials leaves out.
fn shown_counts(trials: &[FrozenTrial], n_complete: usize) -> String {
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let non_finite = trials.iter().filter(|t| t.state == TrialState::Complete).count() - n_complete;
    let left_out: Vec<String> = [
        (count(TrialState::Pruned), "pruned"),
        (count(TrialState::Fail), "failed"),
        (count(TrialState::Running) + count(TrialState::Waiting), "unfinished"),
        (non_finite, "with a non-finite value"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let plural = if n_complete == 1 { "" } else { "s" };
    if left_out.is_empty() {
        format!("{n_complete} complete trial{plural}")
    } else {
        format!("{n_complete} complete trial{plural}; {} not shown", left_out.join(", "))
    }
}

fn history(
    complete: &[&FrozenTrial],
    direction: Direction,
    objective_name: &str,
    shown: &str,
    charts: &dyn ChartRenderer,
) -> Result<Vec<u8>, PortError> {
    let values: Vec<(f64, f64)> = complete.iter().map(|t| (t.number as f64, t.value.unwrap_or(f64::NAN))).collect();
    let mut best: Vec<(f64, f64)> = Vec::with_capacity(values.len());
    for &(x, v) in &values {
        let b = match best.last() {
            None => v,
            Some(&(_, b)) if direction == Direction::Minimize => b.min(v),
            Some(&(_, b)) => b.max(v),
        };
        best.push((x, b));
    }
    charts.history_chart(&format!("Optimization history ({shown})"), objective_name, &values, &best)
}

fn importances(
    trials: &[FrozenTrial],
    complete: &[&FrozenTrial],
    direction: Direction,
    charts: &dyn ChartRenderer,
) -> Result<Option<Vec<u8>>, PortError> {
    let importances = ped_anova_importances(trials, direction);
    let varies = |name: &str| complete.iter().any(|t| t.distributions.get(name).is_some_and(|d| !d.single()));
    if importances.is_empty() || !importances.iter().any(|(name, _)| varies(name)) {
        return Ok(None);
    }
    let assessed: BTreeSet<&str> = importances.iter().map(|(k, _)| k.as_str()).collect();
    let not_assessed: BTreeSet<&str> =
        complete.iter().flat_map(|t| t.params.keys()).map(String::as_str).filter(|k| !assessed.contains(k)).collect();
    let title = if not_assessed.is_empty() {
        "Hyperparameter importances (PED-ANOVA)".to_string()
    } else {
        let names: Vec<&str> = not_assessed.into_iter().collect();
        format!("Hyperparameter importances (PED-ANOVA; {} not assessed: missing from some trials)", names.join(", "))
    };
    let (labels, values): (Vec<String>, Vec<f64>) = importances.into_iter().unzip();
    charts.bar_chart(&title, "importance for the best 10 % of trials (share)", &labels, &values).map(Some)
}

/// The text of a categorical choice on an axis: a string without its JSON quotes, anything else as Optuna prints it.
fn choice_label(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => s.clone(),
        ParamValue::Null => "None".to_string(),
        ParamValue::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        other => other.to_string(),
    }
}

fn parallel(
    complete: &[&FrozenTrial],
    direction: Direction,
    objective_name: &str,
    shown: &str,
    charts: &dyn ChartRenderer,
) -> Result<Option<Vec<u8>>, PortError> {
    let names = param_names(complete);
    if names.is_empty() {
        return Ok(None);
    }
    let mut axes = vec![ChartAxis { name: objective_name.to_string(), scale: AxisScale::Linear }];
    let mut columns: Vec<Vec<Option<f64>>> = vec![complete.iter().map(|t| t.value).collect::<Vec<_>>()];
    for name in names {
        let (axis, column) = param_column(complete, name);
        axes.push(axis);
        columns.push(column);
    }
    let lines: Vec<Vec<Option<f64>>> = (0..complete.len()).map(|i| columns.iter().map(|c| c[i]).collect()).collect();
    let colour: Vec<f64> = complete.iter().map(|t| t.value.unwrap_or(f64::NAN)).collect();
    charts
        .parallel_coordinates_chart(
            &format!("Parallel coordinates ({shown})"),
            &axes,
            &lines,
            &colour,
            direction == Direction::Minimize,
        )
        .map(Some)
}

/// Every parameter name of the trials, sorted: a chart's axes or panels.
fn param_names<'t>(complete: &[&'t FrozenTrial]) -> BTreeSet<&'t String> {
    complete.iter().flat_map(|t| t.params.keys()).collect()
}

/// The axis of parameter `name` over the complete trials, and each trial's value on it (`None` for a trial without
/// the parameter): a categorical parameter's choices in the order its distributions list them (of every trial, when
/// they differ) with the choice's index as the value; a numeric one on a log axis when every trial drew it on a log
/// scale.
fn param_column(complete: &[&FrozenTrial], name: &str) -> (ChartAxis, Vec<Option<f64>>) {
    let dists: Vec<&Distribution> = complete.iter().filter_map(|t| t.distributions.get(name)).collect();
    if dists.iter().any(|d| matches!(d, Distribution::Categorical { .. })) {
        let mut labels: Vec<String> = Vec::new();
        for d in &dists {
            if let Distribution::Categorical { choices } = d {
                for c in choices.iter().map(choice_label) {
                    if !labels.contains(&c) {
                        labels.push(c);
                    }
                }
            }
        }
        let index: BTreeMap<String, usize> = labels.iter().cloned().enumerate().map(|(i, l)| (l, i)).collect();
        let column = complete
            .iter()
            .map(|t| {
                let (v, d) = (t.params.get(name)?, t.distributions.get(name)?);
                let label = d.to_external(*v).ok().map_or_else(|| v.to_string(), |e| choice_label(&e));
                index.get(&label).map(|i| *i as f64)
            })
            .collect();
        return (ChartAxis { name: name.to_string(), scale: AxisScale::Categories(labels) }, column);
    }
    let log =
        dists.iter().all(|d| matches!(d, Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }));
    let scale = if log { AxisScale::Log } else { AxisScale::Linear };
    (ChartAxis { name: name.to_string(), scale }, complete.iter().map(|t| t.params.get(name).copied()).collect())
}

/// A scatter of the objective against each parameter (Optuna's `plot_slice`), a panel per parameter over the
/// complete trials that have it, coloured by trial number. Left out when no trial has a parameter.
fn slice(
    complete: &[&FrozenTrial],
    objective_name: &str,
    shown: &str,
    charts: &dyn ChartRenderer,
) -> Result<Option<Vec<u8>>, PortError> {
    let names = param_names(complete);
    if names.is_empty() {
        return Ok(None);
    }
    let panels: Vec<SlicePanel> = names
        .into_iter()
        .map(|name| {
            let (axis, column) = param_column(complete, name);
            let points =
                complete.iter().zip(column).filter_map(|(t, x)| Some((x?, t.value?, t.number as f64))).collect();
            SlicePanel { axis, points }
        })
        .collect();
    let title = format!("Slice plot ({shown}; later trials darker)");
    charts.slice_chart(&title, objective_name, &panels).map(Some)
}

/// The empirical distribution of the objective per candidate (Optuna's `plot_edf`, one line per candidate where
/// Optuna draws one per study): for each candidate, the share of its complete trials whose value is at most `x`, a
/// step at each of their values. `candidates` holds each candidate's name and its trials; the complete ones with a
/// finite value are drawn. Left out when fewer than two candidates have such a trial (nothing to compare).
///
/// # Errors
/// What the renderer returns.
pub fn edf_chart(
    candidates: &[(String, Vec<FrozenTrial>)],
    objective_name: &str,
    charts: &dyn ChartRenderer,
) -> Result<Option<Vec<u8>>, PortError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = candidates
        .iter()
        .filter_map(|(name, trials)| {
            let mut values: Vec<f64> = trials
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(|t| t.value.filter(|v| v.is_finite()))
                .collect();
            if values.is_empty() {
                return None;
            }
            values.sort_by(f64::total_cmp);
            let n = values.len() as f64;
            // 0 up to the first value, then a rise of 1/n at each value
            let mut points = vec![(values[0], 0.0)];
            for (i, &v) in values.iter().enumerate() {
                points.push((v, i as f64 / n));
                points.push((v, (i + 1) as f64 / n));
            }
            let plural = if values.len() == 1 { "" } else { "s" };
            Some((format!("{name} ({} trial{plural})", values.len()), points))
        })
        .collect();
    if series.len() < 2 {
        return Ok(None);
    }
    let title = format!("Empirical distribution of {objective_name} by candidate (complete trials)");
    charts
        .line_chart(&title, objective_name, "share of the candidate's trials at most this value", &series, false)
        .map(Some)
}
