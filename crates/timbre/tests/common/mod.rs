//! Run the `timbre` binary the way a user does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn timbre() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timbre"));
    // Start from a clean slate: the developer's own TIMBRE_*/seed variables must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("TIMBRE_")
            || ["PORT", "HOST", "SERVICE_TOKEN", "LOG_LEVEL", "SKIP_MODEL_LOADING", "DATABASE_URL"]
                .contains(&k.as_str())
        {
            c.env_remove(k);
        }
    }
    c
}

pub fn stdout_of(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Server {
    /// A fresh data dir per server (SQLite, blobs), unless the test sets TIMBRE_DATA_DIR.
    _data: tempfile::TempDir,
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    pub fn start(envs: &[(&str, &str)], models_dir: &Path) -> (Self, String, Duration) {
        Self::start_with_args(envs, models_dir, &[])
    }

    /// [`Server::start`] with extra `serve` arguments (e.g. `--workers 0`).
    pub fn start_with_args(envs: &[(&str, &str)], models_dir: &Path, args: &[&str]) -> (Self, String, Duration) {
        let started = Instant::now();
        let mut cmd = timbre();
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--models-dir"]).arg(models_dir).args(args);
        let data = tempfile::tempdir().unwrap();
        cmd.env("TIMBRE_LOG_FORMAT", "json")
            .env("TIMBRE_DATA_DIR", data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server { _data: data, child, lines: rx, seen: Vec::new() };
        let line = server
            .wait_for(|l| l.contains("\"listening\""), Duration::from_secs(10))
            .expect("server never logged `listening`");
        let elapsed = started.elapsed();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (server, v["address"].as_str().unwrap().to_string(), elapsed)
    }

    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    pub fn sigterm(&mut self) -> i32 {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp)
}
