//! Shuffled splits for tabular data that is not time-ordered: the stratified holdout, k-fold and stratified k-fold.
//!
//! Key decisions:
//! - Class counts per part follow scikit-learn exactly: `StratifiedShuffleSplit` / `train_test_split(stratify=..)`
//!   give each class `_approximate_mode(class_counts, n_train)` training rows (floor of the exact share, the rows
//!   left over going to the largest remainders) and the rest to the test part; `StratifiedKFold` deals the rows of
//!   the label-sorted table round-robin to the folds. Only ties between equal remainders, which scikit-learn breaks
//!   at random, may differ by one row.
//! - Which rows of a class go where is drawn with kiln's own generator (SplitMix64 and Fisher-Yates, see
//!   [`SplitMix64`]), fixed here so that a seed gives the same split in every kiln version; it does not reproduce
//!   numpy's stream, so the row indices differ from scikit-learn's while the counts agree.
//! - Every part is returned as row indices in ascending order (row order kept inside a part); only the membership
//!   is random.
//! - Part sizes use [`Size::rows_of`] like the time holdout (a fraction rounds up, as scikit-learn's test size).
//!   With a validation part the split is the usual two steps: test out of all rows, then validation out of the rest,
//!   each stratified.

use crate::{EvalError, Fold, Size};

/// Row indices of a shuffled holdout: disjoint, together every row once, each in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHoldout {
    pub train: Vec<usize>,
    /// empty when no validation part was asked for
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits rows into train, optional validation and test at random, keeping each class's share in every part (as
/// scikit-learn's `train_test_split(stratify=labels)`, applied twice when there is a validation part).
/// `labels` may hold any finite values; each distinct value is a class. Deterministic for a `seed`.
///
/// # Errors
/// [`EvalError::Empty`] for no labels, [`EvalError::NonFinite`] for a NaN or infinite label,
/// [`EvalError::InvalidSpec`] for a size outside its domain, [`EvalError::Stratify`] when a part would get fewer
/// rows than there are classes or a class has a single row (scikit-learn's conditions).
pub fn stratified_holdout(
    labels: &[f64],
    test_size: Size,
    validation_size: Option<Size>,
    seed: u64,
) -> Result<IndexHoldout, EvalError> {
    let classes = Classes::sorted(labels)?;
    let n = labels.len();
    let n_test = test_size.rows_of(n, "test_size")?;
    let n_val = match validation_size {
        Some(size) => size.rows_of(n, "validation_size")?,
        None => 0,
    };
    let n_train = n
        .checked_sub(n_test)
        .and_then(|r| r.checked_sub(n_val))
        .filter(|&r| r > 0)
        .ok_or_else(|| stratify(format!("{n} rows leave none for train (test {n_test}, validation {n_val})")))?;

    let mut rng = SplitMix64::new(seed);
    let fit_part = if validation_size.is_some() { "train and validation" } else { "train" };
    let fit_counts =
        stratified_counts(&classes.counts, &classes.values, (fit_part, n - n_test), ("test", n_test), &mut rng)?;
    let train_counts = match validation_size {
        Some(_) => {
            stratified_counts(&fit_counts, &classes.values, ("train", n_train), ("validation", n_val), &mut rng)?
        }
        None => fit_counts.clone(),
    };

    let mut out = IndexHoldout { train: Vec::with_capacity(n_train), validation: Vec::new(), test: Vec::new() };
    for ((rows, &n_tr), &n_fit) in classes.rows.iter().zip(&train_counts).zip(&fit_counts) {
        let mut rows = rows.clone();
        rng.shuffle(&mut rows);
        out.train.extend_from_slice(&rows[..n_tr]);
        out.validation.extend_from_slice(&rows[n_tr..n_fit]);
        out.test.extend_from_slice(&rows[n_fit..]);
    }
    out.train.sort_unstable();
    out.validation.sort_unstable();
    out.test.sort_unstable();
    Ok(out)
}

/// How many rows of each class the `keep_part` gets when `counts` is split into `keep` and `rest` rows, the
/// `StratifiedShuffleSplit` way: `_approximate_mode` draws the kept part, the `rest_part` gets what is left.
/// Refuses what scikit-learn refuses: a class of one row, or a part with fewer rows than classes.
fn stratified_counts(
    counts: &[usize],
    values: &[f64],
    (keep_part, keep): (&str, usize),
    (rest_part, rest): (&str, usize),
    rng: &mut SplitMix64,
) -> Result<Vec<usize>, EvalError> {
    if let Some((class, &count)) = counts.iter().enumerate().min_by_key(|(_, c)| **c)
        && count < 2
    {
        return Err(stratify(format!(
            "label {} has only {count} row to share between {keep_part} and {rest_part}, at least 2 are needed",
            values[class]
        )));
    }
    for (part, size) in [(keep_part, keep), (rest_part, rest)] {
        if size < counts.len() {
            return Err(stratify(format!("{part} would get {size} rows, fewer than the {} classes", counts.len())));
        }
    }
    Ok(approximate_mode(counts, keep, rng))
}

/// scikit-learn's `_approximate_mode`: each class gets the floor of its share of `draws`; the rows still missing go
/// to the classes with the largest remainders, ties between equal remainders broken at random.
fn approximate_mode(counts: &[usize], draws: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    // same expression as scikit-learn: class_counts / class_counts.sum() * n_draws
    let continuous: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64 * draws as f64).collect();
    let mut out: Vec<usize> = continuous.iter().map(|c| c.floor() as usize).collect();
    let mut need = draws.saturating_sub(out.iter().sum());
    let remainder: Vec<f64> = continuous.iter().map(|c| c - c.floor()).collect();
    let mut values = remainder.clone();
    values.sort_by(|a, b| b.total_cmp(a));
    values.dedup();
    for value in values {
        if need == 0 {
            break;
        }
        let mut tied: Vec<usize> = (0..counts.len()).filter(|&i| remainder[i] == value).collect();
        rng.shuffle(&mut tied);
        let add_now = tied.len().min(need);
        for &i in &tied[..add_now] {
            out[i] += 1;
        }
        need -= add_now;
    }
    out
}

/// K-fold cross-validation as scikit-learn's `KFold`: the rows (shuffled first when `shuffle_seed` is given) are cut
/// into `k` consecutive test folds, the first `n_rows % k` of them one row larger. Without shuffling the folds equal
/// scikit-learn's.
///
/// # Errors
/// [`EvalError::InvalidSpec`] (`folds`) for `k < 2`, [`EvalError::Folds`] for more folds than rows.
pub fn kfold(n_rows: usize, k: usize, shuffle_seed: Option<u64>) -> Result<Vec<Fold>, EvalError> {
    check_k(k)?;
    if k > n_rows {
        return Err(EvalError::Folds { folds: k, reason: format!("there are only {n_rows} rows") });
    }
    let mut order: Vec<usize> = (0..n_rows).collect();
    if let Some(seed) = shuffle_seed {
        SplitMix64::new(seed).shuffle(&mut order);
    }
    let mut assignment = vec![0usize; n_rows];
    let mut start = 0;
    for fold in 0..k {
        let size = n_rows / k + usize::from(fold < n_rows % k);
        for &row in &order[start..start + size] {
            assignment[row] = fold;
        }
        start += size;
    }
    Ok(folds_of(&assignment, k))
}

/// Stratified k-fold as scikit-learn's `StratifiedKFold`: the label-sorted rows are dealt round-robin to the folds,
/// which fixes each fold's class counts; each class's rows then take their folds in row order (without
/// `shuffle_seed`, where the folds equal scikit-learn's) or in a random order. A class with fewer rows than folds is
/// missing from some test folds, as in scikit-learn (which warns).
///
/// # Errors
/// [`EvalError::InvalidSpec`] (`folds`) for `k < 2`, [`EvalError::Empty`] / [`EvalError::NonFinite`] for bad
/// labels, [`EvalError::Folds`] for more folds than rows or than the rows of every class.
pub fn stratified_kfold(labels: &[f64], k: usize, shuffle_seed: Option<u64>) -> Result<Vec<Fold>, EvalError> {
    check_k(k)?;
    let classes = Classes::by_first_appearance(labels)?;
    let n = labels.len();
    if k > n {
        return Err(EvalError::Folds { folds: k, reason: format!("there are only {n} rows") });
    }
    let largest = classes.counts.iter().copied().max().unwrap_or(0);
    if largest < k {
        return Err(EvalError::Folds {
            folds: k,
            reason: format!("no class has that many rows (the largest has {largest})"),
        });
    }
    let mut rng = shuffle_seed.map(SplitMix64::new);
    let mut assignment = vec![0usize; n];
    // position j of the label-sorted table goes to fold j % k; class c holds positions start..start + count
    let mut start = 0;
    for (rows, &count) in classes.rows.iter().zip(&classes.counts) {
        let mut per_fold = vec![0usize; k];
        for j in start..start + count {
            per_fold[j % k] += 1;
        }
        start += count;
        let mut folds: Vec<usize> = per_fold.iter().enumerate().flat_map(|(f, &c)| std::iter::repeat_n(f, c)).collect();
        if let Some(rng) = rng.as_mut() {
            rng.shuffle(&mut folds);
        }
        for (&row, &fold) in rows.iter().zip(&folds) {
            assignment[row] = fold;
        }
    }
    Ok(folds_of(&assignment, k))
}

fn check_k(k: usize) -> Result<(), EvalError> {
    if k < 2 {
        return Err(EvalError::InvalidSpec {
            key: "folds".to_string(),
            reason: format!("must be at least 2, got {k}"),
        });
    }
    Ok(())
}

fn folds_of(assignment: &[usize], k: usize) -> Vec<Fold> {
    (0..k)
        .map(|fold| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..assignment.len()).partition(|&i| assignment[i] == fold);
            Fold { train, test }
        })
        .collect()
}

fn stratify(reason: String) -> EvalError {
    EvalError::Stratify { reason }
}

/// The classes of a label vector: their values, row indices (ascending) and counts.
struct Classes {
    values: Vec<f64>,
    rows: Vec<Vec<usize>>,
    counts: Vec<usize>,
}

impl Classes {
    /// Classes in ascending label order (`np.unique`), for the holdout.
    fn sorted(labels: &[f64]) -> Result<Classes, EvalError> {
        let mut distinct = Classes::check(labels)?.to_vec();
        distinct.sort_by(f64::total_cmp);
        // -0.0 and 0.0 sort next to each other and are one class
        distinct.dedup_by(|a, b| a == b);
        Ok(Classes::group(labels, &distinct))
    }

    /// Classes in order of first appearance, as scikit-learn's `StratifiedKFold` encodes them.
    fn by_first_appearance(labels: &[f64]) -> Result<Classes, EvalError> {
        let mut distinct: Vec<f64> = Vec::new();
        for &v in Classes::check(labels)? {
            if !distinct.contains(&v) {
                distinct.push(v);
            }
        }
        Ok(Classes::group(labels, &distinct))
    }

    fn check(labels: &[f64]) -> Result<&[f64], EvalError> {
        if labels.is_empty() {
            return Err(EvalError::Empty { input: "labels" });
        }
        if let Some(index) = labels.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite { input: "labels", index, value: labels[index] });
        }
        Ok(labels)
    }

    fn group(labels: &[f64], distinct: &[f64]) -> Classes {
        let mut rows = vec![Vec::new(); distinct.len()];
        for (i, v) in labels.iter().enumerate() {
            // the label is one of `distinct` by construction; a linear scan is fine for the few classes of a label
            if let Some(c) = distinct.iter().position(|d| d == v) {
                rows[c].push(i);
            }
        }
        let counts = rows.iter().map(Vec::len).collect();
        Classes { values: distinct.to_vec(), rows, counts }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014, the seeding generator of xoshiro), with Lemire's unbiased bounded
/// integers and a Fisher-Yates shuffle. Written out here so that a seed's splits never change with a dependency.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound > 0`), by Lemire's multiply-and-reject method.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(bound);
        if (m as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(bound);
            }
        }
        (m >> 64) as u64
    }

    /// Fisher-Yates: every order equally likely.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
