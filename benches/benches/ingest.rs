//! Collector ingest: store throughput against a raw batched-insert loop, end-to-end ingest
//! through mosquitto, and the latency from an agent's publish to the console's live stream
//! (see benches/README.md).
//!
//! (A) Store: 20,000 validated events (50 zones, so incidents are grouped as in real use)
//!     through `Store::insert_batch` in batches of 500 — idempotent insert, incident grouping,
//!     audit, one transaction per batch, `synchronous = FULL`. Reference, alternating in the
//!     same process: the same rows inserted into the `events` table of a database created by
//!     the same `Store::open` (same schema, indexes, pragmas), by one prepared
//!     `INSERT OR IGNORE` in transactions of 500, `incident_id` included (the ids the store
//!     gave, from an untimed run first): the same rows. 5 rounds each; medians; ratio ours/raw.
//! (A') The same on PostgreSQL (Debian's server, a temporary cluster with default durability
//!     settings, over TCP on loopback): `Store::insert_batch` against one prepared
//!     `INSERT … ON CONFLICT DO NOTHING` per row in transactions of 500, each run on a fresh
//!     database migrated by ``PostgresConfig::open`.
//! (B) End to end: one raw MQTT agent publishes 20,000 events QoS 1 to a real mosquitto; the
//!     collector (ingest + API running) stores them; time until the agent has every ack.
//! (C) Latency: 20 events/s for 10 s, each in its own zone (each opens an incident); time
//!     from the agent's publish to the `incident` message on `/api/stream`.
//!
//! Run: `cargo bench -p ioc-benches --bench ingest [-- sqlite|postgres|e2e]`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ioc_collector::clock::SystemClock;
use ioc_collector::config::PostgresConfig;
use ioc_collector::service::{Collector, Parts};
use ioc_collector::{Config, Ingested, Message, Store};
use ioc_protocol::{parse_ack, parse_event};
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::postgres::Postgres;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

const N: u64 = 20_000;
const BATCH: usize = 500;
const ROUNDS: usize = 5;

fn event_json(agent: &str, seq: u64, zone: u64, at: &str) -> String {
    format!(
        r#"{{"schema":"ioc.event/1","id":"{agent}-{seq}","seq":{seq},"phase":"instant","agent":"{agent}","camera":"gate","kind":"intrusion","severity":"warning","rule":"fence","zone":"zone-{zone}","observed_at":"{at}","objects":[{{"track_id":7,"class":"person","score":0.8,"bbox":[0.1,0.2,0.3,0.4]}}],"details":{{}}}}"#
    )
}

fn rows() -> Vec<Ingested> {
    let at = ioc_protocol::Timestamp::now();
    (1..=N)
        .map(|seq| {
            let json = event_json("bench", seq, seq % 50, at.as_str());
            Ingested {
                received_at_ms: at.unix_millis(),
                message: Message::Event {
                    event: Box::new(parse_event(json.as_bytes()).unwrap()),
                    json,
                },
            }
        })
        .collect()
}

fn ours(rows: &[Ingested]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("ioc.db"), &dir.path().join("snaps")).unwrap();
    insert_all(&mut s, rows)
}

/// Stores `rows` through `insert_batch` in batches; returns events/s.
fn insert_all(s: &mut Store, rows: &[Ingested]) -> f64 {
    let t = Instant::now();
    for chunk in rows.chunks(BATCH) {
        s.insert_batch(chunk).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(s.count_events("bench").unwrap(), N);
    N as f64 / secs
}

/// The incident each event is filed under (by seq), from one untimed run of the store: the
/// raw loops write the same rows, `incident_id` included.
fn incident_ids(rows: &[Ingested]) -> Vec<i64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ioc.db");
    let mut s = Store::open(&path, &dir.path().join("snaps")).unwrap();
    insert_all(&mut s, rows);
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut st = conn
        .prepare("SELECT incident_id FROM events ORDER BY seq")
        .unwrap();
    let ids: Vec<i64> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids.len(), rows.len());
    ids
}

fn raw(rows: &[Ingested], incident_of: &[i64]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ioc.db");
    drop(Store::open(&path, &dir.path().join("snaps")).unwrap());
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .unwrap();
    let t = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (agent, seq, event_id, phase, kind, camera, \
                     severity, observed_at, observed_at_ms, payload, received_at_ms, \
                     incident_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .unwrap();
            for r in chunk {
                let Message::Event { event: e, json } = &r.message else {
                    unreachable!()
                };
                st.execute(rusqlite::params![
                    e.agent,
                    e.seq as i64,
                    e.id,
                    "instant",
                    e.kind.as_str(),
                    e.camera,
                    "warning",
                    e.observed_at.as_str(),
                    e.observed_at.unix_millis(),
                    json,
                    r.received_at_ms,
                    incident_of[e.seq as usize - 1],
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    N as f64 / t.elapsed().as_secs_f64()
}

fn pg_config(server: &Postgres, db: &str, dir: &std::path::Path) -> PostgresConfig {
    PostgresConfig {
        url: server.url(db),
        password_file: Some(server.password_file(dir).unwrap()),
        password: None,
        connect_timeout_sec: 10,
        tls: None,
    }
}

fn ours_pg(server: &Postgres, round: usize, rows: &[Ingested]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("ours{round}");
    server.create_database(&db).unwrap();
    let mut s = pg_config(server, &db, dir.path()).open(dir.path()).unwrap();
    insert_all(&mut s, rows)
}

fn raw_pg(server: &Postgres, round: usize, rows: &[Ingested], incident_of: &[i64]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("raw{round}");
    server.create_database(&db).unwrap();
    let config = pg_config(server, &db, dir.path());
    drop(config.open(dir.path()).unwrap());
    let mut client = config
        .client_config()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let st = client
        .prepare(
            "INSERT INTO events (agent, seq, event_id, phase, kind, camera, severity, \
             observed_at, observed_at_ms, payload, received_at_ms, incident_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .unwrap();
    let t = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let mut tx = client.transaction().unwrap();
        for r in chunk {
            let Message::Event { event: e, json } = &r.message else {
                unreachable!()
            };
            tx.execute(
                &st,
                &[
                    &e.agent,
                    &(e.seq as i64),
                    &e.id,
                    &"instant",
                    &e.kind.as_str(),
                    &e.camera,
                    &"warning",
                    &e.observed_at.as_str(),
                    &e.observed_at.unix_millis(),
                    json,
                    &r.received_at_ms,
                    &incident_of[e.seq as usize - 1],
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    N as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn agent(port: u16) -> (AsyncClient, tokio::sync::mpsc::UnboundedReceiver<Vec<u64>>) {
    let mut o = MqttOptions::new("bench-agent", "127.0.0.1", port);
    o.set_credentials("bench", "pw").set_inflight(1000);
    let (client, mut el) = AsyncClient::new(o, 10_000);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                    let _ = up_tx.send(());
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    if let Ok(a) = parse_ack(&p.payload) {
                        let _ = tx.send(a.iter_seqs().collect());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    client
        .subscribe("ioc/v1/agents/bench/acks", QoS::AtLeastOnce)
        .await
        .unwrap();
    up_rx.recv().await.unwrap();
    (client, rx)
}

async fn end_to_end_and_latency() {
    let broker =
        Mosquitto::start(&[User::agent("bench", "pw"), User::collector("c", "pw")], 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"bench-collector\"\n\
         username = \"c\"\npassword = \"pw\"\n[store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        broker.port,
        dir.path().join("ioc.db").display(),
        dir.path().join("snaps").display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("bench.toml")).unwrap();
    {
        let mut s = Store::open(&cfg.store.path, &cfg.store.snapshot_dir).unwrap();
        let h = ioc_collector::auth::hash_password("bench password").unwrap();
        s.put_user("bench", &h, "viewer", "bench", 0).unwrap();
    }
    let collector = Collector::start(&cfg, Arc::new(SystemClock), Parts::All)
        .await
        .unwrap();
    collector
        .ingest()
        .unwrap()
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let (client, mut acks) = agent(broker.port).await;

    // (B)
    let at = ioc_protocol::Timestamp::now();
    let t = Instant::now();
    for seq in 1..=N {
        client
            .publish(
                "ioc/v1/agents/bench/events",
                QoS::AtLeastOnce,
                false,
                event_json("bench", seq, seq % 50, at.as_str()).into_bytes(),
            )
            .await
            .unwrap();
    }
    let mut acked = BTreeSet::new();
    while (acked.len() as u64) < N {
        let seqs = tokio::time::timeout(Duration::from_secs(60), acks.recv())
            .await
            .expect("acks keep coming")
            .unwrap();
        acked.extend(seqs);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "(B) end to end: {N} events published QoS 1 -> mosquitto -> collector -> acked: \
         {:.0} events/s ({secs:.2} s)",
        N as f64 / secs
    );

    // (C)
    let base = format!("http://{}", collector.http_addr);
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "bench", "password": "bench password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let r = http
        .get(format!("{base}/api/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    tokio::spawn(async move {
        let mut body = r.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) {
                        if let Some(place) = v["incident"]["place"].as_str() {
                            let _ = seen_tx.send((place.to_owned(), now));
                        }
                    }
                }
            }
        }
    });
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..200u64 {
        tick.tick().await;
        let seq = N + 1 + i;
        let zone = format!("lat-{i}");
        let json = event_json("bench", seq, 0, ioc_protocol::Timestamp::now().as_str())
            .replace("\"zone-0\"", &format!("\"{zone}\""));
        let sent = Instant::now();
        client
            .publish(
                "ioc/v1/agents/bench/events",
                QoS::AtLeastOnce,
                false,
                json.into_bytes(),
            )
            .await
            .unwrap();
        loop {
            let (place, when) = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
                .await
                .expect("live message")
                .unwrap();
            if place == zone {
                latencies.push(when - sent);
                break;
            }
        }
    }
    latencies.sort();
    println!(
        "(C) publish -> console live stream, 20 events/s: median {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms (n = {})",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
        latencies.len()
    );
    collector.shutdown(Duration::from_secs(10)).await.unwrap();
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`: nothing to measure then.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    // `cargo bench --bench ingest -- sqlite|postgres|e2e` runs one part; no filter runs all.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |part: &str| filter.is_empty() || filter.iter().any(|f| part.contains(f.as_str()));
    let rows = rows();
    let incident_of = incident_ids(&rows);
    if run("sqlite") {
        store_sqlite(&rows, &incident_of);
    }
    if run("postgres") {
        store_postgres(&rows, &incident_of);
    }
    if run("e2e") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(end_to_end_and_latency());
    }
}

fn store_sqlite(rows: &[Ingested], incident_of: &[i64]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(raw(rows, incident_of));
        a.push(ours(rows));
    }
    let (ma, mb) = (median(a.clone()), median(b.clone()));
    println!(
        "(A) store, {N} events in batches of {BATCH}, {ROUNDS} rounds: insert_batch {ma:.0} \
         events/s (rounds {a:.0?}); raw batched INSERT {mb:.0} events/s (rounds {b:.0?}); \
         ratio {:.2}",
        ma / mb
    );
}

fn store_postgres(rows: &[Ingested], incident_of: &[i64]) {
    let server = Postgres::start(true).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        b.push(raw_pg(&server, round, rows, incident_of));
        a.push(ours_pg(&server, round, rows));
    }
    let (ma, mb) = (median(a.clone()), median(b.clone()));
    println!(
        "(A') PostgreSQL, {N} events in batches of {BATCH}, {ROUNDS} rounds: insert_batch \
         {ma:.0} events/s (rounds {a:.0?}); raw batched INSERT {mb:.0} events/s \
         (rounds {b:.0?}); ratio {:.2}",
        ma / mb
    );
}
