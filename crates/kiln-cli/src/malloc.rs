//! glibc's malloc told to keep the memory a streaming command frees, for it to allocate again.
//!
//! A command that streams a file chunk by chunk (`kiln validate`) allocates and frees the same few hundred
//! kilobytes of vectors for every chunk. glibc serves an allocation of 128 KiB or more with its own `mmap` until it
//! has seen one freed, and gives the top of its heap back to the kernel (`madvise`, `sbrk`) whenever more than 128
//! KiB of it is free; each chunk's vectors then come back as fresh pages, zeroed by the kernel on their first
//! touch. On the 1,000,000-row Parquet file of `scripts/bench_validate.py` that was half of the process's page
//! faults (28,400 -> 14,900) and a sixth of its CPU time (BENCHMARKS.md, "Validation, a fourth time"). Raising
//! both thresholds keeps the freed chunk for the next one; the process's peak memory stays what its largest chunks
//! need (its own peak, not the sum), and what it frees is given back when the process ends.
#![allow(unsafe_code)] // one call into the C library

/// The largest allocation served from the heap rather than its own mapping (glibc's maximum is 32 MiB on 64-bit).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// The free memory at the top of the heap that glibc keeps before giving it back.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Keeps freed chunks of up to [`MMAP_THRESHOLD`] and up to [`TRIM_THRESHOLD`] of free heap top for reuse, for the
/// rest of the process (all its threads' arenas). Elsewhere than glibc, nothing.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // glibc's `malloc.h`
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: `mallopt` takes two integers and changes malloc's parameters under its own lock; a value it
        // refuses leaves the parameter as it was (returns 0), which changes nothing but the speed
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
