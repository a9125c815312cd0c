//! From raw rows to a labelled design: the base feature frame, the label, what identifies each row, and the split
//! into train, validation and test rows. Nothing here is fitted: preprocessing and selection come after the split.

use kiln_domain::{Column, Frame};
use kiln_eval::{HoldoutSpec, Size};
use kiln_features::{TabularInput, TimeSeriesRecipe, matrix_to_frame, select_columns};
use serde::Serialize;

use crate::TrainError;

/// What is learned and how rows are split.
#[derive(Debug, Clone)]
pub enum TaskSpec {
    /// a numeric series `horizon` steps ahead, time-ordered split
    Forecast { recipe: TimeSeriesRecipe, split: HoldoutSpec },
    /// one prediction per tabular row, shuffled (and for classification stratified) split
    Tabular { input: TabularInput, target: String, kind: TabularKind, split: ShuffledSplit },
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
    pub(crate) fn is_classification(&self) -> bool {
        matches!(self, TaskSpec::Tabular { kind: TabularKind::Classification { .. }, .. })
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
    pub rows: RowCounts,
}

/// How the rows of the data were used.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RowCounts {
    pub input: usize,
    pub warmup_dropped: usize,
    pub no_target_dropped: usize,
    pub gap_dropped: usize,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// Builds the design and the split.
///
/// # Errors
/// Missing or mistyped columns, a target with gaps or no positive row, or too few rows for the split.
pub(crate) fn prepare(task: &TaskSpec, frame: &Frame) -> Result<(Design, Parts), TrainError> {
    match task {
        TaskSpec::Forecast { recipe, split } => forecast(recipe, split, frame),
        TaskSpec::Tabular { input, target, kind, split } => tabular(input, target, kind, split, frame),
    }
}

fn forecast(recipe: &TimeSeriesRecipe, split: &HoldoutSpec, frame: &Frame) -> Result<(Design, Parts), TrainError> {
    let table = recipe.build_table(frame)?;
    // rows whose target lies past the end of the data cannot be used for fitting or scoring
    let usable = table.future.iter().take_while(|v| !v.is_nan()).count();
    let no_target_dropped = table.future.len() - usable;
    if table.label[..usable].iter().any(|v| v.is_nan()) {
        return Err(TrainError::NotEnoughRows(format!(
            "the label of target column '{}' is missing inside the data (a missing value, or a log return of a \
             value <= 0); fill or drop those rows, or pick another target_transform",
            recipe.target
        )));
    }
    let holdout = kiln_eval::time_holdout(usable, split, recipe.horizon.saturating_sub(1))?;
    let features = matrix_to_frame(&table.x.rows(0, usable))?;
    let parts = Parts {
        train: holdout.train.clone().collect(),
        validation: holdout.validation.clone().collect(),
        test: holdout.test.clone().collect(),
        gap: holdout.gap.len(),
    };
    let rows = RowCounts {
        input: frame.n_rows(),
        warmup_dropped: table.warmup_dropped,
        no_target_dropped,
        gap_dropped: holdout.gap.len(),
        train: parts.train.len(),
        validation: parts.validation.len(),
        test: parts.test.len(),
    };
    let design = Design {
        features,
        label: table.label[..usable].to_vec(),
        current: table.current[..usable].to_vec(),
        truth: table.future[..usable].to_vec(),
        times: table.times[..usable].to_vec(),
        ids: Vec::new(),
        negative: None,
        rows,
    };
    Ok((design, parts))
}

fn tabular(
    input: &TabularInput,
    target: &str,
    kind: &TabularKind,
    split: &ShuffledSplit,
    frame: &Frame,
) -> Result<(Design, Parts), TrainError> {
    let column = frame.column(target).map_err(|_| kiln_features::FeatureError::MissingColumn {
        needed_by: "task.target".to_string(),
        column: target.to_string(),
    })?;
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
    let keep: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].is_some()).collect();
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
        no_target_dropped: frame.n_rows() - n,
        gap_dropped: 0,
        train: parts.train.len(),
        validation: parts.validation.len(),
        test: parts.test.len(),
    };
    let negative = match (kind, column) {
        (TabularKind::Classification { positive, .. }, Column::Categorical(v)) => {
            let others: std::collections::BTreeSet<&str> =
                v.iter().flatten().map(String::as_str).filter(|s| s != positive).collect();
            (others.len() == 1).then(|| others.iter().next().map(|s| s.to_string())).flatten()
        }
        _ => None,
    };
    let design =
        Design { features, truth: label.clone(), label, current: Vec::new(), times: Vec::new(), ids, negative, rows };
    Ok((design, parts))
}
