//! The stratified holdout, k-fold, stratified k-fold and time-series folds against scikit-learn 1.9.1
//! (`train_test_split(stratify=..)`, `KFold`, `StratifiedKFold`, `TimeSeriesSplit`) on the Telco churn labels and
//! the row counts of the shipped ECB, ETTh1 and Telco files.

use kiln_eval::{
    Fold, IndexHoldout, Size, Splitter, WalkForward, kfold, stratified_holdout, stratified_kfold, time_series_folds,
    walk_forward,
};

use crate::reference::{PRELUDE, Telco, line, python};

/// Per-class row counts of a part, classes in ascending label order.
fn class_counts(labels: &[f64], rows: &[usize]) -> [f64; 2] {
    let ones = rows.iter().filter(|&&i| labels[i] == 1.0).count();
    [(rows.len() - ones) as f64, ones as f64]
}

fn assert_partition(n: usize, parts: &[&[usize]]) {
    let mut seen = vec![false; n];
    for part in parts {
        assert!(part.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
        for &i in *part {
            assert!(!seen[i], "row {i} in two parts");
            seen[i] = true;
        }
    }
    assert!(seen.iter().all(|&s| s), "every row in a part");
}

#[test]
fn stratified_holdout_counts_match_sklearn() {
    let telco = Telco::load();
    // the whole table and an odd-sized slice (remainders that round differently)
    let cases: &[(usize, Size, Option<Size>)] = &[
        (7043, Size::Fraction(0.2), None),
        (7043, Size::Fraction(0.25), Some(Size::Fraction(0.15))),
        (7043, Size::Rows(1000), Some(Size::Rows(777))),
        (1001, Size::Fraction(0.3), Some(Size::Fraction(0.1))),
        (97, Size::Fraction(0.2), Some(Size::Rows(9))),
    ];
    let sizes: Vec<(usize, usize)> = cases
        .iter()
        .map(|&(n, test, validation)| {
            (test.rows_of(n, "test_size").unwrap(), validation.map_or(0, |s| s.rows_of(n, "validation_size").unwrap()))
        })
        .collect();
    // scikit-learn's counts for every case (two input lines each), for several random states (they can differ only
    // where remainders tie)
    let input: String = cases
        .iter()
        .zip(&sizes)
        .map(|(&(n, _, _), (n_test, n_val))| format!("{}\n{n_test} {n_val}\n", line(telco.churn[..n].iter().copied())))
        .collect();
    let sk = python(
        &format!(
            "{PRELUDE}{}",
            r#"
from sklearn.model_selection import train_test_split
for c in range(len(LINES) // 2):
    y = arr(2 * c); n_test, n_val = (int(v) for v in arr(2 * c + 1))
    idx = np.arange(len(y))
    counts = lambda rows: [np.sum(y[rows] == 0.0), np.sum(y[rows] == 1.0)]
    for seed in range(5):
        fit, test = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed)
        train, val = train_test_split(fit, test_size=n_val, stratify=y[fit], random_state=seed) if n_val else (fit, fit[:0])
        out(f"{c}_train{seed}", counts(train)); out(f"{c}_validation{seed}", counts(val)); out(f"{c}_test{seed}", counts(test))
"#
        ),
        &input,
    );
    let mut exact = 0;
    let mut compared = 0;
    for (c, (&(n, test_size, validation_size), &(n_test, n_val))) in cases.iter().zip(&sizes).enumerate() {
        let labels = &telco.churn[..n];
        for seed in 0..5u64 {
            let h = stratified_holdout(labels, test_size, validation_size, seed).unwrap();
            assert_partition(n, &[&h.train, &h.validation, &h.test]);
            assert_eq!((h.test.len(), h.validation.len()), (n_test, n_val), "{n} rows {test_size} {validation_size:?}");
            for (part, rows) in [("train", &h.train), ("validation", &h.validation), ("test", &h.test)] {
                let ours = class_counts(labels, rows);
                for sk_seed in 0..5 {
                    let theirs = &sk[&format!("{c}_{part}{sk_seed}")];
                    compared += 1;
                    exact += usize::from(ours[..] == theirs[..]);
                    for k in 0..2 {
                        assert!(
                            (ours[k] - theirs[k]).abs() <= 1.0,
                            "{n} rows, {part}, class {k}: kiln {ours:?} (seed {seed}), scikit-learn {theirs:?}"
                        );
                    }
                }
            }
        }
    }
    // ties between remainders are rare here: nearly every comparison is exact
    eprintln!("stratified holdout: {exact} of {compared} per-part class counts equal scikit-learn's exactly");
    assert!(exact * 10 >= compared * 9, "{exact} of {compared} part counts equal scikit-learn's");
}

#[test]
fn stratified_holdout_is_deterministic_per_seed() {
    let telco = Telco::load();
    let split = |seed| stratified_holdout(&telco.churn, Size::Fraction(0.2), Some(Size::Fraction(0.1)), seed).unwrap();
    let a: IndexHoldout = split(42);
    assert_eq!(a, split(42));
    let b = split(43);
    assert_ne!(a.test, b.test, "another seed draws other rows");
    assert_eq!(class_counts(&telco.churn, &a.test), class_counts(&telco.churn, &b.test), "with the same counts");
}

fn check_folds(n: usize, folds: &[Fold]) {
    for f in folds {
        assert_partition(n, &[&f.train, &f.test]);
    }
    let mut tests: Vec<usize> = folds.iter().flat_map(|f| f.test.iter().copied()).collect();
    tests.sort_unstable();
    assert_eq!(tests, (0..n).collect::<Vec<_>>(), "each row tested exactly once");
}

#[test]
fn kfold_and_stratified_kfold_match_sklearn() {
    let telco = Telco::load();
    for (n, k) in [(7043, 5), (103, 4), (10, 10)] {
        let labels = &telco.churn[..n];
        let input = format!("{}\n{k}\n", line(labels.iter().copied()));
        // one run for the three references: KFold, StratifiedKFold, StratifiedKFold shuffled (when possible)
        let sk = python(
            &format!(
                "{PRELUDE}{}",
                r#"
from sklearn.model_selection import KFold, StratifiedKFold
y = arr(0); k = int(arr(1)[0])
for i, (_, test) in enumerate(KFold(n_splits=k).split(y)): out(f"plain{i}", test)
if k <= max(np.sum(y == 0.0), np.sum(y == 1.0)):
    for i, (_, test) in enumerate(StratifiedKFold(n_splits=k).split(y, y)): out(f"strat{i}", test)
    for i, (_, test) in enumerate(StratifiedKFold(n_splits=k, shuffle=True, random_state=0).split(y, y)):
        out(f"shuffled{i}", test)
"#
            ),
            &input,
        );
        let sk_folds = |name: &str| -> Vec<Vec<usize>> {
            (0..k).map(|i| sk[&format!("{name}{i}")].iter().map(|&v| v as usize).collect()).collect()
        };
        let plain = sk_folds("plain");
        let folds = kfold(n, k, None).unwrap();
        check_folds(n, &folds);
        assert_eq!(folds.iter().map(|f| f.test.clone()).collect::<Vec<_>>(), plain, "KFold({k}) on {n} rows");
        let shuffled = kfold(n, k, Some(3)).unwrap();
        check_folds(n, &shuffled);
        let sizes = |f: &[Fold]| f.iter().map(|f| f.test.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&shuffled), sizes(&folds));
        assert_eq!(shuffled, kfold(n, k, Some(3)).unwrap(), "deterministic");

        if k > labels.iter().filter(|&&v| v == 1.0).count().max(labels.iter().filter(|&&v| v == 0.0).count()) {
            continue;
        }
        let strat = sk_folds("strat");
        let folds = stratified_kfold(labels, k, None).unwrap();
        check_folds(n, &folds);
        assert_eq!(folds.iter().map(|f| f.test.clone()).collect::<Vec<_>>(), strat, "StratifiedKFold({k}), {n} rows");
        // shuffled: other rows, the same class counts per fold as scikit-learn's shuffled folds
        let sk_shuffled = sk_folds("shuffled");
        let shuffled = stratified_kfold(labels, k, Some(0)).unwrap();
        check_folds(n, &shuffled);
        for (ours, theirs) in shuffled.iter().zip(&sk_shuffled) {
            assert_eq!(class_counts(labels, &ours.test), class_counts(labels, theirs));
        }
        assert_eq!(shuffled, stratified_kfold(labels, k, Some(0)).unwrap(), "deterministic");
        if n > 100 {
            assert_ne!(shuffled, folds, "shuffling moves rows");
        }
    }
}

#[test]
fn time_series_folds_match_sklearn() {
    let cases = [(7043, 5, 0), (7043, 5, 24), (100, 3, 2), (10, 9, 0), (17, 4, 3)];
    let input: String = cases.iter().map(|(n, k, gap)| format!("{n} {k} {gap}\n")).collect();
    let sk = python(
        &format!(
            "{PRELUDE}{}",
            r#"
from sklearn.model_selection import TimeSeriesSplit
for c, l in enumerate(l for l in LINES if l):
    n, k, gap = (int(v) for v in l.split())
    for i, (train, test) in enumerate(TimeSeriesSplit(n_splits=k, gap=gap).split(np.zeros(n))):
        out(f"train{c}_{i}", [train.min(), train.max() + 1]); out(f"test{c}_{i}", [test.min(), test.max() + 1])
"#
        ),
        &input,
    );
    for (c, &(n, k, gap)) in cases.iter().enumerate() {
        let folds = time_series_folds(n, k, gap).unwrap();
        assert_eq!(folds.len(), k);
        for (i, f) in folds.iter().enumerate() {
            let range = |r: &std::ops::Range<usize>| vec![r.start as f64, r.end as f64];
            assert_eq!(range(&f.train), sk[&format!("train{c}_{i}")], "{n} rows, {k} folds, gap {gap}: fold {i} train");
            assert_eq!(range(&f.test), sk[&format!("test{c}_{i}")], "{n} rows, {k} folds, gap {gap}: fold {i} test");
            assert_eq!((f.gap.start, f.gap.end), (f.train.end, f.test.start));
        }
    }
    // scikit-learn refuses these too
    for (n, k, gap) in [(5, 5, 0), (10, 4, 4)] {
        let e = time_series_folds(n, k, gap).unwrap_err();
        assert_eq!(e.code(), kiln_domain::Code::NotEnoughRows, "{e}");
    }
}

/// Every setting of `TimeSeriesSplit`: the row counts of ECB (7126 days), ETTh1 (17420 hours) and Telco (7043
/// rows), and small tables at scikit-learn's limits; `test_size` and `max_train_size` (a sliding window) as given.
#[test]
fn walk_forward_folds_match_sklearn_time_series_split_with_every_setting() {
    // (rows, folds, test_size, gap, max_train_size); 0 stands for None
    let cases: [(usize, usize, usize, usize, usize); 10] = [
        (7126, 10, 0, 0, 0),
        (7126, 10, 250, 0, 0),
        (7126, 5, 100, 4, 1000),
        (17420, 8, 24 * 30, 23, 0),
        (17420, 8, 24 * 30, 23, 24 * 365),
        (17420, 3, 0, 167, 5000),
        (7043, 5, 0, 0, 2000),
        (7043, 7, 1000, 2, 0),
        (20, 4, 3, 2, 5),
        (12, 2, 5, 1, 0),
    ];
    let input: String = cases.iter().map(|(n, k, t, g, m)| format!("{n} {k} {t} {g} {m}\n")).collect();
    let sk = python(
        &format!(
            "{PRELUDE}{}",
            r#"
from sklearn.model_selection import TimeSeriesSplit
for c, l in enumerate(l for l in LINES if l):
    n, k, t, g, m = (int(v) for v in l.split())
    split = TimeSeriesSplit(n_splits=k, test_size=t or None, gap=g, max_train_size=m or None)
    for i, (train, test) in enumerate(split.split(np.zeros(n))):
        assert (np.diff(train) == 1).all() and (np.diff(test) == 1).all()
        out(f"train{c}_{i}", [train.min(), train.max() + 1]); out(f"test{c}_{i}", [test.min(), test.max() + 1])
"#
        ),
        &input,
    );
    let none = |v: usize| (v > 0).then_some(v);
    for (c, &(n, k, t, gap, m)) in cases.iter().enumerate() {
        let spec = WalkForward { folds: k, test_size: none(t), gap, max_train_size: none(m), step: None };
        let folds = walk_forward(n, &spec).unwrap();
        assert_eq!(folds.len(), k);
        for (i, f) in folds.iter().enumerate() {
            let range = |r: &std::ops::Range<usize>| vec![r.start as f64, r.end as f64];
            assert_eq!(range(&f.train), sk[&format!("train{c}_{i}")], "{spec:?} on {n} rows: fold {i} train");
            assert_eq!(range(&f.test), sk[&format!("test{c}_{i}")], "{spec:?} on {n} rows: fold {i} test");
        }
        // the splitter the callers take cuts the same folds
        let as_splitter = Splitter::walk_forward(spec).split(&vec![0.0; n]).unwrap();
        assert_eq!(as_splitter.len(), k);
        for (fold, f) in as_splitter.iter().zip(&folds) {
            assert_eq!(fold.train, f.train.clone().collect::<Vec<_>>());
            assert_eq!(fold.test, f.test.clone().collect::<Vec<_>>());
        }
    }
    // what scikit-learn refuses, refused with the key at fault
    let refused = [
        (10, WalkForward { folds: 3, test_size: Some(4), gap: 0, max_train_size: None, step: None }),
        (10, WalkForward { folds: 3, test_size: Some(3), gap: 1, max_train_size: None, step: None }),
    ];
    for (n, spec) in refused {
        let e = walk_forward(n, &spec).unwrap_err();
        assert_eq!(e.code(), kiln_domain::Code::NotEnoughRows, "{e}");
    }
    let e = walk_forward(10, &WalkForward { test_size: Some(0), ..WalkForward::new(2) }).unwrap_err();
    assert!(e.to_string().contains("test_size"), "{e}");
    let e = walk_forward(10, &WalkForward { max_train_size: Some(0), ..WalkForward::new(2) }).unwrap_err();
    assert!(e.to_string().contains("max_train_size"), "{e}");
}

/// `step`: test blocks `step` rows apart, the last ending with the data; equal to the test size it is scikit-learn's.
#[test]
fn walk_forward_step_spaces_the_test_blocks() {
    let base = WalkForward { folds: 4, test_size: Some(10), gap: 2, max_train_size: None, step: None };
    let same = walk_forward(100, &WalkForward { step: Some(10), ..base }).unwrap();
    assert_eq!(same, walk_forward(100, &base).unwrap());
    // overlapping blocks every 5 rows: 75..85, 80..90, 85..95, 90..100
    let overlapping = walk_forward(100, &WalkForward { step: Some(5), ..base }).unwrap();
    let starts: Vec<usize> = overlapping.iter().map(|f| f.test.start).collect();
    assert_eq!(starts, vec![75, 80, 85, 90]);
    assert!(overlapping.iter().all(|f| f.test.len() == 10 && f.train == (0..f.test.start - 2)));
    // blocks 20 apart, rows between them: 40..50, 60..70, 80..90 and 90..100 would overlap; last ends at 100
    let spaced = walk_forward(100, &WalkForward { step: Some(20), ..base }).unwrap();
    let starts: Vec<usize> = spaced.iter().map(|f| f.test.start).collect();
    assert_eq!(starts, vec![30, 50, 70, 90]);
    let e = walk_forward(100, &WalkForward { step: Some(40), ..base }).unwrap_err();
    assert_eq!(e.code(), kiln_domain::Code::NotEnoughRows, "{e}");
    let e = walk_forward(100, &WalkForward { step: Some(0), ..base }).unwrap_err();
    assert!(e.to_string().contains("step"), "{e}");
}
