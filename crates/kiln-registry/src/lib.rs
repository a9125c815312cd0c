//! Model lifecycle rules over the [`ModelRegistry`](kiln_domain::ModelRegistry) port, not the stores that implement
//! it: register a run's bundle,
//! promote a version (alias or stage), roll an alias back, and resolve a [`ModelRef`](kiln_domain::ModelRef) to the
//! run artifacts that hold the bundle.
//!
//! Key decisions: plain functions over `&dyn ModelRegistry`, so the same rules hold for the local MLflow-layout
//! store and the MLflow server; names and aliases are checked here with MLflow's rules, so both stores refuse the
//! same input with the same message. This crate moves no files: downloading the resolved artifacts is the
//! caller's job, through the `ArtifactStore` port.

mod error;
mod lifecycle;
mod names;
mod resolve;

pub use error::RegistryError;
pub use lifecycle::{PromoteTarget, promote, register, rollback, versions};
pub use resolve::{Resolution, Resolved, parse_source, resolve};

#[cfg(test)]
mod tests;
