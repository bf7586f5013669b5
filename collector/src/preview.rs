//! Camera previews (protocol `ioc.preview/1`): the latest picture of each camera that an
//! agent sent, in memory, and the requests that ask for a new one.
//!
//! Every collector subscribes to previews without a shared group: a preview is small, rare,
//! and must reach the collector whose console asked for it. Nothing is stored in the
//! database: a preview is worth something only now. Memory is bounded by
//! [`MAX_TOTAL_BYTES`] (the oldest pictures go first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ioc_protocol::{Preview, PreviewRequest, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;

/// Most bytes of JPEG kept over all cameras.
pub const MAX_TOTAL_BYTES: usize = 256 * 1024 * 1024;

/// One camera's latest preview.
#[derive(Debug, Clone)]
pub struct StoredPreview {
    /// Its header (when, size, detections, the request it answers).
    pub header: Preview,
    /// The JPEG.
    pub jpeg: Arc<Vec<u8>>,
    /// When this collector received it (ms since the Unix epoch).
    pub received_at_ms: i64,
}

#[derive(Default)]
struct Inner {
    latest: Mutex<HashMap<(String, String), StoredPreview>>,
    arrived: Notify,
}

/// The previews this collector has received, and a way to ask for more.
#[derive(Clone)]
pub struct Previews {
    inner: Arc<Inner>,
    client: AsyncClient,
    topics: Topics,
}

/// Why a preview could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The request could not be queued (the broker connection is gone).
    #[error("cannot ask the agent: {0}")]
    Request(String),
    /// An id that cannot be part of a topic.
    #[error("{0}")]
    BadId(String),
}

impl std::fmt::Debug for Previews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.latest.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("Previews").field("cameras", &n).finish()
    }
}

impl Previews {
    /// Previews requested through `client` (the ingest's connection) under `topics`.
    pub fn new(client: AsyncClient, topics: Topics) -> Self {
        Self {
            inner: Arc::default(),
            client,
            topics,
        }
    }

    /// Keeps a received preview of `agent`'s camera (the header already checked).
    pub fn put(&self, agent: &str, header: Preview, jpeg: Vec<u8>, received_at_ms: i64) {
        let mut latest = self.inner.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.insert(
            (agent.to_owned(), header.camera.clone()),
            StoredPreview {
                header,
                jpeg: Arc::new(jpeg),
                received_at_ms,
            },
        );
        let mut total: usize = latest.values().map(|p| p.jpeg.len()).sum();
        while total > MAX_TOTAL_BYTES {
            let Some(oldest) = latest
                .iter()
                .min_by_key(|(_, p)| p.received_at_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(p) = latest.remove(&oldest) {
                total -= p.jpeg.len();
            }
        }
        drop(latest);
        self.inner.arrived.notify_waiters();
    }

    /// The latest preview of `agent`'s `camera`, if one arrived.
    pub fn get(&self, agent: &str, camera: &str) -> Option<StoredPreview> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(agent.to_owned(), camera.to_owned()))
            .cloned()
    }

    /// Asks `agent` for a current picture of `camera` and waits up to `wait` for the answer
    /// to `request_id`; `Ok(None)` when none came in time (agent offline, camera without a
    /// picture yet, previews off there).
    pub async fn request(
        &self,
        agent: &str,
        camera: &str,
        request_id: &str,
        wait: Duration,
    ) -> Result<Option<StoredPreview>, PreviewError> {
        let topic = self
            .topics
            .agent(agent)
            .map_err(|e| PreviewError::BadId(e.to_string()))?
            .preview_requests();
        let req = PreviewRequest::new(camera, Some(request_id.to_owned()));
        let payload = ioc_protocol::encode(&req).map_err(|e| PreviewError::BadId(e.to_string()))?;
        let answered = |p: &StoredPreview| p.header.request_id.as_deref() == Some(request_id);
        let until = tokio::time::Instant::now() + wait;
        // Registered before the request goes out, so an answer that comes at once is seen.
        let arrived = self.inner.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        // The client's queue may be full while the broker is away: never wait past `wait`.
        match tokio::time::timeout_at(
            until,
            self.client.publish(topic, QoS::AtMostOnce, false, payload),
        )
        .await
        {
            Ok(r) => r.map_err(|e| PreviewError::Request(e.to_string()))?,
            Err(_) => return Ok(None),
        }
        loop {
            if let Some(p) = self.get(agent, camera).filter(answered) {
                return Ok(Some(p));
            }
            if tokio::time::timeout_at(until, arrived.as_mut())
                .await
                .is_err()
            {
                return Ok(None);
            }
            arrived.set(self.inner.arrived.notified());
            arrived.as_mut().enable();
        }
    }
}
