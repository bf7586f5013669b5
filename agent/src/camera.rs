//! One camera's life: connect, stream into the decoder, and on any failure
//! report it, wait (capped exponential backoff with jitter, cut short by
//! shutdown) and start again, without restarting the agent.
//!
//! Each camera runs as one tokio task (network I/O); decoding runs on
//! GStreamer's threads and detection on the detector thread. The state is
//! published on a `watch` channel and logged on every change.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use retina::client::SessionGroup;
use tokio::sync::watch;

use crate::clock::{ClockMode, Epoch, SessionClock};
use crate::decode::{DecodeSettings, DecodeStats, DecodedFrame, Pipeline, PushOutcome};
use crate::detect::{DetectJob, Scheduler};
use crate::motion::{Motion, MotionConfig, MotionDetector};
use crate::source::rtsp::{self, RtspTarget, SourceError};
use crate::source::{CameraState, CameraStatus};
use ioc_base::Backoff;

/// Where a camera's video comes from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// An RTSP camera or server.
    Rtsp(RtspTarget),
    /// A video file.
    File(PathBuf),
}

/// Everything a camera task needs, resolved from config.
#[derive(Clone, Debug)]
pub struct CameraSpec {
    /// Position in the agent's camera list (tags its frames in the shared queue).
    pub index: usize,
    /// Camera id from config.
    pub id: String,
    /// The source.
    pub source: SourceSpec,
    /// H.264 decoder element or bin description.
    pub h264_decoder: String,
    /// H.265 decoder element or bin description.
    pub h265_decoder: String,
    /// Decode output (rate, pacing of files).
    pub decode: DecodeSettings,
    /// Motion gating settings (the motion check runs on every frame handed on).
    pub motion: MotionConfig,
    /// The agent's start: zero of the rule clock.
    pub epoch: Epoch,
    /// First backoff delay.
    pub initial_backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Limit per RTSP request.
    pub connect_timeout: Duration,
    /// Limit between frames.
    pub idle_timeout: Duration,
    /// The ring event clips are cut from (RTSP cameras with clips on).
    pub clips: Option<Arc<crate::clip::ClipRing>>,
}

/// Counters of one camera.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Compressed frames received.
    pub received: AtomicU64,
    /// Decoder counters, all sessions together: decoded, handed to the
    /// detector queue, dropped because the decoder was behind.
    pub decode: Arc<DecodeStats>,
    /// Sessions that ended in an error.
    pub failures: AtomicU64,
    /// Rule-clock time of the latest frame handed on (f64 bits): where the next session's
    /// clock starts at the earliest.
    last_t_bits: AtomicU64,
    /// When the latest compressed frame arrived (Unix ms; 0: none yet).
    last_frame_ms: AtomicU64,
}

impl CameraCounters {
    /// One compressed frame arrived now.
    pub fn frame_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_frame_ms.store(now, Ordering::Relaxed);
    }

    /// How long ago the latest compressed frame arrived; `None` before the first.
    pub fn last_frame_age(&self) -> Option<Duration> {
        let at = self.last_frame_ms.load(Ordering::Relaxed);
        (at > 0).then(|| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(at);
            SystemTime::now().duration_since(at).unwrap_or_default()
        })
    }

    fn last_t(&self) -> Option<f64> {
        match self.last_t_bits.load(Ordering::Relaxed) {
            0 => None,
            b => Some(f64::from_bits(b)),
        }
    }
}

/// A running camera task.
pub struct CameraHandle {
    /// Camera id.
    pub id: String,
    /// Live state.
    pub status: watch::Receiver<CameraStatus>,
    /// Live counters.
    pub counters: Arc<CameraCounters>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the camera's task on the current tokio runtime.
pub fn spawn(
    spec: CameraSpec,
    queue: Arc<Scheduler>,
    shutdown: watch::Receiver<bool>,
) -> CameraHandle {
    let (status_tx, status) = watch::channel(CameraStatus::connecting());
    let counters = Arc::new(CameraCounters::default());
    let id = spec.id.clone();
    let c = counters.clone();
    let task = tokio::spawn(async move { run(spec, queue, status_tx, c, shutdown).await });
    CameraHandle {
        id,
        status,
        counters,
        task,
    }
}

async fn run(
    spec: CameraSpec,
    queue: Arc<Scheduler>,
    status: watch::Sender<CameraStatus>,
    counters: Arc<CameraCounters>,
    shutdown: watch::Receiver<bool>,
) {
    let group = Arc::new(SessionGroup::default());
    let backoff = Backoff::new(spec.initial_backoff, spec.max_backoff);
    let (spec_r, queue_r, status_r, counters_r, group_r) =
        (&spec, &queue, &status, &counters, &group);
    let ended = supervise(
        &spec.id,
        backoff,
        &status,
        &counters,
        shutdown,
        |streamed| async move {
            session(spec_r, queue_r, status_r, counters_r, &streamed, group_r).await
        },
    )
    .await;
    if ended == Ended::Shutdown {
        // Let retina send TEARDOWN for the last session before we report stopped.
        let _ = tokio::time::timeout(Duration::from_secs(2), group.await_teardown()).await;
    }
    set(&status, &spec.id, CameraState::Stopped, None, 0);
}

/// Why [`supervise`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The source ended by itself (a file played to its end).
    Finished,
    /// The agent is stopping.
    Shutdown,
}

/// A camera's connect → stream → retry loop over any way of running one session, until the
/// source finishes or `shutdown` turns true. `session` gets a flag to set once frames flowed
/// (a session that streamed resets the backoff) and returns `Ok` only when a file ended.
/// Failures are reported in `status` (`Reconnecting`, or `Failed` for errors retrying cannot
/// fix soon, retried at the longest delay) and counted. Separate from the RTSP and GStreamer
/// session so the retry policy can be tested with a paused clock and a scripted session.
pub async fn supervise<F, Fut>(
    id: &str,
    mut backoff: Backoff,
    status: &watch::Sender<CameraStatus>,
    counters: &CameraCounters,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
) -> Ended
where
    F: FnMut(Arc<std::sync::atomic::AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), SourceError>>,
{
    let mut failures = 0u32;
    loop {
        let streamed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let result = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ended::Shutdown,
            r = session(streamed.clone()) => r,
        };
        if *shutdown.borrow() {
            return Ended::Shutdown;
        }
        let err = match result {
            Ok(()) => return Ended::Finished,
            Err(e) => e,
        };
        counters.failures.fetch_add(1, Ordering::Relaxed);
        if streamed.load(Ordering::Relaxed) {
            backoff.reset();
            failures = 0;
        }
        failures += 1;
        let (state, delay) = if err.is_permanent() {
            (CameraState::Failed, backoff.max_delay())
        } else {
            (CameraState::Reconnecting, backoff.next_delay())
        };
        set(status, id, state, Some(err.to_string()), failures);
        tracing::info!(camera = %id, retry_in_ms = delay.as_millis() as u64, "retrying");
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Ended::Shutdown,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn set(
    tx: &watch::Sender<CameraStatus>,
    id: &str,
    state: CameraState,
    error: Option<String>,
    failures: u32,
) {
    let changed = tx.borrow().state != state;
    match (&error, state) {
        (Some(e), CameraState::Failed) if changed => {
            tracing::error!(camera = %id, ?state, error = %e, "camera state")
        }
        (Some(e), _) if changed => tracing::warn!(camera = %id, ?state, error = %e, "camera state"),
        _ if changed => tracing::info!(camera = %id, ?state, "camera state"),
        _ => {}
    }
    tx.send_replace(CameraStatus {
        state,
        since: if changed {
            SystemTime::now()
        } else {
            tx.borrow().since
        },
        error,
        failures,
    });
}

/// The callback that checks each decoded frame for motion and offers it to the scheduler.
fn to_scheduler(
    spec: &CameraSpec,
    queue: Arc<Scheduler>,
    counters: Arc<CameraCounters>,
) -> Box<dyn Fn(DecodedFrame) + Send + Sync> {
    let index = spec.index;
    let gating = spec.motion.enabled;
    let motion = std::sync::Mutex::new(MotionDetector::new(spec.motion.clone()));
    Box::new(move |frame| {
        let t = frame.time.t_sec;
        // Without gating nobody reads the measure: every frame counts as moving.
        let m = if gating {
            frame
                .with_image(|img| {
                    motion
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .measure(img, t)
                })
                .unwrap_or_default()
        } else {
            Motion {
                changed: 1.0,
                moving: true,
            }
        };
        counters.last_t_bits.store(t.to_bits(), Ordering::Relaxed);
        queue.push(DetectJob {
            camera: index,
            frame,
            motion: m,
            queued_at: Instant::now(),
        });
    })
}

/// The clock of a new session of this camera.
fn session_clock(spec: &CameraSpec, counters: &CameraCounters) -> Arc<SessionClock> {
    let last = counters.last_t();
    let mode = match spec.source {
        SourceSpec::File(_) if !spec.decode.realtime => ClockMode::Flat {
            // A replayed file continues after the previous session's last frame.
            offset_sec: last.map_or(0.0, |t| t + 0.1),
        },
        SourceSpec::File(_) => ClockMode::Paced,
        SourceSpec::Rtsp(_) => ClockMode::Live,
    };
    Arc::new(SessionClock::new(spec.epoch, mode, last.unwrap_or(0.0)))
}

/// One connection: returns `Ok` only when a file ends; a live stream always ends in an error.
async fn session(
    spec: &CameraSpec,
    queue: &Arc<Scheduler>,
    status: &watch::Sender<CameraStatus>,
    counters: &Arc<CameraCounters>,
    streamed: &std::sync::atomic::AtomicBool,
    group: &Arc<SessionGroup>,
) -> Result<(), SourceError> {
    match &spec.source {
        SourceSpec::File(path) => {
            let pipeline = Pipeline::for_file(
                path,
                &spec.decode,
                counters.decode.clone(),
                session_clock(spec, counters),
                to_scheduler(spec, queue.clone(), counters.clone()),
            )
            .map_err(|e| SourceError::Decode(e.to_string()))?;
            streamed.store(true, Ordering::Relaxed);
            set(status, &spec.id, CameraState::Streaming, None, 0);
            let pipeline = Arc::new(pipeline);
            let p = pipeline.clone();
            let r = tokio::task::spawn_blocking(move || p.wait(None))
                .await
                .map_err(|e| SourceError::Decode(e.to_string()))?;
            r.map_err(|e| SourceError::Decode(e.to_string()))
        }
        SourceSpec::Rtsp(target) => {
            // Wait for a stale session of ours to be torn down, so a camera with a
            // session limit does not refuse the new one.
            let stale = group.stale_sessions();
            let _ = tokio::time::timeout(spec.connect_timeout, group.await_stale_sessions(&stale))
                .await;
            let mut stream = rtsp::connect(
                target,
                spec.connect_timeout,
                spec.idle_timeout,
                group.clone(),
            )
            .await?;
            let decoder = match stream.codec {
                crate::decode::Codec::H264 => &spec.h264_decoder,
                crate::decode::Codec::H265 => &spec.h265_decoder,
            };
            let settings = DecodeSettings {
                decoder: decoder.clone(),
                ..spec.decode.clone()
            };
            let clock = session_clock(spec, counters);
            if let Some(ring) = &spec.clips {
                ring.reset(stream.codec);
            }
            let pipeline = Pipeline::for_stream(
                stream.codec,
                &settings,
                counters.decode.clone(),
                clock.clone(),
                to_scheduler(spec, queue.clone(), counters.clone()),
            )
            .map_err(|e| SourceError::Decode(e.to_string()))?;
            pump(
                spec,
                &mut stream,
                &pipeline,
                &clock,
                status,
                counters,
                streamed,
            )
            .await
        }
    }
}

async fn pump(
    spec: &CameraSpec,
    stream: &mut rtsp::RtspStream,
    pipeline: &Pipeline,
    clock: &SessionClock,
    status: &watch::Sender<CameraStatus>,
    counters: &CameraCounters,
    streamed: &std::sync::atomic::AtomicBool,
) -> Result<(), SourceError> {
    loop {
        let frame = stream.next_frame().await?;
        counters.frame_received();
        if !streamed.swap(true, Ordering::Relaxed) {
            set(status, &spec.id, CameraState::Streaming, None, 0);
            tracing::info!(
                camera = %spec.id,
                url = %stream.redacted(),
                codec = stream.codec.name(),
                resolution = ?stream.resolution,
                fps = ?stream.declared_fps,
                "streaming"
            );
        }
        if frame.loss() > 0 {
            tracing::warn!(camera = %spec.id, lost_packets = frame.loss(), "packet loss; waiting for the next key frame");
            pipeline.resync();
        }
        let ts = frame.timestamp();
        let pts =
            Duration::from_secs_f64(ts.elapsed().max(0) as f64 / ts.clock_rate().get() as f64);
        // The session's clock is anchored on its first frame's arrival (crate::clock).
        clock.anchor(pts, frame.start_ctx().received());
        if let Some(sr) = stream.sender_report() {
            // The camera says when it captured the frame at RTP time `sr.1`.
            let dt = (ts.timestamp() - sr.1.timestamp()) as f64 / ts.clock_rate().get() as f64;
            let captured = crate::clock::ntp_to_system_time(sr.0);
            let captured = if dt >= 0.0 {
                captured + Duration::from_secs_f64(dt)
            } else {
                captured - Duration::from_secs_f64(-dt)
            };
            let arrived = frame.start_ctx().received();
            let arrived_wall: SystemTime = frame.start_ctx().received_wall().into();
            match clock.refine(pts, captured, arrived_wall, arrived) {
                Some(Ok(delay)) => {
                    tracing::debug!(camera = %spec.id, delay_ms = delay.as_millis() as u64, "capture times from the camera's sender reports")
                }
                Some(Err(off)) => {
                    tracing::info!(camera = %spec.id, camera_clock_ahead_s = format!("{:.1}", -off), "the camera's clock disagrees with ours; using arrival times")
                }
                None => {}
            }
        }
        let key = frame.is_random_access_point();
        let data = bytes::Bytes::from(frame.into_data());
        if let Some(ring) = &spec.clips {
            let time = clock.time(pts);
            ring.push(crate::clip::Unit {
                t: time.t_sec,
                wall: time.wall,
                key,
                data: data.clone(),
            });
        }
        if pipeline
            .push(data, pts, key)
            .map_err(|e| SourceError::Decode(e.to_string()))?
            == PushOutcome::Dropped
        {
            continue;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    fn unreachable() -> SourceError {
        SourceError::Unreachable {
            url: "rtsp://cam/".into(),
            msg: "connection refused".into(),
        }
    }

    /// The retry policy on a paused clock: doubling delays from the first, reset by a session
    /// that streamed, the longest delay after an error retrying will not fix soon, the state
    /// and failure count reported, and a prompt stop.
    #[tokio::test(start_paused = true)]
    async fn reconnects_back_off_reset_after_streaming_and_stop_promptly() {
        let (status, status_rx) = watch::channel(CameraStatus::connecting());
        let counters = CameraCounters::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let t0 = tokio::time::Instant::now();
        let calls: Mutex<Vec<Duration>> = Mutex::default();
        let seen: Mutex<Vec<(CameraState, u32)>> = Mutex::default();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let ended = supervise(
            "cam",
            backoff,
            &status,
            &counters,
            stop_rx,
            |streamed: Arc<AtomicBool>| {
                let n = {
                    let mut c = calls.lock().unwrap();
                    c.push(t0.elapsed());
                    c.len()
                };
                {
                    let s = status_rx.borrow();
                    seen.lock().unwrap().push((s.state, s.failures));
                }
                let stop = (n == 7).then(|| stop_tx.clone());
                async move {
                    match n {
                        // Three refusals, then a session that streamed for 10 s and broke.
                        1..=3 => Err(unreachable()),
                        4 => {
                            streamed.store(true, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            Err(unreachable())
                        }
                        5 => Err(unreachable()),
                        // A wrong password: retried at the longest delay.
                        6 => Err(SourceError::Auth {
                            url: "rtsp://cam/".into(),
                            status: 401,
                        }),
                        // Stopped while this session hangs.
                        _ => {
                            let _ = stop.unwrap().send(true);
                            std::future::pending().await
                        }
                    }
                }
            },
        )
        .await;
        assert_eq!(ended, Ended::Shutdown);
        let calls = calls.into_inner().unwrap();
        let gaps: Vec<f64> = calls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        // Waits of ~1, 2, 4 s (±20 % jitter); 10 s of streaming, then ~1 s (streaming reset
        // the backoff); ~2 s; then the longest delay for the wrong password, without jitter.
        let within = |got: f64, base: f64| (base * 0.8 - 1e-6..=base * 1.2 + 1e-6).contains(&got);
        assert!(within(gaps[0], 1.0), "{gaps:?}");
        assert!(within(gaps[1], 2.0), "{gaps:?}");
        assert!(within(gaps[2], 4.0), "{gaps:?}");
        assert!(within(gaps[3] - 10.0, 1.0), "{gaps:?}");
        assert!(within(gaps[4], 2.0), "{gaps:?}");
        assert!((gaps[5] - 30.0).abs() < 1e-6, "{gaps:?}");
        assert_eq!(counters.failures.load(Ordering::Relaxed), 6);
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            vec![
                (CameraState::Connecting, 0),
                (CameraState::Reconnecting, 1),
                (CameraState::Reconnecting, 2),
                (CameraState::Reconnecting, 3),
                (CameraState::Reconnecting, 1),
                (CameraState::Reconnecting, 2),
                (CameraState::Failed, 3),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_file_ends_the_loop() {
        let (status, _rx) = watch::channel(CameraStatus::connecting());
        let counters = CameraCounters::default();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let ended = supervise("file", backoff, &status, &counters, stop_rx, |_| async {
            Ok(())
        })
        .await;
        assert_eq!(ended, Ended::Finished);
        assert_eq!(counters.failures.load(Ordering::Relaxed), 0);
    }
}
