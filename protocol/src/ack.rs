//! The collector's acknowledgement, schema `ioc.ack/1`, on `{root}/v1/agents/{agent}/acks`.
//!
//! The collector publishes an ack only after it has **committed** the messages to its store;
//! the agent deletes outbox entries only on such an ack (a broker PUBACK is not enough). Events
//! and counts are acked by `seq`, as inclusive ranges so a burst of 10 000 messages costs one
//! `[first, last]` pair; snapshots (which carry no seq) are acked by their event id in `ids`,
//! and each part of a clip by its event id and part number in `clip_parts`.
//! Acks are idempotent: acking a seq twice, or one the agent already deleted, is harmless.
//!
//! Wire form: `{"schema":"ioc.ack/1","seqs":[[1,500],[502,502]],"ids":["site-1-17"]}`;
//! ranges sorted, non-overlapping and non-adjacent (what [`compact_seqs`] builds).

use serde::{Deserialize, Serialize};

use crate::topics::validate_event_id;
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`Ack`].
pub const ACK_SCHEMA: &str = "ioc.ack/1";

/// An inclusive range of sequence numbers, `[first, last]` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeqRange(pub u64, pub u64);

impl SeqRange {
    /// The range `first..=last`.
    pub fn new(first: u64, last: u64) -> Self {
        SeqRange(first, last)
    }

    /// The first seq.
    pub fn first(&self) -> u64 {
        self.0
    }

    /// The last seq (inclusive).
    pub fn last(&self) -> u64 {
        self.1
    }

    /// Whether `seq` is in the range.
    pub fn contains(&self, seq: u64) -> bool {
        (self.0..=self.1).contains(&seq)
    }

    /// How many seqs the range holds (0 if `last < first`).
    pub fn len(&self) -> u64 {
        if self.1 < self.0 {
            0
        } else {
            (self.1 - self.0).saturating_add(1)
        }
    }

    /// Whether the range holds no seq (`last < first`, which `validate` rejects).
    pub fn is_empty(&self) -> bool {
        self.1 < self.0
    }
}

/// Sorts and merges `seqs` (any order, duplicates allowed) into the fewest inclusive ranges.
pub fn compact_seqs(seqs: impl IntoIterator<Item = u64>) -> Vec<SeqRange> {
    let mut v: Vec<u64> = seqs.into_iter().collect();
    v.sort_unstable();
    let mut out: Vec<SeqRange> = Vec::new();
    for s in v {
        match out.last_mut() {
            Some(r) if s <= r.1.saturating_add(1) => r.1 = r.1.max(s),
            _ => out.push(SeqRange(s, s)),
        }
    }
    out
}

/// What the collector has committed for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.ack/1")]
pub struct Ack {
    /// Always `"ioc.ack/1"`.
    #[schemars(extend("const" = "ioc.ack/1"))]
    pub schema: String,
    /// Committed event/counts seqs: sorted, non-overlapping, non-adjacent inclusive ranges.
    #[serde(default)]
    pub seqs: Vec<SeqRange>,
    /// Event ids whose snapshot (JPEG) was committed.
    #[serde(default)]
    #[schemars(inner(pattern(crate::topics::EVENT_ID_PATTERN)))]
    pub ids: Vec<String>,
    /// Clip parts committed, `[event id, part]` (absent when none: older agents read on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clip_parts: Vec<ClipPartAck>,
}

/// One committed clip part: `[event id, part number]` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClipPartAck(pub String, pub u32);

impl Ack {
    /// An ack of `seqs` (any order, duplicates allowed) and the snapshots of `ids`.
    pub fn new(seqs: impl IntoIterator<Item = u64>, ids: Vec<String>) -> Self {
        Ack {
            schema: ACK_SCHEMA.to_owned(),
            seqs: compact_seqs(seqs),
            ids,
            clip_parts: Vec::new(),
        }
    }

    /// This ack with the clip parts `parts` added.
    pub fn with_clip_parts(mut self, parts: Vec<ClipPartAck>) -> Self {
        self.clip_parts = parts;
        self
    }

    /// An ack of `seqs` only.
    pub fn from_seqs(seqs: impl IntoIterator<Item = u64>) -> Self {
        Self::new(seqs, Vec::new())
    }

    /// Whether `seq` is acknowledged.
    pub fn contains_seq(&self, seq: u64) -> bool {
        // Linear: correct on unvalidated input, and acks hold few ranges.
        self.seqs.iter().any(|r| r.contains(seq))
    }

    /// Whether the snapshot of event `id` is acknowledged.
    pub fn contains_id(&self, id: &str) -> bool {
        self.ids.iter().any(|i| i == id)
    }

    /// Every acknowledged seq, ascending (for a valid ack).
    pub fn iter_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.seqs
            .iter()
            .flat_map(|r| (r.0..=r.1).take(usize::try_from(r.len()).unwrap_or(usize::MAX)))
    }

    /// How many seqs are acknowledged.
    pub fn seq_count(&self) -> u64 {
        self.seqs
            .iter()
            .fold(0u64, |n, r| n.saturating_add(r.len()))
    }

    /// Checks the schema string, that ranges are well-formed, sorted, non-overlapping and
    /// non-adjacent, and the ids.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(ACK_SCHEMA);
        c.schema(&self.schema);
        for (i, r) in self.seqs.iter().enumerate() {
            if r.1 < r.0 {
                c.push(
                    format!("seqs[{i}]"),
                    format!("[{}, {}] ends before it starts", r.0, r.1),
                );
            }
            if i > 0 {
                let prev = self.seqs[i - 1];
                if r.0 <= prev.1.saturating_add(1) {
                    c.push(
                        format!("seqs[{i}]"),
                        format!(
                            "[{}, {}] overlaps or touches [{}, {}] (or is out of order)",
                            r.0, r.1, prev.0, prev.1
                        ),
                    );
                }
            }
        }
        for (i, id) in self.ids.iter().enumerate() {
            c.id(&format!("ids[{i}]"), validate_event_id(id));
        }
        for (i, p) in self.clip_parts.iter().enumerate() {
            c.id(&format!("clip_parts[{i}]"), validate_event_id(&p.0));
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction() {
        assert_eq!(compact_seqs([]), vec![]);
        assert_eq!(compact_seqs([5]), vec![SeqRange(5, 5)]);
        assert_eq!(
            compact_seqs([3, 1, 2, 2, 7, 9, 8, 11]),
            vec![SeqRange(1, 3), SeqRange(7, 9), SeqRange(11, 11)]
        );
        assert_eq!(compact_seqs(1..=10_000), vec![SeqRange(1, 10_000)]);
        assert_eq!(
            compact_seqs([u64::MAX, 0, u64::MAX - 1]),
            vec![SeqRange(0, 0), SeqRange(u64::MAX - 1, u64::MAX)]
        );
    }

    #[test]
    fn membership_and_count() {
        let seqs: Vec<u64> = (1..=500).chain([502]).chain(600..=610).collect();
        let a = Ack::new(seqs.iter().rev().copied(), vec!["site-1-17".into()]);
        a.validate().unwrap();
        assert_eq!(a.seqs.len(), 3);
        assert_eq!(a.seq_count(), seqs.len() as u64);
        assert_eq!(a.iter_seqs().collect::<Vec<_>>(), seqs);
        for s in 0..700 {
            assert_eq!(a.contains_seq(s), seqs.contains(&s), "{s}");
        }
        assert!(a.contains_id("site-1-17") && !a.contains_id("site-1-18"));
    }

    #[test]
    fn wire_form_round_trips() {
        let a = Ack::new([1, 2, 3, 5], vec!["e-1".into()]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"schema":"ioc.ack/1","seqs":[[1,3],[5,5]],"ids":["e-1"]}"#
        );
        assert_eq!(serde_json::from_str::<Ack>(&json).unwrap(), a);
        let a = a.with_clip_parts(vec![ClipPartAck("e-1".into(), 3)]);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.ends_with(r#""clip_parts":[["e-1",3]]}"#), "{json}");
        assert_eq!(serde_json::from_str::<Ack>(&json).unwrap(), a);
        let empty: Ack = serde_json::from_str(r#"{"schema":"ioc.ack/1"}"#).unwrap();
        assert_eq!(empty, Ack::from_seqs([]));
    }

    #[test]
    fn validate_rejects_bad_ranges() {
        let mut a = Ack::from_seqs([]);
        a.seqs = vec![
            SeqRange(5, 3),
            SeqRange(10, 12),
            SeqRange(13, 20),
            SeqRange(1, 2),
        ];
        a.ids = vec!["Nope".into()];
        let fields: Vec<_> = a
            .validate()
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["seqs[0]", "seqs[2]", "seqs[3]", "ids[0]"]);
        assert!(SeqRange(5, 3).is_empty());
        assert_eq!(SeqRange(5, 3).len(), 0);
        assert_eq!(SeqRange(0, u64::MAX).len(), u64::MAX);
    }
}
