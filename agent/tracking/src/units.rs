//! Speeds and distances in config: either normalised image units or metric (calibrated cameras).
//!
//! A bare number is in normalised image units (image widths/heights, per second for speeds).
//! A string carries its unit: `"1.5 m/s"`, `"5 km/h"`, `"0.02 /s"` (normalised per second);
//! `"3 m"`, `"0.1"` (normalised) for distances. Metric values need a calibrated camera; the rule
//! config's `validate` says so otherwise.

use serde::{Deserialize, Serialize};

/// The unit a speed is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpeedUnit {
    /// Normalised image units per second.
    #[serde(rename = "norm/s")]
    NormPerSec,
    /// Metres per second on the calibrated ground plane.
    #[serde(rename = "m/s")]
    MetresPerSec,
}

/// A speed threshold; metric values are stored in m/s whatever unit they were written in.
/// Written back as config writes it (a number, or `"… m/s"`), so a config read and written
/// again reads the same (the center edits what an agent runs that way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    /// The value in `unit`.
    pub value: f64,
    /// Its unit.
    pub unit: SpeedUnit,
}

impl Speed {
    /// A speed in normalised units per second.
    pub const fn norm(value: f64) -> Speed {
        Speed {
            value,
            unit: SpeedUnit::NormPerSec,
        }
    }

    /// A speed in metres per second.
    pub const fn mps(value: f64) -> Speed {
        Speed {
            value,
            unit: SpeedUnit::MetresPerSec,
        }
    }

    /// Parses `"1.5 m/s"`, `"5 km/h"`, `"0.02/s"`, `"0.02 norm/s"` or a bare number (normalised).
    pub fn parse(s: &str) -> Result<Speed, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("speed {s:?}: expected a number and a unit like \"5 km/h\""))?;
        let sp = match unit.trim() {
            "" | "/s" | "norm/s" => Speed::norm(value),
            "m/s" => Speed::mps(value),
            "km/h" | "kph" => Speed::mps(value / 3.6),
            u => {
                return Err(format!(
                    "speed {s:?}: unknown unit {u:?} (use m/s, km/h or norm/s)"
                ))
            }
        };
        if !sp.value.is_finite() || sp.value < 0.0 {
            return Err(format!("speed {s:?} must be a non-negative number"));
        }
        Ok(sp)
    }
}

impl Serialize for Speed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.unit {
            SpeedUnit::NormPerSec => s.serialize_f64(self.value),
            SpeedUnit::MetresPerSec => s.serialize_str(&format!("{} m/s", self.value)),
        }
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(v) if v.is_finite() && v >= 0.0 => Ok(Speed::norm(v)),
            NumOrStr::Num(v) => Err(serde::de::Error::custom(format!(
                "speed {v} must be a non-negative number"
            ))),
            NumOrStr::Str(s) => Speed::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The unit a distance is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Normalised image units.
    Norm,
    /// Metres on the calibrated ground plane.
    Metres,
}

/// A distance threshold, written back as config writes it (a number, or `"… m"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distance {
    /// The value in `unit`.
    pub value: f64,
    /// Its unit.
    pub unit: LengthUnit,
}

impl Distance {
    /// Parses `"3 m"`, `"0.1"` or `"0.1 norm"`.
    pub fn parse(s: &str) -> Result<Distance, String> {
        let s = s.trim();
        let (num, unit) = match s.strip_suffix('m') {
            Some(n) => (n, LengthUnit::Metres),
            None => (s.strip_suffix("norm").unwrap_or(s), LengthUnit::Norm),
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("distance {s:?}: expected a number, optionally with \"m\""))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("distance {s:?} must be a non-negative number"));
        }
        Ok(Distance { value, unit })
    }
}

impl Serialize for Distance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.unit {
            LengthUnit::Norm => s.serialize_f64(self.value),
            LengthUnit::Metres => s.serialize_str(&format!("{} m", self.value)),
        }
    }
}

impl<'de> Deserialize<'de> for Distance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(v) if v.is_finite() && v >= 0.0 => Ok(Distance {
                value: v,
                unit: LengthUnit::Norm,
            }),
            NumOrStr::Num(v) => Err(serde::de::Error::custom(format!(
                "distance {v} must be a non-negative number"
            ))),
            NumOrStr::Str(s) => Distance::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(f64),
    Str(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_speeds_and_distances() {
        assert_eq!(Speed::parse("0.02").unwrap(), Speed::norm(0.02));
        assert_eq!(Speed::parse("0.02 /s").unwrap(), Speed::norm(0.02));
        assert_eq!(Speed::parse("1.5 m/s").unwrap(), Speed::mps(1.5));
        assert!((Speed::parse("36 km/h").unwrap().value - 10.0).abs() < 1e-12);
        assert!(Speed::parse("5 mph").unwrap_err().contains("unknown unit"));
        assert!(Speed::parse("fast").is_err());
        assert!(Speed::parse("-1 m/s").is_err());
        assert_eq!(Distance::parse("3 m").unwrap().unit, LengthUnit::Metres);
        assert_eq!(Distance::parse("0.1").unwrap().unit, LengthUnit::Norm);
        assert!(Distance::parse("x m").is_err());
    }
}
