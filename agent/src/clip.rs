//! Event clips: a few seconds of the camera's own encoded stream around an incident, as MP4.
//!
//! Nothing is re-encoded. Each camera task keeps its newest access units in a [`ClipRing`]
//! (whole GOPs, from a key frame, bounded in seconds and bytes; the bytes are shared with the
//! decoder, not copied). When an incident starts, [`Delivery`](crate::delivery::Delivery) asks
//! the [`Clipper`] thread for a clip from `pre_s` before to `post_s` after the moment it was
//! decided; once the ring has reached the end of that window (or the camera has gone quiet),
//! the clipper cuts it from the key frame at or before its start, muxes it
//! (`appsrc ! h264parse|h265parse ! mp4mux faststart=true ! filesink`), splits it into parts
//! the broker accepts and stores them in the outbox, all or nothing, like snapshots
//! (`ioc_protocol::clip`). A clip never delays or displaces an event.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::decode::Codec;

/// `[clips]` in `agent.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// Whether incidents get clips (needs `[mqtt]`; RTSP cameras only).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds of video before the moment an incident was decided.
    #[serde(default = "default_pre")]
    pub pre_s: f64,
    /// Seconds after it.
    #[serde(default = "default_post")]
    pub post_s: f64,
    /// Largest clip in bytes: a longer one is cut short at its end.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Largest MQTT message a part makes (keep it under the broker's and collector's limits).
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// The lowest severity that gets a clip (`info`, `warning` or `critical`): counting lines
    /// at `info` would otherwise fill the uplink.
    #[serde(default = "default_min_severity")]
    pub min_severity: ioc_tracking::rules::config::Severity,
    /// Most clips per camera per minute; more incidents than that get their snapshot only.
    #[serde(default = "default_per_minute")]
    pub max_per_minute: u32,
}

fn yes() -> bool {
    true
}
fn default_pre() -> f64 {
    5.0
}
fn default_post() -> f64 {
    5.0
}
fn default_max_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_part_bytes() -> u64 {
    256 * 1024
}
fn default_min_severity() -> ioc_tracking::rules::config::Severity {
    ioc_tracking::rules::config::Severity::Warning
}
fn default_per_minute() -> u32 {
    6
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pre_s: default_pre(),
            post_s: default_post(),
            max_bytes: default_max_bytes(),
            part_bytes: default_part_bytes(),
            min_severity: default_min_severity(),
            max_per_minute: default_per_minute(),
        }
    }
}

impl ClipConfig {
    /// Problems with the values, as `(key, message)` under `clips.`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: String| out.push((format!("clips.{k}"), m));
        for (k, v) in [("pre_s", self.pre_s), ("post_s", self.post_s)] {
            if !(v.is_finite() && (0.0..=MAX_SIDE_S).contains(&v)) {
                bad(k, format!("{v} must be within 0..={MAX_SIDE_S} seconds"));
            }
        }
        if self.pre_s + self.post_s < 1.0 {
            bad(
                "post_s",
                "pre_s + post_s must be at least 1 second".to_owned(),
            );
        }
        if !(64 * 1024..=64 * 1024 * 1024).contains(&self.max_bytes) {
            bad(
                "max_bytes",
                format!("{} must be within 65536..=67108864", self.max_bytes),
            );
        }
        if !(16 * 1024..=8 * 1024 * 1024).contains(&self.part_bytes) {
            bad(
                "part_bytes",
                format!("{} must be within 16384..=8388608", self.part_bytes),
            );
        }
        if self.max_per_minute == 0 {
            bad(
                "max_per_minute",
                "must be at least 1 (set clips.enabled = false for none)".to_owned(),
            );
        }
        out
    }

    /// Seconds of stream a camera's ring keeps: the window plus room for the GOP that holds
    /// its start.
    pub fn ring_seconds(&self) -> f64 {
        self.pre_s + self.post_s + GOP_ALLOWANCE_S
    }
}

/// Longest pre or post time.
const MAX_SIDE_S: f64 = 30.0;
/// Longest key-frame interval the ring plans for (cameras send one every 1-4 s, "smart"
/// codecs up to 10 s).
const GOP_ALLOWANCE_S: f64 = 10.0;
/// Bytes one camera's ring may hold (about 40 s of an 8 Mbit/s stream).
const RING_MAX_BYTES: usize = 40 * 1024 * 1024;

/// One compressed frame (Annex B, parameter sets before key frames).
#[derive(Clone, Debug)]
pub struct Unit {
    /// The camera's rule clock (seconds), the same clock the rule events use.
    pub t: f64,
    /// Capture time on the wall clock.
    pub wall: SystemTime,
    /// Whether decoding can start here.
    pub key: bool,
    /// The bytes, shared with the decoder.
    pub data: Bytes,
}

/// A camera's newest frames, whole GOPs from a key frame.
#[derive(Debug)]
pub struct ClipRing {
    keep_s: f64,
    max_bytes: usize,
    inner: Mutex<RingInner>,
}

#[derive(Debug, Default)]
struct RingInner {
    codec: Option<Codec>,
    gops: VecDeque<Vec<Unit>>,
    bytes: usize,
    /// When the newest frame arrived (for requests whose camera went quiet).
    last_push: Option<Instant>,
}

impl ClipRing {
    /// A ring keeping about `keep_s` seconds (and at most `max_bytes`).
    pub fn new(keep_s: f64, max_bytes: usize) -> Self {
        Self {
            keep_s,
            max_bytes,
            inner: Mutex::new(RingInner::default()),
        }
    }

    /// A ring for `config`.
    pub fn for_config(config: &ClipConfig) -> Self {
        Self::new(config.ring_seconds(), RING_MAX_BYTES)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session starts (its timestamps and maybe its codec are new): forget the old one.
    pub fn reset(&self, codec: Codec) {
        let mut g = self.lock();
        g.gops.clear();
        g.bytes = 0;
        g.codec = Some(codec);
    }

    /// Adds the newest frame and drops GOPs that have fallen out of the window.
    pub fn push(&self, unit: Unit) {
        let mut g = self.lock();
        g.last_push = Some(Instant::now());
        let newest = unit.t;
        g.bytes += unit.data.len();
        if unit.key {
            g.gops.push_back(vec![unit]);
        } else if let Some(gop) = g.gops.back_mut() {
            gop.push(unit);
        } else {
            // Before the first key frame nothing can be decoded.
            g.bytes -= unit.data.len();
            return;
        }
        // Keep the GOP that holds `newest - keep_s`: drop a GOP only once the next one
        // starts at or before that.
        while g.gops.len() > 1
            && (g.gops[1][0].t <= newest - self.keep_s || g.bytes > self.max_bytes)
        {
            let gone = g.gops.pop_front().expect("len > 1");
            g.bytes -= gone.iter().map(|u| u.data.len()).sum::<usize>();
        }
    }

    /// The newest frame's time.
    pub fn newest(&self) -> Option<f64> {
        let g = self.lock();
        g.gops.back().and_then(|gop| gop.last()).map(|u| u.t)
    }

    /// How long ago the newest frame arrived.
    pub fn quiet_for(&self) -> Option<Duration> {
        self.lock().last_push.map(|t| t.elapsed())
    }

    /// The frames from the key frame at or before `from` (the oldest one held if none is)
    /// through the last at or before `to`, at most `max_bytes` of them (the end is cut);
    /// with the stream's codec. Empty when nothing of the window is held.
    pub fn cut(&self, from: f64, to: f64, max_bytes: usize) -> (Option<Codec>, Vec<Unit>) {
        let g = self.lock();
        let start = g.gops.iter().rposition(|gop| gop[0].t <= from).unwrap_or(0);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        'gops: for gop in g.gops.iter().skip(start) {
            for u in gop {
                if u.t > to || bytes + u.data.len() > max_bytes {
                    break 'gops;
                }
                bytes += u.data.len();
                out.push(u.clone());
            }
        }
        (g.codec, out)
    }
}

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// GStreamer could not build or run the muxer.
    #[error("muxing the clip: {0}")]
    Mux(String),
    /// Reading or removing the muxed file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Muxes `units` (from a key frame) into an MP4 at `work/…` and returns its bytes. Times are
/// relative to the first unit; each frame lasts until the next.
pub fn mux_mp4(codec: Codec, units: &[Unit], work: &Path) -> Result<Vec<u8>, ClipError> {
    if units.is_empty() {
        return Err(ClipError::Mux("no frames".into()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClipError::Io { path, source }
    };
    std::fs::create_dir_all(work).map_err(io(work))?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = work.join(format!("clip-{}-{n}.mp4", std::process::id()));
    let scratch = work.join(format!("clip-{}-{n}.moov", std::process::id()));
    let result = run_muxer(codec, units, &out, &scratch);
    let bytes = result.and_then(|()| std::fs::read(&out).map_err(io(&out)));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&scratch);
    bytes
}

fn run_muxer(codec: Codec, units: &[Unit], out: &Path, scratch: &Path) -> Result<(), ClipError> {
    let err = |e: &dyn std::fmt::Display| ClipError::Mux(e.to_string());
    let (caps, parser) = match codec {
        Codec::H264 => (
            "video/x-h264,stream-format=byte-stream,alignment=au",
            "h264parse",
        ),
        Codec::H265 => (
            "video/x-h265,stream-format=byte-stream,alignment=au",
            "h265parse",
        ),
    };
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&caps.parse::<gst::Caps>().map_err(|e| err(&e))?)
        .format(gst::Format::Time)
        .build();
    let make = |name: &str| {
        gst::ElementFactory::make(name).build().map_err(|_| {
            ClipError::Mux(format!(
                "GStreamer element {name:?} is missing (gstreamer1.0-plugins-good/-bad)"
            ))
        })
    };
    let parse = make(parser)?;
    let mux = make("mp4mux")?;
    // The index up front: a browser can start playing before the whole file has arrived.
    mux.set_property("faststart", true);
    mux.set_property("faststart-file", scratch.to_string_lossy().to_string());
    let sink = make("filesink")?;
    sink.set_property("location", out.to_string_lossy().to_string());
    sink.set_property("sync", false);
    pipeline
        .add_many([src.upcast_ref(), &parse, &mux, &sink])
        .map_err(|e| err(&e))?;
    gst::Element::link_many([src.upcast_ref(), &parse, &mux, &sink]).map_err(|e| err(&e))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| err(&e))?;
    let t0 = units[0].t;
    let mut last_step = 0.04;
    let mut last_dts: Option<u64> = None;
    for (i, u) in units.iter().enumerate() {
        let step = units
            .get(i + 1)
            .map(|n| n.t - u.t)
            .filter(|d| *d > 0.0 && *d < 2.0)
            .unwrap_or(last_step);
        last_step = step;
        let pts = ((u.t - t0).max(0.0) * 1e9) as u64;
        let mut buffer = gst::Buffer::from_slice(u.data.clone());
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            // Cameras rarely send B-frames; when they do, presentation times go back and
            // the decode time is left for the parser to work out.
            if last_dts.is_none_or(|d| pts >= d) {
                b.set_dts(gst::ClockTime::from_nseconds(pts));
                last_dts = Some(pts);
            }
            b.set_duration(gst::ClockTime::from_nseconds((step * 1e9) as u64));
            if !u.key {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        if let Err(e) = src.push_buffer(buffer) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(ClipError::Mux(format!("appsrc: {e:?}")));
        }
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let outcome = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(30)) else {
            break Err(ClipError::Mux("no end of stream within 30 s".into()));
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(ClipError::Mux(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                )))
            }
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// A clip wanted for one incident.
#[derive(Clone, Debug)]
pub struct ClipRequest {
    /// Camera index.
    pub camera: usize,
    /// Camera id.
    pub camera_id: String,
    /// The incident's event id.
    pub event_id: String,
    /// The moment the incident was decided, on the camera's rule clock.
    pub at: f64,
}

/// Sends clip requests to the clipper thread; never blocks the rules thread.
#[derive(Clone, Debug)]
pub struct ClipRequests {
    tx: mpsc::SyncSender<ClipRequest>,
}

impl ClipRequests {
    /// Asks for a clip; a full queue (a stuck clipper) drops the request, logged.
    pub fn request(&self, r: ClipRequest) {
        if let Err(mpsc::TrySendError::Full(r)) = self.tx.try_send(r) {
            tracing::warn!(camera = %r.camera_id, event_id = %r.event_id, "clip skipped: the clip queue is full");
        }
    }
}

/// What the clipper stores into.
pub struct ClipSink {
    /// The outbox.
    pub outbox: ioc_outbox::Outbox,
    /// Woken after each stored clip.
    pub publisher: Arc<ioc_outbox::PublisherHandle>,
}

/// Counters of the clipper, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClipStats {
    /// Clips stored in the outbox.
    pub stored: std::sync::atomic::AtomicU64,
    /// Requests skipped (rate cap, no video held, outbox full).
    pub skipped: std::sync::atomic::AtomicU64,
    /// Clips that failed to mux or store.
    pub failed: std::sync::atomic::AtomicU64,
}

/// The clipper thread: waits for each request's window to pass, then cuts, muxes and stores.
pub struct Clipper {
    thread: Option<std::thread::JoinHandle<()>>,
    /// Its counters.
    pub stats: Arc<ClipStats>,
}

impl Clipper {
    /// Starts the thread for cameras `rings` (by camera index; `None`: no clips for that
    /// camera). Stops, after finishing what was asked, when every [`ClipRequests`] is gone.
    pub fn spawn(
        config: ClipConfig,
        rings: Vec<Option<Arc<ClipRing>>>,
        work: PathBuf,
        sink: ClipSink,
    ) -> std::io::Result<(Self, ClipRequests)> {
        let (tx, rx) = mpsc::sync_channel(64);
        let stats = Arc::new(ClipStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("ioc-clips".into())
            .spawn(move || run(config, rings, work, sink, rx, s))?;
        Ok((
            Self {
                thread: Some(thread),
                stats,
            },
            ClipRequests { tx },
        ))
    }

    /// Waits for the thread (after every sender is dropped), at most `limit`.
    pub fn join(mut self, limit: Duration) {
        let Some(t) = self.thread.take() else { return };
        let deadline = Instant::now() + limit;
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            tracing::warn!("the clip thread did not finish in time; unfinished clips are lost");
        }
    }
}

struct Waiting {
    req: ClipRequest,
    asked: Instant,
}

fn run(
    config: ClipConfig,
    rings: Vec<Option<Arc<ClipRing>>>,
    work: PathBuf,
    sink: ClipSink,
    rx: mpsc::Receiver<ClipRequest>,
    stats: Arc<ClipStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut recent: Vec<VecDeque<Instant>> = vec![VecDeque::new(); rings.len()];
    // A request whose camera sends nothing for this long is cut with what there is.
    let patience = Duration::from_secs_f64(config.post_s + 10.0);
    let mut open = true;
    while open || !waiting.is_empty() {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(req) => {
                let Some(Some(_)) = rings.get(req.camera) else {
                    continue;
                };
                let r = &mut recent[req.camera];
                while r
                    .front()
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
                {
                    r.pop_front();
                }
                if r.len() >= config.max_per_minute as usize {
                    stats.skipped.fetch_add(1, Relaxed);
                    tracing::info!(camera = %req.camera_id, event_id = %req.event_id, max_per_minute = config.max_per_minute, "clip skipped: clips.max_per_minute reached");
                    continue;
                }
                r.push_back(Instant::now());
                waiting.push(Waiting {
                    req,
                    asked: Instant::now(),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopping: finish every clip with what the rings hold.
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        let mut i = 0;
        while i < waiting.len() {
            let w = &waiting[i];
            let ring = rings[w.req.camera].as_ref().expect("checked on arrival");
            let end = w.req.at + config.post_s;
            let ready = !open
                || ring.newest().is_some_and(|t| t >= end)
                || w.asked.elapsed() > patience
                || ring.quiet_for().is_none_or(|q| q > Duration::from_secs(5));
            if !ready {
                i += 1;
                continue;
            }
            let w = waiting.swap_remove(i);
            match make_clip(&config, ring, &w.req, &work, &sink) {
                Ok(true) => {
                    stats.stored.fetch_add(1, Relaxed);
                    sink.publisher.notify();
                }
                Ok(false) => {
                    stats.skipped.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Relaxed);
                    tracing::warn!(camera = %w.req.camera_id, event_id = %w.req.event_id, error = %e, "clip failed");
                }
            }
        }
    }
}

/// Cuts, muxes, splits and stores one clip. `Ok(false)`: nothing to store (no video held, or
/// the outbox refused it; both logged).
fn make_clip(
    config: &ClipConfig,
    ring: &ClipRing,
    req: &ClipRequest,
    work: &Path,
    sink: &ClipSink,
) -> anyhow::Result<bool> {
    // Room for the container around the frames.
    let budget = (config.max_bytes as usize).saturating_sub(config.max_bytes as usize / 50);
    let (codec, units) = ring.cut(req.at - config.pre_s, req.at + config.post_s, budget);
    let (Some(codec), Some(first)) = (codec, units.first()) else {
        tracing::info!(camera = %req.camera_id, event_id = %req.event_id, "clip skipped: no video of that moment is held");
        return Ok(false);
    };
    let mp4 = mux_mp4(codec, &units, work)?;
    anyhow::ensure!(
        mp4.len() as u64 <= config.max_bytes,
        "the muxed clip is {} bytes, over clips.max_bytes ({})",
        mp4.len(),
        config.max_bytes
    );
    let last = units.last().expect("non-empty");
    let step = if units.len() > 1 {
        (last.t - first.t) / (units.len() - 1) as f64
    } else {
        0.04
    };
    let sha256 = hex::encode(Sha256::digest(&mp4));
    let seconds = ((last.t - first.t) + step).clamp(0.0, ioc_protocol::clip::MAX_CLIP_SECONDS);
    let parts = ioc_protocol::split_clip(
        &req.camera_id,
        &mp4,
        &sha256,
        config.part_bytes as usize,
        seconds,
        ioc_protocol::Timestamp::from_system_time(first.wall),
    )
    .iter()
    .map(|(header, data)| ioc_protocol::encode_clip_part(header, data))
    .collect::<Result<Vec<_>, _>>()?;
    let count = parts.len();
    let stored = sink.outbox.append_clip(&req.event_id, &parts)?;
    if stored {
        tracing::info!(
            camera = %req.camera_id,
            event_id = %req.event_id,
            bytes = mp4.len(),
            parts = count,
            seconds = format!("{seconds:.1}"),
            "clip stored"
        );
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(t: f64, key: bool, len: usize) -> Unit {
        Unit {
            t,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1e9 + t),
            key,
            data: Bytes::from(vec![0u8; len]),
        }
    }

    /// 10 fps, a key frame every `gop` frames, from t = 0 to `secs`.
    fn filled(keep_s: f64, max_bytes: usize, gop: usize, secs: f64) -> ClipRing {
        let ring = ClipRing::new(keep_s, max_bytes);
        ring.reset(Codec::H264);
        let n = (secs * 10.0) as usize;
        for i in 0..=n {
            ring.push(unit(i as f64 / 10.0, i % gop == 0, 100));
        }
        ring
    }

    #[test]
    fn the_ring_keeps_whole_gops_covering_its_window() {
        // Key frames every 2 s; keep 5 s; 20 s pushed.
        let ring = filled(5.0, usize::MAX, 20, 20.0);
        assert_eq!(ring.newest(), Some(20.0));
        // The oldest GOP still holding t = 15 starts at 14.
        let (codec, units) = ring.cut(0.0, 100.0, usize::MAX);
        assert_eq!(codec, Some(Codec::H264));
        assert_eq!(units[0].t, 14.0);
        assert!(units[0].key);
        // A cut starts at the key frame at or before its start, ends at its end.
        let (_, units) = ring.cut(16.5, 18.05, usize::MAX);
        assert_eq!(units.first().map(|u| u.t), Some(16.0));
        assert_eq!(units.last().map(|u| u.t), Some(18.0));
        assert!(units.windows(2).all(|w| w[0].t < w[1].t));
        // The byte cap cuts the end, never the start.
        let (_, units) = ring.cut(16.5, 20.0, 1000);
        assert_eq!(units.len(), 10);
        assert_eq!(units[0].t, 16.0);
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_and_starts_at_a_key_frame() {
        let ring = ClipRing::new(1e9, 10_000);
        ring.reset(Codec::H264);
        // Frames before the first key frame are useless and not kept.
        ring.push(unit(0.0, false, 100));
        assert_eq!(ring.newest(), None);
        for i in 1..=1000 {
            ring.push(unit(i as f64 / 10.0, i % 10 == 1, 100));
        }
        let (_, units) = ring.cut(0.0, 1e9, usize::MAX);
        let bytes: usize = units.iter().map(|u| u.data.len()).sum();
        assert!(bytes <= 10_000 + 1000, "{bytes}");
        assert!(units[0].key);
        // A new session forgets the old one.
        ring.reset(Codec::H265);
        let (codec, units) = ring.cut(0.0, 1e9, usize::MAX);
        assert_eq!(codec, Some(Codec::H265));
        assert!(units.is_empty());
    }

    #[test]
    fn config_checks_name_the_key() {
        let c = ClipConfig {
            pre_s: -1.0,
            post_s: 31.0,
            part_bytes: 1,
            max_per_minute: 0,
            ..ClipConfig::default()
        };
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "clips.pre_s",
                "clips.post_s",
                "clips.part_bytes",
                "clips.max_per_minute"
            ]
        );
        assert!(ClipConfig::default().problems().is_empty());
    }
}
