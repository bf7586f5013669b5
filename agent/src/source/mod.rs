//! Sources: where compressed video comes from.
//!
//! [`rtsp`] pulls a camera with `retina`; file sources are demuxed by
//! GStreamer itself (see [`crate::decode::Pipeline::for_file`]). Reconnecting
//! and the per-camera state live in [`crate::camera`].

pub mod rtsp;

use std::time::SystemTime;

use serde::Serialize;

/// Where a camera is in its life cycle, as later published on
/// `ioc/v1/agents/{agent}/cameras/{camera}/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// First connection attempt in progress.
    Connecting,
    /// Frames are arriving.
    Streaming,
    /// The stream was lost or an attempt failed; retrying with backoff.
    Reconnecting,
    /// An error that retrying alone will not fix (wrong credentials, unknown
    /// path, unsupported codec); still retried at the longest backoff.
    Failed,
    /// Not running: shut down, or a file source reached its end.
    Stopped,
}

/// The state of one camera and why it is in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CameraStatus {
    /// Current state.
    pub state: CameraState,
    /// When the camera entered this state.
    pub since: SystemTime,
    /// The last error, cleared when streaming starts.
    pub error: Option<String>,
    /// Consecutive failed attempts.
    pub failures: u32,
}

impl CameraStatus {
    /// The status before the first attempt.
    pub fn connecting() -> Self {
        Self {
            state: CameraState::Connecting,
            since: SystemTime::now(),
            error: None,
            failures: 0,
        }
    }
}
