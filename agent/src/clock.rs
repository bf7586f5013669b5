//! Frame time: every frame carries the moment it was captured, taken from the stream's own
//! timestamps, through decode, detection, tracking and rules into the event. Results then do
//! not depend on how long a frame waited behind the detector (ARCHITECTURE.md, "Times").
//!
//! A frame's [`FrameTime`] has three faces:
//! - `pts`: presentation time since the start of its stream session (RTP timestamps of a
//!   camera, the container's of a file), as the stream says it;
//! - `t_sec`: the camera's rule clock, seconds since the agent started on the monotonic
//!   clock; tracking and rules use only this;
//! - `wall`: the capture time on the wall clock, for `observed_at`.
//!
//! A [`SessionClock`] ties one session's pts to the agent's clocks. A live session is anchored
//! once, at its first frame, on the time that frame's first packet arrived; a camera that
//! sends RTCP sender reports with a clock that agrees with ours moves the anchor back by the
//! transport delay it shows. A file played flat out runs on its own timestamps.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The agent's start: the zero of every camera's rule clock.
#[derive(Clone, Copy, Debug)]
pub struct Epoch {
    /// Monotonic start.
    pub mono: Instant,
    /// Wall-clock start.
    pub wall: SystemTime,
}

impl Epoch {
    /// Now.
    pub fn now() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Rule-clock seconds of a monotonic instant (0 before the epoch).
    pub fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.mono).as_secs_f64()
    }

    /// The wall-clock time of a rule-clock time, for sources without a wall clock of their
    /// own (files played flat out).
    pub fn wall_at(&self, t_sec: f64) -> SystemTime {
        self.wall + Duration::from_secs_f64(t_sec.max(0.0))
    }
}

/// When a frame was captured (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameTime {
    /// Presentation time since the start of the stream session.
    pub pts: Duration,
    /// The camera's rule clock, seconds since the agent started.
    pub t_sec: f64,
    /// Capture time on the wall clock.
    pub wall: SystemTime,
}

impl FrameTime {
    /// The wall-clock time of another rule-clock time `t_sec`, relative to this frame.
    pub fn wall_of(&self, t_sec: f64) -> SystemTime {
        let d = t_sec - self.t_sec;
        if d >= 0.0 {
            self.wall + Duration::from_secs_f64(d)
        } else {
            self.wall
                .checked_sub(Duration::from_secs_f64(-d))
                .unwrap_or(self.wall)
        }
    }
}

/// How a session's timestamps map onto the agent's clocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClockMode {
    /// A live source: anchored on arrival at the first frame (see [`SessionClock::anchor`]).
    Live,
    /// A file played at its own pace: anchored on the first decoded frame's arrival.
    Paced,
    /// A file decoded as fast as possible: the rule clock is its pts plus `offset_sec`, and
    /// its wall clock the agent's start plus that.
    Flat {
        /// Rule-clock time of pts 0.
        offset_sec: f64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    pts: Duration,
    t_sec: f64,
    mono: Instant,
}

/// One session's mapping from pts to frame times. Shared by the source (which anchors it)
/// and the decoder's output (which reads it); the lock is taken once per frame.
#[derive(Debug)]
pub struct SessionClock {
    epoch: Epoch,
    mode: ClockMode,
    // Rule-clock times of this session never go below this (the end of the last session).
    floor_sec: f64,
    anchor: Mutex<Option<Anchor>>,
    refined: Mutex<bool>,
}

/// Largest transport delay an RTCP sender report may show before the camera's clock is
/// considered wrong rather than the network slow.
const MAX_SR_DELAY: Duration = Duration::from_secs(2);

impl SessionClock {
    /// A clock for a new session; `floor_sec` is the camera's last rule-clock time.
    pub fn new(epoch: Epoch, mode: ClockMode, floor_sec: f64) -> Self {
        Self {
            epoch,
            mode,
            floor_sec,
            anchor: Mutex::new(None),
            refined: Mutex::new(false),
        }
    }

    /// The mode.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Anchors a live session at its first frame: `pts` arrived at `arrived`. Later calls
    /// do nothing.
    pub fn anchor(&self, pts: Duration, arrived: Instant) {
        let mut a = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        if a.is_none() {
            *a = Some(self.make_anchor(pts, arrived));
        }
    }

    /// Refines a live anchor with a sender report: the frame at `pts` was captured at
    /// `captured_wall` by the camera's clock and arrived at `arrived_wall` by ours. Used once;
    /// returns the delay it found, or `Err(offset)` when the camera's clock is off by more
    /// than a plausible delay (then arrival times are kept).
    pub fn refine(
        &self,
        pts: Duration,
        captured_wall: SystemTime,
        arrived_wall: SystemTime,
        arrived: Instant,
    ) -> Option<Result<Duration, f64>> {
        let mut done = self.refined.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return None;
        }
        *done = true;
        let delay = match arrived_wall.duration_since(captured_wall) {
            Ok(d) if d <= MAX_SR_DELAY => d,
            Ok(d) => return Some(Err(d.as_secs_f64())),
            Err(e) => return Some(Err(-e.duration().as_secs_f64())),
        };
        let mut a = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let mono = arrived.checked_sub(delay).unwrap_or(arrived);
        let fresh = self.make_anchor(pts, mono);
        // Only ever earlier: the first frame's arrival is an upper bound of its capture.
        match a.as_mut() {
            Some(old) => {
                let t_then = fresh.t_sec - (fresh.pts.as_secs_f64() - old.pts.as_secs_f64());
                if t_then < old.t_sec {
                    let shift = old.t_sec - t_then;
                    old.t_sec = t_then.max(self.floor_sec);
                    old.mono = old
                        .mono
                        .checked_sub(Duration::from_secs_f64(shift))
                        .unwrap_or(old.mono);
                }
            }
            None => *a = Some(fresh),
        }
        Some(Ok(delay))
    }

    fn make_anchor(&self, pts: Duration, arrived: Instant) -> Anchor {
        Anchor {
            pts,
            t_sec: self.epoch.secs(arrived).max(self.floor_sec),
            mono: arrived,
        }
    }

    /// The time of the frame at `pts`. A session not anchored yet (a file, or a frame
    /// before the source anchored) is anchored on this frame, now.
    pub fn time(&self, pts: Duration) -> FrameTime {
        if let ClockMode::Flat { offset_sec } = self.mode {
            let t_sec = offset_sec + pts.as_secs_f64();
            return FrameTime {
                pts,
                t_sec,
                wall: self.epoch.wall_at(t_sec),
            };
        }
        let a = {
            let mut a = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
            *a.get_or_insert_with(|| self.make_anchor(pts, Instant::now()))
        };
        let d = pts.as_secs_f64() - a.pts.as_secs_f64();
        let t_sec = a.t_sec + d;
        let captured = if d >= 0.0 {
            a.mono + Duration::from_secs_f64(d)
        } else {
            a.mono
                .checked_sub(Duration::from_secs_f64(-d))
                .unwrap_or(a.mono)
        };
        // The wall clock now, less the frame's age: right even if NTP set the clock after
        // the session started (site boxes without a battery boot in 1970).
        let now = Instant::now();
        let wall = if captured <= now {
            SystemTime::now()
                .checked_sub(now - captured)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            SystemTime::now() + (captured - now)
        };
        FrameTime { pts, t_sec, wall }
    }
}

/// Seconds since 1970 of an NTP timestamp (RTCP sender reports), as a wall-clock time.
pub fn ntp_to_system_time(ntp: retina::NtpTimestamp) -> SystemTime {
    let d = ntp.0.wrapping_sub(retina::UNIX_EPOCH.0);
    let secs = (d >> 32) as f64 + (d & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_frames_keep_their_own_spacing_whenever_they_are_handled() {
        let epoch = Epoch::now();
        let c = SessionClock::new(epoch, ClockMode::Live, 0.0);
        let arrived = epoch.mono + Duration::from_secs(5);
        c.anchor(Duration::from_millis(1000), arrived);
        // Handled late and out of step: the times come from pts, not from "now".
        let b = c.time(Duration::from_millis(1400));
        let a = c.time(Duration::from_millis(1200));
        assert!((a.t_sec - 5.2).abs() < 1e-9, "{}", a.t_sec);
        assert!((b.t_sec - 5.4).abs() < 1e-9, "{}", b.t_sec);
        let gap = b.wall.duration_since(a.wall).unwrap().as_secs_f64();
        assert!((gap - 0.2).abs() < 0.01, "{gap}");
        // A second anchor does not move the first.
        c.anchor(Duration::ZERO, arrived + Duration::from_secs(60));
        assert!((c.time(Duration::from_millis(1000)).t_sec - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_new_session_never_starts_before_the_last_one_ended() {
        let epoch = Epoch::now();
        let c = SessionClock::new(epoch, ClockMode::Live, 30.0);
        c.anchor(Duration::ZERO, epoch.mono + Duration::from_secs(20));
        assert!((c.time(Duration::ZERO).t_sec - 30.0).abs() < 1e-9);
    }

    #[test]
    fn flat_files_run_on_their_timestamps() {
        let epoch = Epoch::now();
        let c = SessionClock::new(epoch, ClockMode::Flat { offset_sec: 2.0 }, 0.0);
        let t = c.time(Duration::from_millis(500));
        assert!((t.t_sec - 2.5).abs() < 1e-9);
        assert_eq!(t.wall, epoch.wall_at(2.5));
    }

    #[test]
    fn sender_reports_move_the_anchor_back_only_for_a_plausible_delay() {
        let epoch = Epoch::now();
        let c = SessionClock::new(epoch, ClockMode::Live, 0.0);
        let arrived = epoch.mono + Duration::from_secs(10);
        c.anchor(Duration::ZERO, arrived);
        let now = SystemTime::now();
        let r = c.refine(
            Duration::ZERO,
            now - Duration::from_millis(300),
            now,
            arrived,
        );
        assert_eq!(r, Some(Ok(Duration::from_millis(300))));
        assert!((c.time(Duration::ZERO).t_sec - 9.7).abs() < 1e-6);
        // Only once per session.
        assert_eq!(c.refine(Duration::ZERO, now, now, arrived), None);
        // A camera an hour off is not believed.
        let c = SessionClock::new(epoch, ClockMode::Live, 0.0);
        c.anchor(Duration::ZERO, arrived);
        let r = c.refine(
            Duration::ZERO,
            now - Duration::from_secs(3600),
            now,
            arrived,
        );
        assert!(
            matches!(r, Some(Err(off)) if (off - 3600.0).abs() < 1.0),
            "{r:?}"
        );
        assert!((c.time(Duration::ZERO).t_sec - 10.0).abs() < 1e-9);
    }

    #[test]
    fn wall_of_maps_other_rule_times_around_a_frame() {
        let t = FrameTime {
            pts: Duration::ZERO,
            t_sec: 10.0,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        };
        assert_eq!(
            t.wall_of(7.5),
            SystemTime::UNIX_EPOCH + Duration::from_millis(997_500)
        );
        assert_eq!(
            t.wall_of(12.0),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1002)
        );
    }
}
