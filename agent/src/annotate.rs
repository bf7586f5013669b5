//! Still images for the detector and boxes drawn on them (for `ioc-agent
//! detect --out` and, later, event snapshots).

use image::{imageops, Rgb, RgbImage};
use ioc_detect::{geometry::letterbox_content, BBox, Resize};

/// Fits `img` into `w`×`h` the way the model expects (the same geometry the
/// GStreamer pipeline produces, so [`ioc_detect::ResizeMap`] maps boxes back).
pub fn fit(img: &RgbImage, w: u32, h: u32, resize: Resize) -> RgbImage {
    match resize {
        Resize::Stretch => imageops::resize(img, w, h, imageops::FilterType::Triangle),
        Resize::Letterbox => {
            let (cw, ch) = letterbox_content(img.width(), img.height(), w, h);
            let scaled = imageops::resize(img, cw, ch, imageops::FilterType::Triangle);
            let mut canvas = RgbImage::new(w, h);
            imageops::replace(
                &mut canvas,
                &scaled,
                ((w - cw) / 2) as i64,
                ((h - ch) / 2) as i64,
            );
            canvas
        }
    }
}

/// A stable, distinct colour per class id.
pub fn class_colour(class_id: u16) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 8] = [
        [255, 56, 56],
        [56, 255, 120],
        [56, 140, 255],
        [255, 200, 40],
        [255, 60, 220],
        [40, 230, 230],
        [255, 140, 30],
        [160, 90, 255],
    ];
    Rgb(PALETTE[class_id as usize % PALETTE.len()])
}

/// Draws the outline of `b` (pixels, clamped to the image), `thickness` pixels wide.
pub fn draw_box(img: &mut RgbImage, b: &BBox, colour: Rgb<u8>, thickness: u32) {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return;
    }
    let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max - 1);
    let (x1, y1, x2, y2) = (
        clamp(b.x1, w),
        clamp(b.y1, h),
        clamp(b.x2, w),
        clamp(b.y2, h),
    );
    for t in 0..thickness {
        for x in x1..=x2 {
            for y in [y1.saturating_add(t).min(h - 1), y2.saturating_sub(t)] {
                img.put_pixel(x, y, colour);
            }
        }
        for y in y1..=y2 {
            for x in [x1.saturating_add(t).min(w - 1), x2.saturating_sub(t)] {
                img.put_pixel(x, y, colour);
            }
        }
    }
}

/// Draws a straight line from `a` to `b` (pixels), `thickness` pixels wide, clipped to the image.
pub fn draw_line(
    img: &mut RgbImage,
    a: (f32, f32),
    b: (f32, f32),
    colour: Rgb<u8>,
    thickness: u32,
) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
    let r = thickness as i64 / 2;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = (
            (a.0 + (b.0 - a.0) * t) as i64,
            (a.1 + (b.1 - a.1) * t) as i64,
        );
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (x + dx, y + dy);
                if (0..w).contains(&px) && (0..h).contains(&py) {
                    img.put_pixel(px as u32, py as u32, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_outline_only_and_clamps_to_the_image() {
        let mut img = RgbImage::new(20, 10);
        draw_box(
            &mut img,
            &BBox::new(2.0, 2.0, 30.0, 8.0),
            Rgb([255, 0, 0]),
            1,
        );
        assert_eq!(img.get_pixel(2, 5), &Rgb([255, 0, 0]));
        assert_eq!(
            img.get_pixel(19, 5),
            &Rgb([255, 0, 0]),
            "right edge clamped into the image"
        );
        assert_eq!(
            img.get_pixel(10, 5),
            &Rgb([0, 0, 0]),
            "inside stays untouched"
        );
    }

    #[test]
    fn letterbox_fit_centres_the_content() {
        let img = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        let out = fit(&img, 100, 100, Resize::Letterbox);
        assert_eq!(out.get_pixel(50, 10), &Rgb([0, 0, 0]), "top bar");
        assert_eq!(out.get_pixel(50, 50), &Rgb([255, 255, 255]));
        assert_eq!(fit(&img, 50, 60, Resize::Stretch).dimensions(), (50, 60));
    }
}
