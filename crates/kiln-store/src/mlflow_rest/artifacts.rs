//! Run artifacts and MLflow 3 logged models through the server's artifact proxy
//! (`mlflow-artifacts:/<exp>/<run>/artifacts/<path>` is `/api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<path>`).

use std::fs;
use std::path::Path;

use kiln_domain::{ArtifactEntry, ArtifactStore, Code, PortError, RunId};
use serde_json::{Value, json};

use super::{Field, RestStore, Retry, encode_component, encode_path};

/// The proxy path of an `mlflow-artifacts:` URI (`mlflow-artifacts:/1/abc/artifacts` -> `1/abc/artifacts`), also with
/// an authority (`mlflow-artifacts://host:port/1/...`).
pub(crate) fn proxy_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    Some(rest.trim_end_matches('/').to_string())
}

/// `..`, empty segments and backslashes are refused (`config_invalid`), as in the local store.
fn clean(path: &str) -> Result<String, PortError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\\') {
            return Err(PortError::new(
                Code::ConfigInvalid,
                format!("invalid artifact path '{path}': no empty, '.' or '..' segment and no backslash allowed"),
            ));
        }
    }
    Ok(trimmed.to_string())
}

/// One item of an artifact listing's `files`, its path made relative to the run or model root.
fn entry_of(f: &Field<'_>, rel: &str) -> Result<ArtifactEntry, PortError> {
    // the server's JSON leaves out a false `is_dir` and a zero `file_size`
    let is_dir = f.opt_bool("is_dir")?.unwrap_or(false);
    let size = match (is_dir, f.opt_int("file_size")?) {
        (true, _) => None,
        (false, None) => Some(0),
        (false, Some(n)) => Some(u64::try_from(n).map_err(|_| f.invalid("file_size", "a size in bytes"))?),
    };
    Ok(ArtifactEntry { path: join(rel, f.str("path")?), is_dir, size })
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

impl RestStore {
    /// The run's artifact root in the proxy (`<exp>/<run>/artifacts`).
    fn run_root(&self, run: &RunId) -> Result<String, PortError> {
        if let Some(p) = self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(&run.0) {
            return Ok(p.clone());
        }
        let info = kiln_domain::Tracker::get_run(self, run)?;
        let path = proxy_path(&info.artifact_uri).ok_or_else(|| {
            PortError::new(
                Code::StoreRejected,
                format!(
                    "run {run} stores its artifacts at '{}', which kiln cannot reach: kiln uploads through the \
                     server's artifact proxy (mlflow-artifacts:/...); start the server with --serve-artifacts \
                     (the default) and an --artifacts-destination",
                    info.artifact_uri
                ),
            )
        })?;
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(run.0.clone(), path.clone());
        Ok(path)
    }

    fn proxy_url(&self, proxy: &str) -> String {
        format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", self.base, encode_path(proxy))
    }

    fn put_file(&self, proxy: &str, bytes: &[u8]) -> Result<(), PortError> {
        let url = self.proxy_url(proxy);
        self.send("PUT", &url, Some((bytes, "application/octet-stream")), Retry::Idempotent)
            .map(|_| ())
            .map_err(|f| self.port_error(&format!("PUT artifact {proxy}"), f))
    }

    fn put_tree(&self, proxy_root: &str, local_dir: &Path) -> Result<usize, PortError> {
        let mut n = 0;
        let mut stack = vec![(local_dir.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let entries =
                fs::read_dir(&dir).map_err(|e| PortError::io(format!("cannot read folder {}: {e}", dir.display())))?;
            let mut entries: Vec<_> = entries
                .collect::<Result<_, _>>()
                .map_err(|e| PortError::io(format!("cannot read folder {}: {e}", dir.display())))?;
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let child = join(&rel, &name);
                if path.is_dir() {
                    stack.push((path, child));
                } else {
                    let bytes =
                        fs::read(&path).map_err(|e| PortError::io(format!("cannot read {}: {e}", path.display())))?;
                    self.put_file(&join(proxy_root, &child), &bytes)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// The entries directly under `proxy` (names relative to the run or model root `root`).
    fn list_proxy(&self, root: &str, rel: &str) -> Result<Vec<ArtifactEntry>, PortError> {
        let target = join(root, rel);
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts?path={}", self.base, encode_component(&target));
        let bytes = self
            .send("GET", &url, None, Retry::Idempotent)
            .map_err(|f| self.port_error(&format!("listing artifacts {target}"), f))?;
        let v: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| PortError::io(format!("artifact listing of {target}: invalid JSON: {e}")))?
        };
        let answer = Field::root(&v, &format!("MLflow server {}: listing artifacts {target}", self.base));
        answer.list("files")?.iter().map(|f| entry_of(f, rel)).collect()
    }

    /// Downloads `rel` under `root` into `dest` (a folder recursively, a file into `dest/<name>`).
    fn download_proxy(&self, root: &str, rel: &str, dest: &Path, what: &str) -> Result<(), PortError> {
        let entries = self.list_proxy(root, rel)?;
        if entries.is_empty() && rel.is_empty() {
            return fs::create_dir_all(dest)
                .map_err(|e| PortError::io(format!("cannot create {}: {e}", dest.display())));
        }
        if entries.is_empty() {
            // a file, or nothing at all
            let url = self.proxy_url(&join(root, rel));
            let bytes = self.send("GET", &url, None, Retry::Idempotent).map_err(|f| {
                let mut e = self.port_error(&format!("downloading {what}"), f);
                if e.code == Code::NotFound {
                    e = PortError::not_found(format!("{what}: no artifact '{rel}' on {}", self.base));
                }
                e
            })?;
            let name = rel.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("artifact");
            fs::create_dir_all(dest).map_err(|e| PortError::io(format!("cannot create {}: {e}", dest.display())))?;
            let target = dest.join(name);
            return fs::write(&target, bytes)
                .map_err(|e| PortError::io(format!("cannot write {}: {e}", target.display())));
        }
        fs::create_dir_all(dest).map_err(|e| PortError::io(format!("cannot create {}: {e}", dest.display())))?;
        let prefix = if rel.is_empty() { String::new() } else { format!("{rel}/") };
        for entry in entries {
            let name = entry.path.strip_prefix(&prefix).unwrap_or(&entry.path).to_string();
            if entry.is_dir {
                self.download_proxy(root, &entry.path, &dest.join(&name), what)?;
            } else {
                let url = self.proxy_url(&join(root, &entry.path));
                let bytes = self
                    .send("GET", &url, None, Retry::Idempotent)
                    .map_err(|f| self.port_error(&format!("downloading {what}/{}", entry.path), f))?;
                let target = dest.join(&name);
                fs::write(&target, bytes)
                    .map_err(|e| PortError::io(format!("cannot write {}: {e}", target.display())))?;
            }
        }
        Ok(())
    }
}

impl ArtifactStore for RestStore {
    fn put_bytes(&self, run: &RunId, path: &str, bytes: &[u8]) -> Result<(), PortError> {
        let rel = clean(path)?;
        if rel.is_empty() {
            return Err(PortError::new(Code::ConfigInvalid, "an artifact file path must not be empty"));
        }
        let root = self.run_root(run)?;
        self.put_file(&join(&root, &rel), bytes)
    }

    fn put_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError> {
        let rel = clean(path)?;
        // not store_io: that code means "the server is unreachable" to the fallback guard
        if !local_dir.is_dir() {
            return Err(PortError::not_found(format!("local folder {} not found", local_dir.display())));
        }
        let root = self.run_root(run)?;
        self.put_tree(&join(&root, &rel), local_dir).map(|_| ())
    }

    fn list(&self, run: &RunId, path: &str) -> Result<Vec<ArtifactEntry>, PortError> {
        let rel = clean(path)?;
        let root = self.run_root(run)?;
        self.list_proxy(&root, &rel)
    }

    fn download_dir(&self, run: &RunId, path: &str, dest: &Path) -> Result<(), PortError> {
        let rel = clean(path)?;
        let root = self.run_root(run)?;
        self.download_proxy(&root, &rel, dest, &format!("artifacts of run {run}"))
    }

    /// The bundle goes into the run's artifacts (so `runs:/<run>/<path>` works) and into an MLflow 3 logged model,
    /// created like the Python client does: create (pending), link as the run's output, upload, mark ready.
    fn log_model(
        &self,
        run: &RunId,
        path: &str,
        local_dir: &Path,
        model_type: &str,
    ) -> Result<Option<String>, PortError> {
        self.put_dir(run, path, local_dir)?;
        let info = kiln_domain::Tracker::get_run(self, run)?;
        let body = json!({
            "experiment_id": info.experiment_id.0, "name": clean(path)?, "model_type": model_type,
            "source_run_id": run.0,
        });
        let v = self.call("POST", "logged-models", &[], Some(&body), Retry::ConnectOnly)?;
        let model = self.answer(&v, "POST", "logged-models").object("model")?.object("info")?;
        let model_id = model.str("model_id")?.to_string();
        let root = proxy_path(model.str("artifact_uri")?).ok_or_else(|| {
            PortError::new(
                Code::StoreRejected,
                format!("logged model {model_id} has an artifact URI outside the proxy"),
            )
        })?;
        let link = json!({"run_id": run.0, "models": [{"model_id": model_id, "step": 0}]});
        self.call("POST", "runs/outputs", &[], Some(&link), Retry::Idempotent)?;
        self.put_tree(&root, local_dir)?;
        let ready = json!({"model_id": model_id, "status": "LOGGED_MODEL_READY"});
        self.call("PATCH", &format!("logged-models/{model_id}"), &[], Some(&ready), Retry::Idempotent)?;
        Ok(Some(model_id))
    }

    fn download_logged_model(&self, model_id: &str, dest: &Path) -> Result<(), PortError> {
        let endpoint = format!("logged-models/{}", encode_component(model_id));
        let v = self.call("GET", &endpoint, &[], None, Retry::Idempotent)?;
        let uri = self.answer(&v, "GET", &endpoint).object("model")?.object("info")?.str("artifact_uri")?;
        let root = proxy_path(uri).ok_or_else(|| {
            PortError::new(
                Code::StoreRejected,
                format!("logged model {model_id} stores its files at '{uri}', outside the artifact proxy"),
            )
        })?;
        self.download_proxy(&root, "", dest, &format!("logged model {model_id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        assert_eq!(proxy_path("mlflow-artifacts:/1/abc/artifacts").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(proxy_path("mlflow-artifacts://h:5000/1/abc/artifacts/").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(proxy_path("s3://bucket/1/abc/artifacts"), None);
        assert!(clean("a/../b").is_err());
        assert_eq!(clean("/model/").unwrap(), "model");
    }

    #[test]
    fn listing_entries_are_read_strictly() {
        let answer = json!({"files": [
            {"path": "reports", "is_dir": true},
            {"path": "top.txt", "is_dir": false, "file_size": 15},
            {"path": "empty.txt"},
        ]});
        let root = Field::root(&answer, "MLflow server http://h: listing artifacts 1/abc/artifacts");
        let entries: Vec<ArtifactEntry> =
            root.list("files").unwrap().iter().map(|f| entry_of(f, "sub").unwrap()).collect();
        assert_eq!(
            entries,
            [
                ArtifactEntry { path: "sub/reports".into(), is_dir: true, size: None },
                ArtifactEntry { path: "sub/top.txt".into(), is_dir: false, size: Some(15) },
                // the server leaves out a false `is_dir` and a zero `file_size`
                ArtifactEntry { path: "sub/empty.txt".into(), is_dir: false, size: Some(0) },
            ]
        );
        let bad = json!({"files": [{"is_dir": false}, {"path": "a", "is_dir": "no"}, {"path": "b", "file_size": -1}]});
        let root = Field::root(&bad, "MLflow server http://h: listing artifacts 1/abc/artifacts");
        let files = root.list("files").unwrap();
        for (f, field) in files.iter().zip(["files[0].path", "files[1].is_dir", "files[2].file_size"]) {
            let e = entry_of(f, "").unwrap_err();
            assert_eq!(e.code, Code::StoreCorrupt);
            assert!(e.message.contains(&format!("`{field}`")), "{}", e.message);
        }
    }
}
