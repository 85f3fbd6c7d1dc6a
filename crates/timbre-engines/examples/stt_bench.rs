//! Whisper speed through the `Transcriber` service, for scripts/bench/stt.sh.
//!
//! `stt_bench <model dir> <threads> <runs> <beam> FILE.wav...` loads the model (one worker,
//! `threads` threads inside the model), transcribes every file `runs` times (greedy or beam,
//! temperature 0, no VAD: the same work faster-whisper is given) and prints one JSON line per
//! file (`seconds` = each run's wall time) and a last line with the resident memory after
//! loading and at the end. `FIT_WINDOW=1` encodes only the audio instead of a 30 s window
//! (the live-streaming setting).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use timbre_engines::manifest::Manifest;
use timbre_engines::whisper::Transcriber;
use timbre_engines::whisper::api::TranscribeOptions;

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(args.len() >= 5, "usage: stt_bench <model dir> <threads> <runs> <beam> FILE.wav...");
    let dir = PathBuf::from(&args[0]);
    let threads: usize = args[1].parse().unwrap();
    let runs: usize = args[2].parse().unwrap();
    let beam: usize = args[3].parse().unwrap();
    let manifest = Manifest::from_file(&dir.join("model.toml")).unwrap();
    let started = Instant::now();
    let t = Transcriber::load(&manifest, 1, threads, None, &|_| {}).unwrap();
    let load = started.elapsed().as_secs_f64();
    let rss_loaded = rss_mb("VmRSS:");
    for file in &args[4..] {
        let bytes = std::fs::read(file).unwrap();
        let audio = timbre_audio::decode_mono(&bytes, Some("wav"), 16_000).unwrap();
        let duration = audio.len() as f64 / 16_000.0;
        let opts = TranscribeOptions {
            language: Some("en".into()),
            temperatures: vec![0.0],
            beam_size: beam,
            best_of: 1,
            vad_filter: false,
            fit_window: std::env::var("FIT_WINDOW").is_ok_and(|v| v == "1"),
            ..Default::default()
        };
        let mut seconds = Vec::new();
        let mut text = String::new();
        for _ in 0..runs {
            let s = Instant::now();
            let out = t.transcribe_sync(audio.clone(), opts.clone()).unwrap();
            seconds.push(s.elapsed().as_secs_f64());
            text = out.value.text;
        }
        println!("{}", serde_json::json!({"file": file, "duration": duration, "seconds": seconds, "text": text}));
    }
    println!(
        "{}",
        serde_json::json!({"load_seconds": load, "rss_mb_loaded": rss_loaded, "rss_mb_end": rss_mb("VmRSS:"), "rss_mb_peak": rss_mb("VmHWM:")})
    );
}
