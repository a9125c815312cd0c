//! Crash-safe file writes for the local store and the name rules MLflow applies to keys. Every file is first written
//! to a temporary file in the store's `.trash/` folder (same file system; MLflow lists only sub-folders there, so a
//! leftover temporary file after a crash is never misread as a param, tag or metric), fsynced, then renamed over its
//! target, and the target's folder is fsynced.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kiln_domain::{Code, PortError};

use super::pyyaml::{self, Yaml};

pub(crate) fn io_error(what: &str, path: &Path, e: &io::Error) -> PortError {
    PortError::io(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `bytes` to `target` atomically. `staging` is the folder for the temporary file (on the same file system).
pub(crate) fn write_atomic(staging: &Path, target: &Path, bytes: &[u8]) -> Result<(), PortError> {
    write_atomic_with(staging, target, |file| file.write_all(bytes))
}

/// Streams a local file into `target` atomically.
pub(crate) fn copy_atomic(staging: &Path, source: &Path, target: &Path) -> Result<(), PortError> {
    let mut input = File::open(source).map_err(|e| io_error("read", source, &e))?;
    write_atomic_with(staging, target, |file| io::copy(&mut input, file).map(|_| ()))
}

fn write_atomic_with(
    staging: &Path,
    target: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), PortError> {
    let mut tmp = staged(staging, |dir| tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(dir))
        .map_err(|e| io_error("create a temporary file in", staging, &e))?;
    fill(tmp.as_file_mut()).map_err(|e| io_error("write", target, &e))?;
    tmp.as_file().sync_all().map_err(|e| io_error("fsync", target, &e))?;
    tmp.persist(target).map_err(|e| io_error("write", target, &e.error))?;
    sync_parent(target)
}

/// `make(staging)`, creating the staging folder first when it is missing (a store MLflow made, or one opened by a
/// reader, may not have it yet).
fn staged<T>(staging: &Path, make: impl Fn(&Path) -> io::Result<T>) -> io::Result<T> {
    match make(staging) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(staging)?;
            make(staging)
        }
        other => other,
    }
}

/// Makes a rename or removal in `path`'s folder durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), PortError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("fsync", dir, &e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `path` (its parent must exist). `Ok(false)` when it already existed: the caller lost a race for that
/// name and tries the next one.
pub(crate) fn create_dir_new(path: &Path) -> Result<bool, PortError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("create", path, &e)),
    }
}

pub(crate) fn create_dir_all(path: &Path) -> Result<(), PortError> {
    fs::create_dir_all(path).map_err(|e| io_error("create", path, &e))
}

/// The whole file as text; `Ok(None)` when it does not exist.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>, PortError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, &e)),
    };
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| io_error("read", path, &e))?;
    Ok(Some(text))
}

/// The names of the entries of a folder, sorted; empty when the folder does not exist.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<(String, bool)>, PortError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, &e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, &e))?;
        let is_dir = entry.file_type().map_err(|e| io_error("inspect", &entry.path(), &e))?.is_dir();
        let Ok(name) = entry.file_name().into_string() else {
            return Err(PortError::new(
                Code::StoreCorrupt,
                format!("{} holds a file name that is not utf-8", dir.display()),
            ));
        };
        names.push((name, is_dir));
    }
    names.sort();
    Ok(names)
}

/// Every file under `dir`, as `/`-separated paths relative to it (params, tags and metrics may contain `/`).
pub(crate) fn walk_files(dir: &Path) -> Result<Vec<String>, PortError> {
    let mut out = Vec::new();
    walk_into(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_into(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), PortError> {
    for (name, is_dir) in list_names(dir)? {
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if is_dir {
            walk_into(&dir.join(&name), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// A `meta.yaml` read back: its path (for messages) and entries.
pub(crate) struct Meta {
    pub(crate) path: PathBuf,
    pub(crate) entries: Vec<(String, Yaml)>,
}

impl Meta {
    pub(crate) fn new(path: PathBuf, entries: Vec<(String, Yaml)>) -> Meta {
        Meta { path, entries }
    }

    /// Reads a `meta.yaml`; `Ok(None)` when it does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Meta>, PortError> {
        let Some(text) = read_text(path)? else {
            return Ok(None);
        };
        let corrupt = |why: String| PortError::new(Code::StoreCorrupt, format!("{}: {why}", path.display()));
        let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        match pyyaml::from_serde(&value).map_err(|why| corrupt(format!("unsupported content: {why}")))? {
            Yaml::Map(entries) => Ok(Some(Meta { path: path.to_path_buf(), entries })),
            _ => Err(corrupt("expected a mapping".to_string())),
        }
    }

    fn corrupt(&self, key: &str, expected: &str) -> PortError {
        PortError::new(Code::StoreCorrupt, format!("{}: key '{key}' should be {expected}", self.path.display()))
    }

    fn get(&self, key: &str) -> Option<&Yaml> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string value (integers are accepted and printed, as MLflow once wrote ids as integers).
    pub(crate) fn string(&self, key: &str) -> Result<String, PortError> {
        self.opt_string(key)?.ok_or_else(|| self.corrupt(key, "a string"))
    }

    /// A string value, `None` when missing or null.
    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>, PortError> {
        match self.get(key) {
            None | Some(Yaml::Null) => Ok(None),
            Some(Yaml::Str(s)) => Ok(Some(s.clone())),
            Some(Yaml::Int(i)) => Ok(Some(i.to_string())),
            Some(_) => Err(self.corrupt(key, "a string")),
        }
    }

    /// The string at `key` of the mapping at `map` (`tags: {mlflow.data.context: training}`), `None` when either is
    /// missing.
    pub(crate) fn map_string(&self, map: &str, key: &str) -> Result<Option<String>, PortError> {
        match self.get(map) {
            None | Some(Yaml::Null) => Ok(None),
            Some(Yaml::Map(entries)) => match entries.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
                None | Some(Yaml::Null) => Ok(None),
                Some(Yaml::Str(s)) => Ok(Some(s.clone())),
                Some(_) => Err(self.corrupt(&format!("{map}.{key}"), "a string")),
            },
            Some(_) => Err(self.corrupt(map, "a mapping")),
        }
    }

    /// An integer value, `None` when missing or null (strings of digits are accepted).
    pub(crate) fn opt_int(&self, key: &str) -> Result<Option<i64>, PortError> {
        match self.get(key) {
            None | Some(Yaml::Null) => Ok(None),
            Some(Yaml::Int(i)) => Ok(Some(*i)),
            Some(Yaml::Str(s)) => s.parse().map(Some).map_err(|_| self.corrupt(key, "an integer")),
            Some(_) => Err(self.corrupt(key, "an integer")),
        }
    }

    pub(crate) fn set(&mut self, key: &str, value: Yaml) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Writes the file atomically, as PyYAML would.
    pub(crate) fn write(&self, staging: &Path) -> Result<(), PortError> {
        write_atomic(staging, &self.path, pyyaml::dump(&self.entries).as_bytes())
    }
}

/// MLflow's rule for param, metric and tag keys (they become file paths): alphanumerics, `_ - . /` and spaces,
/// at most 250 characters, and a normalised relative path (no empty, `.` or `..` segment, not absolute).
pub(crate) fn check_key(what: &str, key: &str) -> Result<(), PortError> {
    let invalid = |why: &str| PortError::new(Code::ConfigInvalid, format!("invalid {what} key '{key}': {why}"));
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.chars().count() > 250 {
        return Err(invalid("it is longer than 250 characters"));
    }
    if let Some(c) = key.chars().find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' '))) {
        return Err(invalid(&format!(
            "'{c}' is not allowed (only alphanumerics, underscores, dashes, periods, spaces and slashes)"
        )));
    }
    if key.starts_with("..") || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(invalid("it must be a normalised relative path (no leading '/', '//', '.' or '..')"));
    }
    Ok(())
}

/// An artifact path split into its segments; `""` (or `/`) is the artifact root.
pub(crate) fn artifact_segments(path: &str) -> Result<Vec<&str>, PortError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('\\')) {
        return Err(PortError::new(
            Code::ConfigInvalid,
            format!("invalid artifact path '{path}': no empty, '.' or '..' segment and no backslash allowed"),
        ));
    }
    Ok(segments)
}

/// A folder built in the store's staging area and then renamed into place whole, so that readers (kiln and MLflow)
/// see it complete or not at all. Dropped unpublished, it is removed; a crash leaves it in the staging area, under a
/// `.kiln-tmp-` name that [`crate::LocalStore::repair`] removes.
pub(crate) struct StagedDir {
    path: PathBuf,
}

/// The prefix of the staging area's temporary files and folders.
pub(crate) const TMP_PREFIX: &str = ".kiln-tmp-";

impl StagedDir {
    pub(crate) fn new(staging: &Path) -> Result<StagedDir, PortError> {
        let dir = staged(staging, |dir| tempfile::Builder::new().prefix(TMP_PREFIX).tempdir_in(dir))
            .map_err(|e| io_error("create a temporary folder in", staging, &e))?;
        Ok(StagedDir { path: dir.keep() })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the folder to `target`, whose parent must exist. `Ok(false)` when `target` already exists with
    /// something in it (another writer got there first); the staged folder then stays, to be published elsewhere.
    pub(crate) fn publish(&self, target: &Path) -> Result<bool, PortError> {
        match fs::rename(&self.path, target) {
            Ok(()) => {
                sync_parent(target)?;
                Ok(true)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty) => Ok(false),
            Err(e) => Err(io_error(&format!("move {} to", self.path.display()), target, &e)),
        }
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        // after a publish the path is gone; otherwise this is best-effort cleanup of a temporary folder (a leftover is
        // removed by the next repair)
        if self.path.exists() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
