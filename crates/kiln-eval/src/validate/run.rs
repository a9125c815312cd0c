//! The streaming validator: [`Validator::push`] takes the file's chunks in order and carries each check's state
//! across them (counts, the first failing rows, the values seen by `unique`, the last time of each series), so the
//! result does not depend on the chunk size and memory stays bounded by the chunk, apart from what `unique` and
//! `unique_key` must remember. [`Validator::finish`] gives the [`Report`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kiln_domain::{Column, Frame, iso_from_millis};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::expr::{self, Expr};
use super::schema::{ColumnSpec, Order, SchemaError, SchemaSpec, Severity, Span, ValueType, format_number};
use super::whole::WholeMatch;

const MS_PER_DAY: i64 = 86_400_000;

/// How the validator is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateOptions {
    /// the time `freshness` is measured from (UTC milliseconds): now, or a reference the caller gives
    pub reference_ms: i64,
    /// the failing rows kept per check (the first ones, by row)
    pub samples: usize,
}

/// Turns a timestamp cell's text into UTC milliseconds (`None`: not a time); the caller's reader decides the
/// format, so validation parses times exactly as training reads them.
pub trait TimeParse: Send {
    fn parse(&mut self, text: &str) -> Option<i64>;
}

impl<F: FnMut(&str) -> Option<i64> + Send> TimeParse for F {
    fn parse(&mut self, text: &str) -> Option<i64> {
        self(text)
    }
}

/// A cell a reader could not parse as a number (and read as NaN): a `type` failure of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCell<'a> {
    pub column: &'a str,
    /// the data row within the chunk (0-based)
    pub row: usize,
    pub text: &'a str,
}

/// One failing row kept for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// 0-based data row (pandas' default index)
    pub row: u64,
    /// the CSV line it is on (the header is line 1); `None` for a Parquet file, whose rows are numbered from 1
    pub line: Option<u64>,
    /// the values the check looked at, by column
    #[serde(serialize_with = "as_map")]
    pub values: Vec<(String, String)>,
}

impl Sample {
    /// `line 5` for CSV, `row 4` (1-based) for Parquet.
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("line {line}"),
            None => format!("row {}", self.row + 1),
        }
    }
}

fn as_map<S: Serializer>(values: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(values.len()))?;
    for (k, v) in values {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// `type`, `not_null`, `max_null_fraction`, `min`, `max`, `allowed`, `regex`, `unique`, `rows`, `unique_key`,
    /// `time_order`, `max_gap`, `freshness` or `rule`
    pub check: String,
    /// the column (columns joined by `,` for a key; the rule's name for a rule)
    pub column: Option<String>,
    pub severity: Severity,
    pub passed: bool,
    /// the rows that fail it (for `max_null_fraction`: the missing values; `rows` and `freshness` have none)
    pub failing_rows: u64,
    /// what was checked, and for a table check what was found
    pub detail: String,
    /// the first failing rows, by row
    pub samples: Vec<Sample>,
}

/// A validation's outcome: every check, passed or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub rows: u64,
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Failed checks of severity error.
    pub fn errors(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed && c.severity == Severity::Error).count()
    }

    /// Failed checks of severity warning.
    pub fn warnings(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed && c.severity == Severity::Warning).count()
    }

    /// No check of severity error failed.
    pub fn passed(&self) -> bool {
        self.errors() == 0
    }
}

/// The hasher of the validator's maps, whose keys are numbers, times or already 128-bit hashes: one multiply-mix
/// per word (a local file, no adversary to flood the maps).
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for_words(bytes, |w| self.write_u64(w));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = fmix64(self.0 ^ n);
    }
}

/// The hasher of maps keyed by a [`Hash128`]: the key is a hash already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut mix = Mix(self.0);
        mix.write(bytes);
        self.0 = mix.0;
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(7) ^ n;
    }
}

/// `bytes` as little-endian 64-bit words, the last one padded with zeros. The short tail is assembled in a register:
/// copying it into a zeroed word on the stack and loading that word back stalled the load behind the two stores
/// (a sixth of `kiln validate`'s time on a panel keyed by (symbol, date)).
#[inline]
fn for_words(bytes: &[u8], mut f: impl FnMut(u64)) {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        f(u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        f(rest.iter().rev().fold(0u64, |w, &b| (w << 8) | u64::from(b)));
    }
}

/// MurmurHash3's 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A 128-bit hash of a value (or of a key's values, length-prefixed so `("ab", "c")` and `("a", "bc")` differ):
/// what `unique` and `unique_key` remember of a text instead of the text. Two 64-bit lanes with different seeds;
/// two distinct values share a hash with a probability near 2^-128 per pair (about 10^-27 for a billion values).
pub(crate) struct Hash128 {
    a: u64,
    b: u64,
}

impl Hash128 {
    pub(crate) fn new() -> Hash128 {
        Hash128 { a: 0x243f_6a88_85a3_08d3, b: 0x1319_8a2e_0370_7344 }
    }

    fn word(&mut self, w: u64) {
        self.a = fmix64(self.a ^ w).rotate_left(23).wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.b = fmix64(self.b ^ w.rotate_left(32) ^ 0xa409_3822_299f_31d0).rotate_left(41);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64 ^ 0xdead_beef_0000_0000);
        for_words(bytes, |w| self.word(w));
    }

    fn tagged(&mut self, tag: u64, value: u64) {
        self.word(tag);
        self.word(value);
    }

    pub(crate) fn finish(&self) -> u128 {
        (u128::from(fmix64(self.a ^ self.b.rotate_left(17))) << 64) | u128::from(fmix64(self.b ^ self.a))
    }
}

/// The 128-bit hash of one text.
pub(crate) fn hash_text(text: &str) -> u128 {
    let mut h = Hash128::new();
    h.bytes(text.as_bytes());
    h.finish()
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Mix>>;

/// The first failing rows of a check, the lowest row numbers kept (rows may be found out of order: `unique` reports
/// a value's first row when its second appears).
#[derive(Debug, Clone)]
struct Samples {
    keep: usize,
    items: Vec<Sample>,
}

impl Samples {
    fn wants(&self, row: u64) -> bool {
        self.items.len() < self.keep || self.items.last().is_some_and(|s| row < s.row)
    }

    fn offer(&mut self, row: u64, line: Option<u64>, values: impl FnOnce() -> Vec<(String, String)>) {
        if !self.wants(row) {
            return;
        }
        let at = self.items.partition_point(|s| s.row < row);
        self.items.insert(at, Sample { row, line, values: values() });
        self.items.truncate(self.keep);
    }
}

#[derive(Debug, Clone)]
struct Check {
    check: &'static str,
    column: Option<String>,
    severity: Severity,
    detail: String,
    failing: u64,
    samples: Samples,
    /// a table check's verdict, decided at the end
    verdict: Option<bool>,
}

impl Check {
    fn fail(&mut self, row: u64, line: Option<u64>, values: impl FnOnce() -> Vec<(String, String)>) {
        self.failing += 1;
        self.samples.offer(row, line, values);
    }
}

/// The first row a value was seen at (the top bit: that row was already counted as failing) and its CSV line (0:
/// none), in 16 bytes: a map of a million keys is 32 MB of entries.
#[derive(Debug, Clone, Copy)]
struct First {
    row: u64,
    line: u64,
}

const COUNTED: u64 = 1 << 63;

impl First {
    fn new(row: u64, line: Option<u64>) -> First {
        First { row, line: line.unwrap_or(0) }
    }
}

/// The values a uniqueness check has seen: numbers and times exactly, texts and keys as 128-bit hashes
/// ([`Hash128`]), so memory grows by about 40 bytes per distinct value whatever its length.
#[derive(Debug, Default)]
struct Seen {
    numbers: FastMap<u64, First>,
    /// keyed by the two halves of the hash (a `u128` would align the entries to 16 bytes)
    hashes: HashMap<(u64, u64), First, BuildHasherDefault<Prehashed>>,
}

impl Seen {
    /// Records a value seen at `row`; on a repeat, counts the row (and the first one, once) as failing.
    fn see_hash(
        &mut self,
        key: u128,
        row: u64,
        line: Option<u64>,
        check: &mut Check,
        show: &dyn Fn() -> Vec<(String, String)>,
    ) {
        match self.hashes.entry(((key >> 64) as u64, key as u64)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(First::new(row, line));
            }
            std::collections::hash_map::Entry::Occupied(mut first) => repeat(first.get_mut(), row, line, check, show),
        }
    }

    fn see_number(
        &mut self,
        key: u64,
        row: u64,
        line: Option<u64>,
        check: &mut Check,
        show: &dyn Fn() -> Vec<(String, String)>,
    ) {
        match self.numbers.entry(key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(First::new(row, line));
            }
            std::collections::hash_map::Entry::Occupied(mut first) => repeat(first.get_mut(), row, line, check, show),
        }
    }
}

/// What `unique_key` remembers when the key is a panel's series and time columns (a time section with
/// `series_column`, and `unique_key: [series, time]` in either order): per series, the times that came in increasing
/// order, appended to a sorted list without hashing (in a file whose series are in time order, every row), and a map
/// of the others. Keys compare by instant, as pandera compares parsed dates; a row whose time could not be read is
/// compared by its text through [`Seen`], as every key of another shape is.
#[derive(Debug, Default)]
struct SeriesKeys {
    time: String,
    /// by series number ([`SeriesIndex`])
    by_series: Vec<SeriesTimes>,
}

#[derive(Debug, Default)]
struct SeriesTimes {
    /// strictly increasing, with the first row of each ([`First::row`]) and its CSV line (none kept for a file
    /// without lines: 16 bytes a time instead of 24)
    times: Vec<i64>,
    rows: Vec<u64>,
    lines: Vec<u64>,
    /// the times that came after a later one
    others: FastMap<u64, First>,
}

impl SeriesTimes {
    fn see(
        &mut self,
        t: i64,
        row: u64,
        line: Option<u64>,
        check: &mut Check,
        show: &dyn Fn() -> Vec<(String, String)>,
    ) {
        if self.times.last().is_none_or(|&last| t > last) {
            // later than every time in `times`, and so than every one in `others` (each was below the last then)
            self.times.push(t);
            self.rows.push(row);
            if let Some(line) = line {
                self.lines.resize(self.rows.len() - 1, 0);
                self.lines.push(line);
            }
            return;
        }
        match self.times.binary_search(&t) {
            Ok(at) => {
                let mut first = First { row: self.rows[at], line: self.lines.get(at).copied().unwrap_or(0) };
                repeat(&mut first, row, line, check, show);
                self.rows[at] = first.row;
            }
            Err(_) => match self.others.entry(t as u64) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(First::new(row, line));
                }
                std::collections::hash_map::Entry::Occupied(mut first) => {
                    repeat(first.get_mut(), row, line, check, show);
                }
            },
        }
    }
}

/// The series of row `i` as [`SeriesKeys`] keys it (`None`: missing): a text as it is, a number or a time by its bits
/// behind a NUL (a column holds texts or numbers, not both).
fn series_key(column: &Column, i: usize) -> Option<std::borrow::Cow<'_, str>> {
    match column {
        Column::Categorical(v) => v[i].as_deref().map(std::borrow::Cow::Borrowed),
        Column::Numeric(v) if v[i].is_nan() => None,
        Column::Numeric(v) => Some(format!("\0n{}", if v[i] == 0.0 { 0 } else { v[i].to_bits() }).into()),
        Column::Timestamp(v) => Some(format!("\0t{}", v[i]).into()),
    }
}

/// The series of the time section's series column, numbered in the order they are first seen, so that the time checks
/// and the key check keep their state per series in vectors. A panel's rows come in a repeating order of series (by
/// date, then symbol) or a series at a time (by symbol, then date): each series remembers the one that followed it
/// last, and a row whose series is the last row's or its follower's is numbered by comparing its key with that one
/// alone, without hashing it.
#[derive(Debug, Default)]
struct SeriesIndex {
    ids: FastMap<String, usize>,
    /// by number: the key ([`series_key`])
    keys: Vec<String>,
    /// by number: the series of the row after its last row (`None` before any)
    next: Vec<Option<usize>>,
    last: Option<usize>,
    /// the last row's series was found as its predecessor's follower
    followed: bool,
}

impl SeriesIndex {
    fn id(&mut self, key: &str) -> usize {
        if let Some(last) = self.last {
            // the follower first where the last row's series was its predecessor's follower (rows by date, then
            // series), the same series first otherwise (rows by series, then date)
            let next = self.next[last];
            let order = if self.followed { [next, Some(last)] } else { [Some(last), next] };
            if let Some(id) = order.into_iter().flatten().find(|&id| self.keys[id] == key) {
                self.followed = id != last;
                self.last = Some(id);
                return id;
            }
        }
        self.followed = false;
        let id = match self.ids.get(key) {
            Some(&id) => id,
            None => {
                let id = self.keys.len();
                self.ids.insert(key.to_string(), id);
                self.keys.push(key.to_string());
                self.next.push(None);
                id
            }
        };
        if let Some(last) = self.last {
            self.next[last] = Some(id);
        }
        self.last = Some(id);
        id
    }

    /// Each row's series number (`None`: the series is missing).
    fn chunk(&mut self, column: &Column) -> Vec<Option<usize>> {
        (0..column.len()).map(|i| series_key(column, i).map(|key| self.id(&key))).collect()
    }
}

fn repeat(first: &mut First, row: u64, line: Option<u64>, check: &mut Check, show: &dyn Fn() -> Vec<(String, String)>) {
    if first.row & COUNTED == 0 {
        let line = (first.line > 0).then_some(first.line);
        check.fail(first.row, line, show);
        first.row |= COUNTED;
    }
    check.fail(row, line, show);
}

/// One column's checks (indices into the validator's checks) and state.
struct ColumnPlan {
    name: String,
    ty: ValueType,
    type_check: Option<usize>,
    not_null: Option<usize>,
    max_null_fraction: Option<(f64, usize)>,
    min: Option<(f64, usize)>,
    max: Option<(f64, usize)>,
    allowed_numbers: Option<(Vec<f64>, usize)>,
    allowed_texts: Option<(Vec<String>, usize)>,
    regex: Option<(WholeMatch, usize)>,
    unique: Option<(Seen, usize)>,
    nulls: u64,
}

struct RulePlan {
    expr: Expr,
    columns: Vec<String>,
    check: usize,
}

struct TimePlan {
    column: String,
    series: Option<String>,
    order: Order,
    order_check: Option<usize>,
    gap: Option<(Span, usize)>,
    freshness: Option<(Span, usize)>,
    /// by series number ([`SeriesIndex`]): the time of the series' last row (`None` when missing), `None` before it
    last: Vec<Option<Option<i64>>>,
    last_single: Option<Option<i64>>,
    latest: Option<i64>,
}

/// A chunk's values of one column, parsed as its type.
#[derive(Default)]
struct Parsed<'a> {
    missing: Vec<bool>,
    /// non-missing but not of the column's type
    bad: Vec<bool>,
    /// numeric columns (NaN where missing or bad): a numeric column's own values, borrowed
    numbers: std::borrow::Cow<'a, [f64]>,
    /// timestamp columns
    times: Vec<Option<i64>>,
}

/// Validates a file chunk by chunk (see the module documentation).
pub struct Validator {
    checks: Vec<Check>,
    columns: Vec<ColumnPlan>,
    /// columns only rules read (no rules of their own): read as numbers
    rule_only: Vec<String>,
    rules: Vec<RulePlan>,
    time: Option<TimePlan>,
    rows_check: Option<(Option<u64>, Option<u64>, usize)>,
    key: Option<(Vec<String>, Seen, usize)>,
    /// for a key of the time section's series and time columns: what the key check remembers per series
    series_keys: Option<SeriesKeys>,
    /// the time section's series, numbered
    series_index: SeriesIndex,
    parsers: HashMap<String, Box<dyn TimeParse>>,
    reference_ms: i64,
    rows: u64,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").field("checks", &self.checks.len()).field("rows", &self.rows).finish()
    }
}

/// The text of cell `i` as the report shows it.
fn cell_text(column: &Column, i: usize) -> String {
    match column {
        Column::Categorical(v) => v[i].clone().unwrap_or_else(|| "null".into()),
        Column::Numeric(v) if v[i].is_nan() => "null".into(),
        Column::Numeric(v) => format_number(v[i]),
        Column::Timestamp(v) => iso_from_millis(v[i]),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `numpy.busday_count(begin, end)`: the weekdays in `[begin, end)` (negative when `end < begin`), days since the
/// epoch.
pub(crate) fn busday_count(begin: i64, end: i64) -> i64 {
    if end < begin {
        return -busday_count(end, begin);
    }
    // WEEKDAYS[w][r]: the weekdays among r < 7 days from a day of weekday w (0 = Monday)
    const WEEKDAYS: [[i64; 7]; 7] = {
        let mut table = [[0; 7]; 7];
        let mut w = 0;
        while w < 7 {
            let mut r = 1;
            while r < 7 {
                table[w][r] = table[w][r - 1] + if (w + r - 1) % 7 < 5 { 1 } else { 0 };
                r += 1;
            }
            w += 1;
        }
        table
    };
    let days = end - begin;
    // 1970-01-01 was a Thursday
    let weekday = (begin + 3).rem_euclid(7) as usize;
    days / 7 * 5 + WEEKDAYS[weekday][(days % 7) as usize]
}

/// The span from `earlier` to `later` in the unit of `span`.
fn span_between(span: Span, earlier: i64, later: i64) -> i64 {
    match span {
        Span::Millis(_) => later - earlier,
        Span::BusinessDays(_) => busday_count(earlier.div_euclid(MS_PER_DAY), later.div_euclid(MS_PER_DAY)),
    }
}

/// The span from `earlier` to `later` is longer than `span` allows. The weekdays between two days are at most
/// the days between them, so a step of no more calendar days than the limit is within it without counting them.
fn span_exceeds(span: Span, earlier: i64, later: i64) -> bool {
    match span {
        Span::Millis(ms) => later - earlier > ms,
        Span::BusinessDays(n) => {
            let (from, to) = (earlier.div_euclid(MS_PER_DAY), later.div_euclid(MS_PER_DAY));
            to - from > n && busday_count(from, to) > n
        }
    }
}

fn span_limit(span: Span) -> i64 {
    match span {
        Span::Millis(ms) => ms,
        Span::BusinessDays(n) => n,
    }
}

impl Validator {
    /// A validator of `spec` for a file with the columns `header`; `time_parser` makes one parser per timestamp
    /// column.
    ///
    /// # Errors
    /// A [`SchemaError`] from [`SchemaSpec::check`], or naming the key of a column that is not in `header`.
    pub fn new(
        spec: &SchemaSpec,
        header: &[String],
        options: ValidateOptions,
        time_parser: &dyn Fn() -> Box<dyn TimeParse>,
    ) -> Result<Validator, SchemaError> {
        spec.check()?;
        for column in spec.columns_read() {
            if !header.contains(&column) {
                let shown: Vec<&str> = header.iter().take(30).map(String::as_str).collect();
                let more = if header.len() > 30 { format!(" and {} more", header.len() - 30) } else { String::new() };
                return Err(SchemaError::new(
                    spec.path_naming(&column),
                    format!("column '{column}' is not in the file (its columns: {}{more})", shown.join(", ")),
                ));
            }
        }
        let mut v = Validator {
            checks: Vec::new(),
            columns: Vec::new(),
            rule_only: Vec::new(),
            rules: Vec::new(),
            time: None,
            rows_check: None,
            key: None,
            series_keys: None,
            series_index: SeriesIndex::default(),
            parsers: HashMap::new(),
            reference_ms: options.reference_ms,
            rows: 0,
        };
        let keep = options.samples;
        let add = |checks: &mut Vec<Check>, check: &'static str, column: Option<String>, severity, detail: String| {
            checks.push(Check {
                check,
                column,
                severity,
                detail,
                failing: 0,
                samples: Samples { keep, items: Vec::new() },
                verdict: None,
            });
            checks.len() - 1
        };
        let time_default = spec.time.as_ref().and_then(|t| t.severity).unwrap_or_default();
        let mut column_specs: Vec<(String, ColumnSpec, Severity)> =
            spec.columns.0.iter().map(|(n, c)| (n.clone(), c.clone(), c.severity.unwrap_or_default())).collect();
        if let Some(time) = &spec.time
            && spec.column(&time.column).is_none()
        {
            // the time column is a timestamp column, checked with the time section's severity
            let implied =
                ColumnSpec { kind: Some(super::schema::Sev::plain(ValueType::Timestamp)), ..ColumnSpec::default() };
            column_specs.insert(0, (time.column.clone(), implied, time_default));
        }
        for (name, col, default) in &column_specs {
            let ty = col.value_type();
            let some = Some(name.clone());
            let type_check = Some(add(
                &mut v.checks,
                "type",
                some.clone(),
                col.kind.as_ref().map_or(*default, |k| k.severity_or(*default)),
                ty.as_str().to_string(),
            ));
            let not_null = match &col.nullable {
                Some(n) if !n.value => Some(add(
                    &mut v.checks,
                    "not_null",
                    some.clone(),
                    n.severity_or(*default),
                    "no missing value".into(),
                )),
                _ => None,
            };
            let max_null_fraction = col.max_null_fraction.as_ref().map(|f| {
                (
                    f.value,
                    add(
                        &mut v.checks,
                        "max_null_fraction",
                        some.clone(),
                        f.severity_or(*default),
                        format!("at most {} missing", f.value),
                    ),
                )
            });
            let min = col.min.as_ref().map(|m| {
                (
                    m.value,
                    add(
                        &mut v.checks,
                        "min",
                        some.clone(),
                        m.severity_or(*default),
                        format!(">= {}", format_number(m.value)),
                    ),
                )
            });
            let max = col.max.as_ref().map(|m| {
                (
                    m.value,
                    add(
                        &mut v.checks,
                        "max",
                        some.clone(),
                        m.severity_or(*default),
                        format!("<= {}", format_number(m.value)),
                    ),
                )
            });
            let (mut allowed_numbers, mut allowed_texts) = (None, None);
            if let Some(a) = &col.allowed {
                let texts: Vec<String> = a.value.iter().map(super::schema::Scalar::text).collect();
                let detail = format!("one of {}", texts.join(", "));
                let idx = add(&mut v.checks, "allowed", some.clone(), a.severity_or(*default), detail);
                if ty.is_numeric() {
                    let numbers = a.value.iter().filter_map(|s| match s {
                        super::schema::Scalar::Number(x) => Some(*x),
                        _ => None,
                    });
                    allowed_numbers = Some((numbers.collect(), idx));
                } else {
                    allowed_texts = Some((texts, idx));
                }
            }
            let regex = match &col.regex {
                Some(r) => {
                    let re = WholeMatch::new(&r.value).map_err(|e| {
                        SchemaError::new(format!("columns.{name}.regex"), format!("invalid regex: {e}"))
                    })?;
                    Some((
                        re,
                        add(
                            &mut v.checks,
                            "regex",
                            some.clone(),
                            r.severity_or(*default),
                            format!("matches {}", r.value),
                        ),
                    ))
                }
                None => None,
            };
            let unique = match &col.unique {
                Some(u) if u.value => Some((
                    Seen::default(),
                    add(&mut v.checks, "unique", some.clone(), u.severity_or(*default), "no value twice".into()),
                )),
                _ => None,
            };
            if ty == ValueType::Timestamp {
                v.parsers.insert(name.clone(), time_parser());
            }
            v.columns.push(ColumnPlan {
                name: name.clone(),
                ty,
                type_check,
                not_null,
                max_null_fraction,
                min,
                max,
                allowed_numbers,
                allowed_texts,
                regex,
                unique,
                nulls: 0,
            });
        }
        if let Some(rows) = &spec.rows {
            let detail = match (rows.value.min, rows.value.max) {
                (Some(lo), Some(hi)) => format!("between {lo} and {hi} rows"),
                (Some(lo), None) => format!("at least {lo} row{}", if lo == 1 { "" } else { "s" }),
                (None, Some(hi)) => format!("at most {hi} row{}", if hi == 1 { "" } else { "s" }),
                (None, None) => "any number of rows".into(),
            };
            let idx = add(&mut v.checks, "rows", None, rows.severity_or(Severity::Error), detail);
            v.rows_check = Some((rows.value.min, rows.value.max, idx));
        }
        if let Some(key) = &spec.unique_key {
            let idx = add(
                &mut v.checks,
                "unique_key",
                Some(key.value.join(",")),
                key.severity_or(Severity::Error),
                "no key twice".into(),
            );
            v.key = Some((key.value.clone(), Seen::default(), idx));
        }
        if let Some(time) = &spec.time {
            let order = time.order.as_ref().map_or(Order::Increasing, |o| o.value);
            let per = time.series_column.as_ref().map_or(String::new(), |s| format!(" per {s}"));
            let order_check = match order {
                Order::Any => None,
                Order::Increasing | Order::Decreasing => {
                    let sev = time.order.as_ref().map_or(time_default, |o| o.severity_or(time_default));
                    let word = if order == Order::Increasing { "increasing" } else { "decreasing" };
                    Some(add(
                        &mut v.checks,
                        "time_order",
                        Some(time.column.clone()),
                        sev,
                        format!("strictly {word}{per}"),
                    ))
                }
            };
            let gap = time.max_gap.as_ref().map(|g| {
                let detail = format!("steps of at most {}{per}", g.value.text());
                (g.value, add(&mut v.checks, "max_gap", Some(time.column.clone()), g.severity_or(time_default), detail))
            });
            let freshness = time.freshness.as_ref().map(|f| {
                let detail =
                    format!("latest time at most {} before {}", f.value.text(), iso_from_millis(v.reference_ms));
                (
                    f.value,
                    add(&mut v.checks, "freshness", Some(time.column.clone()), f.severity_or(time_default), detail),
                )
            });
            v.time = Some(TimePlan {
                column: time.column.clone(),
                series: time.series_column.clone(),
                order,
                order_check,
                gap,
                freshness,
                last: Vec::new(),
                last_single: None,
                latest: None,
            });
        }
        if let (Some((key, _, _)), Some(time)) = (&v.key, &v.time)
            && let Some(series) = &time.series
            && key.len() == 2
            && key.contains(series)
            && key.contains(&time.column)
            && series != &time.column
        {
            v.series_keys = Some(SeriesKeys { time: time.column.clone(), ..SeriesKeys::default() });
        }
        for rule in &spec.rules {
            let expr = Expr::parse(&rule.expr).map_err(|e| SchemaError::new("rules", e.to_string()))?;
            let columns = expr.columns();
            for c in &columns {
                if !v.columns.iter().any(|p| p.name == *c) && !v.rule_only.contains(c) {
                    v.rule_only.push(c.clone());
                }
            }
            let check = add(&mut v.checks, "rule", Some(rule.label()), rule.severity, rule.expr.clone());
            v.rules.push(RulePlan { expr, columns, check });
        }
        Ok(v)
    }

    /// The columns to read, each once.
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        for c in &self.rule_only {
            out.push(c.clone());
        }
        if let Some(t) = &self.time
            && let Some(s) = &t.series
            && !out.contains(s)
        {
            out.push(s.clone());
        }
        if let Some((key, _, _)) = &self.key {
            for c in key {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// The columns a reader may parse as numbers itself, handing over the cells that are not numbers as
    /// [`BadCell`]s ([`Validator::push_read`]): the number and integer columns and those only rules read.
    pub fn numeric_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.iter().filter(|c| c.ty.is_numeric()).map(|c| c.name.clone()).collect();
        out.extend(self.rule_only.iter().cloned());
        out
    }

    /// Checks the next chunk of rows (`lines`: their CSV lines; `None` for Parquet).
    ///
    /// # Errors
    /// A [`SchemaError`] when a column the checks read is not in the chunk.
    pub fn push(&mut self, chunk: &Frame, lines: Option<&[u64]>) -> Result<(), SchemaError> {
        self.push_read(chunk, lines, &[])
    }

    /// [`Validator::push`] for a chunk whose [`Validator::numeric_columns`] a reader parsed as numbers, with NaN
    /// for the cells in `bad` (which fail `type`, showing their text).
    ///
    /// # Errors
    /// A [`SchemaError`] when a column the checks read is not in the chunk.
    pub fn push_read(&mut self, chunk: &Frame, lines: Option<&[u64]>, bad: &[BadCell<'_>]) -> Result<(), SchemaError> {
        let n = chunk.n_rows();
        let first = self.rows;
        let line = |i: usize| lines.map(|l| l.get(i).copied().unwrap_or(0));
        let get = |name: &str| {
            chunk.column(name).map_err(|_| SchemaError::new("", format!("column '{name}' is missing from a chunk")))
        };
        let mut parsed: HashMap<String, Parsed<'_>> = HashMap::new();
        for plan in &mut self.columns {
            let column = get(&plan.name)?;
            let parser = self.parsers.get_mut(&plan.name);
            let unparsed: Vec<(usize, &str)> =
                bad.iter().filter(|b| b.column == plan.name && b.row < n).map(|b| (b.row, b.text)).collect();
            let mut p = parse_column(column, plan.ty, parser);
            mark_unparsed(&mut p, &unparsed);
            check_column(plan, column, &p, &unparsed, &mut self.checks, first, &line);
            parsed.insert(plan.name.clone(), p);
        }
        for name in &self.rule_only {
            let column = get(name)?;
            let unparsed: Vec<(usize, &str)> =
                bad.iter().filter(|b| b.column == *name && b.row < n).map(|b| (b.row, b.text)).collect();
            let mut p = parse_column(column, ValueType::Number, None);
            mark_unparsed(&mut p, &unparsed);
            parsed.insert(name.clone(), p);
        }
        // the time section's series: each row's series number, for the key check and the time checks
        let series = match self.time.as_ref().and_then(|t| t.series.as_ref()) {
            Some(name) => {
                let column = get(name)?;
                Some((column, self.series_index.chunk(column)))
            }
            None => None,
        };
        if let Some((key, seen, idx)) = &mut self.key {
            let cols: Vec<&Column> = key.iter().map(|c| get(c)).collect::<Result<_, _>>()?;
            let check = &mut self.checks[*idx];
            // a panel's (series, time): rows whose time was read are checked per series, the others hashed below
            let by_series = match (&mut self.series_keys, &series) {
                (Some(keys), Some((_, ids))) => Some((ids, &parsed[&keys.time], keys)),
                _ => None,
            };
            let mut hashed: Vec<bool> = vec![true; n];
            if let Some((ids, p, keys)) = by_series {
                for (i, hashed) in hashed.iter_mut().enumerate() {
                    let (Some(t), Some(id)) = (p.times[i], ids[i]) else { continue };
                    *hashed = false;
                    let show = || key.iter().zip(&cols).map(|(c, col)| (c.clone(), cell_text(col, i))).collect();
                    if id >= keys.by_series.len() {
                        keys.by_series.resize_with(id + 1, SeriesTimes::default);
                    }
                    keys.by_series[id].see(t, first + i as u64, line(i), check, &show);
                }
            }
            'rows: for i in (0..n).filter(|&i| hashed[i]) {
                let mut h = Hash128::new();
                for col in &cols {
                    match col {
                        Column::Categorical(v) => match &v[i] {
                            Some(text) => h.bytes(text.as_bytes()),
                            None => continue 'rows,
                        },
                        Column::Numeric(v) if v[i].is_nan() => continue 'rows,
                        Column::Numeric(v) => h.tagged(1, if v[i] == 0.0 { 0 } else { v[i].to_bits() }),
                        Column::Timestamp(v) => h.tagged(2, v[i] as u64),
                    }
                }
                let show = || key.iter().zip(&cols).map(|(c, col)| (c.clone(), cell_text(col, i))).collect();
                seen.see_hash(h.finish(), first + i as u64, line(i), check, &show);
            }
        }
        if let Some(time) = &mut self.time {
            let times = &parsed[&time.column].times;
            let series = series.as_ref().map(|(column, ids)| (*column, ids.as_slice()));
            check_time(time, times, series, &mut self.checks, first, &line);
        }
        for rule in &self.rules {
            let cols = ChunkNumbers(&parsed);
            let verdicts = rule.expr.verdicts(n, &cols);
            let check = &mut self.checks[rule.check];
            for (i, &v) in verdicts.iter().enumerate() {
                if v == expr::FALSE {
                    check.fail(first + i as u64, line(i), || {
                        rule.columns
                            .iter()
                            .map(|c| {
                                let shown = chunk.column(c).map_or_else(|_| "?".into(), |col| cell_text(col, i));
                                (c.clone(), shown)
                            })
                            .collect()
                    });
                }
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    /// The report, with the table checks (row count, null fractions, freshness) decided.
    pub fn finish(mut self) -> Report {
        let rows = self.rows;
        for plan in &self.columns {
            if let Some((limit, idx)) = plan.max_null_fraction {
                let check = &mut self.checks[idx];
                let fraction = if rows == 0 { 0.0 } else { plan.nulls as f64 / rows as f64 };
                check.verdict = Some(fraction <= limit);
                check.detail = format!("at most {limit} missing; {} of {rows} ({:.4})", plan.nulls, fraction);
                if fraction <= limit {
                    // within the limit, no row fails: the missing values are counted in the detail only
                    check.failing = 0;
                    check.samples.items.clear();
                }
            }
        }
        if let Some((lo, hi, idx)) = self.rows_check {
            let ok = lo.is_none_or(|lo| rows >= lo) && hi.is_none_or(|hi| rows <= hi);
            let check = &mut self.checks[idx];
            check.verdict = Some(ok);
            check.detail = format!("{}; the file has {rows}", check.detail);
        }
        if let Some(time) = &self.time
            && let Some((span, idx)) = time.freshness
        {
            let check = &mut self.checks[idx];
            match time.latest {
                Some(latest) => {
                    let age = span_between(span, latest, self.reference_ms);
                    check.verdict = Some(age <= span_limit(span));
                    check.detail = format!("{}; the latest is {}", check.detail, iso_from_millis(latest));
                }
                None => {
                    check.verdict = Some(false);
                    check.detail = format!("{}; the file has no time", check.detail);
                }
            }
        }
        let checks = self
            .checks
            .into_iter()
            .map(|c| CheckResult {
                passed: c.verdict.unwrap_or(c.failing == 0),
                check: c.check.to_string(),
                column: c.column,
                severity: c.severity,
                failing_rows: c.failing,
                detail: c.detail,
                samples: c.samples.items,
            })
            .collect();
        Report { rows, checks }
    }
}

struct ChunkNumbers<'a>(&'a HashMap<String, Parsed<'a>>);

impl expr::Columns for ChunkNumbers<'_> {
    fn values(&self, column: &str) -> &[f64] {
        self.0.get(column).map_or(&[], |p| p.numbers.as_ref())
    }

    fn missing(&self, column: &str) -> &[bool] {
        self.0.get(column).map_or(&[], |p| p.missing.as_slice())
    }
}

/// A chunk's cells of one column as its type.
fn parse_column<'a>(column: &'a Column, ty: ValueType, parser: Option<&mut Box<dyn TimeParse>>) -> Parsed<'a> {
    let n = column.len();
    let mut p = Parsed { missing: vec![false; n], bad: vec![false; n], ..Parsed::default() };
    match (ty, column) {
        (ValueType::Number | ValueType::Integer, Column::Numeric(v)) => {
            p.numbers = std::borrow::Cow::Borrowed(v);
            for (i, x) in v.iter().enumerate() {
                p.missing[i] = x.is_nan();
            }
        }
        (ValueType::Number | ValueType::Integer, Column::Categorical(v)) => {
            p.numbers = v
                .iter()
                .enumerate()
                .map(|(i, cell)| match cell {
                    None => {
                        p.missing[i] = true;
                        f64::NAN
                    }
                    Some(text) => match text.parse::<f64>() {
                        Ok(x) if !x.is_nan() => x,
                        _ => {
                            p.bad[i] = true;
                            f64::NAN
                        }
                    },
                })
                .collect::<Vec<f64>>()
                .into();
        }
        (ValueType::Number | ValueType::Integer, Column::Timestamp(_)) => {
            p.numbers = vec![f64::NAN; n].into();
            p.bad = vec![true; n];
        }
        (ValueType::Timestamp, Column::Timestamp(v)) => p.times = v.iter().map(|&t| Some(t)).collect(),
        (ValueType::Timestamp, Column::Categorical(v)) => {
            p.times = match parser {
                Some(parser) => v
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| match cell {
                        None => {
                            p.missing[i] = true;
                            None
                        }
                        Some(text) => {
                            let t = parser.parse(text);
                            p.bad[i] = t.is_none();
                            t
                        }
                    })
                    .collect(),
                None => vec![None; n],
            };
        }
        (ValueType::Timestamp, Column::Numeric(v)) => {
            p.times = vec![None; n];
            for (i, x) in v.iter().enumerate() {
                p.missing[i] = x.is_nan();
                p.bad[i] = !x.is_nan();
            }
        }
        (ValueType::Bool, Column::Categorical(v)) => {
            for (i, cell) in v.iter().enumerate() {
                match cell {
                    None => p.missing[i] = true,
                    Some(text) => p.bad[i] = parse_bool(text).is_none(),
                }
            }
        }
        (ValueType::Bool, Column::Numeric(v)) => {
            for (i, x) in v.iter().enumerate() {
                p.missing[i] = x.is_nan();
                p.bad[i] = !x.is_nan() && *x != 0.0 && *x != 1.0;
            }
        }
        (ValueType::Bool, Column::Timestamp(_)) => p.bad = vec![true; n],
        (ValueType::String, Column::Categorical(v)) => {
            for (i, cell) in v.iter().enumerate() {
                p.missing[i] = cell.is_none();
            }
        }
        (ValueType::String, Column::Numeric(v)) => {
            for (i, x) in v.iter().enumerate() {
                p.missing[i] = x.is_nan();
            }
        }
        (ValueType::String, Column::Timestamp(_)) => {}
    }
    if ty == ValueType::Integer && p.numbers.iter().any(|x| x.is_finite() && x.fract() != 0.0) {
        for (i, x) in p.numbers.to_mut().iter_mut().enumerate() {
            if x.is_finite() && x.fract() != 0.0 {
                p.bad[i] = true;
                *x = f64::NAN;
            }
        }
    }
    p
}

/// Cells a reader read as NaN because they are not numbers: present, of the wrong type.
fn mark_unparsed(p: &mut Parsed<'_>, unparsed: &[(usize, &str)]) {
    for &(row, _) in unparsed {
        p.missing[row] = false;
        p.bad[row] = true;
    }
}

/// The column's own checks over one chunk (`unparsed`: the rows a reader could not parse, with their text), one
/// pass per check: each check meets its failing rows in row order, and a pass over numbers that all pass is a
/// plain comparison loop.
fn check_column(
    plan: &mut ColumnPlan,
    column: &Column,
    p: &Parsed<'_>,
    unparsed: &[(usize, &str)],
    checks: &mut [Check],
    first: u64,
    line: &dyn Fn(usize) -> Option<u64>,
) {
    let name = plan.name.as_str();
    let show = |i: usize| {
        let text = match unparsed.iter().find(|(row, _)| *row == i) {
            Some((_, text)) => (*text).to_string(),
            None => cell_text(column, i),
        };
        vec![(name.to_string(), text)]
    };
    let fail = |checks: &mut [Check], idx: usize, i: usize| checks[idx].fail(first + i as u64, line(i), || show(i));
    let nulls = p.missing.iter().filter(|&&m| m).count();
    plan.nulls += nulls as u64;
    if nulls > 0 {
        for i in (0..p.missing.len()).filter(|&i| p.missing[i]) {
            if let Some(idx) = plan.not_null {
                fail(checks, idx, i);
            }
            if let Some((_, idx)) = plan.max_null_fraction {
                fail(checks, idx, i);
            }
        }
    }
    // a row is checked further when present and of the column's type
    let checked = |i: usize| !p.missing[i] && !p.bad[i];
    let any_bad = p.bad.contains(&true);
    if any_bad && let Some(idx) = plan.type_check {
        for i in (0..p.bad.len()).filter(|&i| !p.missing[i] && p.bad[i]) {
            fail(checks, idx, i);
        }
    }
    if plan.ty.is_numeric() {
        // a missing or bad number is NaN in `numbers`, which compares false; `checked` is asked of the others only
        let x = &p.numbers;
        if let Some((lo, idx)) = plan.min {
            for i in (0..x.len()).filter(|&i| x[i] < lo && checked(i)) {
                fail(checks, idx, i);
            }
        }
        if let Some((hi, idx)) = plan.max {
            for i in (0..x.len()).filter(|&i| x[i] > hi && checked(i)) {
                fail(checks, idx, i);
            }
        }
        if let Some((allowed, idx)) = &plan.allowed_numbers {
            for i in (0..x.len()).filter(|&i| checked(i) && !allowed.contains(&x[i])) {
                fail(checks, *idx, i);
            }
        }
        if let Some((seen, idx)) = &mut plan.unique {
            for i in (0..x.len()).filter(|&i| checked(i)) {
                let bits = if x[i] == 0.0 { 0 } else { x[i].to_bits() };
                seen.see_number(bits, first + i as u64, line(i), &mut checks[*idx], &|| show(i));
            }
        }
        return;
    }
    if plan.ty == ValueType::Timestamp {
        if let Some((seen, idx)) = &mut plan.unique {
            for i in (0..p.times.len()).filter(|&i| checked(i)) {
                if let Some(t) = p.times[i] {
                    seen.see_number(t as u64, first + i as u64, line(i), &mut checks[*idx], &|| show(i));
                }
            }
        }
        return;
    }
    if plan.allowed_texts.is_none() && plan.regex.is_none() && plan.unique.is_none() {
        return;
    }
    let text_of = |i: usize| -> Option<std::borrow::Cow<'_, str>> {
        match column {
            Column::Categorical(v) => v[i].as_deref().map(std::borrow::Cow::Borrowed),
            Column::Numeric(v) if v[i].is_nan() => None,
            other => Some(std::borrow::Cow::Owned(cell_text(other, i))),
        }
    };
    for i in (0..column.len()).filter(|&i| checked(i)) {
        let Some(text) = text_of(i) else { continue };
        if let Some((allowed, idx)) = &plan.allowed_texts
            && !allowed.iter().any(|a| a == text.as_ref())
        {
            fail(checks, *idx, i);
        }
        if let Some((re, idx)) = &plan.regex
            && !re.is_match(&text)
        {
            fail(checks, *idx, i);
        }
        if let Some((seen, idx)) = &mut plan.unique {
            seen.see_hash(hash_text(&text), first + i as u64, line(i), &mut checks[*idx], &|| show(i));
        }
    }
}

/// The time checks over one chunk: order and gap against the previous row of the same series (as pandas'
/// `groupby(series)[time].diff()`: a row after a missing time is not compared), the latest time for freshness.
fn check_time(
    time: &mut TimePlan,
    times: &[Option<i64>],
    series: Option<(&Column, &[Option<usize>])>,
    checks: &mut [Check],
    first: u64,
    line: &dyn Fn(usize) -> Option<u64>,
) {
    let column = time.column.clone();
    let series_name = time.series.clone();
    for (i, &t) in times.iter().enumerate() {
        if let Some(t) = t {
            time.latest = Some(time.latest.map_or(t, |l| l.max(t)));
        }
        let prev = match series {
            // a row without a series is compared with none, as pandas' `groupby` drops a missing key
            Some((_, ids)) => {
                let Some(id) = ids[i] else { continue };
                if id >= time.last.len() {
                    time.last.resize(id + 1, None);
                }
                time.last[id].replace(t).flatten()
            }
            None => time.last_single.replace(t).flatten(),
        };
        let (Some(prev), Some(t)) = (prev, t) else { continue };
        let row = first + i as u64;
        let show = || {
            let mut values = Vec::with_capacity(3);
            if let (Some(name), Some((column, _))) = (&series_name, series) {
                values.push((name.clone(), cell_text(column, i)));
            }
            values.push((column.clone(), iso_from_millis(t)));
            values.push(("previous".to_string(), iso_from_millis(prev)));
            values
        };
        if let Some(idx) = time.order_check {
            let wrong = match time.order {
                Order::Increasing => t <= prev,
                Order::Decreasing => t >= prev,
                Order::Any => false,
            };
            if wrong {
                checks[idx].fail(row, line(i), show);
            }
        }
        if let Some((span, idx)) = time.gap {
            let (from, to) = match time.order {
                Order::Increasing => (prev, t),
                Order::Decreasing => (t, prev),
                Order::Any => (prev.min(t), prev.max(t)),
            };
            if span_exceeds(span, from, to) {
                checks[idx].fail(row, line(i), show);
            }
        }
    }
}

#[cfg(test)]
mod series_index_tests {
    use super::{Column, SeriesIndex};

    /// The numbers [`SeriesIndex`] gives, against numbering each key in the order first seen.
    fn check(keys: &[Option<&str>], chunk: usize) {
        let mut expected: Vec<String> = Vec::new();
        let want: Vec<Option<usize>> = keys
            .iter()
            .map(|k| {
                k.map(|k| match expected.iter().position(|e| e == k) {
                    Some(at) => at,
                    None => {
                        expected.push(k.to_string());
                        expected.len() - 1
                    }
                })
            })
            .collect();
        let mut index = SeriesIndex::default();
        let mut got = Vec::new();
        for part in keys.chunks(chunk) {
            let column = Column::Categorical(part.iter().map(|k| k.map(str::to_string)).collect());
            got.extend(index.chunk(&column));
        }
        assert_eq!(got, want, "chunks of {chunk}");
    }

    #[test]
    fn series_are_numbered_in_the_order_first_seen_whatever_the_rows_order() {
        let names = ["AAPL", "MSFT", "NVDA", "TSLA"];
        // by date then symbol, with a symbol missing on some dates and a new one joining
        let mut by_date = Vec::new();
        for day in 0..30 {
            for (s, name) in names.iter().enumerate() {
                if (day + s) % 7 != 0 {
                    by_date.push(Some(*name));
                }
            }
            if day > 20 {
                by_date.push(Some("AMZN"));
            }
            if day % 5 == 0 {
                by_date.push(None);
            }
        }
        // by symbol then date
        let by_symbol: Vec<Option<&str>> = names.iter().flat_map(|n| std::iter::repeat_n(Some(*n), 25)).collect();
        // no order at all
        let mut state = 7u64;
        let shuffled: Vec<Option<&str>> = (0..500)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let k = (state >> 33) as usize % 6;
                names.get(k).copied()
            })
            .collect();
        for keys in [&by_date, &by_symbol, &shuffled] {
            for chunk in [1, 3, 64, 1000] {
                check(keys, chunk);
            }
        }
    }
}
