//! A scenario's objects as actors with an exact position at every moment: scripted objects,
//! and the passers-by, groups and traffic expanded from their recipes with the scenario's seed.
//!
//! Motion is integrated in metres on the ground: the perspective model gives the pixels per
//! metre at each image height, so a person keeps a human pace near the camera and far from it.

use crate::assets::Assets;
use crate::rng::Rng;
use crate::scenario::{CameraModel, ObjectKind, ObjectScript, Scenario};

/// Normalised image height of a 1.7 m person → pixels per metre at image height `y`.
pub fn px_per_m(cam: &CameraModel, y: f64, frame_h: f64) -> f64 {
    cam.person_height_at(y) * frame_h / 1.7
}

/// One object's state at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Ground point, normalised.
    pub ground: [f64; 2],
    /// Metres travelled so far (walk cycle phase).
    pub dist_m: f64,
    /// Horizontal direction of travel: +1, −1, or 0 when unknown (standing from the start).
    pub dir_x: i8,
    /// Standing still (paused at a waypoint).
    pub still: bool,
}

/// An object of the world.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Truth id (1-based, stable).
    pub id: u32,
    /// Name from the scenario, or a made-up one for expanded objects.
    pub name: String,
    /// Kind.
    pub kind: ObjectKind,
    /// Walker or vehicle sprite index within its kind.
    pub sprite: usize,
    /// Real height (people) in metres.
    pub height_m: f64,
    /// Appears at.
    pub start_sec: f64,
    /// Poses at `start_sec + k * step_sec`.
    pub poses: Vec<Pose>,
    /// Sampling step of `poses`.
    pub step_sec: f64,
}

impl Actor {
    /// The pose at `t`, if the actor is in the world then.
    pub fn pose(&self, t: f64) -> Option<Pose> {
        if t < self.start_sec - 1e-9 {
            return None;
        }
        let k = ((t - self.start_sec) / self.step_sec).round() as usize;
        self.poses.get(k).copied()
    }

    /// When it leaves.
    pub fn end_sec(&self) -> f64 {
        self.start_sec + self.poses.len().saturating_sub(1) as f64 * self.step_sec
    }
}

/// Walks `script` through time: poses every `step` seconds until the path's end.
fn integrate(script: &ObjectScript, cam: &CameraModel, size: (f64, f64), step: f64) -> Vec<Pose> {
    let (w, h) = size;
    let px = |p: [f64; 2]| [p[0] * w, p[1] * h];
    let mut poses = Vec::new();
    let mut pos = script.path[0];
    let mut dist_m = 0.0;
    let mut dir_x = 0i8;
    let mut seg = 0usize;
    let mut wait = script
        .stops
        .iter()
        .filter(|s| s.at == 0)
        .map(|s| s.sec)
        .sum::<f64>();
    let substeps = 4;
    let dt = step / substeps as f64;
    loop {
        poses.push(Pose {
            ground: pos,
            dist_m,
            dir_x,
            still: wait > 0.0,
        });
        // At the last point: stay for its stop, then leave the world.
        if seg + 1 >= script.path.len() && wait <= 0.0 {
            break;
        }
        for _ in 0..substeps {
            if wait > 0.0 {
                wait -= dt;
                continue;
            }
            if seg + 1 >= script.path.len() {
                break;
            }
            let speed = script
                .speeds_mps
                .get(seg)
                .copied()
                .or(script.speed_mps)
                .unwrap_or_else(|| script.kind.default_speed());
            let target = script.path[seg + 1];
            let (a, b) = (px(pos), px(target));
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let left_px = (dx * dx + dy * dy).sqrt();
            let step_px = speed * dt * px_per_m(cam, pos[1], h);
            if dx.abs() > 1e-6 {
                dir_x = if dx > 0.0 { 1 } else { -1 };
            }
            if step_px >= left_px {
                pos = target;
                dist_m += left_px / px_per_m(cam, pos[1], h).max(1e-6);
                seg += 1;
                wait += script
                    .stops
                    .iter()
                    .filter(|s| s.at == seg)
                    .map(|s| s.sec)
                    .sum::<f64>();
            } else {
                let k = step_px / left_px;
                pos = [
                    pos[0] + (target[0] - pos[0]) * k,
                    pos[1] + (target[1] - pos[1]) * k,
                ];
                dist_m += speed * dt;
            }
        }
        // A path that never ends (a stop at the last point) still ends with the clip.
        if poses.len() > 1_000_000 {
            break;
        }
    }
    poses
}

/// Every actor of the scenario, expanded deterministically from its seed.
pub fn actors(s: &Scenario, assets: &Assets) -> Vec<Actor> {
    let size = (
        assets.background.width() as f64,
        assets.background.height() as f64,
    );
    let step = 1.0 / s.fps as f64;
    let mut rng = Rng::new(s.seed, 11);
    let mut scripts: Vec<ObjectScript> = s.objects.clone();
    for c in &s.crowd {
        for _ in 0..c.count {
            let r = c.region;
            let (a, b) = if c.vertical {
                let x0 = rng.range(r[0], r[2]);
                let x1 = (x0 + rng.range(-0.1, 0.1)).clamp(r[0], r[2]);
                ([x0, r[1]], [x1, r[3]])
            } else {
                let y0 = rng.range(r[1], r[3]);
                let y1 = (y0 + rng.range(-0.08, 0.08)).clamp(r[1], r[3]);
                ([r[0], y0], [r[2], y1])
            };
            let (a, b) = if rng.f64() < 0.5 { (a, b) } else { (b, a) };
            scripts.push(ObjectScript {
                id: String::new(),
                kind: c.kind,
                sprite: None,
                path: vec![a, b],
                speed_mps: Some(rng.range(c.speed_mps[0], c.speed_mps[1])),
                speeds_mps: Vec::new(),
                start_sec: rng.range(c.start_sec[0], c.start_sec[1]),
                stops: Vec::new(),
                height_m: None,
            });
        }
    }
    for g in &s.group {
        let (edge, far) = if g.from == "left" {
            (-0.08, 1.08)
        } else {
            (1.08, -0.08)
        };
        for i in 0..g.count {
            let ang = rng.range(0.0, std::f64::consts::TAU);
            let rad = g.spread * rng.f64().sqrt();
            let spot = [g.at[0] + rad * ang.cos(), g.at[1] + 0.5 * rad * ang.sin()];
            let arrive = g.arrive_sec + i as f64 * rng.range(0.5, 1.5);
            let speed = rng.range(1.1, 1.5);
            // Walk in from the edge at the spot's height so they reach it about `arrive`.
            let start_y = (spot[1] + rng.range(-0.05, 0.05)).clamp(0.2, 0.98);
            scripts.push(ObjectScript {
                id: format!("group-{i}"),
                kind: ObjectKind::Person,
                sprite: None,
                path: vec![[edge, start_y], spot, [far, start_y]],
                speed_mps: Some(speed),
                speeds_mps: Vec::new(),
                start_sec: (arrive - travel_sec(s, size, [edge, start_y], spot, speed)).max(0.0),
                // Everyone stays until the last has been there `stay_sec`.
                stops: vec![crate::scenario::Stop {
                    at: 1,
                    sec: g.stay_sec + (g.count - i) as f64 * 1.0,
                }],
                height_m: None,
            });
        }
    }
    for t in &s.traffic {
        let mut last = f64::NEG_INFINITY;
        let mut starts: Vec<f64> = (0..t.count)
            .map(|_| rng.range(t.start_sec[0], t.start_sec[1]))
            .collect();
        starts.sort_by(f64::total_cmp);
        for start in starts {
            let start = start.max(last + t.min_gap_sec);
            last = start;
            let kind = t.kinds[rng.below(t.kinds.len())];
            scripts.push(ObjectScript {
                id: String::new(),
                kind,
                sprite: None,
                path: t.lane.clone(),
                speed_mps: Some(rng.range(t.speed_mps[0], t.speed_mps[1])),
                speeds_mps: Vec::new(),
                start_sec: start,
                stops: Vec::new(),
                height_m: None,
            });
        }
    }
    scripts
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let n = match o.kind {
                ObjectKind::Person => assets.walkers.len(),
                k => assets.vehicles_of(k).len(),
            }
            .max(1);
            let sprite = o.sprite.unwrap_or_else(|| rng.below(n)) % n;
            let height_m = o.height_m.unwrap_or_else(|| rng.range(1.55, 1.85));
            Actor {
                id: i as u32 + 1,
                name: if o.id.is_empty() {
                    format!("{}-{}", o.kind.class(), i + 1)
                } else {
                    o.id.clone()
                },
                kind: o.kind,
                sprite,
                height_m,
                start_sec: o.start_sec,
                poses: integrate(o, &s.camera, size, step),
                step_sec: step,
            }
        })
        .collect()
}

fn travel_sec(s: &Scenario, size: (f64, f64), a: [f64; 2], b: [f64; 2], speed: f64) -> f64 {
    let (w, h) = size;
    let d_px = ((b[0] - a[0]) * w).hypot((b[1] - a[1]) * h);
    let ppm = px_per_m(&s.camera, (a[1] + b[1]) / 2.0, h);
    d_px / ppm / speed
}
