//! Command-line surface. Flags override the environment, which overrides `timbre.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use timbre_server::config::{self, ConfigError, Loaded, Sources};

#[derive(Parser)]
#[command(
    name = "timbre",
    version,
    about = "Audio AI server: speech-to-text, text-to-speech, tagging, music analysis, streams"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the HTTP/WebSocket API (models load in the background).
    Serve(ServeArgs),
    /// Inspect installed models.
    Models(ModelsArgs),
    /// Show the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a deployed timbre: health, models, auth, WebSocket.
    VerifyDeploy(crate::verify_deploy::VerifyArgs),
    /// Run job workers only (no HTTP): claim jobs from the database until SIGTERM, then drain.
    Worker(WorkerArgs),
    /// Apply database migrations (SQLite in the data dir, or DATABASE_URL) and exit.
    Migrate(MigrateArgs),
    /// Transcribe audio files without a server.
    Transcribe(crate::transcribe_cmd::TranscribeArgs),
    /// Synthesize speech without a server (`timbre speak "Hello." -o hello.mp3`).
    Speak(crate::speak_cmd::SpeakArgs),
    /// Tag sounds in audio files without a server.
    Tag(crate::tag_cmd::TagArgs),
    /// Analyze songs without a server: tempo, beats, downbeats, meter, sections, loudness,
    /// genre and mood.
    Analyze(crate::analyze_cmd::AnalyzeArgs),
    /// Generate audio (not yet available).
    Generate,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print every key with its effective value; secrets print as `***`.
    Show(ConfigArgs),
}

/// Flags shared by every command that reads configuration.
#[derive(Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (TOML). Default: `$TIMBRE_CONFIG`, else `./timbre.toml` if present.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address to bind (overrides HOST).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port to bind (overrides PORT); 0 picks a free port.
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Data directory (overrides TIMBRE_DATA_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Models directory (overrides TIMBRE_MODELS_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub models_dir: Option<PathBuf>,
    /// Any configuration key, e.g. `--set rate_limit_per_minute=60` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub set: Vec<String>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut overrides = Vec::new();
        for kv in &self.set {
            let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::Invalid {
                key: kv.clone(),
                origin: "--set".into(),
                message: "expected KEY=VALUE".into(),
            })?;
            overrides.push((k.trim().to_string(), v.to_string()));
        }
        let flag = |k: &str, v: Option<String>| v.map(|v| (k.to_string(), v));
        overrides.extend(
            [
                flag("host", self.host.clone()),
                flag("port", self.port.map(|p| p.to_string())),
                flag("data_dir", self.data_dir.as_ref().map(|p| p.display().to_string())),
                flag("models_dir", self.models_dir.as_ref().map(|p| p.display().to_string())),
            ]
            .into_iter()
            .flatten(),
        );
        let mut sources = Sources::from_process(self.config.clone(), overrides);
        if sources.file.is_none() {
            sources.file = config::default_file();
        }
        timbre_server::Config::load(&sources)
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Jobs run at once by in-process workers (overrides TIMBRE_WORKERS); 0 serves the API only.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

impl ServeArgs {
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut config = self.config.clone();
        if let Some(n) = self.workers {
            config.set.push(format!("workers={n}"));
        }
        config.load()
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Job kinds to run, comma-separated (overrides TIMBRE_JOB_KINDS); default: every kind.
    #[arg(long, value_name = "KIND,…", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Jobs run at once (overrides TIMBRE_WORKERS).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

impl WorkerArgs {
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut config = self.config.clone();
        if let Some(n) = self.concurrency {
            config.set.push(format!("workers={n}"));
        }
        if !self.kinds.is_empty() {
            config.set.push(format!("job_kinds={}", self.kinds.join(",")));
        }
        config.load()
    }
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List models found in the models directory and whether their files are present.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every file's size and SHA-256 against its manifest; non-zero exit on mismatch.
    Verify,
    /// Download the `hf:` models configured in `[[models]]` (all, or those named) into the cache
    /// under the data dir, so the server starts without downloading.
    Pull { names: Vec<String> },
}

pub fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Commands whose capability has not landed yet say so plainly instead of pretending.
pub fn not_yet(command: &str, capability: &str) -> ExitCode {
    eprintln!("error: `timbre {command}` is not yet available in this build ({capability} has not landed)");
    ExitCode::from(2)
}
