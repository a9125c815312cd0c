//! The port of a hyperparameter study's storage, in Optuna's terms so that a study kiln writes is an Optuna study:
//! a study has one direction and numbered trials; a trial has a state, parameters in Optuna's internal
//! representation (a float; an int as a float; a categorical choice as its index) with their distribution as
//! Optuna's JSON text, an objective value, intermediate values by step (the folds' scores), user attributes and a
//! heartbeat. The adapters (`kiln-store`'s SQLite and PostgreSQL storages in Optuna's RDB schema) keep it; the tuner
//! only talks to this trait.

use std::time::Duration;

use crate::PortError;

/// Which way a study's objective is better (Optuna's `StudyDirection`, with its names, stored by the RDB, and numbers,
/// written by the journal; `NOT_SET = 0` is not a direction a study optimises in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudyDirection {
    Minimize,
    Maximize,
}

impl StudyDirection {
    /// Optuna's name (`MINIMIZE`).
    pub fn name(self) -> &'static str {
        match self {
            StudyDirection::Minimize => "MINIMIZE",
            StudyDirection::Maximize => "MAXIMIZE",
        }
    }

    /// Optuna's number (`MINIMIZE = 1`, `MAXIMIZE = 2`).
    pub fn number(self) -> i64 {
        match self {
            StudyDirection::Minimize => 1,
            StudyDirection::Maximize => 2,
        }
    }

    /// The direction of an Optuna name.
    pub fn from_name(name: &str) -> Option<StudyDirection> {
        [StudyDirection::Minimize, StudyDirection::Maximize].into_iter().find(|d| d.name() == name)
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            StudyDirection::Minimize => a < b,
            StudyDirection::Maximize => a > b,
        }
    }
}

/// A trial's state (Optuna's `TrialState`, with its names, stored by the RDB, and numbers, written by the journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Fail,
    Waiting,
}

impl TrialState {
    const ALL: [TrialState; 5] =
        [TrialState::Running, TrialState::Complete, TrialState::Pruned, TrialState::Fail, TrialState::Waiting];

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

    /// The state of an Optuna name.
    pub fn from_name(name: &str) -> Option<TrialState> {
        TrialState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The state of an Optuna number.
    pub fn from_number(n: i64) -> Option<TrialState> {
        TrialState::ALL.into_iter().find(|s| s.number() == n)
    }

    /// Complete, pruned or failed (Optuna's `is_finished`).
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Fail)
    }
}

/// One parameter of a trial as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredParam {
    pub name: String,
    /// Optuna's internal representation (a categorical's index into its choices)
    pub internal: f64,
    /// Optuna's `distribution_json`, e.g. `{"name": "FloatDistribution", "attributes": {...}}`
    pub distribution_json: String,
}

/// A trial as stored, with everything a sampler, a pruner or a leaderboard reads.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrial {
    /// the storage's id (unique across studies)
    pub id: i64,
    /// 0, 1, 2, ... within the study, in creation order
    pub number: i64,
    pub state: TrialState,
    pub params: Vec<StoredParam>,
    /// the objective value (a complete trial's; ±inf allowed)
    pub value: Option<f64>,
    /// intermediate values by step, in step order (NaN allowed)
    pub intermediate: Vec<(i64, f64)>,
    /// user attributes as JSON text, by key
    pub user_attrs: Vec<(String, String)>,
    /// the parameters an enqueued trial was given (Optuna's system attribute `fixed_params`, a JSON object of
    /// external values, as `study.enqueue_trial` writes it)
    pub fixed_params: Option<String>,
    /// the system attributes `tpe:relative_params:<i>` as (key, JSON text): the chunks of the values TPE drew
    /// jointly for a running trial and shared with the other workers, as Optuna's TPE writes them
    pub relative_params: Vec<(String, String)>,
    /// UTC times as stored, `YYYY-MM-DD HH:MM:SS.ffffff`
    pub datetime_start: Option<String>,
    pub datetime_complete: Option<String>,
}

/// What [`StudyStorage::enqueue_trial`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// a new waiting trial: its id and number
    New { trial: i64, number: i64 },
    /// a trial of the study already had the values: its number
    Exists { number: i64 },
}

/// A study's storage (see the module documentation). Every call is one transaction; several processes may share a
/// storage, and trial numbers stay unique and gap-free within a study.
pub trait StudyStorage: Send + Sync {
    /// The id of the study `name`, created with `direction` when missing.
    ///
    /// # Errors
    /// `already_exists` when the study exists with the other direction; `store_io` when the storage fails.
    fn create_or_load_study(&self, name: &str, direction: StudyDirection) -> Result<i64, PortError>;

    /// A new `RUNNING` trial of `study`, started now: `(trial id, number)`.
    ///
    /// # Errors
    /// `not_found` for an unknown study; `store_io` when the storage fails.
    fn create_trial(&self, study: i64) -> Result<(i64, i64), PortError>;

    /// Enqueues a trial of `study` (Optuna's `enqueue_trial`): a `WAITING` trial, numbered now, whose system
    /// attribute `fixed_params` is `fixed_params_json` (a JSON object of parameter names and external values),
    /// unless a trial of the study is `same` (Optuna's `skip_if_exists`). The look and the insert are one
    /// transaction under the lock that numbers trials, so workers enqueueing the same values at once enqueue them
    /// once.
    ///
    /// # Errors
    /// `not_found` for an unknown study; `store_io`.
    fn enqueue_trial(
        &self,
        study: i64,
        fixed_params_json: &str,
        same: &dyn Fn(&StoredTrial) -> bool,
    ) -> Result<Enqueued, PortError>;

    /// Takes the oldest `WAITING` trial of `study` for this worker (Optuna's `_pop_waiting_trial_id`): it becomes
    /// `RUNNING`, started now, and no other worker can take it. `(trial id, number, its fixed_params JSON)`, or
    /// `None` when none waits.
    ///
    /// # Errors
    /// `store_io`.
    fn pop_waiting_trial(&self, study: i64) -> Result<Option<(i64, i64, Option<String>)>, PortError>;

    /// Records a parameter of a running trial.
    ///
    /// # Errors
    /// `already_exists` when the trial already has `param.name` with another value; `store_io`.
    fn set_param(&self, trial: i64, param: &StoredParam) -> Result<(), PortError>;

    /// Records the intermediate value of `step` (a fold's score), replacing an earlier one.
    ///
    /// # Errors
    /// `store_io`.
    fn report(&self, trial: i64, step: i64, value: f64) -> Result<(), PortError>;

    /// Sets a trial's user attribute `key` to `value_json` (JSON text).
    ///
    /// # Errors
    /// `store_io`.
    fn set_trial_user_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError>;

    /// Sets a trial's system attribute `key` to `value_json` (JSON text), as Optuna's `set_trial_system_attr`.
    ///
    /// # Errors
    /// `store_io`.
    fn set_trial_system_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError>;

    /// Sets a study's user attribute `key` to `value_json` (JSON text).
    ///
    /// # Errors
    /// `store_io`.
    fn set_study_user_attr(&self, study: i64, key: &str, value_json: &str) -> Result<(), PortError>;

    /// Ends a running trial in `state` (complete, pruned or failed) with its value (a complete trial's), now.
    /// Returns `false`, changing nothing, when the trial was no longer running (another worker failed it as
    /// stale).
    ///
    /// # Errors
    /// `store_io`; a `state` that is not finished.
    fn finish_trial(&self, trial: i64, state: TrialState, value: Option<f64>) -> Result<bool, PortError>;

    /// Records that a running trial's worker is alive (the storage's clock).
    ///
    /// # Errors
    /// `store_io`.
    fn heartbeat(&self, trial: i64) -> Result<(), PortError>;

    /// Fails every running trial of `study` whose last heartbeat is older than `grace` (a killed worker's); trials
    /// that never sent one are left alone, as Optuna does. Returns the failed trials' numbers.
    ///
    /// # Errors
    /// `store_io`.
    fn fail_stale_trials(&self, study: i64, grace: Duration) -> Result<Vec<i64>, PortError>;

    /// Every trial of `study`, by number.
    ///
    /// # Errors
    /// `store_io`.
    fn trials(&self, study: i64) -> Result<Vec<StoredTrial>, PortError>;
}

/// The prefix of the system attributes that hold a running trial's relative params (Optuna's
/// `_RELATIVE_PARAMS_KEY`), each followed by `:<chunk index>`.
pub const RELATIVE_PARAMS_KEY: &str = "tpe:relative_params";
