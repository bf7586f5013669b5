//! Camera previews for commissioning from the center (protocol `ioc.preview/1`).
//!
//! Every frame a detector worker takes leaves its latest picture in its camera's [`Slots`]
//! entry (a reference to the decoded buffer, and the detections when the model ran): no copy,
//! no scaling, no encoding on the detection path. The `ioc-preview` thread answers the
//! collector's requests from there, scaling the camera's own frame once to
//! `preview.max_width` (the snapshot branch, not the model's input) and encoding a JPEG, and
//! publishes a periodic preview of every camera when `preview.every_sec` is set (off by
//! default). Bounded: a camera's picture is rendered at most once a second (requests within
//! that second get the same JPEG), at most [`MAX_QUEUED`] requests wait, and a JPEG over
//! `preview.max_bytes` is re-encoded smaller or not sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioc_protocol::{encode_preview, Preview, PreviewObject, PreviewRequest, Timestamp};
use serde::Deserialize;

use crate::decode::DecodedFrame;
use crate::detect::{FrameResult, Outcome};
use crate::snapshot::{render, Overlay, SnapshotConfig};

/// Requests that may wait for the thread (the publisher drops more).
pub const MAX_QUEUED: usize = 8;
/// A camera's picture is rendered at most this often.
const MIN_RENDER_GAP: Duration = Duration::from_secs(1);

/// `[preview]` in `agent.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewConfig {
    /// Answer the collector's preview requests (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Widest preview in pixels (height follows the camera's aspect ratio; never upscaled).
    #[serde(default = "default_width")]
    pub max_width: u32,
    /// JPEG quality 1..=100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Largest JPEG sent (a bigger one is re-encoded at lower quality, then skipped).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Publish every camera's preview this often, unasked (for a camera wall); 0 = off.
    #[serde(default)]
    pub every_sec: f64,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_width: default_width(),
            quality: default_quality(),
            max_bytes: default_max_bytes(),
            every_sec: 0.0,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_width() -> u32 {
    1280
}
fn default_quality() -> u8 {
    75
}
fn default_max_bytes() -> usize {
    512 * 1024
}

impl PreviewConfig {
    /// Problems with the values, as `(key, message)` under `preview.`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: String| out.push((format!("preview.{k}"), m));
        if !(64..=3840).contains(&self.max_width) {
            bad(
                "max_width",
                format!("{} must be within 64..=3840", self.max_width),
            );
        }
        if !(1..=100).contains(&self.quality) {
            bad(
                "quality",
                format!("{} must be within 1..=100", self.quality),
            );
        }
        let most = ioc_protocol::preview::MAX_PREVIEW_BYTES;
        if !(16 * 1024..=most).contains(&self.max_bytes) {
            bad(
                "max_bytes",
                format!("{} must be within 16384..={most}", self.max_bytes),
            );
        }
        if !(self.every_sec == 0.0 || (self.every_sec.is_finite() && self.every_sec >= 1.0)) {
            bad(
                "every_sec",
                format!("{} must be 0 (off) or at least 1 second", self.every_sec),
            );
        }
        out
    }
}

/// A camera's latest picture.
struct Latest {
    frame: DecodedFrame,
    objects: Vec<PreviewObject>,
    /// A new frame since the last render.
    fresh: bool,
}

/// The latest picture of each camera (index = camera index), written by the detector
/// workers, read by the preview thread.
#[derive(Clone)]
pub struct Slots {
    cams: Arc<Vec<Mutex<Option<Latest>>>>,
    labels: Arc<Vec<String>>,
}

impl Slots {
    /// Slots for `cameras` cameras of a model with `labels`.
    pub fn new(cameras: usize, labels: Vec<String>) -> Self {
        Self {
            cams: Arc::new((0..cameras).map(|_| Mutex::new(None)).collect()),
            labels: Arc::new(labels),
        }
    }

    /// Keeps `r`'s frame as its camera's latest (on a detector thread: a buffer reference and
    /// at most a few boxes). A held frame keeps the detections of the last frame the model
    /// ran on.
    pub fn put(&self, r: &FrameResult) {
        let Some(slot) = self.cams.get(r.camera) else {
            return;
        };
        let objects = match &r.outcome {
            Outcome::Failed => return,
            Outcome::Held => None,
            Outcome::Detected(d) => {
                let (w, h) = (r.frame.width.max(1) as f32, r.frame.height.max(1) as f32);
                Some(
                    d.iter()
                        .take(ioc_protocol::preview::MAX_PREVIEW_OBJECTS)
                        .map(|d| PreviewObject {
                            class: self
                                .labels
                                .get(usize::from(d.class_id))
                                .cloned()
                                .unwrap_or_else(|| format!("class{}", d.class_id)),
                            score: d.score.clamp(0.0, 1.0),
                            bbox: [
                                (d.bbox.x1 / w).clamp(0.0, 1.0),
                                (d.bbox.y1 / h).clamp(0.0, 1.0),
                                (d.bbox.x2 / w).clamp(0.0, 1.0),
                                (d.bbox.y2 / h).clamp(0.0, 1.0),
                            ],
                        })
                        .collect(),
                )
            }
        };
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        let objects = match (objects, g.take()) {
            (Some(o), _) => o,
            (None, Some(prev)) => prev.objects,
            (None, None) => Vec::new(),
        };
        *g = Some(Latest {
            frame: r.frame.clone(),
            objects,
            fresh: true,
        });
    }

    /// The picture of camera `i` to render, if there is one; marks it seen.
    fn take_view(&self, i: usize) -> Option<(DecodedFrame, Vec<PreviewObject>, bool)> {
        let mut g = self.cams.get(i)?.lock().unwrap_or_else(|p| p.into_inner());
        let l = g.as_mut()?;
        let fresh = std::mem::replace(&mut l.fresh, false);
        Some((l.frame.clone(), l.objects.clone(), fresh))
    }
}

/// Where previews go: the publisher in the agent, anything in tests.
pub trait PreviewSink: Send + 'static {
    /// Sends one preview payload of camera `camera`; false when it could not go now.
    fn send(&self, camera: &str, payload: Vec<u8>) -> bool;
}

impl PreviewSink for Arc<ioc_outbox::PublisherHandle> {
    fn send(&self, camera: &str, payload: Vec<u8>) -> bool {
        self.publish_preview(camera, payload).unwrap_or(false)
    }
}

/// The preview thread's counters (metrics).
#[derive(Debug, Default)]
pub struct PreviewStats {
    /// Previews published.
    pub sent: AtomicU64,
    /// Previews not sent: no picture yet, not connected, or too big.
    pub skipped: AtomicU64,
    /// Requests that were not valid (bad JSON, unknown camera).
    pub rejected: AtomicU64,
}

/// One camera's last rendering.
struct Rendered {
    at: Instant,
    taken_at: Timestamp,
    width: u32,
    height: u32,
    objects: Vec<PreviewObject>,
    jpeg: Arc<Vec<u8>>,
}

/// The `ioc-preview` thread.
pub struct Previewer {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Its counters.
    pub stats: Arc<PreviewStats>,
}

impl Previewer {
    /// Starts the thread: it answers `requests` (raw payloads from `.../preview-requests`)
    /// for `cameras` (ids, index = camera index) from `slots` and sends through `sink`.
    pub fn spawn(
        cfg: PreviewConfig,
        cameras: Vec<String>,
        slots: Slots,
        requests: Receiver<Vec<u8>>,
        sink: impl PreviewSink,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(PreviewStats::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("ioc-preview".into())
            .spawn({
                let (stats, stop) = (stats.clone(), stop.clone());
                move || {
                    Worker {
                        cfg,
                        cameras,
                        slots,
                        sink,
                        stats,
                        rendered: Vec::new(),
                    }
                    .run(requests, &stop)
                }
            })?;
        Ok(Self {
            thread: Some(thread),
            stop,
            stats,
        })
    }

    /// Stops the thread (within a fraction of a second).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker<S> {
    cfg: PreviewConfig,
    cameras: Vec<String>,
    slots: Slots,
    sink: S,
    stats: Arc<PreviewStats>,
    rendered: Vec<Option<Rendered>>,
}

impl<S: PreviewSink> Worker<S> {
    fn run(mut self, requests: Receiver<Vec<u8>>, stop: &std::sync::atomic::AtomicBool) {
        self.rendered = (0..self.cameras.len()).map(|_| None).collect();
        let every = (self.cfg.every_sec > 0.0).then(|| Duration::from_secs_f64(self.cfg.every_sec));
        let mut next_periodic = every.map(|e| Instant::now() + e);
        // Wakes often enough to notice a stop; requests wake it at once.
        let poll = Duration::from_millis(200);
        while !stop.load(Ordering::Relaxed) {
            let wait = next_periodic
                .map_or(poll, |t| t.saturating_duration_since(Instant::now()))
                .min(poll);
            match requests.recv_timeout(wait) {
                Ok(payload) => self.request(&payload),
                Err(RecvTimeoutError::Timeout) => {}
                // The publisher is gone: only periodic previews could be sent, and not anywhere.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let (Some(t), Some(e)) = (next_periodic, every) {
                if Instant::now() >= t {
                    next_periodic = Some(Instant::now() + e);
                    for i in 0..self.cameras.len() {
                        self.answer(i, None, true);
                    }
                }
            }
        }
    }

    fn request(&mut self, payload: &[u8]) {
        let req: PreviewRequest = match ioc_protocol::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "ignoring a preview request that is not valid");
                return;
            }
        };
        let Some(i) = self.cameras.iter().position(|c| *c == req.camera) else {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = %req.camera, "preview asked for a camera this agent does not run");
            return;
        };
        if !self.cfg.enabled {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(camera = %req.camera, "preview asked for, but preview.enabled = false");
            return;
        }
        self.answer(i, req.request_id, false);
    }

    /// Renders (or reuses, within [`MIN_RENDER_GAP`]) camera `i`'s picture and sends it.
    /// A periodic preview is sent only for a picture newer than the last one rendered.
    fn answer(&mut self, i: usize, request_id: Option<String>, periodic: bool) {
        let reuse = self.rendered[i]
            .as_ref()
            .is_some_and(|r| r.at.elapsed() < MIN_RENDER_GAP);
        if !reuse {
            match self.render(i, periodic) {
                Some(r) => self.rendered[i] = Some(r),
                None => {
                    if !periodic {
                        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            }
        } else if periodic {
            return;
        }
        let Some(r) = &self.rendered[i] else { return };
        let header = Preview {
            schema: ioc_protocol::PREVIEW_SCHEMA.into(),
            camera: self.cameras[i].clone(),
            taken_at: r.taken_at.clone(),
            width: r.width,
            height: r.height,
            request_id,
            objects: r.objects.clone(),
        };
        let payload = match encode_preview(&header, &r.jpeg) {
            Ok(p) => p,
            Err(e) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot encode a preview");
                return;
            }
        };
        if self.sink.send(&self.cameras[i], payload) {
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, i: usize, only_fresh: bool) -> Option<Rendered> {
        let (frame, objects, fresh) = self.slots.take_view(i)?;
        if only_fresh && !fresh {
            return None;
        }
        let mut quality = self.cfg.quality;
        loop {
            let cfg = SnapshotConfig {
                max_width: self.cfg.max_width,
                quality,
                ..SnapshotConfig::default()
            };
            match render(&frame, &Overlay::default(), &cfg) {
                Ok(s) if s.jpeg.len() <= self.cfg.max_bytes => {
                    return Some(Rendered {
                        at: Instant::now(),
                        taken_at: Timestamp::from_system_time(frame.time.wall),
                        width: s.width,
                        height: s.height,
                        objects,
                        jpeg: Arc::new(s.jpeg),
                    })
                }
                Ok(s) if quality > 20 => {
                    tracing::debug!(
                        bytes = s.jpeg.len(),
                        quality,
                        "preview over preview.max_bytes; encoding it smaller"
                    );
                    quality = (quality / 2).max(20);
                }
                Ok(s) => {
                    tracing::warn!(
                        camera = %self.cameras[i],
                        bytes = s.jpeg.len(),
                        max_bytes = self.cfg.max_bytes,
                        "preview over preview.max_bytes even at quality 20; raise \
                         preview.max_bytes or lower preview.max_width"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(camera = %self.cameras[i], error = %e, "cannot render a preview");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;
    use std::time::{Duration, SystemTime};

    use ioc_detect::{BBox, Detection};

    fn result(camera: usize, outcome: Outcome) -> FrameResult {
        gstreamer::init().unwrap();
        // 320x180 I420, mid grey.
        let (w, h) = (320usize, 180usize);
        let mut data = vec![120u8; w * h];
        data.extend(std::iter::repeat_n(128u8, w * h / 2));
        let time = crate::clock::FrameTime {
            pts: Duration::ZERO,
            t_sec: 0.0,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        FrameResult {
            camera,
            order: 1,
            frame: DecodedFrame::from_i420(w as u32, h as u32, data, time),
            outcome,
            latency: Duration::ZERO,
        }
    }

    /// (camera, payload) of each preview sent.
    type Payloads = Vec<(String, Vec<u8>)>;

    #[derive(Clone, Default)]
    struct Sent(Arc<Mutex<Payloads>>);
    impl PreviewSink for Sent {
        fn send(&self, camera: &str, payload: Vec<u8>) -> bool {
            self.0.lock().unwrap().push((camera.into(), payload));
            true
        }
    }
    impl Sent {
        fn wait(&self, n: usize) -> Payloads {
            let until = Instant::now() + Duration::from_secs(10);
            while self.0.lock().unwrap().len() < n && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.0.lock().unwrap().clone()
        }
    }

    fn request(camera: &str, id: &str) -> Vec<u8> {
        ioc_protocol::encode(&PreviewRequest::new(camera, Some(id.into()))).unwrap()
    }

    #[test]
    fn requests_are_answered_from_the_latest_picture_with_its_detections() {
        let slots = Slots::new(2, vec!["person".into(), "car".into()]);
        let sent = Sent::default();
        let (tx, rx) = sync_channel(MAX_QUEUED);
        let cfg = PreviewConfig {
            max_width: 160,
            ..PreviewConfig::default()
        };
        let p = Previewer::spawn(
            cfg,
            vec!["gate".into(), "yard".into()],
            slots.clone(),
            rx,
            sent.clone(),
        )
        .unwrap();
        // No picture yet: nothing is sent (the collector times out and says so).
        tx.send(request("gate", "r-0")).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while p.stats.skipped.load(Ordering::Relaxed) == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        slots.put(&result(
            1,
            Outcome::Detected(vec![Detection {
                class_id: 1,
                score: 0.9,
                bbox: BBox::new(32.0, 90.0, 96.0, 180.0),
            }]),
        ));
        // A held frame keeps the last detections.
        slots.put(&result(1, Outcome::Held));
        tx.send(request("yard", "r-1")).unwrap();
        // Not valid, or not ours: rejected, the thread goes on.
        tx.send(b"{not json".to_vec()).unwrap();
        tx.send(request("nope", "r-2")).unwrap();
        tx.send(request("yard", "r-3")).unwrap();
        let got = sent.wait(2);
        assert_eq!(got.len(), 2, "one answer each for r-1 and r-3");
        let (h, jpeg) = ioc_protocol::decode_preview(&got[0].1).unwrap();
        assert_eq!(got[0].0, "yard");
        assert_eq!(h.request_id.as_deref(), Some("r-1"));
        assert_eq!(
            (h.width, h.height),
            (160, 90),
            "scaled to max_width, aspect kept"
        );
        assert_eq!(h.taken_at.unix_secs(), 1_800_000_000);
        assert_eq!(h.objects.len(), 1);
        assert_eq!(h.objects[0].class, "car");
        assert_eq!(h.objects[0].bbox, [0.1, 0.5, 0.3, 1.0]);
        let img = image::load_from_memory(jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (160, 90));
        // Within a second the same rendering answers again, with the new request's id.
        let (h3, jpeg3) = ioc_protocol::decode_preview(&got[1].1).unwrap();
        assert_eq!(h3.request_id.as_deref(), Some("r-3"));
        assert_eq!(jpeg3, jpeg);
        let stats = p.stats.clone();
        p.stop();
        assert_eq!(stats.sent.load(Ordering::Relaxed), 2);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
        assert_eq!(stats.skipped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn periodic_previews_send_only_new_pictures() {
        let slots = Slots::new(1, vec!["person".into()]);
        let sent = Sent::default();
        let (_tx, rx) = sync_channel(MAX_QUEUED);
        let cfg = PreviewConfig {
            max_width: 64,
            every_sec: 1.0,
            ..PreviewConfig::default()
        };
        let p =
            Previewer::spawn(cfg, vec!["gate".into()], slots.clone(), rx, sent.clone()).unwrap();
        slots.put(&result(0, Outcome::Held));
        let got = sent.wait(1);
        assert_eq!(got.len(), 1);
        let (h, _) = ioc_protocol::decode_preview(&got[0].1).unwrap();
        assert_eq!(h.request_id, None);
        // No new frame: the next periods send nothing.
        std::thread::sleep(Duration::from_millis(2300));
        assert_eq!(sent.0.lock().unwrap().len(), 1);
        let stats = p.stats.clone();
        p.stop();
        assert_eq!(stats.sent.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn config_problems_name_their_keys() {
        let cfg = PreviewConfig {
            max_width: 10,
            quality: 0,
            max_bytes: 10,
            every_sec: 0.5,
            enabled: true,
        };
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "preview.max_width",
                "preview.quality",
                "preview.max_bytes",
                "preview.every_sec"
            ]
        );
        assert!(PreviewConfig::default().problems().is_empty());
    }
}
