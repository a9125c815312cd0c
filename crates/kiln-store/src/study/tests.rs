//! The SQLite study storage against Optuna 4.9 itself (the project venv's, `.venv`): a study kiln writes is read by
//! `optuna.load_study` with the same trials, numbers, states, params, values, intermediate values and user
//! attributes; optuna-dashboard (0.21) lists its trials; trials a Python worker adds are read back by kiln;
//! concurrent workers get unique, gap-free numbers; a stale heartbeat fails its trial.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kiln_domain::{Code, Enqueued, StoredParam, StudyDirection, StudyStorage, TrialState};
use serde_json::Value;

use super::SqliteStudyStorage;

/// This package's folder when the tests run (cargo sets it; a compile-time `env!` would keep the folder the binary
/// was first built in, which a target folder shared by two checkouts reuses).
pub(super) fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
}

fn python(script: &str, storage: &Path) -> Value {
    let py = format!("{}/../../.venv/bin/python", manifest_dir());
    assert!(Path::new(&py).exists(), "{py} is missing: run `make venv`");
    let output = Command::new(&py)
        .arg("-c")
        .arg(format!(
            "import json, math, sys, optuna\noptuna.logging.set_verbosity(optuna.logging.WARNING)\n\
             url = 'sqlite:///' + sys.argv[1]\n{script}"
        ))
        .arg(storage)
        .output()
        .expect("run python");
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout)))
}

fn param(name: &str, internal: f64, distribution_json: &str) -> StoredParam {
    StoredParam { name: name.to_string(), internal, distribution_json: distribution_json.to_string() }
}

const LR: &str =
    r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.01, "high": 0.3, "log": true}}"#;
const LEAVES: &str = r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 2, "low": 15, "high": 255}}"#;
const BOOSTING: &str = r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["gbdt", "dart"]}}"#;

#[test]
fn optuna_loads_a_study_kiln_wrote_and_kiln_reads_trials_optuna_added() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("eurusd-lgbm", StudyDirection::Minimize).unwrap();
    // trial 0: complete, three params, fold scores as intermediate values (one NaN), a user attribute
    let (t0, n0) = storage.create_trial(study).unwrap();
    storage.set_param(t0, &param("learning_rate", 0.05, LR)).unwrap();
    storage.set_param(t0, &param("num_leaves", 31.0, LEAVES)).unwrap();
    storage.set_param(t0, &param("boosting", 1.0, BOOSTING)).unwrap();
    for (step, score) in [(0, 0.0061), (1, f64::NAN), (2, 0.0059)] {
        storage.report(t0, step, score).unwrap();
    }
    storage.set_trial_user_attr(t0, "fold_sd", "0.0002").unwrap();
    assert!(storage.finish_trial(t0, TrialState::Complete, Some(0.006)).unwrap());
    // trial 1: pruned after one fold; trial 2: failed; trial 3: complete with +inf
    let (t1, _) = storage.create_trial(study).unwrap();
    storage.set_param(t1, &param("learning_rate", 0.2, LR)).unwrap();
    storage.report(t1, 0, 0.009).unwrap();
    storage.finish_trial(t1, TrialState::Pruned, None).unwrap();
    let (t2, _) = storage.create_trial(study).unwrap();
    storage.finish_trial(t2, TrialState::Fail, None).unwrap();
    let (t3, n3) = storage.create_trial(study).unwrap();
    storage.finish_trial(t3, TrialState::Complete, Some(f64::INFINITY)).unwrap();
    storage.set_study_user_attr(study, "metric", "\"rmse\"").unwrap();
    assert_eq!((n0, n3), (0, 3));
    // a finished trial cannot be finished again (another worker failed it)
    assert!(!storage.finish_trial(t2, TrialState::Complete, Some(1.0)).unwrap());

    let seen = python(
        "s = optuna.load_study(study_name='eurusd-lgbm', storage=url)\n\
         def v(x):\n    return None if x is None else (str(x) if not math.isfinite(x) else x)\n\
         out = {'direction': s.direction.name, 'attrs': s.user_attrs, 'trials': [\n\
           {'number': t.number, 'state': t.state.name, 'params': t.params, 'value': v(t.value),\n\
            'intermediate': {str(k): v(x) for k, x in t.intermediate_values.items()}, 'attrs': t.user_attrs}\n\
           for t in s.trials]}\n\
         s.enqueue_trial({'learning_rate': 0.1})\n\
         s.optimize(lambda t: t.suggest_float('learning_rate', 0.01, 0.3, log=True), n_trials=2)\n\
         print(json.dumps(out))",
        &path,
    );
    assert_eq!(seen["direction"], "MINIMIZE");
    assert_eq!(seen["attrs"]["metric"], "rmse");
    let trials = seen["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    assert_eq!(
        trials[0],
        serde_json::json!({"number": 0, "state": "COMPLETE", "value": 0.006,
            "params": {"learning_rate": 0.05, "num_leaves": 31, "boosting": "dart"},
            "intermediate": {"0": 0.0061, "1": "nan", "2": 0.0059}, "attrs": {"fold_sd": 0.0002}})
    );
    assert_eq!(trials[1]["state"], "PRUNED");
    assert_eq!(trials[1]["intermediate"]["0"], 0.009);
    assert_eq!(trials[2]["state"], "FAIL");
    assert_eq!((trials[3]["state"].as_str(), trials[3]["value"].as_str()), (Some("COMPLETE"), Some("inf")));

    // Optuna's two trials are kiln's 4 and 5, with their params in Optuna's representation
    let all = storage.trials(study).unwrap();
    assert_eq!(all.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    assert_eq!(all[4].state, TrialState::Complete);
    assert_eq!(all[4].params[0].name, "learning_rate");
    assert_eq!(all[4].params[0].internal, 0.1);
    assert_eq!(all[4].value, Some(0.1));
    assert_eq!(all[4].params[0].distribution_json, LR);
    assert_eq!(all[0].intermediate[1].0, 1);
    assert!(all[0].intermediate[1].1.is_nan());
    assert_eq!(all[3].value, Some(f64::INFINITY));
    assert_eq!(all[0].user_attrs, [("fold_sd".to_string(), "0.0002".to_string())]);
}

#[test]
fn enqueued_trials_wait_in_order_and_are_taken_once_both_ways_with_optuna() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("queue", StudyDirection::Minimize).unwrap();
    // kiln enqueues one; Python enqueues another, then asks: Optuna takes kiln's (the oldest) with its params
    let first = r#"{"learning_rate": 0.05, "boosting": "dart"}"#;
    // four workers enqueue the same values at once (each with its own connection): once
    let enqueued: Vec<Enqueued> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let storage = SqliteStudyStorage::open(&path).unwrap();
                storage.enqueue_trial(study, first, &|t| t.fixed_params.as_deref() == Some(first)).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|w| w.join().unwrap())
        .collect();
    assert_eq!(enqueued.iter().filter(|e| matches!(e, Enqueued::New { number: 0, .. })).count(), 1, "{enqueued:?}");
    assert_eq!(enqueued.iter().filter(|e| **e == Enqueued::Exists { number: 0 }).count(), 3, "{enqueued:?}");
    let waiting = storage.trials(study).unwrap();
    assert_eq!(waiting[0].state, TrialState::Waiting);
    assert_eq!(waiting[0].datetime_start, None);
    assert_eq!(waiting[0].fixed_params.as_deref(), Some(r#"{"learning_rate": 0.05, "boosting": "dart"}"#));
    let seen = python(
        "s = optuna.load_study(study_name='queue', storage=url)\n\
         before = [(t.number, t.state.name, t.system_attrs.get('fixed_params')) for t in s.trials]\n\
         s.enqueue_trial({'learning_rate': 0.2})\n\
         t = s.ask()\n\
         p = {'lr': t.suggest_float('learning_rate', 0.01, 0.3, log=True), 'b': t.suggest_categorical('boosting', ['gbdt', 'dart'])}\n\
         s.tell(t, 1.0)\n\
         print(json.dumps({'before': before, 'asked': t.number, 'params': p}))",
        &path,
    );
    assert_eq!(seen["before"], serde_json::json!([[0, "WAITING", {"learning_rate": 0.05, "boosting": "dart"}]]));
    assert_eq!(seen["asked"], 0);
    assert_eq!(seen["params"], serde_json::json!({"lr": 0.05, "b": "dart"}));
    // kiln takes Python's, once: RUNNING, started, with its params; then nothing waits
    let (trial, number, fixed) = storage.pop_waiting_trial(study).unwrap().expect("a waiting trial");
    assert_eq!((number, fixed.as_deref()), (1, Some(r#"{"learning_rate": 0.2}"#)));
    assert_eq!(storage.pop_waiting_trial(study).unwrap(), None);
    let all = storage.trials(study).unwrap();
    assert_eq!(all[1].id, trial);
    assert_eq!(all[1].state, TrialState::Running);
    assert!(all[1].datetime_start.is_some());
    assert_eq!(all[0].state, TrialState::Complete);
    // the next new trial is numbered after the enqueued ones
    assert_eq!(storage.create_trial(study).unwrap().1, 2);
}

#[test]
fn a_study_opened_with_the_other_direction_or_another_value_of_a_param_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Maximize).unwrap();
    assert_eq!(storage.create_or_load_study("s", StudyDirection::Maximize).unwrap(), study);
    let e = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists);
    assert!(e.message.contains("exists with direction MAXIMIZE, not MINIMIZE"), "{}", e.message);
    let (trial, _) = storage.create_trial(study).unwrap();
    storage.set_param(trial, &param("learning_rate", 0.05, LR)).unwrap();
    storage.set_param(trial, &param("learning_rate", 0.05, LR)).unwrap();
    assert_eq!(storage.set_param(trial, &param("learning_rate", 0.07, LR)).unwrap_err().code, Code::AlreadyExists);
    assert_eq!(storage.create_trial(study + 1).unwrap_err().code, Code::NotFound);
    // reopening finds the same study
    drop(storage);
    let again = SqliteStudyStorage::open(&path).unwrap();
    assert_eq!(again.create_or_load_study("s", StudyDirection::Maximize).unwrap(), study);
    assert_eq!(again.trials(study).unwrap().len(), 1);
}

#[test]
fn concurrent_workers_get_unique_gap_free_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("studies.db"));
    let study = SqliteStudyStorage::open(&path).unwrap().create_or_load_study("s", StudyDirection::Minimize).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || {
                // each worker has its own connection, as separate processes do
                let storage = SqliteStudyStorage::open(&path).unwrap();
                (0..25)
                    .map(|i| {
                        let (trial, number) = storage.create_trial(study).unwrap();
                        storage.finish_trial(trial, TrialState::Complete, Some(f64::from(w * 100 + i))).unwrap();
                        number
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut numbers: Vec<i64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..100).collect::<Vec<i64>>());
}

#[test]
fn a_running_trial_whose_heartbeat_is_stale_fails_and_one_without_a_heartbeat_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap();
    let (beating, _) = storage.create_trial(study).unwrap();
    let (silent, _) = storage.create_trial(study).unwrap();
    let (killed, killed_number) = storage.create_trial(study).unwrap();
    storage.heartbeat(killed).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    storage.heartbeat(beating).unwrap();
    assert_eq!(storage.fail_stale_trials(study, Duration::from_secs(1)).unwrap(), [killed_number]);
    let states: Vec<TrialState> = storage.trials(study).unwrap().iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Running, TrialState::Running, TrialState::Fail]);
    // the killed worker's late result does not resurrect the trial
    assert!(!storage.finish_trial(killed, TrialState::Complete, Some(0.0)).unwrap());
    let _ = silent;
}

/// Kills the dashboard when the test ends, passed or not.
struct Dashboard(std::process::Child);

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn optuna_dashboard_lists_the_trials_of_a_study_kiln_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("churn-xgb", StudyDirection::Maximize).unwrap();
    for (i, auc) in [0.84, 0.86].into_iter().enumerate() {
        let (trial, _) = storage.create_trial(study).unwrap();
        storage.set_param(trial, &param("learning_rate", 0.05 * (i + 1) as f64, LR)).unwrap();
        storage.set_param(trial, &param("boosting", i as f64, BOOSTING)).unwrap();
        storage.report(trial, 0, auc - 0.01).unwrap();
        storage.finish_trial(trial, TrialState::Complete, Some(auc)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exe = format!("{}/../../.venv/bin/optuna-dashboard", manifest_dir());
    assert!(Path::new(&exe).exists(), "{exe} is missing: run `make venv`");
    let _dashboard = Dashboard(
        Command::new(&exe)
            .arg(format!("sqlite:///{}", path.display()))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/api/studies/{study}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body: Value = loop {
        match ureq::get(&url).call() {
            Ok(response) => break serde_json::from_str(&response.into_string().unwrap()).unwrap(),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("optuna-dashboard did not answer {url}: {e}"),
        }
    };
    assert_eq!(body["name"], "churn-xgb");
    assert_eq!(body["directions"], serde_json::json!(["maximize"]));
    let trials = body["trials"].as_array().unwrap();
    assert_eq!(trials.iter().map(|t| t["number"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1]);
    assert!(trials.iter().all(|t| t["state"] == "Complete"), "{trials:?}");
    assert_eq!(trials[1]["values"], serde_json::json!([0.86]));
    let boosting = trials[1]["params"].as_array().unwrap().iter().find(|p| p["name"] == "boosting").unwrap();
    assert_eq!(boosting["param_external_value"], "dart");
    assert_eq!(body["best_trials"][0]["number"], 1);
}

#[test]
fn a_trial_state_optuna_never_writes_is_an_error_not_a_failed_trial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap();
    storage.create_trial(study).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute("UPDATE trials SET state = 'BOGUS'", []).unwrap();
    let e = storage.trials(study).unwrap_err();
    assert!(e.message.contains("trial state 'BOGUS'"), "{}", e.message);
}

#[test]
fn system_attributes_of_a_shared_relative_draw_go_both_ways_with_optuna() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studies.db");
    let storage = SqliteStudyStorage::open(&path).unwrap();
    let study = storage.create_or_load_study("liars", StudyDirection::Minimize).unwrap();
    // kiln's running trial 0 shares its draw in two chunks (written again: the last value stays)
    let (t0, _) = storage.create_trial(study).unwrap();
    storage.set_trial_system_attr(t0, "tpe:relative_params:0", r#""{\"lr\": 0.0""#).unwrap();
    storage.set_trial_system_attr(t0, "tpe:relative_params:0", r#""{\"lr\": 0.05, ""#).unwrap();
    storage.set_trial_system_attr(t0, "tpe:relative_params:1", r#""\"b\": \"dart\"}""#).unwrap();
    // Optuna reads them, and its worker's running trial 1 shares its own; another system attribute is not read
    let seen = python(
        "s = optuna.load_study(study_name='liars', storage=url)\n\
         attrs = s.trials[0].system_attrs\n\
         t = s.ask()\n\
         s._storage.set_trial_system_attr(t._trial_id, 'tpe:relative_params:0', '{\"lr\": 0.2}')\n\
         s._storage.set_trial_system_attr(t._trial_id, 'other', 5)\n\
         print(json.dumps(attrs))",
        &path,
    );
    assert_eq!(
        seen,
        serde_json::json!({"tpe:relative_params:0": "{\"lr\": 0.05, ", "tpe:relative_params:1": "\"b\": \"dart\"}"})
    );
    let trials = storage.trials(study).unwrap();
    let mut chunks = trials[0].relative_params.clone();
    chunks.sort();
    assert_eq!(
        chunks,
        [
            ("tpe:relative_params:0".to_string(), r#""{\"lr\": 0.05, ""#.to_string()),
            ("tpe:relative_params:1".to_string(), r#""\"b\": \"dart\"}""#.to_string())
        ]
    );
    assert_eq!(trials[1].relative_params, [("tpe:relative_params:0".to_string(), r#""{\"lr\": 0.2}""#.to_string())]);
}
