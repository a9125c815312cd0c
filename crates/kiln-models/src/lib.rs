//! kiln's model kinds and the model bundle: owns the estimator adapters (LightGBM, XGBoost, smartcore), the one
//! table of kinds an experiment can name ([`ModelConfig`]), and the bundle format; it does not own features,
//! training, tracking or any I/O beyond the bundle folder it is given.
//!
//! Each family implements [`Checked`] (hyperparameters that passed their `check()` and can fit) and [`Fitted`] (a
//! fitted model: predict, importance, native file) and describes its bundle file once ([`ModelFormat`]); the rest
//! of kiln holds a [`ModelSpec`] or a [`FittedModel`] and never matches on the kind. The bundle is an MLflow model
//! directory (native model + `MLmodel`) with kiln's fitted pipeline and checksummed metadata beside it, generic over
//! the pipeline type, so this crate does not depend on `kiln-features`. The boosters' predictions run on native tree
//! evaluation (`native`), bit for bit the libraries' own, with the library as the fallback.

mod bundle;
mod checks;
mod curve;
mod error;
mod kind;
mod kinds;
mod lightgbm;
mod native;
mod smartcore_adapter;
mod xgboost;

pub use bundle::{
    BUNDLE_FORMAT_VERSION, Bundle, BundleMetadata, ColSpec, KILN_VERSION, ModelInterface, PROFILE, PYFUNC_LOADER,
    PerSeries, read_bundle, verify_bundle, write_bundle, write_bundle_with,
};
pub use curve::{EvalCurve, EvalData};
pub use error::{BundleError, ModelError};
pub use kind::{Checked, FitData, Fitted, FittedModel, ModelFormat, ModelSpec};
pub use kinds::{KindParams, ModelConfig};
pub use lightgbm::{
    CheckedLightGbm, FitCache, LIGHTGBM_VERSION, LgbMetric, LgbObjective, LightGbmModel, LightGbmParams,
};
pub use smartcore_adapter::{
    CheckedSmartcore, ElasticNetParams, LassoParams, LinearParams, LinearSolver, LogisticParams, RandomForestParams,
    RidgeParams, RidgeSolver, SMARTCORE_VERSION, SmartcoreKind, SmartcoreModel,
};
pub use xgboost::{
    CheckedXgBoost, XGBOOST_VERSION, XgBoostModel, XgBoostParams, XgbMetric, XgbObjective, XgbTreeMethod,
};

/// The threads a library trains with when the experiment does not say: every core this process may use (its CPU
/// quota in a container), at least one.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
