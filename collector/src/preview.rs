//! Camera previews (protocol `ioc.preview/1`): the latest picture of each camera that an
//! agent sent, in memory, and the requests that ask for a new one.
//!
//! Every collector subscribes to previews without a shared group: a preview is small, rare,
//! and must reach the collector whose console asked for it. Nothing is stored in the
//! database: a preview is worth something only now. Memory is bounded by
//! [`MAX_TOTAL_BYTES`] (JPEGs and headers; the oldest pictures go first) and by
//! [`MAX_CAMERAS_PER_AGENT`] (an agent inventing cameras fills only its own room).
//!
//! Requests are coalesced per camera: while one asked less than [`ASK_EVERY`] ago waits for
//! its answer, another operator's request waits for the same picture instead of sending
//! again (the agent renders at most one a second per camera anyway), and every waiter takes
//! the first picture of that camera that arrives after the request it waits on, whichever
//! request it answers: concurrent requests never lose their answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ioc_protocol::{Preview, PreviewRequest, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;

/// Most bytes (JPEGs and headers) kept over all cameras.
pub const MAX_TOTAL_BYTES: usize = 256 * 1024 * 1024;
/// Most cameras' previews kept per agent (a site box runs 1–16 cameras).
pub const MAX_CAMERAS_PER_AGENT: usize = 64;
/// A camera is asked at most this often; requests in between wait for the same answer.
pub const ASK_EVERY: Duration = Duration::from_secs(1);

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

impl StoredPreview {
    /// What it costs to keep: the JPEG and its header (strings and objects).
    fn cost(&self) -> usize {
        let h = &self.header;
        std::mem::size_of::<Self>()
            + self.jpeg.len()
            + h.camera.len()
            + h.request_id.as_ref().map_or(0, String::len)
            + h.objects.len() * std::mem::size_of::<ioc_protocol::PreviewObject>()
            + h.objects.iter().map(|o| o.class.len()).sum::<usize>()
    }
}

#[derive(Default)]
struct Inner {
    latest: Mutex<Latest>,
    /// When each camera was last asked (ms since the Unix epoch).
    asked: Mutex<HashMap<(String, String), i64>>,
    arrived: Notify,
}

#[derive(Default)]
struct Latest {
    map: HashMap<(String, String), StoredPreview>,
    /// Cost of everything in `map`, kept as it changes (no scan per preview).
    bytes: usize,
    /// Cameras kept per agent.
    per_agent: HashMap<String, usize>,
}

impl Latest {
    fn remove(&mut self, key: &(String, String)) {
        if let Some(p) = self.map.remove(key) {
            self.bytes -= p.cost();
            if let Some(n) = self.per_agent.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.per_agent.remove(&key.0);
                }
            }
        }
    }
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
        let n = self.inner.latest.lock().map(|l| l.map.len()).unwrap_or(0);
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

    /// Keeps a received preview of `agent`'s camera (the header already checked). False
    /// when it is a new camera of an agent that has [`MAX_CAMERAS_PER_AGENT`] kept already.
    pub fn put(&self, agent: &str, header: Preview, jpeg: Vec<u8>, received_at_ms: i64) -> bool {
        let key = (agent.to_owned(), header.camera.clone());
        let p = StoredPreview {
            header,
            jpeg: Arc::new(jpeg),
            received_at_ms,
        };
        let mut latest = self.inner.latest.lock().unwrap_or_else(|p| p.into_inner());
        let known = latest.map.contains_key(&key);
        if !known && latest.per_agent.get(agent).copied().unwrap_or(0) >= MAX_CAMERAS_PER_AGENT {
            return false;
        }
        latest.remove(&key);
        latest.bytes += p.cost();
        *latest.per_agent.entry(key.0.clone()).or_default() += 1;
        latest.map.insert(key, p);
        // Over the budget (rare: it is far above what honest sites send): the oldest go.
        while latest.bytes > MAX_TOTAL_BYTES {
            let Some(oldest) = latest
                .map
                .iter()
                .min_by_key(|(_, p)| p.received_at_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            latest.remove(&oldest);
        }
        drop(latest);
        self.inner.arrived.notify_waiters();
        true
    }

    /// The latest preview of `agent`'s `camera`, if one arrived.
    pub fn get(&self, agent: &str, camera: &str) -> Option<StoredPreview> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&(agent.to_owned(), camera.to_owned()))
            .cloned()
    }

    /// Asks `agent` for a current picture of `camera` (unless it was asked less than
    /// [`ASK_EVERY`] ago) and waits up to `wait` for the first picture received since that
    /// request; `Ok(None)` when none came in time (agent offline, camera without a picture
    /// yet, previews off there).
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
        let until = tokio::time::Instant::now() + wait;
        // Registered before the request goes out, so an answer that comes at once is seen.
        let arrived = self.inner.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let now = crate::store::now_ms();
        let key = (agent.to_owned(), camera.to_owned());
        let since = {
            let mut asked = self.inner.asked.lock().unwrap_or_else(|p| p.into_inner());
            let every = ASK_EVERY.as_millis() as i64;
            match asked.get(&key) {
                Some(&at) if now - at < every => Some(at),
                _ => {
                    asked.retain(|_, at| now - *at < 10 * every);
                    asked.insert(key, now);
                    None
                }
            }
        };
        // A picture received since the request this one waits on answers it (received
        // times are this collector's clock, like `now`).
        let since = match since {
            Some(at) => at,
            None => {
                // The client's queue may be full while the broker is away: never wait past
                // `wait`.
                match tokio::time::timeout_at(
                    until,
                    self.client.publish(topic, QoS::AtMostOnce, false, payload),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| PreviewError::Request(e.to_string()))?,
                    Err(_) => return Ok(None),
                }
                now
            }
        };
        let answered = |p: &StoredPreview| {
            p.received_at_ms >= since || p.header.request_id.as_deref() == Some(request_id)
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn previews() -> (Previews, rumqttc::EventLoop) {
        let (client, eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 64);
        (Previews::new(client, Topics::default()), eventloop)
    }

    fn header(camera: &str, request_id: Option<&str>) -> Preview {
        Preview {
            schema: ioc_protocol::PREVIEW_SCHEMA.into(),
            camera: camera.into(),
            taken_at: ioc_protocol::Timestamp::now(),
            width: 4,
            height: 4,
            request_id: request_id.map(str::to_owned),
            objects: Vec::new(),
        }
    }

    #[test]
    fn an_agent_inventing_cameras_fills_only_its_own_room() {
        let (p, _el) = previews();
        for i in 0..MAX_CAMERAS_PER_AGENT {
            assert!(p.put("evil", header(&format!("c{i}"), None), vec![0; 8], 1));
        }
        assert!(!p.put("evil", header("one-more", None), vec![0; 8], 1));
        assert!(
            p.put("evil", header("c0", None), vec![1; 8], 2),
            "a known camera"
        );
        assert!(p.put("honest", header("gate", None), vec![0; 8], 3));
        assert_eq!(p.get("evil", "c0").unwrap().jpeg[0], 1);
        let l = p.inner.latest.lock().unwrap();
        let cost: usize = l.map.values().map(StoredPreview::cost).sum();
        assert_eq!(l.bytes, cost, "the running total is exact");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_camera_all_get_the_answer() {
        let (p, _el) = previews();
        let ask = |id: &'static str| {
            let p = p.clone();
            tokio::spawn(async move {
                p.request("s", "gate", id, Duration::from_secs(5))
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (ask("A"), ask("B"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The second request was coalesced into the first: one ask, one answer for both.
        assert_eq!(p.inner.asked.lock().unwrap().len(), 1);
        let now = crate::store::now_ms();
        p.put("s", header("gate", Some("A")), vec![7; 8], now);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a.unwrap().jpeg[0], 7);
        assert_eq!(
            b.unwrap().jpeg[0],
            7,
            "B's request is answered by A's picture"
        );
    }
}
