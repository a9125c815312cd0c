//! kiln's estimator adapters and the model bundle. Today one family, LightGBM (`lightgbm3`): checked
//! hyperparameters -> `fit` -> a fitted model that predicts in f64 exactly as Python's LightGBM does. The bundle is an
//! MLflow model directory (native model + `MLmodel`) with kiln's fitted pipeline and checksummed metadata beside it.
//!
//! The bundle code is generic over the pipeline type, so this crate does not depend on `kiln-features`; it does no
//! I/O beyond the bundle folder it is given and reads no config.

mod bundle;
mod curve;
mod error;
mod lightgbm;
mod smartcore_adapter;
mod xgboost;

pub use bundle::{
    BUNDLE_FORMAT_VERSION, Bundle, BundleMetadata, FittedModel, KILN_VERSION, ModelKind, read_bundle, verify_bundle,
    write_bundle,
};
pub use curve::{EvalCurve, EvalData};
pub use error::{BundleError, ModelError};
pub use lightgbm::{CheckedLightGbm, LIGHTGBM_VERSION, LgbMetric, LgbObjective, LightGbmModel, LightGbmParams};
pub use smartcore_adapter::{
    CheckedSmartcore, ElasticNetParams, LassoParams, LinearParams, LinearSolver, LogisticParams, RandomForestParams,
    RidgeParams, RidgeSolver, SMARTCORE_VERSION, SmartcoreKind, SmartcoreModel,
};
pub use xgboost::{
    CheckedXgBoost, XGBOOST_VERSION, XgBoostModel, XgBoostParams, XgbMetric, XgbObjective, XgbTreeMethod,
};

#[cfg(test)]
mod tests;
