//! Drafting a schema from a file known to be good ([`SchemaDraft`]): each column's type, whether it has missing
//! values (and their share), its range, its values when they are few, uniqueness where it holds; the time column's
//! order and its largest step (in business days for a weekday series of dates). What it drafts passes on the file it
//! was drafted from; the user then tightens or loosens it.

use std::collections::HashSet;

use kiln_domain::{Column, Frame};

use super::run::{TimeParse, busday_count, hash_text};
use super::schema::{ColumnSpec, Columns, Order, RowsSpec, Scalar, SchemaSpec, Sev, Span, TimeSpec, ValueType};

const MS_PER_DAY: i64 = 86_400_000;

/// What the draft may assume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InferOptions {
    /// the time column (default: the first column whose every value is a time)
    pub time_column: Option<String>,
    /// a panel's series column: order and gaps are drafted per series
    pub series_column: Option<String>,
    /// a string or integer column with at most this many distinct values (and each seen at least twice on average)
    /// gets `allowed` (default 20 when 0)
    pub max_allowed: usize,
}

struct ColumnStats {
    name: String,
    rows: u64,
    nulls: u64,
    numbers: bool,
    integers: bool,
    min: f64,
    max: f64,
    /// `None` once a value is not a time
    times: Option<Vec<Option<i64>>>,
    parser: Option<Box<dyn TimeParse>>,
    tried_time: bool,
    bools: bool,
    /// the distinct values, while there are at most `max_allowed`
    few: Option<Vec<String>>,
    /// the 128-bit hashes of every value seen, while none repeats (and the column may still be drafted `unique`:
    /// not a column of fractional numbers)
    all: Option<HashSet<u128>>,
}

/// A schema being drafted chunk by chunk.
pub struct SchemaDraft {
    columns: Vec<ColumnStats>,
    options: InferOptions,
    make_parser: Box<dyn Fn() -> Box<dyn TimeParse>>,
    rows: u64,
    /// the time column's index, once known
    time: Option<TimeStats>,
}

impl std::fmt::Debug for SchemaDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaDraft").field("rows", &self.rows).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct TimeStats {
    last: std::collections::HashMap<String, i64>,
    increasing: bool,
    decreasing: bool,
    max_step_ms: i64,
    max_step_days: i64,
    dates_on_weekdays: bool,
    steps: u64,
}

impl SchemaDraft {
    /// A draft for a file with the columns `header`.
    pub fn new(
        header: &[String],
        options: InferOptions,
        make_parser: Box<dyn Fn() -> Box<dyn TimeParse>>,
    ) -> SchemaDraft {
        let columns = header
            .iter()
            .map(|name| ColumnStats {
                name: name.clone(),
                rows: 0,
                nulls: 0,
                numbers: true,
                integers: true,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                times: None,
                parser: None,
                tried_time: false,
                bools: true,
                few: Some(Vec::new()),
                all: Some(HashSet::new()),
            })
            .collect();
        let options =
            InferOptions { max_allowed: if options.max_allowed == 0 { 20 } else { options.max_allowed }, ..options };
        SchemaDraft { columns, options, make_parser, rows: 0, time: None }
    }

    /// Takes the next chunk (every column of the header, in file order).
    pub fn push(&mut self, chunk: &Frame) {
        let max_allowed = self.options.max_allowed;
        for stats in &mut self.columns {
            let Ok(column) = chunk.column(&stats.name) else { continue };
            let mut chunk_times: Vec<Option<i64>> = Vec::new();
            for i in 0..column.len() {
                stats.rows += 1;
                let text: String = match column {
                    Column::Categorical(v) => match &v[i] {
                        None => {
                            stats.nulls += 1;
                            chunk_times.push(None);
                            continue;
                        }
                        Some(t) => t.clone(),
                    },
                    Column::Numeric(v) if v[i].is_nan() => {
                        stats.nulls += 1;
                        chunk_times.push(None);
                        continue;
                    }
                    Column::Numeric(v) => super::schema::format_number(v[i]),
                    Column::Timestamp(v) => {
                        chunk_times.push(Some(v[i]));
                        stats.numbers = false;
                        stats.bools = false;
                        if !stats.tried_time {
                            stats.tried_time = true;
                            stats.times = Some(Vec::new());
                        }
                        observe_text(stats, v[i].to_string(), max_allowed);
                        continue;
                    }
                };
                let number = match column {
                    Column::Numeric(v) => Some(v[i]),
                    _ => text.parse::<f64>().ok().filter(|x| x.is_finite()),
                };
                match number {
                    Some(x) => {
                        stats.min = stats.min.min(x);
                        stats.max = stats.max.max(x);
                        stats.integers &= x.fract() == 0.0;
                    }
                    None => {
                        stats.numbers = false;
                        stats.integers = false;
                    }
                }
                if stats.numbers && !stats.integers {
                    // a number column is drafted `unique` only when it holds integers
                    stats.all = None;
                }
                stats.bools &= matches!(text.to_ascii_lowercase().as_str(), "true" | "false");
                if !stats.tried_time {
                    stats.tried_time = true;
                    let b = text.as_bytes();
                    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
                        stats.parser = Some((self.make_parser)());
                        stats.times = Some(Vec::new());
                    }
                }
                let t = match (&mut stats.parser, &stats.times) {
                    (Some(parser), Some(_)) => parser.parse(&text),
                    _ => None,
                };
                if t.is_none() {
                    stats.times = None;
                    stats.parser = None;
                }
                chunk_times.push(t);
                observe_text(stats, text, max_allowed);
            }
            if stats.times.is_some() {
                stats.times = Some(chunk_times);
            }
        }
        self.observe_time(chunk);
        self.rows += chunk.n_rows() as u64;
    }

    fn time_column(&self) -> Option<usize> {
        match &self.options.time_column {
            Some(name) => self.columns.iter().position(|c| c.name == *name),
            None => self.columns.iter().position(|c| c.times.is_some() && c.rows > c.nulls),
        }
    }

    fn observe_time(&mut self, chunk: &Frame) {
        let Some(idx) = self.time_column() else { return };
        let Some(times) = self.columns[idx].times.clone() else {
            self.time = None;
            return;
        };
        let series = self.options.series_column.as_ref().and_then(|s| chunk.column(s).ok());
        let stats = self.time.get_or_insert_with(|| TimeStats {
            increasing: true,
            decreasing: true,
            dates_on_weekdays: true,
            ..TimeStats::default()
        });
        for (i, t) in times.iter().enumerate() {
            let Some(t) = *t else { continue };
            let day = t.div_euclid(MS_PER_DAY);
            stats.dates_on_weekdays &= t.rem_euclid(MS_PER_DAY) == 0 && (day + 3).rem_euclid(7) < 5;
            let key = match series {
                Some(Column::Categorical(v)) => v[i].clone().unwrap_or_default(),
                Some(Column::Numeric(v)) => v[i].to_string(),
                _ => String::new(),
            };
            if let Some(prev) = stats.last.insert(key, t) {
                stats.steps += 1;
                stats.increasing &= t > prev;
                stats.decreasing &= t < prev;
                let (a, b) = (prev.min(t), prev.max(t));
                stats.max_step_ms = stats.max_step_ms.max(b - a);
                stats.max_step_days =
                    stats.max_step_days.max(busday_count(a.div_euclid(MS_PER_DAY), b.div_euclid(MS_PER_DAY)));
            }
        }
    }

    /// The drafted schema.
    pub fn finish(self) -> SchemaSpec {
        let time_idx = self.time_column();
        let mut columns = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            let seen = c.rows - c.nulls;
            let ty = if seen == 0 {
                ValueType::String
            } else if c.times.is_some() {
                ValueType::Timestamp
            } else if c.numbers && c.integers {
                ValueType::Integer
            } else if c.numbers {
                ValueType::Number
            } else if c.bools {
                ValueType::Bool
            } else {
                ValueType::String
            };
            let mut spec = ColumnSpec { kind: Some(Sev::plain(ty)), ..ColumnSpec::default() };
            if c.nulls == 0 {
                spec.nullable = Some(Sev::plain(false));
            } else {
                let f = c.nulls as f64 / c.rows as f64;
                let rounded = ((f * 10_000.0).ceil() / 10_000.0).max(f).min(1.0);
                spec.max_null_fraction = Some(Sev::plain(rounded));
            }
            if ty.is_numeric() && seen > 0 {
                spec.min = Some(Sev::plain(c.min));
                spec.max = Some(Sev::plain(c.max));
            }
            if let Some(few) = &c.few
                && matches!(ty, ValueType::String | ValueType::Integer)
                && !few.is_empty()
                && seen >= 2 * few.len() as u64
            {
                let mut values: Vec<Scalar> = few
                    .iter()
                    .map(|v| match ty {
                        ValueType::Integer => Scalar::Number(v.parse().unwrap_or(f64::NAN)),
                        _ => Scalar::Text(v.clone()),
                    })
                    .collect();
                values.sort_by(|a, b| match (a, b) {
                    (Scalar::Number(x), Scalar::Number(y)) => x.total_cmp(y),
                    _ => a.text().cmp(&b.text()),
                });
                spec.allowed = Some(Sev::plain(values));
            }
            let may_be_unique = matches!(ty, ValueType::String | ValueType::Integer | ValueType::Timestamp);
            if may_be_unique
                && c.all.is_some()
                && seen > 1
                && Some(i) != time_idx.filter(|_| self.options.series_column.is_some())
            {
                spec.unique = Some(Sev::plain(true));
            }
            columns.push((c.name.clone(), spec));
        }
        let time = time_idx.and_then(|idx| {
            let stats = self.time.as_ref()?;
            let order = if stats.steps == 0 || stats.increasing {
                Order::Increasing
            } else if stats.decreasing {
                Order::Decreasing
            } else {
                Order::Any
            };
            let max_gap = (stats.steps > 0).then(|| {
                if stats.dates_on_weekdays {
                    Span::BusinessDays(stats.max_step_days.max(1))
                } else {
                    Span::Millis(stats.max_step_ms.max(1))
                }
            });
            Some(TimeSpec {
                column: self.columns[idx].name.clone(),
                series_column: self.options.series_column.clone(),
                order: Some(Sev::plain(order)),
                max_gap: max_gap.map(Sev::plain),
                freshness: None,
                severity: None,
            })
        });
        SchemaSpec {
            columns: Columns(columns),
            rows: Some(Sev::plain(RowsSpec { min: Some(1), max: None })),
            time,
            ..SchemaSpec::default()
        }
    }
}

fn observe_text(stats: &mut ColumnStats, text: String, max_allowed: usize) {
    if let Some(few) = &mut stats.few
        && !few.contains(&text)
    {
        if few.len() >= max_allowed {
            stats.few = None;
        } else {
            few.push(text.clone());
        }
    }
    if let Some(all) = &mut stats.all
        && !all.insert(hash_text(&text))
    {
        stats.all = None;
    }
}
