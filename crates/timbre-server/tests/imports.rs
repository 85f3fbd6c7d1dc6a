//! URL imports through the real server: download, sniff, store, reuse by `import_id`; SSRF
//! refusals (before and after redirects), size and content checks. The media host is a local
//! axum server; loopback counts as private, so most tests allow private addresses explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::*;
use timbre_server::Config;

fn tone_wav() -> Vec<u8> {
    let s: Vec<f32> =
        (0..32_000).map(|i| 0.4 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin()).collect();
    timbre_audio::encode(&s, 16_000, timbre_audio::OutputFormat::Wav).unwrap()
}

async fn media_host(bind: &str, redirect_target: Option<String>) -> SocketAddr {
    let wav = tone_wav();
    let app = Router::new()
        .route("/tone.wav", get(move || async move { ([(header::CONTENT_TYPE, "audio/wav")], wav.clone()) }))
        .route("/redirect", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/tone.wav")]) }))
        .route(
            "/page.html",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html><body>not audio</body></html>".repeat(10)) }),
        )
        .route("/big.wav", get(|| async { ([(header::CONTENT_TYPE, "audio/wav")], vec![0u8; 3 << 20]) }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND.into_response() }))
        .route(
            "/hop",
            get(move || {
                let to = redirect_target.clone().unwrap_or_default();
                async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn server_with_store(config: Config) -> (TestServer, tempfile::TempDir) {
    let server = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    attach_store(&server, dir.path()).await;
    (server, dir)
}

async fn import(c: &reqwest::Client, server: &TestServer, url: &str) -> reqwest::Response {
    c.post(server.url("/v1/imports")).json(&serde_json::json!({ "url": url })).send().await.unwrap()
}

#[tokio::test]
async fn imports_are_downloaded_sniffed_stored_and_reusable() {
    let host = media_host("127.0.0.1:0", None).await;
    let (server, dir) = server_with_store(Config { import_allow_private: true, ..base_config() }).await;
    let c = client();

    let r = import(&c, &server, &format!("http://{host}/tone.wav")).await;
    assert_eq!(r.status(), 201);
    let rec = json(r).await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["via"], "direct");
    assert_eq!(rec["content_type"], "audio/wav");
    assert!((rec["duration"].as_f64().unwrap() - 2.0).abs() < 0.01, "{rec}");
    assert_eq!((rec["sample_rate"].as_u64(), rec["channels"].as_u64()), (Some(16_000), Some(1)));
    assert!(dir.path().join("blobs/objects/imports").join(&id).join("source").is_file(), "stored in the blob store");

    let again = json(c.get(server.url(&format!("/v1/imports/{id}"))).send().await.unwrap()).await;
    assert_eq!(again, rec);
    assert_envelope(
        c.get(server.url("/v1/imports/0123456789abcdef0123456789abcdef")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_envelope(c.get(server.url("/v1/imports/..%2f..%2fetc")).send().await.unwrap(), 404, "not_found").await;

    // Redirects are followed, and the SonoTag alias works.
    let r = c
        .post(server.url("/download_youtube"))
        .json(&serde_json::json!({"url": format!("http://{host}/redirect")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(json(r).await["final_url"].as_str().unwrap().ends_with("/tone.wav"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn private_addresses_are_refused_even_after_a_redirect() {
    let target = media_host("127.0.0.1:0", None).await;
    let hop = media_host("127.0.0.2:0", Some(format!("http://{target}/tone.wav"))).await;
    // 127.0.0.2 is allowed explicitly (an operator's internal host); 127.0.0.1 is not.
    let config = Config { import_allow_addrs: vec!["127.0.0.2".into()], ..base_config() };
    let (server, dir) = server_with_store(config).await;
    let c = client();

    for url in [
        format!("http://{target}/tone.wav"),
        format!("http://localhost:{}/tone.wav", target.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/x".to_string(),
        "http://10.1.2.3/a.mp3".to_string(),
    ] {
        let v = assert_envelope(import(&c, &server, &url).await, 403, "url_forbidden").await;
        assert_eq!(v["error"]["param"], "url", "{url}");
        assert!(v["error"]["message"].as_str().unwrap().contains("TIMBRE_IMPORT_ALLOW_PRIVATE"));
    }
    // The allowed host redirects to a refused one: the redirect is checked again.
    let v = assert_envelope(import(&c, &server, &format!("http://{hop}/hop")).await, 403, "url_forbidden").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("127.0.0.1"), "{v}");
    assert!(!dir.path().join("blobs/objects/imports").exists(), "nothing stored");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_imports_get_clear_errors_and_store_nothing() {
    let host = media_host("127.0.0.1:0", None).await;
    let (server, dir) =
        server_with_store(Config { import_allow_private: true, import_max_mb: 1, ..base_config() }).await;
    let c = client();
    assert_envelope(import(&c, &server, &format!("http://{host}/big.wav")).await, 413, "payload_too_large").await;
    let r = import(&c, &server, &format!("http://{host}/page.html")).await;
    assert!(r.status() == 415 || r.status() == 422, "{}", r.status());
    assert_eq!(json(r).await["error"]["param"], "url");
    assert_envelope(import(&c, &server, &format!("http://{host}/missing")).await, 422, "upstream_error").await;
    assert_envelope(import(&c, &server, "ftp://example.com/a.mp3").await, 422, "invalid_value").await;
    assert_envelope(import(&c, &server, "http://127.0.0.1:1/closed.wav").await, 502, "upstream_error").await;
    assert_envelope(
        c.post(server.url("/v1/imports")).body("{").header("content-type", "application/json").send().await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert!(!dir.path().join("blobs/objects/imports").exists(), "nothing stored");
    server.stop().await.unwrap();
}
