//! Unit tests of request parsing, timestamps and the error table, on hand-made schemas (the router tests with real
//! trained models are in `tests/it`).

use std::collections::HashSet;

use kiln_domain::{Code, Column};

use crate::error::ApiError;
use crate::model::{Field, FieldKind, InputSchema};
use crate::parse::{ForecastRecord, Mode, Parsed, parse, parse_observe};
use crate::time::{format_iso, parse_iso};

fn tabular() -> InputSchema {
    let f = |name: &str, kind| Field { name: name.to_string(), kind };
    InputSchema::new(
        vec![f("id", FieldKind::Id), f("tenure", FieldKind::Numeric), f("contract", FieldKind::Categorical)],
        false,
    )
}

fn window() -> InputSchema {
    let f = |name: &str, kind| Field { name: name.to_string(), kind };
    InputSchema::new(vec![f("Date", FieldKind::Timestamp), f("USD", FieldKind::Numeric)], true)
}

fn err(schema: &InputSchema, body: &str, mode: Mode) -> ApiError {
    match parse(schema, body.as_bytes(), mode) {
        Ok(p) => panic!("{body} parsed: {p:?}"),
        Err(e) => e,
    }
}

/// `(code, field)` of the rejection of `body`.
fn check(schema: &InputSchema, body: &str, mode: Mode, code: Code, field: Option<&str>) {
    let e = err(schema, body, mode);
    assert_eq!((e.code, e.field.as_deref()), (code, field), "{body}: {e}");
    assert!(!e.message.is_empty());
}

const ONE: Mode = Mode::Single;
const BATCH: Mode = Mode::Batch { max_records: 3 };

#[test]
fn a_tabular_record_becomes_one_row_with_nulls_as_missing_values() {
    let parsed = parse(&tabular(), br#"{"contract": "One year", "tenure": 12, "id": "a-1"}"#, ONE).unwrap();
    let Parsed::Records(rows) = parsed else { panic!() };
    assert_eq!(rows.ids().unwrap(), &[Some("a-1".to_string())]);
    let frame = rows.into_frame().unwrap();
    assert_eq!(frame.names(), ["tenure", "contract"]);
    assert_eq!(frame.numeric("tenure").unwrap(), [12.0]);

    let parsed = parse(
        &tabular(),
        br#"{"records": [{"tenure": null, "contract": null}, {"tenure": 1.5e3, "contract": "x", "id": 7}]}"#,
        BATCH,
    )
    .unwrap();
    let Parsed::Records(rows) = parsed else { panic!() };
    assert_eq!(rows.ids().unwrap(), &[None, Some("7".to_string())]);
    let frame = rows.into_frame().unwrap();
    assert!(frame.numeric("tenure").unwrap()[0].is_nan());
    assert_eq!(frame.numeric("tenure").unwrap()[1], 1500.0);
    assert_eq!(frame.column("contract").unwrap(), &Column::Categorical(vec![None, Some("x".into())]));
}

#[test]
fn numbers_parse_to_the_same_bits_as_a_file_reader() {
    for text in ["1.1172", "0.1", "1e-7", "123456789.123456789", "2.2250738585072014e-308", "9007199254740993"] {
        let body = format!(r#"{{"tenure": {text}, "contract": "x"}}"#);
        let Parsed::Records(rows) = parse(&tabular(), body.as_bytes(), ONE).unwrap() else { panic!() };
        let got = rows.into_frame().unwrap().numeric("tenure").unwrap()[0];
        assert_eq!(got.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
    }
}

#[test]
fn every_bad_tabular_record_names_its_field() {
    let s = tabular();
    check(&s, r#"{"contract": "x"}"#, ONE, Code::MissingField, Some("tenure"));
    check(&s, r#"{"tenure": 1, "contract": "x", "extra": 1}"#, ONE, Code::UnknownField, Some("extra"));
    check(&s, r#"{"tenure": 1, "tenure": 2, "contract": "x"}"#, ONE, Code::DuplicateField, Some("tenure"));
    check(&s, r#"{"tenure": "12", "contract": "x"}"#, ONE, Code::WrongType, Some("tenure"));
    check(&s, r#"{"tenure": true, "contract": "x"}"#, ONE, Code::WrongType, Some("tenure"));
    check(&s, r#"{"tenure": [1], "contract": "x"}"#, ONE, Code::WrongType, Some("tenure"));
    check(&s, r#"{"tenure": 1, "contract": 2}"#, ONE, Code::WrongType, Some("contract"));
    check(&s, r#"{"tenure": 1, "contract": {"a": 1}}"#, ONE, Code::WrongType, Some("contract"));
    check(&s, r#"{"tenure": NaN, "contract": "x"}"#, ONE, Code::NotFinite, Some("tenure"));
    check(&s, r#"{"tenure": Infinity, "contract": "x"}"#, ONE, Code::NotFinite, Some("tenure"));
    check(&s, r#"{"tenure": -Infinity, "contract": "x"}"#, ONE, Code::NotFinite, Some("tenure"));
    check(&s, r#"{"tenure": 1e999, "contract": "x"}"#, ONE, Code::NotFinite, Some("tenure"));
    check(&s, r#"{"tenure": 1, "contract": "x""#, ONE, Code::MalformedJson, None);
    check(&s, r#"{"tenure": 1, "contract": "x"} trailing"#, ONE, Code::MalformedJson, None);
    check(&s, "", ONE, Code::MalformedJson, None);
    check(&s, "[1, 2]", ONE, Code::WrongType, None);
    check(&s, "null", ONE, Code::NullValue, None);
    check(&s, r#""text""#, ONE, Code::WrongType, None);
}

#[test]
fn every_bad_batch_names_the_record() {
    let s = tabular();
    let rec = r#"{"tenure": 1, "contract": "x"}"#;
    check(&s, &format!(r#"{{"records": [{rec}, {rec}, {rec}, {rec}]}}"#), BATCH, Code::TooManyRecords, Some("records"));
    let Parsed::Records(rows) =
        parse(&s, format!(r#"{{"records": [{rec}, {rec}, {rec}]}}"#).as_bytes(), BATCH).unwrap()
    else {
        panic!()
    };
    assert_eq!(rows.n_rows, 3);
    assert_eq!(parse(&s, br#"{"records": []}"#, BATCH).unwrap().n_records(), 0);
    check(
        &s,
        &format!(r#"{{"records": [{rec}, {{"contract": "x"}}]}}"#),
        BATCH,
        Code::MissingField,
        Some("records[1].tenure"),
    );
    check(&s, &format!(r#"{{"records": [{rec}, 5]}}"#), BATCH, Code::WrongType, Some("records[1]"));
    check(&s, r#"{"records": {"a": 1}}"#, BATCH, Code::WrongType, Some("records"));
    check(&s, r#"{"records": null}"#, BATCH, Code::NullValue, Some("records"));
    check(&s, r#"{"rows": []}"#, BATCH, Code::UnknownField, Some("rows"));
    check(&s, r#"{}"#, BATCH, Code::MissingField, Some("records"));
    check(&s, r#"{"records": [], "records": []}"#, BATCH, Code::DuplicateField, Some("records"));
    check(&s, r#"{"records": [{"tenure": NaN, "contract": "x"}]}"#, BATCH, Code::NotFinite, Some("records[0].tenure"));
}

#[test]
fn windows_take_numbers_and_iso_times_only() {
    let s = window();
    let body = br#"{"window": [{"Date": "2024-01-02", "USD": 1.1}, {"USD": 1.2, "Date": "2024-01-03T00:00:00Z"}]}"#;
    let Parsed::Forecasts(records) = parse(&s, body, ONE).unwrap() else { panic!() };
    let Some(ForecastRecord::Window(window)) = records.into_iter().next() else { panic!() };
    let frame = window.into_frame().unwrap();
    assert_eq!(frame.timestamps("Date").unwrap(), [1_704_153_600_000, 1_704_240_000_000]);
    assert_eq!(frame.numeric("USD").unwrap(), [1.1, 1.2]);

    check(&s, r#"{"window": [{"Date": "2024-01-02", "USD": null}]}"#, ONE, Code::NullValue, Some("window[0].USD"));
    check(&s, r#"{"window": [{"Date": null, "USD": 1}]}"#, ONE, Code::NullValue, Some("window[0].Date"));
    check(&s, r#"{"window": [{"Date": "02/01/2024", "USD": 1}]}"#, ONE, Code::InvalidTime, Some("window[0].Date"));
    check(&s, r#"{"window": [{"Date": "2024-02-30", "USD": 1}]}"#, ONE, Code::InvalidTime, Some("window[0].Date"));
    check(&s, r#"{"window": [{"Date": 20240102, "USD": 1}]}"#, ONE, Code::WrongType, Some("window[0].Date"));
    check(&s, r#"{"window": [{"Date": "2024-01-02"}]}"#, ONE, Code::MissingField, Some("window[0].USD"));
    check(
        &s,
        r#"{"window": [{"Date": "2024-01-02", "USD": 1, "JPY": 2}]}"#,
        ONE,
        Code::UnknownField,
        Some("window[0].JPY"),
    );
    check(&s, r#"{"window": [{"Date": "2024-01-02", "USD": NaN}]}"#, ONE, Code::NotFinite, Some("window[0].USD"));
    check(&s, r#"{"window": [[1, 2]]}"#, ONE, Code::WrongType, Some("window[0]"));
    check(&s, r#"{"window": {"Date": "2024-01-02"}}"#, ONE, Code::WrongType, Some("window"));
    check(&s, r#"{"window": []", "x": 1}"#, ONE, Code::MalformedJson, None);
    check(&s, r#"{"rows": []}"#, ONE, Code::UnknownField, Some("rows"));
    check(&s, r#"{}"#, ONE, Code::MissingField, Some("window"));
    check(&s, r#"{"Date": "2024-01-02", "USD": 1}"#, ONE, Code::UnknownField, Some("Date"));
    check(&s, r#"{"series": null}"#, ONE, Code::NullValue, Some("series"));
    check(&s, r#"{"series": ["a"]}"#, ONE, Code::WrongType, Some("series"));
    check(&s, r#"{"series": "a", "series": "b"}"#, ONE, Code::DuplicateField, Some("series"));
    check(&s, r#"{"records": [{"series": 1}]}"#, BATCH, Code::WrongType, Some("records[0].series"));
    let Parsed::Forecasts(records) = parse(&s, br#"{"series": "eu\u00e9"}"#, ONE).unwrap() else { panic!() };
    assert_eq!(records, [ForecastRecord::Series("eu\u{e9}".to_string())]);
    let (key, rows) = parse_observe(&s, br#"{"rows": [{"Date": "2024-01-02", "USD": 1.5}], "series": "k"}"#).unwrap();
    assert_eq!((key.as_str(), rows.into_frame().unwrap().numeric("USD").unwrap()), ("k", &[1.5][..]));
    assert_eq!(
        parse_observe(&s, br#"{"series": "k", "rows": [{"USD": 1}]}"#).unwrap_err().field.as_deref(),
        Some("rows[0].Date")
    );
    check(
        &s,
        r#"{"records": [{"window": []}, {"window": [{"Date": "2024-01-02", "USD": "1"}]}]}"#,
        BATCH,
        Code::WrongType,
        Some("records[1].window[0].USD"),
    );
    assert_eq!(parse(&s, br#"{"window": []}"#, ONE).unwrap().n_records(), 1);
}

#[test]
fn a_field_of_no_fixed_type_takes_its_type_from_its_values() {
    let f = |name: &str| Field { name: name.to_string(), kind: FieldKind::Any };
    let s = InputSchema::new(vec![f("a"), f("b"), f("c")], false);
    let body = br#"{"records": [{"a": 1, "b": null, "c": null}, {"a": null, "b": "x", "c": null}]}"#;
    let Parsed::Records(rows) = parse(&s, body, BATCH).unwrap() else { panic!() };
    let frame = rows.into_frame().unwrap();
    assert_eq!(frame.numeric("a").unwrap()[0], 1.0);
    assert_eq!(frame.categorical("b").unwrap(), [None, Some("x".to_string())]);
    assert!(frame.numeric("c").unwrap().iter().all(|v| v.is_nan()));
    let mixed = br#"{"records": [{"a": 1, "b": null, "c": null}, {"a": "1", "b": null, "c": null}]}"#;
    check(&s, std::str::from_utf8(mixed).unwrap(), BATCH, Code::WrongType, Some("records[1].a"));
}

#[test]
fn iso_times_parse_like_the_file_reader_and_print_back() {
    assert_eq!(parse_iso("1970-01-01"), Some(0));
    assert_eq!(parse_iso("1970-01-01 00:00:01"), Some(1000));
    assert_eq!(parse_iso("1970-01-01T00:00:01.5Z"), Some(1500));
    assert_eq!(parse_iso("1970-01-01T00:00:01.123456"), Some(1123));
    // a UTC offset after a time is converted to UTC, as yfinance's files write it
    assert_eq!(parse_iso("1970-01-01 01:00:00+01:00"), Some(0));
    assert_eq!(parse_iso("1969-12-31T19:00:00-0500"), Some(0));
    assert_eq!(parse_iso("1970-01-01T02:00:00.250+02"), Some(250));
    for bad in ["1970-01-01+01:00", "1970-01-01T00:00:00+24:00", "1970-01-01T00:00:00+01:00Z", "1970-01-01T00:00:00+1"]
    {
        assert_eq!(parse_iso(bad), None, "{bad}");
    }
    for bad in
        ["", "1970-1-01", "1970-01-01T", "1970-01-01T00:00", "1970-01-01X", "1970-13-01", "1970-01-01T00:00:00.Z"]
    {
        assert_eq!(parse_iso(bad), None, "{bad}");
    }
    for ms in [0, 1_704_153_600_000, 1_704_153_601_000, 1_704_153_601_250, -86_400_000] {
        assert_eq!(parse_iso(&format_iso(ms)), Some(ms), "{ms}");
    }
    assert_eq!(format_iso(1_704_153_600_000), "2024-01-02");
    assert_eq!(format_iso(1_467_334_800_000), "2016-07-01T01:00:00");
}

#[test]
fn error_codes_are_unique_snake_case_and_only_the_service_itself_answers_5xx() {
    let mut seen = HashSet::new();
    for code in Code::HTTP_API {
        let name = code.as_str();
        assert!(seen.insert(name), "{name} twice");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
        let status = crate::error::status(*code).as_u16();
        match code {
            Code::Internal | Code::NotReady | Code::Timeout | Code::TooManyConnections => assert!(status >= 500),
            _ => assert!((400..500).contains(&status), "{name}: {status}"),
        }
    }
}

#[test]
fn the_api_codes_keep_their_names_statuses_and_order() {
    // what clients, dashboards (kiln_http_rejections_total) and the OpenAPI document have seen since the API's start
    let expected = [
        ("malformed_json", 400),
        ("body_unreadable", 400),
        ("unsupported_media_type", 415),
        ("payload_too_large", 413),
        ("too_many_records", 413),
        ("route_not_found", 404),
        ("method_not_allowed", 405),
        ("missing_field", 422),
        ("unknown_field", 422),
        ("duplicate_field", 422),
        ("wrong_type", 422),
        ("null_value", 422),
        ("not_finite", 422),
        ("invalid_time", 422),
        ("not_enough_rows", 422),
        ("window_not_sorted", 422),
        ("unknown_category", 422),
        ("invalid_value", 422),
        ("prediction_not_finite", 422),
        ("conflicting_fields", 422),
        ("series_not_found", 404),
        ("too_many_series", 409),
        ("not_a_forecast_model", 400),
        ("unauthorized", 401),
        ("rate_limited", 429),
        ("timeout", 504),
        ("not_ready", 503),
        ("too_many_connections", 503),
        ("internal", 500),
    ];
    let actual: Vec<(&str, u16)> =
        Code::HTTP_API.iter().map(|c| (c.as_str(), crate::error::status(*c).as_u16())).collect();
    assert_eq!(actual, expected);
}

#[test]
fn wide_records_are_checked_field_by_field() {
    let fields = (0..200).map(|i| Field { name: format!("c{i}"), kind: FieldKind::Numeric }).collect();
    let s = InputSchema::new(fields, false);
    let full: Vec<String> = (0..200).map(|i| format!("\"c{i}\": {i}")).collect();
    let Parsed::Records(rows) = parse(&s, format!("{{{}}}", full.join(", ")).as_bytes(), ONE).unwrap() else {
        panic!()
    };
    assert_eq!(rows.into_frame().unwrap().numeric("c199").unwrap(), [199.0]);
    check(&s, &format!("{{{}}}", full[..199].join(", ")), ONE, Code::MissingField, Some("c199"));
    check(&s, &format!("{{{}, \"c150\": 1}}", full.join(", ")), ONE, Code::DuplicateField, Some("c150"));
}

#[test]
fn the_documented_time_pattern_accepts_exactly_what_the_parser_accepts() {
    let pattern = regex::Regex::new(crate::time::PATTERN).unwrap();
    let check = |text: &str| {
        assert_eq!(pattern.is_match(text), parse_iso(text).is_some(), "{text:?}: the pattern and the parser disagree");
    };
    // every day number of every month of common, leap and century years
    for year in ["0000", "1900", "2000", "2023", "2024", "2100", "9999"] {
        for month in 0..=13 {
            for day in 0..=32 {
                check(&format!("{year}-{month:02}-{day:02}"));
            }
        }
    }
    for time in [
        "00:00:00",
        "23:59:59",
        "23:59:60",
        "24:00:00",
        "12:60:00",
        "12:00:61",
        "9:00:00",
        "12:00",
        "12:00:00.",
        "12:00:00.5",
        "12:00:00.123456789",
        "12:00:00.1234567890",
    ] {
        for sep in ["T", " ", "t", ""] {
            for zone in ["", "Z", "+01:00", "-0530", "+23", "+24:00", "+01:60", "+1", "+01:00Z", "Z+01:00"] {
                check(&format!("2024-02-29{sep}{time}{zone}"));
            }
        }
    }
    for other in
        ["", "2024-01-01Z", "2024-01-01+01:00", "2024-1-01", "20240101", " 2024-01-01", "2024-01-01 ", "0000-00-00"]
    {
        check(other);
    }
}
