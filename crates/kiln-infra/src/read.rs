//! Data files in and out as [`Frame`]s. CSV goes through the `csv` crate with strict field counts, so every error
//! names the file and the 1-based line (polars' CSV reader gives no line numbers and pads short rows); Parquet goes
//! through polars. Column types are inferred per column (time column -> timestamp, all-numeric -> numeric, else
//! categorical) and rows come back sorted by the time column. Polars types never leave this module.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use kiln_domain::{Column, DomainError, Frame};
use polars::prelude::{
    DataFrame, DataType, Int64Chunked, IntoColumn, IntoSeries, NamedFrom, ParquetReader, ParquetWriter, PolarsError,
    SerReader, Series, TimeUnit,
};
use sha2::{Digest, Sha256};

use crate::error::{Location, ReadError};
use crate::timefmt::{IsoStyle, TimeParser, format_iso};

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
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            time_column: None,
            time_format: None,
            na_values: ["", "N/A", "NA", "NaN", "null"].iter().map(|s| s.to_string()).collect(),
            columns: None,
            categorical: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Csv,
    Parquet,
}

fn kind_of(path: &Path) -> Result<FileKind, ReadError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(FileKind::Csv),
        Some("parquet" | "pq") => Ok(FileKind::Parquet),
        _ => Err(ReadError::UnsupportedFormat { path: path.to_path_buf() }),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io { path: path.to_path_buf(), source }
}

fn parquet_err(path: &Path) -> impl FnOnce(PolarsError) -> ReadError + '_ {
    move |e| ReadError::Parquet { path: path.to_path_buf(), message: e.to_string() }
}

/// Reads a `.csv`, `.parquet` or `.pq` file into a frame, sorted by the time column when there is one.
///
/// # Errors
/// A [`ReadError`] naming the file and, where it applies, the line, row and column: unreadable file, wrong field
/// count, empty header name, missing or repeated column, unparseable or repeated timestamp, unsupported Parquet type.
pub fn read_frame(path: &Path, opts: &ReadOptions) -> Result<Frame, ReadError> {
    let mut parser = match &opts.time_format {
        Some(format) => TimeParser::with_format(format)
            .map_err(|reason| ReadError::TimeFormat { format: format.clone(), reason })?,
        None => TimeParser::Auto(None),
    };
    let frame = match kind_of(path)? {
        FileKind::Csv => read_csv(path, opts, &mut parser)?,
        FileKind::Parquet => read_parquet(path, opts, &mut parser)?,
    };
    match &opts.time_column {
        Some(time) => frame.sorted_by_time(time).map_err(|e| match e {
            DomainError::DuplicateTime { column, millis } => {
                let style = IsoStyle::for_column(&[millis]);
                ReadError::DuplicateTime { path: path.to_path_buf(), column, time: format_iso(millis, style) }
            }
            other => unreachable_domain(path, other),
        }),
        None => Ok(frame),
    }
}

/// The frame was just built from unique names and a timestamp column, so only the handled cases can happen;
/// anything else is reported as a bug rather than panicking.
fn unreachable_domain(path: &Path, e: DomainError) -> ReadError {
    ReadError::Internal { path: path.to_path_buf(), message: e.to_string() }
}

/// The columns to keep, in order, after checking that every named column exists.
fn plan(path: &Path, available: &[String], opts: &ReadOptions) -> Result<Vec<String>, ReadError> {
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

fn check_unique(path: &Path, names: &[String]) -> Result<(), ReadError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(ReadError::DuplicateColumn { path: path.to_path_buf(), column: name.clone() });
        }
    }
    Ok(())
}

fn build_frame(path: &Path, columns: Vec<(String, Column)>) -> Result<Frame, ReadError> {
    Frame::new(columns).map_err(|e| match e {
        DomainError::DuplicateColumn(column) => ReadError::DuplicateColumn { path: path.to_path_buf(), column },
        other => unreachable_domain(path, other),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/// A CSV file's cells, column by column, with the line each row starts on.
struct RawCsv {
    names: Vec<String>,
    cells: Vec<Vec<String>>,
    lines: Vec<u64>,
}

fn csv_error(path: &Path, e: csv::Error) -> ReadError {
    let line = e.position().map(csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ReadError::Io { path: path.to_path_buf(), source },
        csv::ErrorKind::Utf8 { pos, err } => ReadError::Csv {
            path: path.to_path_buf(),
            line: pos.map(|p| p.line()).or(line),
            message: format!("invalid utf-8 in field {}", err.field() + 1),
        },
        other => ReadError::Csv { path: path.to_path_buf(), line, message: format!("{other:?}") },
    }
}

fn read_raw_csv(path: &Path) -> Result<RawCsv, ReadError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 16, file));
    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
        return Err(ReadError::NoHeader { path: path.to_path_buf() });
    }
    let mut names: Vec<String> = record.iter().map(str::to_string).collect();
    let width = names.len();
    // The ECB file ends every line with a comma: an unnamed last column that must be empty everywhere.
    let trailing_unnamed = width > 1 && names[width - 1].trim().is_empty();
    if trailing_unnamed {
        names.pop();
    }
    if let Some(index) = names.iter().position(|n| n.trim().is_empty()) {
        return Err(ReadError::EmptyHeader { path: path.to_path_buf(), index: index + 1 });
    }
    check_unique(path, &names)?;
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut lines = Vec::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != width {
            return Err(ReadError::FieldCount {
                path: path.to_path_buf(),
                line,
                expected: width,
                actual: record.len(),
            });
        }
        if trailing_unnamed && !record[width - 1].trim().is_empty() {
            return Err(ReadError::EmptyHeader { path: path.to_path_buf(), index: width });
        }
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell.trim().to_string());
        }
        lines.push(line);
    }
    Ok(RawCsv { names, cells, lines })
}

fn read_csv(path: &Path, opts: &ReadOptions, parser: &mut TimeParser) -> Result<Frame, ReadError> {
    let raw = read_raw_csv(path)?;
    let keep = plan(path, &raw.names, opts)?;
    let na: HashSet<&str> = opts.na_values.iter().map(|s| s.trim()).collect();
    let mut columns = Vec::with_capacity(keep.len());
    for name in keep {
        let index = raw.names.iter().position(|n| *n == name).ok_or_else(|| ReadError::MissingColumn {
            path: path.to_path_buf(),
            column: name.clone(),
            available: raw.names.clone(),
        })?;
        let cells = &raw.cells[index];
        let column = if opts.time_column.as_ref() == Some(&name) {
            let stamps = cells.iter().zip(&raw.lines).map(|(cell, &line)| {
                parse_time(parser, cell, &na).ok_or_else(|| ReadError::BadTime {
                    path: path.to_path_buf(),
                    location: Location::Line(line),
                    column: name.clone(),
                    text: cell.clone(),
                    expected: parser.expected(),
                })
            });
            Column::Timestamp(stamps.collect::<Result<_, _>>()?)
        } else if opts.categorical.contains(&name) {
            categorical_cells(cells, &na)
        } else {
            infer_column(cells, &na)
        };
        columns.push((name, column));
    }
    build_frame(path, columns)
}

fn parse_time(parser: &mut TimeParser, cell: &str, na: &HashSet<&str>) -> Option<i64> {
    if na.contains(cell) {
        return None;
    }
    parser.parse(cell)
}

fn categorical_cells(cells: &[String], na: &HashSet<&str>) -> Column {
    Column::Categorical(cells.iter().map(|c| (!na.contains(c.as_str())).then(|| c.clone())).collect())
}

/// Numeric when every non-missing cell is a number, categorical otherwise.
fn infer_column(cells: &[String], na: &HashSet<&str>) -> Column {
    let mut values = Vec::with_capacity(cells.len());
    for cell in cells {
        if na.contains(cell.as_str()) {
            values.push(f64::NAN);
        } else {
            match cell.parse::<f64>() {
                Ok(v) => values.push(v),
                Err(_) => return categorical_cells(cells, na),
            }
        }
    }
    Column::Numeric(values)
}

// ---------------------------------------------------------------------------------------------------------------
// Parquet

fn read_parquet(path: &Path, opts: &ReadOptions, parser: &mut TimeParser) -> Result<Frame, ReadError> {
    let file = File::open(path).map_err(io_err(path))?;
    let df = ParquetReader::new(file).finish().map_err(parquet_err(path))?;
    let available: Vec<String> = df.columns().iter().map(|c| c.name().to_string()).collect();
    check_unique(path, &available)?;
    let keep = plan(path, &available, opts)?;
    let mut columns = Vec::with_capacity(keep.len());
    for name in keep {
        let series = df.column(&name).map_err(parquet_err(path))?.as_materialized_series();
        let column = convert_series(path, &name, series)?;
        let column = if opts.time_column.as_ref() == Some(&name) {
            time_from_column(path, &name, column, series.dtype(), parser)?
        } else if opts.categorical.contains(&name) {
            to_categorical(column)
        } else {
            column
        };
        columns.push((name, column));
    }
    build_frame(path, columns)
}

fn convert_series(path: &Path, name: &str, series: &Series) -> Result<Column, ReadError> {
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
            Column::Numeric(cast.f64().map_err(parquet_err(path))?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        }
        DataType::String => Column::Categorical(
            series.str().map_err(parquet_err(path))?.iter().map(|v| v.map(str::to_string)).collect(),
        ),
        // pandas' categorical columns arrive as dictionary-encoded categoricals
        dt if dt.is_categorical() || dt.is_enum() => {
            let text = series.cast(&DataType::String).map_err(parquet_err(path))?;
            Column::Categorical(text.str().map_err(parquet_err(path))?.iter().map(|v| v.map(str::to_string)).collect())
        }
        DataType::Date => {
            let days = series.to_physical_repr();
            let days = days.i32().map_err(parquet_err(path))?;
            let stamps = days
                .iter()
                .enumerate()
                .map(|(row, v)| v.map(|d| i64::from(d) * 86_400_000).ok_or_else(|| null_time(path, name, row)));
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
            let stamps = raw
                .iter()
                .enumerate()
                .map(|(row, v)| v.map(|t| t.div_euclid(per_ms)).ok_or_else(|| null_time(path, name, row)));
            Column::Timestamp(stamps.collect::<Result<_, _>>()?)
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

fn time_from_column(
    path: &Path,
    name: &str,
    column: Column,
    dtype: &DataType,
    parser: &mut TimeParser,
) -> Result<Column, ReadError> {
    match column {
        Column::Timestamp(_) => Ok(column),
        Column::Categorical(texts) => {
            let stamps = texts.iter().enumerate().map(|(row, text)| {
                let text = text.as_deref().map_or("", str::trim);
                parser.parse(text).ok_or_else(|| ReadError::BadTime {
                    path: path.to_path_buf(),
                    location: Location::Row(row + 1),
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

fn to_categorical(column: Column) -> Column {
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

// ---------------------------------------------------------------------------------------------------------------
// Writing

/// Shortest text that parses back to the same `f64` (Rust's `{}`), in exponent form for very large or small
/// magnitudes; NaN is the empty string.
pub(crate) fn format_number(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else if v == 0.0 || !v.is_finite() || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Writes a frame as `.csv` (ISO timestamps, round-trip numbers, NaN and missing labels as empty cells) or
/// `.parquet`/`.pq` (Float64, String, Datetime(ms) without time zone, missing values as nulls). The file is written
/// to a temporary file in the same folder and renamed, so a crash never leaves half a file.
///
/// # Errors
/// [`ReadError::UnsupportedFormat`], [`ReadError::Io`] or [`ReadError::Parquet`].
pub fn write_frame(path: &Path, frame: &Frame) -> Result<(), ReadError> {
    let kind = kind_of(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(path))?;
    match kind {
        FileKind::Csv => write_csv(path, frame, tmp.as_file_mut())?,
        FileKind::Parquet => write_parquet(path, frame, tmp.as_file_mut())?,
    }
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ReadError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

fn write_csv(path: &Path, frame: &Frame, file: &mut File) -> Result<(), ReadError> {
    let to_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(source) => ReadError::Io { path: path.to_path_buf(), source },
        other => ReadError::Csv { path: path.to_path_buf(), line: None, message: format!("{other:?}") },
    };
    let mut writer = csv::Writer::from_writer(BufWriter::new(file));
    writer.write_record(frame.names()).map_err(to_err)?;
    let styles: Vec<Option<IsoStyle>> = frame
        .columns()
        .map(|(_, c)| match c {
            Column::Timestamp(v) => Some(IsoStyle::for_column(v)),
            _ => None,
        })
        .collect();
    let mut row: Vec<String> = Vec::with_capacity(frame.n_cols());
    for i in 0..frame.n_rows() {
        row.clear();
        for ((_, column), style) in frame.columns().zip(&styles) {
            row.push(match column {
                Column::Numeric(v) => format_number(v[i]),
                Column::Categorical(v) => v[i].clone().unwrap_or_else(String::new),
                Column::Timestamp(v) => format_iso(v[i], style.unwrap_or(IsoStyle::Millis)),
            });
        }
        writer.write_record(&row).map_err(to_err)?;
    }
    let mut inner = writer
        .into_inner()
        .map_err(|e| ReadError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
    inner.flush().map_err(io_err(path))
}

fn write_parquet(path: &Path, frame: &Frame, file: &mut File) -> Result<(), ReadError> {
    let mut columns = Vec::with_capacity(frame.n_cols());
    for (name, column) in frame.columns() {
        let series = match column {
            Column::Numeric(v) => {
                let values: Vec<Option<f64>> = v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect();
                Series::new(name.into(), values)
            }
            Column::Categorical(v) => {
                let values: Vec<Option<&str>> = v.iter().map(Option::as_deref).collect();
                Series::new(name.into(), values)
            }
            Column::Timestamp(v) => {
                Int64Chunked::from_vec(name.into(), v.clone()).into_datetime(TimeUnit::Milliseconds, None).into_series()
            }
        };
        columns.push(series.into_column());
    }
    let mut df = DataFrame::new(frame.n_rows(), columns).map_err(parquet_err(path))?;
    ParquetWriter::new(file).finish(&mut df).map_err(parquet_err(path))?;
    Ok(())
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
