//! Tabular preprocessing: an ordered list of steps read from YAML ([`Preprocessor`], the `preprocess:` list of
//! [`PreprocessSpec`]), fitted on the training rows into a [`FittedPreprocessor`] that the model bundle stores and
//! that transforms any later frame the same way.
//!
//! Key decisions:
//! - **Fitted on the training part only.** [`Preprocessor::fit`] sees only the frame it is given; the caller passes
//!   the training rows (never validation or test rows), so imputer statistics, scaler moments and encoder categories
//!   come from them alone. Each step is fitted on the output of the steps before it applied to those rows.
//!   `transform` is row-local (and causal for `forward_fill`): a row's output depends on that row, the fitted state
//!   and, for `forward_fill`, on earlier rows only.
//! - **scikit-learn's and pandas' semantics**, checked against them on real data: `impute` = `SimpleImputer` (plus
//!   a forward fill), `scale` = `StandardScaler` / `MinMaxScaler` / `RobustScaler`, `one_hot` = `OneHotEncoder`,
//!   `ordinal` = `OrdinalEncoder`, `bin` = `pandas.cut`. Missing values are NaN (numeric) and `None`
//!   (categorical); statistics ignore them and transforms keep them, except where a step says otherwise.
//! - **Column order**: a step that rewrites columns (impute, scale, ordinal) keeps them in place; `one_hot` replaces
//!   a column in place by its indicator columns; `bin`, `ratio` and `product` append their new column at the end;
//!   `drop` removes columns. A type selector (`columns: numeric`) is resolved when fitting and stored as names.
//! - **Everything fitted is plain serde data** (`kiln/pipeline.json` in the bundle), with the output column names
//!   pinned, so [`FittedPreprocessor::transform_matrix`] gives the model exactly the training columns, in order.
//!
//! Not here: the target (pass feature columns only; the target never goes through preprocessing), sparse output,
//! I/O.

mod derive;
mod encode;
mod impute;
mod scale;
mod stats;
mod values;

use serde::{Deserialize, Serialize};

use crate::FeatureError;
use kiln_domain::{Column, DomainError, Frame, Matrix};

pub use derive::{BinSpec, DropSpec, ProductSpec, RatioSpec};
pub use encode::{
    FittedOneHot, FittedOrdinal, OneHotColumn, OneHotDrop, OneHotSpec, OneHotUnknown, OrdinalColumn, OrdinalSpec,
    OrdinalUnknown,
};
pub use impute::{FittedImpute, ImputeSpec, ImputeStrategy, ImputedColumn};
pub use scale::{FittedScale, ScaleMethod, ScaleSpec, ScaledColumn};
pub use values::{Columns, FillValue};

/// One entry of the YAML `preprocess:` list. Externally tagged, so YAML reads
/// `- scale: {columns: [tenure], method: standard}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessSpec {
    /// fill missing values (`SimpleImputer`, or a forward fill)
    Impute(ImputeSpec),
    /// center and scale numeric columns (`StandardScaler`, `MinMaxScaler`, `RobustScaler`)
    Scale(ScaleSpec),
    /// replace categorical columns by 0/1 indicator columns (`OneHotEncoder`)
    OneHot(OneHotSpec),
    /// replace categorical columns by the codes of their sorted categories (`OrdinalEncoder`)
    Ordinal(OrdinalSpec),
    /// a labelled-interval categorical column from a numeric one (`pandas.cut`)
    Bin(BinSpec),
    /// `numerator / denominator` as a new numeric column
    Ratio(RatioSpec),
    /// the product of numeric columns as a new numeric column
    Product(ProductSpec),
    /// remove columns
    Drop(DropSpec),
}

impl PreprocessSpec {
    /// The snake_case name of the step, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            PreprocessSpec::Impute(_) => "impute",
            PreprocessSpec::Scale(_) => "scale",
            PreprocessSpec::OneHot(_) => "one_hot",
            PreprocessSpec::Ordinal(_) => "ordinal",
            PreprocessSpec::Bin(_) => "bin",
            PreprocessSpec::Ratio(_) => "ratio",
            PreprocessSpec::Product(_) => "product",
            PreprocessSpec::Drop(_) => "drop",
        }
    }

    fn validate(&self, at: At) -> Result<(), FeatureError> {
        match self {
            PreprocessSpec::Impute(s) => s.validate(at),
            PreprocessSpec::Scale(s) => s.validate(at),
            PreprocessSpec::OneHot(s) => s.validate(at),
            PreprocessSpec::Ordinal(s) => s.validate(at),
            PreprocessSpec::Bin(s) => s.validate(at),
            PreprocessSpec::Ratio(s) => s.validate(at),
            PreprocessSpec::Product(s) => s.validate(at),
            PreprocessSpec::Drop(s) => s.validate(at),
        }
    }

    fn fit(&self, train: &Frame, at: At) -> Result<FittedStep, FeatureError> {
        Ok(match self {
            PreprocessSpec::Impute(s) => FittedStep::Impute(s.fit(train, at)?),
            PreprocessSpec::Scale(s) => FittedStep::Scale(s.fit(train, at)?),
            PreprocessSpec::OneHot(s) => FittedStep::OneHot(s.fit(train, at)?),
            PreprocessSpec::Ordinal(s) => FittedStep::Ordinal(s.fit(train, at)?),
            // stateless: the spec is the fitted step; its transform checks the columns
            PreprocessSpec::Bin(s) => FittedStep::Bin(s.clone()),
            PreprocessSpec::Ratio(s) => FittedStep::Ratio(s.clone()),
            PreprocessSpec::Product(s) => FittedStep::Product(s.clone()),
            PreprocessSpec::Drop(s) => FittedStep::Drop(s.clone()),
        })
    }
}

/// A step after fitting: what it learned from the training rows, stored in the model bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FittedStep {
    /// the fill value of every column
    Impute(FittedImpute),
    /// the center and scale of every column
    Scale(FittedScale),
    /// the training categories of every column
    OneHot(FittedOneHot),
    /// the training categories of every column
    Ordinal(FittedOrdinal),
    /// stateless: the spec itself
    Bin(BinSpec),
    /// stateless: the spec itself
    Ratio(RatioSpec),
    /// stateless: the spec itself
    Product(ProductSpec),
    /// stateless: the spec itself
    Drop(DropSpec),
}

impl FittedStep {
    /// The snake_case name of the step, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            FittedStep::Impute(_) => "impute",
            FittedStep::Scale(_) => "scale",
            FittedStep::OneHot(_) => "one_hot",
            FittedStep::Ordinal(_) => "ordinal",
            FittedStep::Bin(_) => "bin",
            FittedStep::Ratio(_) => "ratio",
            FittedStep::Product(_) => "product",
            FittedStep::Drop(_) => "drop",
        }
    }

    /// Takes the frame by value: the columns the step leaves alone move to the output without a copy.
    fn transform(&self, frame: Frame, at: At) -> Result<Frame, FeatureError> {
        match self {
            FittedStep::Impute(s) => s.transform(frame, at),
            FittedStep::Scale(s) => s.transform(frame, at),
            FittedStep::OneHot(s) => s.transform(frame, at),
            FittedStep::Ordinal(s) => s.transform(frame, at),
            FittedStep::Bin(s) => s.transform(frame, at),
            FittedStep::Ratio(s) => s.transform(frame, at),
            FittedStep::Product(s) => s.transform(frame, at),
            FittedStep::Drop(s) => s.transform(frame, at),
        }
    }
}

/// The ordered preprocessing steps, as read from the YAML `preprocess:` list (serde-transparent over the list).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Preprocessor {
    pub steps: Vec<PreprocessSpec>,
}

impl Preprocessor {
    /// The steps, in the order they run.
    pub fn new(steps: Vec<PreprocessSpec>) -> Preprocessor {
        Preprocessor { steps }
    }

    /// Checks the steps without looking at data.
    ///
    /// # Errors
    /// [`FeatureError::Spec`] naming the key path at fault, e.g. `preprocess[2].scale.columns[0]: must not be empty`.
    pub fn validate(&self) -> Result<(), FeatureError> {
        for (i, step) in self.steps.iter().enumerate() {
            step.validate(At::new(i, step.kind()))?;
        }
        Ok(())
    }

    /// Fits every step, in order, on `train` (the training rows only).
    ///
    /// # Errors
    /// As [`Preprocessor::fit_transform`].
    pub fn fit(&self, train: &Frame) -> Result<FittedPreprocessor, FeatureError> {
        Ok(self.fit_transform(train)?.0)
    }

    /// Fits every step, in order, on `train` (the training rows only), and returns the fitted preprocessor with
    /// `train` transformed by it (equal to `fitted.transform(train)`).
    ///
    /// # Errors
    /// [`FeatureError::Spec`] for an invalid step or a produced column that already exists,
    /// [`FeatureError::NotEnoughRows`] for a frame without rows, [`FeatureError::MissingColumn`] and
    /// [`FeatureError::ColumnType`] naming the step and the column, [`FeatureError::Fit`] for a column a statistic
    /// cannot be learned from (all missing, or an infinite value).
    pub fn fit_transform(&self, train: &Frame) -> Result<(FittedPreprocessor, Frame), FeatureError> {
        self.validate()?;
        if train.n_rows() == 0 {
            return Err(FeatureError::NotEnoughRows { what: "fitting the preprocessing".into(), needed: 1, given: 0 });
        }
        let mut current = train.clone();
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, spec) in self.steps.iter().enumerate() {
            let at = At::new(i, spec.kind());
            let fitted = spec.fit(&current, at)?;
            current = fitted.transform(current, at)?;
            steps.push(fitted);
        }
        let fitted = FittedPreprocessor { steps, output_names: current.names().to_vec() };
        Ok((fitted, current))
    }
}

/// The fitted steps and the columns they produced from the training rows; stored in the model bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedPreprocessor {
    steps: Vec<FittedStep>,
    output_names: Vec<String>,
}

impl FittedPreprocessor {
    /// The fitted steps, in order.
    pub fn steps(&self) -> &[FittedStep] {
        &self.steps
    }

    /// The columns the training rows had after the last step, in order: the model's feature names.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Applies every fitted step, in order, to `frame`. Columns that no step names pass through unchanged.
    ///
    /// # Errors
    /// [`FeatureError::MissingColumn`] and [`FeatureError::ColumnType`] naming the step and the column,
    /// [`FeatureError::UnknownCategory`] for an unseen category under `unknown: error`, [`FeatureError::Spec`] when
    /// a step would produce a column the frame already has.
    pub fn transform(&self, frame: &Frame) -> Result<Frame, FeatureError> {
        self.transform_owned(frame.clone())
    }

    /// [`FittedPreprocessor::transform`] of a frame the caller gives away: the columns no step touches move to the
    /// output without a copy.
    ///
    /// # Errors
    /// As [`FittedPreprocessor::transform`].
    pub fn transform_owned(&self, frame: Frame) -> Result<Frame, FeatureError> {
        let mut current = frame;
        for (i, step) in self.steps.iter().enumerate() {
            current = step.transform(current, At::new(i, step.kind()))?;
        }
        Ok(current)
    }

    /// [`FittedPreprocessor::transform`] of one chunk of a longer sequence of rows: a `forward_fill` step then
    /// carries the chunk's last seen value of each column into the next chunk (it becomes the step's fill value),
    /// so chunk after chunk gives the rows one call on all of them gives. The other steps are row-local.
    ///
    /// # Errors
    /// As [`FittedPreprocessor::transform`].
    pub fn transform_chunk(&mut self, frame: Frame) -> Result<Frame, FeatureError> {
        let mut current = frame;
        for (i, step) in self.steps.iter_mut().enumerate() {
            current = step.transform(current, At::new(i, step.kind()))?;
            if let FittedStep::Impute(impute) = step {
                impute.carry_forward(&current);
            }
        }
        Ok(current)
    }

    /// [`FittedPreprocessor::transform`], then the columns of [`FittedPreprocessor::output_names`] in that order
    /// (other columns of `frame` are left out) as a row-major [`Matrix`].
    ///
    /// # Errors
    /// As [`FittedPreprocessor::transform`]; [`FeatureError::MissingColumn`] for an output column the result lacks;
    /// [`FeatureError::NotNumeric`] for a column that is still categorical or a timestamp.
    pub fn transform_matrix(&self, frame: &Frame) -> Result<Matrix, FeatureError> {
        let out = self.transform(frame)?;
        let selected = out.select(&self.output_names).map_err(|e| match e {
            DomainError::MissingColumn(column) => {
                FeatureError::MissingColumn { needed_by: "the fitted preprocessing's output".into(), column }
            }
            other => FeatureError::spec("preprocess", other.to_string()),
        })?;
        frame_to_matrix(&selected)
    }
}

/// Every column of `frame`, in order, as a row-major [`Matrix`] (NaN stays NaN).
///
/// # Errors
/// [`FeatureError::NotNumeric`] naming the first column that is categorical (encode it with `one_hot` or `ordinal`)
/// or a timestamp.
pub fn frame_to_matrix(frame: &Frame) -> Result<Matrix, FeatureError> {
    let mut columns = Vec::with_capacity(frame.n_cols());
    for (name, column) in frame.columns() {
        match column {
            Column::Numeric(values) => columns.push(values.as_slice()),
            other => {
                return Err(FeatureError::NotNumeric { column: name.to_string(), actual: other.kind().as_str() });
            }
        }
    }
    let n_rows = frame.n_rows();
    let mut data = Vec::with_capacity(n_rows * columns.len());
    for i in 0..n_rows {
        data.extend(columns.iter().map(|c| c[i]));
    }
    Ok(Matrix { names: frame.names().to_vec(), data, n_rows })
}

// ---------------------------------------------------------------------------------------------------------------
// shared by the steps
// ---------------------------------------------------------------------------------------------------------------

/// Where a step sits in the `preprocess:` list, for key paths in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    index: usize,
    kind: &'static str,
}

impl At {
    fn new(index: usize, kind: &'static str) -> At {
        At { index, kind }
    }

    /// `preprocess[i].kind`
    pub(crate) fn step(self) -> String {
        format!("preprocess[{}].{}", self.index, self.kind)
    }

    /// `preprocess[i].kind.field`
    pub(crate) fn field(self, field: &str) -> String {
        format!("{}.{field}", self.step())
    }

    pub(crate) fn spec(self, field: &str, reason: impl Into<String>) -> FeatureError {
        FeatureError::spec(self.field(field), reason)
    }

    pub(crate) fn fit_error(self, column: &str, reason: impl Into<String>) -> FeatureError {
        FeatureError::Fit { step: self.step(), column: column.to_string(), reason: reason.into(), row: None }
    }

    /// [`At::fit_error`] about one row of the rows being fitted on.
    pub(crate) fn fit_error_at(self, column: &str, row: usize, reason: impl Into<String>) -> FeatureError {
        FeatureError::Fit { step: self.step(), column: column.to_string(), reason: reason.into(), row: Some(row) }
    }

    pub(crate) fn column<'a>(self, frame: &'a Frame, name: &str) -> Result<&'a Column, FeatureError> {
        frame.column(name).map_err(|_| FeatureError::MissingColumn { needed_by: self.step(), column: name.into() })
    }

    pub(crate) fn wrong_type(self, column: &str, expected: &'static str, actual: &Column) -> FeatureError {
        FeatureError::ColumnType {
            needed_by: self.step(),
            column: column.to_string(),
            expected,
            actual: actual.kind().as_str(),
        }
    }

    pub(crate) fn numeric<'a>(self, frame: &'a Frame, name: &str) -> Result<&'a [f64], FeatureError> {
        match self.column(frame, name)? {
            Column::Numeric(v) => Ok(v),
            other => Err(self.wrong_type(name, "numeric", other)),
        }
    }

    pub(crate) fn categorical<'a>(self, frame: &'a Frame, name: &str) -> Result<&'a [Option<String>], FeatureError> {
        match self.column(frame, name)? {
            Column::Categorical(v) => Ok(v),
            other => Err(self.wrong_type(name, "categorical", other)),
        }
    }
}

/// A frame being rewritten by one step.
pub(crate) struct Draft {
    columns: Vec<(String, Column)>,
}

impl Draft {
    /// The frame's columns, moved (not copied) into a draft.
    pub(crate) fn of(frame: Frame) -> Draft {
        Draft { columns: frame.into_columns() }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }

    /// Replaces the column `name` (which the step has read, so it exists) by `replacement`, in place.
    pub(crate) fn splice(&mut self, name: &str, replacement: Vec<(String, Column)>) {
        if let Some(i) = self.position(name) {
            self.columns.splice(i..=i, replacement);
        }
    }

    /// Replaces the values of the column `name`, keeping its place.
    pub(crate) fn set(&mut self, name: &str, column: Column) {
        if let Some(i) = self.position(name) {
            self.columns[i].1 = column;
        }
    }

    pub(crate) fn push(&mut self, name: String, column: Column) {
        self.columns.push((name, column));
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.columns.remove(i);
        }
    }

    /// The new frame; a produced column whose name is taken is an error of the step.
    pub(crate) fn finish(self, at: At) -> Result<Frame, FeatureError> {
        Frame::new(self.columns).map_err(|e| match e {
            DomainError::DuplicateColumn(name) => FeatureError::spec(
                at.step(),
                format!("produces the column '{name}', which the data already has (rename or drop one of them)"),
            ),
            other => FeatureError::spec(at.step(), other.to_string()),
        })
    }
}

/// Checks a `columns` / `exclude` pair without data.
pub(crate) fn validate_columns(columns: &Columns, exclude: &[String], at: At) -> Result<(), FeatureError> {
    if let Columns::Named(names) = columns {
        check_names(names, &at.field("columns"))?;
        if !exclude.is_empty() {
            return Err(at.spec("exclude", "applies only to `columns: numeric` or `columns: categorical`"));
        }
    }
    if let Some(i) = exclude.iter().position(String::is_empty) {
        return Err(FeatureError::spec(format!("{}[{i}]", at.field("exclude")), "must not be empty"));
    }
    Ok(())
}

/// A list of column names: not empty, no empty name, no name twice.
pub(crate) fn check_names(names: &[String], path: &str) -> Result<(), FeatureError> {
    if names.is_empty() {
        return Err(FeatureError::spec(path, "must not be empty"));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(FeatureError::spec(format!("{path}[{i}]"), "must not be empty"));
        }
        if let Some(first) = names[..i].iter().position(|n| n == name) {
            return Err(FeatureError::spec(format!("{path}[{i}]"), format!("repeats '{name}' (see [{first}])")));
        }
    }
    Ok(())
}

/// The column names a selector picks from `frame`.
pub(crate) fn resolve(
    columns: &Columns,
    exclude: &[String],
    frame: &Frame,
    at: At,
) -> Result<Vec<String>, FeatureError> {
    let kind = match columns {
        Columns::Named(names) => {
            for name in names {
                at.column(frame, name)?;
            }
            return Ok(names.clone());
        }
        Columns::Numeric => kiln_domain::ColumnKind::Numeric,
        Columns::Categorical => kiln_domain::ColumnKind::Categorical,
    };
    if let Some((i, name)) = exclude.iter().enumerate().find(|(_, n)| !frame.has_column(n)) {
        return Err(FeatureError::spec(
            format!("{}[{i}]", at.field("exclude")),
            format!("names the column '{name}', which is not in the data"),
        ));
    }
    let picked: Vec<String> = frame
        .columns()
        .filter(|(name, column)| column.kind() == kind && !exclude.iter().any(|e| e == name))
        .map(|(name, _)| name.to_string())
        .collect();
    if picked.is_empty() {
        return Err(at.spec("columns", format!("selects no {} column of the data", kind.as_str())));
    }
    Ok(picked)
}

#[cfg(test)]
mod tests;
