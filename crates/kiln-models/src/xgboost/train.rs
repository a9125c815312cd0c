//! XGBoost's training calls on its C API (`xgboost-rs-sys`), because `xgboost-rs` 0.3 keeps
//! `XGBoosterEvalOneIter` private and parses its values into f32. The calls are the ones `xgboost-rs` makes for
//! `DMatrix::from_col_major_f32`, `set_labels`, `Booster::new_with_json_config` and `update`, so the trees are the
//! ones it grew; `eval` returns XGBoost's evaluation line (`[3]\ttrain-rmse:0.41...\tvalid-rmse:0.52...`, printed
//! with 17 significant digits) for kiln to parse at full precision.
//!
//! The fitted model leaves as JSON, which `xgboost_rs::Booster::load_buffer` reads back for prediction; nothing
//! here outlives the fit.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;

use xgboost_rs_sys as sys;

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
    /// `n_rows` rows of `n_cols` f32 values, row-major, NaN missing (XGBoost's array-interface path, as
    /// `xgboost_rs::DMatrix::from_col_major_f32` with row-major strides builds it), and `labels`.
    pub(super) fn new(
        values: &[f32],
        n_rows: usize,
        n_cols: usize,
        labels: &[f32],
        nthread: u32,
    ) -> Result<Data, String> {
        if values.len() != n_rows * n_cols || labels.len() != n_rows {
            return Err(format!("{} values and {} labels for {n_rows} x {n_cols}", values.len(), labels.len()));
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
        let field = c_string("label", "")?;
        // SAFETY: `labels` holds n_rows f32, copied by XGBoost
        check(
            unsafe { sys::XGDMatrixSetFloatInfo(data.0, field.as_ptr(), labels.as_ptr(), n_rows as u64) },
            "setting the labels",
        )?;
        Ok(data)
    }
}

/// A booster being trained.
pub(super) struct Booster(sys::BoosterHandle);

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
