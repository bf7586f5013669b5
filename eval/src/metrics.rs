//! Scoring a run against the truth.
//!
//! **Incidents.** Each expected incident is matched to the earliest raised incident of the same
//! rule (same direction for lines, same cause for tamper) whose time falls between one second
//! before the condition began and [`LATE_SEC`] after the rule was due; what is left of a rule's
//! raised incidents during a matched condition is a duplicate, the rest are false alarms.
//! Time to detect is from the condition's start (entry, crossing, camera event); its goal is
//! the rule's own threshold plus one second.
//!
//! **Tracks** (CLEAR MOT and IDF1): at every analysed frame, confirmed tracks are matched to
//! truth boxes by IoU ≥ 0.5 (a track keeps its truth object while they still overlap);
//! objects less than half visible or tinier than [`MIN_HEIGHT`] are "don't care": missing them
//! is not a miss and a track on them is not a false one. Identity switches, fragmentations
//! (a followed object lost and found again), MOTA and IDF1 as in the MOT challenge.

use std::collections::{BTreeMap, HashMap, HashSet};

use ioc_tracking::assign::Assigner;
use ioc_tracking::rules::config::{CrossDirection, TamperCause};
use ioc_tracking::rules::event::CountsReport;
use ioc_tracking::{Phase, RuleEvent, RuleKind};
use serde::{Deserialize, Serialize};

use crate::simulate::TrackFrame;
use crate::truth::{Expected, Truth};

/// A raised incident this late after it was due still counts (and its lateness shows in
/// time to detect); later it is a miss and a false alarm.
pub const LATE_SEC: f64 = 5.0;
/// Truth boxes smaller than this (normalised height) are don't-care for tracking.
pub const MIN_HEIGHT: f64 = 0.04;

/// A raised incident, as the scorer sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Raised {
    /// Rule name.
    pub rule: String,
    /// Kind.
    pub kind: RuleKind,
    /// When it was raised (clip time of the frame that decided it).
    pub at_sec: f64,
    /// Direction (lines).
    pub direction: Option<CrossDirection>,
    /// Cause (tamper).
    pub cause: Option<TamperCause>,
}

impl Raised {
    /// The incidents a run raised: starts and one-shot events.
    pub fn from_events(events: &[RuleEvent]) -> Vec<Raised> {
        events
            .iter()
            .filter(|e| matches!(e.phase, Phase::Start | Phase::Instant))
            .map(|e| Raised {
                rule: e.rule.clone(),
                kind: e.kind,
                at_sec: e.observed_at_sec,
                direction: e.details.direction,
                cause: e.details.cause,
            })
            .collect()
    }
}

/// Scores of one incident kind (or of everything).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KindScore {
    /// Expected incidents found.
    pub tp: u32,
    /// Raised incidents nothing explains.
    pub fp: u32,
    /// Expected incidents not raised (in time).
    pub missed: u32,
    /// Extra incidents for one condition.
    pub duplicates: u32,
    /// Found later than the rule's threshold + 1 s.
    pub late: u32,
    /// Times to detect (s) of the found ones.
    pub ttd: Vec<f64>,
    /// Thresholds (s) of the found ones, for the goal.
    pub thresholds: Vec<f64>,
}

impl KindScore {
    /// TP / (TP + FP); 1 when nothing was raised.
    pub fn precision(&self) -> f64 {
        let d = self.tp + self.fp;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }

    /// TP / (TP + missed); 1 when nothing was expected.
    pub fn recall(&self) -> f64 {
        let d = self.tp + self.missed;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }

    /// Adds another score.
    pub fn add(&mut self, o: &KindScore) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.missed += o.missed;
        self.duplicates += o.duplicates;
        self.late += o.late;
        self.ttd.extend(&o.ttd);
        self.thresholds.extend(&o.thresholds);
    }
}

/// Line counts: truth and raised, per direction.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LineScore {
    /// Truth `[in, out]`.
    pub truth: [u32; 2],
    /// Counted `[in, out]`.
    pub counted: [u32; 2],
}

/// Tracking scores.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrackScore {
    /// Truth boxes that count.
    pub gt: u32,
    /// Matched.
    pub tp: u32,
    /// Truth boxes without a track.
    pub fn_: u32,
    /// Tracks on nothing.
    pub fp: u32,
    /// Identity switches.
    pub id_switches: u32,
    /// Fragmentations.
    pub fragmentations: u32,
    /// IDF1's parts: identity true positives, false positives, false negatives.
    pub idtp: u32,
    /// See `idtp`.
    pub idfp: u32,
    /// See `idtp`.
    pub idfn: u32,
}

impl TrackScore {
    /// MOTA.
    pub fn mota(&self) -> f64 {
        if self.gt == 0 {
            return 1.0;
        }
        1.0 - (self.fn_ + self.fp + self.id_switches) as f64 / self.gt as f64
    }

    /// IDF1.
    pub fn idf1(&self) -> f64 {
        let d = 2 * self.idtp + self.idfp + self.idfn;
        if d == 0 {
            1.0
        } else {
            2.0 * self.idtp as f64 / d as f64
        }
    }

    /// Adds another score.
    pub fn add(&mut self, o: &TrackScore) {
        self.gt += o.gt;
        self.tp += o.tp;
        self.fn_ += o.fn_;
        self.fp += o.fp;
        self.id_switches += o.id_switches;
        self.fragmentations += o.fragmentations;
        self.idtp += o.idtp;
        self.idfp += o.idfp;
        self.idfn += o.idfn;
    }
}

/// Everything about one run of one scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunScore {
    /// Per incident kind (`line_crossing`, …).
    pub kinds: BTreeMap<String, KindScore>,
    /// Per line.
    pub lines: BTreeMap<String, LineScore>,
    /// Tracking.
    pub tracks: TrackScore,
    /// The expected incidents that were missed, and the false alarms, for people to read.
    pub notes: Vec<String>,
}

fn same(e: &Expected, r: &Raised) -> bool {
    e.rule == r.rule
        && e.kind == r.kind
        && (e.direction.is_none() || e.direction == r.direction)
        && (e.cause.is_none() || e.cause == r.cause)
}

/// Scores the raised incidents against the expected ones.
pub fn score_incidents(truth: &Truth, raised: &[Raised], rules: &[(String, RuleKind)]) -> RunScore {
    let mut score = RunScore::default();
    for (_, k) in rules {
        score.kinds.entry(k.as_str().to_owned()).or_default();
    }
    let mut used = vec![false; raised.len()];
    let mut matched_windows: Vec<(usize, f64, f64)> = Vec::new(); // (expected idx, from, to)
    for (ei, e) in truth.incidents.iter().enumerate() {
        let ks = score.kinds.entry(e.kind.as_str().to_owned()).or_default();
        let lo = e.start_sec - 1.0;
        let hi = e.due_sec + LATE_SEC;
        let hit = raised
            .iter()
            .enumerate()
            .filter(|(i, r)| !used[*i] && same(e, r) && r.at_sec >= lo && r.at_sec <= hi)
            .min_by(|a, b| a.1.at_sec.total_cmp(&b.1.at_sec))
            .map(|(i, _)| i);
        match hit {
            Some(i) => {
                used[i] = true;
                ks.tp += 1;
                let ttd = raised[i].at_sec - e.start_sec;
                let threshold = e.due_sec - e.start_sec;
                ks.ttd.push(ttd);
                ks.thresholds.push(threshold);
                if ttd > threshold + 1.0 {
                    ks.late += 1;
                    score.notes.push(format!(
                        "late: {} {} at {:.1}s, {:.1}s after it began (threshold {:.1}s)",
                        e.kind.as_str(),
                        e.rule,
                        raised[i].at_sec,
                        ttd,
                        threshold
                    ));
                }
                matched_windows.push((ei, lo, e.end_sec.max(e.due_sec) + 2.0));
            }
            None => {
                ks.missed += 1;
                score.notes.push(format!(
                    "missed: {} {}{} due at {:.1}s (began {:.1}s)",
                    e.kind.as_str(),
                    e.rule,
                    e.direction
                        .map(|d| format!(" {d:?}"))
                        .or(e.cause.map(|c| format!(" {c:?}")))
                        .unwrap_or_default(),
                    e.due_sec,
                    e.start_sec
                ));
            }
        }
    }
    for (i, r) in raised.iter().enumerate() {
        if used[i] {
            continue;
        }
        let ks = score.kinds.entry(r.kind.as_str().to_owned()).or_default();
        // Lines have one expected incident per crossing: an extra one is a false count.
        let dup = r.kind != RuleKind::LineCrossing
            && matched_windows.iter().any(|&(ei, lo, hi)| {
                same(&truth.incidents[ei], r) && r.at_sec >= lo && r.at_sec <= hi
            });
        if dup {
            ks.duplicates += 1;
            score.notes.push(format!(
                "duplicate: {} {} at {:.1}s",
                r.kind.as_str(),
                r.rule,
                r.at_sec
            ));
        } else {
            ks.fp += 1;
            score.notes.push(format!(
                "false alarm: {} {}{} at {:.1}s",
                r.kind.as_str(),
                r.rule,
                r.direction
                    .map(|d| format!(" {d:?}"))
                    .or(r.cause.map(|c| format!(" {c:?}")))
                    .unwrap_or_default(),
                r.at_sec
            ));
        }
    }
    score
}

/// Line counts from the run's count reports against the truth.
pub fn score_lines(truth: &Truth, counts: &[CountsReport]) -> BTreeMap<String, LineScore> {
    let mut out: BTreeMap<String, LineScore> = truth
        .line_counts
        .iter()
        .map(|(l, c)| {
            (
                l.clone(),
                LineScore {
                    truth: *c,
                    counted: [0, 0],
                },
            )
        })
        .collect();
    for r in counts {
        for c in &r.counts {
            let e = out.entry(c.line.clone()).or_default();
            e.counted[0] += c.in_count;
            e.counted[1] += c.out_count;
        }
    }
    out
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = iw * ih;
    let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i;
    if u <= 0.0 {
        0.0
    } else {
        i / u
    }
}

/// CLEAR MOT and IDF1 of the tracks against the truth boxes.
pub fn score_tracks(truth: &Truth, frames: &[TrackFrame]) -> TrackScore {
    let mut s = TrackScore::default();
    let mut last_match: HashMap<u32, u64> = HashMap::new();
    let mut was_tracked: HashMap<u32, bool> = HashMap::new();
    let mut pairs: HashMap<(u32, u64), u32> = HashMap::new();
    let mut gt_count: HashMap<u32, u32> = HashMap::new();
    let mut trk_count: HashMap<u64, u32> = HashMap::new();
    let mut assigner = Assigner::default();
    for f in frames {
        let Some(tf) = truth.frame_at(f.t) else {
            continue;
        };
        let counts =
            |b: &crate::truth::TruthBox| b.visibility >= 0.5 && b.bbox[3] - b.bbox[1] >= MIN_HEIGHT;
        let gts: Vec<_> = tf.boxes.iter().collect();
        let (rows, cols) = (gts.len(), f.tracks.len());
        let mut matched_gt = vec![None; rows];
        if rows > 0 && cols > 0 {
            let m = assigner.matrix(rows, cols);
            for (r, g) in gts.iter().enumerate() {
                for (c, (tid, b)) in f.tracks.iter().enumerate() {
                    let v = iou(g.bbox, *b);
                    if v >= 0.5 {
                        // Keeping the previous pairing wins ties (CLEAR MOT).
                        let keep = if last_match.get(&g.id) == Some(tid) {
                            0.5
                        } else {
                            0.0
                        };
                        m[r * cols + c] = 1.0 - v - keep + 1.0;
                    }
                }
            }
            for (r, c) in assigner.solve(rows, cols).iter().enumerate() {
                matched_gt[r] = *c;
            }
        }
        let mut used_tracks: HashSet<usize> = HashSet::new();
        for (r, g) in gts.iter().enumerate() {
            let cares = counts(g);
            match matched_gt[r] {
                Some(c) => {
                    used_tracks.insert(c);
                    let tid = f.tracks[c].0;
                    if !cares {
                        continue;
                    }
                    s.gt += 1;
                    s.tp += 1;
                    *gt_count.entry(g.id).or_default() += 1;
                    *trk_count.entry(tid).or_default() += 1;
                    *pairs.entry((g.id, tid)).or_default() += 1;
                    if let Some(prev) = last_match.insert(g.id, tid) {
                        if prev != tid {
                            s.id_switches += 1;
                        }
                    }
                    if was_tracked.insert(g.id, true) == Some(false) {
                        s.fragmentations += 1;
                    }
                }
                None if cares => {
                    s.gt += 1;
                    s.fn_ += 1;
                    *gt_count.entry(g.id).or_default() += 1;
                    if let Some(w) = was_tracked.get_mut(&g.id) {
                        *w = false;
                    }
                }
                None => {}
            }
        }
        for (c, (tid, _)) in f.tracks.iter().enumerate() {
            if !used_tracks.contains(&c) {
                s.fp += 1;
                *trk_count.entry(*tid).or_default() += 1;
            }
        }
    }
    // IDF1: the best one-to-one pairing of truth ids and track ids over the whole clip.
    let gids: Vec<u32> = gt_count.keys().copied().collect();
    let tids: Vec<u64> = trk_count.keys().copied().collect();
    let mut idtp = 0u32;
    if !gids.is_empty() && !tids.is_empty() {
        let max = pairs.values().copied().max().unwrap_or(0) as f64;
        let m = assigner.matrix(gids.len(), tids.len());
        for (r, g) in gids.iter().enumerate() {
            for (c, t) in tids.iter().enumerate() {
                if let Some(&n) = pairs.get(&(*g, *t)) {
                    m[r * tids.len() + c] = max - n as f64;
                }
            }
        }
        for (r, c) in assigner.solve(gids.len(), tids.len()).iter().enumerate() {
            if let Some(c) = c {
                idtp += pairs.get(&(gids[r], tids[*c])).copied().unwrap_or(0);
            }
        }
    }
    s.idtp = idtp;
    s.idfn = gt_count.values().sum::<u32>() - idtp;
    s.idfp = trk_count.values().sum::<u32>().saturating_sub(idtp);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::{TruthBox, TruthFrame, TruthObject};

    fn truth(incidents: Vec<Expected>) -> Truth {
        Truth {
            scenario: "t".into(),
            fps: 10,
            size: (100, 100),
            duration_sec: 60.0,
            objects: vec![TruthObject {
                id: 1,
                name: "a".into(),
                class: "person".into(),
            }],
            frames: Vec::new(),
            stream_gaps: Vec::new(),
            incidents,
            line_counts: Default::default(),
        }
    }

    fn expected(rule: &str, kind: RuleKind, start: f64, due: f64, end: f64) -> Expected {
        Expected {
            rule: rule.into(),
            kind,
            start_sec: start,
            due_sec: due,
            end_sec: end,
            direction: None,
            cause: None,
            objects: vec![1],
        }
    }

    fn raised(rule: &str, kind: RuleKind, at: f64) -> Raised {
        Raised {
            rule: rule.into(),
            kind,
            at_sec: at,
            direction: None,
            cause: None,
        }
    }

    #[test]
    fn hits_misses_duplicates_false_alarms_and_lateness() {
        let t = truth(vec![
            expected("loiter", RuleKind::Loitering, 10.0, 40.0, 70.0),
            expected("loiter", RuleKind::Loitering, 100.0, 130.0, 140.0),
            expected("entry", RuleKind::Intrusion, 10.0, 10.0, 70.0),
        ]);
        let r = vec![
            raised("loiter", RuleKind::Loitering, 40.4),
            raised("loiter", RuleKind::Loitering, 55.0), // same stay again: duplicate
            raised("loiter", RuleKind::Loitering, 90.0), // nothing then: false alarm
            raised("entry", RuleKind::Intrusion, 12.5),  // 2.5 s for a 0 s threshold: late
        ];
        let s = score_incidents(&t, &r, &[]);
        let lo = &s.kinds["loitering"];
        assert_eq!((lo.tp, lo.missed, lo.duplicates, lo.fp), (1, 1, 1, 1));
        assert!((lo.ttd[0] - 30.4).abs() < 1e-9);
        let en = &s.kinds["intrusion"];
        assert_eq!((en.tp, en.late), (1, 1));
        assert!((lo.precision() - 0.5).abs() < 1e-9 && (lo.recall() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn an_id_switch_and_a_fragment_are_counted() {
        let mut t = truth(Vec::new());
        let b = |id| TruthBox {
            id,
            bbox: [0.1, 0.1, 0.3, 0.5],
            ground: [0.2, 0.5],
            visibility: 1.0,
            actor: 0,
        };
        for k in 0..6 {
            t.frames.push(TruthFrame {
                t: k as f64,
                boxes: vec![b(1)],
            });
        }
        let tb = [0.1, 0.1, 0.3, 0.5];
        let frames = vec![
            TrackFrame {
                t: 0.0,
                tracks: vec![(7, tb)],
                lost: vec![],
            },
            TrackFrame {
                t: 1.0,
                tracks: vec![(7, tb)],
                lost: vec![],
            },
            TrackFrame {
                t: 2.0,
                tracks: vec![],
                lost: vec![],
            },
            TrackFrame {
                t: 3.0,
                tracks: vec![(9, tb)],
                lost: vec![],
            },
            TrackFrame {
                t: 4.0,
                tracks: vec![(9, tb)],
                lost: vec![],
            },
            TrackFrame {
                t: 5.0,
                tracks: vec![(9, tb), (10, [0.6, 0.6, 0.7, 0.8])],
                lost: vec![],
            },
        ];
        let s = score_tracks(&t, &frames);
        assert_eq!((s.gt, s.tp, s.fn_, s.fp), (6, 5, 1, 1));
        assert_eq!((s.id_switches, s.fragmentations), (1, 1));
        assert_eq!(s.idtp, 3);
        assert!((s.mota() - (1.0 - 3.0 / 6.0)).abs() < 1e-9);
    }
}
