//! Event snapshots: the frame an incident was decided on, as a JPEG with the
//! objects' boxes, labelled with class and score, and the rule's zone or line drawn on it.
//!
//! The frame is the decoded one at the camera's own resolution, scaled once (area filter)
//! to `snapshot.max_width` at the source's aspect ratio: its detail is the camera's, not the
//! model input's. Size and JPEG quality are capped by config.

use image::{codecs::jpeg::JpegEncoder, Rgb, RgbImage};
use ioc_detect::yuv::{Order, Placement, Resampler};
use ioc_detect::BBox;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::annotate::{class_colour, draw_box, draw_label, draw_line};
use crate::decode::DecodedFrame;

/// `[snapshot]` in `agent.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Widest snapshot in pixels (height follows the source's aspect ratio).
    #[serde(default = "default_width")]
    pub max_width: u32,
    /// JPEG quality 1..=100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Incidents of this severity or worse get a snapshot (the first message of each);
    /// default `warning`: an `info` count need not ship a picture.
    #[serde(default = "default_min_severity")]
    pub min_severity: ioc_tracking::rules::config::Severity,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            max_width: default_width(),
            quality: default_quality(),
            min_severity: default_min_severity(),
        }
    }
}

fn default_width() -> u32 {
    640
}
fn default_quality() -> u8 {
    80
}
fn default_min_severity() -> ioc_tracking::rules::config::Severity {
    ioc_tracking::rules::config::Severity::Warning
}

/// A rendered snapshot.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Hex sha256 of `jpeg`.
    pub sha256: String,
}

/// What to draw: normalised (0..1) geometry.
#[derive(Clone, Debug, Default)]
pub struct Overlay<'a> {
    /// Object boxes with their class ids and labels (`PERSON 87%`).
    pub objects: Vec<(BBox, u16, String)>,
    /// The rule's zone polygon.
    pub zone: Option<&'a [[f64; 2]]>,
    /// The rule's line.
    pub line: Option<&'a [[f64; 2]]>,
}

/// Renders `frame` with `overlay`.
pub fn render(
    frame: &DecodedFrame,
    overlay: &Overlay<'_>,
    cfg: &SnapshotConfig,
) -> Result<Snapshot, String> {
    let (sw, sh) = frame.size();
    let width = cfg.max_width.min(sw).max(16);
    let height = ((width as u64 * sh as u64) / sw.max(1) as u64).max(16) as u32;
    let mut buf = vec![0u8; width as usize * height as usize * 3];
    let place = Placement {
        x: 0,
        y: 0,
        width: width as usize,
        height: height as usize,
    };
    frame.with_image(|img| {
        Resampler::new().to_rgb(img, &mut buf, width as usize * 3, place, Order::Rgb)
    })??;
    let mut img =
        RgbImage::from_raw(width, height, buf).ok_or_else(|| "snapshot buffer".to_string())?;
    let (w, h) = (width as f32, height as f32);
    let px = |p: &[f64; 2]| (p[0] as f32 * w, p[1] as f32 * h);
    let t = (width / 320).max(2);
    if let Some(zone) = overlay.zone {
        for (i, a) in zone.iter().enumerate() {
            let b = &zone[(i + 1) % zone.len()];
            draw_line(&mut img, px(a), px(b), Rgb([255, 220, 0]), t);
        }
    }
    if let Some([a, b]) = overlay.line {
        draw_line(&mut img, px(a), px(b), Rgb([0, 200, 255]), t + 1);
    }
    for (b, class, _) in &overlay.objects {
        draw_box(
            &mut img,
            &BBox::new(b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h),
            class_colour(*class),
            t,
        );
    }
    // Labels after every box, so no box is drawn over a label.
    for (b, class, label) in &overlay.objects {
        let px_box = BBox::new(b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h);
        draw_label(
            &mut img,
            &px_box,
            label,
            class_colour(*class),
            (width / 480).max(1),
        );
    }
    let mut jpeg = Vec::with_capacity(64 * 1024);
    JpegEncoder::new_with_quality(&mut jpeg, cfg.quality.clamp(1, 100))
        .encode_image(&img)
        .map_err(|e| format!("JPEG encoding failed: {e}"))?;
    let sha256 = hex::encode(Sha256::digest(&jpeg));
    Ok(Snapshot {
        jpeg,
        width,
        height,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;
    use std::time::Duration;

    fn frame() -> DecodedFrame {
        gst::init().unwrap();
        // 64x32 I420 frame, pure blue (BT.601 video range: Y 41, U 240, V 110).
        let (w, h) = (64usize, 32usize);
        let mut data = vec![41u8; w * h];
        data.extend(std::iter::repeat_n(240u8, w * h / 4));
        data.extend(std::iter::repeat_n(110u8, w * h / 4));
        let time = crate::clock::FrameTime {
            pts: Duration::ZERO,
            t_sec: 0.0,
            wall: std::time::SystemTime::now(),
        };
        DecodedFrame::from_i420(w as u32, h as u32, data, time)
    }

    #[test]
    fn renders_at_the_source_aspect_with_the_overlay_and_a_matching_hash() {
        let zone = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];
        let overlay = Overlay {
            objects: vec![(BBox::new(0.2, 0.2, 0.6, 0.8), 0, String::new())],
            zone: Some(&zone),
            line: None,
        };
        let s = render(
            &frame(),
            &overlay,
            &SnapshotConfig {
                max_width: 48,
                quality: 90,
                ..SnapshotConfig::default()
            },
        )
        .unwrap();
        assert_eq!((s.width, s.height), (48, 24));
        assert_eq!(s.sha256, hex::encode(Sha256::digest(&s.jpeg)));
        let img = image::load_from_memory(&s.jpeg).unwrap().to_rgb8();
        let centre = img.get_pixel(24, 12);
        assert!(
            centre[2] > 200 && centre[0] < 60,
            "blue stays blue: {centre:?}"
        );
        let edge = img.get_pixel(24, 2); // the zone's top edge (y = 0.1 * 24)
        assert!(
            edge[0] > 150 && edge[1] > 120,
            "zone outline drawn: {edge:?}"
        );
    }
}
