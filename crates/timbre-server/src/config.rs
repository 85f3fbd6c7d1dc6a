//! One `Config` for the whole process, layered: defaults → `timbre.toml` → environment → CLI.
//!
//! Every key is described once, in [`FIELDS`]: its environment name (the seed services' names
//! where they had one, `TIMBRE_*` otherwise), how a string from the environment or a `--set`
//! flag is typed, whether it is a secret, and its documentation. Loading, the unknown-variable
//! warning, `timbre config show` and the docs test all read that table, so a key cannot be
//! half-added.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use timbre_engines::hub::ModelEntry;

/// A value that must never reach a log line or `config show`.
///
/// `Debug`, `Display` and `Serialize` all print `***`; only [`Secret::expose`] gives the value,
/// so every use of the real value is greppable.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const REDACTED: &str = "***";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Log output format: JSON for machines (the default, what Railway and Loki ingest), pretty for
/// a developer's terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub service_token: Option<Secret>,
    pub api_keys: Vec<Secret>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub environment: String,
    pub hugging_face_hub_token: Option<Secret>,
    pub max_concurrent_sessions: usize,
    pub rate_limit_per_minute: u32,
    pub trust_proxy: bool,
    pub processing_timeout: f64,
    pub shutdown_grace: f64,
    pub max_upload_mb: u64,
    pub max_inflight: usize,
    pub metrics_auth: bool,
    pub skip_model_loading: bool,
    pub model_load_parallelism: usize,
    pub threads: usize,
    /// Worker threads of the async runtime (HTTP, WebSockets, job orchestration); `0`: half
    /// the cores, at least one. See [`Config::async_worker_threads`].
    pub async_threads: usize,
    pub cors_origins: Vec<String>,
    pub database_url: Option<Secret>,
    pub redis_url: Option<Secret>,
    pub s3_bucket_name: Option<String>,
    pub s3_access_key_id: Option<Secret>,
    pub s3_secret_access_key: Option<Secret>,
    pub s3_region: Option<String>,
    pub s3_endpoint_url: Option<String>,
    /// Extra models: local directories or `hf:org/repo[@rev]` downloads (`[[models]]` tables).
    pub models: Vec<ModelEntry>,
    pub hf_endpoint: String,
    pub hf_hub_offline: bool,
    pub import_allow_private: bool,
    pub import_allow_addrs: Vec<String>,
    pub import_ytdlp: bool,
    pub import_max_mb: u64,
    pub import_timeout: f64,
    /// Seed compatibility: a Signify-style keypoint WebSocket at `/` on its own port.
    pub stream_port: Option<u16>,
    /// Seed compatibility: `/health` on a separate port as well.
    pub health_port: Option<u16>,
    pub stream_model: String,
    pub stream_idle_timeout: f64,
    pub stream_max_fps: f64,
    /// Jobs run at once by this process's in-process workers (`timbre serve`) or by
    /// `timbre worker`; `0` on `serve` makes an API-only replica.
    pub workers: usize,
    /// Job kinds this process's workers run; empty: every kind it has a handler for.
    pub job_kinds: Vec<String>,
    pub job_lease: f64,
    pub job_heartbeat: f64,
    pub job_poll_interval: f64,
    pub job_max_attempts: u32,
    pub job_retry_base: f64,
    pub job_retry_max: f64,
    pub job_retention: f64,
    /// Worker threads per TTS voice model (each owns a session and, for Piper, an espeak-ng).
    pub tts_workers: usize,
    /// Seconds of silence between synthesized sentences.
    pub tts_sentence_silence: f32,
    /// The voice OpenAI voice names (`alloy`, `echo`, …) and `tts-1` without a voice map to;
    /// empty: the first voice of the default TTS model.
    pub tts_default_voice: String,
    pub stt_workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: crate::DEFAULT_PORT,
            data_dir: PathBuf::from("data"),
            models_dir: PathBuf::from("models"),
            service_token: None,
            api_keys: Vec::new(),
            log_level: "info".into(),
            log_format: LogFormat::Json,
            environment: "development".into(),
            hugging_face_hub_token: None,
            max_concurrent_sessions: 100,
            rate_limit_per_minute: 600,
            trust_proxy: false,
            processing_timeout: 300.0,
            shutdown_grace: 30.0,
            max_upload_mb: 100,
            max_inflight: 256,
            metrics_auth: false,
            skip_model_loading: false,
            model_load_parallelism: 2,
            threads: 0,
            async_threads: 0,
            cors_origins: Vec::new(),
            database_url: None,
            redis_url: None,
            s3_bucket_name: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_region: None,
            s3_endpoint_url: None,
            models: Vec::new(),
            hf_endpoint: timbre_engines::hub::DEFAULT_ENDPOINT.into(),
            hf_hub_offline: false,
            import_allow_private: false,
            import_allow_addrs: Vec::new(),
            import_ytdlp: false,
            import_max_mb: 200,
            import_timeout: 120.0,
            stream_port: None,
            health_port: None,
            stream_model: "signify-letters-test".into(),
            stream_idle_timeout: 60.0,
            stream_max_fps: 60.0,
            workers: 2,
            job_kinds: Vec::new(),
            job_lease: 30.0,
            job_heartbeat: 10.0,
            job_poll_interval: 1.0,
            job_max_attempts: 3,
            job_retry_base: 2.0,
            job_retry_max: 300.0,
            job_retention: 7.0 * 24.0 * 3600.0,
            tts_workers: 2,
            tts_sentence_silence: 0.2,
            tts_default_voice: String::new(),
            stt_workers: 0,
        }
    }
}

/// How a string (from the environment or `--set key=value`) becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// Comma-separated; empty items dropped.
    List,
    /// A TOML value written inline, e.g. an array of tables for `[[models]]`.
    Toml,
}

/// One configuration key, described once.
#[derive(Debug)]
pub struct Field {
    pub key: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    pub secret: bool,
    pub doc: &'static str,
}

const fn f(key: &'static str, env: &'static str, kind: Kind, secret: bool, doc: &'static str) -> Field {
    Field { key, env, kind, secret, doc }
}

/// Every configuration key. `docs/configuration.md` must list each of them (a test checks).
#[rustfmt::skip]
pub const FIELDS: &[Field] = &[
    f("host", "HOST", Kind::Str, false, "Address to bind."),
    f("port", "PORT", Kind::Int, false, "TCP port for HTTP and WebSocket."),
    f("data_dir", "TIMBRE_DATA_DIR", Kind::Str, false, "SQLite database, local blobs and the model download cache live here."),
    f("models_dir", "TIMBRE_MODELS_DIR", Kind::Str, false, "Directory scanned for `*/model.toml` manifests (what `scripts/fetch-models` writes)."),
    f("service_token", "SERVICE_TOKEN", Kind::Str, true, "An API key clients must present (seed-compatible name). Unset together with `api_keys` means the server is open."),
    f("api_keys", "TIMBRE_API_KEYS", Kind::List, true, "More API keys, comma-separated."),
    f("log_level", "LOG_LEVEL", Kind::Str, false, "`error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `info,timbre_engines=debug`."),
    f("log_format", "TIMBRE_LOG_FORMAT", Kind::Str, false, "`json` (one object per line) or `pretty`."),
    f("environment", "ENVIRONMENT", Kind::Str, false, "Free-form deployment name (`development`, `production`) shown in `/` and logs."),
    f("hugging_face_hub_token", "HUGGING_FACE_HUB_TOKEN", Kind::Str, true, "Token for `hf:` model entries."),
    f("max_concurrent_sessions", "MAX_CONCURRENT_SESSIONS", Kind::Int, false, "Open WebSocket sessions allowed at once, all protocols together; the next gets 503 before the upgrade."),
    f("rate_limit_per_minute", "RATE_LIMIT_PER_MINUTE", Kind::Int, false, "Requests per minute per API key (per client IP when the server is open); `0` disables. Bursts up to the same number."),
    f("trust_proxy", "TIMBRE_TRUST_PROXY", Kind::Bool, false, "Take the client IP from the first `X-Forwarded-For` entry (behind Railway, a load balancer or ingress)."),
    f("processing_timeout", "PROCESSING_TIMEOUT", Kind::Float, false, "Seconds an HTTP request may take before it is answered 504."),
    f("shutdown_grace", "TIMBRE_SHUTDOWN_GRACE", Kind::Float, false, "Seconds to let in-flight requests finish after SIGTERM/SIGINT; job workers get as long to finish running jobs before releasing them to the queue."),
    f("max_upload_mb", "TIMBRE_MAX_UPLOAD_MB", Kind::Int, false, "Largest request body in MiB; larger gets 413."),
    f("max_inflight", "TIMBRE_MAX_INFLIGHT", Kind::Int, false, "API requests processed at once; beyond it 503 with Retry-After."),
    f("metrics_auth", "TIMBRE_METRICS_AUTH", Kind::Bool, false, "Require an API key for `/metrics`."),
    f("skip_model_loading", "SKIP_MODEL_LOADING", Kind::Bool, false, "Start without loading models; health reports `degraded` and model endpoints answer 503."),
    f("model_load_parallelism", "TIMBRE_MODEL_LOAD_PARALLELISM", Kind::Int, false, "Models loaded at the same time in the background."),
    f("threads", "TIMBRE_THREADS", Kind::Int, false, "Intra-op threads per inference engine; `0` means one per core (for TTS voices: the cores divided among `tts_workers`; for the sound tagger: one single-threaded session per core, scoring windows side by side)."),
    f("async_threads", "TIMBRE_ASYNC_THREADS", Kind::Int, false, "Worker threads of the async runtime that serves HTTP and WebSockets and drives jobs (`serve` and `worker`); `0` means half the cores, at least one. Inference, decoding and analysis run on their own threads."),
    f("cors_origins", "CORS_ORIGINS", Kind::List, false, "Allowed browser origins, comma-separated; `*` allows any. Empty disables CORS."),
    f("database_url", "DATABASE_URL", Kind::Str, true, "`postgres://…` for PostgreSQL; unset uses SQLite in the data dir."),
    f("redis_url", "REDIS_URL", Kind::Str, true, "Redis for rate-limit state shared by replicas."),
    f("s3_bucket_name", "S3_BUCKET_NAME", Kind::Str, false, "Store blobs in this S3 bucket instead of the data dir."),
    f("s3_access_key_id", "S3_ACCESS_KEY_ID", Kind::Str, true, "S3 access key."),
    f("s3_secret_access_key", "S3_SECRET_ACCESS_KEY", Kind::Str, true, "S3 secret key."),
    f("s3_region", "S3_REGION", Kind::Str, false, "S3 region."),
    f("s3_endpoint_url", "S3_ENDPOINT_URL", Kind::Str, false, "S3-compatible endpoint (MinIO, R2, …)."),
    f("models", "TIMBRE_MODELS", Kind::Toml, false, "Extra models beyond the models dir: `[[models]]` tables in the file (see docs/models.md); in the environment an inline TOML array, e.g. `[{name=\"x\", source=\"hf:org/repo\", family=\"ced\", capability=\"tagging\", files=[\"m.onnx\"]}]`."),
    f("hf_endpoint", "HF_ENDPOINT", Kind::Str, false, "Hugging Face hub base URL (a mirror or a private hub)."),
    f("hf_hub_offline", "HF_HUB_OFFLINE", Kind::Bool, false, "Use only the download cache for `hf:` models; never contact the hub."),
    f("import_allow_private", "TIMBRE_IMPORT_ALLOW_PRIVATE", Kind::Bool, false, "Let URL imports reach loopback, private, link-local and metadata addresses (off: such URLs get 403)."),
    f("import_allow_addrs", "TIMBRE_IMPORT_ALLOW_ADDRS", Kind::List, false, "Non-public IP addresses URL imports may reach anyway (an internal media host), comma-separated."),
    f("import_ytdlp", "TIMBRE_IMPORT_YTDLP", Kind::Bool, false, "Send page URLs (YouTube, SoundCloud, Vimeo, Bandcamp) through `yt-dlp` (must be installed; `TIMBRE_YTDLP_BIN` names another binary)."),
    f("import_max_mb", "TIMBRE_IMPORT_MAX_MB", Kind::Int, false, "Largest URL import in MiB."),
    f("import_timeout", "TIMBRE_IMPORT_TIMEOUT", Kind::Float, false, "Seconds a URL import may take."),
    f("stream_port", "TIMBRE_STREAM_PORT", Kind::Int, false, "Also serve the keypoint stream protocol at `/` on this port (Signify's WebSocket server), with `stream_model`; unset: no extra listener."),
    f("health_port", "HEALTH_PORT", Kind::Int, false, "Also serve `/health`, `/healthz` and `/readyz` on this port (Signify's separate health port); unset: no extra listener."),
    f("stream_model", "TIMBRE_STREAM_MODEL", Kind::Str, false, "The stream-classifier model the `stream_port` listener serves."),
    f("stream_idle_timeout", "TIMBRE_STREAM_IDLE_TIMEOUT", Kind::Float, false, "Seconds a keypoint stream may stay silent before it is closed (1000, \"idle timeout\")."),
    f("stream_max_fps", "TIMBRE_STREAM_MAX_FPS", Kind::Float, false, "Frames per second one keypoint stream may send (a second's worth may come at once); beyond it frames are dropped with a `throttled` notice. `0` disables."),
    f("workers", "TIMBRE_WORKERS", Kind::Int, false, "Jobs this process runs at once: in-process workers of `timbre serve` (`--workers`; `0` makes an API-only replica), or the concurrency of `timbre worker` (`--concurrency`)."),
    f("job_kinds", "TIMBRE_JOB_KINDS", Kind::List, false, "Job kinds this process's workers run, comma-separated (`--kinds`); empty runs every kind."),
    f("job_lease", "TIMBRE_JOB_LEASE", Kind::Float, false, "Seconds a claimed job stays a worker's without a heartbeat; after that a dead worker's job returns to the queue (the attempt counts)."),
    f("job_heartbeat", "TIMBRE_JOB_HEARTBEAT", Kind::Float, false, "Seconds between lease heartbeats (must be under `job_lease`); also how often expired leases are reaped."),
    f("job_poll_interval", "TIMBRE_JOB_POLL_INTERVAL", Kind::Float, false, "Longest wait between claim attempts of an idle worker (new jobs wake workers at once; this catches delayed and retried jobs)."),
    f("job_max_attempts", "TIMBRE_JOB_MAX_ATTEMPTS", Kind::Int, false, "Attempts a job gets before it fails with its last error."),
    f("job_retry_base", "TIMBRE_JOB_RETRY_BASE", Kind::Float, false, "Seconds before the first retry; doubles with each attempt, with jitter (half to the full delay)."),
    f("job_retry_max", "TIMBRE_JOB_RETRY_MAX", Kind::Float, false, "Longest wait between retries, seconds."),
    f("job_retention", "TIMBRE_JOB_RETENTION", Kind::Float, false, "Seconds finished jobs (and their blobs under `jobs/<id>/`) are kept; `0` keeps them forever."),
    f("tts_workers", "TIMBRE_TTS_WORKERS", Kind::Int, false, "Worker threads per TTS voice model, each with its own ONNX session (and espeak-ng process for Piper): concurrent speech requests run in parallel up to this many."),
    f("tts_sentence_silence", "TIMBRE_TTS_SENTENCE_SILENCE", Kind::Float, false, "Seconds of silence inserted between synthesized sentences."),
    f("tts_default_voice", "TIMBRE_TTS_DEFAULT_VOICE", Kind::Str, false, "The voice that OpenAI voice names (`alloy`, `echo`, `fable`, `onyx`, `nova`, `shimmer`, …) and requests without a voice get; empty: the first voice of the default TTS model (the required one)."),
    f("stt_workers", "TIMBRE_STT_WORKERS", Kind::Int, false, "Whisper decoding workers sharing one copy of the weights (transcriptions decoded at once; more wait in a bounded queue); `0` means one per core."),
];

/// Environment variables read outside the table (they pick the file, the runtime library, or an
/// engine's arithmetic, which the engines crate reads itself).
pub const EXTRA_ENV: &[&str] = &[
    "TIMBRE_CONFIG",
    "TIMBRE_CACHE",
    "ORT_DYLIB_PATH",
    "TIMBRE_YTDLP_BIN",
    "TIMBRE_VERIFY_TOKEN",
    "TIMBRE_STT_COMPUTE",
    "TIMBRE_STT_LIVE_COMPUTE",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid { key: String, origin: String, message: String },
}

/// Where the layers come from. `env` is passed in (not read from the process) so loading is a
/// pure function that tests drive with maps.
#[derive(Debug, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// `key=value` pairs from CLI flags, applied last in order.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The process environment, with the file taken from `TIMBRE_CONFIG` unless given.
    pub fn from_process(file: Option<PathBuf>, overrides: Vec<(String, String)>) -> Self {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let file = file.or_else(|| env.get("TIMBRE_CONFIG").map(PathBuf::from));
        Self { file, env, overrides }
    }
}

/// `configured` threads, or for `0` half of `cores` rounded down, at least one.
fn async_threads_for(configured: usize, cores: usize) -> usize {
    if configured > 0 { configured } else { (cores / 2).max(1) }
}

/// What loading found that the operator should hear about (logged once logging is up).
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Worker threads for the async runtime. The default leaves half the cores to the threads
    /// that do the heavy work (inference engines, decoding, the blocking pool): the runtime
    /// only parses, routes and moves bytes, and every worker it has beyond what that needs
    /// competes with them for a core and adds cross-thread wakeups (measured on 2 cores: one
    /// worker serves `/health` with a tenth of the context switches and a lower p99 than two;
    /// docs/benchmarks.md).
    pub fn async_worker_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        async_threads_for(self.async_threads, cores)
    }

    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = &sources.file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let file: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
            for (key, value) in file {
                field(&key).ok_or_else(|| ConfigError::UnknownKey(key.clone()))?;
                table.insert(key, value);
            }
        }
        for fld in FIELDS {
            if let Some(raw) = sources.env.get(fld.env) {
                table.insert(fld.key.into(), typed(fld, raw, fld.env)?);
            }
        }
        for (key, raw) in &sources.overrides {
            let fld = field(key).ok_or_else(|| ConfigError::UnknownKey(key.clone()))?;
            table.insert(key.clone(), typed(fld, raw, "command line")?);
        }
        let config = Config::deserialize(table).map_err(|e| invalid_from_serde(&e.to_string()))?;
        config.validate()?;
        let warnings = unknown_env_warnings(&sources.env);
        Ok(Loaded { config, warnings })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid { key: key.into(), origin: "validation".into(), message: message.into() })
        };
        // `is_finite` also rejects NaN, which every comparison would let through.
        if !self.processing_timeout.is_finite() || self.processing_timeout <= 0.0 {
            return bad("processing_timeout", "must be > 0 seconds");
        }
        if !self.shutdown_grace.is_finite() || self.shutdown_grace < 0.0 {
            return bad("shutdown_grace", "must be >= 0 seconds");
        }
        let mut names = std::collections::BTreeSet::new();
        for entry in &self.models {
            entry.validate().map_err(|e| ConfigError::Invalid {
                key: "models".into(),
                origin: "validation".into(),
                message: e.to_string(),
            })?;
            if !names.insert(entry.name.as_str()) {
                return bad("models", &format!("two entries are named `{}`", entry.name));
            }
        }
        if !self.stream_idle_timeout.is_finite() || self.stream_idle_timeout <= 0.0 {
            return bad("stream_idle_timeout", "must be > 0 seconds");
        }
        if !self.stream_max_fps.is_finite() || self.stream_max_fps < 0.0 {
            return bad("stream_max_fps", "must be >= 0 (0 disables the cap)");
        }
        if self.max_upload_mb == 0 {
            return bad("max_upload_mb", "must be >= 1");
        }
        if let Some(addr) = self.import_allow_addrs.iter().find(|a| a.parse::<std::net::IpAddr>().is_err()) {
            return bad("import_allow_addrs", &format!("`{addr}` is not an IP address"));
        }
        if self.max_inflight == 0 {
            return bad("max_inflight", "must be >= 1");
        }
        if self.model_load_parallelism == 0 {
            return bad("model_load_parallelism", "must be >= 1");
        }
        self.validate_jobs()
    }

    fn validate_jobs(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid { key: key.into(), origin: "validation".into(), message: message.into() })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.job_lease) {
            return bad("job_lease", "must be > 0 seconds");
        }
        if !positive(self.job_heartbeat) || self.job_heartbeat >= self.job_lease {
            return bad("job_heartbeat", "must be > 0 and shorter than job_lease");
        }
        if !positive(self.job_poll_interval) {
            return bad("job_poll_interval", "must be > 0 seconds");
        }
        if self.job_max_attempts == 0 || self.job_max_attempts > 1000 {
            return bad("job_max_attempts", "must be between 1 and 1000");
        }
        if !positive(self.job_retry_base) {
            return bad("job_retry_base", "must be > 0 seconds");
        }
        if !positive(self.job_retry_max) || self.job_retry_max < self.job_retry_base {
            return bad("job_retry_max", "must be >= job_retry_base");
        }
        if !self.job_retention.is_finite() || self.job_retention < 0.0 {
            return bad("job_retention", "must be >= 0 seconds (0 keeps finished jobs)");
        }
        Ok(())
    }

    /// All accepted API keys; empty means the server is open.
    pub fn all_api_keys(&self) -> Vec<Secret> {
        let mut keys: Vec<Secret> = self.service_token.iter().cloned().collect();
        keys.extend(self.api_keys.iter().filter(|k| !k.expose().is_empty()).cloned());
        keys.retain(|k| !k.expose().is_empty());
        keys
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb.saturating_mul(1024 * 1024)
    }

    /// `timbre config show`: every key with its value (secrets as `***`), as TOML.
    pub fn to_redacted_toml(&self) -> String {
        // Serialising through `toml` drops unset options, so they are listed as comments.
        let table = toml::Table::try_from(self).unwrap_or_default();
        let mut out = String::new();
        // Arrays of tables (`[[models]]`) go last: in TOML every key after a table header belongs
        // to that table.
        let mut tables = toml::Table::new();
        for fld in FIELDS {
            match table.get(fld.key) {
                None => out.push_str(&format!("# {} = (unset)\n", fld.key)),
                Some(toml::Value::Array(items)) if items.iter().any(toml::Value::is_table) => {
                    tables.insert(fld.key.to_string(), toml::Value::Array(items.clone()));
                }
                Some(v) => out.push_str(&format!("{} = {}\n", fld.key, v)),
            }
        }
        if !tables.is_empty() {
            out.push('\n');
            out.push_str(&toml::to_string(&tables).unwrap_or_default());
        }
        out
    }
}

fn field(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.key == key)
}

fn typed(fld: &Field, raw: &str, origin: &str) -> Result<toml::Value, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { key: fld.key.into(), origin: origin.into(), message };
    let trimmed = raw.trim();
    Ok(match fld.kind {
        Kind::Str => toml::Value::String(raw.to_string()),
        Kind::Int => toml::Value::Integer(
            trimmed.parse::<i64>().map_err(|e| invalid(format!("`{trimmed}` is not an integer ({e})")))?,
        ),
        Kind::Float => toml::Value::Float(
            trimmed.parse::<f64>().map_err(|e| invalid(format!("`{trimmed}` is not a number ({e})")))?,
        ),
        Kind::Bool => {
            toml::Value::Boolean(parse_bool(trimmed).ok_or_else(|| invalid(format!("`{trimmed}` is not true/false")))?)
        }
        Kind::Toml => {
            let doc: toml::Table =
                format!("v = {raw}").parse().map_err(|e: toml::de::Error| invalid(format!("not a TOML value: {e}")))?;
            doc.get("v").cloned().ok_or_else(|| invalid("empty value".into()))?
        }
        Kind::List => toml::Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
        ),
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// serde's message names the field in backticks; keep that as the key so the error is actionable.
fn invalid_from_serde(message: &str) -> ConfigError {
    let key = message.split('`').nth(1).unwrap_or("config").to_string();
    ConfigError::Invalid { key, origin: "merged configuration".into(), message: message.into() }
}

fn unknown_env_warnings(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter(|name| name.starts_with("TIMBRE_"))
        .filter(|name| !FIELDS.iter().any(|f| f.env == name.as_str()) && !EXTRA_ENV.contains(&name.as_str()))
        .map(|name| {
            let hint = closest_env(name).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
            format!("unknown environment variable {name} is ignored{hint}")
        })
        .collect()
}

fn closest_env(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| f.env)
        .chain(EXTRA_ENV.iter().copied())
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The default location of `timbre.toml` when neither `--config` nor `TIMBRE_CONFIG` is given:
/// used only if the file exists, so a fresh checkout needs none.
pub fn default_file() -> Option<PathBuf> {
    let p = Path::new("timbre.toml");
    p.exists().then(|| p.to_path_buf())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("timbre.toml");
        std::fs::write(&file, "port = 1111\nhost = \"127.0.0.2\"\nlog_level = \"debug\"\n").unwrap();
        let sources = Sources {
            file: Some(file),
            env: env(&[("PORT", "2222"), ("LOG_LEVEL", "warn")]),
            overrides: vec![("port".into(), "3333".into())],
        };
        let c = Config::load(&sources).unwrap().config;
        assert_eq!(c.port, 3333, "flag beats env and file");
        assert_eq!(c.log_level, "warn", "env beats file");
        assert_eq!(c.host, "127.0.0.2", "file beats default");
        assert_eq!(c.max_upload_mb, 100, "default kept");
    }

    #[test]
    fn seed_variables_are_typed() {
        let sources = Sources {
            env: env(&[
                ("SKIP_MODEL_LOADING", "True"),
                ("RATE_LIMIT_PER_MINUTE", "60"),
                ("PROCESSING_TIMEOUT", "2.5"),
                ("CORS_ORIGINS", "https://a.example, https://b.example,"),
                ("TIMBRE_API_KEYS", "k1,k2"),
                ("SERVICE_TOKEN", "tok"),
            ]),
            ..Default::default()
        };
        let c = Config::load(&sources).unwrap().config;
        assert!(c.skip_model_loading);
        assert_eq!(c.rate_limit_per_minute, 60);
        assert!((c.processing_timeout - 2.5).abs() < 1e-9);
        assert_eq!(c.cors_origins, vec!["https://a.example", "https://b.example"]);
        let keys: Vec<String> = c.all_api_keys().iter().map(|k| k.expose().to_string()).collect();
        assert_eq!(keys, vec!["tok", "k1", "k2"]);
    }

    #[test]
    fn bad_values_name_the_key_and_origin() {
        let sources = Sources { env: env(&[("PORT", "eighty")]), ..Default::default() };
        let err = Config::load(&sources).unwrap_err().to_string();
        assert!(err.contains("`port`") && err.contains("PORT"), "{err}");
        let sources = Sources { env: env(&[("PORT", "99999")]), ..Default::default() };
        let err = Config::load(&sources).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
        let sources = Sources { overrides: vec![("nope".into(), "1".into())], ..Default::default() };
        assert!(matches!(Config::load(&sources), Err(ConfigError::UnknownKey(k)) if k == "nope"));
        let sources = Sources { env: env(&[("PROCESSING_TIMEOUT", "0")]), ..Default::default() };
        assert!(Config::load(&sources).unwrap_err().to_string().contains("processing_timeout"));
    }

    #[test]
    fn the_async_runtime_gets_half_the_cores_unless_told() {
        assert_eq!(super::async_threads_for(0, 1), 1);
        assert_eq!(super::async_threads_for(0, 2), 1);
        assert_eq!(super::async_threads_for(0, 3), 1);
        assert_eq!(super::async_threads_for(0, 16), 8);
        assert_eq!(super::async_threads_for(3, 2), 3, "an explicit number is taken as given");
        let sources = Sources { env: env(&[("TIMBRE_ASYNC_THREADS", "4")]), ..Default::default() };
        assert_eq!(Config::load(&sources).unwrap().config.async_worker_threads(), 4);
    }

    #[test]
    fn unknown_timbre_variables_warn_with_a_hint() {
        let sources = Sources {
            env: env(&[("TIMBRE_MAX_UPLOAD_M", "5"), ("TIMBRE_THREADS", "2"), ("HOME", "/root")]),
            ..Default::default()
        };
        let loaded = Config::load(&sources).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].contains("TIMBRE_MAX_UPLOAD_M") && loaded.warnings[0].contains("TIMBRE_MAX_UPLOAD_MB")
        );
        assert_eq!(loaded.config.threads, 2);
    }

    #[test]
    fn models_entries_from_file_or_env_and_back() {
        let sources = Sources {
            env: env(&[(
                "TIMBRE_MODELS",
                r#"[{name="sa", source="hf:stabilityai/stable-audio-open-1.0@v1.0", family="stable-audio", capability="generate", required=false, files=["model.safetensors"]}]"#,
            )]),
            ..Default::default()
        };
        let c = Config::load(&sources).unwrap().config;
        assert_eq!(c.models.len(), 1);
        assert_eq!(c.models[0].source.to_string(), "hf:stabilityai/stable-audio-open-1.0@v1.0");
        // `config show` renders them as TOML that reads back to the same entries.
        let shown = c.to_redacted_toml();
        let table: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}\n{shown}"));
        let again: Vec<ModelEntry> = table["models"].clone().try_into().unwrap();
        assert_eq!(again, c.models);

        let dup = r#"[{name="a", source="hf:o/r", family="f", capability="c", files=["x"]}, {name="a", source="hf:o/s", family="f", capability="c", files=["y"]}]"#;
        let err = Config::load(&Sources { env: env(&[("TIMBRE_MODELS", dup)]), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("two entries are named `a`"), "{err}");
        let err =
            Config::load(&Sources { env: env(&[("TIMBRE_MODELS", "[{name=")]), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("TIMBRE_MODELS"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let sources = Sources {
            env: env(&[
                ("SERVICE_TOKEN", "s3cr3t-token"),
                ("DATABASE_URL", "postgres://u:pw-zzz@h/db"),
                ("S3_SECRET_ACCESS_KEY", "sk-abc"),
            ]),
            ..Default::default()
        };
        let c = Config::load(&sources).unwrap().config;
        for text in [format!("{c:?}"), c.to_redacted_toml(), serde_json::to_string(&c).unwrap()] {
            for secret in ["s3cr3t-token", "pw-zzz", "sk-abc"] {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
        }
        assert!(c.to_redacted_toml().contains("service_token = \"***\""));
    }

    #[test]
    fn job_settings_are_typed_and_checked() {
        let load = |pairs: &[(&str, &str)]| Config::load(&Sources { env: env(pairs), ..Default::default() });
        let c = load(&[
            ("TIMBRE_WORKERS", "0"),
            ("TIMBRE_JOB_KINDS", "noop, analyze_audio"),
            ("TIMBRE_JOB_LEASE", "5"),
            ("TIMBRE_JOB_HEARTBEAT", "1"),
        ])
        .unwrap()
        .config;
        assert_eq!((c.workers, c.job_lease), (0, 5.0));
        assert_eq!(c.job_kinds, ["noop", "analyze_audio"]);
        for (pairs, key) in [
            (&[("TIMBRE_JOB_LEASE", "5"), ("TIMBRE_JOB_HEARTBEAT", "5")][..], "job_heartbeat"),
            (&[("TIMBRE_JOB_LEASE", "0")][..], "job_lease"),
            (&[("TIMBRE_JOB_MAX_ATTEMPTS", "0")][..], "job_max_attempts"),
            (&[("TIMBRE_JOB_RETRY_BASE", "10"), ("TIMBRE_JOB_RETRY_MAX", "5")][..], "job_retry_max"),
            (&[("TIMBRE_JOB_RETENTION", "-1")][..], "job_retention"),
            (&[("TIMBRE_JOB_POLL_INTERVAL", "NaN")][..], "job_poll_interval"),
        ] {
            let err = load(pairs).unwrap_err().to_string();
            assert!(err.contains(key), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn table_matches_struct() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut struct_keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut table_keys: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
        struct_keys.sort_unstable();
        table_keys.sort_unstable();
        assert_eq!(struct_keys, table_keys, "every Config field needs exactly one FIELDS entry");
        for f in FIELDS {
            let expected_secret = matches!(
                f.key,
                "service_token"
                    | "api_keys"
                    | "hugging_face_hub_token"
                    | "database_url"
                    | "redis_url"
                    | "s3_access_key_id"
                    | "s3_secret_access_key"
            );
            assert_eq!(f.secret, expected_secret, "{}", f.key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod docs_tests {
    use super::FIELDS;

    /// A key added to `Config` without documentation fails here (and `table_matches_struct`
    /// fails if it is missing from `FIELDS`).
    #[test]
    fn configuration_md_documents_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for f in FIELDS {
            let row = format!("| `{}` | `{}` |", f.key, f.env);
            assert!(doc.contains(&row), "docs/configuration.md lacks a row starting {row}");
        }
        for extra in super::EXTRA_ENV {
            assert!(doc.contains(&format!("`{extra}`")), "docs/configuration.md lacks {extra}");
        }
    }
}
