//! Tracking and rules in the agent: detector results → tracks → rule events and line counts,
//! per camera, on one dedicated thread (`rules`).
//!
//! The detector workers hand each taken frame's [`FrameResult`] over a bounded channel; camera
//! state changes (for the offline rule) come the same way. Results of parallel workers may
//! arrive out of order: each camera puts them back in frame order (every taken frame brings
//! exactly one result, so nothing is waited for in vain).
//!
//! Time: tracking and rules run on each frame's capture time ([`crate::clock`]), never on the
//! time it is handled, so a result is the same however long frames waited. The thread also
//! ticks about once a second so an offline camera still turns into an incident and count
//! intervals still close; a tick never moves a camera's clock past frames still on their way:
//! while a camera delivers, its tick follows its latest frame, and only a camera that has
//! stopped delivering (down, or nothing for [`STALL`]) has its tick clock run on with the wall
//! clock. Files played flat out have no wall clock: only their frames move time. Schedules get
//! the site's local time from `agent.utc_offset_minutes`.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ioc_detect::yuv::Resampler;
use ioc_tracking::{
    Analytics, AnalyticsConfig, Appearance, EngineOutput, FrameInfo, LocalTime, LumaFrame,
    RuleEvent, Weekday,
};

use crate::clock::{Epoch, FrameTime};
use crate::decode::DecodedFrame;
use crate::detect::{FrameResult, Outcome, TrackerFlags};

/// How often tamper checks look at a frame (they need no detector and cost ~1 ms).
const LUMA_EVERY_SEC: f64 = 1.0;
/// Width of the luma image tamper checks measure (height follows the aspect).
const LUMA_WIDTH: usize = 320;
/// A live camera with no frame handled for this long has stopped delivering: its tick clock
/// runs on with the wall clock.
pub const STALL: Duration = Duration::from_secs(2);

/// What the rules thread produces.
#[derive(Debug)]
pub enum Output {
    /// A rule event of camera `camera`.
    Event {
        /// Camera index.
        camera: usize,
        /// The event.
        event: Box<RuleEvent>,
        /// The frame it was decided on, for the snapshot (none for clock-driven events).
        frame: Option<DecodedFrame>,
        /// The time it was decided at: that frame's time, or the tick's.
        time: FrameTime,
    },
    /// A finished line-count interval of camera `camera`.
    Counts {
        /// Camera index.
        camera: usize,
        /// The report.
        report: ioc_tracking::rules::event::CountsReport,
        /// The time it was closed at (maps the report's rule-clock times to wall time).
        time: FrameTime,
    },
    /// Camera `camera` now runs `config` (pushed from the center); its earlier output came
    /// before this.
    Analytics {
        /// Camera index.
        camera: usize,
        /// What it runs now.
        config: Arc<AnalyticsConfig>,
    },
}

enum Input {
    Frame(Box<FrameResult>),
    Stream {
        camera: usize,
        up: bool,
        at: Instant,
    },
    Analytics {
        camera: usize,
        analytics: Box<CameraAnalytics>,
        config: Arc<AnalyticsConfig>,
    },
    Stop,
}

/// Tracker + rule engine of one camera, with its clocks.
pub struct CameraAnalytics {
    analytics: Analytics,
    frame_no: u64,
    // Rule time of the latest frame, and of the latest tick: two clocks (module docs).
    frame_t: f64,
    tick_t: f64,
    clock_fixes: u64,
    last_luma: Option<f64>,
    luma: Vec<u8>,
    resampler: Resampler,
    dets: Vec<ioc_tracking::Detection>,
    has_tamper: bool,
    /// For the log: which camera this is.
    camera_id: String,
    weak: WeakDetections,
}

/// Detections too faint to start a track, counted so the log can say why nothing happens
/// when a camera sees its objects only weakly (small, far, dark, out of focus).
#[derive(Debug, Default)]
struct WeakDetections {
    window_start: f64,
    weak: u32,
    strong: u32,
    best_weak: f32,
    last_said: Option<f64>,
}

/// How much rule time one count covers, and how long between two log lines of a camera.
const WEAK_WINDOW_SEC: f64 = 60.0;
const WEAK_SAY_EVERY_SEC: f64 = 600.0;

impl WeakDetections {
    /// Counts a frame's detections; at the end of a window, the sentence to log, if any.
    fn frame(
        &mut self,
        t: f64,
        scores: impl Iterator<Item = f32>,
        threshold: f32,
    ) -> Option<String> {
        if !self.window_start.is_finite() || t < self.window_start {
            self.window_start = t;
        }
        for s in scores {
            if s < threshold {
                self.weak += 1;
                self.best_weak = self.best_weak.max(s);
            } else {
                self.strong += 1;
            }
        }
        if t - self.window_start < WEAK_WINDOW_SEC {
            return None;
        }
        let (weak, strong, best) = (self.weak, self.strong, self.best_weak);
        *self = WeakDetections {
            window_start: t,
            last_said: self.last_said,
            ..Default::default()
        };
        // Mostly faint: the objects are there for the model but not for the tracker.
        let mostly_weak = weak >= 20 && strong * 4 < weak;
        if !mostly_weak || self.last_said.is_some_and(|l| t - l < WEAK_SAY_EVERY_SEC) {
            return None;
        }
        self.last_said = Some(t);
        Some(format!(
            "{weak} detections in the last minute scored under tracker.new_track_score \
             ({threshold}; best {best:.2}) and started no track, {strong} scored above it: if \
             objects are missed here, lower tracker.new_track_score (and tracker.confirm_score) \
             for this camera, or improve the view (focus, light, distance)"
        ))
    }
}

impl CameraAnalytics {
    /// Builds the camera's analytics; errors name keys under `cameras[i].analytics`.
    pub fn new(cfg: &AnalyticsConfig, labels: &[String]) -> Result<Self, Vec<String>> {
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
            frame_no: 0,
            frame_t: f64::NEG_INFINITY,
            tick_t: f64::NEG_INFINITY,
            clock_fixes: 0,
            last_luma: None,
            luma: Vec::new(),
            resampler: Resampler::new(),
            dets: Vec::with_capacity(64),
            has_tamper,
            camera_id: String::new(),
            weak: WeakDetections {
                window_start: f64::NAN,
                ..Default::default()
            },
        })
    }

    /// Names the camera in this camera's log lines.
    pub fn with_camera_id(mut self, id: &str) -> Self {
        self.camera_id = id.to_owned();
        self
    }

    /// Rule time of the latest frame handled (−∞ before the first).
    pub fn frame_t(&self) -> f64 {
        self.frame_t
    }

    /// Frames whose capture time was not after the previous frame's (a new session that
    /// started early, a camera that repeats timestamps): moved a millisecond past it.
    pub fn clock_fixes(&self) -> u64 {
        self.clock_fixes
    }

    /// Tracks one detected or held frame and judges the rules; appends to `out`.
    pub fn frame(&mut self, r: &FrameResult, local: LocalTime, out: &mut EngineOutput) {
        let mut t_sec = r.frame.time.t_sec;
        if t_sec <= self.frame_t {
            t_sec = self.frame_t + 1e-3;
            self.clock_fixes += 1;
        }
        self.frame_t = t_sec;
        self.frame_no += 1;
        let info = FrameInfo {
            t_sec,
            frame: self.frame_no,
            local,
        };
        match &r.outcome {
            Outcome::Detected(d) => {
                let (w, h) = (r.frame.width.max(1) as f32, r.frame.height.max(1) as f32);
                self.dets.clear();
                self.dets.extend(d.iter().map(|d| {
                    ioc_tracking::Detection::new(
                        d.class_id,
                        d.score,
                        ioc_tracking::BBox::new(
                            d.bbox.x1 / w,
                            d.bbox.y1 / h,
                            d.bbox.x2 / w,
                            d.bbox.y2 / h,
                        ),
                    )
                }));
                // What each object looks like, for the tracker's and the rules' hand-overs
                // (a few hundred pixel reads a box, on the frame as decoded).
                let dets = &mut self.dets;
                let measured = r.frame.with_image(|img| {
                    for d in dets.iter_mut() {
                        d.look = Appearance::measure(d.bbox, img.width, img.height, |x, y| {
                            img.pixel(x, y)
                        });
                    }
                });
                if let Err(e) = measured {
                    tracing::debug!(error = %e, "looks not measured");
                }
                self.analytics.process_frame(&info, &self.dets, out);
                let threshold = self.analytics.tracker().config().new_track_score;
                let scores = self.dets.iter().map(|d| d.score);
                if let Some(why) = self.weak.frame(t_sec, scores, threshold) {
                    tracing::info!(camera = %self.camera_id, "{why}");
                }
            }
            Outcome::Held => self.analytics.process_held(&info, out),
            Outcome::Failed => return,
        }
        if self.has_tamper && self.last_luma.is_none_or(|l| t_sec - l >= LUMA_EVERY_SEC) {
            self.last_luma = Some(t_sec);
            let (resampler, luma) = (&mut self.resampler, &mut self.luma);
            let measured = r.frame.with_image(|img| {
                let w = LUMA_WIDTH.min(img.width);
                let h = (img.height * w / img.width.max(1)).max(1);
                resampler.to_grey(img, luma, w, h).map(|()| (w, h))
            });
            match measured {
                Ok(Ok((w, h))) => {
                    let frame = LumaFrame {
                        data: &self.luma,
                        width: w,
                        height: h,
                        stride: w,
                    };
                    if let Err(e) = self.analytics.process_luma(&info, &frame, out) {
                        tracing::warn!(error = %e, "tamper check skipped");
                    }
                }
                Ok(Err(e)) | Err(e) => tracing::warn!(error = %e, "tamper check skipped"),
            }
        }
    }

    /// Whether every track is stationary (motion gating may then hold still frames).
    pub fn all_stationary(&self) -> bool {
        self.analytics.tracker().all_stationary(self.frame_t)
    }

    /// The stream went up or down at rule time `t` (kept monotonic with the ticks).
    pub fn stream(&mut self, t: f64, up: bool, local: LocalTime, out: &mut EngineOutput) {
        let t = self.advance_tick(t);
        self.analytics.stream_state(t, local, up, out);
    }

    /// Time passes to rule time `t` without a frame; returns the tick time used.
    pub fn tick(&mut self, t: f64, local: LocalTime, out: &mut EngineOutput) -> f64 {
        let t = self.advance_tick(t);
        self.analytics.tick(t, local, out);
        t
    }

    /// The agent stops at rule time `t`: reports the open counts interval.
    pub fn close(&mut self, t: f64, out: &mut EngineOutput) -> f64 {
        let t = self.advance_tick(t);
        self.analytics.close(t, out);
        t
    }

    fn advance_tick(&mut self, t: f64) -> f64 {
        self.tick_t = self.tick_t.max(t).max(self.frame_t);
        self.tick_t
    }

    /// The tracker, for tests and diagnostics.
    pub fn analytics(&self) -> &Analytics {
        &self.analytics
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

/// One camera as the rules thread sees it.
pub struct RulesCamera {
    /// Its analytics; `None` = no rules (its results are only counted).
    pub analytics: Option<CameraAnalytics>,
    /// Live (cameras, paced files) or flat out (files): see the module docs.
    pub live: bool,
    /// Where the gate learns whether the camera's tracks are all stationary.
    pub tracker: Arc<TrackerFlags>,
}

struct CameraRt {
    cam: RulesCamera,
    next_order: u64,
    waiting: BTreeMap<u64, Box<FrameResult>>,
    last_frame: Option<(Instant, FrameTime)>,
    up: bool,
}

/// Handle of the rules thread.
pub struct RulesWorker {
    tx: SyncSender<Input>,
    handle: Option<JoinHandle<()>>,
}

impl RulesWorker {
    /// Starts the `rules` thread over `cameras` (index = camera index). `on_output` runs
    /// on that thread.
    pub fn spawn(
        cameras: Vec<RulesCamera>,
        epoch: Epoch,
        utc_offset_minutes: i32,
        mut on_output: impl FnMut(Output) + Send + 'static,
    ) -> std::io::Result<Self> {
        // Rules cost ~0.1 ms a frame; 256 results of slack is many seconds of detector output.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Input>(256);
        let handle = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || {
                let mut cams: Vec<CameraRt> = cameras
                    .into_iter()
                    .map(|cam| CameraRt {
                        cam,
                        next_order: 1,
                        waiting: BTreeMap::new(),
                        last_frame: None,
                        up: true,
                    })
                    .collect();
                run(&mut cams, epoch, utc_offset_minutes, rx, &mut on_output);
            })?;
        Ok(Self {
            tx,
            handle: Some(handle),
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

    /// A function that makes camera `camera` run new analytics (built with
    /// [`CameraAnalytics::new`] from `config`), without stopping the camera: the open counts
    /// interval of the old ones is reported, tracks start afresh.
    pub fn analytics_sender(
        &self,
    ) -> impl Fn(usize, CameraAnalytics, Arc<AnalyticsConfig>) + Send + 'static {
        let tx = self.tx.clone();
        move |camera, analytics, config| {
            let _ = tx.send(Input::Analytics {
                camera,
                analytics: Box::new(analytics),
                config,
            });
        }
    }

    /// A sender for results, to move into the detector's callback.
    pub fn frame_sender(&self) -> FrameSender {
        FrameSender {
            tx: self.tx.clone(),
        }
    }

    /// Stops the thread after it has handled everything sent so far.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Cloneable result input of the rules thread.
#[derive(Clone)]
pub struct FrameSender {
    tx: SyncSender<Input>,
}

impl FrameSender {
    /// Hands over one taken frame's result. Waits when the rules thread is behind (it is
    /// fast; every taken frame must reach it, or its camera's frame order would stall).
    pub fn send(&self, r: FrameResult) {
        let _ = self.tx.send(Input::Frame(Box::new(r)));
    }
}

fn run(
    cams: &mut [CameraRt],
    epoch: Epoch,
    utc_offset: i32,
    rx: Receiver<Input>,
    on_output: &mut impl FnMut(Output),
) {
    let mut out = EngineOutput::default();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    loop {
        let input = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(Input::Stop) => {
                // A graceful stop: the counts of the open interval are reported, not dropped.
                for (camera, c) in cams.iter_mut().enumerate() {
                    close_counts(camera, c, &epoch, &mut out, on_output);
                }
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
        };
        let local = local_time(SystemTime::now(), utc_offset);
        match input {
            Some(Input::Frame(r)) => {
                let camera = r.camera;
                let Some(c) = cams.get_mut(camera) else {
                    continue;
                };
                c.waiting.insert(r.order, r);
                while let Some(r) = c.waiting.remove(&c.next_order) {
                    c.next_order += 1;
                    handle_frame(camera, c, &r, local, &mut out, on_output);
                }
            }
            Some(Input::Stream { camera, up, at }) => {
                if let Some(c) = cams.get_mut(camera) {
                    c.up = up;
                    let time = clock_time(c, &epoch, at);
                    if let Some(a) = c.cam.analytics.as_mut() {
                        a.stream(time.t_sec, up, local, &mut out);
                        emit(camera, &mut out, None, time, on_output);
                    }
                }
            }
            Some(Input::Analytics {
                camera,
                analytics,
                config,
            }) => {
                if let Some(c) = cams.get_mut(camera) {
                    close_counts(camera, c, &epoch, &mut out, on_output);
                    c.cam.analytics = Some(*analytics);
                    // Nothing is stationary yet: motion gating waits for the new tracks.
                    c.cam.tracker.set(true);
                    on_output(Output::Analytics { camera, config });
                }
            }
            Some(Input::Stop) | None => {}
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + Duration::from_secs(1);
            for (camera, c) in cams.iter_mut().enumerate() {
                let time = clock_time(c, &epoch, Instant::now());
                if let Some(a) = c.cam.analytics.as_mut() {
                    let t = a.tick(time.t_sec, local, &mut out);
                    emit(
                        camera,
                        &mut out,
                        None,
                        FrameTime { t_sec: t, ..time },
                        on_output,
                    );
                }
            }
        }
    }
}

/// Reports camera `camera`'s open counts interval (at a stop, or before new analytics).
fn close_counts(
    camera: usize,
    c: &mut CameraRt,
    epoch: &Epoch,
    out: &mut EngineOutput,
    on_output: &mut impl FnMut(Output),
) {
    let time = clock_time(c, epoch, Instant::now());
    if let Some(a) = c.cam.analytics.as_mut() {
        let t = a.close(time.t_sec, out);
        emit(camera, out, None, FrameTime { t_sec: t, ..time }, on_output);
    }
}

fn handle_frame(
    camera: usize,
    c: &mut CameraRt,
    r: &FrameResult,
    local: LocalTime,
    out: &mut EngineOutput,
    on_output: &mut impl FnMut(Output),
) {
    if r.outcome == Outcome::Failed {
        return;
    }
    c.last_frame = Some((Instant::now(), r.frame.time));
    let Some(a) = c.cam.analytics.as_mut() else {
        return;
    };
    a.frame(r, local, out);
    c.cam.tracker.set(!a.all_stationary());
    let time = FrameTime {
        t_sec: a.frame_t(),
        ..r.frame.time
    };
    emit(camera, out, Some(&r.frame), time, on_output);
}

/// The rule time "now" for a camera's tick (see the module docs).
fn clock_time(c: &CameraRt, epoch: &Epoch, now: Instant) -> FrameTime {
    match c.last_frame {
        // A flat-out file: only its frames move time.
        Some((_, last)) if !c.cam.live => last,
        None if !c.cam.live => FrameTime {
            pts: Duration::ZERO,
            t_sec: 0.0,
            wall: epoch.wall,
        },
        // Delivering: stay on the latest frame; frames still on their way come after it.
        Some((at, last)) if c.up && now.saturating_duration_since(at) < STALL => last,
        // Stopped delivering: the wall clock carries on from the latest frame.
        Some((at, last)) => {
            let d = now.saturating_duration_since(at);
            FrameTime {
                pts: last.pts,
                t_sec: last.t_sec + d.as_secs_f64(),
                wall: last.wall + d,
            }
        }
        None => FrameTime {
            pts: Duration::ZERO,
            t_sec: epoch.secs(now),
            wall: SystemTime::now(),
        },
    }
}

fn emit(
    camera: usize,
    out: &mut EngineOutput,
    frame: Option<&DecodedFrame>,
    time: FrameTime,
    on_output: &mut impl FnMut(Output),
) {
    for event in out.events.drain(..) {
        on_output(Output::Event {
            camera,
            event: Box::new(event),
            frame: frame.cloned(),
            time,
        });
    }
    for report in out.counts.drain(..) {
        on_output(Output::Counts {
            camera,
            report,
            time,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faint_detections_are_explained_once_in_a_while() {
        let mut w = WeakDetections {
            window_start: f64::NAN,
            ..Default::default()
        };
        let faint = || [0.38f32, 0.41, 0.40].into_iter();
        let mut said = Vec::new();
        // 5 fps, 15 minutes of a scene seen only faintly.
        for f in 0..(5 * 900) {
            if let Some(s) = w.frame(f as f64 / 5.0, faint(), 0.45) {
                said.push((f as f64 / 5.0, s));
            }
        }
        assert_eq!(said.len(), 2, "once, then again 10 min later: {said:?}");
        assert!(said[0]
            .1
            .contains("under tracker.new_track_score (0.45; best 0.41)"));
        // A scene with strong detections says nothing.
        let mut w = WeakDetections::default();
        for f in 0..(5 * 120) {
            assert!(w
                .frame(f as f64 / 5.0, [0.3f32, 0.8, 0.9].into_iter(), 0.45)
                .is_none());
        }
    }

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
}
