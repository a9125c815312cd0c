//! [`score_stream`]: the streaming loop of batch scoring. Chunks of raw rows come from any iterator (the CLI's reads
//! a CSV or Parquet file), each is scored by a [`ChunkScorer`] and handed to a sink closure (the CLI's writes it), so
//! memory holds one chunk whatever the input's size. Formats, progress output and timing of the I/O stay with the
//! caller; this module knows only frames.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use kiln_domain::Frame;
use kiln_features::FittedPipeline;
use kiln_models::{Bundle, ModelError};

use crate::{ChunkScorer, Features, ScoreError, ScoreTotals, Scored};

/// Why [`score_stream`] stopped. `E` is the caller's error, from its source of chunks or its sink.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    /// The scorer could not start (an invalid recipe in the bundle, `explain` for a model without contributions).
    #[error(transparent)]
    Start(ScoreError),
    /// The source of chunks failed.
    #[error("{0}")]
    Source(E),
    /// Scoring the chunk of rows `first..=last` (counted from 1 over all chunks) failed.
    #[error("scoring rows {first}-{last}")]
    Chunk {
        first: usize,
        last: usize,
        #[source]
        source: ScoreError,
    },
    /// The sink refused a scored chunk.
    #[error("{0}")]
    Sink(E),
    /// Every chunk went through, but no row at all could be scored ([`ScoreError::NotEnoughRows`]).
    #[error(transparent)]
    Finish(ScoreError),
}

/// Scores every chunk of `chunks` in order with `bundle` (a forecast's chunks in time order) and hands each result
/// to `sink`, in order, then returns the totals. The predictions are exactly those [`score`](crate::score) makes on
/// all the rows at once, whatever the chunking and `threads`. The first error stops the loop; the source is not asked
/// for another chunk.
///
/// With `threads` > 1, the model predicts on `threads` worker threads while this thread reads the next chunks, builds
/// their features (which carry a forecast's history from chunk to chunk, so they stay in file order) and writes the
/// scored ones; at most `2 * threads` chunks are in flight, so memory stays flat.
///
/// # Errors
/// See [`StreamError`]: the scorer cannot start, a chunk cannot be read, scored or written, or no row could be
/// scored.
pub fn score_stream<E>(
    bundle: &Bundle<FittedPipeline>,
    explain: bool,
    chunks: impl IntoIterator<Item = Result<Frame, E>>,
    mut sink: impl FnMut(Scored) -> Result<(), E>,
    threads: usize,
) -> Result<ScoreTotals, StreamError<E>> {
    let mut scorer = ChunkScorer::new(bundle, explain).map_err(StreamError::Start)?;
    if threads <= 1 {
        let mut rows_in = 0_usize;
        for chunk in chunks {
            let chunk = chunk.map_err(StreamError::Source)?;
            let n = chunk.n_rows();
            let scored = scorer.push(chunk).map_err(|source| chunk_error(rows_in, n, source))?;
            sink(scored).map_err(StreamError::Sink)?;
            rows_in += n;
        }
        return scorer.finish().map_err(StreamError::Finish);
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                loop {
                    // the lock is held only while waiting for the next job, never while predicting
                    let job = job_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = job else { break };
                    let started = Instant::now();
                    // a panic in the model is this chunk's error, so the loop below never waits for a lost chunk
                    let scored = panic::catch_unwind(AssertUnwindSafe(|| job.features.predict(bundle, explain)))
                        .unwrap_or_else(|_| Err(ModelError::Predict("the model panicked".to_string()).into()));
                    let done =
                        Done { index: job.index, first: job.first, rows: job.rows, scored, took: started.elapsed() };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut order = InOrder { next: 0, waiting: BTreeMap::new() };
        let mut sent = 0_usize;
        let mut rows_in = 0_usize;
        let outcome = (|| {
            for chunk in chunks {
                let chunk = chunk.map_err(StreamError::Source)?;
                let rows = chunk.n_rows();
                let features = scorer.prepare(chunk).map_err(|source| chunk_error(rows_in, rows, source))?;
                // at most 2 * threads chunks in flight: wait for the oldest before sending more
                while sent - order.next >= 2 * threads {
                    let done = done_rx.recv().map_err(|_| worker_lost())?;
                    order.put(done, &mut scorer, &mut sink)?;
                }
                let job = Job { index: sent, first: rows_in, rows, features };
                job_tx.send(job).map_err(|_| worker_lost())?;
                sent += 1;
                rows_in += rows;
                while let Ok(done) = done_rx.try_recv() {
                    order.put(done, &mut scorer, &mut sink)?;
                }
            }
            while order.next < sent {
                let done = done_rx.recv().map_err(|_| worker_lost())?;
                order.put(done, &mut scorer, &mut sink)?;
            }
            Ok(())
        })();
        // the workers end when the jobs end (on an error, after the job each one holds)
        drop(job_tx);
        outcome
    })?;
    scorer.finish().map_err(StreamError::Finish)
}

fn chunk_error<E>(rows_before: usize, rows: usize, source: ScoreError) -> StreamError<E> {
    StreamError::Chunk { first: rows_before + 1, last: rows_before + rows, source }
}

fn worker_lost<E>() -> StreamError<E> {
    StreamError::Chunk { first: 0, last: 0, source: ModelError::Predict("a scoring thread stopped".to_string()).into() }
}

/// A chunk's features on their way to a worker.
struct Job {
    /// the chunk's place in the file, from 0
    index: usize,
    /// rows of the file before the chunk
    first: usize,
    rows: usize,
    features: Features,
}

/// A chunk a worker predicted.
struct Done {
    index: usize,
    first: usize,
    rows: usize,
    scored: Result<Scored, ScoreError>,
    took: Duration,
}

/// The predicted chunks that came back before an earlier one, until it is their turn to go to the sink.
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Done>,
}

impl InOrder {
    fn put<E>(
        &mut self,
        done: Done,
        scorer: &mut ChunkScorer<'_>,
        sink: &mut impl FnMut(Scored) -> Result<(), E>,
    ) -> Result<(), StreamError<E>> {
        self.waiting.insert(done.index, done);
        while let Some(done) = self.waiting.remove(&self.next) {
            scorer.add_model_time(done.took);
            let scored = done.scored.map_err(|source| chunk_error(done.first, done.rows, source))?;
            sink(scored).map_err(StreamError::Sink)?;
            self.next += 1;
        }
        Ok(())
    }
}
