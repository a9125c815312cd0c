//! `kiln features`: the feature table of an experiment's forecast recipe, written to a file, without fitting
//! anything (what mlforecast's `preprocess` gives): to look at the features, compare them with another tool, or feed
//! them elsewhere.

use std::time::Instant;

use anyhow::Result;
use kiln_domain::{Column, Frame, LoadedData};
use kiln_features::{FeatureTable, PanelRows, TimeSeriesRecipe};
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
    progress.step(&format!(
        "building {} features from {} rows and writing them to {}",
        recipe.feature_names().len(),
        frame.n_rows(),
        args.output.display()
    ));
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let writer = kiln_data::FrameWriter::create(&args.output)?.with_compression(args.compression.into());
    // the table is built a slice of rows at a time while the slice before is written on a second thread, so the
    // whole table never sits in memory and building and writing overlap. `None` says the table is complete: a
    // writer whose channel closes without it drops its temporary file and leaves nothing behind
    let (send, slices) = std::sync::mpsc::sync_channel::<Option<Vec<Frame>>>(1);
    let (built, written) = std::thread::scope(|scope| {
        let writing = scope.spawn(|| write_slices(writer, slices));
        let mut summary = None;
        let built = recipe.for_each_table_chunk(&frame, WRITE_ROWS, |slice| {
            let rows = slice.times.len();
            let seen = summary.get_or_insert_with(|| Summary::of(&slice));
            seen.rows += rows;
            // a closed channel means the writer stopped on an error, which its join reports
            let frames = slice_frames(&slice, recipe)?;
            drop(slice);
            send.send(Some(frames)).map_err(|_| anyhow::anyhow!("the writer stopped"))
        });
        if built.is_ok() {
            // a writer that already stopped reports why through its join
            let _ = send.send(None);
        }
        drop(send);
        let written = writing.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the writer panicked")));
        (built.map(|()| summary), written)
    });
    // an error building the table is the one to report (the writer then stopped with nothing written)
    let built = built?;
    written?;
    let Some(table) = built else { bad_input!("{}: no feature row to write", args.config.display()) };
    let n = table.rows;
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
        table.n_features,
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

/// What the closing line says about the table, from its first slice and the rows of all.
struct Summary {
    rows: usize,
    n_features: usize,
    warmup_dropped: usize,
    panel: Option<PanelRows>,
}

impl Summary {
    fn of(slice: &FeatureTable) -> Summary {
        Summary {
            rows: 0,
            n_features: slice.x.n_cols(),
            warmup_dropped: slice.warmup_dropped,
            panel: slice.panel.as_ref().map(|p| PanelRows { series: Vec::new(), frame_rows: Vec::new(), ..p.clone() }),
        }
    }
}

/// The frames of a slice of the table (series key, time, features, label), at most [`WRITE_ROWS`] rows each.
fn slice_frames(table: &FeatureTable, recipe: &TimeSeriesRecipe) -> Result<Vec<Frame>> {
    let n = table.times.len();
    let mut frames = Vec::with_capacity(n.div_ceil(WRITE_ROWS));
    for start in (0..n).step_by(WRITE_ROWS) {
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
        frames.push(Frame::new(columns)?);
    }
    Ok(frames)
}

/// Writes the frames as they come, then finishes the file once `None` says the table is complete.
fn write_slices(
    mut writer: kiln_data::FrameWriter,
    slices: std::sync::mpsc::Receiver<Option<Vec<Frame>>>,
) -> Result<()> {
    loop {
        match slices.recv() {
            Ok(Some(frames)) => {
                for frame in &frames {
                    writer.write(frame)?;
                }
            }
            Ok(None) => break,
            // the table stopped on an error: the writer is dropped with its temporary file, and nothing is left
            Err(_) => return Ok(()),
        }
    }
    writer.finish()?;
    Ok(())
}
