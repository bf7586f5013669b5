//! Cameras seen from the center: previews asked of the agent, and the analytics (zones,
//! lines, rules) kept here, versioned, and pushed to the site.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{need, ApiError, AppState, Routes, User};
use crate::auth::Role;

pub(super) fn routes(r: Routes) -> Routes {
    r.api(
        "/api/cameras/{agent}/{camera}/preview",
        get(preview_meta).post(ask_preview),
    )
    .api(
        "/api/cameras/{agent}/{camera}/preview.jpg",
        get(preview_jpeg),
    )
    .api(
        "/api/cameras/{agent}/{camera}/analytics",
        get(get_analytics).put(put_analytics),
    )
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
