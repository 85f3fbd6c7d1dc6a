//! The `timbre` binary as a user runs it: configuration precedence and redaction, JSON logs with
//! request ids, SIGTERM, and the model commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, http_get, stdout_of, timbre};

#[test]
fn config_show_applies_file_env_flag_precedence_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "port = 1111\nlog_level = \"debug\"\nenvironment = \"from-file\"\nservice_token = \"file-secret-1\"\n",
    )
    .unwrap();

    let (code, out, _) = stdout_of(timbre().args(["config", "show", "--config"]).arg(&file));
    assert_eq!(code, 0);
    assert!(out.contains("port = 1111") && out.contains("environment = \"from-file\""), "{out}");

    let (_, out, _) = stdout_of(
        timbre().args(["config", "show", "--config"]).arg(&file).env("PORT", "2222").env("ENVIRONMENT", "from-env"),
    );
    assert!(
        out.contains("port = 2222")
            && out.contains("environment = \"from-env\"")
            && out.contains("log_level = \"debug\""),
        "{out}"
    );

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

#[test]
fn serve_logs_json_with_request_ids_never_secrets_and_stops_on_sigterm() {
    let models = tempfile::tempdir().unwrap();
    let (mut server, addr, to_listen) = Server::start(
        &[("SERVICE_TOKEN", "tok-very-secret-9"), ("LOG_LEVEL", "debug"), ("TIMBRE_THREADZ", "1")],
        models.path(),
    );
    assert!(to_listen < Duration::from_secs(5), "listening took {to_listen:?}");

    let (status, _) =
        http_get(&addr, "/v1/models", &[("Authorization", "Bearer tok-very-secret-9"), ("x-request-id", "rid-abc-42")]);
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
    assert!(
        all.contains("TIMBRE_THREADZ") && all.contains("unknown environment variable"),
        "unknown var warned:\n{all}"
    );
    assert!(all.contains("shutdown requested") && all.contains("\"stopped\""), "{all}");
    for l in server.seen.iter().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

/// The async runtime's size comes from `TIMBRE_ASYNC_THREADS`, by default half the cores: what
/// `/metrics` reports is the runtime the server really runs on.
#[test]
fn the_async_runtime_is_sized_by_config() {
    let models = tempfile::tempdir().unwrap();
    let workers = |envs: &[(&str, &str)]| {
        let (mut server, addr, _) = Server::start(envs, models.path());
        let (status, body) = http_get(&addr, "/metrics", &[]);
        assert_eq!(status, 200);
        let line = body.lines().find(|l| l.starts_with("timbre_runtime_workers ")).unwrap_or_else(|| panic!("{body}"));
        assert_eq!(server.sigterm(), 0);
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap()
    };
    assert_eq!(workers(&[("TIMBRE_ASYNC_THREADS", "3")]), 3.0);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(workers(&[]), (cores / 2).max(1) as f64, "default on {cores} cores");
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
    let (code, out, err) =
        stdout_of(timbre().args(["serve", "--host", "127.0.0.1", "--port", &port]).env("TIMBRE_LOG_FORMAT", "pretty"));
    assert_eq!(code, 2);
    assert!(format!("{out}{err}").contains("cannot listen on 127.0.0.1:"), "{out}{err}");
}

#[test]
fn unfinished_commands_say_so() {
    let (code, _, err) = stdout_of(timbre().arg("generate"));
    assert_eq!(code, 2);
    assert!(err.contains("not yet available"), "{err}");
}

#[test]
fn models_list_and_verify_check_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("tiny");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("w.bin"), b"hello").unwrap();
    // sha256("hello")
    let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    std::fs::write(
        m.join("model.toml"),
        format!("name='tiny'\nfamily='ced'\ncapability='tagging'\n[[files]]\npath='w.bin'\nsha256='{sha}'\nbytes=5\n"),
    )
    .unwrap();

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

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = stdout_of(timbre().args(["migrate", "--data-dir"]).arg(dir.path()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("migrations applied") && out.contains("timbre.db"), "{out}");
    assert!(dir.path().join("timbre.db").is_file());
    let (code, _, _) = stdout_of(timbre().args(["migrate", "--data-dir"]).arg(dir.path()));
    assert_eq!(code, 0, "migrations are idempotent");
}

#[test]
fn an_unreachable_database_degrades_health_and_never_leaks_the_password() {
    let models = tempfile::tempdir().unwrap();
    let (mut server, addr, _) =
        Server::start(&[("DATABASE_URL", "postgres://app:hunter2-secret@127.0.0.1:1/app")], models.path());
    let (status, body) = http_get(&addr, "/health", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("storage:"), "{body}");
    assert!(!body.contains("hunter2-secret"));
    assert_eq!(http_get(&addr, "/ping", &[]).0, 200, "serving meanwhile");
    // The retry loop logs the failure with the host and without the password.
    let line =
        server.wait_for(|l| l.contains("storage unavailable"), Duration::from_secs(30)).expect("a failure log line");
    assert!(line.contains("127.0.0.1") && !line.contains("hunter2-secret"), "{line}");
    assert_eq!(server.sigterm(), 0);
    assert!(!server.seen.join("\n").contains("hunter2-secret"));
}

/// `timbre speak` without a server: the format follows the extension, `-o -` writes WAV to
/// stdout, an unknown voice lists the voices. Needs `make setup` (models, runtime, espeak-ng).
#[test]
fn speak_writes_audio_without_a_server() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let dir = tempfile::tempdir().unwrap();
    let mp3 = dir.path().join("hello.mp3");
    let (code, _, err) = stdout_of(
        timbre()
            .args(["speak", "Hello there. This is the command line.", "--voice", "en_US-joe-medium", "-o"])
            .arg(&mp3)
            .env("TIMBRE_MODELS_DIR", &models),
    );
    assert_eq!(code, 0, "{err}");
    let d = timbre_audio::decode(&std::fs::read(&mp3).unwrap(), Some("mp3")).unwrap();
    assert_eq!(d.sample_rate, 22_050);
    assert!((1.5..6.0).contains(&d.duration_s), "{}", d.duration_s);

    let out = timbre()
        .args(["speak", "-", "--voice", "alloy", "-o", "-"])
        .env("TIMBRE_MODELS_DIR", &models)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"Read from standard input.")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let wav = timbre_audio::decode(&out.stdout, Some("wav")).unwrap();
    assert!(wav.duration_s > 0.8 && wav.sample_rate == 22_050, "{} s at {}", wav.duration_s, wav.sample_rate);

    let (code, _, err) = stdout_of(
        timbre().args(["speak", "Hi.", "--voice", "nobody", "-o", "x.wav"]).env("TIMBRE_MODELS_DIR", &models),
    );
    assert_eq!(code, 2);
    assert!(err.contains("en_US-joe-medium"), "{err}");
    let (code, _, err) = stdout_of(timbre().args(["speak", "Hi.", "-o", "x.aac"]).env("TIMBRE_MODELS_DIR", &models));
    assert_eq!(code, 2);
    assert!(err.contains("aac"), "{err}");
}
