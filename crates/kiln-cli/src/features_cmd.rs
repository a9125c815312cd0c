//! `kiln features`: the feature table of an experiment's forecast recipe, written to a file, without fitting
//! anything (what mlforecast's `preprocess` gives): to look at the features, compare them with another tool, or feed
//! them elsewhere.

use std::time::Instant;

use anyhow::Result;
use kiln_domain::{Column, Frame, LoadedData};
use kiln_train::{Progress, TaskSpec};

use crate::cli::FeaturesArgs;
use crate::commands::{StderrProgress, load_data, load_experiment};
use crate::exit::bad_input;

/// Rows written at a time.
const WRITE_ROWS: usize = 65_536;

pub(crate) fn features(args: FeaturesArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (mut settings, _) = load_experiment(&args.config)?;
    if let Some(input) = &args.input {
        settings.experiment.data.path.clone_from(input);
    }
    let (LoadedData { frame, .. }, task) = load_data(&settings, &progress)?;
    let TaskSpec::Forecast { recipe, .. } = &task else {
        bad_input!(
            "{}: kiln features builds the feature table of a forecast (task.kind: forecast); a tabular model's \
             features are the file's own columns",
            args.config.display()
        )
    };
    progress.step(&format!("building {} features from {} rows", recipe.feature_names().len(), frame.n_rows()));
    let table = recipe.build_table(&frame)?;
    drop(frame);
    let n = table.times.len();
    progress.step(&format!("writing {n} rows to {}", args.output.display()));
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // written a slice of rows at a time, so that no second copy of the whole table is ever made
    let mut writer = kiln_data::FrameWriter::create(&args.output)?.with_compression(args.compression.into());
    for start in (0..n.max(1)).step_by(WRITE_ROWS) {
        let end = (start + WRITE_ROWS).min(n);
        let mut columns = Vec::with_capacity(table.x.n_cols() + 3);
        if let (Some(panel), Some(name)) = (&table.panel, &recipe.series_column) {
            let keys = panel.series[start..end].iter().map(|&s| Some(panel.keys[s as usize].clone())).collect();
            columns.push((name.clone(), Column::Categorical(keys)));
        }
        columns.push((recipe.time_column.clone(), Column::Timestamp(table.times[start..end].to_vec())));
        let rows = table.x.rows(start, end);
        for (j, name) in rows.names.iter().enumerate() {
            columns.push((name.clone(), Column::Numeric(rows.column(j))));
        }
        columns.push(("label".to_string(), Column::Numeric(table.label[start..end].to_vec())));
        writer.write(&Frame::new(columns)?)?;
    }
    writer.finish()?;
    let series = match &table.panel {
        Some(p) if p.short.is_empty() => format!(" over {} series", p.keys.len()),
        Some(p) => format!(
            " over {} series ({} with too few rows left out, e.g. '{}' with {} rows)",
            p.keys.len() - p.short.len(),
            p.short.len(),
            p.short[0].0,
            p.short[0].1
        ),
        None => String::new(),
    };
    println!(
        "{n} feature rows{series}, {} features + label ('{}' {} step(s) ahead{}); {} warm-up rows dropped; wrote {}",
        table.x.n_cols(),
        recipe.target,
        recipe.horizon,
        match recipe.target_transform {
            kiln_features::TargetTransform::None => String::new(),
            t => format!(", as {}", t.as_str()),
        },
        table.warmup_dropped,
        args.output.display()
    );
    Ok(0)
}
