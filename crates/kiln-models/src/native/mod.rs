//! Native evaluation of tree ensembles: the LightGBM text model, XGBoost's JSON model and smartcore's random forests
//! are read into flat node arrays and walked in Rust, with each library's decision rules, summation order and output
//! transform, so that predictions equal the library's bit for bit while skipping its per-call setup, locks and row
//! copies.
//!
//! Key decisions: one forest is a single array of nodes (all trees, children as indices into it; a leaf is a node
//! that holds its value and has itself as both children, so every walk takes a tree's depth in steps with no
//! "leaf yet?" branch); a batch is scored in blocks of [`BLOCK`] rows, each tree walking the whole block, [`LANES`]
//! rows side by side, before the next tree starts, so that a tree stays in cache, the CPU overlaps the walks, and
//! every row still adds its trees in the library's order. A single row walks [`TREE_LANES`] trees side by side and adds
//! their leaves in order. A model with anything these rules do not cover (linear trees, categorical XGBoost splits,
//! objectives kiln does not train) gives no forest, and its adapter keeps using the library. Not here: SHAP
//! contributions, training, anything multi-output.

use std::array;
use std::ops::AddAssign;

pub(crate) mod forest;
pub(crate) mod lightgbm;
pub(crate) mod xgboost;

/// Rows scored together per tree: enough to amortize a tree's cache misses, few enough that the block's rows and
/// sums stay in L1/L2. With [`LANES`], measured on the 500-tree x 31-leaf benchmark model (one thread, 200,000
/// rows): 256 x 16 took 3.55-3.64 us a complete row against 4.24-4.27 for 64 x 8 (128 x 16: 3.78, 512 x 16: 3.89,
/// 512 x 32: 3.77).
const BLOCK: usize = 256;

/// Rows of a block walked through one tree side by side: independent chains of loads that the CPU overlaps, where
/// one walk alone waits on every node.
const LANES: usize = 16;

/// Trees one row walks side by side ([`predict_one`], [`predict_one_by_depth`]): on the 500-tree x 31-leaf
/// LightGBM model 16 took 5.4 us a row against 6.3 for 8 (32: 7.7), in the model's order; by depth, 4.5 us.
const TREE_LANES: usize = 16;

/// One tree of a forest's node array: its splits from `root`, then its leaves from `first_leaf`. A leaf is a node
/// whose children are itself, so a walk of `depth` steps (the deepest leaf's depth) ends on a leaf whatever the row.
#[derive(Debug, Clone, Copy)]
struct Tree {
    root: u32,
    first_leaf: u32,
    depth: u32,
}

/// Steps of `step` (node, row -> next node) for each lane, from `at` until every lane is on a leaf (index
/// `>= first_leaf`; at most `depth` steps).
#[inline(always)]
fn walk<const K: usize>(
    mut at: [u32; K],
    first_leaf: u32,
    depth: u32,
    rows: &[&[f64]; K],
    step: &impl Fn(u32, &[f64]) -> u32,
) -> [u32; K] {
    for _ in 0..depth {
        for k in 0..K {
            at[k] = step(at[k], rows[k]);
        }
        if at.iter().all(|&a| a >= first_leaf) {
            break;
        }
    }
    at
}

/// [`walk`] for trees whose leaves are not in one range: every lane takes `depth` steps (a leaf is its own child),
/// without the per-level check for an early end, which cost a single row a tenth of its time.
fn walk_to_depth<const K: usize>(
    mut at: [u32; K],
    depth: u32,
    rows: &[&[f64]; K],
    step: &impl Fn(u32, &[f64]) -> u32,
) -> [u32; K] {
    for _ in 0..depth {
        for (a, row) in at.iter_mut().zip(rows) {
            *a = step(*a, row);
        }
    }
    at
}

/// How [`predict_blocks`] takes one step in a tree (node, row -> next node): rows for which `fits` holds walk
/// together with `quick`, and so do the rows `substitute` rewrites into a row of `width` values that `quick` fits
/// (returning `true`); the others walk with `general`, which fits every row, rewritten or not. So rows that need no
/// missing-value rule take the walk with one comparison a split.
struct Steps<F, Q, G, R> {
    fits: F,
    quick: Q,
    general: G,
    substitute: R,
    width: usize,
}

impl<S: Fn(u32, &[f64]) -> u32 + Copy> Steps<fn(&[f64]) -> bool, S, S, fn(&[f64], &mut [f64]) -> bool> {
    /// `step` for every row.
    fn every(step: S) -> Self {
        Steps { fits: |_| true, quick: step, general: step, substitute: |_, _| false, width: 0 }
    }
}

/// Scores the row-major `data` (rows of equal length, one per value of `out`) into `out`: per block of [`BLOCK`]
/// rows, each row's sum starts at `init` and adds `value(leaf)` of every tree in order, then `finish` gives the
/// output. Grouping the rows by `steps` only decides which rows share a walk: every row still adds its own trees in
/// order.
fn predict_blocks<V, F, Q, G, R>(
    trees: &[Tree],
    data: &[f64],
    out: &mut [f64],
    init: V,
    steps: Steps<F, Q, G, R>,
    value: impl Fn(u32) -> V,
    finish: impl Fn(V) -> f64,
) where
    V: Copy + AddAssign,
    F: Fn(&[f64]) -> bool,
    Q: Fn(u32, &[f64]) -> u32,
    G: Fn(u32, &[f64]) -> u32,
    R: Fn(&[f64], &mut [f64]) -> bool,
{
    /// A group of up to [`LANES`] rows of a block that walk side by side: their rows, where their sums go, how
    /// many lanes are real (the others repeat the group's last row; their leaves are not added), which step.
    struct Group<'a> {
        rows: [&'a [f64]; LANES],
        at: [usize; LANES],
        len: usize,
        quick: bool,
    }
    let Some(n_cols) = data.len().checked_div(out.len()) else { return };
    debug_assert_eq!(data.len(), out.len() * n_cols);
    let mut sums = [init; BLOCK];
    // the block's rewritten rows ([`Steps::substitute`])
    let width = steps.width;
    let mut rewritten = vec![0.0; BLOCK.min(out.len()) * width];
    for (rows, block_out) in data.chunks(BLOCK * n_cols).zip(out.chunks_mut(BLOCK)) {
        let n = block_out.len();
        let row = |i: usize| &rows[i * n_cols..][..n_cols];
        // per row: 0 fits, 1 + k is rewritten into the k-th row of `rewritten`, usize::MAX walks with `general`
        let mut kind = [0usize; BLOCK];
        let mut n_rewritten = 0;
        for (i, k) in kind[..n].iter_mut().enumerate() {
            if (steps.fits)(row(i)) {
                continue;
            }
            let slot = &mut rewritten[n_rewritten * width..][..width];
            *k = if (steps.substitute)(row(i), slot) {
                n_rewritten += 1;
                n_rewritten
            } else {
                usize::MAX
            };
        }
        let source = |i: usize| match kind[i] {
            0 | usize::MAX => row(i),
            k => &rewritten[(k - 1) * width..][..width],
        };
        let (mut fitting, mut others) = ([0usize; BLOCK], [0usize; BLOCK]);
        let (mut n_fit, mut n_other) = (0, 0);
        for (i, &k) in kind[..n].iter().enumerate() {
            if k == usize::MAX {
                others[n_other] = i;
                n_other += 1;
            } else {
                fitting[n_fit] = i;
                n_fit += 1;
            }
        }
        // the fitting rows past the last full group walk with the others: one group fewer than padding both
        let full = n_fit - n_fit % LANES;
        for &i in &fitting[full..n_fit] {
            others[n_other] = i;
            n_other += 1;
        }
        let mut groups: Vec<Group> = Vec::with_capacity(BLOCK / LANES + 1);
        for (list, is_quick) in [(&fitting[..full], true), (&others[..n_other], false)] {
            for chunk in list.chunks(LANES) {
                let lane = |k: usize| chunk[k.min(chunk.len() - 1)];
                groups.push(Group {
                    rows: array::from_fn(|k| source(lane(k))),
                    at: array::from_fn(lane),
                    len: chunk.len(),
                    quick: is_quick,
                });
            }
        }
        let sums = &mut sums[..n];
        sums.fill(init);
        for tree in trees {
            for g in &groups {
                let leaves = if g.quick {
                    walk([tree.root; LANES], tree.first_leaf, tree.depth, &g.rows, &steps.quick)
                } else {
                    walk([tree.root; LANES], tree.first_leaf, tree.depth, &g.rows, &steps.general)
                };
                for (&at, &leaf) in g.at[..g.len].iter().zip(&leaves) {
                    sums[at] += value(leaf);
                }
            }
        }
        for (o, &sum) in block_out.iter_mut().zip(sums.iter()) {
            *o = finish(sum);
        }
    }
}

/// One row's sum: `init` plus `value(leaf)` of every tree in order, the trees walked [`LANES`] at a time.
fn predict_one<V: Copy + AddAssign>(
    trees: &[Tree],
    row: &[f64],
    init: V,
    step: impl Fn(u32, &[f64]) -> u32,
    value: impl Fn(u32) -> V,
) -> V {
    let lanes = [row; TREE_LANES];
    let mut sum = init;
    for group in trees.chunks(TREE_LANES) {
        // the trees' leaves are not in one range: walk the deepest's depth
        let depth = group.iter().map(|t| t.depth).max().unwrap_or(0);
        let at = walk_to_depth(array::from_fn(|k| group[k.min(group.len() - 1)].root), depth, &lanes, &step);
        for &leaf in &at[..group.len()] {
            sum += value(leaf);
        }
    }
    sum
}

/// The trees' indices by depth, deepest last: the trees one row walks side by side ([`predict_one_by_depth`]) then
/// end together, where neighbours in the model's order can differ by several levels.
fn depth_order(trees: &[Tree]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..u32::try_from(trees.len()).unwrap_or(u32::MAX)).collect();
    order.sort_by_key(|&t| trees[t as usize].depth);
    order
}

/// [`predict_one`] walking the trees in `order` ([`depth_order`]), [`TREE_LANES`] at a time, each group for its
/// deepest tree's depth; the leaves are kept per tree in `leaves` and added in the model's order, so the sum is the
/// same to the bit.
fn predict_one_by_depth<V: Copy + AddAssign>(
    trees: &[Tree],
    order: &[u32],
    row: &[f64],
    init: V,
    step: impl Fn(u32, &[f64]) -> u32,
    value: impl Fn(u32) -> V,
    leaves: &mut Vec<u32>,
) -> V {
    let lanes = [row; TREE_LANES];
    leaves.clear();
    leaves.resize(trees.len(), 0);
    for group in order.chunks(TREE_LANES) {
        let tree = |k: usize| &trees[group[k.min(group.len() - 1)] as usize];
        let depth = tree(group.len() - 1).depth;
        let at = walk_to_depth(array::from_fn(|k| tree(k).root), depth, &lanes, &step);
        for (&t, &leaf) in group.iter().zip(&at) {
            leaves[t as usize] = leaf;
        }
    }
    let mut sum = init;
    for &leaf in leaves.iter() {
        sum += value(leaf);
    }
    sum
}

/// The depth of the tree from `root` whose `n` nodes start at `base` (`children(i)`: node `i`'s children, itself
/// for a leaf); `None` when a node is reached twice (a walk could loop). Unreachable nodes (XGBoost's deleted ones)
/// are left alone.
fn tree_depth(root: u32, base: u32, n: usize, children: impl Fn(u32) -> [u32; 2]) -> Option<u32> {
    let mut seen = vec![false; n];
    let mut stack = vec![(root, 0)];
    let mut depth = 0;
    while let Some((node, d)) = stack.pop() {
        let i = node.checked_sub(base).map(|i| i as usize).filter(|&i| i < n)?;
        if std::mem::replace(&mut seen[i], true) {
            return None;
        }
        let [l, r] = children(node);
        if l == node && r == node {
            depth = depth.max(d);
        } else {
            stack.extend([(l, d + 1), (r, d + 1)]);
        }
    }
    Some(depth)
}

#[cfg(test)]
mod tests;
