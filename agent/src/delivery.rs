//! From rule output to the durable outbox: wire events (with their snapshot)
//! and line counts are written to disk with their sequence number before the
//! publisher sends them; the publisher deletes them only when the collector
//! acknowledges that it stored them (crate `ioc-outbox`).
//!
//! Runs on its own thread (`ioc-delivery`), behind a bounded queue from the rules thread: a
//! snapshot's JPEG encode and the outbox's `synchronous = FULL` commits never hold up the
//! thread that judges every camera while the queue has room. When a slow disk lets the queue
//! fill, the rules wait for room: events block into the outbox, none is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioc_detect::BBox;
use ioc_outbox::{Outbox, PublisherHandle};
use ioc_protocol::{ClassCount, CountDirection, Counts, SnapshotRef, Timestamp};
use ioc_tracking::AnalyticsConfig;

use crate::analytics::Output;
use crate::clip::{ClipRequest, ClipRequests};
use crate::events::EventBuilder;
use crate::snapshot::{self, Overlay, SnapshotConfig};
use ioc_tracking::rules::config::Severity;

/// What a camera's events need besides the rule output.
#[derive(Clone, Debug)]
pub struct CameraMeta {
    /// Camera id.
    pub id: String,
    /// Zone polygons by name.
    pub zones: HashMap<String, Vec<[f64; 2]>>,
    /// Lines by name.
    pub lines: HashMap<String, Vec<[f64; 2]>>,
}

impl CameraMeta {
    /// From a camera's analytics config.
    pub fn new(id: &str, analytics: Option<&AnalyticsConfig>) -> Self {
        let (zones, lines) = analytics
            .map(|a| {
                (
                    a.zones
                        .iter()
                        .map(|z| (z.name.clone(), z.points.clone()))
                        .collect(),
                    a.lines
                        .iter()
                        .map(|l| (l.name.clone(), l.points.clone()))
                        .collect(),
                )
            })
            .unwrap_or_default();
        Self {
            id: id.to_owned(),
            zones,
            lines,
        }
    }
}

/// Writes rule output into the outbox and wakes the publisher.
pub struct Delivery {
    outbox: Outbox,
    publisher: Arc<PublisherHandle>,
    agent: String,
    builder: EventBuilder,
    cameras: Vec<CameraMeta>,
    snapshot: SnapshotConfig,
    clips: Option<(ClipRequests, Severity)>,
}

impl Delivery {
    /// A delivery for `agent` with `cameras` in camera-index order.
    pub fn new(
        outbox: Outbox,
        publisher: Arc<PublisherHandle>,
        agent: &str,
        cameras: Vec<CameraMeta>,
        snapshot: SnapshotConfig,
    ) -> Self {
        Self {
            outbox,
            publisher,
            agent: agent.to_owned(),
            builder: EventBuilder::new(agent),
            cameras,
            snapshot,
            clips: None,
        }
    }

    /// Asks `requests` for a clip of every incident of `min_severity` or worse.
    pub fn with_clips(mut self, requests: ClipRequests, min_severity: Severity) -> Self {
        self.clips = Some((requests, min_severity));
        self
    }

    /// Starts the delivery thread with a queue of `capacity` outputs; the returned queue is
    /// the rules thread's end. The thread ends when every [`DeliveryQueue`] is dropped and
    /// what they sent is in the outbox.
    pub fn spawn(mut self, capacity: usize) -> std::io::Result<(DeliveryQueue, DeliveryThread)> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let stats = Arc::new(QueueStats::default());
        let queue = DeliveryQueue {
            tx,
            stats: stats.clone(),
            last_warned: None,
        };
        let handle = std::thread::Builder::new()
            .name("ioc-delivery".into())
            .spawn(move || {
                let rx: Receiver<Output> = rx;
                for o in rx {
                    stats.depth.fetch_sub(1, Ordering::Relaxed);
                    self.handle(o);
                }
            })?;
        Ok((queue, DeliveryThread { handle }))
    }

    /// Handles one output of the rules thread. Errors (disk full, ...) are logged: the
    /// rules must go on, and the outbox's own policy says what was dropped.
    pub fn handle(&mut self, o: Output) {
        if let Err(e) = self.try_handle(o) {
            tracing::error!(error = %e, error_code = "outbox_append_failed", "event not queued for delivery");
        }
        self.publisher.notify();
    }

    fn try_handle(&mut self, o: Output) -> Result<(), ioc_outbox::OutboxError> {
        match o {
            Output::Event {
                camera,
                event,
                frame,
                time,
            } => {
                let Some(meta) = self.cameras.get(camera) else {
                    return Ok(());
                };
                // A snapshot goes with the first message of an incident of the configured
                // severity or worse.
                let first = matches!(
                    event.phase,
                    ioc_tracking::Phase::Start | ioc_tracking::Phase::Instant
                );
                let shot = match (
                    &frame,
                    first && event.severity >= self.snapshot.min_severity,
                ) {
                    (Some(f), true) => {
                        let overlay = Overlay {
                            objects: event
                                .objects
                                .iter()
                                .map(|o| {
                                    (
                                        BBox::new(o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2),
                                        o.class_id,
                                        crate::annotate::label_text(&o.class, o.score),
                                    )
                                })
                                .collect(),
                            zone: event
                                .zone
                                .as_ref()
                                .and_then(|z| meta.zones.get(z))
                                .map(Vec::as_slice),
                            line: event
                                .line
                                .as_ref()
                                .and_then(|l| meta.lines.get(l))
                                .map(Vec::as_slice),
                        };
                        match snapshot::render(f, &overlay, &self.snapshot) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                tracing::warn!(camera = %meta.id, error = %e, "snapshot skipped");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                let reference = shot.as_ref().map(|s| SnapshotRef {
                    sha256: s.sha256.clone(),
                    size: s.jpeg.len() as u64,
                    width: s.width,
                    height: s.height,
                });
                let (builder, id) = (&mut self.builder, &meta.id);
                let mut event_id = String::new();
                self.outbox.append_event(|seq| {
                    let e =
                        builder.build(seq, (camera, id), &event, &time, frame.is_some(), reference);
                    event_id = e.id.clone();
                    e
                })?;
                if let Some(s) = shot {
                    self.outbox.append_snapshot(&event_id, &s.jpeg)?;
                }
                match &self.clips {
                    Some((requests, min)) if first && event.severity >= *min => {
                        requests.request(ClipRequest {
                            camera,
                            camera_id: meta.id.clone(),
                            event_id,
                            at: event.observed_at_sec,
                        })
                    }
                    _ => {}
                }
            }
            Output::Analytics { camera, config } => {
                if let Some(meta) = self.cameras.get_mut(camera) {
                    *meta = CameraMeta::new(&meta.id, Some(&config));
                }
            }
            Output::Counts {
                camera,
                report,
                time,
            } => {
                let Some(meta) = self.cameras.get(camera) else {
                    return Ok(());
                };
                let wall = |t: f64| Timestamp::from_system_time(time.wall_of(t));
                let mut by_line: Vec<(&str, Vec<ClassCount>)> = Vec::new();
                for row in &report.counts {
                    let i = match by_line.iter().position(|(l, _)| *l == row.line) {
                        Some(i) => i,
                        None => {
                            by_line.push((&row.line, Vec::new()));
                            by_line.len() - 1
                        }
                    };
                    for (direction, count) in [
                        (CountDirection::In, row.in_count),
                        (CountDirection::Out, row.out_count),
                    ] {
                        if count > 0 {
                            by_line[i].1.push(ClassCount {
                                class: row.class.clone(),
                                direction,
                                count: count as u64,
                            });
                        }
                    }
                }
                for (line, counts) in by_line {
                    self.outbox.append_counts(|seq| Counts {
                        schema: ioc_protocol::COUNTS_SCHEMA.to_owned(),
                        seq,
                        agent: self.agent.clone(),
                        camera: meta.id.clone(),
                        line: line.to_owned(),
                        interval_start: wall(report.start_sec),
                        interval_end: wall(report.end_sec),
                        counts,
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// How the delivery queue is doing (for metrics).
#[derive(Debug, Default)]
pub struct QueueStats {
    depth: AtomicUsize,
    waits: AtomicU64,
    waited_us: AtomicU64,
}

impl QueueStats {
    /// Outputs waiting for the delivery thread.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Times the rules waited for room (the disk fell behind by a whole queue).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Total time the rules waited for room.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_us.load(Ordering::Relaxed))
    }
}

/// The rules thread's end of delivery.
pub struct DeliveryQueue {
    tx: SyncSender<Output>,
    stats: Arc<QueueStats>,
    last_warned: Option<Instant>,
}

impl DeliveryQueue {
    /// The queue's counters.
    pub fn stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// Hands `o` to the delivery thread; waits for room when the queue is full.
    pub fn send(&mut self, o: Output) {
        self.stats.depth.fetch_add(1, Ordering::Relaxed);
        let o = match self.tx.try_send(o) {
            Ok(()) => return,
            Err(TrySendError::Full(o)) => o,
            Err(TrySendError::Disconnected(_)) => {
                self.stats.depth.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(
                    error_code = "delivery_stopped",
                    "the delivery thread is gone: output not queued"
                );
                return;
            }
        };
        let t0 = Instant::now();
        let sent = self.tx.send(o);
        let waited = t0.elapsed();
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .waited_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if sent.is_err() {
            self.stats.depth.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                error_code = "delivery_stopped",
                "the delivery thread is gone: output not queued"
            );
        }
        if self
            .last_warned
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_warned = Some(Instant::now());
            tracing::warn!(
                waited_ms = waited.as_millis() as u64,
                "the outbox's disk is slow: the rules waited for delivery (nothing is lost; \
                 frames may be skipped while they wait)"
            );
        }
    }
}

/// The delivery thread; [`DeliveryThread::join`] waits until it has written what it was sent.
pub struct DeliveryThread {
    handle: std::thread::JoinHandle<()>,
}

impl DeliveryThread {
    /// Waits for the thread (after every queue end is dropped).
    pub fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("the delivery thread panicked");
        }
    }
}
