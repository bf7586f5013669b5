//! The logged-in user, as an extractor: a handler that takes a [`User`] answers 401 without
//! a live session, and `Option<User>` lets a handler choose (the console page redirects).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use axum::http::{header, HeaderMap};

use super::{ApiError, AppState};
use crate::auth::{token_sha256, Role};

/// The cookie that carries the session token.
pub const COOKIE: &str = "ioc_session";

/// Who is calling.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The session's stored key (for logout).
    pub(crate) token_sha256: String,
}

async fn lookup(parts: &Parts, st: &AppState) -> Result<Option<User>, ApiError> {
    let Some(token) = token_of(&parts.headers) else {
        return Ok(None);
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let sha = token_sha256(&token);
    let now = st.now();
    let key = sha.clone();
    let row = st.read(move |s| s.session(&key, now)).await?;
    Ok(row.and_then(|r| {
        Role::parse(&r.role).map(|role| User {
            name: r.username,
            role,
            token_sha256: sha,
        })
    }))
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        lookup(parts, st).await?.ok_or(ApiError::Unauthorized)
    }
}

impl OptionalFromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        lookup(parts, st).await
    }
}

/// The session cookie's or bearer token's value in `headers`.
pub(super) fn token_of(headers: &HeaderMap) -> Option<String> {
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
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
