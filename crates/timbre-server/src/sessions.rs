//! The WebSocket session cap (`MAX_CONCURRENT_SESSIONS`) shared by every streaming protocol, and
//! the shutdown signal sessions watch so they can close with 1001 instead of being cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Sessions {
    max: usize,
    active: Arc<AtomicUsize>,
    shutdown: watch::Receiver<bool>,
}

/// Holds one session slot; dropping it frees the slot.
pub struct SessionGuard {
    active: Arc<AtomicUsize>,
}

impl Sessions {
    pub fn new(max: usize, shutdown: watch::Receiver<bool>) -> Self {
        Self { max, active: Arc::new(AtomicUsize::new(0)), shutdown }
    }

    /// A slot, or `None` when all are taken (the caller answers 503 before upgrading).
    pub fn try_acquire(&self) -> Option<SessionGuard> {
        let mut current = self.active.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return None;
            }
            match self.active.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    metrics::gauge!("timbre_ws_sessions").set((current + 1) as f64);
                    return Some(SessionGuard { active: Arc::clone(&self.active) });
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// A slot, or the 503 (with Retry-After) every WebSocket endpoint answers before upgrading.
    pub fn acquire(&self) -> Result<SessionGuard, crate::error::ApiError> {
        self.try_acquire().ok_or_else(|| {
            crate::error::ApiError::overloaded(
                format!("all {} WebSocket sessions are in use (MAX_CONCURRENT_SESSIONS)", self.max),
                Duration::from_secs(5),
            )
        })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Resolves when the server starts shutting down; sessions then close with code 1001.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Resolves once shutdown has begun; never resolves if the sender is gone without shutting down.
pub async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A close frame with a code and a reason.
pub fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// The next text or binary message of a session, or `None` when the session is over: the
/// client closed or vanished, it stayed silent for `idle` (closed here with 1000), or the
/// server is shutting down (closed here with 1001). Every streaming protocol reads through this,
/// so they all end the same way.
pub async fn next_message(
    socket: &mut WebSocket,
    shutdown: &mut watch::Receiver<bool>,
    idle: Duration,
) -> Option<Message> {
    loop {
        tokio::select! {
            () = shutting_down(shutdown) => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                return None;
            }
            next = tokio::time::timeout(idle, socket.recv()) => match next {
                Err(_) => {
                    let _ = socket.send(close(close_code::NORMAL, "idle timeout")).await;
                    return None;
                }
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return None,
                Ok(Some(Ok(m @ (Message::Text(_) | Message::Binary(_))))) => return Some(m),
                Ok(Some(Ok(_))) => {} // ping/pong: answered by the library
            }
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let left = self.active.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        metrics::gauge!("timbre_ws_sessions").set(left as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_enforced_and_released() {
        let (_tx, rx) = watch::channel(false);
        let s = Sessions::new(2, rx);
        let a = s.try_acquire();
        let b = s.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(s.try_acquire().is_none());
        drop(a);
        assert_eq!(s.active(), 1);
        assert!(s.try_acquire().is_some());
    }
}
