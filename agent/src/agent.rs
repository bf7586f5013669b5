//! `ioc-agent run`: every configured camera feeding one shared detector.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ioc_detect::{postprocess::DecodeParams, Detector, DetectorConfig};
use tokio::sync::watch;

use crate::analytics::{CameraAnalytics, Clock, Output, RulesWorker};
use crate::camera::{self, CameraHandle, CameraSpec, SourceSpec};
use crate::config::AgentConfig;
use crate::decode::DecodeSettings;
use crate::detect::{class_filter, DetectQueue, DetectorWorker, FrameDetections, QueuePolicy};
use crate::source::rtsp::RtspTarget;
use crate::source::CameraState;

/// Loads the detector described by `[detect]`.
pub fn load_detector(cfg: &AgentConfig) -> anyhow::Result<Detector> {
    let d = &cfg.detect;
    let manifest = cfg.resolve(&d.model);
    let dc = DetectorConfig {
        decode: DecodeParams {
            score_threshold: d.score_threshold,
            nms_iou: d.nms_iou,
            max_detections: d.max_detections,
        },
        intra_threads: d.intra_threads,
        inter_threads: d.inter_threads,
        ort_library: d.ort_library.as_ref().map(|p| cfg.resolve(p)),
    };
    Detector::load(&manifest, dc).with_context(|| format!("detect.model {}", manifest.display()))
}

/// Resolves the enabled cameras into task specs for a model of `detector`'s input.
pub fn camera_specs(cfg: &AgentConfig, detector: &Detector) -> anyhow::Result<Vec<CameraSpec>> {
    let (width, height) = detector.input_size();
    let input = &detector.manifest().input;
    let mut specs = Vec::new();
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
        specs.push(CameraSpec {
            index: specs.len(),
            id: c.id.clone(),
            source,
            h264_decoder: c.decoder.clone().unwrap_or_else(|| cfg.decode.h264.clone()),
            h265_decoder: c.decoder.clone().unwrap_or_else(|| cfg.decode.h265.clone()),
            decode: DecodeSettings {
                decoder: String::new(),
                fps: c.fps(&cfg.detect),
                width,
                height,
                resize: input.resize,
                // Hand the model its own channel order so preprocessing is a straight copy.
                format: input.colour,
                realtime: c.realtime,
            },
            initial_backoff: cfg.reconnect.initial_backoff(),
            max_backoff: cfg.reconnect.max_backoff(),
            connect_timeout: cfg.reconnect.connect_timeout(),
            idle_timeout: cfg.reconnect.idle_timeout(),
        });
    }
    Ok(specs)
}

/// A running agent: cameras, the detector and the rules.
pub struct Agent {
    /// One handle per enabled camera, in config order.
    pub cameras: Vec<CameraHandle>,
    /// The shared detector queue.
    pub queue: Arc<DetectQueue>,
    worker: DetectorWorker,
    rules: RulesWorker,
    shutdown_tx: watch::Sender<bool>,
}

impl Agent {
    /// Starts every enabled camera feeding `detector` (see [`load_detector`]).
    /// `on_detections` runs on the detector thread for every detected frame;
    /// `on_output` on the rules thread for every rule event and count report.
    /// Must be called inside a tokio runtime.
    pub fn start(
        cfg: &AgentConfig,
        detector: Detector,
        on_detections: impl Fn(&FrameDetections) + Send + 'static,
        on_output: impl FnMut(Output) + Send + 'static,
    ) -> anyhow::Result<Self> {
        crate::decode::init()?;
        let specs = camera_specs(cfg, &detector)?;
        let keep = class_filter(detector.labels(), &cfg.detect.classes);
        // Live cameras must stay current; files lose nothing by waiting.
        let live = specs
            .iter()
            .any(|s| matches!(s.source, SourceSpec::Rtsp(_)) || s.decode.realtime);
        let policy = if live {
            QueuePolicy::DropOldest
        } else {
            QueuePolicy::Block
        };

        let start = std::time::Instant::now();
        let enabled = cfg.cameras.iter().enumerate().filter(|(_, c)| c.enabled);
        let mut per_camera = Vec::with_capacity(specs.len());
        for ((i, c), spec) in enabled.zip(&specs) {
            let clock = match spec.source {
                SourceSpec::File(_) if !spec.decode.realtime => Clock::Stream,
                _ => Clock::Arrival,
            };
            let analytics = match &c.analytics {
                None => None,
                Some(a) => Some(
                    CameraAnalytics::new(a, detector.labels(), clock, start)
                        .map_err(|e| anyhow::anyhow!("cameras[{i}].analytics: {}", e.join("; ")))?,
                ),
            };
            per_camera.push(analytics);
        }
        let rules = RulesWorker::spawn(per_camera, cfg.agent.utc_offset_minutes, on_output)
            .context("starting the rules thread")?;
        let frames = rules.frame_sender();

        let queue = DetectQueue::new(cfg.detect.queue_capacity, policy);
        let worker = DetectorWorker::spawn(detector, queue.clone(), keep, move |r| {
            on_detections(&r);
            frames.send(r);
        })
        .context("starting the detector thread")?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let cameras: Vec<CameraHandle> = specs
            .into_iter()
            .map(|s| camera::spawn(s, queue.clone(), shutdown_rx.clone()))
            .collect();
        // The offline rule hears of every stream loss and recovery.
        for (i, c) in cameras.iter().enumerate() {
            let mut status = c.status.clone();
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
            queue,
            worker,
            rules,
            shutdown_tx,
        })
    }

    /// Detector counters.
    pub fn detect_stats(&self) -> &Arc<crate::detect::DetectStats> {
        self.worker.stats()
    }

    /// Stops the cameras (TEARDOWN sent), then drains and stops the detector
    /// and the rules.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for c in self.cameras {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.task).await;
        }
        let (worker, rules) = (self.worker, self.rules);
        let _ = tokio::task::spawn_blocking(move || {
            worker.shutdown();
            rules.shutdown();
        })
        .await;
    }
}

/// `ioc-agent run`: runs until SIGINT/SIGTERM, logging detections and a
/// health summary every `summary_every`.
pub async fn run(config_path: &Path, summary_every: Duration) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config_path)?;
    crate::decode::init()?;
    let env_errors = cfg.check_environment();
    if !env_errors.is_empty() {
        anyhow::bail!("{}: {}", config_path.display(), env_errors.join("\n  "));
    }
    let ids: Vec<String> = cfg
        .cameras
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.clone())
        .collect();
    let log_all = cfg.agent.log_detections;
    let detector = load_detector(&cfg)?;
    let labels = detector.labels().to_vec();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut publisher_handle = None;
    let mut delivery = match &cfg.mqtt {
        None => {
            tracing::warn!("no [mqtt] section: incidents are only logged");
            None
        }
        Some(m) => {
            let path = cfg.resolve(&cfg.outbox.path);
            let outbox = ioc_outbox::Outbox::open(
                &path,
                ioc_outbox::OutboxConfig {
                    max_bytes: cfg.outbox.max_bytes,
                },
            )
            .with_context(|| format!("outbox {}", path.display()))?;
            let publisher = ioc_outbox::Publisher::spawn(
                outbox.clone(),
                m.clone(),
                &cfg.agent.id,
                env!("CARGO_PKG_VERSION"),
                ids.clone(),
                shutdown_rx.clone(),
            )?;
            let publisher = Arc::new(publisher);
            publisher_handle = Some(publisher.clone());
            let resize = detector.manifest().input.resize;
            let metas = cfg
                .cameras
                .iter()
                .filter(|c| c.enabled)
                .map(|c| crate::delivery::CameraMeta::new(&c.id, c.analytics.as_ref(), resize))
                .collect();
            Some(crate::delivery::Delivery::new(
                outbox,
                publisher,
                &cfg.agent.id,
                metas,
                cfg.snapshot.clone(),
            ))
        }
    };
    let names = ids.clone();
    let camera_names = ids.clone();
    let agent = Agent::start(
        &cfg,
        detector,
        move |r| {
            let summary = summarise(r, &labels);
            let cam = names.get(r.camera).map(String::as_str).unwrap_or("?");
            if log_all {
                tracing::info!(camera = cam, pts_s = r.pts.as_secs_f64(), latency_ms = r.latency.as_millis() as u64, objects = %summary, "detections");
            } else {
                tracing::debug!(camera = cam, pts_s = r.pts.as_secs_f64(), objects = %summary, "detections");
            }
        },
        move |o| {
            log_output(&camera_names, &o);
            if let Some(d) = delivery.as_mut() {
                d.handle(o);
            }
        },
    )?;
    tracing::info!(agent = %cfg.agent.id, cameras = ids.len(), "ioc-agent running");
    if let Some(publisher) = publisher_handle {
        // Retained camera status: the center sees every camera's state and why.
        for c in &agent.cameras {
            let (mut status, id, publisher) = (c.status.clone(), c.id.clone(), publisher.clone());
            tokio::spawn(async move {
                loop {
                    let s = status.borrow_and_update().clone();
                    let state = match s.state {
                        CameraState::Connecting => ioc_protocol::CameraState::Connecting,
                        CameraState::Streaming => ioc_protocol::CameraState::Streaming,
                        CameraState::Reconnecting => ioc_protocol::CameraState::Reconnecting,
                        CameraState::Failed => ioc_protocol::CameraState::Failed,
                        CameraState::Stopped => ioc_protocol::CameraState::Stopped,
                    };
                    let mut wire = ioc_protocol::CameraStatus::new(
                        state,
                        ioc_protocol::Timestamp::from_system_time(s.since),
                    );
                    wire.error = s.error;
                    if let Err(e) = publisher.publish_camera_status(&id, &wire) {
                        tracing::warn!(camera = %id, error = %e, "camera status not published");
                    }
                    if status.changed().await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    let mut tick = tokio::time::interval(summary_every);
    tick.tick().await;
    let mut last = Instant::now();
    let mut prev: Vec<(u64, u64)> = vec![(0, 0); agent.cameras.len()];
    let mut prev_frames = 0;
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tick.tick() => {
                let secs = last.elapsed().as_secs_f64();
                last = Instant::now();
                let st = agent.detect_stats();
                let frames = st.frames.load(Ordering::Relaxed);
                for (i, c) in agent.cameras.iter().enumerate() {
                    let rx = c.counters.received.load(Ordering::Relaxed);
                    let det = c.counters.decode.handed_on.load(Ordering::Relaxed);
                    tracing::info!(
                        camera = %c.id,
                        state = ?c.status.borrow().state,
                        received_fps = format!("{:.1}", (rx - prev[i].0) as f64 / secs),
                        to_detector_fps = format!("{:.1}", (det - prev[i].1) as f64 / secs),
                        "camera health"
                    );
                    prev[i] = (rx, det);
                }
                tracing::info!(
                    detected_fps = format!("{:.1}", (frames - prev_frames) as f64 / secs),
                    queue_dropped_total = agent.queue.dropped(),
                    mean_inference_ms = format!("{:.1}", st.busy_us.load(Ordering::Relaxed) as f64 / frames.max(1) as f64 / 1000.0),
                    "detector health"
                );
                prev_frames = frames;
            }
        }
    }
    tracing::info!("shutting down");
    agent.shutdown().await;
    // The publisher sends what it can, then its offline status.
    let _ = shutdown_tx.send(true);
    Ok(())
}

fn log_output(cameras: &[String], o: &Output) {
    match o {
        Output::Event { camera, event, .. } => {
            let cam = cameras.get(*camera).map(String::as_str).unwrap_or("?");
            let details = serde_json::to_string(&event.details).unwrap_or_default();
            tracing::warn!(
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
pub fn summarise(r: &FrameDetections, labels: &[String]) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for d in &r.detections {
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
