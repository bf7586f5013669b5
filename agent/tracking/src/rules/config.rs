//! Per-camera analytics config: tracker knobs, calibration, zones, lines and rules, with strict
//! parsing (`deny_unknown_fields`) and a pure `validate()` that gathers every error with its key
//! path (`zones[2].points`, `rules[0].min_count`).
//!
//! Rules are one flat struct with a `kind` and the parameters each kind uses; `validate` says
//! which parameter a kind needs and which it does not take, so a typo'd or misplaced key is an
//! error, never silently ignored.

use ioc_protocol::EventKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calibration::CalibrationConfig;
use crate::geometry::{Point, Polygon, Side};
use crate::rules::schedule::ScheduleConfig;
use crate::track::TrackerConfig;
use crate::units::{Distance, LengthUnit, Speed, SpeedUnit};

/// One config error: where (key path, e.g. `rules[3].zone`), and what is wrong; the shape
/// every config check of the workspace reports.
pub use ioc_base::Problem as ConfigError;

/// Every error found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid analytics config: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// The analytics config of one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Tracker knobs.
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Ground calibration, for metric speeds and distances.
    #[serde(default)]
    pub calibration: Option<CalibrationConfig>,
    /// Length of a line-count interval.
    #[serde(default = "default_counts_interval")]
    pub counts_interval_sec: f64,
    /// How long the zone timers and incidents of a stationary object that disappeared wait
    /// for it to be found again under a new track id (occlusion, id switch); 0 turns it off.
    #[serde(default = "default_reacquire_sec")]
    pub reacquire_sec: f64,
    /// Polygonal zones.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Counting / crossing lines.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            tracker: TrackerConfig::default(),
            calibration: None,
            counts_interval_sec: default_counts_interval(),
            reacquire_sec: default_reacquire_sec(),
            zones: Vec::new(),
            lines: Vec::new(),
            rules: Vec::new(),
        }
    }
}

fn default_counts_interval() -> f64 {
    60.0
}
fn default_reacquire_sec() -> f64 {
    5.0
}
/// Default zone entry inertia: what 2 frames were at the default 5 detection fps.
pub const DEFAULT_ENTER_SEC: f64 = 0.2;
/// Default zone exit inertia: what 3 frames were at 5 fps.
pub const DEFAULT_EXIT_SEC: f64 = 0.4;
/// Default line-crossing confirmation: what 2 frames were at 5 fps.
pub const DEFAULT_CONFIRM_SEC: f64 = 0.2;
fn default_true() -> bool {
    true
}

/// A zone: a simple polygon in normalised coordinates. Membership is judged on each track's
/// ground point (box bottom-centre) with a little inertia against jitter, in seconds so that a
/// config means the same at any detection rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Unique name.
    pub name: String,
    /// At least three `[x, y]` vertices, in order.
    pub points: Vec<[f64; 2]>,
    /// How long a track must be seen inside, continuously, before it counts as in the zone
    /// (default 0.2 s; at least two sightings when above 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enter_sec: Option<f64>,
    /// How long it must be seen outside before it counts as out again (default 0.4 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_sec: Option<f64>,
    /// Instead of `enter_sec`: consecutive detector frames inside. Its meaning changes with
    /// the detection rate (2 frames are 0.4 s at 5 fps, 0.2 s at 10 fps); prefer seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enter_frames: Option<u32>,
    /// Instead of `exit_sec`: consecutive detector frames outside (prefer seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_frames: Option<u32>,
}

impl ZoneConfig {
    /// A zone with the default inertia.
    pub fn new(name: &str, points: Vec<[f64; 2]>) -> Self {
        ZoneConfig {
            name: name.to_owned(),
            points,
            enter_sec: None,
            exit_sec: None,
            enter_frames: None,
            exit_frames: None,
        }
    }

    /// Entry inertia.
    pub fn enter(&self) -> Persist {
        Persist::from_keys(self.enter_sec, self.enter_frames, DEFAULT_ENTER_SEC)
    }

    /// Exit inertia.
    pub fn exit(&self) -> Persist {
        Persist::from_keys(self.exit_sec, self.exit_frames, DEFAULT_EXIT_SEC)
    }
}

/// How long a new state must last before it counts: seconds (the default kind) or, for
/// configs written in frames, a number of consecutive sightings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Persist {
    /// The new state is seen for at least this long (first to latest sighting), and at least
    /// twice when above 0, so one stray point never counts.
    Secs(f64),
    /// The new state is seen this many times in a row.
    Frames(u32),
}

impl Persist {
    fn from_keys(secs: Option<f64>, frames: Option<u32>, default_sec: f64) -> Self {
        match (secs, frames) {
            (Some(s), _) => Persist::Secs(s),
            (None, Some(f)) => Persist::Frames(f),
            (None, None) => Persist::Secs(default_sec),
        }
    }

    /// Whether a streak of `sightings` spanning `span_sec` (first to latest) is long enough.
    pub fn met(self, sightings: u32, span_sec: f64) -> bool {
        match self {
            Persist::Frames(n) => sightings >= n,
            Persist::Secs(s) if s <= 0.0 => sightings >= 1,
            // A hair of slack: frame times are sums of floating-point intervals.
            Persist::Secs(s) => sightings >= 2 && span_sec >= s - 1e-6,
        }
    }
}

/// A line: two points and the side that is "in" (as seen walking from the first point to the
/// second on the image). A crossing is confirmed once the track has been on the new side for
/// `confirm_sec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Unique name.
    pub name: String,
    /// Exactly two `[x, y]` points.
    pub points: Vec<[f64; 2]>,
    /// Which side is "in": `left` or `right` of the first→second direction.
    pub in_side: Side,
    /// How long a track must stay on the new side before the crossing counts (default 0.2 s,
    /// at least two sightings when above 0): jitter on the line is not a crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_sec: Option<f64>,
    /// Instead of `confirm_sec`: sightings on the new side. Its meaning changes with the
    /// detection rate; prefer seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_frames: Option<u32>,
    /// Whether crossings of this line go into the periodic counts.
    #[serde(default = "default_true")]
    pub count: bool,
    /// Ground points closer to the line than this (normalised) are "on the line": neither
    /// side. A dead band, so detector jitter on the line is not a crossing.
    #[serde(default = "default_line_margin")]
    pub margin: f64,
}

fn default_line_margin() -> f64 {
    0.005
}

impl LineConfig {
    /// A line with the default confirmation, margin and counting.
    pub fn new(name: &str, points: Vec<[f64; 2]>, in_side: Side) -> Self {
        LineConfig {
            name: name.to_owned(),
            points,
            in_side,
            confirm_sec: None,
            confirm_frames: None,
            count: true,
            margin: default_line_margin(),
        }
    }

    /// Crossing confirmation.
    pub fn confirm(&self) -> Persist {
        Persist::from_keys(self.confirm_sec, self.confirm_frames, DEFAULT_CONFIRM_SEC)
    }
}

/// Checks a pair of inertia keys: not both, seconds finite and within 0..60, frames >= 1.
fn check_persist(
    err: &mut impl FnMut(String, String),
    key: &str,
    (sec_key, secs): (&str, Option<f64>),
    (frames_key, frames): (&str, Option<u32>),
) {
    if secs.is_some() && frames.is_some() {
        err(
            format!("{key}.{frames_key}"),
            format!("give {sec_key} or {frames_key}, not both (seconds mean the same at any detection rate)"),
        );
    }
    if let Some(s) = secs {
        if !(s.is_finite() && (0.0..=60.0).contains(&s)) {
            err(
                format!("{key}.{sec_key}"),
                format!("{s} is not within 0..60 seconds"),
            );
        }
    }
    if frames == Some(0) {
        err(format!("{key}.{frames_key}"), "must be at least 1".into());
    }
}

/// How serious an incident is (ordered: `Info < Warning < Critical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

/// Defines [`RuleKind`] with [`RuleKind::ALL`] and its mapping onto the protocol's
/// [`EventKind`] from one list, so a kind added here is in both. Config names come from the
/// variant names (snake_case) and must equal the event kind's wire name (a test checks).
macro_rules! rule_kinds {
    ($( $(#[$doc:meta])* $variant:ident => $event:ident, )+) => {
        /// What a rule detects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RuleKind {
            $( $(#[$doc])* $variant, )+
        }

        impl RuleKind {
            /// Every rule kind, in declaration order.
            pub const ALL: &'static [RuleKind] = &[$(RuleKind::$variant),+];

            /// The kind of the events this rule raises.
            pub fn event_kind(self) -> EventKind {
                match self {
                    $( RuleKind::$variant => EventKind::$event, )+
                }
            }
        }
    };
}

rule_kinds! {
    /// An object is in a zone (lasting), or jumped through it between two frames (instant).
    Intrusion => Intrusion,
    /// A track crossed a line (instant).
    LineCrossing => LineCrossing,
    /// An object stays in a zone longer than `min_duration_sec` (lasting).
    Loitering => Loitering,
    /// At least `min_count` objects in a zone for `min_duration_sec` (lasting).
    Crowd => Crowd,
    /// An object slower than `max_speed` in a zone for `min_duration_sec` (lasting).
    StoppedVehicle => StoppedVehicle,
    /// An object in a zone moving against `lane_direction_deg` (instant, once per track).
    WrongWay => WrongWay,
    /// At least `min_count` objects slower than `max_speed` in a zone for `min_duration_sec`.
    Congestion => Congestion,
    /// The camera is dark, covered, defocused or moved (lasting, per cause).
    CameraTamper => CameraTamper,
    /// The stream has been down for `min_duration_sec` (lasting).
    CameraOffline => CameraOffline,
}

/// Whether a rule kind needs a key or may take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// The rule is refused without it.
    Required,
    /// It may be given; a default applies otherwise.
    Optional,
}

impl RuleKind {
    /// Whether the kind is about detected objects (and so takes `classes`).
    pub fn uses_objects(self) -> bool {
        !matches!(self, RuleKind::CameraTamper | RuleKind::CameraOffline)
    }

    /// The kind as written in config: its event kind's wire name.
    pub fn as_str(self) -> &'static str {
        self.event_kind()
            .known_str()
            .expect("a rule kind maps to a known event kind")
    }

    /// The optional keys of a rule of this kind that it needs or may take (the others are
    /// refused), in the order of [`Rule`]'s fields.
    pub fn keys(self) -> impl Iterator<Item = (&'static str, Need)> {
        KEY_NAMES
            .iter()
            .zip(key_table(self))
            .filter_map(|(&k, &flag)| match flag {
                b'R' => Some((k, Need::Required)),
                b'O' => Some((k, Need::Optional)),
                _ => None,
            })
    }
}

/// Which crossing directions a line-crossing rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossDirection {
    /// Towards the line's in side.
    In,
    /// Away from it.
    Out,
    /// Either way.
    #[default]
    Both,
}

/// Which tamper causes a tamper rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperCause {
    /// Mean brightness very low.
    Dark,
    /// Almost no variance: lens covered, sprayed, or a uniform object in front.
    Covered,
    /// Sharpness fell far below the learned baseline.
    Defocused,
    /// The scene no longer matches the learned reference: the camera was turned.
    Moved,
}

/// Thresholds of a `camera_tamper` rule; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TamperConfig {
    /// Causes checked.
    pub checks: Vec<TamperCause>,
    /// Mean luma (0..255) below which the image is dark.
    pub dark_mean: f64,
    /// Luma standard deviation below which the image is covered (uniform).
    pub covered_std: f64,
    /// Defocused when sharpness < this × learned baseline.
    pub defocus_ratio: f64,
    /// Moved when the correlation with the reference edge thumbnail drops below this.
    pub moved_corr: f64,
    /// Seconds of frames used to learn the baseline and reference before checking.
    pub learn_sec: f64,
}

impl Default for TamperConfig {
    fn default() -> Self {
        TamperConfig {
            checks: vec![
                TamperCause::Dark,
                TamperCause::Covered,
                TamperCause::Defocused,
                TamperCause::Moved,
            ],
            dark_mean: 20.0,
            covered_std: 6.0,
            defocus_ratio: 0.35,
            moved_corr: 0.5,
            learn_sec: 10.0,
        }
    }
}

/// One rule. Common keys: `name`, `kind`, `classes`, `severity`, `schedule`, `cooldown_sec`;
/// the rest depend on the kind (see the crate README's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name.
    pub name: String,
    /// What it detects.
    pub kind: RuleKind,
    /// Class names it applies to; empty: every class. Not for tamper/offline.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Severity of its incidents.
    #[serde(default)]
    pub severity: Severity,
    /// When it is armed; none: always.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// After an incident starts (or an instant event), no new one from this rule for this long.
    #[serde(default)]
    pub cooldown_sec: f64,
    /// Zone name (zone kinds).
    #[serde(default)]
    pub zone: Option<String>,
    /// Line name (`line_crossing`).
    #[serde(default)]
    pub line: Option<String>,
    /// Crossing direction reported (`line_crossing`), default both.
    #[serde(default)]
    pub direction: Option<CrossDirection>,
    /// How long the condition must hold before an incident starts.
    #[serde(default)]
    pub min_duration_sec: Option<f64>,
    /// How long the condition must be gone before a lasting incident ends (and before a short
    /// dip resets the timer).
    #[serde(default)]
    pub clear_sec: Option<f64>,
    /// Object count threshold (`crowd`, `congestion`).
    #[serde(default)]
    pub min_count: Option<u32>,
    /// Speed threshold (`stopped_vehicle`, `congestion`): a number is normalised units per
    /// second; `"5 km/h"` or `"1 m/s"` need calibration.
    #[serde(default)]
    pub max_speed: Option<Speed>,
    /// Allowed direction of travel, degrees clockwise from image up (`wrong_way`).
    #[serde(default)]
    pub lane_direction_deg: Option<f64>,
    /// How close to the opposite of the lane direction counts as wrong way (default 45).
    #[serde(default)]
    pub tolerance_deg: Option<f64>,
    /// Distance travelled against the lane before it counts (`wrong_way`, default 0.05); the
    /// object must also have covered half its own length that way.
    #[serde(default)]
    pub min_distance: Option<Distance>,
    /// Tamper thresholds (`camera_tamper`).
    #[serde(default)]
    pub tamper: Option<TamperConfig>,
}

/// Defaults that depend on the kind.
pub(crate) const DEFAULT_CLEAR_SEC: f64 = 2.0;
pub(crate) const DEFAULT_OFFLINE_CLEAR_SEC: f64 = 10.0;
pub(crate) const DEFAULT_OFFLINE_MIN_SEC: f64 = 30.0;
pub(crate) const DEFAULT_TAMPER_MIN_SEC: f64 = 5.0;
pub(crate) const DEFAULT_TOLERANCE_DEG: f64 = 45.0;
pub(crate) const DEFAULT_MIN_DISTANCE: f64 = 0.05;

/// Which optional keys a kind needs (`R`), may take (`O`) or refuses (`-`), in field order:
/// zone, line, direction, min_duration_sec, clear_sec, min_count, max_speed,
/// lane_direction_deg, tolerance_deg, min_distance, tamper.
fn key_table(kind: RuleKind) -> &'static [u8; 11] {
    match kind {
        RuleKind::Intrusion => b"R--OO------",
        RuleKind::LineCrossing => b"-RO--------",
        RuleKind::Loitering => b"R--RO------",
        RuleKind::Crowd => b"R--OOR-----",
        RuleKind::StoppedVehicle => b"R--RO-R----",
        RuleKind::WrongWay => b"R------ROO-",
        RuleKind::Congestion => b"R--RORR----",
        RuleKind::CameraTamper => b"---OO-----O",
        RuleKind::CameraOffline => b"---OO------",
    }
}

const KEY_NAMES: [&str; 11] = [
    "zone",
    "line",
    "direction",
    "min_duration_sec",
    "clear_sec",
    "min_count",
    "max_speed",
    "lane_direction_deg",
    "tolerance_deg",
    "min_distance",
    "tamper",
];

fn finite_nonneg(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

impl RuleConfig {
    fn present(&self) -> [bool; 11] {
        [
            self.zone.is_some(),
            self.line.is_some(),
            self.direction.is_some(),
            self.min_duration_sec.is_some(),
            self.clear_sec.is_some(),
            self.min_count.is_some(),
            self.max_speed.is_some(),
            self.lane_direction_deg.is_some(),
            self.tolerance_deg.is_some(),
            self.min_distance.is_some(),
            self.tamper.is_some(),
        ]
    }
}

impl AnalyticsConfig {
    /// Reads a camera's analytics given as JSON (as the center pushes them) and checks them
    /// with [`AnalyticsConfig::validate`]: the first parse error by its key, else every
    /// problem by key. The center runs this before storing a push and the agent again before
    /// running it (it also checks the classes against its model, which only it knows).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, ConfigErrors> {
        let a = Self::parse_json(v)?;
        a.validate()?;
        Ok(a)
    }

    /// Reads a camera's analytics given as JSON, without [`AnalyticsConfig::validate`]; the
    /// error names the key.
    pub fn parse_json(v: &serde_json::Value) -> Result<Self, ConfigErrors> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors(vec![ConfigError {
                key: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }])
        })
    }

    /// Pure checks (no class names needed); every error, each with its key path.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs: Vec<ConfigError> = Vec::new();
        let calibrated = self.check_tracking(&mut errs);
        self.check_zones(&mut errs);
        self.check_lines(&mut errs);
        for (i, r) in self.rules.iter().enumerate() {
            self.check_rule(i, r, calibrated, &mut errs);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// The tracker, the calibration and the intervals; whether a valid calibration is there
    /// (metric speeds and distances need one).
    fn check_tracking(&self, errs: &mut Vec<ConfigError>) -> bool {
        let mut err = |key: String, message: String| errs.push(ConfigError { key, message });
        let mut tr = Vec::new();
        self.tracker.check(&mut tr);
        for (k, m) in tr {
            err(format!("tracker.{k}"), m);
        }
        let calibrated = match &self.calibration {
            Some(c) => match c.build() {
                Ok(_) => true,
                Err(e) => {
                    err("calibration".into(), e.to_string());
                    false
                }
            },
            None => false,
        };
        if self.tracker.still_speed.unit == SpeedUnit::MetresPerSec && !calibrated {
            err(
                "tracker.still_speed".into(),
                "a metric speed needs a valid [calibration]".into(),
            );
        }
        if !(self.reacquire_sec.is_finite() && (0.0..=600.0).contains(&self.reacquire_sec)) {
            err(
                "reacquire_sec".into(),
                format!("{} is not within 0..600", self.reacquire_sec),
            );
        }
        if !(self.counts_interval_sec > 0.0 && self.counts_interval_sec.is_finite()) {
            err(
                "counts_interval_sec".into(),
                format!("{} is not > 0", self.counts_interval_sec),
            );
        }
        calibrated
    }

    /// Each zone: a unique name, points on the picture forming a simple polygon with an
    /// area, and sane enter/exit persistence.
    fn check_zones(&self, errs: &mut Vec<ConfigError>) {
        let mut err = |key: String, message: String| errs.push(ConfigError { key, message });
        for (i, z) in self.zones.iter().enumerate() {
            let key = format!("zones[{i}]");
            if z.name.trim().is_empty() {
                err(format!("{key}.name"), "must not be empty".into());
            }
            if self.zones[..i].iter().any(|o| o.name == z.name) {
                err(
                    format!("{key}.name"),
                    format!("duplicate zone name {:?}", z.name),
                );
            }
            let pts: Vec<Point> = z.points.iter().map(|&[x, y]| Point::new(x, y)).collect();
            if let Some(m) = off_picture(&z.points) {
                err(format!("{key}.points"), m);
            } else {
                match Polygon::new(pts) {
                    None => err(
                        format!("{key}.points"),
                        format!("a zone needs at least 3 points, got {}", z.points.len()),
                    ),
                    Some(p) if !p.is_simple() => err(
                        format!("{key}.points"),
                        "edges cross each other; list the points in order around the zone".into(),
                    ),
                    Some(p) if p.area() < 1e-6 => {
                        err(format!("{key}.points"), "the zone has no area".into())
                    }
                    Some(_) => {}
                }
            }
            check_persist(
                &mut err,
                &key,
                ("enter_sec", z.enter_sec),
                ("enter_frames", z.enter_frames),
            );
            check_persist(
                &mut err,
                &key,
                ("exit_sec", z.exit_sec),
                ("exit_frames", z.exit_frames),
            );
        }
    }

    /// Each line: a unique name, two distinct points on the picture, a small margin.
    fn check_lines(&self, errs: &mut Vec<ConfigError>) {
        let mut err = |key: String, message: String| errs.push(ConfigError { key, message });
        for (i, l) in self.lines.iter().enumerate() {
            let key = format!("lines[{i}]");
            if l.name.trim().is_empty() {
                err(format!("{key}.name"), "must not be empty".into());
            }
            if self.lines[..i].iter().any(|o| o.name == l.name) {
                err(
                    format!("{key}.name"),
                    format!("duplicate line name {:?}", l.name),
                );
            }
            if l.points.len() != 2 {
                err(
                    format!("{key}.points"),
                    format!("a line needs exactly 2 points, got {}", l.points.len()),
                );
            } else if let Some(m) = off_picture(&l.points) {
                err(format!("{key}.points"), m);
            } else if Point::new(l.points[0][0], l.points[0][1])
                .dist(Point::new(l.points[1][0], l.points[1][1]))
                < 1e-4
            {
                err(format!("{key}.points"), "the two points coincide".into());
            }
            if !(0.0..=0.2).contains(&l.margin) {
                err(
                    format!("{key}.margin"),
                    format!("{} is not within 0..0.2", l.margin),
                );
            }
            check_persist(
                &mut err,
                &key,
                ("confirm_sec", l.confirm_sec),
                ("confirm_frames", l.confirm_frames),
            );
        }
    }

    /// Rule `i`: a unique name, the keys its kind needs and no others, places that exist,
    /// values in range, metric units only with a calibration.
    fn check_rule(&self, i: usize, r: &RuleConfig, calibrated: bool, errs: &mut Vec<ConfigError>) {
        let mut err = |key: String, message: String| errs.push(ConfigError { key, message });
        let key = format!("rules[{i}]");
        if r.name.trim().is_empty() {
            err(format!("{key}.name"), "must not be empty".into());
        }
        if self.rules[..i].iter().any(|o| o.name == r.name) {
            err(
                format!("{key}.name"),
                format!("duplicate rule name {:?}", r.name),
            );
        }
        let kind = r.kind.as_str();
        let table = key_table(r.kind);
        for (k, (&need, present)) in table.iter().zip(r.present()).enumerate() {
            match (need, present) {
                (b'R', false) => err(
                    format!("{key}.{}", KEY_NAMES[k]),
                    format!("required for kind {kind}"),
                ),
                (b'-', true) => err(
                    format!("{key}.{}", KEY_NAMES[k]),
                    format!("not used by kind {kind}"),
                ),
                _ => {}
            }
        }
        if !r.kind.uses_objects() && !r.classes.is_empty() {
            err(format!("{key}.classes"), format!("not used by kind {kind}"));
        }
        if let Some(z) = &r.zone {
            if !self.zones.iter().any(|o| &o.name == z) {
                err(format!("{key}.zone"), format!("no zone named {z:?}"));
            }
        }
        if let Some(l) = &r.line {
            if !self.lines.iter().any(|o| &o.name == l) {
                err(format!("{key}.line"), format!("no line named {l:?}"));
            }
        }
        if !finite_nonneg(r.cooldown_sec) {
            err(
                format!("{key}.cooldown_sec"),
                format!("{} is not >= 0", r.cooldown_sec),
            );
        }
        for (k, v) in [
            ("min_duration_sec", r.min_duration_sec),
            ("clear_sec", r.clear_sec),
        ] {
            if let Some(v) = v {
                if !finite_nonneg(v) {
                    err(format!("{key}.{k}"), format!("{v} is not >= 0"));
                }
            }
        }
        if r.min_count == Some(0) {
            err(format!("{key}.min_count"), "must be at least 1".into());
        }
        if let Some(d) = r.lane_direction_deg {
            if !d.is_finite() {
                err(
                    format!("{key}.lane_direction_deg"),
                    "must be a number".into(),
                );
            }
        }
        if let Some(t) = r.tolerance_deg {
            if !(t > 0.0 && t < 90.0) {
                err(
                    format!("{key}.tolerance_deg"),
                    format!("{t} is not within (0, 90)"),
                );
            }
        }
        if matches!(r.max_speed, Some(s) if s.unit == SpeedUnit::MetresPerSec) && !calibrated {
            err(
                format!("{key}.max_speed"),
                "a metric speed needs a valid [calibration]; give a number for normalised units per second".into(),
            );
        }
        if matches!(r.min_distance, Some(d) if d.unit == LengthUnit::Metres) && !calibrated {
            err(
                format!("{key}.min_distance"),
                "a distance in metres needs a valid [calibration]".into(),
            );
        }
        if let Some(s) = &r.schedule {
            let mut se = Vec::new();
            s.check(&mut se);
            for (k, m) in se {
                err(format!("{key}.schedule.{k}"), m);
            }
        }
        if let Some(t) = &r.tamper {
            if t.checks.is_empty() {
                err(
                    format!("{key}.tamper.checks"),
                    "must name at least one cause".into(),
                );
            }
            for (k, v, lo, hi) in [
                ("dark_mean", t.dark_mean, 0.0, 255.0),
                ("covered_std", t.covered_std, 0.0, 128.0),
                ("defocus_ratio", t.defocus_ratio, 0.0, 1.0),
                ("moved_corr", t.moved_corr, -1.0, 1.0),
                ("learn_sec", t.learn_sec, 0.0, 86_400.0),
            ] {
                if !(v >= lo && v <= hi) {
                    err(
                        format!("{key}.tamper.{k}"),
                        format!("{v} is not within {lo}..{hi}"),
                    );
                }
            }
        }
    }
}

/// Every point must be on the picture; the message names the first one that is not.
fn off_picture(points: &[[f64; 2]]) -> Option<String> {
    points.iter().enumerate().find_map(|(k, &[x, y])| {
        let on = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        (!(on(x) && on(y))).then(|| {
            format!(
                "points[{k}] = [{x}, {y}] is off the picture: x and y go from 0 (left, \
                 top) to 1 (right, bottom)"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        counts_interval_sec = 300
        [tracker]
        lost_buffer_sec = 2.5
        [[zones]]
        name = "yard"
        points = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
        [[lines]]
        name = "gate"
        points = [[0.2, 0.4], [0.8, 0.4]]
        in_side = "right"
        [[rules]]
        name = "night intruder"
        kind = "intrusion"
        zone = "yard"
        classes = ["person"]
        severity = "critical"
        cooldown_sec = 60
        schedule = { days = ["mon", "fri"], windows = ["22:00-06:00"] }
        [[rules]]
        name = "gate in"
        kind = "line_crossing"
        line = "gate"
        direction = "in"
        [[rules]]
        name = "crowd"
        kind = "crowd"
        zone = "yard"
        classes = ["person"]
        min_count = 5
        min_duration_sec = 10
        [[rules]]
        name = "tamper"
        kind = "camera_tamper"
        tamper = { dark_mean = 15 }
    "#;

    #[test]
    fn parses_and_validates_a_good_config() {
        let c: AnalyticsConfig = toml::from_str(GOOD).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rules.len(), 4);
        assert_eq!(c.rules[0].severity, Severity::Critical);
        assert_eq!(c.tracker.lost_buffer_sec, 2.5);
        assert_eq!(c.tracker.min_hits, 3); // default kept
        assert_eq!(c.rules[3].tamper.as_ref().unwrap().dark_mean, 15.0);
        assert_eq!(c.lines[0].confirm(), Persist::Secs(DEFAULT_CONFIRM_SEC));
        assert_eq!(c.zones[0].enter(), Persist::Secs(DEFAULT_ENTER_SEC));
    }

    #[test]
    fn parse_errors_name_the_key() {
        let bad = GOOD.replace("cooldown_sec = 60", "cooldown_secs = 60");
        let e = toml::from_str::<AnalyticsConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cooldown_secs"), "{e}");
        let bad = GOOD.replace("kind = \"crowd\"", "kind = \"mob\"");
        let e = toml::from_str::<AnalyticsConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mob"), "{e}");
        let bad = GOOD.replace("dark_mean = 15", "dark = 15");
        let e = toml::from_str::<AnalyticsConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dark"), "{e}");
    }

    #[test]
    fn validate_reports_every_error_with_its_path() {
        let mut c: AnalyticsConfig = toml::from_str(GOOD).unwrap();
        c.zones
            .push(ZoneConfig::new("yard", vec![[0.0, 0.0], [1.0, 1.0]]));
        c.zones.push(ZoneConfig::new(
            "bow",
            vec![[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
        ));
        c.zones[0].enter_sec = Some(0.5);
        c.zones[0].enter_frames = Some(3);
        c.lines[0].confirm_sec = Some(-1.0);
        c.rules[2].min_count = None; // crowd needs it
        c.rules[1].zone = Some("nowhere".into()); // line_crossing takes no zone
        c.rules[0]
            .schedule
            .as_mut()
            .unwrap()
            .windows
            .push("9-5".into());
        c.rules[3].classes.push("person".into());
        c.rules.push(RuleConfig {
            max_speed: Some(Speed::mps(1.0)),
            ..c.rules[2].clone()
        });
        let errs = c.validate().unwrap_err().0;
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        for want in [
            "zones[1].name",
            "zones[1].points",
            "zones[2].points",
            "rules[2].min_count",
            "rules[1].zone",
            "rules[0].schedule.windows[1]",
            "rules[3].classes",
            "rules[4].name",
            "rules[4].max_speed",
            "zones[0].enter_frames",
            "lines[0].confirm_sec",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("no zone named \"nowhere\""), "{msg}");
        assert!(msg.contains("not used by kind line_crossing"), "{msg}");
    }

    #[test]
    fn inertia_in_seconds_means_the_same_at_any_rate() {
        let p = Persist::Secs(0.2);
        // 5 fps: the second sighting, 0.2 s after the first.
        assert!(!p.met(1, 0.0));
        assert!(p.met(2, 0.2));
        // 10 fps: the third sighting.
        assert!(!p.met(2, 0.1));
        assert!(p.met(3, 0.2));
        // 1 fps (overloaded box): two sightings are enough.
        assert!(p.met(2, 1.0));
        assert!(Persist::Secs(0.0).met(1, 0.0));
        assert!(Persist::Frames(2).met(2, 0.0));
        assert!(!Persist::Frames(2).met(1, 5.0));
    }

    /// The protocol's event kinds are the one list of wire names: a rule kind is written in
    /// config exactly as its events' kind, and no two rule kinds raise the same kind.
    #[test]
    fn every_rule_kind_is_written_as_its_event_kind() {
        let mut seen = std::collections::HashSet::new();
        for &k in RuleKind::ALL {
            let event = k.event_kind();
            assert!(event.is_known(), "{k:?} maps to an unknown event kind");
            assert!(
                seen.insert(event.clone()),
                "{k:?}: two rule kinds raise {event}"
            );
            let written = serde_json::to_value(k).unwrap();
            assert_eq!(written, serde_json::json!(event.as_str()), "{k:?}");
            let read: RuleKind = serde_json::from_value(written).unwrap();
            assert_eq!(read, k);
            assert_eq!(k.as_str(), event.as_str());
        }
        // Every place-bound kind names what it needs.
        for &k in RuleKind::ALL {
            let needs: Vec<_> = k.keys().filter(|(_, n)| *n == Need::Required).collect();
            if k.uses_objects() {
                assert!(
                    needs
                        .iter()
                        .any(|(key, _)| *key == "zone" || *key == "line"),
                    "{k:?} needs a place"
                );
            }
        }
    }
}
