//! Request ids for `x-request-id`: UUID-shaped (what log tooling and the seeds' clients expect),
//! but made without a `getrandom` system call per request, which `Uuid::new_v4` costs.
//!
//! The ids only correlate log lines; they are not secrets, so a per-thread SplitMix64 stream
//! seeded once from the OS is enough: every thread starts at an unpredictable point of a 2^64
//! period, and an id takes two outputs, so ids repeat only if two streams overlap.

use std::cell::Cell;

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // One OS-random UUID per thread, not per request.
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    hi ^ lo.rotate_left(32)
}

/// SplitMix64 (Steele, Lea and Flood): a counter through a bijective mixer, so a stream never
/// repeats within its period.
fn next_u64(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fresh random (version 4) UUID as `x-request-id` value.
pub fn new_request_id() -> HeaderValue {
    let (hi, lo) = STATE.with(|s| (next_u64(s), next_u64(s)));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(uuid.hyphenated().encode_lower(&mut text).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `MakeRequestId` for tower-http's `SetRequestIdLayer`: only called when the client sent none.
#[derive(Clone, Copy, Default)]
pub struct MakeFastRequestId;

impl MakeRequestId for MakeFastRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_v4_uuids_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let v = new_request_id();
            let text = v.to_str().unwrap();
            let parsed = uuid::Uuid::parse_str(text).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{text}");
            assert_eq!(text.len(), 36);
            assert!(seen.insert(text.to_string()), "repeated id {text}");
        }
    }

    #[test]
    fn threads_get_different_streams() {
        let a = std::thread::spawn(new_request_id).join().unwrap();
        let b = std::thread::spawn(new_request_id).join().unwrap();
        assert_ne!(a, b);
    }
}
