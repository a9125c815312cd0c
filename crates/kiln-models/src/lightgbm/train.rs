//! LightGBM's training loop on its C API (`lightgbm3-sys`), because `lightgbm3`'s `Booster::train_with_valid`
//! evaluates the metrics after every round but keeps the values to itself. This loop is the same as
//! `lightgbm3` 1.0.11's, call for call (datasets built from the row-major f64 matrix with no dataset parameters, the
//! same parameter string, `LGBM_BoosterUpdateOneIter` per round, the same early-stopping rule and rollback), so the
//! trees are the ones `lightgbm3` grew; in addition it reads `LGBM_BoosterGetEval` for the validation rows (data 1)
//! after every round and for the training rows (data 0, which needs `is_provide_training_metric`) after the rounds
//! [`train_due`] names, as Python's `lightgbm.train` does for `evals_result`.
//!
//! The result is the model text, which [`lightgbm3::Booster::from_string`] reads back for prediction. The binned
//! datasets ([`Sets`]) may outlive the call, to be trained on again ([`super::FitCache`]): a booster only reads them.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;

use lightgbm3_sys as sys;

use crate::curve::{EvalCurve, EvalData, push_round, train_due};

/// What a training run gives back: the model text and the per-round evaluations.
pub(super) struct Trained {
    pub(super) model: String,
    pub(super) rounds: usize,
    pub(super) curves: Vec<EvalCurve>,
}

/// The rows of one dataset, as LightGBM reads them.
pub(super) struct Rows<'a> {
    /// row-major, `labels.len()` rows of `n_cols` values
    pub(super) data: &'a [f64],
    pub(super) labels: &'a [f32],
}

/// How to run the rounds.
pub(super) struct Plan<'a> {
    /// `key=value` pairs, space separated, as `lightgbm3` writes them
    pub(super) params: &'a str,
    pub(super) num_iterations: usize,
    pub(super) early_stopping_rounds: Option<usize>,
    /// whether a larger validation metric is better (as `lightgbm3` decides it)
    pub(super) maximize: bool,
}

/// The binned training set and, when given, the validation set binned like it: what [`train`] boosts on. They
/// depend on the rows, the labels, the feature names and the thread count only (no other parameter reaches them), so
/// fits on the same rows with other hyperparameters can share them.
pub(super) struct Sets {
    // the validation set refers to the training set's bins: it is declared first, so it is freed first
    valid: Option<Dataset>,
    train: Dataset,
}

// SAFETY: a LightGBM dataset is plain heap data with no thread affinity, and boosters only read it (the C API takes
// it as `const`); a `Sets` is used by one fit at a time (a cache hands it out and takes it back)
unsafe impl Send for Sets {}

impl Sets {
    /// Bins `train` (named `names`) and `valid`, on the threads of `params` (its `num_threads=N`, as Python's
    /// `lgb.train` passes it to the datasets: the bins do not depend on it).
    pub(super) fn new(
        train: &Rows<'_>,
        valid: Option<&Rows<'_>>,
        names: &[String],
        params: &str,
    ) -> Result<Sets, String> {
        let n_cols = i32::try_from(names.len()).map_err(|_| "too many feature columns".to_string())?;
        let threads = dataset_params(params);
        let train_set = Dataset::new(train, n_cols, None, threads, "training")?;
        train_set.set_feature_names(names)?;
        let valid = valid.map(|v| Dataset::new(v, n_cols, Some(&train_set), threads, "validation")).transpose()?;
        Ok(Sets { valid, train: train_set })
    }
}

/// The parameters a dataset is built with: the booster's `num_threads=N` alone (empty without one), as
/// `lightgbm3` builds its datasets; the bins do not depend on it.
pub(super) fn dataset_params(params: &str) -> &str {
    params.split_whitespace().find(|p| p.starts_with("num_threads=")).unwrap_or_default()
}

fn check(ret: c_int, what: &str) -> Result<(), String> {
    if ret == 0 {
        return Ok(());
    }
    // SAFETY: LGBM_GetLastError returns a pointer to a NUL-terminated, thread-local message that lives until the
    // next failing call on this thread; it is copied at once
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }.to_string_lossy().into_owned();
    Err(format!("{what}: LightGBM error: {message}"))
}

fn c_string(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

struct Dataset(sys::DatasetHandle);

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once; the booster that points at it
        // is declared after it, so it is freed first
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

impl Dataset {
    /// As `lightgbm3::Dataset::from_slice_with_reference`: f64 rows, f32 labels, and of the dataset parameters only
    /// the thread count (`dataset_params`: `num_threads=N`, which changes no bin), so that building the bins uses
    /// the booster's threads, as Python's `lgb.train` passes them, not every core's OpenMP team.
    fn new(
        rows: &Rows<'_>,
        n_cols: i32,
        reference: Option<&Dataset>,
        dataset_params: &str,
        what: &str,
    ) -> Result<Dataset, String> {
        let n_rows = i32::try_from(rows.labels.len()).map_err(|_| format!("the {what} set has too many rows"))?;
        let empty = c_string(dataset_params, "the dataset parameters")?;
        let label = c_string("label", "")?;
        let mut handle = ptr::null_mut();
        // SAFETY: `data` holds n_rows * n_cols f64 values (checked by the caller) that LightGBM copies into its
        // bins; `reference` is a live dataset or null
        check(
            unsafe {
                sys::LGBM_DatasetCreateFromMat(
                    rows.data.as_ptr().cast::<c_void>(),
                    sys::C_API_DTYPE_FLOAT64 as c_int,
                    n_rows,
                    n_cols,
                    1,
                    empty.as_ptr(),
                    reference.map_or(ptr::null_mut(), |r| r.0),
                    &mut handle,
                )
            },
            &format!("building the {what} dataset"),
        )?;
        let set = Dataset(handle);
        // SAFETY: `labels` holds n_rows f32 values, copied by LightGBM
        check(
            unsafe {
                sys::LGBM_DatasetSetField(
                    set.0,
                    label.as_ptr(),
                    rows.labels.as_ptr().cast::<c_void>(),
                    n_rows,
                    sys::C_API_DTYPE_FLOAT32 as c_int,
                )
            },
            &format!("building the {what} dataset"),
        )?;
        Ok(set)
    }

    fn set_feature_names(&self, names: &[String]) -> Result<(), String> {
        let owned = names.iter().map(|n| c_string(n, "a feature name")).collect::<Result<Vec<_>, _>>()?;
        let mut pointers: Vec<*const c_char> = owned.iter().map(|n| n.as_ptr()).collect();
        let n = c_int::try_from(names.len()).map_err(|_| "too many feature names".to_string())?;
        // SAFETY: `pointers` holds `n` NUL-terminated strings that outlive the call; LightGBM copies them
        check(unsafe { sys::LGBM_DatasetSetFeatureNames(self.0, pointers.as_mut_ptr(), n) }, "setting feature names")
    }
}

struct Booster(sys::BoosterHandle);

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterCreate and is freed once
        unsafe { sys::LGBM_BoosterFree(self.0) };
    }
}

impl Booster {
    /// The metric names LightGBM evaluates, in the order `LGBM_BoosterGetEval` reports them.
    fn eval_names(&self) -> Result<Vec<String>, String> {
        let mut count: c_int = 0;
        // SAFETY: a live booster; `count` is written
        check(unsafe { sys::LGBM_BoosterGetEvalCounts(self.0, &mut count) }, "reading the metric names")?;
        let n = usize::try_from(count).map_err(|_| format!("lightgbm reports {count} metrics"))?;
        let mut width = 64_usize;
        loop {
            let mut buffers = vec![vec![0_u8; width]; n];
            let mut pointers: Vec<*mut c_char> = buffers.iter_mut().map(|b| b.as_mut_ptr().cast::<c_char>()).collect();
            let (mut out_n, mut needed): (c_int, usize) = (0, 0);
            // SAFETY: `pointers` holds `count` writable buffers of `width` bytes; LightGBM writes at most
            // `width - 1` bytes and a NUL into each
            check(
                unsafe {
                    sys::LGBM_BoosterGetEvalNames(self.0, count, &mut out_n, width, &mut needed, pointers.as_mut_ptr())
                },
                "reading the metric names",
            )?;
            if out_n != count {
                return Err(format!("lightgbm named {out_n} of {count} metrics"));
            }
            if needed > width {
                width = needed;
                continue;
            }
            return buffers
                .iter()
                .map(|b| {
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    String::from_utf8(b[..end].to_vec()).map_err(|_| "a metric name is not UTF-8".to_string())
                })
                .collect();
        }
    }

    /// The metrics on data `index` (0: training rows, 1: validation rows) after the last round.
    fn eval(&self, index: c_int, n: usize) -> Result<Vec<f64>, String> {
        let mut values = vec![0.0_f64; n];
        let mut out_n: c_int = 0;
        // SAFETY: `values` has room for every metric LightGBM evaluates (`n`, from LGBM_BoosterGetEvalCounts)
        check(
            unsafe { sys::LGBM_BoosterGetEval(self.0, index, &mut out_n, values.as_mut_ptr()) },
            "evaluating the metrics",
        )?;
        if usize::try_from(out_n).ok() != Some(n) {
            return Err(format!("lightgbm evaluated {out_n} metrics on data {index}, not {n}"));
        }
        Ok(values)
    }

    fn current_iteration(&self) -> Result<usize, String> {
        let mut iteration: c_int = 0;
        // SAFETY: a live booster; `iteration` is written
        check(unsafe { sys::LGBM_BoosterGetCurrentIteration(self.0, &mut iteration) }, "reading the round count")?;
        usize::try_from(iteration).map_err(|_| format!("lightgbm reports {iteration} rounds"))
    }

    /// The model's first `rounds` rounds in LightGBM's text format (as `lightgbm3::Booster::save_string`, or
    /// Python's `model_to_string(num_iteration=...)`).
    fn model_string(&self, rounds: usize) -> Result<String, String> {
        let rounds = c_int::try_from(rounds).map_err(|_| format!("{rounds} rounds are too many to save"))?;
        let mut size: i64 = 0;
        // SAFETY: with a zero-length buffer LightGBM only reports the size it needs
        check(
            unsafe { sys::LGBM_BoosterSaveModelToString(self.0, 0, rounds, 0, 0, &mut size, ptr::null_mut()) },
            "saving the model text",
        )?;
        let len = usize::try_from(size).map_err(|_| format!("lightgbm reports a model of {size} bytes"))?;
        let mut buffer = vec![0_u8; len];
        // SAFETY: `buffer` has the `size` bytes LightGBM asked for, NUL included
        check(
            unsafe {
                sys::LGBM_BoosterSaveModelToString(
                    self.0,
                    0,
                    rounds,
                    0,
                    size,
                    &mut size,
                    buffer.as_mut_ptr().cast::<c_char>(),
                )
            },
            "saving the model text",
        )?;
        if buffer.pop() != Some(0) {
            return Err("lightgbm wrote a model text that does not end with NUL".to_string());
        }
        String::from_utf8(buffer).map_err(|_| "lightgbm wrote a model text that is not UTF-8".to_string())
    }
}

/// Fits on the training set of `sets` (and evaluates its validation set after every round, stopping early as
/// planned, and the training rows when [`train_due`]); the model text, the rounds it holds and the curves.
pub(super) fn train(sets: &Sets, plan: &Plan<'_>) -> Result<Trained, String> {
    let (train_set, valid_set) = (&sets.train, &sets.valid);
    let params = c_string(plan.params, "the parameters")?;
    let mut handle = ptr::null_mut();
    // SAFETY: a live training dataset and a NUL-terminated parameter string
    check(unsafe { sys::LGBM_BoosterCreate(train_set.0, params.as_ptr(), &mut handle) }, "boosting")?;
    let booster = Booster(handle);
    if let Some(v) = &valid_set {
        // SAFETY: a live booster and a live dataset binned like the training set
        check(unsafe { sys::LGBM_BoosterAddValidData(booster.0, v.0) }, "boosting")?;
    }
    let metrics = booster.eval_names()?;

    let mut curves = Vec::new();
    let started = std::time::Instant::now();
    let mut best: Option<f64> = None;
    let mut without_improvement = 0_usize;
    let mut dropped = 0;
    for round in 0..plan.num_iterations {
        let mut finished: c_int = 0;
        // SAFETY: a live booster; `finished` is written
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(booster.0, &mut finished) }, "boosting")?;
        if finished != 0 {
            break; // no split was possible: LightGBM dropped the round's tree
        }
        let valid_values = if valid_set.is_some() { Some(booster.eval(1, metrics.len())?) } else { None };
        let score = valid_values.as_ref().and_then(|v| v.first().copied());
        let mut stop = false;
        if let (Some(patience), Some(score)) = (plan.early_stopping_rounds, score) {
            let improved = match best {
                None => true,
                Some(b) if plan.maximize => score > b,
                Some(b) => score < b,
            };
            if improved {
                best = Some(score);
                without_improvement = 0;
            } else {
                without_improvement += 1;
                stop = without_improvement >= patience;
            }
        }
        let mut evals = Vec::with_capacity(2 * metrics.len());
        if train_due(round, plan.num_iterations, stop) {
            let values = booster.eval(0, metrics.len())?;
            evals.extend(metrics.iter().zip(values).map(|(m, v)| (EvalData::Train, m.clone(), v)));
        }
        if let Some(values) = valid_values {
            evals.extend(metrics.iter().zip(values).map(|(m, v)| (EvalData::Valid, m.clone(), v)));
        }
        push_round(&mut curves, round, evals, started)?;
        if stop {
            // the rounds after the best are left out of the saved model (as Python saves `best_iteration`), not
            // rolled back one by one: a rollback takes its tree's output off every training row's score
            dropped = without_improvement.min(round + 1);
            break;
        }
    }
    let rounds = booster.current_iteration()? - dropped;
    let model = booster.model_string(rounds)?;
    Ok(Trained { model, rounds, curves })
}
