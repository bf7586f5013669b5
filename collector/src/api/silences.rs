//! Silences: an operator mutes a camera, a kind or a rule for a while, with a reason.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Json;
use serde_json::json;

use super::{need, ApiError, AppState, Routes, User};
use crate::auth::Role;
use crate::store::SilenceSpec;

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/silences", get(list_silences).post(add_silence))
        .api("/api/silences/{id}/end", post(end_silence))
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
