//! The PostgreSQL study storage against a real PostgreSQL server (started once for the module by
//! `scripts/pg_server.sh`, which stops it when the test process is gone) and Optuna 4.9 itself (the project venv's,
//! `.venv`, through psycopg2): the schema kiln creates is the one Optuna creates, `pg_dump` for `pg_dump`; a study
//! kiln writes is read by `optuna.load_study` as it was written; trials a Python worker adds are read back; kiln
//! threads and a Python worker creating trials at once get unique, gap-free numbers; stale heartbeats are failed by
//! either side; an unreachable server fails fast and no message shows the password. Also the storage URLs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kiln_domain::{Code, Enqueued, StoredParam, StudyDirection, StudyStorage, TrialState};
use serde_json::Value;

use super::{PostgresStudyStorage, open_study_storage, redact_storage_url};

/// A path from the repository root, found from this package's folder when the tests run.
fn repo_path(path: &str) -> String {
    format!("{}/../../{path}", super::tests::manifest_dir())
}

/// The URL of the module's server, without its database (`postgresql://kiln:kiln-secret@127.0.0.1:<port>`).
fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kiln-pg-test-{}", std::process::id()));
        // the script's watchdog stops the server and removes `dir` once this process is gone
        let output = Command::new("bash")
            .arg(repo_path("scripts/pg_server.sh"))
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg_server.sh");
        assert!(
            output.status.success(),
            "scripts/pg_server.sh could not start PostgreSQL (`make sysdeps` installs it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout).unwrap().trim().to_string();
        url.rsplit_once('/').unwrap().0.to_string()
    })
}

/// A new, empty database on the module's server: its URL.
fn database(name: &str) -> String {
    // one at a time: CREATE DATABASE copies template1, which must have no other session
    static ADMIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ADMIN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut admin = postgres::Client::connect(&format!("{}/kiln", server()), postgres::NoTls).unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{}/{name}", server())
}

/// Runs a Python script with `url` (SQLAlchemy's `postgresql+psycopg2://` form of `url`) and its printed JSON.
fn python(script: &str, url: &str) -> Value {
    let output = python_command(script, url).output().expect("run python");
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout)))
}

fn python_command(script: &str, url: &str) -> Command {
    let py = repo_path(".venv/bin/python");
    assert!(Path::new(&py).exists(), "{py} is missing: run `make venv`");
    let mut command = Command::new(&py);
    command
        .arg("-c")
        .arg(format!(
            "import json, math, sys, optuna\noptuna.logging.set_verbosity(optuna.logging.WARNING)\n\
             url = sys.argv[1]\n{script}"
        ))
        .arg(url.replacen("postgresql://", "postgresql+psycopg2://", 1));
    command
}

fn param(name: &str, internal: f64, distribution_json: &str) -> StoredParam {
    StoredParam { name: name.to_string(), internal, distribution_json: distribution_json.to_string() }
}

const LR: &str =
    r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.01, "high": 0.3, "log": true}}"#;
const LEAVES: &str = r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 2, "low": 15, "high": 255}}"#;
const BOOSTING: &str = r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["gbdt", "dart"]}}"#;

/// `pg_dump --schema-only` of a database, without comments, blank lines and the per-dump `\restrict` keys.
fn schema_dump(database: &str) -> String {
    let bin = Command::new("bash").arg(repo_path("scripts/pg_server.sh")).arg("bin").output().unwrap();
    let bin = String::from_utf8(bin.stdout).unwrap();
    let port = server().rsplit_once(':').unwrap().1;
    let output = Command::new(format!("{}/pg_dump", bin.trim()))
        .args(["--schema-only", "-h", "127.0.0.1", "-p", port, "-U", "kiln", database])
        .env("PGPASSWORD", "kiln-secret")
        .output()
        .unwrap();
    assert!(output.status.success(), "pg_dump failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !(l.is_empty() || l.starts_with("--") || l.starts_with("\\restrict") || l.starts_with("\\unrestrict"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kiln_creates_the_schema_optuna_creates_and_uses_one_optuna_created() {
    let optuna_url = database("schema_optuna");
    python("optuna.storages.RDBStorage(url)\nprint('{}')", &optuna_url);
    let kiln_url = database("schema_kiln");
    PostgresStudyStorage::open(&kiln_url).unwrap();
    let (optuna, kiln) = (schema_dump("schema_optuna"), schema_dump("schema_kiln"));
    assert!(optuna.contains("CREATE TYPE public.trialstate AS ENUM"), "{optuna}");
    assert_eq!(kiln, optuna);
    let mut client = postgres::Client::connect(&kiln_url, postgres::NoTls).unwrap();
    let row = client.query_one("SELECT schema_version, library_version FROM version_info", &[]).unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, String>(1)), (12, format!("kiln {}", env!("CARGO_PKG_VERSION"))));
    let alembic: String = client.query_one("SELECT version_num FROM alembic_version", &[]).unwrap().get(0);
    assert_eq!(alembic, "v3.2.0.a");
    // Optuna's own tables are used as they are; opening again changes nothing
    let storage = PostgresStudyStorage::open(&optuna_url).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap();
    assert_eq!(storage.create_trial(study).unwrap().1, 0);
    PostgresStudyStorage::open(&kiln_url).unwrap();
    assert_eq!(schema_dump("schema_kiln"), optuna);
}

#[test]
fn processes_opening_a_fresh_database_at_once_create_the_schema_once() {
    let url = Arc::new(database("schema_race"));
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || PostgresStudyStorage::open(&url).map(|_| ()))
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: i64 = client.query_one("SELECT count(*) FROM version_info", &[]).unwrap().get(0);
    let heads: i64 = client.query_one("SELECT count(*) FROM alembic_version", &[]).unwrap().get(0);
    assert_eq!((versions, heads), (1, 1));
}

#[test]
fn optuna_loads_a_study_kiln_wrote_and_kiln_reads_trials_optuna_added() {
    let url = database("roundtrip");
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("eurusd-lgbm", StudyDirection::Minimize).unwrap();
    // trial 0: complete, three params, fold scores as intermediate values (one NaN), a user attribute
    let (t0, n0) = storage.create_trial(study).unwrap();
    storage.set_param(t0, &param("learning_rate", 0.05, LR)).unwrap();
    storage.set_param(t0, &param("num_leaves", 31.0, LEAVES)).unwrap();
    storage.set_param(t0, &param("boosting", 1.0, BOOSTING)).unwrap();
    for (step, score) in [(0, 0.0061), (1, f64::NAN), (2, 0.0059)] {
        storage.report(t0, step, score).unwrap();
    }
    storage.report(t0, 2, 0.0058).unwrap();
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
            'intermediate': {str(k): v(x) for k, x in t.intermediate_values.items()}, 'attrs': t.user_attrs,\n\
            'started': t.datetime_start is not None, 'ended': t.datetime_complete is not None}\n\
           for t in s.trials]}\n\
         s.enqueue_trial({'learning_rate': 0.1})\n\
         s.optimize(lambda t: t.suggest_float('learning_rate', 0.01, 0.3, log=True), n_trials=2)\n\
         print(json.dumps(out))",
        &url,
    );
    assert_eq!(seen["direction"], "MINIMIZE");
    assert_eq!(seen["attrs"]["metric"], "rmse");
    let trials = seen["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    assert_eq!(
        trials[0],
        serde_json::json!({"number": 0, "state": "COMPLETE", "value": 0.006,
            "params": {"learning_rate": 0.05, "num_leaves": 31, "boosting": "dart"},
            "intermediate": {"0": 0.0061, "1": "nan", "2": 0.0058}, "attrs": {"fold_sd": 0.0002},
            "started": true, "ended": true})
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
    assert_eq!(all[0].params.iter().map(|p| p.internal).collect::<Vec<_>>(), [0.05, 31.0, 1.0]);
    assert_eq!(all[0].intermediate[1].0, 1);
    assert!(all[0].intermediate[1].1.is_nan());
    assert_eq!(all[0].intermediate[2], (2, 0.0058));
    assert_eq!(all[3].value, Some(f64::INFINITY));
    assert_eq!(all[1].value, None);
    assert_eq!(all[0].user_attrs, [("fold_sd".to_string(), "0.0002".to_string())]);
    let (start, end) = (all[0].datetime_start.as_deref().unwrap(), all[0].datetime_complete.as_deref().unwrap());
    assert!(start.len() == 26 && start <= end, "{start} {end}");
}

#[test]
fn a_study_opened_with_the_other_direction_or_another_value_of_a_param_is_refused() {
    let url = database("refusals");
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Maximize).unwrap();
    assert_eq!(storage.create_or_load_study("s", StudyDirection::Maximize).unwrap(), study);
    let e = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists);
    assert!(e.message.contains("exists with direction MAXIMIZE, not MINIMIZE"), "{}", e.message);
    assert!(e.message.contains("kiln:***@") && !e.message.contains("kiln-secret"), "{}", e.message);
    let (trial, _) = storage.create_trial(study).unwrap();
    storage.set_param(trial, &param("learning_rate", 0.05, LR)).unwrap();
    storage.set_param(trial, &param("learning_rate", 0.05, LR)).unwrap();
    assert_eq!(storage.set_param(trial, &param("learning_rate", 0.07, LR)).unwrap_err().code, Code::AlreadyExists);
    assert_eq!(storage.create_trial(study + 1).unwrap_err().code, Code::NotFound);
    assert_eq!(storage.set_param(trial + 1, &param("x", 1.0, LR)).unwrap_err().code, Code::NotFound);
    assert_eq!(storage.finish_trial(trial, TrialState::Running, None).unwrap_err().code, Code::Internal);
    // reopening finds the same study
    drop(storage);
    let again = PostgresStudyStorage::open(&url).unwrap();
    assert_eq!(again.create_or_load_study("s", StudyDirection::Maximize).unwrap(), study);
    assert_eq!(again.trials(study).unwrap().len(), 1);
    // many workers opening one new study at once get the one study
    let url = Arc::new(url);
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || {
                PostgresStudyStorage::open(&url).unwrap().create_or_load_study("new", StudyDirection::Minimize).unwrap()
            })
        })
        .collect();
    let ids: std::collections::BTreeSet<i64> = openers.into_iter().map(|o| o.join().unwrap()).collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn kiln_threads_and_a_python_worker_creating_trials_at_once_get_unique_gap_free_numbers() {
    let url = Arc::new(database("numbers"));
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("shared", StudyDirection::Minimize).unwrap();
    // Optuna's own trial creation (`_create_new_trial`, through `ask`), 40 times, as fast as it goes
    let mut worker = python_command(
        "s = optuna.load_study(study_name='shared', storage=url)\n\
         print('ready', flush=True)\n\
         numbers = []\n\
         for _ in range(40):\n    t = s.ask()\n    numbers.append(t.number)\n    s.tell(t, 1.0)\n\
         print(json.dumps(numbers), flush=True)",
        &url,
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // four kiln workers, each with its own connection as separate processes have, until Python is done
    let python_done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, python_done) = (Arc::clone(&url), Arc::clone(&python_done));
            std::thread::spawn(move || {
                let storage = PostgresStudyStorage::open(&url).unwrap();
                let mut numbers = Vec::new();
                while numbers.len() < 10 || !python_done.load(Ordering::SeqCst) {
                    let (trial, number) = storage.create_trial(study).unwrap();
                    storage.finish_trial(trial, TrialState::Complete, Some(f64::from(w))).unwrap();
                    numbers.push(number);
                    std::thread::sleep(Duration::from_millis(5));
                }
                numbers
            })
        })
        .collect();
    let python_numbers: Vec<i64> = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    python_done.store(true, Ordering::SeqCst);
    assert!(worker.wait().unwrap().success());
    let mut numbers: Vec<i64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let kiln_count = numbers.len();
    numbers.extend(&python_numbers);
    numbers.sort_unstable();
    let total = i64::try_from(numbers.len()).unwrap();
    assert_eq!(numbers, (0..total).collect::<Vec<i64>>(), "kiln made {kiln_count}, Python {python_numbers:?}");
    // the two really ran at once: Python's numbers are interleaved with kiln's
    assert!(python_numbers.last().unwrap() - python_numbers[0] >= 40, "{python_numbers:?}");
    let stored: Vec<i64> = storage.trials(study).unwrap().iter().map(|t| t.number).collect();
    assert_eq!(stored, (0..total).collect::<Vec<i64>>());
}

#[test]
fn a_queue_of_enqueued_trials_is_taken_once_by_workers_at_once_and_shared_with_optuna() {
    let url = Arc::new(database("queue"));
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("queue", StudyDirection::Minimize).unwrap();
    // 30 waiting trials: 20 enqueued by kiln (by four workers at once, each enqueueing all 20 unless there: once
    // each), then 10 by Optuna's `enqueue_trial`
    let enqueuers: Vec<_> = (0..4)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || {
                let storage = PostgresStudyStorage::open(&url).unwrap();
                (0..20)
                    .filter(|i| {
                        let text = format!(r#"{{"learning_rate": {}}}"#, 0.01 + f64::from(*i) / 100.0);
                        let same = |t: &kiln_domain::StoredTrial| t.fixed_params.as_deref() == Some(text.as_str());
                        matches!(storage.enqueue_trial(study, &text, &same).unwrap(), Enqueued::New { .. })
                    })
                    .count()
            })
        })
        .collect();
    let new: usize = enqueuers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(new, 20);
    let seen = python(
        "s = optuna.load_study(study_name='queue', storage=url)\n\
         for i in range(10):\n    s.enqueue_trial({'learning_rate': 0.25, 'i': i})\n\
         print(json.dumps([[t.number, t.state.name, t.system_attrs.get('fixed_params')] for t in s.trials[:2]]))",
        &url,
    );
    assert_eq!(
        seen,
        serde_json::json!([[0, "WAITING", {"learning_rate": 0.01}], [1, "WAITING", {"learning_rate": 0.02}]])
    );
    // four workers with their own connections take them at once: each trial once, every one taken
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || {
                let storage = PostgresStudyStorage::open(&url).unwrap();
                let mut taken = Vec::new();
                while let Some((trial, number, fixed)) = storage.pop_waiting_trial(study).unwrap() {
                    assert!(fixed.is_some_and(|f| f.contains("learning_rate")));
                    storage.finish_trial(trial, TrialState::Complete, Some(1.0)).unwrap();
                    taken.push(number);
                }
                taken
            })
        })
        .collect();
    let mut taken: Vec<i64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    taken.sort_unstable();
    assert_eq!(taken, (0..30).collect::<Vec<_>>());
    let all = storage.trials(study).unwrap();
    assert!(all.iter().all(|t| t.state == TrialState::Complete && t.datetime_start.is_some()));
    assert_eq!(all[25].fixed_params.as_deref(), Some(r#"{"learning_rate": 0.25, "i": 5}"#));
}

#[test]
fn stale_heartbeats_are_failed_by_kiln_and_by_optuna_and_a_trial_without_one_is_left_alone() {
    let url = database("heartbeats");
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Minimize).unwrap();
    let (beating, _) = storage.create_trial(study).unwrap();
    let (silent, _) = storage.create_trial(study).unwrap();
    let (killed, killed_number) = storage.create_trial(study).unwrap();
    storage.heartbeat(killed).unwrap();
    // a Python worker's trial with a heartbeat Optuna wrote
    let py = python(
        "st = optuna.storages.RDBStorage(url, heartbeat_interval=60)\n\
         s = optuna.load_study(study_name='s', storage=st)\n\
         t = s.ask()\nst.record_heartbeat(t._trial_id)\nprint(json.dumps(t.number))",
        &url,
    );
    std::thread::sleep(Duration::from_millis(1200));
    storage.heartbeat(beating).unwrap();
    // kiln fails its own killed trial and the Python worker's, by the database's clock
    assert_eq!(
        storage.fail_stale_trials(study, Duration::from_secs(1)).unwrap(),
        [killed_number, py.as_i64().unwrap()]
    );
    let states: Vec<TrialState> = storage.trials(study).unwrap().iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Running, TrialState::Running, TrialState::Fail, TrialState::Fail]);
    // the killed worker's late result does not resurrect the trial
    assert!(!storage.finish_trial(killed, TrialState::Complete, Some(0.0)).unwrap());
    // Optuna reads kiln's heartbeats the same way: once `beating` stops, Optuna fails it, and not `silent`
    std::thread::sleep(Duration::from_millis(1200));
    python(
        "st = optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=1)\n\
         optuna.storages.fail_stale_trials(optuna.load_study(study_name='s', storage=st))\nprint('{}')",
        &url,
    );
    let states: Vec<TrialState> = storage.trials(study).unwrap().iter().map(|t| t.state).collect();
    assert_eq!(states, [TrialState::Fail, TrialState::Running, TrialState::Fail, TrialState::Fail]);
    assert!(!storage.finish_trial(beating, TrialState::Complete, Some(0.0)).unwrap());
    assert!(storage.finish_trial(silent, TrialState::Complete, Some(0.0)).unwrap());
}

#[test]
fn an_unreachable_server_or_a_wrong_password_fails_fast_naming_the_storage_without_its_password() {
    // a closed port: bound, then released
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgresql://kiln:hunter2-%40x@127.0.0.1:{port}/kiln");
    let started = Instant::now();
    let e = open_study_storage(&url).err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    assert_eq!(e.code, Code::StoreIo);
    assert!(
        e.message.starts_with(&format!("study storage postgresql://kiln:***@127.0.0.1:{port}/kiln: ")),
        "{}",
        e.message
    );
    assert!(e.message.contains("connect"), "{}", e.message);
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    // the server refuses the password
    let wrong = server().replace("kiln-secret", "not-the-secret") + "/kiln";
    let e = open_study_storage(&wrong.replacen("postgresql://", "postgresql+psycopg2://", 1)).err().unwrap();
    assert_eq!(e.code, Code::StoreAuth, "{}", e.message);
    assert!(e.message.contains("password authentication failed"), "{}", e.message);
    assert!(e.message.contains("kiln:***@") && !e.message.contains("not-the-secret"), "{}", e.message);
    // a URL the client cannot read
    let e = open_study_storage("postgres://kiln:hunter2@127.0.0.1:notaport/kiln").err().unwrap();
    assert_eq!(e.code, Code::ConfigInvalid, "{}", e.message);
    assert!(e.message.contains("postgres://kiln:***@") && !e.message.contains("hunter2"), "{}", e.message);
}

#[test]
fn storage_urls_choose_the_backend_and_hide_passwords() {
    for (url, shown) in [
        ("postgresql://kiln:s3cret@db.example:5432/studies", "postgresql://kiln:***@db.example:5432/studies"),
        ("postgresql+psycopg2://kiln:a@b@db/studies", "postgresql+psycopg2://kiln:***@db/studies"),
        (
            "postgres://kiln@db/studies?password=s3cret&sslmode=disable",
            "postgres://kiln@db/studies?password=***&sslmode=disable",
        ),
        ("postgresql://db/studies", "postgresql://db/studies"),
        ("sqlite:////tmp/studies.db", "sqlite:////tmp/studies.db"),
        ("studies.db", "studies.db"),
    ] {
        assert_eq!(redact_storage_url(url), shown);
    }
    let e = open_study_storage("mysql://kiln:s3cret@db/studies").err().unwrap();
    assert_eq!(e.code, Code::ConfigInvalid);
    assert!(e.message.contains("mysql://kiln:***@db/studies") && !e.message.contains("s3cret"), "{}", e.message);
    assert!(e.message.contains("sqlite:///") && e.message.contains("postgresql://"), "{}", e.message);
    assert_eq!(open_study_storage("sqlite://").err().unwrap().code, Code::ConfigInvalid);
    // SQLAlchemy's sqlite URLs: three slashes and a relative path, four and an absolute one; a bare path
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("a.db");
    let storage = open_study_storage(&format!("sqlite:///{}", absolute.display())).unwrap();
    storage.create_or_load_study("s", StudyDirection::Minimize).unwrap();
    assert!(absolute.exists());
    let bare = dir.path().join("b.db");
    open_study_storage(bare.to_str().unwrap()).unwrap();
    assert!(bare.exists());
    // a PostgreSQL URL opens the PostgreSQL storage
    let url = database("by_url");
    let storage = open_study_storage(&url.replacen("postgresql://", "postgres://", 1)).unwrap();
    let study = storage.create_or_load_study("s", StudyDirection::Maximize).unwrap();
    assert_eq!(storage.create_trial(study).unwrap().1, 0);
}

#[test]
fn system_attributes_of_a_shared_relative_draw_go_both_ways_with_optuna() {
    let url = database("liars");
    let storage = PostgresStudyStorage::open(&url).unwrap();
    let study = storage.create_or_load_study("liars", StudyDirection::Minimize).unwrap();
    let (t0, _) = storage.create_trial(study).unwrap();
    storage.set_trial_system_attr(t0, "tpe:relative_params:0", r#""{\"lr\": 0.0""#).unwrap();
    storage.set_trial_system_attr(t0, "tpe:relative_params:0", r#""{\"lr\": 0.05}""#).unwrap();
    let seen = python(
        "s = optuna.load_study(study_name='liars', storage=url)\n\
         attrs = s.trials[0].system_attrs\n\
         t = s.ask()\n\
         s._storage.set_trial_system_attr(t._trial_id, 'tpe:relative_params:0', '{\"lr\": 0.2}')\n\
         s._storage.set_trial_system_attr(t._trial_id, 'tpe:relative_paramsX', 5)\n\
         print(json.dumps(attrs))",
        &url,
    );
    assert_eq!(seen, serde_json::json!({"tpe:relative_params:0": "{\"lr\": 0.05}"}));
    let trials = storage.trials(study).unwrap();
    assert_eq!(trials[0].relative_params, [("tpe:relative_params:0".to_string(), r#""{\"lr\": 0.05}""#.to_string())]);
    assert_eq!(trials[1].relative_params, [("tpe:relative_params:0".to_string(), r#""{\"lr\": 0.2}""#.to_string())]);
}
