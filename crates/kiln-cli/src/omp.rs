//! OpenMP parallel regions of one thread run inline, without a team.
//!
//! LightGBM opens an OpenMP parallel region for every histogram, split search and partition, many thousands per
//! fit. When the model runs on one thread (`num_threads: 1`, as a tuning study's trials do, two or more of them
//! side by side), GNU libgomp still made a team of one for each region: it allocated the team, and its closing
//! barrier called `futex(FUTEX_WAKE)` although no thread waits. A 50-trial study on EUR/USD made a million such
//! calls (`strace -c`); running them inline took a seventh off its CPU time (5.88 -> 5.07 s). The runtime is now
//! LLVM's libomp, through its libgomp-compatible entry points (ARCHITECTURE, "One OpenMP runtime"); XGBoost, built
//! by clang, calls libomp's own entry points and does not come here.
//!
//! The binary is linked with `--wrap=GOMP_parallel` (see `build.rs`): every call GCC-compiled code makes to
//! `GOMP_parallel` comes here. A region of one thread that is not nested in another runs its body
//! directly, which is what a team of one does: inside it `omp_get_thread_num()` is 0, `omp_get_num_threads()` is 1,
//! and worksharing loops, barriers, `single` and `critical` behave as in a team of one (the runtimes support them
//! orphaned); only `omp_get_level()` reads 0 instead of 1, which LightGBM does not ask. Every other region (more
//! than one thread, or nested in a team) goes to the runtime unchanged. The models are the same bit for bit (the
//! shipped bundles' test, `tests/test_bundles_unchanged.py`).
#![allow(unsafe_code)] // an `extern "C"` entry point for the linker, and the calls to the OpenMP runtime

use std::ffi::{c_int, c_uint, c_void};

/// The outlined body of a parallel region, as GCC emits it.
type RegionBody = unsafe extern "C" fn(*mut c_void);

unsafe extern "C" {
    /// the runtime's own `GOMP_parallel` (the linker's name for it under `--wrap`)
    fn __real_GOMP_parallel(body: RegionBody, data: *mut c_void, num_threads: c_uint, flags: c_uint);
    fn omp_get_level() -> c_int;
    fn omp_get_max_threads() -> c_int;
}

/// `GOMP_parallel` as the wrapped libraries call it: `num_threads` 0 means the default (`omp_get_max_threads()`),
/// and GCC passes 1 for a region whose `if` clause is false.
///
/// # Safety
/// Called by compiled OpenMP code with a body and its data, under the GNU OpenMP ABI's contract for `GOMP_parallel`.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_GOMP_parallel(body: RegionBody, data: *mut c_void, num_threads: c_uint, flags: c_uint) {
    // SAFETY: the runtime's query functions have no preconditions; `body(data)` is the call the team's only thread
    // would make; otherwise the arguments go to the runtime as they came.
    unsafe {
        let one = num_threads == 1 || (num_threads == 0 && omp_get_max_threads() == 1);
        if one && omp_get_level() == 0 {
            body(data);
        } else {
            __real_GOMP_parallel(body, data, num_threads, flags);
        }
    }
}
