//! Ingest against a real mosquitto (started here on a free loopback port, with a password
//! file and the same ACL as `ioc-testkit`'s harness: agents write only their own topics,
//! collectors read `ioc/#` and write acks). Agents are raw rumqttc clients.
//!
//! Covered: events stored and acked; replays store nothing new and are acked again; bad
//! payloads become dead letters without stopping ingest; seq gaps are reported; snapshots,
//! counts and status; a 20,000-event burst; an event published by an agent reaching the
//! console's live stream as an incident (with its latency); a collector killed mid-stream loses nothing
//! (shared subscription, persistent session); a wrong password is reported as such; the
//! binary's `run` (SIGTERM), `check-config` and `stats`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{broker_with, event, free_port, Agent, Broker, TestDb};
use ioc_collector::{ingest, Config, ConnState, FailureKind, Store};
use rumqttc::QoS;

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

fn config_text(port: u16, dir: &Path, password: &str, group: Option<&str>) -> String {
    config_text_on(&TestDb::Sqlite, port, dir, password, group)
}

fn config_text_on(
    db: &TestDb,
    port: u16,
    dir: &Path,
    password: &str,
    group: Option<&str>,
) -> String {
    let group = group
        .map(|g| format!("shared_group = \"{g}\"\n"))
        .unwrap_or_default();
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"collector-test\"\n\
         username = \"c\"\npassword = \"{password}\"\n{group}{}\
         [ingest]\nbatch_max = 500\nbatch_wait_ms = 20\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        db.store_toml(dir)
    )
}

fn config(port: u16, dir: &Path, password: &str, group: Option<&str>) -> Config {
    config_on(&TestDb::Sqlite, port, dir, password, group)
}

fn config_on(db: &TestDb, port: u16, dir: &Path, password: &str, group: Option<&str>) -> Config {
    let c = Config::parse(
        &config_text_on(db, port, dir, password, group),
        Path::new("test.toml"),
    )
    .unwrap();
    c.validate(Path::new("test.toml")).unwrap();
    c
}

fn reader(dir: &Path) -> Store {
    Store::open(&dir.join("ioc.db"), &dir.join("snapshots")).unwrap()
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_acks_dedups_dead_letters_and_gaps() {
    stores_acks_dedups_dead_letters_and_gaps_on(TestDb::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_acks_dedups_dead_letters_and_gaps_on_postgres() {
    stores_acks_dedups_dead_letters_and_gaps_on(TestDb::postgres("ingest")).await;
}

async fn stores_acks_dedups_dead_letters_and_gaps_on(test_db: TestDb) {
    logs();
    let broker = Broker::with_users(&[("a1", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let handle = ingest::start(&config_on(&test_db, broker.port, dir.path(), "pw", None)).unwrap();
    handle.wait_connected(T).await.unwrap();
    let mut agent = Agent::connect(broker.port, "a1").await;
    // The collector's subscriptions may still be in flight: retry the first event until acked.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Events are stored and acked.
    agent.events(1..=10).await;
    agent.wait_acked(1..=10, T).await;
    let db = test_db.open(dir.path());
    assert_eq!(db.count_events("a1").unwrap(), 10);
    assert_eq!(db.seq_gaps("a1").unwrap(), vec![]);

    // A replay stores nothing new and is acked again.
    agent.acked.clear();
    agent.events(1..=10).await;
    agent.wait_acked(1..=10, T).await;
    assert_eq!(db.count_events("a1").unwrap(), 10);
    assert_eq!(db.distinct_seqs("a1").unwrap(), 10);
    until("duplicates counted", T, || {
        handle.metrics().snapshot().duplicates == 10
    })
    .await;

    // Malformed JSON and a newer schema are dead-lettered; ingest goes on.
    agent
        .publish("events", b"{\"schema\": \"ioc.event/1\", oops".to_vec())
        .await;
    let v2 = String::from_utf8(event("a1", 11))
        .unwrap()
        .replace("ioc.event/1", "ioc.event/2");
    agent.publish("events", v2.into_bytes()).await;
    agent.events([11]).await;
    agent.wait_acked([11], T).await;
    assert_eq!(db.count_events("a1").unwrap(), 11);
    until("dead letters stored", T, || {
        db.count_dead_letters().unwrap() == 2
    })
    .await;
    let dl = db.dead_letters(10).unwrap();
    assert!(
        dl.iter()
            .any(|d| d.error.starts_with("unsupported_version")),
        "{dl:?}"
    );
    assert!(
        dl.iter().any(|d| d.error.starts_with("malformed_json")),
        "{dl:?}"
    );
    assert!(dl.iter().all(|d| d.topic == "ioc/v1/agents/a1/events"));
    let m = handle.metrics().snapshot();
    assert_eq!(m.dead_lettered, 2);
    assert_eq!(m.dead_letter_reasons.get("unsupported_version"), Some(&1));

    // A gap is reported (and counted once).
    agent.events([15]).await;
    agent.wait_acked([15], T).await;
    assert_eq!(db.seq_gaps("a1").unwrap(), vec![(12, 14)]);
    assert_eq!(handle.metrics().snapshot().seq_gaps, 1);
    // Filling it closes it.
    agent.events(12..=14).await;
    agent.wait_acked(12..=14, T).await;
    assert_eq!(db.seq_gaps("a1").unwrap(), vec![]);

    // Counts share the sequence; snapshots are acked by event id; status is kept.
    agent
        .publish(
            "counts",
            br#"{"schema":"ioc.counts/1","seq":16,"agent":"a1","camera":"road","line":"stop",
               "interval_start":"2024-05-01T12:00:00Z","interval_end":"2024-05-01T12:01:00Z",
               "counts":[{"class":"car","direction":"in","count":3}]}"#
                .to_vec(),
        )
        .await;
    agent.wait_acked([16], T).await;
    let jpeg = b"\xff\xd8\xff\xe0fake jpeg body".to_vec();
    agent.publish("snapshots/a1-1", jpeg.clone()).await;
    agent.wait_acked_id("a1-1", T).await;
    let snap = db.snapshot("a1", "a1-1").unwrap().unwrap();
    assert_eq!(std::fs::read(&snap.path).unwrap(), jpeg);
    assert!(snap.path.starts_with(dir.path().join("snapshots")));
    agent
        .client
        .publish(
            "ioc/v1/agents/a1/status",
            QoS::AtLeastOnce,
            true,
            br#"{"schema":"ioc.agent-status/1","state":"online","version":"0.1.0",
               "cameras":["gate"],"at":"2024-05-01T12:00:00.000Z"}"#
                .to_vec(),
        )
        .await
        .unwrap();
    until("agent status", T, || {
        db.agent_state("a1").unwrap().is_some()
    })
    .await;
    assert_eq!(db.agent_state("a1").unwrap().unwrap().0, "online");
    assert_eq!(db.distinct_seqs("a1").unwrap(), 16);
    assert_eq!(db.seq_gaps("a1").unwrap(), vec![]);

    until("every message PUBACKed after its commit", T, || {
        let m = handle.metrics().snapshot();
        m.mqtt_acks == m.received
    })
    .await;
    let m = handle.metrics().snapshot();
    assert!(m.acks_sent >= 6 && m.batches >= 6, "{m:?}");
    assert!(handle
        .metrics()
        .render_prometheus()
        .contains("ioc_collector_duplicates_total 10"));
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_20000_is_stored_completely() {
    burst_of_20000_on(TestDb::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_20000_is_stored_completely_on_postgres() {
    burst_of_20000_on(TestDb::postgres("burst")).await;
}

async fn burst_of_20000_on(test_db: TestDb) {
    logs();
    // mosquitto drops QoS 1 messages queued for a subscriber beyond `max_queued_messages`
    // (default 1000), connected or not; an agent's outbox re-sends them, but this test is
    // about the collector keeping up, so the broker here queues without limit and nothing
    // may need a re-send.
    const N: u64 = 20_000;
    let broker = broker_with(
        &[("a2", "pw", false), ("c", "pw", true)],
        "max_queued_messages 0\nmax_inflight_messages 1000\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let handle = ingest::start(&config_on(&test_db, broker.port, dir.path(), "pw", None)).unwrap();
    handle.wait_connected(T).await.unwrap();
    let mut agent = Agent::connect(broker.port, "a2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    agent.events(1..=N).await;
    let resent = agent
        .wait_acked_resending(1..=N, Duration::from_secs(5), Duration::from_secs(600))
        .await;
    let elapsed = started.elapsed();
    let db = test_db.open(dir.path());
    assert_eq!(db.count_events("a2").unwrap(), N);
    assert_eq!(db.distinct_event_ids("a2").unwrap(), N);
    assert_eq!(db.seq_gaps("a2").unwrap(), vec![]);
    let m = handle.metrics().snapshot();
    eprintln!(
        "{N} events stored and acked in {elapsed:?} ({} batches, {} acks, {resent} re-sent)",
        m.batches, m.acks_sent
    );
    assert_eq!(m.ingested, N, "each stored once");
    assert_eq!(resent, 0, "the collector lost nothing");
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_mid_stream_loses_nothing() {
    logs();
    let broker = Broker::with_users(&[("a3", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(broker.port, dir.path(), "pw", Some("collectors"));
    let handle = ingest::start(&cfg).unwrap();
    handle.wait_connected(T).await.unwrap();
    let mut agent = Agent::connect(broker.port, "a3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.events(1..=300).await;
    // Kill it (no graceful stop) while messages are still arriving.
    until("some events stored", T, || {
        handle.metrics().snapshot().ingested >= 50
    })
    .await;
    handle.abort();
    agent.events(301..=600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Same client id: the broker kept the session (shared subscription included) and
    // redelivers everything that was not PUBACKed.
    let handle = ingest::start(&cfg).unwrap();
    handle.wait_connected(T).await.unwrap();
    agent.wait_acked(1..=600, Duration::from_secs(60)).await;
    let db = reader(dir.path());
    assert_eq!(db.count_events("a3").unwrap(), 600);
    assert_eq!(db.seq_gaps("a3").unwrap(), vec![]);
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported_as_auth_refused() {
    logs();
    let broker = Broker::with_users(&[("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let handle = ingest::start(&config(broker.port, dir.path(), "wrong", None)).unwrap();
    let mut rx = handle.conn_watch();
    let state = tokio::time::timeout(T, rx.wait_for(|s| matches!(s, ConnState::Failed { .. })))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let ConnState::Failed { kind, message } = state else {
        unreachable!()
    };
    assert_eq!(kind, FailureKind::AuthRefused, "{message}");
    assert!(message.contains("mqtt.password"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the password is never shown: {message}"
    );
    handle.shutdown(Duration::from_secs(2)).await.unwrap();

    // Nobody listening: the TCP connection is refused (the agent's publisher says the same).
    let handle = ingest::start(&config(free_port(), dir.path(), "pw", None)).unwrap();
    let mut rx = handle.conn_watch();
    let state = tokio::time::timeout(T, rx.wait_for(|s| matches!(s, ConnState::Failed { .. })))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        matches!(
            state,
            ConnState::Failed {
                kind: FailureKind::ConnectionRefused,
                ..
            }
        ),
        "{state:?}"
    );
    handle.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_runs_stops_on_sigterm_and_reports_stats() {
    logs();
    let bin = env!("CARGO_BIN_EXE_ioc-collector");
    let broker = Broker::with_users(&[("a4", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("collector.toml");
    std::fs::write(
        &cfg_path,
        config_text(broker.port, dir.path(), "pw", Some("g1")),
    )
    .unwrap();

    let out = Command::new(bin)
        .arg("check-config")
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[mqtt]\nhots = 1\n").unwrap();
    let out = Command::new(bin)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("hots"), "{err}");

    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&cfg_path)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut agent = Agent::connect(broker.port, "a4").await;
    // Publish until the collector is subscribed and acks.
    let deadline = Instant::now() + T;
    loop {
        agent.events([1]).await;
        if tokio::time::timeout(Duration::from_millis(500), agent.wait_acked([1], T))
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "collector binary never acked");
    }
    agent.events(2..=20).await;
    agent.events([25]).await;
    agent.wait_acked((2..=20).chain([25]), T).await;
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");

    let out = Command::new(bin)
        .args(["stats", "--json", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["agents"][0];
    assert_eq!(a["agent"], "a4");
    assert_eq!(a["events"], 21);
    assert_eq!(a["max_seq"], 25);
    assert_eq!(a["gaps"], serde_json::json!([[21, 24]]));
    let out = Command::new(bin)
        .args(["stats", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a4") && text.contains("21-24"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_the_console_live() {
    use ioc_collector::clock::SystemClock;
    use ioc_collector::service::{Collector, Parts};
    logs();
    let broker = Broker::with_users(&[("a5", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(broker.port, dir.path(), "pw", Some("collectors"));
    let password = "operator password 1";
    {
        let mut s = reader(dir.path());
        let hash = ioc_collector::auth::hash_password(password).unwrap();
        s.put_user("op", &hash, "operator", "test", 0).unwrap();
    }
    let collector = Collector::start(&cfg, std::sync::Arc::new(SystemClock), Parts::All)
        .await
        .unwrap();
    collector.ingest().unwrap().wait_connected(T).await.unwrap();
    let base = format!("http://{}", collector.http_addr);
    let token = common::login(&base, "op", password).await;
    let mut live = common::sse(&base, &token).await;
    let mut agent = Agent::connect(broker.port, "a5").await;
    // Each event in its own zone: each opens an incident, pushed to the console.
    let mut latencies = Vec::new();
    for seq in 1..=40u64 {
        let at = ioc_collector::incident::ts(ioc_collector::store::now_ms());
        let json = serde_json::json!({
            "schema": "ioc.event/1", "id": format!("a5-{seq}"), "seq": seq, "phase": "instant",
            "agent": "a5", "camera": "gate", "kind": "intrusion", "severity": "critical",
            "rule": "fence", "zone": format!("zone-{seq}"), "observed_at": at.as_str(),
        });
        let sent = Instant::now();
        agent.publish("events", json.to_string().into_bytes()).await;
        let c = common::next_incident(&mut live).await;
        latencies.push(sent.elapsed());
        assert_eq!(c["change"], "opened");
        assert_eq!(c["incident"]["site"], "a5");
        assert_eq!(c["incident"]["place"], format!("zone-{seq}"));
        assert_eq!(c["incident"]["state"], "open");
    }
    agent.wait_acked(1..=40, T).await;
    latencies.sort();
    eprintln!(
        "publish -> console live stream: median {:?}, p99 {:?}, max {:?} (n = {})",
        latencies[latencies.len() / 2],
        latencies[(latencies.len() * 99).div_ceil(100) - 1],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    // The same incident through the API: listed, with its event.
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/incidents?state=open&site=a5&limit=500"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["incidents"].as_array().unwrap().len(), 40);
    // A snapshot for the first incident is served to the console, and only with a session.
    let jpeg = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9".to_vec();
    agent.publish("snapshots/a5-1", jpeg.clone()).await;
    agent.wait_acked_id("a5-1", T).await;
    let url = format!("{base}/api/snapshots/a5/a5-1");
    let r = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.bytes().await.unwrap().to_vec(), jpeg);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    // A dead letter does not stop the live stream.
    agent.publish("events", b"{not json".to_vec()).await;
    agent.publish("events", event("a5", 41)).await;
    let c = common::next_incident(&mut live).await;
    assert_eq!(c["incident"]["kind"], "line_crossing");
    collector.shutdown(Duration::from_secs(10)).await.unwrap();
    assert_eq!(reader(dir.path()).count_dead_letters().unwrap(), 1);
}

/// The collector over TLS to a real mosquitto TLS listener: the right CA connects; a CA that
/// did not sign the broker's certificate is a `mqtt_tls_error` naming the file to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_connects_and_a_wrong_one_is_a_tls_error() {
    logs();
    let pki = tempfile::tempdir().unwrap();
    let (files, wrong) = ioc_testkit::pki::make(pki.path());
    let broker = Broker::options()
        .users(ioc_testkit::mosquitto::users(&[("c", "pw", true)]))
        .tls(&files)
        .start()
        .unwrap();
    let tls_port = broker.tls_port.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with_ca = |ca: &Path| {
        let text = config_text(tls_port, dir.path(), "pw", None)
            .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
            + &format!("[mqtt.tls]\nca_file = \"{}\"\n", ca.display());
        let c = Config::parse(&text, Path::new("test.toml")).unwrap();
        c.validate(Path::new("test.toml")).unwrap();
        c.check_environment(Path::new("test.toml")).unwrap();
        c
    };
    let handle = ingest::start(&with_ca(&files.ca)).unwrap();
    handle.wait_connected(T).await.unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();

    let handle = ingest::start(&with_ca(&wrong[1])).unwrap();
    let mut rx = handle.conn_watch();
    let state = tokio::time::timeout(T, rx.wait_for(|s| matches!(s, ConnState::Failed { .. })))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let ConnState::Failed { kind, message } = state else {
        unreachable!()
    };
    assert_eq!(kind.code(), "mqtt_tls_error", "{message}");
    assert!(message.contains("unrelated-ca.pem"), "{message}");
    handle.shutdown(Duration::from_secs(2)).await.unwrap();
}
