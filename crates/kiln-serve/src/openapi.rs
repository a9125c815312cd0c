//! `GET /openapi.json`: an OpenAPI 3.1 document of this service for the model it serves, and `GET /docs`: a small
//! self-contained page (no CDN, works offline) that reads it, shows every route with its schemas, and sends an
//! example request pre-filled from the schema.
//!
//! Key decision: the document is written with `serde_json` from the loaded model, not derived from Rust types,
//! because the request schema is the model's input schema (its fields, their types, what may be null, the forecast
//! window's minimum length) and so changes with every model; it is built per request (a few KB, rarely asked for) so
//! it always describes the model answering.
//!
//! Not here: client generation; the error codes come from [`Code::HTTP_API`], so the document cannot miss one.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use kiln_domain::Code;
use kiln_features::{FillValue, FittedStep, PipelineInput};
use serde_json::{Map, Value, json};

use crate::handlers::Current;
use crate::model::{FieldKind, LoadedModel};
use crate::parse::MAX_SERIES_KEY_BYTES;
use crate::state::AppState;

const DOCS_HTML: &str = include_str!("docs.html");

/// `GET /docs`.
pub(crate) async fn docs() -> Response {
    Html(DOCS_HTML).into_response()
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(state): State<AppState>, request: Request) -> Response {
    let model = request.extensions().get::<Current>().and_then(|c| c.0.clone());
    let doc = document(&state, model.as_deref());
    ([(header::CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// Example values for the fields of a tabular record: a fitted fill value, a scaler's center or a training category.
fn examples(model: &LoadedModel) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let Some(pre) = &model.bundle().pipeline.preprocess else { return out };
    for step in pre.steps() {
        match step {
            FittedStep::Impute(s) => {
                for c in &s.columns {
                    let v = match &c.value {
                        Some(FillValue::Number(x)) => json!(x),
                        Some(FillValue::Text(t)) => json!(t),
                        None => continue,
                    };
                    out.entry(c.name.clone()).or_insert(v);
                }
            }
            FittedStep::Scale(s) => {
                for c in &s.columns {
                    out.entry(c.name.clone()).or_insert(json!(c.center));
                }
            }
            FittedStep::OneHot(s) => {
                for c in &s.columns {
                    if let Some(Some(first)) = c.categories.first() {
                        out.entry(c.name.clone()).or_insert(json!(first));
                    }
                }
            }
            FittedStep::Ordinal(s) => {
                for c in &s.columns {
                    if let Some(first) = c.categories.first() {
                        out.entry(c.name.clone()).or_insert(json!(first));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The training categories of the categorical fields (for the schema's `examples`).
fn categories(model: &LoadedModel) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let Some(pre) = &model.bundle().pipeline.preprocess else { return out };
    for step in pre.steps() {
        match step {
            FittedStep::OneHot(s) => {
                for c in &s.columns {
                    out.entry(c.name.clone()).or_insert_with(|| c.categories.iter().flatten().cloned().collect());
                }
            }
            FittedStep::Ordinal(s) => {
                for c in &s.columns {
                    out.entry(c.name.clone()).or_insert_with(|| c.categories.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The schema of one field; `nullable` for a tabular record (null is a missing value there, an absent id too).
fn field_schema(kind: FieldKind, nullable: bool, categories: Option<&Vec<String>>) -> Value {
    let typed = |t: &str| if nullable { json!([t, "null"]) } else { json!(t) };
    let either = |a: &str, b: &str| if nullable { json!([a, b, "null"]) } else { json!([a, b]) };
    let mut s = match kind {
        FieldKind::Numeric => json!({"type": typed("number")}),
        FieldKind::Categorical => json!({"type": typed("string")}),
        FieldKind::Timestamp => json!({
            "type": typed("string"),
            "description": crate::time::EXPECTED,
            "pattern": crate::time::PATTERN,
        }),
        FieldKind::Id => {
            json!({"type": either("string", "number"), "description": "echoed back as `id`; not a feature"})
        }
        FieldKind::Any => json!({"type": either("number", "string"), "description": "not used by the model"}),
        FieldKind::Series => json!({
            "type": either("string", "number"),
            "description": "the series of the row (a panel); every row of a window names the same series, and a row \
                            of POST /observe may leave it out (the body's `series` names it)",
        }),
    };
    if let (Some(cats), Some(obj)) = (categories, s.as_object_mut())
        && !cats.is_empty()
    {
        obj.insert("examples".into(), json!(cats.iter().take(20).collect::<Vec<_>>()));
        obj.insert("description".into(), json!("one of the training categories (see examples)"));
    }
    s
}

/// The model-dependent schemas: `Row`, `Record`, `Answer` and the examples of a single and a batch request.
struct ModelSchemas {
    schemas: Map<String, Value>,
    single_example: Value,
    observe_example: Option<Value>,
}

fn model_schemas(model: &LoadedModel, max_batch: usize) -> ModelSchemas {
    let schema = &model.schema;
    let pipeline = model.pipeline();
    let cats = categories(model);
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        properties.insert(f.name.clone(), field_schema(f.kind, schema.nullable(i), cats.get(&f.name)));
        if !schema.optional(i) {
            required.push(f.name.clone());
        }
    }
    // a row of POST /observe: a panel's series column may be left out
    let observe_required: Vec<&String> = required
        .iter()
        .filter(|name| schema.fields.iter().any(|f| f.name == **name && f.kind != FieldKind::Series))
        .collect();
    let observe_row = json!({"type": "object", "additionalProperties": false, "required": observe_required, "properties": properties});
    let row = json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    let mut schemas = Map::new();

    let answer;
    let single_example;
    let mut observe_example = None;
    if let PipelineInput::Forecast(recipe) = &pipeline.input {
        let min_rows = recipe.min_window_rows();
        let history = recipe.lookback() == kiln_features::Lookback::All;
        // a panel's example names a series the intervals were calibrated on, when there are any
        let example_series = pipeline
            .intervals
            .as_ref()
            .and_then(|ci| ci.scores.keys().find(|k| !k.is_empty()).cloned())
            .unwrap_or_else(|| "example".to_string());
        // a smooth example window, one row a day, long enough for every feature
        let rows: Vec<Value> = (0..min_rows.max(1))
            .map(|i| {
                let mut r = Map::new();
                for f in &schema.fields {
                    let v = if f.kind == FieldKind::Timestamp {
                        json!(crate::time::format_iso(1_704_067_200_000 + 86_400_000 * i as i64))
                    } else if f.kind == FieldKind::Series {
                        json!(example_series)
                    } else {
                        json!(((1.0 + 0.01 * (i as f64 / 3.0).sin()) * 1e4).round() / 1e4)
                    };
                    r.insert(f.name.clone(), v);
                }
                Value::Object(r)
            })
            .collect();
        single_example = json!({"window": rows});
        observe_example = Some(json!({"series": example_series, "rows": rows}));
        schemas.insert("Row".into(), row);
        schemas.insert("ObserveRow".into(), observe_row);
        schemas.insert(
            "Record".into(),
            json!({
                "description": format!(
                    "A forecast record: a window of raw rows in increasing time order, the last one the forecast's origin \
                     (at least {min_rows} rows{}), or the key of a series fed through POST /observe.",
                    if history { "; expanding or EWM features make it equal `kiln predict` only from the first row of the \
                                  series the model was trained on" } else { "" }
                ),
                "oneOf": [
                    {"type": "object", "additionalProperties": false, "required": ["window"], "properties": {
                        "window": {"type": "array", "minItems": min_rows, "items": schema_ref("Row")}}},
                    {"type": "object", "additionalProperties": false, "required": ["series"], "properties": {
                        "series": {"type": "string", "minLength": 1, "maxLength": MAX_SERIES_KEY_BYTES}}}
                ]
            }),
        );
        let series = recipe.series_column.as_ref().map(|column| {
            json!({"type": "string", "description": format!("the series the forecast is for (column '{column}')")})
        });
        answer = if let Some(multi) = recipe.multi_step {
            let mut step_properties = Map::new();
            step_properties.insert("step".into(), json!({"type": "integer", "minimum": 1, "maximum": multi.steps}));
            step_properties.insert(
                "target_time".into(),
                json!({"type": "string", "description": match pipeline.step {
                    Some(step) => format!("the time the step is for: the origin + `step` steps of {}", step.describe()),
                    None => "the time the step is for".to_string(),
                }}),
            );
            step_properties.insert(
                "prediction".into(),
                json!({"type": "number", "description": format!("{} in its own units", recipe.target)}),
            );
            let mut step_required = vec!["step".to_string(), "target_time".to_string(), "prediction".to_string()];
            if let Some(ci) = &pipeline.intervals {
                for (name, level) in ci.column_names().into_iter().zip(ci.levels.iter().flat_map(|l| [l, l])) {
                    let side = if name.starts_with("lo_") { "lower" } else { "upper" };
                    step_properties.insert(name.clone(), json!({"type": ["number", "null"], "description": format!(
                        "the {side} bound of the {level}% conformal interval; null for a series the calibration did not see")}));
                    step_required.push(name);
                }
            }
            let mut properties = Map::new();
            properties.insert("time".into(), json!({"type": "string", "description": "the origin time (the last row of the window or of the series)"}));
            if let Some(series) = series {
                properties.insert("series".into(), series);
            }
            properties.insert(
                "steps".into(),
                json!({
                "type": "array", "minItems": multi.steps, "maxItems": multi.steps,
                "description": format!("the forecasts of steps 1 to {} ({}: the next-step model fed its own forecasts)",
                                       multi.steps, multi.strategy.as_str()),
                "items": {"type": "object", "required": step_required, "properties": step_properties}}),
            );
            json!({"type": "object", "required": ["time", "steps"], "properties": properties})
        } else {
            let mut answer = json!({"type": "object", "required": ["time", "prediction"], "properties": {
                "time": {"type": "string", "description": format!(
                    "the origin time (the last row of the window); the forecast is {} row(s) later", recipe.horizon)},
                "target_time": {"type": "string", "description": match pipeline.step {
                    Some(step) => format!(
                        "the time the forecast is for: the origin + {} step(s) of {} (the series' step in training)",
                        recipe.horizon, step.describe()),
                    None => "absent: the bundle predates target times".to_string(),
                }},
                "prediction": {"type": "number", "description": format!("{} in its own units", recipe.target)},
            }});
            if let (Some(series), Some(properties)) = (series, answer["properties"].as_object_mut()) {
                properties.insert("series".into(), series);
            }
            answer
        };
    } else {
        let ex = examples(model);
        let mut record = Map::new();
        for f in &schema.fields {
            let v = match f.kind {
                FieldKind::Id => json!("example-1"),
                FieldKind::Any => Value::Null,
                FieldKind::Timestamp => json!("2024-01-01"),
                FieldKind::Categorical | FieldKind::Series => ex.get(&f.name).cloned().unwrap_or(json!("a")),
                FieldKind::Numeric => ex.get(&f.name).cloned().unwrap_or(json!(1.0)),
            };
            record.insert(f.name.clone(), v);
        }
        single_example = Value::Object(record);
        let mut r = row;
        if let Some(obj) = r.as_object_mut() {
            obj.insert(
                "description".into(),
                json!("A record: one row of the model's input columns; null is a missing value."),
            );
        }
        schemas.insert("Record".into(), r);
        let id = json!({"type": "string", "description": "the record's id, when it carried one"});
        answer = match &pipeline.decision {
            Some(d) => json!({"type": "object", "required": ["probability", "class"], "properties": {
                "id": id,
                "probability": {"type": "number", "minimum": 0, "maximum": 1,
                                "description": format!("the probability that {} is {}", model.bundle().metadata.target, d.positive)},
                "class": {"type": "string", "enum": [d.positive, d.negative_label()],
                          "description": format!("{} when the probability is >= {}", d.positive, d.threshold)},
            }}),
            None => json!({"type": "object", "required": ["prediction"], "properties": {
                "id": id,
                "prediction": {"type": "number", "description": format!("{} in its own units", model.bundle().metadata.target)},
            }}),
        };
    }
    schemas.insert("Answer".into(), answer);
    schemas.insert(
        "Batch".into(),
        json!({"type": "object", "additionalProperties": false, "required": ["records"], "properties": {
            "records": {"type": "array", "maxItems": max_batch, "items": schema_ref("Record")}}}),
    );
    ModelSchemas { schemas, single_example, observe_example }
}

fn error_schema() -> Value {
    let codes: Vec<&str> = Code::HTTP_API.iter().map(|c| c.as_str()).collect();
    let table: Vec<String> =
        Code::HTTP_API.iter().map(|c| format!("- `{}`: {}", c.as_str(), c.http_status())).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "description": format!("Every error answer. The codes are stable; each is sent with one HTTP status:\n{}", table.join("\n")),
        "properties": {"error": {"type": "object", "required": ["code", "message", "field"], "properties": {
            "code": {"type": "string", "enum": codes},
            "message": {"type": "string", "description": "for people; may change"},
            "field": {"type": ["string", "null"], "description": "the field at fault, e.g. records[2].window[0].USD"},
        }}}
    })
}

/// The error statuses a route may answer with, as `responses` entries.
fn errors(statuses: &[u16], common: &[u16]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut all: Vec<u16> = statuses.iter().chain(common).copied().collect();
    all.sort_unstable();
    all.dedup();
    for status in all {
        let codes: Vec<&str> =
            Code::HTTP_API.iter().filter(|c| c.http_status() == status).map(|c| c.as_str()).collect();
        out.insert(
            status.to_string(),
            json!({"description": format!("error: {}", codes.join(", ")), "content": json_body(schema_ref("Error"))}),
        );
    }
    out
}

fn operation(summary: &str, id: &str, ok: Value, error_statuses: &[u16], common: &[u16], open: bool) -> Value {
    let mut responses = errors(error_statuses, common);
    responses.insert("200".into(), ok);
    let mut op = json!({"summary": summary, "operationId": id, "responses": responses});
    if open && let Some(obj) = op.as_object_mut() {
        obj.insert("security".into(), json!([]));
    }
    op
}

fn with_body(mut op: Value, schema: Value, example: Value) -> Value {
    if let Some(obj) = op.as_object_mut() {
        obj.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema, "example": example}}}),
        );
    }
    op
}

pub(crate) fn document(state: &AppState, model: Option<&LoadedModel>) -> Value {
    let config = state.config();
    let http = &config.http;
    // statuses any protected route may answer with, given the configuration
    let mut common = vec![500];
    if http.api_keys.is_some() {
        common.push(401);
    }
    if http.rate_limit.is_some() {
        common.push(429);
    }
    if http.request_timeout.is_some() {
        common.push(504);
    }
    let open_common: Vec<u16> = common.iter().copied().filter(|s| *s == 500 || *s == 504).collect();

    // only a forecaster keeps series: a tabular model's document has no /observe routes (the server refuses them
    // with 400 `not_a_forecast_model`); with no model loaded yet every route is listed
    let forecast = model.is_none_or(|m| m.schema.windowed);
    let (mut schemas, single_example, observe_example, title, version) = match model {
        Some(m) => {
            let s = model_schemas(m, config.max_batch_records);
            let id = m.identity();
            let title = format!("kiln serve: {}", id.name.as_deref().unwrap_or(&id.reference));
            let version =
                id.version.map_or_else(|| id.run_id.clone().unwrap_or_else(|| "unversioned".into()), |v| v.to_string());
            (s.schemas, s.single_example, s.observe_example, title, version)
        }
        None => {
            let mut s = Map::new();
            let any = json!({"type": "object", "description": "no model is loaded: the input schema is not known yet"});
            s.insert("Record".into(), any.clone());
            s.insert("Row".into(), any.clone());
            s.insert("ObserveRow".into(), any.clone());
            s.insert("Answer".into(), any);
            s.insert(
                "Batch".into(),
                json!({"type": "object", "required": ["records"], "properties": {
                "records": {"type": "array", "items": schema_ref("Record")}}}),
            );
            (s, json!({}), None, "kiln serve (no model loaded)".to_string(), "none".to_string())
        }
    };
    let identity = json!({"type": "object", "properties": {
        "reference": {"type": "string"}, "name": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
        "alias": {"type": ["string", "null"]}, "run_id": {"type": ["string", "null"]}}});
    schemas.insert("ModelIdentity".into(), identity);
    schemas.insert("Error".into(), error_schema());
    schemas.insert(
        "Prediction".into(),
        json!({"allOf": [schema_ref("Answer"), {"type": "object", "required": ["model", "variant"], "properties": {"model": schema_ref("ModelIdentity"),
            "variant": {"type": "string", "description": "the variant that answered (`default` when one model is served)"}}}]}),
    );
    schemas.insert(
        "BatchPrediction".into(),
        json!({"type": "object", "required": ["predictions", "model", "variant"], "properties": {
            "predictions": {"type": "array", "items": schema_ref("Answer")}, "model": schema_ref("ModelIdentity"),
            "variant": {"type": "string", "description": "the variant that answered the whole batch"}}}),
    );
    if forecast {
        schemas.insert(
            "Observe".into(),
            json!({"type": "object", "additionalProperties": false, "required": ["series", "rows"], "properties": {
                "series": {"type": "string", "minLength": 1, "maxLength": MAX_SERIES_KEY_BYTES},
                "rows": {"type": "array", "items": schema_ref("ObserveRow"), "description": "new raw rows, after the series' last"}}}),
        );
        schemas.insert(
            "Series".into(),
            json!({"type": "object", "required": ["series", "observed", "rows_kept", "ready", "history_complete", "model"], "properties": {
                "series": {"type": "string"},
                "observed": {"type": "integer", "description": "rows observed since the series was created"},
                "rows_kept": {"type": "integer", "description": "raw rows kept to rebuild the series for a new model"},
                "last_time": {"type": "string", "description": "the time of the newest row"},
                "ready": {"type": "boolean", "description": "whether POST /predict with {\"series\": key} gives a forecast"},
                "history_complete": {"type": "boolean", "description": "false once rebuilt for a new model from fewer rows than observed"},
                "model": schema_ref("ModelIdentity")}}),
        );
    }
    schemas.insert(
        "Status".into(),
        json!({"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["alive", "ready"]}, "model": schema_ref("ModelIdentity")}}),
    );

    let ok = |description: &str, schema: Value| json!({"description": description, "content": json_body(schema)});
    let text = |description: &str, media: &str| json!({"description": description, "content": {media: {"schema": {"type": "string"}}}});
    // a forecast record may name a series that is not kept: 404 `series_not_found`
    let body_errors: &[u16] = if forecast { &[400, 404, 413, 415, 422, 503] } else { &[400, 413, 415, 422, 503] };
    let mut paths = Map::new();
    paths.insert("/health".into(), json!({"get": operation("The process is up", "health", ok("alive", schema_ref("Status")), &[], &open_common, true)}));
    paths.insert("/ready".into(), json!({"get": operation("A model is loaded", "ready", ok("ready", schema_ref("Status")), &[503], &open_common, true)}));
    paths.insert(
        "/model".into(),
        json!({"get": operation(
        "Who the model is, its test metrics, its input schema and features", "model",
        ok("the model document", json!({"type": "object"})), &[503], &common, false)}),
    );
    paths.insert("/predict".into(), json!({"post": with_body(
        operation("Predict one record", "predict", ok("the answer", schema_ref("Prediction")), body_errors, &common, false),
        schema_ref("Record"), single_example.clone())}));
    paths.insert(
        "/predict/batch".into(),
        json!({"post": with_body(
        operation(&format!("Predict up to {} records at once", config.max_batch_records), "predict_batch",
                  ok("one answer per record, in order", schema_ref("BatchPrediction")), body_errors, &common, false),
        schema_ref("Batch"), json!({"records": [single_example]}))}),
    );
    if forecast {
        let observe_errors: &[u16] = &[400, 409, 413, 415, 422, 503];
        paths.insert(
            "/observe".into(),
            json!({"post": with_body(
            operation("Append rows to a series kept by the server (forecast models)", "observe",
                      ok("the series after the rows", schema_ref("Series")), observe_errors, &common, false),
            schema_ref("Observe"), observe_example.unwrap_or(json!({"series": "example", "rows": []})))}),
        );
        let series_param = json!([{"name": "series", "in": "path", "required": true, "schema": {"type": "string"}}]);
        paths.insert("/observe/{series}".into(), json!({
            "parameters": series_param,
            "get": operation("What is kept of a series", "series_status", ok("the series", schema_ref("Series")), &[404, 503], &common, false),
            "delete": operation("Forget a series", "series_delete", ok("the series as it was", schema_ref("Series")), &[404, 503], &common, false),
        }));
    }
    paths.insert(
        "/metrics".into(),
        json!({"get": operation("Prometheus metrics (text exposition format 0.0.4)", "metrics",
        text("the metrics", "text/plain"), &[], &common, false)}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": operation("This document", "openapi",
        ok("OpenAPI 3.1", json!({"type": "object"})), &[], &common, false)}),
    );
    paths.insert(
        "/docs".into(),
        json!({"get": operation("An interactive page over this document", "docs",
        text("HTML", "text/html"), &[], &open_common, true)}),
    );

    let mut components = json!({"schemas": schemas});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Predictions from a kiln model. Every answer carries `x-request-id`; answers from a model \
                            carry `x-kiln-model-version`, `x-kiln-model-run` and (predictions) `x-kiln-variant`. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}` \
                            with a stable code (see the Error schema).",
        },
        "paths": paths,
    });
    if let Some(keys) = &http.api_keys {
        components["securitySchemes"] = json!({"apiKey": {"type": "apiKey", "in": "header", "name": keys.header()}});
        doc["security"] = json!([{"apiKey": []}]);
    }
    doc["components"] = components;
    doc
}
