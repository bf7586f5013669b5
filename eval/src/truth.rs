//! Ground truth of a clip: every object's box in every frame, and the incidents that must be
//! raised, derived from the exact paths with the rule's own definitions (not from the agent's
//! code): a line crossing is the ground point's path crossing the segment; a zone stay is the
//! ground point inside the polygon; durations, clear times, counts, speeds, directions and
//! cooldowns as the rule sets them; tamper and offline from the camera's events.

use std::collections::BTreeMap;

use ioc_tracking::geometry::{segment_contact, side_of, Point, Polygon, SegmentContact};
use ioc_tracking::rules::config::{CrossDirection, RuleConfig, TamperCause};
use ioc_tracking::units::{LengthUnit, SpeedUnit};
use ioc_tracking::RuleKind;
use serde::{Deserialize, Serialize};

use crate::scenario::{EventKind, Scenario};

/// One object in one frame.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TruthBox {
    /// Object id.
    pub id: u32,
    /// Box `[x1, y1, x2, y2]`, normalised, clipped to the frame (the whole object, also the
    /// parts hidden behind others).
    pub bbox: [f64; 4],
    /// Ground point (feet, wheels), normalised; may lie outside the frame.
    pub ground: [f64; 2],
    /// Share of the object's pixels that can be seen (not hidden, inside the frame).
    pub visibility: f64,
    /// Index of the actor (not written).
    #[serde(skip)]
    pub actor: usize,
}

/// One frame.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TruthFrame {
    /// Clip time.
    pub t: f64,
    /// The objects in view.
    pub boxes: Vec<TruthBox>,
}

/// One object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TruthObject {
    /// Id used in frames.
    pub id: u32,
    /// Its name in the scenario.
    pub name: String,
    /// Model class name.
    pub class: String,
}

/// An incident that must be raised.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Expected {
    /// The rule's name.
    pub rule: String,
    /// Its kind.
    pub kind: RuleKind,
    /// When the condition began (zone entry, crossing, camera event).
    pub start_sec: f64,
    /// When the rule must have fired by its own thresholds (start + min duration).
    pub due_sec: f64,
    /// When the condition ended.
    pub end_sec: f64,
    /// Line crossings: the direction.
    #[serde(default)]
    pub direction: Option<CrossDirection>,
    /// Tamper: the cause.
    #[serde(default)]
    pub cause: Option<TamperCause>,
    /// The objects involved.
    #[serde(default)]
    pub objects: Vec<u32>,
}

/// The truth of a clip.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Truth {
    /// Scenario name.
    pub scenario: String,
    /// Frame rate.
    pub fps: u32,
    /// Frame size.
    pub size: (u32, u32),
    /// Length.
    pub duration_sec: f64,
    /// Objects.
    pub objects: Vec<TruthObject>,
    /// Every frame.
    pub frames: Vec<TruthFrame>,
    /// Times the stream delivers nothing: `[start, duration]`.
    pub stream_gaps: Vec<[f64; 2]>,
    /// Incidents that must be raised.
    pub incidents: Vec<Expected>,
    /// Crossings of every line by every object: `[in, out]`.
    pub line_counts: BTreeMap<String, [u32; 2]>,
}

/// How long the agent waits for a frame before it calls a stream down (its default
/// `reconnect.idle_timeout_ms`); offline incidents are due that much after a drop begins.
pub const IDLE_TIMEOUT_SEC: f64 = 10.0;

struct Series {
    class: String,
    pts: Vec<(f64, Point)>,
}

fn series(t: &Truth) -> BTreeMap<u32, Series> {
    let mut m: BTreeMap<u32, Series> = BTreeMap::new();
    for o in &t.objects {
        m.insert(
            o.id,
            Series {
                class: o.class.clone(),
                pts: Vec::new(),
            },
        );
    }
    for f in &t.frames {
        for b in &f.boxes {
            // Only while the ground point is in view: the camera cannot judge it otherwise.
            let g = b.ground;
            if (0.0..=1.0).contains(&g[0]) && (0.0..=1.0).contains(&g[1]) {
                if let Some(s) = m.get_mut(&b.id) {
                    s.pts.push((f.t, Point::new(g[0], g[1])));
                }
            }
        }
    }
    m
}

fn accepts(rule: &RuleConfig, class: &str) -> bool {
    rule.classes.is_empty() || rule.classes.iter().any(|c| c == class)
}

/// Intervals where `cond` holds, gaps shorter than `clear` bridged, `[start, end]`.
fn intervals(samples: &[(f64, bool)], clear: f64) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::new();
    let mut cur: Option<[f64; 2]> = None;
    let mut prev_t = None;
    for &(t, c) in samples {
        // A gap in the samples (out of view) ends the interval.
        let gap = prev_t.is_some_and(|p: f64| t - p > 0.5);
        prev_t = Some(t);
        if gap {
            if let Some(i) = cur.take() {
                out.push(i);
            }
        }
        match (c, cur.as_mut()) {
            (true, Some(i)) => i[1] = t,
            (true, None) => cur = Some([t, t]),
            (false, _) => {
                if let Some(i) = cur.take() {
                    out.push(i);
                }
            }
        }
    }
    out.extend(cur);
    let mut merged: Vec<[f64; 2]> = Vec::new();
    for i in out {
        match merged.last_mut() {
            Some(l) if i[0] - l[1] < clear => l[1] = i[1],
            _ => merged.push(i),
        }
    }
    merged
}

fn speed_at(pts: &[(f64, Point)], k: usize) -> Option<f64> {
    let (t, p) = pts[k];
    let j = pts[..k].iter().rposition(|(tt, _)| t - tt >= 1.0)?;
    let (t0, p0) = pts[j];
    Some(p.dist(p0) / (t - t0))
}

impl Truth {
    /// Derives the expected incidents and line counts from the frames and the scenario.
    pub fn derive(&mut self, s: &Scenario) {
        let objects = series(self);
        let a = &s.analytics;
        let zone = |name: &Option<String>| {
            a.zones
                .iter()
                .find(|z| Some(&z.name) == name.as_ref())
                .and_then(|z| {
                    Polygon::new(z.points.iter().map(|&[x, y]| Point::new(x, y)).collect())
                })
        };
        let mut expected = Vec::new();
        // Lines: every crossing counts; rules report theirs.
        let mut crossings: BTreeMap<String, Vec<(f64, CrossDirection, u32, String)>> =
            BTreeMap::new();
        for l in &a.lines {
            let (pa, pb) = (
                Point::new(l.points[0][0], l.points[0][1]),
                Point::new(l.points[1][0], l.points[1][1]),
            );
            let mut list = Vec::new();
            for (id, o) in &objects {
                for w in o.pts.windows(2) {
                    let ((_, p), (t, q)) = (w[0], w[1]);
                    if segment_contact(p, q, pa, pb) != SegmentContact::Proper {
                        continue;
                    }
                    let Some(to) = side_of(pa, pb, q) else {
                        continue;
                    };
                    let dir = if to == l.in_side {
                        CrossDirection::In
                    } else {
                        CrossDirection::Out
                    };
                    list.push((t, dir, *id, o.class.clone()));
                }
            }
            list.sort_by(|x, y| x.0.total_cmp(&y.0));
            let c = self.line_counts.entry(l.name.clone()).or_insert([0, 0]);
            for (_, d, _, _) in &list {
                c[usize::from(*d == CrossDirection::Out)] += 1;
            }
            crossings.insert(l.name.clone(), list);
        }
        for r in &a.rules {
            let min = r.min_duration_sec.unwrap_or(match r.kind {
                RuleKind::CameraOffline => 30.0,
                RuleKind::CameraTamper => 5.0,
                _ => 0.0,
            });
            let clear = r.clear_sec.unwrap_or(match r.kind {
                RuleKind::CameraOffline => 10.0,
                _ => 2.0,
            });
            let mut found: Vec<Expected> = Vec::new();
            let mk = |start: f64, due: f64, end: f64, objects: Vec<u32>| Expected {
                rule: r.name.clone(),
                kind: r.kind,
                start_sec: start,
                due_sec: due,
                end_sec: end,
                direction: None,
                cause: None,
                objects,
            };
            match r.kind {
                RuleKind::LineCrossing => {
                    let want = r.direction.unwrap_or_default();
                    for (t, d, id, class) in crossings
                        .get(r.line.as_deref().unwrap_or(""))
                        .into_iter()
                        .flatten()
                    {
                        if accepts(r, class) && (want == CrossDirection::Both || want == *d) {
                            let mut e = mk(*t, *t, *t, vec![*id]);
                            e.direction = Some(*d);
                            found.push(e);
                        }
                    }
                }
                RuleKind::Intrusion | RuleKind::Loitering | RuleKind::StoppedVehicle => {
                    let Some(poly) = zone(&r.zone) else { continue };
                    let max_speed = r.max_speed.filter(|s| s.unit == SpeedUnit::NormPerSec);
                    for (id, o) in objects.iter().filter(|(_, o)| accepts(r, &o.class)) {
                        let cond: Vec<(f64, bool)> = (0..o.pts.len())
                            .map(|k| {
                                let (t, p) = o.pts[k];
                                let inside = poly.contains(p);
                                let slow = match (r.kind, max_speed) {
                                    (RuleKind::StoppedVehicle, Some(ms)) => {
                                        speed_at(&o.pts, k).is_some_and(|v| v < ms.value)
                                    }
                                    (RuleKind::StoppedVehicle, None) => false,
                                    _ => true,
                                };
                                (t, inside && slow)
                            })
                            .collect();
                        for [s0, s1] in intervals(&cond, clear) {
                            if s1 - s0 >= min {
                                found.push(mk(s0, s0 + min, s1, vec![*id]));
                            }
                        }
                    }
                }
                RuleKind::WrongWay => {
                    let Some(poly) = zone(&r.zone) else { continue };
                    let lane = r.lane_direction_deg.unwrap_or(0.0);
                    let tol = r.tolerance_deg.unwrap_or(45.0);
                    let min_dist = r
                        .min_distance
                        .filter(|d| d.unit == LengthUnit::Norm)
                        .map_or(0.05, |d| d.value);
                    for (id, o) in objects.iter().filter(|(_, o)| accepts(r, &o.class)) {
                        let mut entered = None;
                        for k in 0..o.pts.len() {
                            let (t, p) = o.pts[k];
                            if !poly.contains(p) {
                                entered = None;
                                continue;
                            }
                            let e = *entered.get_or_insert(t);
                            let from = (t - 3.0).max(e);
                            let Some(j) = o.pts[..=k].iter().position(|(tt, _)| *tt >= from) else {
                                continue;
                            };
                            let d = p - o.pts[j].1;
                            if d.norm() < min_dist {
                                continue;
                            }
                            let Some(h) = d.heading_deg() else { continue };
                            if ioc_tracking::geometry::angle_diff_deg(h, lane + 180.0) <= tol {
                                found.push(mk(e, t, t, vec![*id]));
                                break;
                            }
                        }
                    }
                }
                RuleKind::Crowd | RuleKind::Congestion => {
                    let Some(poly) = zone(&r.zone) else { continue };
                    let need = r.min_count.unwrap_or(1) as usize;
                    let max_speed = r.max_speed.filter(|s| s.unit == SpeedUnit::NormPerSec);
                    let mut cond = Vec::new();
                    let mut members: BTreeMap<u32, ()> = BTreeMap::new();
                    for f in &self.frames {
                        let mut n = 0;
                        for (id, o) in objects.iter().filter(|(_, o)| accepts(r, &o.class)) {
                            let Some(k) = o.pts.iter().position(|(t, _)| (*t - f.t).abs() < 1e-6)
                            else {
                                continue;
                            };
                            let inside = poly.contains(o.pts[k].1);
                            let slow = r.kind == RuleKind::Crowd
                                || max_speed.is_some_and(|ms| {
                                    speed_at(&o.pts, k).is_some_and(|v| v < ms.value)
                                });
                            if inside && slow {
                                n += 1;
                                members.insert(*id, ());
                            }
                        }
                        cond.push((f.t, n >= need));
                    }
                    for [s0, s1] in intervals(&cond, clear) {
                        if s1 - s0 >= min {
                            found.push(mk(s0, s0 + min, s1, members.keys().copied().collect()));
                        }
                    }
                }
                RuleKind::CameraTamper => {
                    let checks = r
                        .tamper
                        .as_ref()
                        .map(|t| t.checks.clone())
                        .unwrap_or_else(|| {
                            vec![
                                TamperCause::Dark,
                                TamperCause::Covered,
                                TamperCause::Defocused,
                                TamperCause::Moved,
                            ]
                        });
                    for ev in &s.events {
                        let cause = match ev.kind {
                            EventKind::Cover => TamperCause::Covered,
                            EventKind::Defocus => TamperCause::Defocused,
                            EventKind::Move => TamperCause::Moved,
                            EventKind::Dark => TamperCause::Dark,
                            EventKind::Dim | EventKind::Drop => continue,
                        };
                        if !checks.contains(&cause) || ev.duration_sec < min {
                            continue;
                        }
                        let end = if ev.kind == EventKind::Move {
                            self.duration_sec
                        } else {
                            ev.at_sec + ev.duration_sec
                        };
                        let mut e = mk(ev.at_sec, ev.at_sec + min, end, Vec::new());
                        e.cause = Some(cause);
                        found.push(e);
                    }
                }
                RuleKind::CameraOffline => {
                    for [at, dur] in &self.stream_gaps {
                        if *dur >= IDLE_TIMEOUT_SEC + min {
                            found.push(mk(*at, at + IDLE_TIMEOUT_SEC + min, at + dur, Vec::new()));
                        }
                    }
                }
            }
            // The rule's cooldown: nothing new within it after the last one it raised.
            found.sort_by(|x, y| x.due_sec.total_cmp(&y.due_sec));
            let mut last: Option<f64> = None;
            for e in found {
                if last.is_some_and(|l| e.due_sec - l < r.cooldown_sec) {
                    continue;
                }
                last = Some(e.due_sec);
                expected.push(e);
            }
        }
        expected.sort_by(|x, y| x.due_sec.total_cmp(&y.due_sec));
        self.incidents = expected;
    }

    /// The frame at (or nearest before) `t`.
    pub fn frame_at(&self, t: f64) -> Option<&TruthFrame> {
        let k = self.frames.partition_point(|f| f.t <= t + 1e-6);
        k.checked_sub(1).map(|k| &self.frames[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_bridge_short_gaps_and_split_long_ones() {
        let s: Vec<(f64, bool)> = (0..100)
            .map(|k| {
                let t = k as f64 * 0.1;
                (t, !(3.0..3.5).contains(&t) && !(6.0..9.0).contains(&t))
            })
            .collect();
        let i = intervals(&s, 1.0);
        assert_eq!(i.len(), 2, "{i:?}");
        assert!((i[0][0] - 0.0).abs() < 1e-9 && (i[0][1] - 5.9).abs() < 1e-6);
        assert!((i[1][0] - 9.0).abs() < 1e-6);
    }
}
