//! kiln's safe wrapper over XGBoost's C API (`kiln-xgboost-sys`, XGBoost 3.2.0 built from its source): dense
//! matrices, boosters that train one round at a time, evaluation lines parsed at full precision, JSON models in and
//! out, and predictions (values, margins, SHAP contributions). Every handle is freed by its owner's `Drop`, every
//! failure carries XGBoost's own message, and every buffer XGBoost hands out is copied before the next call.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;

use kiln_xgboost_sys as sys;

use crate::curve::EvalData;

fn check(ret: c_int, what: &str) -> Result<(), String> {
    if ret == 0 {
        return Ok(());
    }
    // SAFETY: XGBGetLastError returns a pointer to a NUL-terminated, thread-local message; it is copied at once
    let message = unsafe { CStr::from_ptr(sys::XGBGetLastError()) }.to_string_lossy().into_owned();
    Err(format!("{what}: XGBoost error: {message}"))
}

fn c_string(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} '{s}' contains a NUL byte"))
}

/// A dense matrix with its labels, owned by XGBoost.
pub(super) struct Data(sys::DMatrixHandle);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: the handle came from XGDMatrixCreateFromDense and is freed once; XGBoost's booster holds its own
        // reference to a cached matrix, so the order of the frees does not matter
        unsafe { sys::XGDMatrixFree(self.0) };
    }
}

impl Data {
    /// `n_rows` rows of `n_cols` f32 values, row-major, NaN missing (XGBoost's array-interface path, the one
    /// Python's `DMatrix` takes for a float32 array; 0.0 is a value, not missing), with `labels` when given.
    pub(super) fn new(
        values: &[f32],
        n_rows: usize,
        n_cols: usize,
        labels: Option<&[f32]>,
        nthread: u32,
    ) -> Result<Data, String> {
        if values.len() != n_rows * n_cols || labels.is_some_and(|l| l.len() != n_rows) {
            return Err(format!(
                "{} values and {} labels for {n_rows} x {n_cols}",
                values.len(),
                labels.map_or(0, <[f32]>::len)
            ));
        }
        let size = std::mem::size_of::<f32>();
        let array = format!(
            "{{\"data\": [{}, false], \"strides\": [{}, {size}], \"descr\": [[\"\", \"<f4\"]], \"typestr\": \"<f4\", \
             \"shape\": [{n_rows}, {n_cols}], \"version\": 3}}",
            values.as_ptr() as usize,
            n_cols * size,
        );
        let config = format!("{{\"missing\": NaN, \"nthread\": {nthread}}}");
        let (array, config) = (c_string(&array, "the array")?, c_string(&config, "the config")?);
        let mut handle = ptr::null_mut();
        // SAFETY: the array interface points at `values`, n_rows * n_cols f32 that live through the call; XGBoost
        // copies them into its own pages
        check(
            unsafe { sys::XGDMatrixCreateFromDense(array.as_ptr(), config.as_ptr(), &mut handle) },
            "building the matrix",
        )?;
        let data = Data(handle);
        let (mut rows, mut cols) = (0, 0);
        // SAFETY: a live matrix; the counts are written
        check(unsafe { sys::XGDMatrixNumRow(data.0, &mut rows) }, "building the matrix")?;
        check(unsafe { sys::XGDMatrixNumCol(data.0, &mut cols) }, "building the matrix")?;
        if (rows, cols) != (n_rows as u64, n_cols as u64) {
            return Err(format!("xgboost built a {rows} x {cols} matrix from {n_rows} x {n_cols} values"));
        }
        if let Some(labels) = labels {
            let field = c_string("label", "")?;
            // SAFETY: `labels` holds n_rows f32, copied by XGBoost
            check(
                unsafe { sys::XGDMatrixSetFloatInfo(data.0, field.as_ptr(), labels.as_ptr(), n_rows as u64) },
                "setting the labels",
            )?;
        }
        Ok(data)
    }
}

/// A booster: being trained, or loaded from a JSON model for prediction.
pub(super) struct Booster(sys::BoosterHandle);

// SAFETY: an XGBoost booster is not tied to the thread that created it; kiln calls one booster from one thread at a
// time (training owns it, a fitted model keeps it behind a mutex), which is all XGBoost asks
unsafe impl Send for Booster {}

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle came from XGBoosterCreate and is freed once
        unsafe { sys::XGBoosterFree(self.0) };
    }
}

impl Booster {
    /// A booster with `cache` in its prediction cache and `params` set, in order.
    pub(super) fn new(cache: &[&Data], params: &[(&str, String)]) -> Result<Booster, String> {
        let handles: Vec<sys::DMatrixHandle> = cache.iter().map(|d| d.0).collect();
        let mut handle = ptr::null_mut();
        // SAFETY: `handles` are live matrices; XGBoost keeps its own references to them
        check(unsafe { sys::XGBoosterCreate(handles.as_ptr(), handles.len() as u64, &mut handle) }, "creating")?;
        let booster = Booster(handle);
        for (key, value) in params {
            let (k, v) = (c_string(key, "a parameter")?, c_string(value, "a parameter value")?);
            // SAFETY: a live booster and two NUL-terminated strings, copied by XGBoost
            check(unsafe { sys::XGBoosterSetParam(booster.0, k.as_ptr(), v.as_ptr()) }, &format!("setting {key}"))?;
        }
        Ok(booster)
    }

    /// A booster holding the model in `bytes` (XGBoost's JSON or UBJSON), with nothing in its cache.
    pub(super) fn load(bytes: &[u8]) -> Result<Booster, String> {
        let mut handle = ptr::null_mut();
        // SAFETY: no cached matrices (a null array of length 0)
        check(unsafe { sys::XGBoosterCreate(ptr::null(), 0, &mut handle) }, "creating a booster")?;
        let booster = Booster(handle);
        // SAFETY: a live booster and `bytes.len()` readable bytes, copied by XGBoost
        check(
            unsafe { sys::XGBoosterLoadModelFromBuffer(booster.0, bytes.as_ptr().cast(), bytes.len() as u64) },
            "loading the model",
        )?;
        Ok(booster)
    }

    /// XGBoost's predictions for `data` with every tree: one value per row, or `n_features + 1` contributions per
    /// row; the f32 values and the output's shape.
    pub(super) fn predict(&self, data: &Data, kind: Prediction) -> Result<(Vec<f32>, Vec<u64>), String> {
        let config = format!(
            "{{\"type\": {}, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \
             \"strict_shape\": false}}",
            kind as u8
        );
        let config = c_string(&config, "the config")?;
        let (mut shape, mut dim, mut out): (*const u64, u64, *const f32) = (ptr::null(), 0, ptr::null());
        // SAFETY: a live booster and matrix; XGBoost points `shape` at `dim` sizes and `out` at their product of
        // f32, both owned by the booster until its next call, and copied at once
        check(
            unsafe {
                sys::XGBoosterPredictFromDMatrix(self.0, data.0, config.as_ptr(), &mut shape, &mut dim, &mut out)
            },
            "predicting",
        )?;
        if shape.is_null() || (out.is_null() && dim > 0) {
            return Err("predicting: xgboost returned no result".to_string());
        }
        let dim = usize::try_from(dim).map_err(|_| "predicting: a bad output shape".to_string())?;
        // SAFETY: `shape` points at `dim` sizes (checked non-null above)
        let shape = unsafe { std::slice::from_raw_parts(shape, dim) }.to_vec();
        let len = shape.iter().try_fold(1_usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
        let len = len.ok_or_else(|| format!("predicting: xgboost returned the shape {shape:?}"))?;
        if len == 0 {
            return Ok((Vec::new(), shape));
        }
        // SAFETY: `out` points at `len` f32, the product of the shape (checked non-null above)
        let values = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        Ok((values, shape))
    }

    /// A new booster with the trees of the first `rounds` rounds, the parameters and attributes of this one, and
    /// nothing in its cache (XGBoost's `Booster[:rounds]`): the model a fit keeps once its rounds are done.
    pub(super) fn first_rounds(&self, rounds: usize) -> Result<Booster, String> {
        let end = i32::try_from(rounds).map_err(|_| "slicing the model: too many rounds".to_string())?;
        let mut handle = ptr::null_mut();
        // SAFETY: a live booster; XGBoost writes a new booster handle, freed once by the returned value
        check(unsafe { sys::XGBoosterSlice(self.0, 0, end, 1, &mut handle) }, "slicing the model")?;
        if handle.is_null() {
            return Err("slicing the model: xgboost returned no booster".to_string());
        }
        Ok(Booster(handle))
    }

    /// Sets a string attribute saved with the model.
    pub(super) fn set_attr(&mut self, key: &str, value: &str) -> Result<(), String> {
        let (k, v) = (c_string(key, "an attribute")?, c_string(value, "an attribute value")?);
        // SAFETY: a live booster and two NUL-terminated strings, copied by XGBoost
        check(unsafe { sys::XGBoosterSetAttr(self.0, k.as_ptr(), v.as_ptr()) }, &format!("setting attribute {key}"))
    }

    /// Sets the features' names and types (`float` each), saved in the model's `learner.feature_names` and
    /// `feature_types`, as Python's `Booster.feature_names`/`feature_types` setters do.
    pub(super) fn set_features(&mut self, names: &[String]) -> Result<(), String> {
        let names = names.iter().map(|n| c_string(n, "a feature name")).collect::<Result<Vec<_>, _>>()?;
        let float = c_string("float", "a feature type")?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let type_ptrs: Vec<*const c_char> = names.iter().map(|_| float.as_ptr()).collect();
        for (field, ptrs) in [("feature_name", &name_ptrs), ("feature_type", &type_ptrs)] {
            let f = c_string(field, "a feature field")?;
            // SAFETY: a live booster, a NUL-terminated field name and `ptrs.len()` NUL-terminated strings that
            // outlive the call; XGBoost copies them
            check(
                unsafe { sys::XGBoosterSetStrFeatureInfo(self.0, f.as_ptr(), ptrs.as_ptr(), ptrs.len() as u64) },
                &format!("setting {field}"),
            )?;
        }
        Ok(())
    }

    /// One boosting round (`iteration` is 0-based).
    pub(super) fn update(&mut self, iteration: i32, train: &Data) -> Result<(), String> {
        // SAFETY: a live booster and a live training matrix
        check(unsafe { sys::XGBoosterUpdateOneIter(self.0, iteration, train.0) }, "boosting")
    }

    /// The metrics XGBoost evaluates on each set after round `iteration`, `(rows, metric, value)` in XGBoost's
    /// order, parsed from its evaluation line.
    pub(super) fn eval(
        &self,
        iteration: i32,
        sets: &[(&Data, EvalData)],
    ) -> Result<Vec<(EvalData, String, f64)>, String> {
        let mut handles: Vec<sys::DMatrixHandle> = sets.iter().map(|(d, _)| d.0).collect();
        let names =
            sets.iter().map(|(_, r)| c_string(r.as_str(), "an evaluation name")).collect::<Result<Vec<_>, _>>()?;
        let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let mut out: *const c_char = ptr::null();
        // SAFETY: `handles` and `pointers` hold `sets.len()` live matrices and NUL-terminated names; `out` points at
        // a thread-local string that lives until the next call on this booster, and is copied at once
        check(
            unsafe {
                sys::XGBoosterEvalOneIter(
                    self.0,
                    iteration,
                    handles.as_mut_ptr(),
                    pointers.as_mut_ptr(),
                    sets.len() as u64,
                    &mut out,
                )
            },
            "evaluating",
        )?;
        if out.is_null() {
            return Err("evaluating: xgboost returned no result".to_string());
        }
        // SAFETY: a NUL-terminated string written by XGBoost (checked non-null above)
        let line = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        let rows: Vec<EvalData> = sets.iter().map(|&(_, r)| r).collect();
        parse_eval_line(&line, &rows)
    }

    /// The model as XGBoost's JSON.
    pub(super) fn save_json(&self) -> Result<String, String> {
        let config = c_string("{\"format\": \"json\"}", "the config")?;
        let mut len: u64 = 0;
        let mut out: *const c_char = ptr::null();
        // SAFETY: a live booster; XGBoost points `out` at `len` bytes it owns until the next call, copied at once
        check(
            unsafe { sys::XGBoosterSaveModelToBuffer(self.0, config.as_ptr(), &mut len, &mut out) },
            "saving the model as JSON",
        )?;
        if out.is_null() {
            return Err("saving the model as JSON: xgboost returned no buffer".to_string());
        }
        let len = usize::try_from(len).map_err(|_| "saving the model as JSON: it is too large".to_string())?;
        // SAFETY: `out` points at `len` readable bytes (checked non-null above)
        let bytes = unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len) };
        String::from_utf8(bytes.to_vec()).map_err(|_| "saving the model as JSON: it is not UTF-8".to_string())
    }
}

/// What [`Booster::predict`] returns (XGBoost's prediction `type`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Prediction {
    /// the objective's output (a probability for `binary:logistic`)
    Value = 0,
    /// the untransformed score
    Margin = 1,
    /// SHAP values by the exact tree algorithm, the last column the bias
    Contributions = 2,
}

/// Parses XGBoost's evaluation line of one round (`[i]\t<rows>-<metric>:<value>...`, the rows under their
/// [`EvalData::as_str`] names) into `(rows, metric, value)`, in XGBoost's order; `sets` are the rows it may name.
pub(super) fn parse_eval_line(line: &str, sets: &[EvalData]) -> Result<Vec<(EvalData, String, f64)>, String> {
    let mut parts = line.split('\t');
    let head = parts.next().unwrap_or_default();
    if !(head.starts_with('[') && head.ends_with(']')) {
        return Err(format!("xgboost's evaluation line '{line}' does not start with [round]"));
    }
    parts
        .map(|part| {
            let (set, rest) = sets
                .iter()
                .find_map(|&s| part.strip_prefix(s.as_str()).and_then(|r| r.strip_prefix('-')).map(|r| (s, r)))
                .ok_or_else(|| format!("xgboost's evaluation '{part}' names none of the sets {sets:?}"))?;
            let (metric, value) =
                rest.rsplit_once(':').ok_or_else(|| format!("xgboost's evaluation '{part}' has no ':'"))?;
            let value: f64 =
                value.trim().parse().map_err(|_| format!("xgboost's evaluation '{part}' has no number after ':'"))?;
            Ok((set, metric.to_string(), value))
        })
        .collect()
}
