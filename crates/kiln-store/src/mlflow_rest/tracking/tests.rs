use std::io::{Read, Write};
use std::net::TcpListener;

use kiln_domain::{Code, ExperimentId, PortError, RunId, RunInfo, RunStatus, Tracker};
use serde_json::{Value, json};

use super::{key_value_list, run_info};
use crate::mlflow_rest::{Field, RestConfig, RestStore};

/// A `runs/get` answer as MLflow 3.17.2 gives it (shape from the project's MLflow notes).
fn run_answer() -> Value {
    json!({"run": {
        "info": {
            "run_uuid": "69c5e74f", "experiment_id": "1", "run_name": "demo-run-1", "user_id": "alice",
            "status": "RUNNING", "start_time": 1_795_333_407_934_i64,
            "artifact_uri": "mlflow-artifacts:/1/69c5e74f/artifacts", "lifecycle_stage": "active", "run_id": "69c5e74f"
        },
        "data": {"params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "mlflow.user", "value": "demo"}]},
        "inputs": {}, "outputs": {}
    }})
}

/// `run_info` of `answer`, or the message of its error (which must be `store_corrupt`).
fn read_run(answer: &Value) -> Result<RunInfo, String> {
    let root = Field::root(answer, "MLflow server http://h: GET runs/get");
    root.object("run").and_then(|run| run_info(&run)).map_err(|e| {
        assert_eq!(e.code, Code::StoreCorrupt, "{}", e.message);
        e.message
    })
}

/// Applies `change` to a good answer and checks that the error names `field`.
fn check_refused(change: impl FnOnce(&mut Value), field: &str) {
    let mut answer = run_answer();
    change(&mut answer);
    let message = read_run(&answer).expect_err("the answer must be refused");
    assert!(message.contains(&format!("`{field}`")), "'{message}' should name `{field}`");
}

#[test]
fn a_complete_run_is_read() {
    let info = read_run(&run_answer()).unwrap();
    assert_eq!(
        info,
        RunInfo {
            run_id: RunId("69c5e74f".into()),
            experiment_id: ExperimentId("1".into()),
            run_name: "demo-run-1".into(),
            status: RunStatus::Running,
            start_time_ms: 1_795_333_407_934,
            end_time_ms: None,
            artifact_uri: "mlflow-artifacts:/1/69c5e74f/artifacts".into(),
        }
    );
    let mut ended = run_answer();
    ended["run"]["info"]["status"] = json!("FINISHED");
    ended["run"]["info"]["end_time"] = json!("1795333422515");
    let info = read_run(&ended).unwrap();
    assert_eq!((info.status, info.end_time_ms), (RunStatus::Finished, Some(1_795_333_422_515)));
}

#[test]
fn a_run_with_a_missing_field_is_refused_naming_it() {
    for field in ["run_id", "experiment_id", "run_name", "status", "start_time", "artifact_uri"] {
        check_refused(|a| drop(a["run"]["info"].as_object_mut().unwrap().remove(field)), &format!("run.info.{field}"));
    }
    check_refused(|a| drop(a["run"].as_object_mut().unwrap().remove("info")), "run.info");
}

#[test]
fn a_run_with_a_mistyped_field_is_refused_naming_it() {
    check_refused(|a| a["run"]["info"]["run_id"] = json!(42), "run.info.run_id");
    check_refused(|a| a["run"]["info"]["start_time"] = json!("yesterday"), "run.info.start_time");
    check_refused(|a| a["run"]["info"]["end_time"] = json!({"ms": 1}), "run.info.end_time");
    check_refused(|a| a["run"]["info"]["status"] = json!("PAUSED"), "run.info.status");
    check_refused(|a| a["run"]["info"]["artifact_uri"] = Value::Null, "run.info.artifact_uri");
}

#[test]
fn key_value_lists_need_both_fields() {
    let answer = json!({"tags": [{"key": "b", "value": ""}, {"key": "a", "value": "1"}]});
    let root = Field::root(&answer, "MLflow server http://h: GET runs/get");
    let pairs = key_value_list(&root.list("tags").unwrap()).unwrap();
    assert_eq!(pairs, [("a".to_string(), "1".to_string()), ("b".to_string(), String::new())]);
    let answer = json!({"params": [{"key": "a", "value": "1"}, {"key": "b"}]});
    let root = Field::root(&answer, "MLflow server http://h: GET runs/get");
    let e = key_value_list(&root.list("params").unwrap()).unwrap_err();
    assert!(e.message.contains("`params[1].value`"), "{}", e.message);
}

/// A local HTTP server that answers each request with the body of the first route whose text is in its request
/// line, for as long as the test runs.
fn stub(routes: Vec<(&'static str, Value)>) -> RestStore {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0_u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let line = text.lines().next().unwrap_or("");
            let body = routes.iter().find(|(r, _)| line.contains(r)).map_or_else(|| json!({}), |(_, b)| b.clone());
            let body = body.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
        }
    });
    RestStore::new(RestConfig { max_retries: 0, ..RestConfig::new(&uri) }).unwrap()
}

fn corrupt(result: Result<impl std::fmt::Debug, PortError>) -> String {
    let e = result.expect_err("the answer must be refused");
    assert_eq!(e.code, Code::StoreCorrupt, "{}", e.message);
    e.message
}

#[test]
fn the_adapter_refuses_a_server_answer_without_a_field() {
    let mut answer = run_answer();
    answer["run"]["info"].as_object_mut().unwrap().remove("run_id");
    answer["run"]["data"]["params"] = json!([{"key": "lr"}]);
    let store =
        stub(vec![("runs/get", answer), ("metrics/get-history", json!({"metrics": [{"key": "m", "value": 1.0}]}))]);
    let run = RunId("69c5e74f".into());
    let message = corrupt(store.get_run(&run));
    assert!(message.starts_with(&format!("MLflow server {}: GET runs/get", store.uri())), "{message}");
    assert!(message.contains("`run.info.run_id`"), "{message}");
    assert!(corrupt(store.params(&run)).contains("`run.data.params[0].value`"));
    let message = corrupt(store.metric_history(&run, "m"));
    assert!(message.contains("GET metrics/get-history") && message.contains("`metrics[0].timestamp`"), "{message}");
}

#[test]
fn the_adapter_refuses_a_mistyped_experiment_id() {
    let store = stub(vec![(
        "experiments/get-by-name",
        json!({"experiment": {"experiment_id": 1, "name": "e", "lifecycle_stage": "active"}}),
    )]);
    let message = corrupt(store.experiment_by_name("e"));
    assert!(message.contains("`experiment.experiment_id` = 1, which is not a string"), "{message}");
}
