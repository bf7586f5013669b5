//! The HTTP API and the operator console (axum).
//!
//! Everything but `/login`, `POST /api/login` and `/healthz` needs a session (cookie
//! `ioc_session`, set by the login) or the same token as `Authorization: Bearer`. Reads need
//! `viewer`, incident actions and silences `operator`, user management `admin`; every mutating
//! call is written to the audit trail with the user's name. Mutating calls take JSON bodies,
//! which a cross-site form cannot send, and the cookie is `SameSite=Strict`.
//!
//! Reads run on a read-only connection on the blocking pool; writes go through the store's
//! single writer thread ([`StoreWriter`]), the same one ingest uses.

mod guard;
mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

pub use guard::{LoginGuard, Refused};
pub use session::User;

use crate::auth::{self, Role};
use crate::clock::Clock;
use crate::hub::Hub;
use crate::incident::Action;
use crate::metrics::Metrics;
use crate::report;
use crate::store::{ActionError, IncidentFilter, SilenceSpec, Store, StoreError};
use crate::writer::StoreWriter;

const LOGIN_HTML: &str = include_str!("../../web/login.html");
const LOGIN_JS: &str = include_str!("../../web/login.js");
const CONSOLE_HTML: &str = include_str!("../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../web/console.js");
const OPENAPI: &str = include_str!("../../web/openapi.json");

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
    /// Our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
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
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "api request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let retry_after = match &self {
            ApiError::Throttled(d) => Some(d.as_secs().max(1)),
            ApiError::Busy => Some(1),
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

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(console_page))
        .route("/login", get(|| async { Html(LOGIN_HTML) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/assets/console.js", get(console_js))
        .route("/assets/login.js", get(login_js))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/kinds", get(kinds))
        .route("/api/openapi.json", get(openapi))
        .route("/api/incidents", get(list_incidents))
        .route("/api/incidents/{id}", get(one_incident))
        .route("/api/incidents/{id}/{action}", post(act))
        .route("/api/snapshots/{agent}/{event_id}", get(snapshot))
        .route("/api/clips/{agent}/{event_id}", get(clip))
        .route(
            "/api/cameras/{agent}/{camera}/preview",
            get(preview_meta).post(ask_preview),
        )
        .route(
            "/api/cameras/{agent}/{camera}/preview.jpg",
            get(preview_jpeg),
        )
        .route(
            "/api/cameras/{agent}/{camera}/analytics",
            get(get_analytics).put(put_analytics),
        )
        .route("/api/health", get(health))
        .route("/api/stats", get(stats))
        .route("/api/stream", get(stream))
        .route("/api/silences", get(list_silences).post(add_silence))
        .route("/api/silences/{id}/end", post(end_silence))
        .route("/api/reports/daily", get(daily_report))
        .route("/api/audit", get(audit))
        .route("/api/users", get(list_users).post(put_user))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Scripts and styles from this server only (no inline script anywhere), no framing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Refuses a state-changing request that a browser sent from another site (CSRF), on top of
/// the `SameSite=Strict` cookie and JSON-only bodies: its `Origin` must name this server, and
/// `Sec-Fetch-Site`, where the browser sends it, must not say `cross-site`. Requests without
/// either header (curl, other systems with a bearer token) are not browsers' and pass.
async fn same_origin_writes(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let m = req.method();
    if m == axum::http::Method::GET || m == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    if let Err(why) = check_same_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), why, "cross-site request refused");
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": format!("cross-site request refused: {why}") })),
        )
            .into_response();
    }
    next.run(req).await
}

fn check_same_origin(h: &HeaderMap) -> Result<(), &'static str> {
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    if get(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err("Sec-Fetch-Site is cross-site");
    }
    let Some(origin) = get(header::ORIGIN) else {
        return Ok(());
    };
    // `scheme://host[:port]`; a TLS-terminating proxy changes the scheme, not the host, and
    // one that rewrites `Host` says the original in `X-Forwarded-Host`.
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or("Origin is not a URL")?;
    let ours = [
        get(header::HOST),
        get(header::HeaderName::from_static("x-forwarded-host")),
    ];
    if ours
        .into_iter()
        .flatten()
        .any(|h| origin_host.eq_ignore_ascii_case(h))
    {
        Ok(())
    } else {
        Err("Origin names another site")
    }
}

fn need(user: &User, role: Role) -> Result<(), ApiError> {
    if user.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(user.role.as_str(), role.as_str()))
    }
}

async fn console_page(user: Option<User>) -> Response {
    match user {
        Some(_) => Html(CONSOLE_HTML).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

async fn console_js(_user: User) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CONSOLE_JS,
    )
        .into_response()
}

async fn login_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        LOGIN_JS,
    )
        .into_response()
}

async fn openapi(_user: User) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(st): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Response {
    // Throttled clients are answered before any lookup or hashing (see `guard`).
    let attempt = match st
        .inner
        .login_guard
        .attempt(client.ip(), &body.username)
        .await
    {
        Ok(a) => a,
        Err(r) => {
            if let Some(m) = &st.inner.metrics {
                m.login_refused(r);
            }
            // Counted in metrics; one line per throttled guess would let a flood fill the log.
            match r {
                Refused::Throttled(_) => {
                    tracing::debug!(user = %body.username, client = %client.ip(), "login throttled")
                }
                Refused::Busy => tracing::warn!(
                    user = %body.username,
                    client = %client.ip(),
                    "login refused: every password-check slot is busy"
                ),
            }
            return ApiError::from(r).into_response();
        }
    };
    let name = body.username.clone();
    let row = match st.read(move |s| s.user(&name)).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // Verify even for unknown users, so timing does not tell which names exist.
    let hash = row
        .as_ref()
        .map(|r| r.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(row) = row.filter(|_| ok) else {
        tracing::warn!(user = %body.username, client = %client.ip(), "login refused");
        return ApiError::Unauthorized.into_response();
    };
    attempt.succeeded();
    let (token, sha) = auth::new_token();
    let now = st.now();
    let expires = now.saturating_add(st.inner.session_ms);
    let user = row.username.clone();
    match st
        .write(move |s| s.create_session(&sha, &user, now, expires))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return e.into_response(),
    }
    tracing::info!(user = %row.username, role = %row.role, "login");
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::COOKIE,
        st.inner.session_ms / 1000,
        if st.inner.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "token": token,
            "user": row.username,
            "role": row.role,
            "expires_at": crate::incident::ts(expires),
        })),
    )
        .into_response()
}

/// An argon2 hash of a random password, to spend the same time on unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0a2rFUTnXoS0xK0Gq1mX0LQzTg1C2bq2ZsJ9n5hE4pA";

async fn logout(
    State(st): State<AppState>,
    user: User,
    Json(_): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let sha = user.token_sha256.clone();
    st.write(move |s| s.delete_session(&sha)).await??;
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}

async fn me(State(st): State<AppState>, user: User) -> Json<serde_json::Value> {
    Json(json!({
        "user": user.name,
        "role": user.role,
        "utc_offset_minutes": st.inner.utc_offset_minutes,
    }))
}

/// The incident kinds with their names and what a rule of each needs (the console builds its
/// labels, filters and rule form from it).
async fn kinds(_user: User) -> Json<Vec<crate::kinds::Kind>> {
    Json(crate::kinds::catalogue())
}

async fn list_incidents(
    State(st): State<AppState>,
    _user: User,
    Query(f): Query<IncidentFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = f.limit.unwrap_or(50).clamp(1, 500) as usize;
    let list = st.read(move |s| s.incidents(&f)).await?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|i| i.id))
        .flatten();
    Ok(Json(json!({ "incidents": list, "next_before_id": next })))
}

async fn one_incident(
    State(st): State<AppState>,
    _user: User,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (incident, events, audit) = st
        .read(move |s| {
            Ok((
                s.incident(id)?,
                s.incident_events(id)?,
                s.audit_trail(Some(id))?,
            ))
        })
        .await?;
    let incident = incident.ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    Ok(Json(
        json!({ "incident": incident, "events": events, "audit": audit }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
}

async fn act(
    State(st): State<AppState>,
    user: User,
    Path((id, action)): Path<(i64, String)>,
    Json(body): Json<ActBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Operator)?;
    let action = match action.as_str() {
        "acknowledge" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        "dismiss" => Action::Dismiss,
        "reopen" => Action::Reopen,
        "assign" => Action::Assign,
        "note" => Action::Note,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action {other:?}: acknowledge, resolve, dismiss, reopen, assign, note"
            )))
        }
    };
    let arg = if action == Action::Assign {
        body.assignee
    } else {
        body.note
    };
    let now = st.now();
    let actor = user.name.clone();
    let change = st
        .write(move |s| s.act(id, action, &actor, arg.as_deref(), now))
        .await?
        .map_err(|e| match e {
            ActionError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ActionError::Conflict(_) => ApiError::Conflict(e.to_string()),
            ActionError::Invalid(m) => ApiError::BadRequest(m.to_owned()),
            ActionError::Store(e) => ApiError::from(e),
        })?;
    tracing::info!(user = %user.name, incident = id, action = action.as_str(), "incident action");
    st.inner.hub.incidents(std::slice::from_ref(&change));
    Ok(Json(json!({ "incident": change.incident })))
}

async fn snapshot(
    State(st): State<AppState>,
    _user: User,
    Path((agent, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let snap = st
        .read(move |s| s.snapshot(&agent, &event_id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no snapshot for that event".into()))?;
    let bytes = tokio::fs::read(&snap.path)
        .await
        .map_err(|e| ApiError::NotFound(format!("snapshot file gone ({e}); retention?")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (
                header::CACHE_CONTROL,
                "private, max-age=86400, immutable".to_owned(),
            ),
            (header::ETAG, format!("\"{}\"", snap.sha256)),
        ],
        bytes,
    )
        .into_response())
}

/// An event's MP4 clip. Browsers fetch video in ranges (to start playing, to seek): a
/// `Range: bytes=a-b` request gets `206 Partial Content` with that slice. The file is
/// streamed from disk in small chunks, never read whole: many small range requests on a
/// large clip cost file reads, not memory.
async fn clip(
    State(st): State<AppState>,
    _user: User,
    Path((agent, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let clip = st
        .read(move |s| s.clip(&agent, &event_id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no clip for that event (yet)".into()))?;
    let gone = |e: std::io::Error| ApiError::NotFound(format!("clip file gone ({e}); retention?"));
    let mut file = tokio::fs::File::open(&clip.path).await.map_err(gone)?;
    let len = file.metadata().await.map_err(gone)?.len();
    let common = [
        (header::CONTENT_TYPE, "video/mp4".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (
            header::CACHE_CONTROL,
            "private, max-age=86400, immutable".to_owned(),
        ),
        (header::ETAG, format!("\"{}\"", clip.sha256)),
    ];
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    match range {
        None => Ok((
            common,
            [(header::CONTENT_LENGTH, len.to_string())],
            file_body(file, len),
        )
            .into_response()),
        Some(Some((start, end))) => {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(gone)?;
            let n = end - start + 1;
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [
                    (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
                    (header::CONTENT_LENGTH, n.to_string()),
                ],
                file_body(file, n),
            )
                .into_response())
        }
        Some(None) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response()),
    }
}

/// The next `len` bytes of `file` as a response body, read 64 KiB at a time as the client
/// takes them.
fn file_body(file: tokio::fs::File, len: u64) -> axum::body::Body {
    use tokio::io::AsyncReadExt;
    const CHUNK: u64 = 64 * 1024;
    let chunks = futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(CHUNK) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "clip file shrank while being served",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    axum::body::Body::from_stream(chunks)
}

/// One range of `Range: bytes=…` over `len` bytes, inclusive (`a-b`, `a-`, `-n`); `None`
/// when it cannot be served. Several ranges get the first one only (allowed by RFC 9110).
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return None;
    }
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

/// How long a preview request waits for the agent's answer.
const PREVIEW_WAIT: Duration = Duration::from_secs(6);

fn previews(st: &AppState) -> Result<&crate::preview::Previews, ApiError> {
    st.inner.previews.as_ref().ok_or_else(|| {
        ApiError::Unavailable("previews come through ingest, which does not run here".into())
    })
}

fn camera_ids(agent: &str, camera: &str) -> Result<(), ApiError> {
    ioc_protocol::validate_agent_id(agent)
        .and_then(|()| ioc_protocol::validate_camera_id(camera))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// What the console needs to draw a preview: the header and where the picture is.
fn preview_json(agent: &str, p: &crate::preview::StoredPreview, now_ms: i64) -> serde_json::Value {
    json!({
        "agent": agent,
        "camera": p.header.camera,
        "taken_at": p.header.taken_at.as_str(),
        "age_s": ((now_ms - p.header.taken_at.unix_millis()).max(0) as f64) / 1000.0,
        "width": p.header.width,
        "height": p.header.height,
        "objects": p.header.objects,
        "bytes": p.jpeg.len(),
        // The picture, by its capture time, so a browser never shows a cached older one.
        "url": format!(
            "/api/cameras/{agent}/{}/preview.jpg?t={}",
            p.header.camera,
            p.header.taken_at.unix_millis()
        ),
    })
}

/// `POST`: asks the agent for a current picture (operators and admins) and answers with it.
async fn ask_preview(
    State(st): State<AppState>,
    user: User,
    Path((agent, camera)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Operator)?;
    camera_ids(&agent, &camera)?;
    let previews = previews(&st)?;
    let request_id = format!("{:016x}", rand::random::<u64>());
    match previews
        .request(&agent, &camera, &request_id, PREVIEW_WAIT)
        .await
    {
        Ok(Some(p)) => Ok(Json(preview_json(&agent, &p, st.now()))),
        Ok(None) => Err(ApiError::Timeout(format!(
            "no picture from {agent}/{camera} within {}s: is the agent online and running \
             that camera, and may it answer (preview.enabled, the broker ACL)?",
            PREVIEW_WAIT.as_secs()
        ))),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// `GET`: the latest preview this collector has of the camera.
async fn preview_meta(
    State(st): State<AppState>,
    _user: User,
    Path((agent, camera)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    camera_ids(&agent, &camera)?;
    let p = previews(&st)?
        .get(&agent, &camera)
        .ok_or_else(|| ApiError::NotFound("no preview of that camera yet: ask for one".into()))?;
    Ok(Json(preview_json(&agent, &p, st.now())))
}

/// `GET`: the latest preview's JPEG.
async fn preview_jpeg(
    State(st): State<AppState>,
    _user: User,
    Path((agent, camera)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    camera_ids(&agent, &camera)?;
    let p = previews(&st)?
        .get(&agent, &camera)
        .ok_or_else(|| ApiError::NotFound("no preview of that camera yet: ask for one".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "private, no-cache".to_owned()),
        ],
        p.jpeg.as_ref().clone(),
    )
        .into_response())
}

/// `GET`: a camera's analytics as the center keeps them (newest version and history) and
/// what its agent reports running.
async fn get_analytics(
    State(st): State<AppState>,
    _user: User,
    Path((agent, camera)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    camera_ids(&agent, &camera)?;
    let (a, c) = (agent.clone(), camera.clone());
    let versions = st.read(move |s| s.analytics_versions(&a, &c, 20)).await?;
    let state = st
        .inner
        .analytics
        .as_ref()
        .and_then(|x| x.state(&agent, &camera));
    let latest = versions.first();
    let analytics = match latest {
        Some(v) => Some(
            serde_json::from_str::<serde_json::Value>(&v.config)
                .map_err(|e| ApiError::Internal(format!("stored analytics: {e}")))?,
        ),
        None => None,
    };
    let running = state.as_ref().and_then(|s| s.running_version);
    Ok(Json(json!({
        "agent": agent,
        "camera": camera,
        "version": latest.map(|v| v.version),
        "analytics": analytics,
        "changed_by": latest.map(|v| v.changed_by.clone()),
        "changed_at_ms": latest.map(|v| v.changed_at_ms),
        "history": versions.iter().map(|v| json!({
            "version": v.version, "changed_by": v.changed_by, "changed_at_ms": v.changed_at_ms,
        })).collect::<Vec<_>>(),
        "state": state,
        // Stored here but not (yet) running there: the agent is away, or refused it.
        "pending": latest.is_some_and(|v| running.is_none_or(|r| (r as i64) < v.version)),
        // The site runs a version this center does not have (its database was restored or
        // replaced): the next save is numbered above it.
        "site_ahead": running.is_some_and(|r| latest.is_none_or(|v| (r as i64) > v.version)),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutAnalyticsBody {
    /// The camera's analytics section (zones, lines, rules, ...), as in `agent.toml`.
    analytics: serde_json::Value,
    /// The version this change was made from (0: none yet); a newer one stored meanwhile
    /// is a conflict.
    #[serde(default)]
    base_version: Option<i64>,
}

/// `PUT` (admin): stores the next version and pushes it to the agent (retained).
async fn put_analytics(
    State(st): State<AppState>,
    user: User,
    Path((agent, camera)): Path<(String, String)>,
    body: Result<Json<PutAnalyticsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Admin)?;
    camera_ids(&agent, &camera)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !body.analytics.is_object() {
        return Err(ApiError::BadRequest(
            "analytics: must be an object (zones, lines, rules, ...)".into(),
        ));
    }
    let text = body.analytics.to_string();
    if text.len() > ioc_protocol::analytics::MAX_ANALYTICS_BYTES {
        return Err(ApiError::BadRequest(format!(
            "analytics: {} bytes of JSON is more than {}",
            text.len(),
            ioc_protocol::analytics::MAX_ANALYTICS_BYTES
        )));
    }
    // The agent's own structural checks (the tracking crate's), so nothing is stored or
    // pushed that no agent can run; the classes are the agent's to check (its model).
    if let Err(e) = ioc_tracking::AnalyticsConfig::from_json(&body.analytics) {
        return Err(ApiError::Invalid(
            format!(
                "the analytics have {} problem(s); nothing was stored",
                e.0.len()
            ),
            e.0,
        ));
    }
    let pusher = st.inner.analytics.clone().ok_or_else(|| {
        ApiError::Unavailable("pushes go through ingest, which does not run here".into())
    })?;
    let a = agent.clone();
    match st.read(move |s| s.agent_cameras(&a)).await? {
        Some(cams) if !cams.contains(&camera) => {
            return Err(ApiError::NotFound(format!(
                "agent {agent:?} does not run a camera {camera:?} (it runs {})",
                cams.join(", ")
            )))
        }
        None => {
            return Err(ApiError::NotFound(format!(
                "no agent {agent:?} has reported to this center yet"
            )))
        }
        Some(_) => {}
    }
    let site_has = pusher.state(&agent, &camera).map_or(0, |s| {
        let running = s.running_version.unwrap_or(0);
        let refused = s.refused.as_ref().map_or(0, |r| r.version);
        i64::try_from(running.max(refused)).unwrap_or(i64::MAX - 1)
    });
    let (a, c, actor, now) = (agent.clone(), camera.clone(), user.name.clone(), st.now());
    let base = crate::store::VersionBase {
        expected: body.base_version,
        site_has,
    };
    let stored = st
        .write(move |s| s.put_analytics(&a, &c, &text, base, &actor, now))
        .await??;
    let version = match stored {
        crate::store::PutAnalytics::Stored(v) => v,
        crate::store::PutAnalytics::Conflict(latest) => {
            return Err(ApiError::Conflict(format!(
                "changed meanwhile: version {latest} is the newest; reload and edit that"
            )))
        }
    };
    pusher
        .push(&agent, &camera, version as u64, body.analytics, &user.name)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(json!({ "version": version })))
}

async fn health(
    State(st): State<AppState>,
    _user: User,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = st.now();
    let health = st.read(move |s| s.health(now)).await?;
    let mut v = serde_json::to_value(health).map_err(|e| ApiError::Internal(e.to_string()))?;
    // What this collector sees of the broker: cut off, it cannot know anything is fine.
    use crate::ingest::ConnState;
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

async fn list_silences(
    State(st): State<AppState>,
    _user: User,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = st.now();
    let list = st.read(move |s| s.silences(now)).await?;
    Ok(Json(json!({ "silences": list })))
}

async fn add_silence(
    State(st): State<AppState>,
    user: User,
    Json(spec): Json<SilenceSpec>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Operator)?;
    let now = st.now();
    if spec.ends_at_ms <= now {
        return Err(ApiError::BadRequest("ends_at_ms is in the past".into()));
    }
    if spec.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("a silence needs a reason".into()));
    }
    let actor = user.name.clone();
    let silence = st
        .write(move |s| s.add_silence(&spec, &actor, now))
        .await??;
    Ok(Json(json!({ "silence": silence })))
}

async fn end_silence(
    State(st): State<AppState>,
    user: User,
    Path(id): Path<i64>,
    Json(_): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Operator)?;
    let now = st.now();
    let actor = user.name.clone();
    if st.write(move |s| s.end_silence(id, &actor, now)).await?? {
        Ok(Json(json!({ "ok": true })))
    } else {
        Err(ApiError::NotFound(format!("no silence {id}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// `YYYY-MM-DD` (default: yesterday).
    #[serde(default)]
    date: Option<String>,
    /// `html` (default), `csv` or `json`.
    #[serde(default)]
    format: Option<String>,
}

async fn daily_report(
    State(st): State<AppState>,
    _user: User,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let now = st.now();
    let off = st.inner.utc_offset_minutes;
    let day = match &q.date {
        Some(d) => crate::store::parse_day(d)
            .ok_or_else(|| ApiError::BadRequest(format!("date {d:?}: expected YYYY-MM-DD")))?,
        None => (now + off * 60_000).div_euclid(86_400_000) - 1,
    };
    let html = q.format.as_deref().unwrap_or("html") == "html";
    let (r, files) = st
        .read(move |s| {
            let r = s.daily_report(day, off, now)?;
            // The pictures only for the page (it must read once saved or e-mailed).
            let files = if html {
                report::picture_files(s, &r)?
            } else {
                Vec::new()
            };
            Ok((r, files))
        })
        .await?;
    Ok(match q.format.as_deref().unwrap_or("html") {
        "html" => {
            let pictures = tokio::task::spawn_blocking(move || report::pictures(files))
                .await
                .unwrap_or_default();
            Html(report::html(&r, &pictures)).into_response()
        }
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"ioc-report-{}.csv\"", r.date),
                ),
            ],
            report::csv(&r),
        )
            .into_response(),
        "json" => Json(r).into_response(),
        other => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?}: html, csv or json"
            )))
        }
    })
}

async fn audit(
    State(st): State<AppState>,
    user: User,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Admin)?;
    let list = st.read(|s| s.audit_trail(None)).await?;
    Ok(Json(json!({ "audit": list })))
}

async fn list_users(
    State(st): State<AppState>,
    user: User,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Admin)?;
    let list = st.read(|s| s.users()).await?;
    let list: Vec<_> = list
        .into_iter()
        .map(|(u, r)| json!({ "user": u, "role": r }))
        .collect();
    Ok(Json(json!({ "users": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    username: String,
    password: String,
    role: Role,
}

async fn put_user(
    State(st): State<AppState>,
    user: User,
    Json(body): Json<UserBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need(&user, Role::Admin)?;
    auth::check_username(&body.username).map_err(|m| ApiError::BadRequest(m.into()))?;
    let password = body.password;
    let _slot = st.inner.login_guard.hashing_slot().await?;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = st.now();
    let (name, role, actor) = (body.username.clone(), body.role, user.name.clone());
    st.write(move |s| s.put_user(&name, &hash, role.as_str(), &actor, now))
        .await??;
    Ok(Json(json!({ "user": body.username, "role": body.role })))
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
        .map(|b| *b.borrow() == crate::ingest::ConnState::Connected);
    text.push_str(&crate::metrics::render_gauges(&live, &health, broker_up));
    text.push_str(&crate::metrics::render_webhooks(&st.inner.webhooks));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// The session cookie's or bearer token's value in `headers`.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == session::COOKIE)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_served_as_browsers_ask() {
        assert_eq!(parse_range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=5-9, 20-29", 100), Some((5, 9)));
        for bad in [
            "bytes=100-",
            "bytes=20-10",
            "bytes=-0",
            "items=0-1",
            "bytes=x-1",
            "bytes=",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-", 0), None);
    }

    #[test]
    fn dummy_hash_costs_a_real_verification() {
        // An unparsable dummy would answer unknown users faster than known ones.
        let h = argon2::PasswordHash::new(DUMMY_HASH).expect("a valid PHC string");
        assert_eq!(h.algorithm.as_str(), "argon2id");
        assert!(!auth::verify_password("anything", DUMMY_HASH));
    }

    #[test]
    fn tokens_come_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ioc_session=abc; b=2"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("xyz"));
        assert_eq!(token_of(&HeaderMap::new()), None);
    }
}
