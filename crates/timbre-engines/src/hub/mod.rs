//! A Hugging Face hub client: token check, resumable verified downloads into a local cache, and
//! (in [`entry`]) the `[[models]]` entries that turn a hub repository into a [`Manifest`] for
//! the normal loader path.
//!
//! The cache uses the layout of `huggingface_hub`, so a cache filled by either tool serves the
//! other:
//!
//! ```text
//! <cache_dir>/models--<org>--<repo>/
//!     blobs/<etag>              one file per distinct content (sha256 for LFS files)
//!     blobs/<etag>.incomplete   a download in progress; resumed with `Range: bytes=N-`
//!     snapshots/<commit>/<file> relative symlink to ../../blobs/<etag>
//!     refs/<revision>           the commit a branch or tag resolved to last time
//!     .locks/<etag>.lock        held while one process downloads that blob
//! ```
//!
//! The token is only ever sent to the hub's own origin (never to the CDN a download redirects
//! to) and never appears in an error, a log line or `Debug` output.
//!
//! [`Manifest`]: crate::manifest::Manifest

pub mod entry;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use entry::{EntryError, EntryFile, FileSpec, ModelEntry, ModelSource};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Environment variable that overrides [`DEFAULT_ENDPOINT`] (same name as `huggingface_hub`).
pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";
/// Environment variable that forbids network access (same name as `huggingface_hub`).
pub const OFFLINE_ENV: &str = "HF_HUB_OFFLINE";
/// Default [`HubSettings::max_bytes`]: 32 GiB per file.
pub const DEFAULT_MAX_BYTES: u64 = 32 << 30;
/// Default [`HubSettings::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const MAX_REDIRECTS: usize = 10;

/// How to reach the hub and where to keep what was fetched.
#[derive(Clone)]
pub struct HubSettings {
    /// Base URL of the hub (`https://huggingface.co`, a mirror, or a test server).
    pub endpoint: String,
    /// Bearer token; an empty or blank string counts as none.
    pub token: Option<String>,
    /// Root of the download cache (the server uses `<data_dir>/hf-cache`).
    pub cache_dir: PathBuf,
    /// Limit for connecting, for a metadata request, and for each read of a download (a download
    /// may take longer in total, but not stall longer than this).
    pub timeout: Duration,
    /// A file larger than this is refused before (or, if the size was not announced, while)
    /// downloading it.
    pub max_bytes: u64,
    /// Never touch the network: only the cache answers.
    pub offline: bool,
    /// How many times one `download` resumes an interrupted transfer before giving up (the
    /// partial file stays, so a later call resumes it too).
    pub retries: u32,
    /// Pause before the first retry; doubled each time.
    pub retry_backoff: Duration,
}

impl HubSettings {
    /// Defaults: endpoint from `HF_ENDPOINT` or the public hub, offline when `HF_HUB_OFFLINE`
    /// is `1`/`true`, 30 s timeout, 32 GiB limit, 3 retries.
    pub fn new(cache_dir: impl Into<PathBuf>, token: Option<String>) -> Self {
        let endpoint = std::env::var(ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = std::env::var(OFFLINE_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Self {
            endpoint,
            token,
            cache_dir: cache_dir.into(),
            timeout: DEFAULT_TIMEOUT,
            max_bytes: DEFAULT_MAX_BYTES,
            offline,
            retries: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSettings")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("cache_dir", &self.cache_dir)
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("offline", &self.offline)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Everything that can go wrong talking to the hub. Messages name the repository and file they
/// concern, say what to do, and never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("no Hugging Face token is configured (set HUGGING_FACE_HUB_TOKEN)")]
    NoToken,
    #[error(
        "the Hugging Face hub at {endpoint} rejected the token (HTTP 401): it is invalid, expired or revoked; create a read token at {endpoint}/settings/tokens and set HUGGING_FACE_HUB_TOKEN"
    )]
    BadToken { endpoint: String },
    #[error(
        "{repo} needs a Hugging Face token: the hub answered HTTP 401 to a request without one (gated or private repository, or no such repository{detail}); set HUGGING_FACE_HUB_TOKEN"
    )]
    TokenRequired { repo: String, detail: String },
    #[error(
        "access to {repo} is forbidden (HTTP 403): gated repo: accept the license on the hub at {url} while logged in as the token's owner, or use a token with read access to it{detail}"
    )]
    Forbidden { repo: String, url: String, detail: String },
    #[error("`{file}` not found in {repo} at revision `{revision}` (HTTP 404{detail})")]
    NotFound { repo: String, file: String, revision: String, detail: String },
    #[error("cannot reach the Hugging Face hub at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "download of `{file}` from {repo} was interrupted after {received} bytes ({reason}); the next attempt resumes from there"
    )]
    Interrupted { repo: String, file: String, received: u64, reason: String },
    #[error("checksum mismatch for `{file}`: expected sha256 {expected}, got {actual}; the download was deleted")]
    ChecksumMismatch { file: String, expected: String, actual: String },
    #[error("`{file}` in {repo} is {size} bytes, over the limit of {max} bytes")]
    TooLarge { repo: String, file: String, size: u64, max: u64 },
    #[error("`{file}` from {repo} arrived with {actual} bytes, the hub announced {expected}")]
    SizeMismatch { repo: String, file: String, expected: u64, actual: u64 },
    #[error("offline: `{file}` of {repo} is not in the cache at {cache}")]
    NotCached { repo: String, file: String, cache: PathBuf },
    #[error("unexpected HTTP {status} from the hub for {url}{detail}")]
    Http { status: u16, url: String, detail: String },
    #[error("unusable answer from the hub for {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("invalid Hugging Face repository `{input}`: {reason}")]
    InvalidRepo { input: String, reason: String },
    #[error("invalid file name `{file}`: {reason}")]
    InvalidFile { file: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl HubError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HubError {
        let context = context.into();
        move |source| HubError::Io { context, source }
    }
}

/// `org/repo` with an optional `@revision` (branch, tag or commit; default `main`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoRef {
    pub repo: String,
    pub revision: String,
}

pub const DEFAULT_REVISION: &str = "main";

impl RepoRef {
    pub fn new(repo: &str, revision: Option<&str>) -> Result<Self, HubError> {
        let input = match revision {
            Some(rev) => format!("{repo}@{rev}"),
            None => repo.to_string(),
        };
        let bad = |reason: &str| HubError::InvalidRepo { input: input.clone(), reason: reason.to_string() };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.is_empty() || parts.len() > 2 {
            return Err(bad("expected `org/repo`"));
        }
        for part in &parts {
            if part.is_empty()
                || *part == "."
                || part.contains("..")
                || part.starts_with(['-', '.'])
                || !part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad("expected `org/repo` made of letters, digits, `-`, `_` and `.`"));
            }
        }
        let revision = revision.unwrap_or(DEFAULT_REVISION);
        if revision.is_empty()
            || revision.starts_with('/')
            || revision.ends_with('/')
            || revision.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            || revision.chars().any(|c| c.is_control() || c == '\\')
        {
            return Err(bad("invalid revision"));
        }
        Ok(Self { repo: repo.to_string(), revision: revision.to_string() })
    }

    /// The revision is a full commit hash, so what it names can never change.
    pub fn is_pinned(&self) -> bool {
        is_commit_hash(&self.revision)
    }

    /// `models--org--repo`, the cache folder name `huggingface_hub` uses.
    pub fn cache_folder(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

impl FromStr for RepoRef {
    type Err = HubError;
    fn from_str(s: &str) -> Result<Self, HubError> {
        match s.split_once('@') {
            Some((repo, rev)) => RepoRef::new(repo, Some(rev)),
            None => RepoRef::new(s, None),
        }
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.revision == DEFAULT_REVISION {
            f.write_str(&self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the hub says about one file before it is downloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// `X-Linked-Etag` (LFS: the sha256 hex) or `ETag` (git blob id), quotes and `W/` removed.
    pub etag: String,
    /// `X-Repo-Commit`: the commit the revision resolved to.
    pub commit: Option<String>,
    /// `X-Linked-Size` or `Content-Length`.
    pub size: Option<u64>,
}

impl FileMeta {
    /// The expected sha256 when the etag is one (LFS files).
    pub fn sha256(&self) -> Option<&str> {
        is_sha256_hex(&self.etag).then_some(self.etag.as_str())
    }
}

/// A file present in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// `snapshots/<commit>/<file>` (a symlink into `blobs/`).
    pub path: PathBuf,
    /// `snapshots/<commit>`.
    pub snapshot_dir: PathBuf,
    pub commit: String,
    /// The blob's etag when known (it is the sha256 for LFS files).
    pub etag: Option<String>,
    pub size: u64,
}

impl CachedFile {
    pub fn sha256(&self) -> Option<&str> {
        self.etag.as_deref().filter(|e| is_sha256_hex(e))
    }
}

/// Client for one hub endpoint and one cache directory. Cheap to share behind an `Arc`.
pub struct HubClient {
    settings: HubSettings,
    endpoint: Url,
    token: Option<HeaderValue>,
    http: reqwest::Client,
    /// `(repo, revision)` → the commit it resolved to in this process: later files of the same
    /// repository are fetched at that commit (one consistent snapshot), and a file already in
    /// that snapshot is served without asking the hub again.
    resolved: Mutex<HashMap<(String, String), String>>,
    /// The account name once the token was accepted (checked once per client).
    token_user: Mutex<Option<String>>,
}

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

enum Located {
    Cached(CachedFile),
    Remote { repo: RepoRef, meta: FileMeta },
}

impl HubClient {
    pub fn new(settings: HubSettings) -> Result<Self, HubError> {
        let mut endpoint_text = settings.endpoint.trim().trim_end_matches('/').to_string();
        endpoint_text.push('/');
        let endpoint = Url::parse(&endpoint_text)
            .map_err(|e| HubError::Client(format!("invalid hub endpoint `{}`: {e}", settings.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(HubError::Client(format!("invalid hub endpoint `{}`: not http(s)", settings.endpoint)));
        }
        let token = match settings.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    HubError::Client(
                        "the Hugging Face token contains characters that cannot be sent in an HTTP header".into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        // reqwest is built without a bundled crypto provider; ring is the one this workspace
        // uses. Installing twice is harmless (the second call reports the first).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("timbre/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .read_timeout(settings.timeout)
            .build()
            .map_err(|e| HubError::Client(e.to_string()))?;
        Ok(Self { settings, endpoint, token, http, resolved: Mutex::new(HashMap::new()), token_user: Mutex::new(None) })
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn endpoint_text(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_string()
    }

    /// Check the token with `GET /api/whoami-v2`; returns the account name. A token once
    /// accepted is not asked about again by this client.
    pub async fn validate_token(&self) -> Result<String, HubError> {
        let Some(token) = self.token.clone() else {
            return Err(HubError::NoToken);
        };
        if let Some(user) = self.token_user.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(user);
        }
        let url = self.join(&["api", "whoami-v2"])?;
        let resp = self
            .http
            .get(url.clone())
            .header(header::AUTHORIZATION, token)
            .timeout(self.settings.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        match resp.status() {
            s if s.is_success() => {
                let body: serde_json::Value = resp.json().await.map_err(|e| HubError::Protocol {
                    url: url.to_string(),
                    reason: format!("whoami answer is not JSON: {e}"),
                })?;
                let user = body.get("name").and_then(|n| n.as_str()).unwrap_or("unknown").to_string();
                *self.token_user.lock().unwrap_or_else(PoisonError::into_inner) = Some(user.clone());
                Ok(user)
            }
            StatusCode::UNAUTHORIZED => Err(HubError::BadToken { endpoint: self.endpoint_text() }),
            s if s.is_server_error() => Err(HubError::Unreachable {
                endpoint: self.endpoint_text(),
                reason: format!("the hub answered HTTP {}", s.as_u16()),
            }),
            s => Err(HubError::Http { status: s.as_u16(), url: url.to_string(), detail: error_detail(resp.headers()) }),
        }
    }

    /// Download `file` of `repo` into the cache (or find it there) and return its snapshot path.
    /// `progress(done, total)` is called as bytes arrive (`total` when the hub announced it).
    pub async fn download<F>(&self, repo: &RepoRef, file: &str, progress: F) -> Result<PathBuf, HubError>
    where
        F: Fn(u64, Option<u64>) + Send + Sync,
    {
        self.download_file(repo, file, progress).await.map(|c| c.path)
    }

    /// [`download`](Self::download), returning what the cache knows about the file.
    pub async fn download_file<F>(&self, repo: &RepoRef, file: &str, progress: F) -> Result<CachedFile, HubError>
    where
        F: Fn(u64, Option<u64>) + Send + Sync,
    {
        match self.locate(repo, file).await? {
            Located::Cached(cached) => {
                progress(cached.size, Some(cached.size));
                Ok(cached)
            }
            Located::Remote { repo, meta } => self.fetch(&repo, file, &meta, &progress).await,
        }
    }

    /// Ask the hub for a file's etag, commit and size (`HEAD`, following same-origin redirects
    /// only: the headers of the hub's own answer are the ones that count).
    pub async fn metadata(&self, repo: &RepoRef, file: &str) -> Result<FileMeta, HubError> {
        let mut url = self.resolve_url(repo, file)?;
        let (mut etag, mut commit, mut size) = (None, None, None);
        for _ in 0..MAX_REDIRECTS {
            let resp = self
                .request(Method::HEAD, &url, None)
                .timeout(self.settings.timeout)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let headers = resp.headers();
            if commit.is_none() {
                commit = header_str(headers, "x-repo-commit").filter(|c| !c.is_empty());
            }
            if etag.is_none() {
                etag = header_str(headers, "x-linked-etag")
                    .or_else(|| header_str(headers, header::ETAG.as_str()))
                    .map(|e| normalize_etag(&e))
                    .filter(|e| !e.is_empty());
            }
            if size.is_none() {
                size = header_str(headers, "x-linked-size").and_then(|s| s.parse().ok());
            }
            let status = resp.status();
            if status.is_redirection() {
                let next = redirect_target(&url, headers)?;
                if same_origin(&next, &url) {
                    url = next;
                    continue;
                }
                // Off to a CDN: the hub's own answer already said everything.
                break;
            }
            if status.is_success() {
                if size.is_none() {
                    size = header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok());
                }
                break;
            }
            return Err(self.status_error(status, headers, repo, file));
        }
        let etag = etag.ok_or_else(|| HubError::Protocol {
            url: url.to_string(),
            reason: "no ETag or X-Linked-Etag header".into(),
        })?;
        // The etag names a file in blobs/: nothing that could leave that directory.
        if etag.starts_with('.') || !etag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(HubError::Protocol { url: url.to_string(), reason: format!("unusable ETag `{etag}`") });
        }
        Ok(FileMeta { etag, commit, size })
    }

    /// The file if this process or an earlier one already has it for `repo`'s revision.
    pub fn cached(&self, repo: &RepoRef, file: &str) -> Option<CachedFile> {
        let dir = self.repo_dir(repo);
        let commit = if repo.is_pinned() {
            repo.revision.clone()
        } else {
            let from_memo = self
                .resolved
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&(repo.repo.clone(), repo.revision.clone()))
                .cloned();
            match from_memo {
                Some(c) => c,
                None => match std::fs::read_to_string(dir.join("refs").join(&repo.revision)) {
                    Ok(c) => c.trim().to_string(),
                    // A hub that sent no X-Repo-Commit: the snapshot is named by the revision.
                    Err(_) => repo.revision.clone(),
                },
            }
        };
        if commit.is_empty() || commit.contains('\\') || commit.split('/').any(|c| c == "..") {
            return None;
        }
        cached_at(&dir, &commit, file)
    }

    async fn locate(&self, repo: &RepoRef, file: &str) -> Result<Located, HubError> {
        check_file_name(file)?;
        let memo = self
            .resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(repo.repo.clone(), repo.revision.clone()))
            .cloned();
        if (repo.is_pinned() || memo.is_some())
            && let Some(cached) = self.cached(repo, file)
        {
            return Ok(Located::Cached(cached));
        }
        if self.settings.offline {
            return self.cached(repo, file).map(Located::Cached).ok_or_else(|| HubError::NotCached {
                repo: repo.to_string(),
                file: file.to_string(),
                cache: self.repo_dir(repo),
            });
        }
        // Later files of a repository come from the commit its first file resolved to.
        let effective = match &memo {
            Some(commit) => RepoRef { repo: repo.repo.clone(), revision: commit.clone() },
            None => repo.clone(),
        };
        let meta = match self.metadata(&effective, file).await {
            Ok(meta) => meta,
            Err(HubError::Unreachable { endpoint, reason }) => {
                return match self.cached(repo, file) {
                    Some(cached) => {
                        tracing::warn!(
                            repo = %repo,
                            file,
                            commit = %cached.commit,
                            %endpoint,
                            %reason,
                            "Hugging Face hub unreachable; using the cached copy"
                        );
                        Ok(Located::Cached(cached))
                    }
                    None => Err(HubError::Unreachable { endpoint, reason }),
                };
            }
            Err(e) => return Err(e),
        };
        let commit = meta.commit.clone().unwrap_or_else(|| effective.revision.clone());
        self.remember(repo, &commit)?;
        let dir = self.repo_dir(repo);
        let blob = dir.join("blobs").join(&meta.etag);
        if let Ok(stat) = std::fs::metadata(&blob)
            && meta.size.is_none_or(|s| s == stat.len())
        {
            let path = link_snapshot(&dir, &commit, file, &meta.etag)?;
            return Ok(Located::Cached(CachedFile {
                snapshot_dir: dir.join("snapshots").join(&commit),
                path,
                commit,
                etag: Some(meta.etag),
                size: stat.len(),
            }));
        }
        let repo = RepoRef { repo: repo.repo.clone(), revision: commit };
        Ok(Located::Remote { repo, meta })
    }

    /// Record that `repo`'s revision is `commit`, in memory and in `refs/`.
    fn remember(&self, repo: &RepoRef, commit: &str) -> Result<(), HubError> {
        if commit.is_empty()
            || commit.starts_with('/')
            || commit.contains('\\')
            || commit.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(HubError::Protocol {
                url: self.endpoint_text(),
                reason: format!("unusable X-Repo-Commit `{commit}`"),
            });
        }
        self.resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((repo.repo.clone(), repo.revision.clone()), commit.to_string());
        if repo.revision != commit {
            let refs = self.repo_dir(repo).join("refs").join(&repo.revision);
            write_atomic(&refs, commit.as_bytes())?;
        }
        Ok(())
    }

    /// Download a blob into `blobs/<etag>` (resuming a partial one) and link it into the
    /// snapshot of `repo.revision` (a commit here).
    async fn fetch<F>(&self, repo: &RepoRef, file: &str, meta: &FileMeta, progress: &F) -> Result<CachedFile, HubError>
    where
        F: Fn(u64, Option<u64>) + Send + Sync,
    {
        if let Some(size) = meta.size
            && size > self.settings.max_bytes
        {
            return Err(HubError::TooLarge {
                repo: repo.repo.clone(),
                file: file.to_string(),
                size,
                max: self.settings.max_bytes,
            });
        }
        let dir = self.repo_dir(repo);
        let blobs = dir.join("blobs");
        tokio::fs::create_dir_all(&blobs).await.map_err(HubError::io(format!("cannot create {}", blobs.display())))?;
        let _lock = lock_blob(&dir, &meta.etag).await?;
        let blob = blobs.join(&meta.etag);
        let partial = blobs.join(format!("{}.incomplete", meta.etag));

        // Another process may have finished it while we waited for the lock.
        if tokio::fs::metadata(&blob).await.is_err() {
            let mut attempt = 0;
            let (received, actual) = loop {
                match self.transfer(repo, file, meta, &partial, progress).await {
                    Ok(done) => break done,
                    // The hub answered the metadata request moments ago, so a broken or
                    // refused transfer now is most likely transient: resume after a pause.
                    Err(e @ (HubError::Interrupted { .. } | HubError::Unreachable { .. }))
                        if attempt < self.settings.retries =>
                    {
                        attempt += 1;
                        let pause = self.settings.retry_backoff * 2u32.pow(attempt - 1);
                        tracing::warn!(
                            repo = %repo.repo, file, error = %e, attempt,
                            "download interrupted; resuming"
                        );
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            if let Some(expected) = meta.size
                && received != expected
            {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(HubError::SizeMismatch {
                    repo: repo.repo.clone(),
                    file: file.to_string(),
                    expected,
                    actual: received,
                });
            }
            if let Some(expected) = meta.sha256()
                && !expected.eq_ignore_ascii_case(&actual)
            {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(HubError::ChecksumMismatch {
                    file: file.to_string(),
                    expected: expected.to_ascii_lowercase(),
                    actual,
                });
            }
            tokio::fs::rename(&partial, &blob)
                .await
                .map_err(HubError::io(format!("cannot move {} into place", partial.display())))?;
        }
        let size =
            tokio::fs::metadata(&blob).await.map_err(HubError::io(format!("cannot stat {}", blob.display())))?.len();
        let path = link_snapshot(&dir, &repo.revision, file, &meta.etag)?;
        tracing::info!(repo = %repo.repo, file, commit = %repo.revision, bytes = size, "downloaded from the Hugging Face hub");
        Ok(CachedFile {
            path,
            snapshot_dir: dir.join("snapshots").join(&repo.revision),
            commit: repo.revision.clone(),
            etag: Some(meta.etag.clone()),
            size,
        })
    }

    /// One GET into `partial`, resuming from its current length. Returns the final length and
    /// the sha256 of the whole file.
    async fn transfer<F>(
        &self,
        repo: &RepoRef,
        file: &str,
        meta: &FileMeta,
        partial: &Path,
        progress: &F,
    ) -> Result<(u64, String), HubError>
    where
        F: Fn(u64, Option<u64>) + Send + Sync,
    {
        let io_err = |what: &str| HubError::io(format!("{what} {}", partial.display()));
        let mut existing = match tokio::fs::metadata(partial).await {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        if meta.size.is_some_and(|size| existing > size) {
            existing = 0; // cannot be a prefix of the right file
        }
        let url = self.resolve_url(repo, file)?;
        let range = (existing > 0 && meta.size != Some(existing)).then_some(existing);
        let mut resp = if existing > 0 && range.is_none() {
            None // everything is already here; only the checks remain
        } else {
            Some(self.get_following(&url, range, repo, file).await?)
        };
        if let Some(r) = &resp {
            match r.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let start =
                        header_str(r.headers(), header::CONTENT_RANGE.as_str()).and_then(|cr| content_range_start(&cr));
                    if start.is_some_and(|s| s != existing) {
                        let _ = tokio::fs::remove_file(partial).await;
                        return Err(HubError::Interrupted {
                            repo: repo.repo.clone(),
                            file: file.to_string(),
                            received: 0,
                            reason: "the hub resumed at a different offset; starting over".into(),
                        });
                    }
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    let _ = tokio::fs::remove_file(partial).await;
                    return Err(HubError::Interrupted {
                        repo: repo.repo.clone(),
                        file: file.to_string(),
                        received: 0,
                        reason: "the partial download is not a prefix of the file; starting over".into(),
                    });
                }
                _ => {
                    if existing > 0 {
                        tracing::info!(
                            repo = %repo.repo, file, existing,
                            "the hub ignored the Range request; downloading from the start"
                        );
                    }
                    existing = 0;
                }
            }
        }

        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(partial)
            .await
            .map_err(io_err("cannot open"))?;
        out.set_len(existing).await.map_err(io_err("cannot resize"))?;
        let mut hasher = Sha256::new();
        if existing > 0 {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = out.read(&mut buf).await.map_err(io_err("cannot read"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        let mut done = existing;
        progress(done, meta.size);
        if let Some(resp) = resp.as_mut() {
            loop {
                match resp.chunk().await {
                    Ok(Some(bytes)) => {
                        let next = done + bytes.len() as u64;
                        let over = if next > self.settings.max_bytes {
                            Some(HubError::TooLarge {
                                repo: repo.repo.clone(),
                                file: file.to_string(),
                                size: next,
                                max: self.settings.max_bytes,
                            })
                        } else {
                            meta.size.filter(|&size| next > size).map(|expected| HubError::SizeMismatch {
                                repo: repo.repo.clone(),
                                file: file.to_string(),
                                expected,
                                actual: next,
                            })
                        };
                        if let Some(e) = over {
                            drop(out);
                            let _ = tokio::fs::remove_file(partial).await;
                            return Err(e);
                        }
                        out.write_all(&bytes).await.map_err(io_err("cannot write"))?;
                        hasher.update(&bytes);
                        done = next;
                        progress(done, meta.size);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        out.flush().await.map_err(io_err("cannot write"))?;
                        return Err(HubError::Interrupted {
                            repo: repo.repo.clone(),
                            file: file.to_string(),
                            received: done,
                            reason: error_chain(&e),
                        });
                    }
                }
            }
        }
        out.flush().await.map_err(io_err("cannot write"))?;
        out.sync_all().await.map_err(io_err("cannot sync"))?;
        if meta.size.is_some_and(|size| done < size) {
            return Err(HubError::Interrupted {
                repo: repo.repo.clone(),
                file: file.to_string(),
                received: done,
                reason: "the connection closed early".into(),
            });
        }
        Ok((done, format!("{:x}", hasher.finalize())))
    }

    /// GET that follows redirects by hand so the token goes only to the hub's own origin and
    /// the `Range` header goes everywhere.
    async fn get_following(
        &self,
        start: &Url,
        range: Option<u64>,
        repo: &RepoRef,
        file: &str,
    ) -> Result<reqwest::Response, HubError> {
        let mut url = start.clone();
        for _ in 0..MAX_REDIRECTS {
            // No total timeout: a multi-GB body may take long; the client's connect and read
            // timeouts catch a stalled transfer.
            let resp = self.request(Method::GET, &url, range).send().await.map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            if status.is_redirection() {
                url = redirect_target(&url, resp.headers())?;
                continue;
            }
            if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
                return Ok(resp);
            }
            return Err(self.status_error(status, resp.headers(), repo, file));
        }
        Err(HubError::Protocol { url: start.to_string(), reason: format!("more than {MAX_REDIRECTS} redirects") })
    }

    fn request(&self, method: Method, url: &Url, range: Option<u64>) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, url.clone());
        if let Some(token) = &self.token
            && same_origin(url, &self.endpoint)
        {
            req = req.header(header::AUTHORIZATION, token.clone());
        }
        if let Some(from) = range {
            req = req.header(header::RANGE, format!("bytes={from}-"));
        }
        req
    }

    fn status_error(&self, status: StatusCode, headers: &HeaderMap, repo: &RepoRef, file: &str) -> HubError {
        let detail = error_detail(headers);
        match status {
            StatusCode::UNAUTHORIZED if self.token.is_some() => HubError::BadToken { endpoint: self.endpoint_text() },
            StatusCode::UNAUTHORIZED => HubError::TokenRequired { repo: repo.repo.clone(), detail },
            StatusCode::FORBIDDEN => HubError::Forbidden {
                repo: repo.repo.clone(),
                url: format!("{}/{}", self.endpoint_text(), repo.repo),
                detail,
            },
            StatusCode::NOT_FOUND => HubError::NotFound {
                repo: repo.repo.clone(),
                file: file.to_string(),
                revision: repo.revision.clone(),
                detail,
            },
            s if s.is_server_error() => HubError::Unreachable {
                endpoint: self.endpoint_text(),
                reason: format!("the hub answered HTTP {}{detail}", s.as_u16()),
            },
            s => HubError::Http { status: s.as_u16(), url: format!("{}/{}", self.endpoint_text(), repo.repo), detail },
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> HubError {
        HubError::Unreachable { endpoint: self.endpoint_text(), reason: error_chain(e) }
    }

    fn join(&self, segments: &[&str]) -> Result<Url, HubError> {
        let mut url = self.endpoint.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| HubError::Client(format!("hub endpoint `{}` cannot have a path", self.endpoint)))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// `{endpoint}/{org}/{repo}/resolve/{revision}/{file}`, each part percent-encoded (a
    /// revision such as `refs/pr/1` becomes one segment).
    fn resolve_url(&self, repo: &RepoRef, file: &str) -> Result<Url, HubError> {
        let mut segments: Vec<&str> = repo.repo.split('/').collect();
        segments.push("resolve");
        segments.push(&repo.revision);
        segments.extend(file.split('/'));
        self.join(&segments)
    }

    /// `<cache_dir>/models--org--repo`.
    pub fn repo_dir(&self, repo: &RepoRef) -> PathBuf {
        self.settings.cache_dir.join(repo.cache_folder())
    }
}

fn check_file_name(file: &str) -> Result<(), HubError> {
    if crate::manifest::is_safe_relative(file) && !file.contains('\\') {
        Ok(())
    } else {
        Err(HubError::InvalidFile {
            file: file.to_string(),
            reason: "must be a relative path inside the repository".into(),
        })
    }
}

fn cached_at(repo_dir: &Path, commit: &str, file: &str) -> Option<CachedFile> {
    let snapshot_dir = repo_dir.join("snapshots").join(commit);
    let path = snapshot_dir.join(file);
    let stat = std::fs::metadata(&path).ok()?; // follows the link: the blob must exist
    if !stat.is_file() {
        return None;
    }
    let etag = std::fs::read_link(&path).ok().and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
    Some(CachedFile { path, snapshot_dir, commit: commit.to_string(), etag, size: stat.len() })
}

/// Point `snapshots/<commit>/<file>` at `blobs/<etag>` (atomically replacing what was there).
fn link_snapshot(repo_dir: &Path, commit: &str, file: &str, etag: &str) -> Result<PathBuf, HubError> {
    let link = repo_dir.join("snapshots").join(commit).join(file);
    let parent = link.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&parent).map_err(HubError::io(format!("cannot create {}", parent.display())))?;
    let depth = file.split('/').count() - 1;
    let target = PathBuf::from(format!("{}blobs/{etag}", "../".repeat(2 + depth)));
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    make_link(&target, &tmp, &repo_dir.join("blobs").join(etag))
        .map_err(HubError::io(format!("cannot link {}", link.display())))?;
    std::fs::rename(&tmp, &link).map_err(HubError::io(format!("cannot link {}", link.display())))?;
    Ok(link)
}

#[cfg(unix)]
fn make_link(relative_target: &Path, at: &Path, _blob: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(relative_target, at)
}

#[cfg(not(unix))]
fn make_link(_relative_target: &Path, at: &Path, blob: &Path) -> std::io::Result<()> {
    std::fs::hard_link(blob, at).or_else(|_| std::fs::copy(blob, at).map(|_| ()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&parent).map_err(HubError::io(format!("cannot create {}", parent.display())))?;
    let tmp = parent.join(format!(
        ".{}.{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(HubError::io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(HubError::io(format!("cannot write {}", path.display())))
}

/// Exclusive lock on `.locks/<etag>.lock` for the life of the returned file, so two processes
/// (or two models sharing a file) never write the same `.incomplete` at once.
async fn lock_blob(repo_dir: &Path, etag: &str) -> Result<std::fs::File, HubError> {
    let locks = repo_dir.join(".locks");
    let path = locks.join(format!("{etag}.lock"));
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&locks)?;
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(|e| HubError::Io { context: "lock task failed".into(), source: std::io::Error::other(e.to_string()) })?
    .map_err(HubError::io(format!("cannot lock the download of blob {etag}")))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
}

/// `W/"abc"` → `abc`.
pub fn normalize_etag(raw: &str) -> String {
    let s = raw.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').to_string()
}

fn content_range_start(value: &str) -> Option<u64> {
    // `bytes 100-199/200`
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

fn redirect_target(from: &Url, headers: &HeaderMap) -> Result<Url, HubError> {
    let location = header_str(headers, header::LOCATION.as_str())
        .ok_or_else(|| HubError::Protocol { url: from.to_string(), reason: "redirect without a Location".into() })?;
    from.join(&location)
        .map_err(|e| HubError::Protocol { url: from.to_string(), reason: format!("bad redirect location: {e}") })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// `: <X-Error-Message>` from the hub, printable and short, or empty.
fn error_detail(headers: &HeaderMap) -> String {
    match header_str(headers, "x-error-message") {
        Some(m) if !m.is_empty() => {
            let clean: String = m.chars().filter(|c| !c.is_control()).take(300).collect();
            format!(": {clean}")
        }
        _ => String::new(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repo_refs_parse() {
        let r: RepoRef = "stabilityai/stable-audio-open-1.0".parse().unwrap();
        assert_eq!(r.repo, "stabilityai/stable-audio-open-1.0");
        assert_eq!(r.revision, "main");
        assert_eq!(r.to_string(), "stabilityai/stable-audio-open-1.0");
        assert_eq!(r.cache_folder(), "models--stabilityai--stable-audio-open-1.0");
        assert!(!r.is_pinned());

        let r: RepoRef = "org/m@refs/pr/1".parse().unwrap();
        assert_eq!(r.revision, "refs/pr/1");
        assert_eq!(r.to_string(), "org/m@refs/pr/1");
        let pinned: RepoRef = format!("org/m@{}", "a".repeat(40)).parse().unwrap();
        assert!(pinned.is_pinned());
        assert!("gpt2".parse::<RepoRef>().is_ok(), "legacy one-part names");

        for bad in ["", "a/b/c", "../x", "org/..", "org/re po", "org/", "/repo", "org/m@", "org/m@../x", "org/m@a//b"] {
            assert!(bad.parse::<RepoRef>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn etags_and_ranges() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag(" abc "), "abc");
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        let meta = FileMeta { etag: "f".repeat(64), commit: None, size: None };
        assert!(meta.sha256().is_some());
        let meta = FileMeta { etag: "f".repeat(40), commit: None, size: None };
        assert!(meta.sha256().is_none(), "a git blob id is not a sha256");
    }

    #[test]
    fn urls_are_encoded_and_token_stays_on_origin() {
        let client = HubClient::new(HubSettings {
            endpoint: "https://hub.example/".into(),
            ..HubSettings::new("/tmp/none", Some("hf_secret".into()))
        })
        .unwrap();
        let r: RepoRef = "org/m@refs/pr/1".parse().unwrap();
        let url = client.resolve_url(&r, "sub dir/model.safetensors").unwrap();
        assert_eq!(url.as_str(), "https://hub.example/org/m/resolve/refs%2Fpr%2F1/sub%20dir/model.safetensors");
        let cdn = Url::parse("https://cdn.example/x").unwrap();
        let auth = |u: &Url| {
            client.request(Method::GET, u, None).build().unwrap().headers().contains_key(header::AUTHORIZATION)
        };
        assert!(auth(&url));
        assert!(!auth(&cdn), "the token must not leave the hub's origin");
        let debug = format!("{client:?}");
        assert!(!debug.contains("hf_secret"), "{debug}");
    }

    #[test]
    fn endpoint_with_path_prefix() {
        let client = HubClient::new(HubSettings {
            endpoint: "http://127.0.0.1:9/mirror".into(),
            ..HubSettings::new("/tmp/none", None)
        })
        .unwrap();
        let r: RepoRef = "org/m".parse().unwrap();
        assert_eq!(
            client.resolve_url(&r, "a.json").unwrap().as_str(),
            "http://127.0.0.1:9/mirror/org/m/resolve/main/a.json"
        );
        assert_eq!(client.join(&["api", "whoami-v2"]).unwrap().as_str(), "http://127.0.0.1:9/mirror/api/whoami-v2");
    }
}
