//! Versioned snapshots: what `kiln fetch` writes and training reads back. A snapshot is one Parquet file and its
//! manifest, side by side:
//!
//! ```text
//! <root>/<source>/<name>/<UTC time>-<sha256 prefix>.parquet
//! <root>/<source>/<name>/<UTC time>-<sha256 prefix>.json      (the manifest)
//! ```
//!
//! The Parquet file is streamed page by page (regrouped into row groups of 65,536 rows, so the file depends on the rows
//! alone, not on the pages they came in) into a temporary file in the same folder, flushed, hashed and renamed;
//! the manifest is written the same way after it. A snapshot exists once its manifest does: a crash between the two
//! leaves a Parquet file no listing shows, never a manifest without its data. A fetch whose file has the same sha256
//! as one already there writes nothing and says so.
//!
//! Key decision: the sha256 is that of the Parquet file's bytes, the same digest a training run records for any data
//! file, so a run's `kiln.data.sha256` tag names the snapshot it read. Polars writes the same bytes for the same
//! row groups (no write time in the file), so an unchanged source gives an unchanged digest, however it paged.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::{BatchedWriter, DataFrame, DataType, ParquetWriter, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::fetch::FetchError;
use crate::read::sha256_file;
use crate::timefmt::{IsoStyle, format_iso};

/// The hex digits of the sha256 in a snapshot's file name.
const SHA_PREFIX: usize = 12;

/// Rows per Parquet row group. Pages are regrouped to it, so the same rows give the same file (and sha256) whatever
/// page sizes the source sent them in.
const ROW_GROUP: usize = 65_536;

/// The shortest sha256 prefix a reference may use.
const MIN_REF_PREFIX: usize = 4;

/// One column of a snapshot: its name and its Parquet (polars) type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestColumn {
    pub name: String,
    pub dtype: String,
}

/// What a snapshot holds and where it came from, written beside its Parquet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `yahoo`, `bigquery`, `file` or `url`
    pub source: String,
    /// the snapshot's name within its source (e.g. `NVDA-MSFT-AAPL_1d`)
    pub name: String,
    /// what was asked of the source (never a credential)
    pub request: serde_json::Value,
    /// when the fetch finished, UTC (`YYYY-MM-DDTHH:MM:SSZ`)
    pub fetched_at: String,
    pub rows: u64,
    pub columns: Vec<ManifestColumn>,
    /// the column the time range is read from, when there is one
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// the first and last time (UTC; a date for a date column)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<[String; 2]>,
    /// the sha256 of the Parquet file
    pub sha256: String,
    /// the Parquet file's name, in the manifest's folder
    pub file: String,
    pub bytes: u64,
    pub kiln_version: String,
    /// what the fetch dropped or noticed (all-null bars, retries)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A snapshot on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// the Parquet file
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl Snapshot {
    /// `<source>/<name>@<file stem>`: the exact reference of this snapshot.
    pub fn reference(&self) -> String {
        let stem = self.manifest.file.trim_end_matches(".parquet");
        format!("{}/{}@{stem}", self.manifest.source, self.manifest.name)
    }
}

/// What a fetch did to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotOutcome {
    /// a new snapshot was written
    Written(Snapshot),
    /// the data equals this snapshot's, byte for byte: nothing new was written
    Unchanged(Snapshot),
}

impl SnapshotOutcome {
    pub fn snapshot(&self) -> &Snapshot {
        match self {
            SnapshotOutcome::Written(s) | SnapshotOutcome::Unchanged(s) => s,
        }
    }
}

/// The snapshots under one root folder (`data/raw` by default).
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    pub fn new(root: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every snapshot, by source, name and time (oldest first). Parquet files without a manifest (a fetch that
    /// died between the two) and temporary files are not snapshots and are left out.
    ///
    /// # Errors
    /// [`FetchError::Io`] reading a folder, [`FetchError::Snapshot`] for a manifest that does not parse.
    pub fn list(&self) -> Result<Vec<Snapshot>, FetchError> {
        let mut out = Vec::new();
        if !self.root.exists() {
            return Ok(out);
        }
        for source in sorted_dirs(&self.root)? {
            for name in sorted_dirs(&source)? {
                out.extend(snapshots_in(&name)?);
            }
        }
        Ok(out)
    }

    /// The snapshot a reference names: `<source>/<name>`, `<source>/<name>@latest` (the newest), or
    /// `<source>/<name>@<prefix>` (the one whose sha256 or file name starts with it, at least 4 characters).
    ///
    /// # Errors
    /// [`FetchError::Request`] for a malformed reference, [`FetchError::NoSnapshot`] when nothing or more than one
    /// snapshot matches (the message lists what there is), [`FetchError::Snapshot`] for a manifest that does not
    /// parse.
    pub fn resolve(&self, reference: &str) -> Result<Snapshot, FetchError> {
        let (key, version) = reference.split_once('@').unwrap_or((reference, "latest"));
        let Some((source, name)) = key.split_once('/') else {
            return Err(FetchError::Request(format!(
                "snapshot reference '{reference}': expected <source>/<name>[@latest|@<sha256 prefix>], e.g. \
                 yahoo/NVDA_1d@latest"
            )));
        };
        check_segment("snapshot source", source)?;
        check_segment("snapshot name", name)?;
        let dir = self.root.join(source).join(name);
        let all = if dir.is_dir() { snapshots_in(&dir)? } else { Vec::new() };
        if all.is_empty() {
            let known: Vec<String> = self
                .list()?
                .iter()
                .map(|s| format!("{}/{}", s.manifest.source, s.manifest.name))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let known = if known.is_empty() { "none (run kiln fetch first)".to_string() } else { known.join(", ") };
            return Err(FetchError::NoSnapshot(format!(
                "no snapshot {source}/{name} under {}; snapshots there: {known}",
                self.root.display()
            )));
        }
        if version == "latest" {
            return Ok(all.into_iter().last().expect("checked non-empty"));
        }
        if version.len() < MIN_REF_PREFIX {
            return Err(FetchError::Request(format!(
                "snapshot reference '{reference}': a version prefix needs at least {MIN_REF_PREFIX} characters"
            )));
        }
        let matching: Vec<Snapshot> = all
            .iter()
            .filter(|s| s.manifest.sha256.starts_with(version) || s.manifest.file.starts_with(version))
            .cloned()
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one")),
            0 => Err(FetchError::NoSnapshot(format!(
                "no snapshot of {source}/{name} matches '{version}'; there are: {}",
                all.iter().map(|s| s.manifest.file.trim_end_matches(".parquet")).collect::<Vec<_>>().join(", ")
            ))),
            n => Err(FetchError::NoSnapshot(format!(
                "'{version}' matches {n} snapshots of {source}/{name}; give more characters"
            ))),
        }
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, FetchError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_type().map_err(io_error(dir))?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The snapshots of one `<source>/<name>` folder, oldest first (their file names start with the UTC time).
fn snapshots_in(dir: &Path) -> Result<Vec<Snapshot>, FetchError> {
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let is_manifest = path.extension().is_some_and(|e| e == "json")
            && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'));
        if is_manifest {
            manifests.push(path);
        }
    }
    manifests.sort();
    manifests.into_iter().map(|m| read_manifest(&m)).collect()
}

fn read_manifest(path: &Path) -> Result<Snapshot, FetchError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| FetchError::Snapshot(format!("{}: not a kiln snapshot manifest: {e}", path.display())))?;
    let data = path.with_file_name(&manifest.file);
    if !data.is_file() {
        return Err(FetchError::Snapshot(format!("{}: its data file {} is missing", path.display(), data.display())));
    }
    Ok(Snapshot { path: data, manifest })
}

/// A source or name usable as one folder: letters, digits and `. _ - = ^`, not starting with a dot.
pub(crate) fn check_segment(what: &str, text: &str) -> Result<(), FetchError> {
    let ok = !text.is_empty()
        && !text.starts_with('.')
        && text.len() <= 120
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=' | '^'));
    if ok {
        Ok(())
    } else {
        Err(FetchError::Request(format!(
            "{what} '{text}': use letters, digits and . _ - = ^ only (at most 120, not starting with a dot)"
        )))
    }
}

/// Streams pages into a new snapshot; see the module documentation. Dropped without [`SnapshotWriter::finish`], it
/// leaves nothing behind.
pub(crate) struct SnapshotWriter {
    dir: PathBuf,
    source: String,
    name: String,
    request: serde_json::Value,
    tmp: tempfile::NamedTempFile,
    file: Option<BufWriter<File>>,
    writer: Option<BatchedWriter<BufWriter<File>>>,
    /// rows not written yet: less than a row group
    pending: Option<DataFrame>,
    schema: Option<Schema>,
    time_column: Option<String>,
    /// the smallest and largest time seen, in the column's physical unit (days for a date)
    time_span: Option<(i64, i64)>,
    rows: u64,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter").field("dir", &self.dir).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl SnapshotWriter {
    /// Starts a snapshot of `<source>/<name>`; `time_column` (when the pages have it) gives the manifest's time
    /// range.
    pub(crate) fn begin(
        store: &SnapshotStore,
        source: &str,
        name: &str,
        request: serde_json::Value,
        time_column: Option<&str>,
    ) -> Result<SnapshotWriter, FetchError> {
        check_segment("snapshot source", source)?;
        check_segment("snapshot name", name)?;
        let dir = store.root.join(source).join(name);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let tmp =
            tempfile::Builder::new().prefix(".fetch-").suffix(".tmp").tempfile_in(&dir).map_err(io_error(&dir))?;
        let file = tmp.as_file().try_clone().map_err(io_error(tmp.path()))?;
        Ok(SnapshotWriter {
            dir,
            source: source.to_string(),
            name: name.to_string(),
            request,
            tmp,
            file: Some(BufWriter::with_capacity(1 << 16, file)),
            writer: None,
            pending: None,
            schema: None,
            time_column: time_column.map(str::to_string),
            time_span: None,
            rows: 0,
        })
    }

    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one page; every page must have the first page's columns and types.
    pub(crate) fn page(&mut self, df: &DataFrame) -> Result<(), FetchError> {
        let schema = df.schema().as_ref().clone();
        match &self.schema {
            Some(first) if *first != schema => {
                return Err(FetchError::Snapshot(format!(
                    "{}/{}: a page has the columns {:?}, the first one had {:?}",
                    self.source,
                    self.name,
                    schema.iter_names().collect::<Vec<_>>(),
                    first.iter_names().collect::<Vec<_>>()
                )));
            }
            Some(_) => {}
            None => self.schema = Some(schema.clone()),
        }
        if let Some(time) = &self.time_column
            && let Some(span) = physical_span(df, time)
        {
            self.time_span = Some(match self.time_span {
                Some((lo, hi)) => (lo.min(span.0), hi.max(span.1)),
                None => span,
            });
        }
        let path = self.tmp.path().to_path_buf();
        if self.writer.is_none() {
            let out = self.file.take().ok_or_else(|| FetchError::Snapshot("the snapshot lost its file".into()))?;
            let writer = ParquetWriter::new(out).batched(&schema).map_err(parquet_error(&path))?;
            self.writer = Some(writer);
        }
        let mut pending = match self.pending.take() {
            Some(mut p) => {
                p.vstack_mut(df).map_err(parquet_error(&path))?;
                p
            }
            None => df.clone(),
        };
        while pending.height() >= ROW_GROUP {
            let rest = pending.slice(ROW_GROUP as i64, pending.height() - ROW_GROUP);
            self.write_group(pending.slice(0, ROW_GROUP))?;
            pending = rest;
        }
        self.pending = Some(pending);
        self.rows += df.height() as u64;
        Ok(())
    }

    /// Writes one row group, its columns in one chunk each (the bytes then depend on the rows alone).
    fn write_group(&mut self, mut group: DataFrame) -> Result<(), FetchError> {
        let path = self.tmp.path().to_path_buf();
        if group.height() == 0 {
            return Ok(());
        }
        group.rechunk_mut();
        match self.writer.as_mut() {
            Some(w) => w.write_batch(&group).map_err(parquet_error(&path)),
            None => Err(FetchError::Snapshot("the snapshot lost its writer".into())),
        }
    }

    /// Finishes the Parquet file and, unless a snapshot with the same sha256 is already there, renames it and
    /// writes its manifest.
    pub(crate) fn finish(mut self, notes: Vec<String>) -> Result<SnapshotOutcome, FetchError> {
        let tmp_path = self.tmp.path().to_path_buf();
        if let Some(rest) = self.pending.take() {
            self.write_group(rest)?;
        }
        let Some(writer) = self.writer.take() else {
            return Err(FetchError::Empty(format!("{}/{}: the source gave no rows", self.source, self.name)));
        };
        if self.rows == 0 {
            return Err(FetchError::Empty(format!("{}/{}: the source gave no rows", self.source, self.name)));
        }
        writer.finish().map_err(parquet_error(&tmp_path))?;
        self.tmp.as_file().sync_all().map_err(io_error(&tmp_path))?;
        let sha256 = sha256_file(&tmp_path)?;
        if let Some(same) = snapshots_in(&self.dir)?.into_iter().find(|s| s.manifest.sha256 == sha256) {
            return Ok(SnapshotOutcome::Unchanged(same));
        }
        let now = now_ms();
        let stamp = format_iso(now, IsoStyle::Seconds).replace(['-', ':'], "") + "Z";
        let stem = format!("{stamp}-{}", &sha256[..SHA_PREFIX]);
        let file = format!("{stem}.parquet");
        let data_path = self.dir.join(&file);
        let bytes = self.tmp.as_file().metadata().map_err(io_error(&tmp_path))?.len();
        let schema = self.schema.take().unwrap_or_default();
        let columns = schema
            .iter()
            .map(|(name, dtype)| ManifestColumn { name: name.to_string(), dtype: dtype.to_string() })
            .collect();
        let time_range = match (&self.time_column, self.time_span) {
            (Some(time), Some((lo, hi))) => schema.get(time.as_str()).map(|dtype| show_range(dtype, lo, hi)),
            _ => None,
        };
        let manifest = Manifest {
            source: self.source.clone(),
            name: self.name.clone(),
            request: self.request.clone(),
            fetched_at: format_iso(now, IsoStyle::Seconds) + "Z",
            rows: self.rows,
            columns,
            time_column: self.time_column.clone().filter(|_| time_range.is_some()),
            time_range,
            sha256,
            file: file.clone(),
            bytes,
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
            notes,
        };
        self.tmp
            .persist_noclobber(&data_path)
            .map_err(|e| FetchError::Io { path: data_path.clone(), source: e.error })?;
        let manifest_path = self.dir.join(format!("{stem}.json"));
        let mut text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| FetchError::Snapshot(format!("cannot write the manifest: {e}")))?;
        text.push('\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".manifest-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(io_error(&self.dir))?;
        tmp.write_all(text.as_bytes()).map_err(io_error(&manifest_path))?;
        tmp.as_file().sync_all().map_err(io_error(&manifest_path))?;
        tmp.persist_noclobber(&manifest_path)
            .map_err(|e| FetchError::Io { path: manifest_path.clone(), source: e.error })?;
        if let Ok(dir) = File::open(&self.dir) {
            // the renames themselves survive a crash (best effort: some file systems refuse to sync a folder)
            let _ = dir.sync_all();
        }
        Ok(SnapshotOutcome::Written(Snapshot { path: data_path, manifest }))
    }
}

fn parquet_error(path: &Path) -> impl Fn(polars::prelude::PolarsError) -> FetchError + '_ {
    move |e| FetchError::Parquet { path: path.to_path_buf(), message: e.to_string() }
}

/// The smallest and largest value of a date or datetime column, in its physical unit; `None` for other types or
/// an all-null column.
fn physical_span(df: &DataFrame, column: &str) -> Option<(i64, i64)> {
    let series = df.column(column).ok()?.as_materialized_series();
    match series.dtype() {
        DataType::Date => {
            let days = series.to_physical_repr();
            let days = days.i32().ok()?;
            span(days.iter().flatten().map(i64::from))
        }
        DataType::Datetime(..) => {
            let raw = series.to_physical_repr();
            let raw = raw.i64().ok()?;
            span(raw.iter().flatten())
        }
        _ => None,
    }
}

fn span(values: impl Iterator<Item = i64>) -> Option<(i64, i64)> {
    values.fold(None, |acc, v| Some(acc.map_or((v, v), |(lo, hi): (i64, i64)| (lo.min(v), hi.max(v)))))
}

/// The first and last value of a date or datetime column as ISO text, UTC, both in the same style.
fn show_range(dtype: &DataType, lo: i64, hi: i64) -> [String; 2] {
    let to_ms = |value: i64| match dtype {
        DataType::Date => value * 86_400_000,
        DataType::Datetime(TimeUnit::Nanoseconds, _) => value.div_euclid(1_000_000),
        DataType::Datetime(TimeUnit::Microseconds, _) => value.div_euclid(1_000),
        _ => value,
    };
    let (lo, hi) = (to_ms(lo), to_ms(hi));
    let style = if matches!(dtype, DataType::Date) { IsoStyle::Date } else { IsoStyle::for_column(&[lo, hi]) };
    let zone = if style == IsoStyle::Date { "" } else { "Z" };
    [format_iso(lo, style) + zone, format_iso(hi, style) + zone]
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
