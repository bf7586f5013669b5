//! The publisher against a real mosquitto (password file + per-agent ACL): delivery, acks,
//! resend after the ack timeout and after a broker restart, auth and ACL failures.

mod common;

use std::time::Duration;

use common::{raw, wait_for, Broker};
use ioc_outbox::{FailureKind, MqttConfig, Outbox, OutboxConfig, Publisher, PublisherHandle};
use ioc_protocol::{
    incident_id, Ack, AgentState, CameraState, CameraStatus, Event, EventDetails, EventKind, Phase,
    Severity, Timestamp,
};
use rumqttc::QoS;
use tokio::sync::watch;

fn event(agent: &str, seq: u64) -> Event {
    Event {
        schema: ioc_protocol::EVENT_SCHEMA.into(),
        id: incident_id(agent, seq),
        seq,
        phase: Phase::Instant,
        agent: agent.into(),
        camera: "cam-1".into(),
        kind: EventKind::Intrusion,
        severity: Severity::Warning,
        rule: "r1".into(),
        zone: Some("z".into()),
        line: None,
        started_at: None,
        observed_at: Timestamp::now(),
        ended_at: None,
        objects: vec![],
        details: EventDetails::default(),
        snapshot: None,
    }
}

fn users() -> Vec<(&'static str, &'static str, bool)> {
    vec![
        ("a1", "pw1", false),
        ("a2", "pw2", false),
        ("c", "pwc", true),
    ]
}

fn cfg(port: u16, user: &str, pw: &str) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", port);
    c.username = Some(user.into());
    c.password = Some(pw.into());
    c.reconnect_max_sec = 0.5;
    c
}

struct Agent {
    outbox: Outbox,
    handle: PublisherHandle,
    shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn agent(cfg: MqttConfig, id: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("outbox.db"), OutboxConfig::default()).unwrap();
    let (shutdown, rx) = watch::channel(false);
    let handle = Publisher::spawn(
        outbox.clone(),
        cfg,
        id,
        "0.1.0-test",
        vec!["cam-1".into()],
        rx,
    )
    .unwrap();
    Agent {
        outbox,
        handle,
        shutdown,
        _dir: dir,
    }
}

async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    secs: u64,
) -> (String, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .expect("message within timeout")
        .expect("channel open")
}

/// Next message on a topic ending with `suffix`, skipping others.
async fn next_on(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    suffix: &str,
) -> Vec<u8> {
    loop {
        let (t, p) = next(rx, 10).await;
        if t.ends_with(suffix) {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_in_order_and_acks_delete_rows() {
    let broker = Broker::start(&users());
    let mut col = raw(
        broker.port,
        "col-1",
        "c",
        "pwc",
        &[
            "ioc/v1/agents/+/events",
            "ioc/v1/agents/+/snapshots/+",
            "ioc/v1/agents/+/status",
            "ioc/v1/agents/+/cameras/+/status",
        ],
    )
    .await;
    let a = agent(cfg(broker.port, "a1", "pw1"), "a1");
    for _ in 0..3 {
        a.outbox.append_event(|s| event("a1", s)).unwrap();
    }
    assert!(a
        .outbox
        .append_snapshot("a1-1", b"\xFF\xD8jpeg\xFF\xD9")
        .unwrap());
    a.handle.notify();

    let st = ioc_protocol::parse_agent_status(&next_on(&mut col.rx, "/a1/status").await).unwrap();
    assert_eq!(st.state, AgentState::Online);
    let mut seqs = Vec::new();
    let mut snap = None;
    while seqs.len() < 3 || snap.is_none() {
        let (t, p) = next(&mut col.rx, 10).await;
        if t == "ioc/v1/agents/a1/events" {
            seqs.push(ioc_protocol::parse_event_for("a1", &p).unwrap().seq);
        } else if t == "ioc/v1/agents/a1/snapshots/a1-1" {
            snap = Some(p);
        }
    }
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(snap.unwrap(), b"\xFF\xD8jpeg\xFF\xD9");

    // Camera status: retained, latest only.
    let mut cs = CameraStatus::new(CameraState::Streaming, Timestamp::now());
    cs.fps = Some(12.5);
    a.handle.publish_camera_status("cam-1", &cs).unwrap();
    let got =
        ioc_protocol::parse_camera_status(&next_on(&mut col.rx, "/a1/cameras/cam-1/status").await)
            .unwrap();
    assert_eq!(got.state, CameraState::Streaming);

    // Nothing deleted on PUBACK alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.outbox.len(), 4);
    let ack = Ack::new(1..=3, vec!["a1-1".into()]);
    col.client
        .publish(
            "ioc/v1/agents/a1/acks",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&ack).unwrap(),
        )
        .await
        .unwrap();
    wait_for(10, "outbox empty", || a.outbox.is_empty()).await;
    let s = a.handle.stats();
    assert_eq!((s.published, s.acked, s.resent), (4, 4, 0), "{s:?}");
    assert!(s.connected);
    assert_eq!(a.outbox.next_seq().unwrap(), 4);

    // Graceful shutdown publishes a retained offline status.
    a.shutdown.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), a.handle.join())
        .await
        .unwrap();
    let st = ioc_protocol::parse_agent_status(&next_on(&mut col.rx, "/a1/status").await).unwrap();
    assert_eq!(st.state, AgentState::Offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_when_the_collector_does_not_ack() {
    let broker = Broker::start(&users());
    let mut col = raw(
        broker.port,
        "col-2",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events"],
    )
    .await;
    let mut c = cfg(broker.port, "a1", "pw1");
    c.ack_timeout_sec = 0.5;
    let a = agent(c, "a1");
    a.outbox.append_event(|s| event("a1", s)).unwrap();
    a.handle.notify();
    let first = ioc_protocol::parse_event(&next_on(&mut col.rx, "/events").await).unwrap();
    let again = ioc_protocol::parse_event(&next_on(&mut col.rx, "/events").await).unwrap();
    assert_eq!((first.seq, again.seq), (1, 1));
    assert_eq!(first.id, again.id);
    assert!(a.handle.stats().resent >= 1);
    col.client
        .publish(
            "ioc/v1/agents/a1/acks",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&Ack::from_seqs([1])).unwrap(),
        )
        .await
        .unwrap();
    wait_for(10, "outbox empty", || a.outbox.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_everything_unacked_after_a_broker_restart() {
    let mut broker = Broker::start(&users());
    let mut col = raw(
        broker.port,
        "col-3",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events"],
    )
    .await;
    // The new collector below may subscribe after the post-reconnect resend: the ack timeout
    // covers that.
    let mut c = cfg(broker.port, "a1", "pw1");
    c.ack_timeout_sec = 1.0;
    let a = agent(c, "a1");
    a.outbox.append_event(|s| event("a1", s)).unwrap();
    a.handle.notify();
    assert_eq!(
        ioc_protocol::parse_event(&next_on(&mut col.rx, "/events").await)
            .unwrap()
            .seq,
        1
    );
    broker.kill();
    wait_for(10, "disconnect seen", || !a.handle.stats().connected).await;
    a.outbox.append_event(|s| event("a1", s)).unwrap();
    a.handle.notify();
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.restart();
    drop(col);
    let mut col = raw(
        broker.port,
        "col-3b",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events"],
    )
    .await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        seen.insert(
            ioc_protocol::parse_event(&next_on(&mut col.rx, "/events").await)
                .unwrap()
                .seq,
        );
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 2]);
    let s = a.handle.stats();
    assert!(s.connects >= 2, "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
    col.client
        .publish(
            "ioc/v1/agents/a1/acks",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&Ack::from_seqs(1..=2)).unwrap(),
        )
        .await
        .unwrap();
    wait_for(10, "outbox empty", || a.outbox.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_no_broker_are_told_apart() {
    let broker = Broker::start(&users());
    let a = agent(cfg(broker.port, "a1", "wrong"), "a1");
    wait_for(10, "auth failure", || {
        a.handle.stats().last_failure.is_some()
    })
    .await;
    let s = a.handle.stats();
    assert_eq!(s.last_failure, Some(FailureKind::AuthRefused), "{s:?}");
    let msg = s.last_error.unwrap();
    assert!(
        msg.contains("authentication refused") && msg.contains("\"a1\""),
        "{msg}"
    );
    assert!(!msg.contains("wrong"), "password must not be shown: {msg}");
    assert!(!s.connected);
    assert!(!format!("{:?}", cfg(1, "a1", "s3cret")).contains("s3cret"));

    let b = agent(cfg(common::free_port(), "a1", "pw1"), "a1");
    wait_for(10, "refused", || b.handle.stats().last_failure.is_some()).await;
    let s = b.handle.stats();
    assert_eq!(
        s.last_failure,
        Some(FailureKind::ConnectionRefused),
        "{s:?}"
    );
    assert!(s.last_error.unwrap().contains("refused the TCP connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_keeps_an_agent_off_another_agents_topics() {
    let broker = Broker::start(&users());
    let mut col = raw(
        broker.port,
        "col-4",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events"],
    )
    .await;
    // a1, with its own credentials, tries to publish as a2.
    let a1 = raw(broker.port, "a1-raw", "a1", "pw1", &[]).await;
    let forged = serde_json::to_vec(&event("a2", 1)).unwrap();
    a1.client
        .publish("ioc/v1/agents/a2/events", QoS::AtLeastOnce, false, forged)
        .await
        .unwrap();
    let own = serde_json::to_vec(&event("a1", 1)).unwrap();
    a1.client
        .publish("ioc/v1/agents/a1/events", QoS::AtLeastOnce, false, own)
        .await
        .unwrap();
    let (t, _) = next(&mut col.rx, 10).await;
    assert_eq!(t, "ioc/v1/agents/a1/events");
    // Nothing arrives for a2.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), col.rx.recv())
            .await
            .is_err()
    );
    // What mosquitto 2 does with the denied QoS 1 publish under MQTT 3.1.1: it still PUBACKs
    // it (there is no way to say "denied" in 3.1.1) and drops it silently.
    wait_for(5, "two pubacks", || {
        a1.pubacks.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
}
