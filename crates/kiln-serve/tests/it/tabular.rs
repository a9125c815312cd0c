//! Telco churn: one record of raw columns in, the probability of churn and the class at the model's threshold out,
//! as `kiln_score::score` gives them for the same rows.

use kiln_serve::{AppState, LoadedModel, ModelIdentity, ServeConfig, VERSION_HEADER};
use serde_json::{Value, json};

use crate::helpers::{churn, churn_numeric, get, post, read, row, state_for};

fn input_columns() -> Vec<String> {
    read(churn()).pipeline.input_columns()
}

fn record(i: usize) -> Value {
    row(&churn().frame, &input_columns(), i)
}

#[tokio::test]
async fn model_describes_the_record_schema_with_types() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    let info = get(&state, "/model").await;
    assert_eq!(info.status, 200);
    let b = &info.body;
    assert_eq!((b["task"].as_str(), b["input_format"].as_str()), (Some("classification"), Some("record")));
    let schema = b["input_schema"].as_array().unwrap();
    let kind = |name: &str| schema.iter().find(|f| f["name"] == name).map(|f| f["type"].as_str().unwrap().to_string());
    assert_eq!(kind("customerID").as_deref(), Some("id"));
    assert_eq!(kind("tenure").as_deref(), Some("numeric"));
    assert_eq!(kind("TotalCharges").as_deref(), Some("numeric"));
    assert_eq!(kind("Contract").as_deref(), Some("categorical"));
    assert_eq!(kind("Churn"), None);
    assert!(schema.iter().all(|f| f["nullable"] == true));
    assert_eq!(schema.iter().find(|f| f["name"] == "customerID").unwrap()["required"], false);
    assert_eq!(b["decision"]["positive"], "Yes");
    assert_eq!(b["decision"]["negative"], "No");
    assert!(b["metrics"]["test/roc_auc"].as_f64().unwrap() > 0.8);
    assert!(b.get("forecast").is_none());
}

#[tokio::test]
async fn records_get_the_probability_and_class_of_batch_scoring() {
    let trained = churn();
    let state = state_for(trained, "churn", ServeConfig::default());
    let bundle = read(trained);
    let scored = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    let classes = scored.classes.as_ref().unwrap();
    let kiln_score::RowKeys::Ids { values: ids, .. } = &scored.keys else { panic!() };
    // row 488 has a blank TotalCharges (null here), imputed by the pipeline as in training
    let rows = [0, 1, 2, 488, 7000];
    assert!(record(488)["TotalCharges"].is_null());
    for &i in &rows {
        let answer = post(&state, "/predict", &record(i)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let p = answer.body["probability"].as_f64().unwrap();
        assert_eq!(p.to_bits(), scored.predictions[i].to_bits(), "row {i}");
        assert_eq!(answer.body["class"], classes[i].as_str());
        assert_eq!(answer.body["id"], ids[i].as_str());
        assert!(answer.body.get("prediction").is_none());
        assert_eq!(answer.body["model"]["name"], "churn");
        assert_eq!(answer.headers[VERSION_HEADER], "1");
    }
    // the batch answers equal the single ones, in order
    let records: Vec<Value> = rows.iter().map(|&i| record(i)).collect();
    let batch = post(&state, "/predict/batch", &json!({ "records": records })).await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    for (k, &i) in rows.iter().enumerate() {
        let got = &batch.body["predictions"][k];
        assert_eq!(got["probability"].as_f64().unwrap().to_bits(), scored.predictions[i].to_bits());
        assert_eq!(got["class"], classes[i].as_str());
        assert_eq!(got["id"], ids[i].as_str());
    }
    // without the optional id
    let mut anonymous = record(1);
    anonymous.as_object_mut().unwrap().remove("customerID");
    let answer = post(&state, "/predict", &anonymous).await;
    assert_eq!(answer.body["probability"].as_f64().unwrap().to_bits(), scored.predictions[1].to_bits());
    assert!(answer.body.get("id").is_none());
    // an empty batch is an empty answer
    let empty = post(&state, "/predict/batch", &json!({"records": []})).await;
    assert_eq!((empty.status.as_u16(), &empty.body["predictions"]), (200, &json!([])));
}

#[tokio::test]
async fn bad_records_get_4xx_with_the_field_at_fault() {
    let state = state_for(churn(), "churn", ServeConfig::default());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("tenure", json!("12"), "wrong_type"),
        ("tenure", json!(true), "wrong_type"),
        ("Contract", json!(2), "wrong_type"),
        ("Contract", json!(["One year"]), "wrong_type"),
        ("customerID", json!({"a": 1}), "wrong_type"),
    ];
    for (field, value, code) in cases {
        let mut r = record(0);
        r[field] = value.clone();
        let answer = post(&state, "/predict", &r).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error()),
            (422, (code.into(), Some(field.into()))),
            "{field}={value}"
        );
    }
    let mut r = record(0);
    r.as_object_mut().unwrap().remove("MonthlyCharges");
    assert_eq!(post(&state, "/predict", &r).await.error(), ("missing_field".into(), Some("MonthlyCharges".into())));
    let mut r = record(0);
    r["Churn"] = json!("No");
    assert_eq!(post(&state, "/predict", &r).await.error(), ("unknown_field".into(), Some("Churn".into())));
    let mut r = record(0);
    r["window"] = json!([]);
    assert_eq!(post(&state, "/predict", &r).await.error(), ("unknown_field".into(), Some("window".into())));
    // in a batch, the record is named
    let mut bad = record(3);
    bad["tenure"] = json!("x");
    let answer = post(&state, "/predict/batch", &json!({"records": [record(1), record(2), bad]})).await;
    assert_eq!(answer.error(), ("wrong_type".into(), Some("records[2].tenure".into())));
    // a single record sent to the batch route, and a batch sent to the single route
    let answer = post(&state, "/predict/batch", &record(1)).await;
    assert_eq!(answer.error().0, "unknown_field");
    let answer = post(&state, "/predict", &json!({"records": [record(1)]})).await;
    assert_eq!(answer.error(), ("unknown_field".into(), Some("records".into())));
}

#[tokio::test]
async fn swapping_the_model_changes_the_answering_version_at_once() {
    let trained = churn();
    let state = state_for(trained, "churn", ServeConfig::default());
    assert_eq!(post(&state, "/predict", &record(0)).await.headers[VERSION_HEADER], "1");
    let identity = ModelIdentity {
        reference: "models:/churn@production".into(),
        name: Some("churn".into()),
        version: Some(2),
        alias: Some("production".into()),
        run_id: Some(trained.run_id.clone()),
    };
    let previous = state.set_model(LoadedModel::new(read(trained), identity).unwrap());
    assert_eq!(previous.unwrap().identity().version, Some(1));
    let answer = post(&state, "/predict", &record(0)).await;
    assert_eq!((answer.headers[VERSION_HEADER].to_str().unwrap(), &answer.body["model"]["version"]), ("2", &json!(2)));
}

#[tokio::test]
async fn without_a_model_the_service_is_alive_but_not_ready() {
    let state = AppState::new(ServeConfig::default());
    assert_eq!(get(&state, "/health").await.status, 200);
    for answer in [get(&state, "/ready").await, get(&state, "/model").await, post(&state, "/predict", &record(0)).await]
    {
        assert_eq!((answer.status.as_u16(), answer.error()), (503, ("not_ready".into(), None)));
        assert!(answer.headers.get(VERSION_HEADER).is_none());
    }
}

#[tokio::test]
async fn numeric_records_go_straight_to_a_row_with_the_answers_of_batch_scoring() {
    let trained = churn_numeric();
    let bundle = read(trained);
    let columns = bundle.pipeline.input_columns();
    let identity = || ModelIdentity { reference: "test".into(), name: None, version: None, alias: None, run_id: None };
    let direct = LoadedModel::new(read(trained), identity()).unwrap();
    assert!(direct.takes_records_directly(), "a model of numeric columns as they are");
    let framed = LoadedModel::new(read(churn()), identity()).unwrap();
    assert!(!framed.takes_records_directly(), "a model with preprocessing goes through the frame");

    let state = state_for(trained, "churn-numeric", ServeConfig::default());
    let scored = kiln_score::score(&bundle, &trained.frame, false).unwrap();
    // row 488 has a blank TotalCharges: null in the record, a missing value for the model
    let rows = [0, 1, 2, 488, 7000];
    let record = |i: usize| row(&trained.frame, &columns, i);
    assert!(record(488)["TotalCharges"].is_null());
    for &i in &rows {
        let answer = post(&state, "/predict", &record(i)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["probability"].as_f64().unwrap().to_bits(), scored.predictions[i].to_bits(), "row {i}");
    }
    // fields in another order, the id left out, a number as an integer
    let mut shuffled = serde_json::Map::new();
    let one = record(1);
    for name in ["SeniorCitizen", "TotalCharges", "tenure", "MonthlyCharges"] {
        shuffled.insert(name.to_string(), one[name].clone());
    }
    let answer = post(&state, "/predict", &Value::Object(shuffled)).await;
    assert_eq!(answer.body["probability"].as_f64().unwrap().to_bits(), scored.predictions[1].to_bits());
    let records: Vec<Value> = rows.iter().map(|&i| record(i)).collect();
    let batch = post(&state, "/predict/batch", &json!({ "records": records })).await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    for (k, &i) in rows.iter().enumerate() {
        let got = batch.body["predictions"][k]["probability"].as_f64().unwrap();
        assert_eq!(got.to_bits(), scored.predictions[i].to_bits(), "batch row {i}");
    }
    // the checks of the frame path still hold: a text for a number names its field
    let mut bad = record(0);
    bad["tenure"] = json!("twelve");
    let answer = post(&state, "/predict", &bad).await;
    let error = &answer.body["error"];
    assert_eq!((answer.status.as_u16(), error["field"].as_str()), (422, Some("tenure")), "{}", answer.body);
}
