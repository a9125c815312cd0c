//! Studies in Optuna's RDB schema (the schema Optuna 4.x creates: `version_info.schema_version` 12, alembic head
//! `v3.2.0.a`), so that `optuna.load_study`, optuna-dashboard and a Python Optuna worker read and extend a study
//! kiln writes: [`SqliteStudyStorage`] (a file beside the tracking store) and [`PostgresStudyStorage`] (one database
//! shared by many machines, `postgres.rs`), chosen by URL with [`open_study_storage`] as Optuna users write it.
//!
//! Key decisions: enums are stored by name (`COMPLETE`, `MAXIMIZE`), as SQLAlchemy's `Enum` columns do; ±inf values
//! are NULL with a value type (`INF_POS`, `INF_NEG`), NaN intermediate values NULL with `NAN`; times are UTC
//! `YYYY-MM-DD HH:MM:SS.ffffff` (Optuna 4.x writes naive local times: on a UTC machine the same). A trial's number is
//! the count of the study's earlier trials, computed in the same write transaction as its insert, so concurrent
//! workers never share or skip a number.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_domain::{
    Code, Enqueued, PortError, RELATIVE_PARAMS_KEY, StoredParam, StoredTrial, StudyDirection, StudyStorage, TrialState,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

mod postgres;

pub use self::postgres::PostgresStudyStorage;

/// Opens the study storage of `url`, written as Optuna users write it: `sqlite:///relative/path.db` or
/// `sqlite:////absolute/path.db` (SQLAlchemy's form) or a bare file path for [`SqliteStudyStorage`];
/// `postgresql://user:password@host:port/db` (also `postgres://` and SQLAlchemy's `postgresql+psycopg2://`) for
/// [`PostgresStudyStorage`].
///
/// # Errors
/// `config_invalid` for another scheme (the message names the supported ones) or an empty SQLite path; otherwise
/// the storage's own errors. No message shows the password.
pub fn open_study_storage(url: &str) -> Result<Box<dyn StudyStorage>, PortError> {
    if postgres::postgres_url_rest(url).is_some() {
        return Ok(Box::new(PostgresStudyStorage::open(url)?));
    }
    let invalid =
        |why: &str| PortError::new(Code::ConfigInvalid, format!("study storage {}: {why}", redact_storage_url(url)));
    match url.split_once("://") {
        None if url.is_empty() => Err(invalid("an empty path")),
        None => Ok(Box::new(SqliteStudyStorage::open(Path::new(url))?)),
        Some(("sqlite", rest)) => match rest.strip_prefix('/') {
            Some(path) if !path.is_empty() => Ok(Box::new(SqliteStudyStorage::open(Path::new(path))?)),
            _ => Err(invalid(
                "no file: write sqlite:///relative/path.db or sqlite:////absolute/path.db (an in-memory study would \
                 be lost when kiln exits)",
            )),
        },
        Some((scheme, _)) => Err(invalid(&format!(
            "unsupported scheme '{scheme}': use sqlite:///path/to/studies.db (or a file path) or \
             postgresql://user:password@host:port/db (also postgres:// and postgresql+psycopg2://)"
        ))),
    }
}

/// `url` with its password hidden (`postgresql://kiln:***@host/db`), in the user information and in a `password=`
/// query option; a file path is returned as it is.
pub fn redact_storage_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (head, query) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
    let head = match head.rsplit_once('@') {
        Some((userinfo, host)) if !userinfo.starts_with('/') => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => head.to_string(),
        },
        _ => head.to_string(),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|option| match option.split_once("password=") {
            Some((before, _)) if before.is_empty() || before == "?" => format!("{before}password=***"),
            _ => option.to_string(),
        })
        .collect();
    format!("{scheme}://{head}{}", query.join("&"))
}

/// The schema Optuna 4.x creates on SQLite, statement for statement.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS studies (
	study_id INTEGER NOT NULL,
	study_name VARCHAR(512) NOT NULL,
	PRIMARY KEY (study_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_studies_study_name ON studies (study_name);
CREATE TABLE IF NOT EXISTS version_info (
	version_info_id INTEGER NOT NULL,
	schema_version INTEGER,
	library_version VARCHAR(256),
	PRIMARY KEY (version_info_id),
	CHECK (version_info_id=1)
);
CREATE TABLE IF NOT EXISTS study_directions (
	study_direction_id INTEGER NOT NULL,
	direction VARCHAR(8) NOT NULL,
	study_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	PRIMARY KEY (study_direction_id),
	UNIQUE (study_id, objective),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL,
	study_id INTEGER,
	\"key\" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_user_attribute_id),
	UNIQUE (study_id, \"key\"),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL,
	study_id INTEGER,
	\"key\" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_system_attribute_id),
	UNIQUE (study_id, \"key\"),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS trials (
	trial_id INTEGER NOT NULL,
	number INTEGER,
	study_id INTEGER,
	state VARCHAR(8) NOT NULL,
	datetime_start DATETIME,
	datetime_complete DATETIME,
	PRIMARY KEY (trial_id),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE INDEX IF NOT EXISTS ix_trials_study_id ON trials (study_id);
CREATE TABLE IF NOT EXISTS trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL,
	trial_id INTEGER,
	\"key\" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_user_attribute_id),
	UNIQUE (trial_id, \"key\"),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL,
	trial_id INTEGER,
	\"key\" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_system_attribute_id),
	UNIQUE (trial_id, \"key\"),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_params (
	param_id INTEGER NOT NULL,
	trial_id INTEGER,
	param_name VARCHAR(512),
	param_value FLOAT,
	distribution_json TEXT,
	PRIMARY KEY (param_id),
	UNIQUE (trial_id, param_name),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_values (
	trial_value_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	value FLOAT,
	value_type VARCHAR(7) NOT NULL,
	PRIMARY KEY (trial_value_id),
	UNIQUE (trial_id, objective),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	step INTEGER NOT NULL,
	intermediate_value FLOAT,
	intermediate_value_type VARCHAR(7) NOT NULL,
	PRIMARY KEY (trial_intermediate_value_id),
	UNIQUE (trial_id, step),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	heartbeat DATETIME NOT NULL,
	PRIMARY KEY (trial_heartbeat_id),
	UNIQUE (trial_id),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
";

/// Optuna's schema version and alembic head, which `optuna.load_study` checks.
const SCHEMA_VERSION: i64 = 12;
const ALEMBIC_HEAD: &str = "v3.2.0.a";

/// A study storage in one SQLite file (see the module documentation).
#[derive(Debug)]
pub struct SqliteStudyStorage {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteStudyStorage {
    /// Opens the storage at `path`, creating the file and Optuna's tables when missing. An existing file must hold
    /// Optuna's schema (version 12).
    ///
    /// # Errors
    /// `store_io` when the file cannot be opened or written; `store_corrupt` when it holds another schema version.
    pub fn open(path: &Path) -> Result<SqliteStudyStorage, PortError> {
        let fail = |e: rusqlite::Error| io_error(path, &e);
        let connection = Connection::open(path).map_err(fail)?;
        // several workers on one file wait for each other's writes instead of failing
        connection.busy_timeout(Duration::from_secs(60)).map_err(fail)?;
        // write-ahead logging with `synchronous = NORMAL`: a commit is one append to the log, synced at checkpoints,
        // not three fsyncs; a crash or a power loss may lose the last commits but never corrupts the file, and
        // readers (Optuna, its dashboard) never block the writer. The mode is kept in the file, which Optuna and
        // SQLite's own tools open as they are
        connection.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        connection.execute_batch(SCHEMA).map_err(fail)?;
        let version: Option<i64> = connection
            .query_row("SELECT schema_version FROM version_info WHERE version_info_id = 1", [], |r| r.get(0))
            .optional()
            .map_err(fail)?;
        match version {
            None => {
                let library = format!("kiln {}", env!("CARGO_PKG_VERSION"));
                connection
                    .execute(
                        "INSERT OR IGNORE INTO version_info (version_info_id, schema_version, library_version) \
                         VALUES (1, ?1, ?2)",
                        params![SCHEMA_VERSION, library],
                    )
                    .map_err(fail)?;
                connection
                    .execute(
                        "INSERT INTO alembic_version (version_num) SELECT ?1 WHERE NOT EXISTS \
                         (SELECT 1 FROM alembic_version)",
                        params![ALEMBIC_HEAD],
                    )
                    .map_err(fail)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(PortError::new(
                    Code::StoreCorrupt,
                    format!(
                        "{}: an Optuna storage of schema version {other}; kiln reads version {SCHEMA_VERSION} \
                         (Optuna 3.x-4.x)",
                        path.display()
                    ),
                ));
            }
        }
        Ok(SqliteStudyStorage { path: path.to_path_buf(), connection: Mutex::new(connection) })
    }

    /// The file behind the storage.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`: the file's write lock is taken first, so two workers
    /// never interleave a read and a write).
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, PortError>) -> Result<T, PortError> {
        let mut connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| io_error(&self.path, &e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| io_error(&self.path, &e))?;
        Ok(out)
    }

    fn io(&self) -> impl Fn(rusqlite::Error) -> PortError + '_ {
        |e| io_error(&self.path, &e)
    }

    /// A new trial of `study` in `state`, numbered as Optuna numbers it: `(trial id, number)`.
    fn insert_trial(
        &self,
        tx: &rusqlite::Transaction<'_>,
        study: i64,
        state: &str,
        start: Option<String>,
    ) -> Result<(i64, i64), PortError> {
        let io = self.io();
        let exists: Option<i64> = tx
            .query_row("SELECT study_id FROM studies WHERE study_id = ?1", params![study], |r| r.get(0))
            .optional()
            .map_err(&io)?;
        if exists.is_none() {
            return Err(PortError::not_found(format!("study {study} in {}", self.path.display())));
        }
        tx.execute(
            "INSERT INTO trials (number, study_id, state, datetime_start) VALUES (NULL, ?1, ?2, ?3)",
            params![study, state, start],
        )
        .map_err(&io)?;
        let trial = tx.last_insert_rowid();
        // Optuna's rule: the number of the study's trials created before this one
        let number: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND trial_id < ?2",
                params![study, trial],
                |r| r.get(0),
            )
            .map_err(&io)?;
        tx.execute("UPDATE trials SET number = ?1 WHERE trial_id = ?2", params![number, trial]).map_err(&io)?;
        Ok((trial, number))
    }
}

fn io_error(path: &Path, e: &rusqlite::Error) -> PortError {
    PortError::io(format!("study storage {}: {e}", path.display()))
}

/// Now, UTC, as the storage writes times.
fn now() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    kiln_domain::utc_datetime_text(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
}

/// A value and its type as Optuna stores them: ±inf (and NaN, where allowed) as NULL with the type's name.
fn stored_value(value: f64) -> (Option<f64>, &'static str) {
    if value.is_nan() {
        (None, "NAN")
    } else if value == f64::INFINITY {
        (None, "INF_POS")
    } else if value == f64::NEG_INFINITY {
        (None, "INF_NEG")
    } else {
        (Some(value), "FINITE")
    }
}

fn read_value(value: Option<f64>, kind: &str) -> f64 {
    match (value, kind) {
        (_, "INF_POS") => f64::INFINITY,
        (_, "INF_NEG") => f64::NEG_INFINITY,
        (Some(v), "FINITE") => v,
        _ => f64::NAN,
    }
}

impl StudyStorage for SqliteStudyStorage {
    fn create_or_load_study(&self, name: &str, direction: StudyDirection) -> Result<i64, PortError> {
        self.write(|tx| {
            let io = self.io();
            let found: Option<i64> = tx
                .query_row("SELECT study_id FROM studies WHERE study_name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(&io)?;
            if let Some(study) = found {
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT direction FROM study_directions WHERE study_id = ?1 AND objective = 0",
                        params![study],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(&io)?;
                let stored = stored.as_deref().and_then(StudyDirection::from_name);
                if stored != Some(direction) {
                    return Err(PortError::new(
                        Code::AlreadyExists,
                        format!(
                            "study '{name}' in {} exists with direction {}, not {}: pick another study name, or the \
                             metric's own direction",
                            self.path.display(),
                            stored.map_or("(none)", StudyDirection::name),
                            direction.name()
                        ),
                    ));
                }
                return Ok(study);
            }
            tx.execute("INSERT INTO studies (study_name) VALUES (?1)", params![name]).map_err(&io)?;
            let study = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO study_directions (direction, study_id, objective) VALUES (?1, ?2, 0)",
                params![direction.name(), study],
            )
            .map_err(&io)?;
            Ok(study)
        })
    }

    fn create_trial(&self, study: i64) -> Result<(i64, i64), PortError> {
        self.write(|tx| self.insert_trial(tx, study, "RUNNING", Some(now())))
    }

    fn enqueue_trial(
        &self,
        study: i64,
        fixed_params_json: &str,
        same: &dyn Fn(&StoredTrial) -> bool,
    ) -> Result<Enqueued, PortError> {
        // the write lock is taken first (`BEGIN IMMEDIATE`): no other worker inserts between the look and the insert
        self.write(|tx| {
            let io = self.io();
            if let Some(t) = self.read_trials(tx, study)?.iter().find(|t| same(t)) {
                return Ok(Enqueued::Exists { number: t.number });
            }
            let (trial, number) = self.insert_trial(tx, study, "WAITING", None)?;
            tx.execute(
                "INSERT INTO trial_system_attributes (trial_id, \"key\", value_json) VALUES (?1, 'fixed_params', ?2)",
                params![trial, fixed_params_json],
            )
            .map_err(&io)?;
            Ok(Enqueued::New { trial, number })
        })
    }

    fn pop_waiting_trial(&self, study: i64) -> Result<Option<(i64, i64, Option<String>)>, PortError> {
        // the write lock is taken first (`BEGIN IMMEDIATE`): no other worker reads the trial as waiting meanwhile
        self.write(|tx| {
            let io = self.io();
            let waiting: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT trial_id, number FROM trials WHERE study_id = ?1 AND state = 'WAITING' \
                     ORDER BY trial_id LIMIT 1",
                    params![study],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(&io)?;
            let Some((trial, number)) = waiting else { return Ok(None) };
            tx.execute(
                "UPDATE trials SET state = 'RUNNING', datetime_start = ?1 WHERE trial_id = ?2",
                params![now(), trial],
            )
            .map_err(&io)?;
            let fixed: Option<String> = tx
                .query_row(
                    "SELECT value_json FROM trial_system_attributes WHERE trial_id = ?1 AND \"key\" = 'fixed_params'",
                    params![trial],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&io)?;
            Ok(Some((trial, number, fixed)))
        })
    }

    fn set_param(&self, trial: i64, param: &StoredParam) -> Result<(), PortError> {
        self.write(|tx| {
            let io = self.io();
            let stored: Option<(f64, String)> = tx
                .query_row(
                    "SELECT param_value, distribution_json FROM trial_params WHERE trial_id = ?1 AND param_name = ?2",
                    params![trial, param.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(&io)?;
            match stored {
                Some((value, distribution)) if value == param.internal && distribution == param.distribution_json => {
                    Ok(())
                }
                Some((value, _)) => Err(PortError::new(
                    Code::AlreadyExists,
                    format!("trial {trial} already has parameter '{}' = {value}", param.name),
                )),
                None => {
                    tx.execute(
                        "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) \
                         VALUES (?1, ?2, ?3, ?4)",
                        params![trial, param.name, param.internal, param.distribution_json],
                    )
                    .map_err(&io)?;
                    Ok(())
                }
            }
        })
    }

    fn report(&self, trial: i64, step: i64, value: f64) -> Result<(), PortError> {
        let (value, kind) = stored_value(value);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (trial_id, step) DO UPDATE SET \
                 intermediate_value = excluded.intermediate_value, \
                 intermediate_value_type = excluded.intermediate_value_type",
                params![trial, step, value, kind],
            )
            .map_err(self.io())?;
            Ok(())
        })
    }

    fn set_trial_user_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO trial_user_attributes (trial_id, \"key\", value_json) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                params![trial, key, value_json],
            )
            .map_err(self.io())?;
            Ok(())
        })
    }

    fn set_trial_system_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO trial_system_attributes (trial_id, \"key\", value_json) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                params![trial, key, value_json],
            )
            .map_err(self.io())?;
            Ok(())
        })
    }

    fn set_study_user_attr(&self, study: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (study_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                params![study, key, value_json],
            )
            .map_err(self.io())?;
            Ok(())
        })
    }

    fn finish_trial(&self, trial: i64, state: TrialState, value: Option<f64>) -> Result<bool, PortError> {
        if !state.is_finished() {
            return Err(PortError::new(
                Code::Internal,
                format!("a trial ends complete, pruned or failed, not {}", state.name()),
            ));
        }
        self.write(|tx| {
            let io = self.io();
            let changed = tx
                .execute(
                    "UPDATE trials SET state = ?1, datetime_complete = ?2 WHERE trial_id = ?3 AND state = 'RUNNING'",
                    params![state.name(), now(), trial],
                )
                .map_err(&io)?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(value) = value {
                let (value, kind) = stored_value(value);
                tx.execute(
                    "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?1, 0, ?2, ?3)",
                    params![trial, value, kind],
                )
                .map_err(&io)?;
            }
            Ok(true)
        })
    }

    fn heartbeat(&self, trial: i64) -> Result<(), PortError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (?1, ?2) \
                 ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                params![trial, now()],
            )
            .map_err(self.io())?;
            Ok(())
        })
    }

    fn fail_stale_trials(&self, study: i64, grace: Duration) -> Result<Vec<i64>, PortError> {
        self.write(|tx| {
            let io = self.io();
            let mut statement = tx
                .prepare(
                    "SELECT t.trial_id, t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id \
                     WHERE t.study_id = ?1 AND t.state = 'RUNNING' \
                     AND (julianday(?2) - julianday(h.heartbeat)) * 86400.0 > ?3",
                )
                .map_err(&io)?;
            let stale: Vec<(i64, i64)> = statement
                .query_map(params![study, now(), grace.as_secs_f64()], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&io)?
                .collect::<Result<_, _>>()
                .map_err(&io)?;
            for (trial, _) in &stale {
                tx.execute(
                    "UPDATE trials SET state = 'FAIL', datetime_complete = ?1 WHERE trial_id = ?2",
                    params![now(), trial],
                )
                .map_err(&io)?;
            }
            Ok(stale.into_iter().map(|(_, number)| number).collect())
        })
    }

    fn trials(&self, study: i64) -> Result<Vec<StoredTrial>, PortError> {
        let connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.read_trials(&connection, study)
    }
}

impl SqliteStudyStorage {
    /// Every trial of `study`, by number, read on `connection` (a transaction's, when the read must be in one).
    fn read_trials(&self, connection: &rusqlite::Connection, study: i64) -> Result<Vec<StoredTrial>, PortError> {
        let io = self.io();
        let mut trials: Vec<StoredTrial> = Vec::new();
        {
            let mut statement = connection
                .prepare(
                    "SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete, v.value, \
                     v.value_type FROM trials t LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND \
                     v.objective = 0 WHERE t.study_id = ?1 ORDER BY t.number",
                )
                .map_err(&io)?;
            let rows = statement
                .query_map(params![study], |r| {
                    let state: String = r.get(2)?;
                    let value: Option<f64> = r.get(5)?;
                    let kind: Option<String> = r.get(6)?;
                    Ok(StoredTrial {
                        id: r.get(0)?,
                        number: r.get(1)?,
                        // a state Optuna never writes is a broken file, not a failed trial
                        state: TrialState::from_name(&state).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                2,
                                rusqlite::types::Type::Text,
                                format!("trial state '{state}' is not one of Optuna's").into(),
                            )
                        })?,
                        params: Vec::new(),
                        value: kind.map(|k| read_value(value, &k)),
                        intermediate: Vec::new(),
                        user_attrs: Vec::new(),
                        fixed_params: None,
                        relative_params: Vec::new(),
                        datetime_start: r.get(3)?,
                        datetime_complete: r.get(4)?,
                    })
                })
                .map_err(&io)?;
            for row in rows {
                trials.push(row.map_err(&io)?);
            }
        }
        let index: std::collections::HashMap<i64, usize> = trials.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let mut params_of = connection
            .prepare(
                "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p \
                 JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = ?1 ORDER BY p.param_id",
            )
            .map_err(&io)?;
        let rows = params_of
            .query_map(params![study], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    StoredParam { name: r.get(1)?, internal: r.get(2)?, distribution_json: r.get(3)? },
                ))
            })
            .map_err(&io)?;
        for row in rows {
            let (trial, param) = row.map_err(&io)?;
            if let Some(&i) = index.get(&trial) {
                trials[i].params.push(param);
            }
        }
        let mut values_of = connection
            .prepare(
                "SELECT i.trial_id, i.step, i.intermediate_value, i.intermediate_value_type FROM \
                 trial_intermediate_values i JOIN trials t ON t.trial_id = i.trial_id WHERE t.study_id = ?1 \
                 ORDER BY i.trial_id, i.step",
            )
            .map_err(&io)?;
        let rows = values_of
            .query_map(params![study], |r| {
                let kind: String = r.get(3)?;
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, read_value(r.get(2)?, &kind)))
            })
            .map_err(&io)?;
        for row in rows {
            let (trial, step, value) = row.map_err(&io)?;
            if let Some(&i) = index.get(&trial) {
                trials[i].intermediate.push((step, value));
            }
        }
        let mut attrs_of = connection
            .prepare(
                "SELECT a.trial_id, a.\"key\", a.value_json FROM trial_user_attributes a JOIN trials t ON \
                 t.trial_id = a.trial_id WHERE t.study_id = ?1 ORDER BY a.trial_user_attribute_id",
            )
            .map_err(&io)?;
        let rows = attrs_of
            .query_map(params![study], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(&io)?;
        for row in rows {
            let (trial, key, value) = row.map_err(&io)?;
            if let Some(&i) = index.get(&trial) {
                trials[i].user_attrs.push((key, value));
            }
        }
        let mut system_of = connection
            .prepare(
                "SELECT a.trial_id, a.\"key\", a.value_json FROM trial_system_attributes a JOIN trials t ON \
                 t.trial_id = a.trial_id WHERE t.study_id = ?1 AND (a.\"key\" = 'fixed_params' OR \
                 substr(a.\"key\", 1, ?2) = ?3)",
            )
            .map_err(&io)?;
        let prefix = format!("{RELATIVE_PARAMS_KEY}:");
        let rows = system_of
            .query_map(params![study, prefix.len() as i64, prefix], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(&io)?;
        for row in rows {
            let (trial, key, value) = row.map_err(&io)?;
            if let Some(&i) = index.get(&trial) {
                if key == "fixed_params" {
                    trials[i].fixed_params = Some(value);
                } else {
                    trials[i].relative_params.push((key, value));
                }
            }
        }
        Ok(trials)
    }
}

#[cfg(test)]
#[path = "study/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "study/pg_tests.rs"]
mod pg_tests;
