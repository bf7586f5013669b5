//! MQTT ingest: subscribe, validate, batch, commit, then acknowledge.
//!
//! # Delivery contract
//! The collector uses a persistent session (`clean_session = false`, stable client id) and
//! **manual MQTT acks**. For every batch, in this order:
//! 1. each message is validated ([`classify`]); a bad one becomes a dead letter (counted,
//!    logged at warn, stored) and never stops ingest;
//! 2. the batch is committed in one transaction on the store's writer thread
//!    ([`crate::writer`]); a failed commit is retried with backoff and nothing is acked;
//! 3. an [`Ack`] (compact seq ranges, snapshot ids, clip parts) is published, QoS 1, on
//!    `{root}/v1/agents/{agent}/acks` for each agent in the batch (replays are acked again);
//! 4. each MQTT message is PUBACKed, in the order received.
//!
//! So a collector killed at any point loses nothing: the broker redelivers every message it
//! had not PUBACKed, and the store makes the replay a no-op. A PUBACK left over from a
//! connection that has since dropped is not sent (the broker redelivers that message on the
//! new connection and it is acked then), so a stale packet id never acks another message.
//!
//! # Tasks
//! - `mqtt-poll` polls the rumqttc `EventLoop` and does nothing else that can wait: received
//!   messages go into an unbounded channel (bounded in practice by the broker's in-flight
//!   window, since nothing is PUBACKed before its commit), connection errors are classified
//!   and logged, and it reconnects forever with capped exponential backoff and jitter.
//! - `ingest-batch` gathers up to `batch_max` messages or `batch_wait_ms` after the first,
//!   and runs the steps above. On shutdown it finishes the batch in flight, then disconnects.
//!
//! Events, snapshots, clips and counts are subscribed through `$share/{group}/` when
//! `mqtt.shared_group` is set; status topics never are (no retained messages on shared
//! subscriptions).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ioc_protocol::{
    encode, parse_agent_status, parse_camera_status, parse_counts_for, parse_event_for, Ack,
    ProtocolError, Topic, TopicKind, Topics,
};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn, Instrument};

use ioc_base::Backoff;

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::{add, Metrics};
use crate::store::{now_ms, Committed, Ingested, Message, Store, StoreError};
use crate::writer::{StoreWriter, WriterGone};

/// Why ingest could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS settings could not be loaded.
    #[error("mqtt.tls: {0}")]
    Tls(ioc_base::tls::TlsError),
    /// The configured topics are unusable (caught by config validation first).
    #[error("mqtt topics: {0}")]
    Topics(String),
    /// The writer thread could not be started or died.
    #[error("store writer: {0}")]
    Writer(String),
}

impl From<WriterGone> for IngestError {
    fn from(e: WriterGone) -> Self {
        IngestError::Writer(e.to_string())
    }
}

/// What kind of trouble the broker connection is in; see [`ConnState::Failed`]. The agent's
/// publisher names its failures the same way (`ioc-base`).
pub use ioc_base::mqtt::FailureKind;

/// The broker connection, as the poll task last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Connecting (the first attempt, or after a backoff).
    Connecting,
    /// Connected, and the broker answered the subscriptions.
    Connected,
    /// The last attempt failed; retrying.
    Failed {
        /// What kind of failure.
        kind: FailureKind,
        /// For people: what failed and a hint.
        message: String,
    },
}

/// The MQTT options of `config`: persistent session, manual acks, TLS if configured.
pub fn mqtt_options(config: &Config) -> Result<MqttOptions, IngestError> {
    let m = &config.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), config.port());
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(m.keep_alive_sec))
        .set_max_packet_size(m.max_packet_bytes, m.max_packet_bytes)
        .set_request_channel_capacity(config.ingest.batch_max.saturating_mul(2) + 64);
    if let Some(user) = &m.username {
        let pw = m.password.as_ref().map(|p| p.expose()).unwrap_or("");
        o.set_credentials(user.clone(), pw.to_owned());
    }
    if let Some(tls) = &m.tls {
        let tls = crate::config::rustls_client_config(tls).map_err(IngestError::Tls)?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    }
    Ok(o)
}

/// The subscription filters and their QoS: events, snapshots, clips and counts (shared when a
/// group is set), agent and camera status, previews and analytics states (never shared).
///
/// Previews are taken at QoS 0 whatever QoS an agent publishes them with: the broker then
/// never waits for this collector to acknowledge one, so an agent flooding its own preview
/// topic at QoS 1 cannot fill the in-flight window that every site's events share.
pub fn subscriptions(config: &Config) -> Result<Vec<(String, QoS)>, IngestError> {
    let topics = config.topics();
    let mut out = Vec::new();
    for kind in [
        TopicKind::Events,
        TopicKind::Snapshots,
        TopicKind::Clips,
        TopicKind::Counts,
    ] {
        let filter = match &config.mqtt.shared_group {
            Some(g) => topics
                .shared_filter(g, kind)
                .map_err(|e| IngestError::Topics(e.to_string()))?,
            None => topics.filter(kind),
        };
        out.push((filter, QoS::AtLeastOnce));
    }
    out.push((topics.filter(TopicKind::AgentStatus), QoS::AtLeastOnce));
    out.push((topics.filter(TopicKind::CameraStatus), QoS::AtLeastOnce));
    // Never shared: the preview must reach the collector whose console asked for it, and
    // analytics states are retained.
    out.push((topics.filter(TopicKind::Previews), QoS::AtMostOnce));
    out.push((topics.filter(TopicKind::AnalyticsState), QoS::AtLeastOnce));
    Ok(out)
}

/// A rejected message: why, and the reason label counted in metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Stable label: `malformed_json`, `unsupported_version`, `wrong_schema`, `bad_shape`,
    /// `invalid`, `agent_mismatch`, `unknown_topic`, `unexpected_topic`, `not_jpeg`,
    /// `seq_out_of_range`, `missing_schema`.
    pub reason: &'static str,
    /// For people.
    pub error: String,
}

fn rejected(e: ProtocolError) -> Rejected {
    let reason = match &e {
        ProtocolError::MalformedJson(_) => "malformed_json",
        ProtocolError::MissingSchema { .. } => "missing_schema",
        ProtocolError::UnsupportedVersion { .. } => "unsupported_version",
        ProtocolError::WrongSchema { .. } => "wrong_schema",
        ProtocolError::BadShape { .. } => "bad_shape",
        ProtocolError::Invalid(_) => "invalid",
        ProtocolError::AgentMismatch { .. } => "agent_mismatch",
        ProtocolError::Encode { .. } => "invalid",
    };
    Rejected {
        reason,
        error: e.to_string(),
    }
}

fn check_seq(seq: u64) -> Result<(), Rejected> {
    if i64::try_from(seq).is_ok() {
        Ok(())
    } else {
        Err(Rejected {
            reason: "seq_out_of_range",
            error: format!("seq {seq} is above {}", i64::MAX),
        })
    }
}

/// Validates one received message. `Ok(None)`: nothing to store (an empty retained status,
/// i.e. someone cleared it); `Err`: a dead letter.
pub fn classify(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Option<Message>, Rejected> {
    let parsed = topics.parse(topic).map_err(|e| Rejected {
        reason: "unknown_topic",
        error: e.to_string(),
    })?;
    let json = || String::from_utf8_lossy(payload).into_owned();
    Ok(Some(match parsed {
        Topic::Events { agent } => {
            let event = parse_event_for(&agent, payload).map_err(rejected)?;
            check_seq(event.seq)?;
            Message::Event {
                event: Box::new(event),
                json: json(),
            }
        }
        Topic::Counts { agent } => {
            let counts = parse_counts_for(&agent, payload).map_err(rejected)?;
            check_seq(counts.seq)?;
            Message::Counts {
                counts,
                json: json(),
            }
        }
        Topic::Snapshot { agent, event_id } => {
            if !payload.starts_with(&[0xff, 0xd8, 0xff]) {
                return Err(Rejected {
                    reason: "not_jpeg",
                    error: format!(
                        "snapshot of {event_id:?} is not a JPEG ({} bytes, starts {:02x?})",
                        payload.len(),
                        &payload[..payload.len().min(4)]
                    ),
                });
            }
            Message::Snapshot {
                agent,
                event_id,
                jpeg: payload.to_vec(),
            }
        }
        Topic::Clip { agent, event_id } => {
            let (header, data) = ioc_protocol::decode_clip_part(payload).map_err(rejected)?;
            Message::ClipPart {
                agent,
                event_id,
                header: Box::new(header),
                data: data.to_vec(),
            }
        }
        Topic::AgentStatus { agent } => {
            if payload.is_empty() {
                return Ok(None);
            }
            Message::AgentStatus {
                agent,
                status: parse_agent_status(payload).map_err(rejected)?,
                retained: false,
            }
        }
        Topic::CameraStatus { agent, camera } => {
            if payload.is_empty() {
                return Ok(None);
            }
            Message::CameraStatus {
                agent,
                camera,
                status: parse_camera_status(payload).map_err(rejected)?,
                retained: false,
            }
        }
        Topic::Acks { .. } | Topic::PreviewRequests { .. } | Topic::Analytics { .. } => {
            return Err(Rejected {
                reason: "unexpected_topic",
                error: format!("topic {topic:?} is written by collectors, not read"),
            })
        }
        // Taken by the poll task before batching (see `Poller::preview`, `Poller::state`).
        Topic::Preview { .. } | Topic::AnalyticsState { .. } => {
            return Err(Rejected {
                reason: "unexpected_topic",
                error: format!("topic {topic:?} is kept in memory, not stored"),
            })
        }
    }))
}

/// A received message and the connection it came on.
struct Received {
    publish: Publish,
    epoch: u64,
    received_at_ms: i64,
}

/// A running ingest; see the module docs.
pub struct IngestHandle {
    metrics: Arc<Metrics>,
    previews: crate::preview::Previews,
    analytics: crate::analytics::Analytics,
    conn_rx: watch::Receiver<ConnState>,
    shutdown_tx: watch::Sender<bool>,
    writer: StoreWriter,
    batch_task: JoinHandle<Result<(), IngestError>>,
    /// The batch task has been awaited to its end (by [`IngestHandle::stopped`]).
    batch_done: bool,
    poll_task: JoinHandle<()>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for IngestHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestHandle")
            .field("conn", &*self.conn_rx.borrow())
            .finish()
    }
}

/// Opens the store of `config` and starts ingest (call inside a Tokio runtime).
pub fn start(config: &Config) -> Result<IngestHandle, IngestError> {
    let mut store = config.store.open()?;
    store.set_policy(config.policy());
    start_with_store(config, store)
}

/// Starts ingest writing to `store` (call inside a Tokio runtime).
pub fn start_with_store(config: &Config, store: Store) -> Result<IngestHandle, IngestError> {
    let (writer, writer_thread) =
        StoreWriter::spawn(store).map_err(|e| IngestError::Writer(e.to_string()))?;
    let mut handle = start_with_writer(config, writer, None)?;
    handle.writer_thread = Some(writer_thread);
    Ok(handle)
}

/// Starts ingest writing through `writer` (shared with the API), telling `hub` about
/// incident and health changes (call inside a Tokio runtime). The caller owns the writer
/// thread.
pub fn start_with_writer(
    config: &Config,
    writer: StoreWriter,
    hub: Option<Hub>,
) -> Result<IngestHandle, IngestError> {
    let options = mqtt_options(config)?;
    let subs = subscriptions(config)?;
    let topics = config.topics();
    let (client, eventloop) = AsyncClient::new(options, config.ingest.batch_max * 2 + 64);
    let metrics = Arc::new(Metrics::default());
    let epoch = Arc::new(AtomicU64::new(0));
    let (conn_tx, conn_rx) = watch::channel(ConnState::Connecting);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    info!(
        host = %config.mqtt.host,
        port = config.port(),
        client_id = %config.mqtt.client_id,
        user = config.mqtt.username.as_deref().unwrap_or(""),
        tls = config.mqtt.tls.is_some(),
        subscriptions = ?subs,
        "ingest starting"
    );
    let previews = crate::preview::Previews::new(client.clone(), topics.clone());
    let analytics = crate::analytics::Analytics::new(client.clone(), topics.clone());
    let poll = Poller {
        eventloop,
        client: client.clone(),
        topics: topics.clone(),
        previews: previews.clone(),
        analytics: analytics.clone(),
        subs,
        in_tx,
        epoch: epoch.clone(),
        conn_tx,
        metrics: metrics.clone(),
        target: format!("{}:{}", config.mqtt.host, config.port()),
        mqtt: config.mqtt.clone(),
        port: config.port(),
    };
    // Tasks are named by their span (tokio's task names need `tokio_unstable`).
    let poll_task = tokio::spawn(poll.run().instrument(tracing::info_span!("mqtt-poll")));
    let batcher = Batcher {
        client,
        topics,
        writer: writer.clone(),
        metrics: metrics.clone(),
        epoch,
        batch_max: config.ingest.batch_max.max(1),
        batch_wait: Duration::from_millis(config.ingest.batch_wait_ms),
        hub,
    };
    let batch_task = tokio::spawn(
        batcher
            .run(in_rx, shutdown_rx)
            .instrument(tracing::info_span!("ingest-batch")),
    );
    Ok(IngestHandle {
        metrics,
        previews,
        analytics,
        conn_rx,
        shutdown_tx,
        writer,
        batch_task,
        batch_done: false,
        poll_task,
        writer_thread: None,
    })
}

impl IngestHandle {
    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The analytics states the agents report, and the way to push analytics.
    pub fn analytics(&self) -> &crate::analytics::Analytics {
        &self.analytics
    }

    /// The camera previews this collector receives, and the way to ask for them.
    pub fn previews(&self) -> &crate::preview::Previews {
        &self.previews
    }

    /// The connection state now.
    pub fn conn_state(&self) -> ConnState {
        self.conn_rx.borrow().clone()
    }

    /// A receiver of connection state changes.
    pub fn conn_watch(&self) -> watch::Receiver<ConnState> {
        self.conn_rx.clone()
    }

    /// The store's writer (for other writers in this process, e.g. incidents).
    pub fn writer(&self) -> &StoreWriter {
        &self.writer
    }

    /// Waits until connected (and the subscriptions are sent), or `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ConnState> {
        let mut rx = self.conn_rx.clone();
        let connected = tokio::time::timeout(timeout, rx.wait_for(|s| *s == ConnState::Connected))
            .await
            .is_ok_and(|r| r.is_ok());
        if connected {
            Ok(())
        } else {
            Err(self.conn_state())
        }
    }

    /// Graceful stop: finishes the batch in flight (commit, acks), disconnects, stops the
    /// writer thread. Gives up on a broker that does not answer after `deadline`.
    pub async fn shutdown(mut self, deadline: Duration) -> Result<(), IngestError> {
        let _ = self.shutdown_tx.send(true);
        let result = if self.batch_done {
            Ok(())
        } else {
            match tokio::time::timeout(deadline, &mut self.batch_task).await {
                Ok(Ok(r)) => r,
                Ok(Err(join)) => Err(IngestError::Writer(format!("ingest task failed: {join}"))),
                Err(_) => {
                    warn!(
                        ?deadline,
                        "ingest did not finish its batch in time; stopping anyway"
                    );
                    self.batch_task.abort();
                    Ok(())
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), &mut self.poll_task)
            .await
            .is_err()
        {
            self.poll_task.abort();
        }
        drop(self.writer);
        if let Some(t) = self.writer_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!("ingest stopped");
        result
    }

    /// Runs until `stop` completes (then stops gracefully, see [`Self::shutdown`]) or until
    /// ingest stops by itself (an error: the writer thread died).
    pub async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
        deadline: Duration,
    ) -> Result<(), IngestError> {
        tokio::select! {
            _ = stop => self.shutdown(deadline).await,
            r = &mut self.batch_task => {
                self.poll_task.abort();
                match r {
                    Ok(r) => r,
                    Err(join) => Err(IngestError::Writer(format!("ingest task failed: {join}"))),
                }
            }
        }
    }

    /// Resolves when ingest stops by itself (the store's writer is gone): the error. Pending
    /// forever while ingest runs; cancel-safe.
    pub async fn stopped(&mut self) -> IngestError {
        if self.batch_done {
            return std::future::pending().await;
        }
        let r = (&mut self.batch_task).await;
        self.batch_done = true;
        match r {
            Ok(Ok(())) => IngestError::Writer("ingest stopped".into()),
            Ok(Err(e)) => e,
            Err(join) => IngestError::Writer(format!("ingest task failed: {join}")),
        }
    }

    /// Stops at once, like a crash: nothing in flight is committed or acked.
    pub fn abort(self) {
        self.batch_task.abort();
        self.poll_task.abort();
    }
}

struct Poller {
    eventloop: EventLoop,
    client: AsyncClient,
    topics: Topics,
    previews: crate::preview::Previews,
    analytics: crate::analytics::Analytics,
    subs: Vec<(String, QoS)>,
    in_tx: mpsc::UnboundedSender<Received>,
    epoch: Arc<AtomicU64>,
    conn_tx: watch::Sender<ConnState>,
    metrics: Arc<Metrics>,
    target: String,
    mqtt: crate::config::MqttConfig,
    port: u16,
}

impl Poller {
    /// Which kind of failure `e` is, and what to check (the agent says it the same way).
    fn classify(&self, e: &ConnectionError, was_connected: bool) -> (FailureKind, String) {
        let target = ioc_base::mqtt::Target {
            host: &self.mqtt.host,
            port: self.port,
            user: self.mqtt.username.as_deref(),
            ca_file: self.mqtt.tls.as_ref().map(|t| t.ca_file.as_path()),
            connect_timeout_sec: self.eventloop.network_options.connection_timeout(),
        };
        ioc_base::mqtt::classify(e, was_connected, &target)
    }
}

impl Poller {
    /// Keeps a camera preview (QoS 0: nothing to acknowledge, nothing to store).
    fn preview(&self, agent: &str, camera: &str, payload: &[u8]) {
        let checked = ioc_protocol::decode_preview(payload)
            .map_err(|e| e.to_string())
            .and_then(|(h, jpeg)| {
                if h.camera == camera {
                    Ok((h, jpeg))
                } else {
                    Err(format!(
                        "camera {:?} in the header is not the topic's {camera:?}",
                        h.camera
                    ))
                }
            });
        match checked {
            Ok((header, jpeg)) => {
                debug!(agent, camera, bytes = jpeg.len(), "preview received");
                if self.previews.put(agent, header, jpeg.to_vec(), now_ms()) {
                    add(&self.metrics.previews, 1);
                } else {
                    add(&self.metrics.previews_rejected, 1);
                    warn!(
                        agent,
                        camera,
                        "preview not kept: that agent has the most cameras' previews kept already"
                    );
                }
            }
            Err(error) => {
                add(&self.metrics.previews_rejected, 1);
                warn!(agent, camera, %error, "preview rejected");
            }
        }
    }

    /// Keeps an agent's analytics state of one camera (retained: it comes again after a
    /// restart, so memory is enough).
    fn state(&self, agent: &str, camera: &str, payload: &[u8]) {
        if payload.is_empty() {
            self.analytics.clear_state(agent, camera);
            return;
        }
        if payload.len() > crate::analytics::MAX_STATE_BYTES {
            warn!(
                agent,
                camera,
                bytes = payload.len(),
                "analytics state too big; rejected"
            );
            return;
        }
        match ioc_protocol::parse::<ioc_protocol::AnalyticsState>(payload) {
            Ok(s) if s.camera == camera => {
                if let Some(r) = &s.refused {
                    warn!(
                        agent,
                        camera,
                        version = r.version,
                        problems = r.problems.len(),
                        "an agent refused pushed analytics"
                    );
                }
                drop(s); // kept as its bytes (see `crate::analytics`)
                if let Err(why) = self.analytics.put_state(agent, camera, payload) {
                    warn!(agent, camera, %why, "analytics state not kept");
                }
            }
            Ok(s) => {
                warn!(agent, camera, other = %s.camera, "analytics state names another camera than its topic")
            }
            Err(e) => warn!(agent, camera, error = %e, "analytics state rejected"),
        }
    }

    async fn run(mut self) {
        // Jitter: collectors that lost the same broker do not all come back at once.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut connected = false;
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    match self.topics.parse(&publish.topic) {
                        Ok(Topic::Preview { agent, camera }) => {
                            self.preview(&agent, &camera, &publish.payload);
                            // Subscribed at QoS 0; a QoS 1 copy (a session from before) is
                            // acknowledged all the same, so none can hold the window.
                            if publish.qos != QoS::AtMostOnce {
                                let client = self.client.clone();
                                tokio::spawn(async move {
                                    let _ = client.ack(&publish).await;
                                });
                            }
                            continue;
                        }
                        Ok(Topic::AnalyticsState { agent, camera }) => {
                            self.state(&agent, &camera, &publish.payload);
                            // QoS 1 with manual acks: nothing to commit, so acked at once
                            // (off this task: never block polling).
                            let client = self.client.clone();
                            tokio::spawn(async move {
                                let _ = client.ack(&publish).await;
                            });
                            continue;
                        }
                        _ => {}
                    }
                    let r = Received {
                        publish,
                        epoch: self.epoch.load(Ordering::Acquire),
                        received_at_ms: now_ms(),
                    };
                    if self.in_tx.send(r).is_err() {
                        // The batcher stopped: nothing more will be acked. Keep polling so
                        // its disconnect (and the acks before it) go out.
                        debug!("ingest batcher gone; message left for redelivery");
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    let n = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
                    connected = true;
                    backoff.reset();
                    add(&self.metrics.connects, 1);
                    info!(
                        broker = %self.target,
                        session_present = ack.session_present,
                        connection = n,
                        "connected to broker"
                    );
                    // Resubscribe every time: harmless on a resumed session, needed on a new
                    // one (the broker may have lost it). Off this task: never block polling.
                    let client = self.client.clone();
                    let filters: Vec<_> = self
                        .subs
                        .iter()
                        .map(|(f, qos)| SubscribeFilter::new(f.clone(), *qos))
                        .collect();
                    tokio::spawn(async move {
                        if let Err(e) = client.subscribe_many(filters).await {
                            warn!(error = %e, "cannot queue subscriptions");
                        }
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let _ = self.conn_tx.send(ConnState::Connected);
                    for (code, (filter, _)) in ack.return_codes.iter().zip(&self.subs) {
                        if matches!(code, SubscribeReasonCode::Failure) {
                            error!(
                                %filter,
                                user = self.mqtt.username.as_deref().unwrap_or(""),
                                error_code = "subscribe_refused",
                                "broker refused the subscription: check the broker ACL for this user"
                            );
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    info!(broker = %self.target, "disconnected from broker");
                    let _ = self.conn_tx.send(ConnState::Connecting);
                    break;
                }
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => break,
                Err(e) => {
                    add(&self.metrics.connection_errors, 1);
                    let (kind, message) = self.classify(&e, connected);
                    connected = false;
                    let delay = backoff.next_delay();
                    if kind.needs_a_person() {
                        error!(error_code = kind.code(), retry_in = ?delay, "{message}");
                    } else {
                        warn!(error_code = kind.code(), retry_in = ?delay, "{message}");
                    }
                    let _ = self.conn_tx.send(ConnState::Failed { kind, message });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

struct Batcher {
    client: AsyncClient,
    topics: Topics,
    writer: StoreWriter,
    metrics: Arc<Metrics>,
    epoch: Arc<AtomicU64>,
    batch_max: usize,
    batch_wait: Duration,
    hub: Option<Hub>,
}

impl Batcher {
    async fn run(
        self,
        mut in_rx: mpsc::UnboundedReceiver<Received>,
        mut shutdown_rx: watch::Receiver<bool>,
    ) -> Result<(), IngestError> {
        let mut result = Ok(());
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown_rx.wait_for(|s| *s) => break,
                m = in_rx.recv() => match m { Some(m) => m, None => break },
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.batch_wait;
            let mut stopping = false;
            while batch.len() < self.batch_max {
                tokio::select! {
                    biased;
                    _ = shutdown_rx.wait_for(|s| *s) => { stopping = true; break }
                    m = in_rx.recv() => match m {
                        Some(m) => batch.push(m),
                        None => { stopping = true; break }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            if let Err(e) = self.process(batch, &mut shutdown_rx).await {
                error!(error = %e, "ingest stopped");
                result = Err(e);
                break;
            }
            if stopping {
                break;
            }
        }
        // What is still queued was never acked: the broker keeps it for this session.
        let _ = self.client.disconnect().await;
        result
    }

    async fn process(
        &self,
        batch: Vec<Received>,
        shutdown_rx: &mut watch::Receiver<bool>,
    ) -> Result<(), IngestError> {
        add(&self.metrics.received, batch.len() as u64);
        let mut items = Vec::with_capacity(batch.len());
        for r in &batch {
            let p = &r.publish;
            match classify(&self.topics, &p.topic, &p.payload) {
                Ok(Some(mut message)) => {
                    message.set_retained(p.retain);
                    items.push(Ingested {
                        received_at_ms: r.received_at_ms,
                        message,
                    })
                }
                Ok(None) => {}
                Err(rej) => {
                    warn!(
                        topic = %p.topic,
                        bytes = p.payload.len(),
                        reason = rej.reason,
                        error_code = "dead_letter",
                        "rejected message kept as a dead letter: {}",
                        rej.error
                    );
                    self.metrics.dead_letter(rej.reason);
                    items.push(Ingested {
                        received_at_ms: r.received_at_ms,
                        message: Message::DeadLetter {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            error: format!("{}: {}", rej.reason, rej.error),
                        },
                    });
                }
            }
        }
        let committed = self.commit(items, shutdown_rx).await?;
        let Some(c) = committed else {
            return Ok(()); // shutting down with the store failing: nothing is acked.
        };
        add(&self.metrics.ingested, c.inserted);
        add(
            &self.metrics.dead_letters_truncated,
            c.dead_letters_truncated,
        );
        add(&self.metrics.dead_letters_removed, c.dead_letters_removed);
        add(&self.metrics.clock_corrected, c.clock_corrected);
        for (agent, reason) in &c.rejected {
            self.metrics.dead_letter(reason);
            warn!(%agent, reason, error_code = "dead_letter",
                  "message refused by the store's checks, kept as a dead letter, not acked");
        }
        add(&self.metrics.duplicates, c.duplicates);
        add(&self.metrics.statuses, c.statuses);
        for (agent, first, last) in &c.new_gaps {
            add(&self.metrics.seq_gaps, 1);
            warn!(
                %agent,
                first_missing = first,
                last_missing = last,
                missing = last - first + 1,
                error_code = "seq_gap",
                "agent sequence skipped numbers"
            );
        }
        self.send_acks(&c).await;
        if let Some(hub) = &self.hub {
            hub.incidents(&c.changes);
            if c.statuses > 0 {
                hub.health();
            }
        }
        let current = self.epoch.load(Ordering::Acquire);
        for r in &batch {
            if r.epoch != current {
                // Received on a connection that has since dropped: its packet id means
                // nothing now, and the broker redelivers the message (then acked).
                debug!(topic = %r.publish.topic, "skipping PUBACK from an old connection");
                continue;
            }
            if self.client.ack(&r.publish).await.is_err() {
                warn!("mqtt client gone; cannot PUBACK");
                break;
            }
            add(&self.metrics.mqtt_acks, 1);
        }
        add(&self.metrics.batches, 1);
        debug!(
            messages = batch.len(),
            inserted = c.inserted,
            duplicates = c.duplicates,
            "batch committed"
        );
        Ok(())
    }

    /// Commits, retrying with backoff while the store fails. `None`: gave up on shutdown.
    async fn commit(
        &self,
        items: Vec<Ingested>,
        shutdown_rx: &mut watch::Receiver<bool>,
    ) -> Result<Option<Committed>, IngestError> {
        let items = Arc::new(items);
        let mut backoff = Duration::from_millis(200);
        loop {
            let batch = items.clone();
            match self.writer.call(move |s| s.insert_batch(&batch)).await? {
                Ok(c) => return Ok(Some(c)),
                Err(e) => {
                    add(&self.metrics.commit_errors, 1);
                    error!(
                        error = %e,
                        retry_in = ?backoff,
                        error_code = "commit_failed",
                        "cannot commit batch; nothing acked, retrying"
                    );
                    if *shutdown_rx.borrow() {
                        return Ok(None);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown_rx.wait_for(|s| *s) => return Ok(None),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn send_acks(&self, c: &Committed) {
        let acks: BTreeMap<&String, Ack> = c
            .agents
            .iter()
            .filter(|(_, a)| {
                !a.seqs.is_empty() || !a.snapshot_ids.is_empty() || !a.clip_parts.is_empty()
            })
            .map(|(agent, a)| {
                (
                    agent,
                    Ack::new(a.seqs.iter().copied(), a.snapshot_ids.clone()).with_clip_parts(
                        a.clip_parts
                            .iter()
                            .map(|(id, part)| ioc_protocol::ClipPartAck(id.clone(), *part))
                            .collect(),
                    ),
                )
            })
            .collect();
        for (agent, ack) in acks {
            let topic = match self.topics.agent(agent) {
                Ok(t) => t.acks(),
                Err(e) => {
                    warn!(%agent, error = %e, "cannot name the ack topic");
                    continue;
                }
            };
            let payload = match encode(&ack) {
                Ok(p) => p,
                Err(e) => {
                    warn!(%agent, error = %e, "cannot encode ack");
                    continue;
                }
            };
            if self
                .client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                warn!(%agent, "mqtt client gone; ack not sent");
                return;
            }
            add(&self.metrics.acks_sent, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::event_json;
    use std::path::Path;

    #[test]
    fn classifies_and_rejects() {
        let t = Topics::default();
        let ok = classify(
            &t,
            "ioc/v1/agents/a1/events",
            event_json("a1", 3).as_bytes(),
        );
        assert!(matches!(ok, Ok(Some(Message::Event { ref event, .. })) if event.seq == 3));
        let reason = |topic: &str, payload: &[u8]| classify(&t, topic, payload).unwrap_err().reason;
        assert_eq!(
            reason("ioc/v1/agents/a1/events", b"{nope"),
            "malformed_json"
        );
        let v2 = event_json("a1", 3).replace("ioc.event/1", "ioc.event/2");
        assert_eq!(
            reason("ioc/v1/agents/a1/events", v2.as_bytes()),
            "unsupported_version"
        );
        assert_eq!(
            reason("ioc/v1/agents/a2/events", event_json("a1", 3).as_bytes()),
            "agent_mismatch"
        );
        assert_eq!(reason("ioc/v1/agents/a1/bogus", b"{}"), "unknown_topic");
        assert_eq!(reason("ioc/v2/agents/a1/events", b"{}"), "unknown_topic");
        assert_eq!(reason("ioc/v1/agents/a1/acks", b"{}"), "unexpected_topic");
        assert_eq!(
            reason("ioc/v1/agents/a1/snapshots/a1-1", b"GIF89a"),
            "not_jpeg"
        );
        let big = event_json("a1", 3).replace("\"seq\":3", &format!("\"seq\":{}", u64::MAX));
        assert_eq!(
            reason("ioc/v1/agents/a1/events", big.as_bytes()),
            "seq_out_of_range"
        );
        assert!(matches!(
            classify(&t, "ioc/v1/agents/a1/status", b""),
            Ok(None)
        ));
        assert!(matches!(
            classify(&t, "ioc/v1/agents/a1/snapshots/a1-1", b"\xff\xd8\xff\xe0"),
            Ok(Some(Message::Snapshot { .. }))
        ));
        // A clip part without its header line, and one whose bytes run past its clip.
        assert_eq!(
            reason("ioc/v1/agents/a1/clips/a1-1", b"\x00\x00\x00\x18ftypmp42"),
            "invalid"
        );
        let header = ioc_protocol::ClipPart {
            schema: ioc_protocol::CLIP_PART_SCHEMA.into(),
            camera: "gate".into(),
            part: 0,
            parts: 1,
            offset: 0,
            size: 4,
            sha256: "0".repeat(64),
            duration_s: 1.0,
            start: ioc_protocol::Timestamp::now(),
            content_type: "video/mp4".into(),
        };
        let mut long = serde_json::to_vec(&header).unwrap();
        long.extend_from_slice(b"\n12345");
        assert_eq!(reason("ioc/v1/agents/a1/clips/a1-1", &long), "invalid");
        long.pop();
        assert!(matches!(
            classify(&t, "ioc/v1/agents/a1/clips/a1-1", &long),
            Ok(Some(Message::ClipPart { .. }))
        ));
    }

    #[test]
    fn subscriptions_share_only_the_streams() {
        let mut c = Config::parse(
            r#"
            [mqtt]
            host = "h"
            client_id = "c"
            shared_group = "collectors"
            [store]
            path = "x.db"
            snapshot_dir = "s"
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        let subs = subscriptions(&c).unwrap();
        let filters: Vec<_> = subs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            filters,
            [
                "$share/collectors/ioc/v1/agents/+/events",
                "$share/collectors/ioc/v1/agents/+/snapshots/+",
                "$share/collectors/ioc/v1/agents/+/clips/+",
                "$share/collectors/ioc/v1/agents/+/counts",
                "ioc/v1/agents/+/status",
                "ioc/v1/agents/+/cameras/+/status",
                // Never shared: answers to this collector's requests, retained states.
                "ioc/v1/agents/+/previews/+",
                "ioc/v1/agents/+/analytics-state/+",
            ]
        );
        // Only previews at QoS 0: nothing an agent publishes there waits for an ack.
        for (f, qos) in &subs {
            let want = if f.contains("/previews/") {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            assert_eq!(*qos, want, "{f}");
        }
        c.mqtt.shared_group = None;
        assert_eq!(subscriptions(&c).unwrap()[0].0, "ioc/v1/agents/+/events");
        let o = mqtt_options(&c).unwrap();
        assert!(!o.clean_session() && o.manual_acks());
    }
}
