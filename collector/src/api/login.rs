//! Sessions: log in (throttled, see [`crate::auth::LoginGuard`]), log out, who am I.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{session, ApiError, AppState, Routes, User};
use crate::auth::{self, Refused};

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/login", post(login))
        .api("/api/logout", post(logout))
        .api("/api/me", get(me))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_a_real_verification() {
        // An unparsable dummy would answer unknown users faster than known ones.
        let h = argon2::PasswordHash::new(DUMMY_HASH).expect("a valid PHC string");
        assert_eq!(h.algorithm.as_str(), "argon2id");
        assert!(!auth::verify_password("anything", DUMMY_HASH));
    }
}
