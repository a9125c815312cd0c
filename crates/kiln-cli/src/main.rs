//! `kiln`: the composition root. Parses arguments, loads settings, builds the adapters, runs one command, prints the
//! whole error chain and exits non-zero on failure. The only crate with `anyhow` and `main`, and the only one that
//! reads flags and config files (MLflow's client variables are read by the `kiln` facade it loads models with).

mod batch;
mod cli;
mod commands;
mod config;
mod progress;
mod registry_cmd;
mod serve_cmd;
mod settings;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `kiln --help`.
pub(crate) mod exit {
    pub(crate) const ERROR: u8 = 1;
    pub(crate) const INVALID_INPUT: u8 = 2;
    pub(crate) const GATE_FAILED: u8 = 3;
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", kiln_domain::chain_text(&*e));
            ExitCode::from(commands::exit_code_of(&e))
        }
    }
}
