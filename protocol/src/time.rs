//! RFC 3339 UTC timestamps, without a date-time dependency.
//!
//! The wire format is `YYYY-MM-DDTHH:MM:SS[.f]Z`: upper-case `T` and `Z`, UTC only (no
//! offsets), 1 to 9 fractional digits, years 0000..=9999, seconds 00..=59 (no leap seconds:
//! the system clocks that produce these smear them). Writers produce exactly 3 fractional
//! digits ([`Timestamp::from_system_time`]); readers accept 0 to 9.
//!
//! A [`Timestamp`] is always valid: [`Timestamp::parse`] and deserialisation check it, and it
//! keeps the parsed instant next to the text so comparing two timestamps does not re-parse.
//! Sub-millisecond parts are truncated towards the past (floor), never rounded up, so a formatted
//! time never lies in the future of the instant it came from.
//!
//! Dates are converted with Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms
//! (proleptic Gregorian calendar).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z.
const MIN_UNIX_SECS: i64 = -62_167_219_200;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z.
const MAX_UNIX_SECS: i64 = 253_402_300_799;

/// A valid RFC 3339 UTC timestamp (see the module docs for the accepted form).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    text: String,
    secs: i64,
    nanos: u32,
}

/// Why a string is not an accepted timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {value:?}: {reason} (expected RFC 3339 UTC like \"2024-05-01T12:00:00.000Z\")"
)]
pub struct TimestampError {
    /// The rejected input (truncated to 64 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Timestamp {
    /// The instant `t`, formatted with millisecond precision (truncated), e.g.
    /// `2024-02-29T23:59:59.999Z`. Instants outside years 0000..=9999 are clamped to that range.
    pub fn from_system_time(t: SystemTime) -> Self {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
                match d.subsec_nanos() {
                    0 => (secs, 0),
                    n => (secs.saturating_sub(1), 1_000_000_000 - n),
                }
            }
        };
        Self::from_unix(secs, nanos)
    }

    /// The current system time (see [`Timestamp::from_system_time`]).
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// `secs` seconds and `nanos` nanoseconds after the Unix epoch (`nanos` below 10⁹; larger
    /// values are capped), formatted with millisecond precision (truncated). Clamped to years
    /// 0000..=9999.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let (secs, nanos) = if secs < MIN_UNIX_SECS {
            (MIN_UNIX_SECS, 0)
        } else if secs > MAX_UNIX_SECS {
            (MAX_UNIX_SECS, 999_000_000)
        } else {
            (secs, nanos.min(999_999_999) / 1_000_000 * 1_000_000)
        };
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
            nanos / 1_000_000
        );
        Timestamp { text, secs, nanos }
    }

    /// Checks and parses `s`.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let (secs, nanos) = parse_rfc3339_utc(s).map_err(|reason| TimestampError {
            value: s.chars().take(64).collect(),
            reason,
        })?;
        Ok(Timestamp {
            text: s.to_owned(),
            secs,
            nanos,
        })
    }

    /// The wire text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whole seconds since the Unix epoch (floor; negative before 1970).
    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second (0..10⁹), as far as the text carries them.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Milliseconds since the Unix epoch (floor).
    pub fn unix_millis(&self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// The instant as a [`SystemTime`].
    pub fn to_system_time(&self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs.unsigned_abs(), self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs())
                + Duration::from_nanos(u64::from(self.nanos))
        }
    }
}

/// Ordered by instant (ties, i.e. the same instant written differently, by text).
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.secs, self.nanos, &self.text).cmp(&(other.secs, other.nanos, &other.text))
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Timestamp::from_system_time(t)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.text
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "RFC 3339 timestamp in UTC, e.g. \"2024-05-01T12:00:00.000Z\"",
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$"
        })
    }
}

/// `(seconds, nanoseconds)` since the epoch, or why `s` is not accepted.
fn parse_rfc3339_utc(s: &str) -> Result<(i64, u32), &'static str> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err("too short");
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        b[range].iter().try_fold(0i64, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + i64::from(c - b'0'))
            } else {
                Err("expected a digit")
            }
        })
    };
    let sep = |i: usize, c: u8, what: &'static str| if b[i] == c { Ok(()) } else { Err(what) };
    let year = num(0..4)?;
    sep(4, b'-', "expected '-' after the year")?;
    let month = num(5..7)?;
    sep(7, b'-', "expected '-' after the month")?;
    let day = num(8..10)?;
    sep(10, b'T', "expected 'T' between date and time")?;
    let hour = num(11..13)?;
    sep(13, b':', "expected ':' after the hour")?;
    let minute = num(14..16)?;
    sep(16, b':', "expected ':' after the minute")?;
    let second = num(17..19)?;
    let mut nanos = 0u32;
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err("expected 1 to 9 fractional digits");
        }
        let frac = num(start..i)?;
        nanos = u32::try_from(frac * 10i64.pow(9 - digits as u32)).map_err(|_| "bad fraction")?;
    }
    if i >= b.len() || b[i] != b'Z' {
        return Err("expected 'Z' (UTC) at the end");
    }
    if i + 1 != b.len() {
        return Err("unexpected text after 'Z'");
    }
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    let days = days_from_civil(year, month, day);
    Ok((days * 86_400 + hour * 3600 + minute * 60 + second, nanos))
}

fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (`m` 1..=12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(y, m, d)` of `z` days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> String {
        Timestamp::from_unix(secs, nanos).as_str().to_owned()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_system_time(UNIX_EPOCH).as_str(),
            "1970-01-01T00:00:00.000Z"
        );
        // 2000 is a leap year (divisible by 400).
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(951_868_799, 0), "2000-02-29T23:59:59.000Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000Z");
        // 2024-02-29 (leap), 2023 has no Feb 29.
        assert_eq!(at(1_709_251_199, 999_000_000), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_677_628_800, 0), "2023-03-01T00:00:00.000Z");
        // 2100 is not a leap year.
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(1_700_000_000, 123_456_789), "2023-11-14T22:13:20.123Z");
        assert_eq!(at(-1, 0), "1969-12-31T23:59:59.000Z");
        assert_eq!(at(MAX_UNIX_SECS, 0), "9999-12-31T23:59:59.000Z");
        assert_eq!(at(MIN_UNIX_SECS, 0), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn milliseconds_truncate_never_round_up() {
        assert_eq!(at(0, 999_999_999), "1970-01-01T00:00:00.999Z");
        assert_eq!(at(0, 1_999_999), "1970-01-01T00:00:00.001Z");
        assert_eq!(at(0, 999_999), "1970-01-01T00:00:00.000Z");
        // Before the epoch, truncation is still towards the past.
        let t = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(
            Timestamp::from_system_time(t).as_str(),
            "1969-12-31T23:59:59.999Z"
        );
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(
            Timestamp::from_system_time(t).as_str(),
            "1969-12-31T23:59:58.500Z"
        );
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 999_999_999);
        let ts = Timestamp::from_system_time(t);
        assert_eq!(ts.as_str(), "2024-02-29T23:59:59.999Z");
        assert_eq!(ts.unix_millis(), 1_709_251_199_999);
    }

    #[test]
    fn clamps_out_of_range() {
        assert_eq!(at(i64::MAX, 0), "9999-12-31T23:59:59.999Z");
        assert_eq!(at(i64::MIN, 5), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for z in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!((1..=days_in_month(y, m)).contains(&d));
        }
    }

    #[test]
    fn formatted_text_parses_back() {
        for secs in [
            MIN_UNIX_SECS,
            -86_401,
            0,
            951_868_799,
            1_709_251_199,
            MAX_UNIX_SECS,
        ] {
            let t = Timestamp::from_unix(secs, 42_000_000);
            let p = Timestamp::parse(t.as_str()).unwrap();
            assert_eq!(p, t);
            assert_eq!(
                Timestamp::from_system_time(p.to_system_time()).as_str(),
                t.as_str()
            );
        }
    }

    #[test]
    fn parses_fractions() {
        let t = Timestamp::parse("2024-05-01T12:00:00Z").unwrap();
        assert_eq!((t.unix_secs(), t.subsec_nanos()), (1_714_564_800, 0));
        let t = Timestamp::parse("2024-05-01T12:00:00.5Z").unwrap();
        assert_eq!(t.subsec_nanos(), 500_000_000);
        let t = Timestamp::parse("2024-05-01T12:00:00.123456789Z").unwrap();
        assert_eq!(t.subsec_nanos(), 123_456_789);
        assert_eq!(t.unix_millis(), 1_714_564_800_123);
        assert!(Timestamp::parse("2024-05-01T12:00:00.5Z").unwrap() > t);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01t12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567891Z",
            "2024-05-01T12:00:00ZZ",
            "2024-13-01T12:00:00Z",
            "2024-00-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2100-02-29T12:00:00Z",
            "2024-04-31T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:00:60Z",
            "+024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.-1Z",
        ] {
            let e = Timestamp::parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid timestamp"), "{bad}: {e}");
        }
        assert!(Timestamp::parse("2024-02-29T12:00:00Z").is_ok());
        assert!(Timestamp::parse("2000-02-29T12:00:00Z").is_ok());
    }

    #[test]
    fn serde_checks_on_read() {
        let t: Timestamp = serde_json::from_str("\"2024-05-01T12:00:00.000Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-05-01T12:00:00.000Z\""
        );
        let e = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(
            e.to_string().contains("invalid timestamp \"yesterday\""),
            "{e}"
        );
    }
}
