//! Camera analytics pushed from the center to the agents (protocol `ioc.analytics/1`), and
//! what each agent made of them (`ioc.analytics-state/1`).
//!
//! The versions live in the store (who changed what, in the audit trail too); the push goes
//! out retained, QoS 1, so an agent that was away gets the newest when it connects. The
//! agents' states are retained too: every collector subscribes to them without a shared
//! group and keeps the latest of each camera in memory (after a restart the broker delivers
//! them again).
//!
//! States are kept as the checked payload's bytes (a parsed JSON value costs ~16× its text)
//! and parsed when asked for, within budgets **per agent** (cameras and bytes) and in all:
//! an agent inventing cameras or sending large states fills its own budget, never another
//! site's, and a collector restarting under a broker full of retained states stays bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ioc_protocol::{AnalyticsPush, AnalyticsState, Timestamp, Topics};
use rumqttc::{AsyncClient, QoS};

/// Most camera states kept per agent (a site box runs 1–16 cameras).
pub const MAX_CAMERAS_PER_AGENT: usize = 64;
/// Most state bytes kept per agent.
pub const MAX_BYTES_PER_AGENT: usize = 4 << 20;
/// Most state bytes kept in all.
pub const MAX_BYTES: usize = 256 << 20;
/// How long a push may wait for room in the MQTT client's queue.
const PUSH_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest state payload accepted (it carries the camera's analytics section).
pub const MAX_STATE_BYTES: usize = 2 * ioc_protocol::analytics::MAX_ANALYTICS_BYTES;

/// Pushes analytics and keeps the agents' states.
#[derive(Clone)]
pub struct Analytics {
    states: Arc<Mutex<States>>,
    client: AsyncClient,
    topics: Topics,
}

/// The kept states: per agent, per camera, the payload.
#[derive(Default)]
struct States {
    agents: HashMap<String, AgentStates>,
    bytes: usize,
}

#[derive(Default)]
struct AgentStates {
    cameras: HashMap<String, Box<[u8]>>,
    bytes: usize,
}

/// Why a state was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotKept {
    /// The agent has [`MAX_CAMERAS_PER_AGENT`] cameras' states already.
    Cameras,
    /// It would take the agent past [`MAX_BYTES_PER_AGENT`].
    AgentBytes,
    /// It would take the collector past [`MAX_BYTES`].
    Bytes,
}

impl std::fmt::Display for NotKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotKept::Cameras => "the agent has the most cameras' states kept already",
            NotKept::AgentBytes => "the agent's states would take more than its byte budget",
            NotKept::Bytes => {
                "the states of all agents would take more than the collector's budget"
            }
        })
    }
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, bytes) = self
            .states
            .lock()
            .map(|s| (s.agents.values().map(|a| a.cameras.len()).sum(), s.bytes))
            .unwrap_or((0, 0));
        f.debug_struct("Analytics")
            .field("states", &n)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Analytics {
    /// Pushes through `client` (the ingest's connection) under `topics`.
    pub fn new(client: AsyncClient, topics: Topics) -> Self {
        Self {
            states: Arc::default(),
            client,
            topics,
        }
    }

    /// Keeps `payload`, an agent's checked state of `camera` (as in its topic), in place of
    /// the one before, within the budgets.
    pub fn put_state(&self, agent: &str, camera: &str, payload: &[u8]) -> Result<(), NotKept> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let States { agents, bytes } = &mut *states;
        let a = agents.entry(agent.to_owned()).or_default();
        let old = a.cameras.get(camera).map_or(0, |p| p.len());
        let refused = if old == 0 && a.cameras.len() >= MAX_CAMERAS_PER_AGENT {
            Some(NotKept::Cameras)
        } else if a.bytes - old + payload.len() > MAX_BYTES_PER_AGENT {
            Some(NotKept::AgentBytes)
        } else if *bytes - old + payload.len() > MAX_BYTES {
            Some(NotKept::Bytes)
        } else {
            None
        };
        if let Some(r) = refused {
            if a.cameras.is_empty() {
                agents.remove(agent);
            }
            return Err(r);
        }
        a.bytes = a.bytes - old + payload.len();
        *bytes = *bytes - old + payload.len();
        a.cameras.insert(camera.to_owned(), payload.into());
        Ok(())
    }

    /// Forgets `agent`'s state of `camera` (its retained state was cleared).
    pub fn clear_state(&self, agent: &str, camera: &str) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let States { agents, bytes } = &mut *states;
        if let Some(a) = agents.get_mut(agent) {
            if let Some(p) = a.cameras.remove(camera) {
                a.bytes -= p.len();
                *bytes -= p.len();
            }
            if a.cameras.is_empty() {
                agents.remove(agent);
            }
        }
    }

    /// The latest state `agent` reported for `camera`.
    pub fn state(&self, agent: &str, camera: &str) -> Option<AnalyticsState> {
        let payload = {
            let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            states.agents.get(agent)?.cameras.get(camera)?.clone()
        };
        // Checked when it was kept.
        ioc_protocol::parse::<AnalyticsState>(&payload).ok()
    }

    /// Publishes `analytics` as `version` of `agent`'s `camera` (retained, QoS 1; queued by
    /// the MQTT client while the broker is away).
    pub async fn push(
        &self,
        agent: &str,
        camera: &str,
        version: u64,
        analytics: serde_json::Value,
        changed_by: &str,
    ) -> Result<(), String> {
        let topic = self
            .topics
            .agent(agent)
            .and_then(|a| a.analytics(camera))
            .map_err(|e| e.to_string())?;
        let push = AnalyticsPush {
            schema: ioc_protocol::ANALYTICS_SCHEMA.into(),
            camera: camera.to_owned(),
            version,
            analytics,
            changed_by: changed_by.to_owned(),
            changed_at: Timestamp::now(),
        };
        let payload = ioc_protocol::encode(&push).map_err(|e| e.to_string())?;
        // Queued by the client while the broker is away, unless its queue is full.
        tokio::time::timeout(
            PUSH_QUEUE_WAIT,
            self.client.publish(topic, QoS::AtLeastOnce, true, payload),
        )
        .await
        .map_err(|_| {
            format!(
                "stored as version {version}, but the broker connection is not taking messages; \
                 save again when it is back"
            )
        })?
        .map_err(|e| format!("stored as version {version}, but cannot queue the push: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_kept_per_camera_within_each_agents_budget() {
        let (client, _eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 10);
        let a = Analytics::new(client, Topics::default());
        let state = |camera: &str, v: u64| {
            ioc_protocol::encode(&AnalyticsState {
                schema: ioc_protocol::ANALYTICS_STATE_SCHEMA.into(),
                camera: camera.into(),
                running_version: Some(v),
                refused: None,
                analytics: None,
                at: Timestamp::now(),
            })
            .unwrap()
        };
        a.put_state("s", "gate", &state("gate", 1)).unwrap();
        a.put_state("s", "gate", &state("gate", 2)).unwrap();
        assert_eq!(a.state("s", "gate").unwrap().running_version, Some(2));
        assert!(a.state("other", "gate").is_none());
        for i in 1..MAX_CAMERAS_PER_AGENT {
            let c = format!("c{i}");
            a.put_state("s", &c, &state(&c, 1)).unwrap();
        }
        // Full for this agent: a new camera is not kept, a known one still is, and another
        // site is not locked out.
        let extra = state("one-too-many", 1);
        assert_eq!(
            a.put_state("s", "one-too-many", &extra),
            Err(NotKept::Cameras)
        );
        a.put_state("s", "gate", &state("gate", 3)).unwrap();
        a.put_state("other", "gate", &state("gate", 1)).unwrap();
        // Bytes: large states fill the agent's own budget only.
        let big = vec![b' '; MAX_BYTES_PER_AGENT / 3 + 1];
        a.put_state("big", "a", &big).unwrap();
        a.put_state("big", "b", &big).unwrap();
        assert_eq!(a.put_state("big", "c", &big), Err(NotKept::AgentBytes));
        a.put_state("big", "a", &big).unwrap(); // a replacement fits in its own room
        a.clear_state("big", "a");
        a.put_state("big", "c", &big).unwrap();
        a.put_state("third", "gate", &state("gate", 1)).unwrap();
    }
}
