//! Times CED-tiny inference through the engine (`CedTagger::score_blocking`) on one window, for
//! `scripts/bench/tagging.sh`: process start, model load and audio decoding are outside the
//! timed region, as on the Python onnxruntime side of that benchmark.
//!
//! ```text
//! ced_bench MODEL_DIR INPUT.f32 THREADS RUNS [WARMUP] [SCORES_OUT]
//! ```
//!
//! `INPUT.f32`: the window, raw little-endian f32 at 16 kHz (one batch row). `THREADS`: intra-op
//! threads of the ONNX Runtime session (as `TIMBRE_THREADS`). After `WARMUP` untimed calls
//! (default 3), `RUNS` calls are timed one by one around `score_blocking` (wall clock; the
//! engine's own `inference` time, which leaves out the hop to the worker thread, is reported
//! too). Prints one JSON object: per-run milliseconds and their median. `SCORES_OUT`: the 527
//! scores of the first call, raw f32, for comparing with Python onnxruntime's.
//! Build with `--release`; the ONNX Runtime library is found as by the server (`ORT_DYLIB_PATH`,
//! or `runtime/` above the executable).

use std::path::Path;
use std::time::Instant;

use timbre_engines::ced::{CedTagger, Windows};
use timbre_engines::manifest::Manifest;

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: ced_bench MODEL_DIR INPUT.f32 THREADS RUNS [WARMUP] [SCORES_OUT]".into());
    }
    let manifest = Manifest::from_file(&Path::new(&args[0]).join("model.toml"))?;
    let bytes = std::fs::read(&args[1])?;
    let input: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let threads: usize = args[2].parse()?;
    let runs: usize = args[3].parse()?;
    let warmup: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(3);

    let tagger = CedTagger::load(&manifest, threads, 1, &|_| {})?;
    let call = || tagger.score_blocking(Windows { samples: input.clone(), batch: 1 });
    let first = call()?;
    if let Some(out) = args.get(5) {
        let raw: Vec<u8> = first.value.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(out, raw)?;
    }
    for _ in 1..warmup {
        call()?;
    }
    let (mut wall, mut inference) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        // The input copy is made before the clock starts: only the engine call is timed.
        let windows = Windows { samples: input.clone(), batch: 1 };
        let t = Instant::now();
        let timed = tagger.score_blocking(windows)?;
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        inference.push(timed.inference.as_secs_f64() * 1000.0);
    }
    let report = serde_json::json!({
        "side": "timbre",
        "threads": threads,
        "samples": input.len(),
        "runs": runs,
        "median_ms": median(&wall),
        "inference_median_ms": median(&inference),
        "wall_ms": wall,
    });
    println!("{report}");
    Ok(())
}
