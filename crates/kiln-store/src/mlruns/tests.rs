use std::fs;
use std::path::Path;

use kiln_domain::{ArtifactStore, Code, MetricPoint, ModelRegistry, RunId, RunStatus, Stage, Tracker};

use super::LocalStore;
use super::fsio::check_key;
use super::pyyaml::{Yaml, dump, python_float_repr};

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(&dir.path().join("mlruns")).unwrap();
    (dir, store)
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn point(key: &str, value: f64, step: i64) -> MetricPoint {
    MetricPoint { key: key.into(), value, timestamp_ms: 1_795_333_905_191, step }
}

// ---------------------------------------------------------------------------------------------------------------
// PyYAML and Python float text, checked against fixtures produced by PyYAML and CPython themselves

#[test]
fn yaml_strings_match_pyyaml() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("../../testdata/pyyaml_cases.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = case["yaml"].as_str().unwrap();
        assert_eq!(dump(&[("k".to_string(), Yaml::str(text))]), expected, "for {text:?}");
    }
    let mapping = vec![
        ("name".to_string(), Yaml::str("x")),
        ("aliases".to_string(), Yaml::Map(vec![("champion".into(), Yaml::str("1")), ("9".into(), Yaml::str("2"))])),
        ("tags".to_string(), Yaml::EmptyList),
        ("e".to_string(), Yaml::Map(vec![])),
        ("n".to_string(), Yaml::Null),
        ("i".to_string(), Yaml::Int(-5)),
        ("b".to_string(), Yaml::Bool(true)),
    ];
    assert_eq!(dump(&mapping), fixture["mapping"]["yaml"].as_str().unwrap());
}

#[test]
fn floats_match_python_repr() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/python_float_repr.json")).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let bits = u64::from_str_radix(case["bits"].as_str().unwrap(), 16).unwrap();
        let v = f64::from_bits(bits);
        let expected = case["repr"].as_str().unwrap();
        assert_eq!(python_float_repr(v), expected, "bits {bits:016x}");
        // and Rust reads back what Python's float() reads
        let back: f64 = expected.parse().unwrap();
        assert!(back.to_bits() == v.to_bits() || (back.is_nan() && v.is_nan()), "{expected}");
    }
}

#[test]
fn keys_follow_mlflow_rules() {
    for ok in ["rmse", "val/rmse", "a b", "lr_0.1", "x-y", "größe"] {
        check_key("metric", ok).unwrap();
    }
    for bad in ["", "/abs", "a//b", "a/./b", "a/../b", "..", "../x", "a/", "x:y", "a\\b", "tab\t"] {
        let err = check_key("metric", bad).unwrap_err();
        assert_eq!(err.code, Code::ConfigInvalid, "{bad:?}");
        assert!(err.message.contains(&format!("'{bad}'")), "{}", err.message);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Layout

#[test]
fn open_creates_trash_and_the_default_experiment() {
    let (_dir, store) = store();
    assert!(store.root().join(".trash").is_dir());
    let meta = read(store.root().join("0/meta.yaml"));
    let created = meta.lines().find_map(|l| l.strip_prefix("creation_time: ")).unwrap();
    assert_eq!(
        meta,
        format!(
            "artifact_location: mlflow-artifacts:/0\ncreation_time: {created}\nexperiment_id: '0'\n\
             last_update_time: {created}\nlifecycle_stage: active\nname: Default\n"
        )
    );
    // opening again changes nothing
    let again = LocalStore::open(store.root()).unwrap();
    assert_eq!(read(again.root().join("0/meta.yaml")), meta);
    assert_eq!(store.experiment_by_name("Default").unwrap().0, "0");
}

#[test]
fn experiments_are_numbered_and_found_by_name() {
    let (_dir, store) = store();
    let a = store.experiment_by_name("demo exp").unwrap();
    let b = store.experiment_by_name("other").unwrap();
    assert_eq!((a.0.as_str(), b.0.as_str()), ("1", "2"));
    assert_eq!(store.experiment_by_name("demo exp").unwrap(), a);
    let meta = read(store.root().join("1/meta.yaml"));
    assert!(meta.starts_with("artifact_location: mlflow-artifacts:/1\n"), "{meta}");
    assert!(meta.contains("\nexperiment_id: '1'\n") && meta.ends_with("\nname: demo exp\n"), "{meta}");
    let err = store.experiment_by_name("  ").unwrap_err();
    assert_eq!(err.code, Code::ConfigInvalid);
}

#[test]
fn run_files_are_byte_exact() {
    let (_dir, store) = store();
    let exp = store.experiment_by_name("hand-exp").unwrap();
    let info = store.create_run(&exp, "hand-run", &kv(&[("mlflow.user", "demo")]), 1_795_333_905_191).unwrap();
    let run = &info.run_id;
    assert_eq!(run.0.len(), 32);
    assert!(run.0.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(info.artifact_uri, format!("mlflow-artifacts:/1/{}/artifacts", run.0));
    let dir = store.root().join("1").join(&run.0);
    for sub in ["metrics", "params", "tags", "artifacts"] {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }
    let expected_meta = |end: &str, status: i64| {
        format!(
            "artifact_uri: mlflow-artifacts:/1/{id}/artifacts\nend_time: {end}\nentry_point_name: ''\n\
             experiment_id: '1'\nlifecycle_stage: active\nrun_id: {id}\nrun_name: hand-run\nsource_name: ''\n\
             source_type: 4\nsource_version: ''\nstart_time: 1795333905191\nstatus: {status}\ntags: []\n\
             user_id: demo\n",
            id = run.0
        )
    };
    assert_eq!(read(dir.join("meta.yaml")), expected_meta("null", 1));
    assert_eq!(read(dir.join("tags/mlflow.runName")), "hand-run");
    assert_eq!(read(dir.join("tags/mlflow.user")), "demo");

    store.log_params(run, &kv(&[("learning_rate", "0.1")])).unwrap();
    assert_eq!(read(dir.join("params/learning_rate")), "0.1");
    store.log_metrics(run, &[point("rmse", 0.1, 0), point("rmse", 1e-5, 1)]).unwrap();
    store.log_metrics(run, &[point("rmse", f64::NAN, 2)]).unwrap();
    assert_eq!(read(dir.join("metrics/rmse")), "1795333905191 0.1 0\n1795333905191 1e-05 1\n1795333905191 nan 2\n");
    store.end_run(run, RunStatus::Finished, 1_795_333_910_191).unwrap();
    assert_eq!(read(dir.join("meta.yaml")), expected_meta("1795333910191", 3));
    // no temporary file was left behind anywhere
    let leftovers: Vec<_> = fs::read_dir(store.root().join(".trash")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tracking_round_trip() {
    let (_dir, store) = store();
    let exp = store.experiment_by_name("demo").unwrap();
    let run = store.create_run(&exp, "first", &kv(&[("team", "rust")]), 1000).unwrap().run_id;

    store.log_params(&run, &kv(&[("lr", "0.1"), ("model/depth", "6")])).unwrap();
    store.log_params(&run, &kv(&[("lr", "0.1")])).unwrap();
    let err = store.log_params(&run, &kv(&[("lr", "0.2")])).unwrap_err();
    assert_eq!(err.code, Code::AlreadyExists);
    assert!(
        err.message.contains("'lr'") && err.message.contains("'0.1'") && err.message.contains("'0.2'"),
        "{}",
        err.message
    );
    let err = store.log_params(&run, &kv(&[("new", "1"), ("new", "2")])).unwrap_err();
    assert_eq!(err.code, Code::AlreadyExists);
    assert_eq!(store.params(&run).unwrap(), kv(&[("lr", "0.1"), ("model/depth", "6")]));
    let err = store.log_params(&run, &kv(&[("../escape", "1")])).unwrap_err();
    assert_eq!(err.code, Code::ConfigInvalid);

    let points: Vec<MetricPoint> = (0..5).map(|s| point("val/rmse", 1.0 / (s + 1) as f64, s)).collect();
    store.log_metrics(&run, &points[..2]).unwrap();
    store.log_metrics(&run, &points[2..]).unwrap();
    store.log_metrics(&run, &[point("auc", 0.87, 0)]).unwrap();
    assert_eq!(store.metric_history(&run, "val/rmse").unwrap(), points);
    assert_eq!(store.metrics(&run).unwrap().len(), 6);
    assert!(store.metric_history(&run, "never").unwrap().is_empty());

    store.set_tags(&run, &kv(&[("stage", "dev"), ("stage", "prod")])).unwrap();
    store.set_tags(&run, &kv(&[("mlflow.runName", "renamed")])).unwrap();
    let tags = store.tags(&run).unwrap();
    assert!(tags.contains(&("stage".into(), "prod".into())));
    assert!(tags.contains(&("team".into(), "rust".into())));
    assert!(tags.contains(&("mlflow.runName".into(), "renamed".into())));

    let info = store.get_run(&run).unwrap();
    assert_eq!((info.run_name.as_str(), info.status, info.end_time_ms), ("renamed", RunStatus::Running, None));
    store.end_run(&run, RunStatus::Finished, 2000).unwrap();
    let info = store.get_run(&run).unwrap();
    assert_eq!((info.status, info.start_time_ms, info.end_time_ms), (RunStatus::Finished, 1000, Some(2000)));

    let failed = store.create_run(&exp, "second", &[], 3000).unwrap().run_id;
    store.end_run(&failed, RunStatus::Failed, 4000).unwrap();
    assert_eq!(store.get_run(&failed).unwrap().status, RunStatus::Failed);
    assert!(read(store.root().join("1").join(&failed.0).join("meta.yaml")).contains("\nstatus: 4\n"));

    let unknown = RunId("0123456789abcdef0123456789abcdef".into());
    assert_eq!(store.get_run(&unknown).unwrap_err().code, Code::NotFound);
    assert_eq!(store.log_metrics(&unknown, &[point("x", 1.0, 0)]).unwrap_err().code, Code::NotFound);
    assert_eq!(store.get_run(&RunId("../1".into())).unwrap_err().code, Code::NotFound);
    let missing = kiln_domain::ExperimentId("77".into());
    assert_eq!(store.create_run(&missing, "x", &[], 0).unwrap_err().code, Code::NotFound);
}

#[test]
fn artifacts_put_list_download() {
    let (dir, store) = store();
    let exp = store.experiment_by_name("demo").unwrap();
    let run = store.create_run(&exp, "r", &[], 0).unwrap().run_id;
    store.put_bytes(&run, "top.txt", b"hello artifacts").unwrap();
    store.put_bytes(&run, "/reports/hello.txt", b"hi").unwrap();

    let local = dir.path().join("bundle");
    fs::create_dir_all(local.join("nested")).unwrap();
    fs::write(local.join("MLmodel"), "flavors: {}\n").unwrap();
    fs::write(local.join("nested/model.lgb"), "tree\n").unwrap();
    store.put_dir(&run, "model", &local).unwrap();

    let art = store.artifact_dir(&run).unwrap();
    assert_eq!(art, store.root().join("1").join(&run.0).join("artifacts"));
    assert_eq!(read(art.join("reports/hello.txt")), "hi");

    let root = store.list(&run, "").unwrap();
    let paths: Vec<(&str, bool, Option<u64>)> = root.iter().map(|e| (e.path.as_str(), e.is_dir, e.size)).collect();
    assert_eq!(paths, [("model", true, None), ("reports", true, None), ("top.txt", false, Some(15))]);
    let model = store.list(&run, "model").unwrap();
    let paths: Vec<&str> = model.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["model/MLmodel", "model/nested"]);
    assert!(store.list(&run, "nothing-here").unwrap().is_empty());

    let dest = dir.path().join("download");
    store.download_dir(&run, "model", &dest).unwrap();
    assert_eq!(read(dest.join("MLmodel")), "flavors: {}\n");
    assert_eq!(read(dest.join("nested/model.lgb")), "tree\n");
    assert_eq!(store.download_dir(&run, "missing", &dest).unwrap_err().code, Code::NotFound);
    assert_eq!(store.put_bytes(&run, "a/../b", b"x").unwrap_err().code, Code::ConfigInvalid);
    assert_eq!(store.put_bytes(&run, "", b"x").unwrap_err().code, Code::ConfigInvalid);
}

// ---------------------------------------------------------------------------------------------------------------
// Registry

#[test]
fn registry_versions_aliases_and_stages() {
    let (_dir, store) = store();
    let exp = store.experiment_by_name("demo").unwrap();
    let run = store.create_run(&exp, "r", &[], 0).unwrap().run_id;
    assert_eq!(store.list_versions("m").unwrap_err().code, Code::NotFound);
    store.ensure_registered_model("m").unwrap();
    store.ensure_registered_model("m").unwrap();
    let model_meta = read(store.root().join("models/m/meta.yaml"));
    let created = model_meta.lines().find_map(|l| l.strip_prefix("creation_timestamp: ")).unwrap().to_string();

    let source = format!("runs:/{}/model", run.0);
    let v1 = store.create_version("m", &source, &run, None).unwrap();
    let v2 = store.create_version("m", &source, &run, None).unwrap();
    let v3 = store.create_version("m", &source, &run, None).unwrap();
    assert_eq!((v1.version, v2.version, v3.version), (1, 2, 3));
    assert_eq!(v1.stage, Stage::None);

    let meta = read(store.root().join("models/m/version-1/meta.yaml"));
    let ts = meta.lines().find_map(|l| l.strip_prefix("creation_timestamp: ")).unwrap().to_string();
    assert_eq!(
        meta,
        format!(
            "creation_timestamp: {ts}\ncurrent_stage: None\ndescription: ''\nlast_updated_timestamp: {ts}\n\
             name: m\nrun_id: {id}\nrun_link: ''\nsource: runs:/{id}/model\nstatus: READY\nstatus_message: null\n\
             user_id: ''\nversion: 1\n",
            id = run.0
        )
    );
    let model_meta = read(store.root().join("models/m/meta.yaml"));
    assert!(
        model_meta.starts_with(&format!("creation_timestamp: {created}\ndescription: ''\nlast_updated_timestamp: "))
    );
    assert!(model_meta.ends_with("\nname: m\n"), "{model_meta}");

    // aliases: set, move, read, delete
    store.set_alias("m", "champion", 1).unwrap();
    assert_eq!(read(store.root().join("models/m/aliases/champion")), "1");
    assert_eq!(store.version_by_alias("m", "champion").unwrap().version, 1);
    store.set_alias("m", "champion", 2).unwrap();
    store.set_alias("m", "Champion", 3).unwrap();
    let by_alias = store.version_by_alias("m", "champion").unwrap();
    assert_eq!((by_alias.version, by_alias.aliases.clone()), (2, vec!["champion".to_string()]));
    assert_eq!(store.get_version("m", 3).unwrap().aliases, ["Champion"]);
    store.delete_alias("m", "champion").unwrap();
    assert_eq!(store.version_by_alias("m", "champion").unwrap_err().code, Code::NotFound);
    assert_eq!(store.delete_alias("m", "champion").unwrap_err().code, Code::NotFound);
    for reserved in ["latest", "LaTeSt", "v1", "V12"] {
        let err = store.set_alias("m", reserved, 1).unwrap_err();
        assert_eq!(err.code, Code::ModelRefInvalid, "{reserved}");
        assert!(err.message.contains("reserved"), "{}", err.message);
    }
    assert_eq!(store.set_alias("m", "bad/alias", 1).unwrap_err().code, Code::ModelRefInvalid);
    assert_eq!(store.set_alias("m", "champion", 9).unwrap_err().code, Code::NotFound);

    // stages, with and without archiving the others
    store.transition_stage("m", 1, Stage::Production, false).unwrap();
    store.transition_stage("m", 2, Stage::Production, false).unwrap();
    let v3 = store.transition_stage("m", 3, Stage::Production, true).unwrap();
    assert_eq!(v3.stage, Stage::Production);
    let stages: Vec<Stage> = store.list_versions("m").unwrap().iter().map(|v| v.stage).collect();
    assert_eq!(stages, [Stage::Archived, Stage::Archived, Stage::Production]);
    assert!(read(store.root().join("models/m/version-1/meta.yaml")).contains("\ncurrent_stage: Archived\n"));
    store.transition_stage("m", 1, Stage::Staging, true).unwrap();
    assert_eq!(store.get_version("m", 1).unwrap().stage, Stage::Staging);
    assert_eq!(store.get_version("m", 3).unwrap().stage, Stage::Production);
    assert_eq!(store.transition_stage("m", 2, Stage::Archived, true).unwrap_err().code, Code::ModelRefInvalid);
    assert_eq!(store.transition_stage("m", 7, Stage::Staging, false).unwrap_err().code, Code::NotFound);

    assert_eq!(store.ensure_registered_model("a/b").unwrap_err().code, Code::ModelRefInvalid);
    assert_eq!(store.create_version("nope", &source, &run, None).unwrap_err().code, Code::NotFound);
}

#[test]
fn version_numbers_never_collide() {
    let (_dir, store) = store();
    store.ensure_registered_model("m").unwrap();
    let run = RunId("0123456789abcdef0123456789abcdef".into());
    // an older kiln killed while registering left an empty version-1 folder: the whole new version takes its place
    fs::create_dir(store.root().join("models/m/version-1")).unwrap();
    assert_eq!(store.create_version("m", "runs:/x/model", &run, None).unwrap().version, 1);
    // a version-2 folder with something in it (not a version kiln wrote) is never overwritten: the next is 3
    fs::create_dir(store.root().join("models/m/version-2")).unwrap();
    fs::write(store.root().join("models/m/version-2/note"), "x").unwrap();
    assert_eq!(store.create_version("m", "runs:/x/model", &run, None).unwrap().version, 3);
    assert_eq!(store.list_versions("m").unwrap().len(), 2);
    fs::remove_dir_all(store.root().join("models/m/version-2")).unwrap();
    fs::create_dir(store.root().join("models/m/version-2")).unwrap();
    fs::write(store.root().join("models/m/version-2/meta.yaml"), "x").unwrap();
    assert_eq!(store.create_version("m", "runs:/x/model", &run, None).unwrap().version, 2 + 2);

    // many threads at once still get distinct numbers
    let store = std::sync::Arc::new(store);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            let run = run.clone();
            std::thread::spawn(move || store.create_version("m", "runs:/x/model", &run, None).unwrap().version)
        })
        .collect();
    let mut got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (5..=12).collect::<Vec<_>>());
}

#[test]
fn reads_what_mlflow_python_writes() {
    // files as MLflow 3.17.2's own FileStore wrote them (nulls, extra keys, 18-digit experiment ids)
    let (_dir, store) = store();
    let root = store.root();
    let run_id = "cc6d93d5ca2b4bb0ac1828baae8138d5";
    let run_dir = root.join("850828223697934450").join(run_id);
    fs::create_dir_all(run_dir.join("metrics")).unwrap();
    fs::write(
        root.join("850828223697934450/meta.yaml"),
        "artifact_location: mlflow-artifacts:/850828223697934450\ncreation_time: 1795426776818\n\
         effective_trace_archival_retention: null\nexperiment_id: '850828223697934450'\n\
         last_update_time: 1795426776818\nlifecycle_stage: active\nname: hand-exp\ntrace_location: null\n\
         workspace: default\n",
    )
    .unwrap();
    fs::write(
        run_dir.join("meta.yaml"),
        format!(
            "artifact_uri: mlflow-artifacts:/850828223697934450/{run_id}/artifacts\nend_time: 1795333910191\n\
             entry_point_name: ''\nexperiment_id: '850828223697934450'\nlifecycle_stage: active\nrun_id: {run_id}\n\
             run_name: hand-run\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: 1795333905191\n\
             status: 3\ntags: []\nuser_id: demo\n"
        ),
    )
    .unwrap();
    fs::write(run_dir.join("metrics/big"), "1 1e+16 2\n1 nan 0\n").unwrap();
    let run = RunId(run_id.into());
    let info = store.get_run(&run).unwrap();
    assert_eq!((info.status, info.run_name.as_str()), (RunStatus::Finished, "hand-run"));
    let history = store.metric_history(&run, "big").unwrap();
    assert_eq!(history[0].value, 1e16);
    assert!(history[1].value.is_nan());
    assert_eq!(store.experiment_by_name("hand-exp").unwrap().0, "850828223697934450");
    assert_eq!(store.experiment_by_name("next").unwrap().0, "850828223697934451");

    let vdir = root.join("models/hand-model/version-1");
    fs::create_dir_all(&vdir).unwrap();
    fs::write(
        root.join("models/hand-model/meta.yaml"),
        "aliases:\n  champion: '1'\ncreation_timestamp: 1795426776828\ndeployment_job_id: null\n\
         deployment_job_state: null\ndescription: written by hand\nlast_updated_timestamp: 1795426776836\n\
         name: hand-model\nworkspace: default\n",
    )
    .unwrap();
    fs::write(
        vdir.join("meta.yaml"),
        format!(
            "creation_timestamp: 1795426776828\ncurrent_stage: Production\ndeployment_job_state: null\n\
             description: null\nlast_updated_timestamp: 1795426776836\nmodel_id: null\nname: hand-model\n\
             run_id: {run_id}\nrun_link: null\nsource: runs:/{run_id}/model\nstatus: READY\nstatus_message: null\n\
             storage_location: runs:/{run_id}/model\nuser_id: null\nversion: 1\nworkspace: default\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(root.join("models/hand-model/aliases")).unwrap();
    fs::write(root.join("models/hand-model/aliases/champion"), "1").unwrap();
    let v = store.version_by_alias("hand-model", "champion").unwrap();
    assert_eq!((v.version, v.stage, v.description.as_str()), (1, Stage::Production, ""));
    // rewriting keeps the keys kiln does not know
    store.transition_stage("hand-model", 1, Stage::Staging, false).unwrap();
    let meta = read(vdir.join("meta.yaml"));
    assert!(meta.contains("\ncurrent_stage: Staging\n") && meta.contains("\nstorage_location: runs:/"), "{meta}");
    assert!(meta.ends_with("\nversion: 1\nworkspace: default\n"), "{meta}");
}

// ---------------------------------------------------------------------------------------------------------------
// what a killed writer leaves, and reading that never writes

#[test]
fn opening_a_missing_store_is_an_error_that_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = LocalStore::open(&missing).unwrap_err();
    assert_eq!(err.code, Code::NotFound);
    assert!(err.message.contains(&missing.display().to_string()), "{}", err.message);
    assert!(!missing.exists());
    // an existing folder opens as a store without anything written into it
    fs::create_dir(&missing).unwrap();
    let store = LocalStore::open(&missing).unwrap();
    assert!(store.registered_models().unwrap().is_empty());
    assert!(store.repair().unwrap() == super::Repaired::default());
    assert_eq!(fs::read_dir(&missing).unwrap().count(), 0);
    // a writer into it creates the staging folder it needs
    let exp = store.experiment_by_name("e").unwrap();
    store.create_run(&exp, "r", &[], 1).unwrap();
    assert!(missing.join(".trash").is_dir());
}

/// Every folder under `models/` has its meta.yaml (what MLflow's file store needs to list the registry).
fn assert_registry_whole(root: &Path) {
    for model in fs::read_dir(root.join("models")).unwrap() {
        let model = model.unwrap().path();
        assert!(model.join("meta.yaml").is_file(), "{} has no meta.yaml", model.display());
        for entry in fs::read_dir(&model).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("version-") {
                assert!(path.join("meta.yaml").is_file(), "{} has no meta.yaml", path.display());
            }
        }
    }
}

#[test]
fn registry_folders_appear_whole_and_leave_no_staging_behind() {
    let (_dir, store) = store();
    let run = RunId("0123456789abcdef0123456789abcdef".into());
    for name in ["a", "b"] {
        store.ensure_registered_model(name).unwrap();
        store.ensure_registered_model(name).unwrap();
        for _ in 0..3 {
            store.create_version(name, "runs:/x/model", &run, None).unwrap();
        }
    }
    assert_registry_whole(store.root());
    assert_eq!(store.list_versions("a").unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    let staging: Vec<_> = fs::read_dir(store.root().join(".trash")).unwrap().collect();
    assert!(staging.is_empty(), "{staging:?}");
}

#[test]
fn runs_of_dead_processes_are_marked_failed_and_live_ones_are_left_alone() {
    let (dir, store) = store();
    let exp = store.experiment_by_name("e").unwrap();
    let live = store.create_run(&exp, "live", &[], 1).unwrap().run_id;
    let ended = store.create_run(&exp, "ended", &[], 1).unwrap().run_id;
    store.end_run(&ended, RunStatus::Finished, 2).unwrap();
    // a second writer whose process dies: dropping the store lets go of its run locks, as the kernel does on SIGKILL
    let dead = {
        let other = LocalStore::open(&dir.path().join("mlruns")).unwrap();
        other.create_run(&exp, "dead", &[], 1).unwrap().run_id
    };
    let reader = LocalStore::open(&dir.path().join("mlruns")).unwrap();
    let repaired = reader.repair().unwrap();
    assert_eq!(repaired.failed_runs, vec![dead.clone()]);
    assert_eq!(reader.get_run(&dead).unwrap().status, RunStatus::Failed);
    assert!(reader.get_run(&dead).unwrap().end_time_ms.is_some());
    assert!(reader.tags(&dead).unwrap().iter().any(|(k, v)| k == "kiln.error" && v.starts_with("interrupted")));
    assert_eq!(reader.get_run(&live).unwrap().status, RunStatus::Running);
    assert_eq!(reader.get_run(&ended).unwrap().status, RunStatus::Finished);
    // the live run still ends normally, and nothing is repaired twice
    store.end_run(&live, RunStatus::Finished, 3).unwrap();
    assert_eq!(reader.repair().unwrap(), super::Repaired::default());
    for run in [&live, &ended, &dead] {
        assert!(!store.find_run(run).unwrap().dir.join(".kiln.lock").exists());
    }
}
