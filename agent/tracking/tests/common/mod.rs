//! Shared helpers for the rule tests: a simulated camera fed with synthetic detections.

#![allow(dead_code)]

use ioc_tracking::rules::{EngineOutput, RuleEvent};
use ioc_tracking::{
    Analytics, AnalyticsConfig, BBox, Detection, FrameInfo, LocalTime, Phase, RuleKind, Weekday,
};

pub const PERSON: u16 = 0;
pub const CAR: u16 = 2;

pub fn class_names() -> Vec<String> {
    ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A person whose feet are at (x, y).
pub fn person(x: f64, y: f64) -> Detection {
    Detection {
        class_id: PERSON,
        score: 0.9,
        bbox: BBox::new(
            (x - 0.02) as f32,
            (y - 0.12) as f32,
            (x + 0.02) as f32,
            y as f32,
        ),
        look: None,
    }
}

/// A car whose bottom-centre is at (x, y).
pub fn car(x: f64, y: f64) -> Detection {
    Detection {
        class_id: CAR,
        score: 0.9,
        bbox: BBox::new(
            (x - 0.1) as f32,
            (y - 0.08) as f32,
            (x + 0.1) as f32,
            y as f32,
        ),
        look: None,
    }
}

/// `d` with the look of someone dressed `upper` over `lower` (`[Y, U, V]` colours).
pub fn dressed(d: Detection, upper: [u8; 3], lower: [u8; 3]) -> Detection {
    // On a 1000-pixel frame, the box's upper half in one colour, its lower half in the other.
    let waist = 500.0 * f64::from(d.bbox.y1 + d.bbox.y2);
    let paint = move |_: usize, y: usize| if (y as f64) < waist { upper } else { lower };
    Detection {
        look: ioc_tracking::Appearance::measure(d.bbox, 1000, 1000, paint),
        ..d
    }
}

/// Colours for [`dressed`].
pub const DARK: [u8; 3] = [40, 128, 128];
pub const RED: [u8; 3] = [90, 110, 180];
pub const BLUE: [u8; 3] = [70, 170, 110];
pub const GREY: [u8; 3] = [140, 128, 128];

/// A camera at 5 detector frames per second.
pub struct Sim {
    pub a: Analytics,
    pub out: EngineOutput,
    pub frame: u64,
    pub t: f64,
    pub dt: f64,
    pub local: LocalTime,
}

impl Sim {
    pub fn new(toml_text: &str) -> Sim {
        let cfg: AnalyticsConfig = toml::from_str(toml_text).expect("test config parses");
        let a = Analytics::build(&cfg, &class_names()).expect("test config is valid");
        Sim {
            a,
            out: EngineOutput::default(),
            frame: 0,
            t: 0.0,
            dt: 0.2,
            local: LocalTime::new(Weekday::Wed, 12, 0),
        }
    }

    pub fn info(&self) -> FrameInfo {
        FrameInfo {
            t_sec: self.t,
            frame: self.frame,
            local: self.local,
        }
    }

    /// One frame at the current time, then the clock advances.
    pub fn step(&mut self, dets: &[Detection]) {
        let info = self.info();
        self.a.process_frame(&info, dets, &mut self.out);
        self.frame += 1;
        self.t += self.dt;
    }

    /// Frames for `secs` seconds; `f` gets the time since this call began.
    pub fn run(&mut self, secs: f64, f: impl Fn(f64) -> Vec<Detection>) {
        let t0 = self.t;
        let n = (secs / self.dt).round() as u64;
        for _ in 0..n {
            let d = f(self.t - t0);
            self.step(&d);
        }
    }

    pub fn events(&self, kind: RuleKind) -> Vec<&RuleEvent> {
        self.out.events.iter().filter(|e| e.kind == kind).collect()
    }

    pub fn phases(&self, kind: RuleKind) -> Vec<Phase> {
        self.events(kind).iter().map(|e| e.phase).collect()
    }
}
