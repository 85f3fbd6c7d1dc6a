//! The `timbre` binary as a user runs it: configuration precedence and redaction, JSON logs with
//! request ids, SIGTERM, and the model commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn timbre() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timbre"));
    // Start from a clean slate: the developer's own TIMBRE_*/seed variables must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("TIMBRE_") || ["PORT", "HOST", "SERVICE_TOKEN", "LOG_LEVEL", "SKIP_MODEL_LOADING", "DATABASE_URL"].contains(&k.as_str()) {
            c.env_remove(k);
        }
    }
    c
}

fn stdout_of(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn config_show_applies_file_env_flag_precedence_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "port = 1111\nlog_level = \"debug\"\nenvironment = \"from-file\"\nservice_token = \"file-secret-1\"\n").unwrap();

    let (code, out, _) = stdout_of(timbre().args(["config", "show", "--config"]).arg(&file));
    assert_eq!(code, 0);
    assert!(out.contains("port = 1111") && out.contains("environment = \"from-file\""), "{out}");

    let (_, out, _) = stdout_of(timbre().args(["config", "show", "--config"]).arg(&file).env("PORT", "2222").env("ENVIRONMENT", "from-env"));
    assert!(out.contains("port = 2222") && out.contains("environment = \"from-env\"") && out.contains("log_level = \"debug\""), "{out}");

    let (_, out, _) = stdout_of(
        timbre()
            .args(["config", "show", "--port", "3333", "--set", "environment=from-flag", "--config"])
            .arg(&file)
            .env("PORT", "2222")
            .env("TIMBRE_CONFIG", "/nonexistent.toml")
            .env("S3_SECRET_ACCESS_KEY", "env-secret-2"),
    );
    assert!(out.contains("port = 3333") && out.contains("environment = \"from-flag\""), "{out}");
    assert!(!out.contains("file-secret-1") && !out.contains("env-secret-2"), "secrets leaked: {out}");
    assert!(out.contains("service_token = \"***\"") && out.contains("s3_secret_access_key = \"***\""), "{out}");

    let (code, _, err) = stdout_of(timbre().args(["config", "show"]).env("TIMBRE_MAX_INFLIGHTS", "3"));
    assert_eq!(code, 0);
    assert!(err.contains("TIMBRE_MAX_INFLIGHTS") && err.contains("did you mean TIMBRE_MAX_INFLIGHT"), "{err}");

    let (code, _, err) = stdout_of(timbre().args(["config", "show"]).env("PORT", "http"));
    assert_eq!(code, 2);
    assert!(err.contains("port") && err.contains("PORT"), "{err}");
}

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(envs: &[(&str, &str)], models_dir: &Path) -> (Self, String, Duration) {
        let started = Instant::now();
        let mut cmd = timbre();
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--models-dir"]).arg(models_dir);
        cmd.env("TIMBRE_LOG_FORMAT", "json").stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server { child, lines: rx, seen: Vec::new() };
        let line = server.wait_for(|l| l.contains("\"listening\""), Duration::from_secs(10)).expect("server never logged `listening`");
        let elapsed = started.elapsed();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (server, v["address"].as_str().unwrap().to_string(), elapsed)
    }

    fn wait_for(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> Option<String> {
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

    fn sigterm(&mut self) -> i32 {
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

fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
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

#[test]
fn serve_logs_json_with_request_ids_never_secrets_and_stops_on_sigterm() {
    let models = tempfile::tempdir().unwrap();
    let (mut server, addr, to_listen) =
        Server::start(&[("SERVICE_TOKEN", "tok-very-secret-9"), ("LOG_LEVEL", "debug"), ("TIMBRE_THREADZ", "1")], models.path());
    assert!(to_listen < Duration::from_secs(5), "listening took {to_listen:?}");

    let (status, _) = http_get(&addr, "/v1/models", &[("Authorization", "Bearer tok-very-secret-9"), ("x-request-id", "rid-abc-42")]);
    assert_eq!(status, 200);
    let line = server.wait_for(|l| l.contains("rid-abc-42") && l.contains("request finished"), Duration::from_secs(5));
    let line = line.expect("a `request finished` log line carrying the request id");
    let v: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
    assert_eq!(v["span"]["request_id"], "rid-abc-42");
    assert_eq!(v["status"], 200);

    let (status, body) = http_get(&addr, "/health", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("no models found"), "an empty models dir is reported: {body}");

    assert_eq!(server.sigterm(), 0, "clean exit on SIGTERM");
    while let Ok(l) = server.lines.recv_timeout(Duration::from_millis(200)) {
        server.seen.push(l);
    }
    let all = server.seen.join("\n");
    assert!(!all.contains("tok-very-secret-9"), "secret in logs:\n{all}");
    assert!(all.contains("TIMBRE_THREADZ") && all.contains("unknown environment variable"), "unknown var warned:\n{all}");
    assert!(all.contains("shutdown requested") && all.contains("\"stopped\""), "{all}");
    for l in server.seen.iter().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

#[test]
fn an_open_server_warns_loudly() {
    let models = tempfile::tempdir().unwrap();
    let (mut server, _, _) = Server::start(&[], models.path());
    let warned = server.seen.iter().any(|l| l.contains("NO API KEY CONFIGURED"));
    assert!(warned, "{:?}", server.seen);
    assert_eq!(server.sigterm(), 0);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, out, err) = stdout_of(timbre().args(["serve", "--host", "127.0.0.1", "--port", &port]).env("TIMBRE_LOG_FORMAT", "pretty"));
    assert_eq!(code, 2);
    assert!(format!("{out}{err}").contains("cannot listen on 127.0.0.1:"), "{out}{err}");
}

#[test]
fn unfinished_commands_say_so() {
    for cmd in ["worker", "migrate", "transcribe", "speak", "tag", "analyze", "generate"] {
        let (code, _, err) = stdout_of(timbre().arg(cmd));
        assert_eq!(code, 2, "{cmd}");
        assert!(err.contains("not yet available"), "{cmd}: {err}");
    }
}

#[test]
fn models_list_and_verify_check_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("tiny");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("w.bin"), b"hello").unwrap();
    // sha256("hello")
    let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    std::fs::write(m.join("model.toml"), format!("name='tiny'\nfamily='ced'\ncapability='tagging'\n[[files]]\npath='w.bin'\nsha256='{sha}'\nbytes=5\n")).unwrap();

    let (code, out, _) = stdout_of(timbre().args(["models", "list", "--json", "--models-dir"]).arg(dir.path()));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "tiny");
    assert_eq!(v[0]["status"], "present");

    let (code, out, _) = stdout_of(timbre().args(["models", "verify", "--models-dir"]).arg(dir.path()));
    assert_eq!(code, 0, "{out}");
    std::fs::write(m.join("w.bin"), b"HELLO").unwrap();
    let (code, out, _) = stdout_of(timbre().args(["models", "verify", "--models-dir"]).arg(dir.path()));
    assert_eq!(code, 1);
    assert!(out.contains("FAILED") && out.contains("does not match"), "{out}");
}
