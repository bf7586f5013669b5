//! The `ioc-outbox-loadgen` binary: `kill -9` survival (every `appended` seq is durable, seqs
//! contiguous, it resumes) and a full run against mosquitto with an acking collector.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ioc_outbox::{Outbox, OutboxConfig};

const BIN: &str = env!("CARGO_BIN_EXE_ioc-outbox-loadgen");

fn spawn(
    outbox: &std::path::Path,
    count: u64,
    rate: u64,
    port: u16,
    logs: bool,
) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["--outbox", outbox.to_str().unwrap(), "--agent", "a1"])
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--username", "a1", "--password-env", "LOADGEN_PW"])
        .env("LOADGEN_PW", "pw1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(if logs {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn seq_of(line: &str) -> u64 {
    line.strip_prefix("appended ").unwrap().parse().unwrap()
}

#[test]
fn survives_kill_9_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let no_broker = common::free_port();
    let (mut child, rx) = spawn(&db, 1_000_000, 2000, no_broker, false);
    let mut printed = Vec::new();
    while printed.len() < 300 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("appended lines");
        printed.push(seq_of(&line));
    }
    child.kill().unwrap(); // SIGKILL, mid-stream
    child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        printed.push(seq_of(&line));
    }
    let last = *printed.last().unwrap();
    assert_eq!(printed, (1..=last).collect::<Vec<_>>());

    let ob = Outbox::open(&db, OutboxConfig::default()).unwrap();
    let seqs = ob.seqs().unwrap();
    let k = *seqs.last().unwrap();
    assert!(
        k >= last,
        "every printed seq is durable: printed {last}, stored {k}"
    );
    assert_eq!(seqs, (1..=k).collect::<Vec<_>>(), "contiguous");
    assert_eq!(ob.next_seq().unwrap(), k + 1);
    drop(ob);

    // Same command line with a higher count resumes after k.
    let (mut child, rx) = spawn(&db, k + 20, 2000, no_broker, false);
    let mut more = Vec::new();
    for _ in 0..20 {
        more.push(seq_of(&rx.recv_timeout(Duration::from_secs(20)).unwrap()));
    }
    assert_eq!(more, (k + 1..=k + 20).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(rx.try_recv().is_err(), "nothing past --count");
    let ob = Outbox::open(&db, OutboxConfig::default()).unwrap();
    assert_eq!(ob.seqs().unwrap(), (1..=k + 20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_done_with_an_acking_collector() {
    let broker = common::Broker::with_users(&[("a1", "pw1", false), ("c", "pwc", true)]);
    let mut col = common::raw(broker.port, "col", "c", "pwc", &["ioc/v1/agents/+/events"]).await;
    let client = col.client.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen2 = seen.clone();
    // Keeps running (and acking replays) until the test ends: dropping the collector early
    // would lose acks still queued in its client.
    let acker = tokio::spawn(async move {
        while let Some((topic, payload)) = col.rx.recv().await {
            let agent = topic.split('/').nth(3).unwrap().to_owned();
            let e = ioc_protocol::parse_event_for(&agent, &payload).unwrap();
            seen2.lock().unwrap().insert(e.seq);
            let ack = ioc_protocol::Ack::from_seqs([e.seq]);
            client
                .publish(
                    format!("ioc/v1/agents/{agent}/acks"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&ack).unwrap(),
                )
                .await
                .unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let port = broker.port;
    let (status, lines) = tokio::task::spawn_blocking(move || {
        let (mut child, rx) = spawn(&db, 50, 500, port, true);
        let mut lines = Vec::new();
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
            let done = l == "done";
            lines.push(l);
            if done {
                break;
            }
        }
        // Not done in time: do not leave the child behind.
        if lines.last().map(String::as_str) != Some("done") {
            let _ = child.kill();
        }
        (child.wait().unwrap(), lines)
    })
    .await
    .unwrap();
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:?}");
    assert_eq!(lines.len(), 51);
    assert!(status.success());
    acker.abort();
    let seen: Vec<u64> = seen.lock().unwrap().iter().copied().collect();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
}
