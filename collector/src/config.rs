//! `collector.toml`: the collector's configuration, parsed strictly (STYLE §5).
//!
//! Unknown keys are errors, and every error names the file and the key
//! (`collector.toml: mqtt.port: invalid type ...`). Validation has two phases:
//! [`Config::validate`] is pure and gathers every problem by key; [`Config::check_environment`]
//! then looks at the files the config names (TLS certificates). `check-config` runs both.
//! Relative paths are resolved against the config file's directory.
//!
//! The MQTT password is a [`Secret`]: its `Debug` and `Display` print `***`, and it is never
//! logged. See `collector/collector.example.toml` for every key with its default.

use std::path::{Path, PathBuf};

use ioc_protocol::{TopicKind, Topics, DEFAULT_ROOT};

use crate::store::{Backend, Store, StoreError, StoreOptions};
use ioc_base::tls::TlsError;
use serde::Deserialize;

pub use ioc_base::tls::TlsConfig;
pub use ioc_base::Secret;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[mqtt]`: the broker.
    pub mqtt: MqttConfig,
    /// `[store]`: where data goes.
    pub store: StoreConfig,
    /// `[ingest]`: batching.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// `[http]`: the API and the console.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[incidents]`: grouping, deadlines, hysteresis.
    #[serde(default)]
    pub incidents: IncidentsConfig,
    /// `[retention]`: how long raw events and snapshots are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// `[reports]`: the daily report.
    #[serde(default)]
    pub reports: ReportsConfig,
    /// `[[webhooks]]`: incident notifications to other systems.
    #[serde(default)]
    pub webhooks: Vec<crate::webhook::WebhookConfig>,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default `127.0.0.1:8080`: loopback only).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How long a login lasts, in hours (default 12, a shift).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Mark the session cookie `Secure` (set when a TLS proxy fronts the console).
    #[serde(default)]
    pub secure_cookie: bool,
    /// A fixed bearer token for `GET /metrics` only, for Prometheus (which cannot log in);
    /// at least 32 characters. Without it, `/metrics` needs a session like everything else.
    #[serde(default)]
    pub metrics_token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            session_hours: default_session_hours(),
            secure_cookie: false,
            metrics_token: None,
        }
    }
}

/// `[incidents]` (see [`crate::incident`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Events of the same camera, kind and zone/line within this many seconds of an
    /// incident's last event join it (default 300).
    #[serde(default = "default_group_window")]
    pub group_window_sec: u64,
    /// Seconds a `critical` incident may stay unacknowledged before escalation (default 300).
    #[serde(default = "default_deadline_critical")]
    pub deadline_critical_sec: u64,
    /// The same for `warning` (default 900).
    #[serde(default = "default_deadline_warning")]
    pub deadline_warning_sec: u64,
    /// The same for `info` (default 3600).
    #[serde(default = "default_deadline_info")]
    pub deadline_info_sec: u64,
    /// An agent offline this long becomes an incident (default 60).
    #[serde(default = "default_offline_after")]
    pub agent_offline_after_sec: u64,
    /// A camera not streaming this long becomes an incident (default 60).
    #[serde(default = "default_offline_after")]
    pub camera_offline_after_sec: u64,
    /// How often deadlines and health are checked, in seconds (default 5).
    #[serde(default = "default_check_every")]
    pub check_every_sec: u64,
    /// An agent or camera state not confirmed for this long is shown as unknown, not as
    /// what it last said (default 90: agents repeat their status every 30 s).
    #[serde(default = "default_stale_after")]
    pub stale_after_sec: u64,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            group_window_sec: default_group_window(),
            deadline_critical_sec: default_deadline_critical(),
            deadline_warning_sec: default_deadline_warning(),
            deadline_info_sec: default_deadline_info(),
            agent_offline_after_sec: default_offline_after(),
            camera_offline_after_sec: default_offline_after(),
            check_every_sec: default_check_every(),
            stale_after_sec: default_stale_after(),
        }
    }
}

impl IncidentsConfig {
    /// The policy the store applies.
    pub fn policy(&self) -> crate::incident::Policy {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        crate::incident::Policy {
            group_window_ms: ms(self.group_window_sec),
            deadline_critical_ms: ms(self.deadline_critical_sec),
            deadline_warning_ms: ms(self.deadline_warning_sec),
            deadline_info_ms: ms(self.deadline_info_sec),
            agent_offline_after_ms: ms(self.agent_offline_after_sec),
            camera_offline_after_ms: ms(self.camera_offline_after_sec),
            stale_after_ms: ms(self.stale_after_sec),
            ..crate::incident::Policy::default()
        }
    }
}

/// `[retention]`. Incidents and their audit trail are always kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days raw events and counts are kept (default 90; 0 keeps them forever).
    #[serde(default = "default_keep_days")]
    pub events_days: u64,
    /// Days snapshot JPEGs are kept (default 30; 0 keeps them forever).
    #[serde(default = "default_snapshot_days")]
    pub snapshots_days: u64,
    /// Days rejected messages are kept (default 30; 0 keeps them until the count cap).
    #[serde(default = "default_snapshot_days")]
    pub dead_letters_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events_days: default_keep_days(),
            snapshots_days: default_snapshot_days(),
            dead_letters_days: default_snapshot_days(),
        }
    }
}

/// `[reports]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Where scheduled reports are written (`{date}.html`, `{date}.csv`); none: not written.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Local time of day (`HH:MM`) the previous day's report is written (default `06:00`).
    #[serde(default = "default_report_at")]
    pub at: String,
    /// The district's UTC offset in minutes: days and hours in reports and charts are local
    /// (default 0; Viet Nam is 420).
    #[serde(default)]
    pub utc_offset_minutes: i64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            dir: None,
            at: default_report_at(),
            utc_offset_minutes: 0,
        }
    }
}

impl ReportsConfig {
    /// `at` as minutes after local midnight.
    pub fn at_minutes(&self) -> Option<i64> {
        let (h, m) = self.at.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m) && self.at.len() == 5).then_some(h * 60 + m)
    }
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (default 1883, or 8883 with `[mqtt.tls]`).
    #[serde(default)]
    pub port: Option<u16>,
    /// Stable client id: the broker keeps this collector's session (subscriptions and
    /// unacknowledged messages) under it across restarts.
    pub client_id: String,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Topic root (default `ioc`).
    #[serde(default = "default_root")]
    pub topic_root: String,
    /// Shared-subscription group: with one, events, snapshots and counts are subscribed as
    /// `$share/{group}/...` so several collectors split the load. Status topics are always
    /// subscribed plainly (brokers send no retained messages to shared subscriptions).
    #[serde(default)]
    pub shared_group: Option<String>,
    /// MQTT keep-alive in seconds (default 30).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_sec: u64,
    /// Largest packet accepted, in bytes (default 16 MiB: snapshots are JPEGs).
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// `[mqtt.tls]`: TLS, if the broker wants it.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// A rustls client config (ring provider) trusting `tls.ca_file`, with the client
/// certificate if one is set: for `[mqtt.tls]` and `[store.postgres.tls]`.
pub fn rustls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    ioc_base::tls::client_config(tls)
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file (without `[store.postgres]`).
    #[serde(default)]
    pub path: PathBuf,
    /// Directory of content-addressed snapshot JPEGs.
    pub snapshot_dir: PathBuf,
    /// A PostgreSQL server instead of the SQLite file, for several collectors.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

impl StoreConfig {
    /// What the store opens: connection settings (password read from its file) and TLS.
    pub fn options(&self) -> Result<StoreOptions, StoreError> {
        let backend = match &self.postgres {
            Some(pg) => pg.backend()?,
            None => Backend::Sqlite {
                path: self.path.clone(),
            },
        };
        Ok(StoreOptions {
            backend,
            snapshot_dir: self.snapshot_dir.clone(),
        })
    }

    /// Opens (and migrates) the store this section names.
    pub fn open(&self) -> Result<Store, StoreError> {
        Store::open_with(&self.options()?)
    }

    /// The database, for messages: the SQLite file, or the PostgreSQL URL (no password).
    pub fn describe(&self) -> String {
        match &self.postgres {
            Some(pg) => format!("postgres {}", pg.url),
            None => self.path.display().to_string(),
        }
    }
}

/// `[store.postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Where and as whom: a URL (`postgresql://ioc@db.example:5432/ioc`) or libpq's
    /// `key=value` form, without the password.
    pub url: String,
    /// A file whose first line is the password (keeps it out of this file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password itself, when a file will not do.
    #[serde(default)]
    pub password: Option<Secret>,
    /// How long to wait for the server (default 10).
    #[serde(default = "default_pg_connect_timeout")]
    pub connect_timeout_sec: u64,
    /// TLS to the server (required when set: the server's certificate must chain to
    /// `ca_file` and name the host); without it the connection is in clear.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_pg_connect_timeout() -> u64 {
    10
}

impl PostgresConfig {
    /// The store's backend: connection settings and TLS, checked.
    pub fn backend(&self) -> Result<Backend, StoreError> {
        let client = self
            .client_config()
            .map_err(|what| StoreError::Config { what })?;
        let tls = match &self.tls {
            Some(tls) => Some(rustls_client_config(tls).map_err(|e| StoreError::Config {
                what: format!("tls: {e:#}"),
            })?),
            None => None,
        };
        Ok(Backend::Postgres { client, tls })
    }

    /// Opens (and migrates) this database with snapshots in `snapshot_dir`.
    pub fn open(&self, snapshot_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(&StoreOptions {
            backend: self.backend()?,
            snapshot_dir: snapshot_dir.to_owned(),
        })
    }

    /// The driver's connection settings, password included (read from `password_file`).
    pub fn client_config(&self) -> Result<postgres::Config, String> {
        let mut c: postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("url: cannot parse: {e}"))?;
        if c.get_password().is_some() {
            return Err("url: holds a password; put it in store.postgres.password_file".into());
        }
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("password_file {}: {e}", f.display()))?;
            c.password(text.lines().next().unwrap_or("").as_bytes());
        }
        if c.get_connect_timeout().is_none() {
            c.connect_timeout(std::time::Duration::from_secs(self.connect_timeout_sec));
        }
        if c.get_application_name().is_none() {
            c.application_name("ioc-collector");
        }
        Ok(c)
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most messages committed in one transaction (default 500).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How long a batch waits for more messages after its first, in ms (default 20).
    #[serde(default = "default_batch_wait")]
    pub batch_wait_ms: u64,
    /// Bytes of a rejected message's payload kept for people to look at (default 4096).
    #[serde(default = "default_dead_letter_bytes")]
    pub dead_letter_bytes: usize,
    /// Most rejected messages kept; the oldest go first (default 10000).
    #[serde(default = "default_dead_letters_max")]
    pub dead_letters_max: u64,
    /// Most bytes of clip parts kept per agent for clips not yet whole (default 128 MiB, two
    /// clips of the largest size): past it an agent's parts wait in its outbox.
    #[serde(default = "default_pending_clip_bytes")]
    pub pending_clip_bytes_per_agent: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_max: default_batch_max(),
            batch_wait_ms: default_batch_wait(),
            dead_letter_bytes: default_dead_letter_bytes(),
            dead_letters_max: default_dead_letters_max(),
            pending_clip_bytes_per_agent: default_pending_clip_bytes(),
        }
    }
}

fn default_pending_clip_bytes() -> u64 {
    2 * ioc_protocol::clip::MAX_CLIP_BYTES
}

fn default_root() -> String {
    DEFAULT_ROOT.to_owned()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_max_packet() -> usize {
    16 * 1024 * 1024
}
fn default_batch_max() -> usize {
    500
}
fn default_batch_wait() -> u64 {
    20
}
fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_session_hours() -> u64 {
    12
}
fn default_group_window() -> u64 {
    300
}
fn default_deadline_critical() -> u64 {
    300
}
fn default_deadline_warning() -> u64 {
    900
}
fn default_deadline_info() -> u64 {
    3600
}
fn default_offline_after() -> u64 {
    60
}
fn default_check_every() -> u64 {
    5
}
fn default_stale_after() -> u64 {
    90
}
fn default_dead_letter_bytes() -> usize {
    4096
}
fn default_dead_letters_max() -> u64 {
    10_000
}
fn default_keep_days() -> u64 {
    90
}
fn default_snapshot_days() -> u64 {
    30
}
fn default_report_at() -> String {
    "06:00".to_owned()
}

/// One problem in a config: its key (e.g. `mqtt.port`) and what is wrong; the shape every
/// config check of the workspace reports.
pub use ioc_base::Problem as ConfigProblem;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or not the shape of a collector config.
    #[error("{path}: {key}: {message} (see collector/collector.example.toml)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The key (`.` for the document).
        key: String,
        /// The parser's message.
        message: String,
    },
    /// Parsed, but values are wrong.
    #[error("{path}: {}", list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// What the store decides by: grouping, deadlines and hysteresis from `[incidents]`,
    /// dead-letter limits from `[ingest]`.
    pub fn policy(&self) -> crate::incident::Policy {
        crate::incident::Policy {
            dead_letter_bytes: self.ingest.dead_letter_bytes,
            dead_letters_max: i64::try_from(self.ingest.dead_letters_max).unwrap_or(i64::MAX),
            pending_clip_bytes_per_agent: self.ingest.pending_clip_bytes_per_agent,
            ..self.incidents.policy()
        }
    }

    /// Reads, parses and validates (pure checks only) `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_paths(base);
        config.validate(path)?;
        Ok(config)
    }

    /// Parses `text` (whose origin, for messages, is `path`) without validating.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.message().trim().to_owned();
            // "expected u16" says nothing to an installer.
            if key.ends_with("port") && message.contains("u16") {
                message.push_str(": a port is a whole number from 1 to 65535");
            }
            if let Some(span) = inner.span() {
                message.push_str(&format!(" (line {})", ioc_base::line_of(text, span.start)));
            }
            ConfigError::Parse {
                path: path.to_owned(),
                key,
                message,
            }
        })
    }

    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.store.path);
        fix(&mut self.store.snapshot_dir);
        if let Some(pg) = self.store.postgres.as_mut() {
            if let Some(f) = pg.password_file.as_mut() {
                fix(f);
            }
            if let Some(tls) = pg.tls.as_mut() {
                fix(&mut tls.ca_file);
                if let Some(p) = &mut tls.client_cert {
                    fix(p);
                }
                if let Some(p) = &mut tls.client_key {
                    fix(p);
                }
            }
        }
        if let Some(d) = &mut self.reports.dir {
            fix(d);
        }
        for w in &mut self.webhooks {
            if let Some(f) = &mut w.ca_file {
                fix(f);
            }
        }
        if let Some(tls) = &mut self.mqtt.tls {
            fix(&mut tls.ca_file);
            if let Some(p) = &mut tls.client_cert {
                fix(p);
            }
            if let Some(p) = &mut tls.client_key {
                fix(p);
            }
        }
    }

    /// What is allowed but risky, for `check-config` and the log at start-up: the console
    /// beyond loopback in plain HTTP, the broker beyond loopback without TLS.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let loopback_host = |h: &str| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        if let Ok(addr) = self.http.listen.parse::<std::net::SocketAddr>() {
            if !addr.ip().is_loopback() {
                w.push(format!(
                    "http.listen: {addr} is reachable from the network and the console speaks \
                     plain HTTP: passwords and session cookies would cross it in clear; put a \
                     TLS reverse proxy in front and listen on 127.0.0.1, and set \
                     http.secure_cookie = true"
                ));
            }
        }
        for (i, h) in self.webhooks.iter().enumerate() {
            let host = reqwest::Url::parse(&h.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned));
            if h.url.starts_with("http:") && !host.as_deref().is_some_and(loopback_host) {
                w.push(format!(
                    "webhooks[{i}].url: plain http to another machine: incidents cross the \
                     network in clear (the signature proves who sent them, it hides nothing)"
                ));
            }
        }
        if self.mqtt.tls.is_none() && !loopback_host(&self.mqtt.host) {
            w.push(format!(
                "mqtt.tls: not set, and the broker {} is not on this machine: the collector's \
                 password and every event cross the network in clear",
                self.mqtt.host
            ));
        }
        w
    }

    /// The broker port: `mqtt.port`, or 8883 with TLS, 1883 without.
    pub fn port(&self) -> u16 {
        self.mqtt
            .port
            .unwrap_or(if self.mqtt.tls.is_some() { 8883 } else { 1883 })
    }

    /// The topic names under `mqtt.topic_root`.
    pub fn topics(&self) -> Topics {
        Topics::new(&self.mqtt.topic_root).unwrap_or_default()
    }

    /// Pure checks: every problem, by key.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut push = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: key.to_owned(),
                message,
            })
        };
        let m = &self.mqtt;
        if m.host.trim().is_empty() {
            push("mqtt.host", "must not be empty".into());
        }
        if m.port == Some(0) {
            push("mqtt.port", "0 is not a port".into());
        }
        if m.client_id.is_empty() || m.client_id.len() > 128 || m.client_id.starts_with(' ') {
            push(
                "mqtt.client_id",
                format!(
                    "{:?}: must be 1-128 characters, not starting with a space",
                    m.client_id
                ),
            );
        }
        if m.password.is_some() && m.username.is_none() {
            push(
                "mqtt.password",
                "set without mqtt.username; MQTT sends a password only with a user name".into(),
            );
        }
        match Topics::new(&m.topic_root) {
            Err(e) => push("mqtt.topic_root", e.to_string()),
            Ok(t) => {
                if let Some(g) = &m.shared_group {
                    if let Err(e) = t.shared_filter(g, TopicKind::Events) {
                        push("mqtt.shared_group", e.to_string());
                    }
                }
            }
        }
        if m.keep_alive_sec < 5 || m.keep_alive_sec > 65535 {
            push(
                "mqtt.keep_alive_sec",
                format!("{}: must be 5-65535", m.keep_alive_sec),
            );
        }
        if m.max_packet_bytes < 64 * 1024 {
            push(
                "mqtt.max_packet_bytes",
                format!(
                    "{}: must be at least 65536 (snapshots are JPEGs)",
                    m.max_packet_bytes
                ),
            );
        }
        match &self.store.postgres {
            None if self.store.path.as_os_str().is_empty() => push(
                "store.path",
                "missing: the SQLite file (or a [store.postgres] section)".into(),
            ),
            None => {}
            Some(pg) => {
                if !self.store.path.as_os_str().is_empty() {
                    push(
                        "store.path",
                        "set together with [store.postgres]: keep one of them".into(),
                    );
                }
                if pg.password.is_some() && pg.password_file.is_some() {
                    push(
                        "store.postgres.password",
                        "set together with store.postgres.password_file: keep one".into(),
                    );
                }
                match pg.url.parse::<postgres::Config>() {
                    Err(e) => push("store.postgres.url", format!("cannot parse: {e}")),
                    Ok(c) if c.get_password().is_some() => push(
                        "store.postgres.url",
                        "holds a password; put it in store.postgres.password_file".into(),
                    ),
                    Ok(c) if c.get_dbname().is_none() => {
                        push("store.postgres.url", "names no database".into())
                    }
                    Ok(_) => {}
                }
                if !(1..=300).contains(&pg.connect_timeout_sec) {
                    push(
                        "store.postgres.connect_timeout_sec",
                        format!("{}: must be 1-300", pg.connect_timeout_sec),
                    );
                }
            }
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            push(
                "http.listen",
                format!(
                    "{:?}: expected address:port, e.g. 127.0.0.1:8080",
                    self.http.listen
                ),
            );
        }
        if self
            .http
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 32)
        {
            push(
                "http.metrics_token",
                "must be at least 32 characters (e.g. openssl rand -hex 24)".into(),
            );
        }
        if !(1..=24 * 30).contains(&self.http.session_hours) {
            push(
                "http.session_hours",
                format!("{}: must be 1-720", self.http.session_hours),
            );
        }
        let i = &self.incidents;
        for (key, v) in [
            ("incidents.deadline_critical_sec", i.deadline_critical_sec),
            ("incidents.deadline_warning_sec", i.deadline_warning_sec),
            ("incidents.deadline_info_sec", i.deadline_info_sec),
            ("incidents.check_every_sec", i.check_every_sec),
        ] {
            if v == 0 || v > 366 * 86_400 {
                push(key, format!("{v}: must be 1 second to a year"));
            }
        }
        if self.reports.at_minutes().is_none() {
            push(
                "reports.at",
                format!("{:?}: expected HH:MM, e.g. 06:00", self.reports.at),
            );
        }
        if self.reports.utc_offset_minutes.abs() > 14 * 60 {
            push(
                "reports.utc_offset_minutes",
                format!(
                    "{}: must be within -840..840",
                    self.reports.utc_offset_minutes
                ),
            );
        }
        let pg_tls = self.store.postgres.as_ref().and_then(|p| p.tls.as_ref());
        for (key, tls) in [("mqtt.tls", m.tls.as_ref()), ("store.postgres.tls", pg_tls)] {
            if let Some(p) = tls.and_then(TlsConfig::problem) {
                push(key, p.into());
            }
        }
        if self.ingest.batch_max == 0 || self.ingest.batch_max > 100_000 {
            push(
                "ingest.batch_max",
                format!("{}: must be 1-100000", self.ingest.batch_max),
            );
        }
        if self.ingest.batch_wait_ms > 60_000 {
            push(
                "ingest.batch_wait_ms",
                format!("{}: must be at most 60000", self.ingest.batch_wait_ms),
            );
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            for (key, message) in w.problems() {
                push(&format!("webhooks[{i}].{key}"), message);
            }
            if self.webhooks[..i].iter().any(|o| o.name == w.name) {
                push(
                    &format!("webhooks[{i}].name"),
                    format!("{:?} is used twice", w.name),
                );
            }
        }
        out
    }

    /// Pure checks; `path` names the file in the error.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Environment checks: the TLS files exist and parse. `path` names the config file.
    pub fn check_environment(&self, path: &Path) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(tls) = &self.mqtt.tls {
            if let Err(e) = rustls_client_config(tls) {
                problems.push(ConfigProblem {
                    key: "mqtt.tls".into(),
                    message: format!("{e:#}"),
                });
            }
        }
        if let Some(tls) = self.store.postgres.as_ref().and_then(|p| p.tls.as_ref()) {
            if let Err(e) = rustls_client_config(tls) {
                problems.push(ConfigProblem {
                    key: "store.postgres.tls".into(),
                    message: format!("{e:#}"),
                });
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if w.url.starts_with("https:") {
                let tls = TlsConfig {
                    ca_file: w
                        .ca_file
                        .clone()
                        .unwrap_or_else(|| crate::webhook::SYSTEM_CA_BUNDLE.into()),
                    client_cert: None,
                    client_key: None,
                };
                if let Err(e) = rustls_client_config(&tls) {
                    problems.push(ConfigProblem {
                        key: format!("webhooks[{i}].ca_file"),
                        message: format!("{e:#}"),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        [mqtt]
        host = "127.0.0.1"
        client_id = "collector-1"
        username = "c"
        password = "hunter2"
        [store]
        path = "data/ioc.db"
        snapshot_dir = "/var/lib/ioc/snapshots"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::parse(text, Path::new("/etc/ioc/collector.toml"))?;
        c.resolve_paths(Path::new("/etc/ioc"));
        c.validate(Path::new("/etc/ioc/collector.toml"))?;
        Ok(c)
    }

    #[test]
    fn webhook_problems_are_named_under_their_entry() {
        let text = format!(
            "{MIN}\n[[webhooks]]\nname = \"pager\"\nurl = \"http://10.0.0.9/hook\"\n\
             secret = \"0123456789abcdef\"\n[[webhooks]]\nname = \"pager\"\n\
             url = \"https://sms.example/hook\"\nsecret = \"x\"\nkinds = [\"intruder\"]\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        for want in [
            "webhooks[1].secret: must be at least 16 characters",
            "webhooks[1].kinds: \"intruder\" is not one of intrusion,",
            "webhooks[1].name: \"pager\" is used twice",
        ] {
            assert!(e.contains(want), "{want:?} not in {e}");
        }
        assert!(!e.contains("webhooks[0]"), "{e}");
        let ok = Config::parse(
            &format!("{MIN}\n[[webhooks]]\nname = \"p\"\nurl = \"http://10.0.0.9/h\"\nsecret = \"0123456789abcdef\"\n"),
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(ok
            .warnings()
            .iter()
            .any(|w| w.starts_with("webhooks[0].url: plain http")));
    }

    #[test]
    fn defaults_and_paths() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.port(), 1883);
        assert_eq!(c.mqtt.topic_root, "ioc");
        assert_eq!(c.mqtt.shared_group, None);
        assert_eq!(c.ingest.batch_max, 500);
        assert_eq!(c.ingest.batch_wait_ms, 20);
        assert_eq!(c.store.path, Path::new("/etc/ioc/data/ioc.db"));
        assert_eq!(c.store.snapshot_dir, Path::new("/var/lib/ioc/snapshots"));
        assert_eq!(c.mqtt.password.as_ref().unwrap().expose(), "hunter2");
    }

    #[test]
    fn password_is_redacted() {
        let c = parse(MIN).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let text = MIN.replace("client_id", "clientid = \"x\"\nclient_id");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("/etc/ioc/collector.toml: mqtt"), "{e}");
        assert!(e.contains("clientid"), "{e}");
        let text = MIN.replace("host = \"127.0.0.1\"", "host = \"h\"\nport = \"x\"");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("mqtt.port"), "{e}");
        // The line of the bad value, and what a port is.
        let text = MIN.replace("host = \"127.0.0.1\"", "host = \"h\"\nport = 70000");
        let line = text.lines().position(|l| l == "port = 70000").unwrap() + 1;
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(&format!("(line {line})")) && e.contains("from 1 to 65535"),
            "{e}"
        );
    }

    #[test]
    fn problems_are_gathered_by_key() {
        let text = format!("{MIN}\n[ingest]\nbatch_max = 0\n")
            .replace("\"ioc\"", "x")
            .replace(
                "username = \"c\"",
                "topic_root = \"a//b\"\nshared_group = \"a/b\"",
            );
        let ConfigError::Invalid { problems, .. } = parse(&text).unwrap_err() else {
            panic!("expected Invalid");
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["mqtt.password", "mqtt.topic_root", "ingest.batch_max"]
        );
        let text = MIN.replace(
            "username = \"c\"",
            "username = \"c\"\nshared_group = \"a/b\"",
        );
        let ConfigError::Invalid { problems, .. } = parse(&text).unwrap_err() else {
            panic!("expected Invalid");
        };
        assert_eq!(problems[0].key, "mqtt.shared_group");
    }

    #[test]
    fn console_incident_and_report_keys_are_checked() {
        let text = format!(
            "{MIN}\n[http]\nlisten = \"localhost\"\nmetrics_token = \"short\"\n\
             [incidents]\ndeadline_critical_sec = 0\n\
             [reports]\nat = \"25:00\"\nutc_offset_minutes = 9000\n"
        );
        let ConfigError::Invalid { problems, .. } = parse(&text).unwrap_err() else {
            panic!("expected Invalid");
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.listen",
                "http.metrics_token",
                "incidents.deadline_critical_sec",
                "reports.at",
                "reports.utc_offset_minutes"
            ]
        );
        let e = parse(&format!("{MIN}\n[incidents]\ngroup_window = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incidents") && e.contains("group_window"), "{e}");
        let c = parse(MIN).unwrap();
        assert_eq!(
            c.http.listen, "127.0.0.1:8080",
            "loopback unless configured"
        );
        assert_eq!(c.incidents.policy().deadline_critical_ms, 300_000);
        assert_eq!(c.reports.at_minutes(), Some(360));
    }

    #[test]
    fn postgres_section() {
        let pg = |extra: &str| {
            MIN.replace("path = \"data/ioc.db\"\n", "")
                + "[store.postgres]\nurl = \"postgresql://ioc@db:5432/ioc\"\n"
                + extra
        };
        let c = parse(&pg("password_file = \"pg-password\"\n")).unwrap();
        let p = c.store.postgres.as_ref().unwrap();
        assert_eq!(
            p.password_file.as_deref(),
            Some(Path::new("/etc/ioc/pg-password"))
        );
        assert_eq!(p.connect_timeout_sec, 10);
        assert_eq!(c.store.describe(), "postgres postgresql://ioc@db:5432/ioc");
        let c = parse(&pg("password = \"s3cret-pg\"\n")).unwrap();
        assert!(!format!("{c:?}").contains("s3cret-pg"));
        let pgc = c.store.postgres.unwrap().client_config().unwrap();
        assert_eq!(pgc.get_password(), Some(&b"s3cret-pg"[..]));
        assert_eq!(pgc.get_dbname(), Some("ioc"));

        let problems = |text: &str| match parse(text).unwrap_err() {
            ConfigError::Invalid { problems, .. } => problems
                .into_iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect::<Vec<_>>(),
            e => panic!("expected Invalid, got {e}"),
        };
        let p = problems(
            &(MIN.to_owned()
                + "[store.postgres]\nurl = \"postgresql://ioc:hunter3@db/ioc\"\n\
                   password = \"x\"\npassword_file = \"f\"\nconnect_timeout_sec = 0\n"),
        );
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("store.path: set together with [store.postgres]"));
        assert!(p[1].starts_with("store.postgres.password: "));
        assert!(p[2].starts_with("store.postgres.url: holds a password"));
        assert!(!p.iter().any(|m| m.contains("hunter3")), "no secret echoed");
        assert!(p[3].starts_with("store.postgres.connect_timeout_sec"));
        let p = problems(&pg("").replace("@db:5432/ioc", "@db:5432"));
        assert_eq!(p, ["store.postgres.url: names no database"]);
        let p = problems(&MIN.replace("path = \"data/ioc.db\"\n", ""));
        assert!(p[0].starts_with("store.path: missing"), "{p:?}");
        let e = parse(&pg("pasword_file = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("store.postgres") && e.contains("pasword_file"),
            "{e}"
        );
    }

    #[test]
    fn tls_section() {
        let text = format!("{MIN}\n[mqtt.tls]\nca_file = \"ca.pem\"\nclient_cert = \"c.pem\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("mqtt.tls: client_cert and client_key go together"),
            "{e}"
        );
        let text = format!("{MIN}\n[mqtt.tls]\nca_file = \"ca.pem\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.port(), 8883);
        assert_eq!(
            c.mqtt.tls.as_ref().unwrap().ca_file,
            Path::new("/etc/ioc/ca.pem")
        );
        let e = c
            .check_environment(Path::new("/etc/ioc/collector.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mqtt.tls") && e.contains("/etc/ioc/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("collector.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.mqtt.shared_group.as_deref(), Some("collectors"));
    }

    #[test]
    fn risky_but_allowed_settings_are_warnings() {
        let base = "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"c\"\n\
                    [store]\npath = \"x.db\"\nsnapshot_dir = \"s\"\n";
        let c = Config::parse(base, Path::new("t.toml")).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let c = Config::parse(
            &format!(
                "{}[http]\nlisten = \"0.0.0.0:8080\"\n",
                base.replace("127.0.0.1", "broker.example")
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("http.listen: 0.0.0.0:8080 is reachable from the network"));
        assert!(w[1].starts_with("mqtt.tls: not set, and the broker broker.example"));
    }
}
