//! `ioc-collector`: the center's side of the MQTT contract (see `shared/ARCHITECTURE.md`),
//! the incident log and the operator console.
//!
//! # Layout (in the order data flows)
//! - [`config`]: `collector.toml`, strict parsing and two-phase validation.
//! - [`ingest`]: MQTT subscription, validation, batching, commit, then `Ack` and PUBACK.
//! - [`writer`]: the store's single writer thread and its async handle.
//! - [`store`]: SQLite (WAL, one writer) or PostgreSQL (several collectors), the only module
//!   with SQL, opened with its own `StoreOptions` (it does not read the config file):
//!   idempotent batched inserts (`store::batch`, one function per message kind), sequence
//!   gaps, content-addressed snapshots, dead letters, versioned migrations; `store::db` (one
//!   connection to either engine, the SQL both accept); `store::incidents` (grouping,
//!   lifecycle, escalation, health, silences, audit), `store::auth` (users, sessions),
//!   `store::reports` (health, charts, the daily report).
//! - [`incident`]: every decision, as pure functions without I/O (states, actions,
//!   deadlines, what a camera state means, whose clock to believe), used by the store.
//! - [`hub`]: fan-out of changes to the live stream.
//! - [`api`]: axum routes, sessions and roles, server-sent events, the embedded console
//!   (`collector/web/`).
//! - [`auth`]: roles, argon2 password hashes, session tokens.
//! - [`broker`]: agents' broker credentials (mosquitto password file, `[mqtt]` section).
//! - [`kinds`]: the incident kinds with their names for people (webhooks, reports, console).
//! - [`report`]: the daily report as HTML and CSV.
//! - [`clock`]: injectable time (tests drive escalation with [`clock::ManualClock`]).
//! - [`service`]: everything above in one process, plus the periodic work.
//! - [`metrics`]: ingest counters and their Prometheus text form.
//!
//! The binary (`src/main.rs`) is glue: `run`, `check-config`, `stats`, `user`, `report`.

pub mod analytics;
pub mod api;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod hub;
pub mod incident;
pub mod ingest;
pub mod kinds;
pub mod metrics;
pub mod preview;
pub mod report;
pub mod service;
pub mod store;
pub mod webhook;
pub mod writer;

pub use config::{Config, ConfigError};
pub use ingest::{start, start_with_store, ConnState, FailureKind, IngestError, IngestHandle};
pub use metrics::{Metrics, MetricsSnapshot};
pub use store::{Committed, Ingested, Message, Store, StoreError};
pub use writer::StoreWriter;
