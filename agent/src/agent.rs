//! The frame path of a site: every configured camera feeding one shared pool of detectors,
//! and the rules after them ([`Agent`]). The rest of `ioc-agent run` is in [`crate::site`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
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

pub(crate) fn cores() -> usize {
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

/// Stages that had not stopped when the deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Late(pub Vec<String>);

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl std::error::Error for Late {}

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
    /// Tell the offline rule of each camera's stream losses; each ends with its camera.
    forwarders: Vec<tokio::task::JoinHandle<()>>,
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
        let mut forwarders = Vec::with_capacity(cameras.len());
        for (i, c) in cameras.iter().enumerate() {
            let mut status = c.handle.status.clone();
            let notify = rules.stream_sender();
            forwarders.push(tokio::spawn(async move {
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
            }));
        }
        Ok(Self {
            cameras,
            scheduler,
            epoch,
            pool,
            rules,
            forwarders,
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

    /// Stops the cameras (TEARDOWN sent), then drains and stops the detectors and the rules,
    /// all within `within`. Every camera is told at once and waited for under the same
    /// deadline, so hung cameras cost one wait, not one each; one still running at the
    /// deadline is aborted and named in the error.
    pub async fn shutdown(self, within: Duration) -> Result<(), Late> {
        let deadline = tokio::time::Instant::now() + within;
        let _ = self.shutdown_tx.send(true);
        let mut late = Vec::new();
        for c in self.cameras {
            let abort = c.handle.task.abort_handle();
            if tokio::time::timeout_at(deadline, c.handle.task)
                .await
                .is_err()
            {
                abort.abort();
                late.push(format!("camera {}", c.handle.id));
            }
        }
        // Each ends when its camera's status channel closes.
        for f in self.forwarders {
            let abort = f.abort_handle();
            if tokio::time::timeout_at(deadline, f).await.is_err() {
                abort.abort();
            }
        }
        let (pool, rules) = (self.pool, self.rules);
        let drained = tokio::task::spawn_blocking(move || {
            pool.shutdown();
            rules.shutdown();
        });
        if tokio::time::timeout_at(deadline, drained).await.is_err() {
            late.push("detectors and rules".into());
        }
        if late.is_empty() {
            Ok(())
        } else {
            Err(Late(late))
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
