//! A real RTSP server for tests and the demo, on gst-rtsp-server.
//!
//! Each mount serves a file's H.264/H.265 access units as a live camera would:
//! paced in real time, parameter sets before every key frame, optionally
//! looping forever. Every client gets its own session starting at the first
//! frame, so tests see the same footage every time. The frames are read into
//! memory once (a few MB), so serving costs no decoding or encoding.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// Codec of a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264.
    H264,
    /// H.265.
    H265,
}

impl std::str::FromStr for Codec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "h264" => Ok(Codec::H264),
            "h265" => Ok(Codec::H265),
            _ => bail!("codec {s:?}: expected h264 or h265"),
        }
    }
}

/// One served path.
#[derive(Clone, Debug)]
pub struct Mount {
    /// URL path, e.g. `/vtest`.
    pub path: String,
    /// MP4 file holding the stream.
    pub file: PathBuf,
    /// Its codec.
    pub codec: Codec,
    /// Start again from the first frame at the end (a camera never ends).
    pub looping: bool,
}

/// A compressed stream held in memory: Annex B access units, parameter sets
/// before every key frame.
pub struct Clip {
    /// The access units in decode order.
    pub frames: Vec<gst::Buffer>,
    /// 1 / frame rate.
    pub frame_duration: Duration,
}

/// Reads every access unit of an MP4 file into memory.
pub fn load_clip(file: &Path, codec: Codec) -> anyhow::Result<Clip> {
    let (parse, caps) = match codec {
        Codec::H264 => (
            "h264parse",
            "video/x-h264,stream-format=byte-stream,alignment=au",
        ),
        Codec::H265 => (
            "h265parse",
            "video/x-h265,stream-format=byte-stream,alignment=au",
        ),
    };
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux ! {parse} config-interval=-1 ! {caps} ! appsink name=sink sync=false",
        file.display()
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    let mut fps = None;
    while let Ok(sample) = sink.pull_sample() {
        if fps.is_none() {
            fps = sample
                .caps()
                .and_then(|c| c.structure(0)?.get::<gst::Fraction>("framerate").ok());
        }
        if let Some(b) = sample.buffer_owned() {
            frames.push(b);
        }
    }
    pipeline.set_state(gst::State::Null)?;
    if frames.is_empty() {
        bail!(
            "{}: no {codec:?} frames found (is it an MP4 with that codec?)",
            file.display()
        );
    }
    let fps = fps
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f64 / f.denom() as f64)
        .unwrap_or(25.0);
    Ok(Clip {
        frames,
        frame_duration: Duration::from_secs_f64(1.0 / fps),
    })
}

/// Feeds `clip` into `appsrc` in real time until the media stops.
fn feed(appsrc: gst_app::AppSrc, clip: Arc<Clip>, looping: bool) {
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        let i = (n as usize) % clip.frames.len();
        if !looping && n as usize >= clip.frames.len() {
            let _ = appsrc.end_of_stream();
            return;
        }
        let due = start + clip.frame_duration * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut b = clip.frames[i].copy();
        {
            let b = b.get_mut().expect("fresh copy");
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::from_nseconds(
                clip.frame_duration.as_nanos() as u64,
            ));
        }
        if appsrc.push_buffer(b).is_err() {
            return; // media stopped: client gone or server shutting down
        }
        n += 1;
    }
}

/// Builds the server (not yet attached). `auth` requires Basic credentials.
pub fn build(
    address: &str,
    port: u16,
    mounts: &[Mount],
    auth: Option<(&str, &str)>,
) -> anyhow::Result<rtsp::RTSPServer> {
    gst::init()?;
    let server = rtsp::RTSPServer::new();
    server.set_address(address);
    server.set_service(&port.to_string());
    let points = server.mount_points().context("mount points")?;
    if let Some((user, pass)) = auth {
        let a = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        a.add_basic(rtsp::RTSPAuth::make_basic(user, pass).as_str(), &token);
        server.set_auth(Some(&a));
    }
    for m in mounts {
        let clip = Arc::new(load_clip(&m.file, m.codec)?);
        let (parse, pay) = match m.codec {
            Codec::H264 => ("h264parse", "rtph264pay"),
            Codec::H265 => ("h265parse", "rtph265pay"),
        };
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( appsrc name=src is-live=true do-timestamp=true format=time ! {parse} config-interval=-1 ! {pay} name=pay0 pt=96 config-interval=-1 )"
        ));
        factory.set_shared(false);
        if auth.is_some() {
            factory.add_role_from_structure(
                &gst::Structure::builder("user")
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        let codec_caps = match m.codec {
            Codec::H264 => "video/x-h264,stream-format=byte-stream,alignment=au",
            Codec::H265 => "video/x-h265,stream-format=byte-stream,alignment=au",
        };
        let codec_caps: gst::Caps = codec_caps.parse()?;
        let looping = m.looping;
        factory.connect_media_configure(move |_, media| {
            let bin = media.element();
            let Some(src) = bin
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name_recurse_up("src"))
            else {
                return;
            };
            let Ok(appsrc) = src.downcast::<gst_app::AppSrc>() else {
                return;
            };
            appsrc.set_caps(Some(&codec_caps));
            let clip = clip.clone();
            let _ = std::thread::Builder::new()
                .name("rtsp-feed".into())
                .spawn(move || feed(appsrc, clip, looping));
        });
        points.add_factory(&m.path, factory);
    }
    Ok(server)
}

/// Parses `PATH=FILE:CODEC[:loop]`, e.g. `/vtest=footage/vtest_h264.mp4:h264:loop`.
pub fn parse_mount(s: &str) -> anyhow::Result<Mount> {
    let usage = || anyhow::anyhow!("mount {s:?}: expected PATH=FILE:CODEC[:loop]");
    let (path, rest) = s.split_once('=').ok_or_else(usage)?;
    let (rest, looping) = match rest.strip_suffix(":loop") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (file, codec) = rest.rsplit_once(':').ok_or_else(usage)?;
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok(Mount {
        path,
        file: file.into(),
        codec: codec.parse()?,
        looping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mounts() {
        let m = parse_mount("/vtest=a/b.mp4:h264:loop").unwrap();
        assert_eq!(
            (m.path.as_str(), m.codec, m.looping),
            ("/vtest", Codec::H264, true)
        );
        assert_eq!(m.file, PathBuf::from("a/b.mp4"));
        let m = parse_mount("hevc=x.mp4:h265").unwrap();
        assert_eq!(
            (m.path.as_str(), m.codec, m.looping),
            ("/hevc", Codec::H265, false)
        );
        assert!(parse_mount("/x=y.mp4:vp8").is_err());
    }
}
