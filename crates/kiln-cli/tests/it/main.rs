//! kiln-cli's integration tests, in one binary: the architecture rules, and the `kiln` binary's behaviour on bad
//! input (the error must name the file, line, column or key).

mod architecture;
mod cli_errors;
