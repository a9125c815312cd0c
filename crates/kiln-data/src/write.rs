//! Data files out: a [`Frame`] at once ([`write_frame`]) or chunk by chunk in bounded memory ([`FrameWriter`]); the
//! first is the second with one chunk. CSV gets ISO timestamps, round-trip numbers and empty cells for NaN and
//! missing labels; Parquet gets Float64, String and Datetime(ms) without time zone, missing values as nulls, one row
//! group per chunk. The file is written to a temporary file in the same folder and renamed when finished, so a crash
//! or an error never leaves half a file under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use kiln_domain::{Column, ColumnKind, Frame};
use polars::prelude::{
    BatchedWriter, DataFrame, Float64Chunked, Int64Chunked, IntoColumn, IntoSeries, NamedFrom, ParquetCompression,
    ParquetWriter, Series, TimeUnit,
};

use crate::error::ReadError;
use crate::read::{FileKind, io_err, kind_of, parquet_err};
use crate::timefmt::{IsoStyle, format_iso};

/// The most rows in one Parquet row group; a longer chunk is split.
const MAX_ROW_GROUP: usize = 1 << 18;

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

/// Writes a frame as `.csv` or `.parquet`/`.pq` (see the module documentation).
///
/// # Errors
/// [`ReadError::UnsupportedFormat`], [`ReadError::Io`] or [`ReadError::Parquet`].
pub fn write_frame(path: &Path, frame: &Frame) -> Result<(), ReadError> {
    let mut writer = FrameWriter::create(path)?;
    writer.write(frame)?;
    writer.finish()?;
    Ok(())
}

/// How a Parquet file's pages are compressed. Numbers such as prices and features barely compress (zstd makes a
/// table of floats 5-10% smaller at about twice the writing time of snappy), so a large table of features is written
/// faster with [`Compression::Snappy`] (pandas' and pyarrow's default) or [`Compression::None`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zstd at its default level: the smallest files (kiln's default)
    #[default]
    Zstd,
    /// snappy, as pandas and pyarrow write by default
    Snappy,
    /// LZ4 (the raw block format of the Parquet specification)
    Lz4,
    /// no compression: the fastest to write and to read
    None,
}

impl Compression {
    fn parquet(self) -> ParquetCompression {
        match self {
            Compression::Zstd => ParquetCompression::Zstd(None),
            Compression::Snappy => ParquetCompression::Snappy,
            Compression::Lz4 => ParquetCompression::Lz4Raw,
            Compression::None => ParquetCompression::Uncompressed,
        }
    }
}

/// A `.csv` or `.parquet`/`.pq` file written chunk by chunk: [`FrameWriter::write`] each frame (the first one fixes
/// the columns; every later one must have the same names and types), then [`FrameWriter::finish`]. Dropped without
/// `finish`, it leaves nothing behind.
pub struct FrameWriter {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    sink: Sink,
    columns: Option<Vec<(String, ColumnKind)>>,
    rows: u64,
    compression: Compression,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").field("path", &self.path).field("rows", &self.rows).finish_non_exhaustive()
    }
}

enum Sink {
    Csv {
        writer: Box<csv::Writer<BufWriter<File>>>,
        /// per column: the print style of a timestamp column, fixed by the first chunk and made finer (never
        /// coarser) when a later chunk needs it
        styles: Vec<Option<IsoStyle>>,
    },
    Parquet {
        file: Option<BufWriter<File>>,
        writer: Option<Box<BatchedWriter<BufWriter<File>>>>,
    },
}

impl FrameWriter {
    /// Creates the temporary file beside `path`.
    ///
    /// # Errors
    /// [`ReadError::UnsupportedFormat`] or [`ReadError::Io`].
    pub fn create(path: &Path) -> Result<FrameWriter, ReadError> {
        let kind = kind_of(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(path))?;
        let file = tmp.as_file().try_clone().map_err(io_err(path))?;
        let out = BufWriter::with_capacity(1 << 16, file);
        let sink = match kind {
            FileKind::Csv => Sink::Csv { writer: Box::new(csv::Writer::from_writer(out)), styles: Vec::new() },
            FileKind::Parquet => Sink::Parquet { file: Some(out), writer: None },
        };
        Ok(FrameWriter { path: path.to_path_buf(), tmp, sink, columns: None, rows: 0, compression: Compression::Zstd })
    }

    /// The compression of a Parquet file's pages (zstd unless set; ignored for CSV). Set it before the first
    /// [`FrameWriter::write`].
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> FrameWriter {
        self.compression = compression;
        self
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends the rows of `frame`.
    ///
    /// # Errors
    /// A frame whose columns differ from the first one's ([`ReadError::Internal`]), [`ReadError::Io`] or
    /// [`ReadError::Parquet`].
    pub fn write(&mut self, frame: &Frame) -> Result<(), ReadError> {
        let columns: Vec<(String, ColumnKind)> = frame.columns().map(|(n, c)| (n.to_string(), c.kind())).collect();
        let first_chunk = self.columns.is_none();
        match &self.columns {
            Some(first) if *first != columns => {
                return Err(ReadError::Internal {
                    path: self.path.clone(),
                    message: format!("a chunk has the columns {columns:?}, the first one had {first:?}"),
                });
            }
            Some(_) => {}
            None => self.columns = Some(columns),
        }
        let path = self.path.clone();
        let compression = self.compression.parquet();
        match &mut self.sink {
            Sink::Csv { writer, styles } => write_csv(&path, frame, writer, styles, first_chunk)?,
            Sink::Parquet { file, writer } => {
                for start in (0..frame.n_rows().max(1)).step_by(MAX_ROW_GROUP) {
                    let end = (start + MAX_ROW_GROUP).min(frame.n_rows());
                    let df = if start == 0 && end == frame.n_rows() {
                        parquet_frame(&path, frame)?
                    } else {
                        parquet_frame(&path, &frame.slice(start, end))?
                    };
                    if writer.is_none() {
                        let out = file.take().ok_or_else(|| ReadError::Internal {
                            path: path.clone(),
                            message: "the parquet writer lost its file".to_string(),
                        })?;
                        *writer = Some(Box::new(
                            ParquetWriter::new(out)
                                .with_compression(compression)
                                .batched(df.schema())
                                .map_err(parquet_err(&path))?,
                        ));
                    }
                    if df.height() > 0
                        && let Some(w) = writer.as_mut()
                    {
                        w.write_batch(&df).map_err(parquet_err(&path))?;
                    }
                }
            }
        }
        self.rows += frame.n_rows() as u64;
        Ok(())
    }

    /// Finishes the file (the Parquet footer), flushes it to disk and renames it to its final name; returns the
    /// rows written.
    ///
    /// # Errors
    /// [`ReadError::Io`] or [`ReadError::Parquet`].
    pub fn finish(self) -> Result<u64, ReadError> {
        let path = self.path;
        match self.sink {
            Sink::Csv { writer, .. } => {
                let mut inner = writer
                    .into_inner()
                    .map_err(|e| ReadError::Io { path: path.clone(), source: std::io::Error::other(e.to_string()) })?;
                inner.flush().map_err(io_err(&path))?;
            }
            Sink::Parquet { writer: Some(writer), .. } => {
                writer.finish().map_err(parquet_err(&path))?;
            }
            Sink::Parquet { writer: None, .. } => {
                return Err(ReadError::Internal {
                    path,
                    message: "a parquet file needs at least one chunk for its columns".to_string(),
                });
            }
        }
        self.tmp.as_file().sync_all().map_err(io_err(&path))?;
        self.tmp.persist(&path).map_err(|e| ReadError::Io { path: path.clone(), source: e.error })?;
        Ok(self.rows)
    }
}

fn write_csv(
    path: &Path,
    frame: &Frame,
    writer: &mut csv::Writer<BufWriter<File>>,
    styles: &mut Vec<Option<IsoStyle>>,
    first: bool,
) -> Result<(), ReadError> {
    let to_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(source) => ReadError::Io { path: path.to_path_buf(), source },
        other => ReadError::Csv { path: path.to_path_buf(), line: None, message: format!("{other:?}") },
    };
    if first {
        writer.write_record(frame.names()).map_err(to_err)?;
    }
    let chunk_styles = frame.columns().map(|(_, c)| match c {
        Column::Timestamp(v) => Some(IsoStyle::for_column(v)),
        _ => None,
    });
    if first {
        styles.extend(chunk_styles);
    } else {
        for (kept, chunk) in styles.iter_mut().zip(chunk_styles) {
            if let (Some(kept), Some(chunk)) = (kept.as_mut(), chunk) {
                *kept = (*kept).max(chunk);
            }
        }
    }
    let mut row: Vec<String> = Vec::with_capacity(frame.n_cols());
    for i in 0..frame.n_rows() {
        row.clear();
        for ((_, column), style) in frame.columns().zip(styles.iter()) {
            row.push(match column {
                Column::Numeric(v) => format_number(v[i]),
                Column::Categorical(v) => v[i].clone().unwrap_or_default(),
                Column::Timestamp(v) => format_iso(v[i], style.unwrap_or(IsoStyle::Millis)),
            });
        }
        writer.write_record(&row).map_err(to_err)?;
    }
    Ok(())
}

pub(crate) fn parquet_frame(path: &Path, frame: &Frame) -> Result<DataFrame, ReadError> {
    let mut columns = Vec::with_capacity(frame.n_cols());
    for (name, column) in frame.columns() {
        let series = match column {
            // the values as they are where none is missing; nulls for NaN otherwise
            Column::Numeric(v) if !v.iter().any(|x| x.is_nan()) => {
                Float64Chunked::from_vec(name.into(), v.clone()).into_series()
            }
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
    DataFrame::new(frame.n_rows(), columns).map_err(parquet_err(path))
}
