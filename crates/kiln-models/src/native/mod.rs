//! Native evaluation of the boosters' tree ensembles: the LightGBM text model and XGBoost's JSON model are read into
//! flat node arrays and walked in Rust, with each library's decision rules, summation order and output transform,
//! so that predictions equal the library's bit for bit while skipping its per-call setup, locks and row copies.
//!
//! Key decisions: one forest is a single array of nodes (all trees, children as indices into it, leaves encoded
//! negative as `!leaf` the way LightGBM does) and one array of leaf values; a batch is scored in blocks of
//! [`BLOCK`] rows, each tree walking the whole block before the next tree starts, so that a tree stays in cache and
//! every row still adds its trees in the library's order. A model with anything these rules do not cover (linear
//! trees, categorical XGBoost splits, objectives kiln does not train) gives no forest, and its adapter keeps using
//! the library. Not here: SHAP contributions, training, anything multi-output.

pub(crate) mod lightgbm;
pub(crate) mod xgboost;

/// Rows scored together per tree: enough to amortize a tree's cache misses, few enough that the block's rows and
/// sums stay in L1/L2.
const BLOCK: usize = 64;

/// Calls `score(block_rows, block_out)` for consecutive blocks of at most [`BLOCK`] rows of the row-major `data`
/// (`n_cols` values per row) and the matching slices of `out` (one value per row).
fn for_blocks(data: &[f64], n_cols: usize, out: &mut [f64], mut score: impl FnMut(&[f64], &mut [f64])) {
    debug_assert_eq!(data.len(), out.len() * n_cols);
    for (rows, sums) in data.chunks(BLOCK * n_cols).zip(out.chunks_mut(BLOCK)) {
        score(rows, sums);
    }
}

#[cfg(test)]
mod tests;
