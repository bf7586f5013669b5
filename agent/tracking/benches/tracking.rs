//! Per-frame cost of the tracker and the rule engine at 50 moving objects, with a realistic
//! rule set (three zones, two lines, every object rule kind), plus the looks of 50 boxes
//! (and the tracker comparing them), and the tamper measure of one luma frame. Detections are precomputed outside the timed loop on smooth periodic paths, so
//! cycling through them never teleports an object.

use std::f64::consts::TAU;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ioc_tracking::rules::{EngineOutput, LumaFrame};
use ioc_tracking::{
    Analytics, AnalyticsConfig, Appearance, BBox, Detection, FrameInfo, LocalTime, Tracker,
    TrackerConfig, Weekday,
};

const CONFIG: &str = r#"
    counts_interval_sec = 60
    [[zones]]
    name = "yard"
    points = [[0.05, 0.5], [0.45, 0.5], [0.45, 0.95], [0.05, 0.95]]
    [[zones]]
    name = "road"
    points = [[0.5, 0.3], [0.95, 0.3], [0.95, 0.95], [0.5, 0.95]]
    [[zones]]
    name = "plaza"
    points = [[0.1, 0.1], [0.5, 0.05], [0.6, 0.45], [0.2, 0.5]]
    [[lines]]
    name = "gate"
    points = [[0.1, 0.5], [0.9, 0.5]]
    in_side = "right"
    [[lines]]
    name = "crossing"
    points = [[0.5, 0.1], [0.5, 0.9]]
    in_side = "left"
    [[rules]]
    name = "intrusion"
    kind = "intrusion"
    zone = "yard"
    classes = ["person"]
    cooldown_sec = 30
    [[rules]]
    name = "gate in"
    kind = "line_crossing"
    line = "gate"
    direction = "in"
    [[rules]]
    name = "loitering"
    kind = "loitering"
    zone = "plaza"
    classes = ["person"]
    min_duration_sec = 30
    [[rules]]
    name = "crowd"
    kind = "crowd"
    zone = "plaza"
    classes = ["person"]
    min_count = 8
    min_duration_sec = 10
    [[rules]]
    name = "parking"
    kind = "stopped_vehicle"
    zone = "road"
    classes = ["car"]
    max_speed = 0.01
    min_duration_sec = 60
    [[rules]]
    name = "wrong way"
    kind = "wrong_way"
    zone = "road"
    classes = ["car"]
    lane_direction_deg = 90
    [[rules]]
    name = "queue"
    kind = "congestion"
    zone = "road"
    classes = ["car"]
    min_count = 5
    max_speed = 0.02
    min_duration_sec = 30
    [[rules]]
    name = "tamper"
    kind = "camera_tamper"
    [[rules]]
    name = "offline"
    kind = "camera_offline"
"#;

const PERIOD: usize = 1000;
const OBJECTS: usize = 50;

fn frames() -> Vec<Vec<Detection>> {
    (0..PERIOD)
        .map(|k| {
            let ph = TAU * k as f64 / PERIOD as f64;
            (0..OBJECTS)
                .map(|i| {
                    let fi = i as f64;
                    let car = i % 5 < 2; // 20 cars, 30 people
                                         // Lissajous paths with integer frequencies: periodic over PERIOD frames.
                    let m = 1.0 + (i % 3) as f64;
                    let x = 0.5 + 0.4 * (m * ph + fi * 0.7).sin();
                    let y = 0.55 + 0.35 * ((m + 1.0) * ph + fi * 1.3).cos();
                    let (w, h) = if car { (0.08, 0.06) } else { (0.03, 0.1) };
                    Detection {
                        class_id: if car { 2 } else { 0 },
                        score: 0.55 + 0.4 * ((fi * 0.37).sin().abs() as f32),
                        bbox: BBox::new(
                            (x - w / 2.0) as f32,
                            (y - h) as f32,
                            (x + w / 2.0) as f32,
                            y as f32,
                        ),
                        look: None,
                    }
                })
                .collect()
        })
        .collect()
}

fn class_names() -> Vec<String> {
    ["person", "bicycle", "car"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let cfg: AnalyticsConfig = toml::from_str(CONFIG).expect("bench config parses");
    let local = LocalTime::new(Weekday::Wed, 12, 0);

    let mut g = c.benchmark_group("per_frame_50_objects");
    g.throughput(Throughput::Elements(1));

    let mut a = Analytics::build(&cfg, &class_names()).expect("bench config is valid");
    let mut out = EngineOutput::default();
    let mut k = 0u64;
    let step = |a: &mut Analytics, out: &mut EngineOutput, k: &mut u64| {
        let info = FrameInfo {
            t_sec: *k as f64 * 0.2,
            frame: *k,
            local,
        };
        a.process_frame(&info, &frames[*k as usize % PERIOD], out);
        out.clear();
        *k += 1;
    };
    // Warm up outside timing: tracks confirmed, buffers grown.
    for _ in 0..PERIOD {
        step(&mut a, &mut out, &mut k);
    }
    g.bench_function("tracker_and_rules", |b| {
        b.iter(|| step(&mut a, &mut out, &mut k))
    });

    let mut tr = Tracker::new(TrackerConfig::default(), None);
    let mut k = 0u64;
    for _ in 0..PERIOD {
        tr.update(k as f64 * 0.2, k, &frames[k as usize % PERIOD]);
        k += 1;
    }
    g.bench_function("tracker_only", |b| {
        b.iter(|| {
            tr.update(k as f64 * 0.2, k, &frames[k as usize % PERIOD]);
            k += 1;
        })
    });
    g.finish();

    // Looks of every detection of a busy frame (what the agent measures on each detected
    // frame before tracking): the 50 boxes above on a 1280×720 frame.
    let (w, h) = (1280usize, 720usize);
    let pixel = |x: usize, y: usize| {
        [
            ((x / 7 * 13 + y / 5 * 29) % 220 + 16) as u8,
            (x / 3 % 255) as u8,
            (y / 2 % 255) as u8,
        ]
    };
    let mut boxes = frames[0].clone();
    c.bench_function("looks_50_boxes_1280x720", |b| {
        b.iter(|| {
            for d in boxes.iter_mut() {
                d.look = Appearance::measure(d.bbox, w, h, pixel);
            }
        })
    });
    // The tracker with looks on every detection (the association compares them).
    let looked: Vec<Vec<Detection>> = frames
        .iter()
        .map(|f| {
            f.iter()
                .map(|d| Detection {
                    look: Appearance::measure(d.bbox, w, h, pixel),
                    ..*d
                })
                .collect()
        })
        .collect();
    let mut tr = Tracker::new(TrackerConfig::default(), None);
    let mut k = 0u64;
    for _ in 0..PERIOD {
        tr.update(k as f64 * 0.2, k, &looked[k as usize % PERIOD]);
        k += 1;
    }
    c.bench_function("tracker_only_with_looks", |b| {
        b.iter(|| {
            tr.update(k as f64 * 0.2, k, &looked[k as usize % PERIOD]);
            k += 1;
        })
    });

    // Tamper measures of one 1280×720 luma frame (run about once a second per camera).
    let img: Vec<u8> = (0..w * h)
        .map(|i| ((i % w) / 7 * 13 + (i / w) / 5 * 29) as u8)
        .collect();
    let mut a = Analytics::build(&cfg, &class_names()).expect("bench config is valid");
    let mut t = 0.0;
    c.bench_function("tamper_luma_1280x720", |b| {
        b.iter(|| {
            let info = FrameInfo {
                t_sec: t,
                frame: 0,
                local,
            };
            let f = LumaFrame {
                data: &img,
                width: w,
                height: h,
                stride: w,
            };
            a.process_luma(&info, &f, &mut out).expect("valid frame");
            out.clear();
            t += 1.0;
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
