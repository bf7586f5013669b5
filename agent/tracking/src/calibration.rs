//! Optional ground-plane calibration of a camera: a homography from normalised image points to
//! metres on the ground, solved from four point pairs, so speeds and distances can be given in
//! m/s, km/h and metres.
//!
//! Contract: the four image points are ground points (where wheels or feet touch the road),
//! no three collinear. Image points beyond the calibrated plane's horizon map to `None`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::geometry::Point;

/// Why a calibration could not be solved.
#[derive(Debug, Error, PartialEq)]
pub enum CalibrationError {
    /// A coordinate was NaN or infinite.
    #[error("calibration points must be finite numbers")]
    NotFinite,
    /// Three or more points are collinear (on either side), so no homography exists.
    #[error("calibration points are degenerate (three on a line?): no homography fits them")]
    Degenerate,
}

/// Config form: four image points (normalised) and the same four points on the ground (metres).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// Four image points, normalised `[x, y]`.
    pub image: [[f64; 2]; 4],
    /// The matching ground points in metres `[x, y]`, any origin and orientation.
    pub ground_m: [[f64; 2]; 4],
}

impl CalibrationConfig {
    /// Solves the homography.
    pub fn build(&self) -> Result<Calibration, CalibrationError> {
        let img = self.image.map(|[x, y]| Point::new(x, y));
        let gnd = self.ground_m.map(|[x, y]| Point::new(x, y));
        Calibration::from_points(&img, &gnd)
    }
}

/// A solved image→ground homography.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    h: [f64; 9],
    // Sign of the projective denominator on the calibrated side of the horizon.
    w_sign: f64,
}

impl Calibration {
    /// Solves `ground = H · image` from four correspondences (an 8×8 linear system, h33 = 1).
    pub fn from_points(
        image: &[Point; 4],
        ground_m: &[Point; 4],
    ) -> Result<Calibration, CalibrationError> {
        let finite = |p: &Point| p.x.is_finite() && p.y.is_finite();
        if !image.iter().all(finite) || !ground_m.iter().all(finite) {
            return Err(CalibrationError::NotFinite);
        }
        // Collinear triples make the system singular or nearly so; reject them explicitly,
        // because elimination may still return a (meaningless) answer on rounding noise.
        for pts in [image, ground_m] {
            for (a, b, c) in [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)] {
                let area = crate::geometry::cross(pts[b] - pts[a], pts[c] - pts[a]).abs();
                let scale = (pts[b] - pts[a]).norm().max((pts[c] - pts[a]).norm());
                if area <= 1e-9 * scale.max(1e-12) * scale.max(1e-12) || scale == 0.0 {
                    return Err(CalibrationError::Degenerate);
                }
            }
        }
        let mut a = [[0.0f64; 9]; 8]; // augmented [A | b]
        for i in 0..4 {
            let (x, y) = (image[i].x, image[i].y);
            let (gx, gy) = (ground_m[i].x, ground_m[i].y);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -x * gx, -y * gx, gx];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -x * gy, -y * gy, gy];
        }
        let sol = solve8(a).ok_or(CalibrationError::Degenerate)?;
        let h = [
            sol[0], sol[1], sol[2], sol[3], sol[4], sol[5], sol[6], sol[7], 1.0,
        ];
        let c = Point::new(
            image.iter().map(|p| p.x).sum::<f64>() / 4.0,
            image.iter().map(|p| p.y).sum::<f64>() / 4.0,
        );
        let w = h[6] * c.x + h[7] * c.y + h[8];
        if w.abs() < 1e-12 {
            return Err(CalibrationError::Degenerate);
        }
        Ok(Calibration {
            h,
            w_sign: w.signum(),
        })
    }

    /// Maps an image point to the ground in metres, or `None` at or beyond the horizon.
    pub fn to_ground(&self, p: Point) -> Option<Point> {
        let h = &self.h;
        let w = h[6] * p.x + h[7] * p.y + h[8];
        if w * self.w_sign <= 1e-9 {
            return None;
        }
        let g = Point::new(
            (h[0] * p.x + h[1] * p.y + h[2]) / w,
            (h[3] * p.x + h[4] * p.y + h[5]) / w,
        );
        (g.x.is_finite() && g.y.is_finite()).then_some(g)
    }
}

/// Gaussian elimination with partial pivoting on an 8×8 augmented system.
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let piv = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        let (top, bottom) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for row in bottom.iter_mut() {
            let f = row[col] / pivot[col];
            if f != 0.0 {
                for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut x = [0.0f64; 8];
    for row in (0..8).rev() {
        let mut s = a[row][8];
        for k in (row + 1)..8 {
            s -= a[row][k] * x[k];
        }
        x[row] = s / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point::new(x, y)
    }

    #[test]
    fn maps_the_four_points_and_interpolates_a_trapezoid() {
        // A road seen in perspective: 10 m wide, 40 m long, narrow at the top of the image.
        let img = [p(0.4, 0.2), p(0.6, 0.2), p(0.9, 0.9), p(0.1, 0.9)];
        let gnd = [p(0.0, 40.0), p(10.0, 40.0), p(10.0, 0.0), p(0.0, 0.0)];
        let c = Calibration::from_points(&img, &gnd).unwrap();
        for (i, g) in img.iter().zip(gnd.iter()) {
            let m = c.to_ground(*i).unwrap();
            assert!(m.dist(*g) < 1e-6, "{m:?} vs {g:?}");
        }
        // The image centre line maps to the road's centre line.
        let mid = c.to_ground(p(0.5, 0.5)).unwrap();
        assert!((mid.x - 5.0).abs() < 1e-6);
        // Perspective: the upper half of the image spans more metres than the lower half.
        let top = c.to_ground(p(0.5, 0.2)).unwrap().y - mid.y;
        let bottom = mid.y - c.to_ground(p(0.5, 0.9)).unwrap().y;
        assert!(top > bottom * 1.5, "top {top} bottom {bottom}");
        // Far above the horizon there is no ground.
        assert_eq!(c.to_ground(p(0.5, -5.0)), None);
    }

    #[test]
    fn rejects_collinear_and_nan() {
        let img = [p(0.1, 0.1), p(0.2, 0.2), p(0.3, 0.3), p(0.1, 0.9)];
        let gnd = [p(0.0, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)];
        assert_eq!(
            Calibration::from_points(&img, &gnd),
            Err(CalibrationError::Degenerate)
        );
        let mut bad = gnd;
        bad[0].x = f64::NAN;
        assert_eq!(
            Calibration::from_points(&img, &bad),
            Err(CalibrationError::NotFinite)
        );
    }
}
