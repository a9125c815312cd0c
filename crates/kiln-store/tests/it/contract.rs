//! The contract suite of the tracking ports: every check is written once, over `&dyn Tracker`, `&dyn ArtifactStore`
//! and `&dyn ModelRegistry`, and runs against both stores: the local MLflow-layout folder ([`LocalStore`], in a
//! temporary folder) and a real MLflow 3.17.2 server ([`RestStore`]) that the suite starts itself (lean settings, a
//! free port, sqlite) and stops by its own PID. Both stores must give the same observable result and the same
//! [`Code`]; where MLflow's own backends differ (infinities, logged models) the check states each store's result
//! exactly.
//!
//! The server comes from the project's `.venv` (`make venv`); without it the suite fails, it never skips.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_domain::{
    ArtifactEntry, ArtifactStore, Code, ExperimentId, MetricPoint, ModelRegistry, PortError, RunId, RunInfo, RunStatus,
    Stage, Tracker,
};
use kiln_store::{LocalStore, RestConfig, RestStore};

/// A fixed start time (ms), so that the stores are compared on known values.
const START: i64 = 1_795_333_905_191;
/// A run id that no store has: 32 hex characters, as MLflow makes them.
const UNKNOWN_RUN: &str = "0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------------------------
// The two stores

#[test]
fn contract_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(&dir.path().join("mlruns")).unwrap();
    run_contract(&Subject::new(Kind::Local, &store));
}

#[test]
fn contract_mlflow_server() {
    let started = Instant::now();
    let server = Server::start();
    eprintln!("[rest] MLflow server healthy at {} after {:.1?}", server.uri, started.elapsed());
    let store = RestStore::new(RestConfig::new(&server.uri)).unwrap();
    run_contract(&Subject::new(Kind::Rest, &store));
    drop(server);
    eprintln!("[rest] whole test, server start and stop included: {:.1?}", started.elapsed());
}

type Check = fn(&Subject<'_>);

fn run_contract(s: &Subject<'_>) {
    let checks: &[(&str, Check)] = &[
        ("experiments", experiments),
        ("runs", runs),
        ("unknown run", unknown_run),
        ("invalid keys", invalid_keys),
        ("params", params),
        ("long params", long_params),
        ("metrics", metrics),
        ("params and metrics together", params_and_metrics),
        ("non-finite metrics", non_finite_metrics),
        ("tags", tags),
        ("artifacts", artifacts),
        ("artifact paths", artifact_paths),
        ("registry versions", registry_versions),
        ("registry aliases", registry_aliases),
        ("registry stages", registry_stages),
        ("registry unknowns", registry_unknowns),
        ("logged model", logged_model),
        ("experiment tags", experiment_tags),
        ("datasets", datasets),
    ];
    for (name, check) in checks {
        let t = Instant::now();
        eprintln!("[{}] {name} ...", s.kind.label());
        check(s);
        eprintln!("[{}] {name}: ok in {:.2?}", s.kind.label(), t.elapsed());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Local,
    Rest,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Rest => "rest",
        }
    }
}

/// Reading back what was logged, which the ports do not offer: each store has these as inherent methods.
trait ReadBack {
    fn metric_history(&self, run: &RunId, key: &str) -> Result<Vec<MetricPoint>, PortError>;
    fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError>;
    fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError>;
}

impl ReadBack for LocalStore {
    fn metric_history(&self, run: &RunId, key: &str) -> Result<Vec<MetricPoint>, PortError> {
        LocalStore::metric_history(self, run, key)
    }
    fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        LocalStore::params(self, run)
    }
    fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        LocalStore::tags(self, run)
    }
}

impl ReadBack for RestStore {
    fn metric_history(&self, run: &RunId, key: &str) -> Result<Vec<MetricPoint>, PortError> {
        RestStore::metric_history(self, run, key)
    }
    fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        RestStore::params(self, run)
    }
    fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        RestStore::tags(self, run)
    }
}

/// One store seen through the ports (plus [`ReadBack`]).
struct Subject<'a> {
    kind: Kind,
    tracker: &'a dyn Tracker,
    artifacts: &'a dyn ArtifactStore,
    registry: &'a dyn ModelRegistry,
    read: &'a dyn ReadBack,
}

impl<'a> Subject<'a> {
    fn new<S: Tracker + ArtifactStore + ModelRegistry + ReadBack>(kind: Kind, store: &'a S) -> Subject<'a> {
        Subject { kind, tracker: store, artifacts: store, registry: store, read: store }
    }

    fn params(&self, run: &RunId) -> BTreeMap<String, String> {
        self.read.params(run).unwrap().into_iter().collect()
    }

    fn tags(&self, run: &RunId) -> BTreeMap<String, String> {
        self.read.tags(run).unwrap().into_iter().collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The code of an error that must happen.
#[track_caller]
fn code<T: std::fmt::Debug>(result: Result<T, PortError>) -> Code {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => {
            assert!(!e.message.is_empty(), "an error says what went wrong");
            e.code
        }
    }
}

/// The tags kiln sets on every run.
fn standard_tags(run_name: &str) -> Vec<(String, String)> {
    kv(&[
        ("mlflow.runName", run_name),
        ("mlflow.user", "kiln-contract"),
        ("mlflow.source.name", "kiln train"),
        ("mlflow.source.type", "LOCAL"),
        ("mlflow.source.git.commit", "3f2a9c1d0b8e7f6a5c4d3e2f1a0b9c8d7e6f5a4b"),
    ])
}

fn new_run(s: &Subject<'_>, run_name: &str) -> RunInfo {
    let exp = s.tracker.experiment_by_name("contract").unwrap();
    s.tracker.create_run(&exp, run_name, &standard_tags(run_name), START).unwrap()
}

/// The whole value of a param or tag: either the value itself, or, when the store had to cut it, the artifact that
/// the cut value names (`... [cut at N characters; the whole value is the artifact <path>]`), read through the
/// artifact port.
fn whole_value(s: &Subject<'_>, run: &RunId, stored: &str) -> String {
    const MARK: &str = "; the whole value is the artifact ";
    let Some(at) = stored.rfind(MARK).filter(|_| stored.ends_with(']')) else {
        return stored.to_string();
    };
    let path = &stored[at + MARK.len()..stored.len() - 1];
    let dest = tempfile::tempdir().unwrap();
    s.artifacts.download_dir(run, path, dest.path()).unwrap();
    let name = path.rsplit('/').next().unwrap();
    fs::read_to_string(dest.path().join(name)).unwrap()
}

/// Every file under `dir`, by `/`-separated relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &rel, out);
            } else {
                out.insert(rel, fs::read(entry.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// A small model folder with subfolders, a binary file, an empty file and a name with a space.
fn model_folder(root: &Path) -> PathBuf {
    let dir = root.join("bundle");
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("MLmodel"), "flavors:\n  python_function:\n    loader_module: mlflow.lightgbm\n").unwrap();
    let binary: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(dir.join("model.lgb"), &binary).unwrap();
    fs::write(dir.join("empty.txt"), b"").unwrap();
    fs::write(dir.join("sub/input example.json"), br#"{"columns": ["close"], "data": [[1.1]]}"#).unwrap();
    fs::write(dir.join("sub/deeper/x.txt"), "deep\n").unwrap();
    dir
}

fn entry(path: &str, is_dir: bool, size: Option<u64>) -> ArtifactEntry {
    ArtifactEntry { path: path.to_string(), is_dir, size }
}

fn sorted(mut entries: Vec<ArtifactEntry>) -> Vec<ArtifactEntry> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

// ---------------------------------------------------------------------------------------------------------------
// Tracking

fn experiments(s: &Subject<'_>) {
    let a = s.tracker.experiment_by_name("contract-experiments").unwrap();
    let again = s.tracker.experiment_by_name("contract-experiments").unwrap();
    assert_eq!(a, again, "the second call finds the experiment the first one created");
    let b = s.tracker.experiment_by_name("contract-experiments-b").unwrap();
    assert_ne!(a, b);
    assert_ne!(a.0, "0", "the Default experiment is not reused");
    assert_eq!(code(s.tracker.experiment_by_name("")), Code::ConfigInvalid);
    assert_eq!(code(s.tracker.experiment_by_name("  ")), Code::ConfigInvalid);
}

fn runs(s: &Subject<'_>) {
    let exp = s.tracker.experiment_by_name("contract-runs").unwrap();
    let info = s.tracker.create_run(&exp, "first-run", &standard_tags("first-run"), START).unwrap();
    let id = &info.run_id.0;
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "run id {id}");
    assert_eq!(info.experiment_id, exp);
    assert_eq!(info.run_name, "first-run");
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!((info.start_time_ms, info.end_time_ms), (START, None));
    assert_eq!(info.artifact_uri, format!("mlflow-artifacts:/{}/{id}/artifacts", exp.0));
    assert_eq!(s.tracker.get_run(&info.run_id).unwrap(), info);

    let tags = s.tags(&info.run_id);
    for (k, v) in standard_tags("first-run") {
        assert_eq!(tags.get(&k), Some(&v), "tag {k}");
    }

    s.tracker.end_run(&info.run_id, RunStatus::Finished, START + 5_000).unwrap();
    let ended = s.tracker.get_run(&info.run_id).unwrap();
    assert_eq!(ended, RunInfo { status: RunStatus::Finished, end_time_ms: Some(START + 5_000), ..info.clone() });

    let failed = s.tracker.create_run(&exp, "second-run", &standard_tags("second-run"), START + 1).unwrap();
    assert_ne!(failed.run_id, info.run_id);
    s.tracker.end_run(&failed.run_id, RunStatus::Failed, START + 2).unwrap();
    assert_eq!(s.tracker.get_run(&failed.run_id).unwrap().status, RunStatus::Failed);

    let unknown_exp = ExperimentId("987654".to_string());
    assert_eq!(code(s.tracker.create_run(&unknown_exp, "x", &[], START)), Code::NotFound);
    let clash = kv(&[("mlflow.runName", "other-name")]);
    assert_eq!(code(s.tracker.create_run(&exp, "run-name", &clash, START)), Code::ConfigInvalid, "name and tag differ");

    // a start tag too long for the server is kept whole too
    let long: String = "git diff --stat | ".chars().cycle().take(9000).collect();
    let mut start_tags = standard_tags("long-tag-run");
    start_tags.push(("kiln.source.diff".to_string(), long.clone()));
    let run = s.tracker.create_run(&exp, "long-tag-run", &start_tags, START).unwrap().run_id;
    assert_eq!(whole_value(s, &run, &s.tags(&run)["kiln.source.diff"]), long);
}

/// Keys become file paths in MLflow's layout: both stores refuse what MLflow refuses, before writing anything.
/// (One difference is MLflow's own: a `:` is allowed by the server on POSIX and refused by the file store's Windows
/// rule, which the local store applies everywhere so that its folder stays portable.)
fn invalid_keys(s: &Subject<'_>) {
    let run = new_run(s, "invalid-keys").run_id;
    let too_long = "k".repeat(251);
    for bad in ["", "a$b", "../up", "/abs", "a//b", "a/./b", "semi;colon", too_long.as_str()] {
        let pairs = vec![("fine".to_string(), "1".to_string()), (bad.to_string(), "1".to_string())];
        assert_eq!(code(s.tracker.log_params(&run, &pairs)), Code::ConfigInvalid, "param key {bad:?}");
        assert_eq!(code(s.tracker.set_tags(&run, &pairs)), Code::ConfigInvalid, "tag key {bad:?}");
        let points = [
            MetricPoint { key: "fine".into(), value: 1.0, timestamp_ms: START, step: 0 },
            MetricPoint { key: bad.to_string(), value: 1.0, timestamp_ms: START, step: 0 },
        ];
        assert_eq!(code(s.tracker.log_metrics(&run, &points)), Code::ConfigInvalid, "metric key {bad:?}");
    }
    assert!(s.params(&run).is_empty(), "nothing of a refused call is written");
    assert!(!s.tags(&run).contains_key("fine"));
    assert!(s.read.metric_history(&run, "fine").unwrap().is_empty());
    // the longest key allowed
    let longest = "k".repeat(250);
    s.tracker.log_params(&run, &kv(&[(&longest, "1"), ("with space/and-dash_.x", "2")])).unwrap();
    assert_eq!(s.params(&run).len(), 2);
}

fn unknown_run(s: &Subject<'_>) {
    let run = RunId(UNKNOWN_RUN.to_string());
    assert_eq!(code(s.tracker.get_run(&run)), Code::NotFound);
    assert_eq!(code(s.tracker.get_run(&RunId("not-a-run".to_string()))), Code::NotFound);
    assert_eq!(code(s.tracker.log_params(&run, &kv(&[("a", "1")]))), Code::NotFound);
    let point = MetricPoint { key: "m".into(), value: 1.0, timestamp_ms: START, step: 0 };
    assert_eq!(code(s.tracker.log_metrics(&run, &[point])), Code::NotFound);
    assert_eq!(code(s.tracker.set_tags(&run, &kv(&[("a", "1")]))), Code::NotFound);
    assert_eq!(code(s.tracker.end_run(&run, RunStatus::Finished, START)), Code::NotFound);
    assert_eq!(code(s.artifacts.list(&run, "")), Code::NotFound);
    assert_eq!(code(s.artifacts.put_bytes(&run, "a.txt", b"x")), Code::NotFound);
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(code(s.artifacts.download_dir(&run, "", dest.path())), Code::NotFound);
    assert_eq!(code(s.read.metric_history(&run, "m")), Code::NotFound);
}

fn params(s: &Subject<'_>) {
    let run = new_run(s, "params").run_id;
    s.tracker.log_params(&run, &kv(&[("learning_rate", "0.1"), ("num_leaves", "31")])).unwrap();
    // the same value again is fine, also twice within one call
    s.tracker.log_params(&run, &kv(&[("learning_rate", "0.1")])).unwrap();
    s.tracker.log_params(&run, &kv(&[("max_depth", "6"), ("max_depth", "6")])).unwrap();
    // a different value is refused, and nothing of that call is logged
    assert_eq!(code(s.tracker.log_params(&run, &kv(&[("learning_rate", "0.2")]))), Code::AlreadyExists);
    let mixed = kv(&[("fresh", "1"), ("min_child", "1"), ("min_child", "2")]);
    assert_eq!(code(s.tracker.log_params(&run, &mixed)), Code::AlreadyExists);

    // 250 in one call (the server takes at most 100 per request)
    let many: Vec<(String, String)> = (0..250).map(|i| (format!("grid.p{i:03}"), format!("{}", i * 7))).collect();
    s.tracker.log_params(&run, &many).unwrap();

    let logged = s.params(&run);
    assert_eq!(logged.len(), 3 + 250, "{:?}", logged.keys().filter(|k| !k.starts_with("grid.")).collect::<Vec<_>>());
    assert_eq!(logged["learning_rate"], "0.1");
    assert_eq!(logged["num_leaves"], "31");
    assert_eq!(logged["max_depth"], "6");
    for (k, v) in &many {
        assert_eq!(logged.get(k), Some(v), "param {k}");
    }
    assert!(!logged.contains_key("fresh") && !logged.contains_key("min_child"));
}

/// A value longer than the server keeps (6000 characters for a param, 8000 for a tag) is never lost silently: the
/// whole value can always be recovered through the ports.
fn long_params(s: &Subject<'_>) {
    let run = new_run(s, "long-params").run_id;
    let line = "feature_recipe: lag(close, 1..24) | rolling_mean(close, 7) | ewm(close, 0.3) | calendar(dow) ü€\n";
    let long: String = line.chars().cycle().take(7000).collect();
    assert_eq!(long.chars().count(), 7000);
    s.tracker.log_params(&run, &kv(&[("recipe", &long)])).unwrap();
    s.tracker.log_params(&run, &kv(&[("recipe", &long)])).unwrap();
    // a different value that shares the first 6000 characters is still a change
    let mut changed = long.clone();
    changed.push_str("and one more feature");
    assert_eq!(code(s.tracker.log_params(&run, &kv(&[("recipe", &changed)]))), Code::AlreadyExists);

    let stored = s.params(&run)["recipe"].clone();
    assert_eq!(whole_value(s, &run, &stored), long, "the whole value can be recovered");
    match s.kind {
        Kind::Local => assert_eq!(stored, long, "the local store keeps the whole value"),
        Kind::Rest => {
            assert_eq!(stored.chars().count(), 6000, "cut to what the server keeps, with the note");
            assert!(long.starts_with(stored.split("... [cut at").next().unwrap()));
            let files = s.artifacts.list(&run, "kiln/long_values").unwrap();
            assert_eq!(files.len(), 1, "{files:?}");
            assert!(!files[0].is_dir && files[0].size == Some(long.len() as u64), "{files:?}");
            assert!(stored.contains(&files[0].path));
        }
    }
}

fn metrics(s: &Subject<'_>) {
    let run = new_run(s, "metrics").run_id;
    // two interleaved curves, 2500 points in one call (the server takes at most 1000 per request)
    let points: Vec<MetricPoint> = (0..1250i64)
        .flat_map(|i| {
            let x = i as f64;
            [
                MetricPoint { key: "valid.l2".into(), value: (x + 1.0).sqrt() / 7.0, timestamp_ms: START + i, step: i },
                MetricPoint { key: "train.l2".into(), value: 1.0 / (x + 3.0), timestamp_ms: START + i, step: i },
            ]
        })
        .collect();
    assert_eq!(points.len(), 2500);
    s.tracker.log_metrics(&run, &points).unwrap();
    for key in ["valid.l2", "train.l2"] {
        let expected: Vec<&MetricPoint> = points.iter().filter(|p| p.key == key).collect();
        let back = s.read.metric_history(&run, key).unwrap();
        assert_eq!(back.len(), expected.len(), "{key}");
        for (b, e) in back.iter().zip(&expected) {
            assert_eq!(b, *e, "{key}: values, timestamps and steps round-trip exactly");
        }
    }
    // appending keeps what was there
    let more = MetricPoint { key: "valid.l2".into(), value: 0.001, timestamp_ms: START + 5000, step: 1250 };
    s.tracker.log_metrics(&run, std::slice::from_ref(&more)).unwrap();
    let back = s.read.metric_history(&run, "valid.l2").unwrap();
    assert_eq!((back.len(), back.last()), (1251, Some(&more)));
    // a metric never logged has no points
    assert!(s.read.metric_history(&run, "never.logged").unwrap().is_empty());
}

/// `log_batch` logs what `log_params`, `log_metrics` then `set_tags` log: in one request where it fits, in several
/// where it does not (too many params, a value kept whole as an artifact), with the same refusals.
fn params_and_metrics(s: &Subject<'_>) {
    let run = new_run(s, "params-and-metrics").run_id;
    let point =
        |key: &str, value: f64, step: i64| MetricPoint { key: key.into(), value, timestamp_ms: START + step, step };
    let points = vec![point("folds/test/rmse", 0.25, 1), point("folds/test/rmse", f64::NAN, 2), point("trial", 0.5, 0)];
    let params = kv(&[("learning_rate", "0.1"), ("num_leaves", "31"), ("num_leaves", "31")]);
    s.tracker.log_batch(&run, &params, &points, &kv(&[("kiln.trial.number", "7")])).unwrap();
    assert_eq!(s.tags(&run).get("kiln.trial.number").map(String::as_str), Some("7"));
    assert_eq!(
        s.params(&run),
        BTreeMap::from([("learning_rate".into(), "0.1".into()), ("num_leaves".into(), "31".into())])
    );
    let back = s.read.metric_history(&run, "folds/test/rmse").unwrap();
    assert_eq!((back.len(), back[0].value, back[1].value.is_nan(), back[1].step), (2, 0.25, true, 2));
    assert_eq!(s.read.metric_history(&run, "trial").unwrap(), vec![points[2].clone()]);
    // a changed param is refused, and the metrics of the same call are not logged
    let changed = kv(&[("learning_rate", "0.2")]);
    assert_eq!(code(s.tracker.log_batch(&run, &changed, &[point("late", 1.0, 3)], &[])), Code::AlreadyExists);
    assert!(s.read.metric_history(&run, "late").unwrap().is_empty());
    assert_eq!(code(s.tracker.log_batch(&run, &kv(&[("a$b", "1")]), &[], &[])), Code::ConfigInvalid);
    // more than one request's worth: 150 params, a long value, 1200 points
    let mut many: Vec<(String, String)> = (0..150).map(|i| (format!("grid.p{i:03}"), i.to_string())).collect();
    let long: String = "lag(close, 1..24) | ".chars().cycle().take(7000).collect();
    many.push(("recipe".into(), long.clone()));
    let curve: Vec<MetricPoint> = (0..1200).map(|i| point("curve", i as f64, i)).collect();
    let long_tag: String = "a fold failed: ".chars().cycle().take(9000).collect();
    s.tracker.log_batch(&run, &many, &curve, &kv(&[("kiln.error", &long_tag)])).unwrap();
    assert_eq!(whole_value(s, &run, &s.tags(&run)["kiln.error"]), long_tag);
    let logged = s.params(&run);
    assert_eq!(logged.len(), 2 + 151);
    assert_eq!(whole_value(s, &run, &logged["recipe"]), long);
    assert_eq!(s.read.metric_history(&run, "curve").unwrap(), curve);
}

/// NaN and infinities as MLflow keeps them. NaN comes back as NaN from both. An infinity comes back with its sign
/// and at least `f64::MAX` in size: the local store (like MLflow's own file store, which writes `inf`) keeps it
/// infinite, while the server's SQL store clamps it to `+-f64::MAX` (1.7976931348623157e308). That difference is
/// MLflow's, not kiln's.
fn non_finite_metrics(s: &Subject<'_>) {
    let run = new_run(s, "non-finite").run_id;
    let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.1, 1e-300, -123_456_789.123_456_78, f64::MAX, 0.0];
    let points: Vec<MetricPoint> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| MetricPoint { key: "odd".into(), value: v, timestamp_ms: START + i as i64, step: i as i64 })
        .collect();
    s.tracker.log_metrics(&run, &points).unwrap();
    let back = s.read.metric_history(&run, "odd").unwrap();
    assert_eq!(back.len(), values.len());
    for (b, p) in back.iter().zip(&points) {
        assert_eq!((b.step, b.timestamp_ms), (p.step, p.timestamp_ms));
    }
    assert!(back[0].value.is_nan(), "NaN stays NaN: {}", back[0].value);
    assert!(back[1].value >= f64::MAX && back[2].value <= -f64::MAX, "{} {}", back[1].value, back[2].value);
    let (pos_inf, neg_inf) = match s.kind {
        Kind::Local => (f64::INFINITY, f64::NEG_INFINITY),
        Kind::Rest => (f64::MAX, -f64::MAX),
    };
    assert_eq!((back[1].value, back[2].value), (pos_inf, neg_inf));
    for i in 3..values.len() {
        assert_eq!(back[i].value.to_bits(), values[i].to_bits(), "finite values round-trip exactly");
    }
}

fn tags(s: &Subject<'_>) {
    let run = new_run(s, "tags").run_id;
    s.tracker.set_tags(&run, &kv(&[("team", "forecasting"), ("stage", "dev")])).unwrap();
    s.tracker.set_tags(&run, &kv(&[("stage", "prod")])).unwrap();
    s.tracker.set_tags(&run, &kv(&[("twice", "first"), ("twice", "second")])).unwrap();

    let mut note = String::from("# eurusd, lightgbm\n\nTrained on **2015-01-01 .. 2024-06-30**; `horizon = 1`.\n\n");
    note.push_str("| metric | model | naive baseline |\n|---|---:|---:|\n");
    for i in 0..90 {
        note.push_str(&format!("| metric_{i:02} | {:.6} | {:.6} |\n", 1.0 / (i as f64 + 1.0), 2.0 / (i as f64 + 2.0)));
    }
    note.push_str("\n> gates: rmse < baseline ✓ — \"quoted\", 'single', back\\slash, tab\tend\n");
    assert!(note.len() > 3000 && note.chars().count() < 8000);
    s.tracker.set_tags(&run, &kv(&[("mlflow.note.content", &note)])).unwrap();

    let long: String = "0123456789 kiln ✓ ".chars().cycle().take(9000).collect();
    s.tracker.set_tags(&run, &kv(&[("long.tag", &long)])).unwrap();

    let tags = s.tags(&run);
    assert_eq!(tags["team"], "forecasting");
    assert_eq!(tags["stage"], "prod", "a tag is overwritten");
    assert_eq!(tags["twice"], "second", "within one call the last value wins");
    assert_eq!(tags["mlflow.note.content"], note, "the Markdown description round-trips byte for byte");
    assert_eq!(whole_value(s, &run, &tags["long.tag"]), long, "a long tag can be recovered whole");

    // renaming through the tag renames the run
    s.tracker.set_tags(&run, &kv(&[("mlflow.runName", "renamed")])).unwrap();
    assert_eq!(s.tracker.get_run(&run).unwrap().run_name, "renamed");
}

// ---------------------------------------------------------------------------------------------------------------
// Artifacts

fn artifacts(s: &Subject<'_>) {
    let run = new_run(s, "artifacts").run_id;
    let a = s.artifacts;
    let local = tempfile::tempdir().unwrap();
    let bundle = model_folder(local.path());

    a.put_bytes(&run, "top.txt", b"first\n").unwrap();
    a.put_bytes(&run, "top.txt", b"hello top\n").unwrap();
    a.put_bytes(&run, "reports/deep/metrics.json", br#"{"rmse": 0.25}"#).unwrap();
    a.put_bytes(&run, "/reports/a b.txt", "spaced ü\n".as_bytes()).unwrap();
    a.put_dir(&run, "model", &bundle).unwrap();

    assert_eq!(
        sorted(a.list(&run, "").unwrap()),
        vec![entry("model", true, None), entry("reports", true, None), entry("top.txt", false, Some(10))]
    );
    assert_eq!(
        sorted(a.list(&run, "reports").unwrap()),
        vec![entry("reports/a b.txt", false, Some(10)), entry("reports/deep", true, None)]
    );
    assert_eq!(sorted(a.list(&run, "reports/").unwrap()), sorted(a.list(&run, "reports").unwrap()));
    let size = |rel: &str| Some(fs::metadata(bundle.join(rel)).unwrap().len());
    assert_eq!(
        sorted(a.list(&run, "model").unwrap()),
        vec![
            entry("model/MLmodel", false, size("MLmodel")),
            entry("model/empty.txt", false, Some(0)),
            entry("model/model.lgb", false, Some(4096)),
            entry("model/sub", true, None),
        ]
    );
    assert_eq!(
        sorted(a.list(&run, "model/sub").unwrap()),
        vec![
            entry("model/sub/deeper", true, None),
            entry("model/sub/input example.json", false, size("sub/input example.json"))
        ]
    );
    assert_eq!(a.list(&run, "missing").unwrap(), vec![], "listing a missing path gives nothing");
    assert_eq!(a.list(&run, "top.txt").unwrap(), vec![], "listing a file gives nothing, as in MLflow");

    // a folder comes back with the same bytes
    let out = tempfile::tempdir().unwrap();
    a.download_dir(&run, "model", &out.path().join("model")).unwrap();
    assert_eq!(tree(&out.path().join("model")), tree(&bundle));
    // a single file comes back into dest/<name>
    a.download_dir(&run, "reports/deep/metrics.json", &out.path().join("one")).unwrap();
    assert_eq!(
        tree(&out.path().join("one")),
        BTreeMap::from([("metrics.json".to_string(), br#"{"rmse": 0.25}"#.to_vec())])
    );
    // the whole run
    a.download_dir(&run, "", &out.path().join("all")).unwrap();
    let all = tree(&out.path().join("all"));
    assert_eq!(all.len(), 3 + tree(&bundle).len(), "{:?}", all.keys().collect::<Vec<_>>());
    assert_eq!(all["top.txt"], b"hello top\n", "a second put overwrites");
    assert_eq!(all["reports/a b.txt"], "spaced ü\n".as_bytes());
    assert_eq!(all["model/sub/deeper/x.txt"], b"deep\n");

    assert_eq!(code(a.download_dir(&run, "missing", &out.path().join("missing"))), Code::NotFound);
    assert_eq!(code(a.download_dir(&run, "model/nope.bin", &out.path().join("missing"))), Code::NotFound);
}

fn artifact_paths(s: &Subject<'_>) {
    let run = new_run(s, "artifact-paths").run_id;
    let a = s.artifacts;
    let local = tempfile::tempdir().unwrap();
    for bad in ["..", "../escape.txt", "a/../../b.txt", "a/./b.txt", "a//b.txt", "a\\b.txt"] {
        assert_eq!(code(a.put_bytes(&run, bad, b"x")), Code::ConfigInvalid, "put_bytes {bad:?}");
        assert_eq!(code(a.put_dir(&run, bad, local.path())), Code::ConfigInvalid, "put_dir {bad:?}");
        assert_eq!(code(a.list(&run, bad)), Code::ConfigInvalid, "list {bad:?}");
        assert_eq!(code(a.download_dir(&run, bad, &local.path().join("d"))), Code::ConfigInvalid, "download {bad:?}");
    }
    let missing = local.path().join("no-such-folder");
    assert_eq!(code(a.put_dir(&run, "model", &missing)), Code::NotFound, "a missing local folder");
    assert_eq!(code(a.put_bytes(&run, "", b"x")), Code::ConfigInvalid, "a file needs a name");
    assert_eq!(code(a.put_bytes(&run, "/", b"x")), Code::ConfigInvalid, "a file needs a name");
    assert_eq!(a.list(&run, "").unwrap(), vec![], "nothing was written");
    // an empty run downloads as an empty folder
    a.download_dir(&run, "", &local.path().join("empty")).unwrap();
    assert!(tree(&local.path().join("empty")).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// Registry

fn registry_versions(s: &Subject<'_>) {
    let r = s.registry;
    let run = new_run(s, "registry-versions").run_id;
    r.ensure_registered_model("contract-versions").unwrap();
    r.ensure_registered_model("contract-versions").unwrap();
    assert_eq!(r.list_versions("contract-versions").unwrap(), vec![]);

    let source = format!("runs:/{}/model", run.0);
    let v1 = r.create_version("contract-versions", &source, &run, None).unwrap();
    let v2 = r.create_version("contract-versions", &source, &run, None).unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    for v in [&v1, &v2] {
        assert_eq!(v.name, "contract-versions");
        assert_eq!(v.source, source);
        assert_eq!(v.run_id.as_ref(), Some(&run));
        assert_eq!(v.stage, Stage::None);
        assert!(v.aliases.is_empty());
        assert!(v.creation_time_ms > START, "creation time is now: {}", v.creation_time_ms);
        assert_eq!(v.description, "");
    }
    assert_eq!(r.get_version("contract-versions", 1).unwrap(), v1);
    assert_eq!(r.get_version("contract-versions", 2).unwrap(), v2);
    assert_eq!(r.list_versions("contract-versions").unwrap(), vec![v1, v2], "oldest first");
    assert_eq!(code(r.create_version("contract-missing", &source, &run, None)), Code::NotFound);
    assert_eq!(code(r.ensure_registered_model("")), Code::ModelRefInvalid);
}

fn registry_aliases(s: &Subject<'_>) {
    let r = s.registry;
    let run = new_run(s, "registry-aliases").run_id;
    let name = "contract-aliases";
    r.ensure_registered_model(name).unwrap();
    let source = format!("runs:/{}/model", run.0);
    for _ in 0..3 {
        r.create_version(name, &source, &run, None).unwrap();
    }
    let aliases_of = |version: u64| r.get_version(name, version).unwrap().aliases;

    r.set_alias(name, "champion", 1).unwrap();
    r.set_alias(name, "challenger", 1).unwrap();
    assert_eq!(r.version_by_alias(name, "champion").unwrap().version, 1);
    assert_eq!(aliases_of(1), vec!["challenger".to_string(), "champion".to_string()]);
    // moving
    r.set_alias(name, "champion", 2).unwrap();
    assert_eq!(r.version_by_alias(name, "champion").unwrap().version, 2);
    assert_eq!(r.version_by_alias(name, "champion").unwrap().aliases, vec!["champion".to_string()]);
    assert_eq!(aliases_of(1), vec!["challenger".to_string()]);
    // case-sensitive, as MLflow
    r.set_alias(name, "Champion", 3).unwrap();
    assert_eq!(r.version_by_alias(name, "Champion").unwrap().version, 3);
    let listed: Vec<(u64, Vec<String>)> =
        r.list_versions(name).unwrap().into_iter().map(|v| (v.version, v.aliases)).collect();
    assert_eq!(
        listed,
        vec![(1, vec!["challenger".to_string()]), (2, vec!["champion".to_string()]), (3, vec!["Champion".to_string()]),]
    );

    r.delete_alias(name, "champion").unwrap();
    assert_eq!(code(r.version_by_alias(name, "champion")), Code::NotFound);
    assert_eq!(code(r.delete_alias(name, "champion")), Code::NotFound, "deleting an alias that is not set");
    assert_eq!(r.version_by_alias(name, "Champion").unwrap().version, 3);
    assert!(aliases_of(2).is_empty());
    assert_eq!(code(r.version_by_alias(name, "nope")), Code::NotFound);

    // reserved names and unknown versions
    for reserved in ["latest", "LATEST", "v1", "v12"] {
        assert_eq!(code(r.set_alias(name, reserved, 1)), Code::ModelRefInvalid, "alias {reserved}");
    }
    assert_eq!(code(r.set_alias(name, "champion", 99)), Code::NotFound);
    assert_eq!(code(r.set_alias("contract-missing", "champion", 1)), Code::NotFound);

    // version tags: set, replaced, refused on an unknown version
    r.set_version_tag(name, 2, "kiln.alias_decision", "refused").unwrap();
    r.set_version_tag(name, 2, "kiln.alias_decision", "takes").unwrap();
    assert_eq!(code(r.set_version_tag(name, 99, "kiln.alias_decision", "takes")), Code::NotFound);
}

fn registry_stages(s: &Subject<'_>) {
    let r = s.registry;
    let run = new_run(s, "registry-stages").run_id;
    let name = "contract-stages";
    r.ensure_registered_model(name).unwrap();
    let source = format!("runs:/{}/model", run.0);
    for _ in 0..3 {
        r.create_version(name, &source, &run, None).unwrap();
    }
    let stages = || r.list_versions(name).unwrap().into_iter().map(|v| v.stage).collect::<Vec<_>>();

    assert_eq!(r.transition_stage(name, 1, Stage::Production, false).unwrap().stage, Stage::Production);
    assert_eq!(r.transition_stage(name, 2, Stage::Staging, false).unwrap().stage, Stage::Staging);
    assert_eq!(r.transition_stage(name, 3, Stage::Production, false).unwrap().stage, Stage::Production);
    assert_eq!(stages(), vec![Stage::Production, Stage::Staging, Stage::Production], "without archiving");
    let promoted = r.transition_stage(name, 2, Stage::Production, true).unwrap();
    assert_eq!((promoted.version, promoted.stage), (2, Stage::Production));
    assert_eq!(stages(), vec![Stage::Archived, Stage::Production, Stage::Archived], "the others are archived");
    assert_eq!(r.get_version(name, 1).unwrap().stage, Stage::Archived);
    assert_eq!(r.transition_stage(name, 1, Stage::None, false).unwrap().stage, Stage::None);
    assert_eq!(code(r.transition_stage(name, 42, Stage::Staging, false)), Code::NotFound);
    assert_eq!(
        code(r.transition_stage(name, 1, Stage::Archived, true)),
        Code::ModelRefInvalid,
        "archive into Archived"
    );
    assert_eq!(stages(), vec![Stage::None, Stage::Production, Stage::Archived], "a refused move changes nothing");
}

fn registry_unknowns(s: &Subject<'_>) {
    let r = s.registry;
    let run = new_run(s, "registry-unknowns").run_id;
    r.ensure_registered_model("contract-unknowns").unwrap();
    r.create_version("contract-unknowns", &format!("runs:/{}/model", run.0), &run, None).unwrap();
    assert_eq!(code(r.get_version("contract-unknowns", 2)), Code::NotFound);
    assert_eq!(code(r.get_version("contract-missing", 1)), Code::NotFound);
    assert_eq!(code(r.list_versions("contract-missing")), Code::NotFound);
    assert_eq!(code(r.version_by_alias("contract-missing", "champion")), Code::NotFound);
    assert_eq!(code(r.delete_alias("contract-missing", "champion")), Code::NotFound);
}

/// The bundle is always written into the run's artifacts. The server also keeps it as an MLflow 3 logged model that
/// a version can point at; the local store keeps no logged models and says so with `None`.
fn logged_model(s: &Subject<'_>) {
    let run = new_run(s, "logged-model").run_id;
    let local = tempfile::tempdir().unwrap();
    let bundle = model_folder(local.path());
    let model_id = s.artifacts.log_model(&run, "model", &bundle, "lightgbm").unwrap();

    let out = tempfile::tempdir().unwrap();
    s.artifacts.download_dir(&run, "model", &out.path().join("from-run")).unwrap();
    assert_eq!(tree(&out.path().join("from-run")), tree(&bundle), "the run's artifacts hold the bundle");

    let unknown = "m-0123456789abcdef0123456789abcdef";
    assert_eq!(code(s.artifacts.download_logged_model(unknown, &out.path().join("x"))), Code::NotFound);
    // both stores keep the bundle as an MLflow 3 logged model, and versions point at it as on a server
    let id = model_id.expect("the store keeps the bundle as a logged model");
    assert!(id.starts_with("m-") && id.len() == 34, "{id}");
    s.artifacts.download_logged_model(&id, &out.path().join("logged")).unwrap();
    assert_eq!(tree(&out.path().join("logged")), tree(&bundle), "the logged model holds the same files");

    let name = "contract-logged";
    s.registry.ensure_registered_model(name).unwrap();
    let source = format!("models:/{id}");
    let v = s.registry.create_version(name, &source, &run, Some(&id)).unwrap();
    assert_eq!((v.version, v.source.as_str(), v.run_id.as_ref()), (1, source.as_str(), Some(&run)));
    assert_eq!(s.registry.get_version(name, 1).unwrap(), v);
}

fn experiment_tags(s: &Subject<'_>) {
    let exp = s.tracker.experiment_by_name("contract-experiment-tags").unwrap();
    assert!(s.tracker.ensure_experiment_tag(&exp, "mlflow.experimentKind", "custom_model_development").unwrap());
    // what is there already is kept
    assert!(!s.tracker.ensure_experiment_tag(&exp, "mlflow.experimentKind", "genai_development").unwrap());
    let unknown = kiln_domain::ExperimentId("987654321".into());
    assert_eq!(code(s.tracker.ensure_experiment_tag(&unknown, "k", "v")), Code::NotFound);
}

fn datasets(s: &Subject<'_>) {
    let run = new_run(s, "datasets").run_id;
    let dataset = kiln_domain::DatasetInput {
        name: "churn".into(),
        digest: "0123abcd".into(),
        source_type: "local".into(),
        source: r#"{"uri": "data/churn.csv"}"#.into(),
        schema: r#"{"mlflow_colspec": [{"type": "string", "name": "id", "required": true}]}"#.into(),
        profile: r#"{"num_rows": 3, "num_elements": 3}"#.into(),
        context: "training".into(),
    };
    s.tracker.log_dataset(&run, &dataset).unwrap();
    s.tracker.log_dataset(&run, &dataset).unwrap(); // again: nothing new
    // a dataset without a context is logged without the context tag
    let bare = kiln_domain::DatasetInput { name: "churn-bare".into(), context: String::new(), ..dataset.clone() };
    s.tracker.log_dataset(&run, &bare).unwrap();
    let unknown = RunId(UNKNOWN_RUN.into());
    assert_eq!(code(s.tracker.log_dataset(&unknown, &dataset)), Code::NotFound);
}

// ---------------------------------------------------------------------------------------------------------------
// The MLflow server

/// A lean MLflow server in a temporary folder, stopped (SIGTERM to its own PID, then SIGKILL) when dropped.
struct Server {
    child: Child,
    uri: String,
    log: PathBuf,
    // dropped after the server is stopped (fields drop after `Drop::drop`)
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let mlflow = Path::new(&manifest).join("../../.venv/bin/mlflow");
        assert!(
            mlflow.is_file(),
            "the contract suite needs the MLflow 3.17.2 server at {}: run `make venv` in the repository root first",
            mlflow.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("server.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let db = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
        let artifacts = dir.path().join("artifacts");
        let child = Command::new(&mlflow)
            .args(["server", "--workers", "1", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(&db)
            .arg("--artifacts-destination")
            .arg(&artifacts)
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (run `make venv`)", mlflow.display()));
        let mut server = Server { child, uri: format!("http://127.0.0.1:{port}"), log, _dir: dir };
        server.wait_healthy(Duration::from_secs(90));
        server
    }

    /// Polls `/health` until it answers 200, checking that our own child is the one alive.
    fn wait_healthy(&mut self, limit: Duration) {
        let probe = RestStore::new(RestConfig {
            max_retries: 0,
            timeout: Duration::from_secs(2),
            ..RestConfig::new(&self.uri)
        })
        .unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the MLflow server exited ({status}) before it was healthy:\n{}", self.log_tail());
            }
            if probe.health().is_ok() {
                // the answer may come from another server on the same port: ours must still be alive
                assert!(self.child.try_wait().unwrap().is_none(), "the MLflow server exited:\n{}", self.log_tail());
                let version = ureq::get(&format!("{}/version", self.uri)).call().unwrap().into_string().unwrap();
                assert_eq!(version.trim(), "3.17.2", "the contract is measured against MLflow 3.17.2");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the MLflow server was not healthy after {limit:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM to the mlflow CLI takes its uvicorn worker down too; Child::kill would be SIGKILL and orphan it
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while signalled && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the MLflow server (pid {pid}) did not stop on SIGTERM: killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
