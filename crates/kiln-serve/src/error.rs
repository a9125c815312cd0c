//! The one error shape of the HTTP API, `{"error": {"code", "message", "field"}}`, and the table of its stable codes
//! with their HTTP status. Handlers return [`ApiError`] and use `?`; library errors are mapped here, so the HTTP
//! mapping of kiln's error kinds lives nowhere else. Internal failures never show their details to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_features::FeatureError;
use serde::Serialize;

macro_rules! make_api_codes {
    ($($variant:ident => ($name:literal, $status:ident)),+ $(,)?) => {
        /// The stable code of every error the API returns; the snake_case names never change meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ApiCode { $($variant),+ }

        impl ApiCode {
            /// All codes, for documentation and tests.
            pub const ALL: &'static [ApiCode] = &[$(ApiCode::$variant),+];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(ApiCode::$variant => $name),+ }
            }

            /// The HTTP status the code is sent with.
            pub fn status(self) -> StatusCode {
                match self { $(ApiCode::$variant => StatusCode::$status),+ }
            }
        }
    };
}

make_api_codes! {
    // the request as a whole
    MalformedJson => ("malformed_json", BAD_REQUEST),
    BodyUnreadable => ("body_unreadable", BAD_REQUEST),
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE),
    TooManyRecords => ("too_many_records", PAYLOAD_TOO_LARGE),
    RouteNotFound => ("route_not_found", NOT_FOUND),
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED),
    // one field of a record
    MissingField => ("missing_field", UNPROCESSABLE_ENTITY),
    UnknownField => ("unknown_field", UNPROCESSABLE_ENTITY),
    DuplicateField => ("duplicate_field", UNPROCESSABLE_ENTITY),
    WrongType => ("wrong_type", UNPROCESSABLE_ENTITY),
    NullValue => ("null_value", UNPROCESSABLE_ENTITY),
    NotFinite => ("not_finite", UNPROCESSABLE_ENTITY),
    InvalidTime => ("invalid_time", UNPROCESSABLE_ENTITY),
    // what the features make of the values
    NotEnoughRows => ("not_enough_rows", UNPROCESSABLE_ENTITY),
    WindowNotSorted => ("window_not_sorted", UNPROCESSABLE_ENTITY),
    UnknownCategory => ("unknown_category", UNPROCESSABLE_ENTITY),
    InvalidValue => ("invalid_value", UNPROCESSABLE_ENTITY),
    PredictionNotFinite => ("prediction_not_finite", UNPROCESSABLE_ENTITY),
    ConflictingFields => ("conflicting_fields", UNPROCESSABLE_ENTITY),
    // series kept by /observe
    SeriesNotFound => ("series_not_found", NOT_FOUND),
    TooManySeries => ("too_many_series", CONFLICT),
    NotAForecastModel => ("not_a_forecast_model", BAD_REQUEST),
    // the middleware: API keys, rate limit, request timeout
    Unauthorized => ("unauthorized", UNAUTHORIZED),
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS),
    Timeout => ("timeout", GATEWAY_TIMEOUT),
    // the service
    NotReady => ("not_ready", SERVICE_UNAVAILABLE),
    Internal => ("internal", INTERNAL_SERVER_ERROR),
}

/// An error answer: its code, a message for people, and the field at fault (`tenure`, `records[3].window[0].Date`)
/// when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({}){}", message, code.as_str(), field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
pub struct ApiError {
    pub code: ApiCode,
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
    pub fn new(code: ApiCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: None }
    }

    pub fn at(code: ApiCode, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: Some(field.into()) }
    }

    /// A failure inside the service. The details go to the server's log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        eprintln!("kiln serve: internal error: {detail}");
        ApiError::new(ApiCode::Internal, "internal error; the server log has the details")
    }

    pub(crate) fn not_ready() -> ApiError {
        ApiError::new(ApiCode::NotReady, "no model is loaded yet")
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
                ApiError { code: ApiCode::NotEnoughRows, message, field: window.map(str::to_string) }
            }
            FeatureError::NotSorted { column, row, .. } => {
                ApiError::at(ApiCode::WindowNotSorted, field(row, &column), message)
            }
            FeatureError::UnknownCategory { column, row, .. } => {
                ApiError::at(ApiCode::UnknownCategory, field(row, &column), message)
            }
            FeatureError::InvalidValue { column, row, .. } => {
                ApiError::at(ApiCode::InvalidValue, field(row, &column), message)
            }
            // records are checked against the model's input schema before the pipeline runs; these reach here only
            // for a bundle without recorded column types, where the values' JSON types decide
            FeatureError::ColumnType { column, .. } | FeatureError::NotNumeric { column, .. } => {
                ApiError::at(ApiCode::WrongType, column, message)
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Body { error: Inner { code: self.code.as_str(), message: &self.message, field: self.field.as_deref() } };
        let mut response = (self.code.status(), Json(body)).into_response();
        // for the metrics and the access log, which count rejections by code
        response.extensions_mut().insert(self.code);
        response
    }
}
