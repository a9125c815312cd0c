//! OpenMP regions and loops of one thread take the short way.
//!
//! LightGBM opens an OpenMP parallel region, with a worksharing loop in it, for every histogram, split search and
//! partition: many thousands per fit. When the model runs on one thread (`num_threads: 1`, as a tuning study's
//! trials do, two or more of them side by side), the runtime's bookkeeping for these regions costs more than some of
//! their bodies. Two entry points are wrapped at link time (`build.rs`: `--wrap`), so that calls the libraries make
//! come here first:
//!
//! - `GOMP_parallel`, which GCC-compiled code calls (LightGBM when `CXX` is GCC). GNU libgomp made a team of one for
//!   each region: it allocated the team, and its closing barrier called `futex(FUTEX_WAKE)` although no thread waits.
//!   A 50-trial study on EUR/USD made a million such calls (`strace -c`); running them inline took a seventh off its
//!   CPU time (5.88 -> 5.07 s). A region of one thread that is not nested in another runs its body directly, which
//!   is what a team of one does: inside it `omp_get_thread_num()` is 0, `omp_get_num_threads()` is 1, and
//!   worksharing loops, barriers, `single` and `critical` behave as in a team of one (the runtimes support them
//!   orphaned); only `omp_get_level()` reads 0 instead of 1, which LightGBM does not ask.
//! - `__kmpc_for_static_init_{4,4u,8,8u}`, which clang-compiled code calls (LightGBM and XGBoost as kiln builds
//!   them) at the start of every `schedule(static)` loop. Debian's libomp is built with its debug traces, and this
//!   function formats a trace line with `vsnprintf` on every call before it looks whether tracing is on: 4% of a
//!   study's CPU. For a team of one thread the answer is fixed (libomp's `kmp_sched.cpp`): the thread runs the
//!   whole iteration space, `*plastiter` is true, and the stride is the span; a loop with no iteration gets
//!   `*plastiter` false and the stride `incr`. That is computed here; a loop of a team of more threads, a
//!   `distribute` loop (its team is the parent's), or a process with libomp's consistency checks or an OMPT tool
//!   switched on (`KMP_CONSISTENCY_CHECK`, `OMP_TOOL_LIBRARIES`) goes to the runtime.
//!
//! Every other region and loop goes to the runtime unchanged. The models are the same bit for bit (the shipped
//! bundles' test, `tests/test_bundles_unchanged.py`).
#![allow(unsafe_code)] // an `extern "C"` entry point for the linker, and the calls to the OpenMP runtime

use std::ffi::{c_int, c_uint, c_void};

/// The outlined body of a parallel region, as GCC emits it.
type RegionBody = unsafe extern "C" fn(*mut c_void);

unsafe extern "C" {
    /// the runtime's own `GOMP_parallel` (the linker's name for it under `--wrap`)
    fn __real_GOMP_parallel(body: RegionBody, data: *mut c_void, num_threads: c_uint, flags: c_uint);
    fn omp_get_level() -> c_int;
    fn omp_get_max_threads() -> c_int;
    #[cfg(kiln_libomp)]
    fn omp_get_num_threads() -> c_int;
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

/// libomp's static-loop entry points, wrapped where the binary links libomp (`build.rs`: `cfg(kiln_libomp)`).
#[cfg(kiln_libomp)]
mod static_loops {
    use std::sync::OnceLock;

    use super::*;

    /// libomp's `ident_t`, passed through untouched.
    #[repr(C)]
    struct Ident {
        _opaque: [u8; 0],
    }

    /// The highest schedule of a worksharing loop (`kmp_ord_upper` in libomp's `kmp.h`); above it come the
    /// `distribute` schedules, whose team is the parent's.
    const KMP_ORD_UPPER: i32 = 72;
    /// The `monotonic` and `nonmonotonic` modifier bits a schedule may carry.
    const KMP_SCH_MODIFIERS: i32 = (1 << 29) | (1 << 30);

    /// Whether a static loop's schedule may be answered here: one thread in the team, a worksharing loop (not
    /// `distribute`), and neither libomp's consistency checks (which `__kmpc_for_static_fini` undoes) nor an OMPT
    /// tool (which expects a callback) switched on.
    fn one_thread_loop(schedtype: i32) -> bool {
        static RUNTIME_ONLY: OnceLock<bool> = OnceLock::new();
        let runtime_only = *RUNTIME_ONLY.get_or_init(|| {
            ["KMP_CONSISTENCY_CHECK", "OMP_TOOL_LIBRARIES"].iter().any(|v| std::env::var_os(v).is_some())
        });
        // SAFETY: `omp_get_num_threads` has no preconditions
        !runtime_only && (schedtype & !KMP_SCH_MODIFIERS) <= KMP_ORD_UPPER && unsafe { omp_get_num_threads() } == 1
    }

    /// `__kmpc_for_static_init_<suffix>` for iteration variables of type `$t` (stride `$st`): answered here for a team
    /// of one thread (see the module's documentation), by the runtime otherwise.
    macro_rules! static_init {
        ($wrap:ident, $real:ident, $t:ty, $st:ty) => {
            unsafe extern "C" {
                fn $real(
                    loc: *mut Ident,
                    gtid: i32,
                    schedtype: i32,
                    plastiter: *mut i32,
                    plower: *mut $t,
                    pupper: *mut $t,
                    pstride: *mut $st,
                    incr: $st,
                    chunk: $st,
                );
            }

            /// # Safety
            /// Called by compiled OpenMP code under libomp's contract for this entry point: `plower`, `pupper` and
            /// `pstride` point to the loop's bounds and stride, `plastiter` is null or points to the last-iteration
            /// flag.
            #[unsafe(no_mangle)]
            #[allow(clippy::too_many_arguments)] // the runtime's signature
            unsafe extern "C" fn $wrap(
                loc: *mut Ident,
                gtid: i32,
                schedtype: i32,
                plastiter: *mut i32,
                plower: *mut $t,
                pupper: *mut $t,
                pstride: *mut $st,
                incr: $st,
                chunk: $st,
            ) {
                // SAFETY: the pointers are the caller's, valid by the runtime's contract; otherwise the arguments go to
                // the runtime as they came
                unsafe {
                    if !one_thread_loop(schedtype) {
                        return $real(loc, gtid, schedtype, plastiter, plower, pupper, pstride, incr, chunk);
                    }
                    let (lower, upper) = (*plower, *pupper);
                    let no_iteration = if incr > 0 { upper < lower } else { lower < upper };
                    if no_iteration {
                        if !plastiter.is_null() {
                            *plastiter = 0;
                        }
                        *pstride = incr;
                        return;
                    }
                    if !plastiter.is_null() {
                        *plastiter = 1;
                    }
                    // the whole iteration space, computed in the loop's own type as libomp does
                    *pstride = if incr > 0 {
                        upper.wrapping_sub(lower).wrapping_add(1) as $st
                    } else {
                        (lower.wrapping_sub(upper).wrapping_add(1) as $st).wrapping_neg()
                    };
                }
            }
        };
    }

    static_init!(__wrap___kmpc_for_static_init_4, __real___kmpc_for_static_init_4, i32, i32);
    static_init!(__wrap___kmpc_for_static_init_4u, __real___kmpc_for_static_init_4u, u32, i32);
    static_init!(__wrap___kmpc_for_static_init_8, __real___kmpc_for_static_init_8, i64, i64);
    static_init!(__wrap___kmpc_for_static_init_8u, __real___kmpc_for_static_init_8u, u64, i64);

    #[cfg(test)]
    mod tests {
        use super::*;

        /// One thread (a test runs outside any parallel region, a team of one): the loop's whole space, as libomp gives
        /// it, for every integer type, both directions and a loop with no iteration.
        #[test]
        fn a_one_thread_static_loop_gets_its_whole_space() {
            let loc = std::ptr::null_mut();
            let (mut last, mut lower, mut upper, mut stride) = (-1, 3, 10, 0);
            // SAFETY: valid pointers to locals
            unsafe {
                __wrap___kmpc_for_static_init_4(loc, 0, 34, &mut last, &mut lower, &mut upper, &mut stride, 1, 1)
            };
            assert_eq!((last, lower, upper, stride), (1, 3, 10, 8));
            let (mut lower, mut upper) = (10, 3);
            // SAFETY: as above
            unsafe {
                __wrap___kmpc_for_static_init_4(loc, 0, 34, &mut last, &mut lower, &mut upper, &mut stride, -1, 1)
            };
            assert_eq!((last, lower, upper, stride), (1, 10, 3, -8));
            let (mut lower, mut upper) = (5, 4);
            // SAFETY: as above
            unsafe {
                __wrap___kmpc_for_static_init_4(loc, 0, 33, &mut last, &mut lower, &mut upper, &mut stride, 1, 2)
            };
            assert_eq!((last, lower, upper, stride), (0, 5, 4, 1));
            let (mut lower, mut upper, mut stride) = (0u64, u64::from(u32::MAX) + 7, 0i64);
            // SAFETY: as above
            unsafe {
                __wrap___kmpc_for_static_init_8u(loc, 0, 34, &mut last, &mut lower, &mut upper, &mut stride, 1, 1)
            };
            assert_eq!((last, stride), (1, i64::from(u32::MAX) + 8));
        }
    }
}
