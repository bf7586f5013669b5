//! Detection on a still image or a whole video file, outside the live
//! pipeline: `ioc-agent detect`. Same model code, same geometry.

use std::path::Path;
use std::sync::{mpsc, Arc};

use anyhow::Context;
use image::RgbImage;
use ioc_detect::{manifest::ColourOrder, Detection, Detector, Frame};
use serde::Serialize;

use crate::clock::{ClockMode, Epoch, SessionClock};
use crate::decode::{DecodeSettings, DecodedFrame, Pipeline};
use ioc_detect::yuv::{Order, Placement, Resampler};

/// One detection as printed by `ioc-agent detect --json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct DetectionOut {
    /// Class name.
    pub class: String,
    /// Score 0..1.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Detections of one image or video frame.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FrameOut {
    /// Frame number (0 for a still image).
    pub frame: u64,
    /// Presentation time in seconds.
    pub pts_s: f64,
    /// Source width and height.
    pub size: (u32, u32),
    /// What was found, best first.
    pub detections: Vec<DetectionOut>,
}

fn to_out(d: &[Detection], labels: &[String]) -> Vec<DetectionOut> {
    d.iter()
        .map(|d| DetectionOut {
            class: labels
                .get(d.class_id as usize)
                .cloned()
                .unwrap_or_else(|| d.class_id.to_string()),
            score: d.score,
            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        })
        .collect()
}

/// True for file names the `image` crate reads as stills.
pub fn is_still_image(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "bmp" | "webp" | "tif" | "tiff" | "gif" | "ppm")
    )
}

/// Detects on a still image; with `out`, writes the image with boxes drawn.
pub fn detect_image(
    detector: &mut Detector,
    path: &Path,
    out: Option<&Path>,
) -> anyhow::Result<FrameOut> {
    let img = image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .to_rgb8();
    let (w, h) = detector.input_size_for(img.dimensions());
    let fitted = crate::annotate::fit(&img, w, h, detector.manifest().input.resize);
    let mut dets = Vec::new();
    detector.detect(
        &Frame {
            data: fitted.as_raw(),
            stride: w as usize * 3,
            format: ColourOrder::Rgb,
            source_size: img.dimensions(),
        },
        &mut dets,
    )?;
    let size = img.dimensions();
    if let Some(out) = out {
        write_annotated(img, &dets, detector.labels(), out)?;
    }
    Ok(FrameOut {
        frame: 0,
        pts_s: 0.0,
        size,
        detections: to_out(&dets, detector.labels()),
    })
}

fn write_annotated(
    mut img: RgbImage,
    dets: &[Detection],
    labels: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    use crate::annotate::{class_colour, draw_box, draw_label, label_text};
    let t = (img.width().max(img.height()) / 300).max(2);
    for d in dets {
        draw_box(&mut img, &d.bbox, class_colour(d.class_id), t);
    }
    let scale = (img.width() / 480).max(1);
    for d in dets {
        let class = labels.get(d.class_id as usize).map_or("?", String::as_str);
        let text = label_text(class, d.score);
        draw_label(&mut img, &d.bbox, &text, class_colour(d.class_id), scale);
    }
    img.save(out)
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Detects on every frame of a video file at `fps` (0 = every frame), calling
/// `each` per frame. With `out`, writes the frame with the most detections.
pub fn detect_video(
    detector: &mut Detector,
    path: &Path,
    fps: f64,
    out: Option<&Path>,
    mut each: impl FnMut(&FrameOut),
) -> anyhow::Result<u64> {
    let settings = DecodeSettings {
        decoder: String::new(),
        fps,
        realtime: false,
        threads: 0,
    };
    // A small bounded channel: GStreamer waits while the detector works, so no frame is lost.
    let (tx, rx) = mpsc::sync_channel::<DecodedFrame>(4);
    let tx = std::sync::Mutex::new(tx);
    let clock = Arc::new(SessionClock::new(
        Epoch::now(),
        ClockMode::Flat { offset_sec: 0.0 },
        0.0,
    ));
    let pipeline = Pipeline::for_file(
        path,
        &settings,
        Default::default(),
        clock,
        Box::new(move |f| {
            let _ = tx.lock().map(|t| t.send(f));
        }),
    )?;
    let waiter = std::thread::Builder::new()
        .name("decode-wait".into())
        .spawn(move || {
            let r = pipeline.wait(None);
            drop(pipeline); // closes the channel
            r
        })?;
    let mut n = 0u64;
    let mut dets = Vec::new();
    let mut best: Option<(usize, DecodedFrame, Vec<Detection>)> = None;
    for f in rx {
        f.with_image(|img| detector.detect_yuv(img, &mut dets))
            .map_err(|e| anyhow::anyhow!("frame {n}: {e}"))??;
        each(&FrameOut {
            frame: n,
            pts_s: f.pts().as_secs_f64(),
            size: f.size(),
            detections: to_out(&dets, detector.labels()),
        });
        if out.is_some() && best.as_ref().is_none_or(|b| dets.len() > b.0) {
            best = Some((dets.len(), f, dets.clone()));
        }
        n += 1;
    }
    waiter
        .join()
        .map_err(|_| anyhow::anyhow!("decoder thread panicked"))??;
    if let (Some(out), Some((_, f, d))) = (out, best) {
        let (w, h) = f.size();
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        let place = Placement {
            x: 0,
            y: 0,
            width: w as usize,
            height: h as usize,
        };
        f.with_image(|img| {
            Resampler::new().to_rgb(img, &mut buf, w as usize * 3, place, Order::Rgb)
        })
        .and_then(|r| r)
        .map_err(|e| anyhow::anyhow!("frame: {e}"))?;
        let img = RgbImage::from_raw(w, h, buf).context("frame buffer")?;
        write_annotated(img, &d, detector.labels(), out)?;
    }
    Ok(n)
}
