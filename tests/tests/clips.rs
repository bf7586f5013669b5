//! Event clips end to end, with real processes: the footage served live by a real RTSP
//! server → `ioc-agent run` (its own H.264 access units, kept in a ring, cut and muxed to
//! MP4 around each incident) → durable outbox → mosquitto (parts on `.../clips/{event}`
//! under the shipped ACL pattern) → `ioc-collector run` (parts put together, checked, stored)
//! → `GET /api/clips/{site}/{event}` as a browser asks for it (whole, then in ranges). The
//! clip is decoded again to prove it plays: frames over the configured window, around the
//! moment the incident was decided.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioc_testkit::center::{vtest_camera, Center, COLLECTOR_USER};
use ioc_testkit::http::{request as http, Killed};
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{model_manifest, workspace_binary, workspace_root};

#[test]
fn an_incident_on_live_footage_arrives_with_a_playable_clip() {
    let dir = tempfile::tempdir().unwrap();
    let server = vtest_camera();
    let broker = Mosquitto::start(
        &[
            User::agent("clip-site", "agent-pw"),
            User::collector(COLLECTOR_USER.0, COLLECTOR_USER.1),
        ],
        0,
    )
    .unwrap();
    let center = Center::start(
        dir.path(),
        broker.port,
        &[("op", "viewer", "clip test password")],
    );
    let (db, http_port) = (center.db.clone(), center.http_port);
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            r#"
[agent]
id = "clip-site"
log_detections = false
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[mqtt]
host = "127.0.0.1"
port = {port}
username = "clip-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[clips]
pre_s = 3
post_s = 3
part_bytes = 65536
# Every incident gets a clip: this test follows one end to end.
min_severity = "info"
[[cameras]]
id = "vtest"
url = "{url}"
analytics_file = "{scene}"
"#,
            scene = workspace_root().join("config/scenes/vtest.toml").display(),
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
            .env("RUST_LOG", "warn,ioc_agent::clip=info")
            .spawn()
            .unwrap(),
    );

    // The first zone entry of the footage, then its clip (3 s after the entry, plus
    // delivery).
    let deadline = Instant::now() + Duration::from_secs(240);
    let (event_id, size, duration_ms, start_ms, observed_ms) = loop {
        assert!(Instant::now() < deadline, "no clip stored within 240 s");
        std::thread::sleep(Duration::from_secs(2));
        let Ok(conn) = rusqlite::Connection::open(&db) else {
            continue;
        };
        let row = conn.query_row(
            "SELECT c.event_id, c.size, c.duration_ms, c.start_ms, e.observed_at_ms \
             FROM clips c JOIN events e ON e.agent = c.agent AND e.event_id = c.event_id \
             AND e.phase = 'start' WHERE c.agent = 'clip-site' LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        );
        if let Ok(r) = row {
            break r;
        }
    };
    // About pre + post seconds (from the key frame at or before the start: vtest has one
    // every 20 frames, 2 s), and the moment of the incident inside it.
    assert!(
        (4_000..=9_000).contains(&duration_ms),
        "clip of {duration_ms} ms"
    );
    assert!(
        start_ms <= observed_ms - 2_000 && observed_ms + 2_000 <= start_ms + duration_ms,
        "the clip ({start_ms} + {duration_ms} ms) holds the incident's moment {observed_ms}"
    );
    // Parts were put together and are gone; nothing was refused.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM clip_parts", [], |r| r.get(0))
        .unwrap();
    let dead: i64 = conn
        .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
        .unwrap();
    assert_eq!((left, dead), (0, 0));

    // As the console's <video> gets it.
    let auth = center.login("op", "clip test password");
    let path = format!("/api/clips/clip-site/{event_id}");
    let (status, head, _) = http(http_port, "GET", &path, &[], "");
    assert_eq!(status, 401, "no session, no clip: {head}");
    let (status, head, mp4) = http(http_port, "GET", &path, &[("Authorization", &auth)], "");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: video/mp4"),
        "{head}"
    );
    assert_eq!(mp4.len() as i64, size);
    assert_eq!(&mp4[4..8], b"ftyp", "an MP4");
    // faststart: the index comes before the media, so playing can start at once.
    let moov = mp4.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = mp4.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");
    let (status, head, part) = http(
        http_port,
        "GET",
        &path,
        &[("Authorization", &auth), ("Range", "bytes=100-1099")],
        "",
    );
    assert_eq!(status, 206, "{head}");
    assert!(head.contains(&format!("bytes 100-1099/{size}")), "{head}");
    assert_eq!(part, &mp4[100..1100]);
    let (status, _, _) = http(
        http_port,
        "GET",
        &path,
        &[
            ("Authorization", &auth),
            ("Range", &format!("bytes={size}-")),
        ],
        "",
    );
    assert_eq!(status, 416);
    // The incident's detail says which of its events has a clip.
    let incident: i64 = conn
        .query_row(
            "SELECT incident_id FROM events WHERE event_id = ?1 LIMIT 1",
            [&event_id],
            |r| r.get(0),
        )
        .unwrap();
    let (status, _, body) = http(
        http_port,
        "GET",
        &format!("/api/incidents/{incident}"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200);
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_id"] == event_id.as_str() && e["has_clip"] == true),
        "{detail}"
    );

    // It plays: decoded again, every frame of the window is there.
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let last_pts_ms = Arc::new(AtomicU64::new(0));
    let (f, l) = (frames.clone(), last_pts_ms.clone());
    let epoch = ioc_agent::clock::Epoch::now();
    let pipeline = ioc_agent::decode::Pipeline::for_file(
        &file,
        &ioc_agent::decode::DecodeSettings {
            decoder: "avdec_h264".into(),
            fps: 0.0,
            realtime: false,
            threads: 1,
        },
        Default::default(),
        Arc::new(ioc_agent::clock::SessionClock::new(
            epoch,
            ioc_agent::clock::ClockMode::Flat { offset_sec: 0.0 },
            0.0,
        )),
        Box::new(move |frame| {
            f.fetch_add(1, Ordering::Relaxed);
            l.fetch_max(frame.pts().as_millis() as u64, Ordering::Relaxed);
        }),
    )
    .unwrap();
    pipeline.wait(Some(Duration::from_secs(60))).unwrap();
    let frames = frames.load(Ordering::Relaxed);
    let last = last_pts_ms.load(Ordering::Relaxed) as i64;
    // vtest is 10 fps.
    assert!(
        frames as i64 >= duration_ms / 100 - 2,
        "{frames} frames decoded from a {duration_ms} ms clip"
    );
    assert!(
        (last - (duration_ms - 100)).abs() <= 300,
        "last frame at {last} ms of {duration_ms} ms"
    );
}
