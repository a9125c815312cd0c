//! What a killed writer leaves behind, and how the next kiln that opens the store puts it right.
//!
//! A run kiln starts holds an exclusive lock (`flock`) on `<run>/.kiln.lock` until it ends; the kernel drops the
//! lock when the process dies, however it dies. [`LocalStore::repair`] marks every RUNNING run whose lock is free as
//! FAILED (with a `kiln.error` tag saying so), so a SIGKILL never leaves a run RUNNING forever. Runs without a lock
//! file (an MLflow client's, or an older kiln's) are left alone: their writer may be alive. It also removes the
//! staging area's temporary folders and empty registry folders older than a minute (what an older kiln killed while
//! registering left; MLflow's file store fails every registry listing on them).

use std::fs::{self, File, TryLockError};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_domain::{PortError, RunId, RunStatus};

use super::fsio::{self, Meta, TMP_PREFIX, io_error};
use super::pyyaml::Yaml;
use super::{LocalStore, META, MODELS, TRASH, now_ms, status_code, status_from_code};

/// The lock file of a run in progress, in the run's folder (MLflow reads only the folders beside it).
pub(crate) const RUN_LOCK: &str = ".kiln.lock";

/// Left-overs younger than this may belong to a writer still at work, and are kept.
const GRACE: Duration = Duration::from_secs(60);

/// What [`LocalStore::repair`] put right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// runs whose kiln process died before ending them, now FAILED
    pub failed_runs: Vec<RunId>,
    /// temporary and empty folders removed
    pub removed_folders: usize,
}

fn older_than_grace(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > GRACE)
}

impl LocalStore {
    /// Creates `<run>/.kiln.lock` and holds its lock until [`LocalStore::release_run_lock`].
    pub(crate) fn hold_run_lock(&self, run_id: &str, run_dir: &Path) -> Result<(), PortError> {
        let path = run_dir.join(RUN_LOCK);
        let file = File::create(&path).map_err(|e| io_error("create", &path, &e))?;
        file.try_lock().map_err(|e| PortError::io(format!("cannot lock {}: {e}", path.display())))?;
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(run_id.to_string(), file);
        Ok(())
    }

    /// Lets go of a run's lock and removes its lock file (the run has ended).
    pub(crate) fn release_run_lock(&self, run_id: &str, run_dir: &Path) -> Result<(), PortError> {
        let held = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(run_id);
        drop(held);
        let path = run_dir.join(RUN_LOCK);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, &e)),
        }
    }

    /// Marks the runs of killed kiln processes FAILED and removes what killed writers left (see the module
    /// documentation). Safe while other processes write to the store.
    ///
    /// # Errors
    /// `store_io` when a folder cannot be listed or a file written.
    pub fn repair(&self) -> Result<Repaired, PortError> {
        let mut repaired = Repaired::default();
        for exp in self.experiment_dirs(&self.root)? {
            for (name, is_dir) in fsio::list_names(&self.root.join(&exp))? {
                let lock_path = self.root.join(&exp).join(&name).join(RUN_LOCK);
                if is_dir && lock_path.is_file() && self.fail_if_abandoned(&exp, &name, &lock_path)? {
                    repaired.failed_runs.push(RunId(name));
                }
            }
        }
        // temporary folders of killed writers in the staging area
        for (name, is_dir) in fsio::list_names(&self.root.join(TRASH))? {
            let path = self.root.join(TRASH).join(&name);
            if is_dir && name.starts_with(TMP_PREFIX) && older_than_grace(&path) {
                fs::remove_dir_all(&path).map_err(|e| io_error("remove", &path, &e))?;
                repaired.removed_folders += 1;
            }
        }
        // empty registry folders an older kiln left when killed while registering
        let models = self.root.join(MODELS);
        for (model, is_dir) in fsio::list_names(&models)? {
            if !is_dir {
                continue;
            }
            let model_dir = models.join(&model);
            for (version, is_dir) in fsio::list_names(&model_dir)? {
                let dir = model_dir.join(&version);
                if is_dir && version.starts_with("version-") && Self::is_empty_and_old(&dir)? {
                    fs::remove_dir(&dir).map_err(|e| io_error("remove", &dir, &e))?;
                    repaired.removed_folders += 1;
                }
            }
            if Self::is_empty_and_old(&model_dir)? {
                fs::remove_dir(&model_dir).map_err(|e| io_error("remove", &model_dir, &e))?;
                repaired.removed_folders += 1;
            }
        }
        Ok(repaired)
    }

    fn is_empty_and_old(dir: &Path) -> Result<bool, PortError> {
        Ok(dir.is_dir() && !dir.join(META).exists() && fsio::list_names(dir)?.is_empty() && older_than_grace(dir))
    }

    /// Marks the run FAILED when its lock is free (its process is gone) and it is still RUNNING. `Ok(true)` when it
    /// did.
    fn fail_if_abandoned(&self, exp: &str, run: &str, lock_path: &Path) -> Result<bool, PortError> {
        let file = match File::open(lock_path) {
            Ok(f) => f,
            // the run ended meanwhile
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("open", lock_path, &e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(io_error("lock", lock_path, &e)),
        }
        let _guard = self.lock();
        let run_dir = self.root.join(exp).join(run);
        let Some(mut meta) = Meta::read(&run_dir.join(META))? else {
            // killed before its meta.yaml: readers skip the folder; only the lock file goes
            fs::remove_file(lock_path).map_err(|e| io_error("remove", lock_path, &e))?;
            return Ok(false);
        };
        let running = meta.opt_int("status")?.and_then(status_from_code) == Some(RunStatus::Running);
        if running {
            self.write_tag(
                &run_dir,
                "kiln.error",
                "interrupted: the kiln process writing this run stopped before ending it (killed or crashed); \
                 marked FAILED when the store was next opened",
            )?;
            meta.set("status", Yaml::Int(status_code(RunStatus::Failed)));
            meta.set("end_time", Yaml::Int(now_ms()));
            meta.write(&self.staging())?;
        }
        fs::remove_file(lock_path).map_err(|e| io_error("remove", lock_path, &e))?;
        drop(file);
        Ok(running)
    }
}
