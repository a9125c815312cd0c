use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use kiln_domain::{Code, ModelRef, ModelRegistry, ModelVersion, PortError, RunId, Stage};

use crate::*;

/// An in-memory registry with the port's documented behaviour (and MLflow's): versions numbered from 1, one alias
/// per version at a time, `not_found` for unknown models, versions and aliases. `broken` makes every call fail
/// with `store_io`, as a dead server would.
#[derive(Default)]
struct FakeRegistry {
    models: RefCell<BTreeMap<String, Vec<ModelVersion>>>,
    broken: Cell<bool>,
}

impl FakeRegistry {
    fn up(&self) -> Result<(), PortError> {
        if self.broken.get() { Err(PortError::io("connection refused by 127.0.0.1:5000")) } else { Ok(()) }
    }

    fn with_version<T>(
        &self,
        name: &str,
        version: u64,
        f: impl FnOnce(&mut ModelVersion) -> T,
    ) -> Result<T, PortError> {
        self.up()?;
        let mut models = self.models.borrow_mut();
        let versions = models.get_mut(name).ok_or_else(|| PortError::not_found(format!("model '{name}'")))?;
        let v = versions
            .iter_mut()
            .find(|v| v.version == version)
            .ok_or_else(|| PortError::not_found(format!("model '{name}' version {version}")))?;
        Ok(f(v))
    }
}

impl ModelRegistry for FakeRegistry {
    fn ensure_registered_model(&self, name: &str) -> Result<(), PortError> {
        self.up()?;
        self.models.borrow_mut().entry(name.to_string()).or_default();
        Ok(())
    }

    fn create_version(
        &self,
        name: &str,
        source: &str,
        run_id: &RunId,
        _model_id: Option<&str>,
    ) -> Result<ModelVersion, PortError> {
        self.up()?;
        let mut models = self.models.borrow_mut();
        let versions = models.get_mut(name).ok_or_else(|| PortError::not_found(format!("model '{name}'")))?;
        let v = ModelVersion {
            name: name.to_string(),
            version: versions.len() as u64 + 1,
            source: source.to_string(),
            run_id: Some(run_id.clone()),
            stage: Stage::None,
            aliases: Vec::new(),
            creation_time_ms: 1_795_333_905_191 + versions.len() as i64,
            description: String::new(),
        };
        versions.push(v.clone());
        Ok(v)
    }

    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError> {
        self.with_version(name, version, |v| v.clone())
    }

    fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, PortError> {
        self.up()?;
        self.models.borrow().get(name).cloned().ok_or_else(|| PortError::not_found(format!("model '{name}'")))
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<(), PortError> {
        self.with_version(name, version, |_| ())?;
        for v in self.models.borrow_mut().get_mut(name).unwrap() {
            v.aliases.retain(|a| a != alias);
            if v.version == version {
                v.aliases.push(alias.to_string());
            }
        }
        Ok(())
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PortError> {
        let v = self.version_by_alias(name, alias)?;
        self.with_version(name, v.version, |v| v.aliases.retain(|a| a != alias))
    }

    fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, PortError> {
        self.up()?;
        let models = self.models.borrow();
        let versions = models.get(name).ok_or_else(|| PortError::not_found(format!("model '{name}'")))?;
        versions
            .iter()
            .find(|v| v.aliases.iter().any(|a| a == alias))
            .cloned()
            .ok_or_else(|| PortError::not_found(format!("alias '{alias}' of model '{name}'")))
    }

    fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, PortError> {
        self.with_version(name, version, |_| ())?;
        for v in self.models.borrow_mut().get_mut(name).unwrap() {
            if v.version == version {
                v.stage = stage;
            } else if archive_existing && v.stage == stage {
                v.stage = Stage::Archived;
            }
        }
        self.get_version(name, version)
    }

    fn set_version_tag(&self, name: &str, version: u64, _key: &str, _value: &str) -> Result<(), PortError> {
        self.with_version(name, version, |_| ())
    }
}

fn run(n: u8) -> RunId {
    RunId(format!("{n:032x}"))
}

/// `eurusd` with versions 1..=n, each from its own run, bundle under `model`.
fn registry_with(n: u8) -> FakeRegistry {
    let r = FakeRegistry::default();
    for i in 1..=n {
        register(&r, "eurusd", &run(i), "model", None).unwrap();
    }
    r
}

fn resolve_str(r: &FakeRegistry, reference: &str) -> Result<Resolution, RegistryError> {
    resolve(r, &ModelRef::parse(reference).unwrap())
}

fn resolved_version(r: &FakeRegistry, reference: &str) -> u64 {
    match resolve_str(r, reference).unwrap() {
        Resolution::Run(Resolved { version: Some(v), .. }) => v.version,
        other => panic!("{reference}: {other:?}"),
    }
}

fn err_text(e: RegistryError) -> (Code, String) {
    (e.code(), e.to_string())
}

// ---------------------------------------------------------------- register, promote

#[test]
fn register_creates_model_and_numbered_versions() {
    let r = FakeRegistry::default();
    let v1 = register(&r, "eurusd", &run(1), "model", None).unwrap();
    assert_eq!((v1.version, v1.source.as_str()), (1, "runs:/00000000000000000000000000000001/model"));
    let v2 = register(&r, "eurusd", &run(2), "/bundles/model/", None).unwrap();
    assert_eq!((v2.version, v2.source.as_str()), (2, "runs:/00000000000000000000000000000002/bundles/model"));
    assert_eq!(versions(&r, "eurusd").unwrap().len(), 2);

    for (name, run_id, path, expect) in [
        ("", "abc", "model", "invalid model name '': it is empty"),
        ("eur/usd", "abc", "model", "invalid model name 'eur/usd': it must not contain '/' or '@'"),
        ("eurusd", "a b", "model", "invalid run id 'a b'"),
        ("eurusd", "abc", "../x", "invalid artifact path '../x'"),
        ("eurusd", "abc", "/", "invalid artifact path '/': the bundle must be in a folder"),
    ] {
        let (code, text) = err_text(register(&r, name, &RunId(run_id.into()), path, None).unwrap_err());
        assert_eq!(code, Code::ModelRefInvalid);
        assert!(text.starts_with(expect), "{text}");
    }
    assert_eq!(versions(&r, "eurusd").unwrap().len(), 2, "nothing was written by refused calls");
}

#[test]
fn promote_to_alias_and_stage() {
    let r = registry_with(3);
    let v = promote(&r, "eurusd", 2, PromoteTarget::Alias("production".into())).unwrap();
    assert_eq!((v.version, v.aliases.clone()), (2, vec!["production".to_string()]));
    let v = promote(&r, "eurusd", 3, PromoteTarget::Alias("production".into())).unwrap();
    assert_eq!(v.aliases, ["production"]);
    assert!(r.get_version("eurusd", 2).unwrap().aliases.is_empty(), "the alias moved");

    let v =
        promote(&r, "eurusd", 1, PromoteTarget::Stage { stage: Stage::Production, archive_existing: false }).unwrap();
    assert_eq!(v.stage, Stage::Production);
    promote(&r, "eurusd", 2, PromoteTarget::Stage { stage: Stage::Production, archive_existing: true }).unwrap();
    assert_eq!(r.get_version("eurusd", 1).unwrap().stage, Stage::Archived);
    assert_eq!(r.get_version("eurusd", 2).unwrap().stage, Stage::Production);
}

#[test]
fn promote_errors() {
    let r = registry_with(2);
    let alias = |a: &str| PromoteTarget::Alias(a.to_string());
    for bad in ["latest", "LATEST", "v3", "V12", "", "prod uction", "a/b"] {
        let (code, text) = err_text(promote(&r, "eurusd", 1, alias(bad)).unwrap_err());
        assert_eq!(code, Code::ModelRefInvalid, "{bad}");
        assert!(text.starts_with(&format!("invalid alias '{bad}'")), "{text}");
    }
    for fine in ["champion", "prod-2024_b", "v2a", "version"] {
        promote(&r, "eurusd", 1, alias(fine)).unwrap();
    }
    assert_eq!(
        err_text(promote(&r, "eurusd", 7, alias("production")).unwrap_err()),
        (Code::NotFound, "model 'eurusd' has no version 7".to_string())
    );
    assert_eq!(
        err_text(promote(&r, "gbpusd", 1, alias("production")).unwrap_err()),
        (Code::NotFound, "no registered model 'gbpusd'".to_string())
    );
    let stage = PromoteTarget::Stage { stage: Stage::Staging, archive_existing: false };
    assert_eq!(err_text(promote(&r, "eurusd", 9, stage).unwrap_err()).1, "model 'eurusd' has no version 9");
}

// ---------------------------------------------------------------- rollback

#[test]
fn rollback_moves_alias_to_previous_unarchived_version() {
    let r = registry_with(4);
    promote(&r, "eurusd", 4, PromoteTarget::Alias("production".into())).unwrap();
    promote(&r, "eurusd", 3, PromoteTarget::Stage { stage: Stage::Archived, archive_existing: false }).unwrap();

    let (from, to) = rollback(&r, "eurusd", "production").unwrap();
    assert_eq!((from.version, to.version), (4, 2), "version 3 is archived, so it is skipped");
    assert!(from.aliases.is_empty());
    assert_eq!(to.aliases, ["production"]);
    assert_eq!(r.version_by_alias("eurusd", "production").unwrap().version, 2);

    let (from, to) = rollback(&r, "eurusd", "production").unwrap();
    assert_eq!((from.version, to.version), (2, 1));
    assert_eq!(
        err_text(rollback(&r, "eurusd", "production").unwrap_err()),
        (
            Code::NotFound,
            "cannot roll back alias 'production' of 'eurusd': no version below 1 that is not archived".to_string()
        )
    );
    assert_eq!(r.version_by_alias("eurusd", "production").unwrap().version, 1, "a failed rollback moves nothing");
}

#[test]
fn rollback_errors() {
    let r = registry_with(2);
    assert_eq!(
        err_text(rollback(&r, "eurusd", "staging").unwrap_err()),
        (Code::NotFound, "no version of 'eurusd' has alias 'staging'".to_string())
    );
    assert_eq!(err_text(rollback(&r, "nope", "staging").unwrap_err()).1, "no registered model 'nope'");
    assert_eq!(err_text(rollback(&r, "eurusd", "latest").unwrap_err()).0, Code::ModelRefInvalid);
}

// ---------------------------------------------------------------- resolve

#[test]
fn resolve_selectors() {
    let r = registry_with(4);
    promote(&r, "eurusd", 2, PromoteTarget::Alias("production".into())).unwrap();
    promote(&r, "eurusd", 1, PromoteTarget::Stage { stage: Stage::Production, archive_existing: false }).unwrap();
    promote(&r, "eurusd", 3, PromoteTarget::Stage { stage: Stage::Production, archive_existing: false }).unwrap();
    promote(&r, "eurusd", 4, PromoteTarget::Stage { stage: Stage::Archived, archive_existing: false }).unwrap();

    for (reference, version) in [
        ("models:/eurusd@production", 2),
        ("models:/eurusd/Production", 3),
        ("models:/eurusd/production", 3),
        ("models:/eurusd/latest", 4),
        ("models:/eurusd/Archived", 4),
        ("models:/eurusd/None", 2),
        ("models:/eurusd/1", 1),
    ] {
        assert_eq!(resolved_version(&r, reference), version, "{reference}");
    }
    match resolve_str(&r, "models:/eurusd@production").unwrap() {
        Resolution::Run(resolved) => {
            assert_eq!(resolved.run_id, run(2));
            assert_eq!(resolved.artifact_path, "model");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn resolve_runs_and_folders_without_the_registry() {
    let r = FakeRegistry::default();
    r.broken.set(true);
    assert_eq!(
        resolve_str(&r, "runs:/0123abcd/model/").unwrap(),
        Resolution::Run(Resolved { run_id: RunId("0123abcd".into()), artifact_path: "model".into(), version: None })
    );
    assert_eq!(resolve_str(&r, "out/bundle").unwrap(), Resolution::Folder("out/bundle".into()));
}

#[test]
fn resolve_errors_name_the_reference() {
    let r = registry_with(2);
    r.ensure_registered_model("empty").unwrap();
    for (reference, expect) in [
        ("models:/eurusd@production", "no version of 'eurusd' has alias 'production'"),
        ("models:/eurusd/Staging", "no version of 'eurusd' is in stage Staging"),
        ("models:/eurusd/9", "model 'eurusd' has no version 9"),
        ("models:/gbpusd@production", "no registered model 'gbpusd'"),
        ("models:/gbpusd/Production", "no registered model 'gbpusd'"),
        ("models:/gbpusd/latest", "no registered model 'gbpusd'"),
        ("models:/gbpusd/2", "no registered model 'gbpusd'"),
        ("models:/empty/latest", "model 'empty' has no versions"),
    ] {
        assert_eq!(err_text(resolve_str(&r, reference).unwrap_err()), (Code::NotFound, expect.to_string()));
    }

    // a failing store keeps its code and says what kiln was doing
    r.broken.set(true);
    let (code, text) = err_text(resolve_str(&r, "models:/eurusd@production").unwrap_err());
    assert_eq!(code, Code::StoreIo);
    assert_eq!(text, "resolving models:/eurusd@production: connection refused by 127.0.0.1:5000");
    let (code, text) = err_text(register(&r, "eurusd", &run(9), "model", None).unwrap_err());
    assert_eq!(code, Code::StoreIo);
    assert_eq!(text, "creating registered model 'eurusd': connection refused by 127.0.0.1:5000");
}

// ---------------------------------------------------------------- sources

fn version_with(source: &str, run_id: Option<&str>) -> ModelVersion {
    ModelVersion {
        name: "eurusd".into(),
        version: 3,
        source: source.into(),
        run_id: run_id.map(|r| RunId(r.into())),
        stage: Stage::None,
        aliases: Vec::new(),
        creation_time_ms: 0,
        description: String::new(),
    }
}

#[test]
fn sources_parse_to_run_and_path() {
    let run = "440f7b8fcc914c7b82ca17ffae352fb9";
    for (source, run_id, path) in [
        (format!("runs:/{run}/model"), Some(run), "model"),
        (format!("runs:/{run}/bundles/model/"), None, "bundles/model"),
        (format!("runs:/{run}"), Some(run), ""),
        (format!("mlflow-artifacts:/1/{run}/artifacts/model"), Some(run), "model"),
        (format!("mlflow-artifacts://127.0.0.1:5000/7/{run}/artifacts/a/model"), None, "a/model"),
        (format!("mlflow-artifacts:/1/{run}/artifacts"), Some(run), ""),
        (format!("file:///home/me/mlruns/1/{run}/artifacts/model"), Some(run), "model"),
        (format!("/home/me/mlruns/1/{run}/artifacts/model"), Some(run), "model"),
        (format!("s3://bucket/mlflow/1/{run}/artifacts/model"), Some(run), "model"),
    ] {
        let got = parse_source(&version_with(&source, run_id)).unwrap();
        assert_eq!(got, (RunId(run.into()), path.to_string()), "{source}");
    }
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    let run = "440f7b8fcc914c7b82ca17ffae352fb9";
    for (source, run_id, reason) in [
        ("models:/m-373a0b5f0e".to_string(), Some(run), "a logged-model source"),
        ("mlflow-artifacts:/1/models/m-373a/artifacts".to_string(), Some(run), "expected mlflow-artifacts:/"),
        (format!("runs:/{run}/../x"), Some(run), "invalid artifact path"),
        (format!("runs:/{run}/model"), Some("0000"), "the source names run 440f7b8fcc914c7b82ca17ffae352fb9 but"),
        (format!("/home/me/mlruns/1/{run}/artifacts/model"), None, "the version has no run id"),
        ("/home/me/bundle".to_string(), Some(run), "a URI containing /440f7b8fcc914c7b82ca17ffae352fb9/artifacts/"),
        ("runs:/a b/model".to_string(), None, "invalid run id 'a b'"),
    ] {
        let e = parse_source(&version_with(&source, run_id)).unwrap_err();
        assert_eq!(e.code(), Code::ModelRefInvalid);
        let text = e.to_string();
        assert!(text.starts_with(&format!("version 3 of 'eurusd' has source '{source}': ")), "{text}");
        assert!(text.contains(reason), "{text}");
    }
}
