//! The event payload, schema `ioc.event/1`, published on `{root}/v1/agents/{agent}/events`.
//!
//! # Identity
//! - `id` names the **incident** and is the same in all its messages (`start`, `update`s,
//!   `end`, or a single `instant`). The agent forms it as `{agent}-{seq}` with the `seq` of the
//!   incident's first message ([`incident_id`]); readers must treat it as opaque
//!   `[a-z0-9_-]{1,128}`. It also names the snapshot topic `.../snapshots/{id}`.
//! - `seq` names the **message**: per agent, strictly increasing, never reused (the agent keeps
//!   it in its durable outbox), shared with [`Counts`](crate::Counts) messages so that one
//!   [`Ack`](crate::Ack) covers both and a collector can detect gaps per agent. A re-sent message
//!   keeps its `seq`, so `(agent, seq)` is the idempotency key for storing messages; `id` groups
//!   them into an incident.
//!
//! # Times
//! `observed_at` (required) is when the frame behind this message was captured. `started_at` is
//! when the incident began (required for `start`/`update`/`end`), `ended_at` when it ended
//! (required for `end`, absent for `start`/`update`). All are RFC 3339 UTC ([`Timestamp`]).
//!
//! # Compatibility
//! Readers ignore unknown fields; unknown `kind`s and speed units decode to `Other`; new detail
//! fields land in [`EventDetails::extra`]. `phase` and `severity` are closed sets: adding a
//! value is a breaking change (new schema version).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::topics::{validate_agent_id, validate_camera_id, validate_event_id};
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`Event`].
pub const EVENT_SCHEMA: &str = "ioc.event/1";

/// The incident id the agent gives an incident whose first message has sequence number `seq`.
pub fn incident_id(agent: &str, seq: u64) -> String {
    format!("{agent}-{seq}")
}

/// One event message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.event/1")]
pub struct Event {
    /// Always `"ioc.event/1"`.
    #[schemars(extend("const" = "ioc.event/1"))]
    pub schema: String,
    /// The incident id, the same for all messages of one incident: `[a-z0-9_-]{1,128}`.
    #[schemars(pattern(crate::topics::EVENT_ID_PATTERN))]
    pub id: String,
    /// Per-agent message sequence number: strictly increasing, never reused, shared with counts.
    pub seq: u64,
    /// Which message of the incident this is.
    pub phase: Phase,
    /// The agent id: `[a-z0-9_-]{1,64}`, equal to the one in the topic.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub agent: String,
    /// The camera id: `[a-z0-9_-]{1,64}`.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// What happened.
    pub kind: EventKind,
    /// How urgent it is.
    pub severity: Severity,
    /// The id of the rule (from the agent config) that fired.
    pub rule: String,
    /// The zone the rule watches, if it has one.
    #[serde(default)]
    pub zone: Option<String>,
    /// The line the rule watches, if it has one.
    #[serde(default)]
    pub line: Option<String>,
    /// When the incident began (required except for `instant`).
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When the frame behind this message was captured.
    pub observed_at: Timestamp,
    /// That frame's presentation time in its stream session, in seconds: the stream's own
    /// timestamps (RTP for a camera, the container's for a file), to find the frame again in
    /// a recording. Absent for messages no frame triggered (camera offline, a closing tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pts_sec: Option<f64>,
    /// When the incident ended (required for `end`, absent for `start` and `update`).
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// The tracked objects involved.
    #[serde(default)]
    pub objects: Vec<EventObject>,
    /// Kind-specific measurements.
    #[serde(default)]
    pub details: EventDetails,
    /// The JPEG snapshot published on `.../snapshots/{id}` (normally with `start`/`instant`).
    #[serde(default)]
    pub snapshot: Option<SnapshotRef>,
}

/// The message's place in its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The incident began.
    Start,
    /// The incident goes on; something changed (more objects, longer dwell, ...).
    Update,
    /// The incident ended.
    End,
    /// A one-shot incident with no duration (e.g. a line crossing).
    Instant,
}

/// How urgent an incident is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Someone must act now.
    Critical,
}

open_enum! {
    /// What happened. Unknown values (from newer agents) decode to [`EventKind::Other`].
    pub enum EventKind {
        /// An object entered or is inside a forbidden zone.
        Intrusion = "intrusion",
        /// An object crossed a line in the watched direction.
        LineCrossing = "line_crossing",
        /// An object stayed in a zone longer than allowed.
        Loitering = "loitering",
        /// Too many objects in a zone.
        Crowd = "crowd",
        /// A vehicle stopped where it must not (illegal parking, breakdown).
        StoppedVehicle = "stopped_vehicle",
        /// An object moved against the allowed direction.
        WrongWay = "wrong_way",
        /// A queue or congestion formed.
        Congestion = "congestion",
        /// The camera was covered, blinded, blurred or moved.
        CameraTamper = "camera_tamper",
        /// The camera stopped delivering frames.
        CameraOffline = "camera_offline",
    }
    other = /// A kind this version does not know: `[a-z0-9_]{1,64}`, kept verbatim.
    ;
    schema_description = "what happened; readers accept kinds added later";
}

/// One tracked object in an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventObject {
    /// The tracker's id, stable while the object is tracked on this camera.
    pub track_id: u64,
    /// The detector's class label, e.g. `person`, `car`.
    pub class: String,
    /// Detection confidence, 0..=1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f32,
    /// Box `[x1, y1, x2, y2]` in normalised image coordinates (0..=1, origin top left).
    #[schemars(inner(range(min = 0.0, max = 1.0)))]
    pub bbox: [f32; 4],
}

/// Kind-specific measurements. Fields this version does not know are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventDetails {
    /// Seconds the object(s) stayed in the zone (loitering, stopped vehicle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_s: Option<f64>,
    /// Number of objects (crowd, congestion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Heading of the object's motion in image degrees, 0..360, clockwise from image up:
    /// 0 = up (−y), 90 = right (+x), 180 = down (+y), 270 = left; the convention of a
    /// `wrong_way` rule's `lane_direction_deg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_deg: Option<f32>,
    /// Speed of the object (wrong way, line crossing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
    /// Fields added after v1 (or by newer agents), kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A speed with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Speed {
    /// The magnitude, finite and non-negative.
    pub value: f32,
    /// Its unit.
    pub unit: SpeedUnit,
}

open_enum! {
    /// The unit of a [`Speed`]. Unknown units decode to [`SpeedUnit::Other`].
    pub enum SpeedUnit {
        /// Normalised image units (the 0..1 box coordinates) per second: uncalibrated cameras.
        NormPerSecond = "norm/s",
        /// Metres per second (calibrated camera).
        MetersPerSecond = "m/s",
        /// Kilometres per hour (calibrated camera).
        KilometersPerHour = "km/h",
    }
    other = /// A unit this version does not know, kept verbatim.
    ;
    schema_description = "unit of a speed; readers accept units added later";
}

/// Reference to the JPEG published on `.../snapshots/{event id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SnapshotRef {
    /// SHA-256 of the JPEG bytes, 64 lower-case hex digits.
    #[schemars(pattern("^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Size of the JPEG in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Event {
    /// A valid instant event of `agent` numbered `seq`, observed now: a line crossing on
    /// camera `cam-1`, line `line-1`, rule `count-in`, with every optional part empty. For
    /// tests, examples and load generators (one fixture, not one per crate).
    pub fn example(agent: &str, seq: u64) -> Event {
        Event {
            schema: EVENT_SCHEMA.into(),
            id: incident_id(agent, seq),
            seq,
            phase: Phase::Instant,
            agent: agent.into(),
            camera: "cam-1".into(),
            kind: EventKind::LineCrossing,
            severity: Severity::Info,
            rule: "count-in".into(),
            zone: None,
            line: Some("line-1".into()),
            started_at: None,
            observed_at: Timestamp::now(),
            pts_sec: None,
            ended_at: None,
            objects: vec![],
            details: EventDetails::default(),
            snapshot: None,
        }
    }

    /// Checks everything serde does not: the schema string, ids, ranges of scores, boxes and
    /// measurements, finiteness, and that the times fit the phase. Returns every problem.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(EVENT_SCHEMA);
        c.schema(&self.schema);
        c.id("id", validate_event_id(&self.id));
        c.id("agent", validate_agent_id(&self.agent));
        c.id("camera", validate_camera_id(&self.camera));
        if let EventKind::Other(k) = &self.kind {
            let ok = !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                c.push(
                    "kind",
                    format!("{k:?} must be 1-64 characters of a-z, 0-9 or '_'"),
                );
            }
        }
        c.label("rule", &self.rule);
        if let Some(z) = &self.zone {
            c.label("zone", z);
        }
        if let Some(l) = &self.line {
            c.label("line", l);
        }

        let needs_start = self.phase != Phase::Instant;
        if needs_start && self.started_at.is_none() {
            c.push("started_at", format!("required for phase {:?}", self.phase));
        }
        match (self.phase, &self.ended_at) {
            (Phase::End, None) => c.push("ended_at", "required for phase End"),
            (Phase::Start | Phase::Update, Some(_)) => c.push(
                "ended_at",
                format!("must be null for phase {:?}", self.phase),
            ),
            _ => {}
        }
        if let Some(p) = self.pts_sec {
            c.range("pts_sec", p, 0.0, f64::MAX);
        }
        let started = ("started_at", self.started_at.as_ref());
        c.order(started, ("observed_at", Some(&self.observed_at)));
        c.order(started, ("ended_at", self.ended_at.as_ref()));

        for (i, o) in self.objects.iter().enumerate() {
            c.label(&format!("objects[{i}].class"), &o.class);
            c.range(&format!("objects[{i}].score"), o.score.into(), 0.0, 1.0);
            for (j, v) in o.bbox.iter().enumerate() {
                c.range(&format!("objects[{i}].bbox[{j}]"), (*v).into(), 0.0, 1.0);
            }
            let [x1, y1, x2, y2] = o.bbox;
            if x1 > x2 || y1 > y2 {
                c.push(
                    format!("objects[{i}].bbox"),
                    format!(
                        "{:?} is not [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2",
                        o.bbox
                    ),
                );
            }
        }

        let d = &self.details;
        if let Some(v) = d.dwell_s {
            c.range("details.dwell_s", v, 0.0, f64::MAX);
        }
        if let Some(v) = d.direction_deg {
            let v = f64::from(v);
            if !v.is_finite() || !(0.0..360.0).contains(&v) {
                c.push("details.direction_deg", format!("{v} is outside 0..360"));
            }
        }
        if let Some(s) = &d.speed {
            c.range("details.speed.value", s.value.into(), 0.0, f64::MAX);
            if s.unit.as_str().is_empty() {
                c.push("details.speed.unit", "must not be empty");
            }
        }

        if let Some(s) = &self.snapshot {
            let hex = s.sha256.len() == 64
                && s.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                c.push(
                    "snapshot.sha256",
                    format!("{:?} is not 64 lower-case hex digits", s.sha256),
                );
            }
            if s.size == 0 {
                c.push("snapshot.size", "must not be 0");
            }
            if s.width == 0 || s.height == 0 {
                c.push(
                    "snapshot",
                    format!("{}x{} is not a picture size", s.width, s.height),
                );
            }
        }
        c.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid `start` event with every field set.
    pub(crate) fn sample() -> Event {
        let mut extra = serde_json::Map::new();
        extra.insert("lane".into(), serde_json::json!(2));
        Event {
            schema: EVENT_SCHEMA.into(),
            id: incident_id("site-1", 41),
            seq: 41,
            phase: Phase::Start,
            agent: "site-1".into(),
            camera: "gate-north".into(),
            kind: EventKind::Loitering,
            severity: Severity::Warning,
            rule: "loiter-gate".into(),
            zone: Some("gate".into()),
            line: None,
            started_at: Some(Timestamp::parse("2024-05-01T12:00:00.000Z").unwrap()),
            observed_at: Timestamp::parse("2024-05-01T12:00:30.200Z").unwrap(),
            pts_sec: Some(1830.2),
            ended_at: None,
            objects: vec![EventObject {
                track_id: 7,
                class: "person".into(),
                score: 0.87,
                bbox: [0.1, 0.2, 0.3, 0.9],
            }],
            details: EventDetails {
                dwell_s: Some(30.2),
                count: Some(1),
                direction_deg: Some(270.0),
                speed: Some(Speed {
                    value: 0.05,
                    unit: SpeedUnit::NormPerSecond,
                }),
                extra,
            },
            snapshot: Some(SnapshotRef {
                sha256: "ab".repeat(32),
                size: 48_213,
                width: 1280,
                height: 720,
            }),
        }
    }

    fn fields(e: &Event) -> Vec<String> {
        match e.validate() {
            Ok(()) => vec![],
            Err(i) => i.problems.into_iter().map(|p| p.field).collect(),
        }
    }

    #[test]
    fn sample_is_valid_and_round_trips() {
        let e = sample();
        e.validate().unwrap();
        let json = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        // Nulls are written out, details' absent options are not; extra is flattened.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["line"].is_null() && v["ended_at"].is_null());
        assert_eq!(v["details"]["lane"], 2);
        assert_eq!(v["kind"], "loitering");
        assert_eq!(v["phase"], "start");
        assert_eq!(v["details"]["speed"]["unit"], "norm/s");
    }

    #[test]
    fn minimal_instant_round_trips() {
        let e = Event {
            phase: Phase::Instant,
            kind: EventKind::Other("smoke".into()),
            started_at: None,
            zone: None,
            objects: vec![],
            details: EventDetails::default(),
            snapshot: None,
            ..sample()
        };
        e.validate().unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"details\":{}"), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn every_kind_round_trips() {
        for k in EventKind::KNOWN {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(&serde_json::from_str::<EventKind>(&json).unwrap(), k);
            assert!(k.is_known());
        }
        let k: EventKind = serde_json::from_str("\"fire\"").unwrap();
        assert_eq!(k, EventKind::Other("fire".into()));
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"fire\"");
        assert_eq!(EventKind::from("wrong_way"), EventKind::WrongWay);
        assert_eq!(EventKind::CameraTamper.to_string(), "camera_tamper");
        for u in SpeedUnit::KNOWN {
            assert_eq!(&SpeedUnit::from(u.as_str()), u);
        }
        assert_eq!(SpeedUnit::from("mph"), SpeedUnit::Other("mph".into()));
    }

    #[test]
    fn unknown_phase_or_severity_is_a_decode_error() {
        let json = serde_json::to_string(&sample()).unwrap();
        let bad = json.replace("\"warning\"", "\"panic\"");
        assert!(serde_json::from_str::<Event>(&bad).is_err());
        let bad = json.replace("\"start\"", "\"pause\"");
        assert!(serde_json::from_str::<Event>(&bad).is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut e = sample();
        e.schema = "ioc.event/2".into();
        e.id = "Bad Id".into();
        e.agent = "".into();
        e.camera = "cam/1".into();
        e.kind = EventKind::Other("Fire!".into());
        e.rule = "".into();
        e.objects[0].score = f32::NAN;
        e.objects[0].bbox = [0.5, 0.2, 0.4, 1.5];
        e.details.dwell_s = Some(-1.0);
        e.details.direction_deg = Some(360.0);
        e.details.speed = Some(Speed {
            value: f32::INFINITY,
            unit: SpeedUnit::MetersPerSecond,
        });
        e.snapshot = Some(SnapshotRef {
            sha256: "AB".repeat(32),
            size: 0,
            width: 0,
            height: 1,
        });
        assert_eq!(
            fields(&e),
            [
                "schema",
                "id",
                "agent",
                "camera",
                "kind",
                "rule",
                "objects[0].score",
                "objects[0].bbox[3]",
                "objects[0].bbox",
                "details.dwell_s",
                "details.direction_deg",
                "details.speed.value",
                "snapshot.sha256",
                "snapshot.size",
                "snapshot",
            ]
        );
        let msg = e.validate().unwrap_err().to_string();
        assert!(msg.starts_with("invalid ioc.event/1 payload: schema: \"ioc.event/2\" is not \"ioc.event/1\"; id: invalid event id \"Bad Id\""), "{msg}");
    }

    #[test]
    fn phase_and_time_consistency() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let end = Event {
            phase: Phase::End,
            ended_at: None,
            ..sample()
        };
        assert_eq!(fields(&end), ["ended_at"]);
        let end = Event {
            ended_at: Some(t("2024-05-01T12:01:00Z")),
            ..end
        };
        assert_eq!(fields(&end), Vec::<String>::new());
        let end = Event {
            ended_at: Some(t("2024-05-01T11:00:00Z")),
            ..end
        };
        assert_eq!(fields(&end), ["ended_at"]);
        let update = Event {
            phase: Phase::Update,
            ended_at: Some(t("2024-05-01T12:01:00Z")),
            started_at: None,
            ..sample()
        };
        assert_eq!(fields(&update), ["started_at", "ended_at"]);
        let early = Event {
            observed_at: t("2024-05-01T11:59:59.999Z"),
            ..sample()
        };
        assert_eq!(fields(&early), ["observed_at"]);
        let instant = Event {
            phase: Phase::Instant,
            started_at: None,
            ended_at: None,
            ..sample()
        };
        assert_eq!(fields(&instant), Vec::<String>::new());
    }
}
