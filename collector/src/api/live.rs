//! The state of the system now: health, the charts' counts, the live stream of changes
//! (server-sent events) and Prometheus metrics.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use super::{session::token_of, ApiError, AppState, Routes, User};
use crate::auth;
use crate::ingest::ConnState;

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/health", get(health))
        .api("/api/stats", get(stats))
        .api("/api/stream", get(stream))
        .api("/metrics", get(metrics))
}

async fn health(
    State(st): State<AppState>,
    _user: User,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = st.now();
    let health = st.read(move |s| s.health(now)).await?;
    let mut v = serde_json::to_value(health).map_err(|e| ApiError::Internal(e.to_string()))?;
    // What this collector sees of the broker: cut off, it cannot know anything is fine.
    let broker = match st.inner.broker.as_ref().map(|b| b.borrow().clone()) {
        None => json!({ "state": "not_running" }),
        Some(ConnState::Connected) => json!({ "state": "connected" }),
        Some(ConnState::Connecting) => json!({ "state": "connecting" }),
        Some(ConnState::Failed { kind, message }) => json!({
            "state": "failed",
            "kind": kind.code(),
            "error": message,
        }),
    };
    v["collector"] = json!({ "broker": broker });
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// Days back from today (default 7, at most 366).
    #[serde(default)]
    days: Option<i64>,
}

async fn stats(
    State(st): State<AppState>,
    _user: User,
    Query(q): Query<StatsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let days = q.days.unwrap_or(7).clamp(1, 366);
    let off = st.inner.utc_offset_minutes * 60_000;
    let now = st.now();
    let today = (now + off).div_euclid(86_400_000);
    let from = (today - days + 1) * 86_400_000 - off;
    let to = (today + 1) * 86_400_000 - off;
    let stats = st.read(move |s| s.stats(from, to, off)).await?;
    Ok(Json(json!({ "days": days, "stats": stats })))
}

/// How often an open live stream checks that its session still exists: a logout, an expiry
/// or a password change ends the stream within this time.
pub const STREAM_SESSION_CHECK: Duration = Duration::from_secs(5);

async fn stream(
    State(st): State<AppState>,
    user: User,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = st.inner.hub.subscribe();
    let stopping = st.inner.stopping.clone();
    let mut check = tokio::time::interval(STREAM_SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let token = user.token_sha256;
    let state = (rx, stopping, check, st, token);
    let s = futures::stream::unfold(state, |(mut rx, mut stopping, mut check, st, token)| {
        async move {
            use tokio::sync::broadcast::error::RecvError;
            let received = loop {
                // The select only says what happened: `wait_for`'s guard is not `Send` and
                // must be gone before the session check awaits.
                let check_session = tokio::select! {
                    r = rx.recv() => break r,
                    _ = stopping.wait_for(|s| *s) => return None,
                    _ = check.tick() => true,
                };
                if check_session {
                    let (key, now) = (token.clone(), st.now());
                    // A store error keeps the stream: the next check decides.
                    if let Ok(None) = st.read(move |s| s.session(&key, now)).await {
                        return None;
                    }
                }
            };
            let ev = match received {
                Ok(live) => SseEvent::default().event(live.event).data(&*live.data),
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("resync")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(ev), (rx, stopping, check, st, token)))
        }
    });
    // A first comment makes proxies and browsers open the stream at once.
    let hello = futures::stream::once(async { Ok(SseEvent::default().event("hello").data("{}")) });
    Sse::new(futures::StreamExt::chain(hello, s))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
async fn metrics(
    State(st): State<AppState>,
    user: Option<User>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Compared as hashes: equal-length digests, so the comparison leaks nothing useful.
    let by_token = st
        .inner
        .metrics_token_sha256
        .as_deref()
        .is_some_and(|want| token_of(&headers).is_some_and(|t| auth::token_sha256(&t) == want));
    if user.is_none() && !by_token {
        return Err(ApiError::Unauthorized);
    }
    let mut text = st
        .inner
        .metrics
        .as_ref()
        .map(|m| m.render_prometheus())
        .unwrap_or_default();
    // Gauges of what operators face now, for dashboards and alerts.
    let now = st.now();
    let (live, health) = st
        .read(move |s| Ok((s.live_incident_counts()?, s.health(now)?)))
        .await?;
    let broker_up = st
        .inner
        .broker
        .as_ref()
        .map(|b| *b.borrow() == ConnState::Connected);
    text.push_str(&crate::metrics::render_gauges(&live, &health, broker_up));
    text.push_str(&crate::metrics::render_webhooks(&st.inner.webhooks));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
