//! Test harness: a real S3 server (s3s-fs) per test, and a fresh PostgreSQL schema per test.
//!
//! Both fail loudly when their tool is missing: CI provides them (`.ci/run` runs
//! `scripts/install-test-tools` and starts PostgreSQL), so a silent skip would hide a broken CI.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use timbre_store::{ObjectBlobStore, S3Settings, redact_url};

pub const S3_BUCKET: &str = "timbre-test";
const S3_ACCESS_KEY: &str = "timbre-test-access";
const S3_SECRET_KEY: &str = "timbre-test-secret";

/// Where `scripts/install-test-tools` puts s3s-fs, or an override.
fn find_s3s_fs() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TIMBRE_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("TIMBRE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/timbre")));
    if let Some(bin) = cache.map(|c| c.join("tools/bin/s3s-fs"))
        && bin.is_file()
    {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("s3s-fs")).find(|bin| bin.is_file())
}

/// An s3s-fs process serving a temporary directory on a port of its choosing; killed on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    _root: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> Self {
        let bin = find_s3s_fs().unwrap_or_else(|| {
            panic!(
                "s3s-fs not found (looked at $TIMBRE_S3S_FS, $TIMBRE_CACHE/tools/bin, \
                 ~/.cache/timbre/tools/bin and PATH): run scripts/install-test-tools"
            )
        });
        let root = tempfile::tempdir().unwrap();
        // s3s-fs maps each top-level directory to a bucket: this is CreateBucket.
        std::fs::create_dir(root.path().join(S3_BUCKET)).unwrap();
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (run scripts/install-test-tools)", bin.display()));
        // It binds port 0 and logs "server is running at http://127.0.0.1:PORT"; a thread reads
        // that line and keeps draining the pipe so the server never blocks on a full one.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("http://")
                    && let Some(tx) = tx.take()
                {
                    let addr: String = line[at..].chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut server = Self { child, endpoint: String::new(), _root: root };
        server.endpoint = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{} did not report its address within 20 s", bin.display()));
        // It logs after binding: the port answers from here on.
        let addr = server.endpoint.trim_start_matches("http://").to_owned();
        std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("s3s-fs at {addr} does not answer: {e}"));
        server
    }

    /// Bytes of multipart-upload parts the server holds (`<root>/.upload_id-<id>.part-<n>`):
    /// uploads started but not completed or aborted.
    pub fn staged_bytes(&self) -> u64 {
        std::fs::read_dir(self._root.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".upload_id-") && name.contains(".part-")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            bucket: S3_BUCKET.into(),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            access_key: Some(S3_ACCESS_KEY.into()),
            secret_key: Some(S3_SECRET_KEY.into()),
            allow_http: true,
        }
    }

    pub fn store(&self) -> ObjectBlobStore {
        ObjectBlobStore::s3(&self.settings()).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes of unfinished multipart uploads of a local blob store rooted at `root`
/// (`LocalFileSystem` stages them as `<key>#<n>` files next to their destination).
pub fn local_staged_bytes(root: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, total);
            } else if let Some((_, suffix)) = entry.file_name().to_string_lossy().rsplit_once('#')
                && !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit())
            {
                *total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut total = 0;
    walk(root, &mut total);
    total
}

pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own in the test database, so PostgreSQL tests run in parallel; dropped (with
/// everything in it) when this guard drops, even after a failed assertion.
pub struct PgSchema {
    base_url: String,
    pub name: String,
    /// `TEST_DATABASE_URL` with `search_path` set to the schema for every connection.
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        let base_url = test_database_url();
        let mut conn = PgConnection::connect(&base_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}): start it (CI's .ci/run does) or set \
                 TEST_DATABASE_URL",
                redact_url(&base_url)
            )
        });
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).await.unwrap();
        let _ = conn.close().await;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{name}");
        Self { base_url, name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.base_url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop cannot await; a runtime of its own on a thread of its own can.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
