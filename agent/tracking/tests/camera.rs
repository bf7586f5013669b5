//! Camera rules that need no detector: tamper on synthetic luma images (black, uniform cover,
//! blurred vs sharp, shifted scene) and offline with hysteresis.

mod common;

use common::Sim;
use ioc_tracking::rules::{EngineOutput, TamperCause};
use ioc_tracking::{FrameInfo, LumaFrame, Phase, RuleKind};

const W: usize = 320;
const H: usize = 240;

/// A non-periodic scene: random rectangles on grey, with a fine 2-px texture on top.
fn scene(shift_x: usize) -> Vec<u8> {
    let mut rects = Vec::new();
    let mut seed: u32 = 12345;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) % m
    };
    for _ in 0..25 {
        let (x, y) = (rnd(W as u32 * 2) as usize, rnd(H as u32) as usize);
        let (w, h) = (20 + rnd(80) as usize, 15 + rnd(60) as usize);
        rects.push((x, y, w, h, 30 + rnd(190) as u8));
    }
    let mut img = vec![0u8; W * H];
    for y in 0..H {
        for x in 0..W {
            let sx = x + shift_x;
            let mut v = 100u8;
            for &(rx, ry, rw, rh, g) in &rects {
                if sx >= rx && sx < rx + rw && y >= ry && y < ry + rh {
                    v = g;
                }
            }
            let tex: i16 = if ((sx / 2) + (y / 2)).is_multiple_of(2) {
                12
            } else {
                -12
            };
            img[y * W + x] = (i16::from(v) + tex).clamp(0, 255) as u8;
        }
    }
    img
}

/// Box blur, radius r, horizontal then vertical: a defocused lens.
fn blur(img: &[u8], r: usize) -> Vec<u8> {
    let pass = |src: &[u8], horiz: bool| {
        let mut dst = vec![0u8; W * H];
        for y in 0..H {
            for x in 0..W {
                let (mut acc, mut n) = (0u32, 0u32);
                for d in 0..=2 * r {
                    let (xx, yy) = if horiz {
                        ((x + d).checked_sub(r), Some(y))
                    } else {
                        (Some(x), (y + d).checked_sub(r))
                    };
                    if let (Some(xx), Some(yy)) = (xx, yy) {
                        if xx < W && yy < H {
                            acc += u32::from(src[yy * W + xx]);
                            n += 1;
                        }
                    }
                }
                dst[y * W + x] = (acc / n) as u8;
            }
        }
        dst
    };
    pass(&pass(img, true), false)
}

const TAMPER: &str = r#"
    [[rules]]
    name = "tamper"
    kind = "camera_tamper"
    severity = "critical"
    min_duration_sec = 2
    clear_sec = 1
    tamper = { learn_sec = 3 }
"#;

fn feed(s: &mut Sim, img: &[u8], secs: f64) {
    let n = (secs / 0.5).round() as usize;
    for _ in 0..n {
        let info = FrameInfo {
            t_sec: s.t,
            frame: s.frame,
            local: s.local,
        };
        let f = LumaFrame {
            data: img,
            width: W,
            height: H,
            stride: W,
        };
        s.a.process_luma(&info, &f, &mut s.out).unwrap();
        s.t += 0.5;
        s.frame += 1;
    }
}

fn tamper_events(s: &Sim) -> Vec<(TamperCause, Phase)> {
    s.events(RuleKind::CameraTamper)
        .iter()
        .map(|e| (e.details.cause.unwrap(), e.phase))
        .collect()
}

fn learned() -> (Sim, Vec<u8>) {
    let mut s = Sim::new(TAMPER);
    let img = scene(0);
    feed(&mut s, &img, 5.0);
    assert!(s.out.events.is_empty(), "normal scene: {:?}", s.out.events);
    (s, img)
}

#[test]
fn black_frame_is_dark() {
    let (mut s, img) = learned();
    feed(&mut s, &vec![3u8; W * H], 1.0);
    assert!(
        tamper_events(&s).is_empty(),
        "shorter than min_duration_sec"
    );
    feed(&mut s, &vec![3u8; W * H], 2.0);
    assert_eq!(tamper_events(&s), vec![(TamperCause::Dark, Phase::Start)]);
    feed(&mut s, &img, 2.0);
    assert_eq!(
        tamper_events(&s),
        vec![
            (TamperCause::Dark, Phase::Start),
            (TamperCause::Dark, Phase::End)
        ]
    );
}

#[test]
fn uniform_grey_is_covered() {
    let (mut s, _) = learned();
    feed(&mut s, &vec![128u8; W * H], 3.0);
    assert_eq!(
        tamper_events(&s),
        vec![(TamperCause::Covered, Phase::Start)]
    );
    assert_eq!(
        s.events(RuleKind::CameraTamper)[0].severity,
        ioc_tracking::rules::Severity::Critical
    );
}

#[test]
fn blurred_scene_is_defocused_not_moved() {
    let (mut s, img) = learned();
    let soft = blur(&img, 3);
    feed(&mut s, &soft, 3.0);
    assert_eq!(
        tamper_events(&s),
        vec![(TamperCause::Defocused, Phase::Start)]
    );
    let ratio = s.events(RuleKind::CameraTamper)[0].details.measure.unwrap();
    assert!(ratio < 0.35, "{ratio}");
}

#[test]
fn shifted_scene_is_moved() {
    let (mut s, _) = learned();
    feed(&mut s, &scene(90), 3.0);
    assert_eq!(tamper_events(&s), vec![(TamperCause::Moved, Phase::Start)]);
}

#[test]
fn nothing_before_learning_and_bad_frames_are_refused() {
    let mut s = Sim::new(TAMPER);
    // Blurred and shifted frames while learning are simply learned; no incidents.
    feed(&mut s, &blur(&scene(40), 3), 2.0);
    assert!(s.out.events.is_empty());
    let info = s.info();
    let bad = LumaFrame {
        data: &[0u8; 10],
        width: W,
        height: H,
        stride: W,
    };
    assert!(s.a.process_luma(&info, &bad, &mut s.out).is_err());
}

const OFFLINE: &str = r#"
    [[rules]]
    name = "offline"
    kind = "camera_offline"
    min_duration_sec = 5
    clear_sec = 3
"#;

#[test]
fn offline_with_hysteresis() {
    let mut s = Sim::new(OFFLINE);
    let mut out = EngineOutput::default();
    let local = s.local;
    let tick_until =
        |a: &mut ioc_tracking::Analytics, from: f64, to: f64, out: &mut EngineOutput| {
            let mut t = from;
            while t <= to {
                a.tick(t, local, out);
                t += 0.5;
            }
        };
    // A 2 s blip is not an incident.
    s.a.stream_state(10.0, local, false, &mut out);
    tick_until(&mut s.a, 10.0, 12.0, &mut out);
    s.a.stream_state(12.0, local, true, &mut out);
    tick_until(&mut s.a, 12.0, 20.0, &mut out);
    assert!(out.events.is_empty());
    // A real outage from 20 s: starts at 25 s, dated 20 s.
    s.a.stream_state(20.0, local, false, &mut out);
    tick_until(&mut s.a, 20.0, 24.5, &mut out);
    assert!(out.events.is_empty());
    tick_until(&mut s.a, 25.0, 30.0, &mut out);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].phase, Phase::Start);
    assert_eq!(out.events[0].started_at_sec, 20.0);
    assert_eq!(out.events[0].frame, None);
    // Back for 1 s, down again: still the same incident.
    s.a.stream_state(31.0, local, true, &mut out);
    tick_until(&mut s.a, 31.0, 32.0, &mut out);
    s.a.stream_state(32.0, local, false, &mut out);
    tick_until(&mut s.a, 32.0, 40.0, &mut out);
    assert_eq!(out.events.len(), 1);
    // Back for good: ends clear_sec later, dated when it came back.
    s.a.stream_state(40.0, local, true, &mut out);
    tick_until(&mut s.a, 40.0, 45.0, &mut out);
    assert_eq!(out.events.len(), 2);
    assert_eq!(out.events[1].phase, Phase::End);
    assert_eq!(out.events[1].ended_at_sec, Some(40.0));
    assert_eq!(out.events[1].incident, out.events[0].incident);
    assert_eq!(out.events[1].details.dwell_sec, Some(20.0));
}
