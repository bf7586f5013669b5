//! The rules thread judges frames on their capture time, so when and in which bursts results
//! reach it does not change what it decides (issue 10: under load, frames that waited behind
//! the detector used to share one "now" and line crossings and dwell times were lost).
//!
//! The same detections (people crossing a line both ways, one loitering in a zone) are fed to
//! the real rules thread three times: on time; late, in bursts and out of order (as parallel
//! detector workers deliver them); and with a fifth of the frames dropped (a busy box).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ioc_agent::analytics::{CameraAnalytics, Output, RulesCamera, RulesWorker};
use ioc_agent::clock::{Epoch, FrameTime};
use ioc_agent::decode::DecodedFrame;
use ioc_agent::detect::{FrameResult, Outcome, TrackerFlags};
use ioc_detect::{BBox, Detection};
use ioc_tracking::{AnalyticsConfig, Phase, RuleKind};

const CONFIG: &str = r#"
counts_interval_sec = 3600
[[zones]]
name = "corner"
points = [[0.05, 0.55], [0.35, 0.55], [0.35, 0.95], [0.05, 0.95]]
[[lines]]
name = "walkway"
points = [[0.5, 0.1], [0.5, 0.95]]
in_side = "left"
[[rules]]
name = "count"
kind = "line_crossing"
line = "walkway"
[[rules]]
name = "loiter"
kind = "loitering"
zone = "corner"
min_duration_sec = 20
"#;

const W: f32 = 640.0;
const H: f32 = 480.0;

/// A person with feet at (x, y), normalised, in a 640×480 frame.
fn person(x: f64, y: f64) -> Detection {
    let (x, y) = (x as f32 * W, y as f32 * H);
    Detection {
        class_id: 0,
        score: 0.9,
        bbox: BBox::new(x - 12.0, y - 70.0, x + 12.0, y),
    }
}

/// Frame k at 10 fps: walkers crossing x = 0.5 every few seconds, both ways; one person
/// arriving in the corner at 5 s and staying 40 s.
fn detections(k: usize) -> Vec<Detection> {
    let t = k as f64 * 0.1;
    let mut v = Vec::new();
    for i in 0..8 {
        let start = 2.0 + i as f64 * 6.0;
        let dt = t - start;
        if (0.0..5.0).contains(&dt) {
            let x = if i % 2 == 0 {
                0.25 + 0.1 * dt
            } else {
                0.75 - 0.1 * dt
            };
            v.push(person(x, 0.3 + 0.05 * i as f64));
        }
    }
    if (5.0..45.0).contains(&t) {
        v.push(person(0.2, 0.8));
    }
    v
}

fn frame(k: usize, epoch: &Epoch) -> DecodedFrame {
    let t_sec = k as f64 * 0.1;
    // Detections are in this frame's pixels.
    DecodedFrame::from_i420(
        W as u32,
        H as u32,
        vec![0; (W * H * 1.5) as usize],
        FrameTime {
            pts: Duration::from_secs_f64(t_sec),
            t_sec,
            wall: epoch.wall_at(t_sec),
        },
    )
}

/// The real rules thread over one camera running [`CONFIG`], reporting to `on_output`.
fn rules_thread(epoch: Epoch, on_output: impl FnMut(Output) + Send + 'static) -> RulesWorker {
    gstreamer::init().unwrap();
    let cfg: AnalyticsConfig = toml::from_str(CONFIG).unwrap();
    let labels: Vec<String> = ["person", "bicycle", "car"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    RulesWorker::spawn(
        vec![RulesCamera {
            analytics: Some(CameraAnalytics::new(&cfg, &labels).unwrap()),
            live: true,
            tracker: Arc::new(TrackerFlags::default()),
        }],
        epoch,
        0,
        on_output,
    )
    .unwrap()
}

/// What the rules decided: (kind, phase, rule time of the event, direction).
type Decided = Vec<(RuleKind, Phase, f64, Option<String>)>;

/// Feeds frames `ks` as results `order` 1, 2, … in `delivery` order (indices into `ks`),
/// calling `pace` before each.
fn run(ks: &[usize], delivery: &[usize], mut pace: impl FnMut(usize)) -> Decided {
    let epoch = Epoch::now();
    let decided: Arc<Mutex<Decided>> = Arc::default();
    let d = decided.clone();
    let rules = rules_thread(epoch, move |o| {
        if let Output::Event { event, .. } = o {
            d.lock().unwrap().push((
                event.kind,
                event.phase,
                event.observed_at_sec,
                event.details.direction.map(|d| format!("{d:?}")),
            ));
        }
    });
    let tx = rules.frame_sender();
    for (n, &i) in delivery.iter().enumerate() {
        pace(n);
        let k = ks[i];
        tx.send(FrameResult {
            camera: 0,
            order: i as u64 + 1,
            frame: frame(k, &epoch),
            outcome: Outcome::Detected(detections(k)),
            latency: Duration::ZERO,
        });
    }
    rules.shutdown();
    let mut v = decided.lock().unwrap().clone();
    v.sort_by(|a, b| a.2.total_cmp(&b.2));
    v
}

/// A small deterministic generator for the delays and drops.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn late_bursty_reordered_and_dropped_results_give_the_same_incidents() {
    let all: Vec<usize> = (0..700).collect();
    let in_order: Vec<usize> = (0..all.len()).collect();
    let reference = run(&all, &in_order, |_| {});
    let crossings = reference
        .iter()
        .filter(|e| e.0 == RuleKind::LineCrossing)
        .count();
    let loiter = reference
        .iter()
        .filter(|e| e.0 == RuleKind::Loitering && e.1 == Phase::Start)
        .count();
    assert_eq!(crossings, 8, "{reference:?}");
    assert_eq!(loiter, 1, "{reference:?}");

    // Late and bursty: pauses of up to 0.8 s (the detector busy with other cameras), then
    // everything at once; two workers finishing out of order.
    let mut delivery = in_order.clone();
    let mut rng = Lcg(7);
    let mut i = 0;
    while i + 1 < delivery.len() {
        if rng.next().is_multiple_of(3) {
            delivery.swap(i, i + 1);
        }
        i += 2;
    }
    let mut rng = Lcg(11);
    let late = run(&all, &delivery, |n| {
        if n.is_multiple_of(40) {
            std::thread::sleep(Duration::from_millis(rng.next() % 800));
        }
    });
    assert_eq!(late, reference, "delivery timing changed the decisions");

    // A busy box: a fifth of the frames never reach the detector.
    let mut rng = Lcg(3);
    let kept: Vec<usize> = all
        .iter()
        .copied()
        .filter(|_| !rng.next().is_multiple_of(5))
        .collect();
    let order: Vec<usize> = (0..kept.len()).collect();
    let dropped = run(&kept, &order, |_| {});
    let summary = |v: &Decided| -> Vec<(RuleKind, Phase, Option<String>)> {
        v.iter().map(|e| (e.0, e.1, e.3.clone())).collect()
    };
    assert_eq!(summary(&dropped), summary(&reference), "{dropped:?}");
    for (a, b) in dropped.iter().zip(&reference) {
        assert!((a.2 - b.2).abs() <= 0.5, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_graceful_stop_reports_the_open_counts_interval() {
    let epoch = Epoch::now();
    // (interval start, end, in, out) of each counts report.
    type Reports = Vec<(f64, f64, u32, u32)>;
    let counts: Arc<Mutex<Reports>> = Arc::default();
    let c = counts.clone();
    let rules = rules_thread(epoch, move |o| {
        if let Output::Counts { report, .. } = o {
            let (i, out) = report
                .counts
                .iter()
                .fold((0, 0), |(i, o), l| (i + l.in_count, o + l.out_count));
            c.lock()
                .unwrap()
                .push((report.start_sec, report.end_sec, i, out));
        }
    });
    let tx = rules.frame_sender();
    // 50 s of frames: every walker has crossed; the hour-long interval is still open.
    for k in 0..500 {
        tx.send(FrameResult {
            camera: 0,
            order: k as u64 + 1,
            frame: frame(k, &epoch),
            outcome: Outcome::Detected(detections(k)),
            latency: Duration::ZERO,
        });
    }
    rules.shutdown();
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), 1, "{counts:?}");
    let (start, end, ins, outs) = counts[0];
    assert_eq!((ins, outs), (4, 4), "{counts:?}");
    assert!(start <= 0.0 && (49.0..3600.0).contains(&end), "{counts:?}");
}
