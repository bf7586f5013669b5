//! Tracking and rules on real footage against a hand-annotated ground truth
//! (tests/data/vtest_ground_truth.toml): people counted across a line in each
//! direction, entries into a zone, and one person loitering in it.
//!
//! The clip runs as a file source at its own timestamps (flat out), through
//! the real decoder, the real model at 5 fps, the tracker and the rules.

use std::sync::{Arc, Mutex};

use ioc_agent::agent::{load_detectors, Agent};
use ioc_agent::analytics::Output;
use ioc_agent::config::AgentConfig;
use ioc_agent::source::CameraState;
use ioc_testkit::{footage, model_manifest, workspace_root};
use ioc_tracking::rules::config::CrossDirection;
use ioc_tracking::{Phase, RuleEvent, RuleKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct Truth {
    stretch: Stretch,
    line: Line,
    zone: Zone,
}
#[derive(Deserialize)]
struct Stretch {
    start_sec: f64,
    end_sec: f64,
}
#[derive(Deserialize)]
struct Line {
    name: String,
    points: Vec<[f64; 2]>,
    in_side: String,
    counts: Counts,
    crossings: Vec<Crossing>,
}
#[derive(Deserialize)]
struct Counts {
    #[serde(rename = "in")]
    inward: u32,
    out: u32,
}
#[derive(Deserialize)]
struct Crossing {
    t_sec: f64,
    direction: String,
}
#[derive(Deserialize)]
struct Zone {
    name: String,
    points: Vec<[f64; 2]>,
    loiter_threshold_sec: f64,
    entry_count: usize,
    loitering_count: usize,
}

fn points(p: &[[f64; 2]]) -> String {
    let v: Vec<String> = p.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
    format!("[{}]", v.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vtest_line_counts_zone_entries_and_loitering_match_the_hand_annotation() {
    let truth: Truth = toml::from_str(
        &std::fs::read_to_string(workspace_root().join("tests/data/vtest_ground_truth.toml"))
            .unwrap(),
    )
    .unwrap();
    let (l, z) = (&truth.line, &truth.zone);
    let text = format!(
        r#"
[agent]
id = "vtest"
log_detections = false
[detect]
model = "{model}"
fps = 5
classes = ["person"]
[[cameras]]
id = "vtest"
file = "{file}"
realtime = false
[cameras.analytics]
counts_interval_sec = 3600
[[cameras.analytics.zones]]
name = "{zone}"
points = {zone_points}
[[cameras.analytics.lines]]
name = "{line}"
points = {line_points}
in_side = "{in_side}"
[[cameras.analytics.rules]]
name = "count"
kind = "line_crossing"
line = "{line}"
classes = ["person"]
[[cameras.analytics.rules]]
name = "entry"
kind = "intrusion"
zone = "{zone}"
classes = ["person"]
[[cameras.analytics.rules]]
name = "loiter"
kind = "loitering"
zone = "{zone}"
classes = ["person"]
min_duration_sec = {loiter}
"#,
        model = model_manifest().display(),
        file = footage("vtest.avi").display(),
        zone = z.name,
        zone_points = points(&z.points),
        line = l.name,
        line_points = points(&l.points),
        in_side = l.in_side,
        loiter = z.loiter_threshold_sec,
    );
    let cfg = AgentConfig::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let events: Arc<Mutex<Vec<RuleEvent>>> = Arc::default();
    let ev = events.clone();
    let agent = Agent::start(
        &cfg,
        load_detectors(&cfg).unwrap(),
        |_| {},
        move |o| {
            if let Output::Event { event, .. } = o {
                ev.lock().unwrap().push(*event);
            }
        },
    )
    .unwrap();
    let mut status = agent.cameras[0].handle.status.clone();
    tokio::time::timeout(
        std::time::Duration::from_secs(600),
        status.wait_for(|s| s.state == CameraState::Stopped),
    )
    .await
    .expect("the clip is processed within 10 minutes")
    .unwrap();
    agent
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .expect("the agent stops in time");

    // Only what the annotation covers (a crossing is confirmed a few frames after it happens).
    let within = |e: &&RuleEvent| {
        e.observed_at_sec >= truth.stretch.start_sec
            && e.observed_at_sec <= truth.stretch.end_sec + 1.0
    };
    let events = events.lock().unwrap().clone();
    let mut seen: Vec<&RuleEvent> = events.iter().filter(within).collect();
    seen.sort_by(|a, b| a.observed_at_sec.total_cmp(&b.observed_at_sec));
    for e in &seen {
        eprintln!(
            "{:7.2}s {:?} {:?} {} {:?} tracks {:?}",
            e.observed_at_sec,
            e.kind,
            e.phase,
            e.rule,
            e.details.direction,
            e.objects.iter().map(|o| o.track_id).collect::<Vec<_>>()
        );
    }
    let crossings: Vec<&&RuleEvent> = seen
        .iter()
        .filter(|e| e.kind == RuleKind::LineCrossing)
        .collect();
    let parse = |d: &str| {
        if d == "in" {
            CrossDirection::In
        } else {
            CrossDirection::Out
        }
    };
    let dir = |d: &str| {
        crossings
            .iter()
            .filter(|e| e.details.direction == Some(parse(d)))
            .count() as u32
    };
    let (got_in, got_out) = (dir("in"), dir("out"));
    eprintln!(
        "line: in {got_in} (truth {}), out {got_out} (truth {})",
        l.counts.inward, l.counts.out
    );
    // Every annotated crossing is matched by one of ours within 1.5 s, in the same direction:
    // the same person, not just the same number.
    for c in &l.crossings {
        let hit = crossings.iter().any(|e| {
            (e.observed_at_sec - c.t_sec).abs() <= 1.5
                && e.details.direction == Some(parse(&c.direction))
        });
        assert!(
            hit,
            "annotated crossing at {}s ({}) not found",
            c.t_sec, c.direction
        );
    }
    assert_eq!(
        (got_in, got_out),
        (l.counts.inward, l.counts.out),
        "line counts"
    );

    let entries = seen
        .iter()
        .filter(|e| e.kind == RuleKind::Intrusion && e.phase == Phase::Start)
        .count();
    let loiters = seen
        .iter()
        .filter(|e| e.kind == RuleKind::Loitering && e.phase == Phase::Start)
        .count();
    eprintln!(
        "zone: {entries} entries (truth {}), {loiters} loitering (truth {})",
        z.entry_count, z.loitering_count
    );
    assert_eq!(entries, z.entry_count, "zone entries");
    assert_eq!(loiters, z.loitering_count, "loitering incidents");
}
