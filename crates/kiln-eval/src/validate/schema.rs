//! The schema a file is validated against, as written in YAML (a `validate:` section or its own file): per column
//! rules, table rules, the time column's rules and row rules written as expressions. Every check takes
//! `severity: error | warning`, either from its column or section (`severity:` beside the rules) or on its own in the
//! long form (`min: {value: 0, severity: warning}`, `rows: {min: 100, severity: warning}`).
//!
//! [`SchemaSpec::check`] finds what serde cannot (a bad regex, expression, duration, an empty range) before any file
//! is read; errors are [`SchemaError`]s naming the key path inside the schema.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::expr::Expr;

/// A schema error: the key path inside the schema (`columns.USD.regex`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SchemaError {
    pub path: String,
    pub reason: String,
}

impl SchemaError {
    pub(crate) fn new(path: impl Into<String>, reason: impl Into<String>) -> SchemaError {
        SchemaError { path: path.into(), reason: reason.into() }
    }
}

/// How a failed check counts: an error fails the validation (exit 2, training refused), a warning is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A check's value with an optional severity of its own: written plainly (`min: 0`) or in the long form
/// (`min: {value: 0, severity: warning}`; for a value that is a mapping, `severity` may sit beside its keys:
/// `rows: {min: 100, severity: warning}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sev<T> {
    pub value: T,
    pub severity: Option<Severity>,
}

impl<T> Sev<T> {
    pub fn plain(value: T) -> Sev<T> {
        Sev { value, severity: None }
    }

    /// This check's severity, else the one of its column or section.
    pub fn severity_or(&self, default: Severity) -> Severity {
        self.severity.unwrap_or(default)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Sev<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        let mut severity = None;
        if let serde_json::Value::Object(map) = &mut value
            && let Some(s) = map.remove("severity")
        {
            severity = Some(Severity::deserialize(s).map_err(|e| de::Error::custom(format!("severity: {e}")))?);
            if map.contains_key("value") {
                if map.len() > 1 {
                    let other = map.keys().find(|k| *k != "value").cloned().unwrap_or_default();
                    return Err(de::Error::custom(format!(
                        "unknown field `{other}` beside `value` and `severity` (the long form is {{value: ..., \
                         severity: warning}})"
                    )));
                }
                value = map.remove("value").unwrap_or(serde_json::Value::Null);
            }
        }
        let value = T::deserialize(value).map_err(de::Error::custom)?;
        Ok(Sev { value, severity })
    }
}

impl<T: Serialize> Serialize for Sev<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(severity) = self.severity else {
            return self.value.serialize(serializer);
        };
        let inner = serde_json::to_value(&self.value).map_err(serde::ser::Error::custom)?;
        match inner {
            serde_json::Value::Object(mut map) => {
                map.insert("severity".into(), serde_json::Value::String(severity.as_str().into()));
                map.serialize(serializer)
            }
            other => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("value", &other)?;
                map.serialize_entry("severity", &severity)?;
                map.end()
            }
        }
    }
}

/// What a column's values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// any number (integers included)
    Number,
    /// a whole number
    Integer,
    /// any text
    String,
    /// a time the reader parses (the schema's `time_format`, or ISO 8601)
    Timestamp,
    /// true/false (any case) or 1/0
    Bool,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Number => "number",
            ValueType::Integer => "integer",
            ValueType::String => "string",
            ValueType::Timestamp => "timestamp",
            ValueType::Bool => "bool",
        }
    }

    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, ValueType::Number | ValueType::Integer)
    }
}

/// One allowed value: a text, a number or a boolean, compared as the column's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Scalar {
    /// The value as a cell's text (`1.0` is `1`, as YAML's `1`).
    pub(crate) fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(x) => format_number(*x),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// A number as kiln prints values: integral values without a fraction, others in their shortest exact form.
pub(crate) fn format_number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

/// The rules of one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// the values' type; default `number` when `min` or `max` is set, else `string` (any value)
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Sev<ValueType>>,
    /// `false`: no missing value allowed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<Sev<bool>>,
    /// the largest share of missing values, in [0, 1]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_null_fraction: Option<Sev<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Sev<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Sev<f64>>,
    /// the only values allowed (missing values are the business of `nullable`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Sev<Vec<Scalar>>>,
    /// a regular expression every value must match whole (Rust's `regex` syntax)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Sev<String>>,
    /// no value twice (missing values are not compared)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<Sev<bool>>,
    /// the severity of this column's checks that do not set their own (default error)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl ColumnSpec {
    /// The declared type, or the one the checks imply.
    pub fn value_type(&self) -> ValueType {
        match &self.kind {
            Some(t) => t.value,
            None if self.min.is_some() || self.max.is_some() => ValueType::Number,
            None => ValueType::String,
        }
    }
}

/// The columns' rules in the order written (a YAML mapping from column name to its rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns(pub Vec<(String, ColumnSpec)>);

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Columns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from column name to its rules")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Columns, A::Error> {
                let mut out: Vec<(String, ColumnSpec)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("column `{name}` is listed twice")));
                    }
                    let spec = map.next_value::<Option<ColumnSpec>>()?.unwrap_or_default();
                    out.push((name, spec));
                }
                Ok(Columns(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl Serialize for Columns {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, spec) in &self.0 {
            map.serialize_entry(name, spec)?;
        }
        map.end()
    }
}

/// The number of data rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// The order the time column must follow (per series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// each time later than the one before (per series): no repeat, no step back
    #[default]
    Increasing,
    /// each time earlier than the one before (a newest-first download, like the ECB's)
    Decreasing,
    /// not checked
    Any,
}

/// A span of time: a fixed duration (`3d`, `2h`, `30m`, `45s`, `1w`) or business days (`{business_days: 3}`:
/// weekdays, as numpy's `busday_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Millis(i64),
    BusinessDays(i64),
}

impl Span {
    /// `3d`, `2h`, `30m`, `45s`, `1w`, `250ms`.
    pub fn parse_duration(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let unit_ms = match unit.trim() {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => 0,
        };
        match n.parse::<i64>() {
            Ok(n) if unit_ms > 0 && n > 0 => n.checked_mul(unit_ms).map(Span::Millis).ok_or_else(|| "too long".into()),
            _ => Err(format!(
                "'{text}' is not a span of time: write a positive whole number and a unit (3d, 2h, 30m, 45s, 1w, \
                 250ms) or {{business_days: 3}}"
            )),
        }
    }

    /// The shortest text for a fixed duration (`86400000` ms is `1d`).
    pub fn text(self) -> String {
        match self {
            Span::BusinessDays(n) => format!("{n} business days"),
            Span::Millis(ms) => {
                for (unit, size) in [("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)] {
                    if ms % size == 0 {
                        return format!("{}{unit}", ms / size);
                    }
                }
                if ms % 1000 == 0 { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match &value {
            serde_json::Value::String(s) => Span::parse_duration(s).map_err(de::Error::custom),
            serde_json::Value::Object(map) if map.len() == 1 && map.contains_key("business_days") => {
                match map["business_days"].as_i64() {
                    Some(n) if n > 0 => Ok(Span::BusinessDays(n)),
                    _ => Err(de::Error::custom("business_days must be a positive whole number")),
                }
            }
            _ => Err(de::Error::custom(format!(
                "expected a span of time like 3d, 2h, 30m, 45s or {{business_days: 3}}, got {value}"
            ))),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Span::Millis(_) => serializer.serialize_str(&self.text()),
            Span::BusinessDays(n) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("business_days", n)?;
                map.end()
            }
        }
    }
}

/// The time column's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// the column of times (parsed as the reader parses them; an unparseable or missing time fails `type`)
    pub column: String,
    /// a panel: order and gaps are checked within each series of this column
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_column: Option<String>,
    /// `increasing` (default), `decreasing` or `any`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Sev<Order>>,
    /// the longest step between consecutive rows of a series
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap: Option<Sev<Span>>,
    /// the latest time must be at most this long before the reference time (now, or `--reference-time`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Sev<Span>>,
    /// the severity of the time checks that do not set their own (default error)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// A row rule: an expression over columns that every row must satisfy (`low <= open`, `close > 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// the rule's name in the report (default: the expression)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// comparisons (`< <= > >= == !=`, chains like `low <= open <= high`), `+ - * /`, `and`/`or`/`not`,
    /// parentheses, numbers, column names (`` `Adj Close` `` for names with spaces) and `is_null(column)`; a
    /// comparison with a missing value is unknown, and only a rule that is false fails (as SQL's CHECK)
    pub expr: String,
    #[serde(default)]
    pub severity: Severity,
}

impl RuleSpec {
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.expr.clone())
    }
}

/// A whole schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// per column rules, by column name
    #[serde(default, skip_serializing_if = "columns_empty")]
    pub columns: Columns,
    /// the number of data rows
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Sev<RowsSpec>>,
    /// columns whose values together appear at most once (rows with a missing key value are not compared)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<Sev<Vec<String>>>,
    /// the time column: order per series, gaps, freshness
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpec>,
    /// row rules
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// cell texts read as missing (default: the experiment's `data.na_values`, else the reader's)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub na_values: Option<Vec<String>>,
    /// the format of timestamp columns (default: the experiment's `data.time_format`, else ISO 8601 detected)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
}

fn columns_empty(c: &Columns) -> bool {
    c.0.is_empty()
}

impl SchemaSpec {
    /// The spec of column `name`, if it has one.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Checks everything that needs no data: value ranges, regexes, expressions (and that they name numeric
    /// columns), the time column's type.
    ///
    /// # Errors
    /// The first [`SchemaError`], naming its key path in the schema.
    pub fn check(&self) -> Result<(), SchemaError> {
        for (name, col) in &self.columns.0 {
            let at = |key: &str| format!("columns.{name}.{key}");
            let t = col.value_type();
            if let Some(f) = &col.max_null_fraction
                && !(0.0..=1.0).contains(&f.value)
            {
                return Err(SchemaError::new(
                    at("max_null_fraction"),
                    format!("{} is not a fraction in [0, 1]", f.value),
                ));
            }
            if let Some(n) = &col.nullable
                && !n.value
                && col.max_null_fraction.is_some()
            {
                return Err(SchemaError::new(
                    at("max_null_fraction"),
                    "nullable: false already allows no missing value; set one of the two",
                ));
            }
            for (key, set) in [("min", col.min.is_some()), ("max", col.max.is_some())] {
                if set && !t.is_numeric() {
                    return Err(SchemaError::new(
                        at(key),
                        format!("applies to number or integer columns, not {}", t.as_str()),
                    ));
                }
            }
            if let (Some(lo), Some(hi)) = (&col.min, &col.max)
                && lo.value > hi.value
            {
                return Err(SchemaError::new(at("min"), format!("min {} is above max {}", lo.value, hi.value)));
            }
            if let Some(allowed) = &col.allowed {
                if allowed.value.is_empty() {
                    return Err(SchemaError::new(at("allowed"), "the list of allowed values is empty"));
                }
                if matches!(t, ValueType::Timestamp | ValueType::Bool) {
                    return Err(SchemaError::new(at("allowed"), format!("does not apply to {} columns", t.as_str())));
                }
                if t.is_numeric()
                    && let Some(v) = allowed.value.iter().find(|v| !matches!(v, Scalar::Number(_)))
                {
                    return Err(SchemaError::new(at("allowed"), format!("'{}' is not a number", v.text())));
                }
            }
            if let Some(r) = &col.regex {
                if t != ValueType::String {
                    return Err(SchemaError::new(
                        at("regex"),
                        format!("applies to string columns, not {}", t.as_str()),
                    ));
                }
                regex::Regex::new(&r.value)
                    .map_err(|e| SchemaError::new(at("regex"), format!("invalid regex: {e}")))?;
            }
        }
        if let Some(rows) = &self.rows
            && let (Some(lo), Some(hi)) = (rows.value.min, rows.value.max)
            && lo > hi
        {
            return Err(SchemaError::new("rows.min", format!("min {lo} is above max {hi}")));
        }
        if let Some(key) = &self.unique_key
            && key.value.is_empty()
        {
            return Err(SchemaError::new("unique_key", "the list of key columns is empty"));
        }
        if let Some(time) = &self.time
            && let Some(col) = self.column(&time.column)
            && col.value_type() != ValueType::Timestamp
        {
            return Err(SchemaError::new(
                format!("columns.{}.type", time.column),
                format!("the time column must be a timestamp, not {}", col.value_type().as_str()),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let expr = Expr::parse(&rule.expr)
                .map_err(|e| SchemaError::new(format!("rules[{i}].expr"), format!("rule '{}': {e}", rule.label())))?;
            for column in expr.columns() {
                if self.time.as_ref().is_some_and(|t| t.column == column) {
                    return Err(SchemaError::new(
                        format!("rules[{i}].expr"),
                        format!("rule '{}': column '{column}' is the time column; rules compare numbers", rule.label()),
                    ));
                }
                if let Some(col) = self.column(&column)
                    && !col.value_type().is_numeric()
                {
                    return Err(SchemaError::new(
                        format!("rules[{i}].expr"),
                        format!(
                            "rule '{}': column '{column}' is a {} column; rules compare numbers",
                            rule.label(),
                            col.value_type().as_str()
                        ),
                    ));
                }
            }
        }
        if self.columns.0.is_empty()
            && self.rows.is_none()
            && self.unique_key.is_none()
            && self.time.is_none()
            && self.rules.is_empty()
        {
            return Err(SchemaError::new("", "the schema has no check"));
        }
        Ok(())
    }

    /// Every column the checks read, each once, in the order the schema names them.
    pub fn columns_read(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: &str| {
            if !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        };
        if let Some(time) = &self.time {
            add(&time.column);
            if let Some(s) = &time.series_column {
                add(s);
            }
        }
        for (name, _) in &self.columns.0 {
            add(name);
        }
        if let Some(key) = &self.unique_key {
            key.value.iter().for_each(|c| add(c));
        }
        for rule in &self.rules {
            if let Ok(expr) = Expr::parse(&rule.expr) {
                expr.columns().iter().for_each(|c| add(c));
            }
        }
        out
    }

    /// The key path where column `column` is named first (for an error about a column missing from the file).
    pub fn path_naming(&self, column: &str) -> String {
        if let Some(time) = &self.time {
            if time.column == column {
                return "time.column".into();
            }
            if time.series_column.as_deref() == Some(column) {
                return "time.series_column".into();
            }
        }
        if self.column(column).is_some() {
            return format!("columns.{column}");
        }
        if let Some(key) = &self.unique_key
            && let Some(i) = key.value.iter().position(|c| c == column)
        {
            return format!("unique_key[{i}]");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if Expr::parse(&rule.expr).is_ok_and(|e| e.columns().iter().any(|c| c == column)) {
                return format!("rules[{i}].expr");
            }
        }
        String::new()
    }
}
