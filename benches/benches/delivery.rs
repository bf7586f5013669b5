//! Event delivery throughput and latency: durable outbox → mosquitto →
//! collector store → ack (see benches/README.md).
//!
//! Throughput: `ioc-outbox-loadgen` appends 5,000 events as fast as it can;
//! time until the collector has acknowledged every one (the outbox is empty).
//! Latency: 50 events/s for 10 s; per event, `received_at` in the collector's
//! store minus `observed_at` (set when the agent built the event, just before
//! the outbox append). Reference in the same run: the same events at the same
//! rates through the broker alone (publish QoS 1 to a subscriber) is not
//! measured yet; the figures are absolute on this machine.
//!
//! Needs release binaries: `cargo build --release -p ioc-outbox -p ioc-collector --bins`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::workspace_binary;

fn run(count: u64, rate: f64) -> (f64, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(
        &[User::agent("bench", "pw"), User::collector("central", "pw")],
        0,
    )
    .unwrap();
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
    (count as f64 / secs, lat)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!("## delivery: outbox -> mosquitto -> collector store -> ack");
    let mut rates = Vec::new();
    for _ in 0..3 {
        rates.push(run(5_000, 1e6).0);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "throughput, 5,000 events appended flat out, median of 3: {:.0} events/s (runs {:?})",
        rates[1],
        rates.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    let (_, mut lat) = run(500, 50.0);
    println!(
        "latency at 50 events/s, 500 events, build -> stored: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}
