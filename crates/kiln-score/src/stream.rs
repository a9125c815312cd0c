//! [`score_stream`]: the streaming loop of batch scoring. Chunks of raw rows come from any iterator (the CLI's reads
//! a CSV or Parquet file), each is scored by a [`ChunkScorer`] and handed to a sink closure (the CLI's writes it), so
//! memory holds one chunk whatever the input's size. Formats, progress output and timing of the I/O stay with the
//! caller; this module knows only frames.

use kiln_domain::Frame;
use kiln_features::FittedPipeline;
use kiln_models::Bundle;

use crate::{ChunkScorer, ScoreError, ScoreTotals, Scored};

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
/// to `sink`, then returns the totals. The predictions are exactly those [`score`](crate::score) makes on all the
/// rows at once, whatever the chunking. The first error stops the loop; the source is not asked for another chunk.
///
/// # Errors
/// See [`StreamError`]: the scorer cannot start, a chunk cannot be read, scored or written, or no row could be
/// scored.
pub fn score_stream<E>(
    bundle: &Bundle<FittedPipeline>,
    explain: bool,
    chunks: impl IntoIterator<Item = Result<Frame, E>>,
    mut sink: impl FnMut(Scored) -> Result<(), E>,
) -> Result<ScoreTotals, StreamError<E>> {
    let mut scorer = ChunkScorer::new(bundle, explain).map_err(StreamError::Start)?;
    let mut rows_in = 0_usize;
    for chunk in chunks {
        let chunk = chunk.map_err(StreamError::Source)?;
        let n = chunk.n_rows();
        let scored = scorer.push(chunk).map_err(|source| StreamError::Chunk {
            first: rows_in + 1,
            last: rows_in + n,
            source,
        })?;
        sink(scored).map_err(StreamError::Sink)?;
        rows_in += n;
    }
    scorer.finish().map_err(StreamError::Finish)
}
