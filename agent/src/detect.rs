//! The detection stage: a pool of detector workers shared by every camera, fed by a scheduler
//! that keeps the newest frame of each camera and decides, per frame, whether the model needs
//! to see it.
//!
//! - **Newest frame wins.** Each camera has one slot; a frame that arrives while the previous
//!   one still waits replaces it (counted as dropped for that camera). A busy box therefore
//!   lowers each camera's achieved detection rate instead of building a backlog, and what is
//!   detected stays recent. Files use [`QueuePolicy::Block`]: nothing is lost by waiting.
//! - **Fair.** A free worker takes the waiting frame of the camera that is furthest behind on
//!   a virtual clock that advances by `1 / target fps` each time the camera is served (start
//!   time fair queuing): under overload every camera keeps a share in proportion to its
//!   target, none is starved, and a camera that was idle does not bank credit.
//! - **Gated.** A frame with no motion, on a camera whose tracks are all stationary (or that
//!   has none), is not run through the model when the camera's last detection is recent
//!   (`detect.motion.refresh_sec`): it is *held*, and the rules judge it with the tracks
//!   where they were. Held frames skip the queue (they cost nothing).
//! - **Ordered.** Every frame a worker takes gets the camera's next `order` number and
//!   produces exactly one [`FrameResult`] (detected, held or failed), so the rules thread can
//!   put the results of parallel workers back in frame order without ever waiting for a frame
//!   that was dropped.
//!
//! [`SchedulerCore`] is the policy as pure logic with time passed in, shared by the threaded
//! [`Scheduler`] and the scenario evaluator's simulated clock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ioc_detect::{Detection, Detector};

use crate::decode::DecodedFrame;
use crate::motion::{Motion, MotionConfig};

/// What a full camera slot does with a new frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Replace the waiting frame (live sources): newest wins.
    Latest,
    /// Wait for the slot to empty (files and benchmarks): nothing is dropped.
    Block,
}

/// A frame waiting for the detector.
#[derive(Debug)]
pub struct DetectJob {
    /// Index of the camera in the agent's camera list.
    pub camera: usize,
    /// The decoded frame.
    pub frame: DecodedFrame,
    /// What the motion check saw.
    pub motion: Motion,
    /// When it was queued, for latency figures.
    pub queued_at: Instant,
}

/// What the scheduler decided for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the model on it.
    Detect,
    /// Nothing moved: judge it without running the model.
    Hold,
}

/// A frame taken from the scheduler.
#[derive(Debug)]
pub struct Taken {
    /// The frame.
    pub job: DetectJob,
    /// Its camera's order number (consecutive over taken frames).
    pub order: u64,
    /// Detect or hold.
    pub action: Action,
}

/// What became of a taken frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The model ran; the detections kept after class filtering, best first.
    Detected(Vec<Detection>),
    /// Not run: nothing moved.
    Held,
    /// The model failed on it (logged); the rules skip it.
    Failed,
}

/// One taken frame's result, for the rules.
#[derive(Clone, Debug)]
pub struct FrameResult {
    /// Index of the camera.
    pub camera: usize,
    /// The camera's order number of the frame (see the module docs).
    pub order: u64,
    /// The frame, for snapshots and tamper checks.
    pub frame: DecodedFrame,
    /// What happened.
    pub outcome: Outcome,
    /// Time from queueing to the end of inference.
    pub latency: Duration,
}

impl FrameResult {
    /// The detections (none unless the model ran).
    pub fn detections(&self) -> &[Detection] {
        match &self.outcome {
            Outcome::Detected(d) => d,
            _ => &[],
        }
    }
}

/// Tracker facts the rules thread publishes for the gate.
#[derive(Debug, Default)]
pub struct TrackerFlags(AtomicU8);

impl TrackerFlags {
    const NEEDS_DETECTION: u8 = 1;

    /// Records whether some track is moving, tentative or lost (needs the detector on every
    /// frame to be followed).
    pub fn set(&self, needs_detection: bool) {
        self.0.store(
            if needs_detection {
                Self::NEEDS_DETECTION
            } else {
                0
            },
            Ordering::Relaxed,
        );
    }

    /// Whether the tracker needs every frame detected.
    pub fn needs_detection(&self) -> bool {
        self.0.load(Ordering::Relaxed) & Self::NEEDS_DETECTION != 0
    }
}

/// Counters of one camera's detection, readable from any thread.
#[derive(Debug, Default)]
pub struct CameraDetectStats {
    /// Frames offered by the decoder.
    pub offered: AtomicU64,
    /// Frames replaced in the slot by a newer one before a worker took them.
    pub dropped: AtomicU64,
    /// Frames run through the model.
    pub detected: AtomicU64,
    /// Frames judged without the model (motion gating).
    pub held: AtomicU64,
    /// Frames the model failed on.
    pub failed: AtomicU64,
    latencies: Mutex<LatencyWindow>,
}

impl CameraDetectStats {
    /// Frames the rules judged (detected or held).
    pub fn analysed(&self) -> u64 {
        self.detected.load(Ordering::Relaxed) + self.held.load(Ordering::Relaxed)
    }

    /// Records the queue-to-result latency of a detected frame.
    pub fn record_latency(&self, d: Duration) {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
    }

    /// Median and maximum latency of the recent detected frames.
    pub fn latency(&self) -> Option<(Duration, Duration)> {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary()
    }
}

/// The last few latencies, for a median that is cheap to keep.
#[derive(Debug, Default)]
struct LatencyWindow {
    ring: Vec<Duration>,
    next: usize,
}

impl LatencyWindow {
    const LEN: usize = 64;

    fn push(&mut self, d: Duration) {
        if self.ring.len() < Self::LEN {
            self.ring.push(d);
        } else {
            self.ring[self.next] = d;
        }
        self.next = (self.next + 1) % Self::LEN;
    }

    fn summary(&self) -> Option<(Duration, Duration)> {
        if self.ring.is_empty() {
            return None;
        }
        let mut v = self.ring.clone();
        v.sort();
        Some((v[v.len() / 2], v[v.len() - 1]))
    }
}

/// How one camera is scheduled.
#[derive(Clone, Debug)]
pub struct CameraPlan {
    /// Target detection rate.
    pub target_fps: f64,
    /// Motion gating.
    pub motion: MotionConfig,
}

struct CameraSlot {
    plan: CameraPlan,
    job: Option<DetectJob>,
    next_due: f64,
    order: u64,
    last_detect_t: Option<f64>,
    stats: Arc<CameraDetectStats>,
    tracker: Arc<TrackerFlags>,
}

/// The scheduling policy (see the module docs) as pure logic.
pub struct SchedulerCore {
    cams: Vec<CameraSlot>,
    // Virtual time: the start tag of the frame served last.
    vtime: f64,
}

impl SchedulerCore {
    /// One slot per camera.
    pub fn new(plans: Vec<CameraPlan>) -> Self {
        Self {
            cams: plans
                .into_iter()
                .map(|plan| CameraSlot {
                    plan,
                    job: None,
                    next_due: f64::NEG_INFINITY,
                    order: 0,
                    last_detect_t: None,
                    stats: Arc::default(),
                    tracker: Arc::default(),
                })
                .collect(),
            vtime: 0.0,
        }
    }

    /// Counters of camera `i`.
    pub fn stats(&self, i: usize) -> Arc<CameraDetectStats> {
        self.cams[i].stats.clone()
    }

    /// Tracker flags of camera `i`, for the rules thread to set.
    pub fn tracker(&self, i: usize) -> Arc<TrackerFlags> {
        self.cams[i].tracker.clone()
    }

    /// Number of cameras.
    pub fn len(&self) -> usize {
        self.cams.len()
    }

    /// Frames waiting for a worker (at most one per camera).
    pub fn waiting(&self) -> usize {
        self.cams.iter().filter(|c| c.job.is_some()).count()
    }

    /// True without cameras.
    pub fn is_empty(&self) -> bool {
        self.cams.is_empty()
    }

    /// Whether camera `camera`'s slot is taken.
    pub fn is_full(&self, camera: usize) -> bool {
        self.cams.get(camera).is_some_and(|c| c.job.is_some())
    }

    /// Puts a frame in its camera's slot; returns the frame it replaced (dropped).
    pub fn offer(&mut self, job: DetectJob) -> Option<DetectJob> {
        let vtime = self.vtime;
        let c = self.cams.get_mut(job.camera)?;
        c.stats.offered.fetch_add(1, Ordering::Relaxed);
        if c.job.is_none() {
            // Back from idle: join at the present, without credit for the idle time.
            c.next_due = c.next_due.max(vtime);
        }
        let old = c.job.replace(job);
        if old.is_some() {
            c.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    fn gate(c: &CameraSlot, job: &DetectJob) -> Action {
        let m = &c.plan.motion;
        let recent = c
            .last_detect_t
            .is_some_and(|l| job.frame.time.t_sec - l < m.refresh_sec);
        if m.enabled && !job.motion.moving && !c.tracker.needs_detection() && recent {
            Action::Hold
        } else {
            Action::Detect
        }
    }

    /// The next frame to handle: a frame that can be held first (it costs nothing), else the
    /// waiting frame of the camera furthest behind.
    pub fn take(&mut self) -> Option<Taken> {
        let mut best: Option<(usize, f64)> = None;
        for (i, c) in self.cams.iter().enumerate() {
            let Some(job) = &c.job else { continue };
            if Self::gate(c, job) == Action::Hold {
                return Some(self.take_from(i, Action::Hold));
            }
            if best.is_none_or(|(_, due)| c.next_due < due) {
                best = Some((i, c.next_due));
            }
        }
        best.map(|(i, _)| self.take_from(i, Action::Detect))
    }

    fn take_from(&mut self, i: usize, action: Action) -> Taken {
        let c = &mut self.cams[i];
        let job = c.job.take().expect("slot has a job");
        c.order += 1;
        if action == Action::Detect {
            c.last_detect_t = Some(job.frame.time.t_sec);
            self.vtime = self.vtime.max(c.next_due);
            c.next_due += 1.0 / c.plan.target_fps.max(1e-3);
        }
        Taken {
            job,
            order: c.order,
            action,
        }
    }
}

struct SchedState {
    core: SchedulerCore,
    closed: bool,
}

/// The threaded scheduler: cameras push from GStreamer's threads, workers pop.
pub struct Scheduler {
    state: Mutex<SchedState>,
    ready: Condvar,
    room: Condvar,
    policy: QueuePolicy,
}

impl Scheduler {
    /// A scheduler over `plans` (index = camera index).
    pub fn new(plans: Vec<CameraPlan>, policy: QueuePolicy) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SchedState {
                core: SchedulerCore::new(plans),
                closed: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            policy,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters of camera `i`.
    pub fn stats(&self, i: usize) -> Arc<CameraDetectStats> {
        self.lock().core.stats(i)
    }

    /// Tracker flags of camera `i`.
    pub fn tracker(&self, i: usize) -> Arc<TrackerFlags> {
        self.lock().core.tracker(i)
    }

    /// Offers a frame; returns false when closed.
    pub fn push(&self, job: DetectJob) -> bool {
        let mut s = self.lock();
        if self.policy == QueuePolicy::Block {
            while !s.closed && s.core.is_full(job.camera) {
                s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        }
        if s.closed {
            return false;
        }
        // A replaced frame is dropped here, outside any worker.
        let _dropped = s.core.offer(job);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// Takes the next frame, waiting for one; `None` once closed and empty.
    pub fn pop(&self) -> Option<Taken> {
        let mut s = self.lock();
        loop {
            if let Some(t) = s.core.take() {
                drop(s);
                self.room.notify_all();
                return Some(t);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Frames waiting for a worker: the detectors' queue depth.
    pub fn waiting(&self) -> usize {
        self.lock().core.waiting()
    }

    /// Stops accepting frames; workers drain what waits, then end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }
}

/// Counters of the whole pool.
#[derive(Debug, Default)]
pub struct DetectStats {
    /// Frames run through the model.
    pub frames: AtomicU64,
    /// Frames whose inference failed.
    pub errors: AtomicU64,
    /// Total inference time in microseconds (pre- and post-processing included).
    pub busy_us: AtomicU64,
    /// Distribution of the inference times.
    pub inference: InferenceHistogram,
}

/// Inference times in fixed buckets (Prometheus histogram, cumulative on export): lock-free,
/// one atomic add per inference.
#[derive(Debug, Default)]
pub struct InferenceHistogram {
    counts: [AtomicU64; INFERENCE_BUCKETS.len() + 1],
}

/// Bucket upper bounds in seconds: a fast model on a desktop takes ~5 ms, a loaded ARM box
/// or a large model over a second.
pub const INFERENCE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
];

impl InferenceHistogram {
    /// Counts one inference of `d`.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = INFERENCE_BUCKETS
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(INFERENCE_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts for each bound of [`INFERENCE_BUCKETS`], then for +Inf.
    pub fn cumulative(&self) -> [u64; INFERENCE_BUCKETS.len() + 1] {
        let mut out = [0; INFERENCE_BUCKETS.len() + 1];
        let mut total = 0;
        for (o, c) in out.iter_mut().zip(&self.counts) {
            total += c.load(Ordering::Relaxed);
            *o = total;
        }
        out
    }
}

/// Runs one taken frame: the model for [`Action::Detect`], nothing for [`Action::Hold`].
/// Shared by the pool's threads and the scenario evaluator.
pub fn run_one(
    detector: &mut Detector,
    keep: Option<&[bool]>,
    taken: Taken,
    scratch: &mut Vec<Detection>,
) -> FrameResult {
    let Taken { job, order, action } = taken;
    let outcome = match action {
        Action::Hold => Outcome::Held,
        Action::Detect => {
            let r = job
                .frame
                .with_image(|img| detector.detect_yuv(img, scratch))
                .map_err(ioc_detect::Error::Inference)
                .and_then(|r| r);
            match r {
                Ok(()) => {
                    if let Some(keep) = keep {
                        scratch.retain(|d| keep.get(d.class_id as usize).copied().unwrap_or(false));
                    }
                    Outcome::Detected(scratch.clone())
                }
                Err(e) => {
                    tracing::warn!(camera = job.camera, error = %e, "detection failed");
                    Outcome::Failed
                }
            }
        }
    };
    FrameResult {
        camera: job.camera,
        order,
        latency: job.queued_at.elapsed(),
        frame: job.frame,
        outcome,
    }
}

/// The detector threads (`detect-0`, `detect-1`, …), one model session each.
pub struct DetectorPool {
    handles: Vec<JoinHandle<()>>,
    sched: Arc<Scheduler>,
    stats: Arc<DetectStats>,
}

impl DetectorPool {
    /// Starts one thread per detector. Each keeps only classes in `keep` (all when `None`)
    /// and calls `on_result` for every frame it takes.
    pub fn spawn(
        detectors: Vec<Detector>,
        sched: Arc<Scheduler>,
        keep: Option<Vec<bool>>,
        on_result: Arc<dyn Fn(FrameResult) + Send + Sync>,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(DetectStats::default());
        let keep: Option<Arc<[bool]>> = keep.map(Into::into);
        let mut handles = Vec::new();
        for (i, mut detector) in detectors.into_iter().enumerate() {
            let (sched2, st, keep, on_result) = (
                sched.clone(),
                stats.clone(),
                keep.clone(),
                on_result.clone(),
            );
            let h = std::thread::Builder::new()
                .name(format!("detect-{i}"))
                .spawn(move || {
                    let mut scratch = Vec::with_capacity(64);
                    while let Some(taken) = sched2.pop() {
                        let cam_stats = sched2.stats(taken.job.camera);
                        let action = taken.action;
                        let started = Instant::now();
                        let r = run_one(&mut detector, keep.as_deref(), taken, &mut scratch);
                        match (&r.outcome, action) {
                            (Outcome::Held, _) => {
                                cam_stats.held.fetch_add(1, Ordering::Relaxed);
                            }
                            (Outcome::Detected(_), _) => {
                                let took = started.elapsed();
                                st.frames.fetch_add(1, Ordering::Relaxed);
                                st.busy_us
                                    .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                                st.inference.observe(took);
                                cam_stats.detected.fetch_add(1, Ordering::Relaxed);
                                cam_stats.record_latency(r.latency);
                            }
                            (Outcome::Failed, _) => {
                                st.errors.fetch_add(1, Ordering::Relaxed);
                                cam_stats.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        on_result(r);
                    }
                })?;
            handles.push(h);
        }
        Ok(Self {
            handles,
            sched,
            stats,
        })
    }

    /// Counters of the pool.
    pub fn stats(&self) -> &Arc<DetectStats> {
        &self.stats
    }

    /// The scheduler the workers take frames from.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.sched
    }

    /// Closes the scheduler, lets the workers drain it and joins them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.sched.close();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for DetectorPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Class filter from names: `None` keeps everything.
pub fn class_filter(labels: &[String], keep: &[String]) -> Option<Vec<bool>> {
    if keep.is_empty() {
        return None;
    }
    Some(labels.iter().map(|l| keep.iter().any(|k| k == l)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FrameTime;
    use std::time::SystemTime;

    fn job(camera: usize, t_sec: f64, moving: bool) -> DetectJob {
        gstreamer::init().unwrap();
        let time = FrameTime {
            pts: Duration::from_secs_f64(t_sec),
            t_sec,
            wall: SystemTime::now(),
        };
        DetectJob {
            camera,
            frame: DecodedFrame::from_i420(4, 4, vec![0; 24], time),
            motion: Motion {
                changed: if moving { 0.1 } else { 0.0 },
                moving,
            },
            queued_at: Instant::now(),
        }
    }

    fn plan(fps: f64) -> CameraPlan {
        CameraPlan {
            target_fps: fps,
            motion: MotionConfig::default(),
        }
    }

    #[test]
    fn newest_frame_wins_and_drops_are_counted_per_camera() {
        let mut s = SchedulerCore::new(vec![plan(5.0), plan(5.0)]);
        for k in 0..4 {
            s.offer(job(0, k as f64 * 0.2, true));
        }
        s.offer(job(1, 0.0, true));
        assert_eq!(s.stats(0).dropped.load(Ordering::Relaxed), 3);
        assert_eq!(s.stats(1).dropped.load(Ordering::Relaxed), 0);
        let a = s.take().unwrap();
        let b = s.take().unwrap();
        let mut got = [
            (a.job.camera, a.job.frame.time.t_sec),
            (b.job.camera, b.job.frame.time.t_sec),
        ];
        got.sort_by_key(|x| x.0);
        assert_eq!(got, [(0, 0.6000000000000001), (1, 0.0)]);
        assert!(s.take().is_none());
        assert_eq!((a.order, b.order), (1, 1));
    }

    #[test]
    fn overload_is_shared_in_proportion_to_target_rates() {
        // Three cameras always have a frame waiting; the workers manage 6 frames a second.
        let mut s = SchedulerCore::new(vec![plan(5.0), plan(5.0), plan(10.0)]);
        let mut served = [0u32; 3];
        let mut now = 0.0;
        while now < 100.0 {
            for c in 0..3 {
                if !s.is_full(c) {
                    s.offer(job(c, now, true));
                }
            }
            let t = s.take().unwrap();
            served[t.job.camera] += 1;
            now += 1.0 / 6.0;
        }
        let total: u32 = served.iter().sum();
        let share = |c: usize| served[c] as f64 / total as f64;
        assert!((share(0) - 0.25).abs() < 0.03, "{served:?}");
        assert!((share(1) - 0.25).abs() < 0.03, "{served:?}");
        assert!((share(2) - 0.5).abs() < 0.03, "{served:?}");
    }

    #[test]
    fn still_frames_are_held_until_the_refresh_or_a_moving_track() {
        let mut s = SchedulerCore::new(vec![plan(5.0)]);
        s.offer(job(0, 0.0, false));
        assert_eq!(s.take().unwrap().action, Action::Detect, "first frame");
        s.offer(job(0, 0.2, false));
        assert_eq!(s.take().unwrap().action, Action::Hold);
        s.offer(job(0, 0.4, true));
        assert_eq!(s.take().unwrap().action, Action::Detect, "motion");
        s.tracker(0).set(true);
        s.offer(job(0, 0.6, false));
        assert_eq!(s.take().unwrap().action, Action::Detect, "a track moves");
        s.tracker(0).set(false);
        s.offer(job(0, 0.8, false));
        assert_eq!(s.take().unwrap().action, Action::Hold);
        // The refresh: two seconds after the last detection (0.6 s).
        s.offer(job(0, 2.6, false));
        assert_eq!(s.take().unwrap().action, Action::Detect, "refresh");
    }

    #[test]
    fn a_blocking_scheduler_waits_for_room_instead_of_dropping() {
        let s = Scheduler::new(vec![plan(5.0)], QueuePolicy::Block);
        assert!(s.push(job(0, 0.0, true)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.push(job(0, 0.2, true)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "producer must be waiting");
        assert_eq!(s.pop().unwrap().order, 1);
        assert!(t.join().unwrap());
        assert_eq!(s.pop().unwrap().order, 2);
        assert_eq!(s.stats(0).dropped.load(Ordering::Relaxed), 0);
        s.close();
        assert!(s.pop().is_none());
        assert!(!s.push(job(0, 0.4, true)));
    }
}
