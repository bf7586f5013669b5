//! `ioc-agent probe <url>`: what a camera sends and whether we can decode it
//! as fast as it arrives, before an installer writes it into the config.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retina::client::SessionGroup;
use serde::Serialize;

use crate::config::TransportConfig;
use crate::decode::{DecodeSettings, Pipeline};
use crate::source::rtsp::{self, RtspTarget, SourceError};

/// What the probe saw.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// URL without credentials.
    pub url: String,
    /// `H.264` or `H.265`.
    pub codec: String,
    /// Width and height.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate the camera declares.
    pub declared_fps: Option<f64>,
    /// Frames received per second.
    pub received_fps: f64,
    /// Frames decoded per second.
    pub decoded_fps: f64,
    /// Average stream bit rate in kbit/s.
    pub kbit_per_s: f64,
    /// Seconds measured.
    pub seconds: f64,
}

/// Connects and measures for `duration`.
pub async fn probe(
    target: &RtspTarget,
    decoder_h264: &str,
    decoder_h265: &str,
    duration: Duration,
    timeout: Duration,
) -> Result<ProbeReport, SourceError> {
    crate::decode::init().map_err(|e| SourceError::Decode(e.to_string()))?;
    let group = Arc::new(SessionGroup::default());
    let mut stream = rtsp::connect(target, timeout, timeout, group.clone()).await?;
    let decoder = match stream.codec {
        crate::decode::Codec::H264 => decoder_h264,
        crate::decode::Codec::H265 => decoder_h265,
    };
    // Decode every frame; hand on one a second at a small size so scaling costs nothing.
    let settings = DecodeSettings {
        decoder: decoder.to_owned(),
        fps: 1.0,
        realtime: false,
        threads: 0,
    };
    let clock = std::sync::Arc::new(crate::clock::SessionClock::new(
        crate::clock::Epoch::now(),
        crate::clock::ClockMode::Live,
        0.0,
    ));
    let pipeline = Pipeline::for_stream(
        stream.codec,
        &settings,
        Default::default(),
        clock,
        Box::new(|_| {}),
    )
    .map_err(|e| SourceError::Decode(e.to_string()))?;
    let (mut frames, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let f = match tokio::time::timeout_at(end.into(), stream.next_frame()).await {
            Err(_) => break,
            Ok(f) => f?,
        };
        first.get_or_insert_with(Instant::now);
        frames += 1;
        bytes += f.data().len() as u64;
        let ts = f.timestamp();
        let pts =
            Duration::from_secs_f64(ts.elapsed().max(0) as f64 / ts.clock_rate().get() as f64);
        let key = f.is_random_access_point();
        pipeline
            .push(f.into_data(), pts, key)
            .map_err(|e| SourceError::Decode(e.to_string()))?;
    }
    // Let the decoder finish what it was given.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let secs = first
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-3);
    let decoded = pipeline.stats().decoded.load(Ordering::Relaxed);
    let (codec, resolution, declared_fps) = (stream.codec, stream.resolution, stream.declared_fps);
    drop(pipeline);
    drop(stream);
    let _ = tokio::time::timeout(Duration::from_secs(2), group.await_teardown()).await;
    Ok(ProbeReport {
        url: target.redacted().to_owned(),
        codec: codec.name().to_owned(),
        resolution,
        declared_fps,
        received_fps: frames as f64 / secs,
        decoded_fps: decoded as f64 / secs,
        kbit_per_s: bytes as f64 * 8.0 / 1000.0 / secs,
        seconds: secs,
    })
}

/// Probe with the transport named on the command line.
pub fn target(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
    udp: bool,
) -> Result<RtspTarget, String> {
    RtspTarget::new(
        url,
        username,
        password,
        if udp {
            TransportConfig::Udp
        } else {
            TransportConfig::Tcp
        },
    )
}
