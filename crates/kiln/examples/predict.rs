//! Scores a CSV or Parquet file with a kiln model, from Rust, with `kiln` as the only dependency:
//!
//! ```text
//! cargo run --release -p kiln --example predict -- models:/churn@production data/Telco-Customer-Churn_IBM.csv
//! ```
//!
//! The reference is resolved in `$MLFLOW_TRACKING_URI` (a folder or an MLflow server), else `./mlruns`; it may also
//! be `runs:/<run id>/model` or a bundle folder. Prints the model, its version and the first predictions.

use std::path::PathBuf;
use std::process::ExitCode;

use kiln::{Predictor, RowKeys};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, file] = args.as_slice() else {
        eprintln!("usage: predict <model reference> <csv or parquet file>");
        return ExitCode::from(2);
    };
    match run(reference, &PathBuf::from(file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // the whole chain: what failed, then why, each cause said once
            eprintln!("error: {}", kiln::chain_text(&*e));
            ExitCode::FAILURE
        }
    }
}

fn run(reference: &str, file: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let predictor = Predictor::load(reference)?;
    match predictor.version() {
        Some(v) => println!("model: {} ({} version {}, {})", predictor.label(), v.name, v.version, predictor.task()),
        None => println!("model: {} ({})", predictor.label(), predictor.task()),
    }

    let frame = kiln::read_frame(file, &predictor.read_options())?;
    let predictions = predictor.predict(&frame)?;
    println!(
        "{} rows read, {} predicted ({} warm-up rows without one)",
        frame.n_rows(),
        predictions.len(),
        predictions.warmup_dropped
    );

    let keys: Vec<String> = match &predictions.keys {
        RowKeys::Times { values, .. } => values.iter().map(|ms| utc_date(*ms)).collect(),
        RowKeys::Ids { values, .. } => values.clone(),
    };
    let key_name = match &predictions.keys {
        RowKeys::Times { column, .. } | RowKeys::Ids { column, .. } => column.as_str(),
    };
    let class_header = if predictions.classes.is_some() { "  class" } else { "" };
    println!("{key_name:<12} {:>12}{class_header}", predictions.value_name());
    for i in 0..predictions.len().min(5) {
        let class = predictions.classes.as_ref().map_or(String::new(), |c| format!("  {}", c[i]));
        println!("{:<12} {:>12.6}{class}", keys[i], predictions.values[i]);
    }
    Ok(())
}

/// `YYYY-MM-DD` of a UTC timestamp in milliseconds.
fn utc_date(ms: i64) -> String {
    let t = kiln::civil_from_millis(ms);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}
