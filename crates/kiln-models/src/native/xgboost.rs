//! XGBoost's JSON model (the layout of 3.2, and of 1.6 for bundles written before), evaluated natively with
//! XGBoost's CPU predictor rules (`predict_fn.h`, `cpu_predictor.cc`, the same in 1.6.2 and 3.2.0): features rounded
//! to f32, a NaN goes to the node's default child, any other
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

use super::{Steps, Tree, predict_blocks, predict_one, tree_depth};

/// One split, or a leaf (children itself, its value in `threshold`). Children are indices into [`Forest::nodes`];
/// `children[2]` is the default (missing) child.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f32,
    feature: u32,
    children: [u32; 3],
}

impl Node {
    #[inline(always)]
    fn next(&self, v: f32) -> u32 {
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
    trees: Vec<Tree>,
    nodes: Vec<Node>,
    base_margin: f32,
    n_features: usize,
    output: Output,
}

impl Forest {
    /// Reads a gbtree model saved by XGBoost as JSON; `None` when it holds anything that cannot be evaluated natively
    /// exactly as XGBoost does (see the module's doc), or is malformed.
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
        let base_score = base_score(&text(param.get("base_score")?))?;
        let (base_margin, output) = match learner.pointer("/objective/name")?.as_str()? {
            "reg:squarederror" | "reg:pseudohubererror" | "reg:absoluteerror" => (base_score, Output::Identity),
            "binary:logistic" if base_score > 0.0 && base_score < 1.0 => {
                // XGBoost 3.2's `LogisticRegression::ProbToMargin`: bounded to [kRtEps, 1 - kRtEps], then `Logit`
                let p = base_score.clamp(1e-6, 1.0 - 1e-6);
                (-(1.0_f32 / p - 1.0).ln(), Output::Sigmoid)
            }
            _ => return None,
        };
        let model = learner.pointer("/gradient_booster/model")?;
        let trees = model.get("trees")?.as_array()?;
        let info = model.get("tree_info")?.as_array()?;
        if trees.is_empty() || info.len() != trees.len() || info.iter().any(|g| g.as_i64() != Some(0)) {
            return None;
        }
        let mut forest = Forest { trees: Vec::new(), nodes: Vec::new(), base_margin, n_features, output };
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
        // the splits in XGBoost's order, then the leaves (left child -1; `split_conditions` holds the value)
        let base = u32::try_from(self.nodes.len()).ok()?;
        u32::try_from(self.nodes.len() + n).ok()?; // every index of the tree fits
        let n_splits = left.iter().filter(|&&l| l != -1).count();
        let first_leaf = base.checked_add(u32::try_from(n_splits).ok()?)?;
        let (mut splits, mut leaves) = (0_u32, 0_u32);
        let ours: Vec<u32> = left
            .iter()
            .map(|&l| {
                let (counter, from) = if l == -1 { (&mut leaves, first_leaf) } else { (&mut splits, base) };
                *counter += 1;
                from + *counter - 1
            })
            .collect();
        let id = |c: i64| usize::try_from(c).ok().and_then(|c| ours.get(c).copied());
        for i in (0..n).filter(|&i| left[i] != -1) {
            let feature = u32::try_from(features[i]).ok().filter(|&f| (f as usize) < self.n_features)?;
            let (l, r) = (id(left[i])?, id(right[i])?);
            let default = if default_left[i] != 0 { l } else { r };
            self.nodes.push(Node { threshold: conditions[i], feature, children: [l, r, default] });
        }
        for i in (0..n).filter(|&i| left[i] == -1) {
            self.nodes.push(Node { threshold: conditions[i], feature: 0, children: [ours[i]; 3] });
        }
        let children = |i: u32| {
            let [l, r, _] = self.nodes[i as usize].children;
            [l, r]
        };
        let root = ours[0];
        let depth = tree_depth(root, base, n, children)?;
        self.trees.push(Tree { root, first_leaf, depth });
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
        for (i, n) in self.nodes.iter().enumerate() {
            if n.children[0] == i as u32 {
                continue; // a leaf
            }
            out[n.feature as usize].push(f64::from(n.threshold));
        }
        out
    }

    #[inline(always)]
    fn step(&self, at: u32, row: &[f64]) -> u32 {
        // SAFETY: `at` is a root or a child of a node of `self.nodes`, and `from_json` checked every root and child
        // to be an index into `self.nodes` and every split's feature to be `< n_features`; `row` holds `n_features`
        // values (asserted by `predict_row` and `predict_into`, the only callers).
        #[allow(unsafe_code)]
        let (n, v) = unsafe {
            let n = self.nodes.get_unchecked(at as usize);
            (n, *row.get_unchecked(n.feature as usize))
        };
        n.next(v as f32)
    }

    fn value(&self, leaf: u32) -> f32 {
        self.nodes[leaf as usize].threshold
    }

    /// One row's prediction (`raw`: the margin before the objective's transform). `row` holds the model's features,
    /// each finite in f32 or NaN.
    pub(crate) fn predict_row(&self, row: &[f64], raw: bool) -> f64 {
        assert_eq!(row.len(), self.n_features, "a row of the model's features");
        let sum = predict_one(&self.trees, row, self.base_margin, |at, r| self.step(at, r), |leaf| self.value(leaf));
        f64::from(if raw { sum } else { self.output.apply(sum) })
    }

    /// Predictions of the row-major `data` (rows of the model's features, each value finite in f32 or NaN) into
    /// `out`, one per row.
    pub(crate) fn predict_into(&self, data: &[f64], out: &mut [f64], raw: bool) {
        assert_eq!(data.len(), out.len() * self.n_features, "rows of the model's features");
        let finish = |sum: f32| f64::from(if raw { sum } else { self.output.apply(sum) });
        let step = |at, r: &[f64]| self.step(at, r);
        predict_blocks(&self.trees, data, out, self.base_margin, Steps::every(step), |l| self.value(l), finish);
    }
}

/// The intercept of a single-output model: XGBoost 3.x writes a vector (`"[5E-1]"`, one value per output), 1.6 a
/// number (`"5E-1"`); `None` for anything else (several outputs, not a number).
fn base_score(text: &str) -> Option<f32> {
    let text = text.trim();
    let one = match text.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None => text,
    };
    if one.contains(',') {
        return None;
    }
    one.trim().parse::<f32>().ok().filter(|v| v.is_finite())
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
