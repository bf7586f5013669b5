//! The HTTP API over a real store (SQLite, and again PostgreSQL) and a real HTTP server (on a free loopback port),
//! with a controllable clock: login, roles on every endpoint, sessions and their expiry,
//! incident actions and the live stream, escalation by the periodic task, reports.
//! Ingest is off here (`Parts::NoIngest`); `ingest_mosquitto.rs` covers MQTT to console.

use std::sync::Arc;
use std::time::Duration;

use ioc_collector::auth::hash_password;
use ioc_collector::clock::{Clock, ManualClock};
use ioc_collector::service::{Collector, Parts};
use ioc_collector::{Config, Ingested, Message};
use ioc_protocol::parse_event;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

mod common;

use common::{next_incident, sse, TestDb};

const PASSWORD: &str = "a long test password";
const METRICS_TOKEN: &str = "prometheus-scrape-token-0123456789abcdef";

struct Setup {
    collector: Collector,
    clock: Arc<ManualClock>,
    base: String,
    http: Client,
    _dir: tempfile::TempDir,
    db: TestDb,
}

fn config(dir: &std::path::Path, db: &TestDb) -> Config {
    let text = format!(
        r#"
        [mqtt]
        host = "127.0.0.1"
        client_id = "api-test"
{store}
        [http]
        listen = "127.0.0.1:0"
        metrics_token = "{metrics}"
        [incidents]
        check_every_sec = 1
        "#,
        store = db.store_toml(dir),
        metrics = METRICS_TOKEN,
    );
    let c = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    c.validate(std::path::Path::new("test.toml")).unwrap();
    c
}

fn event_json(seq: u64, severity: &str, at_ms: i64) -> String {
    json!({
        "schema": "ioc.event/1", "id": format!("site-a-{seq}"), "seq": seq, "phase": "instant",
        "agent": "site-a", "camera": "gate", "kind": "intrusion", "severity": severity,
        "rule": "r", "zone": format!("zone-{seq}"),
        "observed_at": ioc_collector::incident::ts(at_ms).as_str(),
    })
    .to_string()
}

async fn setup(db: TestDb) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db);
    let now = ioc_collector::store::now_ms();
    {
        let mut s = db.open(dir.path());
        for (u, r) in [("vy", "viewer"), ("op", "operator"), ("ad", "admin")] {
            s.put_user(u, &hash_password(PASSWORD).unwrap(), r, "test", now)
                .unwrap();
        }
        let json = event_json(1, "critical", now);
        s.insert_batch(&[Ingested {
            received_at_ms: now,
            message: Message::Event {
                event: Box::new(parse_event(json.as_bytes()).unwrap()),
                json,
            },
        }])
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(now));
    let collector = Collector::start(&cfg, clock.clone(), Parts::NoIngest)
        .await
        .unwrap();
    let base = format!("http://{}", collector.http_addr);
    Setup {
        collector,
        clock,
        base,
        http: Client::new(),
        _dir: dir,
        db,
    }
}

impl Setup {
    async fn login(&self, user: &str) -> String {
        let r = self
            .http
            .post(format!("{}/api/login", self.base))
            .json(&json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let body: Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.text().await.unwrap())
    }
}

#[tokio::test]
async fn every_endpoint_needs_a_session_and_the_right_role() {
    every_endpoint_needs_a_session_and_the_right_role_on(TestDb::Sqlite).await;
}

#[tokio::test]
async fn every_endpoint_needs_a_session_and_the_right_role_on_postgres() {
    every_endpoint_needs_a_session_and_the_right_role_on(TestDb::postgres("api")).await;
}

async fn every_endpoint_needs_a_session_and_the_right_role_on(db: TestDb) {
    let s = setup(db).await;
    let get = |p: &str| (Method::GET, p.to_owned(), None::<Value>);
    let post = |p: &str, b: Value| (Method::POST, p.to_owned(), Some(b));
    let later = s.clock.now_ms() + 3_600_000;
    // (request, minimum role)
    let table = [
        (get("/api/me"), "viewer"),
        (get("/api/kinds"), "viewer"),
        (get("/api/incidents?state=open,acknowledged"), "viewer"),
        (get("/api/incidents/1"), "viewer"),
        (get("/api/health"), "viewer"),
        (get("/api/stats?days=7"), "viewer"),
        (get("/api/silences"), "viewer"),
        (get("/api/reports/daily?format=csv"), "viewer"),
        (get("/api/reports/daily?format=html"), "viewer"),
        (get("/api/openapi.json"), "viewer"),
        (get("/assets/console.js"), "viewer"),
        (get("/metrics"), "viewer"),
        (
            post("/api/incidents/1/note", json!({"note": "seen"})),
            "operator",
        ),
        (
            post(
                "/api/silences",
                json!({"site": "site-a", "ends_at_ms": later, "reason": "works"}),
            ),
            "operator",
        ),
        (post("/api/silences/1/end", json!({})), "operator"),
        (get("/api/users"), "admin"),
        (get("/api/audit"), "admin"),
        (
            post(
                "/api/users",
                json!({"username": "new.op", "password": PASSWORD, "role": "operator"}),
            ),
            "admin",
        ),
    ];
    let tokens = [
        ("viewer", s.login("vy").await),
        ("operator", s.login("op").await),
        ("admin", s.login("ad").await),
    ];
    let rank = |r: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for ((method, path, body), need) in &table {
        let (st, _) = s.call(None, method.clone(), path, body.clone()).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a session"
        );
        let (st, _) = s
            .call(Some(&"0".repeat(64)), method.clone(), path, body.clone())
            .await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a made-up token"
        );
        for (role, token) in &tokens {
            let (st, text) = s
                .call(Some(token), method.clone(), path, body.clone())
                .await;
            if rank(role) >= rank(need) {
                assert!(st.is_success(), "{method} {path} as {role}: {st} {text}");
            } else {
                assert_eq!(
                    st,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: {text}"
                );
            }
        }
    }
    // Prometheus's fixed token opens /metrics and nothing else.
    let (st, text) = s
        .call(Some(METRICS_TOKEN), Method::GET, "/metrics", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    // What operators face now: the setup's one open critical intrusion.
    assert!(
        text.contains("ioc_collector_incidents{kind=\"intrusion\",state=\"open\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("ioc_collector_broker_connected"),
        "no ingest here"
    );
    let (st, _) = s
        .call(Some(METRICS_TOKEN), Method::GET, "/api/incidents", None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The console page sends strangers to the login page, which is public.
    let no_redirect = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
    let r = no_redirect
        .get(format!("{}/login", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // With the cookie, the console itself.
    let r = no_redirect
        .get(format!("{}/", s.base))
        .header("cookie", format!("ioc_session={}", tokens[0].1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("console.js"));
    // Mutations were audited under the user's name.
    let (_, audit) = s
        .call(Some(&tokens[2].1), Method::GET, "/api/audit", None)
        .await;
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let actions: Vec<(String, String)> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap().into(),
                a["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("op".into(), "silence".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ad".into(), "user".into())),
        "{actions:?}"
    );
    s.collector.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn login_sessions_expire_and_logout_ends_them() {
    login_sessions_expire_and_logout_ends_them_on(TestDb::Sqlite).await;
}

#[tokio::test]
async fn login_sessions_expire_and_logout_ends_them_on_postgres() {
    login_sessions_expire_and_logout_ends_them_on(TestDb::postgres("api")).await;
}

async fn login_sessions_expire_and_logout_ends_them_on(db: TestDb) {
    let s = setup(db).await;
    let (st, _) = s
        .call(
            None,
            Method::POST,
            "/api/login",
            Some(json!({"username": "op", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .call(
            None,
            Method::POST,
            "/api/login",
            Some(json!({"username": "nobody", "password": PASSWORD})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let token = s.login("op").await;
    let (st, me) = s.call(Some(&token), Method::GET, "/api/me", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(me.contains("\"operator\""));
    // 12 h sessions by default.
    s.clock.advance(11 * 3_600_000);
    assert_eq!(
        s.call(Some(&token), Method::GET, "/api/me", None).await.0,
        StatusCode::OK
    );
    s.clock.advance(2 * 3_600_000);
    assert_eq!(
        s.call(Some(&token), Method::GET, "/api/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let token = s.login("op").await;
    // Open live streams end with their session: by logout, and by expiry.
    let mut live = sse(&s.base, &token).await;
    let expiring = s.login("vy").await;
    let mut live_expiring = sse(&s.base, &expiring).await;
    assert_eq!(live.recv().await.unwrap().0, "hello");
    assert_eq!(live_expiring.recv().await.unwrap().0, "hello");
    let (st, _) = s
        .call(Some(&token), Method::POST, "/api/logout", Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.call(Some(&token), Method::GET, "/api/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Within two checks the stream ends (changes may still arrive before it does).
    let limit = ioc_collector::api::STREAM_SESSION_CHECK * 2;
    let ends = |mut rx: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>| async move {
        tokio::time::timeout(limit, async move { while rx.recv().await.is_some() {} })
            .await
            .is_ok()
    };
    assert!(ends(live).await, "stream still open after logout");
    // Meanwhile the other session's stream went through the same checks and is still open.
    let still_open = loop {
        match live_expiring.try_recv() {
            Ok(_) => continue,
            Err(e) => break e == tokio::sync::mpsc::error::TryRecvError::Empty,
        }
    };
    assert!(still_open, "a live session keeps its stream");
    s.clock.advance(13 * 3_600_000);
    assert!(ends(live_expiring).await, "stream still open after expiry");
    // A cross-site form post (not JSON) cannot act.
    let token = s.login("op").await;
    let r = s
        .http
        .post(format!("{}/api/incidents/1/acknowledge", s.base))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    s.collector.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn actions_stream_live_and_overdue_incidents_escalate() {
    actions_stream_live_and_overdue_incidents_escalate_on(TestDb::Sqlite).await;
}

#[tokio::test]
async fn actions_stream_live_and_overdue_incidents_escalate_on_postgres() {
    actions_stream_live_and_overdue_incidents_escalate_on(TestDb::postgres("api")).await;
}

async fn actions_stream_live_and_overdue_incidents_escalate_on(db: TestDb) {
    let s = setup(db).await;
    let op = s.login("op").await;
    let mut live = sse(&s.base, &op).await;
    // Nobody acknowledged the critical incident: 5 minutes later the periodic check
    // (every second here) escalates it and the stream says so.
    s.clock.advance(5 * 60_000 + 1);
    let c = next_incident(&mut live).await;
    assert_eq!(c["change"], "escalated");
    assert_eq!(c["incident"]["overdue"], true);
    let (st, body) = s
        .call(
            Some(&op),
            Method::POST,
            "/api/incidents/1/acknowledge",
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let c = next_incident(&mut live).await;
    assert_eq!(c["change"], "changed");
    assert_eq!(c["incident"]["state"], "acknowledged");
    assert_eq!(c["incident"]["overdue"], false);
    // Acknowledged twice: a conflict, with a reason.
    let (st, body) = s
        .call(
            Some(&op),
            Method::POST,
            "/api/incidents/1/acknowledge",
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(body.contains("acknowledged"), "{body}");
    let (st, _) = s
        .call(
            Some(&op),
            Method::POST,
            "/api/incidents/1/resolve",
            Some(json!({"note": "guard checked the gate"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        next_incident(&mut live).await["incident"]["state"],
        "resolved"
    );
    let (_, body) = s
        .call(Some(&op), Method::GET, "/api/incidents/1", None)
        .await;
    let d: Value = serde_json::from_str(&body).unwrap();
    let trail: Vec<&str> = d["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(trail, ["opened", "escalated", "acknowledge", "resolve"]);
    assert_eq!(d["audit"][3]["note"], "guard checked the gate");
    assert_eq!(d["events"].as_array().unwrap().len(), 1);
    let (st, _) = s
        .call(
            Some(&op),
            Method::POST,
            "/api/incidents/42/acknowledge",
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(
            Some(&op),
            Method::GET,
            "/api/reports/daily?date=2024-13-01",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    s.collector.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// `openapi.json` and the router agree: the same API paths, and on each path exactly the
/// documented methods are routed (an undocumented one answers 405). A route added without
/// its description, or described but gone, fails here.
#[tokio::test]
async fn the_openapi_document_describes_the_router() {
    let s = setup(TestDb::Sqlite).await;
    let token = s.login("vy").await;
    let (status, doc) = s
        .call(Some(&token), Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let documented: std::collections::BTreeSet<&str> = paths.keys().map(|k| k.as_str()).collect();
    let routed: std::collections::BTreeSet<&str> =
        ioc_collector::api::api_paths().into_iter().collect();
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "routed but not in openapi.json"
    );
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "in openapi.json but not routed"
    );
    for (path, item) in paths {
        // Any value fits a parameter: without a session, the answer comes before parsing.
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "delete", "patch"] {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = s.call(None, m, &concrete, None).await;
            let described = item.get(method).is_some();
            assert_eq!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                described,
                "{method} {path}: answered {status} {body}, described: {described}"
            );
        }
    }
    s.collector.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The database goes away under a running collector: the API answers 503 with
/// `Retry-After` (a client waits and tries again), not 500; when it is back, the same
/// requests succeed without a restart of the collector.
#[tokio::test]
async fn a_database_outage_answers_503_with_retry_after() {
    let mut s = setup(TestDb::postgres_durable("outage")).await;
    let token = s.login("op").await;
    let (status, _) = s
        .call(Some(&token), Method::GET, "/api/incidents", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let TestDb::Postgres { server, .. } = &mut s.db else {
        unreachable!()
    };
    server.stop();
    for (method, path, body) in [
        (Method::GET, "/api/incidents", None),
        (Method::GET, "/api/health", None),
        (
            Method::POST,
            "/api/incidents/1/note",
            Some(json!({"note": "seen"})),
        ),
    ] {
        let mut req = s
            .http
            .request(method.clone(), format!("{}{path}", s.base))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let text = r.text().await.unwrap();
        // What failed stays in the log: no server address or driver message for the client.
        assert!(!text.contains("127.0.0.1"), "{text}");
    }
    let TestDb::Postgres { server, .. } = &mut s.db else {
        unreachable!()
    };
    server.start_again().unwrap();
    // Back: the first read and the first write succeed, without a restart of the collector
    // (the store finds its connections dead and opens new ones before anything is sent).
    let (status, body) = s
        .call(Some(&token), Method::GET, "/api/incidents", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .call(
            Some(&token),
            Method::POST,
            "/api/incidents/1/note",
            Some(json!({"note": "back"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.collector.shutdown(Duration::from_secs(5)).await.unwrap();
}
