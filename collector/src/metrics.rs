//! Ingest counters, readable from any thread, and their Prometheus text form.
//!
//! All counters are monotonic `AtomicU64`s updated with relaxed ordering (they are for
//! people and dashboards, not for synchronisation). Dead letters are also counted per reason
//! (`malformed_json`, `unsupported_version`, ...), the label of
//! `ioc_collector_dead_letters_total`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The collector's ingest counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// MQTT messages received.
    pub received: AtomicU64,
    /// Events, counts and snapshots newly stored.
    pub ingested: AtomicU64,
    /// Events, counts and snapshots that were already stored (replays).
    pub duplicates: AtomicU64,
    /// Agent and camera status messages stored.
    pub statuses: AtomicU64,
    /// Messages rejected into the dead-letter table.
    pub dead_lettered: AtomicU64,
    /// `Ack` messages published to agents.
    pub acks_sent: AtomicU64,
    /// MQTT PUBACKs sent for committed messages.
    pub mqtt_acks: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Batch commits that failed (and were retried).
    pub commit_errors: AtomicU64,
    /// Sequence gaps opened (a new max seq that skipped numbers).
    pub seq_gaps: AtomicU64,
    /// Successful connections to the broker.
    pub connects: AtomicU64,
    /// Failed connection attempts and lost connections.
    pub connection_errors: AtomicU64,
    /// Logins refused without trying: the client or user failed too often.
    pub logins_throttled: AtomicU64,
    /// Logins refused because every password-check slot stayed busy.
    pub logins_busy: AtomicU64,
    /// Dead letters stored with their payload cut to the stored maximum.
    pub dead_letters_truncated: AtomicU64,
    /// Dead letters removed by the cap or by age.
    pub dead_letters_removed: AtomicU64,
    /// Events and counts whose agent time was implausible: stored with the receive time.
    pub clock_corrected: AtomicU64,
    /// Camera previews received and kept.
    pub previews: AtomicU64,
    /// Camera previews rejected (not valid; not stored as dead letters: nothing to replay).
    pub previews_rejected: AtomicU64,
    dead_letter_reasons: Mutex<BTreeMap<&'static str, u64>>,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`Metrics::received`].
    pub received: u64,
    /// See [`Metrics::ingested`].
    pub ingested: u64,
    /// See [`Metrics::duplicates`].
    pub duplicates: u64,
    /// See [`Metrics::statuses`].
    pub statuses: u64,
    /// See [`Metrics::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`Metrics::acks_sent`].
    pub acks_sent: u64,
    /// See [`Metrics::mqtt_acks`].
    pub mqtt_acks: u64,
    /// See [`Metrics::batches`].
    pub batches: u64,
    /// See [`Metrics::commit_errors`].
    pub commit_errors: u64,
    /// See [`Metrics::seq_gaps`].
    pub seq_gaps: u64,
    /// See [`Metrics::connects`].
    pub connects: u64,
    /// See [`Metrics::connection_errors`].
    pub connection_errors: u64,
    /// See [`Metrics::logins_throttled`].
    pub logins_throttled: u64,
    /// See [`Metrics::logins_busy`].
    pub logins_busy: u64,
    /// See [`Metrics::dead_letters_truncated`].
    pub dead_letters_truncated: u64,
    /// See [`Metrics::dead_letters_removed`].
    pub dead_letters_removed: u64,
    /// See [`Metrics::clock_corrected`].
    pub clock_corrected: u64,
    /// See [`Metrics::previews`].
    pub previews: u64,
    /// See [`Metrics::previews_rejected`].
    pub previews_rejected: u64,
    /// Dead letters per reason.
    pub dead_letter_reasons: BTreeMap<&'static str, u64>,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one dead letter with `reason`.
    pub(crate) fn dead_letter(&self, reason: &'static str) {
        add(&self.dead_lettered, 1);
        if let Ok(mut m) = self.dead_letter_reasons.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Counts a login that was not tried.
    pub(crate) fn login_refused(&self, r: crate::auth::Refused) {
        match r {
            crate::auth::Refused::Throttled(_) => add(&self.logins_throttled, 1),
            crate::auth::Refused::Busy => add(&self.logins_busy, 1),
        }
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            received: g(&self.received),
            ingested: g(&self.ingested),
            duplicates: g(&self.duplicates),
            statuses: g(&self.statuses),
            dead_lettered: g(&self.dead_lettered),
            acks_sent: g(&self.acks_sent),
            mqtt_acks: g(&self.mqtt_acks),
            batches: g(&self.batches),
            commit_errors: g(&self.commit_errors),
            seq_gaps: g(&self.seq_gaps),
            connects: g(&self.connects),
            connection_errors: g(&self.connection_errors),
            logins_throttled: g(&self.logins_throttled),
            logins_busy: g(&self.logins_busy),
            dead_letters_truncated: g(&self.dead_letters_truncated),
            dead_letters_removed: g(&self.dead_letters_removed),
            clock_corrected: g(&self.clock_corrected),
            previews: g(&self.previews),
            previews_rejected: g(&self.previews_rejected),
            dead_letter_reasons: self
                .dead_letter_reasons
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "ioc_collector_received_total",
            "MQTT messages received.",
            s.received,
        );
        counter(
            "ioc_collector_ingested_total",
            "Events, counts and snapshots newly stored.",
            s.ingested,
        );
        counter(
            "ioc_collector_duplicates_total",
            "Replayed events, counts and snapshots (already stored).",
            s.duplicates,
        );
        counter(
            "ioc_collector_statuses_total",
            "Status messages stored.",
            s.statuses,
        );
        counter(
            "ioc_collector_acks_sent_total",
            "Ack messages published to agents.",
            s.acks_sent,
        );
        counter(
            "ioc_collector_mqtt_acks_total",
            "MQTT PUBACKs sent after commit.",
            s.mqtt_acks,
        );
        counter(
            "ioc_collector_batches_total",
            "Batches committed.",
            s.batches,
        );
        counter(
            "ioc_collector_commit_errors_total",
            "Failed batch commits.",
            s.commit_errors,
        );
        counter(
            "ioc_collector_seq_gaps_total",
            "Per-agent sequence gaps opened.",
            s.seq_gaps,
        );
        counter(
            "ioc_collector_connects_total",
            "Connections to the broker.",
            s.connects,
        );
        counter(
            "ioc_collector_connection_errors_total",
            "Failed or lost broker connections.",
            s.connection_errors,
        );
        counter(
            "ioc_collector_logins_throttled_total",
            "Logins refused without trying: the client or user failed too often.",
            s.logins_throttled,
        );
        counter(
            "ioc_collector_logins_busy_total",
            "Logins refused because every password-check slot stayed busy.",
            s.logins_busy,
        );
        counter(
            "ioc_collector_dead_letters_truncated_total",
            "Dead letters stored with their payload cut to the stored maximum.",
            s.dead_letters_truncated,
        );
        counter(
            "ioc_collector_dead_letters_removed_total",
            "Dead letters removed by the cap or by age.",
            s.dead_letters_removed,
        );
        counter(
            "ioc_collector_clock_corrected_total",
            "Events and counts whose agent time was implausible: stored with the receive time.",
            s.clock_corrected,
        );
        counter(
            "ioc_collector_previews_total",
            "Camera previews received and kept (in memory).",
            s.previews,
        );
        counter(
            "ioc_collector_previews_rejected_total",
            "Camera previews that were not valid.",
            s.previews_rejected,
        );
        let _ = writeln!(
            out,
            "# HELP ioc_collector_dead_letters_total Rejected messages, by reason.\n\
             # TYPE ioc_collector_dead_letters_total counter"
        );
        for (reason, n) in &s.dead_letter_reasons {
            let _ = writeln!(
                out,
                "ioc_collector_dead_letters_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

/// A Prometheus label value (backslash, quote and newline escaped).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The gauges of `/metrics`: live incidents by kind and state (and overdue), agents and
/// cameras by the state the health page shows (`unknown` when stale), and whether this
/// collector is connected to the broker (absent when ingest does not run here).
pub fn render_gauges(
    live: &[crate::store::LiveCount],
    health: &crate::store::Health,
    broker_connected: Option<bool>,
) -> String {
    fn head(out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    }
    let mut out = String::new();
    head(
        &mut out,
        "ioc_collector_incidents",
        "Incidents open or acknowledged now, by kind and state.",
    );
    for c in live {
        let _ = writeln!(
            out,
            "ioc_collector_incidents{{kind=\"{}\",state=\"{}\"}} {}",
            label(&c.kind),
            label(&c.state),
            c.count
        );
    }
    head(
        &mut out,
        "ioc_collector_incidents_overdue",
        "Incidents open past their deadline now, by kind.",
    );
    let mut overdue: BTreeMap<&str, i64> = BTreeMap::new();
    for c in live {
        *overdue.entry(&c.kind).or_default() += c.overdue;
    }
    for (k, n) in overdue {
        let _ = writeln!(
            out,
            "ioc_collector_incidents_overdue{{kind=\"{}\"}} {n}",
            label(k)
        );
    }
    let agents: Vec<&str> = health.agents.iter().map(|a| a.state.as_str()).collect();
    let cameras: Vec<&str> = health.cameras.iter().map(|c| c.state.as_str()).collect();
    for (name, help, states) in [
        (
            "ioc_collector_agents",
            "Agents by the state shown (unknown: not confirmed recently).",
            agents,
        ),
        (
            "ioc_collector_cameras",
            "Cameras by the state shown (unknown: not confirmed recently).",
            cameras,
        ),
    ] {
        head(&mut out, name, help);
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for s in states {
            *by.entry(s).or_default() += 1;
        }
        for (s, n) in by {
            let _ = writeln!(out, "{name}{{state=\"{}\"}} {n}", label(s));
        }
    }
    if let Some(up) = broker_connected {
        head(
            &mut out,
            "ioc_collector_broker_connected",
            "Whether ingest is connected to the broker.",
        );
        let _ = writeln!(out, "ioc_collector_broker_connected {}", u8::from(up));
    }
    out
}

/// The outgoing webhooks' counters (`ioc_collector_webhook_notifications_total`).
pub fn render_webhooks(hooks: &[(String, Arc<crate::webhook::WebhookStats>)]) -> String {
    let mut out = String::new();
    if hooks.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "# HELP ioc_collector_webhook_notifications_total Webhook notifications by outcome \
         (delivered; retried attempts; failed: refused or out of attempts; dropped: queue full).\n\
         # TYPE ioc_collector_webhook_notifications_total counter"
    );
    for (name, s) in hooks {
        for (result, n) in [
            ("delivered", &s.delivered),
            ("retried", &s.retried),
            ("failed", &s.failed),
            ("dropped", &s.dropped),
        ] {
            let _ = writeln!(
                out,
                "ioc_collector_webhook_notifications_total{{webhook=\"{}\",result=\"{result}\"}} {}",
                label(name),
                n.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let m = Metrics::default();
        add(&m.ingested, 3);
        m.dead_letter("malformed_json");
        m.dead_letter("malformed_json");
        m.dead_letter("unsupported_version");
        let text = m.render_prometheus();
        assert!(
            text.contains("\nioc_collector_ingested_total 3\n"),
            "{text}"
        );
        assert!(text.contains("ioc_collector_dead_letters_total{reason=\"malformed_json\"} 2\n"));
        assert!(text.contains("# TYPE ioc_collector_batches_total counter\n"));
        assert_eq!(m.snapshot().dead_lettered, 3);
    }

    #[test]
    fn gauges() {
        let live = [
            crate::store::LiveCount {
                kind: "intrusion".into(),
                state: "open".into(),
                count: 3,
                overdue: 1,
            },
            crate::store::LiveCount {
                kind: "intrusion".into(),
                state: "acknowledged".into(),
                count: 2,
                overdue: 0,
            },
        ];
        let health = crate::store::Health {
            agents: vec![],
            cameras: vec![],
            now: String::new(),
            stale_after_s: 90,
        };
        let text = render_gauges(&live, &health, Some(false));
        assert!(text.contains("ioc_collector_incidents{kind=\"intrusion\",state=\"open\"} 3\n"));
        assert!(text.contains("ioc_collector_incidents_overdue{kind=\"intrusion\"} 1\n"));
        assert!(text.contains("ioc_collector_broker_connected 0\n"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
