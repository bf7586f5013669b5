//! The leaders' daily report, as a page, CSV or JSON.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Deserialize;

use super::{ApiError, AppState, Routes, User};
use crate::report;

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/reports/daily", get(daily_report))
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
