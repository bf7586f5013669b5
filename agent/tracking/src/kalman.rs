//! Constant-velocity Kalman filter on a box: centre x, centre y, width, height and their rates.
//!
//! ByteTrack's 8-state filter has block-diagonal transition, process and measurement matrices
//! (each coordinate only couples with its own velocity), so its covariance stays block-diagonal
//! and it is exactly four independent 2-state filters. That is what this is: no matrix
//! inversion, no allocation. Unlike ByteTrack it runs on real time steps (seconds), because
//! the detector's frame rate is configurable and frames may be dropped; the process noise is a
//! white-noise acceleration model scaled by the box height (near objects move faster on the
//! image than far ones).

use crate::geometry::BBox;

/// Noise settings, in multiples of the box height (normalised units, seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanParams {
    /// Standard deviation of a measured centre coordinate, × box height.
    pub meas_pos: f64,
    /// Standard deviation of a measured width/height, × box height.
    pub meas_size: f64,
    /// Acceleration noise of the centre, × box height per s².
    pub accel_pos: f64,
    /// Rate of change noise of the size, × box height per s².
    pub accel_size: f64,
    /// Initial velocity standard deviation, × box height per s.
    pub init_vel: f64,
}

impl Default for KalmanParams {
    fn default() -> Self {
        KalmanParams {
            meas_pos: 0.05,
            meas_size: 0.05,
            accel_pos: 2.0,
            accel_size: 0.5,
            init_vel: 5.0,
        }
    }
}

/// One coordinate: value, rate and their 2×2 covariance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    x: f64,
    v: f64,
    p00: f64,
    p01: f64,
    p11: f64,
}

impl Axis {
    fn new(x: f64, pos_sd: f64, vel_sd: f64) -> Axis {
        Axis {
            x,
            v: 0.0,
            p00: pos_sd * pos_sd,
            p01: 0.0,
            p11: vel_sd * vel_sd,
        }
    }

    fn predict(&mut self, dt: f64, q: f64) {
        self.x += self.v * dt;
        // P = F P Fᵀ + Q with F = [[1, dt], [0, 1]], Q = q·[[dt³/3, dt²/2], [dt²/2, dt]].
        let p00 = self.p00 + dt * (2.0 * self.p01 + dt * self.p11) + q * dt * dt * dt / 3.0;
        let p01 = self.p01 + dt * self.p11 + q * dt * dt / 2.0;
        let p11 = self.p11 + q * dt;
        self.p00 = p00;
        self.p01 = p01;
        self.p11 = p11;
    }

    fn update(&mut self, z: f64, r: f64) {
        let s = self.p00 + r;
        if s <= 0.0 || !s.is_finite() {
            return;
        }
        let k0 = self.p00 / s;
        let k1 = self.p01 / s;
        let y = z - self.x;
        self.x += k0 * y;
        self.v += k1 * y;
        // P = (I - K H) P, written out for the symmetric 2×2 case.
        let p00 = (1.0 - k0) * self.p00;
        let p01 = (1.0 - k0) * self.p01;
        let p11 = self.p11 - k1 * self.p01;
        self.p00 = p00;
        self.p01 = p01;
        self.p11 = p11.max(0.0);
    }
}

/// The filter state of one track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxKalman {
    axes: [Axis; 4], // cx, cy, w, h
}

/// Smallest width/height a predicted box keeps, so a long prediction never inverts a box.
const MIN_SIZE: f64 = 1e-4;

impl BoxKalman {
    /// Starts a filter at a measured box, at rest with a wide velocity prior.
    pub fn new(b: &BBox, prm: &KalmanParams) -> BoxKalman {
        let c = b.centre();
        let h = b.height().max(MIN_SIZE);
        let pos = 2.0 * prm.meas_pos * h;
        let size = 2.0 * prm.meas_size * h;
        let vel = prm.init_vel * h;
        BoxKalman {
            axes: [
                Axis::new(c.x, pos, vel),
                Axis::new(c.y, pos, vel),
                Axis::new(b.width(), size, vel / 4.0),
                Axis::new(b.height(), size, vel / 4.0),
            ],
        }
    }

    fn h(&self) -> f64 {
        self.axes[3].x.max(MIN_SIZE)
    }

    /// Advances the state by `dt` seconds (nothing for `dt <= 0`).
    pub fn predict(&mut self, dt: f64, prm: &KalmanParams) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let h = self.h();
        let qp = (prm.accel_pos * h).powi(2);
        let qs = (prm.accel_size * h).powi(2);
        self.axes[0].predict(dt, qp);
        self.axes[1].predict(dt, qp);
        self.axes[2].predict(dt, qs);
        self.axes[3].predict(dt, qs);
    }

    /// Corrects the state with a measured box.
    pub fn update(&mut self, b: &BBox, prm: &KalmanParams) {
        let c = b.centre();
        let h = b.height().max(MIN_SIZE);
        let rp = (prm.meas_pos * h).powi(2);
        let rs = (prm.meas_size * h).powi(2);
        self.axes[0].update(c.x, rp);
        self.axes[1].update(c.y, rp);
        self.axes[2].update(b.width(), rs);
        self.axes[3].update(b.height(), rs);
    }

    /// The box the state describes.
    pub fn bbox(&self) -> BBox {
        BBox::from_cxcywh(
            self.axes[0].x,
            self.axes[1].x,
            self.axes[2].x.max(MIN_SIZE),
            self.axes[3].x.max(MIN_SIZE),
        )
    }

    /// Velocity of the box centre, normalised units per second.
    pub fn centre_velocity(&self) -> (f64, f64) {
        (self.axes[0].v, self.axes[1].v)
    }

    /// Damps the velocities (used when a track goes unmatched, so a lost track does not fly
    /// off along a noisy velocity estimate).
    pub fn damp_velocity(&mut self, factor: f64) {
        for a in &mut self.axes {
            a.v *= factor;
        }
    }

    /// Replaces the velocity: the centre moves at (`vx`, `vy`) per second and the size stays.
    /// Used when a track is lost: the filter's own rates follow the last, possibly partly
    /// hidden boxes (a box shrinking behind an occluder looks like motion).
    pub fn set_velocity(&mut self, vx: f64, vy: f64) {
        self.axes[0].v = vx;
        self.axes[1].v = vy;
        self.axes[2].v = 0.0;
        self.axes[3].v = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_constant_velocity_and_predicts() {
        let prm = KalmanParams::default();
        let mk = |t: f64| BBox::from_cxcywh(0.1 + 0.2 * t, 0.5, 0.05, 0.1);
        let mut k = BoxKalman::new(&mk(0.0), &prm);
        for i in 1..=10 {
            let t = f64::from(i) * 0.2;
            k.predict(0.2, &prm);
            k.update(&mk(t), &prm);
        }
        let (vx, vy) = k.centre_velocity();
        assert!((vx - 0.2).abs() < 0.01, "vx {vx}");
        assert!(vy.abs() < 0.01);
        k.predict(1.0, &prm);
        let c = k.bbox().centre();
        assert!((c.x - (0.1 + 0.2 * 3.0)).abs() < 0.02, "x {}", c.x);
    }

    #[test]
    fn nonpositive_dt_is_a_no_op() {
        let prm = KalmanParams::default();
        let b = BBox::new(0.1, 0.1, 0.2, 0.3);
        let mut k = BoxKalman::new(&b, &prm);
        let before = k;
        k.predict(0.0, &prm);
        k.predict(-1.0, &prm);
        k.predict(f64::NAN, &prm);
        assert_eq!(k, before);
    }
}
