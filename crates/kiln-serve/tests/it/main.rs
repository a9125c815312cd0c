//! Router tests without a socket (`tower::ServiceExt::oneshot`), on real LightGBM models trained here by
//! `kiln_train::train` into a local store in a temp folder: next-day EUR/USD (a forecast from raw windows) and Telco
//! churn (a tabular classifier with imputation, binning, a ratio and one-hot encoding). The models are trained once
//! per test binary and read back from their bundles, as `kiln serve` reads them. `connections` alone serves a real
//! port, for what only a socket shows (timeouts, the connection cap, shutdown).

mod connections;
mod forecast;
mod helpers;
mod observe;
mod ops;
mod panel;
mod reload;
mod robustness;
mod tabular;
