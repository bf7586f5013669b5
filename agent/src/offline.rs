//! Detection on a still image or a whole video file, outside the live
//! pipeline: `ioc-agent detect`. Same model code, same geometry.

use std::path::Path;
use std::sync::mpsc;

use anyhow::Context;
use image::RgbImage;
use ioc_detect::{manifest::ColourOrder, Detection, Detector, Frame};
use serde::Serialize;

use crate::decode::{DecodeSettings, DecodedFrame, Pipeline};

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
    let (w, h) = detector.input_size();
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
        write_annotated(img, &dets, out)?;
    }
    Ok(FrameOut {
        frame: 0,
        pts_s: 0.0,
        size,
        detections: to_out(&dets, detector.labels()),
    })
}

fn write_annotated(mut img: RgbImage, dets: &[Detection], out: &Path) -> anyhow::Result<()> {
    let t = (img.width().max(img.height()) / 300).max(2);
    for d in dets {
        crate::annotate::draw_box(
            &mut img,
            &d.bbox,
            crate::annotate::class_colour(d.class_id),
            t,
        );
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
    let (w, h) = detector.input_size();
    let input = detector.manifest().input.clone();
    let settings = DecodeSettings {
        decoder: String::new(),
        fps,
        width: w,
        height: h,
        resize: input.resize,
        format: input.colour,
        realtime: false,
    };
    // A small bounded channel: GStreamer waits while the detector works, so no frame is lost.
    let (tx, rx) = mpsc::sync_channel::<DecodedFrame>(4);
    let tx = std::sync::Mutex::new(tx);
    let pipeline = Pipeline::for_file(
        path,
        &settings,
        Default::default(),
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
        let map = f
            .buffer
            .map_readable()
            .map_err(|_| anyhow::anyhow!("unreadable frame"))?;
        detector.detect(
            &Frame {
                data: map.as_slice(),
                stride: f.stride,
                format: f.format,
                source_size: f.source_size,
            },
            &mut dets,
        )?;
        drop(map);
        each(&FrameOut {
            frame: n,
            pts_s: f.pts.as_secs_f64(),
            size: f.source_size,
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
        let map = f
            .buffer
            .map_readable()
            .map_err(|_| anyhow::anyhow!("unreadable frame"))?;
        let mut img = RgbImage::new(f.width, f.height);
        for y in 0..f.height as usize {
            let row = &map.as_slice()[y * f.stride..y * f.stride + f.width as usize * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                let rgb = if f.format == ColourOrder::Bgr {
                    [px[2], px[1], px[0]]
                } else {
                    [px[0], px[1], px[2]]
                };
                img.put_pixel(x as u32, y as u32, image::Rgb(rgb));
            }
        }
        let img = image::imageops::resize(
            &img,
            f.source_size.0,
            f.source_size.1,
            image::imageops::FilterType::Triangle,
        );
        write_annotated(img, &d, out)?;
    }
    Ok(n)
}
