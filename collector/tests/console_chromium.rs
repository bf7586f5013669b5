//! The operator console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `deploy/setup.sh`), driven over WebDriver: log in, see an
//! incident published by an agent through a real mosquitto appear live, with the site's and
//! camera's names, its rule and the district's clock time, acknowledge it, resolve it with a
//! note, read the audit trail; then at phone size (390×844): no horizontal scroll, every
//! action reachable, in Vietnamese throughout; and new incidents arrive live after the broker
//! restarts. Screenshots go to `target/tmp/console-*.png` (the test prints their paths).

mod common;

use std::time::{Duration, Instant};

use common::{Agent, Broker};
use ioc_collector::clock::SystemClock;
use ioc_collector::service::{Collector, Parts};
use ioc_collector::{Config, Store};
use ioc_testkit::browser::Browser;
use serde_json::{json, Value};

const PASSWORD: &str = "console test password";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_handles_a_live_incident_in_chromium() {
    let mut broker = Broker::with_users(&[("gate-site", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"console-test\"\n\
         username = \"c\"\npassword = \"pw\"\n\
         [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
        broker.port,
        dir.path().join("ioc.db").display(),
        dir.path().join("snaps").display(),
    );
    let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    {
        let mut s = Store::open(&cfg.store.path, &cfg.store.snapshot_dir).unwrap();
        let hash = ioc_collector::auth::hash_password(PASSWORD).unwrap();
        s.put_user("lan", &hash, "operator", "test", 0).unwrap();
    }
    let collector = Collector::start(&cfg, std::sync::Arc::new(SystemClock), Parts::All)
        .await
        .unwrap();
    collector
        .ingest()
        .unwrap()
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let site = format!("http://{}", collector.http_addr);
    // The agent says what its site and camera are called (as `[agent] name` and the camera's
    // `name` make it): the console shows names, not ids.
    let agent = Agent::connect(broker.port, "gate-site").await;
    let now = ioc_collector::incident::ts(ioc_collector::store::now_ms());
    let mut status = ioc_protocol::AgentStatus::new(
        ioc_protocol::AgentState::Online,
        "0.1.0",
        vec!["north-gate".into()],
        ioc_protocol::Timestamp::now(),
    );
    status.name = Some("Phường Hàng Trống".into());
    agent
        .publish("status", serde_json::to_vec(&status).unwrap())
        .await;
    let mut cam = ioc_protocol::CameraStatus::new(
        ioc_protocol::CameraState::Streaming,
        ioc_protocol::Timestamp::now(),
    );
    cam.name = Some("Cổng Bắc / North gate".into());
    agent
        .publish(
            "cameras/north-gate/status",
            serde_json::to_vec(&cam).unwrap(),
        )
        .await;
    let reader = Store::open(&cfg.store.path, &cfg.store.snapshot_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader
        .health(ioc_collector::store::now_ms())
        .unwrap()
        .cameras
        .is_empty()
    {
        assert!(Instant::now() < deadline, "camera status not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Browser::start(std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).await;

    // Without a session the console sends us to the login page.
    b.goto(&format!("{site}/")).await;
    b.wait("the login page", "location.pathname === '/login'")
        .await;
    b.js("localStorage.setItem('ioc.lang', 'en'); return 1;")
        .await;
    b.type_into("#username", "lan").await;
    b.type_into("#password", "wrong password").await;
    b.click("#submit").await;
    b.wait(
        "a refusal",
        "document.getElementById('error').textContent.includes('Wrong')",
    )
    .await;
    let e = b.element("#password").await;
    b.cmd(
        reqwest::Method::POST,
        &format!("/element/{e}/clear"),
        json!({}),
    )
    .await;
    b.type_into("#password", PASSWORD).await;
    b.click("#submit").await;
    b.wait("the console", "location.pathname === '/' && document.getElementById('whoami') && document.getElementById('whoami').textContent.includes('lan')").await;
    b.wait(
        "the live stream",
        "document.getElementById('live').classList.contains('on')",
    )
    .await;

    // An agent publishes an intrusion; the row appears without a reload.
    let ev = json!({
        "schema": "ioc.event/1", "id": "gate-site-1", "seq": 1, "phase": "instant",
        "agent": "gate-site", "camera": "north-gate", "kind": "intrusion",
        "severity": "critical", "rule": "fence", "zone": "fence",
        "observed_at": now.as_str(),
    });
    let sent = Instant::now();
    agent.publish("events", ev.to_string().into_bytes()).await;
    b.wait(
        "the incident row",
        "document.querySelector('tr.incident[data-state=\"open\"]')",
    )
    .await;
    eprintln!("published -> row visible in Chromium: {:?}", sent.elapsed());
    let row_text = b
        .js("return document.querySelector('tr.incident').textContent")
        .await;
    let row_text = row_text.as_str().unwrap();
    assert!(row_text.contains("Intrusion"), "{row_text}");
    assert!(
        row_text.contains("Phường Hàng Trống / Cổng Bắc / North gate / fence"),
        "{row_text}"
    );
    // The ids stay at hand (tooltip), the rule is named, an instant event is over, and the
    // time is the district's clock, day first.
    assert_eq!(
        b.js("return document.querySelector('tr.incident td.where').title")
            .await,
        "gate-site / north-gate / fence"
    );
    assert!(
        row_text.contains("fence") && row_text.contains("Ended"),
        "{row_text}"
    );
    let clock = b.text("tr.incident td.age .clock").await;
    let digits: String = clock
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(digits, "99:99 99/99/9999", "{clock}");
    b.screenshot("1-new-incident").await;
    // Its clip (real footage, as the agent sends one: an MP4 in parts) follows.
    let mp4 = footage_clip();
    publish_clip(&agent, "gate-site-1", &mp4).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader.clip("gate-site", "gate-site-1").unwrap().is_none() {
        assert!(Instant::now() < deadline, "clip not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One click acknowledges.
    b.click("tr.incident button[data-action=\"acknowledge\"]")
        .await;
    b.wait(
        "the acknowledged state",
        "document.querySelector('tr.incident[data-state=\"acknowledged\"]')",
    )
    .await;
    // Resolve with a note, from the detail pane.
    b.click("tr.incident button[data-action=\"resolve\"]").await;
    b.wait("the detail pane", "document.getElementById('detail').classList.contains('open') && document.getElementById('note')").await;
    b.type_into("#note", "Guard checked the fence, nobody there")
        .await;
    b.click("#detail button[data-action=\"resolve\"]").await;
    b.wait(
        "the resolved state in the detail pane",
        "document.getElementById('detail-state') && document.getElementById('detail-state').classList.contains('st-resolved')",
    )
    .await;
    // The detail plays the incident's clip.
    b.wait(
        "the clip player",
        "document.querySelector('#clip') && document.querySelector('#clip').readyState >= 1",
    )
    .await;
    let duration = b
        .js("return document.querySelector('#clip').duration")
        .await;
    assert!(duration.as_f64().unwrap() > 1.0, "clip duration {duration}");
    b.js("document.querySelector('#clip').play(); return true")
        .await;
    b.wait(
        "the clip playing",
        "document.querySelector('#clip').currentTime > 0.5",
    )
    .await;
    b.screenshot("2a-clip-playing").await;
    let detail = b.text("#detail").await;
    assert!(
        !detail.contains("null") && !detail.contains("undefined"),
        "{detail}"
    );
    // The active list no longer shows it; the audit trail does.
    b.wait(
        "the row to leave the active list",
        "!document.querySelector('tr.incident')",
    )
    .await;
    let audit = b
        .js("return document.getElementById('audit').textContent")
        .await;
    let audit = audit.as_str().unwrap();
    for want in [
        "system opened",
        "lan acknowledge",
        "lan resolve",
        "Guard checked the fence",
    ] {
        assert!(audit.contains(want), "audit trail lacks {want:?}: {audit}");
    }
    b.screenshot("2-resolved-with-audit").await;
    // Health view: the agent and camera are listed (the agent published no status here, so
    // only the silence form matters), and a maintenance silence is set from the form.
    b.click("#detail button.act").await; // close the pane
    b.click("header nav button[data-view=\"health\"]").await;
    b.type_into("#s-site", "gate-site").await;
    b.type_into("#s-camera", "north-gate").await;
    b.type_into("#s-reason", "lens cleaning").await;
    b.click("#silence-form button[type=\"submit\"]").await;
    b.wait(
        "the silence in the table",
        "document.querySelector('#silences tbody').textContent.includes('lens cleaning (lan)')",
    )
    .await;
    b.screenshot("3-health-and-silence").await;
    // The camera wall: no picture yet; asked for, the site's answer is drawn with the
    // detections on it. (A stand-in answers for the site here: tests/tests/previews.rs has
    // the real agent.)
    let _responder = answer_previews(broker.port).await;
    b.wait(
        "the camera's tile",
        "document.querySelector('#pictures figure[data-camera=\"gate-site/north-gate\"] .pv-empty')",
    )
    .await;
    assert!(b.text("#pictures").await.contains("No picture yet"));
    b.click("#pictures .pv-get").await;
    b.wait(
        "the picture with its box",
        "(() => { const i = document.querySelector('#pictures img'); \
         return i && i.complete && i.naturalWidth === 640 && \
         document.querySelectorAll('#pictures svg rect').length === 1; })()",
    )
    .await;
    let wall = b.text("#pictures").await;
    assert!(
        wall.contains("Taken at") && wall.contains("objects: 1"),
        "{wall}"
    );
    b.screenshot("3b-camera-picture").await;
    b.click("header nav button[data-view=\"charts\"]").await;
    b.wait("a chart", "document.querySelector('#chart-day svg rect')")
        .await;
    b.screenshot("4-charts").await;
    // The broker dies: the health page says at once that the center is cut off (it cannot
    // know that anything is fine).
    broker.kill();
    assert!(b
        .js("return document.querySelector('#broker-banner').classList.contains('hidden')")
        .await
        .as_bool()
        .unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.click("header nav button[data-view=\"health\"]").await;
    b.wait(
        "the cut-off banner",
        "!document.querySelector('#broker-banner').classList.contains('hidden')",
    )
    .await;
    b.screenshot("5-cut-off").await;
    // The broker comes back: the collector reconnects, and an incident opened now arrives live
    // (no reload), with the banner gone. (On another camera: north-gate is silenced.)
    broker.restart().unwrap();
    collector
        .ingest()
        .unwrap()
        .wait_connected(Duration::from_secs(20))
        .await
        .unwrap();
    b.click("header nav button[data-view=\"incidents\"]").await;
    let now = ioc_collector::incident::ts(ioc_collector::store::now_ms());
    let ev = json!({
        "schema": "ioc.event/1", "id": "gate-site-2", "seq": 2, "phase": "start",
        "agent": "gate-site", "camera": "south-gate", "kind": "loitering",
        "severity": "warning", "rule": "loitering at the gate", "zone": "gate",
        "observed_at": now.as_str(), "started_at": now.as_str(),
        "objects": [{"track_id": 7, "class": "person", "score": 0.9, "bbox": [0.1, 0.1, 0.2, 0.5]}],
    });
    agent.publish("events", ev.to_string().into_bytes()).await;
    // As a real agent does on reconnecting, it says again how it and its camera are: what
    // the collector heard before the cut no longer vouches for now.
    agent
        .publish("status", serde_json::to_vec(&status).unwrap())
        .await;
    agent
        .publish(
            "cameras/north-gate/status",
            serde_json::to_vec(&cam).unwrap(),
        )
        .await;
    b.wait(
        "the new incident after the broker restart",
        "document.querySelector('tr.incident[data-state=\"open\"]')",
    )
    .await;
    b.wait(
        "the banner to go",
        "document.querySelector('#broker-banner').classList.contains('hidden')",
    )
    .await;
    assert!(b.text("tr.incident").await.contains("Ongoing"));

    // A phone (390×844), in Vietnamese: the list is cards, nothing scrolls sideways, the
    // actions are on screen, and every label the operator reads is Vietnamese.
    b.resize(390, 844).await;
    b.js("const s = document.getElementById('lang'); s.value = 'vi'; s.dispatchEvent(new Event('change')); return 1;")
        .await;
    b.wait(
        "Vietnamese labels",
        "document.querySelector('tr.incident .activity').textContent === 'Đang diễn ra'",
    )
    .await;
    b.assert_no_horizontal_scroll("incident list at 390 px")
        .await;
    let row = b.text("tr.incident").await;
    for want in [
        "Lảng vảng",
        "Mới",
        "Cảnh báo",
        "Nhận xử lý",
        "Hoàn tất xử lý",
        "loitering at the gate",
    ] {
        assert!(row.contains(want), "{want:?} not in the phone row: {row}");
    }
    let fits = b
        .js("return [...document.querySelectorAll('tr.incident button.act')].every((x) => { \
             const r = x.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; });")
        .await;
    assert_eq!(fits, Value::Bool(true), "an action is off screen at 390 px");
    let header = b
        .js("return document.querySelector('header').getBoundingClientRect().height")
        .await;
    assert!(header.as_f64().unwrap() < 100.0, "header {header} px high");
    b.screenshot("6-phone-list-vi").await;
    b.click("tr.incident").await;
    b.wait("the detail pane", "document.getElementById('timeline')")
        .await;
    b.assert_no_horizontal_scroll("detail at 390 px").await;
    let detail = b.text("#detail").await;
    for want in [
        "Diễn biến",
        "Quy tắc: loitering at the gate",
        "Đang diễn ra",
        "người",
        "Nhật ký",
        "hệ thống",
        "mở sự cố",
        "Chưa có đoạn video",
    ] {
        assert!(
            detail.contains(want),
            "{want:?} not in the detail: {detail}"
        );
    }
    b.screenshot("7-phone-detail-vi").await;
    b.click("#detail button.act").await;
    b.click("header nav button[data-view=\"health\"]").await;
    b.wait(
        "the health cards",
        "document.querySelector('#cameras tbody td[data-label]')",
    )
    .await;
    b.wait(
        "the camera's picture",
        "document.querySelector('#pictures .pv-when').textContent",
    )
    .await;
    b.assert_no_horizontal_scroll("health at 390 px").await;
    let health = b.text("#view-health").await;
    for want in [
        "Cổng Bắc / North gate",
        "Phường Hàng Trống",
        "đang truyền hình",
        "Chụp lúc",
        "1 đối tượng",
        "Lấy hình mới",
    ] {
        assert!(
            health.contains(want),
            "{want:?} not on the health page: {health}"
        );
    }
    b.screenshot("8-phone-health-vi").await;

    // The store agrees.
    assert_eq!(
        reader.silences(ioc_collector::store::now_ms()).unwrap()[0].reason,
        "lens cleaning"
    );
    let trail = reader.audit_trail(Some(1)).unwrap();
    assert_eq!(
        trail.last().unwrap().note.as_deref(),
        Some("Guard checked the fence, nobody there")
    );
    b.quit().await;
    drop(b);
    collector.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// The first 4 s of the real footage as an MP4, not re-encoded (what the agent's clips are).
fn footage_clip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!(
            "location={}",
            ioc_testkit::footage("vtest_h264.mp4").display()
        ))
        .args([
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "identity",
            "eos-after=40",
        ])
        .args(["!", "mp4mux", "faststart=true", "!", "filesink"])
        .arg(format!("location={}/clip.mp4", dir.path().display()))
        .status()
        .unwrap();
    assert!(st.success(), "gst-launch-1.0: {st}");
    std::fs::read(dir.path().join("clip.mp4")).unwrap()
}

/// Publishes `mp4` as the clip of `event_id`, in 64 KiB parts.
async fn publish_clip(agent: &Agent, event_id: &str, mp4: &[u8]) {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(mp4));
    let now = ioc_protocol::Timestamp::now();
    for (header, data) in ioc_protocol::split_clip("north-gate", mp4, &sha, 64 * 1024, 4.0, now) {
        let payload = ioc_protocol::encode_clip_part(&header, data).unwrap();
        agent.publish(&format!("clips/{event_id}"), payload).await;
    }
}

/// One frame of the real footage as a 640x480 JPEG.
fn footage_jpeg() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!(
            "location={}",
            ioc_testkit::footage("vtest_h264.mp4").display()
        ))
        .args([
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "videoconvert",
        ])
        .args(["!", "videoscale", "!", "video/x-raw,width=640,height=480"])
        .args(["!", "jpegenc", "snapshot=true", "!", "filesink"])
        .arg(format!("location={}/frame.jpg", dir.path().display()))
        .status()
        .unwrap();
    assert!(st.success(), "gst-launch-1.0: {st}");
    std::fs::read(dir.path().join("frame.jpg")).unwrap()
}

/// Stands in for gate-site's agent on `.../preview-requests`: answers each request with a
/// frame of the footage and one person on it.
async fn answer_previews(port: u16) -> tokio::task::JoinHandle<()> {
    let jpeg = footage_jpeg();
    let mut site = ioc_testkit::mqtt::raw(
        port,
        "gate-site-previews",
        "gate-site",
        "pw",
        &["ioc/v1/agents/gate-site/preview-requests"],
    )
    .await;
    tokio::spawn(async move {
        while let Some((_, payload)) = site.rx.recv().await {
            let req: ioc_protocol::PreviewRequest = ioc_protocol::parse(&payload).unwrap();
            let header = ioc_protocol::Preview {
                schema: ioc_protocol::PREVIEW_SCHEMA.into(),
                camera: req.camera.clone(),
                taken_at: ioc_protocol::Timestamp::now(),
                width: 640,
                height: 480,
                request_id: req.request_id,
                objects: vec![ioc_protocol::PreviewObject {
                    class: "person".into(),
                    score: 0.8,
                    bbox: [0.4, 0.3, 0.5, 0.7],
                }],
            };
            site.client
                .publish(
                    format!("ioc/v1/agents/gate-site/previews/{}", req.camera),
                    rumqttc::QoS::AtMostOnce,
                    false,
                    ioc_protocol::encode_preview(&header, &jpeg).unwrap(),
                )
                .await
                .unwrap();
        }
    })
}
