//! RTSP with `retina`: connect, pick the video stream, and read frames, with
//! the timeouts retina does not have (a frozen server would otherwise block
//! DESCRIBE forever and a dead one just ends the stream).
//!
//! Credentials come from config or the URL's userinfo; either way they are
//! stripped from the URL before it is used or logged ([`RtspTarget::redacted`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, SessionGroup, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoFrame};
use url::Url;

use crate::config::TransportConfig;
use crate::decode::Codec;

/// Why a connection attempt or a stream failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SourceError {
    /// TCP connect failed (refused, unreachable, DNS).
    #[error("cannot connect to {url}: {msg}")]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// The cause.
        msg: String,
    },
    /// A request got no answer in time (a frozen server, or not an RTSP server at all).
    #[error("no answer to {stage} from {url} within {}s (is it an RTSP server?)", .after.as_secs_f32())]
    Timeout {
        /// `DESCRIBE`, `SETUP` or `PLAY`.
        stage: &'static str,
        /// Redacted URL.
        url: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The server refused our credentials (401/403).
    #[error("authentication refused by {url} ({status}): check username and password")]
    Auth {
        /// Redacted URL.
        url: String,
        /// RTSP status code.
        status: u16,
    },
    /// The server has no stream at this path (404).
    #[error("{url}: no such stream (404): check the path")]
    NotFound {
        /// Redacted URL.
        url: String,
    },
    /// No H.264/H.265 video stream in the session.
    #[error("{url}: {msg}")]
    Unsupported {
        /// Redacted URL.
        url: String,
        /// What was offered.
        msg: String,
    },
    /// Any other RTSP or RTP failure.
    #[error("{url}: {msg}")]
    Protocol {
        /// Redacted URL.
        url: String,
        /// Retina's description.
        msg: String,
    },
    /// No frame for too long.
    #[error("{url}: no frame for {}s", .after.as_secs_f32())]
    Idle {
        /// Redacted URL.
        url: String,
        /// The idle limit.
        after: Duration,
    },
    /// The server ended the stream.
    #[error("{url}: stream ended by the server")]
    Ended {
        /// Redacted URL.
        url: String,
    },
    /// The decoder failed.
    #[error("decode: {0}")]
    Decode(String),
}

impl SourceError {
    /// Errors that retrying soon will not fix: the camera goes to `failed` and
    /// is retried at the longest backoff.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Auth { .. } | Self::NotFound { .. } | Self::Unsupported { .. }
        )
    }
}

/// A camera address with its credentials kept apart.
#[derive(Clone)]
pub struct RtspTarget {
    url: Url,
    creds: Option<Credentials>,
    redacted: String,
    transport: TransportConfig,
}

impl std::fmt::Debug for RtspTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("RtspTarget")
            .field("url", &self.redacted)
            .finish()
    }
}

impl RtspTarget {
    /// Builds a target from a URL and optional separate credentials.
    pub fn new(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
        transport: TransportConfig,
    ) -> Result<Self, String> {
        let mut url = Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
        if url.scheme() == "rtsps" {
            return Err(crate::config::RTSPS_UNSUPPORTED.into());
        }
        if url.scheme() != "rtsp" {
            return Err(format!("scheme {:?} is not rtsp", url.scheme()));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let creds = match (url.username(), username) {
            ("", Some(u)) => Some(Credentials {
                username: u.to_owned(),
                password: password.unwrap_or_default().to_owned(),
            }),
            ("", None) => None,
            // `rtsp://user@host/…` with the password given apart (IOC_RTSP_PASSWORD, the
            // config's `password`): the URL names the user, the password comes from there.
            (u, _) => Some(Credentials {
                username: decode(u),
                password: url
                    .password()
                    .map(decode)
                    .or_else(|| password.map(str::to_owned))
                    .unwrap_or_default(),
            }),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut redacted = url.clone();
        // Some cameras take credentials or tokens in the query: never log it.
        if redacted.query().is_some() {
            redacted.set_query(Some("..."));
        }
        Ok(Self {
            url,
            creds,
            redacted: redacted.to_string(),
            transport,
        })
    }

    /// The URL without credentials or query, for logs and errors.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// An open, playing RTSP session positioned at its video stream.
pub struct RtspStream {
    demuxed: Pin<Box<Demuxed>>,
    stream_index: usize,
    /// The video codec.
    pub codec: Codec,
    /// Width and height when known (from the SDP or the first key frame).
    pub resolution: Option<(u32, u32)>,
    /// Declared frame rate when the camera states it.
    pub declared_fps: Option<f64>,
    redacted: String,
    idle: Duration,
    // The latest RTCP sender report of the video stream: (camera's NTP time, RTP time).
    sender_report: Option<(retina::NtpTimestamp, retina::Timestamp)>,
}

/// Connects, sets up the first H.264/H.265 video stream and starts playing.
/// Each of DESCRIBE, SETUP and PLAY is bounded by `timeout`.
pub async fn connect(
    target: &RtspTarget,
    timeout: Duration,
    idle: Duration,
    group: Arc<SessionGroup>,
) -> Result<RtspStream, SourceError> {
    let url = target.redacted.clone();
    let options = SessionOptions::default()
        .creds(target.creds.clone())
        .user_agent(format!("ioc-agent/{}", env!("CARGO_PKG_VERSION")))
        .session_group(group);
    let mut session = bounded(
        "DESCRIBE",
        &url,
        timeout,
        retina::client::Session::describe(target.url.clone(), options),
    )
    .await?;
    let mut offered = Vec::new();
    let mut chosen = None;
    for (i, s) in session.streams().iter().enumerate() {
        if s.media() != "video" {
            continue;
        }
        match Codec::from_encoding_name(s.encoding_name()) {
            Some(c) => {
                chosen = Some((i, c));
                break;
            }
            None => offered.push(s.encoding_name().to_owned()),
        }
    }
    let Some((stream_index, codec)) = chosen else {
        return Err(SourceError::Unsupported {
            url,
            msg: format!("no H.264 or H.265 video stream (offered: {offered:?})"),
        });
    };
    let declared_fps = session.streams()[stream_index].framerate().map(f64::from);
    let transport = match target.transport {
        TransportConfig::Tcp => Transport::Tcp(Default::default()),
        TransportConfig::Udp => Transport::Udp(Default::default()),
    };
    let setup = SetupOptions::default()
        .transport(transport)
        .frame_format(FrameFormat::SIMPLE);
    bounded("SETUP", &url, timeout, session.setup(stream_index, setup)).await?;
    let playing = bounded("PLAY", &url, timeout, session.play(PlayOptions::default())).await?;
    let demuxed = playing.demuxed().map_err(|e| classify(&url, &e))?;
    let mut s = RtspStream {
        demuxed: Box::pin(demuxed),
        stream_index,
        codec,
        resolution: None,
        declared_fps,
        redacted: url,
        idle,
        sender_report: None,
    };
    s.refresh_parameters();
    Ok(s)
}

impl RtspStream {
    /// The next video frame (Annex B, parameter sets before every key frame).
    /// A stream the server ends, or one silent for longer than the idle limit, is an error.
    pub async fn next_frame(&mut self) -> Result<VideoFrame, SourceError> {
        loop {
            let item = tokio::time::timeout(self.idle, self.demuxed.next())
                .await
                .map_err(|_| SourceError::Idle {
                    url: self.redacted.clone(),
                    after: self.idle,
                })?;
            match item {
                None => {
                    return Err(SourceError::Ended {
                        url: self.redacted.clone(),
                    })
                }
                Some(Err(e)) => return Err(classify(&self.redacted, &e)),
                Some(Ok(CodecItem::VideoFrame(f))) if f.stream_id() == self.stream_index => {
                    if f.has_new_parameters() {
                        self.refresh_parameters();
                    }
                    return Ok(f);
                }
                Some(Ok(CodecItem::Rtcp(p))) if p.stream_id() == self.stream_index => {
                    let sr = p
                        .pkts()
                        .next()
                        .and_then(|k| k.as_sender_report().ok().flatten());
                    if let (Some(ts), Some(sr)) = (p.rtp_timestamp(), sr) {
                        self.sender_report = Some((sr.ntp_timestamp(), ts));
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    fn refresh_parameters(&mut self) {
        if let Some(ParametersRef::Video(v)) =
            self.demuxed.streams()[self.stream_index].parameters()
        {
            self.resolution = Some(v.pixel_dimensions());
            if let Some((num, den)) = v.frame_rate() {
                if num > 0 {
                    // retina gives the frame duration as (num, den) of the 90 kHz clock.
                    self.declared_fps = Some(den as f64 / num as f64);
                }
            }
        }
    }

    /// The URL without credentials.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The latest RTCP sender report of the video stream, if the camera sends them: the
    /// camera's wall-clock (NTP) time of an RTP timestamp on the frames' timeline.
    pub fn sender_report(&self) -> Option<(retina::NtpTimestamp, retina::Timestamp)> {
        self.sender_report
    }
}

async fn bounded<T>(
    stage: &'static str,
    url: &str,
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(timeout, f).await {
        Err(_) => Err(SourceError::Timeout {
            stage,
            url: url.to_owned(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(classify(url, &e)),
        Ok(Ok(v)) => Ok(v),
    }
}

fn classify(url: &str, e: &retina::Error) -> SourceError {
    let url = url.to_owned();
    match e.status_code() {
        Some(401) | Some(403) => {
            return SourceError::Auth {
                url,
                status: e.status_code().unwrap_or(401),
            }
        }
        Some(404) => return SourceError::NotFound { url },
        _ => {}
    }
    // retina's messages carry connection context over several lines; the first says what happened.
    let full = e.to_string();
    let msg = full.lines().next().unwrap_or_default().trim().to_owned();
    let lower = full.to_ascii_lowercase();
    if lower.contains("unable to connect")
        || lower.contains("connection refused")
        || lower.contains("no route")
    {
        SourceError::Unreachable { url, msg }
    } else if e.status_code() == Some(461) {
        // 461 Unsupported Transport: the camera will not send RTP over the RTSP connection.
        SourceError::Protocol {
            url,
            msg: format!(
                "{msg}: the camera refuses RTP over TCP; set transport = \"udp\" for this \
                 camera (probe: --udp)"
            ),
        }
    } else {
        SourceError::Protocol { url, msg }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_url_and_never_shown() {
        let t = RtspTarget::new(
            "rtsp://admin:p%40ss@10.1.2.3:554/live?token=abc",
            None,
            None,
            TransportConfig::Tcp,
        )
        .unwrap();
        let c = t.creds.as_ref().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss")
        );
        assert_eq!(t.redacted(), "rtsp://10.1.2.3:554/live?...");
        assert!(!format!("{t:?}").contains("p@ss"));
        assert_eq!(t.url.as_str(), "rtsp://10.1.2.3:554/live?token=abc");
    }

    #[test]
    fn separate_credentials_are_used_when_the_url_has_none() {
        let t =
            RtspTarget::new("rtsp://cam/x", Some("u"), Some("p"), TransportConfig::Udp).unwrap();
        assert_eq!(t.creds.as_ref().unwrap().password, "p");
        assert!(RtspTarget::new("http://cam/x", None, None, TransportConfig::Tcp).is_err());
    }
}
