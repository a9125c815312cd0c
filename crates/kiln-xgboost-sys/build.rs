//! Builds XGBoost 3.2.0 as a static library from the official PyPI source distribution committed beside this file
//! (`xgboost-3.2.0.tar.gz`, whose `cpp_src/` is XGBoost's C++ tree with dmlc-core). The archive's sha256 is checked
//! before anything is unpacked, so the build reads exactly the sdist that PyPI serves; it is unpacked into `OUT_DIR`
//! and configured with CMake for the CPU only (OpenMP on; no tests, GPU, federated learning or plugins), as a
//! Release build without machine-specific flags, so the binary runs on any x86-64 (or aarch64) machine.
//! Needs a C++17 compiler, make and CMake >= 3.18 on PATH; nothing is downloaded.
//!
//! On Linux the compiler is clang with LLVM's OpenMP runtime (libomp) when both are installed: XGBoost's split
//! search (`CalcSplitGain`, `EnumerateSplit`) compiled by Debian 12's GCC 12 trains 5-10% slower than PyPI's wheel
//! (GCC 14), by clang 14 about 3% faster (BENCHMARKS.md, "XGBoost built by clang"). A process can hold one OpenMP
//! runtime only (both export `omp_get_thread_num` and the rest, and the first one loaded answers every caller), so
//! LightGBM runs on libomp too: the `-lgomp` that `lightgbm3-sys` asks for finds a linker script here that names
//! libomp (LightGBM is compiled by clang as well, `.cargo/config.toml`; compiled by GCC it would call libomp's
//! libgomp-compatible entry points). Without clang and libomp the build falls back to the default C++ compiler and
//! libgomp, with a warning; LightGBM must then be compiled by GCC too (`CXX_x86_64_unknown_linux_gnu=g++`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const ARCHIVE: &str = "xgboost-3.2.0.tar.gz";
/// The sha256 PyPI publishes for `xgboost-3.2.0.tar.gz`.
const ARCHIVE_SHA256: &str = "99b0e9a2a64896cdaf509c5e46372d336c692406646d20f2af505003c0c5d70d";
/// The folder of the C++ tree inside the archive.
const CPP_SRC: &str = "xgboost-3.2.0/cpp_src";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let archive = manifest_dir.join(ARCHIVE);
    println!("cargo:rerun-if-changed={}", archive.display());
    println!("cargo:rerun-if-changed=build.rs");

    let target = env::var("TARGET").expect("cargo sets TARGET");
    // the library is built once per target folder and target triple, not once per `OUT_DIR`: `cargo test` and
    // `cargo build` give this build script different feature sets (so different `OUT_DIR`s), and each C++ build
    // takes about 6 minutes on 2 cores. Delete the folder to rebuild it.
    let toolchain = if target.contains("linux") { clang_with_libomp() } else { None };
    if toolchain.is_none() && target.contains("linux") {
        println!(
            "cargo:warning=clang with LLVM's OpenMP (libomp) not found: XGBoost is built with the default C++ compiler \
             and libgomp, and trains 5-10% slower (install clang and libomp-dev, then `cargo clean -p kiln-xgboost-sys` \
             so that this build script runs again; until then LightGBM must be compiled by GCC too: \
             CXX_x86_64_unknown_linux_gnu=g++)"
        );
    }
    let shared = shared_dir(&out_dir, &target, toolchain.is_some());
    if !shared.join("lib/libxgboost.a").is_file() {
        build(&unpack(&archive, &out_dir.join("src")), &out_dir, &shared, toolchain.as_ref());
    }
    println!("cargo:rustc-link-search=native={}", shared.join("lib").display());
    println!("cargo:rustc-link-lib=static=xgboost");
    println!("cargo:rustc-link-lib=static=dmlc");
    // which OpenMP runtime the process gets, for the build scripts of crates that depend on this one directly
    // (`DEP_XGBOOST_OPENMP`: kiln-cli wraps libomp's entry points only where libomp is linked)
    let libomp = target.contains("apple") || toolchain.is_some();
    println!("cargo:openmp={}", if libomp { "libomp" } else { "libgomp" });
    if target.contains("apple") {
        println!("cargo:rustc-link-lib=dylib=c++");
        println!("cargo:rustc-link-lib=dylib=omp");
    } else if let Some(clang) = &toolchain {
        println!("cargo:rustc-link-lib=dylib=stdc++");
        // the folder whose `libgomp.so` is a linker script naming libomp, so that every `-lgomp` (LightGBM's)
        // links libomp: one OpenMP runtime in the process
        let redirect = out_dir.join("gomp-is-libomp");
        fs::create_dir_all(&redirect).unwrap_or_else(|e| panic!("creating {}: {e}", redirect.display()));
        let script = format!(
            "/* -lgomp links LLVM's libomp (kiln-xgboost-sys/build.rs) */\nINPUT({})\n",
            clang.libomp.display()
        );
        fs::write(redirect.join("libgomp.so"), script)
            .unwrap_or_else(|e| panic!("writing {}: {e}", redirect.join("libgomp.so").display()));
        println!("cargo:rustc-link-search=native={}", redirect.display());
        println!("cargo:rustc-link-search=native={}", clang.libomp.parent().expect("an absolute path").display());
        println!("cargo:rustc-link-lib=dylib=omp");
    } else {
        println!("cargo:rustc-link-lib=dylib=stdc++");
        println!("cargo:rustc-link-lib=dylib=gomp");
    }
}

/// clang and clang++ with LLVM's OpenMP runtime beside them.
struct Clang {
    cc: PathBuf,
    cxx: PathBuf,
    /// `libomp.so`, absolute
    libomp: PathBuf,
}

/// clang and clang++ on PATH (`KILN_XGBOOST_CLANG=0` turns them down) and their libomp.so: from
/// `-print-file-name=libomp.so`, else `<resource dir>/../../libomp.so` (Debian's clang 14 answers only the latter).
fn clang_with_libomp() -> Option<Clang> {
    println!("cargo:rerun-if-env-changed=KILN_XGBOOST_CLANG");
    if env::var("KILN_XGBOOST_CLANG").is_ok_and(|v| v == "0") {
        return None;
    }
    let cc = on_path("clang")?;
    let cxx = on_path("clang++")?;
    let ask = |arg: &str| {
        let out = std::process::Command::new(&cxx).arg(arg).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| PathBuf::from(text.trim()))
    };
    let libomp = ask("-print-file-name=libomp.so")
        .filter(|p| p.is_absolute() && p.is_file())
        .or_else(|| ask("-print-resource-dir").map(|r| r.join("../../libomp.so")).filter(|p| p.is_file()))?;
    let libomp = fs::canonicalize(&libomp).ok()?;
    // the headers too: `omp.h` is in libomp's -dev package with the library
    let header = std::process::Command::new(&cxx)
        .args(["-fopenmp", "-x", "c++", "-fsyntax-only", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(b"#include <omp.h>\nint main() { return omp_get_max_threads(); }\n")?;
            child.wait()
        });
    if !header.is_ok_and(|s| s.success()) {
        return None;
    }
    Some(Clang { cc, cxx, libomp })
}

/// `name` in a folder of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Bump when the CMake options below change, so that a library built with the old ones is not reused.
const OPTIONS_VERSION: u32 = 2;

/// `<target folder>/<profile>/xgboost-3.2.0-<sha8>-<triple>-v<options>[-clang]`, from `OUT_DIR`
/// (`<target folder>/<profile>/build/<package>-<hash>/out`); `OUT_DIR` itself if it is not laid out so.
fn shared_dir(out_dir: &Path, target: &str, clang: bool) -> PathBuf {
    let compiler = if clang { "-clang" } else { "" };
    let name = format!("xgboost-3.2.0-{}-{target}-v{OPTIONS_VERSION}{compiler}", &ARCHIVE_SHA256[..8]);
    match out_dir.ancestors().nth(3) {
        Some(profile_dir) if out_dir.ends_with("out") => profile_dir.join(name),
        _ => out_dir.join(name),
    }
}

/// Configures, builds and installs the library from `source` in a folder of this `OUT_DIR`, then moves the
/// installed folder to `shared` (a rename, so another build script sees a whole library or none).
fn build(source: &Path, out_dir: &Path, shared: &Path, clang: Option<&Clang>) {
    let mut config = cmake::Config::new(source);
    if let Some(clang) = clang {
        config.define("CMAKE_C_COMPILER", &clang.cc).define("CMAKE_CXX_COMPILER", &clang.cxx);
    }
    // a folder per compiler: CMake keeps the compiler of its first configure in the cache
    let dst = config
        .out_dir(out_dir.join(if clang.is_some() { "cmake-clang" } else { "cmake" }))
        // XGBoost's speed does not depend on the Cargo profile: a debug build of kiln still trains at full speed
        .profile("Release")
        .define("BUILD_STATIC_LIB", "ON")
        .define("USE_OPENMP", "ON")
        .define("USE_CUDA", "OFF")
        .define("USE_NCCL", "OFF")
        .define("PLUGIN_FEDERATED", "OFF")
        .define("PLUGIN_SYCL", "OFF")
        .define("PLUGIN_RMM", "OFF")
        .define("GOOGLE_TEST", "OFF")
        .define("BUILD_DEPRECATED_CLI", "OFF")
        .define("ADD_PKGCONFIG", "OFF")
        .define("BUILD_WITH_GIT_HASH", "OFF")
        .define("CMAKE_INSTALL_LIBDIR", "lib")
        .build();
    // only the installed headers and static libraries travel; the build tree stays in this OUT_DIR
    let staged = out_dir.join("installed");
    if staged.exists() {
        fs::remove_dir_all(&staged).unwrap_or_else(|e| panic!("removing {}: {e}", staged.display()));
    }
    fs::create_dir_all(staged.join("lib")).unwrap_or_else(|e| panic!("creating {}: {e}", staged.display()));
    for lib in ["libxgboost.a", "libdmlc.a"] {
        fs::copy(dst.join("lib").join(lib), staged.join("lib").join(lib))
            .unwrap_or_else(|e| panic!("copying {lib} from {}: {e}", dst.display()));
    }
    if let Some(parent) = shared.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    // another build script may have finished first: its library is the same, keep it
    if fs::rename(&staged, shared).is_err() && !shared.join("lib/libxgboost.a").is_file() {
        panic!("cannot move {} to {}", staged.display(), shared.display());
    }
}

/// Checks the archive's sha256 and unpacks its C++ tree under `into` (once per `OUT_DIR`); returns the tree's path.
fn unpack(archive: &Path, into: &Path) -> PathBuf {
    let bytes = fs::read(archive).unwrap_or_else(|e| panic!("reading {}: {e}", archive.display()));
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        digest == ARCHIVE_SHA256,
        "{} has sha256 {digest}, not the {ARCHIVE_SHA256} of PyPI's xgboost 3.2.0 sdist",
        archive.display()
    );
    let source = into.join(CPP_SRC);
    let done = into.join(".unpacked");
    if fs::read_to_string(&done).is_ok_and(|d| d == digest) {
        return source;
    }
    if into.exists() {
        fs::remove_dir_all(into).unwrap_or_else(|e| panic!("removing {}: {e}", into.display()));
    }
    fs::create_dir_all(into).unwrap_or_else(|e| panic!("creating {}: {e}", into.display()));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let entries = tar.entries().unwrap_or_else(|e| panic!("reading {}: {e}", archive.display()));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", archive.display()));
        let path = entry.path().unwrap_or_else(|e| panic!("a path in {}: {e}", archive.display())).into_owned();
        if path.starts_with(CPP_SRC) {
            // `unpack_in` refuses paths that would leave `into`
            entry.unpack_in(into).unwrap_or_else(|e| panic!("unpacking {}: {e}", path.display()));
        }
    }
    assert!(source.join("CMakeLists.txt").is_file(), "{} holds no {CPP_SRC}/CMakeLists.txt", archive.display());
    fs::write(&done, &digest).unwrap_or_else(|e| panic!("writing {}: {e}", done.display()));
    source
}
