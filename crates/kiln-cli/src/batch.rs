//! `kiln predict`: batch scoring of a CSV or Parquet file of any size. The file is read, scored and written one chunk
//! at a time (`kiln_data::read_chunks` -> `kiln_train::ChunkScorer` -> `kiln_data::FrameWriter`), so memory stays
//! flat; the predictions are exactly those of scoring the whole file at once.
//!
//! Key decision: a forecast needs its rows oldest first. A file that starts newest first (the ECB download) cannot be
//! streamed forward, so it is read whole and sorted, as before, with a note; any other step back in time is an
//! error naming the line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiln_data::{FrameWriter, ReadError, ReadProgress};
use kiln_domain::{Column, Frame};
use kiln_train::{ChunkScorer, RowKeys, Scored};

use crate::cli::PredictArgs;
use crate::progress::{Bar, thousands};

pub(crate) fn predict(args: PredictArgs) -> Result<u8> {
    let origin = Instant::now();
    let step = |message: &str| eprintln!("[{:>6.1}s] {message}", origin.elapsed().as_secs_f64());
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let (bundle, label) = crate::commands::load_bundle(&args.model, &uri)?;
    step(&format!("loaded {label}, checksums verified"));
    let pipeline = &bundle.pipeline;
    let opts = kiln::read_options(pipeline);
    let input = &args.input;
    let chunk_rows = usize::try_from(args.chunk_rows).unwrap_or(usize::MAX);

    // wall time of each stage, for the summary: reading and parsing, writing (the features and the model's
    // prediction are timed by the scorer)
    let mut read_time = Duration::ZERO;
    let mut write_time = Duration::ZERO;
    let timed = Instant::now();
    let mut reader = kiln_data::read_chunks(input, &opts, chunk_rows)?;
    let mut first = reader.next();
    read_time += timed.elapsed();
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
    let streamed = whole.is_none();
    let whole_rows = whole.as_ref().map_or(0, |f: &Frame| f.n_rows() as u64);

    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let timed = Instant::now();
    let mut writer = FrameWriter::create(&args.output)?;
    write_time += timed.elapsed();
    let mut scorer = ChunkScorer::new(&bundle, args.explain)?;
    let mut bar = Bar::new("scoring", origin);
    let mut rows_in = 0_u64;
    loop {
        let chunk = if streamed {
            let timed = Instant::now();
            let next = first.take().or_else(|| reader.next());
            read_time += timed.elapsed();
            match next {
                Some(chunk) => chunk?,
                None => break,
            }
        } else {
            match whole.take() {
                Some(frame) => frame,
                None => break,
            }
        };
        let n = chunk.n_rows() as u64;
        let scored = scorer
            .push(chunk)
            .with_context(|| format!("scoring rows {}-{} of {}", rows_in + 1, rows_in + n, input.display()))?;
        let timed = Instant::now();
        writer.write(&output_frame(&scored, args.with_features)?)?;
        write_time += timed.elapsed();
        rows_in += n;
        let read: ReadProgress = if streamed {
            reader.progress()
        } else {
            ReadProgress { rows: rows_in, total_rows: Some(whole_rows), ..ReadProgress::default() }
        };
        bar.update(read);
    }
    bar.finish();
    let totals = scorer.finish().with_context(|| format!("cannot score {}", input.display()))?;
    let timed = Instant::now();
    let written = writer.finish()?;
    write_time += timed.elapsed();
    let secs = origin.elapsed().as_secs_f64();
    let what = match pipeline.recipe() {
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
        "time: read+parse {:.2} s, features {:.2} s, model prediction {:.2} s, write {:.2} s \
         (I/O and features: {:.0}% of the model's time)",
        read_time.as_secs_f64(),
        totals.features_time.as_secs_f64(),
        model,
        write_time.as_secs_f64(),
        100.0 * other / model.max(1e-9),
    ));
    Ok(0)
}

/// The output rows of one scored chunk: the time or id column, the prediction (classifiers: probability and
/// class), and with the flags the raw output, the features and their SHAP contributions.
fn output_frame(scored: &Scored, with_features: bool) -> Result<Frame> {
    let mut columns = match &scored.keys {
        RowKeys::Times { column, values } => vec![(column.clone(), Column::Timestamp(values.clone()))],
        RowKeys::Ids { column, values } => {
            vec![(column.clone(), Column::Categorical(values.iter().cloned().map(Some).collect()))]
        }
    };
    let prediction_name = if scored.classes.is_some() { "probability" } else { "prediction" };
    columns.push((prediction_name.to_string(), Column::Numeric(scored.predictions.clone())));
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
