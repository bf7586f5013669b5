//! A slow disk does not slow the rules (issue 25, item 3): with every outbox commit taking
//! 200 ms longer (a worn SD card; the real SQLite file calls still run), the agent still
//! analyses its camera at the detection rate, the rules thread hands its outputs to the
//! delivery thread without waiting, and every event and snapshot reaches the outbox.
//!
//! Real footage (vtest, paced as a live camera), the real model, tracker and rules, the real
//! outbox and publisher (no broker: everything waits on disk, as during an outage).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioc_agent::agent::{load_detectors, Agent};
use ioc_agent::analytics::Output;
use ioc_agent::config::AgentConfig;
use ioc_agent::delivery::{CameraMeta, Delivery};
use ioc_agent::snapshot::SnapshotConfig;
use ioc_outbox::{EntryKind, Outbox, OutboxConfig, Publisher};
use ioc_testkit::{footage, model_manifest};

const SLOW: Duration = Duration::from_millis(200);
const RUN: Duration = Duration::from_secs(40);
const FPS: f64 = 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_holds_up_neither_the_rules_nor_the_detectors_and_loses_nothing() {
    // People entering a zone over most of the picture (a snapshot each) and crossing a line.
    let text = format!(
        r#"
[agent]
id = "slow-site"
log_detections = false
[detect]
model = "{model}"
fps = {FPS}
classes = ["person"]
[[cameras]]
id = "vtest"
file = "{file}"
realtime = true
[cameras.analytics]
[[cameras.analytics.zones]]
name = "yard"
points = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]
[[cameras.analytics.lines]]
name = "walk"
points = [[0.0, 0.55], [1.0, 0.55]]
in_side = "left"
[[cameras.analytics.rules]]
name = "entry"
kind = "intrusion"
zone = "yard"
classes = ["person"]
[[cameras.analytics.rules]]
name = "count"
kind = "line_crossing"
line = "walk"
classes = ["person"]
"#,
        model = model_manifest().display(),
        file = footage("vtest.avi").display(),
    );
    let cfg = AgentConfig::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("outbox.db"), OutboxConfig::default()).unwrap();
    outbox.simulate_slow_disk(SLOW);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Nothing listens on port 1: the publisher keeps retrying, the outbox keeps everything.
    let mqtt = toml::from_str("host = \"127.0.0.1\"\nport = 1").unwrap();
    let publisher = Arc::new(
        Publisher::spawn(
            outbox.clone(),
            mqtt,
            "slow-site",
            None,
            "test",
            vec!["vtest".into()],
            stop_rx,
        )
        .unwrap(),
    );
    let delivery = Delivery::new(
        outbox.clone(),
        publisher,
        "slow-site",
        vec![CameraMeta::new("vtest", None)],
        SnapshotConfig::default(),
    );
    let (mut queue, thread) = delivery.spawn(32).unwrap();
    let stats = queue.stats();

    let results = Arc::new(AtomicU64::new(0));
    let (events, with_snapshot) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rules_waited = Arc::new(Mutex::new(Duration::ZERO));
    let agent = {
        let (results, events, with_snapshot, rules_waited) = (
            results.clone(),
            events.clone(),
            with_snapshot.clone(),
            rules_waited.clone(),
        );
        Agent::start(
            &cfg,
            load_detectors(&cfg).unwrap(),
            move |_| {
                results.fetch_add(1, Ordering::Relaxed);
            },
            move |o| {
                if let Output::Event { event, frame, .. } = &o {
                    events.fetch_add(1, Ordering::Relaxed);
                    let first = matches!(
                        event.phase,
                        ioc_tracking::Phase::Start | ioc_tracking::Phase::Instant
                    );
                    if first && frame.is_some() {
                        with_snapshot.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let t0 = Instant::now();
                queue.send(o);
                *rules_waited.lock().unwrap() += t0.elapsed();
            },
        )
        .unwrap()
    };
    // Warm-up, then the rate over the run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (r0, t0) = (results.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(RUN).await;
    let rate = (results.load(Ordering::Relaxed) - r0) as f64 / t0.elapsed().as_secs_f64();
    agent
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the agent stops in time");
    // The rules thread is gone with its end of the queue: delivery writes what is left.
    let drained = Instant::now();
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap();

    let (events, with_snapshot) = (
        events.load(Ordering::Relaxed),
        with_snapshot.load(Ordering::Relaxed),
    );
    let waited = *rules_waited.lock().unwrap();
    let kinds: Vec<EntryKind> = outbox
        .pending(100_000)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    let stored = |k: EntryKind| kinds.iter().filter(|&&x| x == k).count() as u64;
    eprintln!(
        "detections {rate:.2}/s (target {FPS}); {events} events, {with_snapshot} with a snapshot; \
         rules waited {waited:?} in all ({} waits for room); outbox: {} events, {} snapshots; \
         delivery finished {:?} after the rules stopped",
        stats.waits(),
        stored(EntryKind::Event),
        stored(EntryKind::Snapshot),
        drained.elapsed()
    );
    // Enough incidents that writing them on the rules thread would have cost it seconds
    // (two commits of 200 ms for each with a snapshot).
    assert!(
        with_snapshot >= 10,
        "too few incidents to load the disk: {with_snapshot}"
    );
    let on_the_rules_thread = SLOW * (events + with_snapshot) as u32;
    assert!(
        waited < on_the_rules_thread / 10 && waited < Duration::from_secs(1),
        "the rules waited {waited:?} for the disk (writing on their thread: {on_the_rules_thread:?})"
    );
    assert!(
        rate >= 0.9 * FPS,
        "detections fell to {rate:.2}/s with a slow disk"
    );
    assert_eq!(
        stored(EntryKind::Event),
        events,
        "every event in the outbox"
    );
    assert_eq!(
        stored(EntryKind::Snapshot),
        with_snapshot,
        "every snapshot in the outbox"
    );
}
