//! `ioc-agent run`: every configured camera feeding one shared pool of detectors.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
pub use ioc_base::signal::shutdown_signal;
use ioc_detect::{postprocess::DecodeParams, Detector, DetectorConfig};
use tokio::sync::watch;

use crate::analytics::{CameraAnalytics, Output, RulesCamera, RulesWorker};
use crate::camera::{self, CameraHandle, CameraSpec, SourceSpec};
use crate::clock::Epoch;
use crate::config::{AgentConfig, PoolSize};
use crate::decode::DecodeSettings;
use crate::detect::{
    class_filter, CameraDetectStats, CameraPlan, DetectorPool, FrameResult, QueuePolicy, Scheduler,
};
use crate::source::rtsp::RtspTarget;
use crate::source::CameraState;

/// The detector pool size for this machine and config.
pub fn pool_size(cfg: &AgentConfig) -> PoolSize {
    cfg.detect.pool_size(cores())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loads one detector described by `[detect]` with `threads` intra-op threads.
pub fn load_detector_with(cfg: &AgentConfig, threads: usize) -> anyhow::Result<Detector> {
    let d = &cfg.detect;
    let manifest = cfg.resolve(&d.model);
    let dc = DetectorConfig {
        decode: DecodeParams {
            score_threshold: d.score_threshold,
            nms_iou: d.nms_iou,
            max_detections: d.max_detections,
        },
        intra_threads: threads,
        inter_threads: d.inter_threads,
        spinning: d.ort_spinning,
        ort_library: d.ort_library.as_ref().map(|p| cfg.resolve(p)),
        precision: d.precision,
        input_size: d.input_size,
    };
    Detector::load(&manifest, dc).with_context(|| format!("detect.model {}", manifest.display()))
}

/// Loads one detector as the pool's workers are configured (tools and tests).
pub fn load_detector(cfg: &AgentConfig) -> anyhow::Result<Detector> {
    load_detector_with(cfg, pool_size(cfg).threads)
}

/// Loads the pool's detectors: one model session per worker.
pub fn load_detectors(cfg: &AgentConfig) -> anyhow::Result<Vec<Detector>> {
    let size = pool_size(cfg);
    (0..size.workers)
        .map(|_| load_detector_with(cfg, size.threads))
        .collect()
}

/// One enabled camera, resolved from the config once: its task's spec and its analytics.
pub struct Camera {
    /// What its task needs (source, decoding, backoff). `spec.index` is its place among the
    /// enabled cameras: it tags the camera's frames, results, events and statuses.
    pub spec: CameraSpec,
    /// Its zones, lines and rules, if any.
    pub analytics: Option<ioc_tracking::AnalyticsConfig>,
    /// Its key in the config file (`cameras[3]`), for messages.
    pub key: String,
    /// Its name for people (sent in its status).
    pub name: Option<String>,
}

/// The enabled cameras of `cfg`, in config order.
pub fn resolve_cameras(cfg: &AgentConfig, epoch: Epoch) -> anyhow::Result<Vec<Camera>> {
    let mut cameras: Vec<Camera> = Vec::new();
    let enabled = cfg.cameras.iter().filter(|c| c.enabled).count();
    let cores = cores();
    for (i, c) in cfg.cameras.iter().enumerate().filter(|(_, c)| c.enabled) {
        let source = match (&c.url, &c.file) {
            (Some(url), _) => SourceSpec::Rtsp(
                RtspTarget::new(
                    url,
                    c.username.as_deref(),
                    c.password.as_deref(),
                    c.transport,
                )
                .map_err(|e| anyhow::anyhow!("cameras[{i}].url: {e}"))?,
            ),
            (None, Some(f)) => SourceSpec::File(cfg.resolve(f)),
            (None, None) => anyhow::bail!("cameras[{i}]: needs url or file"),
        };
        // Clips come from the stream as received: RTSP cameras, when they are delivered.
        let clips =
            (cfg.clips.enabled && cfg.mqtt.is_some() && matches!(source, SourceSpec::Rtsp(_)))
                .then(|| Arc::new(crate::clip::ClipRing::for_config(&cfg.clips)));
        let spec = CameraSpec {
            index: cameras.len(),
            id: c.id.clone(),
            source,
            h264_decoder: c.decoder.clone().unwrap_or_else(|| cfg.decode.h264.clone()),
            h265_decoder: c.decoder.clone().unwrap_or_else(|| cfg.decode.h265.clone()),
            decode: DecodeSettings {
                decoder: String::new(),
                fps: c.fps(&cfg.detect),
                realtime: c.realtime,
                threads: cfg.decode.threads_for(enabled, cores),
            },
            motion: cfg.detect.motion.clone(),
            epoch,
            initial_backoff: cfg.reconnect.initial_backoff(),
            max_backoff: cfg.reconnect.max_backoff(),
            connect_timeout: cfg.reconnect.connect_timeout(),
            idle_timeout: cfg.reconnect.idle_timeout(),
            clips,
        };
        cameras.push(Camera {
            spec,
            analytics: c.analytics.clone(),
            key: format!("cameras[{i}]"),
            name: c.name.clone(),
        });
    }
    Ok(cameras)
}

/// A running camera with its detection counters.
pub struct AgentCamera {
    /// The camera task.
    pub handle: CameraHandle,
    /// Its detection counters.
    pub detect: Arc<CameraDetectStats>,
    /// Its target detection rate.
    pub target_fps: f64,
    /// Its name for people.
    pub name: Option<String>,
}

/// A running agent: cameras, the detector pool and the rules.
pub struct Agent {
    /// One per enabled camera, in config order.
    pub cameras: Vec<AgentCamera>,
    /// The detection scheduler.
    pub scheduler: Arc<Scheduler>,
    /// Zero of the rule clocks.
    pub epoch: Epoch,
    pool: DetectorPool,
    rules: RulesWorker,
    shutdown_tx: watch::Sender<bool>,
}

impl Agent {
    /// Starts every enabled camera of `cfg` feeding `detectors` (one worker each; see
    /// [`load_detectors`]). `on_result` runs on a detector thread for every frame taken;
    /// `on_output` on the rules thread for every rule event and count report. Must be called
    /// inside a tokio runtime.
    pub fn start(
        cfg: &AgentConfig,
        detectors: Vec<Detector>,
        on_result: impl Fn(&FrameResult) + Send + Sync + 'static,
        on_output: impl FnMut(Output) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let epoch = Epoch::now();
        let cameras = resolve_cameras(cfg, epoch)?;
        Self::start_with(cfg, cameras, epoch, detectors, on_result, on_output)
    }

    /// As [`Agent::start`], for `cameras` already resolved (with [`resolve_cameras`]) at
    /// `epoch`.
    pub fn start_with(
        cfg: &AgentConfig,
        cameras: Vec<Camera>,
        epoch: Epoch,
        detectors: Vec<Detector>,
        on_result: impl Fn(&FrameResult) + Send + Sync + 'static,
        on_output: impl FnMut(Output) + Send + 'static,
    ) -> anyhow::Result<Self> {
        crate::decode::init()?;
        anyhow::ensure!(!detectors.is_empty(), "no detector to run");
        if cfg.detect.queue_capacity.is_some() {
            tracing::warn!("detect.queue_capacity is no longer used: each camera keeps only its newest frame for the detector; remove the key");
        }
        let labels = detectors[0].labels().to_vec();
        let keep = class_filter(&labels, &cfg.detect.classes);
        // Live cameras must stay current; files lose nothing by waiting.
        let live = cameras
            .iter()
            .any(|c| matches!(c.spec.source, SourceSpec::Rtsp(_)) || c.spec.decode.realtime);
        let policy = if live {
            QueuePolicy::Latest
        } else {
            QueuePolicy::Block
        };
        let plans = cameras
            .iter()
            .map(|c| CameraPlan {
                target_fps: c.spec.decode.fps,
                motion: c.spec.motion.clone(),
            })
            .collect();
        let scheduler = Scheduler::new(plans, policy);

        let mut rules_cams = Vec::with_capacity(cameras.len());
        for c in &cameras {
            let analytics = match &c.analytics {
                None => None,
                Some(a) => Some(
                    CameraAnalytics::new(a, &labels)
                        .map_err(|e| anyhow::anyhow!("{}.analytics: {}", c.key, e.join("; ")))?
                        .with_camera_id(&c.spec.id),
                ),
            };
            rules_cams.push(RulesCamera {
                analytics,
                live: !matches!(c.spec.source, SourceSpec::File(_)) || c.spec.decode.realtime,
                tracker: scheduler.tracker(c.spec.index),
            });
        }
        let rules = RulesWorker::spawn(rules_cams, epoch, cfg.agent.utc_offset_minutes, on_output)
            .context("starting the rules thread")?;
        let frames = rules.frame_sender();
        let pool = DetectorPool::spawn(
            detectors,
            scheduler.clone(),
            keep,
            Arc::new(move |r: FrameResult| {
                on_result(&r);
                frames.send(r);
            }),
        )
        .context("starting the detector threads")?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let cameras: Vec<AgentCamera> = cameras
            .into_iter()
            .map(|Camera { spec: s, name, .. }| {
                let (index, target_fps) = (s.index, s.decode.fps);
                AgentCamera {
                    handle: camera::spawn(s, scheduler.clone(), shutdown_rx.clone()),
                    detect: scheduler.stats(index),
                    target_fps,
                    name,
                }
            })
            .collect();
        // The offline rule hears of every stream loss and recovery.
        for (i, c) in cameras.iter().enumerate() {
            let mut status = c.handle.status.clone();
            let notify = rules.stream_sender();
            tokio::spawn(async move {
                let mut up = None;
                while status.changed().await.is_ok() {
                    let now = match status.borrow().state {
                        CameraState::Streaming => Some(true),
                        CameraState::Reconnecting | CameraState::Failed => Some(false),
                        _ => None,
                    };
                    if now.is_some() && now != up {
                        up = now;
                        notify(i, now == Some(true));
                    }
                }
            });
        }
        Ok(Self {
            cameras,
            scheduler,
            epoch,
            pool,
            rules,
            shutdown_tx,
        })
    }

    /// Detector counters.
    pub fn detect_stats(&self) -> &Arc<crate::detect::DetectStats> {
        self.pool.stats()
    }

    /// The detectors' scheduler (its queue depth is a metric).
    pub fn scheduler(&self) -> &Arc<crate::detect::Scheduler> {
        self.pool.scheduler()
    }

    /// A function that makes a camera run new analytics without restarting it (see
    /// [`RulesWorker::analytics_sender`]).
    pub fn analytics_sender(
        &self,
    ) -> impl Fn(usize, CameraAnalytics, Arc<ioc_tracking::AnalyticsConfig>) + Send + 'static {
        self.rules.analytics_sender()
    }

    /// Stops the cameras (TEARDOWN sent), then drains and stops the detectors and the rules.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for c in self.cameras {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.handle.task).await;
        }
        let (pool, rules) = (self.pool, self.rules);
        let _ = tokio::task::spawn_blocking(move || {
            pool.shutdown();
            rules.shutdown();
        })
        .await;
    }
}

/// Rule outputs that may wait for the delivery thread before the rules wait for it: a burst of
/// incidents rides out a slow disk; each may hold its frame (for the snapshot) meanwhile.
const DELIVERY_QUEUE: usize = 32;

/// How often the retained camera status is refreshed with the latest figures (it is also
/// published on every state change).
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// `ioc-agent run`: runs until SIGINT/SIGTERM, logging detections and a
/// health summary every `summary_every`.
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
    let epoch = Epoch::now();
    let mut cameras = resolve_cameras(&cfg, epoch)?;
    let ids: Vec<String> = cameras.iter().map(|c| c.spec.id.clone()).collect();
    let size = pool_size(&cfg);
    let detectors = load_detectors(&cfg)?;
    // Analytics pushed from the center and kept on disk run instead of the file's, also
    // when the broker is down now.
    let model = detectors[0].manifest().name.clone();
    let kept = crate::pushed::Kept::beside(&cfg.resolve(&cfg.outbox.path));
    let mut pushed_versions = Vec::with_capacity(cameras.len());
    let mut pushed_states = Vec::with_capacity(cameras.len());
    for c in &mut cameras {
        let (run, running, state) = crate::pushed::at_start(
            &cfg,
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
    let sending = start_delivery(&cfg, &cameras, shutdown_rx.clone())?;
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
        &cfg,
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
            std::thread::Builder::new()
                .name("ioc-analytics".into())
                .spawn(move || applier.run(pushes))
                .context("starting the analytics thread")?;
        }
    }
    tracing::info!(agent = %cfg.agent.id, cameras = ids.len(), "ioc-agent running");
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
        tokio::spawn(crate::metrics::serve(
            listener,
            Arc::new(sources),
            shutdown_rx.clone(),
        ));
    }
    let mut health = Health::new(&agent, publisher.clone());
    let mut tick = tokio::time::interval(summary_every);
    tick.tick().await;
    // Under systemd (Type=notify): started, and alive while this loop turns.
    ioc_base::systemd::notify("READY=1");
    let mut watchdog = ioc_base::systemd::watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tick.tick() => health.report(&agent),
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
    // Cameras, then detectors, then rules (which report the open counts interval): all
    // output is in the outbox before the publisher is told to stop.
    agent.shutdown().await;
    // The rules thread is gone with its end of the queue: delivery writes what is left.
    if let Some(d) = delivery {
        let _ = tokio::task::spawn_blocking(move || d.join()).await;
    }
    // Delivery is done asking: the clipper finishes the clips asked for.
    if let Some(c) = clipper {
        let _ = tokio::task::spawn_blocking(move || c.join(Duration::from_secs(20))).await;
    }
    health.stop().await;
    if let Some(p) = previewer {
        let _ = tokio::task::spawn_blocking(move || p.stop()).await;
    }
    // The publisher sends what it can, then its offline status; wait for it, a while (the
    // broker's Last Will says offline if it cannot).
    let _ = shutdown_tx.send(true);
    if let Some(p) = &publisher {
        if tokio::time::timeout(PUBLISHER_STOP, p.join())
            .await
            .is_err()
        {
            tracing::warn!(
                "the publisher did not stop within {PUBLISHER_STOP:?}; the broker's Last Will \
                 reports the agent offline"
            );
        }
    }
    Ok(())
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
    /// their last state).
    async fn stop(self) {
        for t in self.on_change {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// How long a stopping agent waits for its publisher to send its offline status.
const PUBLISHER_STOP: Duration = Duration::from_secs(5);

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

/// `"person×3 car×1"`, for logs.
pub fn summarise(detections: &[ioc_detect::Detection], labels: &[String]) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for d in detections {
        match counts.iter_mut().find(|(c, _)| *c == d.class_id) {
            Some((_, n)) => *n += 1,
            None => counts.push((d.class_id, 1)),
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(c, n)| {
            format!(
                "{}×{n}",
                labels.get(*c as usize).map(String::as_str).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}
