//! Line counts, schema `ioc.counts/1`, published on `{root}/v1/agents/{agent}/counts`.
//!
//! One message per camera line per interval (the agent's counting interval, e.g. a minute),
//! with a count per object class and direction; classes with nothing counted may be left out.
//! `seq` comes from the same per-agent sequence as events (see [`Event`](crate::Event)), so
//! counts go through the outbox and are acknowledged like events.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::topics::{validate_agent_id, validate_camera_id};
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`Counts`].
pub const COUNTS_SCHEMA: &str = "ioc.counts/1";

/// Which way a line was crossed, relative to the line's configured direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountDirection {
    /// Along the line's direction.
    In,
    /// Against it.
    Out,
}

/// The count of one class in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClassCount {
    /// The detector's class label, e.g. `car`.
    pub class: String,
    /// Which way.
    pub direction: CountDirection,
    /// How many crossed in the interval.
    pub count: u64,
}

/// Counts of one line over one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.counts/1")]
pub struct Counts {
    /// Always `"ioc.counts/1"`.
    #[schemars(extend("const" = "ioc.counts/1"))]
    pub schema: String,
    /// Per-agent message sequence number, shared with events.
    pub seq: u64,
    /// The agent id, equal to the one in the topic.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub agent: String,
    /// The camera id.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// The line id (from the agent config).
    pub line: String,
    /// Start of the interval (inclusive).
    pub interval_start: Timestamp,
    /// End of the interval (exclusive).
    pub interval_end: Timestamp,
    /// One entry per (class, direction); no duplicates.
    #[serde(default)]
    pub counts: Vec<ClassCount>,
}

impl Counts {
    /// Checks the schema string, ids, the interval's order and duplicate entries.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(COUNTS_SCHEMA);
        c.schema(&self.schema);
        c.id("agent", validate_agent_id(&self.agent));
        c.id("camera", validate_camera_id(&self.camera));
        c.label("line", &self.line);
        c.order(
            ("interval_start", Some(&self.interval_start)),
            ("interval_end", Some(&self.interval_end)),
        );
        for (i, e) in self.counts.iter().enumerate() {
            c.label(&format!("counts[{i}].class"), &e.class);
            let dup = self.counts[..i]
                .iter()
                .any(|p| p.class == e.class && p.direction == e.direction);
            if dup {
                c.push(
                    format!("counts[{i}]"),
                    format!("{:?} {:?} is listed twice", e.class, e.direction),
                );
            }
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Counts {
        Counts {
            schema: COUNTS_SCHEMA.into(),
            seq: 42,
            agent: "site-1".into(),
            camera: "road".into(),
            line: "stop-line".into(),
            interval_start: Timestamp::parse("2024-05-01T12:00:00.000Z").unwrap(),
            interval_end: Timestamp::parse("2024-05-01T12:01:00.000Z").unwrap(),
            counts: vec![
                ClassCount {
                    class: "car".into(),
                    direction: CountDirection::In,
                    count: 12,
                },
                ClassCount {
                    class: "car".into(),
                    direction: CountDirection::Out,
                    count: 9,
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let c = sample();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#"{"class":"car","direction":"in","count":12}"#));
        assert_eq!(serde_json::from_str::<Counts>(&json).unwrap(), c);
    }

    #[test]
    fn problems() {
        let mut c = sample();
        c.agent = "Site".into();
        c.interval_end = Timestamp::parse("2024-05-01T11:00:00Z").unwrap();
        c.counts[1].direction = CountDirection::In;
        let fields: Vec<_> = c
            .validate()
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["agent", "interval_end", "counts[1]"]);
    }
}
