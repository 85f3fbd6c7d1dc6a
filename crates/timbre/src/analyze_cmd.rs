//! `timbre analyze FILE…`: song analysis (tempo, beats, downbeats, meter, sections, loudness,
//! genre and mood) without a server, with the same engine the `analyze_song` job runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Args;
use timbre_engines::ced::CedTagger;
use timbre_engines::manifest;
use timbre_engines::music::beatnet::BeatNet;
use timbre_engines::music::{self, Analysis, Hooks};
use timbre_engines::tagging::Tagger;

use crate::cli::{ConfigArgs, fail};

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Audio files (anything the decoder reads: mp3, wav, flac, ogg, m4a, …).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the analysis as JSON (one document per file, one per line).
    #[arg(long)]
    pub json: bool,
    /// Skip genre and mood (no tagging model is loaded).
    #[arg(long)]
    pub no_tags: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Load the tagging model on a blocking thread; `None` (with a warning) when there is none, so
/// rhythm, structure and loudness are still reported.
async fn load_tagger(models_dir: PathBuf, threads: usize) -> Option<Arc<Tagger>> {
    let loaded = tokio::task::spawn_blocking(move || {
        let manifest = crate::tag_cmd::find_model(&models_dir, None)?;
        let engine = CedTagger::load(&manifest, threads, 1, &|_| {}).map_err(|e| format!("{}: {e}", manifest.name))?;
        Ok::<_, String>(Arc::new(Tagger::new(&manifest.name, Arc::new(engine))))
    })
    .await;
    match loaded {
        Ok(Ok(t)) => Some(t),
        Ok(Err(e)) => {
            eprintln!("warning: genre and mood unavailable: {e}");
            None
        }
        Err(e) => {
            eprintln!("warning: genre and mood unavailable: {e}");
            None
        }
    }
}

/// BeatNet from the models dir; without it beats come from spectral flux alone (said on stderr).
fn load_beatnet(models_dir: &std::path::Path) -> Option<Arc<BeatNet>> {
    let found = manifest::discover(models_dir).ok().into_iter().flatten().filter_map(|(_, m)| m.ok());
    let Some(m) = found.into_iter().find(|m| m.family == "beatnet") else {
        eprintln!("warning: no beatnet model in {}: beats from spectral flux only", models_dir.display());
        return None;
    };
    match BeatNet::load(&m, &|_| {}) {
        Ok(net) => Some(Arc::new(net)),
        Err(e) => {
            eprintln!("warning: {}: {e}; beats from spectral flux only", m.name);
            None
        }
    }
}

pub fn run(args: AnalyzeArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    // The model loads on the runtime while the first file is read and decoded here. By default
    // it scores on one thread: the rhythm analysis (BeatNet, the beat tracker) has the other core.
    let threads = if config.threads == 0 { 1 } else { config.threads };
    let mut loading = (!args.no_tags).then(|| runtime.spawn(load_tagger(config.models_dir.clone(), threads)));
    let mut tagger: Option<Arc<Tagger>> = None;
    let beatnet = {
        let dir = config.models_dir.clone();
        std::thread::spawn(move || load_beatnet(&dir))
    };
    let mut beatnet = Some(beatnet);
    let mut net: Option<Arc<BeatNet>> = None;
    let mut failed = false;
    for file in &args.files {
        let decoded = std::fs::read(file).map_err(|e| e.to_string()).and_then(|bytes| {
            let hint = file.extension().and_then(|e| e.to_str());
            timbre_audio::decode(&bytes, hint).map_err(|e| e.to_string())
        });
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        if let Some(handle) = beatnet.take() {
            net = handle.join().ok().flatten();
        }
        let slot = Arc::new(Mutex::new(None));
        let supply = {
            let (handle, known, slot) = (loading.take(), tagger.clone(), Arc::clone(&slot));
            async move {
                let t = match handle {
                    Some(h) => h.await.ok().flatten(),
                    None => known,
                };
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = t.clone();
                t
            }
        };
        let result = runtime.block_on(music::analyze_with(Arc::new(decoded), net.clone(), supply, Hooks::default()));
        if let Some(t) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
            tagger = Some(t);
        }
        match result {
            Ok(report) => {
                let text = if args.json {
                    serde_json::to_string(&report.analysis).unwrap_or_default()
                } else {
                    render(file, &report.analysis)
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

fn labels(list: &[music::Label]) -> String {
    list.iter().map(|l| format!("{} {:.2}", l.label, l.score)).collect::<Vec<_>>().join(", ")
}

fn render(file: &std::path::Path, a: &Analysis) -> String {
    let mut out = format!("{} ({:.1} s, {} Hz)", file.display(), a.duration, a.sample_rate);
    out.push_str(&format!("\n  tempo     {:.1} BPM (confidence {:.2}), {}", a.bpm, a.bpm_confidence, a.time_signature));
    out.push_str(&format!(
        "\n  beats     {} (first at {:.2} s), {} downbeats",
        a.beats.len(),
        a.beats.first().copied().unwrap_or(0.0),
        a.downbeats.len()
    ));
    let sections: Vec<String> = a.sections.iter().map(|s| format!("{} {:.1}–{:.1}", s.label, s.start, s.end)).collect();
    out.push_str(&format!("\n  sections  {}", sections.join(", ")));
    out.push_str(&format!("\n  loudness  {:.1} LUFS", a.loudness_lufs));
    if !a.genre.is_empty() {
        out.push_str(&format!("\n  genre     {}", labels(&a.genre)));
        out.push_str(&format!("\n  mood      {}", labels(&a.mood)));
    }
    out
}
