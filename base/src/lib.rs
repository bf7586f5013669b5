//! `ioc-base`: what the agent and the collector share below the protocol, so the two sides
//! say the same thing the same way.
//!
//! - [`problem`]: [`Problem`], one config problem (key and message), as every config check
//!   reports it.
//! - [`secret`]: [`Secret`], a password that never shows in logs or `Debug` output.
//! - [`backoff`]: [`Backoff`], capped exponential reconnect delays with jitter (cameras,
//!   brokers).
//! - [`tls`] (feature `tls`): the `[…tls]` table of PEM files and the rustls client config
//!   it makes (MQTT, PostgreSQL).
//! - [`mqtt`] (feature `mqtt`): what a broker connection failure was, for people, with one
//!   stable `error_code` per kind on both sides.
//! - [`logs`] (feature `logs`): text or JSON logs (`IOC_LOG_FORMAT`), no colour off a
//!   terminal.
//! - [`systemd`]: `READY=1` and watchdog pings for `Type=notify` units.
//! - [`signal`] (feature `signals`): SIGINT/SIGTERM, the one way both binaries are stopped.
//!
//! The crate sits just above the standard library and the protocol's peers: nothing here
//! knows about cameras, incidents or the store.

pub mod backoff;
pub mod problem;
pub mod secret;

#[cfg(feature = "logs")]
pub mod logs;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "signals")]
pub mod signal;
pub mod systemd;
#[cfg(feature = "tls")]
pub mod tls;

pub use backoff::Backoff;
pub use problem::{line_of, Problem};
pub use secret::Secret;
