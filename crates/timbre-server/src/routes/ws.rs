//! `WS /v1/ws/ping`: an echo session that exercises what every streaming capability shares —
//! auth by query key, the session cap, idle timeout and the 1001 close on shutdown.
//! `timbre verify-deploy` uses it to prove WebSockets pass through the platform's proxy.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;

use crate::error::ApiError;
use crate::sessions::{SessionGuard, next_message};
use crate::state::AppState;

/// Sessions that send nothing for this long are closed (1000) to free their slot.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Echo WebSocket: replies `{"type":"hello"}` then echoes every message.
#[utoipa::path(get, path = "/v1/ws/ping", tag = "streams", security(("api_key" = [])),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 503, description = "MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn ping(State(state): State<AppState>, ws: WebSocketUpgrade) -> Result<Response, ApiError> {
    let guard = state.sessions.acquire()?;
    let shutdown = state.sessions.shutdown_signal();
    Ok(ws.on_upgrade(move |socket| echo(socket, guard, shutdown)))
}

async fn echo(mut socket: WebSocket, _guard: SessionGuard, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let hello = serde_json::json!({"type": "hello", "server": "timbre", "version": env!("CARGO_PKG_VERSION")});
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    while let Some(msg) = next_message(&mut socket, &mut shutdown, IDLE_TIMEOUT).await {
        if socket.send(msg).await.is_err() {
            return;
        }
    }
}
