//! ioc-tracking: from per-frame detections (and luma frames, and stream up/down notices) to
//! rule events. Pure logic: no I/O, no async, no clock reads; the caller passes every time.
//!
//! Layout:
//! - [`geometry`]: normalised points, boxes, polygons, segment tests, headings.
//! - [`appearance`]: what an object looks like (colour histograms), to tell objects apart.
//! - [`track`]: the ByteTrack-style tracker ([`track::Tracker`]).
//! - [`calibration`]: optional image→ground homography for metric speeds.
//! - [`rules`]: zones, lines and rules config, the engine and its events.
//!
//! Times are `f64` seconds on one monotonic clock per camera ("stream seconds"); frames are
//! numbered by the caller. Wall-clock local time, needed only by schedules, is passed in too.

pub mod appearance;
pub mod assign;
pub mod calibration;
pub mod geometry;
pub mod kalman;
pub mod rules;
pub mod track;
pub mod units;

pub use appearance::Appearance;
pub use geometry::{BBox, Point};
pub use rules::{
    AnalyticsConfig, ConfigErrors, Engine, EngineOutput, FrameInfo, LocalTime, LumaFrame, Need,
    Phase, RuleEvent, RuleKind, Weekday,
};
pub use track::{Detection, Track, Tracker, TrackerConfig};

/// Tracker and rule engine of one camera, built from one config: the usual entry point.
#[derive(Debug)]
pub struct Analytics {
    tracker: Tracker,
    engine: Engine,
}

impl Analytics {
    /// Validates the config against the model's class names and builds both parts.
    pub fn build(cfg: &AnalyticsConfig, class_names: &[String]) -> Result<Analytics, ConfigErrors> {
        let engine = Engine::build(cfg, class_names)?;
        // validate() (run by Engine::build) has already rejected a bad calibration.
        let calib = cfg.calibration.as_ref().and_then(|c| c.build().ok());
        Ok(Analytics {
            tracker: Tracker::new(cfg.tracker.clone(), calib),
            engine,
        })
    }

    /// Tracks one detector frame and judges the rules; appends to `out`.
    pub fn process_frame(&mut self, frame: &FrameInfo, dets: &[Detection], out: &mut EngineOutput) {
        self.tracker.update(frame.t_sec, frame.frame, dets);
        self.engine
            .process_tracks(frame, self.tracker.tracks(), self.tracker.removed(), out);
    }

    /// Judges the rules on a frame the detector was not run on because nothing moved (motion
    /// gating): the tracks stay as they are and the dwell timers advance to `frame.t_sec`.
    /// Only for scenes where every track is stationary: a moving track needs detections.
    pub fn process_held(&mut self, frame: &FrameInfo, out: &mut EngineOutput) {
        self.engine
            .process_tracks(frame, self.tracker.tracks(), &[], out);
    }

    /// Judges the tamper rules on a luma frame; appends to `out`.
    pub fn process_luma(
        &mut self,
        frame: &FrameInfo,
        luma: &LumaFrame<'_>,
        out: &mut EngineOutput,
    ) -> Result<(), rules::LumaError> {
        self.engine.process_luma(frame, luma, out)
    }

    /// Stream went up or down (camera offline rules).
    pub fn stream_state(&mut self, t_sec: f64, local: LocalTime, up: bool, out: &mut EngineOutput) {
        self.engine.stream_state(t_sec, local, up, out);
    }

    /// Time passes without frames (offline rules, counts flush). Call about once a second.
    pub fn tick(&mut self, t_sec: f64, local: LocalTime, out: &mut EngineOutput) {
        self.engine.tick(t_sec, local, out);
    }

    /// The camera stops at `t_sec`: reports the open counts interval (see
    /// [`Engine::close_counts`]).
    pub fn close(&mut self, t_sec: f64, out: &mut EngineOutput) {
        self.engine.close_counts(t_sec, out);
    }

    /// The tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The rule engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
