//! Incidents: the kinds, the list, one incident with its events and trail, and the
//! operators' actions on it.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{need, ApiError, AppState, Routes, User};
use crate::auth::Role;
use crate::incident::Action;
use crate::store::{ActionError, IncidentFilter};

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/kinds", get(kinds))
        .api("/api/incidents", get(list_incidents))
        .api("/api/incidents/{id}", get(one_incident))
        .api("/api/incidents/{id}/{action}", post(act))
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
