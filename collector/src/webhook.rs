//! Outgoing webhooks: incident changes, chosen by change, severity and kind, POSTed as signed
//! JSON to the center's other systems (an SMS or paging gateway, a chat bot, a city platform),
//! retried with backoff.
//!
//! Each `[[webhooks]]` entry has its own queue and sender task, so a slow or dead receiver
//! delays only its own notifications, in order. A notification is retried on a network error,
//! a timeout, `429` or a `5xx` answer, up to `max_attempts`; another `4xx` is the receiver
//! refusing it and is not retried. Notifications live in memory: a collector restart loses
//! the ones still queued (the incident itself is in the store and on the console).
//!
//! With several collectors, each notifies the changes it made itself: every change goes out
//! once.
//!
//! Body: `{"schema":"ioc.webhook/1","webhook":NAME,"delivery":ID,"change":…,"incident":{…}}`
//! (the incident as `/api/incidents/{id}` gives it). Headers: `X-IOC-Delivery` (the same id on
//! every attempt, for the receiver to drop repeats) and `X-IOC-Signature:
//! t=UNIX_SECONDS,sha256=HEX`, the HMAC-SHA256 with the webhook's `secret` of `t`, a dot and
//! the body: the receiver recomputes it and rejects old `t` (replays).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ioc_base::{Backoff, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::hub::Hub;

/// `[[webhooks]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name for logs and metrics.
    pub name: String,
    /// `http://` or `https://` URL the notifications are POSTed to.
    pub url: String,
    /// The HMAC key the receiver checks signatures with (at least 16 characters).
    pub secret: Secret,
    /// Changes to send: `opened`, `escalated`, `changed` (state, assignee, notes), `updated`
    /// (another event joined). Default: opened and escalated.
    #[serde(default = "default_changes")]
    pub changes: Vec<String>,
    /// Severities to send (`critical`, `warning`, `info`); empty: all.
    #[serde(default)]
    pub severities: Vec<String>,
    /// Incident kinds to send (`intrusion`, `camera_offline`, …); empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Seconds one attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout_sec: u64,
    /// Attempts per notification before it is given up (logged and counted).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Longest wait between attempts, seconds (the wait doubles from 1 s).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_sec: u64,
    /// For `https://`: the CA certificates to trust (default: Debian's bundle,
    /// `/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_changes() -> Vec<String> {
    vec!["opened".into(), "escalated".into()]
}
fn default_timeout() -> u64 {
    10
}
fn default_attempts() -> u32 {
    8
}
fn default_max_backoff() -> u64 {
    60
}

/// Debian's CA bundle (package ca-certificates).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const CHANGES: [&str; 4] = ["opened", "updated", "changed", "escalated"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

impl WebhookConfig {
    /// Pure checks, `(key suffix, message)`; the caller prefixes `webhooks[i].`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 64 {
            out.push(("name", "must be 1-64 characters".to_owned()));
        }
        match reqwest::Url::parse(&self.url) {
            Err(e) => out.push(("url", format!("{:?}: {e}", self.url))),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => out.push((
                "url",
                format!("{:?}: must start with http:// or https://", self.url),
            )),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => out.push((
                "url",
                "holds credentials; the receiver checks the signature instead".to_owned(),
            )),
            Ok(_) => {}
        }
        if self.secret.expose().len() < 16 {
            out.push((
                "secret",
                "must be at least 16 characters (e.g. openssl rand -hex 24)".to_owned(),
            ));
        }
        for (key, list, valid) in [
            ("changes", &self.changes, &CHANGES[..]),
            ("severities", &self.severities, &SEVERITIES[..]),
            ("kinds", &self.kinds, &crate::kinds::names()[..]),
        ] {
            for v in list {
                if !valid.contains(&v.as_str()) {
                    out.push((key, format!("{v:?} is not one of {}", valid.join(", "))));
                }
            }
        }
        if self.changes.is_empty() {
            out.push(("changes", "is empty: nothing would be sent".to_owned()));
        }
        if !(1..=120).contains(&self.timeout_sec) {
            out.push((
                "timeout_sec",
                format!("{}: must be 1-120", self.timeout_sec),
            ));
        }
        if !(1..=50).contains(&self.max_attempts) {
            out.push((
                "max_attempts",
                format!("{}: must be 1-50", self.max_attempts),
            ));
        }
        if !(1..=3600).contains(&self.max_backoff_sec) {
            out.push((
                "max_backoff_sec",
                format!("{}: must be 1-3600", self.max_backoff_sec),
            ));
        }
        out
    }

    /// Whether this webhook sends `n` (never one opened during a maintenance silence).
    pub fn wants(&self, n: &Notice) -> bool {
        let field = |k: &str| n.incident.get(k).and_then(|v| v.as_str()).unwrap_or("");
        self.changes.contains(&n.change)
            && (self.severities.is_empty()
                || self.severities.iter().any(|s| s == field("severity")))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == field("kind")))
            && !n
                .incident
                .get("silenced")
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
    }
}

/// An incident change as the live stream carries it (`crate::incident::Change` in JSON).
#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    /// `opened`, `updated`, `changed` or `escalated`.
    pub change: String,
    /// The incident.
    pub incident: serde_json::Value,
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The `X-IOC-Signature` value for `body` sent at `unix_s`.
pub fn signature(secret: &str, unix_s: i64, body: &[u8]) -> String {
    let mut msg = format!("{unix_s}.").into_bytes();
    msg.extend_from_slice(body);
    format!(
        "t={unix_s},sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &msg))
    )
}

/// Counters of one webhook.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Notifications the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Notifications given up (refused, or out of attempts).
    pub failed: AtomicU64,
    /// Notifications dropped because the queue was full (the receiver is far behind).
    pub dropped: AtomicU64,
}

/// Notifications waiting per webhook before new ones are dropped.
const QUEUE: usize = 1000;

/// The running webhooks.
pub struct Webhooks {
    /// `(name, counters)` per webhook.
    pub stats: Vec<(String, Arc<WebhookStats>)>,
    /// Their tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts one dispatcher and one sender per webhook, listening to `hub` until `shutdown`.
pub fn spawn(
    configs: &[WebhookConfig],
    hub: &Hub,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Webhooks> {
    let mut out = Webhooks {
        stats: Vec::new(),
        tasks: Vec::new(),
    };
    for cfg in configs {
        let client = client(cfg)?;
        let stats = Arc::new(WebhookStats::default());
        let (tx, rx) = mpsc::channel::<Notice>(QUEUE);
        out.tasks.push(tokio::spawn(dispatch(
            cfg.clone(),
            hub.subscribe(),
            tx,
            stats.clone(),
            shutdown.clone(),
        )));
        out.tasks.push(tokio::spawn(send_all(
            cfg.clone(),
            client,
            rx,
            stats.clone(),
            shutdown.clone(),
        )));
        info!(webhook = %cfg.name, url = %redacted(&cfg.url), "webhook on");
        out.stats.push((cfg.name.clone(), stats));
    }
    Ok(out)
}

/// The URL without its query (which may carry a receiver's token), for logs.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<bad url>".to_owned(),
    }
}

fn client(cfg: &WebhookConfig) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.timeout_sec))
        .connect_timeout(Duration::from_secs(cfg.timeout_sec.min(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ioc-collector/", env!("CARGO_PKG_VERSION")));
    if cfg.url.starts_with("https:") {
        // The same loader as the broker's and PostgreSQL's TLS (ring, the given CAs only).
        let tls = ioc_base::tls::TlsConfig {
            ca_file: cfg
                .ca_file
                .clone()
                .unwrap_or_else(|| SYSTEM_CA_BUNDLE.into()),
            client_cert: None,
            client_key: None,
        };
        let rustls = ioc_base::tls::client_config(&tls)
            .with_context(|| format!("webhook {}: ca_file", cfg.name))?;
        b = b.use_preconfigured_tls(rustls);
    }
    b.build()
        .with_context(|| format!("webhook {}: HTTP client", cfg.name))
}

/// Picks this webhook's changes off the live stream into its queue.
async fn dispatch(
    cfg: WebhookConfig,
    mut live: broadcast::Receiver<crate::hub::Live>,
    tx: mpsc::Sender<Notice>,
    stats: Arc<WebhookStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            m = live.recv() => m,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match msg {
            Ok(m) if m.event == "incident" => {
                let Ok(c) = serde_json::from_str::<Notice>(&m.data) else {
                    continue;
                };
                if !cfg.wants(&c) {
                    continue;
                }
                if tx.try_send(c).is_err() {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    warn!(webhook = %cfg.name, "queue full: a notification was dropped");
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                warn!(webhook = %cfg.name, missed = n, "fell behind the live stream");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn send_all(
    cfg: WebhookConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Notice>,
    stats: Arc<WebhookStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut n: u64 = 0;
    loop {
        let c = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        n += 1;
        let delivery = format!(
            "{}-{}-{}-{n}",
            cfg.name,
            c.incident.get("id").and_then(|v| v.as_i64()).unwrap_or(0),
            crate::store::now_ms()
        );
        let body = serde_json::json!({
            "schema": "ioc.webhook/1",
            "webhook": cfg.name,
            "delivery": delivery,
            "change": c.change,
            "incident": c.incident,
        })
        .to_string();
        let mut backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(cfg.max_backoff_sec),
        );
        for attempt in 1..=cfg.max_attempts {
            let now_s = crate::store::now_ms() / 1000;
            let r = client
                .post(&cfg.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-IOC-Delivery", &delivery)
                .header(
                    "X-IOC-Signature",
                    signature(cfg.secret.expose(), now_s, body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await;
            let (retry, why) = match r {
                Ok(resp) if resp.status().is_success() => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(resp) => {
                    let s = resp.status();
                    (
                        s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS,
                        format!("HTTP {s}"),
                    )
                }
                // Without the URL: its query may carry a token.
                Err(e) => (true, e.without_url().to_string()),
            };
            if !retry || attempt == cfg.max_attempts {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                warn!(webhook = %cfg.name, %delivery, attempts = attempt, error = %why,
                      "notification given up");
                break;
            }
            stats.retried.fetch_add(1, Ordering::Relaxed);
            let wait = backoff.next_delay();
            warn!(webhook = %cfg.name, %delivery, attempt, error = %why,
                  retry_in_s = wait.as_secs_f32(), "notification failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            signature("k", 10, b"{}"),
            format!("t=10,sha256={}", hex::encode(hmac_sha256(b"k", b"10.{}")))
        );
    }

    fn cfg(text: &str) -> WebhookConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn problems_name_the_key() {
        let c = cfg(
            "name = \"pager\"\nurl = \"ftp://x\"\nsecret = \"short\"\n\
             severities = [\"urgent\"]\nkinds = [\"intruder\"]\nchanges = [\"opened\", \"closed\"]",
        );
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["url", "secret", "changes", "severities", "kinds"]);
        let c = cfg("name = \"p\"\nurl = \"https://u:pw@x/hook\"\nsecret = \"0123456789abcdef\"");
        assert_eq!(c.problems()[0].0, "url");
        assert!(c.problems()[0].1.contains("credentials"));
        let ok =
            cfg("name = \"p\"\nurl = \"https://x/hook?token=abc\"\nsecret = \"0123456789abcdef\"");
        assert!(ok.problems().is_empty());
        assert_eq!(redacted(&ok.url), "https://x/hook?redacted");
    }
}
