//! What every family checks the same way, written once: the shape of a design matrix, the labels against the
//! objective, the feature names against what the library can store, the input columns against the fitted model's,
//! and the text of a hyperparameter as it is logged (so a value reads the same in MLflow whatever the family).

use std::collections::HashSet;
use std::fmt;

use kiln_domain::Matrix;

use crate::ModelError;

/// A hyperparameter out of its range.
pub(crate) fn bad(param: &'static str, value: impl fmt::Display, rule: impl Into<String>) -> ModelError {
    ModelError::Params { param, value: value.to_string(), rule: rule.into() }
}

/// An f64 as Python writes a float (`1.0`, `0.05`, `inf`, `nan`): the text of every f64 hyperparameter as logged
/// (MLflow params, bundle metadata), as MLflow's Python client logs it.
pub(crate) fn py_float(v: f64) -> String {
    match serde_json::Number::from_f64(v) {
        Some(n) => n.to_string(),
        None if v.is_nan() => "nan".to_string(),
        None if v > 0.0 => "inf".to_string(),
        None => "-inf".to_string(),
    }
}

/// An f64 as an experiment file writes it (`1`, `0.05`, `NaN`), for messages that quote the user's value.
pub(crate) fn yaml_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 { format!("{v}") } else { format!("{v:?}") }
}

/// A finite f64 hyperparameter for which `ok` holds; else the error quoting the value and `rule`.
pub(crate) fn check_f64(param: &'static str, v: f64, ok: bool, rule: &str) -> Result<(), ModelError> {
    if v.is_finite() && ok { Ok(()) } else { Err(bad(param, yaml_float(v), rule)) }
}

/// An optional hyperparameter as logged: `None` when unset, as Python's MLflow logs it.
pub(crate) fn param_opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "None".to_string(), |v| v.to_string())
}

/// Columns present and the data as long as rows x columns; `set` names the matrix in messages.
pub(crate) fn check_shape(set: &str, x: &Matrix) -> Result<(), String> {
    if x.n_cols() == 0 {
        return Err(format!("the {set} set has no feature columns"));
    }
    if x.data.len() != x.n_rows * x.n_cols() {
        return Err(format!(
            "the {set} matrix holds {} values, not {} rows x {} columns",
            x.data.len(),
            x.n_rows,
            x.n_cols()
        ));
    }
    Ok(())
}

/// What the labels of a fit must be.
pub(crate) struct LabelRules<'a> {
    /// the library stores labels as f32 (a finite f64 beyond f32 is refused too)
    pub(crate) f32: bool,
    /// `Some(what)`: the labels must be 0 or 1, and `what` needs them so (`objective binary`, `logistic`)
    pub(crate) binary: Option<&'a str>,
    /// `Some(what)`: the labels must be >= 0, and `what` needs them so (`objective poisson`)
    pub(crate) non_negative: Option<&'a str>,
}

/// Checks the `set` rows (at least one) and their labels (one per row, each obeying `rules`).
pub(crate) fn check_labels(set: &str, x: &Matrix, y: &[f64], rules: &LabelRules<'_>) -> Result<(), ModelError> {
    if x.n_rows == 0 {
        return Err(ModelError::Train(format!("the {set} set has no rows")));
    }
    if y.len() != x.n_rows {
        return Err(ModelError::Train(format!("the {set} set has {} rows but {} labels", x.n_rows, y.len())));
    }
    for (i, &v) in y.iter().enumerate() {
        if !v.is_finite() || (rules.f32 && !(v as f32).is_finite()) {
            let kind = if rules.f32 { "finite f32" } else { "finite" };
            return Err(ModelError::Train(format!("{set} label at row {i} is {v}; labels must be {kind}")));
        }
        if let Some(what) = rules.binary
            && v != 0.0
            && v != 1.0
        {
            return Err(ModelError::Train(format!("{set} label at row {i} is {v}; {what} needs 0 or 1")));
        }
        if let Some(what) = rules.non_negative
            && v < 0.0
        {
            return Err(ModelError::Train(format!("{set} label at row {i} is {v}; {what} needs >= 0")));
        }
    }
    Ok(())
}

/// Feature names a library can store: none empty, none repeated, none with a character `forbidden` refuses
/// (`rule` says which, for the message).
pub(crate) fn check_feature_names(
    names: &[String],
    forbidden: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), ModelError> {
    let mut seen = HashSet::new();
    for name in names {
        if name.is_empty() {
            return Err(ModelError::Train("a feature name is empty".to_string()));
        }
        if let Some(c) = name.chars().find(|&c| forbidden(c)) {
            return Err(ModelError::Train(format!("feature name '{name}' contains {c:?}; {rule}")));
        }
        if !seen.insert(name) {
            return Err(ModelError::Train(format!("feature name '{name}' appears twice")));
        }
    }
    Ok(())
}

/// The input has as many columns as the model has features.
pub(crate) fn check_width(n: usize, features: &[String]) -> Result<(), ModelError> {
    if n != features.len() {
        return Err(ModelError::Predict(format!(
            "the input has {n} feature columns, the model was fitted on {}",
            features.len()
        )));
    }
    Ok(())
}

/// The input's columns are the model's features, in order, and its data has the right length.
pub(crate) fn check_input(x: &Matrix, features: &[String]) -> Result<(), ModelError> {
    check_width(x.n_cols(), features)?;
    if let Some(i) = (0..x.n_cols()).find(|&i| x.names[i] != features[i]) {
        return Err(ModelError::Predict(format!(
            "input column {i} is '{}', the model expects '{}'",
            x.names[i], features[i]
        )));
    }
    check_shape("input", x).map_err(ModelError::Predict)
}
