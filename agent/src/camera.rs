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
use crate::motion::{MotionConfig, MotionDetector};
use crate::source::backoff::Backoff;
use crate::source::rtsp::{self, RtspTarget, SourceError};
use crate::source::{CameraState, CameraStatus};

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
}

impl CameraCounters {
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
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(spec.initial_backoff, spec.max_backoff);
    let group = Arc::new(SessionGroup::default());
    let mut failures = 0u32;
    loop {
        let streamed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let result = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = session(&spec, &queue, &status, &counters, &streamed, &group) => r,
        };
        if *shutdown.borrow() {
            break;
        }
        let err = match result {
            Ok(()) => {
                // A file played to its end.
                set(&status, &spec.id, CameraState::Stopped, None, 0);
                return;
            }
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
        set(&status, &spec.id, state, Some(err.to_string()), failures);
        tracing::info!(camera = %spec.id, retry_in_ms = delay.as_millis() as u64, "retrying");
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    // Let retina send TEARDOWN for the last session before we report stopped.
    let _ = tokio::time::timeout(Duration::from_secs(2), group.await_teardown()).await;
    set(&status, &spec.id, CameraState::Stopped, None, 0);
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
    let motion = std::sync::Mutex::new(MotionDetector::new(spec.motion.clone()));
    Box::new(move |frame| {
        let t = frame.time.t_sec;
        let m = frame
            .with_image(|img| {
                motion
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .measure(img, t)
            })
            .unwrap_or_default();
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
        counters.received.fetch_add(1, Ordering::Relaxed);
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
        if pipeline
            .push(frame.into_data(), pts, key)
            .map_err(|e| SourceError::Decode(e.to_string()))?
            == PushOutcome::Dropped
        {
            continue;
        }
    }
}
