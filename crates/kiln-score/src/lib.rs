//! Scoring a model bundle: a whole frame ([`score`]) or a long file chunk by chunk ([`ChunkScorer`], and the loop
//! [`score_stream`] from any source of chunks to any sink), with the very same predictions; the batch path of
//! `kiln predict` and the facade's `Predictor::predict`, and the reference the server's tests compare with. It does
//! not read or write files (the chunks come from an iterator, the scored chunks go to a closure), train, or know
//! HTTP.

mod error;
mod score;
mod stream;

pub use error::ScoreError;
pub use score::{ChunkScorer, Features, RowKeys, ScoreTotals, Scored, score};
pub use stream::{StreamError, score_stream};

#[cfg(test)]
mod tests;
