//! From raw rows to a labelled design: the base feature frame, the label, what identifies each row, and the split
//! into train, validation and test rows. Nothing here is fitted: preprocessing and selection come after the split.

use kiln_domain::{Column, Frame};
use kiln_eval::{HoldoutSpec, Size};
use kiln_features::{TabularInput, TimeSeriesRecipe, matrix_to_frame, select_columns};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// What is learned, how rows are split, and what is done with missing values.
#[derive(Debug, Clone)]
pub enum TaskSpec {
    /// a numeric series `horizon` steps ahead, time-ordered split
    Forecast {
        recipe: TimeSeriesRecipe,
        split: HoldoutSpec,
        missing: MissingPolicy,
        /// conformal prediction intervals of a multi-step forecast
        intervals: Option<kiln_features::IntervalSpec>,
        /// a panel: one model per series (`model.per_series`) instead of one global model
        per_series: bool,
    },
    /// one prediction per tabular row, shuffled (and for classification stratified) split
    Tabular { input: TabularInput, target: String, kind: TabularKind, split: ShuffledSplit, missing: MissingPolicy },
}

/// A row whose target is missing (`data.missing_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingTarget {
    /// that row alone is left out (counted and reported)
    #[default]
    Drop,
    /// the run stops with an error naming the rows
    Fail,
}

/// A row with a missing feature value (`data.missing_features`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingFeatures {
    /// the row stays; the preprocessing's imputer or the model (LightGBM, XGBoost) handles the missing value
    #[default]
    Keep,
    /// that row alone is left out (counted and reported)
    Drop,
    /// the run stops with an error naming the rows
    Fail,
}

/// A panel's series with too few rows for the features (`data.short_series`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortSeries {
    /// the series is left out (named and counted in the run)
    #[default]
    Skip,
    /// the run stops with an error naming the series
    Fail,
}

/// What is done with missing values, and how many dropped rows are too many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissingPolicy {
    pub target: MissingTarget,
    pub features: MissingFeatures,
    /// the largest share of the usable rows that may be dropped for missing values before the run stops
    pub max_dropped_fraction: f64,
    /// a panel's series too short for the features
    pub short_series: ShortSeries,
}

impl MissingTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            MissingTarget::Drop => "drop",
            MissingTarget::Fail => "fail",
        }
    }
}

impl MissingFeatures {
    pub fn as_str(self) -> &'static str {
        match self {
            MissingFeatures::Keep => "keep",
            MissingFeatures::Drop => "drop",
            MissingFeatures::Fail => "fail",
        }
    }
}

impl MissingPolicy {
    /// The default share of rows that may be dropped for missing values: 10%.
    pub const DEFAULT_MAX_DROPPED_FRACTION: f64 = 0.1;
}

impl Default for MissingPolicy {
    fn default() -> MissingPolicy {
        MissingPolicy {
            target: MissingTarget::Drop,
            features: MissingFeatures::Keep,
            max_dropped_fraction: MissingPolicy::DEFAULT_MAX_DROPPED_FRACTION,
            short_series: ShortSeries::Skip,
        }
    }
}

/// The rows of a design to keep, after the missing-value rules; `rows` are positions among the candidate rows,
/// `describe(i)` says where candidate `i` is in the data.
struct Kept {
    rows: Vec<usize>,
    missing_target: usize,
    missing_feature_rows: usize,
    missing_feature_dropped: usize,
}

fn apply_missing_rules(
    policy: &MissingPolicy,
    target: &str,
    target_missing: &[bool],
    feature_missing: &[bool],
    describe: &dyn Fn(usize) -> String,
) -> Result<Kept, TrainError> {
    let first = |flags: &[bool]| {
        let at: Vec<String> = flags.iter().enumerate().filter(|(_, m)| **m).take(3).map(|(i, _)| describe(i)).collect();
        at.join(", ")
    };
    let missing_target = target_missing.iter().filter(|m| **m).count();
    let missing_feature_rows = feature_missing.iter().zip(target_missing).filter(|(f, t)| **f && !**t).count();
    if missing_target > 0 && policy.target == MissingTarget::Fail {
        return Err(TrainError::MissingValues(format!(
            "target column '{target}' is missing in {missing_target} row(s) ({}), and data.missing_target is fail; \
             fill them, or set data.missing_target: drop to leave those rows out",
            first(target_missing)
        )));
    }
    if missing_feature_rows > 0 && policy.features == MissingFeatures::Fail {
        return Err(TrainError::MissingValues(format!(
            "{missing_feature_rows} row(s) have a missing feature value ({}), and data.missing_features is fail; \
             fill them, or set data.missing_features to keep (imputer or model) or drop",
            first(feature_missing)
        )));
    }
    let drop_features = policy.features == MissingFeatures::Drop;
    let rows: Vec<usize> =
        (0..target_missing.len()).filter(|&i| !(target_missing[i] || drop_features && feature_missing[i])).collect();
    let missing_feature_dropped = if drop_features { missing_feature_rows } else { 0 };
    let dropped = missing_target + missing_feature_dropped;
    let usable = target_missing.len();
    #[allow(clippy::cast_precision_loss)]
    let share = if usable == 0 { 0.0 } else { dropped as f64 / usable as f64 };
    if share > policy.max_dropped_fraction {
        return Err(TrainError::MissingValues(format!(
            "{dropped} of {usable} usable rows ({:.1}%) would be dropped for missing values ({missing_target} with \
             target '{target}' missing, {missing_feature_dropped} with a missing feature; first: {}), more than \
             data.max_dropped_fraction = {}; fix the data, or raise data.max_dropped_fraction if this is expected",
            share * 100.0,
            first(
                &target_missing
                    .iter()
                    .zip(feature_missing)
                    .map(|(t, f)| *t || (drop_features && *f))
                    .collect::<Vec<_>>()
            ),
            policy.max_dropped_fraction
        )));
    }
    Ok(Kept { rows, missing_target, missing_feature_rows, missing_feature_dropped })
}

fn take<T: Clone>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| values[i].clone()).collect()
}

/// The kind of a tabular task.
#[derive(Debug, Clone, PartialEq)]
pub enum TabularKind {
    /// binary: the target equals `positive` (label 1) or not (label 0)
    Classification { positive: String, threshold: ThresholdRule },
    /// a numeric target
    Regression,
}

/// How the decision threshold of a classifier is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    Fixed(f64),
    /// the threshold that maximises F1 on the validation part
    BestF1,
}

/// A shuffled split of tabular rows (stratified by class for classification).
#[derive(Debug, Clone, PartialEq)]
pub struct ShuffledSplit {
    pub test_size: Size,
    pub validation_size: Option<Size>,
    pub seed: u64,
}

impl TaskSpec {
    /// Whether the task is a classification (its metrics and baselines are a classifier's).
    pub fn is_classification(&self) -> bool {
        matches!(self, TaskSpec::Tabular { kind: TabularKind::Classification { .. }, .. })
    }

    /// What is done with missing values.
    pub fn missing(&self) -> &MissingPolicy {
        match self {
            TaskSpec::Forecast { missing, .. } | TaskSpec::Tabular { missing, .. } => missing,
        }
    }

    pub(crate) fn target(&self) -> &str {
        match self {
            TaskSpec::Forecast { recipe, .. } => &recipe.target,
            TaskSpec::Tabular { target, .. } => target,
        }
    }

    pub(crate) fn kind_str(&self) -> &'static str {
        match self {
            TaskSpec::Forecast { .. } => "forecast",
            TaskSpec::Tabular { kind: TabularKind::Classification { .. }, .. } => "classification",
            TaskSpec::Tabular { kind: TabularKind::Regression, .. } => "regression",
        }
    }
}

/// Row indices of each part, into the rows of a [`Design`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// rows dropped between validation and test (forecast gap)
    pub gap: usize,
}

impl Parts {
    /// Train and validation rows (what the reported "train" metrics are computed on).
    pub(crate) fn fit_rows(&self) -> Vec<usize> {
        let mut rows = self.train.clone();
        rows.extend(&self.validation);
        rows.sort_unstable();
        rows
    }
}

/// The base features and labels of every usable row.
#[derive(Debug, Clone)]
pub(crate) struct Design {
    /// raw feature columns (tabular) or the kernels' output (forecast), before preprocessing
    pub features: Frame,
    /// what the model learns: 0/1 for classification, the transformed target for a forecast
    pub label: Vec<f64>,
    /// forecast: target at t (persistence baseline and inversion); empty for tabular
    pub current: Vec<f64>,
    /// the truth in the target's own units: target at t + horizon for a forecast, else the label
    pub truth: Vec<f64>,
    /// forecast: origin time of each row, UTC ms
    pub times: Vec<i64>,
    /// tabular: the id of each row (the id column, or the row number in the file)
    pub ids: Vec<String>,
    /// classification: the target value of class 0, when the target has exactly two values
    pub negative: Option<String>,
    /// where each row is in the data: its data row, counted from 1 (in time order for a forecast)
    pub data_rows: Vec<usize>,
    /// forecast with a season: the seasonal naive forecast of each row (empty otherwise)
    pub seasonal: Vec<f64>,
    /// a panel forecast: the series of each row, an index into `series_keys` (empty otherwise)
    pub series: Vec<u32>,
    /// a panel forecast: every series' key, sorted
    pub series_keys: Vec<String>,
    /// a direct multi-step forecast: the target at `t + k` for k = 2..=steps (`[k - 2][row]`); empty otherwise
    pub step_truths: Vec<Vec<f64>>,
    /// a direct multi-step forecast with `known_in_advance` columns: their values at `t + k` for k = 2..=steps
    /// (`[k - 2][a][row]`, see `FeatureTable::step_ahead`); empty otherwise
    pub step_ahead: Vec<Vec<Vec<f64>>>,
    pub rows: RowCounts,
}

impl Design {
    /// The design restricted to `rows` (in that order), with the same row counts.
    pub(crate) fn take(&self, rows: &[usize]) -> Design {
        let pick_f = |v: &[f64]| if v.is_empty() { Vec::new() } else { rows.iter().map(|&r| v[r]).collect() };
        Design {
            features: self.features.take(rows),
            label: pick_f(&self.label),
            current: pick_f(&self.current),
            truth: pick_f(&self.truth),
            times: if self.times.is_empty() { Vec::new() } else { rows.iter().map(|&r| self.times[r]).collect() },
            ids: if self.ids.is_empty() { Vec::new() } else { rows.iter().map(|&r| self.ids[r].clone()).collect() },
            negative: self.negative.clone(),
            data_rows: rows.iter().map(|&r| self.data_rows[r]).collect(),
            seasonal: pick_f(&self.seasonal),
            series: if self.series.is_empty() { Vec::new() } else { rows.iter().map(|&r| self.series[r]).collect() },
            series_keys: self.series_keys.clone(),
            step_truths: self.step_truths.iter().map(|v| pick_f(v)).collect(),
            step_ahead: self.step_ahead.iter().map(|step| step.iter().map(|v| pick_f(v)).collect()).collect(),
            rows: self.rows,
        }
    }
}

/// How the rows of the data were used.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RowCounts {
    pub input: usize,
    pub warmup_dropped: usize,
    /// rows whose target lies past the end of the data (the last `horizon` rows of a forecast)
    pub no_target_dropped: usize,
    /// rows left out because their target is missing (`data.missing_target: drop`)
    pub missing_target_dropped: usize,
    /// rows with a missing feature value (kept or dropped by `data.missing_features`)
    pub missing_feature_rows: usize,
    /// rows left out because a feature is missing (`data.missing_features: drop`)
    pub missing_feature_dropped: usize,
    pub gap_dropped: usize,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    /// a panel: the series with rows past the warm-up
    #[serde(skip_serializing_if = "is_zero")]
    pub series: usize,
    /// a panel: series left out for too few rows (`data.short_series: skip`)
    #[serde(skip_serializing_if = "is_zero")]
    pub short_series_dropped: usize,
    /// a wide file melted into a panel: the long panel's rows (the file has `input`)
    #[serde(skip_serializing_if = "is_zero")]
    pub melted_rows: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Builds the design and the split.
///
/// # Errors
/// Missing or mistyped columns, a target with gaps or no positive row, or too few rows for the split.
pub(crate) fn prepare(task: &TaskSpec, frame: &Frame) -> Result<(Design, Parts), TrainError> {
    match task {
        TaskSpec::Forecast { recipe, split, missing, .. } => forecast(recipe, split, missing, frame),
        TaskSpec::Tabular { input, target, kind, split, missing } => {
            tabular(input, target, kind, split, missing, frame)
        }
    }
}

fn forecast(
    recipe: &TimeSeriesRecipe,
    split: &HoldoutSpec,
    missing: &MissingPolicy,
    frame: &Frame,
) -> Result<(Design, Parts), TrainError> {
    let table = recipe.build_table(frame)?;
    if let Some(panel) = &table.panel
        && let Some((key, n)) = panel.short.first()
        && missing.short_series == ShortSeries::Fail
    {
        return Err(TrainError::NotEnoughRows(format!(
            "{} series of '{}' have too few rows for the features (the first: '{key}' with {n} rows, {} needed), and \
             data.short_series is fail; drop them, or set data.short_series: skip",
            panel.short.len(),
            recipe.series_column.as_deref().unwrap_or_default(),
            recipe.warmup() + 1
        )));
    }
    // the last `horizon` rows (of each series) have their target past the end of the data: they cannot be fitted
    // or scored
    // a direct multi-step recipe learns every step from the same rows: those whose last step lies in the data
    let has_future = table.has_rows_after(recipe.horizon.max(recipe.direct_steps()));
    let candidates: Vec<usize> = (0..has_future.len()).filter(|&i| has_future[i]).collect();
    let target_missing: Vec<bool> = candidates
        .iter()
        .map(|&i| {
            table.current[i].is_nan() || table.future[i].is_nan() || table.step_futures.iter().any(|f| f[i].is_nan())
        })
        .collect();
    if candidates.iter().zip(&target_missing).any(|(&i, &m)| !m && table.label[i].is_nan()) {
        return Err(TrainError::NotEnoughRows(format!(
            "the label of target column '{}' cannot be computed inside the data (a log return of a value <= 0); \
             fill or drop those rows, or pick another target_transform",
            recipe.target
        )));
    }
    let n_cols = table.x.n_cols();
    let feature_missing: Vec<bool> =
        candidates.iter().map(|&i| table.x.data[i * n_cols..(i + 1) * n_cols].iter().any(|v| v.is_nan())).collect();
    let warmup = table.warmup_dropped;
    // a single series' table rows are its data rows in time order, after the warm-up; a panel's know their row
    let data_row = |i: usize| match &table.panel {
        Some(p) => p.frame_rows[i] + 1,
        None => warmup + i + 1,
    };
    let describe = |c: usize| match &table.panel {
        Some(p) => {
            format!("data row {} (series '{}')", data_row(candidates[c]), p.keys[p.series[candidates[c]] as usize])
        }
        None => format!("data row {}", data_row(candidates[c])),
    };
    let keep = apply_missing_rules(missing, &recipe.target, &target_missing, &feature_missing, &describe)?;
    let rows: Vec<usize> = keep.rows.iter().map(|&c| candidates[c]).collect();
    // the split is by time: a panel's rows at one time all fall in the same part
    let (time_of_row, n_times) = time_positions(&table.times, &rows);
    let holdout = kiln_eval::time_holdout(n_times, split, recipe.min_gap())?;
    let part = |range: &std::ops::Range<usize>| -> Vec<usize> {
        (0..rows.len()).filter(|&r| range.contains(&time_of_row[r])).collect()
    };
    let parts = Parts {
        train: part(&holdout.train),
        validation: part(&holdout.validation),
        test: part(&holdout.test),
        gap: part(&holdout.gap).len(),
    };
    let n_series = table.panel.as_ref().map_or(0, |p| p.keys.len() - p.short.len());
    let rows_counts = RowCounts {
        input: frame.n_rows(),
        warmup_dropped: warmup,
        no_target_dropped: has_future.iter().filter(|f| !**f).count(),
        missing_target_dropped: keep.missing_target,
        missing_feature_rows: keep.missing_feature_rows,
        missing_feature_dropped: keep.missing_feature_dropped,
        gap_dropped: parts.gap,
        train: parts.train.len(),
        validation: parts.validation.len(),
        test: parts.test.len(),
        series: n_series,
        short_series_dropped: table.panel.as_ref().map_or(0, |p| p.short.len()),
        melted_rows: if recipe.wide.is_some() { table.times.len() + table.warmup_dropped } else { 0 },
    };
    let keys: Option<Vec<String>> = table
        .panel
        .as_ref()
        .filter(|_| recipe.series_feature())
        .map(|p| rows.iter().map(|&r| p.keys[p.series[r] as usize].clone()).collect());
    let features = recipe.with_series_feature(matrix_to_frame(&table.x.take_rows(&rows))?, keys.as_deref())?;
    let design = Design {
        features,
        label: take(&table.label, &rows),
        current: take(&table.current, &rows),
        truth: take(&table.future, &rows),
        times: take(&table.times, &rows),
        ids: Vec::new(),
        negative: None,
        data_rows: rows.iter().map(|&r| data_row(r)).collect(),
        seasonal: Vec::new(),
        series: table.panel.as_ref().map_or_else(Vec::new, |p| take(&p.series, &rows)),
        series_keys: table.panel.as_ref().map_or_else(Vec::new, |p| p.keys.clone()),
        step_truths: table.step_futures.iter().map(|f| take(f, &rows)).collect(),
        step_ahead: table.step_ahead.iter().map(|step| step.iter().map(|v| take(v, &rows)).collect()).collect(),
        rows: rows_counts,
    };
    Ok((design, parts))
}

/// The position of each of `rows`' times among their distinct times (rows in time order), and how many distinct
/// times there are: a single series has one row per time, a panel one per series.
fn time_positions(times: &[i64], rows: &[usize]) -> (Vec<usize>, usize) {
    let mut out = Vec::with_capacity(rows.len());
    let mut n = 0;
    let mut last = None;
    for &r in rows {
        if last != Some(times[r]) {
            n += 1;
            last = Some(times[r]);
        }
        out.push(n - 1);
    }
    (out, n)
}

fn tabular(
    input: &TabularInput,
    target: &str,
    kind: &TabularKind,
    split: &ShuffledSplit,
    missing: &MissingPolicy,
    frame: &Frame,
) -> Result<(Design, Parts), TrainError> {
    let column = frame.column(target).map_err(|_| kiln_features::FeatureError::MissingColumn {
        needed_by: "task.target".to_string(),
        column: target.to_string(),
    })?;
    // a binary classifier learns `positive` against exactly one other class: a third is refused, never folded into
    // the negative class
    if let TabularKind::Classification { positive, .. } = kind {
        let classes: std::collections::BTreeSet<String> = match column {
            Column::Categorical(v) => v.iter().flatten().cloned().collect(),
            Column::Numeric(v) => v.iter().filter(|x| !x.is_nan()).map(|x| x.to_string()).collect(),
            Column::Timestamp(_) => std::collections::BTreeSet::new(),
        };
        if classes.len() > 2 {
            let shown: Vec<String> =
                classes.iter().take(5).map(|c| format!("'{}'", kiln_domain::cut_for_message(c, 40))).collect();
            return Err(TrainError::Target(format!(
                "target column '{target}' has {} classes ({}{}); a binary classifier needs exactly two: \
                 task.positive '{positive}' and one other (map or drop the other rows first)",
                classes.len(),
                shown.join(", "),
                if classes.len() > 5 { ", ..." } else { "" }
            )));
        }
    }
    // the label of every row, None where the target is missing
    let labels: Vec<Option<f64>> = match (kind, column) {
        (TabularKind::Classification { positive, .. }, Column::Categorical(v)) => {
            v.iter().map(|c| c.as_ref().map(|s| if s == positive { 1.0 } else { 0.0 })).collect()
        }
        (TabularKind::Classification { positive, .. }, Column::Numeric(v)) => {
            let p: f64 = positive.parse().map_err(|_| {
                TrainError::Target(format!(
                    "target column '{target}' is numeric, so task.positive must be a number, not '{positive}'"
                ))
            })?;
            v.iter().map(|&x| (!x.is_nan()).then_some(if x == p { 1.0 } else { 0.0 })).collect()
        }
        (TabularKind::Regression, Column::Numeric(v)) => v.iter().map(|&x| (!x.is_nan()).then_some(x)).collect(),
        (TabularKind::Regression, other) => {
            return Err(TrainError::Target(format!(
                "a regression needs a numeric target, but column '{target}' is {}",
                other.kind().as_str()
            )));
        }
        (TabularKind::Classification { .. }, other) => {
            return Err(TrainError::Target(format!(
                "target column '{target}' is {}; a classification target must be categorical or numeric",
                other.kind().as_str()
            )));
        }
    };
    let target_missing: Vec<bool> = labels.iter().map(Option::is_none).collect();
    let mut feature_missing = vec![false; labels.len()];
    for name in &input.columns {
        match frame.column(name) {
            Ok(Column::Numeric(v)) => v.iter().zip(&mut feature_missing).for_each(|(x, m)| *m |= x.is_nan()),
            Ok(Column::Categorical(v)) => v.iter().zip(&mut feature_missing).for_each(|(x, m)| *m |= x.is_none()),
            // a missing column is reported by select_columns below
            Ok(Column::Timestamp(_)) | Err(_) => {}
        }
    }
    // tabular rows keep the file's order: row i is the file's data row i + 1
    let describe = |i: usize| format!("data row {}", i + 1);
    let kept = apply_missing_rules(missing, target, &target_missing, &feature_missing, &describe)?;
    let keep = kept.rows;
    let label: Vec<f64> = keep.iter().filter_map(|&i| labels[i]).collect();
    if let TabularKind::Classification { positive, .. } = kind {
        let positives = label.iter().filter(|&&y| y == 1.0).count();
        if positives == 0 || positives == label.len() {
            return Err(TrainError::Target(format!(
                "target column '{target}' has {positives} rows equal to '{positive}' out of {}: a classifier needs \
                 both classes",
                label.len()
            )));
        }
    }
    let ids: Vec<String> = match &input.id_column {
        Some(id) => match frame.column(id) {
            Ok(Column::Categorical(v)) => keep.iter().map(|&i| v[i].clone().unwrap_or_default()).collect(),
            Ok(Column::Numeric(v)) => keep.iter().map(|&i| v[i].to_string()).collect(),
            Ok(Column::Timestamp(v)) => keep.iter().map(|&i| v[i].to_string()).collect(),
            Err(_) => {
                return Err(kiln_features::FeatureError::MissingColumn {
                    needed_by: "data.id_column".to_string(),
                    column: id.clone(),
                }
                .into());
            }
        },
        None => keep.iter().map(|&i| i.to_string()).collect(),
    };
    let features = select_columns(frame, &input.columns)?.take(&keep);
    let n = label.len();
    let holdout = match kind {
        TabularKind::Classification { .. } => {
            kiln_eval::stratified_holdout(&label, split.test_size, split.validation_size, split.seed)?
        }
        // one class: the stratified split is a plain shuffled split
        TabularKind::Regression => {
            kiln_eval::stratified_holdout(&vec![0.0; n], split.test_size, split.validation_size, split.seed)?
        }
    };
    let parts = Parts { train: holdout.train, validation: holdout.validation, test: holdout.test, gap: 0 };
    let rows = RowCounts {
        input: frame.n_rows(),
        warmup_dropped: 0,
        no_target_dropped: 0,
        missing_target_dropped: kept.missing_target,
        missing_feature_rows: kept.missing_feature_rows,
        missing_feature_dropped: kept.missing_feature_dropped,
        gap_dropped: 0,
        train: parts.train.len(),
        validation: parts.validation.len(),
        test: parts.test.len(),
        series: 0,
        short_series_dropped: 0,
        melted_rows: 0,
    };
    let negative = match (kind, column) {
        (TabularKind::Classification { positive, .. }, Column::Categorical(v)) => {
            let others: std::collections::BTreeSet<&str> =
                v.iter().flatten().map(String::as_str).filter(|s| s != positive).collect();
            (others.len() == 1).then(|| others.iter().next().map(|s| s.to_string())).flatten()
        }
        _ => None,
    };
    let design = Design {
        features,
        truth: label.clone(),
        label,
        current: Vec::new(),
        times: Vec::new(),
        ids,
        negative,
        data_rows: keep.iter().map(|r| r + 1).collect(),
        seasonal: Vec::new(),
        series: Vec::new(),
        series_keys: Vec::new(),
        step_truths: Vec::new(),
        step_ahead: Vec::new(),
        rows,
    };
    Ok((design, parts))
}
