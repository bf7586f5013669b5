//! `ioc-collector`: the center's side of the MQTT contract (see `shared/ARCHITECTURE.md`).
//!
//! # Layout
//! - [`config`]: `collector.toml`, strict parsing and two-phase validation.
//! - [`store`]: SQLite (WAL, one writer), the only module with SQL; idempotent batched
//!   inserts, sequence gaps, content-addressed snapshots, dead letters, versioned migrations.
//! - [`writer`]: the store's single writer thread and its async handle.
//! - [`ingest`]: MQTT subscription, validation, batching, commit, then `Ack` and PUBACK.
//! - [`metrics`]: ingest counters and their Prometheus text form.
//!
//! The binary (`src/main.rs`) is glue: `run`, `check-config`, `stats`.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod hub;
pub mod incident;
pub mod ingest;
pub mod metrics;
pub mod report;
pub mod service;
pub mod store;
pub mod writer;

pub use config::{Config, ConfigError};
pub use ingest::{start, start_with_store, ConnErrorKind, ConnState, IngestError, IngestHandle};
pub use metrics::{Metrics, MetricsSnapshot};
pub use store::{Committed, Ingested, Message, Store, StoreError};
pub use writer::StoreWriter;
