//! `ioc-outbox`: the agent's durable outbox and its MQTT publisher.
//!
//! Nothing the agent reports is lost until the collector says it committed it:
//! - [`store`] ([`Outbox`]): a size-bounded SQLite queue; every event, counts message and
//!   snapshot is written there (fsynced) before it is published, with a per-agent sequence
//!   number that is never reused. It states the delivery guarantee.
//! - [`publisher`] ([`Publisher`]): publishes the outbox over MQTT (rumqttc, QoS 1, persistent
//!   session, Last Will, TLS), re-sends what the collector has not acknowledged (after
//!   `ack_timeout_sec` and after every reconnect), and deletes entries on the collector's
//!   [`Ack`](ioc_protocol::Ack).
//!
//! The `ioc-outbox-loadgen` binary drives both for end-to-end tests.

pub mod clock;
pub mod publisher;
pub mod store;

pub use publisher::{
    FailureKind, MqttConfig, Publisher, PublisherError, PublisherHandle, PublisherStats, TlsConfig,
};
pub use store::{
    AckOutcome, Dropped, Entry, EntryKind, Outbox, OutboxConfig, OutboxError, SentInfo,
};
