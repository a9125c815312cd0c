//! The errors of kiln-registry. A port failure keeps the port's code and gains the operation it interrupted;
//! the other variants name the model, version, alias or stage at fault.

use kiln_domain::{Code, PortError, Stage};

/// What can go wrong in a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry port failed; the message says what kiln was doing. (The port's message is part of this
    /// message, so the port error is not also exposed as `source()`; the chain would print it twice.)
    #[error("{context}: {port}")]
    Port { context: String, port: PortError },
    /// A model name, alias, run id or artifact path that the registry (or a reference) cannot hold.
    #[error("invalid {what} '{value}': {reason}")]
    Invalid { what: &'static str, value: String, reason: String },
    #[error("no registered model '{name}'")]
    NoSuchModel { name: String },
    #[error("model '{name}' has no version {version}")]
    NoSuchVersion { name: String, version: u64 },
    #[error("no version of '{name}' has alias '{alias}'")]
    NoSuchAlias { name: String, alias: String },
    #[error("no version of '{name}' is in stage {}", stage.as_str())]
    NoSuchStage { name: String, stage: Stage },
    #[error("model '{name}' has no versions")]
    NoVersions { name: String },
    #[error("cannot roll back alias '{alias}' of '{name}': no version below {current} that is not archived")]
    NoPreviousVersion { name: String, alias: String, current: u64 },
    /// A version's `source` that kiln cannot turn into a run id and an artifact path.
    #[error("version {version} of '{name}' has source '{uri}': {reason}")]
    BadSource { name: String, version: u64, uri: String, reason: String },
}

impl RegistryError {
    /// The stable code of this error; a port failure keeps the port's code.
    pub fn code(&self) -> Code {
        match self {
            RegistryError::Port { port, .. } => port.code,
            RegistryError::Invalid { .. } | RegistryError::BadSource { .. } => Code::ModelRefInvalid,
            RegistryError::NoSuchModel { .. }
            | RegistryError::NoSuchVersion { .. }
            | RegistryError::NoSuchAlias { .. }
            | RegistryError::NoSuchStage { .. }
            | RegistryError::NoVersions { .. }
            | RegistryError::NoPreviousVersion { .. } => Code::NotFound,
        }
    }

    pub(crate) fn port(context: impl Into<String>) -> impl FnOnce(PortError) -> RegistryError {
        let context = context.into();
        move |port| RegistryError::Port { context, port }
    }
}

impl kiln_domain::HasCode for RegistryError {
    fn code(&self) -> Code {
        RegistryError::code(self)
    }
}
