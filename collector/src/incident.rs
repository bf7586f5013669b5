//! Incidents: what operators work on, built from the agents' events (pure logic, no I/O).
//!
//! Events of the same agent (site), camera, kind and zone/line that arrive within
//! [`Policy::group_window_ms`] of the incident's last event join it instead of opening a new
//! one. An incident moves `open -> acknowledged -> resolved`, or to `dismissed` (a false
//! alarm) from either open state; `reopen` brings a closed one back to `open`. Every step is
//! written to the audit trail by the store ([`crate::store`]); this module only says which
//! steps are allowed and what the deadlines are.
//!
//! Escalation: an incident still `open` (nobody acknowledged it) past its severity's deadline
//! is marked overdue and re-notified, and again after each further deadline.
//! Health incidents (`agent_offline`, `camera_offline`) are opened by the collector itself
//! when an agent or camera stays down longer than its hysteresis, and resolved by the system
//! when it comes back.

use std::fmt;

use ioc_protocol::{CameraState, Severity, Timestamp};
use serde::{Deserialize, Serialize};

/// A camera state that counts as down: held longer than the hysteresis, it opens a
/// `camera_offline` incident.
pub fn camera_down(state: CameraState) -> bool {
    use CameraState::*;
    matches!(state, Reconnecting | Failed | Offline)
}

/// A camera state that ends an outage: it resolves the camera's `camera_offline` incident.
/// Stopped on purpose is not an outage; connecting is not over yet.
pub fn camera_recovered(state: CameraState) -> bool {
    use CameraState::*;
    matches!(state, Streaming | Tampered | Stopped)
}

/// A camera state in which frames arrive: time in it counts as uptime in reports.
pub fn camera_up(state: CameraState) -> bool {
    use CameraState::*;
    matches!(state, Streaming | Tampered)
}

/// The wire names of the camera states `pick` chooses (for the store's SQL).
pub fn camera_states(pick: fn(CameraState) -> bool) -> Vec<&'static str> {
    CameraState::ALL
        .into_iter()
        .filter(|s| pick(*s))
        .map(|s| s.as_str())
        .collect()
}

/// The system's name in the audit trail (health incidents, escalation); no user may take it.
pub const SYSTEM: &str = "system";

/// The kind of the incident the collector opens for an agent gone silent: the one kind that
/// no agent raises, so it is not among the protocol's event kinds.
pub const AGENT_OFFLINE: &str = "agent_offline";

/// The kind of a camera's health incident (the agent's own `camera_offline` events share it).
pub fn camera_offline() -> &'static str {
    ioc_protocol::EventKind::CameraOffline
        .known_str()
        .expect("a known kind has a wire name")
}

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// New; nobody has taken it.
    Open,
    /// An operator has taken it.
    Acknowledged,
    /// Handled.
    Resolved,
    /// A false alarm.
    Dismissed,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 4] = [
        State::Open,
        State::Acknowledged,
        State::Resolved,
        State::Dismissed,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::Resolved => "resolved",
            State::Dismissed => "dismissed",
        }
    }

    /// Parses a stored or query name.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Resolved or dismissed.
    pub fn is_closed(self) -> bool {
        matches!(self, State::Resolved | State::Dismissed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operator (or the system) does to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `open -> acknowledged`.
    Acknowledge,
    /// `open | acknowledged -> resolved`.
    Resolve,
    /// `open | acknowledged -> dismissed` (false alarm).
    Dismiss,
    /// `resolved | dismissed -> open`.
    Reopen,
    /// Sets or clears the assignee (any state but closed).
    Assign,
    /// Adds a note (any state).
    Note,
}

impl Action {
    /// The audit trail's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
            Action::Dismiss => "dismiss",
            Action::Reopen => "reopen",
            Action::Assign => "assign",
            Action::Note => "note",
        }
    }

    /// The state after this action from `from`, or why it is not allowed.
    pub fn next_state(self, from: State) -> Result<State, Transition> {
        use State::*;
        let to = match (self, from) {
            (Action::Acknowledge, Open) => Acknowledged,
            (Action::Resolve, Open | Acknowledged) => Resolved,
            (Action::Dismiss, Open | Acknowledged) => Dismissed,
            (Action::Reopen, Resolved | Dismissed) => Open,
            (Action::Assign, s) if !s.is_closed() => s,
            (Action::Note, s) => s,
            _ => return Err(Transition { action: self, from }),
        };
        Ok(to)
    }
}

/// An action that is not allowed in the incident's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an incident that is {from}", action.as_str())]
pub struct Transition {
    /// What was asked.
    pub action: Action,
    /// The incident's state.
    pub from: State,
}

/// Grouping, deadlines and hysteresis (from `[incidents]` in `collector.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Events of the same key closer than this to the incident's last event join it.
    pub group_window_ms: i64,
    /// How long a `critical` incident may stay open before it is escalated.
    pub deadline_critical_ms: i64,
    /// The same for `warning`.
    pub deadline_warning_ms: i64,
    /// The same for `info`.
    pub deadline_info_ms: i64,
    /// An agent offline longer than this becomes an `agent_offline` incident.
    pub agent_offline_after_ms: i64,
    /// A camera not streaming for longer than this becomes a `camera_offline` incident.
    pub camera_offline_after_ms: i64,
    /// A state not confirmed for longer than this is shown as unknown.
    pub stale_after_ms: i64,
    /// Bytes of a rejected message's payload that are kept.
    pub dead_letter_bytes: usize,
    /// Most rejected messages kept.
    pub dead_letters_max: i64,
    /// Most bytes of clip parts kept per agent for clips not yet whole.
    pub pending_clip_bytes_per_agent: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            group_window_ms: 5 * 60_000,
            deadline_critical_ms: 5 * 60_000,
            deadline_warning_ms: 15 * 60_000,
            deadline_info_ms: 60 * 60_000,
            agent_offline_after_ms: 60_000,
            camera_offline_after_ms: 60_000,
            stale_after_ms: 90_000,
            dead_letter_bytes: 4096,
            dead_letters_max: 10_000,
            pending_clip_bytes_per_agent: 2 * ioc_protocol::clip::MAX_CLIP_BYTES,
        }
    }
}

impl Policy {
    /// The deadline of `severity`.
    pub fn deadline_ms(&self, severity: Severity) -> i64 {
        match severity {
            Severity::Critical => self.deadline_critical_ms,
            Severity::Warning => self.deadline_warning_ms,
            Severity::Info => self.deadline_info_ms,
        }
    }

    /// How many escalations an incident open since `due_base_ms` should have had by `now_ms`.
    pub fn escalations_due(&self, severity: Severity, due_base_ms: i64, now_ms: i64) -> i64 {
        let d = self.deadline_ms(severity).max(1);
        (now_ms - due_base_ms).max(0) / d
    }
}

/// The wire and stored name of a severity.
pub fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Parses a stored severity (unknown: `info`).
pub fn parse_severity(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

/// Orders severities: info < warning < critical.
pub fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// Where an incident came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Events from an agent's rules.
    Event,
    /// The collector's own health checks (agent or camera down).
    Health,
}

/// One incident as the API and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Collector-wide id.
    pub id: i64,
    /// The agent (one agent per site).
    pub site: String,
    /// Camera id (empty for `agent_offline`).
    pub camera: String,
    /// Event kind (`intrusion`, `agent_offline`, …).
    pub kind: String,
    /// Zone or line name, empty if none.
    pub place: String,
    /// The highest severity of its events.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: State,
    /// Events or health check.
    pub source: Source,
    /// When its first event was observed.
    pub first_at: Timestamp,
    /// When its latest event was observed.
    pub last_at: Timestamp,
    /// When the collector opened it.
    pub created_at: Timestamp,
    /// Last change of any kind.
    pub updated_at: Timestamp,
    /// Agent incidents (distinct event ids) grouped in it.
    pub event_count: i64,
    /// Event id whose snapshot shows it, if any.
    pub snapshot: Option<String>,
    /// Who is on it.
    pub assignee: Option<String>,
    /// Acknowledged when and by whom.
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// Resolved or dismissed when.
    pub closed_at: Option<Timestamp>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// Past its deadline while still open.
    pub overdue: bool,
    /// How many times it was escalated.
    pub escalations: i64,
    /// Opened during a maintenance silence: not notified, not escalated.
    pub silenced: bool,
    /// The condition still holds on the agent side (no `end` yet).
    pub active: bool,
    /// The name of the agent's rule that raised it (its first event's); `None` for the
    /// collector's own health incidents.
    pub rule: Option<String>,
}

/// One line of an incident's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// The incident, or `None` for actions on other things (silences, users).
    pub incident: Option<i64>,
    /// When.
    pub at: Timestamp,
    /// Who (`system` for the collector itself).
    pub actor: String,
    /// What (`opened`, `acknowledge`, `escalated`, …).
    pub action: String,
    /// State before.
    pub from_state: Option<String>,
    /// State after.
    pub to_state: Option<String>,
    /// The operator's note, if any.
    pub note: Option<String>,
}

/// Why an incident changed, for the live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new incident.
    Opened,
    /// Another event joined it.
    Updated,
    /// Its state, assignee or notes changed.
    Changed,
    /// It went past a deadline.
    Escalated,
    /// Its snapshot or clip arrived: the console shows it; webhooks are not told (nothing
    /// about the incident itself changed).
    Evidence,
}

/// An incident after a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Why.
    pub change: ChangeKind,
    /// The incident as it is now.
    pub incident: Incident,
}

/// Unix milliseconds as a [`Timestamp`].
pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix(
        ms.div_euclid(1000),
        (ms.rem_euclid(1000) * 1_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_states_are_down_recovered_or_neither() {
        for s in CameraState::ALL {
            // No state both keeps an outage going and ends it; uptime is never an outage.
            assert!(!(camera_down(s) && camera_recovered(s)), "{s:?}");
            assert!(!camera_up(s) || camera_recovered(s), "{s:?}");
        }
        assert_eq!(
            camera_states(camera_down),
            ["reconnecting", "failed", "offline"]
        );
        assert_eq!(camera_states(camera_up), ["streaming", "tampered"]);
        // Still connecting: neither down yet nor back.
        assert!(!camera_down(CameraState::Connecting));
        assert!(!camera_recovered(CameraState::Connecting));
    }

    #[test]
    fn transitions() {
        use Action::*;
        use State::*;
        assert_eq!(Acknowledge.next_state(Open), Ok(Acknowledged));
        assert!(Acknowledge.next_state(Acknowledged).is_err());
        assert_eq!(Resolve.next_state(Open), Ok(Resolved));
        assert_eq!(Resolve.next_state(Acknowledged), Ok(Resolved));
        assert!(Resolve.next_state(Dismissed).is_err());
        assert_eq!(Dismiss.next_state(Acknowledged), Ok(Dismissed));
        assert_eq!(Reopen.next_state(Dismissed), Ok(Open));
        assert!(Reopen.next_state(Open).is_err());
        assert!(Assign.next_state(Resolved).is_err());
        assert_eq!(Note.next_state(Resolved), Ok(Resolved));
        let e = Acknowledge.next_state(Resolved).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot acknowledge an incident that is resolved"
        );
    }

    #[test]
    fn escalation_steps() {
        let p = Policy::default();
        let base = 1_000_000;
        assert_eq!(
            p.escalations_due(Severity::Critical, base, base + 299_999),
            0
        );
        assert_eq!(
            p.escalations_due(Severity::Critical, base, base + 300_000),
            1
        );
        assert_eq!(
            p.escalations_due(Severity::Critical, base, base + 600_000),
            2
        );
        assert_eq!(p.escalations_due(Severity::Info, base, base + 600_000), 0);
        assert_eq!(p.escalations_due(Severity::Info, base, base - 5), 0);
    }

    #[test]
    fn timestamps_from_millis() {
        assert_eq!(ts(1_714_564_800_123).as_str(), "2024-05-01T12:00:00.123Z");
    }
}

/// The earliest time an agent's clock may plausibly show (2020-01-01T00:00:00Z, before any
/// ioc-edge agent existed): earlier means a box that booted without a battery-backed clock
/// and has not synchronised yet (agents also check against their own build date).
pub const CLOCK_FLOOR_MS: i64 = 1_577_836_800_000;

/// How far ahead of the collector an event's time may be (transmission cannot make it
/// early: this is the two clocks' plausible disagreement).
pub const CLOCK_AHEAD_MAX_MS: i64 = 10 * 60_000;

/// An agent whose clock differs from the collector's by more than this (measured on its live
/// status) has its events timed by the collector.
pub const CLOCK_SKEW_MAX_MS: i64 = 5 * 60_000;

/// The largest step over an agent's highest seq that is believed; a larger one is rejected
/// (it would turn the gap statistics into nonsense). Ten million is more than a year of
/// events at a busy site.
pub const SEQ_JUMP_MAX: u64 = 10_000_000;

/// What the collector knows about an agent's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentClock {
    /// Agent time minus collector time on its last live status, ms.
    pub skew_ms: Option<i64>,
    /// The agent itself said its clock is not to be trusted.
    pub unsynchronised: bool,
}

/// Where a stored time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The agent's clock (the normal case).
    Agent,
    /// The collector's receive time: the agent's time was implausible or its clock is off.
    Received,
}

impl TimeSource {
    /// The stored name (`NULL` for the agent's clock).
    pub fn as_db(self) -> Option<&'static str> {
        match self {
            TimeSource::Agent => None,
            TimeSource::Received => Some("received"),
        }
    }
}

/// The time to file a message by: the agent's `observed_ms`, unless it is implausible
/// (before [`CLOCK_FLOOR_MS`], or more than [`CLOCK_AHEAD_MAX_MS`] after `received_ms`) or the
/// agent's clock is known to be off; then `received_ms`. An event is never dropped or
/// expired early because of its agent's clock.
pub fn event_time(observed_ms: i64, received_ms: i64, clock: AgentClock) -> (i64, TimeSource) {
    let implausible = observed_ms < CLOCK_FLOOR_MS
        || observed_ms > received_ms.saturating_add(CLOCK_AHEAD_MAX_MS);
    let clock_off =
        clock.unsynchronised || clock.skew_ms.is_some_and(|s| s.abs() > CLOCK_SKEW_MAX_MS);
    if implausible || clock_off {
        (received_ms, TimeSource::Received)
    } else {
        (observed_ms, TimeSource::Agent)
    }
}

/// Whether `seq` is believable after the agent's highest stored seq `max_before` (0: none
/// stored, e.g. a new collector database: the first seq sets the baseline, whatever it is).
pub fn seq_plausible(seq: u64, max_before: u64) -> bool {
    max_before == 0 || seq <= max_before.saturating_add(SEQ_JUMP_MAX)
}

/// Whether a state last confirmed at `heard_ms` is still known at `now_ms`.
pub fn is_fresh(heard_ms: Option<i64>, now_ms: i64, policy: &Policy) -> bool {
    heard_ms.is_some_and(|h| now_ms.saturating_sub(h) <= policy.stale_after_ms)
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000; // 2026-09

    #[test]
    fn implausible_or_off_clocks_give_the_receive_time() {
        let ok = AgentClock::default();
        assert_eq!(
            event_time(NOW - 5_000, NOW, ok),
            (NOW - 5_000, TimeSource::Agent)
        );
        // Queued for a day (an outage): still the agent's time.
        let day = 86_400_000;
        assert_eq!(event_time(NOW - day, NOW, ok).1, TimeSource::Agent);
        // 1970, 2100, 9999.
        for t in [0, 4_102_444_800_000, 253_402_300_799_000] {
            assert_eq!(event_time(t, NOW, ok), (NOW, TimeSource::Received), "{t}");
        }
        let skewed = AgentClock {
            skew_ms: Some(-3_600_000),
            unsynchronised: false,
        };
        assert_eq!(
            event_time(NOW - 3_600_000, NOW, skewed).1,
            TimeSource::Received
        );
        let unsync = AgentClock {
            skew_ms: Some(0),
            unsynchronised: true,
        };
        assert_eq!(event_time(NOW, NOW, unsync).1, TimeSource::Received);
    }

    #[test]
    fn seq_window_and_freshness() {
        assert!(
            seq_plausible(50_000_000, 0),
            "a first seq sets the baseline"
        );
        assert!(!seq_plausible(i64::MAX as u64, 1));
        assert!(seq_plausible(5_000_001, 5_000_000));
        assert!(!seq_plausible(5_000_000 + SEQ_JUMP_MAX + 1, 5_000_000));
        let p = Policy::default();
        assert!(is_fresh(Some(NOW - 1_000), NOW, &p));
        assert!(!is_fresh(Some(NOW - p.stale_after_ms - 1), NOW, &p));
        assert!(!is_fresh(None, NOW, &p));
    }
}
