//! XGBoost's JSON model (1.6 layout), evaluated natively with XGBoost 1.6.2's CPU predictor rules
//! (`predict_fn.h`, `cpu_predictor.cc`): features rounded to f32, a NaN goes to the node's default child, any other
//! value left when `value < split_condition` (f32); each row starts from the base margin (`base_score` through the
//! objective's `ProbToMargin`) and adds its trees' f32 leaf values in the model's order, in f32; then the
//! objective's `PredTransform` (XGBoost's f32 `Sigmoid` for `binary:logistic`). Every step is the same f32
//! operation XGBoost runs, so the output is XGBoost's bit for bit.
//!
//! The JSON numbers are read as f64 and rounded to f32, where XGBoost parses the text straight to f32. The two
//! agree unless the f64 lands exactly halfway between two f32s; [`to_f32`] refuses such a value, so such a model
//! (none has been seen) stays on the library.
//!
//! Not here: categorical splits, multi-output models, objectives kiln does not train; [`Forest::from_json`] gives
//! `None` for them.

use serde_json::Value;

use super::for_blocks;

/// One split. Children are node indices, or `!leaf` (negative) for a leaf's index into [`Forest::leaves`];
/// `children[2]` is the default (missing) child.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f32,
    feature: u32,
    children: [i32; 3],
}

impl Node {
    #[inline(always)]
    fn next(&self, v: f32) -> i32 {
        if v.is_nan() {
            return self.children[2];
        }
        let left = v < self.threshold;
        self.children[usize::from(!left)]
    }
}

/// What XGBoost's objective does to the margin (`PredTransform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Identity,
    /// `binary:logistic`: XGBoost's `common::Sigmoid`
    Sigmoid,
}

impl Output {
    fn apply(self, x: f32) -> f32 {
        match self {
            Output::Identity => x,
            Output::Sigmoid => {
                // XGBoost: x = min(-x, 88.7f); 1 / (expf(x) + 1 + 1e-16f), `std::min` keeping a NaN
                let x = if 88.7_f32 < -x { 88.7 } else { -x };
                1.0 / (x.exp() + 1.0 + 1e-16_f32)
            }
        }
    }
}

/// An XGBoost model ready for native evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Forest {
    /// per tree: the root node, or the leaf code of a one-leaf tree
    roots: Vec<i32>,
    nodes: Vec<Node>,
    leaves: Vec<f32>,
    base_margin: f32,
    n_features: usize,
    output: Output,
}

impl Forest {
    /// Reads a gbtree model saved by XGBoost as JSON; `None` when it holds anything that cannot be evaluated natively
    /// exactly as XGBoost 1.6.2 does (see the module's doc), or is malformed.
    pub(crate) fn from_json(json: &Value) -> Option<Forest> {
        let learner = json.get("learner")?;
        if learner.pointer("/gradient_booster/name")?.as_str()? != "gbtree" {
            return None;
        }
        let param = learner.get("learner_model_param")?;
        let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        if !matches!(text(param.get("num_class")?).as_str(), "0" | "1") {
            return None;
        }
        let n_features: usize = text(param.get("num_feature")?).parse().ok()?;
        let base_score: f32 = text(param.get("base_score")?).parse().ok()?;
        let (base_margin, output) = match learner.pointer("/objective/name")?.as_str()? {
            "reg:squarederror" | "reg:pseudohubererror" => (base_score, Output::Identity),
            "binary:logistic" if base_score > 0.0 && base_score < 1.0 => {
                (-(1.0_f32 / base_score - 1.0).ln(), Output::Sigmoid)
            }
            _ => return None,
        };
        let model = learner.pointer("/gradient_booster/model")?;
        let trees = model.get("trees")?.as_array()?;
        let info = model.get("tree_info")?.as_array()?;
        if trees.is_empty() || info.len() != trees.len() || info.iter().any(|g| g.as_i64() != Some(0)) {
            return None;
        }
        let mut forest =
            Forest { roots: Vec::new(), nodes: Vec::new(), leaves: Vec::new(), base_margin, n_features, output };
        for tree in trees {
            forest.push_tree(tree)?;
        }
        Some(forest)
    }

    fn push_tree(&mut self, tree: &Value) -> Option<()> {
        let ints = |key: &str| -> Option<Vec<i64>> { tree.get(key)?.as_array()?.iter().map(Value::as_i64).collect() };
        let left = ints("left_children")?;
        let right = ints("right_children")?;
        let features = ints("split_indices")?;
        let default_left = ints("default_left")?;
        let conditions: Vec<f32> =
            tree.get("split_conditions")?.as_array()?.iter().map(|v| to_f32(v.as_f64()?)).collect::<Option<_>>()?;
        let n = left.len();
        if n == 0 || [right.len(), features.len(), default_left.len(), conditions.len()].iter().any(|&m| m != n) {
            return None;
        }
        if let Some(types) = tree.get("split_type")
            && types.as_array()?.iter().any(|t| t.as_i64() != Some(0))
        {
            return None; // categorical splits
        }
        // XGBoost's node ids to ours: a leaf (left child -1) keeps its value, `split_conditions` holding it
        let node_base = self.nodes.len();
        let leaf_base = self.leaves.len();
        let mut code = Vec::with_capacity(n);
        let (mut n_nodes, mut n_leaves) = (0, 0);
        for i in 0..n {
            if left[i] == -1 {
                code.push(!i32::try_from(leaf_base + n_leaves).ok()?);
                n_leaves += 1;
                self.leaves.push(conditions[i]);
            } else {
                code.push(i32::try_from(node_base + n_nodes).ok()?);
                n_nodes += 1;
            }
        }
        let child = |c: i64| usize::try_from(c).ok().and_then(|c| code.get(c).copied());
        for i in 0..n {
            if left[i] == -1 {
                continue;
            }
            let feature = u32::try_from(features[i]).ok().filter(|&f| (f as usize) < self.n_features)?;
            let (l, r) = (child(left[i])?, child(right[i])?);
            let default = if default_left[i] != 0 { l } else { r };
            self.nodes.push(Node { threshold: conditions[i], feature, children: [l, r, default] });
        }
        if !is_tree(&self.nodes, code[0], node_base, n_nodes) {
            return None;
        }
        self.roots.push(code[0]);
        Some(())
    }

    /// The model's feature count.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Per feature, the thresholds of its splits (for tests that probe values at the thresholds).
    #[cfg(test)]
    pub(crate) fn thresholds(&self) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::new(); self.n_features];
        for n in &self.nodes {
            out[n.feature as usize].push(f64::from(n.threshold));
        }
        out
    }

    #[inline(always)]
    fn leaf(&self, root: i32, row: &[f64]) -> f32 {
        let mut node = root;
        while node >= 0 {
            let n = &self.nodes[node as usize];
            node = n.next(row[n.feature as usize] as f32);
        }
        self.leaves[!node as usize]
    }

    /// One row's prediction (`raw`: the margin before the objective's transform). `row` holds the model's features,
    /// each finite in f32 or NaN.
    pub(crate) fn predict_row(&self, row: &[f64], raw: bool) -> f64 {
        debug_assert_eq!(row.len(), self.n_features);
        let mut sum = self.base_margin;
        for &root in &self.roots {
            sum += self.leaf(root, row);
        }
        f64::from(if raw { sum } else { self.output.apply(sum) })
    }

    /// Predictions of the row-major `data` (rows of the model's features, each value finite in f32 or NaN) into
    /// `out`, one per row.
    pub(crate) fn predict_into(&self, data: &[f64], out: &mut [f64], raw: bool) {
        let n = self.n_features;
        let mut sums = [0.0_f32; super::BLOCK];
        for_blocks(data, n, out, |rows, block_out| {
            let sums = &mut sums[..block_out.len()];
            sums.fill(self.base_margin);
            for &root in &self.roots {
                for (row, sum) in rows.chunks_exact(n).zip(sums.iter_mut()) {
                    *sum += self.leaf(root, row);
                }
            }
            for (o, &s) in block_out.iter_mut().zip(sums.iter()) {
                *o = f64::from(if raw { s } else { self.output.apply(s) });
            }
        });
    }
}

/// Whether the `n` nodes from `base` form one tree from `root` (a node or a leaf code): every node reached exactly
/// once, so no walk loops.
fn is_tree(nodes: &[Node], root: i32, base: usize, n: usize) -> bool {
    let mut seen = vec![false; n];
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node < 0 {
            continue;
        }
        let Some(i) = (node as usize).checked_sub(base).filter(|&i| i < n) else { return false };
        if std::mem::replace(&mut seen[i], true) {
            return false;
        }
        stack.extend(&nodes[node as usize].children[..2]);
    }
    seen.iter().all(|&s| s)
}

/// The f32 that XGBoost reads from the JSON number whose nearest f64 is `v`; `None` when `v` lies exactly halfway
/// between two f32s (the decimal text could then round either way).
fn to_f32(v: f64) -> Option<f32> {
    let f = v as f32;
    if !f.is_finite() || f64::from(f) == v {
        return f.is_finite().then_some(f);
    }
    let other = if f64::from(f) < v { f.next_up() } else { f.next_down() };
    let midpoint = (f64::from(f) + f64::from(other)) / 2.0;
    (midpoint != v).then_some(f)
}
