use kiln_domain::Code;
use serde_json::{Value, json};

use super::Field;

const CONTEXT: &str = "MLflow server http://127.0.0.1:5000: GET runs/get";

fn root(v: &Value) -> Field<'_> {
    Field::root(v, CONTEXT)
}

/// The error is `store_corrupt` and its message names the server, the call and `expect`.
fn check_err(result: Result<impl std::fmt::Debug, kiln_domain::PortError>, expect: &str) {
    let e = result.expect_err("a missing or mistyped field must be refused");
    assert_eq!(e.code, Code::StoreCorrupt, "{}", e.message);
    assert!(e.message.starts_with(CONTEXT), "{}", e.message);
    assert!(e.message.contains(expect), "'{}' should contain '{expect}'", e.message);
}

#[test]
fn present_fields_are_read_with_their_types() {
    let v = json!({"run": {"info": {"run_id": "abc", "start_time": 17, "end_time": "18", "ok": true}}});
    let info = root(&v).object("run").unwrap().object("info").unwrap();
    assert_eq!(info.str("run_id").unwrap(), "abc");
    assert_eq!(info.int("start_time").unwrap(), 17);
    assert_eq!(info.int("end_time").unwrap(), 18, "an int64 may come as a string");
    assert_eq!(info.opt_bool("ok").unwrap(), Some(true));
}

#[test]
fn a_missing_required_field_is_named_by_its_path() {
    let v = json!({"run": {"info": {"run_name": "r"}}});
    let info = root(&v).object("run").unwrap().object("info").unwrap();
    check_err(info.str("run_id"), "without the field `run.info.run_id`");
    check_err(info.int("start_time"), "without the field `run.info.start_time`");
    check_err(root(&v).object("model"), "without the field `model`");
    let null = json!({"run": null});
    check_err(root(&null).object("run"), "without the field `run`");
}

#[test]
fn a_mistyped_field_is_named_with_its_value() {
    let v = json!({"run": {"info": {"run_id": 12, "start_time": "soon", "end_time": 1.5, "is_dir": "no"}, "data": []}});
    let run = root(&v).object("run").unwrap();
    let info = run.object("info").unwrap();
    check_err(info.str("run_id"), "`run.info.run_id` = 12, which is not a string");
    check_err(info.int("start_time"), "`run.info.start_time` = \"soon\", which is not an integer");
    check_err(info.opt_int("end_time"), "`run.info.end_time` = 1.5, which is not an integer");
    check_err(info.opt_bool("is_dir"), "`run.info.is_dir` = \"no\", which is not a boolean");
    check_err(run.opt_object("data"), "`run.data` = [], which is not an object");
    check_err(root(&v).list("run"), "which is not a list");
}

#[test]
fn optional_fields_and_lists_may_be_absent_but_not_mistyped() {
    let v = json!({"a": {}, "tags": [{"key": "k"}, {"key": 3}], "aliases": ["x", null], "next_page_token": ""});
    let r = root(&v);
    assert_eq!(r.opt_str("description").unwrap(), None);
    assert_eq!(r.opt_int("end_time").unwrap(), None);
    assert!(r.list("params").unwrap().is_empty(), "protobuf leaves empty lists out");
    assert_eq!(r.next_page_token().unwrap(), None, "an empty token ends the pages");
    let tags = r.list("tags").unwrap();
    assert_eq!(tags[0].str("key").unwrap(), "k");
    check_err(tags[0].str("value"), "without the field `tags[0].value`");
    check_err(tags[1].str("key"), "`tags[1].key` = 3, which is not a string");
    let aliases = r.list("aliases").unwrap();
    assert_eq!(aliases[0].as_str().unwrap(), "x");
    check_err(aliases[1].as_str(), "without the field `aliases[1]`");
    check_err(root(&json!({"next_page_token": 5})).next_page_token(), "`next_page_token` = 5");
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(500);
    let v = json!({ "run_id": [long] });
    let e = root(&v).str("run_id").unwrap_err();
    assert!(e.message.len() < 200, "{}", e.message);
    assert!(e.message.contains("..., which is not a string"), "{}", e.message);
}
