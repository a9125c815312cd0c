//! The model's signature and input example for MLflow, over the raw rows a caller hands `kiln predict`,
//! `kiln.Predictor` or `mlflow.pyfunc` (not the encoded feature columns the native model takes).
//!
//! Key decision: each input column's type is what pandas gives for the same data file, since that is what a notebook
//! passes and MLflow checks the frame against the signature before kiln sees it: text is `string`, and so is a time
//! column (pandas 3 reads times as text unless told to parse them, MLflow refuses to convert text to its `datetime`,
//! and kiln parses the text itself as it parses a file's), whole numbers are `long` and other numbers `double`. A numeric column with missing cells in the training
//! data is `any`: its blanks may reach pandas as text (Telco's `TotalCharges` holds " "), and kiln's own reader then
//! decides, naming the row of a cell that is not a number.

use kiln_domain::{Column, DatasetInput, Frame, civil_from_millis};
use kiln_features::{FittedPipeline, PipelineInput};
use kiln_models::{ColSpec, ModelInterface};

/// How many raw rows a tabular example holds; a forecast's example holds its warm-up and this many more, so that it
/// predicts something.
const EXAMPLE_ROWS: usize = 5;

/// The signature and an input example for the bundle of `pipeline`, trained on `frame` (the raw training rows).
pub(crate) fn model_interface(pipeline: &FittedPipeline, frame: &Frame) -> ModelInterface {
    let names: Vec<String> = pipeline.input_columns().into_iter().filter(|n| frame.has_column(n)).collect();
    let columns: Vec<&Column> = names.iter().filter_map(|n| frame.column(n).ok()).collect();
    let inputs: Vec<ColSpec> = names.iter().zip(&columns).map(|(n, c)| ColSpec::new(n, input_type(c))).collect();

    let rows = match &pipeline.input {
        PipelineInput::Forecast(recipe) => {
            let n = (recipe.warmup() + EXAMPLE_ROWS).min(frame.n_rows());
            frame.n_rows() - n..frame.n_rows()
        }
        PipelineInput::Tabular(_) => 0..EXAMPLE_ROWS.min(frame.n_rows()),
    };
    let example = rows
        .map(|row| inputs.iter().zip(&columns).map(|(spec, column)| cell(column, row, &spec.mlflow_type)).collect())
        .collect();
    ModelInterface { inputs, outputs: outputs(pipeline), example }
}

/// The training data as an MLflow dataset input: named by the file's stem, the digest the first 8 hex characters of
/// its sha256, its columns typed as in the signature, its size as MLflow's profile.
pub(crate) fn dataset_input(origin: &str, sha256: &str, frame: &Frame) -> DatasetInput {
    let name = std::path::Path::new(origin).file_stem().map_or(origin, |s| s.to_str().unwrap_or(origin));
    let columns: Vec<ColSpec> = frame.columns().map(|(name, column)| ColSpec::new(name, input_type(column))).collect();
    let n_rows = frame.n_rows();
    DatasetInput {
        name: name.to_string(),
        digest: sha256.chars().take(8).collect(),
        source_type: "local".to_string(),
        source: serde_json::json!({ "uri": origin }).to_string(),
        schema: serde_json::json!({ "mlflow_colspec": columns }).to_string(),
        profile: serde_json::json!({ "num_rows": n_rows, "num_elements": n_rows * frame.n_cols() }).to_string(),
        context: "training".to_string(),
    }
}

fn input_type(column: &Column) -> &'static str {
    match column {
        Column::Timestamp(_) | Column::Categorical(_) => "string",
        Column::Numeric(values) if values.iter().any(|v| v.is_nan()) => "any",
        Column::Numeric(values) if values.iter().all(|v| v.fract() == 0.0 && v.abs() < 2f64.powi(53)) => "long",
        Column::Numeric(_) => "double",
    }
}

/// The columns `kiln predict` writes for the pipeline (see `kiln::Predictions::to_frame`).
fn outputs(pipeline: &FittedPipeline) -> Vec<ColSpec> {
    match &pipeline.input {
        PipelineInput::Forecast(recipe) => {
            let mut out = vec![ColSpec::new(&recipe.time_column, "datetime")];
            if pipeline.step.is_some() {
                out.push(ColSpec::new("target_time", "datetime"));
            }
            out.push(ColSpec::new("prediction", "double"));
            out
        }
        PipelineInput::Tabular(t) => {
            let key = t.id_column.as_deref().unwrap_or("row");
            match &pipeline.decision {
                Some(_) => vec![
                    ColSpec::new(key, "string"),
                    ColSpec::new("probability", "double"),
                    ColSpec::new("class", "string"),
                ],
                None => vec![ColSpec::new(key, "string"), ColSpec::new("prediction", "double")],
            }
        }
    }
}

/// One cell as JSON: whole numbers of a `long` column as integers, missing values as `null`, times as ISO text.
fn cell(column: &Column, row: usize, mlflow_type: &str) -> serde_json::Value {
    match column {
        Column::Numeric(v) if v[row].is_nan() => serde_json::Value::Null,
        // a `long` column's values are whole numbers below 2^53: exact as i64
        #[allow(clippy::cast_possible_truncation)]
        Column::Numeric(v) if mlflow_type == "long" => serde_json::json!(v[row] as i64),
        Column::Numeric(v) => serde_json::json!(v[row]),
        Column::Categorical(v) => v[row].as_deref().map_or(serde_json::Value::Null, |s| serde_json::json!(s)),
        Column::Timestamp(v) => {
            let c = civil_from_millis(v[row]);
            let ms = v[row].rem_euclid(1000);
            let frac = if ms == 0 { String::new() } else { format!(".{ms:03}") };
            serde_json::json!(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use kiln_domain::Column;

    use super::input_type;

    #[test]
    fn input_types_are_what_pandas_reads() {
        assert_eq!(input_type(&Column::Numeric(vec![0.0, 1.0, 72.0])), "long");
        assert_eq!(input_type(&Column::Numeric(vec![29.85, 1.0])), "double");
        assert_eq!(input_type(&Column::Numeric(vec![29.85, f64::NAN])), "any");
        assert_eq!(input_type(&Column::Categorical(vec![Some("No".into()), None])), "string");
        assert_eq!(input_type(&Column::Timestamp(vec![0])), "string");
    }
}
