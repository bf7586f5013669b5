//! Rule schedules: days of the week and local time windows, including windows that cross
//! midnight. The engine never reads a clock; callers pass the local wall-clock time.

use serde::{Deserialize, Serialize};

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The day before.
    pub fn prev(self) -> Weekday {
        use Weekday::*;
        match self {
            Mon => Sun,
            Tue => Mon,
            Wed => Tue,
            Thu => Wed,
            Fri => Thu,
            Sat => Fri,
            Sun => Sat,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Local wall-clock time at the camera's site, as the caller computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Day of the week.
    pub weekday: Weekday,
    /// Seconds since local midnight, 0..86400.
    pub secs_of_day: u32,
}

impl LocalTime {
    /// A local time from day, hour and minute.
    pub fn new(weekday: Weekday, hour: u32, minute: u32) -> LocalTime {
        LocalTime {
            weekday,
            secs_of_day: hour * 3600 + minute * 60,
        }
    }
}

/// Config form: `days` (empty: every day) and `windows` like `"22:00-06:00"` (empty: all day).
/// A window that crosses midnight belongs to the day it starts on: `days = ["fri"]`,
/// `windows = ["22:00-06:00"]` is Friday 22:00 to Saturday 06:00.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Days the schedule applies to.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Local time windows, `"HH:MM-HH:MM"`; the end is exclusive and may be `24:00`.
    #[serde(default)]
    pub windows: Vec<String>,
}

/// A compiled schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    days: u8,
    windows: Vec<(u32, u32)>,
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 3600 + m * 60)
}

/// Parses `"HH:MM-HH:MM"` into seconds of day.
pub fn parse_window(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not a time window like \"22:00-06:00\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b) = (
        parse_hhmm(a).ok_or_else(bad)?,
        parse_hhmm(b).ok_or_else(bad)?,
    );
    if a == b {
        return Err(format!("{s:?} is empty: start equals end"));
    }
    if a == 86_400 {
        return Err(format!("{s:?} starts at 24:00; use 00:00"));
    }
    Ok((a, b))
}

impl ScheduleConfig {
    /// Pure checks, each error as `(key under the schedule, message)`.
    pub fn check(&self, errs: &mut Vec<(String, String)>) {
        for (i, w) in self.windows.iter().enumerate() {
            if let Err(m) = parse_window(w) {
                errs.push((format!("windows[{i}]"), m));
            }
        }
    }

    /// Compiles the schedule; `None` when a window is invalid (see [`ScheduleConfig::check`]).
    pub fn build(&self) -> Option<Schedule> {
        let days = if self.days.is_empty() {
            0x7f
        } else {
            self.days.iter().fold(0u8, |acc, d| acc | d.bit())
        };
        let windows = self
            .windows
            .iter()
            .map(|w| parse_window(w).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Schedule { days, windows })
    }
}

impl Schedule {
    /// Whether the schedule is active at `now`.
    pub fn is_active(&self, now: LocalTime) -> bool {
        let today = self.days & now.weekday.bit() != 0;
        if self.windows.is_empty() {
            return today;
        }
        let yesterday = self.days & now.weekday.prev().bit() != 0;
        let s = now.secs_of_day;
        self.windows.iter().any(|&(a, b)| {
            if a < b {
                today && s >= a && s < b
            } else {
                // Crosses midnight: the evening part today, the morning part from yesterday.
                (today && s >= a) || (yesterday && s < b)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(days: &[Weekday], windows: &[&str]) -> Schedule {
        ScheduleConfig {
            days: days.to_vec(),
            windows: windows.iter().map(|s| s.to_string()).collect(),
        }
        .build()
        .unwrap()
    }

    #[test]
    fn windows_across_midnight_belong_to_their_start_day() {
        use Weekday::*;
        let s = sched(&[Fri], &["22:00-06:00"]);
        assert!(!s.is_active(LocalTime::new(Fri, 21, 59)));
        assert!(s.is_active(LocalTime::new(Fri, 22, 0)));
        assert!(s.is_active(LocalTime::new(Sat, 3, 0)));
        assert!(!s.is_active(LocalTime::new(Sat, 6, 0)));
        assert!(!s.is_active(LocalTime::new(Sat, 23, 0)));
        // Friday's early morning belongs to Thursday night, which is not scheduled.
        assert!(!s.is_active(LocalTime::new(Fri, 3, 0)));
    }

    #[test]
    fn plain_windows_and_defaults() {
        use Weekday::*;
        let s = sched(&[], &["08:00-12:00", "13:00-24:00"]);
        assert!(s.is_active(LocalTime::new(Sun, 8, 0)));
        assert!(!s.is_active(LocalTime::new(Sun, 12, 30)));
        assert!(s.is_active(LocalTime::new(Mon, 23, 59)));
        assert!(!s.is_active(LocalTime::new(Mon, 0, 0)));
        let weekdays = sched(&[Mon, Tue, Wed, Thu, Fri], &[]);
        assert!(weekdays.is_active(LocalTime::new(Wed, 12, 0)));
        assert!(!weekdays.is_active(LocalTime::new(Sat, 12, 0)));
    }

    #[test]
    fn rejects_bad_windows() {
        assert!(parse_window("22:00").is_err());
        assert!(parse_window("25:00-01:00").is_err());
        assert!(parse_window("10:60-11:00").is_err());
        assert!(parse_window("10:00-10:00").unwrap_err().contains("empty"));
        assert_eq!(parse_window("00:00-24:00"), Ok((0, 86_400)));
    }
}
