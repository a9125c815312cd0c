//! kiln-cli's integration tests, in one binary: the architecture rules, the `kiln` binary's behaviour on bad input
//! (the error must name the file, line, column or key), and `kiln predict` streaming a file in chunks.

mod architecture;
mod cli_errors;
mod predict_stream;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the tests run kiln there, so relative paths in the shipped configs resolve).
pub(crate) fn repo() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs kiln in the repository root; returns (exit code, stderr).
pub(crate) fn kiln(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).current_dir(repo()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}
