//! A local, content-addressed cache of model bundles fetched from a store.
//!
//! Layout: `bundles/<sha256>/` holds one bundle, named by a hash of its files (each file's path and sha256);
//! `refs/<sha256 of the key>` holds the content hash a key (server, run or logged model, path) resolved to. A second
//! fetch of the same key finds the ref and downloads nothing. Bundles are written to a temporary folder inside the
//! cache and renamed into place, so a crash never leaves a half-written bundle under `bundles/`; callers still verify
//! the bundle's own checksums when they read it.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::PortError;
use sha2::{Digest, Sha256};

/// The cache folder.
#[derive(Debug, Clone)]
pub struct BundleCache {
    root: PathBuf,
}

/// Where a fetched bundle is, and whether this call downloaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub dir: PathBuf,
    pub content_sha256: String,
    pub downloaded: bool,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> PortError {
    PortError::io(format!("bundle cache: cannot {what} {}: {e}", path.display()))
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A hash of every file under `dir`: sorted relative paths with their sha256.
fn content_hash(dir: &Path) -> Result<String, PortError> {
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| io("read", &d, &e))? {
            let entry = entry.map_err(|e| io("read", &d, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let path = entry.path();
            if path.is_dir() {
                stack.push((path, child));
            } else {
                let bytes = fs::read(&path).map_err(|e| io("read", &path, &e))?;
                files.push(format!("{child}\t{}\n", hex_sha256(&bytes)));
            }
        }
    }
    files.sort();
    Ok(hex_sha256(files.concat().as_bytes()))
}

impl BundleCache {
    /// The cache at `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> BundleCache {
        BundleCache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bundle for `key`: from the cache when a ref exists and its folder is there, else downloaded by `fetch`
    /// (which fills the folder it is given) and stored.
    ///
    /// # Errors
    /// What `fetch` returns, or `store_io` when the cache cannot be written.
    pub fn get_or_fetch(
        &self,
        key: &str,
        fetch: impl FnOnce(&Path) -> Result<(), PortError>,
    ) -> Result<Cached, PortError> {
        let refs = self.root.join("refs");
        let bundles = self.root.join("bundles");
        let ref_file = refs.join(hex_sha256(key.as_bytes()));
        if let Ok(content) = fs::read_to_string(&ref_file) {
            let content = content.trim().to_string();
            let dir = bundles.join(&content);
            if !content.is_empty() && dir.is_dir() {
                return Ok(Cached { dir, content_sha256: content, downloaded: false });
            }
        }
        for d in [&refs, &bundles] {
            fs::create_dir_all(d).map_err(|e| io("create", d, &e))?;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&self.root)
            .map_err(|e| io("create a folder in", &self.root, &e))?;
        let staged = tmp.path().join("bundle");
        fetch(&staged)?;
        let content = content_hash(&staged)?;
        let dir = bundles.join(&content);
        if !dir.is_dir() {
            // a concurrent fetch of the same content may win the rename: then its copy is the same bytes
            if let Err(e) = fs::rename(&staged, &dir)
                && !dir.is_dir()
            {
                return Err(io("move into place", &dir, &e));
            }
        }
        let ref_tmp = refs.join(format!(".{}.tmp", std::process::id()));
        fs::write(&ref_tmp, &content).map_err(|e| io("write", &ref_tmp, &e))?;
        fs::rename(&ref_tmp, &ref_file).map_err(|e| io("write", &ref_file, &e))?;
        Ok(Cached { dir, content_sha256: content, downloaded: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_fetch_downloads_nothing_and_same_content_is_stored_once() {
        let root = tempfile::tempdir().unwrap();
        let cache = BundleCache::new(root.path());
        let write = |dir: &Path| -> Result<(), PortError> {
            fs::create_dir_all(dir.join("sub")).unwrap();
            fs::write(dir.join("MLmodel"), "flavors: {}").unwrap();
            fs::write(dir.join("sub/x.json"), "{}").unwrap();
            Ok(())
        };
        let first = cache.get_or_fetch("http://s|run|model", write).unwrap();
        assert!(first.downloaded);
        assert_eq!(fs::read_to_string(first.dir.join("sub/x.json")).unwrap(), "{}");
        let second = cache.get_or_fetch("http://s|run|model", |_| panic!("must not download")).unwrap();
        assert_eq!(second, Cached { downloaded: false, ..first.clone() });
        let other_key = cache.get_or_fetch("http://s|run2|model", write).unwrap();
        assert_eq!(other_key.dir, first.dir);
        // a failed fetch leaves nothing behind
        let err = cache.get_or_fetch("k3", |_| Err(PortError::io("server gone"))).unwrap_err();
        assert!(err.message.contains("server gone"));
        assert_eq!(fs::read_dir(root.path().join("bundles")).unwrap().count(), 1);
    }
}
