//! Studies in Optuna's RDB schema on PostgreSQL ([`PostgresStudyStorage`]), so that `kiln tune` processes on many
//! machines and Python Optuna workers (`postgresql+psycopg2://...`) share one study.
//!
//! Key decisions: the schema is the one Optuna 4.9's `RDBStorage` creates on PostgreSQL (SQLAlchemy's DDL, native
//! enum types and `SERIAL` keys; `pg_dump --schema-only` of both is identical, which the tests check), created in one
//! transaction under an advisory lock, so two processes starting at once never half-create it; a database that
//! already has Optuna's tables is used as it is. A trial's number is computed under the row lock Optuna's
//! `_create_new_trial` takes (`SELECT ... FROM studies WHERE study_id = ? FOR UPDATE`), so kiln and Python workers
//! never give two trials one number. Heartbeats and staleness use the database's clock (`now()`, as Optuna's
//! heartbeat does); trial start and end times are the database's clock in UTC. The password never appears in an
//! error or a `Debug` print. What it does not do: TLS (the connection is plain; `sslmode=require` fails), pooling (one
//! connection per storage, reopened when the server dropped it), schema migrations.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use kiln_domain::{
    Code, Enqueued, PortError, RELATIVE_PARAMS_KEY, StoredParam, StoredTrial, StudyDirection, StudyStorage, TrialState,
};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls, Transaction};

use super::{ALEMBIC_HEAD, SCHEMA_VERSION, read_value, stored_value};

/// The schema Optuna 4.9's `RDBStorage` creates on PostgreSQL: SQLAlchemy's statements (logged with
/// `sqlalchemy.engine` at INFO while `optuna.storages.RDBStorage("postgresql+psycopg2://...")` created a fresh
/// database), with `IF NOT EXISTS` added, and each `CREATE TYPE` (which has none) skipped when the type exists.
const SCHEMA: &str = "
DO $$ BEGIN
	CREATE TYPE studydirection AS ENUM ('NOT_SET', 'MINIMIZE', 'MAXIMIZE');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
	CREATE TYPE trialstate AS ENUM ('RUNNING', 'COMPLETE', 'PRUNED', 'FAIL', 'WAITING');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
	CREATE TYPE trialvaluetype AS ENUM ('FINITE', 'INF_POS', 'INF_NEG');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
	CREATE TYPE trialintermediatevaluetype AS ENUM ('FINITE', 'INF_POS', 'INF_NEG', 'NAN');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE IF NOT EXISTS studies (
	study_id SERIAL NOT NULL,
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
	study_direction_id SERIAL NOT NULL,
	direction studydirection NOT NULL,
	study_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	PRIMARY KEY (study_direction_id),
	UNIQUE (study_id, objective),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS study_user_attributes (
	study_user_attribute_id SERIAL NOT NULL,
	study_id INTEGER,
	key VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_user_attribute_id),
	UNIQUE (study_id, key),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS study_system_attributes (
	study_system_attribute_id SERIAL NOT NULL,
	study_id INTEGER,
	key VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_system_attribute_id),
	UNIQUE (study_id, key),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE IF NOT EXISTS trials (
	trial_id SERIAL NOT NULL,
	number INTEGER,
	study_id INTEGER,
	state trialstate NOT NULL,
	datetime_start TIMESTAMP WITHOUT TIME ZONE,
	datetime_complete TIMESTAMP WITHOUT TIME ZONE,
	PRIMARY KEY (trial_id),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE INDEX IF NOT EXISTS ix_trials_study_id ON trials (study_id);
CREATE TABLE IF NOT EXISTS trial_user_attributes (
	trial_user_attribute_id SERIAL NOT NULL,
	trial_id INTEGER,
	key VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_user_attribute_id),
	UNIQUE (trial_id, key),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_system_attributes (
	trial_system_attribute_id SERIAL NOT NULL,
	trial_id INTEGER,
	key VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_system_attribute_id),
	UNIQUE (trial_id, key),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_params (
	param_id SERIAL NOT NULL,
	trial_id INTEGER,
	param_name VARCHAR(512),
	param_value FLOAT(53),
	distribution_json TEXT,
	PRIMARY KEY (param_id),
	UNIQUE (trial_id, param_name),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_values (
	trial_value_id SERIAL NOT NULL,
	trial_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	value FLOAT(53),
	value_type trialvaluetype NOT NULL,
	PRIMARY KEY (trial_value_id),
	UNIQUE (trial_id, objective),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_intermediate_values (
	trial_intermediate_value_id SERIAL NOT NULL,
	trial_id INTEGER NOT NULL,
	step INTEGER NOT NULL,
	intermediate_value FLOAT(53),
	intermediate_value_type trialintermediatevaluetype NOT NULL,
	PRIMARY KEY (trial_intermediate_value_id),
	UNIQUE (trial_id, step),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS trial_heartbeats (
	trial_heartbeat_id SERIAL NOT NULL,
	trial_id INTEGER NOT NULL,
	heartbeat TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	PRIMARY KEY (trial_heartbeat_id),
	UNIQUE (trial_id),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE IF NOT EXISTS alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
";

/// The advisory lock that serialises schema creation between kiln processes ("kilnoptu" as bytes).
const SCHEMA_LOCK: i64 = 0x6b69_6c6e_6f70_7475;

/// How long connecting to an unreachable server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a transaction that lost a deadlock (or a serialization conflict) is tried, Optuna's `MAX_RETRIES`.
const TRIES: u32 = 5;

/// The database's clock in UTC, as trial start and end times are stored.
const NOW_UTC: &str = "(now() AT TIME ZONE 'UTC')";

/// A trial time as the storage reads it: `YYYY-MM-DD HH:MM:SS.ffffff`.
const TIME_TEXT: &str = "'YYYY-MM-DD HH24:MI:SS.US'";

/// A study storage in a PostgreSQL database (see the module documentation).
pub struct PostgresStudyStorage {
    config: postgres::Config,
    /// the URL with the password hidden, which every message names
    shown: String,
    /// the password (and its URL-encoded form), scrubbed from every error text
    secrets: Vec<String>,
    client: Mutex<Client>,
}

impl fmt::Debug for PostgresStudyStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStudyStorage").field("url", &self.shown).finish_non_exhaustive()
    }
}

/// A failure inside a transaction: the database's (retried when it is a lost deadlock) or the storage's own.
enum Failure {
    Db(postgres::Error),
    Port(PortError),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<PortError> for Failure {
    fn from(e: PortError) -> Self {
        Failure::Port(e)
    }
}

impl PostgresStudyStorage {
    /// Connects to `url` (`postgresql://user:password@host:port/db`, also `postgres://` and SQLAlchemy's
    /// `postgresql+psycopg2://`; libpq's query options such as `connect_timeout` are read) within 5 s unless the URL
    /// sets `connect_timeout`, and creates Optuna's schema when the database has none. An existing schema must be
    /// Optuna's version 12.
    ///
    /// # Errors
    /// `config_invalid` for a URL that is not a PostgreSQL URL; `store_io` when the server cannot be reached or
    /// fails; `store_auth` when it refuses the user or password; `store_corrupt` when the database holds another
    /// schema version. Every message names the storage with its password hidden.
    pub fn open(url: &str) -> Result<PostgresStudyStorage, PortError> {
        let shown = super::redact_storage_url(url);
        let secrets = url_secrets(url);
        let hide = |text: String| scrub(text, &secrets);
        let Some(rest) = postgres_url_rest(url) else {
            return Err(PortError::new(
                Code::ConfigInvalid,
                format!("study storage {shown}: not a PostgreSQL URL (postgresql://user:password@host:port/db)"),
            ));
        };
        let mut config: postgres::Config = format!("postgresql://{rest}").parse().map_err(|e: postgres::Error| {
            PortError::new(Code::ConfigInvalid, format!("study storage {shown}: {}", hide(kiln_domain::chain_text(&e))))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("kiln");
        }
        let client = config.connect(NoTls).map_err(|e| db_error(&shown, &secrets, &e))?;
        let storage = PostgresStudyStorage { config, shown, secrets, client: Mutex::new(client) };
        storage.ensure_schema()?;
        Ok(storage)
    }

    /// The storage's URL with the password hidden.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Creates Optuna's schema when `version_info` is missing, and checks its version, in one transaction under an
    /// advisory lock (DDL is transactional in PostgreSQL: the schema is there whole or not at all).
    fn ensure_schema(&self) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            let present: bool = tx.query_one("SELECT to_regclass('version_info') IS NOT NULL", &[])?.get(0);
            if !present {
                tx.batch_execute(SCHEMA)?;
            }
            let version: Option<Option<i64>> = tx
                .query_opt("SELECT schema_version::bigint FROM version_info WHERE version_info_id = 1", &[])?
                .map(|r| r.get(0));
            match version {
                None => {
                    let library = format!("kiln {}", env!("CARGO_PKG_VERSION"));
                    tx.execute(
                        "INSERT INTO version_info (version_info_id, schema_version, library_version) \
                         VALUES (1, $1::bigint, $2::text) ON CONFLICT DO NOTHING",
                        &[&SCHEMA_VERSION, &library],
                    )?;
                    tx.execute(
                        "INSERT INTO alembic_version (version_num) SELECT $1::text WHERE NOT EXISTS \
                         (SELECT 1 FROM alembic_version)",
                        &[&ALEMBIC_HEAD],
                    )?;
                    Ok(())
                }
                Some(Some(SCHEMA_VERSION)) => Ok(()),
                Some(other) => Err(PortError::new(
                    Code::StoreCorrupt,
                    format!(
                        "{}: an Optuna storage of schema version {}; kiln reads version {SCHEMA_VERSION} \
                         (Optuna 3.x-4.x)",
                        self.shown,
                        other.map_or_else(|| "(none)".to_string(), |v| v.to_string())
                    ),
                )
                .into()),
            }
        })
    }

    /// A new trial of `study`, `RUNNING` and started now or `WAITING` (enqueued), numbered as Optuna numbers it:
    /// `(trial id, number)`.
    fn insert_trial(&self, tx: &mut Transaction<'_>, study: i64, waiting: bool) -> Result<(i64, i64), Failure> {
        // Optuna's lock (`StudyModel.find_or_raise_by_id(study_id, session, for_update=True)`): the study's row,
        // FOR UPDATE, held until commit, so the count below sees every earlier trial, kiln's or Python's
        let locked = tx.query_opt("SELECT study_id FROM studies WHERE study_id = $1::bigint FOR UPDATE", &[&study])?;
        if locked.is_none() {
            return Err(PortError::not_found(format!("study {study} in {}", self.shown)).into());
        }
        let (state, start) = if waiting { ("WAITING", "NULL") } else { ("RUNNING", NOW_UTC) };
        let trial: i64 = tx
            .query_one(
                &format!(
                    "INSERT INTO trials (number, study_id, state, datetime_start) \
                     VALUES (NULL, $1::bigint, '{state}', {start}) RETURNING trial_id::bigint"
                ),
                &[&study],
            )?
            .get(0);
        // Optuna's rule (`TrialModel.count_past_trials`): the number of the study's trials created before this one
        let number: i64 = tx
            .query_one(
                "SELECT count(trial_id) FROM trials WHERE study_id = $1::bigint AND trial_id < $2::bigint",
                &[&study, &trial],
            )?
            .get(0);
        tx.execute("UPDATE trials SET number = $1::bigint WHERE trial_id = $2::bigint", &[&number, &trial])?;
        Ok((trial, number))
    }

    /// Runs `f` in one transaction (read-only at `REPEATABLE READ` when `read_only`, so several reads see one
    /// state), tried again, as Optuna does, when the database broke a deadlock or a serialization conflict by
    /// aborting it. A connection the server dropped is reopened first.
    fn transaction<T>(
        &self,
        read_only: bool,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, PortError> {
        let mut client = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tries = 0;
        loop {
            tries += 1;
            if client.is_closed() {
                *client = self.config.connect(NoTls).map_err(|e| self.error(&e))?;
            }
            let attempt = (|| {
                let mut tx = if read_only {
                    client
                        .build_transaction()
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()?
                } else {
                    client.transaction()?
                };
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            })();
            match attempt {
                Ok(out) => return Ok(out),
                Err(Failure::Db(e)) if tries < TRIES && retryable(&e) => {
                    std::thread::sleep(Duration::from_millis(20 * u64::from(tries)));
                }
                Err(Failure::Db(e)) => return Err(self.error(&e)),
                Err(Failure::Port(e)) => return Err(e),
            }
        }
    }

    fn error(&self, e: &postgres::Error) -> PortError {
        db_error(&self.shown, &self.secrets, e)
    }
}

/// Whether the database aborted the transaction to break a deadlock or a serialization conflict.
fn retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// A database error as a port error naming the storage (password hidden): a refused login is `store_auth`, a
/// missing study or trial (a foreign key violation) `not_found`, everything else `store_io`.
fn db_error(shown: &str, secrets: &[String], e: &postgres::Error) -> PortError {
    let code = match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            Code::StoreAuth
        }
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => Code::NotFound,
        _ => Code::StoreIo,
    };
    let text = kiln_domain::chain_text(e).replace('\n', "; ");
    PortError::new(code, format!("study storage {shown}: {}", scrub(text, secrets)))
}

fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// What follows `postgresql://` (or `postgres://`, or SQLAlchemy's `postgresql+<driver>://`).
pub(super) fn postgres_url_rest(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let dialect = scheme.split_once('+').map_or(scheme, |(dialect, _)| dialect);
    matches!(dialect, "postgresql" | "postgres").then_some(rest)
}

/// The passwords a URL holds (in its user information, in a `password=` query option), as written and decoded.
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (head, query) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
    let from_userinfo = head.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')).map(|(_, p)| p);
    let from_query = query.trim_start_matches('?').split('&').find_map(|option| option.strip_prefix("password="));
    from_userinfo.into_iter().chain(from_query).flat_map(|p| [p.to_string(), percent_decode(p)]).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl StudyStorage for PostgresStudyStorage {
    fn create_or_load_study(&self, name: &str, direction: StudyDirection) -> Result<i64, PortError> {
        self.transaction(false, |tx| {
            // a second pass when another worker created the study between this one's look-up and insert
            for _ in 0..2 {
                let found = tx.query_opt("SELECT study_id::bigint FROM studies WHERE study_name = $1::text", &[&name])?;
                if let Some(row) = found {
                    let study: i64 = row.get(0);
                    let stored: Option<String> = tx
                        .query_opt(
                            "SELECT direction::text FROM study_directions WHERE study_id = $1::bigint AND objective = 0",
                            &[&study],
                        )?
                        .map(|r| r.get(0));
                    let stored = stored.as_deref().and_then(StudyDirection::from_name);
                    if stored != Some(direction) {
                        return Err(PortError::new(
                            Code::AlreadyExists,
                            format!(
                                "study '{name}' in {} exists with direction {}, not {}: pick another study name, or \
                                 the metric's own direction",
                                self.shown,
                                stored.map_or("(none)", StudyDirection::name),
                                direction.name()
                            ),
                        )
                        .into());
                    }
                    return Ok(study);
                }
                // waits for a concurrent insert of the same name, then inserts nothing
                let inserted = tx.query_opt(
                    "INSERT INTO studies (study_name) VALUES ($1::text) ON CONFLICT (study_name) DO NOTHING \
                     RETURNING study_id::bigint",
                    &[&name],
                )?;
                if let Some(row) = inserted {
                    let study: i64 = row.get(0);
                    tx.execute(
                        "INSERT INTO study_directions (direction, study_id, objective) \
                         VALUES ($1::text::studydirection, $2::bigint, 0)",
                        &[&direction.name(), &study],
                    )?;
                    return Ok(study);
                }
            }
            Err(PortError::io(format!("study '{name}' in {}: created and removed while being opened", self.shown)).into())
        })
    }

    fn create_trial(&self, study: i64) -> Result<(i64, i64), PortError> {
        self.transaction(false, |tx| self.insert_trial(tx, study, false))
    }

    fn enqueue_trial(
        &self,
        study: i64,
        fixed_params_json: &str,
        same: &dyn Fn(&StoredTrial) -> bool,
    ) -> Result<Enqueued, PortError> {
        self.transaction(false, |tx| {
            // the study's row is locked first (as a trial's creation locks it), so no other kiln worker enqueues or
            // creates between the look and the insert
            let locked =
                tx.query_opt("SELECT study_id FROM studies WHERE study_id = $1::bigint FOR UPDATE", &[&study])?;
            if locked.is_none() {
                return Err(PortError::not_found(format!("study {study} in {}", self.shown)).into());
            }
            if let Some(t) = self.read_trials(tx, study)?.iter().find(|t| same(t)) {
                return Ok(Enqueued::Exists { number: t.number });
            }
            let (trial, number) = self.insert_trial(tx, study, true)?;
            tx.execute(
                "INSERT INTO trial_system_attributes (trial_id, \"key\", value_json) \
                 VALUES ($1::bigint, 'fixed_params', $2::text)",
                &[&trial, &fixed_params_json],
            )?;
            Ok(Enqueued::New { trial, number })
        })
    }

    fn pop_waiting_trial(&self, study: i64) -> Result<Option<(i64, i64, Option<String>)>, PortError> {
        self.transaction(false, |tx| {
            // the row is locked until commit; a waiting trial another worker is taking is skipped, not waited for
            let Some(row) = tx.query_opt(
                "SELECT trial_id::bigint, number::bigint FROM trials WHERE study_id = $1::bigint AND state = 'WAITING' \
                 ORDER BY trial_id LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&study],
            )?
            else {
                return Ok(None);
            };
            let (trial, number): (i64, Option<i64>) = (row.get(0), row.get(1));
            tx.execute(
                &format!("UPDATE trials SET state = 'RUNNING', datetime_start = {NOW_UTC} WHERE trial_id = $1::bigint"),
                &[&trial],
            )?;
            let fixed: Option<String> = tx
                .query_opt(
                    "SELECT value_json FROM trial_system_attributes WHERE trial_id = $1::bigint AND \"key\" = 'fixed_params'",
                    &[&trial],
                )?
                .and_then(|r| r.get(0));
            let number = number.ok_or_else(|| {
                PortError::new(Code::StoreCorrupt, format!("{}: trial {trial} has no number", self.shown))
            })?;
            Ok(Some((trial, number, fixed)))
        })
    }

    fn set_param(&self, trial: i64, param: &StoredParam) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            // race-free against another worker setting the same parameter: the insert waits for it, then does nothing
            let inserted = tx.execute(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) \
                 VALUES ($1::bigint, $2::text, $3::float8, $4::text) ON CONFLICT (trial_id, param_name) DO NOTHING",
                &[&trial, &param.name, &param.internal, &param.distribution_json],
            )?;
            if inserted == 1 {
                return Ok(());
            }
            let row = tx.query_one(
                "SELECT param_value, distribution_json FROM trial_params WHERE trial_id = $1::bigint \
                 AND param_name = $2::text",
                &[&trial, &param.name],
            )?;
            let (value, distribution): (Option<f64>, Option<String>) = (row.get(0), row.get(1));
            if value == Some(param.internal) && distribution.as_deref() == Some(param.distribution_json.as_str()) {
                return Ok(());
            }
            Err(PortError::new(
                Code::AlreadyExists,
                format!(
                    "trial {trial} already has parameter '{}' = {}",
                    param.name,
                    value.map_or_else(|| "NULL".to_string(), |v| v.to_string())
                ),
            )
            .into())
        })
    }

    fn report(&self, trial: i64, step: i64, value: f64) -> Result<(), PortError> {
        let (value, kind) = stored_value(value);
        self.transaction(false, |tx| {
            tx.execute(
                "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) \
                 VALUES ($1::bigint, $2::bigint, $3::float8, $4::text::trialintermediatevaluetype) \
                 ON CONFLICT (trial_id, step) DO UPDATE SET intermediate_value = excluded.intermediate_value, \
                 intermediate_value_type = excluded.intermediate_value_type",
                &[&trial, &step, &value, &kind],
            )?;
            Ok(())
        })
    }

    fn set_trial_user_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            tx.execute(
                "INSERT INTO trial_user_attributes (trial_id, \"key\", value_json) VALUES ($1::bigint, $2::text, \
                 $3::text) ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                &[&trial, &key, &value_json],
            )?;
            Ok(())
        })
    }

    fn set_trial_system_attr(&self, trial: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            tx.execute(
                "INSERT INTO trial_system_attributes (trial_id, \"key\", value_json) VALUES ($1::bigint, $2::text, \
                 $3::text) ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                &[&trial, &key, &value_json],
            )?;
            Ok(())
        })
    }

    fn set_study_user_attr(&self, study: i64, key: &str, value_json: &str) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            tx.execute(
                "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES ($1::bigint, $2::text, \
                 $3::text) ON CONFLICT (study_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                &[&study, &key, &value_json],
            )?;
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
        self.transaction(false, |tx| {
            // the update locks the row (as Optuna's `set_trial_state_values` does) and re-reads its state after a
            // concurrent writer commits, so a trial failed as stale meanwhile stays failed
            let changed = tx.execute(
                &format!(
                    "UPDATE trials SET state = $1::text::trialstate, datetime_complete = {NOW_UTC} \
                     WHERE trial_id = $2::bigint AND state = 'RUNNING'"
                ),
                &[&state.name(), &trial],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(value) = value {
                let (value, kind) = stored_value(value);
                tx.execute(
                    "INSERT INTO trial_values (trial_id, objective, value, value_type) \
                     VALUES ($1::bigint, 0, $2::float8, $3::text::trialvaluetype) ON CONFLICT (trial_id, objective) \
                     DO UPDATE SET value = excluded.value, value_type = excluded.value_type",
                    &[&trial, &value, &kind],
                )?;
            }
            Ok(true)
        })
    }

    fn heartbeat(&self, trial: i64) -> Result<(), PortError> {
        self.transaction(false, |tx| {
            // `now()` into a timestamp column, in the session's time zone, exactly what Optuna's heartbeat writes
            tx.execute(
                "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES ($1::bigint, now()) \
                 ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                &[&trial],
            )?;
            Ok(())
        })
    }

    fn fail_stale_trials(&self, study: i64, grace: Duration) -> Result<Vec<i64>, PortError> {
        self.transaction(false, |tx| {
            // Optuna's comparison: the database's `now()` without its time zone against the stored heartbeat
            let rows = tx.query(
                &format!(
                    "UPDATE trials t SET state = 'FAIL', datetime_complete = {NOW_UTC} FROM trial_heartbeats h \
                     WHERE h.trial_id = t.trial_id AND t.study_id = $1::bigint AND t.state = 'RUNNING' \
                     AND now()::timestamp - h.heartbeat > make_interval(secs => $2::float8) \
                     RETURNING t.number::bigint"
                ),
                &[&study, &grace.as_secs_f64()],
            )?;
            let mut numbers: Vec<i64> = rows.iter().map(|r| r.get::<_, Option<i64>>(0).unwrap_or(-1)).collect();
            numbers.sort_unstable();
            Ok(numbers)
        })
    }

    fn trials(&self, study: i64) -> Result<Vec<StoredTrial>, PortError> {
        self.transaction(true, |tx| self.read_trials(tx, study))
    }
}

impl PostgresStudyStorage {
    /// Every trial of `study`, by number, read in `tx`.
    fn read_trials(&self, tx: &mut Transaction<'_>, study: i64) -> Result<Vec<StoredTrial>, Failure> {
        let mut trials: Vec<StoredTrial> = Vec::new();
        let rows = tx.query(
            &format!(
                "SELECT t.trial_id::bigint, t.number::bigint, t.state::text, to_char(t.datetime_start, \
                 {TIME_TEXT}), to_char(t.datetime_complete, {TIME_TEXT}), v.value, v.value_type::text \
                 FROM trials t LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 \
                 WHERE t.study_id = $1::bigint ORDER BY t.number, t.trial_id"
            ),
            &[&study],
        )?;
        for r in &rows {
            let id: i64 = r.get(0);
            let state: String = r.get(2);
            let corrupt = |what: String| PortError::new(Code::StoreCorrupt, format!("{}: {what}", self.shown));
            let number: Option<i64> = r.get(1);
            let kind: Option<String> = r.get(6);
            trials.push(StoredTrial {
                id,
                number: number.ok_or_else(|| corrupt(format!("trial {id} has no number")))?,
                // a state Optuna never writes is a broken database, not a failed trial
                state: TrialState::from_name(&state)
                    .ok_or_else(|| corrupt(format!("trial state '{state}' is not one of Optuna's")))?,
                params: Vec::new(),
                value: kind.map(|k| read_value(r.get(5), &k)),
                intermediate: Vec::new(),
                user_attrs: Vec::new(),
                fixed_params: None,
                relative_params: Vec::new(),
                datetime_start: r.get(3),
                datetime_complete: r.get(4),
            });
        }
        let index: std::collections::HashMap<i64, usize> = trials.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        for r in tx.query(
            "SELECT p.trial_id::bigint, p.param_name::text, p.param_value, p.distribution_json FROM trial_params p \
             JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = $1::bigint ORDER BY p.param_id",
            &[&study],
        )? {
            let trial: i64 = r.get(0);
            let name: Option<String> = r.get(1);
            let internal: Option<f64> = r.get(2);
            let distribution: Option<String> = r.get(3);
            let (Some(name), Some(internal), Some(distribution_json)) = (name, internal, distribution) else {
                return Err(PortError::new(
                    Code::StoreCorrupt,
                    format!("{}: a parameter of trial {trial} has no name, value or distribution", self.shown),
                )
                .into());
            };
            if let Some(&i) = index.get(&trial) {
                trials[i].params.push(StoredParam { name, internal, distribution_json });
            }
        }
        for r in tx.query(
            "SELECT i.trial_id::bigint, i.step::bigint, i.intermediate_value, i.intermediate_value_type::text \
             FROM trial_intermediate_values i JOIN trials t ON t.trial_id = i.trial_id \
             WHERE t.study_id = $1::bigint ORDER BY i.trial_id, i.step",
            &[&study],
        )? {
            let trial: i64 = r.get(0);
            let kind: String = r.get(3);
            if let Some(&i) = index.get(&trial) {
                trials[i].intermediate.push((r.get(1), read_value(r.get(2), &kind)));
            }
        }
        for r in tx.query(
            "SELECT a.trial_id::bigint, a.\"key\"::text, a.value_json FROM trial_user_attributes a \
             JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = $1::bigint \
             ORDER BY a.trial_user_attribute_id",
            &[&study],
        )? {
            let trial: i64 = r.get(0);
            let key: Option<String> = r.get(1);
            let value: Option<String> = r.get(2);
            if let (Some(&i), Some(key), Some(value)) = (index.get(&trial), key, value) {
                trials[i].user_attrs.push((key, value));
            }
        }
        let prefix = format!("{RELATIVE_PARAMS_KEY}:");
        for r in tx.query(
            "SELECT a.trial_id::bigint, a.\"key\"::text, a.value_json FROM trial_system_attributes a \
             JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = $1::bigint AND (a.\"key\" = 'fixed_params' \
             OR left(a.\"key\", $2::int) = $3::text)",
            &[&study, &(prefix.len() as i32), &prefix],
        )? {
            let trial: i64 = r.get(0);
            let key: Option<String> = r.get(1);
            let value: Option<String> = r.get(2);
            if let (Some(&i), Some(key)) = (index.get(&trial), key) {
                if key == "fixed_params" {
                    trials[i].fixed_params = value;
                } else if let Some(value) = value {
                    trials[i].relative_params.push((key, value));
                }
            }
        }
        Ok(trials)
    }
}
