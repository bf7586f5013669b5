//! The whole chain with real processes: `ioc-agent run` on vtest.avi (decode,
//! the real model, tracking, rules) → durable outbox → mosquitto (per-agent
//! credentials and ACL) → `ioc-collector run` → SQLite. The incidents of the
//! hand-annotated line and zone arrive, with their snapshots, in order, and are
//! grouped into the collector's incidents (one per line or zone while they keep coming).
//! Stopped with SIGTERM, the agent exits cleanly and the center sees it offline.

use std::process::Command;
use std::time::{Duration, Instant};

use ioc_testkit::http::{request, Killed};
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{footage, model_manifest, workspace_binary, workspace_root};

/// A plain HTTP/1.0 GET on loopback: the body.
fn http_get(port: u16, path: &str) -> String {
    let (status, head, body) = request(port, "GET", path, &[], "");
    assert_eq!(status, 200, "{head}");
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn incidents_from_footage_reach_the_collector_with_their_snapshots() {
    let metrics_port = ioc_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(
        &[
            User::agent("vtest-site", "agent-pw"),
            User::collector("central", "central-pw"),
        ],
        0,
    )
    .unwrap();
    let db = dir.path().join("ioc.db");
    let snaps = dir.path().join("snapshots");
    let collector_cfg = dir.path().join("collector.toml");
    std::fs::write(
        &collector_cfg,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"c1\"\nusername = \"central\"\npassword = \"central-pw\"\n\
             [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            broker.port,
            db.display(),
            snaps.display()
        ),
    )
    .unwrap();
    let _collector = Killed(
        Command::new(workspace_binary("ioc-collector"))
            .args(["run", "--config", collector_cfg.to_str().unwrap()])
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap(),
    );
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            r#"
[agent]
id = "vtest-site"
log_detections = false
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[mqtt]
host = "127.0.0.1"
port = {port}
username = "vtest-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
# Every incident ships its picture: this test follows snapshots end to end.
[snapshot]
min_severity = "info"
[[cameras]]
id = "vtest"
file = "{file}"
realtime = false
analytics_file = "{scene}"
"#,
            scene = workspace_root().join("config/scenes/vtest.toml").display(),
            model = model_manifest().display(),
            port = broker.port,
            outbox = dir.path().join("outbox.db").display(),
            metrics_port = metrics_port,
            file = footage("vtest.avi").display(),
        ),
    )
    .unwrap();
    let mut agent = Killed(
        Command::new(workspace_binary("ioc-agent"))
            .args(["run", "--config", agent_cfg.to_str().unwrap()])
            .env(
                "RUST_LOG",
                "warn,ioc_agent::agent=error,ioc_agent::site=error",
            )
            .spawn()
            .unwrap(),
    );

    // The annotated stretch (0-59 s) has 5 crossings and 3 entries; the whole clip more.
    let deadline = Instant::now() + Duration::from_secs(600);
    let (crossings, entries, snapshots) = loop {
        std::thread::sleep(Duration::from_secs(2));
        let Ok(conn) = rusqlite::Connection::open(&db) else {
            continue;
        };
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0);
        let c = count("SELECT COUNT(*) FROM events WHERE kind = 'line_crossing'");
        let e = count("SELECT COUNT(*) FROM events WHERE kind = 'intrusion' AND phase = 'start'");
        let s = count("SELECT COUNT(*) FROM snapshots");
        if (c >= 5 && e >= 3 && s >= 8) || Instant::now() > deadline {
            break (c, e, s);
        }
    };
    assert!(
        crossings >= 5 && entries >= 3,
        "stored {crossings} crossings and {entries} zone entries"
    );
    assert!(snapshots >= 8, "{snapshots} snapshots stored");

    let conn = rusqlite::Connection::open(&db).unwrap();
    // Every snapshot the events reference is stored, under its own sha256, as a JPEG.
    let mut stmt = conn
        .prepare("SELECT e.payload, s.sha256, s.path FROM events e JOIN snapshots s ON s.event_id = e.event_id WHERE e.phase IN ('start', 'instant')")
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() >= 8);
    for (payload, sha, path) in &rows {
        let ev: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(
            ev["snapshot"]["sha256"].as_str(),
            Some(sha.as_str()),
            "{payload}"
        );
        let path = if std::path::Path::new(path).is_absolute() {
            path.into()
        } else {
            snaps.join(path)
        };
        let jpeg = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
        assert_eq!(ev["snapshot"]["size"].as_u64(), Some(jpeg.len() as u64));
    }
    // The first crossing of the annotation: somebody walking right to left ("in").
    let first: String = conn
        .query_row(
            "SELECT payload FROM events WHERE kind = 'line_crossing' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["details"]["direction"], "in", "{first}");
    assert_eq!(first["objects"][0]["class"], "person");
    let gaps: i64 = conn
        .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(gaps, 0, "nothing dead-lettered");
    // The agent's incidents are grouped: every stored event belongs to exactly one collector
    // incident of its kind and place, and repeated crossings of the walkway within the
    // grouping window share one.
    let mut stmt = conn
        .prepare(
            "SELECT i.kind, i.place, i.event_count, i.snapshot_event_id, i.state, \
             (SELECT COUNT(DISTINCT e.event_id) FROM events e WHERE e.incident_id = i.id) \
             FROM incidents i ORDER BY i.id",
        )
        .unwrap();
    let incidents: Vec<(String, String, i64, Option<String>, String, i64)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let crossing = incidents
        .iter()
        .find(|i| i.0 == "line_crossing" && i.1 == "walkway_west")
        .unwrap_or_else(|| panic!("no walkway incident: {incidents:?}"));
    assert!(crossing.2 >= 5, "crossings grouped: {incidents:?}");
    assert!(crossing.3.is_some(), "with a snapshot: {crossing:?}");
    assert_eq!(crossing.4, "open");
    for i in &incidents {
        assert_eq!(i.2, i.5, "event_count matches the events filed: {i:?}");
    }
    let distinct: i64 = conn
        .query_row("SELECT COUNT(DISTINCT event_id) FROM events", [], |r| {
            r.get(0)
        })
        .unwrap();
    let filed: i64 = incidents.iter().map(|i| i.2).sum();
    assert_eq!(filed, distinct, "every event filed under one incident");

    // The leaders' report of that day carries its pictures inside (it must read once saved or
    // e-mailed, away from the console) and is laid out for a phone.
    let first_ms: i64 = conn
        .query_row(
            "SELECT MIN(first_at_ms) FROM incidents WHERE snapshot_event_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let day = ioc_collector::store::day_name(first_ms.div_euclid(86_400_000));
    let out = Command::new(workspace_binary("ioc-collector"))
        .args(["report", "--config", collector_cfg.to_str().unwrap()])
        .args(["--date", &day])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.contains("<img src=\"data:image/jpeg;base64,"),
        "no picture inside the report"
    );
    assert!(
        !html.contains("/api/"),
        "the report points back at the console"
    );
    assert!(html.contains("name=\"viewport\""));

    // The agent's own metrics, as Prometheus would scrape them.
    let metrics = http_get(metrics_port, "/metrics");
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(value("ioc_agent_frames_detected_total{camera=\"vtest\"}") > 100.0);
    assert!(value("ioc_agent_frames_decoded_total{camera=\"vtest\"}") > 100.0);
    assert_eq!(value("ioc_agent_mqtt_connected"), 1.0);
    assert!(
        value("ioc_agent_acked_total") >= 16.0,
        "events and snapshots acked"
    );
    assert!(value("ioc_agent_inferences_total") > 100.0);
    assert!(metrics.contains("# TYPE ioc_agent_outbox_entries gauge"));
    assert!(
        value("ioc_agent_outbox_oldest_age_seconds") < 60.0,
        "delivery keeps up"
    );

    // SIGTERM: the agent stops its cameras and its publisher sends a dated `offline` before
    // disconnecting.
    let stopped_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let st = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let exited = (0..300).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        agent.0.try_wait().unwrap()
    });
    assert!(
        exited.is_some_and(|s| s.success()),
        "stopped within 30 s: {exited:?}"
    );
    let read = || -> (String, i64) {
        conn.query_row(
            "SELECT state, at_ms FROM agents WHERE agent = 'vtest-site'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (state, at_ms) = (0..100)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            read()
        })
        .find(|(state, _)| state == "offline")
        .unwrap_or_else(read);
    assert_eq!(state, "offline");
    // Normally the agent's own, dated `offline`. The Last Will (dated when the agent started)
    // used to follow now and then: the publisher closed its socket with the broker's PUBACK
    // unread, a reset the broker took for a lost client; it now reads on until the broker
    // closes. Either way the center knows, so only report which it was (the will's handling
    // is tested in collector/tests/hostile.rs).
    if at_ms < stopped_at - 1000 {
        eprintln!("note: offline came from the Last Will ({at_ms} < {stopped_at})");
    }
}
