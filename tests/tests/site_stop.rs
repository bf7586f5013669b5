//! One shutdown for the whole site (issue 25, item 2): an agent with every stage running
//! (two RTSP cameras, detectors, rules, delivery, clips, previews, the publisher on a real
//! broker, the metrics server) is asked to stop within 5 s; it returns in time, every stage
//! reports stopped, and no thread or task of it is left behind.

use std::time::{Duration, Instant};

use ioc_agent::config::AgentConfig;
use ioc_agent::site::Site;
use ioc_testkit::mosquitto::{Mosquitto, User};
use ioc_testkit::{footage, free_port, model_manifest, RtspServer};

/// The names the agent gives its threads (detectors `detect-N`, the rules, delivery,
/// clips, previews, pushed analytics, the decoder waits of file sources).
fn agent_threads() -> Vec<String> {
    let mut names = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm == "rules"
            || comm.starts_with("detect-")
            || comm.starts_with("ioc-")
            || comm == "decode-wait"
        {
            names.push(comm.to_owned());
        }
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_site_stops_within_its_deadline_and_leaves_nothing_running() {
    let rtsp = RtspServer::start(
        &[format!(
            "/vtest={}:h264:loop",
            footage("vtest_h264.mp4").display()
        )],
        0,
        None,
    )
    .unwrap();
    let broker = Mosquitto::start(&[User::agent("stop-site", "agent-pw")], 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cameras: String = ["a", "b"]
        .iter()
        .map(|id| {
            format!(
                "[[cameras]]\nid = \"{id}\"\nurl = \"{}\"\n[cameras.analytics]\n\
                 [[cameras.analytics.zones]]\nname = \"yard\"\n\
                 points = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]\n\
                 [[cameras.analytics.rules]]\nname = \"entry\"\nkind = \"intrusion\"\n\
                 zone = \"yard\"\nclasses = [\"person\"]\n",
                rtsp.url("/vtest")
            )
        })
        .collect();
    let text = format!(
        r#"
[agent]
id = "stop-site"
[detect]
model = "{model}"
fps = 5
[mqtt]
host = "127.0.0.1"
port = {port}
username = "stop-site"
password = "agent-pw"
[outbox]
path = "{outbox}"
[clips]
enabled = true
pre_s = 2
post_s = 2
[preview]
enabled = true
every_sec = 1
[metrics]
listen = "127.0.0.1:{metrics}"
{cameras}
"#,
        model = model_manifest().display(),
        port = broker.port,
        outbox = dir.path().join("outbox.db").display(),
        metrics = free_port(),
    );
    let cfg = AgentConfig::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let before = agent_threads();
    assert_eq!(before, Vec::<String>::new(), "threads before the start");

    let mut site = Site::start(&cfg).await.expect("the site starts");
    // Every stage busy: frames flowing, incidents decided, clips being cut, pictures sent.
    tokio::time::sleep(Duration::from_secs(8)).await;
    site.report();
    let running = agent_threads();
    assert!(
        running.iter().any(|n| n == "rules") && running.iter().any(|n| n == "ioc-delivery"),
        "stages not running: {running:?}"
    );

    let t0 = Instant::now();
    let stopped = site.shutdown(Duration::from_secs(5)).await;
    let took = t0.elapsed();
    eprintln!("the site stopped in {took:?}");
    assert_eq!(stopped, Ok(()), "stages still running at the deadline");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Threads end a moment after they say so (their join returns as they exit).
    let t1 = Instant::now();
    let mut left = agent_threads();
    while !left.is_empty() && t1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = agent_threads();
    }
    assert_eq!(left, Vec::<String>::new(), "threads left behind");
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(tasks, 0, "tokio tasks left behind");
}
