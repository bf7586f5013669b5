//! `ioc-agent run`: the site box as named stages, started from one place and stopped
//! through one [`Site::shutdown`] with one deadline.
//!
//! The stages, in the order a frame's output goes: the [`Agent`] (cameras → detectors →
//! rules), the delivery thread (rule output → outbox, with snapshots), the clipper (event
//! clips), the publisher (outbox → MQTT), and beside them the previewer, the applier of
//! pushed analytics, the metrics server and the health reports. They stop in the reverse
//! order of their data: cameras first, the publisher last, so everything decided is in the
//! outbox before the publisher is told to stop.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::Instant as Deadline;

pub use crate::agent::Late;
use crate::agent::{
    cores, load_detectors, pool_size, resolve_cameras, summarise, Agent, AgentCamera, Camera,
};
use crate::analytics::Output;
use crate::clock::Epoch;
use crate::config::AgentConfig;
use crate::detect::FrameResult;
use crate::source::CameraState;
pub use ioc_base::signal::shutdown_signal;

/// Rule outputs that may wait for the delivery thread before the rules wait for it: a burst of
/// incidents rides out a slow disk; each may hold its frame (for the snapshot) meanwhile.
const DELIVERY_QUEUE: usize = 32;

/// How often the retained camera status is refreshed with the latest figures (it is also
/// published on every state change).
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// How long a stopping `ioc-agent run` gives all its stages together: clips being cut and the
/// publisher's offline status included, under systemd's `TimeoutStopSec` (30 s).
pub const STOP_WITHIN: Duration = Duration::from_secs(25);

/// `ioc-agent run`: runs until SIGINT/SIGTERM, logging detections and a health summary every
/// `summary_every`.
pub async fn run(config_path: &Path, summary_every: Duration) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config_path)?;
    crate::decode::init()?;
    let env_errors = cfg.check_environment();
    if !env_errors.is_empty() {
        anyhow::bail!("{}: {}", config_path.display(), env_errors.join("\n  "));
    }
    for w in cfg.warnings() {
        tracing::warn!("{}: {w}", config_path.display());
    }
    let mut site = Site::start(&cfg).await?;
    let mut tick = tokio::time::interval(summary_every);
    tick.tick().await;
    // Under systemd (Type=notify): started, and alive while this loop turns.
    ioc_base::systemd::notify("READY=1");
    let mut watchdog = ioc_base::systemd::watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tick.tick() => site.report(),
            _ = async { watchdog.as_mut().unwrap().tick().await }, if watchdog.is_some() => {
                ioc_base::systemd::notify("WATCHDOG=1");
            }
        }
    }
    ioc_base::systemd::notify("STOPPING=1");
    tracing::info!("shutting down (signal again to exit at once)");
    // A camera or a broker that hangs must not keep the box from stopping.
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    if let Err(late) = site.shutdown(STOP_WITHIN).await {
        tracing::warn!(stages = %late, "not stopped within {STOP_WITHIN:?}; exiting anyway");
    }
    Ok(())
}

/// A running site: every stage of `ioc-agent run`.
pub struct Site {
    /// Cameras, detectors and rules.
    agent: Agent,
    /// Rule output into the outbox (none without `[mqtt]`).
    delivery: Option<crate::delivery::DeliveryThread>,
    /// Cuts event clips (none when clips are off).
    clipper: Option<crate::clip::Clipper>,
    /// Outbox to broker (none without `[mqtt]`).
    publisher: Option<Arc<ioc_outbox::PublisherHandle>>,
    /// Answers the center's preview requests.
    previewer: Option<crate::preview::Previewer>,
    /// Applies analytics pushed from the center; ends when the publisher's channel closes.
    applier: Option<std::thread::JoinHandle<()>>,
    /// `/metrics`.
    metrics: Option<tokio::task::JoinHandle<()>>,
    /// Logs and publishes each camera's health.
    health: Health,
    /// Tells the publisher and the metrics server to stop.
    stop: watch::Sender<bool>,
}

impl Site {
    /// Starts every stage of `cfg` (already loaded and checked). Must be called inside a
    /// tokio runtime.
    pub async fn start(cfg: &AgentConfig) -> anyhow::Result<Site> {
        let epoch = Epoch::now();
        let mut cameras = resolve_cameras(cfg, epoch)?;
        let ids: Vec<String> = cameras.iter().map(|c| c.spec.id.clone()).collect();
        let size = pool_size(cfg);
        let detectors = load_detectors(cfg)?;
        // Analytics pushed from the center and kept on disk run instead of the file's, also
        // when the broker is down now.
        let model = detectors[0].manifest().name.clone();
        let kept = crate::pushed::Kept::beside(&cfg.resolve(&cfg.outbox.path));
        let mut pushed_versions = Vec::with_capacity(cameras.len());
        let mut pushed_states = Vec::with_capacity(cameras.len());
        for c in &mut cameras {
            let (run, running, state) = crate::pushed::at_start(
                cfg,
                &model,
                detectors[0].labels(),
                &kept,
                &c.spec.id,
                c.analytics.as_ref(),
            );
            if let Some(a) = run {
                c.analytics = Some(a);
            }
            pushed_versions.push(running);
            pushed_states.push(state);
        }
        let pick = detectors[0].precision().clone();
        let detector_info = crate::metrics::DetectorInfo {
            model: detectors[0].manifest().name.clone(),
            precision: pick.precision.as_str().into(),
            provider: "cpu".into(),
        };
        tracing::info!(
            model = %detector_info.model,
            file = %detectors[0].model_path().display(),
            precision = pick.precision.as_str(),
            why = %pick.reason,
            input_size = %cfg.detect.input_size,
            workers = size.workers,
            threads_per_worker = size.threads,
            motion_gating = cfg.detect.motion.enabled,
            decoder_threads = cfg.decode.threads_for(ids.len(), cores()),
            "detectors loaded"
        );
        let labels = detectors[0].labels().to_vec();
        let agent_labels = labels.clone();
        // One signal for every task that outlives a frame: the publisher and the metrics server.
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let sending = start_delivery(cfg, &cameras, shutdown_rx.clone())?;
        let publisher = sending.as_ref().map(|s| s.publisher.clone());
        let outbox = sending.as_ref().map(|s| s.outbox.clone());
        let (mut queue, delivery, clipper) = match sending {
            Some(s) => {
                let (queue, thread) = s
                    .delivery
                    .spawn(DELIVERY_QUEUE)
                    .context("starting the delivery thread")?;
                (Some(queue), Some(thread), s.clipper)
            }
            None => (None, None, None),
        };
        let queue_stats = queue.as_ref().map(|q| q.stats());
        let clip_stats = clipper.as_ref().map(|c| c.stats.clone());
        // Previews: the detector workers leave each camera's latest picture; the previewer
        // answers the center's requests from it. Without a broker, or with previews off, no
        // frame is held for them.
        let wants_previews = cfg.preview.enabled || cfg.preview.every_sec > 0.0;
        let (slots, previewer) = match publisher.as_ref().filter(|_| wants_previews) {
            Some(p) => match p.take_preview_requests() {
                Some(requests) => {
                    let slots = crate::preview::Slots::new(ids.len(), labels.clone());
                    let previewer = crate::preview::Previewer::spawn(
                        cfg.preview.clone(),
                        ids.clone(),
                        slots.clone(),
                        requests,
                        p.clone(),
                    )
                    .context("starting the preview thread")?;
                    (Some(slots), Some(previewer))
                }
                None => (None, None),
            },
            None => (None, None),
        };
        let preview_stats = previewer.as_ref().map(|p| p.stats.clone());
        let log_detections = detection_logger(ids.clone(), labels, cfg.agent.log_detections);
        let agent = Agent::start_with(
            cfg,
            cameras,
            epoch,
            detectors,
            move |r: &FrameResult| {
                log_detections(r);
                if let Some(s) = &slots {
                    s.put(r);
                }
            },
            {
                let ids = ids.clone();
                move |o| {
                    log_output(&ids, &o);
                    if let Some(q) = queue.as_mut() {
                        q.send(o);
                    }
                }
            },
        )?;
        let mut applier_thread = None;
        if let Some(p) = &publisher {
            for state in &pushed_states {
                if let Err(e) = p.publish_analytics_state(&state.camera, state) {
                    tracing::warn!(camera = %state.camera, error = %e, "analytics state not published");
                }
            }
            if let Some(pushes) = p.take_analytics_pushes() {
                let report = p.clone();
                let applier = crate::pushed::Applier {
                    cfg: cfg.clone(),
                    model,
                    labels: agent_labels.clone(),
                    cameras: pushed_versions,
                    kept,
                    apply: Box::new(agent.analytics_sender()),
                    report: Box::new(move |state| {
                        if let Err(e) = report.publish_analytics_state(&state.camera, state) {
                            tracing::warn!(camera = %state.camera, error = %e, "analytics state not published");
                        }
                    }),
                };
                // Ends when the publisher does (its channel closes).
                applier_thread = Some(
                    std::thread::Builder::new()
                        .name("ioc-analytics".into())
                        .spawn(move || applier.run(pushes))
                        .context("starting the analytics thread")?,
                );
            }
        }
        tracing::info!(agent = %cfg.agent.id, cameras = ids.len(), "ioc-agent running");
        let mut metrics = None;
        if let Some(m) = &cfg.metrics {
            let listener = crate::metrics::bind(m.listen).await?;
            let sources = crate::metrics::Sources {
                cameras: agent
                    .cameras
                    .iter()
                    .map(|c| crate::metrics::CameraSource {
                        id: c.handle.id.clone(),
                        counters: c.handle.counters.clone(),
                        detect: c.detect.clone(),
                        status: c.handle.status.clone(),
                        target_fps: c.target_fps,
                    })
                    .collect(),
                detect: agent.detect_stats().clone(),
                queue: Some(agent.scheduler().clone()),
                delivery: publisher.clone().zip(outbox),
                delivery_queue: queue_stats,
                clips: clip_stats,
                previews: preview_stats,
                detector: detector_info,
            };
            tracing::info!(listen = %m.listen, "metrics on http://{}/metrics", m.listen);
            metrics = Some(tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(sources),
                shutdown_rx.clone(),
            )));
        }
        let health = Health::new(&agent, publisher.clone());
        Ok(Site {
            agent,
            delivery,
            clipper,
            publisher,
            previewer,
            applier: applier_thread,
            metrics,
            health,
            stop: shutdown_tx,
        })
    }

    /// Logs every camera's health and refreshes its published status.
    pub fn report(&mut self) {
        self.health.report(&self.agent);
    }

    /// Stops every stage within `within`, data first: cameras, detectors and rules (which
    /// report the open counts interval); delivery writes what is left into the outbox; the
    /// clipper finishes the clips asked for; the health tasks and the previewer end; the
    /// publisher sends what it can and its offline status (the broker's Last Will says
    /// offline if it cannot); the metrics server and the applier of pushes last. Whatever is
    /// still running at the deadline is named in the error and left behind.
    pub async fn shutdown(self, within: Duration) -> Result<(), Late> {
        let deadline = Deadline::now() + within;
        let left = || deadline.saturating_duration_since(Deadline::now());
        let mut late = match self.agent.shutdown(within).await {
            Ok(()) => Vec::new(),
            Err(Late(l)) => l,
        };
        let wait_thread = |name: &str, done: Option<tokio::task::JoinHandle<()>>| {
            let name = name.to_owned();
            async move {
                if let Some(h) = done {
                    if tokio::time::timeout_at(deadline, h).await.is_err() {
                        return Some(name);
                    }
                }
                None
            }
        };
        // Blocking joins run on the blocking pool, each under the one deadline.
        let d = self
            .delivery
            .map(|d| tokio::task::spawn_blocking(move || d.join()));
        late.extend(wait_thread("delivery", d).await);
        let c = self.clipper.map(|c| {
            let within = left();
            tokio::task::spawn_blocking(move || c.join(within))
        });
        late.extend(wait_thread("clips", c).await);
        late.extend(self.health.stop(deadline).await);
        let p = self
            .previewer
            .map(|p| tokio::task::spawn_blocking(move || p.stop()));
        late.extend(wait_thread("previews", p).await);
        let _ = self.stop.send(true);
        if let Some(p) = &self.publisher {
            if tokio::time::timeout_at(deadline, p.join()).await.is_err() {
                tracing::warn!(
                    "the publisher did not stop in time; the broker's Last Will reports the \
                     agent offline"
                );
                late.push("publisher".into());
            }
        }
        // The applier's channel closed with the publisher.
        let a = self.applier.map(|a| {
            tokio::task::spawn_blocking(move || {
                let _ = a.join();
            })
        });
        late.extend(wait_thread("pushed analytics", a).await);
        if let Some(m) = self.metrics {
            if tokio::time::timeout_at(deadline, m).await.is_err() {
                late.push("metrics server".into());
            }
        }
        if late.is_empty() {
            Ok(())
        } else {
            Err(Late(late))
        }
    }
}

/// The delivery side of a running agent: the outbox, its publisher, and the delivery that
/// turns rule output into outbox entries.
struct Sending {
    delivery: crate::delivery::Delivery,
    publisher: Arc<ioc_outbox::PublisherHandle>,
    outbox: ioc_outbox::Outbox,
    /// Cuts event clips; `None` when clips are off or no camera is RTSP.
    clipper: Option<crate::clip::Clipper>,
}

/// Opens the outbox and starts the publisher when `[mqtt]` is configured.
fn start_delivery(
    cfg: &AgentConfig,
    cameras: &[Camera],
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Sending>> {
    let Some(m) = &cfg.mqtt else {
        tracing::warn!("no [mqtt] section: incidents are only logged");
        return Ok(None);
    };
    let path = cfg.resolve(&cfg.outbox.path);
    let outbox = ioc_outbox::Outbox::open(
        &path,
        ioc_outbox::OutboxConfig {
            max_bytes: cfg.outbox.max_bytes,
        },
    )
    .with_context(|| format!("outbox {}", path.display()))?;
    let publisher = Arc::new(ioc_outbox::Publisher::spawn(
        outbox.clone(),
        m.clone(),
        &cfg.agent.id,
        cfg.agent.name.clone(),
        env!("CARGO_PKG_VERSION"),
        cameras.iter().map(|c| c.spec.id.clone()).collect(),
        shutdown,
    )?);
    let metas = cameras
        .iter()
        .map(|c| crate::delivery::CameraMeta::new(&c.spec.id, c.analytics.as_ref()))
        .collect();
    let mut delivery = crate::delivery::Delivery::new(
        outbox.clone(),
        publisher.clone(),
        &cfg.agent.id,
        metas,
        cfg.snapshot.clone(),
    );
    let rings: Vec<_> = cameras.iter().map(|c| c.spec.clips.clone()).collect();
    let clipper = if rings.iter().any(Option::is_some) {
        // Muxing scratch files live next to the outbox (writable under the unit's sandbox).
        let work = path
            .parent()
            .map_or_else(|| PathBuf::from("clips-work"), |d| d.join("clips-work"));
        let (clipper, requests) = crate::clip::Clipper::spawn(
            cfg.clips.clone(),
            rings,
            work,
            crate::clip::ClipSink {
                outbox: outbox.clone(),
                publisher: publisher.clone(),
            },
        )
        .context("starting the clip thread")?;
        delivery = delivery.with_clips(requests, cfg.clips.min_severity);
        Some(clipper)
    } else {
        None
    };
    Ok(Some(Sending {
        delivery,
        publisher,
        outbox,
        clipper,
    }))
}

/// Logs each frame's detections: at INFO with `agent.log_detections`, else at DEBUG.
fn detection_logger(
    ids: Vec<String>,
    labels: Vec<String>,
    log_all: bool,
) -> impl Fn(&FrameResult) + Send + Sync + 'static {
    move |r| {
        if matches!(r.outcome, crate::detect::Outcome::Detected(_)) {
            let summary = summarise(r.detections(), &labels);
            let cam = ids.get(r.camera).map(String::as_str).unwrap_or("?");
            let pts_s = r.frame.pts().as_secs_f64();
            if log_all {
                tracing::info!(camera = cam, pts_s, latency_ms = r.latency.as_millis() as u64, objects = %summary, "detections");
            } else {
                tracing::debug!(camera = cam, pts_s, objects = %summary, "detections");
            }
        }
    }
}

/// The periodic health summary of a running agent: per camera rates in the log, a warning
/// when a camera is under-served, and its retained status (on every state change, and with
/// fresh figures every [`STATUS_EVERY`]).
struct Health {
    publisher: Option<Arc<ioc_outbox::PublisherHandle>>,
    /// The latest figures of each camera, for its status.
    figures: Arc<std::sync::Mutex<Vec<Option<Figures>>>>,
    cameras: Vec<crate::health::CameraHealth>,
    /// The tasks that publish each camera's status on every state change.
    on_change: Vec<tokio::task::JoinHandle<()>>,
    last: Instant,
    last_status: Instant,
    prev_frames: u64,
}

impl Health {
    fn new(agent: &Agent, publisher: Option<Arc<ioc_outbox::PublisherHandle>>) -> Self {
        let figures = Arc::new(std::sync::Mutex::new(vec![None; agent.cameras.len()]));
        let mut on_change = Vec::new();
        if let Some(publisher) = &publisher {
            // Retained camera status on every state change: the center sees every camera's
            // state and why.
            for (i, c) in agent.cameras.iter().enumerate() {
                let (mut status, id, name, publisher, figures) = (
                    c.handle.status.clone(),
                    c.handle.id.clone(),
                    c.name.clone(),
                    publisher.clone(),
                    figures.clone(),
                );
                on_change.push(tokio::spawn(async move {
                    loop {
                        let s = status.borrow_and_update().clone();
                        let f = figures.lock().unwrap_or_else(|p| p.into_inner())[i];
                        publish_status(&publisher, &id, name.as_deref(), &s, f);
                        if status.changed().await.is_err() {
                            break;
                        }
                    }
                }));
            }
        }
        Health {
            publisher,
            figures,
            cameras: agent
                .cameras
                .iter()
                .map(|_| crate::health::CameraHealth::new())
                .collect(),
            on_change,
            last: Instant::now(),
            last_status: Instant::now(),
            prev_frames: 0,
        }
    }

    fn report(&mut self, agent: &Agent) {
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let publish = self.last_status.elapsed() >= STATUS_EVERY;
        if publish {
            self.last_status = Instant::now();
        }
        for (i, c) in agent.cameras.iter().enumerate() {
            let state = c.handle.status.borrow().clone();
            let streaming = state.state == CameraState::Streaming;
            let (rates, change) = self.cameras[i].sample(counters(c), secs, streaming);
            let latency = c.detect.latency().map(|(median, _)| median);
            tracing::info!(
                camera = %c.handle.id,
                state = ?state.state,
                received_fps = format!("{:.1}", rates.received_fps),
                analysed_fps = format!("{:.1}", rates.analysed_fps),
                target_fps = format!("{:.1}", c.target_fps),
                inferences_per_s = format!("{:.1}", rates.detect_fps),
                dropped = rates.dropped,
                latency_ms = latency.map_or(0, |l| l.as_millis() as u64),
                "camera health"
            );
            match change {
                Some(crate::health::Service::UnderServed {
                    analysed_fps,
                    offered_fps,
                }) => tracing::warn!(
                    camera = %c.handle.id,
                    analysed_fps = format!("{analysed_fps:.1}"),
                    offered_fps = format!("{offered_fps:.1}"),
                    error_code = "camera_under_served",
                    "the detectors cannot keep up with this camera: frames are dropped and incidents may be late or missed; lower detect.fps, enable detect.motion, or add detect.workers"
                ),
                Some(crate::health::Service::Recovered) => {
                    tracing::info!(camera = %c.handle.id, "the detectors keep up with this camera again")
                }
                None => {}
            }
            let f = Figures {
                received_fps: rates.received_fps,
                analysed_fps: rates.analysed_fps,
                target_fps: c.target_fps,
                dropped: rates.dropped,
                latency,
            };
            self.figures.lock().unwrap_or_else(|p| p.into_inner())[i] = streaming.then_some(f);
            if let (true, Some(p)) = (publish, &self.publisher) {
                publish_status(
                    p,
                    &c.handle.id,
                    c.name.as_deref(),
                    &state,
                    streaming.then_some(f),
                );
            }
        }
        let st = agent.detect_stats();
        let frames = st.frames.load(Ordering::Relaxed);
        tracing::info!(
            inferences_per_s = format!("{:.1}", (frames - self.prev_frames) as f64 / secs),
            mean_inference_ms = format!(
                "{:.1}",
                st.busy_us.load(Ordering::Relaxed) as f64 / frames.max(1) as f64 / 1000.0
            ),
            "detector health"
        );
        self.prev_frames = frames;
    }

    /// Waits for the status tasks: they end when their cameras have stopped (and published
    /// their last state). Names the one late, if any (the rest are aborted with it).
    async fn stop(self, deadline: Deadline) -> Option<String> {
        let mut late = None;
        for t in self.on_change {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
                late = Some("camera status".to_owned());
            }
        }
        late
    }
}

/// The figures a camera status carries.
#[derive(Clone, Copy, Debug)]
struct Figures {
    received_fps: f64,
    analysed_fps: f64,
    target_fps: f64,
    dropped: u64,
    latency: Option<Duration>,
}

fn counters(c: &AgentCamera) -> crate::health::Counters {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    crate::health::Counters {
        received: l(&c.handle.counters.received),
        offered: l(&c.detect.offered),
        detected: l(&c.detect.detected),
        held: l(&c.detect.held),
        dropped: l(&c.detect.dropped),
    }
}

fn publish_status(
    publisher: &ioc_outbox::PublisherHandle,
    id: &str,
    name: Option<&str>,
    s: &crate::source::CameraStatus,
    f: Option<Figures>,
) {
    let state = match s.state {
        CameraState::Connecting => ioc_protocol::CameraState::Connecting,
        CameraState::Streaming => ioc_protocol::CameraState::Streaming,
        CameraState::Reconnecting => ioc_protocol::CameraState::Reconnecting,
        CameraState::Failed => ioc_protocol::CameraState::Failed,
        CameraState::Stopped => ioc_protocol::CameraState::Stopped,
    };
    let mut wire =
        ioc_protocol::CameraStatus::new(state, ioc_protocol::Timestamp::from_system_time(s.since));
    wire.error = s.error.clone();
    wire.name = name.map(str::to_owned);
    if let (Some(f), CameraState::Streaming) = (f, s.state) {
        wire.fps = Some(f.received_fps as f32);
        wire.detect_fps = Some(f.analysed_fps as f32);
        wire.target_fps = Some(f.target_fps as f32);
        wire.dropped = Some(f.dropped);
        wire.detect_latency_ms = f.latency.map(|l| l.as_secs_f32() * 1000.0);
    }
    if let Err(e) = publisher.publish_camera_status(id, &wire) {
        tracing::warn!(camera = %id, error = %e, "camera status not published");
    }
}

fn log_output(cameras: &[String], o: &Output) {
    match o {
        Output::Event { camera, event, .. } => {
            let cam = cameras.get(*camera).map(String::as_str).unwrap_or("?");
            let details = serde_json::to_string(&event.details).unwrap_or_default();
            // INFO: incidents are the agent doing its job; WARN is for what needs a person
            // on the box.
            tracing::info!(
                camera = cam,
                incident = event.incident,
                kind = ?event.kind,
                phase = ?event.phase,
                rule = %event.rule,
                zone = event.zone.as_deref().unwrap_or(""),
                line = event.line.as_deref().unwrap_or(""),
                objects = event.objects.len(),
                %details,
                "incident"
            );
        }
        Output::Analytics { camera, config } => {
            let cam = cameras.get(*camera).map(String::as_str).unwrap_or("?");
            tracing::info!(
                camera = cam,
                zones = config.zones.len(),
                lines = config.lines.len(),
                rules = config.rules.len(),
                "camera runs new analytics"
            );
        }
        Output::Counts { camera, report, .. } => {
            let cam = cameras.get(*camera).map(String::as_str).unwrap_or("?");
            let rows: Vec<String> = report
                .counts
                .iter()
                .map(|c| {
                    format!(
                        "{}/{}: in {} out {}",
                        c.line, c.class, c.in_count, c.out_count
                    )
                })
                .collect();
            tracing::info!(camera = cam, interval_s = report.end_sec - report.start_sec, counts = %rows.join(", "), "line counts");
        }
    }
}
