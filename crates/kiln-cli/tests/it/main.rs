//! kiln-cli's integration tests, in one binary: the architecture rules, the `kiln` binary's behaviour on bad input
//! (the error must name the file, line, column or key), and `kiln predict` streaming a file in chunks.

mod architecture;
mod cli_errors;
mod predict_stream;
