//! A study's trials as Optuna records them (`trials`, `trial_params`, `trial_values`,
//! `trial_intermediate_values`, `trial_system_attributes`), so that a study maps 1:1 onto Optuna's RDB schema.
//! Plain data: no storage here.

use std::collections::BTreeMap;

use super::space::Distribution;

pub use kiln_domain::{StudyDirection as Direction, TrialState};

/// One trial of a single-objective study, as Optuna's `FrozenTrial`: `params` hold the internal representation
/// (`trial_params.param_value`), `distributions` the distribution each was drawn from, `system_attrs` the JSON
/// values samplers and pruners keep (`grid_id`, `completed_rung_0`, ..., as Optuna names them).
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenTrial {
    /// 0-based, in the order trials were created.
    pub number: i64,
    pub state: TrialState,
    pub params: BTreeMap<String, f64>,
    pub distributions: BTreeMap<String, Distribution>,
    /// the objective's value (set once complete).
    pub value: Option<f64>,
    /// the values reported at each step (NaN allowed, as Optuna stores it).
    pub intermediate_values: BTreeMap<i64, f64>,
    pub system_attrs: BTreeMap<String, serde_json::Value>,
}

impl FrozenTrial {
    /// A new running trial with nothing sampled yet.
    pub fn running(number: i64) -> Self {
        FrozenTrial {
            number,
            state: TrialState::Running,
            params: BTreeMap::new(),
            distributions: BTreeMap::new(),
            value: None,
            intermediate_values: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
        }
    }

    /// The last step with a reported value.
    pub fn last_step(&self) -> Option<i64> {
        self.intermediate_values.keys().next_back().copied()
    }
}
