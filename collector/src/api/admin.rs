//! What admins alone see and change: the audit trail and the users.

use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{need, ApiError, AppState, Routes, User};
use crate::auth::{self, Role};

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/audit", get(audit))
        .api("/api/users", get(list_users).post(put_user))
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
