//! Camera tamper measures from a luma (Y) plane, no detector needed: brightness and contrast
//! (dark, covered), sharpness against a learned baseline (defocused) and an edge thumbnail
//! correlated against a learned reference (moved).
//!
//! Cost: samples a bounded grid (about 320×240 points whatever the resolution), so a 4K frame
//! costs the same as a VGA one; meant for about one frame per second. Allocation: only when a
//! monitor is created.

use thiserror::Error;

use crate::rules::config::{TamperCause, TamperConfig};

/// A borrowed 8-bit luma plane.
#[derive(Debug, Clone, Copy)]
pub struct LumaFrame<'a> {
    /// Pixels, row-major, `stride` bytes per row.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Bytes per row, at least `width`.
    pub stride: usize,
}

/// Why a luma frame was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LumaError {
    /// Too small to measure anything.
    #[error("luma frame {width}x{height} is too small (minimum {min}x{min})")]
    TooSmall {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
        /// Minimum side.
        min: usize,
    },
    /// Stride or buffer length do not cover the frame.
    #[error(
        "luma buffer of {len} bytes does not hold {height} rows of stride {stride} (width {width})"
    )]
    BadLayout {
        /// Buffer length.
        len: usize,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Stride.
        stride: usize,
    },
}

const MIN_SIDE: usize = 16;
/// Edge thumbnail size used for the moved check.
pub(crate) const THUMB_W: usize = 32;
pub(crate) const THUMB_H: usize = 24;

impl LumaFrame<'_> {
    fn check(&self) -> Result<(), LumaError> {
        if self.width < MIN_SIDE || self.height < MIN_SIDE {
            return Err(LumaError::TooSmall {
                width: self.width,
                height: self.height,
                min: MIN_SIDE,
            });
        }
        let need = self
            .stride
            .checked_mul(self.height - 1)
            .and_then(|v| v.checked_add(self.width));
        if self.stride < self.width || need.is_none_or(|n| self.data.len() < n) {
            return Err(LumaError::BadLayout {
                len: self.data.len(),
                width: self.width,
                height: self.height,
                stride: self.stride,
            });
        }
        Ok(())
    }

    fn at(&self, x: usize, y: usize) -> f64 {
        f64::from(self.data[y * self.stride + x])
    }
}

/// Measures of one luma frame.
#[derive(Debug, Clone, PartialEq)]
pub struct LumaStats {
    /// Mean luma, 0..255.
    pub mean: f64,
    /// Standard deviation of luma.
    pub std: f64,
    /// Variance of the 4-neighbour Laplacian at native resolution (sampled), over the luma
    /// variance: sharpness for the contrast there is.
    pub sharpness: f64,
    /// Gradient-magnitude thumbnail, `THUMB_W × THUMB_H`, row-major.
    pub edges: Vec<f64>,
    gray: Vec<f64>,
}

impl Default for LumaStats {
    fn default() -> Self {
        LumaStats {
            mean: 0.0,
            std: 0.0,
            sharpness: 0.0,
            edges: vec![0.0; THUMB_W * THUMB_H],
            gray: vec![0.0; (THUMB_W + 1) * (THUMB_H + 1)],
        }
    }
}

impl LumaStats {
    /// Measures `f` into `self`, reusing its buffers.
    pub fn measure(&mut self, f: &LumaFrame<'_>) -> Result<(), LumaError> {
        f.check()?;
        // Mean, std and sharpness on a grid of at most ~320 × 240 points.
        let sx = (f.width / 320).max(1);
        let sy = (f.height / 240).max(1);
        let (mut n, mut s, mut s2) = (0.0f64, 0.0f64, 0.0f64);
        let (mut ln, mut ls, mut ls2) = (0.0f64, 0.0f64, 0.0f64);
        let mut y = 1;
        while y + 1 < f.height {
            let mut x = 1;
            while x + 1 < f.width {
                let c = f.at(x, y);
                n += 1.0;
                s += c;
                s2 += c * c;
                // Neighbours at distance one: the Laplacian sees detail at native resolution,
                // which is what defocus removes.
                let lap =
                    f.at(x - 1, y) + f.at(x + 1, y) + f.at(x, y - 1) + f.at(x, y + 1) - 4.0 * c;
                ln += 1.0;
                ls += lap;
                ls2 += lap * lap;
                x += sx;
            }
            y += sy;
        }
        self.mean = s / n;
        self.std = (s2 / n - self.mean * self.mean).max(0.0).sqrt();
        let lm = ls / ln;
        // Relative to the contrast: dimming (dusk, an iris closing) scales the Laplacian and
        // the spread alike and must not read as lost focus; blur flattens the Laplacian far
        // more than it flattens the spread.
        let lap_var = (ls2 / ln - lm * lm).max(0.0);
        self.sharpness = lap_var / (self.std * self.std).max(1.0);

        // Gray thumbnail (one cell more each way, for gradients), cell means of sampled pixels.
        let (gw, gh) = (THUMB_W + 1, THUMB_H + 1);
        for cy in 0..gh {
            let (y0, y1) = (
                cy * f.height / gh,
                ((cy + 1) * f.height / gh).max(cy * f.height / gh + 1),
            );
            let ys = ((y1 - y0) / 8).max(1);
            for cx in 0..gw {
                let (x0, x1) = (
                    cx * f.width / gw,
                    ((cx + 1) * f.width / gw).max(cx * f.width / gw + 1),
                );
                let xs = ((x1 - x0) / 8).max(1);
                let (mut acc, mut cnt) = (0.0, 0.0);
                let mut yy = y0;
                while yy < y1 {
                    let mut xx = x0;
                    while xx < x1 {
                        acc += f.at(xx, yy);
                        cnt += 1.0;
                        xx += xs;
                    }
                    yy += ys;
                }
                self.gray[cy * gw + cx] = acc / cnt;
            }
        }
        for ty in 0..THUMB_H {
            for tx in 0..THUMB_W {
                let g = |x: usize, y: usize| self.gray[y * gw + x];
                let dx = g(tx + 1, ty) - g(tx, ty);
                let dy = g(tx, ty + 1) - g(tx, ty);
                self.edges[ty * THUMB_W + tx] = dx.abs() + dy.abs();
            }
        }
        Ok(())
    }
}

/// Zero-mean normalised cross-correlation; 0 when either side is flat.
pub fn ncc(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (da, db) = (x - ma, y - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if saa < 1e-9 || sbb < 1e-9 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Learned state of one tamper rule: sharpness baseline and edge reference.
#[derive(Debug, Clone)]
pub struct TamperMonitor {
    cfg: TamperConfig,
    learn_started: Option<f64>,
    learned: bool,
    samples: f64,
    sharp_base: f64,
    reference: Vec<f64>,
}

/// Verdict on one frame: which causes hold, with the value that decided each.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TamperVerdict {
    /// `(holds, measure)` per cause, indexed like [`CAUSES`].
    pub causes: [(bool, f64); 4],
}

/// Causes in verdict order.
pub const CAUSES: [TamperCause; 4] = [
    TamperCause::Dark,
    TamperCause::Covered,
    TamperCause::Defocused,
    TamperCause::Moved,
];

/// Slow adaptation of the learned baseline/reference while the view is normal, so daylight
/// changes do not drift into false alarms; slow enough that a tamper is not learned away.
const ADAPT: f64 = 0.01;

impl TamperMonitor {
    /// A monitor that learns from its first `learn_sec` of frames.
    pub fn new(cfg: TamperConfig) -> TamperMonitor {
        TamperMonitor {
            cfg,
            learn_started: None,
            learned: false,
            samples: 0.0,
            sharp_base: 0.0,
            reference: vec![0.0; THUMB_W * THUMB_H],
        }
    }

    /// Whether the baseline and reference are learned.
    pub fn is_learned(&self) -> bool {
        self.learned
    }

    /// Judges one frame's stats at time `t` and updates what it learns.
    pub fn judge(&mut self, t: f64, s: &LumaStats) -> TamperVerdict {
        let c = &self.cfg;
        let on = |k: TamperCause| c.checks.contains(&k);
        let dark = s.mean < c.dark_mean;
        let covered = !dark && s.std < c.covered_std;
        let mut v = TamperVerdict::default();
        v.causes[0] = (on(TamperCause::Dark) && dark, s.mean);
        v.causes[1] = (on(TamperCause::Covered) && covered, s.std);
        // Blind frames say nothing about focus or aim, and must not be learned.
        if dark || covered {
            return v;
        }
        if !self.learned {
            let start = *self.learn_started.get_or_insert(t);
            self.samples += 1.0;
            let k = 1.0 / self.samples;
            self.sharp_base += (s.sharpness - self.sharp_base) * k;
            for (r, e) in self.reference.iter_mut().zip(&s.edges) {
                *r += (e - *r) * k;
            }
            if t - start >= c.learn_sec && self.samples >= 2.0 {
                self.learned = true;
            }
            return v;
        }
        let ratio = if self.sharp_base > 1e-9 {
            s.sharpness / self.sharp_base
        } else {
            1.0
        };
        let corr = ncc(&self.reference, &s.edges);
        let defocused = ratio < c.defocus_ratio;
        let moved = corr < c.moved_corr;
        v.causes[2] = (on(TamperCause::Defocused) && defocused, ratio);
        v.causes[3] = (on(TamperCause::Moved) && moved, corr);
        if !defocused && !moved {
            self.sharp_base += (s.sharpness - self.sharp_base) * ADAPT;
            for (r, e) in self.reference.iter_mut().zip(&s.edges) {
                *r += (e - *r) * ADAPT;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_layouts() {
        let d = vec![0u8; 100];
        let f = LumaFrame {
            data: &d,
            width: 8,
            height: 8,
            stride: 8,
        };
        assert!(matches!(
            LumaStats::default().measure(&f),
            Err(LumaError::TooSmall { .. })
        ));
        let f = LumaFrame {
            data: &d,
            width: 20,
            height: 20,
            stride: 20,
        };
        assert!(matches!(
            LumaStats::default().measure(&f),
            Err(LumaError::BadLayout { .. })
        ));
        let f = LumaFrame {
            data: &d,
            width: 20,
            height: 20,
            stride: 10,
        };
        assert!(matches!(
            LumaStats::default().measure(&f),
            Err(LumaError::BadLayout { .. })
        ));
    }

    #[test]
    fn ncc_basics() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((ncc(&a, &a) - 1.0).abs() < 1e-12);
        assert!((ncc(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ncc(&a, &[5.0; 4]), 0.0);
    }
}
