//! The rule engine of one camera: zone membership and line sides per track, then every rule
//! kind, incidents with start/update/end (or instant) phases, cooldowns, schedules and counts.
//!
//! Contracts:
//! - Only confirmed tracks are judged. Each new ground point of a track's history is processed
//!   once, in order, so points seen while the track was still tentative (or between two
//!   engine calls) are not skipped: a crossing during confirmation is still counted.
//! - A lost track is frozen: its incidents neither advance nor end, its zone memberships stay
//!   (so a crowd does not shrink on an occlusion). When the tracker removes it, its lasting
//!   incidents end at its last observation time.
//! - Lasting conditions use a hold: the condition must hold `min_duration_sec` (short dips of
//!   less than `clear_sec` do not reset it), and the incident ends once the condition has been
//!   false for `clear_sec`. Cooldown: after a rule starts an incident or emits an instant
//!   event, it starts nothing new for `cooldown_sec`; a condition that still holds afterwards
//!   then starts.
//! - A lasting per-object timer belongs to the object, not to the track id: a new track born
//!   where a stationary one was lost takes over its timers only when the two look alike (or
//!   when either was never seen in the clear: then the place decides). The tracker itself never
//!   lets a track follow someone who looks unlike it (`appearance`).
//! - Allocation: per-track state is pooled; events and counts reports allocate (they are rare).
//!
//! Layout: this module holds the engine's state and its entry points (frames, luma frames,
//! ticks, stream changes); `track.rs` judges each track (zones, lines, per-object rules),
//! `aggregate.rs` each zone's crowd and congestion, `counts.rs` the line counts.

mod aggregate;
mod counts;
mod track;

use std::collections::HashMap;

use aggregate::judge_aggregates;
use counts::{flush_counts, take_counts};
use track::{end_track, judge_track, reacquire, reacquire_pending, repair_swaps, step_point};

use crate::appearance::Appearance;
use crate::geometry::{
    angle_diff_deg, segment_contact, BBox, Point, Polygon, SegmentContact, Side,
};
use crate::rules::config::{
    AnalyticsConfig, ConfigError, ConfigErrors, CrossDirection, Persist, RuleKind, Severity,
    DEFAULT_CLEAR_SEC, DEFAULT_MIN_DISTANCE, DEFAULT_OFFLINE_CLEAR_SEC, DEFAULT_OFFLINE_MIN_SEC,
    DEFAULT_TAMPER_MIN_SEC, DEFAULT_TOLERANCE_DEG,
};
use crate::rules::event::{
    CountsReport, EngineOutput, EventDetails, EventObject, LineCount, Phase, RuleEvent, SpeedValue,
};
use crate::rules::schedule::{LocalTime, Schedule};
use crate::rules::tamper::{LumaError, LumaFrame, LumaStats, TamperMonitor, CAUSES};
use crate::track::{Track, TrackState};
use crate::units::{Distance, LengthUnit, Speed, SpeedUnit};

/// Net displacement of a track over this window (bounded by its zone entry) decides wrong way.
const WRONG_WAY_WINDOW_SEC: f64 = 3.0;
/// ... and it must have gone against the lane by at least this share of its own length along
/// that heading: a driver going the wrong way covers car lengths in seconds, while a car
/// backing into a bay or jostling in a queue moves a fraction of one, which box jitter and a
/// fixed `min_distance` alone cannot tell apart.
const WRONG_WAY_MIN_LENGTHS: f64 = 0.5;

/// When and where a frame was taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    /// Stream seconds (one monotonic clock per camera).
    pub t_sec: f64,
    /// Frame number.
    pub frame: u64,
    /// Local wall-clock time at the site, for schedules.
    pub local: LocalTime,
}

#[derive(Debug)]
struct Zone {
    name: String,
    poly: Polygon,
    enter: Persist,
    exit: Persist,
}

#[derive(Debug)]
struct Line {
    name: String,
    a: Point,
    b: Point,
    in_side: Side,
    confirm: Persist,
    count: bool,
    margin: f64,
}

impl Line {
    /// Side of `p`, `None` within the dead band.
    fn side(&self, p: Point) -> Option<Side> {
        let ab = self.b - self.a;
        let d = crate::geometry::cross(ab, p - self.a) / ab.norm();
        if d.abs() <= self.margin {
            None
        } else {
            crate::geometry::side_of(self.a, self.b, p)
        }
    }
}

/// A condition timer with dip tolerance (see the module contract).
#[derive(Debug, Clone, Copy, Default)]
struct Hold {
    since: Option<f64>,
    false_since: Option<f64>,
}

impl Hold {
    /// Feeds the raw condition at `t`; `since_hint` back-dates a new hold (e.g. zone entry).
    /// Returns the time the condition went false when the hold just cleared.
    fn update(&mut self, raw: bool, t: f64, clear_sec: f64, since_hint: f64) -> Option<f64> {
        if raw {
            self.false_since = None;
            if self.since.is_none() {
                self.since = Some(since_hint.min(t));
            }
            None
        } else {
            let fs = *self.false_since.get_or_insert(t);
            if self.since.is_some() && t - fs >= clear_sec {
                self.since = None;
                return Some(fs);
            }
            None
        }
    }

    /// How long the condition has held, if it holds right now.
    fn held(&self, t: f64) -> Option<f64> {
        match (self.since, self.false_since) {
            (Some(s), None) => Some(t - s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Incident {
    id: u64,
    started_at: f64,
}

#[derive(Debug, Default)]
struct Aggregate {
    hold: Hold,
    incident: Option<Incident>,
    last_count: u32,
}

#[derive(Debug)]
struct TamperRt {
    monitor: TamperMonitor,
    holds: [Hold; 4],
    incidents: [Option<Incident>; 4],
}

#[derive(Debug)]
struct Rule {
    name: String,
    kind: RuleKind,
    severity: Severity,
    // Indexed by class id; `None` accepts every class.
    classes: Option<Vec<bool>>,
    schedule: Option<Schedule>,
    cooldown_sec: f64,
    last_fire: Option<f64>,
    zone: Option<usize>,
    line: Option<usize>,
    direction: CrossDirection,
    min_dur: f64,
    clear: f64,
    min_count: u32,
    max_speed: Speed,
    lane_deg: f64,
    tol_deg: f64,
    min_dist: Distance,
    agg: Aggregate,
    tamper: Option<TamperRt>,
}

fn accepts(classes: Option<&[bool]>, class_id: u16) -> bool {
    match classes {
        None => true,
        Some(v) => v.get(usize::from(class_id)).copied().unwrap_or(false),
    }
}

fn slow(max_speed: Speed, tr: &Track) -> bool {
    tr.speed(max_speed.unit)
        .is_some_and(|s| s < max_speed.value)
}

impl Rule {
    fn accepts(&self, class_id: u16) -> bool {
        accepts(self.classes.as_deref(), class_id)
    }

    fn armed(&self, now: LocalTime) -> bool {
        self.schedule.as_ref().is_none_or(|s| s.is_active(now))
    }

    fn cooled(&self, t: f64) -> bool {
        self.last_fire.is_none_or(|l| t - l >= self.cooldown_sec)
    }

    fn slow(&self, tr: &Track) -> bool {
        slow(self.max_speed, tr)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ZoneMember {
    inside: bool,
    streak: u32,
    streak_t: f64,
    entered_at: f64,
    // Last raw-outside point while not inside: a later outside point whose segment from it
    // crosses the polygon twice went through the zone (fast object, thin zone, short visit).
    last_out: Option<Point>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    to: Side,
    frames: u32,
    t: f64,
    heading: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct LineMember {
    side: Option<Side>,
    last_off: Option<Point>,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, Default)]
struct TrackRule {
    hold: Hold,
    incident: Option<Incident>,
    latched: bool,
}

#[derive(Debug, Default)]
struct TrackCtx {
    last_t: f64,
    last_frame: u64,
    prev: Option<Point>,
    zones: Vec<ZoneMember>,
    lines: Vec<LineMember>,
    rules: Vec<TrackRule>,
    // Set when this frame's processing saw the track; tracks not seen are gone.
    generation: u64,
    // Last known look of the object, to name it in the end events after it is gone.
    class_id: u16,
    score: f32,
    bbox: BBox,
    // Stationary at its latest sighting (or lost while stationary), and where it stood last
    // time it was still (the sightings just before it was hidden may have drifted).
    still: bool,
    still_at: Option<Point>,
    still_box: Option<BBox>,
    // Its state was handed to a new track at the same place: judge nothing more for it.
    retired: bool,
    // Not judged (lost, or waiting as a ghost) since it was last.
    frozen: bool,
    // What the object whose timers these are looks like (the track's look, see `Track::look`).
    look: Option<Appearance>,
    // Its look while it stood still (a second or more), and when that was last: the object
    // these timers belong to, whatever the tracker's ids do next.
    still_look: Option<Appearance>,
    still_t: f64,
}

impl TrackCtx {
    /// Whether a per-track rule is timing or reporting something for it.
    fn has_rule_state(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.incident.is_some() || r.hold.since.is_some())
    }
}

/// A gone track whose zone timers wait `reacquire_sec` for the same object under a new id.
#[derive(Debug)]
struct Ghost {
    id: u64,
    ctx: TrackCtx,
    expires_at: f64,
}

/// A new track born on the ground line (within this many box heights) and within half a width
/// of the box of a stationary track that was lost or dropped there takes over its zone timers and incidents.
const REACQUIRE_RADIUS_H: f64 = 0.5;

/// A new track that could take over a lost one's timers but was not yet seen in the clear is
/// left unjudged this long (its points are judged afterwards, in order) so that its look can
/// decide; after it, the place alone decides.
const LOOK_WAIT_SEC: f64 = 2.0;

/// How long a track must have stood still for its look to be taken as that of the object
/// whose timers it carries: by then an id swapped onto a passer-by has moved off.
const STILL_LOOK_SEC: f64 = 1.0;

/// How long after a track was last still a swap of its id with a passer-by is repaired.
const SWAP_WINDOW_SEC: f64 = 6.0;

/// How much more a track on the spot must look like the object that stood there than the
/// track that carried that object's timers off, for the timers to go back to it.
const SWAP_MARGIN: f32 = 0.1;

/// The rule engine of one camera.
#[derive(Debug)]
pub struct Engine {
    class_names: Vec<String>,
    zones: Vec<Zone>,
    lines: Vec<Line>,
    rules: Vec<Rule>,
    tracks: HashMap<u64, TrackCtx>,
    ctx_pool: Vec<TrackCtx>,
    next_incident: u64,
    counts: Vec<Vec<[u32; 2]>>,
    counts_interval: f64,
    counts_start: Option<f64>,
    luma: LumaStats,
    stream_up: bool,
    generation: u64,
    gone: Vec<u64>,
    ghosts: Vec<Ghost>,
    reacquire_sec: f64,
}

/// Everything the per-point and per-rule helpers need besides the track context.
struct Cx<'a> {
    class_names: &'a [String],
    zones: &'a [Zone],
    lines: &'a [Line],
    next_incident: &'a mut u64,
    counts: &'a mut [Vec<[u32; 2]>],
    out: &'a mut EngineOutput,
    frame: &'a FrameInfo,
}

impl Cx<'_> {
    fn new_incident(&mut self) -> u64 {
        *self.next_incident += 1;
        *self.next_incident
    }
}

fn object(tr: &Track, names: &[String]) -> EventObject {
    EventObject {
        track_id: tr.id(),
        class_id: tr.class_id(),
        class: names
            .get(usize::from(tr.class_id()))
            .cloned()
            .unwrap_or_else(|| format!("class {}", tr.class_id())),
        score: tr.score(),
        bbox: tr.det_bbox(),
    }
}

fn speed_details(tr: &Track, d: &mut EventDetails) {
    if let Some(v) = tr.speed(SpeedUnit::MetresPerSec) {
        d.speed = Some(SpeedValue {
            value: v,
            unit: SpeedUnit::MetresPerSec,
        });
        d.speed_kmh = Some(v * 3.6);
    } else if let Some(v) = tr.speed(SpeedUnit::NormPerSec) {
        d.speed = Some(SpeedValue {
            value: v,
            unit: SpeedUnit::NormPerSec,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn event(
    rule: &Rule,
    cx: &Cx<'_>,
    incident: u64,
    phase: Phase,
    started: f64,
    ended: Option<f64>,
    objects: Vec<EventObject>,
    details: EventDetails,
) -> RuleEvent {
    RuleEvent {
        incident,
        kind: rule.kind,
        rule: rule.name.clone(),
        severity: rule.severity,
        zone: rule.zone.map(|z| cx.zones[z].name.clone()),
        line: rule.line.map(|l| cx.lines[l].name.clone()),
        phase,
        started_at_sec: started,
        observed_at_sec: cx.frame.t_sec,
        ended_at_sec: ended,
        frame: Some(cx.frame.frame),
        objects,
        details,
    }
}

impl Engine {
    /// Validates `cfg`, maps class names to ids with `class_names` (the model's labels, index =
    /// class id) and builds the engine. Returns every error found.
    pub fn build(cfg: &AnalyticsConfig, class_names: &[String]) -> Result<Engine, ConfigErrors> {
        let mut errs = match cfg.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigErrors(e)) => e,
        };
        // Class names are an environment check: they depend on the model, not the config.
        for (i, r) in cfg.rules.iter().enumerate() {
            for (j, c) in r.classes.iter().enumerate() {
                if !class_names.iter().any(|n| n == c) {
                    let near: Vec<&str> = class_names
                        .iter()
                        .filter(|n| n.contains(c.as_str()) || c.contains(n.as_str()))
                        .map(String::as_str)
                        .take(3)
                        .collect();
                    let hint = if near.is_empty() {
                        String::new()
                    } else {
                        format!(" (did you mean {near:?}?)")
                    };
                    errs.push(ConfigError {
                        key: format!("rules[{i}].classes[{j}]"),
                        message: format!("unknown class {c:?}{hint}"),
                    });
                }
            }
        }
        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        let zones = cfg
            .zones
            .iter()
            .filter_map(|z| {
                Some(Zone {
                    name: z.name.clone(),
                    poly: Polygon::new(z.points.iter().map(|&[x, y]| Point::new(x, y)).collect())?,
                    enter: z.enter(),
                    exit: z.exit(),
                })
            })
            .collect::<Vec<_>>();
        let lines = cfg
            .lines
            .iter()
            .map(|l| Line {
                name: l.name.clone(),
                a: Point::new(l.points[0][0], l.points[0][1]),
                b: Point::new(l.points[1][0], l.points[1][1]),
                in_side: l.in_side,
                confirm: l.confirm(),
                count: l.count,
                margin: l.margin,
            })
            .collect::<Vec<_>>();
        let rules = cfg
            .rules
            .iter()
            .map(|r| {
                let classes = (!r.classes.is_empty()).then(|| {
                    let mut v = vec![false; class_names.len()];
                    for c in &r.classes {
                        if let Some(k) = class_names.iter().position(|n| n == c) {
                            v[k] = true;
                        }
                    }
                    v
                });
                let (def_min, def_clear) = match r.kind {
                    RuleKind::CameraOffline => (DEFAULT_OFFLINE_MIN_SEC, DEFAULT_OFFLINE_CLEAR_SEC),
                    RuleKind::CameraTamper => (DEFAULT_TAMPER_MIN_SEC, DEFAULT_CLEAR_SEC),
                    _ => (0.0, DEFAULT_CLEAR_SEC),
                };
                Rule {
                    name: r.name.clone(),
                    kind: r.kind,
                    severity: r.severity,
                    classes,
                    schedule: r.schedule.as_ref().and_then(|s| s.build()),
                    cooldown_sec: r.cooldown_sec,
                    last_fire: None,
                    zone: r
                        .zone
                        .as_ref()
                        .and_then(|z| zones.iter().position(|o| &o.name == z)),
                    line: r
                        .line
                        .as_ref()
                        .and_then(|l| lines.iter().position(|o| &o.name == l)),
                    direction: r.direction.unwrap_or_default(),
                    min_dur: r.min_duration_sec.unwrap_or(def_min),
                    clear: r.clear_sec.unwrap_or(def_clear),
                    min_count: r.min_count.unwrap_or(1),
                    max_speed: r.max_speed.unwrap_or(Speed::norm(0.0)),
                    lane_deg: r.lane_direction_deg.unwrap_or(0.0),
                    tol_deg: r.tolerance_deg.unwrap_or(DEFAULT_TOLERANCE_DEG),
                    min_dist: r.min_distance.unwrap_or(Distance {
                        value: DEFAULT_MIN_DISTANCE,
                        unit: LengthUnit::Norm,
                    }),
                    agg: Aggregate::default(),
                    tamper: (r.kind == RuleKind::CameraTamper).then(|| TamperRt {
                        monitor: TamperMonitor::new(r.tamper.clone().unwrap_or_default()),
                        holds: [Hold::default(); 4],
                        incidents: [None; 4],
                    }),
                }
            })
            .collect::<Vec<_>>();
        let counts = lines
            .iter()
            .map(|_| vec![[0u32; 2]; class_names.len()])
            .collect();
        Ok(Engine {
            class_names: class_names.to_vec(),
            zones,
            lines,
            rules,
            tracks: HashMap::with_capacity(128),
            ctx_pool: Vec::new(),
            next_incident: 0,
            counts,
            counts_interval: cfg.counts_interval_sec,
            counts_start: None,
            luma: LumaStats::default(),
            stream_up: true,
            generation: 0,
            gone: Vec::new(),
            ghosts: Vec::new(),
            reacquire_sec: cfg.reacquire_sec,
        })
    }

    /// Names of the zones a track is in (with inertia), or nothing for an unknown track.
    pub fn zones_of(&self, track_id: u64) -> impl Iterator<Item = &str> + '_ {
        let ctx = self.tracks.get(&track_id);
        self.zones
            .iter()
            .enumerate()
            .filter(move |(i, _)| ctx.is_some_and(|c| c.zones[*i].inside))
            .map(|(_, z)| z.name.as_str())
    }

    /// Judges the tracker's tracks on one frame. `tracks` is every live track (the engine
    /// skips tentative ones); `removed` the ids the tracker dropped on this frame. Tracks the
    /// engine knew that are in neither list are treated as removed too.
    pub fn process_tracks(
        &mut self,
        frame: &FrameInfo,
        tracks: &[Track],
        removed: &[u64],
        out: &mut EngineOutput,
    ) {
        let t = frame.t_sec;
        self.generation += 1;
        let generation = self.generation;
        let Engine {
            class_names,
            zones,
            lines,
            rules,
            tracks: ctxs,
            ctx_pool,
            next_incident,
            counts,
            ..
        } = self;
        let mut cx = Cx {
            class_names,
            zones,
            lines,
            next_incident,
            counts,
            out: &mut *out,
            frame,
        };

        repair_swaps(tracks, ctxs, t);
        for tr in tracks.iter().filter(|t| t.is_credible()) {
            if !ctxs.contains_key(&tr.id()) {
                if tr.state() == TrackState::Tracked
                    && tr.look().is_none()
                    && t - tr.first_seen_sec() < LOOK_WAIT_SEC
                    && reacquire_pending(tr, tracks, ctxs, &self.ghosts)
                {
                    continue; // judged once its look can say whose timers it takes over
                }
                let inherited = if tr.state() == TrackState::Tracked {
                    reacquire(tr, tracks, ctxs, &mut self.ghosts)
                } else {
                    None
                };
                let c = inherited.unwrap_or_else(|| {
                    let mut c = ctx_pool.pop().unwrap_or_default();
                    c.last_t = f64::NEG_INFINITY;
                    c.prev = None;
                    c.zones.clear();
                    c.zones.resize(cx.zones.len(), ZoneMember::default());
                    c.lines.clear();
                    c.lines.resize(cx.lines.len(), LineMember::default());
                    c.rules.clear();
                    c.rules.resize(rules.len(), TrackRule::default());
                    c.retired = false;
                    c.still_at = None;
                    c.still_box = None;
                    c.frozen = false;
                    c.look = None;
                    c.still_look = None;
                    c.still_t = f64::NEG_INFINITY;
                    c
                });
                ctxs.insert(tr.id(), c);
            }
            let Some(ctx) = ctxs.get_mut(&tr.id()) else {
                continue;
            };
            ctx.generation = generation;
            if ctx.retired {
                continue;
            }
            ctx.class_id = tr.class_id();
            ctx.score = tr.score();
            ctx.bbox = tr.det_bbox();
            ctx.still = tr.stationary();
            if tr.state() == TrackState::Tracked && tr.still_sec(t) > 0.0 {
                ctx.still_at = tr.ground_point();
                ctx.still_box = Some(tr.det_bbox());
            }
            if tr.state() != TrackState::Tracked {
                ctx.frozen = true;
                continue; // lost: frozen
            }
            if let Some(look) = tr.look() {
                ctx.look = Some(*look);
                if tr.still_sec(t) >= STILL_LOOK_SEC {
                    ctx.still_look = Some(*look);
                    ctx.still_t = t;
                }
            }
            if std::mem::take(&mut ctx.frozen) {
                // Back from hiding (or found again under a new id): what it was doing is
                // assumed to have gone on meanwhile, so a dip that began just before it was
                // hidden does not count the hidden time towards clearing its timers.
                for r in &mut ctx.rules {
                    r.hold.false_since = None;
                }
            }
            // New ground points, oldest first.
            let hist = tr.history();
            let first_new = hist.partition_point(|h| h.t_sec <= ctx.last_t);
            for &hp in hist.range(first_new..) {
                step_point(&mut cx, rules, ctx, tr, hp.ground, hp.t_sec);
                ctx.prev = Some(hp.ground);
                ctx.last_t = hp.t_sec;
                ctx.last_frame = hp.frame;
            }
            judge_track(&mut cx, rules, ctx, tr, t);
        }

        // Tracks gone: the tracker's removals plus any we knew that it no longer reports.
        self.gone.clear();
        self.gone.extend(removed.iter().copied());
        for (id, c) in ctxs.iter() {
            if c.generation != generation && !removed.contains(id) {
                self.gone.push(*id);
            }
        }
        for id in &self.gone {
            let Some(mut ctx) = ctxs.remove(id) else {
                continue;
            };
            if !ctx.retired && ctx.still && ctx.has_rule_state() && self.reacquire_sec > 0.0 {
                // Perhaps only hidden, or re-found under a new id: wait before ending.
                self.ghosts.push(Ghost {
                    id: *id,
                    ctx,
                    expires_at: t + self.reacquire_sec,
                });
                continue;
            }
            if !ctx.retired {
                end_track(&mut cx, rules, &mut ctx, *id);
            }
            ctx_pool.push(ctx);
        }
        let mut i = 0;
        while i < self.ghosts.len() {
            if self.ghosts[i].expires_at <= t {
                let mut g = self.ghosts.swap_remove(i);
                end_track(&mut cx, rules, &mut g.ctx, g.id);
                ctx_pool.push(g.ctx);
            } else {
                i += 1;
            }
        }

        judge_aggregates(&mut cx, rules, ctxs, tracks, t);
        flush_counts(
            t,
            self.counts_interval,
            &mut self.counts_start,
            &self.lines,
            &self.class_names,
            &mut self.counts,
            out,
        );
    }

    /// Ends the open counts interval at `t` (the agent is stopping): reports what was counted
    /// since its start, so a graceful stop loses no count. Nothing is reported for an
    /// interval with no crossings or no time in it.
    pub fn close_counts(&mut self, t: f64, out: &mut EngineOutput) {
        let Some(s) = self.counts_start.take() else {
            return;
        };
        let counts = take_counts(&self.lines, &self.class_names, &mut self.counts);
        if t > s && !counts.is_empty() {
            out.counts.push(CountsReport {
                start_sec: s,
                end_sec: t.min(s + self.counts_interval),
                counts,
            });
        }
    }

    /// Judges one luma frame for the `camera_tamper` rules.
    pub fn process_luma(
        &mut self,
        frame: &FrameInfo,
        luma: &LumaFrame<'_>,
        out: &mut EngineOutput,
    ) -> Result<(), LumaError> {
        if !self.rules.iter().any(|r| r.tamper.is_some()) {
            return Ok(());
        }
        self.luma.measure(luma)?;
        let t = frame.t_sec;
        let Engine {
            class_names,
            zones,
            lines,
            rules,
            next_incident,
            counts,
            luma: stats,
            ..
        } = self;
        let mut cx = Cx {
            class_names,
            zones,
            lines,
            next_incident,
            counts,
            out: &mut *out,
            frame,
        };
        for rule in rules.iter_mut() {
            let armed = rule.armed(frame.local);
            let Some(rt) = rule.tamper.as_mut() else {
                continue;
            };
            let verdict = rt.monitor.judge(t, stats);
            for (ci, cause) in CAUSES.iter().enumerate() {
                let (raw, measure) = verdict.causes[ci];
                let Some(rt) = rule.tamper.as_mut() else {
                    continue;
                };
                let cleared = rt.holds[ci].update(armed && raw, t, rule.clear, t);
                let held = rt.holds[ci].held(t);
                let active = rt.incidents[ci];
                let details = EventDetails {
                    cause: Some(*cause),
                    measure: Some(measure),
                    ..EventDetails::default()
                };
                if let (Some(inc), Some(ended)) = (active, cleared) {
                    rt.incidents[ci] = None;
                    let ev = event(
                        rule,
                        &cx,
                        inc.id,
                        Phase::End,
                        inc.started_at,
                        Some(ended),
                        Vec::new(),
                        EventDetails {
                            dwell_sec: Some(ended - inc.started_at),
                            ..details
                        },
                    );
                    cx.out.events.push(ev);
                } else if active.is_none()
                    && held.is_some_and(|h| h >= rule.min_dur)
                    && rule.cooled(t)
                {
                    let started = t - held.unwrap_or(0.0);
                    let id = cx.new_incident();
                    rule.last_fire = Some(t);
                    if let Some(rt) = rule.tamper.as_mut() {
                        rt.incidents[ci] = Some(Incident {
                            id,
                            started_at: started,
                        });
                    }
                    let ev = event(
                        rule,
                        &cx,
                        id,
                        Phase::Start,
                        started,
                        None,
                        Vec::new(),
                        details,
                    );
                    cx.out.events.push(ev);
                }
            }
        }
        Ok(())
    }

    /// Records that the stream went up (`true`) or down at `t`, and judges offline rules.
    pub fn stream_state(&mut self, t: f64, local: LocalTime, up: bool, out: &mut EngineOutput) {
        self.stream_up = up;
        self.tick(t, local, out);
    }

    /// Lets time pass without a frame: judges offline rules and flushes due counts. Call it
    /// periodically (e.g. every second) so an outage is reported while no frames arrive.
    pub fn tick(&mut self, t: f64, local: LocalTime, out: &mut EngineOutput) {
        let frame = FrameInfo {
            t_sec: t,
            frame: 0,
            local,
        };
        let down = !self.stream_up;
        let Engine {
            class_names,
            zones,
            lines,
            rules,
            next_incident,
            counts,
            ..
        } = self;
        let mut cx = Cx {
            class_names,
            zones,
            lines,
            next_incident,
            counts,
            out: &mut *out,
            frame: &frame,
        };
        for rule in rules.iter_mut() {
            if rule.kind != RuleKind::CameraOffline {
                continue;
            }
            let raw = down && rule.armed(local);
            let cleared = rule.agg.hold.update(raw, t, rule.clear, t);
            let held = rule.agg.hold.held(t);
            match (rule.agg.incident, cleared) {
                (Some(inc), Some(ended)) => {
                    rule.agg.incident = None;
                    let d = EventDetails {
                        dwell_sec: Some(ended - inc.started_at),
                        ..EventDetails::default()
                    };
                    let mut ev = event(
                        rule,
                        &cx,
                        inc.id,
                        Phase::End,
                        inc.started_at,
                        Some(ended),
                        Vec::new(),
                        d,
                    );
                    ev.frame = None;
                    cx.out.events.push(ev);
                }
                (None, _) if held.is_some_and(|h| h >= rule.min_dur) && rule.cooled(t) => {
                    let started = t - held.unwrap_or(0.0);
                    let id = cx.new_incident();
                    rule.last_fire = Some(t);
                    rule.agg.incident = Some(Incident {
                        id,
                        started_at: started,
                    });
                    let d = EventDetails {
                        dwell_sec: held,
                        ..EventDetails::default()
                    };
                    let mut ev = event(rule, &cx, id, Phase::Start, started, None, Vec::new(), d);
                    ev.frame = None;
                    cx.out.events.push(ev);
                }
                _ => {}
            }
        }
        flush_counts(
            t,
            self.counts_interval,
            &mut self.counts_start,
            &self.lines,
            &self.class_names,
            &mut self.counts,
            out,
        );
    }
}
