//! Nothing lost, nothing duplicated: 2,000 events from an agent's durable
//! outbox to the collector's store through a real mosquitto, while the broker
//! is `kill -9`ed twice, the agent's TCP path is cut every second for 30 s, and
//! the agent itself is `kill -9`ed and restarted.
//!
//! Processes: mosquitto (password file + per-agent ACL), `ioc-collector run`,
//! `ioc-outbox-loadgen` (the agent's outbox and publisher, appending synthetic
//! events at a steady rate), and an in-test TCP proxy between agent and broker.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::proxy::TcpProxy;
use ioc_testkit::workspace_binary;

const AGENT: &str = "site-a";
const COUNT: u64 = 2_000;

struct Loadgen {
    child: Child,
    done: Arc<AtomicBool>,
    last: Arc<AtomicU64>,
}

fn loadgen(outbox: &std::path::Path, port: u16) -> Loadgen {
    let mut child = Command::new(workspace_binary("ioc-outbox-loadgen"))
        .args([
            "--outbox",
            outbox.to_str().unwrap(),
            "--agent",
            AGENT,
            "--count",
            &COUNT.to_string(),
        ])
        .args([
            "--rate",
            "50",
            "--port",
            &port.to_string(),
            "--password-env",
            "AGENT_PW",
        ])
        .args(["--ack-timeout-sec", "3", "--reconnect-max-sec", "1"])
        .env("AGENT_PW", "agent-secret")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("ioc-outbox-loadgen starts");
    let done = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let (d, l) = (done.clone(), last.clone());
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line == "done" {
                d.store(true, Ordering::SeqCst);
            } else if let Some(n) = line.strip_prefix("appended ").and_then(|n| n.parse().ok()) {
                l.store(n, Ordering::SeqCst);
            }
        }
    });
    Loadgen { child, done, last }
}

#[test]
fn every_event_is_stored_exactly_once_through_broker_crashes_link_cuts_and_an_agent_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(
        &[
            User::agent(AGENT, "agent-secret"),
            User::collector("central", "collector-secret"),
        ],
        0,
    )
    .unwrap();
    let db = dir.path().join("ioc.db");
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"collector-test\"\nusername = \"central\"\npassword = \"collector-secret\"\n\
             [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n[ingest]\nbatch_max = 200\nbatch_wait_ms = 20\n",
            broker.port,
            db.display(),
            dir.path().join("snapshots").display()
        ),
    )
    .unwrap();
    let mut collector = Command::new(workspace_binary("ioc-collector"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .spawn()
        .expect("ioc-collector starts");
    let proxy = TcpProxy::start(broker.port).unwrap();
    let outbox = dir.path().join("outbox.db");
    let mut agent = loadgen(&outbox, proxy.port);

    let t0 = Instant::now();
    let at = |s: u64| {
        let due = t0 + Duration::from_secs(s);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
    };
    // 2,000 events at 50/s take 40 s; the faults all land inside that window.
    at(4);
    broker.kill();
    at(6);
    broker.restart().unwrap();
    for s in 10..40 {
        at(s);
        proxy.cut();
        if s == 20 {
            broker.kill();
        }
        if s == 22 {
            broker.restart().unwrap();
        }
        if s == 28 {
            let before = agent.last.load(Ordering::SeqCst);
            agent.child.kill().unwrap();
            agent.child.wait().unwrap();
            eprintln!("agent killed after appending {before}");
            agent = loadgen(&outbox, proxy.port);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while !agent.done.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "not every event acknowledged within 3 minutes (last appended {})",
            agent.last.load(Ordering::SeqCst)
        );
        assert!(
            agent.child.try_wait().unwrap().is_none_or(|s| s.success()),
            "loadgen failed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = agent.child.wait();
    eprintln!(
        "all {COUNT} acknowledged after {:?}, {} link cuts",
        t0.elapsed(),
        proxy.cuts.load(Ordering::Relaxed)
    );
    let _ = collector.kill();
    let _ = collector.wait();

    let store = ioc_collector::Store::open(&db, &dir.path().join("snapshots")).unwrap();
    assert_eq!(
        store.count_events(AGENT).unwrap(),
        COUNT,
        "rows for {AGENT}"
    );
    assert_eq!(store.distinct_seqs(AGENT).unwrap(), COUNT, "distinct seqs");
    assert_eq!(
        store.distinct_event_ids(AGENT).unwrap(),
        COUNT,
        "distinct event ids"
    );
    assert_eq!(store.max_seq(AGENT).unwrap(), COUNT);
    assert!(
        store.seq_gaps(AGENT).unwrap().is_empty(),
        "gaps: {:?}",
        store.seq_gaps(AGENT)
    );
}
