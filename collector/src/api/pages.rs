//! The pages and scripts of the console and the login, and the API's own description.

use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{Routes, User};

const LOGIN_HTML: &str = include_str!("../../web/login.html");
const LOGIN_JS: &str = include_str!("../../web/login.js");
const CONSOLE_HTML: &str = include_str!("../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../web/console.js");
/// The OpenAPI document of every `/api` route (a test holds it to the router).
pub(super) const OPENAPI: &str = include_str!("../../web/openapi.json");

pub(super) fn routes(r: Routes) -> Routes {
    r.page("/", get(console_page))
        .page("/login", get(|| async { Html(LOGIN_HTML) }))
        .page("/healthz", get(|| async { "ok\n" }))
        .page("/assets/console.js", get(console_js))
        .page("/assets/login.js", get(login_js))
        .api("/api/openapi.json", get(openapi))
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
