//! Data files in as [`Frame`]s, whole ([`read_frame`]) or chunk by chunk in bounded memory ([`read_chunks`]); the
//! whole-file reader is the chunked one with a single chunk, so both parse every cell the same way. CSV goes through
//! the `csv` crate with strict field counts, so every error names the file and the 1-based line (polars' CSV reader
//! gives no line numbers and pads short rows); Parquet goes through polars, reading only the needed columns, a slice
//! of rows at a time. Column types are declared ([`ReadOptions::numeric`], [`ReadOptions::categorical`], the time
//! column) or inferred (all-numeric -> numeric, else categorical): over the whole file by [`read_frame`], from the
//! first chunk by [`read_chunks`]. [`read_frame`] sorts the rows by the time column; [`read_chunks`] checks that they
//! come sorted. Polars types never leave this module.
//!
//! Writing is in `write.rs`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use kiln_domain::{Column, DomainError, Frame};
use polars::prelude::{DataFrame, DataType, FileMetadataRef, ParquetReader, PolarsError, SerReader, Series, TimeUnit};
use sha2::{Digest, Sha256};

use crate::error::{Location, ReadError};
use crate::timefmt::{IsoStyle, TimeParser, format_iso};
use crate::write::format_number;

/// How to read a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// the column parsed as UTC timestamps; the rows are sorted by it and must not repeat
    pub time_column: Option<String>,
    /// strftime-like (`%Y %m %d %H %M %S %%`, other characters literal); `None` detects `YYYY-MM-DD`,
    /// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS` (optional fractional seconds and trailing `Z`) from the first
    /// value
    pub time_format: Option<String>,
    /// cell texts (compared after trimming) that mean "missing"
    pub na_values: Vec<String>,
    /// keep only these columns, in this order (the time column is kept too, first, when not listed)
    pub columns: Option<Vec<String>>,
    /// columns read as categorical even when every value is a number
    pub categorical: Vec<String>,
    /// columns that must hold numbers: a cell that is neither a number nor missing is an error naming its line
    /// (CSV) or row (Parquet text column) instead of turning the column categorical
    pub numeric: Vec<String>,
    /// a long file of many series (a panel): the column naming each row's series, read as labels; with a time
    /// column, a time may repeat across series but not within one, and each series must be in time order
    pub series_column: Option<String>,
    /// columns read as numbers where a cell that is neither a number nor missing (or is infinite) becomes NaN and
    /// is kept in [`FrameChunks::unparsed`] instead of failing the read: for validation, which reports such cells as
    /// failing rows. CSV only; a Parquet column keeps its own type
    pub lenient_numeric: Vec<String>,
}

/// A cell of a [`ReadOptions::lenient_numeric`] column that is not a number, read as NaN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed {
    pub column: String,
    /// the data row within the chunk (0-based)
    pub row: usize,
    pub text: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            time_column: None,
            time_format: None,
            na_values: ["", "N/A", "NA", "NaN", "null"].iter().map(|s| s.to_string()).collect(),
            columns: None,
            categorical: Vec::new(),
            numeric: Vec::new(),
            series_column: None,
            lenient_numeric: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Csv,
    Parquet,
}

pub(crate) fn kind_of(path: &Path) -> Result<FileKind, ReadError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(FileKind::Csv),
        Some("parquet" | "pq") => Ok(FileKind::Parquet),
        _ => Err(ReadError::UnsupportedFormat { path: path.to_path_buf() }),
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn parquet_err(path: &Path) -> impl FnOnce(PolarsError) -> ReadError + '_ {
    move |e| ReadError::Parquet { path: path.to_path_buf(), message: e.to_string() }
}

/// Reads a `.csv`, `.parquet` or `.pq` file into a frame, sorted by the time column when there is one.
///
/// # Errors
/// A [`ReadError`] naming the file and, where it applies, the line, row and column: unreadable file, wrong field
/// count, empty header name, missing or repeated column, unparseable or repeated timestamp, a cell of a
/// [`ReadOptions::numeric`] column that is not a number, unsupported Parquet type.
pub fn read_frame(path: &Path, opts: &ReadOptions) -> Result<Frame, ReadError> {
    let mut chunks = FrameChunks::open(path, opts, usize::MAX, false)?;
    // the first chunk always comes, empty for a file without rows; with no row limit it is the whole file
    let frame = chunks.next().unwrap_or_else(|| {
        Err(ReadError::Internal { path: path.to_path_buf(), message: "no chunk read".to_string() })
    })?;
    sorted_by_time(path, frame, opts)
}

/// The frame's rows in time order when `opts` names a time column; a repeated time is an error naming it.
pub(crate) fn sorted_by_time(path: &Path, frame: Frame, opts: &ReadOptions) -> Result<Frame, ReadError> {
    let sorted = match (&opts.time_column, &opts.series_column) {
        (Some(time), Some(series)) => frame.sorted_by_series_time(series, time),
        (Some(time), None) => frame.sorted_by_time(time),
        (None, _) => return Ok(frame),
    };
    sorted.map_err(|e| match e {
        DomainError::DuplicateTime { column, millis } => {
            let style = IsoStyle::for_column(&[millis]);
            ReadError::DuplicateTime { path: path.to_path_buf(), column, time: format_iso(millis, style) }
        }
        DomainError::DuplicateSeriesTime { series_column, series, column, millis } => {
            let style = IsoStyle::for_column(&[millis]);
            ReadError::DuplicateSeriesTime {
                path: path.to_path_buf(),
                series_column,
                series,
                column,
                time: format_iso(millis, style),
            }
        }
        DomainError::MissingSeriesKey { column, row } => {
            ReadError::MissingSeriesKey { path: path.to_path_buf(), location: Location::Row(row), column }
        }
        other => unreachable_domain(path, other),
    })
}

/// Opens a `.csv`, `.parquet` or `.pq` file to be read `rows_per_chunk` rows at a time (the last chunk may be
/// shorter). Memory stays bounded by the chunk, whatever the file's size. The first chunk is yielded even when the
/// file has no rows. With a time column, the rows must come in strictly increasing time order: a file that starts
/// newest first is [`ReadError::NewestFirst`] (read it whole with [`read_frame`], which sorts), any later step back
/// or repeat is [`ReadError::NotSorted`] naming the line.
///
/// A column that is neither the time column nor declared in [`ReadOptions::numeric`] or
/// [`ReadOptions::categorical`] gets its type from the first chunk (numeric when every cell there is a number or
/// missing); a later non-number in it is then an error naming the line.
///
/// # Errors
/// What [`read_frame`] reports about the header, the columns and the time format, right away; errors about rows
/// come from the iterator, for the chunk they are in. After an error the iterator ends.
pub fn read_chunks(path: &Path, opts: &ReadOptions, rows_per_chunk: usize) -> Result<FrameChunks, ReadError> {
    FrameChunks::open(path, opts, rows_per_chunk.max(1), true)
}

/// The column names of a data file (a CSV file's header, a Parquet file's schema), reading no rows.
///
/// # Errors
/// As [`read_chunks`] for a file it cannot open: unreadable, not CSV or Parquet, a bad header or footer.
pub fn column_names(path: &Path) -> Result<Vec<String>, ReadError> {
    Ok(match kind_of(path)? {
        FileKind::Csv => CsvSource::open(path)?.1,
        FileKind::Parquet => ParquetSource::open(path)?.1,
    })
}

/// How far a [`FrameChunks`] has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadProgress {
    /// data rows read so far
    pub rows: u64,
    /// the file's data rows, when the format says it up front (Parquet)
    pub total_rows: Option<u64>,
    /// bytes of the file read so far, when the format reads front to back (CSV)
    pub bytes: Option<u64>,
    /// the file's size
    pub total_bytes: Option<u64>,
}

/// The frames of a data file, chunk by chunk (see [`read_chunks`]).
pub struct FrameChunks {
    path: PathBuf,
    source: Source,
    columns: Vec<Planned>,
    parser: TimeParser,
    na: NaValues,
    rows_per_chunk: usize,
    /// check the time order across the whole file (chunked reading); the whole-file reader sorts instead
    check_order: bool,
    /// a panel: the order is checked series by series
    series_column: Option<String>,
    /// time and place of the last row read, for the order check
    last: Option<(i64, Location)>,
    /// a panel: time and place of the last row read of each series
    last_by_series: std::collections::HashMap<String, (i64, Location)>,
    rows: u64,
    chunks: u64,
    done: bool,
    total_bytes: Option<u64>,
    /// the lenient columns' cells of the last chunk that are not numbers
    unparsed: Vec<Unparsed>,
    /// text columns of chunks handed back ([`FrameChunks::recycle`]), written over by the next chunks
    spare: SpareTexts,
}

/// Text columns handed back for reuse, by column name: a cell's `String` keeps its buffer for the next chunk's
/// text of the same column, so a text column costs no allocation per cell once the first chunks came back.
#[derive(Debug, Default)]
struct SpareTexts(Vec<(String, Vec<Option<String>>)>);

impl SpareTexts {
    /// The most kept per column: the chunks between the reader and its caller.
    const PER_COLUMN: usize = 4;

    fn give(&mut self, name: String, texts: Vec<Option<String>>) {
        if self.0.iter().filter(|(n, _)| *n == name).count() < Self::PER_COLUMN {
            self.0.push((name, texts));
        }
    }

    /// `cells` as a text column, written over a spare one of column `name` where there is one.
    fn fill<'a>(&mut self, name: &str, cells: impl Iterator<Item = Option<&'a str>>) -> Vec<Option<String>> {
        let mut out = match self.0.iter().position(|(n, _)| n == name) {
            Some(at) => self.0.swap_remove(at).1,
            None => Vec::new(),
        };
        let mut len = 0;
        for cell in cells {
            match (out.get_mut(len), cell) {
                (Some(Some(text)), Some(cell)) => {
                    text.clear();
                    text.push_str(cell);
                }
                (Some(slot), cell) => *slot = cell.map(str::to_string),
                (None, cell) => out.push(cell.map(str::to_string)),
            }
            len += 1;
        }
        out.truncate(len);
        out
    }
}

impl std::fmt::Debug for FrameChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameChunks")
            .field("path", &self.path)
            .field("rows_per_chunk", &self.rows_per_chunk)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// One kept column and how its cells become values.
#[derive(Debug, Clone)]
struct Planned {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Time,
    Numeric,
    Categorical,
    /// numeric if every cell is a number, else categorical; the first chunk decides for the later ones
    Infer,
    /// numeric, as the first chunk's (this many) rows were
    Inferred(usize),
    /// numeric, a cell that is not a number kept aside ([`ReadOptions::lenient_numeric`])
    Lenient,
}

enum Source {
    Csv(Box<CsvSource>),
    Parquet(ParquetSource),
}

impl FrameChunks {
    fn open(
        path: &Path,
        opts: &ReadOptions,
        rows_per_chunk: usize,
        check_order: bool,
    ) -> Result<FrameChunks, ReadError> {
        let parser = match &opts.time_format {
            Some(format) => TimeParser::with_format(format)
                .map_err(|reason| ReadError::TimeFormat { format: format.clone(), reason })?,
            None => TimeParser::Auto(None),
        };
        let (source, available) = match kind_of(path)? {
            FileKind::Csv => {
                let (source, names) = CsvSource::open(path)?;
                (Source::Csv(Box::new(source)), names)
            }
            FileKind::Parquet => {
                let (source, names) = ParquetSource::open(path)?;
                (Source::Parquet(source), names)
            }
        };
        let keep = plan(path, &available, opts)?;
        let columns: Vec<Planned> = keep
            .into_iter()
            .map(|name| {
                let kind = if opts.time_column.as_ref() == Some(&name) {
                    Kind::Time
                } else if opts.categorical.contains(&name) || opts.series_column.as_ref() == Some(&name) {
                    Kind::Categorical
                } else if opts.numeric.contains(&name) {
                    Kind::Numeric
                } else if opts.lenient_numeric.contains(&name) {
                    Kind::Lenient
                } else {
                    Kind::Infer
                };
                Planned { name, kind }
            })
            .collect();
        let source = match source {
            Source::Csv(mut csv) => {
                csv.indices =
                    columns.iter().map(|c| available.iter().position(|n| *n == c.name).unwrap_or(usize::MAX)).collect();
                Source::Csv(csv)
            }
            Source::Parquet(mut pq) => {
                pq.columns = columns.iter().map(|c| c.name.clone()).collect();
                Source::Parquet(pq)
            }
        };
        let total_bytes = std::fs::metadata(path).ok().map(|m| m.len());
        Ok(FrameChunks {
            path: path.to_path_buf(),
            source,
            columns,
            parser,
            na: NaValues::new(&opts.na_values),
            rows_per_chunk,
            check_order,
            series_column: opts.series_column.clone(),
            last: None,
            last_by_series: std::collections::HashMap::new(),
            rows: 0,
            chunks: 0,
            done: false,
            total_bytes,
            unparsed: Vec::new(),
            spare: SpareTexts::default(),
        })
    }

    /// Hands back a chunk this reader gave, once its caller is done with it: the strings of its text columns are
    /// written over by the next chunks' texts instead of a `String` being allocated (and later freed) for every
    /// cell. Optional; a chunk not handed back is simply dropped by its owner.
    pub fn recycle(&mut self, frame: Frame) {
        for (name, column) in frame.into_columns() {
            if let Column::Categorical(texts) = column {
                self.spare.give(name, texts);
            }
        }
    }

    /// The cells of [`ReadOptions::lenient_numeric`] columns in the chunk last yielded that are not numbers (read as
    /// NaN).
    pub fn unparsed(&self) -> &[Unparsed] {
        &self.unparsed
    }

    /// The CSV lines of the rows of the chunk last yielded (the header is line 1; a quoted cell may span lines);
    /// `None` for a Parquet file, whose rows are numbered from 1.
    pub fn lines(&self) -> Option<&[u64]> {
        match &self.source {
            Source::Csv(csv) => Some(&csv.raw.lines),
            Source::Parquet(_) => None,
        }
    }

    /// Rows and bytes read so far.
    pub fn progress(&self) -> ReadProgress {
        let (total_rows, bytes) = match &self.source {
            Source::Csv(csv) => (None, Some(csv.bytes)),
            Source::Parquet(pq) => (Some(pq.total_rows as u64), None),
        };
        ReadProgress { rows: self.rows, total_rows, bytes, total_bytes: self.total_bytes }
    }

    fn next_chunk(&mut self) -> Result<Option<Frame>, ReadError> {
        let first_row = self.rows;
        let (columns, n) = match &mut self.source {
            Source::Csv(csv) => {
                let raw = csv.read(&self.path, self.rows_per_chunk)?;
                let n = raw.lines.len();
                if n == 0 && self.chunks > 0 {
                    return Ok(None);
                }
                self.unparsed.clear();
                (
                    csv_columns(
                        &self.path,
                        &mut self.columns,
                        raw,
                        &self.na,
                        &mut self.parser,
                        &mut self.unparsed,
                        &mut self.spare,
                    )?,
                    n,
                )
            }
            Source::Parquet(pq) => {
                let Some(df) = pq.read(&self.path, self.rows_per_chunk)? else {
                    if self.chunks > 0 {
                        return Ok(None);
                    }
                    let empty = pq.read_empty(&self.path)?;
                    let columns = parquet_columns(
                        &self.path,
                        &self.columns,
                        &empty,
                        0,
                        &self.na,
                        &mut self.parser,
                        &mut self.spare,
                    )?;
                    self.chunks += 1;
                    return build_frame(&self.path, columns).map(Some);
                };
                let n = df.height();
                let columns = parquet_columns(
                    &self.path,
                    &self.columns,
                    &df,
                    first_row as usize,
                    &self.na,
                    &mut self.parser,
                    &mut self.spare,
                )?;
                (columns, n)
            }
        };
        let frame = build_frame(&self.path, columns)?;
        if let Some(series) = &self.series_column
            && let Ok(keys) = frame.categorical(series)
            && let Some(i) = keys.iter().position(Option::is_none)
        {
            return Err(ReadError::MissingSeriesKey {
                path: self.path.clone(),
                location: self.location(first_row + i as u64),
                column: series.clone(),
            });
        }
        if self.check_order {
            self.check_order(&frame, first_row)?;
        }
        self.rows += n as u64;
        self.chunks += 1;
        Ok(Some(frame))
    }

    /// The rows of `frame` (starting at data row `first_row`) continue the strictly increasing time order.
    fn check_order(&mut self, frame: &Frame, first_row: u64) -> Result<(), ReadError> {
        let Some(time) = self.columns.iter().find(|c| c.kind == Kind::Time) else {
            return Ok(());
        };
        let Ok(stamps) = frame.timestamps(&time.name) else {
            return Ok(());
        };
        if let Some(series) = self.series_column.clone() {
            let time = time.name.clone();
            return self.check_series_order(frame, &series, &time, stamps, first_row);
        }
        for (i, &t) in stamps.iter().enumerate() {
            let here = self.location(first_row + i as u64);
            if let Some((prev, prev_at)) = self.last
                && t <= prev
            {
                let style = IsoStyle::for_column(&[prev, t]);
                let (prev_text, text) = (format_iso(prev, style), format_iso(t, style));
                return Err(if first_row + i as u64 == 1 && t < prev {
                    ReadError::NewestFirst {
                        path: self.path.clone(),
                        column: time.name.clone(),
                        first: prev_text,
                        second: text,
                    }
                } else {
                    ReadError::NotSorted {
                        path: self.path.clone(),
                        location: here,
                        column: time.name.clone(),
                        time: text,
                        prev: prev_text,
                        prev_at: prev_at.number(),
                    }
                });
            }
            self.last = Some((t, here));
        }
        Ok(())
    }

    /// [`FrameChunks::check_order`] for a panel: every series continues its own strictly increasing time order
    /// (rows of different series may interleave).
    fn check_series_order(
        &mut self,
        frame: &Frame,
        series: &str,
        time: &str,
        stamps: &[i64],
        first_row: u64,
    ) -> Result<(), ReadError> {
        let keys = match frame.categorical(series) {
            Ok(keys) => keys,
            Err(_) => return Ok(()),
        };
        for (i, (&t, key)) in stamps.iter().zip(keys).enumerate() {
            let here = self.location(first_row + i as u64);
            let Some(key) = key else {
                return Err(ReadError::MissingSeriesKey {
                    path: self.path.clone(),
                    location: here,
                    column: series.to_string(),
                });
            };
            match self.last_by_series.get_mut(key.as_str()) {
                Some((prev, prev_at)) if t <= *prev => {
                    let style = IsoStyle::for_column(&[*prev, t]);
                    return Err(ReadError::SeriesNotSorted(Box::new(crate::error::SeriesOrderError {
                        path: self.path.clone(),
                        location: here,
                        series_column: series.to_string(),
                        series: key.clone(),
                        column: time.to_string(),
                        time: format_iso(t, style),
                        prev: format_iso(*prev, style),
                        prev_at: prev_at.number(),
                    })));
                }
                Some(last) => *last = (t, here),
                None => {
                    self.last_by_series.insert(key.clone(), (t, here));
                }
            }
        }
        Ok(())
    }

    /// Where data row `row` (0-based) is: its CSV line, or its 1-based Parquet row.
    fn location(&self, row: u64) -> Location {
        match &self.source {
            Source::Csv(csv) => {
                let index = row.saturating_sub(csv.first_row_of_chunk) as usize;
                Location::Line(csv.raw.lines.get(index).copied().unwrap_or(0))
            }
            Source::Parquet(_) => Location::Row(row as usize + 1),
        }
    }
}

impl Iterator for FrameChunks {
    type Item = Result<Frame, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_chunk() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The frame was just built from unique names and a timestamp column, so only the handled cases can happen;
/// anything else is reported as a bug rather than panicking.
pub(crate) fn unreachable_domain(path: &Path, e: DomainError) -> ReadError {
    ReadError::Internal { path: path.to_path_buf(), message: e.to_string() }
}

/// The columns to keep, in order, after checking that every named column exists.
pub(crate) fn plan(path: &Path, available: &[String], opts: &ReadOptions) -> Result<Vec<String>, ReadError> {
    let missing = |column: &String| ReadError::MissingColumn {
        path: path.to_path_buf(),
        column: column.clone(),
        available: available.to_vec(),
    };
    let named = opts.time_column.iter().chain(opts.columns.iter().flatten()).chain(opts.categorical.iter());
    for column in named {
        if !available.contains(column) {
            return Err(missing(column));
        }
    }
    let Some(columns) = &opts.columns else {
        return Ok(available.to_vec());
    };
    let mut keep = Vec::with_capacity(columns.len() + 1);
    if let Some(time) = &opts.time_column
        && !columns.contains(time)
    {
        keep.push(time.clone());
    }
    for column in columns {
        if keep.contains(column) {
            return Err(ReadError::DuplicateColumn { path: path.to_path_buf(), column: column.clone() });
        }
        keep.push(column.clone());
    }
    Ok(keep)
}

pub(crate) fn check_unique(path: &Path, names: &[String]) -> Result<(), ReadError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(ReadError::DuplicateColumn { path: path.to_path_buf(), column: name.clone() });
        }
    }
    Ok(())
}

pub(crate) fn build_frame(path: &Path, columns: Vec<(String, Column)>) -> Result<Frame, ReadError> {
    Frame::new(columns).map_err(|e| match e {
        DomainError::DuplicateColumn(column) => ReadError::DuplicateColumn { path: path.to_path_buf(), column },
        other => unreachable_domain(path, other),
    })
}

/// The numbers in a declared numeric column's texts (trimmed; a missing or `na` cell is NaN); a cell that is not
/// a number is an error naming its row (`first_row` rows come before these).
pub(crate) fn numbers_from_texts(
    path: &Path,
    name: &str,
    texts: &[Option<String>],
    first_row: usize,
    na: &NaValues,
) -> Result<Vec<f64>, ReadError> {
    let mut values = Vec::with_capacity(texts.len());
    for (row, text) in texts.iter().enumerate() {
        let Some(cell) = text.as_deref().map(str::trim) else {
            values.push(f64::NAN);
            continue;
        };
        values.push(parse_number(cell, na).map_err(|()| ReadError::NotNumber {
            path: path.to_path_buf(),
            location: Location::Row(first_row + row + 1),
            column: name.to_string(),
            text: cell.to_string(),
            inferred_from: None,
        })?);
    }
    check_finite(
        path,
        name,
        &values,
        |row| Location::Row(first_row + row + 1),
        |row| texts[row].clone().unwrap_or_default(),
    )?;
    Ok(values)
}

/// The one rule for numbers out of range, in every input path (CSV, Parquet, columns handed over by a caller, and
/// `kiln serve`'s JSON): an infinite value (`inf`, or a literal such as `1e400` beyond the largest double) is an
/// error naming where it is; NaN is a missing value.
pub(crate) fn check_finite(
    path: &Path,
    column: &str,
    values: &[f64],
    location: impl Fn(usize) -> Location,
    text: impl Fn(usize) -> String,
) -> Result<(), ReadError> {
    match values.iter().position(|v| v.is_infinite()) {
        Some(row) => Err(ReadError::NotFinite {
            path: path.to_path_buf(),
            location: location(row),
            column: column.to_string(),
            text: text(row),
        }),
        None => Ok(()),
    }
}

/// The texts that mean a missing value (trimmed), looked up by length first: a cell of a length no such text has
/// (most numbers and names) costs one bit test instead of a hash, on every cell of every file read.
#[derive(Debug, Clone, Default)]
pub(crate) struct NaValues {
    texts: Vec<String>,
    /// bit `n`: some text has `n` bytes (`n < 64`)
    short: u64,
    /// some text has 64 bytes or more
    long: bool,
}

impl NaValues {
    pub(crate) fn new(values: &[String]) -> NaValues {
        let mut na = NaValues::default();
        for text in values.iter().map(|v| v.trim()) {
            if na.texts.iter().any(|t| t == text) {
                continue;
            }
            match text.len() {
                n if n < 64 => na.short |= 1 << n,
                _ => na.long = true,
            }
            na.texts.push(text.to_string());
        }
        na
    }

    #[inline]
    pub(crate) fn contains(&self, cell: &str) -> bool {
        let possible = match cell.len() {
            n if n < 64 => self.short >> n & 1 == 1,
            _ => self.long,
        };
        possible && self.texts.iter().any(|t| t == cell)
    }
}

/// A number, or `None` for a missing cell; `Err(())` for a cell that is neither.
pub(crate) fn parse_number(cell: &str, na: &NaValues) -> Result<f64, ()> {
    if na.contains(cell) {
        return Ok(f64::NAN);
    }
    cell.parse::<f64>().map_err(|_| ())
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/// The kept columns of one chunk of CSV rows, each column's trimmed cells in one buffer.
#[derive(Default)]
struct RawChunk {
    cells: Vec<Cells>,
    lines: Vec<u64>,
}

/// One column's cells of a chunk: their texts end to end, and where each ends.
#[derive(Default)]
struct Cells {
    text: String,
    ends: Vec<usize>,
}

impl Cells {
    fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let cell = &self.text[start..end];
            start = end;
            cell
        })
    }
}

/// `cell.trim()`, with the common case first: a cell that starts and ends with a printable ASCII character (0x21 to
/// 0x7e; Unicode's white space below 0x80 is 0x09 to 0x0d and 0x20) is returned as it is without decoding it.
#[inline]
fn trim_cell(cell: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|&b| (0x21..0x7f).contains(&b));
    let bytes = cell.as_bytes();
    if printable(bytes.first()) && printable(bytes.last()) { cell } else { cell.trim() }
}

struct CsvSource {
    reader: csv::Reader<LineLimit<BufReader<File>>>,
    record: csv::StringRecord,
    width: usize,
    /// the ECB file ends every line with a comma: an unnamed last column that must be empty everywhere
    trailing_unnamed: bool,
    /// the record index of each kept column
    indices: Vec<usize>,
    /// bytes consumed so far
    bytes: u64,
    /// the current chunk's cells and the lines of its rows (kept, cleared and refilled for every chunk), and the
    /// data row it starts at
    raw: RawChunk,
    first_row_of_chunk: u64,
    rows: u64,
    /// added to the csv reader's line numbers: with CRLF line ends it counts a record's line one short (it starts
    /// the record at the `\n` of the line before)
    line_offset: u64,
}

/// Whether the file's first line ends with `\r\n` (read up to the line limit only).
fn first_line_ends_with_crlf(path: &Path) -> Result<bool, ReadError> {
    use std::io::BufRead;
    let file = File::open(path).map_err(io_err(path))?;
    let mut first = Vec::new();
    BufReader::new(file).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut first).map_err(io_err(path))?;
    Ok(first.ends_with(b"\r\n"))
}

/// The most columns a file may have (the header of a hostile or mistaken file can hold millions).
pub const MAX_COLUMNS: usize = 100_000;
/// The longest line a CSV file may have: a longer one is refused as it is read, so memory stays bounded.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A reader that fails once more than [`MAX_LINE_BYTES`] pass without a line break.
struct LineLimit<R> {
    inner: R,
    since_newline: usize,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> LineLimit<R> {
        LineLimit { inner, since_newline: 0 }
    }
}

/// The error [`LineLimit`] fails with (found again in [`csv_error`] by its type).
#[derive(Debug)]
struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a line is longer than {} MiB", MAX_LINE_BYTES >> 20)
    }
}

impl std::error::Error for LineTooLong {}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.since_newline = match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(pos) => n - pos - 1,
            None => self.since_newline + n,
        };
        if self.since_newline > MAX_LINE_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LineTooLong));
        }
        Ok(n)
    }
}

fn csv_error(path: &Path, e: csv::Error) -> ReadError {
    let line = e.position().map(csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(source) if source.get_ref().is_some_and(|inner| inner.is::<LineTooLong>()) => {
            ReadError::Csv {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "a line is longer than {} MiB; kiln reads lines up to that size",
                    MAX_LINE_BYTES >> 20
                ),
            }
        }
        csv::ErrorKind::Io(source) => ReadError::Io { path: path.to_path_buf(), source },
        csv::ErrorKind::Utf8 { pos, err } => ReadError::Csv {
            path: path.to_path_buf(),
            line: pos.map(|p| p.line()).or(line),
            message: format!("invalid utf-8 in field {}", err.field() + 1),
        },
        other => ReadError::Csv { path: path.to_path_buf(), line, message: format!("{other:?}") },
    }
}

impl CsvSource {
    /// Opens the file and reads the header; returns the column names.
    fn open(path: &Path) -> Result<(CsvSource, Vec<String>), ReadError> {
        let crlf = first_line_ends_with_crlf(path)?;
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LineLimit::new(BufReader::with_capacity(1 << 16, file)));
        let mut record = csv::StringRecord::new();
        if !reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
            return Err(ReadError::NoHeader { path: path.to_path_buf() });
        }
        if record.len() > MAX_COLUMNS {
            return Err(ReadError::TooWide { path: path.to_path_buf(), columns: record.len(), max: MAX_COLUMNS });
        }
        let mut names: Vec<String> = record.iter().map(str::to_string).collect();
        let width = names.len();
        let trailing_unnamed = width > 1 && names[width - 1].trim().is_empty();
        if trailing_unnamed {
            names.pop();
        }
        if let Some(index) = names.iter().position(|n| n.trim().is_empty()) {
            return Err(ReadError::EmptyHeader { path: path.to_path_buf(), index: index + 1 });
        }
        check_unique(path, &names)?;
        let bytes = reader.position().byte();
        let source = CsvSource {
            reader,
            record,
            width,
            trailing_unnamed,
            indices: Vec::new(),
            bytes,
            raw: RawChunk::default(),
            first_row_of_chunk: 0,
            rows: 0,
            line_offset: u64::from(crlf),
        };
        Ok((source, names))
    }

    /// Up to `n` more rows, in the buffers of the chunk before (cleared, their memory kept).
    fn read(&mut self, path: &Path, n: usize) -> Result<&RawChunk, ReadError> {
        let RawChunk { cells, lines } = &mut self.raw;
        cells.resize_with(self.indices.len(), Cells::default);
        for column in cells.iter_mut() {
            column.text.clear();
            column.ends.clear();
        }
        lines.clear();
        while lines.len() < n && self.reader.read_record(&mut self.record).map_err(|e| csv_error(path, e))? {
            let line = self.record.position().map_or(0, csv::Position::line) + self.line_offset;
            if self.record.len() != self.width {
                return Err(ReadError::FieldCount {
                    path: path.to_path_buf(),
                    line,
                    expected: self.width,
                    actual: self.record.len(),
                });
            }
            if self.trailing_unnamed && !self.record[self.width - 1].trim().is_empty() {
                return Err(ReadError::EmptyHeader { path: path.to_path_buf(), index: self.width });
            }
            for (column, &index) in cells.iter_mut().zip(&self.indices) {
                column.push(trim_cell(self.record.get(index).unwrap_or("")));
            }
            lines.push(line);
        }
        self.bytes = self.reader.position().byte();
        self.first_row_of_chunk = self.rows;
        self.rows += lines.len() as u64;
        Ok(&self.raw)
    }
}

/// The typed columns of a chunk of CSV cells; an inferred column's type is fixed by the first chunk.
fn csv_columns(
    path: &Path,
    planned: &mut [Planned],
    raw: &RawChunk,
    na: &NaValues,
    parser: &mut TimeParser,
    unparsed: &mut Vec<Unparsed>,
    spare: &mut SpareTexts,
) -> Result<Vec<(String, Column)>, ReadError> {
    let mut columns = Vec::with_capacity(planned.len());
    for (plan, cells) in planned.iter_mut().zip(&raw.cells) {
        let name = &plan.name;
        let not_a_number = |row: usize, text: &str, inferred_from: Option<usize>| ReadError::NotNumber {
            path: path.to_path_buf(),
            location: Location::Line(raw.lines[row]),
            column: name.clone(),
            text: text.to_string(),
            inferred_from,
        };
        let column = match plan.kind {
            Kind::Time => {
                let stamps = cells.iter().zip(&raw.lines).map(|(cell, &line)| {
                    parse_time(parser, cell, na).ok_or_else(|| ReadError::BadTime {
                        path: path.to_path_buf(),
                        location: Location::Line(line),
                        column: name.clone(),
                        text: cell.to_string(),
                        expected: parser.expected(),
                    })
                });
                Column::Timestamp(stamps.collect::<Result<_, _>>()?)
            }
            Kind::Categorical => {
                Column::Categorical(spare.fill(name, cells.iter().map(|c| (!na.contains(c)).then_some(c))))
            }
            Kind::Numeric | Kind::Inferred(_) => {
                let inferred_from = match plan.kind {
                    Kind::Inferred(rows) => Some(rows),
                    _ => None,
                };
                let mut values = Vec::with_capacity(cells.ends.len());
                for (row, cell) in cells.iter().enumerate() {
                    values.push(parse_number(cell, na).map_err(|()| not_a_number(row, cell, inferred_from))?);
                }
                Column::Numeric(values)
            }
            Kind::Lenient => {
                let mut values = Vec::with_capacity(cells.ends.len());
                for (row, cell) in cells.iter().enumerate() {
                    match parse_number(cell, na) {
                        Ok(v) if !v.is_infinite() => values.push(v),
                        _ => {
                            unparsed.push(Unparsed { column: name.clone(), row, text: cell.to_string() });
                            values.push(f64::NAN);
                        }
                    }
                }
                columns.push((name.clone(), Column::Numeric(values)));
                continue;
            }
            Kind::Infer => {
                let column = infer_column(cells, na);
                plan.kind = match column {
                    Column::Numeric(_) => Kind::Inferred(cells.ends.len()),
                    _ => Kind::Categorical,
                };
                column
            }
        };
        if let Column::Numeric(values) = &column {
            check_finite(
                path,
                name,
                values,
                |row| Location::Line(raw.lines[row]),
                |row| cells.iter().nth(row).unwrap_or_default().to_string(),
            )?;
        }
        columns.push((name.clone(), column));
    }
    Ok(columns)
}

fn parse_time(parser: &mut TimeParser, cell: &str, na: &NaValues) -> Option<i64> {
    if na.contains(cell) {
        return None;
    }
    parser.parse(cell)
}

fn categorical_cells<'a>(cells: impl Iterator<Item = &'a str>, na: &NaValues) -> Column {
    Column::Categorical(cells.map(|c| (!na.contains(c)).then(|| c.to_string())).collect())
}

/// Numeric when every non-missing cell is a number, categorical otherwise.
fn infer_column(cells: &Cells, na: &NaValues) -> Column {
    let mut values = Vec::with_capacity(cells.ends.len());
    for cell in cells.iter() {
        match parse_number(cell, na) {
            Ok(v) => values.push(v),
            Err(()) => return categorical_cells(cells.iter(), na),
        }
    }
    Column::Numeric(values)
}

// ---------------------------------------------------------------------------------------------------------------
// Parquet

struct ParquetSource {
    file: File,
    metadata: FileMetadataRef,
    /// the kept columns (a projection: the others are never decoded)
    columns: Vec<String>,
    total_rows: usize,
    offset: usize,
    /// the decoded row group the next rows come from (its first row, its rows): a chunk smaller than a row group
    /// is sliced from it instead of decoding the group again for every chunk
    group: Option<(usize, DataFrame)>,
}

/// The largest row group kept decoded between chunks ([`ParquetSource::read`]): at most this many rows, or four
/// chunks. A larger one is read one chunk's slice at a time.
#[cfg(not(test))]
const MAX_BUFFERED_GROUP_ROWS: usize = 1 << 17;
/// Small in tests, so that a test file has groups of both kinds.
#[cfg(test)]
const MAX_BUFFERED_GROUP_ROWS: usize = 5000;

impl ParquetSource {
    /// Opens the file and reads its footer; returns the column names.
    fn open(path: &Path) -> Result<(ParquetSource, Vec<String>), ReadError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = ParquetReader::new(file.try_clone().map_err(io_err(path))?);
        let schema = reader.schema().map_err(parquet_err(path))?;
        let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
        check_unique(path, &available)?;
        let metadata = reader.get_metadata().map_err(parquet_err(path))?.clone();
        let total_rows = metadata.num_rows;
        Ok((ParquetSource { file, metadata, columns: Vec::new(), total_rows, offset: 0, group: None }, available))
    }

    fn reader(&self, path: &Path) -> Result<ParquetReader<File>, ReadError> {
        let mut reader = ParquetReader::new(self.file.try_clone().map_err(io_err(path))?);
        reader.set_metadata(self.metadata.clone());
        Ok(reader.with_columns(Some(self.columns.clone())))
    }

    /// The next `n` rows of the kept columns; `None` at the end. Only the row groups holding them are read: a row
    /// group of at most [`MAX_BUFFERED_GROUP_ROWS`] rows (or four chunks) is decoded once and kept while its rows
    /// are handed out (chunks of 20,000 rows from groups of 100,000 decoded each group five times); a larger one
    /// is read one slice at a time. The file is memory-mapped for each read only.
    fn read(&mut self, path: &Path, n: usize) -> Result<Option<DataFrame>, ReadError> {
        if self.offset >= self.total_rows {
            return Ok(None);
        }
        let len = n.min(self.total_rows - self.offset);
        let mut out: Option<DataFrame> = None;
        let mut got = 0;
        while got < len {
            let at = self.offset + got;
            let covered = self.group.as_ref().is_some_and(|(start, df)| at >= *start && at < start + df.height());
            if !covered {
                self.group = None;
                let (start, rows) = self.group_of(at);
                if rows <= MAX_BUFFERED_GROUP_ROWS.max(4 * n) {
                    let df = self.reader(path)?.with_slice(Some((start, rows))).finish().map_err(parquet_err(path))?;
                    self.group = Some((start, df)).filter(|(start, df)| at < start + df.height());
                }
            }
            let piece = match &self.group {
                Some((start, df)) => {
                    let take = (start + df.height() - at).min(len - got);
                    df.slice(i64::try_from(at - start).unwrap_or(i64::MAX), take)
                }
                // a large group, or one that did not decode to the rows its metadata gives: the slice alone
                None => self.reader(path)?.with_slice(Some((at, len - got))).finish().map_err(parquet_err(path))?,
            };
            if piece.height() == 0 {
                let message = format!("no rows at row {} of the {} its metadata gives", at + 1, self.total_rows);
                return Err(parquet_err(path)(PolarsError::NoData(message.into())));
            }
            got += piece.height();
            out = Some(match out {
                None => piece,
                Some(mut o) => {
                    o.vstack_mut(&piece).map_err(parquet_err(path))?;
                    o
                }
            });
        }
        self.offset += len;
        Ok(out)
    }

    /// The row group holding row `at`: its first row and its rows (the rest of the file when the metadata has no
    /// such group).
    fn group_of(&self, at: usize) -> (usize, usize) {
        let mut start = 0;
        for group in &self.metadata.row_groups {
            let rows = group.num_rows();
            if at < start + rows {
                return (start, rows);
            }
            start += rows;
        }
        (at, self.total_rows - at)
    }

    /// The kept columns with no rows (a file without rows still has a frame).
    fn read_empty(&self, path: &Path) -> Result<DataFrame, ReadError> {
        self.reader(path)?.with_slice(Some((0, 0))).finish().map_err(parquet_err(path))
    }
}

/// The typed columns of a chunk of a Parquet file whose first row is data row `first_row` (0-based).
fn parquet_columns(
    path: &Path,
    planned: &[Planned],
    df: &DataFrame,
    first_row: usize,
    na: &NaValues,
    parser: &mut TimeParser,
    spare: &mut SpareTexts,
) -> Result<Vec<(String, Column)>, ReadError> {
    let mut columns = Vec::with_capacity(planned.len());
    for plan in planned {
        let name = &plan.name;
        let series = df.column(name).map_err(parquet_err(path))?.as_materialized_series();
        let column = convert_series(path, name, series, first_row, spare)?;
        let column = match plan.kind {
            Kind::Time => time_from_column(path, name, column, series.dtype(), parser, first_row)?,
            Kind::Categorical => to_categorical(column),
            Kind::Numeric => match column {
                Column::Categorical(texts) => Column::Numeric(numbers_from_texts(path, name, &texts, first_row, na)?),
                other => other,
            },
            Kind::Infer | Kind::Inferred(_) | Kind::Lenient => column,
        };
        columns.push((name.clone(), column));
    }
    Ok(columns)
}

fn convert_series(
    path: &Path,
    name: &str,
    series: &Series,
    first_row: usize,
    spare: &mut SpareTexts,
) -> Result<Column, ReadError> {
    let dtype = series.dtype();
    let column = match dtype {
        DataType::Boolean => Column::Numeric(
            series
                .bool()
                .map_err(parquet_err(path))?
                .iter()
                .map(|v| v.map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 }))
                .collect(),
        ),
        dt if dt.is_primitive_numeric() => {
            let cast = series.cast(&DataType::Float64).map_err(parquet_err(path))?;
            // array by array: a slice copied whole where no value is missing, NaN written for the missing ones
            let mut values: Vec<f64> = Vec::with_capacity(cast.len());
            for array in cast.f64().map_err(parquet_err(path))?.downcast_iter() {
                match array.validity().filter(|valid| valid.unset_bits() > 0) {
                    None => values.extend_from_slice(array.values()),
                    Some(valid) => values.extend(
                        array.values().iter().zip(valid.iter()).map(|(&x, present)| if present { x } else { f64::NAN }),
                    ),
                }
            }
            check_finite(path, name, &values, |row| Location::Row(first_row + row + 1), |row| values[row].to_string())?;
            Column::Numeric(values)
        }
        DataType::String => Column::Categorical(spare.fill(name, series.str().map_err(parquet_err(path))?.iter())),
        // pandas' categorical columns arrive as dictionary-encoded categoricals
        dt if dt.is_categorical() || dt.is_enum() => {
            let text = series.cast(&DataType::String).map_err(parquet_err(path))?;
            Column::Categorical(spare.fill(name, text.str().map_err(parquet_err(path))?.iter()))
        }
        DataType::Date => {
            let days = series.to_physical_repr();
            let days = days.i32().map_err(parquet_err(path))?;
            let stamps = days.iter().enumerate().map(|(row, v)| {
                v.map(|d| i64::from(d) * 86_400_000).ok_or_else(|| null_time(path, name, first_row + row))
            });
            Column::Timestamp(stamps.collect::<Result<_, _>>()?)
        }
        DataType::Datetime(unit, _) => {
            let per_ms = match unit {
                TimeUnit::Nanoseconds => 1_000_000,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1,
            };
            let raw = series.to_physical_repr();
            let raw = raw.i64().map_err(parquet_err(path))?;
            if raw.null_count() == 0 {
                let mut stamps: Vec<i64> = Vec::with_capacity(raw.len());
                for array in raw.downcast_iter() {
                    stamps.extend(array.values().iter().map(|t| t.div_euclid(per_ms)));
                }
                Column::Timestamp(stamps)
            } else {
                let stamps = raw.iter().enumerate().map(|(row, v)| {
                    v.map(|t| t.div_euclid(per_ms)).ok_or_else(|| null_time(path, name, first_row + row))
                });
                Column::Timestamp(stamps.collect::<Result<_, _>>()?)
            }
        }
        other => {
            return Err(ReadError::UnsupportedDtype {
                path: path.to_path_buf(),
                column: name.to_string(),
                dtype: other.to_string(),
            });
        }
    };
    Ok(column)
}

fn null_time(path: &Path, column: &str, row: usize) -> ReadError {
    ReadError::BadTime {
        path: path.to_path_buf(),
        location: Location::Row(row + 1),
        column: column.to_string(),
        text: "null".to_string(),
        expected: "a timestamp".to_string(),
    }
}

pub(crate) fn time_from_column(
    path: &Path,
    name: &str,
    column: Column,
    dtype: &DataType,
    parser: &mut TimeParser,
    first_row: usize,
) -> Result<Column, ReadError> {
    match column {
        Column::Timestamp(_) => Ok(column),
        Column::Categorical(texts) => {
            let stamps = texts.iter().enumerate().map(|(row, text)| {
                let text = text.as_deref().map_or("", str::trim);
                parser.parse(text).ok_or_else(|| ReadError::BadTime {
                    path: path.to_path_buf(),
                    location: Location::Row(first_row + row + 1),
                    column: name.to_string(),
                    text: text.to_string(),
                    expected: parser.expected(),
                })
            });
            Ok(Column::Timestamp(stamps.collect::<Result<_, _>>()?))
        }
        Column::Numeric(_) => Err(ReadError::TimeColumnType {
            path: path.to_path_buf(),
            column: name.to_string(),
            dtype: dtype.to_string(),
        }),
    }
}

pub(crate) fn to_categorical(column: Column) -> Column {
    match column {
        Column::Categorical(_) => column,
        Column::Numeric(values) => {
            Column::Categorical(values.iter().map(|v| (!v.is_nan()).then(|| format_number(*v))).collect())
        }
        Column::Timestamp(values) => {
            let style = IsoStyle::for_column(&values);
            Column::Categorical(values.iter().map(|&v| Some(format_iso(v, style))).collect())
        }
    }
}

/// Parses time texts as the reader parses a time column: with a format (`%Y-%m-%d ...`), or in the ISO shape of the
/// first value. For callers that read a column as text and parse it themselves (validation, which reports a bad
/// time as a failing row instead of stopping).
#[derive(Debug, Clone)]
pub struct TimeTextParser(TimeParser);

impl TimeTextParser {
    /// A parser for `format`, or detecting the ISO shape when `None`.
    ///
    /// # Errors
    /// [`ReadError::TimeFormat`] for an invalid format.
    pub fn new(format: Option<&str>) -> Result<TimeTextParser, ReadError> {
        match format {
            Some(format) => TimeParser::with_format(format)
                .map(TimeTextParser)
                .map_err(|reason| ReadError::TimeFormat { format: format.to_string(), reason }),
            None => Ok(TimeTextParser(TimeParser::Auto(None))),
        }
    }

    /// UTC milliseconds, or `None` when `text` is not a time of the format.
    pub fn parse(&mut self, text: &str) -> Option<i64> {
        self.0.parse(text.trim())
    }
}

/// The SHA-256 of a file's bytes, as 64 lowercase hex characters (the data fingerprint kept with every model).
///
/// # Errors
/// [`ReadError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, ReadError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests;
