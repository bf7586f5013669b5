//! The MQTT publisher: drains the [`Outbox`] to the broker and deletes entries only on the
//! collector's acknowledgement.
//!
//! # Contract
//! - rumqttc 0.25, MQTT 3.1.1, QoS 1 for everything of the outbox, persistent session (`clean_session = false`)
//!   with a stable client id (default: the agent id), so acks published to `.../acks` while
//!   the agent was away are delivered when it comes back.
//! - Last Will: a retained `AgentStatus` `offline` on `.../status` (built at spawn time). After
//!   every ConnAck a retained `online` is published; on graceful shutdown a retained `offline`.
//! - Outbox entries go out in append order, at most `max_in_flight` unacknowledged at a time.
//!   An entry the **collector** has not acknowledged on `.../acks` within `ack_timeout_sec` is
//!   sent again (the broker's PUBACK only means the broker has it, and a broker killed with -9
//!   loses it); after every reconnect everything unacknowledged is sent again, in order.
//!   Duplicates are expected: the collector stores by `(agent, seq)`.
//! - Camera statuses are retained and not queued: only the latest per camera matters, and it
//!   is re-published after every reconnect.
//! - Camera previews are the exception to QoS 1: requests on `.../preview-requests` (QoS 0,
//!   only collectors write them) are handed to the agent's previewer through a small bounded
//!   channel (more are dropped), and its answers go out at QoS 0 only while connected
//!   ([`PublisherHandle::publish_preview`]): a picture is worth something only now.
//!
//! # Tasks and blocking
//! `mqtt-eventloop` polls rumqttc's `EventLoop` and does nothing else that can block: it
//! forwards acks over an unbounded channel (acks are small and rare: one per collector batch)
//! and signals connection changes through a `watch`. `outbox-sender` publishes; `outbox-acker`
//! applies acks. Outbox calls (SQLite, fsync) run in `spawn_blocking`.
//!
//! # Failures
//! The event loop reconnects forever, with exponential backoff from 100 ms to
//! `reconnect_max_sec` and jitter. Each failure is classified by `ioc-base` (the collector
//! uses the same classifier and codes) ([`FailureKind`]: authentication
//! refused, TLS, connection refused, unreachable, connection lost), logged as
//! `MqttConnectFailed` with a stable `error_code`, and kept in [`PublisherStats::last_error`].
//! The password is never logged.

use std::collections::HashMap;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use ioc_base::mqtt::FailureKind;
pub use ioc_base::tls::TlsConfig;
use ioc_base::tls::TlsError;
use ioc_base::{Backoff, Problem, Secret};
use ioc_protocol::{
    AgentState, AgentStatus, AgentTopics, AnalyticsState, CameraStatus, Counts, Timestamp, Topics,
};
use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, LastWill, MqttOptions, Packet,
    QoS, TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::store::{Entry, EntryKind, Outbox, OutboxError};

/// Broker connection settings (the agent config's `[mqtt]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port; default 1883 (8883 is usual with `tls`).
    #[serde(default = "default_port")]
    pub port: u16,
    /// MQTT client id; default the agent id. Must be stable: the broker keeps the session
    /// (subscriptions, queued acks) under it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name (mosquitto's ACL gives agent `a1` user `a1` its own topics).
    #[serde(default)]
    pub username: Option<String>,
    /// Password; never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Topic root; default `ioc`.
    #[serde(default = "default_root")]
    pub topic_root: String,
    /// MQTT keep-alive; default 30 s.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_sec: u64,
    /// TLS (rustls, ring provider); plain TCP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Largest MQTT packet sent or accepted; default 4 MiB (snapshots go in one packet).
    /// The collector's key has the same name; `max_packet_size` is its old name here.
    #[serde(default = "default_max_packet", alias = "max_packet_size")]
    pub max_packet_bytes: usize,
    /// Re-send an entry the collector has not acknowledged after this long; default 30 s.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_sec: f64,
    /// Most outbox entries sent and not yet acknowledged; default 64.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: u16,
    /// Longest wait between reconnect attempts; default 30 s.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_sec: f64,
    /// TCP + TLS + CONNECT must finish within this; default 10 s.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_sec: u64,
}

fn default_port() -> u16 {
    1883
}
fn default_root() -> String {
    ioc_protocol::DEFAULT_ROOT.to_owned()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_max_packet() -> usize {
    4 * 1024 * 1024
}
fn default_ack_timeout() -> f64 {
    30.0
}
fn default_in_flight() -> u16 {
    64
}
fn default_reconnect_max() -> f64 {
    30.0
}
fn default_connect_timeout() -> u64 {
    10
}

impl MqttConfig {
    /// Settings for `host:port` with every default.
    pub fn new(host: &str, port: u16) -> Self {
        MqttConfig {
            host: host.to_owned(),
            port,
            client_id: None,
            username: None,
            password: None,
            topic_root: default_root(),
            keep_alive_sec: default_keep_alive(),
            tls: None,
            max_packet_bytes: default_max_packet(),
            ack_timeout_sec: default_ack_timeout(),
            max_in_flight: default_in_flight(),
            reconnect_max_sec: default_reconnect_max(),
            connect_timeout_sec: default_connect_timeout(),
        }
    }

    /// Checks what serde does not; returns every problem, keyed `mqtt.<key>`.
    pub fn validate(&self) -> Result<(), PublisherError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem::new(format!("mqtt.{key}"), message))
        };
        if self.host.trim().is_empty() {
            bad("host", "must not be empty".to_owned());
        }
        if let Err(e) = Topics::new(&self.topic_root) {
            bad("topic_root", format!("{e}"));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                bad("client_id", format!("{id:?} must be 1-128 bytes"));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            bad("password", "set without mqtt.username".to_owned());
        }
        if !(self.ack_timeout_sec.is_finite() && self.ack_timeout_sec > 0.0) {
            bad(
                "ack_timeout_sec",
                format!(
                    "{} must be a positive number of seconds",
                    self.ack_timeout_sec
                ),
            );
        }
        if !(self.reconnect_max_sec.is_finite() && self.reconnect_max_sec >= 0.1) {
            bad(
                "reconnect_max_sec",
                format!("{} must be at least 0.1", self.reconnect_max_sec),
            );
        }
        if self.max_in_flight == 0 {
            bad("max_in_flight", "must be at least 1".to_owned());
        }
        if self.max_packet_bytes < 64 * 1024 {
            bad(
                "max_packet_bytes",
                format!(
                    "{} is too small for snapshots (at least 65536)",
                    self.max_packet_bytes
                ),
            );
        }
        if self.connect_timeout_sec == 0 {
            bad("connect_timeout_sec", "must be at least 1".to_owned());
        }
        if let Some(p) = self.tls.as_ref().and_then(TlsConfig::problem) {
            bad("tls", p.to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PublisherError::Config(problems))
        }
    }
}

/// Why the publisher could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    /// Config values are wrong.
    #[error("invalid mqtt config: {}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<Problem>),
    /// The TLS files cannot be used.
    #[error("mqtt.tls: {0}")]
    Tls(#[from] TlsError),
    /// The agent id cannot name topics.
    #[error("agent id: {0}")]
    AgentId(#[from] ioc_protocol::IdError),
    /// A status payload failed validation.
    #[error("cannot encode status: {0}")]
    Encode(#[from] ioc_protocol::ProtocolError),
}

/// A snapshot of the publisher's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Connected to the broker now.
    pub connected: bool,
    /// Successful connections (ConnAcks) so far.
    pub connects: u64,
    /// Outbox entries published for the first time (in this process).
    pub published: u64,
    /// Outbox entries published again (ack timeout or reconnect).
    pub resent: u64,
    /// Outbox entries deleted by the collector's acks.
    pub acked: u64,
    /// Ack messages that could not be decoded.
    pub bad_acks: u64,
    /// The last connection failure, for people.
    pub last_error: Option<String>,
    /// Its kind.
    pub last_failure: Option<FailureKind>,
}

#[derive(Default)]
struct Shared {
    connected: AtomicBool,
    connects: AtomicU64,
    published: AtomicU64,
    resent: AtomicU64,
    acked: AtomicU64,
    bad_acks: AtomicU64,
    last: Mutex<Option<(FailureKind, String)>>,
    /// Latest retained payloads by topic (camera statuses, analytics states) and whether they
    /// still need publishing.
    retained: Mutex<HashMap<String, (Vec<u8>, bool)>>,
}

/// Starts the publisher tasks.
pub struct Publisher;

impl Publisher {
    /// Validates `cfg`, then spawns the publisher's tasks on the current tokio runtime. They
    /// run until `shutdown` turns `true` (or its sender is dropped); then the publisher sends a
    /// retained `offline` status and disconnects. `name` (the site's name for people) and
    /// `cameras` go into the agent status.
    pub fn spawn(
        outbox: Outbox,
        cfg: MqttConfig,
        agent_id: &str,
        name: Option<String>,
        version: &str,
        cameras: Vec<String>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<PublisherHandle, PublisherError> {
        cfg.validate()?;
        let topics = Topics::new(&cfg.topic_root)
            .map_err(|e| {
                PublisherError::Config(vec![Problem::new("mqtt.topic_root", e.to_string())])
            })?
            .agent(agent_id)?;
        let client_id = cfg.client_id.clone().unwrap_or_else(|| agent_id.to_owned());
        let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
        opts.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(cfg.keep_alive_sec.max(5)))
            .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes)
            .set_inflight(cfg.max_in_flight.saturating_add(16));
        if let Some(user) = &cfg.username {
            let password = cfg
                .password
                .as_ref()
                .map(Secret::expose)
                .unwrap_or_default();
            opts.set_credentials(user.clone(), password);
        }
        let mut will = AgentStatus::new(
            AgentState::Offline,
            version,
            cameras.clone(),
            Timestamp::now(),
        );
        will.name = name.clone();
        opts.set_last_will(LastWill::new(
            topics.status(),
            ioc_protocol::encode(&will)?,
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(tls) = &cfg.tls {
            let tls = ioc_base::tls::client_config(tls)?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
        }
        let cap = usize::from(cfg.max_in_flight) * 2 + 16;
        let (client, mut eventloop) = AsyncClient::new(opts, cap);
        eventloop
            .network_options
            .set_connection_timeout(cfg.connect_timeout_sec);

        let shared = Arc::new(Shared::default());
        let wake = Arc::new(Notify::new());
        let (conn_tx, conn_rx) = watch::channel(0u64);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        // Preview requests are small and answered within a second: a few waiting is plenty,
        // more are dropped (the collector asks again).
        let (preview_tx, preview_rx) = std::sync::mpsc::sync_channel(PREVIEW_REQUESTS_QUEUED);
        let (analytics_tx, analytics_rx) = std::sync::mpsc::sync_channel(ANALYTICS_QUEUED);
        let ctx = Ctx {
            outbox: outbox.clone(),
            cfg: Arc::new(cfg),
            topics: Arc::new(topics),
            shared: shared.clone(),
            wake: wake.clone(),
            version: version.to_owned(),
            name,
            cameras,
        };
        let tasks = vec![
            spawn_named(
                "mqtt-eventloop",
                run_eventloop(
                    ctx.clone(),
                    eventloop,
                    conn_tx,
                    Inbound {
                        acks: ack_tx,
                        previews: preview_tx,
                        analytics: analytics_tx,
                    },
                    shutdown.clone(),
                ),
            ),
            spawn_named("outbox-acker", run_acker(ctx.clone(), ack_rx)),
            spawn_named(
                "outbox-sender",
                run_sender(ctx.clone(), client.clone(), conn_rx, shutdown),
            ),
        ];
        Ok(PublisherHandle {
            ctx,
            client,
            preview_requests: Mutex::new(Some(preview_rx)),
            analytics_pushes: Mutex::new(Some(analytics_rx)),
            tasks: Mutex::new(tasks),
        })
    }
}

fn spawn_named<F>(name: &'static str, f: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tracing::debug!(task = name, "started");
        f.await;
        tracing::debug!(task = name, "stopped");
    })
}

/// Handle to running publisher tasks.
pub struct PublisherHandle {
    ctx: Ctx,
    client: AsyncClient,
    preview_requests: Mutex<Option<std::sync::mpsc::Receiver<Vec<u8>>>>,
    analytics_pushes: Mutex<Option<AnalyticsPushes>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// `(camera, payload)` of each analytics push received, for the agent.
pub type AnalyticsPushes = std::sync::mpsc::Receiver<(String, Vec<u8>)>;

/// Preview requests waiting for the agent to take them; more are dropped.
const PREVIEW_REQUESTS_QUEUED: usize = 8;

/// Where the event loop hands what the collector sends.
struct Inbound {
    acks: mpsc::UnboundedSender<Vec<u8>>,
    previews: std::sync::mpsc::SyncSender<Vec<u8>>,
    analytics: std::sync::mpsc::SyncSender<(String, Vec<u8>)>,
}

/// Pushed analytics waiting for the agent (one per camera at most, normally).
const ANALYTICS_QUEUED: usize = 64;

impl PublisherHandle {
    /// Tells the sender that entries were appended to the outbox.
    pub fn notify(&self) {
        self.ctx.wake.notify_one();
    }

    /// The outbox it drains.
    pub fn outbox(&self) -> &Outbox {
        &self.ctx.outbox
    }

    /// Appends a counts message to the outbox (durably; blocking work runs on the blocking
    /// pool) and wakes the sender. Returns its seq.
    pub async fn publish_counts(
        &self,
        build: impl FnOnce(u64) -> Counts + Send + 'static,
    ) -> Result<u64, OutboxError> {
        let outbox = self.ctx.outbox.clone();
        let seq = tokio::task::spawn_blocking(move || outbox.append_counts(build))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        self.notify();
        Ok(seq)
    }

    /// Publishes `status` as camera `camera`'s retained status: now if connected, else on the
    /// next connect. Not queued in the outbox: only the latest status per camera is kept.
    pub fn publish_camera_status(
        &self,
        camera: &str,
        status: &CameraStatus,
    ) -> Result<(), PublisherError> {
        // Validates the camera id too.
        let topic = self.ctx.topics.camera_status(camera)?;
        self.retain(topic, ioc_protocol::encode(status)?);
        Ok(())
    }

    /// Publishes what camera `camera` made of the analytics pushed to it (retained): now if
    /// connected, else on the next connect. Only the latest is kept.
    pub fn publish_analytics_state(
        &self,
        camera: &str,
        state: &AnalyticsState,
    ) -> Result<(), PublisherError> {
        let topic = self.ctx.topics.analytics_state(camera)?;
        self.retain(topic, ioc_protocol::encode(state)?);
        Ok(())
    }

    fn retain(&self, topic: String, payload: Vec<u8>) {
        self.ctx
            .shared
            .retained
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic, (payload, true));
        self.notify();
    }

    /// The analytics the center pushes, as `(camera, payload)` from
    /// `.../analytics/{camera}`, unchecked. `None` after the first call.
    pub fn take_analytics_pushes(&self) -> Option<AnalyticsPushes> {
        self.analytics_pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The payloads received on `.../preview-requests`, unchecked (the agent's previewer
    /// parses them). `None` after the first call: there is one previewer.
    pub fn take_preview_requests(&self) -> Option<std::sync::mpsc::Receiver<Vec<u8>>> {
        self.preview_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Publishes a camera preview (QoS 0, not retained) if connected now; `Ok(false)` when
    /// not (a preview is worth something only now: it is never queued). Does not wait.
    pub fn publish_preview(&self, camera: &str, payload: Vec<u8>) -> Result<bool, PublisherError> {
        let topic = self.ctx.topics.preview(camera)?;
        if !self.ctx.shared.connected.load(Ordering::Relaxed) {
            return Ok(false);
        }
        Ok(self
            .client
            .try_publish(topic, QoS::AtMostOnce, false, payload)
            .is_ok())
    }

    /// The counters now.
    pub fn stats(&self) -> PublisherStats {
        let s = &self.ctx.shared;
        let last = s.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        PublisherStats {
            connected: s.connected.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            resent: s.resent.load(Ordering::Relaxed),
            acked: s.acked.load(Ordering::Relaxed),
            bad_acks: s.bad_acks.load(Ordering::Relaxed),
            last_failure: last.as_ref().map(|l| l.0),
            last_error: last.map(|l| l.1),
        }
    }

    /// Waits for the tasks to finish (after shutdown was signalled).
    pub async fn join(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for PublisherHandle {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            t.abort();
        }
    }
}

#[derive(Clone)]
struct Ctx {
    outbox: Outbox,
    cfg: Arc<MqttConfig>,
    topics: Arc<AgentTopics>,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    version: String,
    name: Option<String>,
    cameras: Vec<String>,
}

impl Ctx {
    fn broker(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }
}

/// Says what went wrong, for people, and which kind it is.
fn classify(ctx: &Ctx, e: &ConnectionError, was_connected: bool) -> (FailureKind, String) {
    let cfg = &ctx.cfg;
    let target = ioc_base::mqtt::Target {
        host: &cfg.host,
        port: cfg.port,
        user: cfg.username.as_deref(),
        ca_file: cfg.tls.as_ref().map(|t| t.ca_file.as_path()),
        connect_timeout_sec: cfg.connect_timeout_sec,
    };
    ioc_base::mqtt::classify(e, was_connected, &target)
}

async fn run_eventloop(
    ctx: Ctx,
    mut eventloop: EventLoop,
    conn_tx: watch::Sender<u64>,
    inbound: Inbound,
    mut shutdown: watch::Receiver<bool>,
) {
    let acks_topic = ctx.topics.acks();
    let previews_topic = ctx.topics.preview_requests();
    let analytics_prefix = ctx
        .topics
        .analytics_filter()
        .trim_end_matches('+')
        .to_owned();
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs_f64(ctx.cfg.reconnect_max_sec),
    );
    let mut connected = false;
    let mut connection = 0u64;
    loop {
        let ev = tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                connection += 1;
                backoff.reset();
                ctx.shared.connected.store(true, Ordering::Relaxed);
                ctx.shared.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    broker = %ctx.broker(),
                    session_present = ack.session_present,
                    connection,
                    "MqttConnected"
                );
                let _ = conn_tx.send(connection);
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                if p.topic == acks_topic {
                    let _ = inbound.acks.send(p.payload.to_vec());
                } else if p.topic == previews_topic {
                    if inbound.previews.try_send(p.payload.to_vec()).is_err() {
                        tracing::debug!("preview request dropped: too many waiting");
                    }
                } else if let Some(camera) = p.topic.strip_prefix(&analytics_prefix) {
                    // The retained copy comes again on the next connect: nothing is lost.
                    if inbound
                        .analytics
                        .try_send((camera.to_owned(), p.payload.to_vec()))
                        .is_err()
                    {
                        tracing::warn!(camera, "pushed analytics dropped: too many waiting");
                    }
                } else {
                    tracing::debug!(topic = %p.topic, "ignoring message on unexpected topic");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let (kind, msg) = classify(&ctx, &e, connected);
                connected = false;
                ctx.shared.connected.store(false, Ordering::Relaxed);
                let delay = backoff.next_delay();
                tracing::warn!(
                    error_code = kind.code(),
                    broker = %ctx.broker(),
                    retry_in_ms = delay.as_millis() as u64,
                    "MqttConnectFailed: {msg}"
                );
                *ctx.shared.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((kind, msg));
                tokio::select! {
                    biased;
                    _ = wait_shutdown(&mut shutdown) => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    // Shutdown: let the sender's `offline` status and DISCONNECT go out, briefly. After
    // DISCONNECT, read on until the broker closes the connection: closing our end with its
    // PUBACK unread makes the kernel reset the connection, and a broker that sees the reset
    // before the DISCONNECT publishes the Last Will after our own `offline`.
    if connected {
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = eventloop.poll() => if ev.is_err() { break },
            }
        }
    }
    ctx.shared.connected.store(false, Ordering::Relaxed);
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means shutdown too.
    let _ = rx.wait_for(|v| *v).await;
}

async fn run_acker(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(payload) = rx.recv().await {
        let ack = match ioc_protocol::parse_ack(&payload) {
            Ok(a) => a,
            Err(e) => {
                ctx.shared.bad_acks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error_code = "ack_invalid", "AckRejected: {e}");
                continue;
            }
        };
        let outbox = ctx.outbox.clone();
        match tokio::task::spawn_blocking(move || outbox.ack(&ack)).await {
            Ok(Ok(out)) => {
                ctx.shared.acked.fetch_add(
                    out.messages + out.snapshots + out.clip_parts,
                    Ordering::Relaxed,
                );
                ctx.wake.notify_one();
            }
            Ok(Err(e)) => {
                // The entries stay and are re-sent; the collector acks the replay again.
                tracing::error!(error_code = "outbox_ack_failed", "OutboxAckFailed: {e}");
            }
            Err(e) => tracing::error!("outbox ack task failed: {e}"),
        }
    }
}

fn entry_topic(topics: &AgentTopics, e: &Entry) -> Option<String> {
    match e.kind {
        EntryKind::Event => Some(topics.events()),
        EntryKind::Counts => Some(topics.counts()),
        EntryKind::Snapshot => topics.snapshot(e.event_id.as_deref()?).ok(),
        EntryKind::Clip => topics.clip(e.event_id.as_deref()?).ok(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

async fn run_sender(
    ctx: Ctx,
    client: AsyncClient,
    mut conn_rx: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ack_timeout = Duration::from_secs_f64(ctx.cfg.ack_timeout_sec);
    let tick = (ack_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut current = 0u64;
    let limit = usize::from(ctx.cfg.max_in_flight);
    let mut failed_read = false;
    let mut clock = crate::clock::ClockWatch::default();
    let mut last_online = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => break,
            r = conn_rx.changed() => if r.is_err() { break },
            _ = ctx.wake.notified() => {}
            _ = ticker.tick() => {}
        }
        if !ctx.shared.connected.load(Ordering::Relaxed) {
            continue;
        }
        let connection = *conn_rx.borrow_and_update();
        let turn = Turn::of(connection, current, last_online.elapsed());
        if turn == Turn::Heartbeat {
            // The heartbeat: the same retained `online`, newly dated, so the center can tell
            // a live agent from a stale retained message and measure this box's clock.
            last_online = Instant::now();
            let online = online_status(&ctx, &mut clock);
            if !online.is_empty()
                && client
                    .publish(ctx.topics.status(), QoS::AtLeastOnce, true, online)
                    .await
                    .is_err()
            {
                break; // event loop gone
            }
        }
        if turn == Turn::NewConnection {
            current = connection;
            last_online = Instant::now();
            // New connection: (re)subscribe, say we are online, re-send the retained states;
            // outbox entries sent on older connections count as unsent below.
            if greet(&ctx, &client, &mut clock).await.is_err() {
                break; // event loop gone
            }
        }
        // Retained payloads that changed (or all, after a reconnect).
        let dirty = take_dirty(&ctx.shared.retained);
        for (topic, payload) in dirty {
            let publish = client.publish(topic, QoS::AtLeastOnce, true, payload);
            tokio::select! {
                biased;
                _ = wait_shutdown(&mut shutdown) => return finish(&ctx, &client).await,
                r = publish => if r.is_err() { return },
            }
        }
        // The oldest `max_in_flight` unacknowledged entries: send those never sent on this
        // connection, and those whose ack is overdue.
        let outbox = ctx.outbox.clone();
        let due = move |sent: Option<&crate::store::SentInfo>| {
            send_now(sent, current, Instant::now(), ack_timeout) != SendNow::No
        };
        let entries = match blocking(move || outbox.pending_where(limit, due)).await {
            Ok(e) => {
                failed_read = false;
                e
            }
            Err(e) => {
                if !failed_read {
                    tracing::error!(error_code = "outbox_read_failed", "OutboxReadFailed: {e}");
                }
                failed_read = true;
                continue;
            }
        };
        let now = Instant::now();
        for e in entries {
            let resend = match send_now(e.sent.as_ref(), current, now, ack_timeout) {
                SendNow::First => false,
                SendNow::Again => true,
                SendNow::No => continue,
            };
            if !ctx.shared.connected.load(Ordering::Relaxed) {
                break;
            }
            let Some(topic) = entry_topic(&ctx.topics, &e) else {
                tracing::error!(entry = e.id, "outbox entry without a usable topic; skipped");
                continue;
            };
            let publish = client.publish(topic, QoS::AtLeastOnce, false, e.payload);
            tokio::select! {
                biased;
                _ = wait_shutdown(&mut shutdown) => return finish(&ctx, &client).await,
                r = publish => if r.is_err() { return },
            }
            ctx.outbox.mark_sent(&[e.id], Instant::now(), current);
            if resend {
                ctx.shared.resent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(entry = e.id, seq = ?e.seq, "OutboxEntryResent");
            } else {
                ctx.shared.published.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    finish(&ctx, &client).await;
}

/// On a new connection: subscribe to acks, preview requests and pushed analytics, publish
/// `online`, and mark every retained state to be sent again.
async fn greet(
    ctx: &Ctx,
    client: &AsyncClient,
    clock: &mut crate::clock::ClockWatch,
) -> Result<(), rumqttc::ClientError> {
    let online = online_status(ctx, clock);
    client
        .subscribe(ctx.topics.acks(), QoS::AtLeastOnce)
        .await?;
    client
        .subscribe(ctx.topics.preview_requests(), QoS::AtMostOnce)
        .await?;
    client
        .subscribe(ctx.topics.analytics_filter(), QoS::AtLeastOnce)
        .await?;
    if !online.is_empty() {
        client
            .publish(ctx.topics.status(), QoS::AtLeastOnce, true, online)
            .await?;
    }
    let mut retained = ctx
        .shared
        .retained
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for (_, dirty) in retained.values_mut() {
        *dirty = true;
    }
    Ok(())
}

/// The retained payloads marked to be sent, by topic; each is unmarked.
fn take_dirty(retained: &Mutex<HashMap<String, (Vec<u8>, bool)>>) -> Vec<(String, Vec<u8>)> {
    let mut map = retained.lock().unwrap_or_else(|p| p.into_inner());
    map.iter_mut()
        .filter(|(_, (_, d))| *d)
        .map(|(k, (p, d))| {
            *d = false;
            (k.clone(), p.clone())
        })
        .collect()
}

/// Whether an outbox entry is sent on this turn of the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendNow {
    /// Never sent in this process.
    First,
    /// Sent on an older connection (its PUBACK may never come), or its ack is overdue.
    Again,
    /// Sent on this connection and still within its ack timeout.
    No,
}

/// What to do with an entry last sent as `sent` (none: never in this process), on
/// connection `current` at `now`.
fn send_now(
    sent: Option<&crate::store::SentInfo>,
    current: u64,
    now: Instant,
    ack_timeout: Duration,
) -> SendNow {
    match sent {
        None => SendNow::First,
        Some(s) if s.connection != current => SendNow::Again,
        Some(s) if now.duration_since(s.at) >= ack_timeout => SendNow::Again,
        Some(_) => SendNow::No,
    }
}

/// What a turn of the sender does besides sending entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// A new connection: subscribe, say online, re-send every retained state.
    NewConnection,
    /// The same connection, and the last `online` is `HEARTBEAT` old: say it again.
    Heartbeat,
    /// Nothing.
    Quiet,
}

impl Turn {
    /// For the client's connection counter `connection`, the sender's `current`, and the
    /// time since the last `online` was published.
    fn of(connection: u64, current: u64, since_online: Duration) -> Turn {
        if connection != current {
            Turn::NewConnection
        } else if since_online >= HEARTBEAT {
            Turn::Heartbeat
        } else {
            Turn::Quiet
        }
    }
}

/// How often a connected agent repeats its `online` status.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// The encoded `online` status, dated now, with what the agent knows of its clock.
fn online_status(ctx: &Ctx, clock: &mut crate::clock::ClockWatch) -> Vec<u8> {
    let mut online = AgentStatus::new(
        AgentState::Online,
        &ctx.version,
        ctx.cameras.clone(),
        Timestamp::now(),
    );
    online.clock = Some(clock.check());
    online.name = ctx.name.clone();
    match ioc_protocol::encode(&online) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot encode agent status: {e}");
            Vec::new()
        }
    }
}

/// Graceful end: retained `offline`, then DISCONNECT (so the broker does not fire the will).
async fn finish(ctx: &Ctx, client: &AsyncClient) {
    if ctx.shared.connected.load(Ordering::Relaxed) {
        let mut offline = AgentStatus::new(
            AgentState::Offline,
            &ctx.version,
            ctx.cameras.clone(),
            Timestamp::now(),
        );
        offline.name = ctx.name.clone();
        if let Ok(p) = ioc_protocol::encode(&offline) {
            let _ = client.try_publish(ctx.topics.status(), QoS::AtLeastOnce, true, p);
        }
    }
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SentInfo;

    #[test]
    fn entries_are_sent_first_again_after_a_reconnect_or_an_overdue_ack_else_not() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        // Sent at `t0` on `connection`.
        let sent = |connection| SentInfo {
            at: t0,
            attempts: 1,
            connection,
        };
        let at = |ago: u64| t0 + Duration::from_secs(ago);
        assert_eq!(send_now(None, 3, at(0), timeout), SendNow::First);
        // On this connection: waits for its ack, up to the timeout.
        assert_eq!(send_now(Some(&sent(3)), 3, at(9), timeout), SendNow::No);
        assert_eq!(send_now(Some(&sent(3)), 3, at(10), timeout), SendNow::Again);
        // On an older connection: its PUBACK will never come, whatever the time.
        assert_eq!(send_now(Some(&sent(2)), 3, at(0), timeout), SendNow::Again);
    }

    #[test]
    fn changed_retained_states_are_taken_once() {
        let retained = Mutex::new(HashMap::from([
            ("a".to_owned(), (b"1".to_vec(), true)),
            ("b".to_owned(), (b"2".to_vec(), false)),
        ]));
        assert_eq!(take_dirty(&retained), vec![("a".to_owned(), b"1".to_vec())]);
        assert_eq!(take_dirty(&retained), vec![]);
    }

    #[test]
    fn a_turn_subscribes_on_a_new_connection_and_repeats_online_on_the_heartbeat() {
        let beat = HEARTBEAT;
        assert_eq!(Turn::of(2, 1, Duration::ZERO), Turn::NewConnection);
        assert_eq!(Turn::of(2, 1, beat * 2), Turn::NewConnection);
        assert_eq!(Turn::of(2, 2, beat - Duration::from_millis(1)), Turn::Quiet);
        assert_eq!(Turn::of(2, 2, beat), Turn::Heartbeat);
    }
}
