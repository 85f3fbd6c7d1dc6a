//! Where a hibari (Kokoro) sentence's time goes inside the engine, and an interleaved A/B of the
//! model file against its load-time edit ([`timbre_engines::tts::kokoro::layout`]).
//!
//! ```text
//! hibari_bench MODEL_DIR SENTENCES.txt THREADS PASSES
//! ```
//!
//! Each pass runs every sentence through G2P, then the original session and the edited one (the
//! order alternates per pass), and the signal tail on each model's output; the clock is read
//! around each stage. Prints milliseconds per sentence per stage and the edited/original model
//! ratio. Build with `--release`; ONNX Runtime is found as by the server (`ORT_DYLIB_PATH`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ort::value::Tensor;
use timbre_engines::onnx::OnnxSession;
use timbre_engines::tts::kokoro::dsp::{self, Gaussian, Spectral, Tail};
use timbre_engines::tts::kokoro::g2p::G2p;
use timbre_engines::tts::kokoro::{KokoroWorker, Oov, layout, read_vocab};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One model call: the frame-major spectrum (rearranged from the planes for the original file)
/// and f0.
fn run(session: &mut OnnxSession, ids: &[i64]) -> Result<(Vec<f32>, Vec<f32>, Duration)> {
    let t = Instant::now();
    let outputs = session.session.run(ort::inputs![
        "ids" => Tensor::from_array((vec![1usize, ids.len()], ids.to_vec()))?,
        "speed" => Tensor::from_array((vec![1usize], vec![1.0f32]))?
    ])?;
    let elapsed = t.elapsed();
    let f0 = outputs["f0"].try_extract_tensor::<f32>()?.1.to_vec();
    let frames = if outputs.contains_key(layout::FRAMES) {
        outputs[layout::FRAMES].try_extract_tensor::<f32>()?.1.to_vec()
    } else {
        let planes: Vec<&[f32]> = layout::PLANES
            .iter()
            .map(|p| outputs[*p].try_extract_tensor::<f32>().map(|t| t.1))
            .collect::<std::result::Result<_, _>>()?;
        dsp::frames_from_planes([planes[0], planes[1], planes[2], planes[3], planes[4]], f0.len())
    };
    Ok((frames, f0, elapsed))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: hibari_bench MODEL_DIR SENTENCES.txt THREADS PASSES".into());
    }
    let dir = Path::new(&args[0]);
    let sentences: Vec<String> =
        std::fs::read_to_string(&args[1])?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let threads: usize = args[2].parse()?;
    let passes: usize = args[3].parse()?;

    let path = dir.join("hibari.onnx");
    let edited = layout::frame_major(&std::fs::read(&path)?, dsp::BINS as i64)?.ok_or("the edit does not apply")?;
    let mut sessions =
        [OnnxSession::open_with(&path, threads, true)?, OnnxSession::open_bytes(&edited, &path, threads, true)?];
    let g2p = G2p::load(dir, false)?;
    let mut oov = Oov::load(&dir.join("oov.onnx"))?;
    let vocab: HashMap<char, i64> = read_vocab(dir)?;
    let mut tail = Tail::new();
    let mut noise = Gaussian::new(7);

    // Warm-up: every session and the tail once.
    let ids = KokoroWorker::ids(&vocab, &g2p.phonemize("Warm up.", &mut |w| oov.read(w)));
    for s in &mut sessions {
        let (frames, f0, _) = run(s, &ids)?;
        tail.synth(&Spectral { frames: &frames, f0: &f0 }, &mut noise);
    }

    let (mut g2p_time, mut tail_time) = (Duration::ZERO, Duration::ZERO);
    let mut model_time = [Duration::ZERO; 2];
    let mut audio = 0usize;
    for pass in 0..passes {
        for sentence in &sentences {
            let t = Instant::now();
            let ps = g2p.phonemize(sentence, &mut |w| oov.read(w));
            g2p_time += t.elapsed();
            let ids = KokoroWorker::ids(&vocab, &ps);
            let order = if pass % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let (frames, f0, elapsed) = run(&mut sessions[i], &ids)?;
                model_time[i] += elapsed;
                let t = Instant::now();
                let y = tail.synth(&Spectral { frames: &frames, f0: &f0 }, &mut noise);
                tail_time += t.elapsed();
                audio += y.len();
            }
        }
    }
    let n = (passes * sentences.len()) as f64;
    let ms = |d: Duration, k: f64| d.as_secs_f64() * 1000.0 / k;
    println!(
        "{{\"sentences\": {}, \"passes\": {passes}, \"threads\": {threads}, \"audio_s_per_sentence\": {:.3}, \
         \"g2p_ms\": {:.3}, \"model_file_ms\": {:.3}, \"model_edited_ms\": {:.3}, \"edited_over_file\": {:.3}, \
         \"tail_ms\": {:.3}}}",
        sentences.len(),
        audio as f64 / (2.0 * n) / dsp::SR as f64,
        ms(g2p_time, n),
        ms(model_time[0], n),
        ms(model_time[1], n),
        model_time[1].as_secs_f64() / model_time[0].as_secs_f64(),
        ms(tail_time, 2.0 * n),
    );
    Ok(())
}
