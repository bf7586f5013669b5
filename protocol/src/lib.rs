//! `ioc-protocol`: the wire contract between `ioc-agent` and `ioc-collector` (v1).
//!
//! This crate owns everything both sides must agree on and nothing else: MQTT topic names,
//! the JSON payloads published on them, their schema versions, validation and decoding.
//! It does no I/O and depends on no async runtime; the agent and the collector bring their own
//! MQTT client and clock.
//!
//! # Layout
//! - [`topics`]: topic names under a configurable root (default `ioc`), subscription filters
//!   (plain and `$share/...`), a parser for received topics, id validation.
//! - [`event`]: the event payload `ioc.event/1` ([`Event`]).
//! - [`status`]: retained agent and camera status payloads ([`AgentStatus`], [`CameraStatus`]).
//! - [`counts`]: per-line, per-class counts per interval ([`Counts`]).
//! - [`ack`]: the collector's commit acknowledgement ([`Ack`]), compact seq ranges.
//! - [`time`]: RFC 3339 UTC timestamps ([`Timestamp`]) without a date-time dependency.
//! - [`decode`]: [`parse_event`] and friends, [`encode`], and [`ProtocolError`].
//! - [`validate`]: the problem list returned by every payload's `validate()`.
//! - [`schema`]: JSON Schemas generated from these types (committed under `protocol/schema/`).
//!
//! # Compatibility rules
//! - Every payload carries a `schema` string (`ioc.event/1`, ...) and the topic carries `v1`.
//!   A breaking change bumps both; readers reject other versions with
//!   [`ProtocolError::UnsupportedVersion`] so a collector can dead-letter them.
//! - Additive changes (new optional fields, new event kinds) do not bump the version: readers
//!   ignore unknown fields (no wire type uses `deny_unknown_fields`) and unknown event kinds
//!   decode to [`EventKind::Other`].
//! - Writers call `validate()` (or [`encode`], which does) before publishing; readers use the
//!   `parse_*` functions, which validate after decoding.
//!
//! # Example
//! ```
//! use ioc_protocol::{parse_event_for, Topic, Topics};
//!
//! let topics = Topics::default();
//! let topic = topics.parse("ioc/v1/agents/site-1/events").unwrap();
//! assert_eq!(topic, Topic::Events { agent: "site-1".into() });
//!
//! let payload = br#"{"schema":"ioc.event/1","id":"site-1-7","seq":7,"phase":"instant",
//!   "agent":"site-1","camera":"gate","kind":"line_crossing","severity":"info",
//!   "rule":"count-in","observed_at":"2024-05-01T12:00:00.000Z"}"#;
//! let event = parse_event_for(topic.agent(), payload).unwrap();
//! assert_eq!(event.seq, 7);
//! ```

#![deny(missing_docs)]

#[macro_use]
mod macros;

pub mod ack;
pub mod analytics;
pub mod clip;
pub mod counts;
pub mod decode;
pub mod event;
pub mod preview;
pub mod schema;
pub mod status;
pub mod time;
pub mod topics;
pub mod validate;

pub use ack::{compact_seqs, Ack, ClipPartAck, SeqRange, ACK_SCHEMA};
pub use analytics::{
    AnalyticsProblem, AnalyticsPush, AnalyticsState, RefusedVersion, ANALYTICS_SCHEMA,
    ANALYTICS_STATE_SCHEMA,
};
pub use clip::{decode_clip_part, encode_clip_part, split_clip, ClipPart, CLIP_PART_SCHEMA};
pub use counts::{ClassCount, CountDirection, Counts, COUNTS_SCHEMA};
pub use decode::{
    encode, parse, parse_ack, parse_agent_status, parse_camera_status, parse_counts,
    parse_counts_for, parse_event, parse_event_for, Payload, ProtocolError,
};
pub use event::{
    incident_id, Event, EventDetails, EventKind, EventObject, Phase, Severity, SnapshotRef, Speed,
    SpeedUnit, EVENT_SCHEMA,
};
pub use preview::{
    decode_preview, encode_preview, Preview, PreviewObject, PreviewRequest, PREVIEW_REQUEST_SCHEMA,
    PREVIEW_SCHEMA,
};
pub use status::{
    AgentState, AgentStatus, CameraState, CameraStatus, ClockState, AGENT_STATUS_SCHEMA,
    CAMERA_STATUS_SCHEMA,
};
pub use time::{Timestamp, TimestampError};
pub use topics::{
    validate_agent_id, validate_camera_id, validate_event_id, AgentTopics, IdError, IdKind, Topic,
    TopicError, TopicKind, Topics, DEFAULT_ROOT,
};
pub use validate::{Invalid, Problem};
