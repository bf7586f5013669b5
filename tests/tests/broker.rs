//! The broker as shipped (`config/mosquitto.conf`, `config/mosquitto.acl`) and as the test
//! kit runs it: an ACL that refuses a publish loses nothing that follows.

use std::time::Duration;

use ioc_testkit::mosquitto::{Mosquitto, QUEUED};
use ioc_testkit::mqtt::raw;
use rumqttc::QoS;

#[test]
fn the_kit_queues_as_the_shipped_broker_config() {
    let conf = std::fs::read_to_string(ioc_testkit::workspace_root().join("config/mosquitto.conf"))
        .unwrap();
    assert!(
        conf.lines()
            .any(|l| l.trim() == format!("max_queued_messages {QUEUED}")),
        "config/mosquitto.conf and the test kit disagree on max_queued_messages"
    );
}

/// Mosquitto 2.0.11 (Debian 12) with `max_queued_messages 0` drops the message that follows
/// a QoS 1 publish its ACL denied (found when the agent's ACL test moved to this kit); the
/// bound the shipped config uses does not.
#[tokio::test]
async fn queue_bound_keeps_what_follows_a_denied_publish() {
    let b = Mosquitto::with_users(&[
        ("a1", "pw1", false),
        ("a2", "pw2", false),
        ("c", "pwc", true),
    ]);
    let mut col = raw(b.port, "col", "c", "pwc", &["ioc/v1/agents/+/events"]).await;
    let a1 = raw(b.port, "a1-raw", "a1", "pw1", &[]).await;
    a1.client
        .publish(
            "ioc/v1/agents/a2/events",
            QoS::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await
        .unwrap();
    for i in 0..3u8 {
        a1.client
            .publish("ioc/v1/agents/a1/events", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while let Ok(Some((topic, payload))) =
        tokio::time::timeout(Duration::from_secs(2), col.rx.recv()).await
    {
        got.push((topic, payload));
    }
    let want: Vec<(String, Vec<u8>)> = (0..3u8)
        .map(|i| ("ioc/v1/agents/a1/events".to_owned(), vec![i]))
        .collect();
    assert_eq!(got, want);
}
