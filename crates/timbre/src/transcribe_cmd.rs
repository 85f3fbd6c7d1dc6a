//! `timbre transcribe FILE…`: speech to text without a server, with the same engine and the
//! same output formats as `POST /v1/audio/transcriptions`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use timbre_engines::manifest::{self, Manifest};
use timbre_engines::whisper::Transcriber;
use timbre_engines::whisper::api::{Task, TranscribeOptions};
use timbre_engines::whisper::format::{self, Granularities, ResponseFormat};

use crate::cli::{ConfigArgs, fail};

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Format {
    Text,
    Json,
    VerboseJson,
    Srt,
    Vtt,
}

impl From<Format> for ResponseFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Text => ResponseFormat::Text,
            Format::Json => ResponseFormat::Json,
            Format::VerboseJson => ResponseFormat::VerboseJson,
            Format::Srt => ResponseFormat::Srt,
            Format::Vtt => ResponseFormat::Vtt,
        }
    }
}

#[derive(Args)]
pub struct TranscribeArgs {
    /// Audio files (anything the decoder reads: wav, flac, mp3, ogg, m4a, …).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format, as the API's `response_format`.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Word-level timestamps (`verbose_json` then lists `words` too).
    #[arg(long)]
    pub word_timestamps: bool,
    /// Speech-to-text model name (default: the first `stt` model in the models dir).
    #[arg(long)]
    pub model: Option<String>,
    /// Spoken language (ISO 639-1, e.g. `en`); default: detect (multilingual models) or English.
    #[arg(long)]
    pub language: Option<String>,
    /// Beam width; 1 = greedy decoding.
    #[arg(long, default_value_t = 5)]
    pub beam_size: usize,
    /// Initial prompt: earlier text, or spellings of names.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Translate to English (multilingual models only).
    #[arg(long)]
    pub translate: bool,
    /// Decode the whole file instead of the speech regions Silero VAD finds.
    #[arg(long)]
    pub no_vad_filter: bool,
    /// Write `<name>.<txt|json|srt|vtt>` per input here instead of printing.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

fn find_model(dir: &Path, name: Option<&str>) -> Result<Manifest, String> {
    let found = manifest::discover(dir)
        .map_err(|e| format!("cannot read {}: {e} (run scripts/fetch-models)", dir.display()))?;
    found
        .into_iter()
        .filter_map(|(_, m)| m.ok())
        .find(|m| m.capability == "stt" && name.is_none_or(|n| n == m.name))
        .ok_or_else(|| {
            format!(
                "no speech-to-text model{} in {}",
                name.map(|n| format!(" named `{n}`")).unwrap_or_default(),
                dir.display()
            )
        })
}

fn options(args: &TranscribeArgs) -> Result<TranscribeOptions, String> {
    let language = args
        .language
        .as_deref()
        .map(|l| {
            format::language_code(l)
                .map(str::to_string)
                .ok_or_else(|| format!("--language: `{l}` is not a language Whisper knows"))
        })
        .transpose()?;
    if !(1..=10).contains(&args.beam_size) {
        return Err("--beam-size: must be between 1 and 10".into());
    }
    Ok(TranscribeOptions {
        language,
        task: if args.translate { Task::Translate } else { Task::Transcribe },
        prompt: args.prompt.clone(),
        beam_size: args.beam_size,
        word_timestamps: args.word_timestamps,
        vad_filter: !args.no_vad_filter,
        ..TranscribeOptions::default()
    })
}

/// The engine the server would build for this manifest (same loader, same threads). One
/// decoding worker: files are transcribed one after another.
fn load(manifest: &Manifest, threads: usize) -> Result<std::sync::Arc<Transcriber>, String> {
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
        threads,
        stt_workers: 1,
        ..Default::default()
    });
    let engine = loader.load(manifest, &|_| {})?;
    engine.downcast::<Transcriber>().map_err(|_| "this build has no Whisper transcriber for it".to_string())
}

pub fn run(args: TranscribeArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return fail(&e),
    };
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let manifest = match find_model(&config.models_dir, args.model.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let transcriber = match load(&manifest, config.threads) {
        Ok(t) => t,
        Err(e) => return fail(&format!("{}: {e}", manifest.name)),
    };
    if args.translate && !transcriber.info().multilingual {
        return fail(&format!("--translate: model `{}` is English-only", manifest.name));
    }
    if let Some(dir) = &args.output_dir
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return fail(&format!("--output-dir {}: {e}", dir.display()));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let format: ResponseFormat = args.format.into();
    let granularities = Granularities { segment: true, word: args.word_timestamps };
    let mut failed = false;
    for file in &args.files {
        let samples = std::fs::read(file).map_err(|e| e.to_string()).and_then(|bytes| {
            let hint = file.extension().and_then(|e| e.to_str());
            timbre_audio::decode_mono(&bytes, hint, 16_000).map_err(|e| e.to_string())
        });
        let result = samples
            .and_then(|s| runtime.block_on(transcriber.transcribe(s, opts.clone(), None)).map_err(|e| e.to_string()));
        let transcript = match result {
            Ok(timed) => timed.value,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let text = format::render(&transcript, format, opts.task, granularities);
        match &args.output_dir {
            Some(dir) => {
                let stem = file.file_stem().map_or_else(|| "audio".into(), |s| s.to_string_lossy().into_owned());
                let path = dir.join(format!("{stem}.{}", format.extension()));
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("{}: {e}", path.display());
                    failed = true;
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                let header = if args.files.len() > 1 { format!("==> {} <==\n", file.display()) } else { String::new() };
                // A closed pipe (`| head`) ends the output quietly instead of panicking.
                if write!(out, "{header}{text}")
                    .and_then(|()| if format.extension() == "json" { writeln!(out) } else { Ok(()) })
                    .is_err()
                {
                    return ExitCode::SUCCESS;
                }
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
