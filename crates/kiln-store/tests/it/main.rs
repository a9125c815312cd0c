//! kiln-store's integration tests, one binary: the contract suite of the tracking ports against both stores, and
//! `kiln sync` against a real MLflow server.

mod contract;
mod sync;
