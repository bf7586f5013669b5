//! A camera's analytics (zones, lines, rules) pushed from the center, and what the agent made
//! of it.
//!
//! - `ioc.analytics/1`, collector → agent, **retained**, QoS 1, on
//!   `{root}/v1/agents/{agent}/analytics/{camera}` (the ACL lets only collectors write it): the
//!   whole `analytics` section of that camera, as the site's `agent.toml` would hold it under
//!   `[cameras.analytics]` (same keys, as JSON), with a version that only grows. Retained, so
//!   an agent that was away gets the newest one when it connects.
//! - `ioc.analytics-state/1`, agent → collector, **retained**, QoS 1, on
//!   `{root}/v1/agents/{agent}/analytics-state/{camera}`: the version the camera runs (or
//!   none: the site file's own), and the last version refused with every problem by key. A
//!   refused version changes nothing: the camera keeps what it ran.
//!
//! The site's file stays authoritative for what only the site knows (camera URLs, credentials,
//! decoders, rates): only `analytics` comes from the center.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::topics::validate_camera_id;
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`AnalyticsPush`].
pub const ANALYTICS_SCHEMA: &str = "ioc.analytics/1";
/// The `schema` value of [`AnalyticsState`].
pub const ANALYTICS_STATE_SCHEMA: &str = "ioc.analytics-state/1";
/// Largest pushed analytics, in bytes of JSON.
pub const MAX_ANALYTICS_BYTES: usize = 256 * 1024;
/// Most problems a state lists.
pub const MAX_PROBLEMS: usize = 100;

/// One camera's analytics, as the center pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.analytics/1")]
pub struct AnalyticsPush {
    /// Always `"ioc.analytics/1"`.
    #[schemars(extend("const" = "ioc.analytics/1"))]
    pub schema: String,
    /// The camera it is for (the same as in the topic).
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// Grows with every change of this camera's analytics, from 1.
    pub version: u64,
    /// The camera's `analytics` section: `zones`, `lines`, `rules` and the other keys of
    /// `[cameras.analytics]` in `agent.toml`, checked by the agent as `check-config` would.
    pub analytics: serde_json::Value,
    /// Who changed it (a console user).
    pub changed_by: String,
    /// When.
    pub changed_at: Timestamp,
}

impl AnalyticsPush {
    /// Checks what serde does not (the analytics themselves are the agent's to check).
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(ANALYTICS_SCHEMA);
        c.schema(&self.schema);
        c.id("camera", validate_camera_id(&self.camera));
        if self.version == 0 || i64::try_from(self.version).is_err() {
            c.push(
                "version",
                format!("{} is not within 1..=2^63-1", self.version),
            );
        }
        if !self.analytics.is_object() {
            c.push(
                "analytics",
                "must be an object (the camera's analytics section)",
            );
        }
        c.label("changed_by", &self.changed_by);
        c.finish()
    }
}

/// One problem with a pushed version: its key inside the camera's analytics, and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalyticsProblem {
    /// E.g. `zones[0].points[2]`, `rules[1].classes[0]`.
    pub key: String,
    /// For people.
    pub message: String,
}

/// A version the agent refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RefusedVersion {
    /// The version refused.
    pub version: u64,
    /// Every problem found.
    pub problems: Vec<AnalyticsProblem>,
}

/// What a camera's analytics are now, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.analytics-state/1")]
pub struct AnalyticsState {
    /// Always `"ioc.analytics-state/1"`.
    #[schemars(extend("const" = "ioc.analytics-state/1"))]
    pub schema: String,
    /// The camera.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// The pushed version the camera runs; none: the site file's analytics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_version: Option<u64>,
    /// The newest version refused after the one running, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedVersion>,
    /// The analytics section the camera runs (the site file's or the pushed one), so the
    /// center's editor starts from what runs; none: the camera has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<serde_json::Value>,
    /// When the agent decided.
    pub at: Timestamp,
}

impl AnalyticsState {
    /// Checks what serde does not.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(ANALYTICS_STATE_SCHEMA);
        c.schema(&self.schema);
        c.id("camera", validate_camera_id(&self.camera));
        if let Some(r) = &self.refused {
            if r.problems.is_empty() || r.problems.len() > MAX_PROBLEMS {
                c.push(
                    "refused.problems",
                    format!(
                        "{} problems is not within 1..={MAX_PROBLEMS}",
                        r.problems.len()
                    ),
                );
            }
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_and_states_round_trip_and_check_their_fields() {
        let push = AnalyticsPush {
            schema: ANALYTICS_SCHEMA.into(),
            camera: "gate".into(),
            version: 3,
            analytics: serde_json::json!({ "zones": [] }),
            changed_by: "lan".into(),
            changed_at: Timestamp::from_unix(1_800_000_000, 0),
        };
        let back: AnalyticsPush = crate::parse(&crate::encode(&push).unwrap()).unwrap();
        assert_eq!(back, push);
        let bad = AnalyticsPush {
            version: 0,
            analytics: serde_json::json!([1]),
            ..push
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("version") && e.contains("analytics"), "{e}");

        let state = AnalyticsState {
            schema: ANALYTICS_STATE_SCHEMA.into(),
            camera: "gate".into(),
            running_version: Some(2),
            refused: Some(RefusedVersion {
                version: 3,
                problems: vec![AnalyticsProblem {
                    key: "zones[0].points[1]".into(),
                    message: "outside 0..1".into(),
                }],
            }),
            analytics: Some(serde_json::json!({ "zones": [] })),
            at: Timestamp::from_unix(1_800_000_000, 0),
        };
        let back: AnalyticsState = crate::parse(&crate::encode(&state).unwrap()).unwrap();
        assert_eq!(back, state);
    }
}
