//! The one error shape of the HTTP API, `{"error": {"code", "message", "field"}}`. Its codes and their HTTP statuses
//! are rows of kiln's one code table (`kiln_domain::Code`, the API's own in `Code::HTTP_API`); here a status number
//! becomes axum's type. Handlers return [`ApiError`] and use `?`; library errors are mapped here, so which library
//! error becomes which answer is decided nowhere else. Internal failures never show their details to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_domain::{Code, HasCode};
use kiln_features::FeatureError;
use serde::Serialize;

/// An error answer: its code, a message for people, and the field at fault (`tenure`, `records[3].window[0].Date`)
/// when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({}){}", message, code.as_str(), field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: None }
    }

    pub fn at(code: Code, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: Some(field.into()) }
    }

    /// A failure inside the service. The details go to the server's log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        eprintln!("kiln serve: internal error: {detail}");
        ApiError::new(Code::Internal, "internal error; the server log has the details")
    }

    pub(crate) fn not_ready() -> ApiError {
        ApiError::new(Code::NotReady, "no model is loaded yet")
    }

    /// Maps a feature pipeline error on the rows of a request. `field` names a column of the record at `row` (rows
    /// are records for a tabular model, window rows for a forecast) as `field(row, column)`; `window` is the path
    /// of the window for a forecast.
    pub(crate) fn from_feature(
        e: FeatureError,
        window: Option<&str>,
        field: &dyn Fn(usize, &str) -> String,
    ) -> ApiError {
        let message = e.to_string();
        match e {
            FeatureError::NotEnoughRows { .. } => {
                ApiError { code: Code::NotEnoughRows, message, field: window.map(str::to_string) }
            }
            FeatureError::NotSorted { column, row, .. } => {
                ApiError::at(Code::WindowNotSorted, field(row, &column), message)
            }
            FeatureError::UnknownCategory { column, row, .. } => {
                ApiError::at(Code::UnknownCategory, field(row, &column), message)
            }
            FeatureError::InvalidValue { column, row, .. } => {
                ApiError::at(Code::InvalidValue, field(row, &column), message)
            }
            // a window of a panel holds one series (checked before the features run, naming the row)
            FeatureError::MixedSeries { .. } => {
                ApiError { code: Code::InvalidValue, message, field: window.map(str::to_string) }
            }
            // records are checked against the model's input schema before the pipeline runs; these reach here only
            // for a bundle without recorded column types, where the values' JSON types decide
            FeatureError::ColumnType { column, .. } | FeatureError::NotNumeric { column, .. } => {
                ApiError::at(Code::WrongType, column, message)
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Body { error: Inner { code: self.code.as_str(), message: &self.message, field: self.field.as_deref() } };
        let mut response = (status(self.code), Json(body)).into_response();
        // for the metrics and the access log, which count rejections by code
        response.extensions_mut().insert(self.code);
        response
    }
}

impl HasCode for ApiError {
    fn code(&self) -> Code {
        self.code
    }
}

/// The HTTP status an answer with `code` is sent with (the table's number as axum's type).
pub(crate) fn status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
