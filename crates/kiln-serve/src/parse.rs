//! Request bodies, read straight from the JSON bytes into column buffers against the model's input schema: no
//! intermediate JSON tree, one pass, and every rejection names its field (`records[2].window[0].Date`).
//!
//! Shapes: a tabular record is one object of the model's input columns (`{"tenure": 12, ...}`); a forecast record
//! is `{"window": [row, ...]}`, each row an object of the recipe's input columns, ordered by time, or
//! `{"series": "<key>"}` to forecast from the rows observed for that key; a batch is `{"records": [record, ...]}`;
//! the body of `/observe` is `{"series": "<key>", "rows": [row, ...]}`. Unknown, repeated and missing fields are rejected, as are values of the wrong type.
//! `null` is a missing value in a tabular record (as an empty cell is for `kiln predict`); window rows take numbers
//! only.
//!
//! The visitors report a rejection by storing the [`ApiError`] in a slot and returning a placeholder serde error,
//! which ends the parse; [`parse`] then returns the stored error, or classifies serde_json's own (syntax) error.

use std::cell::RefCell;
use std::fmt;

use kiln_domain::{Code, Column, Frame};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;
use crate::model::{FieldKind, InputSchema};
use crate::time;

/// Single record or batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Single,
    Batch { max_records: usize },
}

/// The values of one field across rows.
#[derive(Debug, Clone, PartialEq)]
enum Buf {
    Numeric(Vec<f64>),
    Categorical(Vec<Option<String>>),
    Timestamp(Vec<i64>),
    Id(Vec<Option<String>>),
    /// a panel's series key (a number kept as its text); `None` where an `/observe` row leaves it out
    Series(Vec<Option<String>>),
    /// a field whose type the pipeline does not fix: the first non-null value decides
    Any {
        numeric: Option<bool>,
        numbers: Vec<f64>,
        labels: Vec<Option<String>>,
    },
}

impl Buf {
    fn for_kind(kind: FieldKind) -> Buf {
        match kind {
            FieldKind::Numeric => Buf::Numeric(Vec::new()),
            FieldKind::Categorical => Buf::Categorical(Vec::new()),
            FieldKind::Timestamp => Buf::Timestamp(Vec::new()),
            FieldKind::Id => Buf::Id(Vec::new()),
            FieldKind::Series => Buf::Series(Vec::new()),
            FieldKind::Any => Buf::Any { numeric: None, numbers: Vec::new(), labels: Vec::new() },
        }
    }

    /// A missing value, for an optional field a record left out.
    fn push_missing(&mut self) {
        match self {
            Buf::Numeric(v) => v.push(f64::NAN),
            Buf::Categorical(v) | Buf::Id(v) | Buf::Series(v) => v.push(None),
            Buf::Timestamp(_) => {}
            Buf::Any { numbers, labels, .. } => {
                numbers.push(f64::NAN);
                labels.push(None);
            }
        }
    }

    fn into_column(self) -> Option<Column> {
        Some(match self {
            Buf::Numeric(v) => Column::Numeric(v),
            Buf::Categorical(v) | Buf::Series(v) => Column::Categorical(v),
            Buf::Timestamp(v) => Column::Timestamp(v),
            Buf::Id(_) => return None,
            Buf::Any { numeric: Some(false), labels, .. } => Column::Categorical(labels),
            // all missing: numeric NaN, which every numeric step and model treats as missing
            Buf::Any { numbers, .. } => Column::Numeric(numbers),
        })
    }
}

/// Rows of the schema's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rows {
    names: Vec<String>,
    bufs: Vec<Buf>,
    pub(crate) n_rows: usize,
}

impl Rows {
    fn new(schema: &InputSchema) -> Rows {
        Rows {
            names: schema.fields.iter().map(|f| f.name.clone()).collect(),
            bufs: schema.fields.iter().map(|f| Buf::for_kind(f.kind)).collect(),
            n_rows: 0,
        }
    }

    /// The id of every row, when the schema has an id field.
    pub(crate) fn ids(&self) -> Option<&[Option<String>]> {
        self.bufs.iter().find_map(|b| match b {
            Buf::Id(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// The rows as a row-major matrix of the fields `plan` lists, in that order; `None` when one of them is not a
    /// numeric field.
    pub(crate) fn row_major(&self, plan: &[usize]) -> Option<Vec<f64>> {
        let columns = plan
            .iter()
            .map(|&i| match self.bufs.get(i)? {
                Buf::Numeric(v) if v.len() == self.n_rows => Some(v.as_slice()),
                _ => None,
            })
            .collect::<Option<Vec<&[f64]>>>()?;
        let mut data = Vec::with_capacity(self.n_rows * columns.len());
        for r in 0..self.n_rows {
            data.extend(columns.iter().map(|c| c[r]));
        }
        Some(data)
    }

    /// The rows as a frame of the schema's fields, in order, without the id.
    pub(crate) fn into_frame(self) -> Result<Frame, ApiError> {
        let columns = self
            .names
            .into_iter()
            .zip(self.bufs)
            .filter_map(|(name, buf)| buf.into_column().map(|c| (name, c)))
            .collect();
        Frame::new(columns).map_err(ApiError::internal)
    }
}

/// What one forecast record forecasts from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ForecastRecord {
    /// the raw rows it carries
    Window(Rows),
    /// the rows observed so far for this series key (`/observe`)
    Series(String),
}

/// A parsed request body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// forecast: one window or series key per record
    Forecasts(Vec<ForecastRecord>),
    /// tabular: every record as one row of one table
    Records(Rows),
}

impl Parsed {
    /// The text of field `name` in the first record (its first window row): a string as it is, a number as Rust
    /// writes it (`12`, `0.5`); `None` when absent, null or not a field of the records.
    pub(crate) fn first_text(&self, name: &str) -> Option<String> {
        let rows = match self {
            Parsed::Records(rows) => rows,
            Parsed::Forecasts(records) => match records.first()? {
                ForecastRecord::Window(rows) => rows,
                ForecastRecord::Series(key) => return (name == "series").then(|| key.clone()),
            },
        };
        if rows.n_rows == 0 {
            return None;
        }
        let i = rows.names.iter().position(|n| n == name)?;
        match &rows.bufs[i] {
            Buf::Numeric(v) => v.first().filter(|x| !x.is_nan()).map(f64::to_string),
            Buf::Categorical(v) | Buf::Id(v) | Buf::Series(v) => v.first().cloned().flatten(),
            Buf::Timestamp(v) => v.first().map(|ms| time::format_iso(*ms)),
            Buf::Any { numeric: Some(true), numbers, .. } => {
                numbers.first().filter(|x| !x.is_nan()).map(f64::to_string)
            }
            Buf::Any { labels, .. } => labels.first().cloned().flatten(),
        }
    }

    #[cfg(test)]
    pub(crate) fn n_records(&self) -> usize {
        match self {
            Parsed::Forecasts(w) => w.len(),
            Parsed::Records(r) => r.n_rows,
        }
    }
}

/// Where a value sits in the body, to name it in an error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Loc {
    /// the record's index in a batch
    pub(crate) record: Option<usize>,
    /// the list of rows the value is in: `window` (a forecast record) or `rows` (an `/observe` body)
    pub(crate) list: Option<&'static str>,
    /// the row's index in that list
    pub(crate) row: Option<usize>,
}

impl Loc {
    pub(crate) fn record(record: Option<usize>) -> Loc {
        Loc { record, ..Loc::default() }
    }

    pub(crate) fn window(self) -> Loc {
        Loc { list: Some("window"), ..self }
    }

    pub(crate) fn observed_rows(self) -> Loc {
        Loc { list: Some("rows"), ..self }
    }

    pub(crate) fn row(self, row: usize) -> Loc {
        Loc { row: Some(row), ..self }
    }

    /// The path of this place, with `name` appended; `None` for the body itself.
    pub(crate) fn path(self, name: Option<&str>) -> Option<String> {
        let mut s = String::new();
        let push = |s: &mut String, part: &str| {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(part);
        };
        if let Some(i) = self.record {
            push(&mut s, &format!("records[{i}]"));
        }
        if let Some(list) = self.list {
            push(&mut s, list);
            if let Some(k) = self.row {
                s.push_str(&format!("[{k}]"));
            }
        }
        if let Some(name) = name {
            push(&mut s, name);
        }
        (!s.is_empty()).then_some(s)
    }
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    schema: &'a InputSchema,
    /// the first rejection
    slot: &'a RefCell<Option<ApiError>>,
    /// the field whose value serde_json failed to read (for a NaN or Infinity literal)
    at: &'a RefCell<Option<String>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(self, error: ApiError) -> E {
        let mut slot = self.slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(error);
        }
        E::custom("request rejected")
    }

    fn wrong<E: de::Error>(self, loc: Loc, name: Option<&str>, expected: &str, got: &str) -> E {
        let code = if got == "null" { Code::NullValue } else { Code::WrongType };
        let message = match name {
            Some(n) => format!("'{n}' must be {expected}, got {got}"),
            None if loc.path(None).is_none() => format!("the body must be {expected}, got {got}"),
            None => format!("must be {expected}, got {got}"),
        };
        self.fail(ApiError { code, message, field: loc.path(name) })
    }
}

/// Rejects every JSON type a visitor does not take, through [`Ctx::wrong`]. The visitor has `ctx`, `loc` and
/// `name()`; `$expected` says what it takes.
macro_rules! reject {
    ($expected:expr; scalars) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "null"))
        }
    };
    ($expected:expr; seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "an array"))
        }
    };
    ($expected:expr; map) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.ctx.wrong(self.loc, self.name(), $expected, "an object"))
        }
    };
}

/// Parses a request body for `schema`.
///
/// # Errors
/// The [`ApiError`] naming the first problem: malformed JSON, a NaN or Infinity literal, a number out of range, a
/// missing, unknown, repeated or mistyped field, a null where a value is needed, too many records.
pub(crate) fn parse(schema: &InputSchema, body: &[u8], mode: Mode) -> Result<Parsed, ApiError> {
    let slot = RefCell::new(None);
    let at = RefCell::new(None);
    let ctx = Ctx { schema, slot: &slot, at: &at };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = match mode {
        Mode::Single => BodySeed { ctx, loc: Loc::default() }.deserialize(&mut de),
        Mode::Batch { max_records } => BatchSeed { ctx, max_records }.deserialize(&mut de),
    };
    let result = result.and_then(|parsed| de.end().map(|()| parsed));
    match result {
        Ok(parsed) => Ok(parsed),
        Err(e) => Err(match slot.into_inner() {
            Some(rejection) => rejection,
            None => classify(&e, body, at.into_inner()),
        }),
    }
}

/// serde_json's own error: a NaN or Infinity literal, a number beyond f64, or malformed JSON.
fn classify(e: &serde_json::Error, body: &[u8], at: Option<String>) -> ApiError {
    let offset = byte_offset(body, e.line(), e.column());
    let near = &body[offset.saturating_sub(2).min(body.len())..(offset + 9).min(body.len())];
    let near = String::from_utf8_lossy(near);
    if near.contains("NaN") || near.contains("Infinity") {
        return ApiError {
            code: Code::NotFinite,
            message: format!(
                "NaN and Infinity are not JSON numbers and not valid inputs (line {}, column {}); send a missing \
                 value as null where the field allows it",
                e.line(),
                e.column()
            ),
            field: at,
        };
    }
    let text = e.to_string();
    if text.starts_with("number out of range") {
        return ApiError {
            code: Code::NotFinite,
            message: format!("a number beyond the range of f64: {text}"),
            field: at,
        };
    }
    ApiError::new(Code::MalformedJson, format!("the body is not valid JSON: {text}"))
}

/// The byte offset of serde_json's 1-based line and column.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match body[offset..].iter().position(|&b| b == b'\n') {
            Some(i) => offset += i + 1,
            None => return body.len(),
        }
    }
    (offset + column.saturating_sub(1)).min(body.len())
}

// ---- the body of /predict: one record ----

struct BodySeed<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Parsed;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        if self.ctx.schema.windowed {
            let record = WindowRecordSeed { ctx: self.ctx, loc: self.loc }.deserialize(d)?;
            Ok(Parsed::Forecasts(vec![record]))
        } else {
            let mut rows = Rows::new(self.ctx.schema);
            RecordSeed { ctx: self.ctx, loc: self.loc, rows: &mut rows }.deserialize(d)?;
            Ok(Parsed::Records(rows))
        }
    }
}

// ---- the body of /predict/batch: {"records": [...]} ----

struct BatchSeed<'a> {
    ctx: Ctx<'a>,
    max_records: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Parsed;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(BatchVisitor { ctx: self.ctx, loc: Loc::default(), max_records: self.max_records })
    }
}

struct BatchVisitor<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
    max_records: usize,
}

impl BatchVisitor<'_> {
    fn name(&self) -> Option<&'static str> {
        None
    }
}

impl<'de> Visitor<'de> for BatchVisitor<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"records\": [...]}")
    }

    reject!("an object {\"records\": [...]}"; scalars);
    reject!("an object {\"records\": [...]}"; seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut parsed = None;
        while let Some(key) = map.next_key::<KeyName<'de>>()? {
            if key.0 != "records" {
                let message = format!("unknown field '{}'; a batch is {{\"records\": [...]}}", key.0);
                return Err(self.ctx.fail(ApiError::at(Code::UnknownField, key.0.to_string(), message)));
            }
            if parsed.is_some() {
                return Err(self.ctx.fail(ApiError::at(Code::DuplicateField, "records", "'records' appears twice")));
            }
            parsed = Some(map.next_value_seed(RecordsSeed { ctx: self.ctx, max_records: self.max_records })?);
        }
        parsed.ok_or_else(|| {
            self.ctx.fail(ApiError::at(Code::MissingField, "records", "a batch is {\"records\": [...]}"))
        })
    }
}

struct RecordsSeed<'a> {
    ctx: Ctx<'a>,
    max_records: usize,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = Parsed;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(RecordsVisitor { ctx: self.ctx, loc: Loc::default(), max_records: self.max_records })
    }
}

struct RecordsVisitor<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
    max_records: usize,
}

impl RecordsVisitor<'_> {
    fn name(&self) -> Option<&'static str> {
        Some("records")
    }
}

impl<'de> Visitor<'de> for RecordsVisitor<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    reject!("an array of records"; scalars);
    reject!("an array of records"; map);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let ctx = self.ctx;
        let too_many = TooMany { ctx, max_records: self.max_records };
        if ctx.schema.windowed {
            let mut windows = Vec::new();
            loop {
                if windows.len() == self.max_records {
                    seq.next_element_seed(too_many)?;
                    break;
                }
                let loc = Loc::record(Some(windows.len()));
                match seq.next_element_seed(WindowRecordSeed { ctx, loc })? {
                    Some(record) => windows.push(record),
                    None => break,
                }
            }
            Ok(Parsed::Forecasts(windows))
        } else {
            let mut rows = Rows::new(ctx.schema);
            loop {
                if rows.n_rows == self.max_records {
                    seq.next_element_seed(too_many)?;
                    break;
                }
                let loc = Loc::record(Some(rows.n_rows));
                if seq.next_element_seed(RecordSeed { ctx, loc, rows: &mut rows })?.is_none() {
                    break;
                }
            }
            Ok(Parsed::Records(rows))
        }
    }
}

/// The element after the last allowed record: rejected before it is read.
#[derive(Clone, Copy)]
struct TooMany<'a> {
    ctx: Ctx<'a>,
    max_records: usize,
}

impl<'de> DeserializeSeed<'de> for TooMany<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        let message = format!("a batch takes at most {} records; split it into smaller requests", self.max_records);
        Err(self.ctx.fail(ApiError::at(Code::TooManyRecords, "records", message)))
    }
}

// ---- one forecast record: {"window": [row, ...]} or {"series": "<key>"} ----

struct WindowRecordSeed<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl<'de> DeserializeSeed<'de> for WindowRecordSeed<'_> {
    type Value = ForecastRecord;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ForecastRecord, D::Error> {
        d.deserialize_any(WindowRecordVisitor { ctx: self.ctx, loc: self.loc })
    }
}

struct WindowRecordVisitor<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl WindowRecordVisitor<'_> {
    fn name(&self) -> Option<&'static str> {
        None
    }
}

const WINDOW_RECORD: &str = "an object {\"window\": [row, ...]} or {\"series\": \"<key>\"}";

impl<'de> Visitor<'de> for WindowRecordVisitor<'_> {
    type Value = ForecastRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(WINDOW_RECORD)
    }

    reject!(WINDOW_RECORD; scalars);
    reject!(WINDOW_RECORD; seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ForecastRecord, A::Error> {
        let (ctx, loc) = (self.ctx, self.loc);
        let mut window: Option<Rows> = None;
        let mut series: Option<String> = None;
        while let Some(key) = map.next_key::<KeyName<'de>>()? {
            let twice = match key.0.as_ref() {
                "window" => window.is_some(),
                "series" => series.is_some(),
                other => {
                    let message = format!(
                        "unknown field '{other}'; a forecast record is {{\"window\": [row, ...]}} (the raw rows \
                         ordered by time) or {{\"series\": \"<key>\"}} (a series fed through /observe)"
                    );
                    return Err(ctx.fail(ApiError { code: Code::UnknownField, message, field: loc.path(Some(other)) }));
                }
            };
            if twice {
                let message = format!("'{}' appears twice", key.0);
                return Err(ctx.fail(ApiError { code: Code::DuplicateField, message, field: loc.path(Some(&key.0)) }));
            }
            if key.0 == "window" {
                let mut rows = Rows::new(ctx.schema);
                map.next_value_seed(WindowSeed { ctx, loc: loc.window(), rows: &mut rows })?;
                window = Some(rows);
            } else {
                series = Some(map.next_value_seed(SeriesKeySeed { ctx, loc })?);
            }
        }
        match (window, series) {
            (Some(rows), None) => Ok(ForecastRecord::Window(rows)),
            (None, Some(key)) => Ok(ForecastRecord::Series(key)),
            (Some(_), Some(_)) => Err(ctx.fail(ApiError {
                code: Code::ConflictingFields,
                message: "a forecast record carries either a 'window' of rows or a 'series' key, not both".into(),
                field: loc.path(Some("series")),
            })),
            (None, None) => Err(ctx.fail(ApiError {
                code: Code::MissingField,
                message: "a forecast record is {\"window\": [row, ...]}, the raw rows ordered by time, or \
                          {\"series\": \"<key>\"}"
                    .to_string(),
                field: loc.window().path(None),
            })),
        }
    }
}

/// The longest series key, in bytes.
pub(crate) const MAX_SERIES_KEY_BYTES: usize = 256;

/// A series key: a non-empty string of at most [`MAX_SERIES_KEY_BYTES`] bytes.
struct SeriesKeySeed<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl<'de> DeserializeSeed<'de> for SeriesKeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(SeriesKeyVisitor { ctx: self.ctx, loc: self.loc })
    }
}

struct SeriesKeyVisitor<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl SeriesKeyVisitor<'_> {
    fn name(&self) -> Option<&'static str> {
        Some("series")
    }
}

const SERIES_KEY: &str = "a series key (a non-empty string)";

impl<'de> Visitor<'de> for SeriesKeyVisitor<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SERIES_KEY)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(self.ctx.wrong(self.loc, self.name(), SERIES_KEY, "a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(self.ctx.wrong(self.loc, self.name(), SERIES_KEY, "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(self.ctx.wrong(self.loc, self.name(), SERIES_KEY, "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(self.ctx.wrong(self.loc, self.name(), SERIES_KEY, "a number"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(self.ctx.wrong(self.loc, self.name(), SERIES_KEY, "null"))
    }
    reject!(SERIES_KEY; seq);
    reject!(SERIES_KEY; map);

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.is_empty() || v.len() > MAX_SERIES_KEY_BYTES {
            let message = format!("a series key is 1 to {MAX_SERIES_KEY_BYTES} bytes long, got {}", v.len());
            return Err(self.ctx.fail(ApiError::at(
                Code::InvalidValue,
                self.loc.path(Some("series")).unwrap_or_default(),
                message,
            )));
        }
        Ok(v.to_string())
    }
}

// ---- the body of /observe: {"series": "<key>", "rows": [row, ...]} ----

/// Parses the body of `POST /observe` for a forecast `schema`: the series key and its new rows.
///
/// # Errors
/// As [`parse`], naming fields as `rows[2].Close`.
pub(crate) fn parse_observe(schema: &InputSchema, body: &[u8]) -> Result<(String, Rows), ApiError> {
    let slot = RefCell::new(None);
    let at = RefCell::new(None);
    let ctx = Ctx { schema, slot: &slot, at: &at };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = ObserveSeed { ctx }.deserialize(&mut de).and_then(|parsed| de.end().map(|()| parsed));
    match result {
        Ok(parsed) => Ok(parsed),
        Err(e) => Err(match slot.into_inner() {
            Some(rejection) => rejection,
            None => classify(&e, body, at.into_inner()),
        }),
    }
}

struct ObserveSeed<'a> {
    ctx: Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for ObserveSeed<'_> {
    type Value = (String, Rows);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(String, Rows), D::Error> {
        d.deserialize_any(ObserveVisitor { ctx: self.ctx, loc: Loc::default() })
    }
}

struct ObserveVisitor<'a> {
    ctx: Ctx<'a>,
    loc: Loc,
}

impl ObserveVisitor<'_> {
    fn name(&self) -> Option<&'static str> {
        None
    }
}

const OBSERVE_BODY: &str = "an object {\"series\": \"<key>\", \"rows\": [row, ...]}";

impl<'de> Visitor<'de> for ObserveVisitor<'_> {
    type Value = (String, Rows);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OBSERVE_BODY)
    }

    reject!(OBSERVE_BODY; scalars);
    reject!(OBSERVE_BODY; seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(String, Rows), A::Error> {
        let ctx = self.ctx;
        let mut rows: Option<Rows> = None;
        let mut series: Option<String> = None;
        while let Some(key) = map.next_key::<KeyName<'de>>()? {
            let twice = match key.0.as_ref() {
                "rows" => rows.is_some(),
                "series" => series.is_some(),
                other => {
                    let message = format!("unknown field '{other}'; the body is {OBSERVE_BODY}");
                    return Err(ctx.fail(ApiError::at(Code::UnknownField, other, message)));
                }
            };
            if twice {
                let message = format!("'{}' appears twice", key.0);
                return Err(ctx.fail(ApiError::at(Code::DuplicateField, key.0.to_string(), message)));
            }
            if key.0 == "rows" {
                let mut kept = Rows::new(ctx.schema);
                map.next_value_seed(WindowSeed { ctx, loc: Loc::default().observed_rows(), rows: &mut kept })?;
                rows = Some(kept);
            } else {
                series = Some(map.next_value_seed(SeriesKeySeed { ctx, loc: Loc::default() })?);
            }
        }
        match (series, rows) {
            (Some(series), Some(rows)) => Ok((series, rows)),
            (None, _) => {
                Err(ctx.fail(ApiError::at(Code::MissingField, "series", format!("the body is {OBSERVE_BODY}"))))
            }
            (_, None) => Err(ctx.fail(ApiError::at(Code::MissingField, "rows", format!("the body is {OBSERVE_BODY}")))),
        }
    }
}

struct WindowSeed<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    rows: &'r mut Rows,
}

impl<'de> DeserializeSeed<'de> for WindowSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(WindowVisitor { ctx: self.ctx, loc: self.loc, rows: self.rows })
    }
}

struct WindowVisitor<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    rows: &'r mut Rows,
}

impl WindowVisitor<'_, '_> {
    fn name(&self) -> Option<&'static str> {
        None
    }
}

impl<'de> Visitor<'de> for WindowVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    reject!("an array of rows, ordered by time"; scalars);
    reject!("an array of rows, ordered by time"; map);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let loc = self.loc.row(self.rows.n_rows);
            if seq.next_element_seed(RecordSeed { ctx: self.ctx, loc, rows: &mut *self.rows })?.is_none() {
                return Ok(());
            }
        }
    }
}

// ---- one row: a tabular record, or a row of a window ----

struct RecordSeed<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    rows: &'r mut Rows,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(RecordVisitor { ctx: self.ctx, loc: self.loc, rows: self.rows })
    }
}

struct RecordVisitor<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    rows: &'r mut Rows,
}

impl RecordVisitor<'_, '_> {
    fn name(&self) -> Option<&'static str> {
        None
    }
}

impl<'de> Visitor<'de> for RecordVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of the model's input fields")
    }

    reject!("an object of the model's input fields"; scalars);
    reject!("an object of the model's input fields"; seq);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let schema = ctx.schema;
        let fields = &schema.fields;
        let mut seen = Seen::new(fields.len());
        while let Some(key) = map.next_key::<KeyName<'de>>()? {
            let Some(i) = schema.position(&key.0) else {
                let expected: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                let message = format!("unknown field '{}'; the model takes {}", key.0, expected.join(", "));
                return Err(ctx.fail(ApiError {
                    code: Code::UnknownField,
                    message,
                    field: self.loc.path(Some(&key.0)),
                }));
            };
            if seen.get(i) {
                let message = format!("'{}' appears twice", key.0);
                return Err(ctx.fail(ApiError {
                    code: Code::DuplicateField,
                    message,
                    field: self.loc.path(Some(&key.0)),
                }));
            }
            seen.set(i);
            let nullable = schema.nullable(i);
            let cell = CellSeed { ctx, loc: self.loc, name: &fields[i].name, nullable, buf: &mut self.rows.bufs[i] };
            map.next_value_seed(cell)?;
        }
        for (i, field) in fields.iter().enumerate() {
            if seen.get(i) {
                continue;
            }
            // a row of an /observe body may leave out a panel's series column: the body's key names the series
            let optional =
                if self.loc.list == Some("rows") { schema.optional_in_observe(i) } else { schema.optional(i) };
            if optional {
                self.rows.bufs[i].push_missing();
                continue;
            }
            let message = if schema.windowed {
                format!("every window row needs '{}' (a row has the fields {})", field.name, names(schema))
            } else {
                format!("the record needs '{}' (null for a missing value)", field.name)
            };
            return Err(ctx.fail(ApiError {
                code: Code::MissingField,
                message,
                field: self.loc.path(Some(&field.name)),
            }));
        }
        self.rows.n_rows += 1;
        Ok(())
    }
}

/// The fields a record has named so far: a bit mask for up to 128 fields (no allocation per window row), a list
/// beyond.
enum Seen {
    Bits(u128),
    List(Vec<bool>),
}

impl Seen {
    fn new(n: usize) -> Seen {
        if n <= 128 { Seen::Bits(0) } else { Seen::List(vec![false; n]) }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Seen::Bits(b) => b & (1 << i) != 0,
            Seen::List(v) => v[i],
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Seen::Bits(b) => *b |= 1 << i,
            Seen::List(v) => v[i] = true,
        }
    }
}

fn names(schema: &InputSchema) -> String {
    schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// An object key, borrowed from the body when it has no escapes.
struct KeyName<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

// ---- one value ----

struct CellSeed<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    name: &'a str,
    nullable: bool,
    buf: &'r mut Buf,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let (ctx, loc, name) = (self.ctx, self.loc, self.name);
        d.deserialize_any(CellVisitor { ctx, loc, name, nullable: self.nullable, buf: self.buf }).inspect_err(|_| {
            // remembered for serde_json's own errors inside the value (a NaN literal), which carry no field
            if ctx.slot.borrow().is_none() {
                *ctx.at.borrow_mut() = loc.path(Some(name));
            }
        })
    }
}

struct CellVisitor<'a, 'r> {
    ctx: Ctx<'a>,
    loc: Loc,
    name: &'a str,
    nullable: bool,
    buf: &'r mut Buf,
}

impl CellVisitor<'_, '_> {
    fn expected(&self) -> &'static str {
        match (&self.buf, self.nullable) {
            (Buf::Numeric(_), true) => "a number or null",
            (Buf::Numeric(_), false) => "a number",
            (Buf::Categorical(_), _) => "a string or null",
            (Buf::Timestamp(_), _) => "an ISO date or date-time string",
            (Buf::Id(_), _) => "a string, a number or null",
            (Buf::Series(_), _) => "a series key (a string or a number)",
            (Buf::Any { numeric: Some(true), .. }, _) => "a number or null (as in the earlier records)",
            (Buf::Any { numeric: Some(false), .. }, _) => "a string or null (as in the earlier records)",
            (Buf::Any { numeric: None, .. }, _) => "a number, a string or null",
        }
    }

    fn wrong<E: de::Error>(self, got: &str) -> E {
        let expected = self.expected();
        self.ctx.wrong(self.loc, Some(self.name), expected, got)
    }

    fn number<E: de::Error>(self, v: f64, text: impl FnOnce() -> String) -> Result<(), E> {
        if !v.is_finite() {
            let message = format!("'{}' must be a finite number, got {v}", self.name);
            return Err(self.ctx.fail(ApiError {
                code: Code::NotFinite,
                message,
                field: self.loc.path(Some(self.name)),
            }));
        }
        match self.buf {
            Buf::Numeric(values) => values.push(v),
            Buf::Id(values) => values.push(Some(text())),
            // the text a data file's numeric key gets (`kiln_domain::Frame::series_codes`)
            Buf::Series(values) => values.push(Some(v.to_string())),
            Buf::Any { numeric, numbers, labels } if *numeric != Some(false) => {
                *numeric = Some(true);
                numbers.push(v);
                labels.push(None);
            }
            _ => return Err(self.wrong("a number")),
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for CellVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // an id keeps its text as `kiln predict` prints a number read from a file
        self.number(v, || v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v as f64, || v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v as f64, || v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.buf {
            Buf::Categorical(values) | Buf::Id(values) | Buf::Series(values) => values.push(Some(v.to_string())),
            Buf::Timestamp(values) => match time::parse_iso(v) {
                Some(ms) => values.push(ms),
                None => {
                    let message = format!("'{}' must be {}, got \"{v}\"", self.name, time::EXPECTED);
                    let field = self.loc.path(Some(self.name));
                    return Err(self.ctx.fail(ApiError { code: Code::InvalidTime, message, field }));
                }
            },
            Buf::Any { numeric, numbers, labels } if *numeric != Some(true) => {
                *numeric = Some(false);
                numbers.push(f64::NAN);
                labels.push(Some(v.to_string()));
            }
            _ => return Err(self.wrong("a string")),
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if !self.nullable || matches!(self.buf, Buf::Timestamp(_)) {
            return Err(self.wrong("null"));
        }
        self.buf.push_missing();
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.wrong("a boolean"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong("an object"))
    }
}
