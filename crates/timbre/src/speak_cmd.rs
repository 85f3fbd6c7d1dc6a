//! `timbre speak "text" --voice … -o out.mp3`: text-to-speech without a server, with the same
//! engines, voices and encoders as `POST /v1/audio/speech`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use timbre_audio::OutputFormat;
use timbre_engines::manifest::{self, Manifest};
use timbre_engines::tts::{self, Speaker, SpeechOptions, VoiceInfo};

use crate::cli::{ConfigArgs, fail};

#[derive(Args)]
pub struct SpeakArgs {
    /// Text to speak; omitted or `-`: read standard input.
    pub text: Option<String>,
    /// Voice name (`timbre speak --list-voices`); OpenAI names such as `alloy` map to the
    /// default voice.
    #[arg(long)]
    pub voice: Option<String>,
    /// Output file; the format comes from the extension (mp3, opus, ogg, flac, wav, pcm).
    /// `-` writes to standard output (wav unless `--format` says otherwise).
    #[arg(short, long, default_value = "speech.mp3")]
    pub output: PathBuf,
    /// Output format, overriding the extension: mp3, opus, flac, wav, pcm (24 kHz s16le).
    #[arg(long)]
    pub format: Option<String>,
    /// Speaking rate, 0.25–4.0.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f32,
    /// Piper: generator noise (0 = deterministic).
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Piper: phoneme length scale.
    #[arg(long)]
    pub length_scale: Option<f32>,
    /// Piper: duration noise.
    #[arg(long)]
    pub noise_w: Option<f32>,
    /// Multi-speaker Piper voices: speaker name or number.
    #[arg(long)]
    pub speaker: Option<String>,
    /// List the installed voices and exit.
    #[arg(long)]
    pub list_voices: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

const OPENAI_VOICES: [&str; 13] =
    ["alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"];

fn installed(dir: &std::path::Path) -> Result<Vec<(Manifest, Vec<VoiceInfo>)>, String> {
    let found = manifest::discover(dir)
        .map_err(|e| format!("cannot read {}: {e} (run scripts/fetch-models)", dir.display()))?;
    let mut out = Vec::new();
    for (_, m) in found {
        let Ok(m) = m else { continue };
        if m.capability != "tts" {
            continue;
        }
        match tts::catalog::voices_of(&m) {
            Ok(v) => out.push((m, v)),
            Err(e) => eprintln!("warning: {}: {e}", m.name),
        }
    }
    // The required model first: its first voice is the default.
    out.sort_by_key(|(m, _)| !m.required);
    Ok(out)
}

fn format_for(args: &SpeakArgs) -> Result<OutputFormat, String> {
    let name =
        match &args.format {
            Some(f) => f.to_ascii_lowercase(),
            None if args.output.as_os_str() == "-" => "wav".into(),
            None => args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).ok_or_else(|| {
                format!("{}: no extension to take the format from; pass --format", args.output.display())
            })?,
        };
    match name.as_str() {
        "mp3" => Ok(OutputFormat::Mp3),
        "opus" | "ogg" => Ok(OutputFormat::Opus),
        "flac" => Ok(OutputFormat::Flac),
        "wav" => Ok(OutputFormat::Wav),
        "pcm" | "raw" => Ok(OutputFormat::Pcm16),
        "aac" | "m4a" => Err("aac is not available: this build has no AAC encoder".into()),
        other => Err(format!("unknown output format `{other}` (mp3, opus, flac, wav, pcm)")),
    }
}

fn read_text(args: &SpeakArgs) -> Result<String, String> {
    match args.text.as_deref() {
        Some(t) if t != "-" => Ok(t.to_string()),
        _ => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(s)
        }
    }
}

fn synthesize(speaker: &Speaker, voice: &str, text: &str, opts: &SpeechOptions) -> Result<Vec<f32>, String> {
    let mut samples = Vec::new();
    let silence = speaker.silence();
    for sentence in speaker.sentences(text) {
        let audio = speaker.sentence_blocking(voice, &sentence, opts).map_err(|e| e.to_string())?.value;
        if audio.is_empty() {
            continue;
        }
        if !samples.is_empty() {
            samples.extend_from_slice(&silence);
        }
        samples.extend(audio);
    }
    Ok(samples)
}

pub fn run(args: SpeakArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return fail(&e),
    };
    let models = match installed(&config.models_dir) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    if args.list_voices {
        for (m, voices) in &models {
            for v in voices {
                println!("{:<24} {:<8} {:>6} Hz  {}", v.name, v.language, v.sample_rate, m.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let all: Vec<&VoiceInfo> = models.iter().flat_map(|(_, v)| v.iter()).collect();
    let wanted = args.voice.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let default = Some(config.tts_default_voice.trim()).filter(|v| !v.is_empty());
    let voice = match wanted {
        Some(v) if all.iter().any(|x| x.name == v) => all.iter().find(|x| x.name == v),
        Some(v) if !OPENAI_VOICES.contains(&v.to_ascii_lowercase().as_str()) => {
            let names: Vec<&str> = all.iter().map(|x| x.name.as_str()).collect();
            return fail(&format!("voice `{v}` does not exist; available voices: {}", names.join(", ")));
        }
        _ => match default {
            Some(d) => all.iter().find(|x| x.name == d),
            None => all.first(),
        },
    };
    let Some(voice) = voice.copied().cloned() else {
        return fail(&format!("no text-to-speech voice in {} (run scripts/fetch-models)", config.models_dir.display()));
    };
    if !(0.25..=4.0).contains(&args.speed) {
        return fail(&"--speed must be between 0.25 and 4.0");
    }
    let format = match format_for(&args) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let text = match read_text(&args) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => return fail(&"no text to speak"),
        Err(e) => return fail(&e),
    };
    let Some((manifest, _)) = models.iter().find(|(m, _)| m.name == voice.model) else {
        return fail(&format!("model `{}` vanished", voice.model));
    };
    let loaded = if manifest.family == "piper" {
        tts::catalog::load_piper(manifest, config.threads, 1, config.tts_sentence_silence)
    } else {
        tts::catalog::load_kokoro(manifest, config.threads, 1, config.tts_sentence_silence)
    };
    let speaker = match loaded {
        Ok(s) => s,
        Err(e) => return fail(&format!("{}: {e}", manifest.name)),
    };
    let opts = SpeechOptions {
        speed: args.speed,
        noise_scale: args.noise_scale,
        length_scale: args.length_scale,
        noise_w: args.noise_w,
        speaker: args.speaker.clone(),
    };
    let samples = match synthesize(&speaker, &voice.name, &text, &opts) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return fail(&"nothing speakable in the text"),
        Err(e) => return fail(&e),
    };
    let native = speaker.sample_rate;
    let rate = match format {
        OutputFormat::Pcm16 => 24_000,
        OutputFormat::Opus if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&native) => 24_000,
        _ => native,
    };
    let samples = if rate == native {
        samples
    } else {
        match timbre_audio::resample(&samples, native, rate) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        }
    };
    let bytes = match timbre_audio::encode(&samples, rate, format) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let written = if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush())
    } else {
        std::fs::write(&args.output, &bytes)
    };
    if let Err(e) = written {
        return fail(&format!("cannot write {}: {e}", args.output.display()));
    }
    if args.output.as_os_str() != "-" {
        eprintln!(
            "{}: {:.2} s of {} ({}, {} Hz)",
            args.output.display(),
            samples.len() as f64 / rate as f64,
            voice.name,
            format,
            rate
        );
    }
    ExitCode::SUCCESS
}
