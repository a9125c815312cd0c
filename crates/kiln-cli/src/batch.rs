//! `kiln predict`: batch scoring of a CSV or Parquet file of any size. The file is read, scored and written one chunk
//! at a time (`kiln_data::read_chunks` -> `kiln_score::score_stream` -> `kiln_data::FrameWriter`), so memory stays
//! flat; the predictions are exactly those of scoring the whole file at once. This module holds the file adapters
//! (the source of chunks, the sink that writes them) and the progress output; the loop is `kiln-score`'s.
//!
//! Key decision: a forecast needs its rows oldest first. A file that starts newest first (the ECB download) cannot be
//! streamed forward, so it is read whole and sorted, as before, with a note; any other step back in time is an
//! error naming the line.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiln_data::{FrameChunks, FrameWriter, ReadError, ReadProgress};
use kiln_domain::{Column, Frame};
use kiln_score::{RowKeys, Scored, StreamError};

use crate::cli::PredictArgs;
use crate::progress::{Bar, thousands};

pub(crate) fn predict(args: PredictArgs) -> Result<u8> {
    let origin = Instant::now();
    let step = |message: &str| eprintln!("[{:>6.1}s] {message}", origin.elapsed().as_secs_f64());
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let (bundle, label) = crate::commands::load_bundle(&args.model, &uri)?;
    step(&format!("loaded {label}, checksums verified"));
    if let Some(note) = bundle.model.native_note() {
        step(&note);
    }
    let pipeline = &bundle.pipeline;
    if args.with_features && pipeline.recipe().is_some_and(|r| r.multi_step.is_some()) {
        crate::exit::bad_input!(
            "--with-features: {label} forecasts many steps by recursion, each step from its own features; only the \
             forecasts are written"
        );
    }
    let opts = kiln::read_options(pipeline);
    let input = &args.input;
    let mut chunk_rows = usize::try_from(args.chunk_rows).unwrap_or(usize::MAX);
    if let Some(recipe) = pipeline.recipe().filter(|r| r.ahead_rows() > 0) {
        step(&format!(
            "note: {label} reads its known_in_advance columns at each target time, from the future rows after each \
             origin (target empty); the input is read whole, not in chunks of {chunk_rows} rows, and a row without \
             the target '{}' is never an origin",
            recipe.target
        ));
        chunk_rows = usize::MAX;
    }

    // wall time of each stage, for the summary: reading and parsing, writing (the features and the model's
    // prediction are timed by the scorer)
    let timed = Instant::now();
    let mut reader = kiln_data::read_chunks(input, &opts, chunk_rows)?;
    let mut first = reader.next();
    let mut read_time = timed.elapsed();
    // a newest-first file is read whole and sorted; the scorer then gets it as one chunk
    let mut whole = None;
    if let Some(Err(ReadError::NewestFirst { .. })) = &first {
        step(&format!(
            "note: {} starts newest first, so it cannot be streamed; reading it whole and sorting it by time",
            input.display()
        ));
        let timed = Instant::now();
        whole = Some(kiln_data::read_frame(input, &opts)?);
        read_time += timed.elapsed();
        first = None;
    }
    let mut chunks = Chunks {
        whole_rows: whole.as_ref().map(|f: &Frame| f.n_rows() as u64),
        whole,
        first,
        reader,
        rows_given: None,
        read_time,
        bar: Bar::new("scoring", origin),
    };

    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let timed = Instant::now();
    let mut writer = FrameWriter::create(&args.output)?;
    let mut write_time = timed.elapsed();
    let sink = |scored: Scored| -> Result<()> {
        let timed = Instant::now();
        writer.write(&output_frame(&scored, args.with_features)?)?;
        write_time += timed.elapsed();
        Ok(())
    };
    let threads = args.threads.map_or(kiln_models::default_threads() as usize, |n| usize::try_from(n).unwrap_or(1));
    let scored = kiln_score::score_stream(&bundle, args.explain, &mut chunks, sink, threads);
    let totals = match scored {
        Ok(totals) => {
            chunks.bar.finish();
            totals
        }
        Err(e) => return Err(stream_error(e, &mut chunks.bar, input)),
    };
    let timed = Instant::now();
    let written = writer.finish()?;
    write_time += timed.elapsed();
    let read_time = chunks.read_time;
    let secs = origin.elapsed().as_secs_f64();
    let what = match pipeline.recipe() {
        Some(recipe) if let Some(multi) = recipe.multi_step => format!(
            "steps 1..{} ahead of each of {} origins by {} forecasts, {} warm-up rows without one",
            multi.steps,
            totals.rows_scored,
            multi.strategy.as_str(),
            totals.warmup_dropped
        ),
        Some(recipe) => format!(
            "{} steps ahead of each row's time, {} warm-up rows without one",
            recipe.horizon, totals.warmup_dropped
        ),
        None => "one per row".to_string(),
    };
    step(&format!(
        "wrote {} predictions ({what}) to {}; {} rows in {:.1} s ({} rows/s)",
        written,
        args.output.display(),
        thousands(totals.rows_in as u64),
        secs,
        thousands((totals.rows_in as f64 / secs.max(1e-9)) as u64),
    ));
    let model = totals.model_time.as_secs_f64();
    let other = read_time.as_secs_f64() + totals.features_time.as_secs_f64() + write_time.as_secs_f64();
    step(&format!(
        "time: read+parse {:.2} s, features {:.2} s, model prediction {:.2} s (summed over {threads} thread{}), write \
         {:.2} s (I/O and features: {:.0}% of the model's time)",
        read_time.as_secs_f64(),
        totals.features_time.as_secs_f64(),
        model,
        if threads == 1 { "" } else { "s" },
        write_time.as_secs_f64(),
        100.0 * other / model.max(1e-9),
    ));
    Ok(0)
}

/// The chunks of the input file: streamed from the reader, or the whole file as one chunk when it starts newest
/// first. Reading is timed; each time the next chunk is asked for, the one before it is scored and written, and the
/// progress bar shows it.
struct Chunks {
    reader: FrameChunks,
    /// the reader's first chunk, read before the output was created (to find a newest-first file)
    first: Option<Result<Frame, ReadError>>,
    whole: Option<Frame>,
    whole_rows: Option<u64>,
    /// rows handed out so far; `None` before the first chunk
    rows_given: Option<u64>,
    read_time: Duration,
    bar: Bar,
}

impl Iterator for Chunks {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        if let Some(rows) = self.rows_given {
            let read = match self.whole_rows {
                None => self.reader.progress(),
                Some(total) => ReadProgress { rows, total_rows: Some(total), ..ReadProgress::default() },
            };
            self.bar.update(read);
        }
        let chunk = if self.whole_rows.is_none() {
            let timed = Instant::now();
            let next = self.first.take().or_else(|| self.reader.next());
            self.read_time += timed.elapsed();
            next?.map_err(anyhow::Error::from)
        } else {
            Ok(self.whole.take()?)
        };
        if let Ok(frame) = &chunk {
            self.rows_given = Some(self.rows_given.unwrap_or(0) + frame.n_rows() as u64);
        }
        Some(chunk)
    }
}

/// The error of the scoring loop, with what `kiln predict` always said about it.
fn stream_error(e: StreamError<anyhow::Error>, bar: &mut Bar, input: &Path) -> anyhow::Error {
    match e {
        StreamError::Start(e) => e.into(),
        StreamError::Source(e) | StreamError::Sink(e) => e,
        StreamError::Chunk { first, last, source } => {
            anyhow::Error::new(source).context(format!("scoring rows {first}-{last} of {}", input.display()))
        }
        StreamError::Finish(e) => {
            bar.finish();
            anyhow::Error::new(e).context(format!("cannot score {}", input.display()))
        }
    }
}

/// The output rows of one scored chunk: the time or id column (a forecast's origin, then `target_time`), the prediction (classifiers: probability and
/// class), and with the flags the raw output, the features and their SHAP contributions.
fn output_frame(scored: &Scored, with_features: bool) -> Result<Frame> {
    let mut columns = Vec::new();
    if let Some((column, keys)) = &scored.series {
        columns.push((column.clone(), Column::Categorical(keys.iter().cloned().map(Some).collect())));
    }
    match &scored.keys {
        RowKeys::Times { column, values } => columns.push((column.clone(), Column::Timestamp(values.clone()))),
        RowKeys::Ids { column, values } => {
            columns.push((column.clone(), Column::Categorical(values.iter().cloned().map(Some).collect())));
        }
    }
    if let Some(targets) = &scored.target_times {
        columns.push((kiln::TARGET_TIME_COLUMN.to_string(), Column::Timestamp(targets.clone())));
    }
    if let Some(steps) = &scored.steps {
        columns.push(("step".to_string(), Column::Numeric(steps.iter().map(|&s| f64::from(s)).collect())));
    }
    let prediction_name = if scored.classes.is_some() { "probability" } else { "prediction" };
    columns.push((prediction_name.to_string(), Column::Numeric(scored.predictions.clone())));
    for (name, values) in scored.bounds.iter().flatten() {
        columns.push((name.clone(), Column::Numeric(values.clone())));
    }
    if let Some(classes) = &scored.classes {
        columns.push(("class".to_string(), Column::Categorical(classes.iter().cloned().map(Some).collect())));
    }
    if with_features {
        columns.push(("raw_prediction".to_string(), Column::Numeric(scored.raw.clone())));
        for (j, name) in scored.features.names.iter().enumerate() {
            columns.push((name.clone(), Column::Numeric(scored.features.column(j))));
        }
    }
    if let Some(contrib) = &scored.contributions {
        for (j, name) in contrib.names.iter().enumerate() {
            columns.push((format!("shap_{name}"), Column::Numeric(contrib.column(j))));
        }
    }
    Ok(Frame::new(columns)?)
}
