//! LightGBM's text model, evaluated natively with LightGBM 4.7's rules (`Tree::Predict`, `GBDT::Predict`): numerical
//! splits with their missing types (None, Zero, NaN) and default directions, categorical splits on bitsets, trees
//! summed in f64 from 0 in the model's order, then the objective's `ConvertOutput`. The f64 input path of
//! `LGBM_BoosterPredictForMat` drops every value with `|v| <= kZeroThreshold` from the row, so the tree sees 0 for
//! it; [`Node::next`] decides such values (and NaN) by two flags computed when the model is read.
//!
//! Not here: linear trees, `average_output` (random forests), multi-output models, `reg_sqrt` and the objectives
//! kiln does not train; [`Forest::parse`] gives `None` for them.

use super::{Steps, Tree, predict_blocks, predict_one, predict_one_by_depth, tree_depth};

mod quick;

/// LightGBM's `kZeroThreshold` (`1e-35f`, a float widened to double).
const ZERO: f64 = 1e-35_f32 as f64;

/// The node is a categorical split (its `threshold` indexes [`Forest::cat_bounds`]).
const CATEGORICAL: u8 = 1;
/// A NaN goes left.
const NAN_LEFT: u8 = 2;
/// A value with `|v| <= kZeroThreshold` (seen by the tree as 0) goes left.
const ZERO_LEFT: u8 = 4;

/// One split, or a leaf (children itself, its value in `threshold`). Children are indices into [`Forest::nodes`].
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    children: [u32; 2],
    flags: u8,
}

impl Node {
    /// The child a numerical split sends `v` to. LightGBM's `NumericalDecision` after the row's near-zero values
    /// became 0: a NaN goes where the missing type says (the default side for NaN and Zero, the side of 0 for None),
    /// a zero the default side for missing type Zero and the side of 0 otherwise, anything else by `v <= threshold`.
    #[inline(always)]
    fn next(&self, v: f64) -> u32 {
        let left = if v.abs() > ZERO {
            v <= self.threshold
        } else {
            let flag = if v.is_nan() { NAN_LEFT } else { ZERO_LEFT };
            self.flags & flag != 0
        };
        self.children[usize::from(!left)]
    }
}

/// What LightGBM's objective does to the summed raw score (`ConvertOutput`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    Identity,
    /// `binary`: `1 / (1 + exp(-sigmoid * x))`
    Sigmoid(f64),
    /// `poisson`: `exp(x)`
    Exp,
}

impl Output {
    fn apply(self, x: f64) -> f64 {
        match self {
            Output::Identity => x,
            Output::Sigmoid(s) => 1.0 / (1.0 + (-s * x).exp()),
            Output::Exp => x.exp(),
        }
    }
}

/// A LightGBM model ready for native evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Forest {
    trees: Vec<Tree>,
    nodes: Vec<Node>,
    /// whether any split is categorical
    categorical: bool,
    /// per categorical split: the range of its bitset in `cat_words`
    cat_bounds: Vec<(usize, usize)>,
    cat_words: Vec<u32>,
    n_features: usize,
    output: Output,
    /// the splits sorted for QuickScorer (rows without NaN or near-zero values); `None` for a forest with categorical
    /// splits or a tree of more than 64 leaves
    quick: Option<quick::Quick>,
    /// the trees by depth ([`super::depth_order`])
    by_depth: Vec<u32>,
    /// per feature, a number that every numerical split on it sends where it sends a NaN (`None`: the splits'
    /// missing rules disagree with every number), and one for a value within kZeroThreshold of 0: a row's NaN and
    /// near-zero values replaced by these takes the walk with one comparison a split ([`Forest::substituted`])
    nan_as: Vec<Option<f64>>,
    zero_as: Vec<Option<f64>>,
}

impl Forest {
    /// Reads a model written by LightGBM (`save_model`, `model_to_string`); `None` when it holds anything that
    /// cannot be evaluated natively exactly as LightGBM does (see the module's doc), or is malformed.
    pub(crate) fn parse(text: &str) -> Option<Forest> {
        let mut lines = text.lines();
        let mut n_features = None;
        let mut output = None;
        for line in lines.by_ref() {
            if line.starts_with("Tree=") {
                break;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            match key {
                "num_class" | "num_tree_per_iteration" if value != "1" => return None,
                "max_feature_idx" => n_features = Some(value.parse::<usize>().ok()? + 1),
                "objective" => output = Some(parse_objective(value)?),
                "average_output" => return None,
                _ => {}
            }
        }
        let mut forest = Forest {
            trees: Vec::new(),
            nodes: Vec::new(),
            categorical: false,
            cat_bounds: Vec::new(),
            cat_words: Vec::new(),
            n_features: n_features?,
            output: output?,
            quick: None,
            by_depth: Vec::new(),
            nan_as: Vec::new(),
            zero_as: Vec::new(),
        };
        // `lines` now stands after the first `Tree=` line; each tree's fields run to a blank line
        let mut fields: Vec<(&str, &str)> = Vec::new();
        let mut ended = false;
        for line in lines {
            if line.is_empty() {
                if !fields.is_empty() {
                    forest.push_tree(&fields)?;
                    fields.clear();
                }
            } else if line.starts_with("Tree=") {
                continue;
            } else if line == "end of trees" {
                ended = true;
                break;
            } else {
                fields.push(line.split_once('=')?);
            }
        }
        if !ended || !fields.is_empty() || forest.trees.is_empty() {
            return None;
        }
        forest.quick = quick::Quick::of(&forest);
        forest.by_depth = super::depth_order(&forest.trees);
        forest.nan_as = forest.stand_ins(NAN_LEFT);
        forest.zero_as = forest.stand_ins(ZERO_LEFT);
        Some(forest)
    }

    fn push_tree(&mut self, fields: &[(&str, &str)]) -> Option<()> {
        let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let list = |key: &str| get(key).map(|v| v.split(' ').collect::<Vec<_>>()).unwrap_or_default();
        let num_leaves: usize = get("num_leaves")?.parse().ok()?;
        if get("is_linear").is_some_and(|v| v != "0") || num_leaves == 0 {
            return None;
        }
        let leaf_values: Vec<f64> = parse_all(&list("leaf_value"))?;
        if leaf_values.len() != num_leaves {
            return None;
        }
        // the tree's splits, then its leaves
        let base = u32::try_from(self.nodes.len()).ok()?;
        u32::try_from(self.nodes.len() + 2 * num_leaves).ok()?; // every index of the tree fits
        let n_splits = num_leaves - 1;
        let leaf_base = base.checked_add(u32::try_from(n_splits).ok()?)?;
        let leaf =
            |i: usize| Node { threshold: leaf_values[i], feature: 0, children: [leaf_base + i as u32; 2], flags: 0 };
        if num_leaves == 1 {
            self.nodes.push(leaf(0));
            self.trees.push(Tree { root: base, first_leaf: base, depth: 0 });
            return Some(());
        }
        let features: Vec<u32> = parse_all(&list("split_feature"))?;
        let thresholds: Vec<f64> = parse_all(&list("threshold"))?;
        let decisions: Vec<u8> = parse_all(&list("decision_type"))?;
        let left: Vec<i32> = parse_all(&list("left_child"))?;
        let right: Vec<i32> = parse_all(&list("right_child"))?;
        if [features.len(), thresholds.len(), decisions.len(), left.len(), right.len()].iter().any(|&n| n != n_splits) {
            return None;
        }
        let num_cat: usize = get("num_cat").map_or(Some(0), |v| v.parse().ok())?;
        let cat_base = self.cat_bounds.len();
        if num_cat > 0 {
            let bounds: Vec<usize> = parse_all(&list("cat_boundaries"))?;
            let words: Vec<u32> = parse_all(&list("cat_threshold"))?;
            if bounds.len() != num_cat + 1 || bounds[0] != 0 || bounds.last() != Some(&words.len()) {
                return None;
            }
            let word_base = self.cat_words.len();
            for pair in bounds.windows(2) {
                if pair[1] < pair[0] {
                    return None;
                }
                self.cat_bounds.push((word_base + pair[0], pair[1] - pair[0]));
            }
            self.cat_words.extend(words);
        }
        // LightGBM's child: a split's index, or `!leaf`
        let child = |c: i32| -> Option<u32> {
            if c >= 0 {
                (usize::try_from(c).ok()? < n_splits).then(|| base + c as u32)
            } else {
                (usize::try_from(!c).ok()? < num_leaves).then(|| leaf_base + !c as u32)
            }
        };
        for i in 0..n_splits {
            if features[i] as usize >= self.n_features {
                return None;
            }
            let decision = decisions[i];
            let default_left = decision & 2 != 0;
            let (threshold, flags) = if decision & 1 != 0 {
                self.categorical = true;
                let index = thresholds[i];
                if !(index >= 0.0 && index < num_cat as f64 && index.fract() == 0.0) {
                    return None;
                }
                ((cat_base + index as usize) as f64, CATEGORICAL)
            } else {
                let zero_side = 0.0 <= thresholds[i];
                let (nan_left, zero_left) = match (decision >> 2) & 3 {
                    0 => (zero_side, zero_side),
                    1 => (default_left, default_left),
                    2 => (default_left, zero_side),
                    _ => return None,
                };
                (thresholds[i], if nan_left { NAN_LEFT } else { 0 } | if zero_left { ZERO_LEFT } else { 0 })
            };
            let children = [child(left[i])?, child(right[i])?];
            self.nodes.push(Node { threshold, feature: features[i], children, flags });
        }
        self.nodes.extend((0..num_leaves).map(leaf));
        let depth = tree_depth(base, base, num_leaves + n_splits, |i| self.nodes[i as usize].children)?;
        self.trees.push(Tree { root: base, first_leaf: leaf_base, depth });
        Some(())
    }

    /// Per feature, a number `z` that each numerical split on it sends the way `flag` says the missing rules send
    /// a NaN (`NAN_LEFT`) or a near-zero value (`ZERO_LEFT`): left is `z <= threshold`, so `z` must lie above the
    /// thresholds of the splits that send it right and at or below those that send it left. 0 when 0 does (it
    /// does for missing types None and NaN and a near-zero value), else the smallest left threshold; `None` when
    /// no number does.
    fn stand_ins(&self, flag: u8) -> Vec<Option<f64>> {
        // per feature: the largest threshold of a split sending it right, the smallest of one sending it left
        let mut bounds = vec![(f64::NEG_INFINITY, f64::INFINITY); self.n_features];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.flags & CATEGORICAL != 0 || n.children == [i as u32; 2] {
                continue;
            }
            let (right_max, left_min) = &mut bounds[n.feature as usize];
            if n.flags & flag != 0 {
                *left_min = left_min.min(n.threshold);
            } else {
                *right_max = right_max.max(n.threshold);
            }
        }
        bounds
            .into_iter()
            .map(|(right_max, left_min)| {
                let fits = |z: f64| right_max < z && z <= left_min;
                if fits(0.0) {
                    Some(0.0)
                } else if fits(left_min) {
                    Some(left_min)
                } else {
                    None
                }
            })
            .collect()
    }

    /// `row` with its NaN and near-zero values replaced by their features' stand-ins ([`Forest::stand_ins`]), which
    /// every split decides as LightGBM decides the values they replace; `None` when a value has none.
    pub(super) fn substituted(&self, row: &[f64]) -> Option<Vec<f64>> {
        let mut out = vec![0.0; row.len()];
        self.substitute_into(row, &mut out).then_some(out)
    }

    /// [`Forest::substituted`] into `out` (of the row's length); `false` when a value has no stand-in.
    fn substitute_into(&self, row: &[f64], out: &mut [f64]) -> bool {
        for (f, (&v, o)) in row.iter().zip(out.iter_mut()).enumerate() {
            let stand_in = if v.abs() > ZERO {
                Some(v)
            } else if v.is_nan() {
                self.nan_as[f]
            } else {
                self.zero_as[f]
            };
            match stand_in {
                Some(z) => *o = z,
                None => return false,
            }
        }
        true
    }

    /// The model's feature count.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Per feature, the thresholds of its numerical splits (for tests that probe values at the thresholds).
    #[cfg(test)]
    pub(crate) fn thresholds(&self) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::new(); self.n_features];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.flags & CATEGORICAL != 0 || n.children == [i as u32; 2] {
                continue;
            }
            out[n.feature as usize].push(n.threshold);
        }
        out
    }

    /// The node after `at` for `row`; `CATEGORICAL_SPLITS`: the forest has categorical splits; `CLEAN`: no value of
    /// the row is NaN or within `kZeroThreshold` of 0, so a numerical split is `v <= threshold` alone.
    #[inline(always)]
    fn step<const CATEGORICAL_SPLITS: bool, const CLEAN: bool>(&self, at: u32, row: &[f64]) -> u32 {
        // SAFETY: `at` is a root or a child of a node of `self.nodes`, and `parse` checked every root and child to be
        // an index into `self.nodes` and every split's feature to be `< n_features`; `row` holds `n_features` values
        // (asserted by `predict_row` and `predict_into`, the only callers). Unchecked indexing measured 12% faster.
        #[allow(unsafe_code)]
        let (n, v) = unsafe {
            let n = self.nodes.get_unchecked(at as usize);
            (n, *row.get_unchecked(n.feature as usize))
        };
        if CATEGORICAL_SPLITS && n.flags & CATEGORICAL != 0 {
            self.categorical(n, v)
        } else if CLEAN {
            n.children[usize::from(v > n.threshold)]
        } else {
            n.next(v)
        }
    }

    /// LightGBM's `CategoricalDecision`: NaN and negative values go right, else the value's integer part goes left
    /// when its bit is set. A value beyond `i32` goes right in both (LightGBM's cast gives `i32::MIN` on x86-64,
    /// Rust's saturates to `i32::MAX`, which no bitset holds).
    fn categorical(&self, n: &Node, v: f64) -> u32 {
        let left = !v.is_nan() && {
            let category = v as i32;
            let (start, len) = self.cat_bounds[n.threshold as usize];
            usize::try_from(category)
                .is_ok_and(|c| c / 32 < len && (self.cat_words[start + c / 32] >> (c % 32)) & 1 == 1)
        };
        n.children[usize::from(!left)]
    }

    fn value(&self, leaf: u32) -> f64 {
        self.nodes[leaf as usize].threshold
    }

    /// One row's prediction (`raw`: the summed score before the objective's transform). `row` holds the model's
    /// features. Without categorical splits, a row whose NaN and near-zero values have stand-ins walks the trees
    /// by depth, [`super::TREE_LANES`] side by side, with one comparison a split (4.5 us for 500 trees of 31 leaves,
    /// QuickScorer 7.4 on the same machine); one with a value without a stand-in goes through QuickScorer
    /// ([`quick`]), or the walk with the missing rules when a tree has more than 64 leaves.
    pub(crate) fn predict_row(&self, row: &[f64], raw: bool) -> f64 {
        assert_eq!(row.len(), self.n_features, "a row of the model's features");
        let value = |leaf| self.value(leaf);
        let walk_clean = |row: &[f64]| {
            LEAVES.with_borrow_mut(|leaves| {
                let step = |at, r: &[f64]| self.step::<false, true>(at, r);
                predict_one_by_depth(&self.trees, &self.by_depth, row, 0.0, step, value, leaves)
            })
        };
        let sum = if self.categorical {
            predict_one(&self.trees, row, 0.0, |at, r| self.step::<true, false>(at, r), value)
        } else if clean(row) {
            walk_clean(row)
        } else if let Some(rewritten) = self.substituted(row) {
            walk_clean(&rewritten)
        } else if let Some(quick) = &self.quick {
            QUICK_MASKS.with_borrow_mut(|m| quick.sum(row, m))
        } else {
            predict_one(&self.trees, row, 0.0, |at, r| self.step::<false, false>(at, r), value)
        };
        if raw { sum } else { self.output.apply(sum) }
    }

    /// Predictions of the row-major `data` (rows of the model's features) into `out`, one per row. The rows of a
    /// block without NaN or near-zero values, and those whose such values have stand-ins, walk together with one
    /// comparison a split, the others apart with the missing rules.
    pub(crate) fn predict_into(&self, data: &[f64], out: &mut [f64], raw: bool) {
        assert_eq!(data.len(), out.len() * self.n_features, "rows of the model's features");
        let value = |leaf| self.value(leaf);
        let finish = |sum| if raw { sum } else { self.output.apply(sum) };
        if self.categorical {
            let step = |at, r: &[f64]| self.step::<true, false>(at, r);
            predict_blocks(&self.trees, data, out, 0.0, Steps::every(step), value, finish);
        } else {
            let steps = Steps {
                fits: clean,
                quick: |at, r: &[f64]| self.step::<false, true>(at, r),
                general: |at, r: &[f64]| self.step::<false, false>(at, r),
                substitute: |row: &[f64], out: &mut [f64]| self.substitute_into(row, out),
            };
            predict_blocks(&self.trees, data, out, 0.0, steps, value, finish);
        }
    }
}

thread_local! {
    /// QuickScorer's leaf masks for single rows, one buffer a thread
    static QUICK_MASKS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// a single row's leaf per tree ([`super::predict_one_by_depth`]), one buffer a thread
    static LEAVES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether no value is NaN or within `kZeroThreshold` of 0 (the values LightGBM's missing rules decide).
fn clean(values: &[f64]) -> bool {
    values.iter().all(|v| v.abs() > ZERO)
}

/// The `objective=` line's transform, for the objectives kiln trains.
fn parse_objective(value: &str) -> Option<Output> {
    let mut words = value.split(' ');
    let name = words.next()?;
    let rest: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
    match name {
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" if rest.is_empty() => {
            Some(Output::Identity)
        }
        "poisson" if rest.is_empty() => Some(Output::Exp),
        "binary" => match rest.as_slice() {
            [s] => Some(Output::Sigmoid(s.strip_prefix("sigmoid:")?.parse().ok()?)),
            _ => None,
        },
        _ => None,
    }
}

fn parse_all<T: std::str::FromStr>(words: &[&str]) -> Option<Vec<T>> {
    words.iter().filter(|w| !w.is_empty()).map(|w| w.parse().ok()).collect()
}
