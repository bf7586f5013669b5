//! The detection stage: one model session shared by every camera.
//!
//! Cameras push decoded frames into a [`DetectQueue`]; one named thread per
//! model ([`DetectorWorker`]) pops them, runs the model and hands
//! [`FrameDetections`] to a callback. The queue is bounded: with
//! [`QueuePolicy::DropOldest`] (live cameras) a slow detector makes the oldest
//! waiting frame go, counted in [`DetectQueue::dropped`], so memory never grows
//! and what is detected stays recent; with [`QueuePolicy::Block`] (files, where
//! nothing is lost by waiting) the producer waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ioc_detect::{Detection, Detector, Frame};

use crate::decode::DecodedFrame;

/// What a full queue does with a new frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Drop the oldest waiting frame (live sources).
    DropOldest,
    /// Wait for room (files and benchmarks).
    Block,
}

/// A frame waiting for the detector.
#[derive(Debug)]
pub struct DetectJob {
    /// Index of the camera in the agent's camera list.
    pub camera: usize,
    /// The decoded frame at model input size.
    pub frame: DecodedFrame,
    /// When it was queued, for latency figures.
    pub queued_at: Instant,
}

/// Detections of one frame.
#[derive(Clone, Debug)]
pub struct FrameDetections {
    /// Index of the camera.
    pub camera: usize,
    /// Presentation time of the frame since the start of its stream.
    pub pts: Duration,
    /// Size of the source frame; boxes are in its pixels.
    pub source_size: (u32, u32),
    /// The detections kept after class filtering, best first.
    pub detections: Vec<Detection>,
    /// The frame itself (model input size), for snapshots and tamper checks.
    pub frame: DecodedFrame,
    /// Time from queueing to the end of inference.
    pub latency: Duration,
    /// When the decoded frame was queued (about when it arrived).
    pub captured_at: Instant,
}

struct State {
    jobs: VecDeque<DetectJob>,
    closed: bool,
}

/// Bounded multi-producer queue in front of the detector.
pub struct DetectQueue {
    state: Mutex<State>,
    ready: Condvar,
    room: Condvar,
    capacity: usize,
    policy: QueuePolicy,
    dropped: AtomicU64,
}

impl DetectQueue {
    /// A queue holding at most `capacity` frames.
    pub fn new(capacity: usize, policy: QueuePolicy) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            capacity: capacity.max(1),
            policy,
            dropped: AtomicU64::new(0),
        })
    }

    /// Adds a frame; returns false when the queue is closed.
    pub fn push(&self, job: DetectJob) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.closed {
                return false;
            }
            if s.jobs.len() < self.capacity {
                break;
            }
            match self.policy {
                QueuePolicy::DropOldest => {
                    s.jobs.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                QueuePolicy::Block => s = self.room.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// Takes the oldest frame, waiting for one; `None` once closed and empty.
    pub fn pop(&self) -> Option<DetectJob> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(j) = s.jobs.pop_front() {
                drop(s);
                self.room.notify_one();
                return Some(j);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops accepting frames; the worker drains what is queued, then ends.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }

    /// Frames dropped because the detector was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .len()
    }

    /// True when no frame waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of the detector thread.
#[derive(Debug, Default)]
pub struct DetectStats {
    /// Frames run through the model.
    pub frames: AtomicU64,
    /// Frames whose inference failed.
    pub errors: AtomicU64,
    /// Total inference time in microseconds (pre- and post-processing included).
    pub busy_us: AtomicU64,
}

/// The detector thread.
pub struct DetectorWorker {
    handle: Option<JoinHandle<()>>,
    queue: Arc<DetectQueue>,
    stats: Arc<DetectStats>,
}

impl DetectorWorker {
    /// Starts a thread named `detect` that owns `detector`, keeps only classes
    /// in `keep` (all when `None`) and calls `on_result` for every frame.
    pub fn spawn(
        mut detector: Detector,
        queue: Arc<DetectQueue>,
        keep: Option<Vec<bool>>,
        on_result: impl Fn(FrameDetections) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(DetectStats::default());
        let (q, st) = (queue.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("detect".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(64);
                while let Some(job) = q.pop() {
                    let started = Instant::now();
                    let f = &job.frame;
                    let result = match f.buffer.map_readable() {
                        Ok(map) => detector.detect(
                            &Frame {
                                data: map.as_slice(),
                                stride: f.stride,
                                format: f.format,
                                source_size: f.source_size,
                            },
                            &mut out,
                        ),
                        Err(_) => Err(ioc_detect::Error::Inference(
                            "frame buffer is not readable".into(),
                        )),
                    };
                    st.busy_us
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if let Err(e) = result {
                        st.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(camera = job.camera, error = %e, "detection failed");
                        continue;
                    }
                    st.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(keep) = &keep {
                        out.retain(|d| keep.get(d.class_id as usize).copied().unwrap_or(false));
                    }
                    on_result(FrameDetections {
                        camera: job.camera,
                        pts: f.pts,
                        source_size: f.source_size,
                        detections: out.clone(),
                        latency: job.queued_at.elapsed(),
                        captured_at: job.queued_at,
                        frame: job.frame,
                    });
                }
            })?;
        Ok(Self {
            handle: Some(handle),
            queue,
            stats,
        })
    }

    /// Counters of this worker.
    pub fn stats(&self) -> &Arc<DetectStats> {
        &self.stats
    }

    /// Closes the queue, lets the worker drain it and joins the thread.
    pub fn shutdown(mut self) {
        self.queue.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for DetectorWorker {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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
    use gstreamer as gst;

    fn job(camera: usize) -> DetectJob {
        gst::init().unwrap();
        DetectJob {
            camera,
            frame: DecodedFrame {
                buffer: gst::Buffer::new(),
                stride: 0,
                width: 0,
                height: 0,
                format: ioc_detect::manifest::ColourOrder::Bgr,
                source_size: (0, 0),
                pts: Duration::ZERO,
            },
            queued_at: Instant::now(),
        }
    }

    #[test]
    fn a_full_drop_oldest_queue_keeps_the_newest_and_counts_drops() {
        let q = DetectQueue::new(2, QueuePolicy::DropOldest);
        for c in 0..5 {
            assert!(q.push(job(c)));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop().unwrap().camera, 3);
        assert_eq!(q.pop().unwrap().camera, 4);
        q.close();
        assert!(q.pop().is_none());
        assert!(!q.push(job(9)));
    }

    #[test]
    fn a_blocking_queue_waits_for_room_instead_of_dropping() {
        let q = DetectQueue::new(1, QueuePolicy::Block);
        q.push(job(0));
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push(job(1)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.len(), 1, "producer must be waiting");
        assert_eq!(q.pop().unwrap().camera, 0);
        assert!(t.join().unwrap());
        assert_eq!(q.pop().unwrap().camera, 1);
        assert_eq!(q.dropped(), 0);
    }
}
