//! Tracking and rules in the agent: detections → tracks → rule events and
//! line counts, per camera, on one dedicated thread (`rules`).
//!
//! The detector thread hands each frame's detections over a bounded channel;
//! camera state changes (for the offline rule) come the same way. The thread
//! ticks about once a second even when no frame arrives, so an offline camera
//! still turns into an incident and count intervals still close.
//!
//! Time: live sources use the frame's arrival time (one monotonic clock for
//! the agent); files run flat out use their own timestamps, kept increasing
//! across restarts. Schedules get the site's local time from
//! `agent.utc_offset_minutes`.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ioc_tracking::{
    Analytics, AnalyticsConfig, EngineOutput, FrameInfo, LocalTime, LumaFrame, RuleEvent, Weekday,
};

use crate::decode::DecodedFrame;
use crate::detect::FrameDetections;

/// How often tamper checks look at a frame (they need no detector and cost ~1 ms).
const LUMA_EVERY: Duration = Duration::from_secs(1);

/// What the rules thread produces.
#[derive(Debug)]
pub enum Output {
    /// A rule event of camera `camera`; `frame` is the frame it was decided on
    /// (model-size image, for the snapshot), when there was one.
    Event {
        /// Camera index.
        camera: usize,
        /// The event.
        event: Box<RuleEvent>,
        /// The frame, for the snapshot.
        frame: Option<DecodedFrame>,
        /// Wall-clock time it was decided.
        at: SystemTime,
    },
    /// A finished line-count interval of camera `camera`.
    Counts {
        /// Camera index.
        camera: usize,
        /// The report.
        report: ioc_tracking::rules::event::CountsReport,
        /// Wall-clock time the interval closed.
        at: SystemTime,
    },
}

enum Input {
    Frame(Box<FrameDetections>),
    Stream {
        camera: usize,
        up: bool,
        at: Instant,
    },
    Stop,
}

/// Which clock a camera's rules run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Arrival time on the agent's monotonic clock (live cameras, real-time files).
    Arrival,
    /// The stream's own timestamps (files decoded as fast as possible).
    Stream,
}

/// Tracker + rule engine of one camera, with the state that maps agent time onto it.
pub struct CameraAnalytics {
    analytics: Analytics,
    clock: Clock,
    start: Instant,
    frame_no: u64,
    /// Stream clock: offset added to pts so time never goes back after a reconnect.
    pts_offset: f64,
    last_t: f64,
    last_luma: Option<f64>,
    luma: Vec<u8>,
    dets: Vec<ioc_tracking::Detection>,
    has_tamper: bool,
}

impl CameraAnalytics {
    /// Builds the camera's analytics; errors name keys under `cameras[i].analytics`.
    pub fn new(
        cfg: &AnalyticsConfig,
        labels: &[String],
        clock: Clock,
        start: Instant,
    ) -> Result<Self, Vec<String>> {
        let analytics = Analytics::build(cfg, labels).map_err(|e| {
            e.0.into_iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect::<Vec<_>>()
        })?;
        let has_tamper = cfg
            .rules
            .iter()
            .any(|r| r.kind == ioc_tracking::RuleKind::CameraTamper);
        Ok(Self {
            analytics,
            clock,
            start,
            frame_no: 0,
            pts_offset: 0.0,
            last_t: 0.0,
            last_luma: None,
            luma: Vec::new(),
            dets: Vec::with_capacity(64),
            has_tamper,
        })
    }

    fn t_of(&mut self, r: &FrameDetections) -> f64 {
        let t = match self.clock {
            Clock::Arrival => r
                .captured_at
                .saturating_duration_since(self.start)
                .as_secs_f64(),
            Clock::Stream => {
                let mut t = r.pts.as_secs_f64() + self.pts_offset;
                if t <= self.last_t && self.frame_no > 0 {
                    // A new session restarted the timestamps: continue from where we were.
                    self.pts_offset += self.last_t - t + 0.1;
                    t = r.pts.as_secs_f64() + self.pts_offset;
                }
                t
            }
        };
        let t = t.max(self.last_t);
        self.last_t = t;
        t
    }

    /// Tracks one frame and judges the rules; appends to `out`.
    pub fn frame(&mut self, r: &FrameDetections, local: LocalTime, out: &mut EngineOutput) {
        let t_sec = self.t_of(r);
        self.frame_no += 1;
        let info = FrameInfo {
            t_sec,
            frame: self.frame_no,
            local,
        };
        let (w, h) = (r.source_size.0.max(1) as f32, r.source_size.1.max(1) as f32);
        self.dets.clear();
        self.dets
            .extend(r.detections.iter().map(|d| ioc_tracking::Detection {
                class_id: d.class_id,
                score: d.score,
                bbox: ioc_tracking::BBox::new(
                    d.bbox.x1 / w,
                    d.bbox.y1 / h,
                    d.bbox.x2 / w,
                    d.bbox.y2 / h,
                ),
            }));
        self.analytics.process_frame(&info, &self.dets, out);
        if self.has_tamper
            && self
                .last_luma
                .is_none_or(|l| t_sec - l >= LUMA_EVERY.as_secs_f64())
        {
            self.last_luma = Some(t_sec);
            if let Ok(map) = r.frame.buffer.map_readable() {
                let f = &r.frame;
                to_luma(
                    map.as_slice(),
                    f.width as usize,
                    f.height as usize,
                    f.stride,
                    f.format,
                    &mut self.luma,
                );
                let luma = LumaFrame {
                    data: &self.luma,
                    width: f.width as usize,
                    height: f.height as usize,
                    stride: f.width as usize,
                };
                if let Err(e) = self.analytics.process_luma(&info, &luma, out) {
                    tracing::warn!(error = %e, "tamper check skipped");
                }
            }
        }
    }

    /// The stream went up or down.
    pub fn stream(&mut self, at: Instant, up: bool, local: LocalTime, out: &mut EngineOutput) {
        let t = self.now(at);
        self.analytics.stream_state(t, local, up, out);
    }

    /// Time passes.
    pub fn tick(&mut self, at: Instant, local: LocalTime, out: &mut EngineOutput) {
        let t = self.now(at);
        self.analytics.tick(t, local, out);
    }

    fn now(&mut self, at: Instant) -> f64 {
        match self.clock {
            Clock::Arrival => {
                let t = at
                    .saturating_duration_since(self.start)
                    .as_secs_f64()
                    .max(self.last_t);
                self.last_t = t;
                t
            }
            // A file's clock only moves with its frames.
            Clock::Stream => self.last_t,
        }
    }

    /// The tracker, for tests and diagnostics.
    pub fn analytics(&self) -> &Analytics {
        &self.analytics
    }
}

/// BT.601 luma from packed BGR/RGB, into `out` (resized to width × height).
fn to_luma(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    format: ioc_detect::manifest::ColourOrder,
    out: &mut Vec<u8>,
) {
    out.resize(width * height, 0);
    let (ri, bi) = match format {
        ioc_detect::manifest::ColourOrder::Bgr => (2, 0),
        ioc_detect::manifest::ColourOrder::Rgb => (0, 2),
    };
    for y in 0..height {
        let row = &src[y * stride..y * stride + width * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            out[y * width + x] =
                ((77 * px[ri] as u32 + 150 * px[1] as u32 + 29 * px[bi] as u32) >> 8) as u8;
        }
    }
}

/// Local time at the site from a UTC offset (no time-zone database: sites
/// give their offset; Viet Nam has no daylight saving).
pub fn local_time(at: SystemTime, utc_offset_minutes: i32) -> LocalTime {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + utc_offset_minutes as i64 * 60;
    let days = secs.div_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = [
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
    ][days.rem_euclid(7) as usize];
    LocalTime {
        weekday,
        secs_of_day: secs.rem_euclid(86_400) as u32,
    }
}

/// Handle of the rules thread.
pub struct RulesWorker {
    tx: SyncSender<Input>,
    handle: Option<JoinHandle<()>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl RulesWorker {
    /// Starts the `rules` thread over `cameras` (index = camera index; `None` =
    /// no analytics for that camera). `on_output` runs on that thread.
    pub fn spawn(
        mut cameras: Vec<Option<CameraAnalytics>>,
        utc_offset_minutes: i32,
        mut on_output: impl FnMut(Output) + Send + 'static,
    ) -> std::io::Result<Self> {
        // Rules cost ~0.1 ms a frame; 256 frames of slack is many seconds of detector output.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Input>(256);
        let handle = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || {
                run(&mut cameras, utc_offset_minutes, rx, &mut on_output);
            })?;
        Ok(Self {
            tx,
            handle: Some(handle),
            dropped: Default::default(),
        })
    }

    /// A function that reports a camera's stream going up (true) or down.
    pub fn stream_sender(&self) -> impl Fn(usize, bool) + Send + 'static {
        let tx = self.tx.clone();
        move |camera, up| {
            let _ = tx.try_send(Input::Stream {
                camera,
                up,
                at: Instant::now(),
            });
        }
    }

    /// A sender for frames, to move into the detector's callback. It never
    /// blocks the detector: a full channel drops the frame and counts it.
    pub fn frame_sender(&self) -> FrameSender {
        FrameSender {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Frames dropped because the rules thread was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the thread after it has handled everything sent so far.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Cloneable frame input of the rules thread.
#[derive(Clone)]
pub struct FrameSender {
    tx: SyncSender<Input>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl FrameSender {
    /// Hands over one frame's detections.
    pub fn send(&self, r: FrameDetections) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Input::Frame(Box::new(r))) {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn run(
    cameras: &mut [Option<CameraAnalytics>],
    utc_offset: i32,
    rx: Receiver<Input>,
    on_output: &mut impl FnMut(Output),
) {
    let mut out = EngineOutput::default();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    loop {
        let input = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
        };
        let now = SystemTime::now();
        let local = local_time(now, utc_offset);
        match input {
            Some(Input::Frame(r)) => {
                let camera = r.camera;
                let Some(Some(a)) = cameras.get_mut(camera) else {
                    continue;
                };
                a.frame(&r, local, &mut out);
                emit(camera, &mut out, Some(&r.frame), now, on_output);
            }
            Some(Input::Stream { camera, up, at }) => {
                if let Some(Some(a)) = cameras.get_mut(camera) {
                    a.stream(at, up, local, &mut out);
                    emit(camera, &mut out, None, now, on_output);
                }
            }
            Some(Input::Stop) | None => {}
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + Duration::from_secs(1);
            for (camera, a) in cameras.iter_mut().enumerate() {
                if let Some(a) = a {
                    a.tick(Instant::now(), local, &mut out);
                    emit(camera, &mut out, None, now, on_output);
                }
            }
        }
    }
}

fn emit(
    camera: usize,
    out: &mut EngineOutput,
    frame: Option<&DecodedFrame>,
    at: SystemTime,
    on_output: &mut impl FnMut(Output),
) {
    for event in out.events.drain(..) {
        on_output(Output::Event {
            camera,
            event: Box::new(event),
            frame: frame.cloned(),
            at,
        });
    }
    for report in out.counts.drain(..) {
        on_output(Output::Counts { camera, report, at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_applies_the_offset_and_the_weekday() {
        // 2026-11-28 20:30:00 UTC is a Saturday; in Ha Noi (UTC+7) it is Sunday 03:30.
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_897_800);
        let utc = local_time(at, 0);
        assert_eq!(
            (utc.weekday, utc.secs_of_day),
            (Weekday::Sat, 20 * 3600 + 30 * 60)
        );
        let hn = local_time(at, 7 * 60);
        assert_eq!(
            (hn.weekday, hn.secs_of_day),
            (Weekday::Sun, 3 * 3600 + 30 * 60)
        );
    }

    #[test]
    fn luma_weights_green_most_and_reads_the_channel_order() {
        let mut out = Vec::new();
        to_luma(
            &[0, 0, 255, 0, 255, 0],
            2,
            1,
            6,
            ioc_detect::manifest::ColourOrder::Bgr,
            &mut out,
        );
        assert_eq!(out, vec![76, 149]); // red, green
        to_luma(
            &[0, 0, 255],
            1,
            1,
            3,
            ioc_detect::manifest::ColourOrder::Rgb,
            &mut out,
        );
        assert_eq!(out, vec![28]); // blue
    }
}
