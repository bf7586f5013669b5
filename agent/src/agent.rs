//! `ioc-agent run`: every configured camera feeding one shared detector.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ioc_detect::{postprocess::DecodeParams, Detector, DetectorConfig};
use tokio::sync::watch;

use crate::camera::{self, CameraHandle, CameraSpec, SourceSpec};
use crate::config::AgentConfig;
use crate::decode::DecodeSettings;
use crate::detect::{class_filter, DetectQueue, DetectorWorker, FrameDetections, QueuePolicy};
use crate::source::rtsp::RtspTarget;

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

/// A running agent: cameras and the detector.
pub struct Agent {
    /// One handle per enabled camera, in config order.
    pub cameras: Vec<CameraHandle>,
    /// The shared detector queue.
    pub queue: Arc<DetectQueue>,
    worker: DetectorWorker,
    shutdown_tx: watch::Sender<bool>,
}

impl Agent {
    /// Starts every enabled camera feeding `detector` (see [`load_detector`]).
    /// `on_result` is called on the detector thread for every detected frame.
    pub fn start(
        cfg: &AgentConfig,
        detector: Detector,
        on_result: impl Fn(FrameDetections) + Send + 'static,
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
        let queue = DetectQueue::new(cfg.detect.queue_capacity, policy);
        let worker = DetectorWorker::spawn(detector, queue.clone(), keep, on_result)
            .context("starting the detector thread")?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let cameras = specs
            .into_iter()
            .map(|s| camera::spawn(s, queue.clone(), shutdown_rx.clone()))
            .collect();
        Ok(Self {
            cameras,
            queue,
            worker,
            shutdown_tx,
        })
    }

    /// Detector counters.
    pub fn detect_stats(&self) -> &Arc<crate::detect::DetectStats> {
        self.worker.stats()
    }

    /// Stops the cameras (TEARDOWN sent), then drains and stops the detector.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for c in self.cameras {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.task).await;
        }
        let worker = self.worker;
        let _ = tokio::task::spawn_blocking(move || worker.shutdown()).await;
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
    let names = ids.clone();
    let agent = Agent::start(&cfg, detector, move |r| {
        let summary = summarise(&r, &labels);
        let cam = names.get(r.camera).map(String::as_str).unwrap_or("?");
        if log_all {
            tracing::info!(camera = cam, pts_s = r.pts.as_secs_f64(), latency_ms = r.latency.as_millis() as u64, objects = %summary, "detections");
        } else {
            tracing::debug!(camera = cam, pts_s = r.pts.as_secs_f64(), objects = %summary, "detections");
        }
    })?;
    tracing::info!(agent = %cfg.agent.id, cameras = ids.len(), "ioc-agent running");

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
    Ok(())
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
