//! The live stream's fan-out: every incident change and health change is broadcast to the
//! console's server-sent-event connections. A slow client that falls behind gets a
//! `resync` message and reloads; it never slows ingest.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::incident::Change;

/// One message of the live stream: its SSE event name and JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// `incident` or `health`.
    pub event: &'static str,
    /// JSON.
    pub data: Arc<str>,
}

/// The broadcaster; clones share it.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Live>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(1024)
    }
}

impl Hub {
    /// A hub that buffers `capacity` messages per slow client.
    pub fn new(capacity: usize) -> Self {
        Hub {
            tx: broadcast::channel(capacity.max(16)).0,
        }
    }

    /// A new listener.
    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.tx.subscribe()
    }

    /// Broadcasts incident changes.
    pub fn incidents(&self, changes: &[Change]) {
        for c in changes {
            self.send("incident", c);
        }
    }

    /// Tells clients that agent or camera health changed (they refetch it).
    pub fn health(&self) {
        self.send("health", &serde_json::json!({}));
    }

    fn send<T: Serialize>(&self, event: &'static str, v: &T) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(v) {
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(Live {
                event,
                data: json.into(),
            });
        }
    }
}
