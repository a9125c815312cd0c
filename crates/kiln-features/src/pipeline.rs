//! The fitted feature pipeline: what a model bundle stores (`kiln/pipeline.json`) so that scoring and serving build
//! exactly the features the model was trained on.

use serde::{Deserialize, Serialize};

use crate::{FeatureError, FeatureRow, FeatureTable, TimeSeriesRecipe};
use kiln_domain::Frame;

/// A recipe together with the feature names it produced at training time. The kernels are stateless (every value
/// is a function of rows `<= t`), so the recipe itself is the fitted state; the names pin the column order the
/// model expects and catch a recipe whose output changed between kiln versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedPipeline {
    pub recipe: TimeSeriesRecipe,
    pub feature_names: Vec<String>,
}

impl FittedPipeline {
    pub fn new(recipe: TimeSeriesRecipe, feature_names: &[String]) -> FittedPipeline {
        FittedPipeline { recipe, feature_names: feature_names.to_vec() }
    }

    /// The training-time feature table of `frame`, checked against the stored names.
    ///
    /// # Errors
    /// What [`TimeSeriesRecipe::build_table`] returns, or [`FeatureError::Spec`] when the recipe now produces other
    /// columns than it did at training time.
    pub fn transform(&self, frame: &Frame) -> Result<FeatureTable, FeatureError> {
        let table = self.recipe.build_table(frame)?;
        self.check_names(&table.x.names)?;
        Ok(table)
    }

    /// The features of the last row of a window, checked against the stored names.
    ///
    /// # Errors
    /// What [`TimeSeriesRecipe::build_last_row`] returns, or a name mismatch as for [`FittedPipeline::transform`].
    pub fn transform_last(&self, window: &Frame) -> Result<FeatureRow, FeatureError> {
        self.check_names(&self.recipe.feature_names())?;
        self.recipe.build_last_row(window)
    }

    fn check_names(&self, names: &[String]) -> Result<(), FeatureError> {
        if names == self.feature_names.as_slice() {
            return Ok(());
        }
        Err(FeatureError::spec(
            "feature_names",
            format!("the recipe makes {names:?}, but the model was trained on {:?}", self.feature_names),
        ))
    }
}
