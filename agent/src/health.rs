//! Each camera's health as the site and the center see it: frames received, frames analysed
//! (run through the detector or judged still by motion gating), frames dropped because the
//! detectors were busy, and detection latency; and a warning, once, when a camera is
//! under-served.
//!
//! Pure bookkeeping over counters sampled by the agent's health loop.

use std::time::Duration;

/// Cumulative counters of one camera at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Compressed frames received from the camera.
    pub received: u64,
    /// Decoded frames handed to the scheduler (at most `detect.fps` a second).
    pub offered: u64,
    /// Frames run through the model.
    pub detected: u64,
    /// Frames judged still (motion gating).
    pub held: u64,
    /// Frames dropped for a newer one while the detectors were busy.
    pub dropped: u64,
}

/// Rates over one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Frames per second received.
    pub received_fps: f64,
    /// Frames per second offered to the detectors.
    pub offered_fps: f64,
    /// Frames per second analysed (detected + held).
    pub analysed_fps: f64,
    /// Inferences per second.
    pub detect_fps: f64,
    /// Frames dropped in the interval.
    pub dropped: u64,
}

/// What changed in a camera's service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Service {
    /// The camera has been analysed at well under its offered rate for a while.
    UnderServed {
        /// Analysed frames per second.
        analysed_fps: f64,
        /// Frames per second the decoder offered.
        offered_fps: f64,
    },
    /// It keeps up again.
    Recovered,
}

/// One camera's health over time.
#[derive(Debug)]
pub struct CameraHealth {
    last: Counters,
    low_for: Duration,
    ok_for: Duration,
    warned: bool,
}

/// Analysed below this share of what was offered counts as under-served …
const LOW_SHARE: f64 = 0.8;
/// … for this long before it is reported.
const LOW_FOR: Duration = Duration::from_secs(30);
/// Back above this share for `LOW_FOR` counts as recovered.
const OK_SHARE: f64 = 0.95;

impl Default for CameraHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl CameraHealth {
    /// Starts with zero counters.
    pub fn new() -> Self {
        Self {
            last: Counters::default(),
            low_for: Duration::ZERO,
            ok_for: Duration::ZERO,
            warned: false,
        }
    }

    /// The rates since the last sample, `secs` ago, and a change of service to report, if
    /// any. `streaming` says whether the camera delivered during the interval.
    pub fn sample(
        &mut self,
        now: Counters,
        secs: f64,
        streaming: bool,
    ) -> (Rates, Option<Service>) {
        let secs = secs.max(1e-3);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let l = self.last;
        let analysed = d(now.detected + now.held, l.detected + l.held);
        let rates = Rates {
            received_fps: d(now.received, l.received) as f64 / secs,
            offered_fps: d(now.offered, l.offered) as f64 / secs,
            analysed_fps: analysed as f64 / secs,
            detect_fps: d(now.detected, l.detected) as f64 / secs,
            dropped: d(now.dropped, l.dropped),
        };
        self.last = now;
        let step = Duration::from_secs_f64(secs);
        let mut change = None;
        // Only judge intervals where the decoder offered frames: a camera that delivers fewer
        // frames than asked is the camera's doing, not the box's.
        if streaming && rates.offered_fps > 0.0 {
            let share = rates.analysed_fps / rates.offered_fps;
            if share < LOW_SHARE {
                self.low_for += step;
                self.ok_for = Duration::ZERO;
                if self.low_for >= LOW_FOR && !self.warned {
                    self.warned = true;
                    change = Some(Service::UnderServed {
                        analysed_fps: rates.analysed_fps,
                        offered_fps: rates.offered_fps,
                    });
                }
            } else {
                self.low_for = Duration::ZERO;
                if share >= OK_SHARE {
                    self.ok_for += step;
                    if self.warned && self.ok_for >= LOW_FOR {
                        self.warned = false;
                        change = Some(Service::Recovered);
                    }
                }
            }
        }
        (rates, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(received: u64, offered: u64, detected: u64, held: u64, dropped: u64) -> Counters {
        Counters {
            received,
            offered,
            detected,
            held,
            dropped,
        }
    }

    #[test]
    fn rates_and_one_warning_after_a_sustained_shortfall_then_recovery() {
        let mut h = CameraHealth::new();
        let (r, ch) = h.sample(c(250, 50, 30, 20, 0), 10.0, true);
        assert_eq!(r.received_fps, 25.0);
        assert_eq!((r.analysed_fps, r.detect_fps), (5.0, 3.0));
        assert_eq!(ch, None);
        // 5 fps offered, 3 analysed: under-served, reported once after 30 s.
        let mut n = c(250, 50, 30, 20, 0);
        let mut reports = Vec::new();
        for _ in 0..6 {
            n = c(
                n.received + 250,
                n.offered + 50,
                n.detected + 30,
                n.held,
                n.dropped + 20,
            );
            let (r, ch) = h.sample(n, 10.0, true);
            assert_eq!(r.dropped, 20);
            reports.extend(ch);
        }
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            matches!(reports[0], Service::UnderServed { analysed_fps, .. } if analysed_fps == 3.0)
        );
        // Keeping up again for 30 s.
        let mut reports = Vec::new();
        for _ in 0..4 {
            n = c(
                n.received + 250,
                n.offered + 50,
                n.detected + 50,
                n.held,
                n.dropped,
            );
            reports.extend(h.sample(n, 10.0, true).1);
        }
        assert_eq!(reports, vec![Service::Recovered]);
    }

    #[test]
    fn a_camera_that_sends_little_or_is_down_is_not_under_served() {
        let mut h = CameraHealth::new();
        let mut n = Counters::default();
        for _ in 0..10 {
            n.received += 10;
            h.sample(n, 10.0, false);
            assert_eq!(h.sample(n, 10.0, true).1, None);
        }
    }
}
