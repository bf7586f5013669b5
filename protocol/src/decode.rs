//! Decoding and encoding payloads, and the errors a reader branches on.
//!
//! [`parse`] (and the `parse_*` shorthands) decode in three steps, each with its own error so a
//! collector can count, log or dead-letter by kind:
//! 1. the bytes must be JSON: [`ProtocolError::MalformedJson`];
//! 2. the `schema` field must be present and be this type's, same version:
//!    [`ProtocolError::MissingSchema`], [`ProtocolError::UnsupportedVersion`] (e.g.
//!    `ioc.event/2` from a newer agent: keep it for a newer collector) or
//!    [`ProtocolError::WrongSchema`] (another payload type: wrong topic);
//! 3. the document must have this type's shape ([`ProtocolError::BadShape`]) and pass its
//!    `validate()` ([`ProtocolError::Invalid`]).
//!
//! Nothing here panics on input. [`encode`] validates before serialising, so an agent cannot
//! publish what collectors will reject.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::validate::Invalid;
use crate::{Ack, AgentStatus, CameraStatus, Counts, Event};

/// A JSON payload of the contract.
pub trait Payload: Serialize + DeserializeOwned {
    /// Its `schema` value, e.g. `ioc.event/1`.
    const SCHEMA: &'static str;

    /// Checks what serde does not (see each type's `validate`).
    fn validate(&self) -> Result<(), Invalid>;
}

macro_rules! payload {
    ($t:ty, $schema:expr) => {
        impl Payload for $t {
            const SCHEMA: &'static str = $schema;
            fn validate(&self) -> Result<(), Invalid> {
                <$t>::validate(self)
            }
        }
    };
}
payload!(Event, crate::EVENT_SCHEMA);
payload!(AgentStatus, crate::AGENT_STATUS_SCHEMA);
payload!(CameraStatus, crate::CAMERA_STATUS_SCHEMA);
payload!(Counts, crate::COUNTS_SCHEMA);
payload!(Ack, crate::ACK_SCHEMA);
payload!(crate::ClipPart, crate::CLIP_PART_SCHEMA);
payload!(crate::Preview, crate::PREVIEW_SCHEMA);
payload!(crate::PreviewRequest, crate::PREVIEW_REQUEST_SCHEMA);
payload!(crate::AnalyticsPush, crate::ANALYTICS_SCHEMA);
payload!(crate::AnalyticsState, crate::ANALYTICS_STATE_SCHEMA);

/// Why a payload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON at all (syntax error, truncated, not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    /// A JSON object without a string `schema` field.
    #[error("payload has no \"schema\" field (expected {expected:?})")]
    MissingSchema {
        /// The schema this reader expected.
        expected: &'static str,
    },
    /// The right payload type in a version this reader does not understand.
    #[error("unsupported schema version {found:?}: this reader understands {expected:?}")]
    UnsupportedVersion {
        /// The schema this reader understands.
        expected: &'static str,
        /// The schema in the payload (truncated to 64 characters).
        found: String,
    },
    /// Another payload type altogether (e.g. counts on the events topic).
    #[error("schema {found:?} is not {expected:?} (wrong topic?)")]
    WrongSchema {
        /// The schema this reader expected.
        expected: &'static str,
        /// The schema in the payload (truncated to 64 characters).
        found: String,
    },
    /// Valid JSON with the right schema string but not the right shape (missing field, wrong
    /// type, unknown phase, bad timestamp).
    #[error("{schema} payload does not match the schema: {source}")]
    BadShape {
        /// The schema.
        schema: &'static str,
        /// serde's description, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// Decoded, but `validate()` found problems.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The payload names another agent than the topic it came on.
    #[error("payload agent {payload:?} differs from topic agent {topic:?}")]
    AgentMismatch {
        /// The agent id in the topic.
        topic: String,
        /// The agent id in the payload.
        payload: String,
    },
    /// Serialising failed (not expected for these types).
    #[error("cannot encode {schema} payload: {source}")]
    Encode {
        /// The schema.
        schema: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Just the `schema` field; everything else is skipped.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
}

/// `ioc.event/1` -> `ioc.event`.
fn family(schema: &str) -> &str {
    schema.rsplit_once('/').map_or(schema, |(f, _)| f)
}

/// Decodes and validates a `T` (see the module docs for the error order).
pub fn parse<T: Payload>(payload: &[u8]) -> Result<T, ProtocolError> {
    let shape = |source| ProtocolError::BadShape {
        schema: T::SCHEMA,
        source,
    };
    let probe: Probe<'_> = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            shape(e)
        } else {
            ProtocolError::MalformedJson(e)
        }
    })?;
    match probe.schema.as_deref() {
        None => {
            return Err(ProtocolError::MissingSchema {
                expected: T::SCHEMA,
            })
        }
        Some(s) if s == T::SCHEMA => {}
        Some(s) => {
            let found: String = s.chars().take(64).collect();
            return Err(if family(s) == family(T::SCHEMA) {
                ProtocolError::UnsupportedVersion {
                    expected: T::SCHEMA,
                    found,
                }
            } else {
                ProtocolError::WrongSchema {
                    expected: T::SCHEMA,
                    found,
                }
            });
        }
    }
    let value: T = serde_json::from_slice(payload).map_err(shape)?;
    value.validate()?;
    Ok(value)
}

/// Validates `value` and serialises it to compact JSON.
pub fn encode<T: Payload>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    value.validate()?;
    serde_json::to_vec(value).map_err(|source| ProtocolError::Encode {
        schema: T::SCHEMA,
        source,
    })
}

/// Decodes an [`Event`].
pub fn parse_event(payload: &[u8]) -> Result<Event, ProtocolError> {
    parse(payload)
}

/// Decodes an [`Event`] received on agent `agent`'s topic and checks that it names that agent.
pub fn parse_event_for(agent: &str, payload: &[u8]) -> Result<Event, ProtocolError> {
    let e: Event = parse(payload)?;
    same_agent(agent, &e.agent)?;
    Ok(e)
}

/// Decodes an [`AgentStatus`].
pub fn parse_agent_status(payload: &[u8]) -> Result<AgentStatus, ProtocolError> {
    parse(payload)
}

/// Decodes a [`CameraStatus`].
pub fn parse_camera_status(payload: &[u8]) -> Result<CameraStatus, ProtocolError> {
    parse(payload)
}

/// Decodes [`Counts`].
pub fn parse_counts(payload: &[u8]) -> Result<Counts, ProtocolError> {
    parse(payload)
}

/// Decodes [`Counts`] received on agent `agent`'s topic and checks that they name that agent.
pub fn parse_counts_for(agent: &str, payload: &[u8]) -> Result<Counts, ProtocolError> {
    let c: Counts = parse(payload)?;
    same_agent(agent, &c.agent)?;
    Ok(c)
}

/// Decodes an [`Ack`].
pub fn parse_ack(payload: &[u8]) -> Result<Ack, ProtocolError> {
    parse(payload)
}

fn same_agent(topic: &str, payload: &str) -> Result<(), ProtocolError> {
    if topic == payload {
        Ok(())
    } else {
        Err(ProtocolError::AgentMismatch {
            topic: topic.to_owned(),
            payload: payload.to_owned(),
        })
    }
}
