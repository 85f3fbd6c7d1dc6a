//! `timbre verify-deploy URL`: the seeds' post-deploy script, built in. Checks connectivity,
//! health fields, every model's state, auth (rejected without the key, accepted with it) and a
//! WebSocket round trip, prints a ✅/❌ table and exits non-zero if anything failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args)]
pub struct VerifyArgs {
    /// Base URL of the deployment, e.g. https://timbre.up.railway.app
    pub url: String,
    /// API key (SERVICE_TOKEN); also read from TIMBRE_VERIFY_TOKEN.
    #[arg(long, env = "TIMBRE_VERIFY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for each request.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Fail unless every model is ready (default: only required models must be).
    #[arg(long)]
    pub strict: bool,
}

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return crate::cli::fail(&e),
    };
    let checks = runtime.block_on(verify(&args));
    print_table(&checks);
    if checks.iter().all(|c| c.ok) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_table(checks: &[Check]) {
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(5).max(5);
    println!("   {:<width$}  detail", "check");
    for c in checks {
        println!("{} {:<width$}  {}", if c.ok { "✅" } else { "❌" }, c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    println!("\n{} passed, {} failed", checks.len() - failed, failed);
}

async fn verify(args: &VerifyArgs) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |name: &str, ok: bool, detail: String| out.push(Check { name: name.to_string(), ok, detail });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = args.url.trim_end_matches('/').to_string();
    let timeout = Duration::from_secs_f64(args.timeout);
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            push("client", false, e.to_string());
            return out;
        }
    };

    match client.get(format!("{base}/ping")).send().await {
        Ok(r) if r.status().is_success() => push("connectivity", true, format!("GET /ping → {}", r.status())),
        Ok(r) => push("connectivity", false, format!("GET /ping → {}", r.status())),
        Err(e) => {
            push("connectivity", false, format!("{base}: {e}"));
            return out;
        }
    }

    match client.get(format!("{base}/health")).send().await {
        Ok(r) => {
            let status = r.status();
            match r.json::<serde_json::Value>().await {
                Ok(body) => {
                    let missing: Vec<&str> = ["status", "ready", "model_loaded", "models", "version", "uptime_s"]
                        .into_iter()
                        .filter(|k| body.get(k).is_none())
                        .collect();
                    push(
                        "health",
                        status.is_success() && missing.is_empty(),
                        if missing.is_empty() {
                            format!(
                                "{} · status {} · version {}",
                                status,
                                body["status"].as_str().unwrap_or("?"),
                                body["version"].as_str().unwrap_or("?")
                            )
                        } else {
                            format!("{status}; missing fields: {}", missing.join(", "))
                        },
                    );
                    if let Some(models) = body["models"].as_object() {
                        if models.is_empty() {
                            push("models", false, "no models reported (run scripts/fetch-models on the server)".into());
                        }
                        for (name, m) in models {
                            let state = m["state"].as_str().unwrap_or("?");
                            let required = m["required"].as_bool().unwrap_or(true);
                            let ok = state == "ready" || (!required && !args.strict);
                            let mut detail = state.to_string();
                            if let Some(reason) = m["reason"].as_str() {
                                detail.push_str(&format!(" — {reason}"));
                            }
                            if let Some(ms) = m["load_ms"].as_u64() {
                                detail.push_str(&format!(" ({ms} ms)"));
                            }
                            if !required {
                                detail.push_str(" [optional]");
                            }
                            push(&format!("model {name}"), ok, detail);
                        }
                    }
                }
                Err(e) => push("health", false, format!("{status}; body is not JSON: {e}")),
            }
        }
        Err(e) => push("health", false, e.to_string()),
    }

    match client.get(format!("{base}/readyz")).send().await {
        Ok(r) => push("ready", r.status().is_success(), format!("GET /readyz → {}", r.status())),
        Err(e) => push("ready", false, e.to_string()),
    }

    let anonymous = client.get(format!("{base}/v1/models")).send().await.map(|r| r.status().as_u16());
    match (&args.token, anonymous) {
        (Some(_), Ok(401)) => push("auth: no key rejected", true, "401 without a key".into()),
        (Some(_), Ok(code)) => {
            push("auth: no key rejected", false, format!("{code} without a key — the server accepts anonymous calls"))
        }
        (None, Ok(401)) => push("auth", false, "server requires a key: pass --token".into()),
        (None, Ok(code)) => {
            push("auth", code == 200, format!("{code}; server is open (no SERVICE_TOKEN set) — anyone can call it"))
        }
        (_, Err(e)) => push("auth", false, e.to_string()),
    }
    if let Some(token) = &args.token {
        match client.get(format!("{base}/v1/models")).bearer_auth(token).send().await {
            Ok(r) => {
                push("auth: key accepted", r.status().is_success(), format!("GET /v1/models with key → {}", r.status()))
            }
            Err(e) => push("auth: key accepted", false, e.to_string()),
        }
    }

    let (ok, detail) = websocket_round_trip(&base, args.token.as_deref(), timeout).await;
    push("websocket", ok, detail);
    out
}

async fn websocket_round_trip(base: &str, token: Option<&str>, timeout: Duration) -> (bool, String) {
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return (false, format!("URL must start with http:// or https://: {base}"));
    };
    let url = match token {
        Some(t) => format!("{ws_base}/v1/ws/ping?api_key={}", encode_query(t)),
        None => format!("{ws_base}/v1/ws/ping"),
    };
    let attempt = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(|e| format!("connect: {e}"))?;
        let hello = ws.next().await.ok_or("closed before hello")?.map_err(|e| e.to_string())?;
        if !hello.to_text().unwrap_or("").contains("hello") {
            return Err(format!("unexpected first message: {hello}"));
        }
        ws.send(Message::Text("verify-deploy".into())).await.map_err(|e| e.to_string())?;
        let echo = ws.next().await.ok_or("closed before echo")?.map_err(|e| e.to_string())?;
        let _ = ws.close(None).await;
        if echo.to_text().unwrap_or("") == "verify-deploy" { Ok(()) } else { Err(format!("echo mismatch: {echo}")) }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => (true, "connected to /v1/ws/ping and echoed a message".into()),
        Ok(Err(e)) => (false, e),
        Err(_) => (false, "timed out".into()),
    }
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
