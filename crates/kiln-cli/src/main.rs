//! `kiln`: the composition root. Parses arguments, loads settings, builds the adapters, runs one command, prints the
//! whole error chain and exits non-zero on failure. The only crate with `anyhow` and `main`, and the only one that
//! reads flags and config files (MLflow's client variables are read by the `kiln` facade it loads models with).

mod backtest_cmd;
mod batch;
mod cli;
mod commands;
mod config;
mod drift_cmd;
mod evaluate_cmd;
mod exit;
mod features_cmd;
mod fetch_cmd;
mod malloc;
#[cfg(target_os = "linux")]
mod omp;
mod progress;
mod registry_cmd;
mod retrain_cmd;
mod serve_cmd;
mod settings;
mod table;
mod tune_cmd;
mod validate_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", kiln_domain::chain_text(&*e));
            ExitCode::from(exit::code_of(&e))
        }
    }
}
