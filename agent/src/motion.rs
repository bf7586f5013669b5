//! Motion gating: a cheap look at every frame decides whether the detector needs to see it.
//!
//! As in Frigate: each candidate frame's luma is shrunk to a small grey image (area average,
//! which also removes most sensor noise), compared with a running average of the recent
//! frames, and the pixels that differ by more than `threshold` are counted. A scene where
//! nothing moves is the common case at a real site; there the detector runs only for a
//! periodic refresh (see [`crate::detect`] for the rest of the gate: live tracks, refresh).
//! A change over most of the picture (lights switched, camera moved, iris) counts as motion
//! and restarts the average, so the next frames compare with the new scene.
//!
//! Pure logic on a frame at a time; costs well under a millisecond a frame (the shrink reads
//! the luma plane once).

use ioc_detect::yuv::{Resampler, YuvImage};
use serde::Deserialize;

/// `[detect.motion]` in `agent.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Run the detector only on frames with motion (plus the refresh and live tracks).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Grey-level difference (0..255) that counts a small-image pixel as changed.
    #[serde(default = "default_threshold")]
    pub threshold: u8,
    /// Share of the small image (0..1) that must change to count as motion.
    #[serde(default = "default_min_area")]
    pub min_area: f64,
    /// With nothing moving, the detector still runs this often, so objects that came to rest
    /// (and slow ones below the motion threshold) keep being seen.
    #[serde(default = "default_refresh_sec")]
    pub refresh_sec: f64,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: default_threshold(),
            min_area: default_min_area(),
            refresh_sec: default_refresh_sec(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_threshold() -> u8 {
    20
}
fn default_min_area() -> f64 {
    // About 8 pixels of a 160×120 image: a distant walker's outline.
    0.0004
}
fn default_refresh_sec() -> f64 {
    2.0
}

impl MotionConfig {
    /// Pure checks, `key: problem`, keys under `detect.motion`.
    pub fn validate(&self, e: &mut Vec<String>) {
        if self.threshold == 0 {
            e.push("detect.motion.threshold: must be at least 1".into());
        }
        if !(self.min_area > 0.0 && self.min_area < 1.0) {
            e.push(format!(
                "detect.motion.min_area: {} is not within (0, 1)",
                self.min_area
            ));
        }
        if !(self.refresh_sec > 0.0 && self.refresh_sec <= 60.0) {
            e.push(format!(
                "detect.motion.refresh_sec: {} is not within (0, 60]",
                self.refresh_sec
            ));
        }
    }
}

/// Width of the grey image motion is judged on (height follows the frame's aspect).
const GREY_WIDTH: usize = 160;
/// Time constant of the running average: a car that parks stops being motion after a few
/// seconds, so the scene around it can go quiet.
const AVERAGE_TAU_SEC: f64 = 3.0;
/// A change over this share of the image is a scene change, not an object.
const SCENE_CHANGE: f64 = 0.5;

/// What one frame showed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Motion {
    /// Share of the image that changed (0..1).
    pub changed: f64,
    /// `changed` reached the configured minimum.
    pub moving: bool,
}

/// One camera's motion detector.
#[derive(Debug)]
pub struct MotionDetector {
    cfg: MotionConfig,
    resampler: Resampler,
    grey: Vec<u8>,
    average: Vec<f32>,
    last_t: Option<f64>,
    size: (usize, usize),
}

impl MotionDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: MotionConfig) -> Self {
        Self {
            cfg,
            resampler: Resampler::new(),
            grey: Vec::new(),
            average: Vec::new(),
            last_t: None,
            size: (0, 0),
        }
    }

    /// Judges the frame captured at `t_sec`. The first frame, and the first after a change of
    /// size or a gap of more than a few seconds, count as motion (nothing to compare with).
    pub fn measure(&mut self, img: &YuvImage<'_>, t_sec: f64) -> Motion {
        let w = GREY_WIDTH.min(img.width);
        let h = ((img.height * w) / img.width.max(1)).max(1);
        if self.resampler.to_grey(img, &mut self.grey, w, h).is_err() {
            return Motion {
                changed: 1.0,
                moving: true,
            };
        }
        let dt = self.last_t.map(|l| t_sec - l);
        self.last_t = Some(t_sec);
        let restart = self.size != (w, h)
            || self.average.len() != w * h
            || dt.is_none_or(|d| !(0.0..=4.0 * AVERAGE_TAU_SEC).contains(&d));
        if restart {
            self.size = (w, h);
            self.average.clear();
            self.average.extend(self.grey.iter().map(|&g| g as f32));
            return Motion {
                changed: 1.0,
                moving: true,
            };
        }
        let thr = self.cfg.threshold as f32;
        let changed = self
            .grey
            .iter()
            .zip(&self.average)
            .filter(|(&g, &a)| (g as f32 - a).abs() > thr)
            .count();
        let changed = changed as f64 / (w * h) as f64;
        if changed >= SCENE_CHANGE {
            self.average.clear();
            self.average.extend(self.grey.iter().map(|&g| g as f32));
        } else {
            let alpha = (1.0 - (-dt.unwrap_or(0.0) / AVERAGE_TAU_SEC).exp()) as f32;
            for (a, &g) in self.average.iter_mut().zip(&self.grey) {
                *a += alpha * (g as f32 - *a);
            }
        }
        Motion {
            changed,
            moving: changed >= self.cfg.min_area,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioc_detect::yuv::{Matrix, YuvLayout};

    struct Frame {
        y: Vec<u8>,
        c: Vec<u8>,
    }

    impl Frame {
        fn new(f: impl Fn(usize, usize) -> u8) -> Self {
            let (w, h) = (320, 240);
            let mut y = vec![0u8; w * h];
            for r in 0..h {
                for x in 0..w {
                    y[r * w + x] = f(x, r);
                }
            }
            Frame {
                y,
                c: vec![128; 160 * 120],
            }
        }

        fn image(&self) -> YuvImage<'_> {
            YuvImage {
                layout: YuvLayout::I420,
                width: 320,
                height: 240,
                y: &self.y,
                y_stride: 320,
                u: &self.c,
                u_stride: 160,
                v: &self.c,
                v_stride: 160,
                matrix: Matrix::Bt601,
                full_range: false,
            }
        }
    }

    /// A textured background with a bright 16×32 "person" at x.
    fn scene(person: Option<usize>) -> Frame {
        Frame::new(|x, y| {
            if person.is_some_and(|p| x >= p && x < p + 16 && (100..132).contains(&y)) {
                220
            } else {
                (60 + (x * 7 + y * 13) % 40) as u8
            }
        })
    }

    #[test]
    fn a_still_scene_is_quiet_and_a_walker_is_motion() {
        let mut m = MotionDetector::new(MotionConfig::default());
        let bg = scene(None);
        assert!(m.measure(&bg.image(), 0.0).moving, "first frame");
        for i in 1..10 {
            let r = m.measure(&bg.image(), i as f64 * 0.2);
            assert!(!r.moving && r.changed == 0.0, "{r:?}");
        }
        let r = m.measure(&scene(Some(100)).image(), 2.0);
        assert!(r.moving, "{r:?}");
        assert!(r.changed < 0.05, "{r:?}");
        let r = m.measure(&scene(Some(110)).image(), 2.2);
        assert!(r.moving);
    }

    #[test]
    fn something_that_stops_becomes_background() {
        let mut m = MotionDetector::new(MotionConfig::default());
        m.measure(&scene(None).image(), 0.0);
        let parked = scene(Some(150));
        let mut quiet_at = None;
        for i in 1..100 {
            let t = i as f64 * 0.2;
            if !m.measure(&parked.image(), t).moving {
                quiet_at = Some(t);
                break;
            }
        }
        let q = quiet_at.expect("never went quiet");
        assert!(q > 1.0 && q < 15.0, "{q}");
    }

    #[test]
    fn a_lighting_change_is_motion_once_then_the_new_scene_is_quiet() {
        let mut m = MotionDetector::new(MotionConfig::default());
        m.measure(&scene(None).image(), 0.0);
        m.measure(&scene(None).image(), 0.2);
        let dark = Frame::new(|_, _| 20);
        let r = m.measure(&dark.image(), 0.4);
        assert!(r.moving && r.changed > 0.9, "{r:?}");
        assert!(!m.measure(&dark.image(), 0.6).moving);
    }
}
