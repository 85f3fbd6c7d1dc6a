//! timbre's TTS engines against the peer packages' own output (fixtures from
//! scripts/reference/tts_fixtures.py: piper-tts 1.8.0 and hibari-tts 0.2.1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use timbre_engines::tts::catalog::{load_kokoro, load_piper};
use timbre_engines::tts::kokoro::g2p::G2p;
use timbre_engines::tts::kokoro::{KokoroWorker, Oov, read_vocab};
use timbre_engines::tts::piper::PiperParams;
use timbre_engines::tts::piper::espeak::Espeak;
use timbre_engines::tts::text::sentences;

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(common::fixture_path("tts", name)).unwrap()).unwrap()
}

/// A fixture WAV back in the reference's own scale.
fn wav(name: &str, peak: f64) -> (Vec<f32>, u32) {
    let bytes = std::fs::read(common::fixture_path("tts", name)).unwrap();
    let d = timbre_audio::decode(&bytes, Some("wav")).unwrap();
    (d.samples.iter().map(|s| (*s as f64 * peak) as f32).collect(), d.sample_rate)
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
    let mb = b.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64 - ma, *y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn piper() -> timbre_engines::tts::Speaker {
    load_piper(&common::manifest("piper-en_US-joe-medium", "scripts/fetch-models"), 1, 1, 0.2).unwrap()
}

#[test]
fn piper_audio_matches_piper_tts_sample_for_sample() {
    let reference = json("piper.json");
    let speaker = piper();
    assert_eq!(speaker.sample_rate, reference["sample_rate"].as_u64().unwrap() as u32);
    for case in reference["cases"].as_array().unwrap() {
        let ids: Vec<i64> = case["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let (expected, rate) = wav(case["wav"].as_str().unwrap(), case["peak"].as_f64().unwrap());
        assert_eq!(rate, speaker.sample_rate);
        let params = PiperParams {
            noise_scale: Some(0.0),
            noise_w: Some(0.0),
            length_scale: Some(case["length_scale"].as_f64().unwrap() as f32),
            speed: 1.0,
            speaker_id: None,
            normalize: false,
        };
        let ours = speaker.piper_ids_blocking(ids, params).unwrap();
        let text = case["text"].as_str().unwrap();
        assert!(ours.len().abs_diff(expected.len()) <= 256, "{text}: {} vs {} samples", ours.len(), expected.len());
        let r = correlation(&ours, &expected);
        assert!(r >= 0.999, "{text}: correlation {r}");
    }
}

/// The Piper model runs with its 1-D convolutions rewritten as 2-D ones (a speed-up): the
/// rewritten graph gives the original file's audio to float rounding, and the rewrite happened.
#[test]
fn piper_conv2d_rewrite_keeps_the_audio() {
    use timbre_engines::actor::Worker;
    use timbre_engines::onnx::OnnxSession;
    use timbre_engines::tts::piper::{PiperConfig, PiperInput, PiperRequest, PiperWorker};

    let manifest = common::manifest("piper-en_US-joe-medium", "scripts/fetch-models");
    let onnx = manifest.file_with_role("onnx").unwrap();
    let original = std::fs::read(&onnx).unwrap();
    let rewritten = timbre_engines::onnx::conv2d::conv1d_as_2d(&original).unwrap();
    assert!(rewritten.convolutions >= 100, "{} convolutions rewritten", rewritten.convolutions);
    assert_eq!(timbre_engines::tts::catalog::piper_model_2d(&onnx).as_deref(), Some(rewritten.model.as_slice()));
    let mut config_path = onnx.clone().into_os_string();
    config_path.push(".json");
    let config = std::sync::Arc::new(PiperConfig::load(std::path::Path::new(&config_path)).unwrap());
    let mut before =
        PiperWorker::new(OnnxSession::open_with(&onnx, 1, true).unwrap(), std::sync::Arc::clone(&config)).unwrap();
    let mut after =
        PiperWorker::new(OnnxSession::open_bytes(&rewritten.model, &onnx, 1, true).unwrap(), config).unwrap();
    let params = PiperParams { noise_scale: Some(0.0), noise_w: Some(0.0), speed: 1.0, ..PiperParams::default() };
    for case in json("piper.json")["cases"].as_array().unwrap() {
        let ids: Vec<i64> = case["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let run = |w: &mut PiperWorker| {
            w.handle(PiperRequest::audio(PiperInput::Ids(ids.clone()), params.clone())).unwrap().samples
        };
        let (a, b) = (run(&mut before), run(&mut after));
        assert_eq!(a.len(), b.len());
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{}: largest difference {worst}", case["text"]);
    }
}

/// The model cut at the decoder (what the workers load) gives the file's audio, and a latent
/// decoded in slices — each with its context, on any worker — gives the whole decode's samples:
/// what lets a stream's first sentence be decoded in parallel without changing it.
#[test]
fn piper_latent_slices_decode_to_the_whole_sentence() {
    use std::sync::Arc;
    use timbre_engines::actor::Worker;
    use timbre_engines::onnx::OnnxSession;
    use timbre_engines::tts::piper::{
        PiperConfig, PiperInput, PiperRequest, PiperWorker, Stage, latent, normalize_peak,
    };

    let manifest = common::manifest("piper-en_US-joe-medium", "scripts/fetch-models");
    let onnx = manifest.file_with_role("onnx").unwrap();
    let (encoder, decoder) =
        timbre_engines::tts::catalog::piper_model_split(&onnx).expect("joe-medium can be cut at its decoder");
    let mut config_path = onnx.clone().into_os_string();
    config_path.push(".json");
    let config = Arc::new(PiperConfig::load(std::path::Path::new(&config_path)).unwrap());
    let mut file = PiperWorker::new(OnnxSession::open_with(&onnx, 1, true).unwrap(), Arc::clone(&config)).unwrap();
    let open = |m: &[u8]| OnnxSession::open_bytes(m, &onnx, 1, true).unwrap();
    let mut split = PiperWorker::split(open(&encoder), open(&decoder), config).unwrap();
    assert!(split.splits() && !file.splits());
    // Normalized to peak 1 as requests are: the slices are joined before normalizing.
    let params = PiperParams {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        speed: 1.0,
        normalize: true,
        ..PiperParams::default()
    };
    let mut sliced = 0;
    for case in json("piper.json")["cases"].as_array().unwrap() {
        let ids: Vec<i64> = case["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let text = case["text"].as_str().unwrap();
        let audio =
            |w: &mut PiperWorker| w.handle(PiperRequest::audio(PiperInput::Ids(ids.clone()), params.clone())).unwrap();
        let (reference, whole) = (audio(&mut file).samples, audio(&mut split).samples);
        assert_eq!(reference.len(), whole.len(), "{text}");
        let worst = reference.iter().zip(&whole).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{text}: split model vs file, largest difference {worst}");

        let request =
            PiperRequest { input: PiperInput::Ids(ids.clone()), params: params.clone(), stage: Stage::Latent };
        let z = Arc::new(split.handle(request).unwrap().latent.unwrap());
        assert_eq!(z.channels, 192, "{text}");
        for parts in [2, 3] {
            let slices = latent::slices(z.frames, parts, 24);
            sliced += usize::from(slices.len() > 1);
            let mut joined = Vec::new();
            for frames in slices {
                let input = PiperInput::Decode { latent: Arc::clone(&z), frames };
                joined.extend(split.handle(PiperRequest::audio(input, params.clone())).unwrap().samples);
            }
            normalize_peak(&mut joined);
            assert_eq!(joined.len(), whole.len(), "{text}: {parts} slices");
            let worst = whole.iter().zip(&joined).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{text}: {parts} slices vs one decode, largest difference {worst}");
        }
    }
    assert!(sliced >= 2, "some sentences were long enough to slice: {sliced}");
}

/// Per-request overrides reach the model: speed 2 halves the length; noise makes runs differ.
#[test]
fn piper_overrides_and_speed() {
    let speaker = piper();
    let ids = json("piper.json")["cases"][1]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect::<Vec<_>>();
    let det = PiperParams { noise_scale: Some(0.0), noise_w: Some(0.0), speed: 1.0, ..PiperParams::default() };
    let normal = speaker.piper_ids_blocking(ids.clone(), det.clone()).unwrap();
    let fast = speaker.piper_ids_blocking(ids.clone(), PiperParams { speed: 2.0, ..det.clone() }).unwrap();
    let ratio = fast.len() as f64 / normal.len() as f64;
    assert!((0.45..0.75).contains(&ratio), "speed 2 (durations round up per phoneme) → {ratio} of the length");
    let again = speaker.piper_ids_blocking(ids.clone(), det).unwrap();
    assert_eq!(normal, again, "noise 0 is deterministic");
    let noisy = PiperParams { noise_scale: Some(0.667), noise_w: Some(0.8), speed: 1.0, ..PiperParams::default() };
    let a = speaker.piper_ids_blocking(ids.clone(), noisy.clone()).unwrap();
    let b = speaker.piper_ids_blocking(ids, noisy).unwrap();
    assert_ne!(a, b, "with noise two runs differ");
}

/// Our espeak-ng process pool phonemizes like piper-tts's embedded espeak-ng (piper bundles a
/// newer espeak-ng data set than Debian's 1.51, so a rare vowel detail may differ).
#[test]
fn piper_phonemes_agree_with_piper_tts() {
    let reference = json("piper.json");
    let mut espeak = Espeak::spawn("en-us").unwrap();
    let mut exact = 0;
    let cases = reference["cases"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ours: Vec<String> = sentences(text)
            .iter()
            .map(|s| timbre_engines::tts::piper::sentence_phonemes(&mut espeak, s).unwrap())
            .collect();
        let theirs: Vec<String> =
            case["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        assert_eq!(ours.len(), theirs.len(), "{text}: sentences {ours:?} vs {theirs:?}");
        for (o, t) in ours.iter().zip(&theirs) {
            let sim = 1.0 - levenshtein(o, t) as f64 / o.chars().count().max(t.chars().count()) as f64;
            assert!(sim >= 0.9, "{text}: {o:?} vs {t:?}");
            exact += usize::from(o == t);
        }
    }
    assert!(exact >= cases.len() - 1, "{exact} of {} sentences identical", cases.len());
}

#[test]
fn hibari_g2p_matches_hibari_tts() {
    let reference = json("hibari.json");
    let manifest = common::manifest("hibari", "scripts/fetch-models");
    let g2p = G2p::load(&manifest.dir, false).unwrap();
    let mut oov = Oov::load(&manifest.dir.join("oov.onnx")).unwrap();
    let mut mismatches = Vec::new();
    let cases = reference["g2p"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ours = g2p.phonemize(text, &mut |w| oov.read(w));
        if ours != case["phonemes"].as_str().unwrap() {
            mismatches.push(format!("{text}\n  ours:   {ours}\n  hibari: {}", case["phonemes"]));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} differ:\n{}", mismatches.len(), cases.len(), mismatches.join("\n"));
}

#[test]
fn hibari_audio_matches_hibari_tts_without_noise() {
    let reference = json("hibari.json");
    let manifest = common::manifest("hibari", "scripts/fetch-models");
    let speaker = load_kokoro(&manifest, 1, 1, 0.2).unwrap();
    assert_eq!(speaker.sample_rate, 24_000);
    for case in reference["audio"].as_array().unwrap() {
        let ps = case["phonemes"].as_str().unwrap();
        let (expected, _) = wav(case["wav"].as_str().unwrap(), case["peak"].as_f64().unwrap());
        let ours =
            speaker.kokoro_phonemes_blocking("heart", ps, case["speed"].as_f64().unwrap() as f32, false).unwrap();
        assert!(ours.len().abs_diff(expected.len()) <= 300, "{ps}: {} vs {}", ours.len(), expected.len());
        let r = correlation(&ours, &expected);
        assert!(r >= 0.999, "{ps}: correlation {r}");
    }
    // The vocabulary mapping is the package's: pads, known characters, unknown dropped.
    let vocab = read_vocab(&manifest.dir).unwrap();
    assert_eq!(KokoroWorker::ids(&vocab, "hˈ☃"), vec![0, 50, 156, 0]);
}

/// hibari's model runs with its spectral output frame-major (a load-time edit that drops a
/// Transpose and a Split): the edited model gives the same numbers, so the audio is identical
/// sample for sample to the file's (read through the bin-major planes).
#[test]
fn hibari_frame_major_edit_keeps_the_audio() {
    use std::collections::HashMap;
    use std::sync::Arc;

    use timbre_engines::actor::Worker;
    use timbre_engines::onnx::OnnxSession;
    use timbre_engines::tts::kokoro::{KokoroRequest, layout};

    let manifest = common::manifest("hibari", "scripts/fetch-models");
    let path = manifest.dir.join("hibari.onnx");
    let edited = timbre_engines::tts::catalog::kokoro_model_frame_major(&path).expect("hibari's model takes the edit");
    let edited = OnnxSession::open_bytes(&edited, &path, 1, true).unwrap();
    assert!(edited.has_output(layout::FRAMES) && !edited.has_output("lh"));
    let original = OnnxSession::open(&path, 1).unwrap();
    assert!(original.has_output("lh"));
    let g2p = Arc::new(G2p::load(&manifest.dir, false).unwrap());
    let vocab = Arc::new(read_vocab(&manifest.dir).unwrap());
    let worker = |session| {
        let oov = Oov::load(&manifest.dir.join("oov.onnx")).unwrap();
        KokoroWorker::new(HashMap::from([("heart".to_string(), session)]), oov, Arc::clone(&g2p), Arc::clone(&vocab))
    };
    let (mut before, mut after) = (worker(original), worker(edited));
    for case in json("hibari.json")["audio"].as_array().unwrap() {
        let ps = case["phonemes"].as_str().unwrap();
        let speed = case["speed"].as_f64().unwrap() as f32;
        let run = |w: &mut KokoroWorker| {
            let mut request = KokoroRequest::phonemes("heart", ps, speed);
            request.noise = false;
            w.handle(request).unwrap()
        };
        let (a, b) = (run(&mut before), run(&mut after));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{ps}");
    }
}

/// Text in, noise off: the same sentence twice gives the same samples (phonemizer included).
#[test]
fn piper_text_path_is_deterministic_without_noise() {
    let speaker = piper();
    let voice = speaker.default_voice().to_string();
    let opts = timbre_engines::tts::SpeechOptions {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..timbre_engines::tts::SpeechOptions::default()
    };
    let text = "Then a second one follows.";
    let a = speaker.sentence_blocking(&voice, text, &opts).unwrap().value;
    let b = speaker.sentence_blocking(&voice, text, &opts).unwrap().value;
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b);
}
