//! QuickScorer (Lucchese et al., SIGIR 2015) for a LightGBM forest without categorical splits and with at most 64
//! leaves a tree, on rows without NaN or near-zero values (whose splits are `v <= threshold` alone). Instead of
//! walking each tree, every split of the forest is sorted by (feature, threshold); for each feature of a row the
//! splits it fails (`threshold < v`: the row goes right) are visited in order, each clearing from its tree's leaf
//! mask the leaves of its left subtree, and the row's leaf in a tree is then the first leaf left in its mask. The
//! leaves' values are summed in tree order, as the walk sums them, so the result is the same to the bit. A NaN or
//! near-zero value fails no threshold test: the splits its missing rules send right are listed per feature apart
//! (one list for NaN, one for near-zero values) and applied instead.

use super::Forest;

/// The forest's splits sorted by feature, then threshold, with the leaf masks they apply.
#[derive(Debug, Clone)]
pub(super) struct Quick {
    /// per feature `f`, its splits are `starts[f]..starts[f + 1]`
    starts: Vec<u32>,
    thresholds: Vec<f64>,
    /// the tree of each split
    trees: Vec<u32>,
    /// the leaves a failed split leaves reachable (its left subtree's bits cleared), leaves numbered left to right
    masks: Vec<u64>,
    /// per feature `f`, the splits (indices into `trees` and `masks`) that send a NaN right:
    /// `nan_right[nan_starts[f]..nan_starts[f + 1]]`
    nan_starts: Vec<u32>,
    nan_right: Vec<u32>,
    /// the same for a value within kZeroThreshold of 0
    zero_starts: Vec<u32>,
    zero_right: Vec<u32>,
    /// per tree, its leaves' values left to right, from `leaf_starts[tree]`
    leaf_starts: Vec<u32>,
    leaf_values: Vec<f64>,
}

impl Quick {
    /// The sorted splits of `forest`; `None` when a tree has more than 64 leaves or the forest a categorical split.
    #[allow(clippy::too_many_lines)]
    pub(super) fn of(forest: &Forest) -> Option<Quick> {
        if forest.categorical {
            return None;
        }
        // (feature, threshold, tree, mask, flags) of every split
        let mut splits: Vec<(u32, f64, u32, u64, u8)> = Vec::new();
        let (mut leaf_starts, mut leaf_values) = (Vec::with_capacity(forest.trees.len()), Vec::new());
        for (t, tree) in forest.trees.iter().enumerate() {
            let t = u32::try_from(t).ok()?;
            leaf_starts.push(u32::try_from(leaf_values.len()).ok()?);
            let first = leaf_values.len();
            // depth first, left before right: leaves get their left-to-right numbers
            let mut pending: Vec<(u32, usize)> = Vec::new(); // (split, its first leaf number) until its left ends
            let mut left_of: Vec<(u32, usize, usize)> = Vec::new(); // (split, first leaf, leaves on its left)
            let mut visits: Vec<(u32, bool)> = vec![(tree.root, false)];
            while let Some((node, done)) = visits.pop() {
                let n = &forest.nodes[node as usize];
                if n.children == [node; 2] {
                    if leaf_values.len() - first >= 64 {
                        return None;
                    }
                    leaf_values.push(forest.value(node));
                    continue;
                }
                if done {
                    // the left subtree is numbered: record how many leaves it had
                    let (split, start) = pending.pop()?;
                    left_of.push((split, start, leaf_values.len() - first - start));
                    continue;
                }
                pending.push((node, leaf_values.len() - first));
                // right after the marker, the marker after the left subtree
                visits.push((n.children[1], false));
                visits.push((node, true));
                visits.push((n.children[0], false));
            }
            for (split, start, count) in left_of {
                let n = &forest.nodes[split as usize];
                let bits = if count >= 64 { u64::MAX } else { ((1u64 << count) - 1) << start };
                splits.push((n.feature, n.threshold, t, !bits, n.flags));
            }
        }
        splits.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut starts = vec![0_u32; forest.n_features + 1];
        for s in &splits {
            starts[s.0 as usize + 1] += 1;
        }
        for f in 0..forest.n_features {
            starts[f + 1] += starts[f];
        }
        // the splits a NaN (a near-zero value) fails, per feature, in the sorted order
        let right_of = |flag: u8| -> Option<(Vec<u32>, Vec<u32>)> {
            let mut list_starts = vec![0_u32; forest.n_features + 1];
            let mut list = Vec::new();
            for f in 0..forest.n_features {
                for k in starts[f]..starts[f + 1] {
                    if splits[k as usize].4 & flag == 0 {
                        list.push(k);
                    }
                }
                list_starts[f + 1] = u32::try_from(list.len()).ok()?;
            }
            Some((list_starts, list))
        };
        let (nan_starts, nan_right) = right_of(super::NAN_LEFT)?;
        let (zero_starts, zero_right) = right_of(super::ZERO_LEFT)?;
        Some(Quick {
            starts,
            nan_starts,
            nan_right,
            zero_starts,
            zero_right,
            thresholds: splits.iter().map(|s| s.1).collect(),
            trees: splits.iter().map(|s| s.2).collect(),
            masks: splits.iter().map(|s| s.3).collect(),
            leaf_starts,
            leaf_values,
        })
    }

    /// The summed leaf values of `row`, `masks` a buffer of one word a tree.
    pub(super) fn sum(&self, row: &[f64], masks: &mut Vec<u64>) -> f64 {
        masks.clear();
        masks.resize(self.leaf_starts.len(), u64::MAX);
        for (f, &v) in row.iter().enumerate() {
            if v.abs() > super::ZERO {
                let (start, end) = (self.starts[f] as usize, self.starts[f + 1] as usize);
                for k in start..end {
                    if self.thresholds[k] >= v {
                        break;
                    }
                    masks[self.trees[k] as usize] &= self.masks[k];
                }
            } else {
                let (starts, right) = if v.is_nan() {
                    (&self.nan_starts, &self.nan_right)
                } else {
                    (&self.zero_starts, &self.zero_right)
                };
                for &k in &right[starts[f] as usize..starts[f + 1] as usize] {
                    masks[self.trees[k as usize] as usize] &= self.masks[k as usize];
                }
            }
        }
        let mut sum = 0.0;
        for (t, &mask) in masks.iter().enumerate() {
            sum += self.leaf_values[self.leaf_starts[t] as usize + mask.trailing_zeros() as usize];
        }
        sum
    }
}
