//! The one table of model kinds: every `model.kind` an experiment can name, with its hyperparameter type. The
//! table makes [`ModelConfig`] (the `model:` section of the experiment file: `kind` picks the row, `params` is
//! that row's type, unknown keys refused), its check into a [`ModelSpec`], and the list of bundle formats a reader
//! knows. Adding a kind is one module that implements [`crate::Checked`] and [`crate::Fitted`] (and, for its
//! params, [`KindParams`]) plus one row here.

use serde::{Deserialize, Serialize};

use crate::kind::{ModelFormat, ModelSpec};
use crate::{
    ElasticNetParams, LassoParams, LightGbmParams, LinearParams, LogisticParams, ModelError, RandomForestParams,
    RidgeParams, XgBoostParams,
};

/// What a row of the table provides: the check of its hyperparameters, and the bundle format its models are
/// written in.
pub trait KindParams {
    /// How the kind's fitted models sit in a bundle.
    const FORMAT: &'static ModelFormat;

    /// Checks every value; `classification` says whether the task is a binary classification (a kind that serves
    /// both picks its classifier then).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    fn check_kind(&self, classification: bool) -> Result<ModelSpec, ModelError>;
}

macro_rules! model_kinds {
    ($($variant:ident($params:ty) = $name:literal),+ $(,)?) => {
        /// The model of an experiment and its hyperparameters: `kind` picks the row of the table, `params` are
        /// that kind's (each with its library's defaults).
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "params", rename_all = "snake_case", deny_unknown_fields)]
        pub enum ModelConfig {
            $($variant($params)),+
        }

        impl ModelConfig {
            /// Every `model.kind`, in the table's order.
            pub const KINDS: &'static [&'static str] = &[$($name),+];

            /// The `model.kind` as written in the experiment file.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(ModelConfig::$variant(_) => $name),+
                }
            }

            /// The checked model.
            ///
            /// # Errors
            /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
            pub fn check(&self, classification: bool) -> Result<ModelSpec, ModelError> {
                match self {
                    $(ModelConfig::$variant(p) => p.check_kind(classification)),+
                }
            }
        }

        /// Every bundle format a kind of the table writes (a family's appears once per kind).
        const FORMATS: &[&ModelFormat] = &[$(<$params as KindParams>::FORMAT),+];
    };
}

model_kinds! {
    Lightgbm(LightGbmParams) = "lightgbm",
    Xgboost(XgBoostParams) = "xgboost",
    RandomForest(RandomForestParams) = "random_forest",
    Linear(LinearParams) = "linear",
    Ridge(RidgeParams) = "ridge",
    Lasso(LassoParams) = "lasso",
    ElasticNet(ElasticNetParams) = "elastic_net",
    Logistic(LogisticParams) = "logistic",
}

/// The bundle format whose `model_kind` is `name`.
pub(crate) fn format_named(name: &str) -> Option<&'static ModelFormat> {
    FORMATS.iter().copied().find(|f| f.name == name)
}

/// The distinct `model_kind`s a bundle may have, in the table's order.
pub(crate) fn format_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for f in FORMATS {
        if !names.contains(&f.name) {
            names.push(f.name);
        }
    }
    names
}
