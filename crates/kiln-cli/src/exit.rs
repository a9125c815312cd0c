//! The exit status of `kiln`: 0 on success, else the status of the first error in the chain that carries one of
//! kiln's stable codes (`Code::exit_code`: 2 for invalid input or a missing thing, 3 for a failed gate, 1 otherwise),
//! and 1 when none does.
//!
//! Key decision: an `anyhow` chain holds `dyn Error`s, which cannot be asked for a trait they implement; the one
//! list below names every error type that implements `HasCode`, and each is found by its type. A library error type
//! missing from it would exit 1: add it there.

use kiln_domain::{Code, ErrorKind, HasCode};

/// Documented in `kiln --help`.
pub(crate) const ERROR: u8 = ErrorKind::Internal.exit_code();
pub(crate) const GATE_FAILED: u8 = ErrorKind::GateFailed.exit_code();
/// `kiln drift` found drift, or `kiln evaluate` found the model degraded: not an error, an outcome a scheduler acts
/// on (documented in `kiln --help`).
#[allow(dead_code)]
pub(crate) const WATCH_ALERT: u8 = 4;

/// Interrupted by Ctrl-C or SIGTERM (`kiln tune`, after marking its running trials), as a shell reports SIGINT.
pub(crate) const INTERRUPTED: i32 = 130;

/// The one list of error types whose code decides the exit status.
macro_rules! coded_errors {
    ($($error:ty),+ $(,)?) => {
        /// `cause` as a coded error, when it is one of the listed types.
        fn coded<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn HasCode> {
            $(
                if let Some(e) = cause.downcast_ref::<$error>() {
                    return Some(e);
                }
            )+
            None
        }
    };
}

coded_errors!(
    kiln_domain::DomainError,
    kiln_domain::PortError,
    kiln_domain::SourceError,
    kiln_features::FeatureError,
    kiln_models::ModelError,
    kiln_models::BundleError,
    kiln_eval::EvalError,
    kiln_registry::RegistryError,
    kiln_score::ScoreError,
    kiln_train::TrainError,
    kiln_data::ReadError,
    kiln_data::FetchError,
    kiln::Error,
    crate::config::ConfigError,
    BadInput,
);

/// Flags, arguments, key files or environment variables the CLI itself finds wrong (exit 2, like every invalid
/// input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(pub(crate) String);

impl HasCode for BadInput {
    fn code(&self) -> Code {
        Code::ConfigInvalid
    }
}

/// `bail!` for invalid input: returns a [`BadInput`] error (exit 2).
macro_rules! bad_input {
    ($($arg:tt)*) => {
        return Err($crate::exit::BadInput(format!($($arg)*)).into())
    };
}
pub(crate) use bad_input;

/// The exit status of a failed command (see the module documentation).
pub(crate) fn code_of(e: &anyhow::Error) -> u8 {
    e.chain().find_map(code_in).map_or(ERROR, Code::exit_code)
}

fn code_in(cause: &(dyn std::error::Error + 'static)) -> Option<Code> {
    // the facade's own checks (an environment variable, a server URI where a folder is needed) carry no library
    // error, and exit 1 as they always did
    if let Some(kiln::Error::Environment { .. } | kiln::Error::NotAFolder { .. }) = cause.downcast_ref::<kiln::Error>()
    {
        return None;
    }
    coded(cause).map(HasCode::code)
}

#[cfg(test)]
mod tests;
