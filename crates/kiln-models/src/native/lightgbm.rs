//! LightGBM's text model, evaluated natively with LightGBM 4.7's rules (`Tree::Predict`, `GBDT::Predict`): numerical
//! splits with their missing types (None, Zero, NaN) and default directions, categorical splits on bitsets, trees
//! summed in f64 from 0 in the model's order, then the objective's `ConvertOutput`. The f64 input path of
//! `LGBM_BoosterPredictForMat` drops every value with `|v| <= kZeroThreshold` from the row, so the tree sees 0 for
//! it; [`Node::next`] decides such values (and NaN) by two flags computed when the model is read.
//!
//! Not here: linear trees, `average_output` (random forests), multi-output models, `reg_sqrt` and the objectives
//! kiln does not train; [`Forest::parse`] gives `None` for them.

use super::{Steps, Tree, predict_blocks, predict_one, predict_one_by_depth, tree_depth};

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

/// A node of the single-row walk's compact layout ([`Compact`]): 16 bytes against [`Node`]'s 24, so that the
/// benchmark's 500 trees of 31 leaves take 480 KB instead of 720. A split sends a row to `left` when `v <= threshold`
/// and to `left + 1` otherwise (its children lie side by side); a leaf is its own left child under an infinite
/// threshold, so a walk that reached it stays there.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct CompactNode {
    threshold: f64,
    left: u32,
    feature: u32,
}

/// The widened forest's trees laid out for one row's walk with one comparison a split ([`Forest::compact`]): the
/// same splits on the same columns, each tree breadth first with every split's children side by side.
#[derive(Debug, Clone)]
struct Compact {
    nodes: Vec<CompactNode>,
    /// per node: a leaf's value (NaN for a split)
    values: Vec<f64>,
    /// the trees' roots and depths in `nodes`
    trees: Vec<Tree>,
}

impl Compact {
    /// The node after `at` for `row` (a widened row, or a row that needs no widening).
    #[inline(always)]
    fn step(&self, at: u32, row: &[f64]) -> u32 {
        // SAFETY: `Forest::compact` gave every split two children inside `nodes` and every leaf itself as left
        // child, so `at` stays an index into `nodes`; a split's feature is a column of the widened row, as in
        // `Forest::step`, and a leaf reads column 0, which every row has (`compact` refuses a forest without one).
        #[allow(unsafe_code)]
        let (n, v) = unsafe {
            let n = self.nodes.get_unchecked(at as usize);
            (n, *row.get_unchecked(n.feature as usize))
        };
        n.left + u32::from(v > n.threshold)
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
    /// the trees by depth ([`super::depth_order`])
    by_depth: Vec<u32>,
    /// the row rewrite after which every split is one comparison ([`Forest::widen`]); `None` for a forest with
    /// categorical splits, whose rows walk with the missing rules
    wide: Option<Wide>,
    /// the single-row walk's layout of the widened forest ([`Forest::compact`]), with `wide`
    compact: Option<Compact>,
}

/// What a row becomes before the walk with one comparison a split ([`Forest::widen`]): per column, the model feature
/// it copies and what a NaN and a value within kZeroThreshold of 0 become there; the model's features come first,
/// in order, then the extra columns of features whose splits' missing rules disagree, then one column per cut.
#[derive(Debug, Clone)]
struct Wide {
    columns: Vec<Column>,
    cuts: Vec<Cut>,
    /// whether there are extra columns or cuts, so that even a row without NaN or near-zero values is rewritten
    extra: bool,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    feature: u32,
    nan: f64,
    zero: f64,
}

/// A split of infinite threshold on a feature without stand-ins, decided while widening: its column holds -1 where
/// the split goes left and 1 where it goes right, and the split becomes `v <= 0` on it (±inf cannot stand for a
/// NaN against a threshold of ±inf: LightGBM writes `inf` for a split of NaN against every number).
#[derive(Debug, Clone, Copy)]
struct Cut {
    feature: u32,
    threshold: f64,
    /// [`NAN_LEFT`] and [`ZERO_LEFT`] of the split
    rule: u8,
}

impl Wide {
    /// `row` widened into `out` (one value a column).
    #[inline]
    fn fill(&self, row: &[f64], out: &mut [f64]) {
        let (plain, decided) = out.split_at_mut(self.columns.len());
        for (o, c) in plain.iter_mut().zip(&self.columns) {
            let v = row[c.feature as usize];
            *o = if v.abs() > ZERO {
                v
            } else if v.is_nan() {
                c.nan
            } else {
                c.zero
            };
        }
        for (o, c) in decided.iter_mut().zip(&self.cuts) {
            let node = Node { threshold: c.threshold, feature: c.feature, children: [0, 1], flags: c.rule };
            *o = if node.next(row[c.feature as usize]) == 0 { -1.0 } else { 1.0 };
        }
    }

    fn width(&self) -> usize {
        self.columns.len() + self.cuts.len()
    }
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
            by_depth: Vec::new(),
            wide: None,
            compact: None,
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
        forest.by_depth = super::depth_order(&forest.trees);
        forest.wide = forest.widen();
        if forest.wide.is_some() {
            forest.compact = forest.compact();
        }
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

    /// Makes every numerical split one comparison (`v <= threshold`) on a widened row ([`Wide`]): a feature whose
    /// NaN and near-zero values have stand-ins ([`Forest::stand_ins`]) keeps its column; one whose splits' missing
    /// rules disagree with every number gets a column per missing rule among its splits (the first in its own
    /// place, the others after the model's features), in which a NaN or near-zero value is -inf where that rule
    /// sends it left and +inf where it sends it right, and each split is pointed at its rule's column; such a split
    /// of infinite threshold, where ±inf would not decide, becomes a [`Cut`]. `None` (the forest unchanged) with
    /// categorical splits.
    fn widen(&mut self) -> Option<Wide> {
        let is_split = |i: usize, n: &Node| n.children != [i as u32; 2];
        if self.categorical {
            return None;
        }
        let (nan_as, zero_as) = (self.stand_ins(NAN_LEFT), self.stand_ins(ZERO_LEFT));
        let mut columns: Vec<Column> = (0..self.n_features)
            .map(|f| Column {
                feature: f as u32,
                nan: nan_as[f].unwrap_or(f64::NAN),
                zero: zero_as[f].unwrap_or(f64::NAN),
            })
            .collect();
        // per feature without stand-ins: the missing rules (flags) seen so far and their columns
        let mut rules: Vec<Vec<(u8, u32)>> = vec![Vec::new(); self.n_features];
        let (mut cuts, mut cut_splits) = (Vec::<Cut>::new(), Vec::new());
        for i in 0..self.nodes.len() {
            let n = self.nodes[i];
            let f = n.feature as usize;
            if !is_split(i, &n) || (nan_as[f].is_some() && zero_as[f].is_some()) {
                continue;
            }
            let rule = n.flags & (NAN_LEFT | ZERO_LEFT);
            if !n.threshold.is_finite() {
                let cut = Cut { feature: n.feature, threshold: n.threshold, rule };
                let same = |c: &Cut| (c.feature, c.threshold, c.rule) == (cut.feature, cut.threshold, cut.rule);
                let at = cuts.iter().position(same).unwrap_or_else(|| {
                    cuts.push(cut);
                    cuts.len() - 1
                });
                cut_splits.push((i, at));
                continue;
            }
            let column = match rules[f].iter().find(|(r, _)| *r == rule) {
                Some(&(_, c)) => c,
                None => {
                    let c = if rules[f].is_empty() { n.feature } else { u32::try_from(columns.len()).ok()? };
                    let side = |flag: u8| if rule & flag != 0 { f64::NEG_INFINITY } else { f64::INFINITY };
                    let column = Column { feature: n.feature, nan: side(NAN_LEFT), zero: side(ZERO_LEFT) };
                    if c == n.feature {
                        columns[f] = column;
                    } else {
                        columns.push(column);
                    }
                    rules[f].push((rule, c));
                    c
                }
            };
            self.nodes[i].feature = column;
        }
        // the cuts' columns come after every other
        for (i, at) in cut_splits {
            self.nodes[i].feature = u32::try_from(columns.len() + at).ok()?;
            self.nodes[i].threshold = 0.0;
        }
        Some(Wide { extra: columns.len() > self.n_features || !cuts.is_empty(), columns, cuts })
    }

    /// The trees as [`Compact`] lays them out for a single row's walk; `None` for a forest without features (a
    /// leaf reads column 0) or too large for `u32` indices.
    fn compact(&self) -> Option<Compact> {
        if self.n_features == 0 {
            return None;
        }
        let unset = CompactNode { threshold: f64::NAN, left: 0, feature: 0 };
        let mut nodes: Vec<CompactNode> = Vec::with_capacity(self.nodes.len());
        let mut values: Vec<f64> = Vec::with_capacity(self.nodes.len());
        let mut trees = Vec::with_capacity(self.trees.len());
        let mut queue = std::collections::VecDeque::new();
        for tree in &self.trees {
            let root = u32::try_from(nodes.len()).ok()?;
            nodes.push(unset);
            values.push(f64::NAN);
            // breadth first: each split's children get two slots side by side
            queue.push_back((tree.root, root));
            while let Some((old, new)) = queue.pop_front() {
                let n = self.nodes[old as usize];
                if n.children == [old; 2] {
                    nodes[new as usize] = CompactNode { threshold: f64::INFINITY, left: new, feature: 0 };
                    values[new as usize] = n.threshold;
                } else {
                    let left = u32::try_from(nodes.len()).ok()?;
                    u32::try_from(nodes.len() + 2).ok()?;
                    nodes.extend([unset; 2]);
                    values.extend([f64::NAN; 2]);
                    nodes[new as usize] = CompactNode { threshold: n.threshold, left, feature: n.feature };
                    queue.extend([(n.children[0], left), (n.children[1], left + 1)]);
                }
            }
            trees.push(Tree { root, first_leaf: u32::MAX, depth: tree.depth });
        }
        Some(Compact { nodes, values, trees })
    }

    /// The widened row of `row` ([`Wide`]): for tests, which check it never holds a NaN or near-zero value.
    #[cfg(test)]
    pub(super) fn widened(&self, row: &[f64]) -> Option<Vec<f64>> {
        let wide = self.wide.as_ref()?;
        let mut out = vec![0.0; wide.width()];
        wide.fill(row, &mut out);
        Some(out)
    }

    /// Whether some feature has more than one column in a widened row (its splits' missing rules disagree).
    #[cfg(test)]
    pub(super) fn has_rule_columns(&self) -> bool {
        self.wide.as_ref().is_some_and(|w| w.columns.len() > self.n_features)
    }

    /// Whether single rows walk the compact layout ([`Compact`]).
    #[cfg(test)]
    pub(super) fn has_compact(&self) -> bool {
        self.compact.is_some()
    }

    /// Whether some split of infinite threshold is decided while widening ([`Cut`]).
    #[cfg(test)]
    pub(super) fn has_cuts(&self) -> bool {
        self.wide.as_ref().is_some_and(|w| !w.cuts.is_empty())
    }

    /// The model's feature count.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// The model's tree count (one a round: kiln reads single-output models only).
    pub(crate) fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Per feature, the thresholds of its numerical splits (for tests that probe values at the thresholds).
    #[cfg(test)]
    pub(crate) fn thresholds(&self) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::new(); self.n_features];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.flags & CATEGORICAL != 0 || n.children == [i as u32; 2] {
                continue;
            }
            let (feature, threshold) = match &self.wide {
                None => (n.feature, n.threshold),
                Some(w) => match w.columns.get(n.feature as usize) {
                    Some(c) => (c.feature, n.threshold),
                    None => {
                        let cut = w.cuts[n.feature as usize - w.columns.len()];
                        (cut.feature, cut.threshold)
                    }
                },
            };
            out[feature as usize].push(threshold);
        }
        out
    }

    /// The node after `at` for `row`; `CATEGORICAL_SPLITS`: the forest has categorical splits; `CLEAN`: no value of
    /// the row is NaN or within `kZeroThreshold` of 0, so a numerical split is `v <= threshold` alone.
    #[inline(always)]
    fn step<const CATEGORICAL_SPLITS: bool, const CLEAN: bool>(&self, at: u32, row: &[f64]) -> u32 {
        // SAFETY: `at` is a root or a child of a node of `self.nodes`, and `parse` checked every root and child to be
        // an index into `self.nodes` and every split's feature to be `< n_features`; `widen` points splits only at
        // columns of its `Wide`, beyond `n_features` only when it has extra columns, and then `predict_row` and
        // `predict_into` (the only callers) widen every row before its walk; other rows hold `n_features` values
        // (asserted by both). Unchecked indexing measured 12% faster.
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
    /// features. Without categorical splits, the row (widened when it needs it, [`Forest::widen`]) walks the trees
    /// of the [`Compact`] layout by depth, [`super::TREE_LANES`] side by side, with one comparison a split; with
    /// them, in the model's order with the missing rules.
    pub(crate) fn predict_row(&self, row: &[f64], raw: bool) -> f64 {
        assert_eq!(row.len(), self.n_features, "a row of the model's features");
        let value = |leaf| self.value(leaf);
        let walk_clean = |row: &[f64]| {
            LEAVES.with_borrow_mut(|leaves| match &self.compact {
                Some(c) => {
                    let (step, value) = (|at, r: &[f64]| c.step(at, r), |leaf: u32| c.values[leaf as usize]);
                    predict_one_by_depth(&c.trees, &self.by_depth, row, 0.0, step, value, leaves)
                }
                None => {
                    let step = |at, r: &[f64]| self.step::<false, true>(at, r);
                    predict_one_by_depth(&self.trees, &self.by_depth, row, 0.0, step, value, leaves)
                }
            })
        };
        let sum = match &self.wide {
            Some(wide) if !wide.extra && clean(row) => walk_clean(row),
            Some(wide) => WIDENED.with_borrow_mut(|widened| {
                widened.resize(wide.width(), 0.0);
                wide.fill(row, widened);
                walk_clean(widened)
            }),
            None => predict_one(&self.trees, row, 0.0, |at, r| self.step::<true, false>(at, r), value),
        };
        if raw { sum } else { self.output.apply(sum) }
    }

    /// Predictions of the row-major `data` (rows of the model's features) into `out`, one per row. Without
    /// categorical splits every row walks with one comparison a split: as it is when it needs no widening, else
    /// widened ([`Forest::widen`]).
    pub(crate) fn predict_into(&self, data: &[f64], out: &mut [f64], raw: bool) {
        assert_eq!(data.len(), out.len() * self.n_features, "rows of the model's features");
        let value = |leaf| self.value(leaf);
        let finish = |sum| if raw { sum } else { self.output.apply(sum) };
        match &self.wide {
            Some(wide) => {
                // the rows that walk with `general` are widened ones too (a block's last, partial group)
                let clean_step = |at, r: &[f64]| self.step::<false, true>(at, r);
                let steps = Steps {
                    fits: |row: &[f64]| !wide.extra && clean(row),
                    quick: clean_step,
                    general: clean_step,
                    substitute: |row: &[f64], out: &mut [f64]| {
                        wide.fill(row, out);
                        true
                    },
                    width: wide.width(),
                };
                predict_blocks(&self.trees, data, out, 0.0, steps, value, finish);
            }
            None => {
                let step = |at, r: &[f64]| self.step::<true, false>(at, r);
                predict_blocks(&self.trees, data, out, 0.0, Steps::every(step), value, finish);
            }
        }
    }
}

thread_local! {
    /// a single row widened ([`Forest::widen`]), one buffer a thread
    static WIDENED: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
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
