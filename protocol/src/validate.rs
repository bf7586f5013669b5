//! Validation results shared by every payload.
//!
//! `validate()` gathers every problem instead of stopping at the first, so a log line or a
//! dead-letter record tells the whole story. A [`Problem`] names the field with a JSON-ish path
//! (`objects[2].score`) and says what is wrong with the value.

use std::fmt;

use crate::time::Timestamp;
use crate::topics::IdError;

/// One thing wrong with a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field, e.g. `objects[2].score`.
    pub field: String,
    /// What is wrong, with the bad value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A payload that failed validation: its schema and every problem found (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {schema} payload: {}", join(.problems))]
pub struct Invalid {
    /// The schema the payload claims (e.g. `ioc.event/1`).
    pub schema: &'static str,
    /// Every problem found, in field order.
    pub problems: Vec<Problem>,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects problems while a payload is checked.
pub(crate) struct Checker {
    schema: &'static str,
    problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn new(schema: &'static str) -> Self {
        Checker {
            schema,
            problems: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The payload's `schema` field must be exactly the expected string.
    pub(crate) fn schema(&mut self, found: &str) {
        if found != self.schema {
            let expected = self.schema;
            self.push("schema", format!("{found:?} is not {expected:?}"));
        }
    }

    pub(crate) fn id(&mut self, field: &str, r: Result<(), IdError>) {
        if let Err(e) = r {
            self.push(field, e.to_string());
        }
    }

    /// A free-text label from config (rule, zone, line, object class): 1..=128 bytes, no control
    /// characters.
    pub(crate) fn label(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty");
        } else if value.len() > 128 {
            self.push(field, format!("{} bytes is longer than 128", value.len()));
        } else if value.chars().any(char::is_control) {
            self.push(field, format!("{value:?} contains control characters"));
        }
    }

    /// A finite number within `min..=max`.
    pub(crate) fn range(&mut self, field: &str, value: f64, min: f64, max: f64) {
        if !value.is_finite() {
            self.push(field, format!("{value} is not a finite number"));
        } else if value < min || value > max {
            self.push(field, format!("{value} is outside {min}..={max}"));
        }
    }

    /// `earlier` must not be after `later` (both optional).
    pub(crate) fn order(
        &mut self,
        earlier: (&str, Option<&Timestamp>),
        later: (&str, Option<&Timestamp>),
    ) {
        if let ((ef, Some(e)), (lf, Some(l))) = (earlier, later) {
            if e > l {
                self.push(lf, format!("{l} is before {ef} {e}"));
            }
        }
    }

    pub(crate) fn finish(self) -> Result<(), Invalid> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                schema: self.schema,
                problems: self.problems,
            })
        }
    }
}
