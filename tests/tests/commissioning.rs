//! Commissioning a camera from the center, end to end with real processes and a real browser:
//! the footage served live by a real RTSP server → `ioc-agent run` (no zones in its file) ↔
//! mosquitto (the shipped ACL) ↔ `ioc-collector run` ↔ headless Chromium. An admin opens the
//! camera's editor on the health page, sees its current picture with the detector's boxes,
//! draws a zone on it with the mouse, adds a rule and pushes; the agent applies it without
//! restarting the camera and incidents of that rule arrive. A broken version shows its
//! problems by key while the old rules keep running. At phone size the editor fits the
//! screen. Screenshots go to `target/tmp/console-commission-*.png`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ioc_testkit::browser::Browser;
use ioc_testkit::center::{stored_events, vtest_camera, Center, COLLECTOR_USER};
use ioc_testkit::http::Killed;
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{model_manifest, workspace_binary};

const PASSWORD: &str = "commissioning test password";

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_draws_a_zone_on_the_picture_and_the_site_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = vtest_camera();
    let broker = Mosquitto::start(
        &[
            User::agent("yard-site", "agent-pw"),
            User::collector(COLLECTOR_USER.0, COLLECTOR_USER.1),
        ],
        0,
    )
    .unwrap();
    let center = Center::start(dir.path(), broker.port, &[("boss", "admin", PASSWORD)]);
    let db = center.db.clone();
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            r#"
[agent]
id = "yard-site"
name = "Sân trường / School yard"
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[mqtt]
host = "127.0.0.1"
port = {port}
username = "yard-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[clips]
enabled = false
[[cameras]]
id = "vtest"
name = "Cổng / Gate"
url = "{url}"
"#,
            model = model_manifest().display(),
            port = broker.port,
            outbox = dir.path().join("outbox.db").display(),
            url = server.url("/vtest"),
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let _agent = Killed(
        Command::new(workspace_binary("ioc-agent"))
            .args(["run", "--config", agent_cfg.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let site = format!("http://127.0.0.1:{}", center.http_port);
    let screens = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let b = Browser::start(screens).await;
    b.goto(&format!("{site}/login")).await;
    b.js("localStorage.setItem('ioc.lang', 'en'); return 1;")
        .await;
    b.type_into("#username", "boss").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#submit").await;
    b.wait("the console", "location.pathname === '/'").await;

    // The camera's tile on the health page (once the agent has said it streams).
    let tile = "#pictures figure[data-camera=\"yard-site/vtest\"]";
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        b.click("header nav button[data-view=\"health\"]").await;
        let found = b
            .js(&format!(
                "return !!document.querySelector('{}');",
                tile.replace('\'', "\\'")
            ))
            .await;
        if found == serde_json::Value::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the camera never appeared on the health page"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    b.click(&format!("{tile} .pv-edit")).await;
    // The editor: the camera's current picture at a useful size, with the detector's boxes.
    b.wait_up_to(
        "the picture in the editor",
        "(() => { const i = document.querySelector('#ed-pic img'); return i && i.complete && i.naturalWidth >= 640 \
         && document.querySelectorAll('#ed-svg rect.det').length > 0; })()",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        b.text("#ed-state").await.contains("site file"),
        "{}",
        b.text("#ed-state").await
    );
    // A zone over the lower part of the yard, drawn corner by corner with the mouse.
    b.click("#ed-add-zone").await;
    for (x, y) in [(0.02, 0.35), (0.98, 0.35), (0.98, 0.98), (0.02, 0.98)] {
        b.click_at("#ed-svg", x, y).await;
    }
    b.wait(
        "four corners",
        "document.querySelectorAll('#ed-svg circle.corner').length === 4",
    )
    .await;
    let pts = b
        .js("return JSON.parse(document.querySelector('#ed-json').value).zones[0].points;")
        .await;
    let pts: Vec<[f64; 2]> = serde_json::from_value(pts).unwrap();
    for (p, want) in pts
        .iter()
        .zip([[0.02, 0.35], [0.98, 0.35], [0.98, 0.98], [0.02, 0.98]])
    {
        assert!(
            (p[0] - want[0]).abs() < 0.02 && (p[1] - want[1]).abs() < 0.02,
            "corner {p:?}, clicked at {want:?}"
        );
    }
    // A counting line across the path: two clicks; a third adds nothing (a line has two).
    b.click("#ed-add-line").await;
    for (x, y) in [(0.3, 0.6), (0.7, 0.6), (0.5, 0.9)] {
        b.click_at("#ed-svg", x, y).await;
    }
    b.wait(
        "the line with its in-side arrow",
        "document.querySelector('#ed-svg line.in-arrow')",
    )
    .await;
    let line = b
        .js("return JSON.parse(document.querySelector('#ed-json').value).lines[0];")
        .await;
    assert_eq!(line["points"].as_array().unwrap().len(), 2, "{line}");
    assert_eq!(line["in_side"], "left", "{line}");
    b.click("#ed-rules + p button").await; // + Rule: intrusion of people in zone 1
    b.wait(
        "the rule",
        "document.querySelectorAll('#ed-rules .ed-rule').length === 1",
    )
    .await;
    b.screenshot("commission-1-drawn").await;
    b.click("#ed-save").await;
    b.wait_up_to(
        "the site runs version 1",
        "document.querySelector('#ed-result').textContent.includes('runs version 1')",
        Duration::from_secs(120),
    )
    .await;
    until("an incident of the drawn zone", 120, || {
        stored_events(&db, "rule 1") > 0
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let sessions = text
        .lines()
        .filter(|l| l.contains("streaming") && l.contains("codec="))
        .count();
    assert_eq!(sessions, 1, "the camera was not restarted: {text}");

    // What no site can run (a point off the picture): the center refuses it at once with
    // every problem by key, nothing is stored or pushed.
    b.click("#detail details summary").await; // open "Advanced (JSON)"
    b.js("const t = document.querySelector('#ed-json'); \
          const a = JSON.parse(t.value); window.keptPoint = a.zones[0].points[1]; \
          a.zones[0].points[1] = [1.2, 0.35]; t.value = JSON.stringify(a); return 1;")
        .await;
    b.click("#ed-json + p button").await; // Apply JSON
    b.click("#ed-save").await;
    b.wait(
        "the center's refusal with its problems",
        "document.querySelector('#ed-invalid') && document.querySelector('#ed-invalid').textContent.includes('zones[0].points')",
    )
    .await;
    // What only the site can check (its model's classes): pushed, refused there with every
    // problem by key; the site keeps running version 1.
    b.js("const t = document.querySelector('#ed-json'); \
          const a = JSON.parse(t.value); a.zones[0].points[1] = window.keptPoint; \
          a.rules[0].classes = ['persn']; t.value = JSON.stringify(a); return 1;")
        .await;
    b.click("#ed-json + p button").await; // Apply JSON
    b.click("#ed-save").await;
    b.wait_up_to(
        "the refusal with its problems",
        "document.querySelector('#ed-problems') && document.querySelector('#ed-problems').textContent.includes('rules[0].classes[0]')",
        Duration::from_secs(120),
    )
    .await;
    let problems = b.text("#ed-problems").await;
    assert!(
        problems.contains("rules[0].classes[0]") && problems.contains("person"),
        "{problems}"
    );
    assert!(b.text("#ed-state").await.contains("runs version 1"));
    b.screenshot("commission-2-refused").await;
    let before = stored_events(&db, "rule 1");
    until("incidents of version 1 after the refusal", 120, || {
        stored_events(&db, "rule 1") > before
    })
    .await;

    // On a phone the editor fits the screen.
    b.resize(390, 844).await;
    b.js("localStorage.setItem('ioc.lang', 'vi'); location.reload(); return 1;")
        .await;
    b.wait("the console", "document.querySelector('#pictures')")
        .await;
    b.click("header nav button[data-view=\"health\"]").await;
    b.wait(
        "the tile",
        &format!(
            "document.querySelector('{} .pv-edit')",
            tile.replace('\'', "\\'")
        ),
    )
    .await;
    b.click(&format!("{tile} .pv-edit")).await;
    b.wait("the editor", "document.querySelector('#ed-pic img')")
        .await;
    b.assert_no_horizontal_scroll("editor at 390 px").await;
    assert!(b.text("#detail").await.contains("Lưu và gửi xuống trạm"));
    b.screenshot("commission-3-phone-vi").await;
    b.quit().await;
}
