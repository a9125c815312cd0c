//! `kiln sync` against a real MLflow 3.17.2 server, started from the project's `.venv` on a free port (lean
//! settings, sqlite, its own artifact folder) and stopped by its process group at the end. The local store is filled
//! through its ports; the server is checked through the REST adapter and, for the metric history, raw REST.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_domain::{ArtifactStore, ExperimentId, MetricPoint, ModelRegistry, RunId, RunStatus, Stage, Tracker};
use kiln_store::{LocalStore, RestConfig, RestStore, SyncReport, sync};
use serde_json::Value;

const T0: i64 = 1_700_000_000_000;

struct Server {
    child: Child,
    uri: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // the server runs uvicorn in a child process: stop the whole group this test started
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_server() -> Server {
    use std::os::unix::process::CommandExt;
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    let mlflow = Path::new(&manifest).join("../../.venv/bin/mlflow");
    assert!(
        mlflow.exists(),
        "{} is missing: run `make venv` to install MLflow 3.17.2 (this test needs a real server)",
        mlflow.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("server.log");
    let out = fs::File::create(&log).unwrap();
    let child = Command::new(&mlflow)
        .args(["server", "--workers", "1", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.path().join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.path().join("artifacts"))
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", mlflow.display()));
    let mut server = Server { child, uri: format!("http://127.0.0.1:{port}"), log, _dir: dir };
    let probe =
        RestStore::new(RestConfig { max_retries: 0, timeout: Duration::from_secs(2), ..RestConfig::new(&server.uri) })
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if probe.health().is_ok() {
            return server;
        }
        let exited = server.child.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            let log = fs::read_to_string(&server.log).unwrap_or_default();
            panic!("the MLflow server did not become healthy ({exited:?}); its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn remote(uri: &str) -> RestStore {
    RestStore::new(RestConfig { max_retries: 1, ..RestConfig::new(uri) }).unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn point(key: &str, value: f64, ts: i64, step: i64) -> MetricPoint {
    MetricPoint { key: key.into(), value, timestamp_ms: ts, step }
}

/// A finished local run with params, a 3-step metric, tags, files and an MLflow model folder.
fn local_run(store: &LocalStore, exp: &ExperimentId, name: &str, start: i64, extra_tags: &[(&str, &str)]) -> RunId {
    let mut t = tags(&[("mlflow.user", "alice"), ("mlflow.source.name", "kiln"), ("kiln.model.kind", "lightgbm")]);
    t.extend(tags(extra_tags));
    let run = store.create_run(exp, name, &t, start).unwrap().run_id;
    store.log_params(&run, &tags(&[("learning_rate", "0.1"), ("num_leaves", "31")])).unwrap();
    store
        .log_metrics(
            &run,
            &[
                point("val_rmse", 0.9, start + 1000, 0),
                point("val_rmse", 0.5, start + 2000, 1),
                point("val_rmse", 0.3, start + 3000, 2),
                point("odd", f64::NAN, start + 3000, 0),
            ],
        )
        .unwrap();
    store.set_tags(&run, &tags(&[("team", "rust"), ("mlflow.note.content", "# notes\n| a | b |")])).unwrap();
    store.put_bytes(&run, "top.txt", b"top level").unwrap();
    store.put_bytes(&run, "reports/summary.txt", format!("summary of {name}").as_bytes()).unwrap();
    let model = tempfile::tempdir().unwrap();
    fs::write(model.path().join("MLmodel"), "flavors:\n  python_function: {}\n").unwrap();
    fs::write(model.path().join("model.lgb"), format!("trees of {name}")).unwrap();
    store.put_dir(&run, "model", model.path()).unwrap();
    store.end_run(&run, RunStatus::Finished, start + 60_000).unwrap();
    run
}

/// The one complete server copy of a local run.
fn copy_of(server: &RestStore, exp: &ExperimentId, local: &RunId) -> RunId {
    let copies = server.search_runs_by_tag(exp, "kiln.sync.source_run_id", &local.0).unwrap();
    assert_eq!(copies.len(), 1, "one active copy of {local}: {copies:?}");
    copies[0].run_id.clone()
}

fn tag_value(data: &Value, key: &str) -> Option<String> {
    data["tags"].as_array()?.iter().find(|t| t["key"] == key).map(|t| t["value"].as_str().unwrap_or("").to_string())
}

fn history(uri: &str, run: &RunId, key: &str) -> Vec<(i64, i64, Value)> {
    let url = format!("{uri}/api/2.0/mlflow/metrics/get-history?run_id={}&metric_key={key}", run.0);
    let v: Value = serde_json::from_reader(ureq::get(&url).call().unwrap().into_reader()).unwrap();
    let mut out: Vec<(i64, i64, Value)> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["step"].as_i64().unwrap_or(0), m["timestamp"].as_i64().unwrap(), m["value"].clone()))
        .collect();
    out.sort_by_key(|(step, ts, _)| (*step, *ts));
    out
}

fn run_sync(local: &LocalStore, server: &RestStore) -> SyncReport {
    let report = sync(local, server, &|line| eprintln!("sync: {line}")).unwrap();
    eprintln!("{report:?}");
    report
}

#[test]
fn sync_copies_runs_artifacts_and_registry_idempotently() {
    let srv = start_server();
    let server = remote(&srv.uri);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::create(&dir.path().join("mlruns")).unwrap();
    let exp = local.experiment_by_name("sync-demo").unwrap();

    // what an earlier sync and an earlier training left on the server: an interrupted copy of run 1, a partial run
    // whose training continued locally, and a registered version 1 that does not come from the local store
    let server_exp = server.experiment_by_name("sync-demo").unwrap();
    let partial = server.create_run(&server_exp, "partial", &[], T0).unwrap().run_id;
    let foreign = server.create_run(&server_exp, "foreign", &[], T0).unwrap().run_id;
    server.end_run(&foreign, RunStatus::Finished, T0 + 1).unwrap();
    server.ensure_registered_model("sync-model").unwrap();
    let v_foreign = server.create_version("sync-model", &format!("runs:/{foreign}/model"), &foreign, None).unwrap();
    assert_eq!(v_foreign.version, 1);

    let run1 = local_run(&local, &exp, "train-1", T0 + 10_000, &[]);
    let run2 = local_run(&local, &exp, "train-2", T0 + 20_000, &[]);
    let fallback = local_run(
        &local,
        &exp,
        "train-fallback",
        T0,
        &[("kiln.fallback.server_run_id", &partial.0), ("kiln.fallback.server", &srv.uri)],
    );
    let running = local.create_run(&exp, "still-running", &[], T0 + 30_000).unwrap().run_id;
    let stale = server
        .create_run(&server_exp, "train-1", &tags(&[("kiln.sync.source_run_id", &run1.0)]), T0 + 10_000)
        .unwrap()
        .run_id;

    local.ensure_registered_model("sync-model").unwrap();
    let lv1 = local.create_version("sync-model", &format!("runs:/{run1}/model"), &run1, None).unwrap();
    let lv2 = local.create_version("sync-model", &format!("runs:/{run2}/model"), &run2, None).unwrap();
    local.transition_stage("sync-model", lv1.version, Stage::Archived, false).unwrap();
    local.transition_stage("sync-model", lv2.version, Stage::Staging, false).unwrap();
    local.set_alias("sync-model", "production", lv2.version).unwrap();

    let first = run_sync(&local, &server);
    let expected = SyncReport {
        experiments: 2, // Default and sync-demo
        runs_copied: 3,
        runs_running: 1,
        incomplete_deleted: 1,
        logged_models: 3,
        fallback_runs_failed: 1,
        models: 1,
        versions_copied: 2,
        stages_set: 2,
        aliases_set: 1,
        ..SyncReport::default()
    };
    assert_eq!(first, expected);

    // runs: name, times, status, params, tags, full metric history (NaN included)
    let copy1 = copy_of(&server, &server_exp, &run1);
    assert_ne!(copy1, stale);
    let info = server.get_run(&copy1).unwrap();
    assert_eq!((info.run_name.as_str(), info.status), ("train-1", RunStatus::Finished));
    assert_eq!((info.start_time_ms, info.end_time_ms), (T0 + 10_000, Some(T0 + 70_000)));
    let data = server.run_data(&copy1).unwrap();
    for (k, v) in [
        ("kiln.sync.complete", "true"),
        ("team", "rust"),
        ("mlflow.user", "alice"),
        ("mlflow.note.content", "# notes\n| a | b |"),
        ("kiln.model.kind", "lightgbm"),
    ] {
        assert_eq!(tag_value(&data, k).as_deref(), Some(v), "tag {k}");
    }
    let source = tag_value(&data, "kiln.sync.source").unwrap();
    assert_eq!(Path::new(&source), fs::canonicalize(local.root()).unwrap());
    let params: Vec<(String, String)> = data["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap().into(), p["value"].as_str().unwrap().into()))
        .collect();
    assert_eq!(params, tags(&[("learning_rate", "0.1"), ("num_leaves", "31")]));
    let rmse = history(&srv.uri, &copy1, "val_rmse");
    let start = T0 + 10_000;
    assert_eq!(
        rmse,
        vec![
            (0, start + 1000, Value::from(0.9)),
            (1, start + 2000, Value::from(0.5)),
            (2, start + 3000, Value::from(0.3))
        ]
    );
    assert_eq!(history(&srv.uri, &copy1, "odd"), vec![(0, start + 3000, Value::from("NaN"))]);

    // artifacts, and the model folder as a logged model
    let got = tempfile::tempdir().unwrap();
    server.download_dir(&copy1, "", got.path()).unwrap();
    assert_eq!(fs::read_to_string(got.path().join("top.txt")).unwrap(), "top level");
    assert_eq!(fs::read_to_string(got.path().join("reports/summary.txt")).unwrap(), "summary of train-1");
    assert_eq!(fs::read_to_string(got.path().join("model/model.lgb")).unwrap(), "trees of train-1");

    // the registry: versions numbered after the server's own, stages and the alias on the mapped version
    let versions = server.list_versions("sync-model").unwrap();
    let summary: Vec<(u64, Option<RunId>, Stage, Vec<String>)> =
        versions.iter().map(|v| (v.version, v.run_id.clone(), v.stage, v.aliases.clone())).collect();
    let copy2 = copy_of(&server, &server_exp, &run2);
    assert_eq!(
        summary,
        vec![
            (1, Some(foreign.clone()), Stage::None, vec![]),
            (2, Some(copy1.clone()), Stage::Archived, vec![]),
            (3, Some(copy2.clone()), Stage::Staging, vec!["production".to_string()]),
        ]
    );
    let prod = server.version_by_alias("sync-model", "production").unwrap();
    assert_eq!(prod.version, 3);
    let model_id = prod.source.strip_prefix("models:/").expect("the version points at the logged model").to_string();
    let bundle = tempfile::tempdir().unwrap();
    server.download_logged_model(&model_id, bundle.path()).unwrap();
    assert_eq!(fs::read_to_string(bundle.path().join("model.lgb")).unwrap(), "trees of train-2");

    // the partial server run of the fallback run is FAILED, and says where its work went
    let copy_fb = copy_of(&server, &server_exp, &fallback);
    assert_eq!(server.get_run(&partial).unwrap().status, RunStatus::Failed);
    let note = tag_value(&server.run_data(&partial).unwrap(), "kiln.error").unwrap();
    assert!(note.contains(&format!("synced as run {copy_fb}")), "{note}");
    assert!(server.search_runs_by_tag(&server_exp, "kiln.sync.source_run_id", &running.0).unwrap().is_empty());

    // again: nothing is copied twice
    let second = run_sync(&local, &server);
    let unchanged = SyncReport {
        experiments: 2,
        runs_skipped: 3,
        runs_running: 1,
        models: 1,
        versions_skipped: 2,
        ..SyncReport::default()
    };
    assert_eq!(second, unchanged);
    assert_eq!(server.list_versions("sync-model").unwrap().len(), 3);
    assert_eq!(copy_of(&server, &server_exp, &run1), copy1);

    // a moved alias moves on the server; the finished run and its version follow on the next sync
    local.set_alias("sync-model", "production", lv1.version).unwrap();
    local.end_run(&running, RunStatus::Killed, T0 + 31_000).unwrap();
    local.create_version("sync-model", &format!("runs:/{running}/model"), &running, None).unwrap();
    let third = run_sync(&local, &server);
    assert_eq!((third.runs_copied, third.runs_skipped, third.aliases_set), (1, 3, 1));
    assert_eq!((third.versions_copied, third.versions_skipped, third.logged_models), (1, 2, 0));
    assert_eq!(server.version_by_alias("sync-model", "production").unwrap().version, 2);
    let v4 = server.get_version("sync-model", 4).unwrap();
    let copy_running = copy_of(&server, &server_exp, &running);
    assert_eq!((v4.run_id, v4.source), (Some(copy_running.clone()), format!("runs:/{copy_running}/model")));
    assert_eq!(server.get_run(&copy_running).unwrap().status, RunStatus::Killed);

    // a version the sync cannot copy fails the call, by name, after everything else was copied
    local.ensure_registered_model("broken-model").unwrap();
    local.create_version("broken-model", "s3://elsewhere/model", &run1, None).unwrap();
    local.create_version("broken-model", &format!("runs:/{run2}/model"), &run2, None).unwrap();
    let err = sync(&local, &server, &|_| {}).unwrap_err();
    assert_eq!(err.code, kiln_domain::Code::ModelRefInvalid, "{err}");
    assert!(err.message.contains("version 1 of registered model 'broken-model'"), "{err}");
    assert!(err.message.starts_with("sync incomplete: 1 item(s) failed"), "{err}");
    let broken = server.list_versions("broken-model").unwrap();
    assert_eq!(broken.iter().map(|v| v.run_id.clone()).collect::<Vec<_>>(), vec![Some(copy2)]);
}
