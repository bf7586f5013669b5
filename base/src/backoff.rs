//! Capped exponential backoff with jitter, so that a site's cameras that went down together
//! do not all hammer the recorder again in the same instant, nor agents and collectors that
//! lost the same broker.

use std::time::Duration;

use rand::Rng;

/// Delay generator: `initial`, doubled after each failure, capped at `max`, ±20 % jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The next delay, with jitter; the base doubles for the call after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::thread_rng().gen_range(0.8..=1.2);
        base.mul_f64(jitter).min(self.max)
    }

    /// The longest delay (used for errors retrying will not fix soon).
    pub fn max_delay(&self) -> Duration {
        self.max
    }

    /// Back to `initial`, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        for (got, base) in d.iter().zip([100u128, 200, 400, 800, 1000, 1000]) {
            assert!(
                *got >= base * 8 / 10 && *got <= (base * 12 / 10).min(1000),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
