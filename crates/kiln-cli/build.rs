//! Stamps the binary with the git commit it was built from, for `kiln --version` (`unknown` outside a git checkout,
//! `+dirty` after the commit when tracked files had uncommitted changes), and links it so that one-thread OpenMP
//! regions run inline (`src/omp.rs`).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=KILN_COMMIT={commit}{}", if dirty { "+dirty" } else { "" });
    // rebuild the stamp when HEAD moves (a commit, a checkout); the git dir may be a worktree's
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(common) = git(&["rev-parse", "--git-common-dir"])
        {
            println!("cargo:rerun-if-changed={common}/{head_ref}");
        }
    }
    // one-thread OpenMP regions of GCC-compiled code and one-thread static loops of clang-compiled code (LightGBM,
    // XGBoost) take the short way (src/omp.rs, in the binary and its unit-test harness, which cargo links with the
    // same arguments); GNU ld and lld know `--wrap`. libomp's entry points are wrapped only where kiln-xgboost-sys
    // links libomp (GNU libgomp, its fallback, has no `__kmpc_*`)
    println!("cargo::rustc-check-cfg=cfg(kiln_libomp)");
    println!("cargo:rerun-if-env-changed=DEP_XGBOOST_OPENMP");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,--wrap=GOMP_parallel");
        if std::env::var("DEP_XGBOOST_OPENMP").as_deref() == Ok("libomp") {
            println!("cargo:rustc-cfg=kiln_libomp");
            for suffix in ["4", "4u", "8", "8u"] {
                println!("cargo:rustc-link-arg-bins=-Wl,--wrap=__kmpc_for_static_init_{suffix}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
