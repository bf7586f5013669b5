//! What an object looks like, cheaply: colour histograms of the upper and the lower part of
//! its box, so that a dwell timer can tell "the same person, hidden for a moment" from
//! "someone else, arriving as the first one leaves" (the tracker's association and the rules'
//! re-acquisition).
//!
//! The histogram is joint over luma and the two chroma channels of the decoded frame (YUV is
//! an opponent colour space close to how people tell colours apart, and the agent has it
//! without conversion). Luma in eight even bands; chroma bins are narrow near grey, where most
//! clothes and cars are, and wide towards saturated colours. Upper and lower
//! part are kept apart (a dark coat over jeans is not jeans under a dark coat). Only the
//! middle of the box is sampled: its sides are mostly background, its bottom the shadow.
//!
//! Comparison is the Bhattacharyya coefficient of each part, averaged: 1 for the same
//! distribution, 0 for disjoint ones. Measuring costs at most [`MAX_SAMPLES`] pixel reads per
//! part whatever the box size, and allocates nothing.

use crate::geometry::BBox;

const Y_BINS: usize = 8;
const C_BINS: usize = 7;
const PART: usize = Y_BINS * C_BINS * C_BINS;
/// Values in one look (two parts).
pub const LEN: usize = 2 * PART;
/// Most pixels read per part of a box.
pub const MAX_SAMPLES: usize = 16 * 24;

/// The smallest box measured, in pixels (smaller ones give too few distinct pixels).
const MIN_W_PX: usize = 6;
const MIN_H_PX: usize = 16;

/// What an object looks like: two normalised histograms (upper and lower part of its box).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Appearance {
    hist: [f32; LEN],
}

impl Appearance {
    /// Measures the look of the object in `bbox` (normalised) on a `width`×`height` frame
    /// whose pixel `(x, y)` is `[Y, U, V]` as `pixel` gives it. `None` for a box too small to
    /// say anything or outside the frame.
    pub fn measure(
        bbox: BBox,
        width: usize,
        height: usize,
        pixel: impl Fn(usize, usize) -> [u8; 3],
    ) -> Option<Appearance> {
        if !bbox.is_valid() || width == 0 || height == 0 {
            return None;
        }
        let to_px = |v: f32, n: usize| ((v.clamp(0.0, 1.0) * n as f32) as usize).min(n - 1);
        let (x1, x2) = (to_px(bbox.x1, width), to_px(bbox.x2, width));
        let (y1, y2) = (to_px(bbox.y1, height), to_px(bbox.y2, height));
        let (w, h) = (x2.saturating_sub(x1), y2.saturating_sub(y1));
        if w < MIN_W_PX || h < MIN_H_PX {
            return None;
        }
        // The middle 40 % across; upper part 10–50 % down the box, lower part 50–88 %.
        let (sx1, sx2) = (x1 + 3 * w / 10, x2 - 3 * w / 10);
        let parts = [(y1 + h / 10, y1 + h / 2), (y1 + h / 2, y1 + h * 22 / 25)];
        let mut hist = [0f32; LEN];
        for (k, &(py1, py2)) in parts.iter().enumerate() {
            let (pw, ph) = (sx2 - sx1, py2 - py1);
            let (nx, ny) = (pw.clamp(1, 16), ph.clamp(1, 24));
            let part = &mut hist[k * PART..(k + 1) * PART];
            for j in 0..ny {
                let y = py1 + (2 * j + 1) * ph / (2 * ny);
                for i in 0..nx {
                    let x = sx1 + (2 * i + 1) * pw / (2 * nx);
                    let [yy, u, v] = pixel(x, y);
                    part[bin(yy, u, v)] += 1.0;
                }
            }
            let n = (nx * ny) as f32;
            for b in part.iter_mut() {
                *b /= n;
            }
        }
        Some(Appearance { hist })
    }

    /// How alike two looks are: 1 the same colours in the same parts, 0 nothing in common.
    pub fn similarity(&self, other: &Appearance) -> f32 {
        let mut s = [0f32; 2];
        for (k, sk) in s.iter_mut().enumerate() {
            let r = k * PART..(k + 1) * PART;
            *sk = self.hist[r.clone()]
                .iter()
                .zip(&other.hist[r])
                .map(|(a, b)| (a * b).sqrt())
                .sum();
        }
        (s[0] + s[1]) / 2.0
    }

    /// Moves this look towards `new` by `weight` (0..1): a running average over sightings.
    pub fn blend(&mut self, new: &Appearance, weight: f32) {
        let w = weight.clamp(0.0, 1.0);
        for (a, b) in self.hist.iter_mut().zip(&new.hist) {
            *a += w * (b - *a);
        }
    }
}

/// Looks this alike (or more) may be one object where the place alone cannot tell (a timer
/// handed from a lost track to a new one, a lost track re-found on its spot).
pub const SAME_OBJECT: f32 = 0.75;

/// Looks less alike than this are two objects: the tracker never matches them. Between the
/// two thresholds a look only breaks ties (a turn, a shadow, a partial view, or two people
/// dressed alike: `ioc-eval looks` measures how often).
pub const OTHER_OBJECT: f32 = 0.5;

fn bin(y: u8, u: u8, v: u8) -> usize {
    // Video-range luma in even bands; chroma narrow around grey (128), wide beyond.
    let yb = (usize::from(y.saturating_sub(16)) * Y_BINS / 220).min(Y_BINS - 1);
    let c = |c: u8| match c {
        0..=99 => 0,
        100..=113 => 1,
        114..=123 => 2,
        124..=132 => 3,
        133..=142 => 4,
        143..=156 => 5,
        _ => 6,
    };
    (yb * C_BINS + c(u)) * C_BINS + c(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: the left half one colour, the right half another, top and bottom split too
    /// (at row 49, where a box of the whole height splits its parts).
    fn quadrants(c: [[u8; 3]; 4]) -> impl Fn(usize, usize) -> [u8; 3] {
        move |x, y| c[usize::from(x >= 50) + 2 * usize::from(y >= 49)]
    }

    const DARK: [u8; 3] = [40, 128, 128];
    const RED: [u8; 3] = [90, 110, 180];
    const BLUE: [u8; 3] = [70, 170, 110];
    const GREY: [u8; 3] = [140, 128, 128];

    #[test]
    fn the_same_object_is_alike_and_a_different_one_is_not() {
        let f = quadrants([DARK, RED, BLUE, GREY]);
        let left = BBox::new(0.0, 0.0, 0.49, 1.0);
        let a = Appearance::measure(left, 100, 100, &f).unwrap();
        let again = Appearance::measure(BBox::new(0.01, 0.01, 0.48, 0.99), 100, 100, &f).unwrap();
        assert!(a.similarity(&again) > 0.95, "{}", a.similarity(&again));
        let right = Appearance::measure(BBox::new(0.5, 0.0, 1.0, 1.0), 100, 100, &f).unwrap();
        assert!(a.similarity(&right) < 0.1, "{}", a.similarity(&right));
        // Same colours, upper and lower swapped: not the same look.
        let g = quadrants([BLUE, RED, DARK, GREY]);
        let swapped = Appearance::measure(left, 100, 100, &g).unwrap();
        assert!(a.similarity(&swapped) < 0.1, "{}", a.similarity(&swapped));
    }

    #[test]
    fn similarity_is_symmetric_and_blending_moves_towards_the_new_look() {
        let f = quadrants([DARK, RED, BLUE, GREY]);
        let a = Appearance::measure(BBox::new(0.0, 0.0, 0.49, 1.0), 100, 100, &f).unwrap();
        let b = Appearance::measure(BBox::new(0.3, 0.0, 0.8, 1.0), 100, 100, &f).unwrap();
        assert!((a.similarity(&b) - b.similarity(&a)).abs() < 1e-6);
        let mut m = a;
        m.blend(&b, 0.5);
        assert!(m.similarity(&b) > a.similarity(&b));
        assert!(m.similarity(&a) > b.similarity(&a));
    }

    #[test]
    fn tiny_or_invalid_boxes_have_no_look() {
        let f = quadrants([DARK; 4]);
        assert!(Appearance::measure(BBox::new(0.1, 0.1, 0.12, 0.5), 100, 100, &f).is_none());
        assert!(Appearance::measure(BBox::new(0.5, 0.5, 0.4, 0.6), 100, 100, &f).is_none());
        assert!(Appearance::measure(BBox::new(0.0, 0.0, 1.0, 1.0), 0, 0, &f).is_none());
        // Out-of-frame parts are clamped, never read.
        assert!(Appearance::measure(BBox::new(-0.5, -0.5, 1.5, 1.5), 100, 100, &f).is_some());
    }
}
