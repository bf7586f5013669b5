//! Running the agent's real pipeline on a clip as a live camera would meet it, faster than
//! real time: the agent's decoder, motion check, scheduler, detector, tracker and rules, with
//! time simulated.
//!
//! Frames arrive at their timestamps; the scheduler keeps each camera's newest frame; a
//! detector worker busy with a frame is busy for as long as that inference really took on
//! this machine now (so a loaded machine drops frames as it would live), or for a fixed time
//! (`Infer::Fixed`: the same drops on any machine, for tests); results reach the rules in
//! frame order and on frame time; the rules tick once a simulated second as the live rules
//! thread does; a stream gap longer than the agent's idle timeout makes the camera go down
//! and come back. Nothing waits on a wall clock, so a minute of video takes as long as its
//! decoding and inferences.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ioc_agent::analytics::{CameraAnalytics, STALL};
use ioc_agent::detect::{
    run_one, Action, CameraPlan, DetectJob, FrameResult, Outcome, SchedulerCore,
};
use ioc_agent::motion::{MotionConfig, MotionDetector};
use ioc_detect::Detector;
use ioc_tracking::rules::event::CountsReport;
use ioc_tracking::{AnalyticsConfig, EngineOutput, LocalTime, RuleEvent, Weekday};

use crate::truth::{Truth, IDLE_TIMEOUT_SEC};

/// How long an inference takes in simulated time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Infer {
    /// As long as it really took, times a factor (1 = this machine as it is now).
    Measured(f64),
    /// Always this long.
    Fixed(Duration),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Detection rate asked of the camera (`detect.fps`).
    pub detect_fps: f64,
    /// Parallel detector workers.
    pub workers: usize,
    /// Inference time.
    pub infer: Infer,
    /// Motion gating.
    pub motion: MotionConfig,
}

/// The tracker's confirmed tracks at one analysed frame.
#[derive(Clone, Debug)]
pub struct TrackFrame {
    /// Clip time.
    pub t: f64,
    /// `(track id, box [x1, y1, x2, y2] normalised)`.
    pub tracks: Vec<(u64, [f64; 4])>,
    /// Ids of confirmed tracks that are lost (kept on their prediction).
    pub lost: Vec<u64>,
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct SimResult {
    /// Every rule event, times in clip seconds.
    pub events: Vec<RuleEvent>,
    /// Every closed count interval.
    pub counts: Vec<CountsReport>,
    /// Tracks at every analysed frame.
    pub tracks: Vec<TrackFrame>,
    /// Frames offered to the detectors.
    pub offered: u64,
    /// Frames run through the model.
    pub detected: u64,
    /// Frames judged still.
    pub held: u64,
    /// Frames dropped for newer ones.
    pub dropped: u64,
    /// Real inference times, ms, median.
    pub infer_ms: f64,
    /// Simulated latency from arrival to result, ms: median and max.
    pub latency_ms: (f64, f64),
}

struct Busy {
    done_at: f64,
    result: FrameResult,
}

struct Sim<'a> {
    opts: &'a SimOptions,
    detector: &'a mut Detector,
    core: SchedulerCore,
    workers: Vec<Option<Busy>>,
    waiting: BTreeMap<u64, FrameResult>,
    next_order: u64,
    analytics: CameraAnalytics,
    out: EngineOutput,
    res: SimResult,
    scratch: Vec<ioc_detect::Detection>,
    now: f64,
    next_tick: f64,
    last_frame: Option<(f64, f64)>, // (handled at, frame t)
    up: bool,
    infer: Vec<f64>,
    latency: Vec<f64>,
}

const LOCAL: LocalTime = LocalTime {
    weekday: Weekday::Wed,
    secs_of_day: 12 * 3600,
};

impl Sim<'_> {
    /// Runs everything due up to time `until`, in time order.
    fn advance(&mut self, until: f64) {
        loop {
            let done = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().map(|b| (i, b.done_at)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let next_done = done.map_or(f64::INFINITY, |d| d.1);
            if next_done.min(self.next_tick) > until {
                break;
            }
            if self.next_tick <= next_done {
                self.now = self.next_tick;
                self.next_tick += 1.0;
                self.tick();
                continue;
            }
            let (i, at) = done.expect("a worker is done");
            self.now = at;
            let busy = self.workers[i].take().expect("busy");
            self.deliver(busy.result);
            self.dispatch();
        }
        self.now = self.now.max(until);
    }

    /// Gives idle workers the next frames, and handles frames that need no model at once.
    fn dispatch(&mut self) {
        while let Some(i) = self.workers.iter().position(Option::is_none) {
            let Some(taken) = self.core.take() else {
                return;
            };
            // Frames arrive at their capture time.
            let arrived = taken.job.frame.time.t_sec;
            let action = taken.action;
            let started = Instant::now();
            let r = run_one(self.detector, None, taken, &mut self.scratch);
            let real = started.elapsed().as_secs_f64();
            let cost = match (action, self.opts.infer) {
                (Action::Hold, _) => 0.0,
                (_, Infer::Fixed(d)) => d.as_secs_f64(),
                (_, Infer::Measured(k)) => real * k,
            };
            if action == Action::Detect {
                self.infer.push(real * 1000.0);
                self.res.detected += 1;
                self.latency.push((self.now + cost - arrived) * 1000.0);
            } else {
                self.res.held += 1;
            }
            if cost <= 0.0 {
                self.deliver(r);
            } else {
                self.workers[i] = Some(Busy {
                    done_at: self.now + cost,
                    result: r,
                });
            }
        }
    }

    /// A result reaches the rules: in frame order.
    fn deliver(&mut self, r: FrameResult) {
        self.waiting.insert(r.order, r);
        while let Some(r) = self.waiting.remove(&self.next_order) {
            self.next_order += 1;
            if r.outcome == Outcome::Failed {
                continue;
            }
            self.last_frame = Some((self.now, r.frame.time.t_sec));
            self.analytics.frame(&r, LOCAL, &mut self.out);
            self.core.tracker(0).set(!self.analytics.all_stationary());
            let tracker = self.analytics.analytics().tracker();
            self.res.tracks.push(TrackFrame {
                t: r.frame.time.t_sec,
                tracks: tracker
                    .tracks()
                    .iter()
                    .filter(|t| t.state() == ioc_tracking::track::TrackState::Tracked)
                    .map(|t| {
                        let b = t.det_bbox();
                        (t.id(), [b.x1, b.y1, b.x2, b.y2].map(f64::from))
                    })
                    .collect(),
                lost: tracker
                    .tracks()
                    .iter()
                    .filter(|t| t.state() == ioc_tracking::track::TrackState::Lost)
                    .map(|t| t.id())
                    .collect(),
            });
            self.drain();
        }
    }

    /// The live rules thread's tick: on the latest frame while frames come, on the clock
    /// once they stop.
    fn tick(&mut self) {
        let t = match self.last_frame {
            Some((at, ft)) if self.up && self.now - at < STALL.as_secs_f64() => ft,
            Some((at, ft)) => ft + (self.now - at),
            None => self.now,
        };
        self.analytics.tick(t, LOCAL, &mut self.out);
        self.drain();
    }

    fn stream(&mut self, up: bool) {
        self.up = up;
        let t = match self.last_frame {
            Some((at, ft)) => ft + (self.now - at),
            None => self.now,
        };
        self.analytics.stream(t, up, LOCAL, &mut self.out);
        self.drain();
    }

    fn drain(&mut self) {
        self.res.events.append(&mut self.out.events);
        self.res.counts.append(&mut self.out.counts);
    }
}

/// Runs `clip` through the pipeline with `analytics` (see the module docs).
pub fn simulate(
    clip: &Path,
    truth: &Truth,
    analytics: &AnalyticsConfig,
    detector: &mut Detector,
    opts: &SimOptions,
) -> anyhow::Result<SimResult> {
    let labels = detector.labels().to_vec();
    let cam = CameraAnalytics::new(analytics, &labels)
        .map_err(|e| anyhow::anyhow!("analytics: {}", e.join("; ")))?;
    let core = SchedulerCore::new(vec![CameraPlan {
        target_fps: opts.detect_fps,
        motion: opts.motion.clone(),
    }]);
    let mut sim = Sim {
        opts,
        detector,
        core,
        workers: (0..opts.workers.max(1)).map(|_| None).collect(),
        waiting: BTreeMap::new(),
        next_order: 1,
        analytics: cam,
        out: EngineOutput::default(),
        res: SimResult::default(),
        scratch: Vec::new(),
        now: 0.0,
        next_tick: 1.0,
        last_frame: None,
        up: true,
        infer: Vec::new(),
        latency: Vec::new(),
    };
    // The camera's stream events: a drop longer than the idle timeout takes it down.
    let mut stream_events: Vec<(f64, bool)> = Vec::new();
    for [at, dur] in &truth.stream_gaps {
        if *dur > IDLE_TIMEOUT_SEC {
            stream_events.push((at + IDLE_TIMEOUT_SEC, false));
            stream_events.push((at + dur, true));
        }
    }
    stream_events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut motion = MotionDetector::new(opts.motion.clone());
    let gaps = truth.stream_gaps.clone();
    crate::video::for_each_frame(clip, opts.detect_fps, |frame| {
        let t = frame.time.t_sec;
        while let Some(&(at, up)) = stream_events.first() {
            if at > t {
                break;
            }
            stream_events.remove(0);
            sim.advance(at);
            sim.stream(up);
        }
        if gaps.iter().any(|[a, d]| t >= *a && t < a + d) {
            return Ok(()); // the camera sent nothing
        }
        sim.advance(t);
        let m = frame
            .with_image(|img| motion.measure(img, t))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        sim.res.offered += 1;
        if sim
            .core
            .offer(DetectJob {
                camera: 0,
                frame,
                motion: m,
                queued_at: Instant::now(),
            })
            .is_some()
        {
            sim.res.dropped += 1;
        }
        sim.dispatch();
        Ok(())
    })?;
    for (at, up) in stream_events {
        sim.advance(at);
        sim.stream(up);
    }
    let end = truth.duration_sec;
    sim.advance(end + 30.0);
    // Close the last count interval.
    let interval = analytics.counts_interval_sec;
    let last_t = sim.analytics.frame_t().max(end);
    sim.analytics.tick(last_t + interval, LOCAL, &mut sim.out);
    sim.drain();
    let mut res = sim.res;
    res.infer_ms = median(&mut sim.infer);
    let mx = sim.latency.iter().copied().fold(0.0, f64::max);
    res.latency_ms = (median(&mut sim.latency), mx);
    Ok(res)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
