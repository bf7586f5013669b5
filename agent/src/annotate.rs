//! Still images for the detector, and boxes, labels and lines drawn on them (for `ioc-agent
//! detect --out` and event snapshots).

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

/// 5×7 glyphs, one byte per row (low five bits, leftmost pixel high): enough for labels
/// such as `PERSON 87%` without a font file.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        _ => [0; 7],
    }
}

/// A box's label (`PERSON 87%`) on a filled tab of `colour` just above the box's top-left
/// corner (inside the box when the box touches the top), in black or white, whichever reads
/// better on the colour. `scale` multiplies the 5×7 glyphs.
pub fn draw_label(img: &mut RgbImage, b: &BBox, text: &str, colour: Rgb<u8>, scale: u32) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let s = scale.max(1) as i64;
    let chars = text.chars().count() as i64;
    let (tw, th) = (chars * 6 * s + s, 9 * s);
    let x0 = (b.x1.round() as i64).clamp(0, (w - tw).max(0));
    let top = b.y1.round() as i64;
    let y0 = if top - th >= 0 { top - th } else { top.max(0) };
    // Luma of the tab decides the ink.
    let luma = 299 * colour[0] as u32 + 587 * colour[1] as u32 + 114 * colour[2] as u32;
    let ink = if luma > 140_000 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    };
    let mut put = |x: i64, y: i64, c: Rgb<u8>| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, c);
        }
    };
    for y in y0..y0 + th {
        for x in x0..x0 + tw {
            put(x, y, colour);
        }
    }
    for (i, c) in text.chars().enumerate() {
        let gx = x0 + s + i as i64 * 6 * s;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    for dy in 0..s {
                        for dx in 0..s {
                            put(gx + col * s + dx, y0 + s + row as i64 * s + dy, ink);
                        }
                    }
                }
            }
        }
    }
}

/// `PERSON 87%`: a class name and a score as a label.
pub fn label_text(class: &str, score: f32) -> String {
    format!(
        "{} {:.0}%",
        class.to_ascii_uppercase(),
        (score * 100.0).clamp(0.0, 100.0)
    )
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn a_label_is_drawn_above_the_box_in_readable_ink() {
        let mut img = RgbImage::from_pixel(120, 60, Rgb([10, 10, 10]));
        let b = BBox::new(20.0, 30.0, 80.0, 58.0);
        draw_label(
            &mut img,
            &b,
            &label_text("car", 0.874),
            Rgb([255, 200, 40]),
            1,
        );
        assert_eq!(label_text("car", 0.874), "CAR 87%");
        // The tab sits on the 9 rows above the box, from its left edge, 7 glyphs wide.
        assert_eq!(*img.get_pixel(20, 21), Rgb([255, 200, 40]));
        assert_eq!(*img.get_pixel(20 + 7 * 6, 29), Rgb([255, 200, 40]));
        assert_eq!(
            *img.get_pixel(20, 30),
            Rgb([10, 10, 10]),
            "box area untouched"
        );
        // Dark ink on the bright tab: the C's top row starts one pixel in, one row down.
        assert_eq!(*img.get_pixel(22, 22), Rgb([0, 0, 0]));
        let inked = (21..30)
            .flat_map(|y| (20..63).map(move |x| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == Rgb([0, 0, 0]))
            .count();
        assert!(inked > 40, "{inked} ink pixels");
        // A box at the very top gets its label inside, and nothing is drawn off the image.
        let mut img = RgbImage::new(30, 20);
        draw_label(
            &mut img,
            &BBox::new(25.0, 0.0, 30.0, 10.0),
            "PERSON 99%",
            Rgb([56, 140, 255]),
            2,
        );
        assert_eq!(
            *img.get_pixel(0, 0),
            Rgb([56, 140, 255]),
            "shifted left to fit"
        );
    }
}
