//! The HTTP API and the operator console (axum), one module per resource.
//!
//! Everything but `/login`, `POST /api/login` and `/healthz` needs a session (cookie
//! `ioc_session`, set by the login) or the same token as `Authorization: Bearer`. Reads need
//! `viewer`, incident actions and silences `operator`, user management `admin`; every mutating
//! call is written to the audit trail with the user's name. Mutating calls take JSON bodies,
//! which a cross-site form cannot send, and the cookie is `SameSite=Strict`.
//!
//! Reads run on a read-only connection on the blocking pool; writes go through the store's
//! single writer thread ([`StoreWriter`]), the same one ingest uses. A store that cannot be
//! reached (PostgreSQL down, SQLite locked) answers `503` with `Retry-After`, not `500`.

mod admin;
mod cameras;
mod incidents;
mod layers;
mod live;
mod login;
mod media;
mod pages;
mod reports;
mod session;
mod silences;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use serde_json::json;

pub use live::STREAM_SESSION_CHECK;
pub use session::User;

use crate::auth::{self, LoginGuard, Refused, Role};
use crate::clock::Clock;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::writer::StoreWriter;

/// How long a client is asked to wait when the store cannot be reached.
const STORE_RETRY_AFTER_S: u64 = 5;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    reader: Mutex<Store>,
    writer: StoreWriter,
    hub: Hub,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<Metrics>>,
    session_ms: i64,
    secure_cookie: bool,
    utc_offset_minutes: i64,
    /// SHA-256 of `http.metrics_token`, if set.
    metrics_token_sha256: Option<String>,
    /// Becomes true at shutdown: live streams end, so the server can stop gracefully.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Bounds password checks and throttles guessers.
    login_guard: LoginGuard,
    /// The broker connection of this collector's ingest (none: ingest not running here).
    broker: Option<tokio::sync::watch::Receiver<crate::ingest::ConnState>>,
    /// Counters of the outgoing webhooks, by name.
    webhooks: Vec<(String, Arc<crate::webhook::WebhookStats>)>,
    /// Camera previews (none: ingest not running in this process).
    previews: Option<crate::preview::Previews>,
    /// Analytics pushes and the agents' states (none: ingest not running here).
    analytics: Option<crate::analytics::Analytics>,
}

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a session lasts.
    pub session: Duration,
    /// Mark the cookie `Secure`.
    pub secure_cookie: bool,
    /// A fixed bearer token accepted by `/metrics` only.
    pub metrics_token: Option<String>,
    /// Local time for charts and reports.
    pub utc_offset_minutes: i64,
    /// The broker connection of this collector's ingest, for the health page (none: ingest
    /// does not run in this process).
    pub broker: Option<tokio::sync::watch::Receiver<crate::ingest::ConnState>>,
    /// Counters of the outgoing webhooks, by name (for `/metrics`).
    pub webhooks: Vec<(String, Arc<crate::webhook::WebhookStats>)>,
    /// Camera previews, from this collector's ingest (none: ingest does not run here).
    pub previews: Option<crate::preview::Previews>,
    /// Analytics pushes, through this collector's ingest (none: ingest does not run here).
    pub analytics: Option<crate::analytics::Analytics>,
}

impl AppState {
    /// State over a read connection `reader` and the store's `writer`.
    pub fn new(
        reader: Store,
        writer: StoreWriter,
        hub: Hub,
        clock: Arc<dyn Clock>,
        metrics: Option<Arc<Metrics>>,
        config: &ApiConfig,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                reader: Mutex::new(reader),
                writer,
                hub,
                clock,
                metrics,
                session_ms: i64::try_from(config.session.as_millis()).unwrap_or(i64::MAX),
                secure_cookie: config.secure_cookie,
                metrics_token_sha256: config.metrics_token.as_deref().map(auth::token_sha256),
                utc_offset_minutes: config.utc_offset_minutes,
                stopping,
                login_guard: LoginGuard::default(),
                broker: config.broker.clone(),
                webhooks: config.webhooks.clone(),
                previews: config.previews.clone(),
                analytics: config.analytics.clone(),
            }),
        }
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Runs `f` on the read connection, off the async runtime.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = me.inner.reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&store)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("read task failed: {e}")))?
        .map_err(ApiError::from)
    }

    /// Runs `f` on the writer thread.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        self.inner
            .writer
            .call(f)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// An API failure, as `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or expired session.
    #[error("log in first")]
    Unauthorized,
    /// The role does not allow it.
    #[error("your role ({0}) does not allow this; it needs {1}")]
    Forbidden(&'static str, &'static str),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed in the current state.
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    BadRequest(String),
    /// Input that is well-formed but wrong: every problem, by key.
    #[error("{0}")]
    Invalid(String, Vec<ioc_base::Problem>),
    /// Too many failed logins from this client or for this user.
    #[error("too many failed attempts: try again in {}s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// Every password check slot is busy.
    #[error("the server is busy checking passwords: try again")]
    Busy,
    /// Something this needs is not running here.
    #[error("{0}")]
    Unavailable(String),
    /// An agent did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The database cannot be reached now (a restart, a network cut, a lock held too long).
    #[error("the incident store is unavailable; try again shortly")]
    StoreUnavailable(String),
    /// Our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::StoreUnavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(..) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::StoreUnavailable(e) => {
                // The cause stays in the log: it names the server, never in the answer.
                tracing::warn!(error = %e, "api request: store unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "api request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let retry_after = match &self {
            ApiError::Throttled(d) => Some(d.as_secs().max(1)),
            ApiError::Busy => Some(1),
            ApiError::StoreUnavailable(_) => Some(STORE_RETRY_AFTER_S),
            _ => None,
        };
        let body = match &self {
            ApiError::Invalid(_, problems) => json!({
                "error": self.to_string(),
                "problems": problems.iter().map(|p| json!({"key": p.key, "message": p.message}))
                    .collect::<Vec<_>>(),
            }),
            _ => json!({ "error": self.to_string() }),
        };
        let mut r = (status, Json(body)).into_response();
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Throttled(d) => ApiError::Throttled(d),
            Refused::Busy => ApiError::Busy,
        }
    }
}

/// The router being built, with the path of every route kept so that a test can hold the
/// OpenAPI document to it (axum cannot list a router's routes).
pub(crate) struct Routes {
    router: Router<AppState>,
    api: Vec<&'static str>,
}

impl Routes {
    /// A route of the API: described in `openapi.json`.
    fn api(mut self, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.api.push(path);
        self.router = self.router.route(path, handler);
        self
    }

    /// A page or script of the console: not part of the API's description.
    fn page(mut self, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self
    }
}

/// Every route, by resource; the paths of the API routes.
fn routes() -> Routes {
    let r = Routes {
        router: Router::new(),
        api: Vec::new(),
    };
    let r = pages::routes(r);
    let r = login::routes(r);
    let r = incidents::routes(r);
    let r = media::routes(r);
    let r = cameras::routes(r);
    let r = live::routes(r);
    let r = silences::routes(r);
    let r = reports::routes(r);
    admin::routes(r)
}

/// The paths of the API's routes (those `openapi.json` describes), in router order.
pub fn api_paths() -> Vec<&'static str> {
    routes().api
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    routes()
        .router
        .layer(axum::middleware::from_fn(layers::same_origin_writes))
        .layer(axum::middleware::map_response(layers::security_headers))
        .with_state(state)
}

fn need(user: &User, role: Role) -> Result<(), ApiError> {
    if user.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(user.role.as_str(), role.as_str()))
    }
}
