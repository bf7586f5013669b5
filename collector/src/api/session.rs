//! The logged-in user, as an extractor: a handler that takes a [`User`] answers 401 without
//! a live session, and `Option<User>` lets a handler choose (the console page redirects).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use super::{token_of, ApiError, AppState};
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
