//! The database: a SQLite file by default (nothing to install), PostgreSQL when `DATABASE_URL`
//! says `postgres://` (replicas and workers sharing one queue).
//!
//! [`Db`] is an enum of the two pools rather than `sqlx::Any`: the dialects differ where it
//! matters to a job queue (`FOR UPDATE SKIP LOCKED`, `LISTEN/NOTIFY`, timestamp types), so code
//! that cares matches on the variant and code that does not uses the helpers here. Each dialect
//! has its own migrations, embedded at compile time (by `build.rs`) from `migrations/sqlite` and
//! `migrations/postgres`; both directories use the same version numbers.
//!
//! Passwords never reach errors or logs: URLs are shown through [`redact_url`], connection
//! targets as host, port, database and user, and driver messages are scrubbed of the password.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlSafeStr};

/// `(version, description, sql)` of each migration file, embedded by `build.rs`.
type Embedded = &'static [(i64, &'static str, &'static str)];
const SQLITE_MIGRATIONS: Embedded = include!(concat!(env!("OUT_DIR"), "/migrations_sqlite.rs"));
const POSTGRES_MIGRATIONS: Embedded = include!(concat!(env!("OUT_DIR"), "/migrations_postgres.rs"));

static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE_MIGRATIONS));
static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES_MIGRATIONS));

/// What `sqlx::migrate!` would build from the same files (same descriptions, checksums and
/// `-- no-transaction` opt-out), so databases migrated by the `sqlx` CLI agree with it.
fn migrator(embedded: Embedded) -> Migrator {
    let migrations = embedded
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// File name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "timbre.db";

/// How long one connection attempt may take before it counts as failed (a blackholed host would
/// otherwise hang start-up on the OS's TCP timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a query waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Writers wait this long for SQLite's write lock instead of failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite serialises writers anyway (WAL lets readers run beside the one writer).
const SQLITE_POOL_SIZE: u32 = 4;

/// Per process: N replicas and M workers each hold up to this many PostgreSQL connections.
const POSTGRES_POOL_SIZE: u32 = 10;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// A connection pool to the configured database.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl fmt::Debug for Db {
    // The pools' own `Debug` prints their connect options, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({})", self.target())
    }
}

/// Errors opening or using the database. None of them contains a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot create the data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("cannot reach the database ({target}) after {attempts} attempt(s): {reason}")]
    Unreachable { target: String, attempts: u32, reason: String },
    #[error("cannot open the database ({target}): {reason}")]
    Connect { target: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Where to connect, parsed once; `target` describes it without secrets.
enum Target {
    Sqlite(SqliteConnectOptions),
    Postgres {
        options: PgConnectOptions,
        /// Present in the URL, scrubbed from driver messages.
        password: Option<String>,
    },
}

impl Target {
    fn parse(url: Option<&str>, data_dir: &Path) -> Result<Self, DbError> {
        let invalid = |url: &str, reason: String| DbError::InvalidUrl { url: redact_url(url), reason };
        match url {
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| DbError::DataDir { path: data_dir.display().to_string(), reason: e.to_string() })?;
                Ok(Self::Sqlite(sqlite_options(SqliteConnectOptions::new().filename(data_dir.join(SQLITE_FILE)))))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let password = url::Url::parse(url).ok().and_then(|u| u.password().map(decode_percent));
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| invalid(url, scrub(&e.to_string(), password.as_deref())))?;
                Ok(Self::Postgres { options, password })
            }
            Some(url) if url.starts_with("sqlite:") => {
                let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(url, e.to_string()))?;
                Ok(Self::Sqlite(sqlite_options(options)))
            }
            Some(url) => Err(invalid(url, "expected postgres://, postgresql:// or sqlite:".into())),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite(options) => describe_sqlite(options),
            Self::Postgres { options, .. } => describe_postgres(options),
        }
    }
}

fn sqlite_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL loses at most the last transactions on power loss, never integrity.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
}

fn describe_sqlite(options: &SqliteConnectOptions) -> String {
    format!("SQLite {}", options.get_filename().display())
}

fn describe_postgres(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}, database {}, user {}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default)"),
        options.get_username(),
    )
}

/// Connection failures worth another attempt: the server is not up (yet), or is starting.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03 cannot_connect_now (starting up / shutting down), 53300 too_many_connections.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

enum AttemptError {
    Transient(String),
    Fatal(String),
}

impl Db {
    /// Connects once: SQLite at `<data_dir>/timbre.db` when `url` is `None`, else the database
    /// the URL names. Does not migrate.
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Self, DbError> {
        Self::connect_with_retry(url, data_dir, 1, Duration::ZERO).await
    }

    /// Like [`Db::connect`], retrying a database that is not reachable yet (a container starting
    /// beside this one): up to `attempts` tries, waiting `backoff`, then twice as long after each
    /// further failure (at most 30 s). Errors that retrying cannot fix (a bad URL, a refused
    /// login, a missing database) fail at once. The error names the host, never the password.
    pub async fn connect_with_retry(
        url: Option<&str>,
        data_dir: &Path,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Self, DbError> {
        let target = Target::parse(url, data_dir)?;
        let described = target.describe();
        let attempts = attempts.max(1);
        let mut delay = backoff;
        let mut attempt = 1;
        loop {
            let reason = match Self::attempt(&target).await {
                Ok(db) => return Ok(db),
                Err(AttemptError::Fatal(reason)) => {
                    return Err(DbError::Connect { target: described, reason });
                }
                Err(AttemptError::Transient(reason)) => reason,
            };
            if attempt >= attempts {
                return Err(DbError::Unreachable { target: described, attempts, reason });
            }
            tracing::warn!(
                target = %described,
                attempt,
                attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %reason,
                "database not reachable yet"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    async fn attempt(target: &Target) -> Result<Self, AttemptError> {
        match target {
            Target::Sqlite(options) => SqlitePoolOptions::new()
                .max_connections(SQLITE_POOL_SIZE)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await
                .map(Self::Sqlite)
                // A file that cannot be opened now will not open by waiting.
                .map_err(|e| AttemptError::Fatal(e.to_string())),
            Target::Postgres { options, password } => {
                let scrubbed = |e: &dyn fmt::Display| scrub(&e.to_string(), password.as_deref());
                // One direct connection proves the server answers; the pool's own connect
                // would keep retrying I/O errors until its acquire timeout instead.
                let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await;
                let conn: PgConnection = match probe {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) if is_transient(&e) => {
                        return Err(AttemptError::Transient(scrubbed(&e)));
                    }
                    Ok(Err(e)) => return Err(AttemptError::Fatal(scrubbed(&e))),
                    Err(_) => {
                        return Err(AttemptError::Transient(format!(
                            "no answer within {} s",
                            CONNECT_TIMEOUT.as_secs()
                        )));
                    }
                };
                let _ = conn.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options.clone());
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Applies the migrations not applied yet (a no-op when all are). Safe to run from several
    /// processes at once: PostgreSQL migrations take an advisory lock.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> DbKind {
        match self {
            Self::Sqlite(_) => DbKind::Sqlite,
            Self::Postgres(_) => DbKind::Postgres,
        }
    }

    /// What this connects to, without secrets (for logs and readiness reports).
    pub fn target(&self) -> String {
        match self {
            Self::Sqlite(pool) => describe_sqlite(&pool.connect_options()),
            Self::Postgres(pool) => describe_postgres(&pool.connect_options()),
        }
    }

    /// One round trip (readiness checks).
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Reads a value of the `meta` key/value table (settings and markers the server keeps).
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(match self {
            Self::Sqlite(pool) => {
                sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1").bind(key).fetch_optional(pool).await?
            }
            Self::Postgres(pool) => {
                sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(pool).await?
            }
        })
    }

    /// Inserts or replaces a value of the `meta` table.
    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            }
            Self::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
                )
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Query parameters that carry secrets in database and service URLs.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret", "token", "sslpassword"]
        .iter()
        .any(|s| name == *s || name.ends_with(&format!("_{s}")))
}

/// A URL fit for logs and errors: the password (and query parameters such as `password=` or
/// `sslpassword=`) replaced by `***`; scheme, user, host, port, path and other parameters kept.
/// A string that does not parse as a URL keeps only its scheme and what follows its last `@`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query_pairs().any(|(k, _)| is_secret_param(&k)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_param(&k) { "***".to_owned() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => match (url.split_once("://"), url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
            (Some(_), None) => url.to_owned(),
            (None, _) => "***".to_owned(),
        },
    }
}

fn decode_percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Removes a password from a driver message, in case a driver ever echoes it.
fn scrub(message: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => message.replace(p, "***"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords_and_keeps_the_rest() {
        let cases = [
            ("postgres://u:hunter2@db.example:5432/app", "postgres://u:***@db.example:5432/app"),
            (
                "postgresql://u:p%40ss%2Fw@10.0.0.1/app?sslmode=require",
                "postgresql://u:***@10.0.0.1/app?sslmode=require",
            ),
            ("postgres://u@h/app?password=hunter2&sslmode=disable", "postgres://u@h/app?password=***&sslmode=disable"),
            ("postgres://h/app?sslpassword=hunter2", "postgres://h/app?sslpassword=***"),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            ("postgres://u@h:5432/app", "postgres://u@h:5432/app"),
            ("sqlite:data/timbre.db", "sqlite:data/timbre.db"),
            // Unparseable (bad port): only what follows the last '@' survives.
            ("postgres://u:hunter2@h:notaport/x", "postgres://***@h:notaport/x"),
            ("host=h password=hunter2", "***"),
        ];
        for (input, expected) in cases {
            let redacted = redact_url(input);
            assert_eq!(redacted, expected, "redact_url({input:?})");
            assert!(!redacted.contains("hunter2"));
        }
    }

    #[test]
    fn both_dialects_have_the_same_migration_versions() {
        let versions = |m: &Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
        let sqlite = versions(&SQLITE_MIGRATOR);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, versions(&POSTGRES_MIGRATOR));
        let first = SQLITE_MIGRATOR.iter().next().unwrap();
        assert_eq!((first.version, &*first.description), (1, "blobs and meta"));
        assert!(first.sql.as_str().contains("CREATE TABLE meta"));
        assert!(!first.no_tx);
    }

    #[test]
    fn scrub_removes_the_password() {
        assert_eq!(scrub("auth failed for hunter2", Some("hunter2")), "auth failed for ***");
        assert_eq!(scrub("x", Some("")), "x");
        assert_eq!(scrub("x", None), "x");
    }

    #[test]
    fn unsupported_urls_are_rejected_redacted() {
        let err = Target::parse(Some("mysql://u:hunter2@h/db"), Path::new(".")).err().expect("mysql is not supported");
        let message = err.to_string();
        assert!(matches!(err, DbError::InvalidUrl { .. }), "{message}");
        assert!(message.contains("mysql://u:***@h/db"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn postgres_targets_name_host_database_and_user() {
        let Ok(target) = Target::parse(Some("postgres://u:hunter2@db.internal:6543/app"), Path::new(".")) else {
            panic!("valid URL")
        };
        let described = target.describe();
        assert_eq!(described, "PostgreSQL at db.internal:6543, database app, user u");
        match target {
            Target::Postgres { password, .. } => assert_eq!(password.as_deref(), Some("hunter2")),
            Target::Sqlite(_) => panic!("expected PostgreSQL"),
        }
    }
}
