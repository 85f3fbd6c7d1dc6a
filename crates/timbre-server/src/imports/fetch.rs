//! Downloading media by URL under the SSRF policy: every hop's host is resolved and checked,
//! the connection is pinned to the checked address, redirects are followed by hand (at most
//! five), and size and time are bounded. Page URLs (YouTube, SoundCloud, …) can go through
//! `yt-dlp` when the operator enables it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Url;
use tokio::io::AsyncReadExt;

use super::ssrf;

#[derive(Clone, Debug)]
pub struct ImportPolicy {
    pub allow_private: bool,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub ytdlp: bool,
    /// Addresses allowed even though they are not public (an operator's internal media host).
    pub allow_addrs: Vec<std::net::IpAddr>,
}

pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    #[error("refusing to fetch {host} ({ip}: {why} address); set TIMBRE_IMPORT_ALLOW_PRIVATE=true to allow it")]
    Forbidden { host: String, ip: String, why: &'static str },
    #[error("the download is larger than {limit_mb} MiB (TIMBRE_IMPORT_MAX_MB)")]
    TooLarge { limit_mb: u64 },
    #[error("the download took longer than {0} s (TIMBRE_IMPORT_TIMEOUT)")]
    Timeout(u64),
    #[error("the server at {url} answered {status}")]
    Upstream { url: String, status: u16 },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("cannot reach {0}")]
    Network(String),
    #[error("{0}")]
    Ytdlp(String),
}

pub struct Fetched {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub final_url: String,
    /// `direct` or `yt-dlp`.
    pub via: &'static str,
}

/// Hosts whose URLs are web pages around the media, not the media itself.
const PAGE_HOSTS: &[&str] = &["youtube.com", "youtu.be", "soundcloud.com", "vimeo.com", "bandcamp.com"];

fn is_page_host(host: &str) -> bool {
    PAGE_HOSTS.iter().any(|h| host == *h || host.ends_with(&format!(".{h}")))
}

pub fn parse(url: &str) -> Result<Url, ImportError> {
    let u = Url::parse(url.trim()).map_err(|e| ImportError::InvalidUrl(format!("`{url}`: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ImportError::InvalidUrl(format!("scheme `{}` is not http or https", u.scheme())));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(ImportError::InvalidUrl("the url has no host".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ImportError::InvalidUrl("credentials in the url are not accepted".into()));
    }
    Ok(u)
}

/// Resolve the URL's host and return the address to pin, refusing non-public ones.
pub async fn checked_address(url: &Url, policy: &ImportPolicy) -> Result<SocketAddr, ImportError> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| ImportError::Network(format!("{host}: DNS lookup timed out")))?
            .map_err(|e| ImportError::Network(format!("{host}: {e}")))?
            .collect();
    let first = *addrs.first().ok_or_else(|| ImportError::Network(format!("{host}: no address")))?;
    if !policy.allow_private {
        // Any non-public answer refuses the host: a name that resolves to both is an attack.
        for a in addrs.iter().filter(|a| !policy.allow_addrs.contains(&a.ip())) {
            if let Some(why) = ssrf::refusal(a.ip()) {
                return Err(ImportError::Forbidden { host, ip: a.ip().to_string(), why });
            }
        }
    }
    Ok(first)
}

pub async fn fetch(url: &str, policy: &ImportPolicy) -> Result<Fetched, ImportError> {
    let url = parse(url)?;
    let work = async {
        if policy.ytdlp && url.host_str().is_some_and(is_page_host) {
            checked_address(&url, policy).await?;
            return ytdlp(&url, policy).await;
        }
        direct(url, policy).await
    };
    tokio::time::timeout(policy.timeout, work).await.map_err(|_| ImportError::Timeout(policy.timeout.as_secs()))?
}

async fn direct(mut url: Url, policy: &ImportPolicy) -> Result<Fetched, ImportError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for _ in 0..=MAX_REDIRECTS {
        let addr = checked_address(&url, policy).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("timbre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ImportError::Network(e.to_string()))?;
        let resp = client.get(url.clone()).send().await.map_err(|e| ImportError::Network(format!("{url}: {e}")))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(ImportError::Upstream { url: url.to_string(), status: status.as_u16() })?;
            url = url.join(location).map_err(|e| ImportError::InvalidUrl(format!("redirect to `{location}`: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ImportError::InvalidUrl(format!("redirect to scheme `{}`", url.scheme())));
            }
            continue;
        }
        if !status.is_success() {
            return Err(ImportError::Upstream { url: url.to_string(), status: status.as_u16() });
        }
        if resp.content_length().is_some_and(|n| n > policy.max_bytes) {
            return Err(ImportError::TooLarge { limit_mb: policy.max_bytes >> 20 });
        }
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImportError::Network(format!("{url}: {e}")))?;
            if body.len() as u64 + chunk.len() as u64 > policy.max_bytes {
                return Err(ImportError::TooLarge { limit_mb: policy.max_bytes >> 20 });
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(Fetched { bytes: Bytes::from(body), content_type, final_url: url.to_string(), via: "direct" });
    }
    Err(ImportError::TooManyRedirects)
}

#[cfg(test)]
thread_local! {
    static YTDLP_OVERRIDE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn ytdlp_bin() -> String {
    #[cfg(test)]
    if let Some(b) = YTDLP_OVERRIDE.with(|c| c.borrow().clone()) {
        return b;
    }
    std::env::var("TIMBRE_YTDLP_BIN").unwrap_or_else(|_| "yt-dlp".into())
}

/// `yt-dlp` writes the best audio stream to stdout; output is capped like a direct download.
pub(crate) async fn ytdlp(url: &Url, policy: &ImportPolicy) -> Result<Fetched, ImportError> {
    let bin = ytdlp_bin();
    let mut child = tokio::process::Command::new(&bin)
        .args(["--no-playlist", "--quiet", "--no-warnings", "-f", "bestaudio/best", "-o", "-"])
        .arg("--max-filesize")
        .arg(policy.max_bytes.to_string())
        .arg(url.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ImportError::Ytdlp(format!("cannot run {bin}: {e} (install yt-dlp or unset TIMBRE_IMPORT_YTDLP)"))
        })?;
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().ok_or_else(|| ImportError::Ytdlp("no stdout".into()))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).await.map_err(|e| ImportError::Ytdlp(e.to_string()))?;
        if n == 0 {
            break;
        }
        if out.len() as u64 + n as u64 > policy.max_bytes {
            return Err(ImportError::TooLarge { limit_mb: policy.max_bytes >> 20 });
        }
        out.extend_from_slice(&buf[..n]);
    }
    let result = child.wait_with_output().await.map_err(|e| ImportError::Ytdlp(e.to_string()))?;
    if !result.status.success() {
        let err = String::from_utf8_lossy(&result.stderr);
        return Err(ImportError::Ytdlp(format!("yt-dlp failed: {}", err.trim().chars().take(500).collect::<String>())));
    }
    Ok(Fetched { bytes: Bytes::from(out), content_type: None, final_url: url.to_string(), via: "yt-dlp" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ImportPolicy {
        ImportPolicy {
            allow_private: false,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(10),
            ytdlp: true,
            allow_addrs: Vec::new(),
        }
    }

    /// yt-dlp itself is a boundary this machine cannot reach past (YouTube): a stand-in script
    /// checks the arguments timbre passes and writes bytes to stdout as yt-dlp does.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn ytdlp_output_is_captured_capped_and_errors_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("yt-dlp");
        std::fs::write(&bin, "#!/bin/sh\ncase \"$*\" in *bestaudio*--max-filesize*watch*) printf 'RIFFaudio';; *) echo bad args >&2; exit 3;; esac\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let url = Url::parse("https://www.youtube.com/watch?v=abc").unwrap();
        let p = policy();
        let got = with_bin(&bin, || ytdlp(&url, &p)).await.unwrap();
        assert_eq!((&got.bytes[..], got.via), (&b"RIFFaudio"[..], "yt-dlp"));
        let small = ImportPolicy { max_bytes: 4, ..policy() };
        assert!(matches!(with_bin(&bin, || ytdlp(&url, &small)).await, Err(ImportError::TooLarge { .. })));
        let other = Url::parse("https://www.youtube.com/other").unwrap();
        let err = with_bin(&bin, || ytdlp(&other, &p)).await.err().unwrap();
        assert!(err.to_string().contains("bad args"), "{err}");
        let missing = with_bin(&dir.path().join("nope"), || ytdlp(&url, &p)).await.err().unwrap();
        assert!(missing.to_string().contains("install yt-dlp"), "{missing}");
    }

    async fn with_bin<F, Fut>(bin: &std::path::Path, f: F) -> Result<Fetched, ImportError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Fetched, ImportError>>,
    {
        YTDLP_OVERRIDE.with(|cell| *cell.borrow_mut() = Some(bin.display().to_string()));
        let r = f().await;
        YTDLP_OVERRIDE.with(|cell| *cell.borrow_mut() = None);
        r
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        assert!(matches!(parse("ftp://x/y.mp3"), Err(ImportError::InvalidUrl(_))));
        assert!(matches!(parse("not a url"), Err(ImportError::InvalidUrl(_))));
        assert!(matches!(parse("http://user:pw@host/x"), Err(ImportError::InvalidUrl(_))));
        assert!(parse("https://example.com/a.mp3").is_ok());
        assert!(is_page_host("www.youtube.com") && is_page_host("youtu.be") && !is_page_host("notyoutube.com"));
    }
}
