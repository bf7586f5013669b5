//! What every answer carries and every write must pass: security headers, and the
//! same-origin check on state-changing requests.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub(super) async fn security_headers(mut r: Response) -> Response {
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
pub(super) async fn same_origin_writes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
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
