//! API-key authentication.
//!
//! Keys are compared as SHA-256 digests with `subtle`'s constant-time equality, against every
//! configured key without early exit, so neither the key's content nor its length nor which key
//! matched leaks through timing.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::ApiError;
use crate::state::AppState;

pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

/// Who is calling, attached to the request for the rate limiter and logs. Never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A configured key: its position in configuration order, and a short digest prefix that
    /// names it stably across replicas (rate-limit buckets, logs) without revealing it.
    Key { index: usize, id: String },
    /// The server is open (no keys configured).
    Anonymous,
}

impl ApiKeys {
    pub fn new(keys: &[Secret]) -> Self {
        Self { digests: keys.iter().map(|k| digest(k.expose())).collect() }
    }

    /// First 8 bytes of the key's SHA-256, hex: safe to log, stable across replicas.
    pub fn id(&self, index: usize) -> String {
        self.digests.get(index).map(|d| d[..8].iter().map(|b| format!("{b:02x}")).collect()).unwrap_or_default()
    }

    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// The index of the matching key, checked in constant time over all keys.
    pub fn check(&self, presented: &str) -> Option<usize> {
        let candidate = digest(presented);
        let mut found: Option<usize> = None;
        for (i, d) in self.digests.iter().enumerate() {
            let hit: bool = d.ct_eq(&candidate).into();
            if hit && found.is_none() {
                found = Some(i);
            }
        }
        found
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The key from `Authorization: Bearer`, `X-API-Key`, or `?api_key=` (browsers cannot set
/// headers on a WebSocket).
pub fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim().to_string());
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    request.uri().query().and_then(|q| {
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "api_key").then(|| percent_decode(v))
        })
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.api_keys;
    let caller = if keys.is_open() {
        Caller::Anonymous
    } else {
        let Some(presented) = presented_key(&request) else {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "an API key is required: send `Authorization: Bearer <key>`, `X-API-Key: <key>` or `?api_key=<key>`",
            ));
        };
        match keys.check(&presented) {
            Some(index) => Caller::Key { index, id: keys.id(index) },
            None => {
                return Err(ApiError::unauthorized("invalid_api_key", "the API key is not valid"));
            }
        }
    };
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matches_any_configured_key() {
        let keys = ApiKeys::new(&[Secret::new("alpha"), Secret::new("beta")]);
        assert_eq!(keys.check("beta"), Some(1));
        assert_eq!(keys.check("alpha"), Some(0));
        assert_eq!(keys.check("alph"), None);
        assert_eq!(keys.check(""), None);
        assert!(ApiKeys::new(&[]).is_open());
    }

    #[test]
    fn extracts_from_each_form() {
        let r = |b: axum::http::request::Builder| b.body(axum::body::Body::empty()).unwrap();
        assert_eq!(presented_key(&r(Request::builder().header("authorization", "Bearer k1"))).as_deref(), Some("k1"));
        assert_eq!(presented_key(&r(Request::builder().header("x-api-key", "k2"))).as_deref(), Some("k2"));
        assert_eq!(presented_key(&r(Request::builder().uri("/ws?x=1&api_key=a%2Bb%3D"))).as_deref(), Some("a+b="));
        assert_eq!(presented_key(&r(Request::builder().header("authorization", "Basic zzz"))), None);
    }
}
