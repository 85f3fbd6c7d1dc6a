//! Live-transcription latency as a client sees it: replays WAV files at real time over
//! `WS /v1/stt/stream` and measures, per utterance, how long after the speech began the first
//! partial arrived and how long after it ended the final arrived.
//!
//! ```text
//! cargo run --release -p timbre --example stt_latency -- ws://127.0.0.1:8080 a.wav b.wav …
//! ```
//!
//! Each file becomes one utterance of a single session: 1 s of silence, the file, 1.5 s of
//! silence. The truth (where speech starts and ends) comes from the audio itself: the first and
//! last 10 ms frame louder than −40 dBFS, so the files should be clean recordings with silence
//! around the speech (synthesised sentences are). Frames of 20 ms are sent on a real-time
//! clock; the stream time of a reply is when it arrived. Prints one JSON object per utterance
//! and a summary line.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const RATE: usize = 16_000;
const FRAME: usize = RATE / 50;

/// First and last sample of speech: 10 ms frames over −40 dBFS RMS.
fn speech_bounds(samples: &[f32]) -> Option<(usize, usize)> {
    let win = RATE / 100;
    let loud: Vec<usize> = samples
        .chunks(win)
        .enumerate()
        .filter(|(_, c)| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt() > 0.01)
        .map(|(i, _)| i)
        .collect();
    Some((*loud.first()? * win, (*loud.last()? + 1) * win))
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let base = args.next().ok_or("usage: stt_latency WS_BASE_URL FILE.wav…")?;
    let files: Vec<String> = args.collect();
    let mut stream = Vec::new();
    let mut truth = Vec::new();
    for f in &files {
        let samples = timbre_audio::decode_mono(&std::fs::read(f)?, Some("wav"), RATE as u32)?;
        let (s, e) = speech_bounds(&samples).ok_or(format!("{f}: no speech found"))?;
        stream.extend(vec![0.0; RATE]);
        truth.push((f.clone(), (stream.len() + s) as f64 / RATE as f64, (stream.len() + e) as f64 / RATE as f64));
        stream.extend(samples);
        stream.extend(vec![0.0; RATE * 3 / 2]);
    }
    let (ws, _) = tokio_tungstenite::connect_async(format!("{base}/v1/stt/stream")).await?;
    let (mut write, mut read) = ws.split();
    write
        .send(Message::Text(json!({"sample_rate": RATE, "encoding": "pcm16", "language": "en"}).to_string().into()))
        .await?;
    let ready = read.next().await.ok_or("closed before ready")??;
    eprintln!("{}", ready.to_text()?);
    let pcm = timbre_audio::f32_to_pcm16_bytes(&stream);
    let t0 = Instant::now();
    let sender = tokio::spawn(async move {
        for (k, frame) in pcm.chunks(FRAME * 2).enumerate() {
            tokio::time::sleep_until((t0 + Duration::from_millis(20 * k as u64)).into()).await;
            if write.send(Message::Binary(frame.to_vec().into())).await.is_err() {
                return;
            }
        }
        let _ = write.send(Message::Text(r#"{"type":"eof"}"#.into())).await;
    });
    let mut replies: Vec<(f64, Value)> = Vec::new();
    while let Some(Ok(msg)) = read.next().await {
        match msg {
            Message::Text(t) => replies.push((t0.elapsed().as_secs_f64(), serde_json::from_str(&t)?)),
            Message::Close(_) => break,
            _ => {}
        }
    }
    sender.await?;
    // A final names its utterance by its `start`/`end` (stream time); partials precede their
    // utterance's final, so utterance i's first partial is the first one after the previous
    // final arrived (and after its speech began). Matching by arrival windows instead would
    // misattribute replies on a machine slower than real time.
    let (mut partial_delays, mut final_delays) = (Vec::new(), Vec::new());
    let mut previous_final_at = 0.0;
    for (file, start, end) in &truth {
        let fin = replies.iter().find(|(_, v)| {
            v["type"] == "final"
                && v["start"].as_f64().is_some_and(|s| s < *end)
                && v["end"].as_f64().is_some_and(|e| e > *start)
        });
        let first_partial =
            replies.iter().find(|(at, v)| v["type"] == "partial" && *at >= *start && *at >= previous_final_at);
        let p = first_partial.map(|(at, _)| at - start);
        let f = fin.map(|(at, _)| at - end);
        if let Some((at, _)) = fin {
            previous_final_at = *at;
        }
        if let Some(p) = p {
            partial_delays.push(p);
        }
        if let Some(f) = f {
            final_delays.push(f);
        }
        let row = json!({"file": file, "speech_start": start, "speech_end": end,
            "first_partial_after_start_s": p, "final_after_end_s": f,
            "final_text": fin.map(|(_, v)| v["text"].clone())});
        println!("{row}");
    }
    println!(
        "{}",
        json!({"utterances": truth.len(), "finals": final_delays.len(), "partials": partial_delays.len(),
            "first_partial_p50": percentile(partial_delays.clone(), 0.5), "first_partial_max": percentile(partial_delays, 1.0),
            "final_p50": percentile(final_delays.clone(), 0.5), "final_p90": percentile(final_delays.clone(), 0.9),
            "final_max": percentile(final_delays, 1.0)})
    );
    Ok(())
}
