//! Helpers shared by the collector's integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use std::time::{Duration, Instant};

use futures::StreamExt;
use ioc_protocol::{parse_ack, Ack};
use reqwest::{Client, StatusCode};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The database a test runs on: SQLite in the test's directory, or a PostgreSQL server
/// started for the test (Debian's package, a temporary cluster).
pub enum TestDb {
    /// `{dir}/ioc.db`.
    Sqlite,
    /// A server and the database made for this test.
    Postgres {
        /// The server (stopped on drop).
        server: ioc_testkit::postgres::Postgres,
        /// The database's URL (no password).
        url: String,
    },
}

impl TestDb {
    /// Starts a PostgreSQL server with an empty database `name`.
    pub fn postgres(name: &str) -> TestDb {
        let server = ioc_testkit::postgres::Postgres::start(false).unwrap();
        let url = server.create_database(name).unwrap();
        TestDb::Postgres { server, url }
    }

    /// The same on a durable server (fsync and synchronous commit on), for tests that stop
    /// it at once and expect every commit they saw back.
    pub fn postgres_durable(name: &str) -> TestDb {
        let server = ioc_testkit::postgres::Postgres::start(true).unwrap();
        let url = server.create_database(name).unwrap();
        TestDb::Postgres { server, url }
    }

    /// The `[store]` section for a collector whose files live in `dir`.
    pub fn store_toml(&self, dir: &Path) -> String {
        let snaps = dir.join("snapshots");
        match self {
            TestDb::Sqlite => format!(
                "[store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n",
                dir.join("ioc.db").display(),
                snaps.display()
            ),
            TestDb::Postgres { server, url } => format!(
                "[store]\nsnapshot_dir = \"{}\"\n[store.postgres]\nurl = \"{url}\"\n\
                 password_file = \"{}\"\n",
                snaps.display(),
                server.password_file(dir).unwrap().display()
            ),
        }
    }

    /// Opens the store a collector with [`TestDb::store_toml`] uses (a second connection).
    pub fn open(&self, dir: &Path) -> ioc_collector::Store {
        let text = format!(
            "[mqtt]\nhost = \"x\"\nclient_id = \"x\"\n{}",
            self.store_toml(dir)
        );
        let c = ioc_collector::Config::parse(&text, Path::new("test.toml")).unwrap();
        c.store.open().unwrap()
    }
}

/// Logs `user` in at `base`; returns the bearer token.
pub async fn login(base: &str, user: &str, password: &str) -> String {
    let r = Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Reads server-sent events from `/api/stream` into a channel of `(event, data)`.
pub async fn sse(base: &str, token: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    let r = Client::new()
        .get(format!("{base}/api/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        let mut body = r.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut ev = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    let _ = tx.send((ev, serde_json::from_str(&data).unwrap_or(Value::Null)));
                }
            }
        }
    });
    rx
}

pub async fn next_incident(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) -> Value {
    loop {
        let (ev, data) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("live stream message in time")
            .expect("stream open");
        if ev == "incident" {
            return data;
        }
    }
}

/// An instant event of `agent` with `seq` (line crossing at the gate).
pub fn event(agent: &str, seq: u64) -> Vec<u8> {
    format!(
        r#"{{"schema":"ioc.event/1","id":"{agent}-{seq}","seq":{seq},"phase":"instant",
        "agent":"{agent}","camera":"gate","kind":"line_crossing","severity":"info",
        "rule":"count-in","observed_at":"2024-05-01T12:00:00.000Z"}}"#
    )
    .into_bytes()
}

#[allow(unused_imports)]
pub use ioc_testkit::free_port;
pub use ioc_testkit::mosquitto::Mosquitto as Broker;

/// A broker for `(name, password, is_collector)` users with `extra` lines of mosquitto config.
pub fn broker_with(users: &[(&str, &str, bool)], extra: &str) -> Broker {
    Broker::options()
        .users(ioc_testkit::mosquitto::users(users))
        .extra(extra)
        .start()
        .expect("mosquitto")
}

/// A raw agent: publishes as `agent`, and forwards the acks it receives.
pub struct Agent {
    pub client: AsyncClient,
    acks_rx: mpsc::UnboundedReceiver<Ack>,
    agent: String,
    pub acked: BTreeSet<u64>,
    pub acked_ids: BTreeSet<String>,
}

impl Agent {
    pub async fn connect(port: u16, agent: &str) -> Agent {
        let mut o = MqttOptions::new(format!("agent-{agent}"), "127.0.0.1", port);
        // Clip parts are larger than rumqttc's 10 KiB default packet.
        o.set_credentials(agent, "pw")
            .set_inflight(200)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let (up_tx, mut up_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = up_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = acks_tx.send(parse_ack(&p.payload).expect("valid ack"));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(format!("ioc/v1/agents/{agent}/acks"), QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), up_rx.recv())
            .await
            .expect("agent subscribed");
        Agent {
            client,
            acks_rx,
            agent: agent.into(),
            acked: BTreeSet::new(),
            acked_ids: BTreeSet::new(),
        }
    }

    pub async fn publish(&self, suffix: &str, payload: Vec<u8>) {
        self.client
            .publish(
                format!("ioc/v1/agents/{}/{suffix}", self.agent),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    pub async fn events(&self, seqs: impl IntoIterator<Item = u64>) {
        for s in seqs {
            self.publish("events", event(&self.agent, s)).await;
        }
    }

    /// Waits until every seq in `seqs` has been acked since the last `clear`.
    pub async fn wait_acked(&mut self, seqs: impl IntoIterator<Item = u64>, timeout: Duration) {
        let want: BTreeSet<u64> = seqs.into_iter().collect();
        let deadline = tokio::time::Instant::now() + timeout;
        while !want.is_subset(&self.acked) {
            match tokio::time::timeout_at(deadline, self.acks_rx.recv()).await {
                Ok(Some(ack)) => {
                    ack.validate().expect("acks are well-formed");
                    self.acked.extend(ack.iter_seqs());
                    self.acked_ids.extend(ack.ids.iter().cloned());
                }
                _ => panic!(
                    "not acked in {timeout:?}: {:?}",
                    want.difference(&self.acked).take(10).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Like an outbox: re-publishes what is not acked after `resend_after` without progress
    /// (a broker drops QoS 1 messages beyond a subscriber's queue limit, mosquitto's
    /// `max_queued_messages`, default 1000). Returns how many were re-sent.
    pub async fn wait_acked_resending(
        &mut self,
        seqs: std::ops::RangeInclusive<u64>,
        resend_after: Duration,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut resent = 0;
        loop {
            let missing: Vec<u64> = seqs.clone().filter(|s| !self.acked.contains(s)).collect();
            if missing.is_empty() {
                return resent;
            }
            assert!(
                Instant::now() < deadline,
                "not acked: {} seqs",
                missing.len()
            );
            match tokio::time::timeout(resend_after, self.acks_rx.recv()).await {
                Ok(Some(ack)) => self.acked.extend(ack.iter_seqs()),
                Ok(None) => panic!("agent client gone"),
                Err(_) => {
                    resent += missing.len();
                    self.events(missing).await;
                }
            }
        }
    }

    pub async fn wait_acked_id(&mut self, id: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.acked_ids.contains(id) {
            match tokio::time::timeout_at(deadline, self.acks_rx.recv()).await {
                Ok(Some(ack)) => {
                    self.acked.extend(ack.iter_seqs());
                    self.acked_ids.extend(ack.ids.iter().cloned());
                }
                _ => panic!("snapshot {id} not acked"),
            }
        }
    }
}
