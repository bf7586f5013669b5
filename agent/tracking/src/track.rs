//! ByteTrack-style multi-object tracker: per-track Kalman filter, two-stage IoU association,
//! lost-track buffer, confirmation after N hits, class-aware, with looks ([`Appearance`]) where
//! the caller measured them (someone who looks else is never matched); per-track ground-point
//! history, velocity, speed, stillness and running look.
//!
//! Contract: call [`Tracker::update`] once per detector frame with timestamps (seconds on one
//! monotonic clock per camera) that never go backwards; a frame with an earlier timestamp is
//! treated as simultaneous. After warm-up `update` does not allocate, except when a new track
//! needs a history ring and the pool of recycled ones is empty. Association is optimal
//! (Hungarian on `1 - IoU`), gated by IoU and by class: a person never updates a car track.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::appearance::{self, Appearance};
use crate::assign::Assigner;
use crate::calibration::Calibration;
use crate::geometry::{BBox, Point};
use crate::kalman::{BoxKalman, KalmanParams};
use crate::units::{Speed, SpeedUnit};

/// One detector output box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Index into the model's class names.
    pub class_id: u16,
    /// Confidence, 0..1.
    pub score: f32,
    /// Normalised box.
    pub bbox: BBox,
    /// What the object in the box looks like, when the caller measured it (see
    /// [`Appearance::measure`]); the tracker uses it for hand-overs and keeps it per track.
    #[serde(skip)]
    pub look: Option<Appearance>,
}

impl Detection {
    /// A detection without a measured look.
    pub fn new(class_id: u16, score: f32, bbox: BBox) -> Detection {
        Detection {
            class_id,
            score,
            bbox,
            look: None,
        }
    }
}

/// Tracker knobs. All have defaults; times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections at or above this score take part in the first association stage.
    pub high_score: f32,
    /// Detections between this and `high_score` only rescue tracks that lost their match.
    pub low_score: f32,
    /// A detection left unmatched must score at least this to start a new track.
    pub new_track_score: f32,
    /// A track whose detections all scored under this counts for the rules only once it has
    /// moved half its height from where it was first seen: a faint detection that never moves
    /// is more often part of the scenery than an object.
    pub confirm_score: f32,
    /// Minimum IoU for the first stage (confirmed and lost tracks vs. high-score detections).
    pub match_iou: f64,
    /// Minimum IoU for the second stage (tracked tracks vs. low-score detections).
    pub low_match_iou: f64,
    /// Minimum IoU for matching tentative tracks.
    pub tentative_match_iou: f64,
    /// Matched frames before a track is confirmed and reported to the rules.
    pub min_hits: u32,
    /// How long an unmatched confirmed track is kept (predicted) so it can be re-found.
    pub lost_buffer_sec: f64,
    /// The same for a track that was still when it was lost (a parked car behind a passing
    /// bus, a person standing behind passers-by): it is kept where it was, this long.
    pub lost_buffer_still_sec: f64,
    /// Ground points kept per track.
    pub history_len: usize,
    /// Time span over which velocity is measured from the history.
    pub speed_window_sec: f64,
    /// Below this speed a track counts as still (`still_sec`).
    pub still_speed: Speed,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.45,
            low_score: 0.1,
            new_track_score: 0.45,
            confirm_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            tentative_match_iou: 0.3,
            min_hits: 3,
            lost_buffer_sec: 3.0,
            lost_buffer_still_sec: 10.0,
            history_len: 64,
            speed_window_sec: 1.0,
            still_speed: Speed::norm(0.01),
        }
    }
}

impl TrackerConfig {
    /// Pure checks, each error as `(key, message)`.
    pub fn check(&self, errs: &mut Vec<(String, String)>) {
        let mut bad = |k: &str, m: String| errs.push((k.to_string(), m));
        for (k, v) in [
            ("high_score", self.high_score),
            ("low_score", self.low_score),
            ("new_track_score", self.new_track_score),
            ("confirm_score", self.confirm_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bad(k, format!("{v} is not within 0..1"));
            }
        }
        if self.low_score > self.high_score {
            bad(
                "low_score",
                format!("{} is above high_score {}", self.low_score, self.high_score),
            );
        }
        for (k, v) in [
            ("match_iou", self.match_iou),
            ("low_match_iou", self.low_match_iou),
            ("tentative_match_iou", self.tentative_match_iou),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                bad(k, format!("{v} is not within (0, 1]"));
            }
        }
        if self.min_hits == 0 {
            bad("min_hits", "must be at least 1".into());
        }
        for (k, v) in [
            ("lost_buffer_sec", self.lost_buffer_sec),
            ("lost_buffer_still_sec", self.lost_buffer_still_sec),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                bad(k, format!("{v} is not >= 0"));
            }
        }
        if !(2..=10_000).contains(&self.history_len) {
            bad(
                "history_len",
                format!("{} is not within 2..10000", self.history_len),
            );
        }
        if !(self.speed_window_sec > 0.0 && self.speed_window_sec.is_finite()) {
            bad(
                "speed_window_sec",
                format!("{} is not > 0", self.speed_window_sec),
            );
        }
    }
}

/// Lifecycle of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    /// Seen fewer than `min_hits` times; not reported to rules; dropped on its first miss.
    Tentative,
    /// Confirmed and matched on the latest frame.
    Tracked,
    /// Confirmed but unmatched recently; kept for `lost_buffer_sec` on its predicted box.
    Lost,
}

/// One entry of a track's ground-point history (only matched frames, never predictions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Stream time, seconds.
    pub t_sec: f64,
    /// Frame number.
    pub frame: u64,
    /// Filtered box bottom-centre, normalised.
    pub ground: Point,
    /// The same on the ground in metres, when calibrated and below the horizon.
    pub ground_m: Option<Point>,
}

/// A tracked object.
#[derive(Debug, Clone)]
pub struct Track {
    id: u64,
    class_id: u16,
    state: TrackState,
    score: f32,
    det_bbox: BBox,
    kf: BoxKalman,
    kf_t: f64,
    hits: u32,
    first_seen_sec: f64,
    last_seen_sec: f64,
    last_frame: u64,
    history: VecDeque<HistoryPoint>,
    velocity: Option<Point>,
    speed_mps: Option<f64>,
    still_since: Option<f64>,
    // Last time the track was still, and hits since; a track lost soon after is treated as
    // stationary.
    last_still_sec: Option<f64>,
    hits_since_still: u32,
    // The whole box of the object when it was last still: a smaller box inside it later is
    // the object partly hidden, not the object moving.
    still_box: Option<BBox>,
    // Lost while stationary: kept in place for `lost_buffer_still_sec`.
    lost_still: bool,
    // Lost behind an object in front of it: kept as long.
    lost_behind: bool,
    // Where it was first seen, and whether it has scored `confirm_score` or moved from there.
    born: Point,
    // Its first box touched the picture's edge: it may be coming into view.
    born_at_edge: bool,
    credible: bool,
    // What it looks like: a running average over sightings in the clear (no other box over
    // it, not cut by the picture's edge).
    look: Option<Appearance>,
    // The latest of those sightings alone, and when: what the box shows now, unblended.
    last_clear: Option<(Appearance, f64)>,
}

/// A track still this recently when it is lost counts as stationary: the last moments before
/// an occlusion are exactly when its box (and so its apparent speed) is least reliable.
const STILL_MEMORY_SEC: f64 = 2.0;

/// Extra assignment cost of a lost track: a detection that fits a live track about as well
/// goes to the live one.
const LOST_COST: f64 = 0.3;

impl Track {
    /// Stable id, unique per tracker, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Class of the detections this track follows.
    pub fn class_id(&self) -> u16 {
        self.class_id
    }
    /// Lifecycle state.
    pub fn state(&self) -> TrackState {
        self.state
    }
    /// Whether the track has been confirmed (it may be lost right now).
    pub fn is_confirmed(&self) -> bool {
        self.state != TrackState::Tentative
    }
    /// Whether the rules take the track into account: confirmed, and either detected with
    /// `confirm_score` at least once or seen to move (see [`TrackerConfig::confirm_score`]).
    pub fn is_credible(&self) -> bool {
        self.is_confirmed() && self.credible
    }
    /// Score of the latest matched detection.
    pub fn score(&self) -> f32 {
        self.score
    }
    /// Latest matched detection box (what the detector saw).
    pub fn det_bbox(&self) -> BBox {
        self.det_bbox
    }
    /// Filtered (or, when lost, predicted) box.
    pub fn bbox(&self) -> BBox {
        self.kf.bbox()
    }
    /// Matched frames so far.
    pub fn hits(&self) -> u32 {
        self.hits
    }
    /// Time of the first detection.
    pub fn first_seen_sec(&self) -> f64 {
        self.first_seen_sec
    }
    /// Time of the latest matched detection.
    pub fn last_seen_sec(&self) -> f64 {
        self.last_seen_sec
    }
    /// Frame of the latest matched detection.
    pub fn last_frame(&self) -> u64 {
        self.last_frame
    }
    /// Ground-point history, oldest first.
    pub fn history(&self) -> &VecDeque<HistoryPoint> {
        &self.history
    }
    /// Latest filtered ground point.
    pub fn ground_point(&self) -> Option<Point> {
        self.history.back().map(|h| h.ground)
    }
    /// Ground-point velocity in normalised units per second over the speed window, once known.
    pub fn velocity(&self) -> Option<Point> {
        self.velocity
    }
    /// Speed in the given unit, when known (metric needs calibration).
    pub fn speed(&self, unit: SpeedUnit) -> Option<f64> {
        match unit {
            SpeedUnit::NormPerSec => self.velocity.map(Point::norm),
            SpeedUnit::MetresPerSec => self.speed_mps,
        }
    }
    /// How long the track has been still (below the tracker's `still_speed`), as of `now`.
    pub fn still_sec(&self, now: f64) -> f64 {
        self.still_since.map_or(0.0, |s| (now - s).max(0.0))
    }
    /// What the object looks like (a running average over its sightings in the clear), once
    /// it was seen in the clear with a measured look.
    pub fn look(&self) -> Option<&Appearance> {
        self.look.as_ref()
    }
    /// The latest sighting in the clear alone (not averaged), and when it was.
    pub fn last_clear_look(&self) -> Option<(&Appearance, f64)> {
        self.last_clear.as_ref().map(|(a, t)| (a, *t))
    }
    /// Whether the track is lost and was stationary when it was (kept in place, longer).
    pub fn lost_while_still(&self) -> bool {
        self.state == TrackState::Lost && self.lost_still
    }

    /// Whether the object is stationary: still at one of its last two sightings or within the
    /// last 2 s before its latest (the sightings just before an occlusion
    /// are the ones whose boxes, and so apparent speeds, are least to be trusted), or lost
    /// while so.
    pub fn stationary(&self) -> bool {
        match self.state {
            TrackState::Tentative => false,
            TrackState::Lost => self.lost_still,
            TrackState::Tracked => self.recently_still(),
        }
    }

    fn recently_still(&self) -> bool {
        self.last_still_sec.is_some()
            && (self.hits_since_still <= 2
                || self
                    .last_still_sec
                    .is_some_and(|s| self.last_seen_sec - s <= STILL_MEMORY_SEC))
    }
}

/// The tracker of one camera.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    kp: KalmanParams,
    calib: Option<Calibration>,
    tracks: Vec<Track>,
    next_id: u64,
    removed: Vec<u64>,
    assigner: Assigner,
    // Scratch, reused every frame.
    high: Vec<usize>,
    low: Vec<usize>,
    det_used: Vec<bool>,
    // Whether each detection shows its object in the clear (see `in_the_clear`).
    det_clear: Vec<bool>,
    trk_matched: Vec<bool>,
    pool_rows: Vec<usize>,
    pool_cols: Vec<usize>,
    spare_histories: Vec<VecDeque<HistoryPoint>>,
}

impl Tracker {
    /// A tracker; `calib` makes metric speeds available.
    pub fn new(cfg: TrackerConfig, calib: Option<Calibration>) -> Tracker {
        Tracker {
            cfg,
            kp: KalmanParams::default(),
            calib,
            tracks: Vec::with_capacity(64),
            next_id: 1,
            removed: Vec::new(),
            assigner: Assigner::default(),
            high: Vec::new(),
            low: Vec::new(),
            det_used: Vec::new(),
            det_clear: Vec::new(),
            trk_matched: Vec::new(),
            pool_rows: Vec::new(),
            pool_cols: Vec::new(),
            spare_histories: Vec::new(),
        }
    }

    /// The config in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// The calibration in use.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calib.as_ref()
    }

    /// All live tracks (tentative, tracked and lost), in creation order.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Whether every live track is stationary: none tentative, moving, or lost while moving.
    /// Then a frame in which nothing moved needs no detection to keep the tracks right
    /// (motion gating).
    pub fn all_stationary(&self, now: f64) -> bool {
        self.tracks.iter().all(|t| match t.state {
            TrackState::Tentative => false,
            TrackState::Tracked => t.still_sec(now) > 0.0,
            TrackState::Lost => t.lost_still,
        })
    }

    /// Ids of tracks removed by the latest `update` (lost too long, or tentative and missed).
    pub fn removed(&self) -> &[u64] {
        &self.removed
    }

    /// Feeds one frame's detections. Detections with non-finite or inverted boxes are ignored.
    pub fn update(&mut self, t_sec: f64, frame: u64, dets: &[Detection]) {
        self.removed.clear();
        // 1. Predict every track to this frame.
        for tr in &mut self.tracks {
            let dt = t_sec - tr.kf_t;
            if dt > 0.0 {
                tr.kf.predict(dt, &self.kp);
                tr.kf_t = t_sec;
            }
        }
        // 2. Split detections by score.
        self.high.clear();
        self.low.clear();
        for (i, d) in dets.iter().enumerate() {
            if !d.bbox.is_valid() || !d.score.is_finite() {
                continue;
            }
            if d.score >= self.cfg.high_score {
                self.high.push(i);
            } else if d.score >= self.cfg.low_score {
                self.low.push(i);
            }
        }
        self.det_used.clear();
        self.det_used.resize(dets.len(), false);
        self.det_clear.clear();
        self.det_clear
            .extend((0..dets.len()).map(|i| in_the_clear(dets, i)));
        self.trk_matched.clear();
        self.trk_matched.resize(self.tracks.len(), false);

        // 3. Stage one: confirmed (tracked or lost) tracks vs. high-score detections.
        self.associate(dets, Stage::High, t_sec, frame);
        // 4. Stage two: still-unmatched tracked tracks vs. low-score detections.
        self.associate(dets, Stage::Low, t_sec, frame);
        // 5. Tentative tracks vs. the high-score detections left.
        self.associate(dets, Stage::Tentative, t_sec, frame);

        // 6. Misses: tracked → lost, tentative → removed; lost too long → removed.
        for i in 0..self.tracks.len() {
            if self.trk_matched[i] || self.tracks[i].state != TrackState::Tracked {
                continue;
            }
            // Hidden behind an object in front of it (a box reaching lower on the image,
            // followed right now) rather than gone: kept as long as a stationary one.
            let b = self.tracks[i].kf.bbox();
            let behind = self.tracks.iter().enumerate().any(|(j, o)| {
                let ob = o.kf.bbox();
                j != i
                    && self.trk_matched[j]
                    && o.state != TrackState::Tentative
                    && ob.y2 > b.y2
                    && overlap(&b, &ob) >= 0.3 * b.area()
            });
            let tr = &mut self.tracks[i];
            {
                tr.state = TrackState::Lost;
                tr.lost_behind = behind;
                tr.lost_still = tr.recently_still();
                if tr.lost_still {
                    // A stationary object hidden by another stays where it was.
                    tr.kf.set_velocity(0.0, 0.0);
                } else {
                    // Coast on the ground track's velocity over the speed window, not on the
                    // filter's rates, which follow the last (perhaps partly hidden) boxes; and
                    // at half of it: an occluded object is as likely to stop as to go on.
                    let v = tr.velocity.unwrap_or_default();
                    tr.kf.set_velocity(0.5 * v.x, 0.5 * v.y);
                }
            }
        }
        let (lost_buffer, lost_buffer_still) =
            (self.cfg.lost_buffer_sec, self.cfg.lost_buffer_still_sec);
        let mut keep = 0;
        for i in 0..self.tracks.len() {
            let tr = &self.tracks[i];
            let drop = if self.trk_matched[i] {
                false
            } else {
                match tr.state {
                    TrackState::Tentative => true,
                    TrackState::Lost => {
                        let buffer = if tr.lost_still || tr.lost_behind {
                            lost_buffer_still
                        } else {
                            lost_buffer
                        };
                        t_sec - tr.last_seen_sec > buffer
                    }
                    TrackState::Tracked => false,
                }
            };
            if drop {
                self.removed.push(tr.id);
            } else {
                self.tracks.swap(keep, i);
                keep += 1;
            }
        }
        for mut tr in self.tracks.drain(keep..) {
            tr.history.clear();
            self.spare_histories.push(std::mem::take(&mut tr.history));
        }

        // 7. New tracks from unmatched, confident detections.
        for k in 0..self.high.len() {
            let di = self.high[k];
            if self.det_used[di] || dets[di].score < self.cfg.new_track_score {
                continue;
            }
            let d = &dets[di];
            let history = self
                .spare_histories
                .pop()
                .unwrap_or_else(|| VecDeque::with_capacity(self.cfg.history_len));
            let mut tr = Track {
                id: self.next_id,
                class_id: d.class_id,
                state: TrackState::Tentative,
                score: d.score,
                det_bbox: d.bbox,
                kf: BoxKalman::new(&d.bbox, &self.kp),
                kf_t: t_sec,
                hits: 0,
                first_seen_sec: t_sec,
                last_seen_sec: t_sec,
                last_frame: frame,
                history,
                velocity: None,
                speed_mps: None,
                still_since: None,
                last_still_sec: None,
                hits_since_still: 0,
                still_box: None,
                lost_still: false,
                lost_behind: false,
                born: d.bbox.ground_point(),
                born_at_edge: edge_gap(&d.bbox) <= EDGE_TOUCH,
                credible: false,
                look: None,
                last_clear: None,
            };
            take_look(&mut tr, dets, &self.det_clear, di, t_sec);
            self.next_id += 1;
            record_hit(&mut tr, &self.cfg, self.calib.as_ref(), t_sec, frame);
            self.tracks.push(tr);
        }
    }

    fn associate(&mut self, dets: &[Detection], stage: Stage, t_sec: f64, frame: u64) {
        self.pool_rows.clear();
        for (i, tr) in self.tracks.iter().enumerate() {
            let eligible = !self.trk_matched[i]
                && match stage {
                    Stage::High => tr.state != TrackState::Tentative,
                    Stage::Low => tr.state == TrackState::Tracked,
                    Stage::Tentative => tr.state == TrackState::Tentative,
                };
            if eligible {
                self.pool_rows.push(i);
            }
        }
        self.pool_cols.clear();
        let (src, min_iou) = match stage {
            Stage::High => (&self.high, self.cfg.match_iou),
            Stage::Low => (&self.low, self.cfg.low_match_iou),
            Stage::Tentative => (&self.high, self.cfg.tentative_match_iou),
        };
        self.pool_cols
            .extend(src.iter().copied().filter(|&d| !self.det_used[d]));
        let (rows, cols) = (self.pool_rows.len(), self.pool_cols.len());
        if rows == 0 || cols == 0 {
            return;
        }
        let m = self.assigner.matrix(rows, cols);
        for (r, &ti) in self.pool_rows.iter().enumerate() {
            let tr = &self.tracks[ti];
            let pb = tr.kf.bbox();
            for (c, &di) in self.pool_cols.iter().enumerate() {
                let d = &dets[di];
                if d.class_id != tr.class_id {
                    continue; // stays FORBIDDEN: class-aware association
                }
                let iou = pb.iou(&d.bbox);
                if iou < min_iou {
                    continue;
                }
                // Feet do not move while an object stands: a still track does not take a
                // box standing nearer or farther when a moving track can explain it (someone
                // walking in front of it), unless the box is part of it (the rest hidden).
                if (tr.still_since.is_some() || tr.lost_still)
                    && !tr.still_box.is_some_and(|w| partial_view(&w, &d.bbox))
                    && (d.bbox.ground_point().y - pb.ground_point().y).abs()
                        > STILL_FEET_TOLERANCE * pb.height()
                    && self
                        .tracks
                        .iter()
                        .any(|o| o.still_since.is_none() && could_be(o, d))
                {
                    continue;
                }
                // A lost track sits where it was last seen; a newcomer stopping on that
                // spot belongs to its own, live track.
                let mut cost = 1.0 - iou;
                if tr.state == TrackState::Lost {
                    cost += LOST_COST;
                }
                // Looks, where both are known and the detection shows its object in the
                // clear: someone else is never matched (two people crossing, one hidden
                // behind the other, must not swap ids), and between two candidates the one
                // that looks more alike wins. A lost track waits for its own object: a
                // newcomer on its spot must look like it.
                let look = self.det_clear[di].then_some(d.look.as_ref()).flatten();
                if let (Some(own), Some(seen)) = (tr.look.as_ref(), look) {
                    let sim = own.similarity(seen);
                    let floor = if tr.state == TrackState::Lost {
                        appearance::SAME_OBJECT
                    } else {
                        appearance::OTHER_OBJECT
                    };
                    if sim < floor {
                        continue;
                    }
                    cost += LOOK_COST * f64::from(1.0 - sim);
                }
                m[r * cols + c] = cost;
            }
        }
        let assignment = self.assigner.solve(rows, cols);
        for (r, col) in assignment.iter().enumerate() {
            let Some(c) = *col else { continue };
            let (ti, di) = (self.pool_rows[r], self.pool_cols[c]);
            self.trk_matched[ti] = true;
            self.det_used[di] = true;
            let tr = &mut self.tracks[ti];
            let d = &dets[di];
            let whole = tr.still_box.filter(|_| tr.stationary());
            if let Some(whole) = whole.filter(|w| partial_view(w, &d.bbox)) {
                // Part of a stationary object, the rest hidden by something passing in front:
                // it has not moved, so its box stays whole and where it was.
                tr.det_bbox = whole;
            } else {
                tr.kf.update(&d.bbox, &self.kp);
                tr.det_bbox = d.bbox;
                take_look(tr, dets, &self.det_clear, di, t_sec);
            }
            tr.score = d.score;
            tr.last_seen_sec = t_sec;
            tr.last_frame = frame;
            record_hit(tr, &self.cfg, self.calib.as_ref(), t_sec, frame);
        }
    }
}

/// Weight of a new sighting in a track's running look: a few sightings make it.
const LOOK_WEIGHT: f32 = 0.3;

/// How far (in box heights, up or down the picture) the feet of a still track's box may be
/// from where they stood: a person setting off covers about 0.15 of their height in a frame
/// at 5 detections/s; someone passing in front stands lower by much more than that.
const STILL_FEET_TOLERANCE: f64 = 0.25;

/// Whether `d` could be the next box of the moving, confirmed track `o`: same class, feet
/// within a quarter of its height of its predicted feet line and within one and a half widths
/// across (a walker's predicted box lags a frame's step behind at 5 detections/s).
fn could_be(o: &Track, d: &Detection) -> bool {
    let p = o.kf.bbox();
    let (g, pg) = (d.bbox.ground_point(), p.ground_point());
    o.state != TrackState::Tentative
        && o.class_id == d.class_id
        && (g.y - pg.y).abs() <= STILL_FEET_TOLERANCE * p.height()
        && (g.x - pg.x).abs() <= 1.5 * p.width()
}

/// Weight of looks in the association cost (`1 - IoU`, 0..1): a tie-breaker, not a rival
/// of the boxes.
const LOOK_COST: f64 = 0.3;

/// Whether `dets[di]` shows its object in the clear: no other detection over more than a
/// tenth of its box, not cut by the picture's edge. Only such looks are kept or compared: a
/// passer-by's colours must not become the look of the person they walk in front of.
fn in_the_clear(dets: &[Detection], di: usize) -> bool {
    let d = &dets[di];
    let area = d.bbox.area();
    d.bbox.is_valid()
        && edge_gap(&d.bbox) > EDGE_TOUCH
        && !dets
            .iter()
            .enumerate()
            .any(|(j, o)| j != di && o.bbox.is_valid() && overlap(&d.bbox, &o.bbox) > 0.1 * area)
}

/// Folds the look of the matched detection `di` into the track's, when seen in the clear
/// (at `t_sec`).
fn take_look(tr: &mut Track, dets: &[Detection], clear: &[bool], di: usize, t_sec: f64) {
    let Some(new) = dets[di].look.as_ref().filter(|_| clear[di]) else {
        return;
    };
    tr.last_clear = Some((*new, t_sec));
    match tr.look.as_mut() {
        Some(l) => l.blend(new, LOOK_WEIGHT),
        None => tr.look = Some(*new),
    }
}

/// Area of the intersection of two boxes.
fn overlap(a: &BBox, b: &BBox) -> f64 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    f64::from(iw * ih)
}

/// Whether `det` shows only part of the object boxed by `track`: clearly smaller, and almost
/// all of it inside the track's box.
fn partial_view(track: &BBox, det: &BBox) -> bool {
    let (ta, da) = (track.area(), det.area());
    if ta <= 0.0 || da <= 0.0 || da > 0.85 * ta {
        return false;
    }
    let iw = (track.x2.min(det.x2) - track.x1.max(det.x1)).max(0.0);
    let ih = (track.y2.min(det.y2) - track.y1.max(det.y1)).max(0.0);
    f64::from(iw * ih) >= 0.8 * da
}

#[derive(Clone, Copy)]
enum Stage {
    High,
    Low,
    Tentative,
}

/// Book-keeping after a matched detection: hits, state, history, velocity, stillness.
fn record_hit(
    tr: &mut Track,
    cfg: &TrackerConfig,
    calib: Option<&Calibration>,
    t: f64,
    frame: u64,
) {
    tr.hits += 1;
    if tr.hits >= cfg.min_hits {
        tr.state = TrackState::Tracked;
    }
    let ground = tr.kf.bbox().ground_point();
    if tr.history.len() >= cfg.history_len {
        tr.history.pop_front();
    }
    tr.history.push_back(HistoryPoint {
        t_sec: t,
        frame,
        ground,
        ground_m: calib.and_then(|c| c.to_ground(ground)),
    });
    // Velocity over the speed window: from the oldest point inside it, or the one just before
    // when only the newest point is inside (sparse frames).
    let n = tr.history.len();
    if n >= 2 {
        let from = t - cfg.speed_window_sec;
        let mut k = n - 2;
        while k > 0 && tr.history[k - 1].t_sec >= from {
            k -= 1;
        }
        let (a, b) = (tr.history[k], tr.history[n - 1]);
        let dt = b.t_sec - a.t_sec;
        if dt > 1e-6 {
            tr.velocity = Some((b.ground - a.ground) * (1.0 / dt));
            tr.speed_mps = match (a.ground_m, b.ground_m) {
                (Some(ga), Some(gb)) => Some(ga.dist(gb) / dt),
                _ => None,
            };
        }
    }
    let still = match cfg.still_speed.unit {
        SpeedUnit::NormPerSec => tr.velocity.map(|v| v.norm() < cfg.still_speed.value),
        SpeedUnit::MetresPerSec => tr.speed_mps.map(|s| s < cfg.still_speed.value),
    };
    match still {
        Some(true) => {
            tr.still_since.get_or_insert(t);
            tr.last_still_sec = Some(t);
            tr.hits_since_still = 0;
            tr.still_box = Some(tr.kf.bbox());
        }
        _ => {
            tr.still_since = None;
            tr.hits_since_still = tr.hits_since_still.saturating_add(1);
        }
    }
    tr.lost_still = false;
    tr.lost_behind = false;
    // Credible: detected surely once, seen to move from where it was born, or seen to come
    // into the picture (first seen cut by its edge, now clear of every edge): scenery does
    // not walk in from outside the frame, so a faint car that drives in and stops at once
    // counts like one that drove further.
    tr.credible = tr.credible
        || tr.score >= cfg.confirm_score
        || ground.dist(tr.born) > 0.5 * tr.det_bbox.height()
        || (tr.born_at_edge && edge_gap(&tr.det_bbox) >= EDGE_CLEAR);
}

/// A box this close to the picture's edge (normalised) is cut by it.
const EDGE_TOUCH: f64 = 0.005;
/// A box this far from every edge has come into the picture (box jitter is far smaller).
const EDGE_CLEAR: f64 = 0.02;

/// The box's distance to the nearest edge of the picture (normalised coordinates).
fn edge_gap(b: &BBox) -> f64 {
    f64::from(b.x1)
        .min(f64::from(b.y1))
        .min(1.0 - f64::from(b.x2))
        .min(1.0 - f64::from(b.y2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: u16, score: f32, cx: f64, cy: f64, w: f64, h: f64) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox::from_cxcywh(cx, cy, w, h),
            look: None,
        }
    }

    fn confirmed(t: &Tracker) -> Vec<&Track> {
        t.tracks().iter().filter(|t| t.is_confirmed()).collect()
    }

    #[test]
    fn confirms_after_min_hits_and_keeps_ids_for_crossing_objects() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        // Two people walking towards each other on the same row, passing at t = 2 s.
        for f in 0..=20u64 {
            let t = f as f64 * 0.2;
            let a = det(0, 0.9, 0.1 + 0.1 * t, 0.5, 0.05, 0.15);
            let b = det(0, 0.9, 0.5 - 0.1 * t + 0.0, 0.52, 0.05, 0.15);
            tr.update(t, f, &[a, b]);
            if f == 1 {
                assert!(confirmed(&tr).is_empty(), "confirmed too early");
            }
        }
        let c = confirmed(&tr);
        assert_eq!(c.len(), 2);
        // Ids 1 and 2 survive the crossing and each kept its direction of motion.
        let a = c.iter().find(|t| t.id() == 1).unwrap();
        let b = c.iter().find(|t| t.id() == 2).unwrap();
        assert!(a.velocity().unwrap().x > 0.05, "{:?}", a.velocity());
        assert!(b.velocity().unwrap().x < -0.05, "{:?}", b.velocity());
        assert!(tr.removed().is_empty());
    }

    #[test]
    fn a_faint_object_that_comes_into_the_picture_is_credible_scenery_at_the_edge_is_not() {
        let cfg = TrackerConfig::default();
        let faint = cfg.confirm_score - 0.1;
        let run = |boxes: &dyn Fn(f64) -> Detection| {
            let mut tr = Tracker::new(TrackerConfig::default(), None);
            for f in 0..30u64 {
                let t = f as f64 * 0.2;
                tr.update(t, f, &[boxes(t)]);
            }
            tr.tracks()[0].is_credible()
        };
        // A car driving in from the right edge (first seen cut by it, [0.92, 1.0]) and
        // stopping a short way in ([0.77, 0.97]): its ground point moved 0.09, less than
        // half its height (0.3) from where it was first seen.
        let car = |t: f64| {
            let right = (1.0 - 0.05 * t).max(0.97);
            let left = (0.92 - 0.25 * t).max(0.77);
            det(2, faint, (left + right) / 2.0, 0.4, right - left, 0.3)
        };
        assert!(run(&car), "came into the picture");
        // A faint box cut by the edge that stays there (a poster, a shadow): not credible.
        assert!(!run(&|_| det(2, faint, 0.95, 0.4, 0.1, 0.1)));
        // Nor a faint box that never moves in the middle of the picture.
        assert!(!run(&|_| det(2, faint, 0.5, 0.4, 0.1, 0.1)));
    }

    #[test]
    fn one_second_occlusion_keeps_the_id() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        let mut f = 0u64;
        let mut t = 0.0;
        let pos = |t: f64| det(2, 0.8, 0.2 + 0.05 * t, 0.6, 0.1, 0.08);
        while t < 2.0 {
            tr.update(t, f, &[pos(t)]);
            t += 0.2;
            f += 1;
        }
        // Occluded for a second: frames arrive without the detection.
        while t < 3.0 {
            tr.update(t, f, &[]);
            assert_eq!(tr.tracks()[0].state(), TrackState::Lost);
            t += 0.2;
            f += 1;
        }
        while t < 4.0 {
            tr.update(t, f, &[pos(t)]);
            t += 0.2;
            f += 1;
        }
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!(tr.tracks()[0].id(), 1);
        assert_eq!(tr.tracks()[0].state(), TrackState::Tracked);
    }

    #[test]
    fn lost_tracks_expire_after_the_buffer() {
        let cfg = TrackerConfig {
            lost_buffer_sec: 1.0,
            ..TrackerConfig::default()
        };
        let mut tr = Tracker::new(cfg, None);
        for f in 0..5u64 {
            // Walking: a moving track gets the short buffer.
            let x = 0.3 + 0.02 * f as f64;
            tr.update(f as f64 * 0.2, f, &[det(0, 0.9, x, 0.5, 0.1, 0.2)]);
        }
        let mut removed_at = None;
        for f in 5..20u64 {
            tr.update(f as f64 * 0.2, f, &[]);
            if tr.removed() == [1] {
                removed_at = Some(f as f64 * 0.2);
                break;
            }
        }
        // Last seen at 0.8 s; removed on the first frame more than 1 s later.
        assert!((removed_at.unwrap() - 2.0).abs() < 1e-9, "{removed_at:?}");
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn a_stationary_track_hidden_for_seconds_stays_in_place_and_keeps_its_id() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        let parked = det(2, 0.8, 0.5, 0.6, 0.12, 0.08);
        let mut f = 0u64;
        let mut t = 0.0;
        while t < 4.0 {
            // The last frames before the occlusion: the box shrinks from the left as a bus
            // covers it, which looks like motion to the right.
            let d = if t > 3.4 {
                det(2, 0.6, 0.53, 0.6, 0.06, 0.08)
            } else {
                parked
            };
            tr.update(t, f, &[d]);
            t += 0.2;
            f += 1;
        }
        // Hidden for 5 s: longer than lost_buffer_sec, shorter than lost_buffer_still_sec.
        while t < 9.0 {
            tr.update(t, f, &[]);
            assert!(tr.tracks()[0].lost_while_still());
            t += 0.2;
            f += 1;
        }
        let c = tr.tracks()[0].bbox().centre();
        assert!((c.x - 0.5).abs() < 0.04, "did not stay put: {c:?}");
        tr.update(t, f, &[parked]);
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!(
            (tr.tracks()[0].id(), tr.tracks()[0].state()),
            (1, TrackState::Tracked)
        );
    }

    /// A look painted on a 1000-pixel frame: the box's upper half `upper`, lower half `lower`.
    fn looked(d: Detection, upper: [u8; 3], lower: [u8; 3]) -> Detection {
        let waist = 500.0 * f64::from(d.bbox.y1 + d.bbox.y2);
        let paint = move |_: usize, y: usize| if (y as f64) < waist { upper } else { lower };
        Detection {
            look: Appearance::measure(d.bbox, 1000, 1000, paint),
            ..d
        }
    }

    #[test]
    fn someone_walking_in_front_of_a_stander_does_not_take_their_track() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        // A stander (feet at y 0.62) and someone walking by in front (feet at 0.70).
        let stander = det(0, 0.9, 0.5, 0.50, 0.08, 0.24);
        let walker = |x: f64| det(0, 0.9, x, 0.58, 0.08, 0.24);
        let (mut t, mut f) = (0.0, 0u64);
        while t < 3.0 {
            tr.update(t, f, &[stander]);
            t += 0.2;
            f += 1;
        }
        let mut x = 0.30;
        while x < 0.41 {
            tr.update(t, f, &[stander, walker(x)]);
            t += 0.2;
            f += 1;
            x += 0.02;
        }
        // The walker now hides the stander, and their box jumps ahead (people merging into
        // one box do that): it overlaps the stander's box more than the walker's prediction.
        tr.update(t, f, &[walker(0.47)]);
        let first = tr.tracks().iter().find(|t| t.id() == 1).expect("kept");
        let c = first.bbox().centre();
        assert!(
            (c.x - 0.5).abs() < 0.01 && (c.y - 0.5).abs() < 0.01,
            "the stander's track took the walker's box: {c:?}"
        );
        assert!(first.lost_while_still());
        let w = tr.tracks().iter().find(|t| t.id() != 1).expect("walker");
        assert_eq!(w.state(), TrackState::Tracked);
        assert!((w.det_bbox().centre().x - 0.47).abs() < 1e-6);
    }

    #[test]
    fn a_lost_stander_is_not_refound_in_someone_who_looks_else() {
        let dark = [40, 128, 128];
        let blue = [70, 170, 110];
        let red = [90, 110, 180];
        let grey = [140, 128, 128];
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        let (mut t, mut f) = (0.0, 0u64);
        while t < 3.0 {
            tr.update(
                t,
                f,
                &[looked(det(0, 0.9, 0.5, 0.54, 0.04, 0.12), dark, blue)],
            );
            t += 0.2;
            f += 1;
        }
        tr.update(t, f, &[]);
        assert!(tr.tracks()[0].lost_while_still());
        // Someone else on the very spot: a new track. The first person back: their own.
        let other = looked(det(0, 0.9, 0.5, 0.54, 0.04, 0.12), red, grey);
        tr.update(t + 0.2, f + 1, &[other]);
        assert_eq!(tr.tracks()[0].state(), TrackState::Lost);
        assert_eq!(tr.tracks().len(), 2);
        let back = looked(det(0, 0.9, 0.5, 0.54, 0.04, 0.12), dark, blue);
        tr.update(
            t + 0.4,
            f + 2,
            &[back, looked(det(0, 0.9, 0.7, 0.54, 0.04, 0.12), red, grey)],
        );
        assert_eq!(
            (tr.tracks()[0].id(), tr.tracks()[0].state()),
            (1, TrackState::Tracked)
        );
    }

    #[test]
    fn class_aware_and_low_score_rescue() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        for f in 0..4u64 {
            tr.update(f as f64 * 0.2, f, &[det(2, 0.9, 0.5, 0.5, 0.1, 0.1)]);
        }
        assert_eq!(tr.tracks()[0].state(), TrackState::Tracked);
        // A person detection exactly on the car's box does not update the car track…
        tr.update(0.8, 4, &[det(0, 0.9, 0.5, 0.5, 0.1, 0.1)]);
        let car = tr.tracks().iter().find(|t| t.class_id() == 2).unwrap();
        assert_eq!(car.state(), TrackState::Lost);
        assert_eq!(car.last_frame(), 3);
        // …and it starts its own (tentative) track.
        assert!(tr.tracks().iter().any(|t| t.class_id() == 0));
        // A low-score car detection cannot revive a lost track (ByteTrack: stage two is for
        // tracks matched on the previous frame); a high-score one does.
        tr.update(1.0, 5, &[det(2, 0.3, 0.5, 0.5, 0.1, 0.1)]);
        let car = tr.tracks().iter().find(|t| t.class_id() == 2).unwrap();
        assert_eq!(car.state(), TrackState::Lost);
        tr.update(1.2, 6, &[det(2, 0.9, 0.5, 0.5, 0.1, 0.1)]);
        let car = tr.tracks().iter().find(|t| t.class_id() == 2).unwrap();
        assert_eq!((car.id(), car.state()), (1, TrackState::Tracked));
        // While tracked, a low-score detection keeps it tracked (no new track from it).
        tr.update(1.4, 7, &[det(2, 0.3, 0.5, 0.5, 0.1, 0.1)]);
        let cars: Vec<_> = tr.tracks().iter().filter(|t| t.class_id() == 2).collect();
        assert_eq!(cars.len(), 1);
        assert_eq!(cars[0].state(), TrackState::Tracked);
        assert_eq!(cars[0].last_frame(), 7);
    }

    #[test]
    fn speed_and_stillness() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        for f in 0..13u64 {
            let t = f as f64 * 0.2;
            // Moves 0.1/s for 1 s, then parks; the 1 s speed window sees it still from ~2 s.
            let x = 0.3 + 0.1 * t.min(1.0);
            tr.update(t, f, &[det(2, 0.9, x, 0.5, 0.1, 0.1)]);
        }
        let t = &tr.tracks()[0];
        assert!(t.speed(SpeedUnit::NormPerSec).unwrap() < 0.01);
        assert!(t.still_sec(2.4) > 0.0 && t.still_sec(2.4) < 1.0);
        assert_eq!(t.speed(SpeedUnit::MetresPerSec), None);
        assert_eq!(t.history().len(), 13);
    }

    #[test]
    fn ignores_garbage_detections() {
        let mut tr = Tracker::new(TrackerConfig::default(), None);
        let nan = Detection {
            class_id: 0,
            score: f32::NAN,
            bbox: BBox::new(0.1, 0.1, 0.2, 0.2),
            look: None,
        };
        let inverted = Detection {
            class_id: 0,
            score: 0.9,
            bbox: BBox::new(0.3, 0.3, 0.2, 0.2),
            look: None,
        };
        tr.update(0.0, 0, &[nan, inverted]);
        assert!(tr.tracks().is_empty());
    }
}
