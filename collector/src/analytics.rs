//! Camera analytics pushed from the center to the agents (protocol `ioc.analytics/1`), and
//! what each agent made of them (`ioc.analytics-state/1`).
//!
//! The versions live in the store (who changed what, in the audit trail too); the push goes
//! out retained, QoS 1, so an agent that was away gets the newest when it connects. The
//! agents' states are retained too: every collector subscribes to them without a shared
//! group and keeps the latest of each camera in memory (after a restart the broker delivers
//! them again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ioc_protocol::{AnalyticsPush, AnalyticsState, Timestamp, Topics};
use rumqttc::{AsyncClient, QoS};

/// Most camera states kept (a site cannot grow the collector's memory without bound by
/// inventing cameras).
pub const MAX_STATES: usize = 10_000;
/// How long a push may wait for room in the MQTT client's queue.
const PUSH_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest state payload accepted (it carries the camera's analytics section).
pub const MAX_STATE_BYTES: usize = 2 * ioc_protocol::analytics::MAX_ANALYTICS_BYTES;

/// Pushes analytics and keeps the agents' states.
#[derive(Clone)]
pub struct Analytics {
    states: Arc<Mutex<HashMap<(String, String), AnalyticsState>>>,
    client: AsyncClient,
    topics: Topics,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.states.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("Analytics").field("states", &n).finish()
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

    /// Keeps an agent's state of one camera (checked; `camera` as in its topic). False when
    /// it is a new camera and [`MAX_STATES`] are kept already.
    pub fn put_state(&self, agent: &str, state: AnalyticsState) -> bool {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let key = (agent.to_owned(), state.camera.clone());
        if states.len() >= MAX_STATES && !states.contains_key(&key) {
            return false;
        }
        states.insert(key, state);
        true
    }

    /// The latest state `agent` reported for `camera`.
    pub fn state(&self, agent: &str, camera: &str) -> Option<AnalyticsState> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(agent.to_owned(), camera.to_owned()))
            .cloned()
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
    fn states_are_kept_per_camera_and_bounded() {
        let (client, _eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 10);
        let a = Analytics::new(client, Topics::default());
        let state = |camera: &str, v: u64| AnalyticsState {
            schema: ioc_protocol::ANALYTICS_STATE_SCHEMA.into(),
            camera: camera.into(),
            running_version: Some(v),
            refused: None,
            analytics: None,
            at: Timestamp::now(),
        };
        assert!(a.put_state("s", state("gate", 1)));
        assert!(a.put_state("s", state("gate", 2)));
        assert_eq!(a.state("s", "gate").unwrap().running_version, Some(2));
        assert!(a.state("other", "gate").is_none());
        for i in 1..MAX_STATES {
            assert!(a.put_state("s", state(&format!("c{i}"), 1)));
        }
        // Full: a new camera is not kept, a known one still is.
        assert!(!a.put_state("s", state("one-too-many", 1)));
        assert!(a.put_state("s", state("gate", 3)));
    }
}
