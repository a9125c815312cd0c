//! The facade's error: one typed enum, so that a service can tell a wrong reference (fix the config) from an
//! unreachable server (keep the model it has and retry) by [`Error::code`] instead of parsing a message.

use kiln_domain::{Code, DomainError, PortError};
use kiln_models::BundleError;
use kiln_registry::RegistryError;
use kiln_score::ScoreError;

/// What can go wrong opening a store, loading a model or scoring a frame. Every message names what it was about
/// (the reference, the URI, the column); the wrapped library error stays reachable through
/// [`std::error::Error::source`] or, for the transparent variants, is the message itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed model reference (the message names it), or a frame that does not fit (a missing or mistyped
    /// column).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The registry has no such model, alias, stage or version, or a version's source cannot be parsed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The tracking store failed (not found, unreachable, refused).
    #[error(transparent)]
    Store(#[from] PortError),
    /// One of MLflow's client environment variables has a value kiln cannot use.
    #[error("{message}")]
    Environment { message: String },
    /// An `http(s)://` tracking URI the MLflow client cannot use.
    #[error("invalid tracking URI")]
    TrackingUri(#[source] PortError),
    /// A folder tracking store that cannot be opened or created.
    #[error("cannot open the tracking store '{uri}'")]
    OpenStore {
        uri: String,
        #[source]
        source: PortError,
    },
    /// A server URI where only a folder store will do.
    #[error("'{uri}' is a server; a folder is needed here")]
    NotAFolder { uri: String },
    /// Downloading a bundle from a server (into the local cache) failed.
    #[error("cannot fetch the bundle of {reference} ({what}) from {server}")]
    Fetch {
        reference: String,
        /// `run <id>` or `logged model <id>`
        what: String,
        server: String,
        #[source]
        source: PortError,
    },
    /// The bundle folder is missing, incomplete, or a file does not match its checksum.
    #[error("cannot load the model bundle of {reference}")]
    Bundle {
        reference: String,
        #[source]
        source: BundleError,
    },
    /// Scoring a frame failed (too few rows for the features, a bad value, the model).
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl Error {
    /// The stable code of this error (its [`kiln_domain::ErrorKind`] says whether the input, a missing thing, the
    /// stored data or an outside system is at fault).
    pub fn code(&self) -> Code {
        match self {
            Error::Domain(e) => e.code(),
            Error::Registry(e) => e.code(),
            Error::Store(e) | Error::TrackingUri(e) => e.code,
            Error::OpenStore { source, .. } | Error::Fetch { source, .. } => source.code,
            Error::Environment { .. } | Error::NotAFolder { .. } => Code::ConfigInvalid,
            Error::Bundle { source, .. } => source.code(),
            Error::Score(e) => e.code(),
        }
    }
}

/// `Result` with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl kiln_domain::HasCode for Error {
    fn code(&self) -> Code {
        Error::code(self)
    }
}
