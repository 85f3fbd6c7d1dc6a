//! `timbre tag FILE…`: tag audio files without a server, with the same engine and options.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use timbre_engines::ced::CedTagger;
use timbre_engines::manifest::{self, Manifest};
use timbre_engines::tagging::{TagOptions, TagReport, Tagger};

use crate::cli::{ConfigArgs, fail};

#[derive(Args)]
pub struct TagArgs {
    /// Audio files (anything the decoder reads: wav, flac, mp3, ogg, m4a, …).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Free-text prompts, `;`-separated ("dog barking; siren").
    #[arg(long)]
    pub prompts: Option<String>,
    /// Print the full JSON report (tags, frames, events, prompts).
    #[arg(long)]
    pub json: bool,
    /// Tagging model name (default: the first `tagging` model in the models dir).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.3)]
    pub threshold: f32,
    /// Timeline window, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub window: f32,
    /// Timeline hop, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub hop: f32,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub(crate) fn find_model(dir: &std::path::Path, name: Option<&str>) -> Result<Manifest, String> {
    let found = manifest::discover(dir)
        .map_err(|e| format!("cannot read {}: {e} (run scripts/fetch-models)", dir.display()))?;
    found
        .into_iter()
        .filter_map(|(_, m)| m.ok())
        .find(|m| m.capability == "tagging" && name.is_none_or(|n| n == m.name))
        .ok_or_else(|| {
            format!(
                "no tagging model{} in {}",
                name.map(|n| format!(" named `{n}`")).unwrap_or_default(),
                dir.display()
            )
        })
}

pub fn run(args: TagArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return fail(&e),
    };
    let opts = TagOptions {
        window: args.window,
        hop: args.hop,
        top_k: args.top_k,
        threshold: args.threshold,
        ..TagOptions::default()
    };
    let opts = match &args.prompts {
        Some(p) => opts.with_prompt_text(p),
        None => opts,
    };
    if let Err(e) = opts.validate() {
        return fail(&format!("--{}: {}", e.field.replace('_', "-"), e.message));
    }
    let manifest = match find_model(&config.models_dir, args.model.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (workers, threads) = timbre_engines::ced::pool_shape(config.threads, cores);
    let engine = match CedTagger::load(&manifest, threads, workers, &|_| {}) {
        Ok(e) => e,
        Err(e) => return fail(&format!("{}: {e}", manifest.name)),
    };
    let tagger = Tagger::new(&manifest.name, Arc::new(engine));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let mut failed = false;
    for file in &args.files {
        let result = std::fs::read(file).map_err(|e| e.to_string()).and_then(|bytes| {
            let hint = file.extension().and_then(|e| e.to_str());
            timbre_audio::decode_mono(&bytes, hint, 16_000).map_err(|e| e.to_string())
        });
        let samples = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match runtime.block_on(tagger.tag(&samples, &opts)) {
            Ok(timed) => {
                let text = if args.json {
                    serde_json::to_string(&timed.value).unwrap_or_default()
                } else {
                    render(file, &timed.value)
                };
                // A closed pipe (`| head`) ends the output quietly instead of panicking.
                if writeln!(std::io::stdout(), "{text}").is_err() {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn render(file: &std::path::Path, r: &TagReport) -> String {
    let mut out = format!("{} ({:.1} s)", file.display(), r.duration);
    for t in &r.detections {
        out.push_str(&format!("\n  {:>5.3}  {}", t.score, t.label));
    }
    for e in &r.events {
        out.push_str(&format!("\n  event  {:.2}–{:.2} s  {} (peak {:.2})", e.start, e.end, e.label, e.peak));
    }
    if let Some(p) = &r.prompts {
        for (i, text) in p.text.iter().enumerate() {
            let peak = p.scores[i].iter().copied().fold(0.0f32, f32::max);
            out.push_str(&format!("\n  prompt {text:?} → {:?} (peak {peak:.2})", p.matched_labels[i]));
        }
    }
    out
}
