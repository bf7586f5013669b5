//! Analytics pushed from the center, end to end with real processes: the footage served live by
//! a real RTSP server → `ioc-agent run` (its file has no zones for the camera) ↔ mosquitto (the
//! shipped ACL) ↔ `ioc-collector run`. An admin stores a zone and a rule through
//! `PUT /api/cameras/{site}/{camera}/analytics`; the agent applies it without restarting the
//! camera and says so, and incidents of that rule arrive. A broken version is refused with
//! every problem by key while the old rules keep running. Restarted with the broker down, the
//! agent runs the pushed rules from its disk.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ioc_testkit::center::{stored_events, vtest_camera, Center, COLLECTOR_USER};
use ioc_testkit::http::{request as http, Killed};
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{model_manifest, workspace_binary};

fn json(port: u16, method: &str, path: &str, auth: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http(port, method, path, &[("Authorization", auth)], body);
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Waits until `f` gives `Some`, or fails naming `what`.
fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn start_agent(cfg: &std::path::Path, log: &std::path::Path) -> Killed {
    Killed(
        Command::new(workspace_binary("ioc-agent"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn rules_pushed_from_the_center_run_at_the_site_and_survive_a_restart_without_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let server = vtest_camera();
    let mut broker = Mosquitto::start(
        &[
            User::agent("push-site", "agent-pw"),
            User::collector(COLLECTOR_USER.0, COLLECTOR_USER.1),
        ],
        0,
    )
    .unwrap();
    let center = Center::start(
        dir.path(),
        broker.port,
        &[
            ("boss", "admin", "push test admin"),
            ("op", "operator", "push test operator"),
        ],
    );
    let (db, http_port) = (center.db.clone(), center.http_port);
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            r#"
[agent]
id = "push-site"
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[mqtt]
host = "127.0.0.1"
port = {port}
username = "push-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[clips]
enabled = false
[[cameras]]
id = "vtest"
url = "{url}"
"#,
            model = model_manifest().display(),
            port = broker.port,
            outbox = dir.path().join("outbox.db").display(),
            url = server.url("/vtest"),
        ),
    )
    .unwrap();
    let log1 = dir.path().join("agent-1.log");
    let agent = start_agent(&agent_cfg, &log1);
    let admin = center.login("boss", "push test admin");
    let op = center.login("op", "push test operator");
    let path = "/api/cameras/push-site/vtest/analytics";

    // The agent reports that the camera runs its file's analytics (none).
    let first = until("the agent's analytics state", 120, || {
        let (status, v) = json(http_port, "GET", path, &op, "");
        assert_eq!(status, 200, "{v}");
        (!v["state"].is_null()).then_some(v)
    });
    assert!(first["state"]["running_version"].is_null(), "{first}");
    assert!(first["version"].is_null(), "{first}");

    // Operators may not change rules; admins may.
    let zone = serde_json::json!({
        "zones": [{ "name": "yard", "points": [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]] }],
        "rules": [{ "name": "yard entry", "kind": "intrusion", "zone": "yard", "classes": ["person"] }],
    });
    let body = serde_json::json!({ "analytics": zone, "base_version": 0 }).to_string();
    let (status, _) = json(http_port, "PUT", path, &op, &body);
    assert_eq!(status, 403);
    let (status, v) = json(http_port, "PUT", path, &admin, &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 1);
    // A change made from a stale version is refused (someone else changed it meanwhile).
    let (status, v) = json(http_port, "PUT", path, &admin, &body);
    assert_eq!(status, 409, "{v}");

    // Applied at the site without restarting the camera; incidents of the rule arrive.
    let v = until("version 1 running", 60, || {
        let (_, v) = json(http_port, "GET", path, &op, "");
        (v["state"]["running_version"] == 1).then_some(v)
    });
    assert_eq!(v["pending"], false, "{v}");
    assert_eq!(v["history"][0]["changed_by"], "boss", "{v}");
    until("an incident of the pushed rule", 120, || {
        (stored_events(&db, "yard entry") > 0).then_some(())
    });
    // One streaming session: the camera was not restarted to apply the rules.
    let text = std::fs::read_to_string(&log1).unwrap();
    let sessions = text
        .lines()
        .filter(|l| l.contains("streaming") && l.contains("codec="))
        .count();
    assert_eq!(sessions, 1, "{text}");
    assert!(
        text.contains("applied the analytics pushed from the center"),
        "{text}"
    );

    // What no agent can run (a point off the picture, an unknown rule kind, a missing
    // zone) is refused by the center with every problem by key, with the agent's own checks:
    // nothing is stored or pushed.
    let off = serde_json::json!({
        "zones": [{ "name": "yard", "points": [[0.0, 0.3], [1.2, 0.3], [1.0, 1.0]] }],
        "rules": [{ "name": "yard entry", "kind": "intrusion", "zone": "yard" },
                  { "name": "odd", "kind": "teleport", "zone": "yard" }],
    });
    let body = serde_json::json!({ "analytics": off, "base_version": 1 }).to_string();
    let (status, v) = json(http_port, "PUT", path, &admin, &body);
    assert_eq!(status, 422, "{v}");
    assert!(
        v["problems"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("rules[1]"),
        "{v}"
    );
    let missing = serde_json::json!({
        "zones": [{ "name": "yard", "points": [[0.0, 0.3], [1.2, 0.3], [1.0, 1.0]] }],
        "rules": [{ "name": "yard entry", "kind": "intrusion", "zone": "lawn" }],
    });
    let body = serde_json::json!({ "analytics": missing, "base_version": 1 }).to_string();
    let (status, v) = json(http_port, "PUT", path, &admin, &body);
    assert_eq!(status, 422, "{v}");
    let keys: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"zones[0].points"), "{v}");
    assert!(keys.iter().any(|k| k.starts_with("rules[0]")), "{v}");
    // A camera the agent does not run: refused, however right the analytics.
    let valid = serde_json::json!({ "analytics": zone, "base_version": 0 }).to_string();
    let (status, v) = json(
        http_port,
        "PUT",
        "/api/cameras/push-site/no-such-camera/analytics",
        &admin,
        &valid,
    );
    assert_eq!(status, 404, "{v}");

    // What only the agent can check (its model's classes): stored, pushed, refused there with
    // every problem by key; version 1 keeps running.
    let broken = serde_json::json!({
        "zones": [{ "name": "yard", "points": [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0]] }],
        "rules": [{ "name": "yard entry", "kind": "intrusion", "zone": "yard", "classes": ["motorbike"] }],
    });
    let body = serde_json::json!({ "analytics": broken, "base_version": 1 }).to_string();
    let (status, v) = json(http_port, "PUT", path, &admin, &body);
    assert_eq!(status, 200, "{v}");
    let v = until("version 2 refused", 60, || {
        let (_, v) = json(http_port, "GET", path, &op, "");
        (v["state"]["refused"]["version"] == 2).then_some(v)
    });
    assert_eq!(v["state"]["running_version"], 1, "{v}");
    assert_eq!(v["pending"], true, "{v}");
    let keys: Vec<&str> = v["state"]["refused"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"rules[0].classes[0]"), "{v}");
    let before = stored_events(&db, "yard entry");
    until("more incidents of version 1 after the refusal", 120, || {
        (stored_events(&db, "yard entry") > before).then_some(())
    });

    // Restarted while the broker is down: the kept version runs (the incidents wait in the
    // outbox), and reach the center once the broker is back.
    drop(agent);
    broker.kill();
    let log2 = dir.path().join("agent-2.log");
    let _agent = start_agent(&agent_cfg, &log2);
    until(
        "the restarted agent's incidents of the pushed rule",
        120,
        || {
            let text = std::fs::read_to_string(&log2).unwrap_or_default();
            (text.contains("running the analytics pushed from the center")
                && text.contains("yard entry"))
            .then_some(())
        },
    );
    let before = stored_events(&db, "yard entry");
    broker.restart().unwrap();
    until("the incidents after the broker is back", 120, || {
        (stored_events(&db, "yard entry") > before).then_some(())
    });
}
