//! One database suite, run against SQLite (a temporary directory) and PostgreSQL at
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), each PostgreSQL test
//! in a schema of its own. PostgreSQL being down fails these tests: CI starts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::PgSchema;
use timbre_store::{Db, DbError, DbKind, Store, StoreSettings};

/// Tables the migrations create (blobs and meta, the job queue, songs), plus sqlx's bookkeeping.
const TABLES: [&str; 5] = ["_sqlx_migrations", "blobs", "meta", "jobs", "songs"];

async fn tables(db: &Db) -> Vec<String> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY table_name",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

/// (version, checksum) of every applied migration.
async fn applied(db: &Db) -> Vec<(i64, Vec<u8>)> {
    let sql = "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version";
    match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// Inserts a blob row; `Err` when a constraint refuses it.
async fn insert_blob(db: &Db, key: &str, size: i64, sha256: Option<&str>) -> Result<(), String> {
    let result = match db {
        Db::Sqlite(pool) => sqlx::query("INSERT INTO blobs (key, size, content_type, sha256) VALUES (?1, ?2, ?3, ?4)")
            .bind(key)
            .bind(size)
            .bind("audio/wav")
            .bind(sha256)
            .execute(pool)
            .await
            .map(drop),
        Db::Postgres(pool) => {
            sqlx::query("INSERT INTO blobs (key, size, content_type, sha256) VALUES ($1, $2, $3, $4)")
                .bind(key)
                .bind(size)
                .bind("audio/wav")
                .bind(sha256)
                .execute(pool)
                .await
                .map(drop)
        }
    };
    result.map_err(|e| e.to_string())
}

/// Songs: insert, read, page newest first, store an analysis (JSON round trip), delete.
async fn songs_suite(db: &Db) {
    use timbre_store::NewSong;
    let new = |i: usize| NewSong {
        id: format!("song{i}"),
        filename: Some(format!("s{i}.mp3")),
        content_type: Some("audio/mpeg".into()),
        bytes: 1000 + i as i64,
        original_key: format!("songs/song{i}/original.mp3"),
        job_id: format!("job{i}"),
    };
    for i in 0..5 {
        let s = db.song_insert(&new(i)).await.unwrap();
        assert_eq!((s.id.as_str(), s.bytes, s.analyzed_at), (format!("song{i}").as_str(), 1000 + i as i64, None));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let got = db.song_get("song2").await.unwrap().unwrap();
    assert_eq!((got.filename.as_deref(), got.job_id.as_deref()), (Some("s2.mp3"), Some("job2")));
    assert!(db.song_get("nope").await.unwrap().is_none());
    let page1 = db.song_list(2, None).await.unwrap();
    assert_eq!(page1.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["song4", "song3"]);
    let last = page1.last().map(|s| (s.created_at, s.id.clone()));
    let page2 = db.song_list(10, last).await.unwrap();
    assert_eq!(page2.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["song2", "song1", "song0"]);
    assert_eq!(db.song_analysis("song1").await.unwrap(), None);
    let json = r#"{"bpm":120.5,"beats":[0.5,1.0]}"#;
    assert!(db.song_set_analysis("song1", json, 81.0, 120.5).await.unwrap());
    let back: serde_json::Value = serde_json::from_str(&db.song_analysis("song1").await.unwrap().unwrap()).unwrap();
    assert_eq!(back, serde_json::json!({"bpm": 120.5, "beats": [0.5, 1.0]}));
    let s1 = db.song_get("song1").await.unwrap().unwrap();
    assert_eq!((s1.duration, s1.bpm), (Some(81.0), Some(120.5)));
    assert!(s1.analyzed_at.is_some());
    assert!(db.song_delete("song1").await.unwrap());
    assert!(!db.song_delete("song1").await.unwrap());
    assert!(!db.song_set_analysis("song1", json, 1.0, 1.0).await.unwrap(), "a deleted song takes no analysis");
}

async fn db_suite(db: &Db) {
    // Nothing exists before migrating.
    assert!(
        tables(db).await.iter().all(|t| !TABLES.contains(&t.as_str())),
        "fresh database already has tables: {:?}",
        tables(db).await
    );
    db.migrate().await.unwrap();
    let after_first = applied(db).await;
    // Every migration applied once, numbered 1, 2, … without gaps (2 is the job queue).
    let versions: Vec<i64> = after_first.iter().map(|(v, _)| *v).collect();
    assert!(versions.len() >= 2, "{versions:?}");
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "every migration applied once");
    for table in TABLES {
        assert!(
            tables(db).await.iter().any(|t| t == table),
            "table {table} missing after migrate: {:?}",
            tables(db).await
        );
    }

    songs_suite(db).await;

    // Idempotent: a second run applies nothing and changes nothing.
    db.migrate().await.unwrap();
    assert_eq!(applied(db).await, after_first);

    // meta: a key/value round trip, with upsert.
    assert_eq!(db.meta_get("schema_owner").await.unwrap(), None);
    db.meta_set("schema_owner", "timbre").await.unwrap();
    assert_eq!(db.meta_get("schema_owner").await.unwrap().as_deref(), Some("timbre"));
    db.meta_set("schema_owner", "timbre 2").await.unwrap();
    assert_eq!(db.meta_get("schema_owner").await.unwrap().as_deref(), Some("timbre 2"));
    db.meta_set("other", "x").await.unwrap();
    assert_eq!(db.meta_get("schema_owner").await.unwrap().as_deref(), Some("timbre 2"));

    // blobs: the columns the blob index needs, and their constraints.
    let sha = "a".repeat(64);
    insert_blob(db, "songs/1/mix.wav", 10, Some(&sha)).await.unwrap();
    insert_blob(db, "songs/1/raw.pcm", 0, None).await.unwrap();
    assert!(insert_blob(db, "songs/1/mix.wav", 1, None).await.is_err(), "duplicate key");
    assert!(insert_blob(db, "neg", -1, None).await.is_err(), "negative size");
    assert!(insert_blob(db, "bad-sha", 1, Some("abc")).await.is_err(), "short sha256");

    db.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_suite() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet is created.
    let data_dir = dir.path().join("nested/data");
    let db = Db::connect(None, &data_dir).await.unwrap();
    assert_eq!(db.kind(), DbKind::Sqlite);
    assert!(data_dir.join("timbre.db").is_file());
    db_suite(&db).await;
    db.close().await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(None, dir.path()).await.unwrap();
    let Db::Sqlite(pool) = &db else { panic!("expected SQLite") };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    assert_eq!(mode, "wal");
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(pool).await.unwrap();
    assert_eq!(busy, 5000);
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(pool).await.unwrap();
    assert_eq!(foreign_keys, 1);
    db.migrate().await.unwrap();
    db.meta_set("k", "v").await.unwrap();
    assert!(dir.path().join("timbre.db-wal").exists(), "WAL file");
    db.close().await;

    // An explicit sqlite: URL is honoured, with the same settings.
    let file = dir.path().join("other.db");
    let url = format!("sqlite://{}", file.display());
    let db = Db::connect(Some(&url), dir.path()).await.unwrap();
    let Db::Sqlite(pool) = &db else { panic!("expected SQLite") };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    assert_eq!(mode, "wal");
    assert!(file.is_file());
    db.close().await;
}

#[tokio::test]
async fn postgres_suite() {
    let schema = PgSchema::create().await;
    let db = Db::connect(Some(&schema.url), std::path::Path::new("unused")).await.unwrap();
    assert_eq!(db.kind(), DbKind::Postgres);
    let Db::Postgres(pool) = &db else { panic!("expected PostgreSQL") };
    // Every pooled connection works in the test's own schema.
    let current: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(pool).await.unwrap();
    assert_eq!(current, schema.name);
    db_suite(&db).await;
    db.close().await;
}

#[tokio::test]
async fn postgres_migrations_run_concurrently() {
    // Two processes starting together (replicas, workers) both migrate: neither fails and the
    // migration is applied once.
    let schema = PgSchema::create().await;
    let unused = std::path::Path::new("unused");
    let a = Db::connect(Some(&schema.url), unused).await.unwrap();
    let b = Db::connect(Some(&schema.url), unused).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    let versions: Vec<i64> = applied(&a).await.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "each migration applied once");
    assert!(versions.len() >= 2);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn postgres_errors_that_retrying_cannot_fix_fail_at_once() {
    let _ = PgSchema::create().await; // fails clearly if PostgreSQL is down
    let base = common::test_database_url();
    let url = url::Url::parse(&base).unwrap();
    let mut missing = url.clone();
    missing.set_path("/timbre_no_such_database");
    let started = Instant::now();
    let err = Db::connect_with_retry(Some(missing.as_str()), std::path::Path::new("unused"), 5, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("timbre_no_such_database"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "retried a fatal error");
}

#[tokio::test]
async fn connect_with_retry_gives_up_naming_the_host_not_the_password() {
    // Port 1: nothing listens, connections are refused at once.
    let url = "postgres://u:hunter2@127.0.0.1:1/x";
    let started = Instant::now();
    let err = Db::connect_with_retry(Some(url), std::path::Path::new("unused"), 3, Duration::from_millis(100))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let message = err.to_string();
    assert!(matches!(err, DbError::Unreachable { attempts: 3, .. }), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("after 3 attempt"), "{message}");
    for shown in [message.clone(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    }
    // Waited 100 ms then 200 ms between the three attempts: the backoff grows.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    // One attempt means one attempt.
    let started = Instant::now();
    let err = Db::connect(Some(url), std::path::Path::new("unused")).await.unwrap_err();
    assert!(matches!(err, DbError::Unreachable { attempts: 1, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn store_open_uses_the_data_dir_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::new(dir.path());
    let store = Store::open(&settings).await.unwrap();
    assert_eq!(store.db.kind(), DbKind::Sqlite);
    // Migrated on open.
    store.db.meta_set("opened", "yes").await.unwrap();
    store.blobs.put("x", Bytes::from_static(b"x"), "text/plain").await.unwrap();
    assert!(dir.path().join("timbre.db").is_file());
    assert!(dir.path().join("blobs/objects/x").is_file());

    // Settings print without secrets.
    let mut settings = settings;
    settings.database_url = Some("postgres://u:hunter2@db/app".into());
    let debug = format!("{settings:?}");
    assert!(!debug.contains("hunter2") && debug.contains("db/app"), "{debug}");
    assert!(!format!("{:?}", store.db).contains("hunter2"));
}
