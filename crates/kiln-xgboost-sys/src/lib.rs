//! XGBoost 3.2.0's C API, only the calls kiln makes, declared by hand from `include/xgboost/c_api.h` of the
//! vendored source (no bindgen). The build script compiles that source into a static library with OpenMP; see
//! `build.rs`. Safe wrappers live with their one user, `kiln-models`' XGBoost adapter: this crate declares, it
//! does not wrap.
//!
//! Every function returns 0 on success and -1 on failure, with the message in [`XGBGetLastError`] (thread-local,
//! valid until the next call on the same thread). Buffers XGBoost hands out stay valid only until the next call on
//! the same handle: copy them at once.
// declaring foreign functions is this crate's whole purpose
#![allow(unsafe_code)]
#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// XGBoost's `bst_ulong`.
pub type bst_ulong = u64;
/// An opaque XGBoost `DMatrix`.
pub type DMatrixHandle = *mut c_void;
/// An opaque XGBoost `Booster`.
pub type BoosterHandle = *mut c_void;

/// The XGBoost version that `build.rs` builds.
pub const VERSION: &str = "3.2.0";

unsafe extern "C" {
    /// XGBoost's version numbers.
    pub fn XGBoostVersion(major: *mut c_int, minor: *mut c_int, patch: *mut c_int);
    /// The last error raised on this thread, NUL-terminated.
    pub fn XGBGetLastError() -> *const c_char;

    /// A matrix from a dense array (`data`: JSON `__array_interface__`; `config`: `{"missing": .., "nthread": ..}`).
    pub fn XGDMatrixCreateFromDense(data: *const c_char, config: *const c_char, out: *mut DMatrixHandle) -> c_int;
    pub fn XGDMatrixFree(handle: DMatrixHandle) -> c_int;
    /// Sets a float field (`label`, `weight`, `base_margin`, ...), copying `len` values.
    pub fn XGDMatrixSetFloatInfo(
        handle: DMatrixHandle,
        field: *const c_char,
        array: *const f32,
        len: bst_ulong,
    ) -> c_int;
    pub fn XGDMatrixNumRow(handle: DMatrixHandle, out: *mut bst_ulong) -> c_int;
    pub fn XGDMatrixNumCol(handle: DMatrixHandle, out: *mut bst_ulong) -> c_int;

    /// A booster with `len` matrices in its prediction cache.
    pub fn XGBoosterCreate(dmats: *const DMatrixHandle, len: bst_ulong, out: *mut BoosterHandle) -> c_int;
    pub fn XGBoosterFree(handle: BoosterHandle) -> c_int;
    pub fn XGBoosterSetParam(handle: BoosterHandle, name: *const c_char, value: *const c_char) -> c_int;
    /// One boosting round on `dtrain` (`iter` 0-based).
    pub fn XGBoosterUpdateOneIter(handle: BoosterHandle, iter: c_int, dtrain: DMatrixHandle) -> c_int;
    /// The evaluation line of round `iter` on `len` named matrices (`[iter]\tname-metric:value...`).
    pub fn XGBoosterEvalOneIter(
        handle: BoosterHandle,
        iter: c_int,
        dmats: *mut DMatrixHandle,
        evnames: *mut *const c_char,
        len: bst_ulong,
        out_result: *mut *const c_char,
    ) -> c_int;
    /// Predictions for a matrix; `config` is JSON (`type`: 0 value, 1 margin, 2 contributions; `training`,
    /// `iteration_begin`, `iteration_end`, `strict_shape`).
    pub fn XGBoosterPredictFromDMatrix(
        handle: BoosterHandle,
        dmat: DMatrixHandle,
        config: *const c_char,
        out_shape: *mut *const bst_ulong,
        out_dim: *mut bst_ulong,
        out_result: *mut *const f32,
    ) -> c_int;
    /// A new booster with the trees of rounds `begin_layer..end_layer` (every `step`-th), its parameters and
    /// attributes; -2 when the range is out of bounds.
    pub fn XGBoosterSlice(
        handle: BoosterHandle,
        begin_layer: c_int,
        end_layer: c_int,
        step: c_int,
        out: *mut BoosterHandle,
    ) -> c_int;
    /// Sets a string attribute (`best_iteration`, `best_score`, ...) saved with the model.
    pub fn XGBoosterSetAttr(handle: BoosterHandle, key: *const c_char, value: *const c_char) -> c_int;
    /// Sets `feature_name` or `feature_type` to `size` strings.
    pub fn XGBoosterSetStrFeatureInfo(
        handle: BoosterHandle,
        field: *const c_char,
        features: *const *const c_char,
        size: bst_ulong,
    ) -> c_int;
    /// Loads a model (JSON or UBJSON) from `len` bytes.
    pub fn XGBoosterLoadModelFromBuffer(handle: BoosterHandle, buf: *const c_void, len: bst_ulong) -> c_int;
    /// Saves the model (`config`: `{"format": "json"}` or `"ubj"`).
    pub fn XGBoosterSaveModelToBuffer(
        handle: BoosterHandle,
        config: *const c_char,
        out_len: *mut bst_ulong,
        out_dptr: *mut *const c_char,
    ) -> c_int;
}

#[cfg(test)]
mod tests;
