//! Retained status payloads: agent (`ioc.agent-status/1`) and camera (`ioc.camera-status/1`).
//!
//! The agent publishes [`AgentStatus`] `online` on `{root}/v1/agents/{agent}/status`, retained,
//! right after connecting, and registers the same topic as its MQTT Last Will with an `offline`
//! payload built at connect time (so that will's `at` is the connect time, not the time of
//! death; the broker's delivery time is the better clock for that). On a clean shutdown it
//! publishes `offline` itself. [`CameraStatus`] is retained on
//! `{root}/v1/agents/{agent}/cameras/{camera}/status` and re-published on every state change.
//! The ids are in the topic, not in these payloads.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::topics::validate_camera_id;
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`AgentStatus`].
pub const AGENT_STATUS_SCHEMA: &str = "ioc.agent-status/1";
/// The `schema` value of [`CameraStatus`].
pub const CAMERA_STATUS_SCHEMA: &str = "ioc.camera-status/1";

/// Whether an agent is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Connected and running.
    Online,
    /// Shut down, or gone (Last Will).
    Offline,
}

/// An agent's status (retained; also its Last Will).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.agent-status/1")]
pub struct AgentStatus {
    /// Always `"ioc.agent-status/1"`.
    #[schemars(extend("const" = "ioc.agent-status/1"))]
    pub schema: String,
    /// Online or offline.
    pub state: AgentState,
    /// The agent's version (its crate version, e.g. `0.1.0`).
    pub version: String,
    /// The ids of the cameras it is configured with.
    #[serde(default)]
    #[schemars(inner(pattern(crate::topics::ID_PATTERN)))]
    pub cameras: Vec<String>,
    /// When this status was built. Agents repeat their `online` status as a heartbeat
    /// (every 30 s), so a collector can tell a live agent from a stale retained message and
    /// measure the agent's clock against its own.
    pub at: Timestamp,
    /// What the agent knows about its own clock (absent: nothing wrong noticed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockState>,
    /// The site's name for people (`[agent] name`, e.g. "Phường Hàng Trống"); absent: the
    /// console shows the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
}

/// An agent's own view of its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Nothing wrong noticed.
    Ok,
    /// Earlier than the agent's build: a box without a battery-backed clock that has not
    /// synchronised yet.
    BeforeBuild,
    /// The wall clock jumped against the monotonic clock recently (a synchronisation step or
    /// someone setting it): times around the jump are not to be trusted.
    Jumped,
}

impl AgentStatus {
    /// A status with `state`.
    pub fn new(state: AgentState, version: &str, cameras: Vec<String>, at: Timestamp) -> Self {
        AgentStatus {
            schema: AGENT_STATUS_SCHEMA.to_owned(),
            state,
            version: version.to_owned(),
            cameras,
            at,
            clock: None,
            name: None,
        }
    }

    /// Checks the schema string, version and camera ids (no duplicates).
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(AGENT_STATUS_SCHEMA);
        c.schema(&self.schema);
        c.label("version", &self.version);
        if let Some(name) = &self.name {
            c.label("name", name);
        }
        for (i, cam) in self.cameras.iter().enumerate() {
            c.id(&format!("cameras[{i}]"), validate_camera_id(cam));
            if self.cameras[..i].contains(cam) {
                c.push(format!("cameras[{i}]"), format!("{cam:?} is listed twice"));
            }
        }
        c.finish()
    }
}

/// The state of one camera's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Opening the stream, no frame yet.
    Connecting,
    /// Frames arrive.
    Streaming,
    /// The stream broke; retrying with backoff.
    Reconnecting,
    /// Given up or misconfigured; `error` says why.
    Failed,
    /// Unreachable for longer than the offline threshold.
    Offline,
    /// Frames arrive but the view is covered, dark, blurred or moved.
    Tampered,
    /// Stopped on purpose (shutdown, disabled).
    Stopped,
}

impl CameraState {
    /// Every state, in declaration order.
    pub const ALL: [CameraState; 7] = [
        CameraState::Connecting,
        CameraState::Streaming,
        CameraState::Reconnecting,
        CameraState::Failed,
        CameraState::Offline,
        CameraState::Tampered,
        CameraState::Stopped,
    ];

    /// The wire name (`"streaming"`).
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Streaming => "streaming",
            CameraState::Reconnecting => "reconnecting",
            CameraState::Failed => "failed",
            CameraState::Offline => "offline",
            CameraState::Tampered => "tampered",
            CameraState::Stopped => "stopped",
        }
    }
}

/// A camera's status (retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.camera-status/1")]
pub struct CameraStatus {
    /// Always `"ioc.camera-status/1"`.
    #[schemars(extend("const" = "ioc.camera-status/1"))]
    pub schema: String,
    /// The stream's state.
    pub state: CameraState,
    /// Frames per second received from the camera over the last interval, if streaming.
    #[serde(default)]
    pub fps: Option<f32>,
    /// Frames per second the agent analysed (run through the detector, or judged still by
    /// motion gating) over the last interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_fps: Option<f32>,
    /// The analysis rate the camera is configured for (`detect.fps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_fps: Option<f32>,
    /// Frames dropped over the last interval because the detectors were busy (a newer frame
    /// of the camera replaced them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Median time from decoded frame to detections over the recent frames, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_latency_ms: Option<f32>,
    /// The last error, for people (not parsed).
    #[serde(default)]
    pub error: Option<String>,
    /// When this status was built.
    pub at: Timestamp,
    /// The camera's name for people (its config's `name`, e.g. "Cổng Bắc / North gate");
    /// absent: the console shows the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
}

impl CameraStatus {
    /// A status with `state` and nothing else.
    pub fn new(state: CameraState, at: Timestamp) -> Self {
        CameraStatus {
            schema: CAMERA_STATUS_SCHEMA.to_owned(),
            state,
            fps: None,
            detect_fps: None,
            target_fps: None,
            dropped: None,
            detect_latency_ms: None,
            error: None,
            at,
            name: None,
        }
    }

    /// Checks the schema string and that `fps` is finite and non-negative.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(CAMERA_STATUS_SCHEMA);
        c.schema(&self.schema);
        for (k, v) in [
            ("fps", self.fps),
            ("detect_fps", self.detect_fps),
            ("target_fps", self.target_fps),
        ] {
            if let Some(v) = v {
                c.range(k, v.into(), 0.0, 1000.0);
            }
        }
        if let Some(v) = self.detect_latency_ms {
            c.range("detect_latency_ms", v.into(), 0.0, 3.6e6);
        }
        if let Some(name) = &self.name {
            c.label("name", name);
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp::parse("2024-05-01T12:00:00.000Z").unwrap()
    }

    #[test]
    fn camera_state_names_are_the_wire_names() {
        for s in CameraState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn agent_status_round_trips() {
        for state in [AgentState::Online, AgentState::Offline] {
            let s = AgentStatus::new(state, "0.1.0", vec!["a".into(), "b-2".into()], at());
            s.validate().unwrap();
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<AgentStatus>(&json).unwrap(), s);
        }
        let json = serde_json::to_string(&AgentStatus::new(AgentState::Offline, "1", vec![], at()));
        assert_eq!(
            json.unwrap(),
            r#"{"schema":"ioc.agent-status/1","state":"offline","version":"1","cameras":[],"at":"2024-05-01T12:00:00.000Z"}"#
        );
    }

    #[test]
    fn agent_status_problems() {
        let mut s = AgentStatus::new(AgentState::Online, "", vec!["a".into(), "a".into()], at());
        s.cameras.push("B".into());
        s.name = Some("x".repeat(129));
        let e = s.validate().unwrap_err();
        let fields: Vec<_> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["version", "name", "cameras[1]", "cameras[2]"]);
    }

    #[test]
    fn camera_status_round_trips() {
        for state in [
            CameraState::Connecting,
            CameraState::Streaming,
            CameraState::Reconnecting,
            CameraState::Failed,
            CameraState::Offline,
            CameraState::Tampered,
            CameraState::Stopped,
        ] {
            let mut s = CameraStatus::new(state, at());
            s.fps = Some(25.0);
            s.detect_fps = Some(4.9);
            s.target_fps = Some(5.0);
            s.dropped = Some(3);
            s.detect_latency_ms = Some(85.0);
            s.error = Some("rtsp: 401 unauthorized".into());
            s.name = Some("Cổng Bắc / North gate".into());
            s.validate().unwrap();
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<CameraStatus>(&json).unwrap(), s);
        }
        let mut s = CameraStatus::new(CameraState::Streaming, at());
        s.fps = Some(-1.0);
        assert_eq!(s.validate().unwrap_err().problems[0].field, "fps");
        let mut s = CameraStatus::new(CameraState::Streaming, at());
        s.name = Some("line\nbreak".into());
        assert_eq!(s.validate().unwrap_err().problems[0].field, "name");
    }
}
