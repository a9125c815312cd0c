//! The local store's artifacts: plain files under the run's artifact folder, written atomically, listed like
//! MLflow's `artifacts/list` (paths relative to the artifact root, directories without a size).

use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::{ArtifactEntry, ArtifactStore, Code, PortError, RunId};

use super::LocalStore;
use super::fsio::{self, artifact_segments, copy_atomic, create_dir_all, io_error, write_atomic};

fn join(base: &Path, segments: &[&str]) -> PathBuf {
    segments.iter().fold(base.to_path_buf(), |p, s| p.join(s))
}

impl LocalStore {
    fn artifact_root(&self, run: &RunId) -> Result<PathBuf, PortError> {
        let loc = self.find_run(run)?;
        self.artifact_dir_of(&loc)
    }

    fn put_tree(&self, local: &Path, target: &Path) -> Result<(), PortError> {
        create_dir_all(target)?;
        for (name, _) in fsio::list_names(local)? {
            let source = local.join(&name);
            // follow symlinks: the artifact store holds plain files
            let meta = fs::metadata(&source).map_err(|e| io_error("read", &source, &e))?;
            if meta.is_dir() {
                self.put_tree(&source, &target.join(&name))?;
            } else if meta.is_file() {
                copy_atomic(&self.staging(), &source, &target.join(&name))?;
            } else {
                return Err(PortError::io(format!("{} is neither a file nor a folder", source.display())));
            }
        }
        Ok(())
    }
}

fn copy_tree(source: &Path, dest: &Path) -> Result<(), PortError> {
    create_dir_all(dest)?;
    for (name, is_dir) in fsio::list_names(source)? {
        let from = source.join(&name);
        let to = dest.join(&name);
        if is_dir {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to).map_err(|e| io_error("copy", &from, &e))?;
        }
    }
    Ok(())
}

impl ArtifactStore for LocalStore {
    fn put_bytes(&self, run: &RunId, path: &str, bytes: &[u8]) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        if segments.is_empty() {
            return Err(PortError::new(Code::ConfigInvalid, "an artifact file path must not be empty"));
        }
        let _guard = self.lock();
        let target = join(&self.artifact_root(run)?, &segments);
        if let Some(parent) = target.parent() {
            create_dir_all(parent)?;
        }
        write_atomic(&self.staging(), &target, bytes)
    }

    fn put_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        if !local_dir.is_dir() {
            return Err(PortError::not_found(format!("local folder {} not found", local_dir.display())));
        }
        let _guard = self.lock();
        let target = join(&self.artifact_root(run)?, &segments);
        self.put_tree(local_dir, &target)
    }

    fn list(&self, run: &RunId, path: &str) -> Result<Vec<ArtifactEntry>, PortError> {
        let segments = artifact_segments(path)?;
        let dir = join(&self.artifact_root(run)?, &segments);
        let prefix = segments.join("/");
        let mut out = Vec::new();
        if !dir.is_dir() {
            // as MLflow: listing a missing path or a file gives nothing
            return Ok(out);
        }
        for (name, is_dir) in fsio::list_names(&dir)? {
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let size = if is_dir {
                None
            } else {
                let file = dir.join(&name);
                Some(fs::metadata(&file).map_err(|e| io_error("inspect", &file, &e))?.len())
            };
            out.push(ArtifactEntry { path: rel, is_dir, size });
        }
        Ok(out)
    }

    fn download_dir(&self, run: &RunId, path: &str, dest: &Path) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        let source = join(&self.artifact_root(run)?, &segments);
        if source.is_dir() {
            copy_tree(&source, dest)
        } else if source.is_file() {
            create_dir_all(dest)?;
            let name = segments.last().copied().unwrap_or("artifact");
            fs::copy(&source, dest.join(name)).map_err(|e| io_error("copy", &source, &e))?;
            Ok(())
        } else {
            Err(PortError::not_found(format!("artifact path '{path}' of run {} not found", run.0)))
        }
    }
}
