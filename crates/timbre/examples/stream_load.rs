//! Load client for keypoint stream servers (`scripts/bench/streams.sh`): N WebSocket clients,
//! each sending JSON keypoint frames at a fixed rate for a fixed time, measuring the round trip
//! of every frame from the `t` the server echoes.
//!
//! ```sh
//! cargo run --release -p timbre --example stream_load -- \
//!     --url ws://127.0.0.1:8080/v1/streams/signify-letters-test --clients 200 --fps 30 --seconds 20
//! ```
//!
//! Prints one JSON object: clients connected, frames sent / answered / lost, errors, throttle
//! notices, round-trip p50 / p99 / max in ms. Frames are the 26 letter poses of
//! `tests/fixtures/onnx/stream_letters_input.f32`, cycled. Clients start spread over one frame
//! period so their frames do not all arrive at once. Written in Rust (one tokio thread) so the
//! client is not what limits the measurement on a small machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// WebSocket URL of the stream.
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Raw keypoint frames (little-endian f32, 63 per frame).
    #[arg(long, default_value = "tests/fixtures/onnx/stream_letters_input.f32")]
    frames: String,
    /// How long to wait for the last answers after sending stops.
    #[arg(long, default_value_t = 2.0)]
    drain_seconds: f64,
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    answered: AtomicU64,
    errors: AtomicU64,
    throttled: AtomicU64,
    failed_connects: AtomicU64,
}

#[derive(serde::Deserialize)]
struct Reply {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    t: Option<f64>,
}

fn load_frames(path: &str) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let frames: Vec<String> = floats
        .chunks_exact(63)
        .take(26)
        .map(|kp| {
            let points: Vec<String> = kp.chunks(3).map(|p| format!("[{},{},{}]", p[0], p[1], p[2])).collect();
            format!("[{}]", points.join(","))
        })
        .collect();
    if frames.is_empty() { Err(format!("{path} holds no frames")) } else { Ok(frames) }
}

async fn client(
    i: usize,
    args: Arc<Args>,
    frames: Arc<Vec<String>>,
    epoch: Instant,
    totals: Arc<Totals>,
    rtts: Arc<Mutex<Vec<f32>>>,
) {
    // Round trips go straight into the shared list: nothing is lost when the reader is stopped.
    let period = Duration::from_secs_f64(1.0 / args.fps);
    // Spread the clients over one period.
    tokio::time::sleep(period.mul_f64(i as f64 / args.clients as f64)).await;
    let ws = match tokio_tungstenite::connect_async(args.url.as_str()).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            if totals.failed_connects.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("stream_load: connect failed: {e}");
            }
            return;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let stop_at = Instant::now() + Duration::from_secs_f64(args.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let reader = {
        let (totals, answered, rtts) = (Arc::clone(&totals), Arc::clone(&answered), Arc::clone(&rtts));
        tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(reply) = serde_json::from_str::<Reply>(text.as_str()) else { continue };
                match reply.kind.as_deref() {
                    Some("throttled") => {
                        totals.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("error") => {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        if let Some(t) = reply.t {
                            let now = epoch.elapsed().as_secs_f64() * 1000.0;
                            rtts.lock().await.push((now - t) as f32);
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = i;
    while Instant::now() < stop_at {
        tick.tick().await;
        let t = epoch.elapsed().as_secs_f64() * 1000.0;
        let text = format!("{{\"t\":{t:.3},\"keypoints\":{}}}", frames[n % frames.len()]);
        n += 1;
        if tx.send(Message::Text(text.into())).await.is_err() {
            break;
        }
        sent.fetch_add(1, Ordering::Relaxed);
    }
    // Let the last answers arrive, then close.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    while answered.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
    reader.abort();
    totals.sent.fetch_add(sent.load(Ordering::Relaxed), Ordering::Relaxed);
    totals.answered.fetch_add(answered.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn percentile(sorted: &[f32], p: f64) -> Option<f32> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied()
}

fn main() -> std::process::ExitCode {
    let args = Arc::new(Args::parse());
    let frames = match load_frames(&args.frames) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            eprintln!("stream_load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stream_load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let totals = Arc::new(Totals::default());
    let rtts = Arc::new(Mutex::new(Vec::new()));
    let epoch = Instant::now();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..args.clients {
            tasks.spawn(client(
                i,
                Arc::clone(&args),
                Arc::clone(&frames),
                epoch,
                Arc::clone(&totals),
                Arc::clone(&rtts),
            ));
        }
        while tasks.join_next().await.is_some() {}
    });
    let mut all = runtime.block_on(async { std::mem::take(&mut *rtts.lock().await) });
    all.sort_by(f32::total_cmp);
    let sent = totals.sent.load(Ordering::Relaxed);
    let answered = totals.answered.load(Ordering::Relaxed);
    let failed = totals.failed_connects.load(Ordering::Relaxed);
    let round = |v: Option<f32>| v.map(|x| (f64::from(x) * 1000.0).round() / 1000.0);
    let summary = serde_json::json!({
        "clients": args.clients,
        "connected": args.clients as u64 - failed,
        "fps": args.fps,
        "seconds": args.seconds,
        "sent": sent,
        "answered": answered,
        "lost": sent.saturating_sub(answered),
        "errors": totals.errors.load(Ordering::Relaxed),
        "throttled": totals.throttled.load(Ordering::Relaxed),
        "p50_ms": round(percentile(&all, 0.50)),
        "p99_ms": round(percentile(&all, 0.99)),
        "max_ms": round(all.last().copied()),
    });
    println!("{summary}");
    std::process::ExitCode::SUCCESS
}
