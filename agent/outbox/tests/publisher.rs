//! The publisher against a real mosquitto (password file + per-agent ACL): delivery, acks,
//! resend after the ack timeout and after a broker restart, auth and ACL failures, TLS (CA and
//! server certificate made at test time; a wrong CA), and the Last Will when the agent dies or
//! its link goes silent.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{raw, wait_for, Broker, Proxy};
use ioc_outbox::{
    FailureKind, MqttConfig, Outbox, OutboxConfig, Publisher, PublisherHandle, TlsConfig,
};
use ioc_protocol::{Ack, AgentState, CameraState, CameraStatus, Event, Timestamp};
use rumqttc::QoS;
use tokio::sync::watch;

fn event(agent: &str, seq: u64) -> Event {
    Event::example(agent, seq)
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
        Some(format!("Site {id}")),
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
    let broker = Broker::with_users(&users());
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
    // The acker counts after the rows are deleted: wait for the count too.
    wait_for(10, "acks counted", || a.handle.stats().acked == 4).await;
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
    let broker = Broker::with_users(&users());
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
    let mut broker = Broker::with_users(&users());
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
    broker.restart().unwrap();
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
    let broker = Broker::with_users(&users());
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
    let broker = Broker::with_users(&users());
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

fn tls_cfg(port: u16, ca_file: &Path) -> MqttConfig {
    let mut c = cfg(port, "a1", "pw1");
    c.host = "localhost".into(); // the certificate's DNS name is checked
    c.tls = Some(TlsConfig {
        ca_file: ca_file.to_path_buf(),
        client_cert: None,
        client_key: None,
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_delivers_and_acks() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (files, _) = ioc_testkit::pki::make(pki_dir.path());
    let broker = common::broker_tls(&users(), &files);
    // The collector on the plain listener; the agent over TLS.
    let mut col = raw(
        broker.port,
        "col-tls",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events", "ioc/v1/agents/+/status"],
    )
    .await;
    let a = agent(tls_cfg(broker.tls_port.unwrap(), &files.ca), "a1");
    for _ in 0..2 {
        a.outbox.append_event(|s| event("a1", s)).unwrap();
    }
    a.handle.notify();
    let st = ioc_protocol::parse_agent_status(&next_on(&mut col.rx, "/a1/status").await).unwrap();
    assert_eq!(st.state, AgentState::Online);
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        seqs.push(
            ioc_protocol::parse_event_for("a1", &next_on(&mut col.rx, "/a1/events").await)
                .unwrap()
                .seq,
        );
    }
    assert_eq!(seqs, [1, 2]);
    // Acks come back over the TLS connection's subscription.
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
    wait_for(10, "acks counted", || a.handle.stats().acked == 2).await;
    let s = a.handle.stats();
    assert!(s.connected, "{s:?}");
    assert_eq!((s.connects, s.published, s.acked), (1, 2, 2), "{s:?}");
    assert_eq!(s.last_failure, None, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_wrong_ca_is_a_tls_failure_and_loses_nothing() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (files, wrong_cas) = ioc_testkit::pki::make(pki_dir.path());
    let broker = common::broker_tls(&users(), &files);
    let mut col = raw(
        broker.port,
        "col-tls-2",
        "c",
        "pwc",
        &["ioc/v1/agents/+/events", "ioc/v1/agents/+/status"],
    )
    .await;
    for wrong_ca in &wrong_cas {
        let a = agent(tls_cfg(broker.tls_port.unwrap(), wrong_ca), "a1");
        a.outbox.append_event(|s| event("a1", s)).unwrap();
        a.handle.notify();
        wait_for(10, "tls failure", || {
            a.handle.stats().last_failure.is_some()
        })
        .await;
        let s = a.handle.stats();
        assert_eq!(s.last_failure, Some(FailureKind::Tls), "{s:?}");
        let msg = s.last_error.clone().unwrap();
        assert!(
            msg.starts_with("tls error with mqtt broker localhost:")
                && msg.contains("invalid peer certificate")
                && msg.contains(&format!(
                    "mqtt.tls.ca_file {:?}",
                    wrong_ca.display().to_string()
                )),
            "{msg}"
        );
        assert!(!msg.contains("pw1"), "password must not be shown: {msg}");
        assert!(!s.connected, "{s:?}");
        assert_eq!((s.connects, s.published), (0, 0), "{s:?}");
        // It keeps trying (backoff up to reconnect_max_sec = 0.5 s) and keeps failing the same
        // way; nothing reaches the broker and the event stays in the outbox.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = a.handle.stats();
        assert_eq!(s.last_failure, Some(FailureKind::Tls), "{s:?}");
        assert_eq!(s.connects, 0, "{s:?}");
        assert_eq!(a.outbox.len(), 1);
        assert_eq!(a.outbox.pending(10).unwrap()[0].seq, Some(1));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), col.rx.recv())
            .await
            .is_err(),
        "nothing published"
    );
}

/// The keep-alive the Last Will tests use: the publisher's minimum.
const KEEP_ALIVE_SEC: u64 = 5;

/// mosquitto drops a client it has not heard from for more than 1.5 keep-alive periods and
/// then publishes its will. mosquitto 2.0.11 (Debian 12) counts in whole seconds and looks
/// only every 5 s (the will came 12 s after the last packet with a 5 s keep-alive): 1 s of
/// rounding, 5 s of scan period and 3 s of margin for a busy machine.
fn will_deadline() -> Duration {
    Duration::from_secs_f64(KEEP_ALIVE_SEC as f64 * 1.5 + 1.0 + 5.0 + 3.0)
}

/// The next status of agent `a1` within `within`.
async fn status_within(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    within: Duration,
) -> ioc_protocol::AgentStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (t, p) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no agent status within {within:?}"))
            .expect("channel open");
        if t == "ioc/v1/agents/a1/status" {
            return ioc_protocol::parse_agent_status(&p).unwrap();
        }
    }
}

/// Checks that `will` is the Last Will, not a graceful `offline`: the will is built when the
/// publisher is spawned, before it connects and says `online`.
fn assert_is_will(will: &ioc_protocol::AgentStatus, online: &ioc_protocol::AgentStatus) {
    assert_eq!(will.state, AgentState::Offline);
    assert_eq!(will.version, "0.1.0-test");
    assert_eq!(will.cameras, ["cam-1"]);
    assert!(
        will.at.unix_millis() <= online.at.unix_millis(),
        "offline at {} after online at {}: not the will",
        will.at,
        online.at
    );
}

/// A late subscriber gets the will as the retained status.
async fn assert_retained_offline(port: u16, online: &ioc_protocol::AgentStatus) {
    let mut late = raw(port, "col-late", "c", "pwc", &["ioc/v1/agents/a1/status"]).await;
    let st = status_within(&mut late.rx, Duration::from_secs(5)).await;
    assert_is_will(&st, online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_when_the_agent_dies_without_disconnect() {
    let broker = Broker::with_users(&users());
    let mut col = raw(
        broker.port,
        "col-will",
        "c",
        "pwc",
        &["ioc/v1/agents/+/status"],
    )
    .await;
    let mut c = cfg(broker.port, "a1", "pw1");
    c.keep_alive_sec = KEEP_ALIVE_SEC;
    let Agent {
        outbox: _outbox,
        handle,
        shutdown: _shutdown, // kept: a dropped sender would mean a graceful shutdown
        _dir,
    } = agent(c, "a1");
    let online = status_within(&mut col.rx, Duration::from_secs(10)).await;
    assert_eq!(online.state, AgentState::Online);
    // Dropping the handle aborts the publisher's tasks: rumqttc's socket closes with no
    // DISCONNECT, as when the agent process is killed.
    drop(handle);
    let will = status_within(&mut col.rx, will_deadline()).await;
    assert_is_will(&will, &online);
    assert_retained_offline(broker.port, &online).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_on_keep_alive_timeout_when_the_link_goes_silent() {
    let broker = Broker::with_users(&users());
    let mut col = raw(
        broker.port,
        "col-will-2",
        "c",
        "pwc",
        &["ioc/v1/agents/+/status"],
    )
    .await;
    let proxy = Proxy::start(broker.port).unwrap();
    let mut c = cfg(proxy.port, "a1", "pw1");
    c.keep_alive_sec = KEEP_ALIVE_SEC;
    let a = agent(c, "a1");
    let online = status_within(&mut col.rx, Duration::from_secs(10)).await;
    assert_eq!(online.state, AgentState::Online);
    // No FIN, no RST: only the broker's keep-alive check can notice.
    proxy.freeze();
    let frozen_at = Instant::now();
    let will = status_within(&mut col.rx, will_deadline()).await;
    let waited = frozen_at.elapsed();
    assert_is_will(&will, &online);
    assert!(
        waited >= Duration::from_secs(KEEP_ALIVE_SEC),
        "will after {waited:?}: the link was closed rather than silenced"
    );
    assert_retained_offline(broker.port, &online).await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_says_offline_itself_and_never_fires_the_will() {
    let broker = Broker::with_users(&users());
    let mut col = raw(
        broker.port,
        "col-stop",
        "c",
        "pwc",
        &["ioc/v1/agents/+/status"],
    )
    .await;
    // Repeated: closing the socket right after DISCONNECT once let the broker publish the
    // will (its PUBACK for `offline` hit a closed socket), now and then.
    for round in 0..10 {
        let Agent {
            outbox: _outbox,
            handle,
            shutdown,
            _dir,
        } = agent(cfg(broker.port, "a1", "pw1"), "a1");
        let online = loop {
            let st = status_within(&mut col.rx, Duration::from_secs(10)).await;
            if st.state == AgentState::Online {
                break st;
            }
        };
        shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle.join())
            .await
            .expect("the publisher stops");
        let offline = status_within(&mut col.rx, Duration::from_secs(5)).await;
        assert_eq!(offline.state, AgentState::Offline, "round {round}");
        // (The same millisecond is possible on loopback; the will is dated before `online`.)
        assert!(
            offline.at.unix_millis() >= online.at.unix_millis(),
            "round {round}: the will came, not the agent's own offline ({} < {})",
            offline.at,
            online.at
        );
        // Nothing else follows (a will would).
        let more = tokio::time::timeout(Duration::from_millis(500), col.rx.recv()).await;
        assert!(more.is_err(), "round {round}: {more:?}");
    }
}
