use kiln_domain::{Code, RunId, Stage};
use serde_json::{Value, json};

use super::version_of;
use crate::mlflow_rest::Field;

/// A `model_version` as MLflow 3.17.2 gives it (shape from the project's MLflow notes).
fn version_answer() -> Value {
    json!({"model_version": {
        "name": "demo-model", "version": "2", "creation_timestamp": 1_795_333_500_000_i64,
        "last_updated_timestamp": 1_795_333_500_000_i64, "current_stage": "None", "description": "v2",
        "source": "mlflow-artifacts:/1/abc/artifacts/model", "run_id": "abc", "status": "READY",
        "aliases": ["champion"]
    }})
}

fn read(answer: &Value) -> Result<kiln_domain::ModelVersion, String> {
    let root = Field::root(answer, "MLflow server http://h: GET model-versions/get");
    root.object("model_version").and_then(|v| version_of(&v)).map_err(|e| {
        assert_eq!(e.code, Code::StoreCorrupt, "{}", e.message);
        e.message
    })
}

fn check_refused(change: impl FnOnce(&mut Value), field: &str) {
    let mut answer = version_answer();
    change(&mut answer["model_version"]);
    let message = read(&answer).expect_err("the answer must be refused");
    assert!(message.contains(&format!("`{field}`")), "'{message}' should name `{field}`");
}

#[test]
fn a_complete_version_is_read() {
    let v = read(&version_answer()).unwrap();
    assert_eq!((v.name.as_str(), v.version, v.stage), ("demo-model", 2, Stage::None));
    assert_eq!(v.run_id, Some(RunId("abc".into())));
    assert_eq!(
        (v.aliases, v.creation_time_ms, v.description.as_str()),
        (vec!["champion".to_string()], 1_795_333_500_000, "v2")
    );
}

#[test]
fn fields_mlflow_leaves_out_may_be_absent() {
    let mut answer = version_answer();
    let v = answer["model_version"].as_object_mut().unwrap();
    for field in ["run_id", "description", "aliases"] {
        v.remove(field);
    }
    let v = read(&answer).unwrap();
    assert_eq!((v.run_id, v.description.as_str(), v.aliases.len()), (None, "", 0));
}

#[test]
fn a_version_with_a_missing_or_mistyped_field_is_refused_naming_it() {
    for field in ["name", "version", "source", "current_stage", "creation_timestamp"] {
        check_refused(|v| drop(v.as_object_mut().unwrap().remove(field)), &format!("model_version.{field}"));
    }
    check_refused(|v| v["version"] = json!("two"), "model_version.version");
    check_refused(|v| v["version"] = json!(2), "model_version.version");
    check_refused(|v| v["current_stage"] = json!("Limbo"), "model_version.current_stage");
    check_refused(|v| v["creation_timestamp"] = json!(true), "model_version.creation_timestamp");
    check_refused(|v| v["run_id"] = json!(7), "model_version.run_id");
    check_refused(|v| v["description"] = json!(["v2"]), "model_version.description");
    check_refused(|v| v["aliases"] = json!(["champion", 3]), "model_version.aliases[1]");
}
