//! MQTT topic names (contract v1) and the ids that appear in them.
//!
//! | topic (root `ioc`) | QoS / retain | payload |
//! |---|---|---|
//! | `ioc/v1/agents/{agent}/status` | 1, retained, Last Will | [`AgentStatus`](crate::AgentStatus) |
//! | `ioc/v1/agents/{agent}/cameras/{camera}/status` | 1, retained | [`CameraStatus`](crate::CameraStatus) |
//! | `ioc/v1/agents/{agent}/events` | 1 | [`Event`](crate::Event) |
//! | `ioc/v1/agents/{agent}/snapshots/{event_id}` | 1 | JPEG bytes |
//! | `ioc/v1/agents/{agent}/clips/{event_id}` | 1 | one part of an MP4 clip ([`clip`](crate::clip)) |
//! | `ioc/v1/agents/{agent}/counts` | 1 | [`Counts`](crate::Counts) |
//! | `ioc/v1/agents/{agent}/acks` | 1, collector → agent | [`Ack`](crate::Ack) |
//!
//! Agent and camera ids are `[a-z0-9_-]{1,64}`; event ids `[a-z0-9_-]{1,128}` (room for
//! `{agent}-{seq}`, see [`incident_id`](crate::incident_id)). That alphabet keeps topic levels
//! free of MQTT wildcards, `/` and `$`, and is what the agent's config accepts.
//!
//! Collectors split the load with shared subscriptions ([`Topics::shared_filter`], e.g.
//! `$share/collectors/ioc/v1/agents/+/events`). Brokers do not send retained messages to a
//! shared subscription (MQTT 5, 4.8.2), so subscribe to the retained status topics with a plain
//! [`Topics::filter`] in every collector that needs the current state.
//!
//! Builders validate the ids they are given and return [`IdError`] rather than build a topic
//! that would alias another one; the parser rejects what the builders would not build.

use std::fmt;

/// The default topic root.
pub const DEFAULT_ROOT: &str = "ioc";

/// The contract version in topic names.
const VERSION_LEVEL: &str = "v1";

/// Longest agent or camera id.
pub const MAX_ID_LEN: usize = 64;
/// Longest event id.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// JSON Schema pattern of agent and camera ids.
pub(crate) const ID_PATTERN: &str = "^[a-z0-9_-]{1,64}$";
/// JSON Schema pattern of event ids.
pub(crate) const EVENT_ID_PATTERN: &str = "^[a-z0-9_-]{1,128}$";

/// What kind of id an [`IdError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An agent id.
    Agent,
    /// A camera id.
    Camera,
    /// An event (incident) id.
    Event,
    /// A shared-subscription group name.
    Group,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Agent => "agent id",
            IdKind::Camera => "camera id",
            IdKind::Event => "event id",
            IdKind::Group => "share group",
        })
    }
}

/// An id that may not be used in a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: must be 1-{max} characters of a-z, 0-9, '-' or '_'")]
pub struct IdError {
    /// Which id.
    pub kind: IdKind,
    /// The rejected value (truncated to 140 characters).
    pub value: String,
    /// Its maximum length.
    pub max: usize,
}

fn check_id(kind: IdKind, id: &str, max: usize) -> Result<(), IdError> {
    let ok = !id.is_empty()
        && id.len() <= max
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError {
            kind,
            value: id.chars().take(140).collect(),
            max,
        })
    }
}

/// Checks an agent id: `[a-z0-9_-]{1,64}`.
pub fn validate_agent_id(id: &str) -> Result<(), IdError> {
    check_id(IdKind::Agent, id, MAX_ID_LEN)
}

/// Checks a camera id: `[a-z0-9_-]{1,64}`.
pub fn validate_camera_id(id: &str) -> Result<(), IdError> {
    check_id(IdKind::Camera, id, MAX_ID_LEN)
}

/// Checks an event id: `[a-z0-9_-]{1,128}`.
pub fn validate_event_id(id: &str) -> Result<(), IdError> {
    check_id(IdKind::Event, id, MAX_EVENT_ID_LEN)
}

/// The streams of the contract, without their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `{root}/v1/agents/{agent}/status`
    AgentStatus,
    /// `{root}/v1/agents/{agent}/cameras/{camera}/status`
    CameraStatus,
    /// `{root}/v1/agents/{agent}/events`
    Events,
    /// `{root}/v1/agents/{agent}/snapshots/{event_id}`
    Snapshots,
    /// `{root}/v1/agents/{agent}/clips/{event_id}`
    Clips,
    /// `{root}/v1/agents/{agent}/counts`
    Counts,
    /// `{root}/v1/agents/{agent}/acks`
    Acks,
    /// `{root}/v1/agents/{agent}/previews/{camera}`
    Previews,
    /// `{root}/v1/agents/{agent}/preview-requests`
    PreviewRequests,
    /// `{root}/v1/agents/{agent}/analytics/{camera}`
    Analytics,
    /// `{root}/v1/agents/{agent}/analytics-state/{camera}`
    AnalyticsState,
}

impl TopicKind {
    /// Whether messages on this stream are published with the retain flag.
    pub fn retained(self) -> bool {
        matches!(
            self,
            TopicKind::AgentStatus
                | TopicKind::CameraStatus
                | TopicKind::Analytics
                | TopicKind::AnalyticsState
        )
    }

    /// The MQTT QoS of this stream: 1, except 0 for previews and their requests (worth
    /// something only now: asked again rather than queued).
    pub fn qos(self) -> u8 {
        match self {
            TopicKind::Previews | TopicKind::PreviewRequests => 0,
            _ => 1,
        }
    }

    /// The levels after `{agent}`, with `+` for ids.
    fn suffix(self) -> &'static str {
        match self {
            TopicKind::AgentStatus => "status",
            TopicKind::CameraStatus => "cameras/+/status",
            TopicKind::Events => "events",
            TopicKind::Snapshots => "snapshots/+",
            TopicKind::Clips => "clips/+",
            TopicKind::Counts => "counts",
            TopicKind::Acks => "acks",
            TopicKind::Previews => "previews/+",
            TopicKind::PreviewRequests => "preview-requests",
            TopicKind::Analytics => "analytics/+",
            TopicKind::AnalyticsState => "analytics-state/+",
        }
    }
}

/// A parsed topic of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// An agent's status (retained, Last Will).
    AgentStatus {
        /// Agent id.
        agent: String,
    },
    /// A camera's status (retained).
    CameraStatus {
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
    /// An agent's events.
    Events {
        /// Agent id.
        agent: String,
    },
    /// The JPEG snapshot of one event.
    Snapshot {
        /// Agent id.
        agent: String,
        /// The event (incident) id the snapshot belongs to.
        event_id: String,
    },
    /// One part of the video clip of one event.
    Clip {
        /// Agent id.
        agent: String,
        /// The event (incident) id the clip belongs to.
        event_id: String,
    },
    /// An agent's line counts.
    Counts {
        /// Agent id.
        agent: String,
    },
    /// The collector's acknowledgements to an agent.
    Acks {
        /// Agent id.
        agent: String,
    },
    /// A current frame of one camera (`ioc.preview/1`).
    Preview {
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
    /// The collector's requests for previews (`ioc.preview-request/1`).
    PreviewRequests {
        /// Agent id.
        agent: String,
    },
    /// A camera's analytics pushed from the center (`ioc.analytics/1`, retained).
    Analytics {
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
    /// What the agent made of it (`ioc.analytics-state/1`, retained).
    AnalyticsState {
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
}

impl Topic {
    /// The agent id in the topic.
    pub fn agent(&self) -> &str {
        match self {
            Topic::AgentStatus { agent }
            | Topic::CameraStatus { agent, .. }
            | Topic::Events { agent }
            | Topic::Snapshot { agent, .. }
            | Topic::Clip { agent, .. }
            | Topic::Counts { agent }
            | Topic::Acks { agent }
            | Topic::Preview { agent, .. }
            | Topic::PreviewRequests { agent }
            | Topic::Analytics { agent, .. }
            | Topic::AnalyticsState { agent, .. } => agent,
        }
    }

    /// Which stream this is.
    pub fn kind(&self) -> TopicKind {
        match self {
            Topic::AgentStatus { .. } => TopicKind::AgentStatus,
            Topic::CameraStatus { .. } => TopicKind::CameraStatus,
            Topic::Events { .. } => TopicKind::Events,
            Topic::Snapshot { .. } => TopicKind::Snapshots,
            Topic::Clip { .. } => TopicKind::Clips,
            Topic::Counts { .. } => TopicKind::Counts,
            Topic::Acks { .. } => TopicKind::Acks,
            Topic::Preview { .. } => TopicKind::Previews,
            Topic::PreviewRequests { .. } => TopicKind::PreviewRequests,
            Topic::Analytics { .. } => TopicKind::Analytics,
            Topic::AnalyticsState { .. } => TopicKind::AnalyticsState,
        }
    }
}

/// A topic that is not one of the contract's, or a root that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The configured root is unusable.
    #[error("invalid topic root {root:?}: {reason}")]
    BadRoot {
        /// The root.
        root: String,
        /// Why.
        reason: &'static str,
    },
    /// The topic is not under this root.
    #[error("topic {topic:?} is not under root {root:?}")]
    WrongRoot {
        /// The received topic.
        topic: String,
        /// The configured root.
        root: String,
    },
    /// The topic carries another contract version (e.g. `ioc/v2/...`).
    #[error("topic {topic:?} is contract version {version:?}; this reader understands \"v1\"")]
    UnsupportedVersion {
        /// The received topic.
        topic: String,
        /// The version level found.
        version: String,
    },
    /// The topic is under the root but is none of the contract's topics.
    #[error("topic {topic:?} is not a v1 topic (expected .../v1/agents/{{agent}}/status|events|counts|acks|cameras/{{camera}}/status|snapshots/{{event_id}}|clips/{{event_id}})")]
    Unknown {
        /// The received topic.
        topic: String,
    },
    /// The topic has the right shape but an invalid id in it.
    #[error("topic {topic:?}: {source}")]
    BadId {
        /// The received topic.
        topic: String,
        /// The id problem.
        source: IdError,
    },
}

/// Topic names under one root (default [`DEFAULT_ROOT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            root: DEFAULT_ROOT.to_owned(),
        }
    }
}

impl Topics {
    /// Topics under `root`: one or more `/`-separated levels of `[A-Za-z0-9_.-]`, e.g. `ioc`
    /// or `acme/ioc`; no wildcards, no empty levels, not starting with `$`.
    pub fn new(root: &str) -> Result<Self, TopicError> {
        let bad = |reason| TopicError::BadRoot {
            root: root.chars().take(140).collect(),
            reason,
        };
        if root.is_empty() {
            return Err(bad("must not be empty"));
        }
        if root.len() > 256 {
            return Err(bad("longer than 256 bytes"));
        }
        for level in root.split('/') {
            if level.is_empty() {
                return Err(bad("has an empty level (leading, trailing or double '/')"));
            }
            if !level
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(bad(
                    "levels may only use A-Z, a-z, 0-9, '_', '-' and '.' (no wildcards or '$')",
                ));
            }
        }
        Ok(Topics {
            root: root.to_owned(),
        })
    }

    /// The root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The topics of one agent; fails on an invalid agent id.
    pub fn agent(&self, agent: &str) -> Result<AgentTopics, IdError> {
        validate_agent_id(agent)?;
        Ok(AgentTopics {
            prefix: format!("{}/{VERSION_LEVEL}/agents/{agent}", self.root),
        })
    }

    /// The name of a parsed topic (the inverse of [`Topics::parse`]).
    pub fn name(&self, topic: &Topic) -> Result<String, IdError> {
        let a = self.agent(topic.agent())?;
        Ok(match topic {
            Topic::AgentStatus { .. } => a.status(),
            Topic::CameraStatus { camera, .. } => a.camera_status(camera)?,
            Topic::Events { .. } => a.events(),
            Topic::Snapshot { event_id, .. } => a.snapshot(event_id)?,
            Topic::Clip { event_id, .. } => a.clip(event_id)?,
            Topic::Counts { .. } => a.counts(),
            Topic::Acks { .. } => a.acks(),
            Topic::Preview { camera, .. } => a.preview(camera)?,
            Topic::PreviewRequests { .. } => a.preview_requests(),
            Topic::Analytics { camera, .. } => a.analytics(camera)?,
            Topic::AnalyticsState { camera, .. } => a.analytics_state(camera)?,
        })
    }

    /// The filter matching `kind` for every agent, e.g. `ioc/v1/agents/+/events`.
    pub fn filter(&self, kind: TopicKind) -> String {
        format!("{}/{VERSION_LEVEL}/agents/+/{}", self.root, kind.suffix())
    }

    /// The shared-subscription filter for `kind`, e.g.
    /// `$share/collectors/ioc/v1/agents/+/events`; `group` is `[a-z0-9_-]{1,64}`.
    /// (No retained messages are delivered on it; see the module docs.)
    pub fn shared_filter(&self, group: &str, kind: TopicKind) -> Result<String, IdError> {
        check_id(IdKind::Group, group, MAX_ID_LEN)?;
        Ok(format!("$share/{group}/{}", self.filter(kind)))
    }

    /// Parses a received topic. Fails if it is not under this root, is another contract
    /// version, is not one of the v1 topics, or has an invalid id in it.
    pub fn parse(&self, topic: &str) -> Result<Topic, TopicError> {
        let wrong_root = || TopicError::WrongRoot {
            topic: topic.chars().take(300).collect(),
            root: self.root.clone(),
        };
        let rest = topic
            .strip_prefix(self.root.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(wrong_root)?;
        let unknown = || TopicError::Unknown {
            topic: topic.chars().take(300).collect(),
        };
        let bad_id = |source| TopicError::BadId {
            topic: topic.chars().take(300).collect(),
            source,
        };
        let levels: Vec<&str> = rest.split('/').collect();
        let version = levels[0];
        if version != VERSION_LEVEL {
            let numbered = version.len() > 1
                && version.starts_with('v')
                && version[1..].bytes().all(|b| b.is_ascii_digit());
            return Err(if numbered {
                TopicError::UnsupportedVersion {
                    topic: topic.chars().take(300).collect(),
                    version: version.to_owned(),
                }
            } else {
                unknown()
            });
        }
        let (agent, tail) = match &levels[1..] {
            ["agents", agent, tail @ ..] => (*agent, tail),
            _ => return Err(unknown()),
        };
        let parsed = match tail {
            ["status"] => Topic::AgentStatus {
                agent: agent.to_owned(),
            },
            ["cameras", camera, "status"] => {
                validate_camera_id(camera).map_err(bad_id)?;
                Topic::CameraStatus {
                    agent: agent.to_owned(),
                    camera: (*camera).to_owned(),
                }
            }
            ["events"] => Topic::Events {
                agent: agent.to_owned(),
            },
            ["snapshots", event_id] => {
                validate_event_id(event_id).map_err(bad_id)?;
                Topic::Snapshot {
                    agent: agent.to_owned(),
                    event_id: (*event_id).to_owned(),
                }
            }
            ["clips", event_id] => {
                validate_event_id(event_id).map_err(bad_id)?;
                Topic::Clip {
                    agent: agent.to_owned(),
                    event_id: (*event_id).to_owned(),
                }
            }
            ["counts"] => Topic::Counts {
                agent: agent.to_owned(),
            },
            ["acks"] => Topic::Acks {
                agent: agent.to_owned(),
            },
            ["previews", camera] => {
                validate_camera_id(camera).map_err(bad_id)?;
                Topic::Preview {
                    agent: agent.to_owned(),
                    camera: (*camera).to_owned(),
                }
            }
            ["preview-requests"] => Topic::PreviewRequests {
                agent: agent.to_owned(),
            },
            ["analytics", camera] => {
                validate_camera_id(camera).map_err(bad_id)?;
                Topic::Analytics {
                    agent: agent.to_owned(),
                    camera: (*camera).to_owned(),
                }
            }
            ["analytics-state", camera] => {
                validate_camera_id(camera).map_err(bad_id)?;
                Topic::AnalyticsState {
                    agent: agent.to_owned(),
                    camera: (*camera).to_owned(),
                }
            }
            _ => return Err(unknown()),
        };
        validate_agent_id(agent).map_err(bad_id)?;
        Ok(parsed)
    }
}

/// The topics of one (validated) agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTopics {
    prefix: String,
}

impl AgentTopics {
    /// `{root}/v1/agents/{agent}/status` (retained; also the Last Will topic).
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/cameras/{camera}/status` (retained).
    pub fn camera_status(&self, camera: &str) -> Result<String, IdError> {
        validate_camera_id(camera)?;
        Ok(format!("{}/cameras/{camera}/status", self.prefix))
    }

    /// `{root}/v1/agents/{agent}/events`.
    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/snapshots/{event_id}`.
    pub fn snapshot(&self, event_id: &str) -> Result<String, IdError> {
        validate_event_id(event_id)?;
        Ok(format!("{}/snapshots/{event_id}", self.prefix))
    }

    /// `{root}/v1/agents/{agent}/clips/{event_id}` (every part of the event's clip).
    pub fn clip(&self, event_id: &str) -> Result<String, IdError> {
        validate_event_id(event_id)?;
        Ok(format!("{}/clips/{event_id}", self.prefix))
    }

    /// `{root}/v1/agents/{agent}/counts`.
    pub fn counts(&self) -> String {
        format!("{}/counts", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/acks` (the agent subscribes, the collector publishes).
    pub fn acks(&self) -> String {
        format!("{}/acks", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/previews/{camera}` (QoS 0, not retained).
    pub fn preview(&self, camera: &str) -> Result<String, IdError> {
        validate_camera_id(camera)?;
        Ok(format!("{}/previews/{camera}", self.prefix))
    }

    /// `{root}/v1/agents/{agent}/preview-requests` (the agent subscribes, the collector
    /// publishes; QoS 0).
    pub fn preview_requests(&self) -> String {
        format!("{}/preview-requests", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/analytics/{camera}` (retained; collectors publish).
    pub fn analytics(&self, camera: &str) -> Result<String, IdError> {
        validate_camera_id(camera)?;
        Ok(format!("{}/analytics/{camera}", self.prefix))
    }

    /// `{root}/v1/agents/{agent}/analytics/+` (what the agent subscribes to).
    pub fn analytics_filter(&self) -> String {
        format!("{}/analytics/+", self.prefix)
    }

    /// `{root}/v1/agents/{agent}/analytics-state/{camera}` (retained; the agent publishes).
    pub fn analytics_state(&self, camera: &str) -> Result<String, IdError> {
        validate_camera_id(camera)?;
        Ok(format!("{}/analytics-state/{camera}", self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_contract_names() {
        let t = Topics::default();
        let a = t.agent("site-1").unwrap();
        assert_eq!(a.status(), "ioc/v1/agents/site-1/status");
        assert_eq!(
            a.camera_status("cam_2").unwrap(),
            "ioc/v1/agents/site-1/cameras/cam_2/status"
        );
        assert_eq!(a.events(), "ioc/v1/agents/site-1/events");
        assert_eq!(
            a.snapshot("site-1-42").unwrap(),
            "ioc/v1/agents/site-1/snapshots/site-1-42"
        );
        assert_eq!(
            a.clip("site-1-42").unwrap(),
            "ioc/v1/agents/site-1/clips/site-1-42"
        );
        assert!(a.clip("site-1/42").is_err());
        assert_eq!(
            t.shared_filter("collectors", TopicKind::Clips).unwrap(),
            "$share/collectors/ioc/v1/agents/+/clips/+"
        );
        assert_eq!(a.counts(), "ioc/v1/agents/site-1/counts");
        assert_eq!(a.acks(), "ioc/v1/agents/site-1/acks");
        assert_eq!(
            t.shared_filter("collectors", TopicKind::Events).unwrap(),
            "$share/collectors/ioc/v1/agents/+/events"
        );
        assert_eq!(
            t.shared_filter("collectors", TopicKind::Snapshots).unwrap(),
            "$share/collectors/ioc/v1/agents/+/snapshots/+"
        );
        assert_eq!(
            t.shared_filter("collectors", TopicKind::Counts).unwrap(),
            "$share/collectors/ioc/v1/agents/+/counts"
        );
        assert_eq!(
            t.filter(TopicKind::CameraStatus),
            "ioc/v1/agents/+/cameras/+/status"
        );
        assert_eq!(t.filter(TopicKind::AgentStatus), "ioc/v1/agents/+/status");
        assert!(t.shared_filter("a/b", TopicKind::Events).is_err());
        assert!(t.shared_filter("#", TopicKind::Events).is_err());
        let t = Topics::new("acme/ioc-edge").unwrap();
        assert_eq!(
            t.agent("a").unwrap().events(),
            "acme/ioc-edge/v1/agents/a/events"
        );
        assert!(TopicKind::AgentStatus.retained() && TopicKind::CameraStatus.retained());
        assert!(!TopicKind::Events.retained() && TopicKind::Events.qos() == 1);
        assert!(!TopicKind::Previews.retained() && TopicKind::Previews.qos() == 0);
        assert_eq!(TopicKind::PreviewRequests.qos(), 0);
    }

    #[test]
    fn parse_round_trips() {
        for root in ["ioc", "acme/ioc", "x.y/Z_1"] {
            let t = Topics::new(root).unwrap();
            for topic in [
                Topic::AgentStatus { agent: "a".into() },
                Topic::CameraStatus {
                    agent: "a-1".into(),
                    camera: "c_9".into(),
                },
                Topic::Events {
                    agent: "0".repeat(64),
                },
                Topic::Snapshot {
                    agent: "a".into(),
                    event_id: format!("{}-18446744073709551615", "a".repeat(64)),
                },
                Topic::Clip {
                    agent: "a".into(),
                    event_id: "a-7".into(),
                },
                Topic::Counts { agent: "a".into() },
                Topic::Acks { agent: "a".into() },
                Topic::Preview {
                    agent: "a".into(),
                    camera: "gate".into(),
                },
                Topic::PreviewRequests { agent: "a".into() },
                Topic::Analytics {
                    agent: "a".into(),
                    camera: "gate".into(),
                },
                Topic::AnalyticsState {
                    agent: "a".into(),
                    camera: "gate".into(),
                },
            ] {
                let name = t.name(&topic).unwrap();
                assert_eq!(t.parse(&name).unwrap(), topic, "{name}");
                assert_eq!(t.parse(&name).unwrap().agent(), topic.agent());
            }
        }
    }

    #[test]
    fn parse_rejects() {
        let t = Topics::default();
        let err = |s: &str| t.parse(s).unwrap_err();
        assert!(matches!(
            err("other/v1/agents/a/events"),
            TopicError::WrongRoot { .. }
        ));
        assert!(matches!(
            err("iocx/v1/agents/a/events"),
            TopicError::WrongRoot { .. }
        ));
        assert!(matches!(err("ioc"), TopicError::WrongRoot { .. }));
        assert!(matches!(
            Topics::new("acme/ioc")
                .unwrap()
                .parse("ioc/v1/agents/a/events"),
            Err(TopicError::WrongRoot { .. })
        ));
        assert!(matches!(
            err("ioc/v2/agents/a/events"),
            TopicError::UnsupportedVersion { ref version, .. } if version == "v2"
        ));
        for unknown in [
            "ioc/",
            "ioc/v1",
            "ioc/v1/agents",
            "ioc/v1/agents/a",
            "ioc/v1/agents/a/bogus",
            "ioc/v1/agents/a/events/extra",
            "ioc/v1/agents/a/cameras/c",
            "ioc/v1/agents/a/snapshots",
            "ioc/v1/sites/a/events",
            "ioc/version/agents/a/events",
        ] {
            assert!(
                matches!(err(unknown), TopicError::Unknown { .. }),
                "{unknown}"
            );
        }
        for bad in [
            "ioc/v1/agents/A/events",
            "ioc/v1/agents//events",
            "ioc/v1/agents/+/events",
            "ioc/v1/agents/a.b/events",
            &format!("ioc/v1/agents/{}/events", "a".repeat(65)),
            "ioc/v1/agents/a/cameras/Cam/status",
            "ioc/v1/agents/a/snapshots/#",
            &format!("ioc/v1/agents/a/snapshots/{}", "e".repeat(129)),
        ] {
            assert!(matches!(err(bad), TopicError::BadId { .. }), "{bad}");
        }
        let msg = err("ioc/v1/agents/Site/events").to_string();
        assert_eq!(
            msg,
            "topic \"ioc/v1/agents/Site/events\": invalid agent id \"Site\": \
             must be 1-64 characters of a-z, 0-9, '-' or '_'"
        );
    }

    #[test]
    fn roots_and_ids() {
        for bad in ["", "/ioc", "ioc/", "a//b", "io+c", "#", "$SYS", "ioc v"] {
            assert!(Topics::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Topics::new("ioc").unwrap(), Topics::default());
        assert!(validate_agent_id("site_01-a").is_ok());
        assert!(validate_agent_id("").is_err());
        assert!(validate_agent_id("é").is_err());
        assert!(validate_camera_id(&"c".repeat(64)).is_ok());
        assert!(validate_camera_id(&"c".repeat(65)).is_err());
        assert!(validate_event_id(&"e".repeat(128)).is_ok());
        assert!(validate_event_id(&"e".repeat(129)).is_err());
        assert!(Topics::default().agent("Bad").is_err());
        assert!(Topics::default()
            .agent("a")
            .unwrap()
            .camera_status("x/y")
            .is_err());
    }
}
