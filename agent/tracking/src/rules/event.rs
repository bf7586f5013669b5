//! What the rule engine emits: rule events (incident phases) and periodic line counts.
//! Both are `Serialize` so the agent can map them onto the MQTT event and counts payloads.
//! Times are stream seconds; the agent converts them to RFC 3339 with its clock.

use serde::Serialize;

use crate::geometry::BBox;
use crate::rules::config::{CrossDirection, RuleKind, Severity, TamperCause};
use crate::units::SpeedUnit;

/// Phase of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A lasting incident began.
    Start,
    /// Something material changed while it lasts (e.g. the count of a crowd).
    Update,
    /// It is over.
    End,
    /// A one-off event (line crossing, wrong way, a jump through a zone).
    Instant,
}

/// An object involved in an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventObject {
    /// Track id.
    pub track_id: u64,
    /// Class id.
    pub class_id: u16,
    /// Class name.
    pub class: String,
    /// Score of its latest detection.
    pub score: f32,
    /// Its latest detection box, normalised.
    pub bbox: BBox,
}

/// A speed with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpeedValue {
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: SpeedUnit,
}

/// Kind-specific details; absent fields are not serialised.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EventDetails {
    /// Time in the zone / stopped / condition held, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_sec: Option<f64>,
    /// Objects counted (crowd, congestion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Line-crossing direction relative to the line's in side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<CrossDirection>,
    /// Direction of travel, degrees clockwise from image up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// Speed of the object (or mean speed, for congestion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedValue>,
    /// The same in km/h when metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
    /// Tamper cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<TamperCause>,
    /// The object jumped through the zone between two frames (intrusion, instant).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transit: bool,
    /// Measured value behind a tamper decision (mean, std, sharpness ratio or correlation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure: Option<f64>,
}

/// One rule event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleEvent {
    /// Engine-wide incident number; start/update/end of one incident share it.
    pub incident: u64,
    /// Rule kind.
    pub kind: RuleKind,
    /// Rule name.
    pub rule: String,
    /// Rule severity.
    pub severity: Severity,
    /// Zone name, for zone kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Line name, for line crossing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// When the condition began, stream seconds.
    pub started_at_sec: f64,
    /// When this event was decided, stream seconds.
    pub observed_at_sec: f64,
    /// When it ended (end phase, and instant events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_sec: Option<f64>,
    /// Frame being processed when it was decided (the snapshot frame), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Objects involved.
    pub objects: Vec<EventObject>,
    /// Details.
    pub details: EventDetails,
}

/// One row of a counts report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineCount {
    /// Line name.
    pub line: String,
    /// Class id.
    pub class_id: u16,
    /// Class name.
    pub class: String,
    /// Crossings towards the in side.
    #[serde(rename = "in")]
    pub in_count: u32,
    /// Crossings towards the other side.
    #[serde(rename = "out")]
    pub out_count: u32,
}

/// Line crossings per line, class and direction over one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountsReport {
    /// Interval start, stream seconds.
    pub start_sec: f64,
    /// Interval end, stream seconds (exclusive).
    pub end_sec: f64,
    /// Non-zero rows only; an empty list means nothing crossed.
    pub counts: Vec<LineCount>,
}

/// Where the engine appends its output; the caller drains it.
#[derive(Debug, Clone, Default)]
pub struct EngineOutput {
    /// Rule events, in the order they were decided.
    pub events: Vec<RuleEvent>,
    /// Finished count intervals.
    pub counts: Vec<CountsReport>,
}

impl EngineOutput {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.events.clear();
        self.counts.clear();
    }
}
