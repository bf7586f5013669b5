//! The incident kinds the center knows, with their names for people: the one table that
//! webhooks, reports and the console (through `GET /api/kinds`) read.
//!
//! Wire names come from the protocol's [`EventKind`] (plus the collector's own
//! [`AGENT_OFFLINE`]); what a rule of each kind needs comes from `ioc-tracking`'s
//! [`RuleKind::keys`]. Only the labels are written here, in an exhaustive match, so a kind
//! added to the protocol does not compile until it has them.

use ioc_protocol::EventKind;
use ioc_tracking::{Need, RuleKind};
use serde::Serialize;

use crate::incident::AGENT_OFFLINE;

/// One kind, as the console and the reports name it.
#[derive(Debug, Clone, Serialize)]
pub struct Kind {
    /// The wire name (`intrusion`, `agent_offline`, …).
    pub kind: &'static str,
    /// Vietnamese name.
    pub vi: &'static str,
    /// English name.
    pub en: &'static str,
    /// What a rule of this kind needs and may take; `None` for kinds no rule raises
    /// (`agent_offline`).
    pub rule: Option<RuleNeeds>,
}

/// What a rule needs, by config key.
#[derive(Debug, Clone, Serialize)]
pub struct RuleNeeds {
    /// Whether it is about detected objects (takes `classes`).
    pub objects: bool,
    /// Keys beyond `name`, `kind`, `severity`, `classes`: required or optional.
    pub keys: std::collections::BTreeMap<&'static str, Need>,
}

/// Vietnamese and English names of an event kind (`None` for one this build does not know).
fn labels(kind: &EventKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        EventKind::Intrusion => ("Xâm nhập", "Intrusion"),
        EventKind::LineCrossing => ("Đi qua vạch đếm", "Line crossing"),
        EventKind::Loitering => ("Lảng vảng", "Loitering"),
        EventKind::Crowd => ("Tụ tập đông người", "Crowd"),
        EventKind::StoppedVehicle => ("Dừng/đỗ sai quy định", "Stopped vehicle"),
        EventKind::WrongWay => ("Đi ngược chiều", "Wrong way"),
        EventKind::Congestion => ("Ùn tắc", "Congestion"),
        EventKind::CameraTamper => ("Camera bị che/phá", "Camera tamper"),
        EventKind::CameraOffline => ("Camera mất tín hiệu", "Camera offline"),
        EventKind::Other(_) => return None,
    })
}

/// Every kind, the protocol's in their order, then the collector's own.
pub fn catalogue() -> Vec<Kind> {
    let mut out: Vec<Kind> = EventKind::KNOWN
        .iter()
        .filter_map(|k| {
            let (vi, en) = labels(k)?;
            let rule = RuleKind::ALL
                .iter()
                .find(|r| r.event_kind() == *k)
                .map(|r| RuleNeeds {
                    objects: r.uses_objects(),
                    keys: r.keys().collect(),
                });
            Some(Kind {
                kind: k.known_str()?,
                vi,
                en,
                rule,
            })
        })
        .collect();
    out.push(Kind {
        kind: AGENT_OFFLINE,
        vi: "Trạm mất kết nối",
        en: "Agent offline",
        rule: None,
    });
    out
}

/// Whether `kind` is one the center knows.
pub fn is_known(kind: &str) -> bool {
    kind == AGENT_OFFLINE || EventKind::from(kind).is_known()
}

/// Every known wire name.
pub fn names() -> Vec<&'static str> {
    catalogue().into_iter().map(|k| k.kind).collect()
}

/// A kind's name for people, "Vietnamese / English"; an unknown kind as it came.
pub fn label(kind: &str) -> String {
    let found = if kind == AGENT_OFFLINE {
        Some(("Trạm mất kết nối", "Agent offline"))
    } else {
        labels(&EventKind::from(kind))
    };
    match found {
        Some((vi, en)) => format!("{vi} / {en}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue covers every kind of the protocol and every rule, each named in both
    /// languages, no name twice.
    #[test]
    fn every_kind_has_labels_and_every_rule_kind_a_row() {
        let all = catalogue();
        for k in EventKind::KNOWN {
            assert!(
                all.iter().any(|c| c.kind == k.as_str()),
                "{k} has no labels in kinds.rs"
            );
        }
        for r in RuleKind::ALL {
            let row = all.iter().find(|c| c.kind == r.as_str());
            assert!(
                row.is_some_and(|c| c.rule.is_some()),
                "rule kind {r:?} has no row"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for c in &all {
            assert!(
                !c.vi.trim().is_empty() && !c.en.trim().is_empty(),
                "{}",
                c.kind
            );
            assert_ne!(c.vi, c.en, "{}: Vietnamese name missing", c.kind);
            for name in [c.kind, c.vi, c.en] {
                assert!(seen.insert(name), "{name:?} names two kinds");
            }
            assert!(is_known(c.kind));
            assert_eq!(label(c.kind), format!("{} / {}", c.vi, c.en));
        }
        assert!(!is_known("intrusions"));
        assert_eq!(label("<x>"), "<x>");
        // What the console builds its rule form from.
        let loitering = all.iter().find(|c| c.kind == "loitering").unwrap();
        let needs = &loitering.rule.as_ref().unwrap().keys;
        assert_eq!(needs.get("zone"), Some(&Need::Required));
        assert_eq!(needs.get("min_duration_sec"), Some(&Need::Required));
        assert_eq!(needs.get("line"), None);
    }
}
