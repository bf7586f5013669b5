//! Event delivery throughput and latency: durable outbox → mosquitto →
//! collector store → ack (see benches/README.md).
//!
//! Throughput: `ioc-outbox-loadgen` appends 5,000 events as fast as it can;
//! time until the collector has acknowledged every one (the outbox is empty).
//! Reference in the same round, on the same broker, just before: the same
//! 5,000 event payloads published QoS 1 by one raw rumqttc client to one raw
//! subscriber (no outbox, no store, no acks); time from the publisher's connect
//! until the subscriber has received every one. The ratio ours/reference is
//! what the outbox, the collector's store and the ack round trip cost.
//! Latency: 50 events/s for 10 s; per event, `received_at` in the collector's
//! store minus `observed_at` (set when the agent built the event, just before
//! the outbox append); absolute on this machine (no reference).
//!
//! Needs release binaries: `cargo build --release -p ioc-outbox -p ioc-collector --bins`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ioc_protocol::Event;
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::workspace_binary;
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Outgoing, Packet, QoS};

/// The event `ioc-outbox-loadgen` appends (agent/outbox/src/bin/loadgen.rs), so the reference
/// publishes payloads of the same shape and size.
fn event(agent: &str, seq: u64) -> Event {
    Event::example(agent, seq)
}

fn options(id: &str, port: u16, user: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, "pw");
    o.set_max_packet_size(4 << 20, 4 << 20);
    o
}

/// Reference: `count` event payloads, QoS 1, from one raw rumqttc client (user `bench`, its
/// own events topic, rumqttc's default 100 in flight) to one raw subscriber (the collector's
/// user). Events/s from the publisher's connect until the subscriber has received them all.
fn reference(port: u16, count: u64) -> f64 {
    let topic = "ioc/v1/agents/bench/events";
    let payloads: Vec<Vec<u8>> = (1..=count)
        .map(|seq| ioc_protocol::encode(&event("bench", seq)).unwrap())
        .collect();
    let (sub, mut sub_conn) = Client::new(options("ref-sub", port, "central"), 100);
    sub.subscribe(topic, QoS::AtLeastOnce).unwrap();
    let (sub_tx, sub_rx) = std::sync::mpsc::channel();
    let counter = std::thread::Builder::new()
        .name("ref-subscriber".into())
        .spawn(move || {
            let mut received = 0u64;
            for ev in sub_conn.iter() {
                match ev {
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(None);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(_))) => {
                        received += 1;
                        if received == count {
                            let _ = sub_tx.send(Some(Instant::now()));
                        }
                    }
                    Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => panic!("reference subscriber: {e}"),
                }
            }
        })
        .unwrap();
    let wait = Duration::from_secs(120);
    assert_eq!(sub_rx.recv_timeout(wait).unwrap(), None, "suback");
    let t0 = Instant::now();
    let (publisher, mut pub_conn) = Client::new(options("ref-pub", port, "bench"), 100);
    let driver = std::thread::Builder::new()
        .name("ref-publisher".into())
        .spawn(move || {
            for ev in pub_conn.iter() {
                match ev {
                    Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => panic!("reference publisher: {e}"),
                }
            }
        })
        .unwrap();
    for p in payloads {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, p)
            .unwrap();
    }
    let done = sub_rx
        .recv_timeout(wait)
        .expect("reference: every event received")
        .unwrap();
    let secs = done.duration_since(t0).as_secs_f64();
    publisher.disconnect().unwrap();
    sub.disconnect().unwrap();
    driver.join().unwrap();
    counter.join().unwrap();
    count as f64 / secs
}

/// One run on a fresh broker: ours (and, with `with_reference`, the reference just before,
/// on the same broker, while nothing else is connected).
fn run(count: u64, rate: f64, with_reference: bool) -> (f64, Vec<f64>, Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(
        &[User::agent("bench", "pw"), User::collector("central", "pw")],
        0,
    )
    .unwrap();
    let reference = with_reference.then(|| reference(broker.port, count));
    let db = dir.path().join("ioc.db");
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"c\"\nusername = \"central\"\npassword = \"pw\"\n\
             [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n",
            broker.port,
            db.display(),
            dir.path().join("s").display()
        ),
    )
    .unwrap();
    let mut collector = Command::new(workspace_binary("ioc-collector"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let t0 = Instant::now();
    let mut gen = Command::new(workspace_binary("ioc-outbox-loadgen"))
        .args([
            "--outbox",
            dir.path().join("o.db").to_str().unwrap(),
            "--agent",
            "bench",
        ])
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(["--port", &broker.port.to_string(), "--password-env", "PW"])
        .env("PW", "pw")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = gen.stdout.take().unwrap();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if line == "done" {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = gen.wait();
    let _ = collector.kill();
    let _ = collector.wait();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT received_at_ms, observed_at FROM events")
        .unwrap();
    let lat: Vec<f64> = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|(rx, obs)| {
            let t = ioc_protocol::Timestamp::parse(&obs).ok()?;
            Some((rx - t.unix_millis()) as f64)
        })
        .collect();
    assert_eq!(lat.len() as u64, count, "every event stored");
    (count as f64 / secs, lat, reference)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!("## delivery: outbox -> mosquitto -> collector store -> ack");
    let mut rates = Vec::new();
    let mut refs = Vec::new();
    for _ in 0..3 {
        let (ours, _, reference) = run(5_000, 1e6, true);
        rates.push(ours);
        refs.extend(reference);
    }
    rates.sort_by(f64::total_cmp);
    refs.sort_by(f64::total_cmp);
    println!(
        "throughput, 5,000 events appended flat out, median of 3: {:.0} events/s (runs {:?})",
        rates[1],
        rates.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!(
        "reference, same payloads, raw rumqttc QoS 1 publisher -> same broker -> raw subscriber, median of 3: {:.0} events/s (runs {:?})",
        refs[1],
        refs.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!("ratio ours/reference (medians): {:.3}", rates[1] / refs[1]);
    let (_, mut lat, _) = run(500, 50.0, false);
    println!(
        "latency at 50 events/s, 500 events, build -> stored: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}
