//! Reading and writing video with GStreamer: every frame of a file in order (through the
//! agent's own decode pipeline), and RGB frames encoded as a camera would send them
//! (H.264, no B-frames, a key frame every few seconds) into MP4.

use std::path::Path;
use std::sync::{mpsc, Arc};

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use ioc_agent::clock::{ClockMode, Epoch, SessionClock};
use ioc_agent::decode::{DecodeSettings, DecodedFrame, Pipeline};

/// Calls `f` with every decoded frame of `path` (or `fps` of them a second, by timestamp),
/// in order, at the speed `f` takes them. Frame times are the file's own (rule time = pts).
pub fn for_each_frame(
    path: &Path,
    fps: f64,
    mut f: impl FnMut(DecodedFrame) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    ioc_agent::decode::init()?;
    let (tx, rx) = mpsc::sync_channel::<DecodedFrame>(4);
    let tx = std::sync::Mutex::new(tx);
    let clock = Arc::new(SessionClock::new(
        Epoch::now(),
        ClockMode::Flat { offset_sec: 0.0 },
        0.0,
    ));
    let settings = DecodeSettings {
        decoder: String::new(),
        fps,
        realtime: false,
        threads: 0,
    };
    let pipeline = Pipeline::for_file(
        path,
        &settings,
        Default::default(),
        clock,
        Box::new(move |frame| {
            let _ = tx.lock().map(|t| t.send(frame));
        }),
    )
    .with_context(|| format!("decoding {}", path.display()))?;
    let waiter = std::thread::Builder::new()
        .name("decode-wait".into())
        .spawn(move || {
            let r = pipeline.wait(None);
            drop(pipeline); // closes the channel
            r
        })?;
    let mut result = Ok(());
    for frame in rx {
        if result.is_ok() {
            result = f(frame);
        }
    }
    waiter
        .join()
        .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?
        .with_context(|| format!("decoding {}", path.display()))?;
    result
}

/// H.264 stream settings of an encoded clip.
#[derive(Clone, Copy, Debug)]
pub struct EncodeSettings {
    /// Frame rate.
    pub fps: u32,
    /// Bit rate.
    pub bitrate_kbps: u32,
    /// Frames between key frames.
    pub keyint: u32,
}

/// An MP4 file being written, frame by frame, from packed RGB.
pub struct Encoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    width: usize,
    height: usize,
    fps: u32,
    n: u64,
    yuv: Vec<u8>,
}

impl Encoder {
    /// Starts writing `path` (`width` and `height` even).
    pub fn create(
        path: &Path,
        width: usize,
        height: usize,
        s: EncodeSettings,
    ) -> anyhow::Result<Self> {
        ioc_agent::decode::init()?;
        let desc = format!(
            "appsrc name=src format=time ! video/x-raw,format=I420,width={width},height={height},framerate={}/1,colorimetry=bt601 \
             ! x264enc tune=zerolatency speed-preset=veryfast bitrate={} key-int-max={} \
             ! h264parse ! mp4mux ! filesink location=\"{}\"",
            s.fps,
            s.bitrate_kbps,
            s.keyint.max(1),
            path.display()
        );
        let pipeline = gst::parse::launch(&desc)
            .context("building the encoder (x264enc from gstreamer1.0-plugins-ugly)")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .context("appsrc")?;
        src.set_property("block", true);
        pipeline.set_state(gst::State::Playing)?;
        Ok(Self {
            pipeline,
            src,
            width,
            height,
            fps: s.fps,
            n: 0,
            yuv: Vec::new(),
        })
    }

    /// Appends one packed RGB frame.
    pub fn push_rgb(&mut self, rgb: &[u8]) -> anyhow::Result<()> {
        rgb_to_i420(rgb, self.width, self.height, &mut self.yuv);
        let mut buf = gst::Buffer::from_slice(self.yuv.clone());
        {
            let b = buf.get_mut().expect("new buffer");
            let dur = gst::ClockTime::from_nseconds(1_000_000_000 / self.fps as u64);
            b.set_pts(dur * self.n);
            b.set_duration(dur);
        }
        self.n += 1;
        self.src
            .push_buffer(buf)
            .map_err(|e| anyhow::anyhow!("encoder refused a frame: {e:?}"))?;
        Ok(())
    }

    /// Finishes the file.
    pub fn finish(self) -> anyhow::Result<()> {
        self.src
            .end_of_stream()
            .map_err(|e| anyhow::anyhow!("end of stream: {e:?}"))?;
        let bus = self.pipeline.bus().context("bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        self.pipeline.set_state(gst::State::Null)?;
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => anyhow::bail!("encoding failed: {}", e.error()),
            _ => anyhow::bail!("encoding did not finish"),
        }
    }
}

/// Packed RGB to I420, BT.601 video range (what cameras send).
pub fn rgb_to_i420(rgb: &[u8], w: usize, h: usize, out: &mut Vec<u8>) {
    let (cw, ch) = (w / 2, h / 2);
    out.clear();
    out.resize(w * h + 2 * cw * ch, 0);
    let (yp, rest) = out.split_at_mut(w * h);
    let (up, vp) = rest.split_at_mut(cw * ch);
    for y in 0..h {
        for x in 0..w {
            let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
            let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
            yp[y * w + x] = (16.0 + 0.256_79 * r + 0.504_13 * g + 0.097_91 * b).round() as u8;
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let i = ((2 * y + dy) * w + 2 * x + dx) * 3;
                r += rgb[i] as f32;
                g += rgb[i + 1] as f32;
                b += rgb[i + 2] as f32;
            }
            let (r, g, b) = (r / 4.0, g / 4.0, b / 4.0);
            up[y * cw + x] = (128.0 - 0.148_22 * r - 0.290_99 * g + 0.439_21 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
            vp[y * cw + x] = (128.0 + 0.439_21 * r - 0.367_79 * g - 0.071_42 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_round_trips_through_i420_and_the_agents_resampler() {
        let (w, h) = (8usize, 4usize);
        let mut rgb = Vec::new();
        for _ in 0..w * h {
            rgb.extend_from_slice(&[200, 40, 90]);
        }
        let mut yuv = Vec::new();
        rgb_to_i420(&rgb, w, h, &mut yuv);
        let img = ioc_detect::yuv::YuvImage {
            layout: ioc_detect::yuv::YuvLayout::I420,
            width: w,
            height: h,
            y: &yuv[..w * h],
            y_stride: w,
            u: &yuv[w * h..w * h + 8],
            u_stride: 4,
            v: &yuv[w * h + 8..],
            v_stride: 4,
            matrix: ioc_detect::yuv::Matrix::Bt601,
            full_range: false,
        };
        let mut out = vec![0u8; w * h * 3];
        let place = ioc_detect::yuv::Placement {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
        ioc_detect::yuv::Resampler::new()
            .to_rgb(&img, &mut out, w * 3, place, ioc_detect::yuv::Order::Rgb)
            .unwrap();
        for px in out.chunks_exact(3) {
            for (a, b) in px.iter().zip([200u8, 40, 90]) {
                assert!((*a as i32 - b as i32).abs() <= 2, "{px:?}");
            }
        }
    }
}
