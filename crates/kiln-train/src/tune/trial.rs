//! A study's trials as Optuna records them (`trials`, `trial_params`, `trial_values`,
//! `trial_intermediate_values`, `trial_system_attributes`), so that a study maps 1:1 onto Optuna's RDB schema.
//! Plain data: no storage here.

use std::collections::BTreeMap;

use super::space::Distribution;

/// A trial's state, with Optuna's names (stored by the RDB) and numbers (written by the journal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Fail,
    Waiting,
}

impl TrialState {
    /// Optuna's name (`COMPLETE`).
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
            TrialState::Waiting => "WAITING",
        }
    }

    /// Optuna's number (`RUNNING = 0` .. `WAITING = 4`).
    pub fn number(self) -> i64 {
        match self {
            TrialState::Running => 0,
            TrialState::Complete => 1,
            TrialState::Pruned => 2,
            TrialState::Fail => 3,
            TrialState::Waiting => 4,
        }
    }

    /// The state of an Optuna name or number.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The state of Optuna's number.
    pub fn from_number(n: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.number() == n)
    }

    const ALL: [TrialState; 5] =
        [TrialState::Running, TrialState::Complete, TrialState::Pruned, TrialState::Fail, TrialState::Waiting];

    /// Complete, pruned or failed (Optuna's `is_finished`).
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Fail)
    }
}

/// Which way the objective is better, with Optuna's `StudyDirection` names and numbers (`NOT_SET = 0` is not a
/// direction a study optimises in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// Optuna's name (`MINIMIZE`).
    pub fn name(self) -> &'static str {
        match self {
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        }
    }

    /// Optuna's number (`MINIMIZE = 1`, `MAXIMIZE = 2`).
    pub fn number(self) -> i64 {
        match self {
            Direction::Minimize => 1,
            Direction::Maximize => 2,
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }
}

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
