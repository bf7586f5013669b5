//! The agent's view of its own wall clock, for its status: earlier than its build (not
//! synchronised since boot), or recently stepped against the monotonic clock (NTP caught up,
//! or someone set it). The collector then times the agent's events by their arrival.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ioc_protocol::ClockState;

/// When this crate was built, Unix seconds (see `build.rs`).
pub const BUILD_UNIX_S: u64 = parse_u64(env!("IOC_BUILD_UNIX_S"));

/// A step of the wall clock against the monotonic one larger than this is a jump.
const JUMP: Duration = Duration::from_secs(2);

/// How long after a jump the status still says so.
const JUMP_REMEMBERED: Duration = Duration::from_secs(600);

const fn parse_u64(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u64;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    n
}

/// Watches the wall clock; see the module docs.
#[derive(Debug, Clone)]
pub struct ClockWatch {
    floor: SystemTime,
    last: Option<(Instant, SystemTime)>,
    jumped_at: Option<Instant>,
}

impl Default for ClockWatch {
    fn default() -> Self {
        ClockWatch::new(UNIX_EPOCH + Duration::from_secs(BUILD_UNIX_S))
    }
}

impl ClockWatch {
    /// A watch for a clock that must not read earlier than `floor`.
    pub fn new(floor: SystemTime) -> Self {
        ClockWatch {
            floor,
            last: None,
            jumped_at: None,
        }
    }

    /// The clock's state now.
    pub fn check(&mut self) -> ClockState {
        self.check_at(Instant::now(), SystemTime::now())
    }

    /// The clock's state given the monotonic and wall clocks' readings now.
    pub fn check_at(&mut self, mono: Instant, wall: SystemTime) -> ClockState {
        if let Some((m0, w0)) = self.last {
            let mono_d = mono.saturating_duration_since(m0);
            let step = match wall.duration_since(w0) {
                Ok(wall_d) => wall_d.abs_diff(mono_d),
                Err(back) => back.duration() + mono_d,
            };
            if step > JUMP {
                tracing::warn!(
                    step_s = step.as_secs_f64(),
                    error_code = "clock_jumped",
                    "the wall clock jumped: event times around now are not to be trusted"
                );
                self.jumped_at = Some(mono);
            }
        }
        self.last = Some((mono, wall));
        if wall < self.floor {
            ClockState::BeforeBuild
        } else if self
            .jumped_at
            .is_some_and(|j| mono.saturating_duration_since(j) < JUMP_REMEMBERED)
        {
            ClockState::Jumped
        } else {
            ClockState::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_build_and_jumps() {
        let floor = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let mut w = ClockWatch::new(floor);
        let m0 = Instant::now();
        // Booted in 1970.
        assert_eq!(
            w.check_at(m0, UNIX_EPOCH + Duration::from_secs(60)),
            ClockState::BeforeBuild
        );
        // NTP steps it to now: a jump, remembered for a while.
        let t = floor + Duration::from_secs(1000);
        assert_eq!(
            w.check_at(m0 + Duration::from_secs(30), t),
            ClockState::Jumped
        );
        let later = Duration::from_secs(30);
        assert_eq!(
            w.check_at(m0 + Duration::from_secs(60), t + later),
            ClockState::Jumped
        );
        let much_later = Duration::from_secs(700);
        assert_eq!(
            w.check_at(m0 + Duration::from_secs(30) + much_later, t + much_later),
            ClockState::Ok
        );
        // Set back by a minute (still after the build): a jump too.
        let m = m0 + Duration::from_secs(800);
        let w_now = t + much_later + Duration::from_secs(70) - Duration::from_secs(60);
        assert_eq!(w.check_at(m, w_now), ClockState::Jumped);
        const { assert!(BUILD_UNIX_S > 1_700_000_000, "the build time is recorded") };
    }
}
