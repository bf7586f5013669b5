//! Camera previews for commissioning from the center, with real processes: the footage served
//! live by a real RTSP server → `ioc-agent run` → mosquitto (the shipped ACL) ↔
//! `ioc-collector run` → `POST /api/cameras/{site}/{camera}/preview` as the console asks:
//! the collector publishes a request only it may write, the agent answers with a JPEG of the
//! camera's own frame scaled to `preview.max_width` and the detections on it, and the API
//! serves both. Also: roles, a camera the agent does not run (a clear timeout), ids that
//! cannot be topics, another site that tries to ask (refused by the broker) and a forged
//! preview (rejected by the collector).

use std::process::Command;
use std::time::{Duration, Instant};

use ioc_testkit::center::{vtest_camera, Center, COLLECTOR_USER};
use ioc_testkit::http::{request as http, Killed};
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{free_port, model_manifest, workspace_binary};

/// The agent's `ioc_agent_previews_total{result="…"}`.
fn agent_previews(metrics_port: u16, result: &str) -> u64 {
    let (_, _, body) = http(metrics_port, "GET", "/metrics", &[], "");
    let want = format!("ioc_agent_previews_total{{result=\"{result}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(u64::MAX)
}

#[test]
fn the_center_asks_a_site_for_a_current_picture_of_its_camera() {
    let dir = tempfile::tempdir().unwrap();
    let server = vtest_camera();
    let broker = Mosquitto::start(
        &[
            User::agent("prev-site", "agent-pw"),
            User::agent("other-site", "other-pw"),
            User::collector(COLLECTOR_USER.0, COLLECTOR_USER.1),
        ],
        0,
    )
    .unwrap();
    let center = Center::start(
        dir.path(),
        broker.port,
        &[
            ("op", "operator", "preview test op"),
            ("watch", "viewer", "preview test viewer"),
        ],
    );
    let http_port = center.http_port;
    let metrics_port = free_port();
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            r#"
[agent]
id = "prev-site"
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[mqtt]
host = "127.0.0.1"
port = {port}
username = "prev-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[preview]
max_width = 640
[metrics]
listen = "127.0.0.1:{metrics_port}"
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
    let _agent = Killed(
        Command::new(workspace_binary("ioc-agent"))
            .args(["run", "--config", agent_cfg.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let op = center.login("op", "preview test op");
    let viewer = center.login("watch", "preview test viewer");
    let path = "/api/cameras/prev-site/vtest/preview";

    // Asked as the console asks, until the agent is up and has a picture with people on it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let meta = loop {
        assert!(
            Instant::now() < deadline,
            "no preview with people within 180 s"
        );
        let (status, head, body) = http(http_port, "POST", path, &[("Authorization", &op)], "");
        if status == 200 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if v["objects"].as_array().is_some_and(|o| !o.is_empty()) {
                break v;
            }
        } else {
            // Until the agent runs: no answer in time (504).
            assert_eq!(status, 504, "{head} {}", String::from_utf8_lossy(&body));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    // vtest is 768x576: scaled once to preview.max_width, not the model's 416 px input.
    assert_eq!(
        (meta["width"].as_u64(), meta["height"].as_u64()),
        (Some(640), Some(480)),
        "{meta}"
    );
    assert!(
        meta["age_s"].as_f64().unwrap() < 10.0,
        "a current frame: {meta}"
    );
    let objects = meta["objects"].as_array().unwrap();
    for o in objects {
        assert_eq!(o["class"], "person", "detect.classes applies: {meta}");
        let b: Vec<f64> = o["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            b[0] < b[2] && b[1] < b[3] && b.iter().all(|v| (0.0..=1.0).contains(v)),
            "{meta}"
        );
    }
    let (status, head, jpeg) = http(
        http_port,
        "GET",
        meta["url"].as_str().unwrap(),
        &[("Authorization", &viewer)],
        "",
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/jpeg"),
        "{head}"
    );
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
    // The latest preview, for anyone logged in; asking for a new one takes an operator.
    let (status, _, body) = http(http_port, "GET", path, &[("Authorization", &viewer)], "");
    assert_eq!(status, 200);
    let again: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(again["taken_at"], meta["taken_at"]);
    let (status, _, _) = http(http_port, "POST", path, &[("Authorization", &viewer)], "");
    assert_eq!(status, 403);
    let (status, _, _) = http(http_port, "GET", path, &[], "");
    assert_eq!(status, 401);
    // A camera the agent does not run: a clear timeout, not a hang.
    let t = Instant::now();
    let (status, _, body) = http(
        http_port,
        "POST",
        "/api/cameras/prev-site/nope/preview",
        &[("Authorization", &op)],
        "",
    );
    assert_eq!(status, 504);
    assert!(String::from_utf8_lossy(&body).contains("prev-site/nope"));
    assert!(t.elapsed() < Duration::from_secs(15));
    // Ids that cannot be part of a topic never reach the broker.
    let (status, _, body) = http(
        http_port,
        "POST",
        "/api/cameras/prev-site/..%2Fx/preview",
        &[("Authorization", &op)],
        "",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let rejected = agent_previews(metrics_port, "rejected");
    assert_eq!(rejected, 1, "the unknown camera");

    // Another site cannot ask this one (the ACL lets only collectors write requests), and
    // cannot pass a picture off as this site's; the collector itself can ask.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let other =
            ioc_testkit::mqtt::raw(broker.port, "other-site", "other-site", "other-pw", &[]).await;
        other
            .client
            .publish(
                "ioc/v1/agents/prev-site/preview-requests",
                rumqttc::QoS::AtLeastOnce,
                false,
                b"{not json".to_vec(),
            )
            .await
            .unwrap();
        // Its own topic, but a header naming another camera: rejected by the collector.
        let forged = ioc_protocol::Preview {
            schema: ioc_protocol::PREVIEW_SCHEMA.into(),
            camera: "vtest".into(),
            taken_at: ioc_protocol::Timestamp::now(),
            width: 640,
            height: 480,
            request_id: None,
            objects: Vec::new(),
        };
        other
            .client
            .publish(
                "ioc/v1/agents/other-site/previews/gate",
                rumqttc::QoS::AtLeastOnce,
                false,
                ioc_protocol::encode_preview(&forged, &jpeg).unwrap(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let central =
            ioc_testkit::mqtt::raw(broker.port, "c-test", "central", "central-pw", &[]).await;
        central
            .client
            .publish(
                "ioc/v1/agents/prev-site/preview-requests",
                rumqttc::QoS::AtLeastOnce,
                false,
                b"{not json".to_vec(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    assert_eq!(
        agent_previews(metrics_port, "rejected"),
        rejected + 1,
        "the collector's malformed request reached the agent, the other site's did not"
    );
    for cam in ["gate", "vtest"] {
        let (status, _, _) = http(
            http_port,
            "GET",
            &format!("/api/cameras/other-site/{cam}/preview"),
            &[("Authorization", &viewer)],
            "",
        );
        assert_eq!(
            status, 404,
            "the forged preview is not kept as other-site/{cam}"
        );
    }
}
