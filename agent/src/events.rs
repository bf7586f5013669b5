//! Rule events to wire events (`ioc.event/1` of the `protocol` crate).
//!
//! The rule engine numbers incidents per camera and measures time in stream
//! seconds; the wire event names an incident `{agent}-{seq}` after the seq of
//! its first message and carries wall-clock RFC 3339 times. [`EventBuilder`]
//! keeps that mapping for the incidents still open.

use crate::clock::FrameTime;
use std::collections::HashMap;

use ioc_protocol::{
    incident_id, Event, EventDetails, EventObject, Phase, Severity, SnapshotRef, Speed, SpeedUnit,
    Timestamp,
};
use ioc_tracking::RuleEvent;

/// Builds wire events for one agent, remembering the id of every open incident.
#[derive(Debug, Default)]
pub struct EventBuilder {
    agent: String,
    open: HashMap<(usize, u64), String>,
}

impl EventBuilder {
    /// A builder for agent `agent`.
    pub fn new(agent: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            open: HashMap::new(),
        }
    }

    /// The wire event for rule event `ev` of camera `(index, id)`, sent
    /// with per-agent sequence number `seq`. `time` is the time it was decided at (the
    /// triggering frame's capture time when `from_frame`, else the rules' tick): it maps the
    /// engine's rule-clock seconds to wall-clock time.
    pub fn build(
        &mut self,
        seq: u64,
        (index, camera): (usize, &str),
        ev: &RuleEvent,
        time: &FrameTime,
        from_frame: bool,
        snapshot: Option<SnapshotRef>,
    ) -> Event {
        let key = (index, ev.incident);
        let phase = match ev.phase {
            ioc_tracking::Phase::Start => Phase::Start,
            ioc_tracking::Phase::Update => Phase::Update,
            ioc_tracking::Phase::End => Phase::End,
            ioc_tracking::Phase::Instant => Phase::Instant,
        };
        let id = match phase {
            Phase::Start => self
                .open
                .entry(key)
                .or_insert_with(|| incident_id(&self.agent, seq))
                .clone(),
            Phase::Update => self
                .open
                .get(&key)
                .cloned()
                .unwrap_or_else(|| incident_id(&self.agent, seq)),
            // The incident is over: forget it.
            Phase::End => self
                .open
                .remove(&key)
                .unwrap_or_else(|| incident_id(&self.agent, seq)),
            Phase::Instant => incident_id(&self.agent, seq),
        };
        // The engine's times are on the camera's rule clock, which `time` ties to the wall.
        let wall = |t: f64| Timestamp::from_system_time(time.wall_of(t));
        Event {
            schema: ioc_protocol::EVENT_SCHEMA.to_owned(),
            id,
            seq,
            phase,
            agent: self.agent.clone(),
            camera: camera.to_owned(),
            kind: ev.kind.event_kind(),
            severity: match ev.severity {
                ioc_tracking::rules::config::Severity::Info => Severity::Info,
                ioc_tracking::rules::config::Severity::Warning => Severity::Warning,
                ioc_tracking::rules::config::Severity::Critical => Severity::Critical,
            },
            rule: ev.rule.clone(),
            zone: ev.zone.clone(),
            line: ev.line.clone(),
            started_at: (phase != Phase::Instant).then(|| wall(ev.started_at_sec)),
            observed_at: wall(ev.observed_at_sec),
            pts_sec: from_frame.then_some(time.pts.as_secs_f64()),
            ended_at: (phase == Phase::End)
                .then(|| wall(ev.ended_at_sec.unwrap_or(ev.observed_at_sec))),
            objects: ev
                .objects
                .iter()
                .map(|o| EventObject {
                    track_id: o.track_id,
                    class: o.class.clone(),
                    score: o.score.clamp(0.0, 1.0),
                    bbox: [o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2].map(|v| v.clamp(0.0, 1.0)),
                })
                .collect(),
            details: details(ev),
            snapshot,
        }
    }
}

fn details(ev: &RuleEvent) -> EventDetails {
    let d = &ev.details;
    let mut extra = serde_json::Map::new();
    // Everything the wire schema has no field for goes to `extra`, under the engine's names.
    if let Ok(serde_json::Value::Object(all)) = serde_json::to_value(d) {
        for (k, v) in all {
            if !matches!(k.as_str(), "dwell_sec" | "count" | "heading_deg" | "speed") {
                extra.insert(k, v);
            }
        }
    }
    EventDetails {
        dwell_s: d.dwell_sec,
        count: d.count,
        direction_deg: d.heading_deg.map(|h| h as f32),
        speed: d.speed.map(|s| Speed {
            value: s.value as f32,
            unit: match s.unit {
                ioc_tracking::units::SpeedUnit::NormPerSec => SpeedUnit::NormPerSecond,
                ioc_tracking::units::SpeedUnit::MetresPerSec => SpeedUnit::MetersPerSecond,
            },
        }),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioc_tracking::rules::event::EventObject as RuleObject;
    use ioc_tracking::{BBox, RuleKind};

    fn rule_event(
        incident: u64,
        phase: ioc_tracking::Phase,
        started: f64,
        observed: f64,
    ) -> RuleEvent {
        RuleEvent {
            incident,
            kind: RuleKind::Loitering,
            rule: "loiter".into(),
            severity: ioc_tracking::rules::config::Severity::Warning,
            zone: Some("west_end".into()),
            line: None,
            phase,
            started_at_sec: started,
            observed_at_sec: observed,
            ended_at_sec: (phase == ioc_tracking::Phase::End).then_some(observed),
            frame: Some(7),
            objects: vec![RuleObject {
                track_id: 3,
                class_id: 0,
                class: "person".into(),
                score: 0.8,
                bbox: BBox::new(0.1, 0.2, 0.3, 1.2),
            }],
            details: ioc_tracking::rules::event::EventDetails {
                dwell_sec: Some(5.5),
                ..Default::default()
            },
        }
    }

    #[test]
    fn an_incident_keeps_the_id_of_its_start_and_times_map_to_wall_clock() {
        use std::time::{Duration, SystemTime};
        let mut b = EventBuilder::new("site-a");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // Decided on the frame captured at rule time 105 s (t0), pts 42 s in its session.
        let at = |t_sec: f64, wall: SystemTime| FrameTime {
            pts: Duration::from_secs_f64((t_sec - 63.0).max(0.0)),
            t_sec,
            wall,
        };
        let start = b.build(
            10,
            (0, "cam"),
            &rule_event(1, ioc_tracking::Phase::Start, 100.0, 105.0),
            &at(105.0, t0),
            true,
            None,
        );
        let end = b.build(
            14,
            (0, "cam"),
            &rule_event(1, ioc_tracking::Phase::End, 100.0, 109.0),
            &at(109.0, t0 + Duration::from_secs(4)),
            false,
            None,
        );
        assert_eq!(start.id, "site-a-10");
        assert_eq!(end.id, "site-a-10", "end carries the start's incident id");
        assert_eq!((start.seq, end.seq), (10, 14));
        // Started 5 s before the frame that decided it was captured.
        assert_eq!(
            start.started_at,
            Some(Timestamp::from_system_time(t0 - Duration::from_secs(5)))
        );
        assert_eq!(start.observed_at, Timestamp::from_system_time(t0));
        assert_eq!(start.pts_sec, Some(42.0));
        assert_eq!(end.pts_sec, None, "no frame behind a clock-driven message");
        assert_eq!(end.started_at, start.started_at);
        assert!(end.ended_at.is_some() && start.ended_at.is_none());
        assert_eq!(start.details.dwell_s, Some(5.5));
        assert_eq!(
            start.objects[0].bbox[3], 1.0,
            "boxes are clamped into the frame"
        );
        start.validate().unwrap();
        end.validate().unwrap();
        // The same incident number on another camera is another incident.
        let other = b.build(
            15,
            (1, "cam2"),
            &rule_event(1, ioc_tracking::Phase::Start, 0.0, 0.0),
            &at(0.0, t0),
            true,
            None,
        );
        assert_eq!(other.id, "site-a-15");
    }
}
