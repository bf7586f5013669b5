//! GStreamer decoding: compressed frames in, decoded frames out, in the decoder's own format.
//!
//! Stream pipeline (RTSP): `appsrc ! h264parse|h265parse ! <decoder> ! [rate] videoconvert !
//! video/x-raw,format={I420,NV12} ! appsink`. File pipeline: `filesrc ! decodebin ! [rate] ...`
//! with the same tail.
//!
//! Every frame is decoded (H.26x needs it); `[rate]` is a buffer probe that drops frames by
//! timestamp so only the frames the detector asks for (`detect.fps`) leave the pipeline.
//! `videoconvert` passes I420 and NV12 (what software and most hardware decoders give)
//! through untouched and converts anything else. Frames leave as planar YUV: no scaling and no
//! colour conversion here, so a frame the detector then skips (no motion, overload) costs
//! nothing more; the detector scales and converts the frames it runs on, snapshots the frames
//! they show (crate `ioc-detect`, module `yuv`). Each frame carries its capture time from
//! the session's [`SessionClock`]. Frames reach the caller through a callback on GStreamer's
//! streaming thread: it must not block for long (the agent hands them to the detection
//! scheduler, which keeps the newest frame per camera).
//!
//! Back-pressure: a live camera must never be blocked. When the decoder falls
//! behind, [`Pipeline::push`] drops whole GOPs (everything until the next key
//! frame) instead of growing the `appsrc` queue, and counts them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use ioc_detect::yuv::{Matrix, YuvImage, YuvLayout};

use crate::clock::{FrameTime, SessionClock};

/// Compressed video codecs the stream pipeline accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

impl Codec {
    /// From an RTP encoding name (`"h264"`, `"h265"`), case-insensitively.
    pub fn from_encoding_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "h264" => Some(Codec::H264),
            "h265" | "hevc" => Some(Codec::H265),
            _ => None,
        }
    }

    /// Short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H.264",
            Codec::H265 => "H.265",
        }
    }
}

/// How frames leave the pipeline.
#[derive(Clone, Debug)]
pub struct DecodeSettings {
    /// Decoder element or bin description (e.g. `avdec_h264`, `vah264dec ! vapostproc`).
    pub decoder: String,
    /// Frames per second handed on; 0 hands on every frame.
    pub fps: f64,
    /// File sources: hold frames to their timestamps (real time) or run flat out.
    pub realtime: bool,
    /// Threads for a libav decoder (`max-threads`) unless its description sets them;
    /// 0 leaves it to the decoder.
    pub threads: u32,
}

/// A decoded frame in the decoder's 4:2:0 format. Holds the GStreamer buffer (no copy).
#[derive(Clone, Debug)]
pub struct DecodedFrame {
    /// The planes.
    pub buffer: gst::Buffer,
    /// I420 or NV12.
    pub layout: YuvLayout,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Byte offset of each plane in the buffer (the third is unused for NV12).
    pub offsets: [usize; 3],
    /// Bytes per row of each plane.
    pub strides: [usize; 3],
    /// Colour matrix of the stream.
    pub matrix: Matrix,
    /// Full-range samples.
    pub full_range: bool,
    /// When it was captured.
    pub time: FrameTime,
}

impl DecodedFrame {
    /// A frame over packed I420 bytes (`width × height` luma, then U, then V), for tests and
    /// tools that make their own frames.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>, time: FrameTime) -> Self {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        assert!(data.len() >= w * h + 2 * cw * ch, "I420 data too short");
        Self {
            buffer: gst::Buffer::from_mut_slice(data),
            layout: YuvLayout::I420,
            width,
            height,
            offsets: [0, w * h, w * h + cw * ch],
            strides: [w, cw, cw],
            matrix: Matrix::Bt601,
            full_range: false,
            time,
        }
    }

    /// Presentation time since the start of the stream session.
    pub fn pts(&self) -> Duration {
        self.time.pts
    }

    /// Width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Runs `f` on the frame's planes (mapped for reading, no copy).
    pub fn with_image<T>(&self, f: impl FnOnce(&YuvImage<'_>) -> T) -> Result<T, String> {
        let map = self
            .buffer
            .map_readable()
            .map_err(|_| "frame buffer is not readable".to_string())?;
        let data = map.as_slice();
        let plane = |i: usize| data.get(self.offsets[i]..).unwrap_or(&[]);
        let img = YuvImage {
            layout: self.layout,
            width: self.width as usize,
            height: self.height as usize,
            y: plane(0),
            y_stride: self.strides[0],
            u: plane(1),
            u_stride: self.strides[1],
            v: if self.layout == YuvLayout::I420 {
                plane(2)
            } else {
                &[]
            },
            v_stride: self.strides[2],
            matrix: self.matrix,
            full_range: self.full_range,
        };
        img.check()?;
        Ok(f(&img))
    }
}

/// Counters of one pipeline, readable from any thread.
#[derive(Debug, Default)]
pub struct DecodeStats {
    /// Frames out of the decoder.
    pub decoded: AtomicU64,
    /// Frames handed to the callback.
    pub handed_on: AtomicU64,
    /// Compressed frames dropped because the decoder fell behind (whole GOPs).
    pub dropped_behind: AtomicU64,
    /// Compressed frames skipped while waiting for a key frame (stream start, after loss or a drop).
    pub skipped_to_key: AtomicU64,
}

/// Result of [`Pipeline::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for decoding.
    Queued,
    /// Dropped: the decoder is behind, or we are waiting for the next key frame after a drop.
    Dropped,
}

/// Errors of the decode stage.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The pipeline could not be built (missing element, bad decoder description).
    #[error("cannot build the decode pipeline: {0}")]
    Build(String),
    /// GStreamer reported an error while running.
    #[error("decoding failed: {0}")]
    Runtime(String),
}

/// Compressed frames the `appsrc` may hold before whole GOPs are dropped
/// (about 4 s at 25 fps).
const MAX_QUEUED_FRAMES: u64 = 100;

/// A running decode pipeline. Stops (state NULL) on drop.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    appsrc: Option<gst_app::AppSrc>,
    stats: Arc<DecodeStats>,
    waiting_for_key: AtomicBool,
}

type FrameCallback = Box<dyn Fn(DecodedFrame) + Send + Sync + 'static>;

impl Pipeline {
    /// A pipeline fed with Annex B access units through [`Pipeline::push`].
    /// `stats` may be shared by successive pipelines of one camera.
    pub fn for_stream(
        codec: Codec,
        settings: &DecodeSettings,
        stats: Arc<DecodeStats>,
        clock: Arc<SessionClock>,
        on_frame: FrameCallback,
    ) -> Result<Self, DecodeError> {
        init()?;
        let pipeline = gst::Pipeline::with_name("decode");
        let caps = match codec {
            Codec::H264 => "video/x-h264,stream-format=byte-stream,alignment=au",
            Codec::H265 => "video/x-h265,stream-format=byte-stream,alignment=au",
        };
        let appsrc = gst_app::AppSrc::builder()
            .caps(
                &caps
                    .parse::<gst::Caps>()
                    .map_err(|e| DecodeError::Build(e.to_string()))?,
            )
            .format(gst::Format::Time)
            // Not live: with a live source libav turns frame threading off, which
            // costs ~20 % decode throughput at 1080p (benches/README.md). We
            // never wait on the clock (appsink sync=false), so nothing else changes.
            .is_live(false)
            .block(false)
            .max_bytes(0)
            .build();
        let parse = make(match codec {
            Codec::H264 => "h264parse",
            Codec::H265 => "h265parse",
        })?;
        let decoder = make_decoder(&settings.decoder, settings.threads)?;
        pipeline
            .add_many([appsrc.upcast_ref(), &parse, &decoder])
            .map_err(|e| DecodeError::Build(e.to_string()))?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse, &decoder])
            .map_err(|e| DecodeError::Build(e.to_string()))?;
        let tail = add_tail(&pipeline, settings, stats.clone(), clock, on_frame, false)?;
        decoder
            .link(&tail)
            .map_err(|e| DecodeError::Build(format!("decoder {}: {e}", settings.decoder)))?;
        count_decoded(&decoder, stats.clone());
        let p = Pipeline {
            pipeline,
            appsrc: Some(appsrc),
            stats,
            waiting_for_key: AtomicBool::new(true),
        };
        p.start()?;
        Ok(p)
    }

    /// A pipeline that reads and demuxes `path` itself.
    pub fn for_file(
        path: &Path,
        settings: &DecodeSettings,
        stats: Arc<DecodeStats>,
        clock: Arc<SessionClock>,
        on_frame: FrameCallback,
    ) -> Result<Self, DecodeError> {
        init()?;
        if !path.is_file() {
            return Err(DecodeError::Build(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let pipeline = gst::Pipeline::with_name("decode-file");
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path.to_string_lossy().as_ref())
            .build()
            .map_err(|e| DecodeError::Build(e.to_string()))?;
        let decodebin = make("decodebin")?;
        pipeline
            .add_many([&src, &decodebin])
            .map_err(|e| DecodeError::Build(e.to_string()))?;
        src.link(&decodebin)
            .map_err(|e| DecodeError::Build(e.to_string()))?;
        let tail = add_tail(
            &pipeline,
            settings,
            stats.clone(),
            clock,
            on_frame,
            settings.realtime,
        )?;
        let decoded = stats.clone();
        decodebin.connect_pad_added(move |_, pad| {
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if !is_video {
                return;
            }
            if let Some(sink) = tail.static_pad("sink") {
                if !sink.is_linked() && pad.link(&sink).is_ok() {
                    let stats = decoded.clone();
                    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                        stats.decoded.fetch_add(1, Ordering::Relaxed);
                        gst::PadProbeReturn::Ok
                    });
                }
            }
        });
        let p = Pipeline {
            pipeline,
            appsrc: None,
            stats,
            waiting_for_key: AtomicBool::new(false),
        };
        p.start()?;
        Ok(p)
    }

    fn start(&self) -> Result<(), DecodeError> {
        self.pipeline.set_state(gst::State::Playing).map_err(|_| {
            DecodeError::Build(
                self.take_error()
                    .unwrap_or_else(|| "pipeline refused to start".into()),
            )
        })?;
        Ok(())
    }

    /// Counters of this pipeline.
    pub fn stats(&self) -> &Arc<DecodeStats> {
        &self.stats
    }

    /// Queues one Annex B access unit. Never blocks: when the decoder is
    /// behind, drops it and every frame up to the next key frame.
    pub fn push(
        &self,
        data: impl AsRef<[u8]> + Send + 'static,
        pts: Duration,
        key_frame: bool,
    ) -> Result<PushOutcome, DecodeError> {
        let Some(appsrc) = &self.appsrc else {
            return Err(DecodeError::Runtime("push on a file pipeline".into()));
        };
        if let Some(e) = self.take_error() {
            return Err(DecodeError::Runtime(e));
        }
        if appsrc.current_level_buffers() >= MAX_QUEUED_FRAMES {
            if !self.waiting_for_key.swap(true, Ordering::Relaxed) {
                tracing::warn!("decoder is behind; dropping frames until the next key frame");
            }
            self.stats.dropped_behind.fetch_add(1, Ordering::Relaxed);
            return Ok(PushOutcome::Dropped);
        }
        if self.waiting_for_key.load(Ordering::Relaxed) && !key_frame {
            // At the start, after a drop or after packet loss: a P-frame alone decodes to garbage.
            self.stats.skipped_to_key.fetch_add(1, Ordering::Relaxed);
            return Ok(PushOutcome::Dropped);
        }
        self.waiting_for_key.store(false, Ordering::Relaxed);
        // Takes ownership of the frame's bytes (or a share of them): no copy.
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            if !key_frame {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        appsrc.push_buffer(buffer).map_err(|e| {
            DecodeError::Runtime(
                self.take_error()
                    .unwrap_or_else(|| format!("appsrc: {e:?}")),
            )
        })?;
        Ok(PushOutcome::Queued)
    }

    /// Compressed frames waiting in front of the decoder.
    pub fn queued(&self) -> u64 {
        self.appsrc
            .as_ref()
            .map_or(0, |a| a.current_level_buffers())
    }

    /// After a gap in the stream (packet loss), waits for a key frame before
    /// decoding again, so the decoder never sees a broken reference chain.
    pub fn resync(&self) {
        self.waiting_for_key.store(true, Ordering::Relaxed);
    }

    /// Signals the end of the stream; frames already queued are still decoded.
    pub fn end_of_stream(&self) {
        if let Some(a) = &self.appsrc {
            let _ = a.end_of_stream();
        }
    }

    /// The first error GStreamer reported, if any (non-blocking).
    pub fn take_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        bus.pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                )),
                _ => None,
            })
    }

    /// Waits until the pipeline reaches end of stream or fails.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<(), DecodeError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| DecodeError::Runtime("no bus".into()))?;
        let timeout = timeout.map(|t| gst::ClockTime::from_nseconds(t.as_nanos() as u64));
        match bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
            None => Err(DecodeError::Runtime(
                "timed out waiting for the end of the stream".into(),
            )),
            Some(m) => match m.view() {
                gst::MessageView::Error(e) => Err(DecodeError::Runtime(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ))),
                _ => Ok(()),
            },
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Initialises GStreamer once; cheap after the first call.
pub fn init() -> Result<(), DecodeError> {
    gst::init().map_err(|e| DecodeError::Build(format!("GStreamer: {e}")))
}

fn make(name: &str) -> Result<gst::Element, DecodeError> {
    gst::ElementFactory::make(name).build().map_err(|_| {
        DecodeError::Build(format!(
            "GStreamer element {name:?} is missing (run `make setup`, or check with gst-inspect-1.0 {name})"
        ))
    })
}

/// One element by name, or a bin from a description such as `vah264dec ! vapostproc` or
/// `avdec_h264 max-threads=1` (an element with properties).
fn make_decoder(desc: &str, threads: u32) -> Result<gst::Element, DecodeError> {
    let bad = |e: gst::glib::Error| DecodeError::Build(format!("decoder {desc:?}: {e}"));
    let element = if desc.contains('!') {
        gst::parse::bin_from_description(desc, true)
            .map_err(bad)?
            .upcast()
    } else if desc.trim().contains(char::is_whitespace) {
        // One element with properties: parsing it gives the element itself, not a bin.
        gst::parse::launch(desc).map_err(bad)?
    } else {
        make(desc)?
    };
    // libav passes corrupt frames on by default; a grey smeared frame is worse than none.
    if element.find_property("output-corrupt").is_some() {
        element.set_property("output-corrupt", false);
    }
    if threads > 0
        && !desc.contains("max-threads")
        && element.find_property("max-threads").is_some()
    {
        element.set_property("max-threads", threads as i32);
    }
    Ok(element)
}

fn count_decoded(decoder: &gst::Element, stats: Arc<DecodeStats>) {
    if let Some(pad) = decoder.static_pad("src") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            stats.decoded.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
}

/// Adds `videoconvert ! capsfilter ! appsink` with the rate limiter in front; returns the
/// first element (to link the decoder to).
fn add_tail(
    pipeline: &gst::Pipeline,
    settings: &DecodeSettings,
    stats: Arc<DecodeStats>,
    clock: Arc<SessionClock>,
    on_frame: FrameCallback,
    sync: bool,
) -> Result<gst::Element, DecodeError> {
    let convert = make("videoconvert")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", gst::List::new(["I420", "NV12"]))
        .build();
    let appsink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(sync)
        .max_buffers(2)
        .drop(false)
        .build();
    pipeline
        .add_many([&convert, appsink.upcast_ref()])
        .map_err(|e| DecodeError::Build(e.to_string()))?;
    gst::Element::link_many([&convert, appsink.upcast_ref()])
        .map_err(|e| DecodeError::Build(e.to_string()))?;

    let convert_sink = convert
        .static_pad("sink")
        .expect("videoconvert has a sink pad");
    add_rate_limiter(&convert_sink, settings.fps);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Some(info) = sample
                    .caps()
                    .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
                else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let layout = match info.format() {
                    gst_video::VideoFormat::I420 => YuvLayout::I420,
                    gst_video::VideoFormat::Nv12 => YuvLayout::Nv12,
                    _ => return Ok(gst::FlowSuccess::Ok),
                };
                let colorimetry = info.colorimetry();
                let matrix = match colorimetry.matrix() {
                    gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
                    _ => Matrix::Bt601,
                };
                let full_range = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
                let off = info.offset();
                let st = info.stride();
                let plane = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(0);
                let strides: Vec<usize> = st.iter().map(|&s| s.max(0) as usize).collect();
                let pts = Duration::from_nanos(buffer.pts().map(|t| t.nseconds()).unwrap_or(0));
                stats.handed_on.fetch_add(1, Ordering::Relaxed);
                on_frame(DecodedFrame {
                    buffer,
                    layout,
                    width: info.width(),
                    height: info.height(),
                    offsets: [plane(off, 0), plane(off, 1), plane(off, 2)],
                    strides: [plane(&strides, 0), plane(&strides, 1), plane(&strides, 2)],
                    matrix,
                    full_range,
                    time: clock.time(pts),
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(convert)
}

/// Drops buffers on `pad` so that at most `fps` per second of stream time pass.
/// Timestamps that jump back (a restarted stream) restart the schedule.
fn add_rate_limiter(pad: &gst::Pad, fps: f64) {
    if fps <= 0.0 {
        return;
    }
    let interval = (1e9 / fps) as u64;
    // Half a frame of slack so 25 fps / 5 fps keeps exactly every 5th frame despite rounding.
    let slack = interval / 10;
    let next = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let due = next.load(Ordering::Relaxed);
        if pts + slack >= due || due > pts + 2 * interval + slack {
            // Keep a steady cadence; after a long gap or a jump back, restart from this frame.
            let n = if pts + slack >= due && pts < due + interval {
                due + interval
            } else {
                pts + interval
            };
            next.store(n, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        } else {
            // `Handled` with the buffer left to the binding drops it cleanly;
            // `Drop` makes GStreamer 1.22 unref a pointer the binding already took.
            gst::PadProbeReturn::Handled
        }
    });
}
