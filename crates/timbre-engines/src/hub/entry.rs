//! `[[models]]` entries of `timbre.toml`: a model that lives in a local directory or in a
//! Hugging Face repository, and the registry steps that download it and hand a [`Manifest`] to
//! the normal loader path.
//!
//! ```toml
//! [[models]]
//! name = "stable-audio-open"
//! source = "hf:stabilityai/stable-audio-open-1.0"     # or "hf:org/repo@<branch|tag|commit>"
//! family = "stable-audio"
//! capability = "generate"
//! required = false                                     # default true, as in model.toml
//! files = [
//!     "model_config.json",
//!     { path = "model.safetensors", role = "weights", sha256 = "<64 hex, optional pin>" },
//! ]
//! sample_rate = 44100                                  # optional, copied to the manifest
//! license = "stabilityai-community"                    # optional, copied to the manifest
//!
//! [[models]]
//! name = "my-vad"
//! source = "/srv/models/my-vad"    # a directory; with `files` they are listed here, without
//! family = "vad"                   # them its own model.toml is read
//! capability = "vad"
//! files = ["silero_vad.onnx"]
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CachedFile, HubClient, HubError, Located, RepoRef, is_sha256_hex};
use crate::manifest::{self, FileEntry, Manifest, Source};
use crate::registry::Registry;
use crate::state::{ModelState, ModelStatus, SKIPPED_REASON};

/// Progress reaches the registry at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Where a `[[models]]` entry's files come from: `hf:org/repo[@rev]` or a local directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    Local(PathBuf),
    Hub(RepoRef),
}

impl FromStr for ModelSource {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, EntryError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("hf:") {
            let rest = rest.trim_start_matches("//");
            return RepoRef::from_str(rest)
                .map(ModelSource::Hub)
                .map_err(|e| EntryError::Source { input: s.to_string(), reason: e.to_string() });
        }
        if s.is_empty() {
            return Err(EntryError::Source {
                input: s.to_string(),
                reason: "empty; expected a directory or `hf:org/repo[@revision]`".into(),
            });
        }
        Ok(ModelSource::Local(PathBuf::from(s)))
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Local(p) => write!(f, "{}", p.display()),
            ModelSource::Hub(r) => write!(f, "hf:{r}"),
        }
    }
}

impl TryFrom<String> for ModelSource {
    type Error = EntryError;
    fn try_from(s: String) -> Result<Self, EntryError> {
        s.parse()
    }
}

impl From<ModelSource> for String {
    fn from(s: ModelSource) -> String {
        s.to_string()
    }
}

impl Serialize for ModelSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ModelSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One file of an entry: a bare path, or a table with a role and an optional sha256 pin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntryFile {
    Path(String),
    Spec(FileSpec),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Expected sha256 (hex); the model fails if the hub serves anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl EntryFile {
    pub fn path(&self) -> &str {
        match self {
            EntryFile::Path(p) => p,
            EntryFile::Spec(s) => &s.path,
        }
    }

    /// The given role, or one inferred from the extension (`onnx`, `weights`, `config`).
    pub fn role(&self) -> Option<String> {
        if let EntryFile::Spec(FileSpec { role: Some(r), .. }) = self {
            return Some(r.clone());
        }
        let ext = Path::new(self.path()).extension().map(|e| e.to_string_lossy().to_ascii_lowercase())?;
        match ext.as_str() {
            "onnx" => Some("onnx".into()),
            "safetensors" | "ckpt" | "bin" | "pt" | "pth" | "gguf" => Some("weights".into()),
            "json" | "yaml" | "yml" | "toml" => Some("config".into()),
            _ => None,
        }
    }

    pub fn sha256(&self) -> Option<&str> {
        match self {
            EntryFile::Spec(FileSpec { sha256: Some(s), .. }) => Some(s),
            _ => None,
        }
    }
}

/// A `[[models]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub source: ModelSource,
    pub family: String,
    pub capability: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<EntryFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("invalid model source `{input}`: {reason}")]
    Source { input: String, reason: String },
    #[error("model entry `{name}`: {reason}")]
    Invalid { name: String, reason: String },
}

impl ModelEntry {
    /// Check what serde cannot: names, file paths, pins. Config loading should call this so a
    /// typo fails at start-up, not after a download.
    pub fn validate(&self) -> Result<(), EntryError> {
        let bad = |reason: String| EntryError::Invalid { name: self.name.clone(), reason };
        if self.name.is_empty()
            || self.name.starts_with('.')
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad("`name` must be letters, digits, `-`, `_` and `.`".into()));
        }
        if self.family.trim().is_empty() || self.capability.trim().is_empty() {
            return Err(bad("`family` and `capability` must be set".into()));
        }
        if matches!(self.source, ModelSource::Hub(_)) && self.files.is_empty() {
            return Err(bad("an `hf:` source needs `files`, the repository files to fetch".into()));
        }
        let mut seen = BTreeSet::new();
        for f in &self.files {
            let p = f.path();
            if !manifest::is_safe_relative(p) || p.contains('\\') {
                return Err(bad(format!("file `{p}` must be a relative path inside the model")));
            }
            if p == "model.toml" {
                return Err(bad("`model.toml` is written by timbre, not fetched".into()));
            }
            if !seen.insert(p) {
                return Err(bad(format!("file `{p}` is listed twice")));
            }
            if let Some(pin) = f.sha256()
                && !is_sha256_hex(pin)
            {
                return Err(bad(format!("file `{p}`: `sha256` must be 64 hex digits")));
            }
        }
        Ok(())
    }

    /// The manifest of a local entry: built from the entry when it lists `files`, otherwise
    /// read from the directory's `model.toml` (the entry's name, family, capability and
    /// `required` win).
    pub fn local_manifest(&self) -> Result<Manifest, String> {
        let ModelSource::Local(dir) = &self.source else {
            return Err(format!("{}: not a local source", self.source));
        };
        self.validate().map_err(|e| e.to_string())?;
        let mut m = if self.files.is_empty() {
            Manifest::from_file(&dir.join("model.toml")).map_err(|e| e.to_string())?
        } else {
            let mut m = self.bare_manifest(None);
            m.files = self
                .files
                .iter()
                .map(|f| FileEntry {
                    path: f.path().to_string(),
                    role: f.role(),
                    sha256: f.sha256().map(str::to_ascii_lowercase),
                    bytes: None,
                })
                .collect();
            m.dir = dir.clone();
            m
        };
        m.name = self.name.clone();
        m.family = self.family.clone();
        m.capability = self.capability.clone();
        m.required = self.required;
        Ok(m)
    }

    fn bare_manifest(&self, source: Option<Source>) -> Manifest {
        Manifest {
            name: self.name.clone(),
            family: self.family.clone(),
            capability: self.capability.clone(),
            required: self.required,
            sample_rate: self.sample_rate,
            license: self.license.clone(),
            description: self.description.clone(),
            labels: self.labels.clone(),
            source,
            files: Vec::new(),
            stream: None,
            dir: PathBuf::new(),
        }
    }

    fn status(&self, state: ModelState, reason: Option<String>) -> ModelStatus {
        let mut s = ModelStatus::new(&self.name, &self.family, &self.capability, self.required);
        s.state = state;
        s.reason = reason;
        s
    }
}

/// `model.toml` as written: the same shape as `scripts/fetch-models` writes.
#[derive(Serialize)]
struct ManifestOut<'a> {
    name: &'a str,
    family: &'a str,
    capability: &'a str,
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a str>,
    source: SourceOut<'a>,
    files: Vec<FileOut>,
}

#[derive(Serialize)]
struct SourceOut<'a> {
    registry: &'a str,
    package: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct FileOut {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    sha256: String,
    bytes: u64,
}

/// Calls `publish` at most once per [`PROGRESS_INTERVAL`] (the first call always passes).
struct Throttle {
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    fn ready(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < PROGRESS_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl Registry {
    /// Download a `hf:` entry and write its `model.toml` into the snapshot directory.
    ///
    /// The model is `downloading` (with `progress`, updated at most ten times a second) until
    /// every file is in the cache; then `loading`, and the returned manifest goes to
    /// [`Registry::load_all`] like any discovered one. On error the model is `failed` with a
    /// reason that starts with `hf:<repo>` and the same reason is returned. A configured token
    /// is checked (`whoami`) before anything is downloaded.
    pub async fn fetch_hub_model(&self, entry: &ModelEntry, hub: &HubClient) -> Result<Manifest, String> {
        let name = entry.name.as_str();
        let mut status = entry.status(ModelState::Downloading, None);
        status.progress = Some(0.0);
        self.update(status);
        let fail = |reason: String| {
            tracing::error!(model = name, %reason, "model download failed");
            self.set_progress(name, None);
            self.set_state(name, ModelState::Failed, Some(reason.clone()));
            reason
        };
        let ModelSource::Hub(repo) = &entry.source else {
            return Err(fail(format!("{}: not an `hf:` source", entry.source)));
        };
        let label = format!("hf:{repo}");
        entry.validate().map_err(|e| fail(format!("{label}: {e}")))?;

        if hub.has_token() && !hub.settings().offline {
            match hub.validate_token().await {
                Ok(user) => tracing::info!(model = name, user, "Hugging Face token accepted"),
                Err(e @ HubError::Unreachable { .. }) => {
                    tracing::warn!(model = name, error = %e, "cannot check the Hugging Face token; trying the cache");
                }
                Err(e) => return Err(fail(format!("{label}: {e}"))),
            }
        }

        // Resolve every file before downloading any: a 401/403/404 on the last file fails
        // before gigabytes of the first one are fetched.
        let mut located = Vec::with_capacity(entry.files.len());
        for f in &entry.files {
            let l = hub.locate(repo, f.path()).await.map_err(|e| fail(format!("{label}: {e}")))?;
            located.push(l);
        }
        let sizes: Vec<Option<u64>> = located
            .iter()
            .map(|l| match l {
                Located::Cached(c) => Some(c.size),
                Located::Remote { meta, .. } => meta.size,
            })
            .collect();
        let total: Option<u64> = sizes.iter().copied().sum();
        let files_n = entry.files.len().max(1) as f64;
        let throttle = Throttle { last: Mutex::new(None) };

        let mut fetched: Vec<CachedFile> = Vec::with_capacity(located.len());
        let mut base = 0u64;
        for (i, (f, l)) in entry.files.iter().zip(located).enumerate() {
            let cached = match l {
                Located::Cached(c) => c,
                Located::Remote { repo: at, meta } => {
                    let report = |done: u64, size: Option<u64>| {
                        if !throttle.ready() {
                            return;
                        }
                        let fraction = match total {
                            Some(t) if t > 0 => (base + done) as f64 / t as f64,
                            _ => {
                                let within = size.filter(|s| *s > 0).map_or(0.0, |s| done as f64 / s as f64);
                                (i as f64 + within) / files_n
                            }
                        };
                        self.set_progress(name, Some(fraction.clamp(0.0, 1.0) as f32));
                    };
                    hub.fetch(&at, f.path(), &meta, &report).await.map_err(|e| fail(format!("{label}: {e}")))?
                }
            };
            base += cached.size;
            fetched.push(cached);
        }
        self.set_progress(name, Some(1.0));

        let manifest = write_manifest(entry, repo, &fetched).await.map_err(|e| fail(format!("{label}: {e}")))?;
        self.mark_loading(name);
        tracing::info!(model = name, source = %label, dir = %manifest.dir.display(), "model files ready");
        Ok(manifest)
    }

    fn mark_loading(&self, name: &str) {
        self.set_progress(name, None);
        self.set_state(name, ModelState::Loading, None);
    }

    /// Register `[[models]]` entries as `skipped` (SKIP_MODEL_LOADING): nothing is downloaded.
    /// Call before [`Registry::skip_all`].
    pub fn skip_entries(&self, entries: &[ModelEntry]) {
        for entry in entries {
            self.update(entry.status(ModelState::Skipped, Some(SKIPPED_REASON.into())));
        }
    }

    /// Register `[[models]]` entries and produce their manifests: local ones at once, `hf:`
    /// ones after downloading them one after another. Every entry is listed before the first
    /// download starts (`absent`, "waiting to download"), so `/v1/models` shows them all. An
    /// entry whose name is already registered (e.g. found in `models_dir`) is ignored with a
    /// registry problem. Call after [`Registry::discover`] and pass the union to
    /// [`Registry::load_all`].
    pub async fn prepare_entries(&self, entries: &[ModelEntry], hub: Option<&HubClient>) -> Vec<Manifest> {
        let mut names: BTreeSet<String> = self.snapshot().models.keys().cloned().collect();
        let mut plan = Vec::new();
        let mut queued = Vec::new();
        for entry in entries {
            if !names.insert(entry.name.clone()) {
                self.add_problem(format!(
                    "model `{}` is defined more than once (models_dir or [[models]]); the [[models]] entry with source {} is ignored",
                    entry.name, entry.source
                ));
                continue;
            }
            match &entry.source {
                ModelSource::Hub(_) => {
                    self.update(
                        entry.status(ModelState::Absent, Some(format!("waiting to download from {}", entry.source))),
                    );
                    queued.push(entry);
                }
                ModelSource::Local(_) => match entry.local_manifest() {
                    Ok(m) => {
                        self.update(entry.status(ModelState::Loading, None));
                        plan.push(m);
                    }
                    Err(reason) => self.update(entry.status(ModelState::Failed, Some(reason))),
                },
            }
        }
        for entry in queued {
            match hub {
                Some(hub) => {
                    if let Ok(m) = self.fetch_hub_model(entry, hub).await {
                        plan.push(m);
                    }
                }
                None => {
                    self.update(entry.status(
                        ModelState::Failed,
                        Some(format!("{}: no Hugging Face client configured", entry.source)),
                    ))
                }
            }
        }
        plan
    }
}

/// Write `snapshots/<commit>/model.toml` for the fetched files and read it back.
async fn write_manifest(entry: &ModelEntry, repo: &RepoRef, fetched: &[CachedFile]) -> Result<Manifest, String> {
    let Some(first) = fetched.first() else {
        return Err("no files".into());
    };
    if let Some(other) = fetched.iter().find(|c| c.commit != first.commit) {
        return Err(format!(
            "files resolved to different commits ({} and {}); pin a revision with `@<commit>`",
            first.commit, other.commit
        ));
    }
    let mut files = Vec::with_capacity(fetched.len());
    for (spec, cached) in entry.files.iter().zip(fetched) {
        let sha256 = match cached.sha256() {
            Some(s) => s.to_ascii_lowercase(),
            None => sha256_file(cached.path.clone()).await?,
        };
        if let Some(pin) = spec.sha256()
            && !pin.eq_ignore_ascii_case(&sha256)
        {
            return Err(HubError::ChecksumMismatch {
                file: spec.path().to_string(),
                expected: pin.to_ascii_lowercase(),
                actual: sha256,
            }
            .to_string()
            .replace("; the download was deleted", " (pinned in [[models]]; the hub serves different content)"));
        }
        files.push(FileOut { path: spec.path().to_string(), role: spec.role(), sha256, bytes: cached.size });
    }
    let out = ManifestOut {
        name: &entry.name,
        family: &entry.family,
        capability: &entry.capability,
        required: entry.required,
        sample_rate: entry.sample_rate,
        license: entry.license.as_deref(),
        description: entry.description.as_deref(),
        labels: entry.labels.as_deref(),
        source: SourceOut { registry: "huggingface", package: &repo.repo, version: &first.commit },
        files,
    };
    let body = toml::to_string(&out).map_err(|e| format!("cannot write model.toml: {e}"))?;
    let text = format!(
        "# Written by timbre from hf:{}@{} (revision `{}`); do not edit.\n{body}",
        repo.repo, first.commit, repo.revision
    );
    let path = first.snapshot_dir.join("model.toml");
    super::write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())?;
    Manifest::from_file(&path).map_err(|e| e.to_string())
}

async fn sha256_file(path: PathBuf) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut f = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!("{:x}", h.finalize()))
    })
    .await
    .map_err(|e| format!("hashing task failed: {e}"))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        models: Vec<ModelEntry>,
    }

    #[test]
    fn parses_the_documented_shape() {
        let text = r#"
            [[models]]
            name = "stable-audio-open"
            source = "hf:stabilityai/stable-audio-open-1.0"
            family = "stable-audio"
            capability = "generate"
            required = false
            files = ["model_config.json", { path = "model.safetensors", role = "weights" }]

            [[models]]
            name = "vad"
            source = "models/silero-vad"
            family = "vad"
            capability = "vad"
        "#;
        let f: File = toml::from_str(text).unwrap();
        let sa = &f.models[0];
        let ModelSource::Hub(r) = &sa.source else { panic!("hub source") };
        assert_eq!(r.repo, "stabilityai/stable-audio-open-1.0");
        assert_eq!(r.revision, "main");
        assert!(!sa.required);
        assert_eq!(sa.files[0].role().as_deref(), Some("config"));
        assert_eq!(sa.files[1].role().as_deref(), Some("weights"));
        sa.validate().unwrap();
        assert_eq!(f.models[1].source, ModelSource::Local(PathBuf::from("models/silero-vad")));
        assert!(f.models[1].required, "required defaults to true");

        // Round trip through Serialize (what `config show` prints).
        let back = toml::to_string(&File2 { models: f.models.clone() }).unwrap();
        assert!(back.contains("source = \"hf:stabilityai/stable-audio-open-1.0\""));
        let again: File = toml::from_str(&back).unwrap();
        assert_eq!(again.models, f.models);
    }

    #[derive(Serialize)]
    struct File2 {
        models: Vec<ModelEntry>,
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            "hf:org/m@v1".parse::<ModelSource>().unwrap(),
            ModelSource::Hub(RepoRef::new("org/m", Some("v1")).unwrap())
        );
        assert_eq!("hf:org/m@v1".parse::<ModelSource>().unwrap().to_string(), "hf:org/m@v1");
        assert!("hf:".parse::<ModelSource>().is_err());
        assert!("hf:a/b/c".parse::<ModelSource>().is_err());
        assert!("".parse::<ModelSource>().is_err());
        assert_eq!("./m".parse::<ModelSource>().unwrap(), ModelSource::Local(PathBuf::from("./m")));
    }

    #[test]
    fn rejects_bad_entries() {
        let base = ModelEntry {
            name: "x".into(),
            source: "hf:org/m".parse().unwrap(),
            family: "f".into(),
            capability: "c".into(),
            required: true,
            files: vec![EntryFile::Path("a.onnx".into())],
            sample_rate: None,
            license: None,
            description: None,
            labels: None,
        };
        base.validate().unwrap();
        let with = |f: &dyn Fn(&mut ModelEntry)| {
            let mut e = base.clone();
            f(&mut e);
            e.validate().unwrap_err().to_string()
        };
        assert!(with(&|e| e.files.clear()).contains("needs `files`"));
        assert!(with(&|e| e.files = vec![EntryFile::Path("../x".into())]).contains("relative"));
        assert!(with(&|e| e.files = vec![EntryFile::Path("model.toml".into())]).contains("written by timbre"));
        assert!(with(&|e| e.name = "a b".into()).contains("`name`"));
        assert!(with(&|e| e.files.push(EntryFile::Path("a.onnx".into()))).contains("twice"));
        assert!(
            with(&|e| e.files =
                vec![EntryFile::Spec(FileSpec { path: "a".into(), role: None, sha256: Some("abc".into()) })])
            .contains("64 hex")
        );
        let unknown: Result<File, _> =
            toml::from_str("[[models]]\nname='x'\nsource='hf:o/m'\nfamily='f'\ncapability='c'\nfile=['a']\n");
        assert!(unknown.is_err(), "unknown keys are rejected");
    }

    #[test]
    fn local_entry_with_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.onnx"), b"x").unwrap();
        let e = ModelEntry {
            name: "loc".into(),
            source: ModelSource::Local(dir.path().to_path_buf()),
            family: "vad".into(),
            capability: "vad".into(),
            required: false,
            files: vec![EntryFile::Path("m.onnx".into())],
            sample_rate: Some(16000),
            license: None,
            description: None,
            labels: None,
        };
        let m = e.local_manifest().unwrap();
        assert_eq!(m.file_with_role("onnx").unwrap(), dir.path().join("m.onnx"));
        assert_eq!(m.sample_rate, Some(16000));
        crate::registry::check_files(&m).unwrap();
    }
}
