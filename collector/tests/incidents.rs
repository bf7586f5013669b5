//! Incidents on a real SQLite store (and every test again on a real PostgreSQL server), with time given explicitly (the controllable clock):
//! grouping, replays, the lifecycle and its audit trail, escalation, health incidents with
//! hysteresis, maintenance silences, retention, the daily report.

use ioc_collector::incident::{Action, ChangeKind, Policy, State};
use ioc_collector::store::{ActionError, IncidentFilter, SilenceSpec};
use ioc_collector::{Ingested, Message, Store};
use ioc_protocol::{parse_agent_status, parse_camera_status, parse_counts, parse_event};

/// 2024-05-01T00:00:00Z.
const T0: i64 = 1_714_521_600_000;
const MIN: i64 = 60_000;

fn iso(ms: i64) -> String {
    ioc_collector::incident::ts(ms).as_str().to_owned()
}

struct Ev<'a> {
    seq: u64,
    id: &'a str,
    phase: &'a str,
    kind: &'a str,
    camera: &'a str,
    zone: &'a str,
    severity: &'a str,
    at: i64,
}

fn event(e: &Ev<'_>) -> Ingested {
    let mut v = serde_json::json!({
        "schema": "ioc.event/1", "id": e.id, "seq": e.seq, "phase": e.phase, "agent": "site-a",
        "camera": e.camera, "kind": e.kind, "severity": e.severity, "rule": "r",
        "observed_at": iso(e.at), "objects": [], "details": {},
        // The SHA-256 of the tests' JPEG stand-in, [1, 2, 3].
        "snapshot": {"sha256": "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",
                     "size": 3, "width": 4, "height": 4},
    });
    if !e.zone.is_empty() {
        v["zone"] = e.zone.into();
    }
    if e.phase != "instant" {
        // The tests' incidents start a little before their first event.
        v["started_at"] = iso(e.at.min(T0)).into();
    }
    if e.phase == "end" {
        v["ended_at"] = iso(e.at).into();
    }
    let json = v.to_string();
    Ingested {
        received_at_ms: e.at,
        message: Message::Event {
            event: Box::new(parse_event(json.as_bytes()).unwrap()),
            json,
        },
    }
}

fn intrusion(seq: u64, id: &str, phase: &str, at: i64) -> Ingested {
    event(&Ev {
        seq,
        id,
        phase,
        kind: "intrusion",
        camera: "gate",
        zone: "yard",
        severity: "warning",
        at,
    })
}

fn open(dir: &tempfile::TempDir) -> Store {
    let mut s = Store::open(&dir.path().join("ioc.db"), &dir.path().join("snaps")).unwrap();
    s.set_policy(Policy::default());
    s
}

fn agent_status(state: &str, at: i64) -> Ingested {
    let json = format!(
        r#"{{"schema":"ioc.agent-status/1","state":"{state}","version":"1","cameras":["gate"],"at":"{}"}}"#,
        iso(at)
    );
    Ingested {
        received_at_ms: at,
        message: Message::AgentStatus {
            agent: "site-a".into(),
            status: parse_agent_status(json.as_bytes()).unwrap(),
            retained: false,
        },
    }
}

fn camera_status(state: &str, at: i64) -> Ingested {
    let json = format!(
        r#"{{"schema":"ioc.camera-status/1","state":"{state}","at":"{}"}}"#,
        iso(at)
    );
    Ingested {
        received_at_ms: at,
        message: Message::CameraStatus {
            agent: "site-a".into(),
            camera: "gate".into(),
            status: parse_camera_status(json.as_bytes()).unwrap(),
            retained: false,
        },
    }
}

#[test]
fn events_group_into_incidents_and_replays_count_once() {
    let dir = tempfile::tempdir().unwrap();
    events_group_into_incidents_and_replays_count_once_on(open(&dir));
}

fn events_group_into_incidents_and_replays_count_once_on(mut s: Store) {
    // One agent incident: start, update, end -> one collector incident.
    let c = s
        .insert_batch(&[
            intrusion(1, "site-a-1", "start", T0),
            intrusion(2, "site-a-1", "update", T0 + 5_000),
        ])
        .unwrap();
    assert_eq!(c.changes.len(), 1, "one incident, reported once per batch");
    assert_eq!(c.changes[0].change, ChangeKind::Opened);
    let id = c.changes[0].incident.id;
    assert!(c.changes[0].incident.active);
    let c = s
        .insert_batch(&[intrusion(3, "site-a-1", "end", T0 + 10_000)])
        .unwrap();
    assert_eq!(c.changes[0].change, ChangeKind::Updated);
    let i = s.incident(id).unwrap().unwrap();
    assert_eq!(i.event_count, 1);
    assert!(!i.active, "ended on the agent side");
    assert_eq!(i.snapshot.as_deref(), Some("site-a-1"));
    assert_eq!(i.last_at.unix_millis(), T0 + 10_000);

    // A second intrusion in the same zone 2 minutes later joins it...
    s.insert_batch(&[intrusion(4, "site-a-4", "start", T0 + 2 * MIN)])
        .unwrap();
    // ...a replay changes nothing...
    let c = s
        .insert_batch(&[intrusion(4, "site-a-4", "start", T0 + 2 * MIN)])
        .unwrap();
    assert_eq!(c.duplicates, 1);
    assert!(c.changes.is_empty());
    assert_eq!(s.incident(id).unwrap().unwrap().event_count, 2);
    // ...another camera, kind or zone opens its own, as does the same key after the window.
    s.insert_batch(&[
        event(&Ev {
            seq: 5,
            id: "site-a-5",
            phase: "instant",
            kind: "intrusion",
            camera: "gate",
            zone: "fence",
            severity: "critical",
            at: T0 + 3 * MIN,
        }),
        event(&Ev {
            seq: 6,
            id: "site-a-6",
            phase: "instant",
            kind: "loitering",
            camera: "gate",
            zone: "yard",
            severity: "info",
            at: T0 + 3 * MIN,
        }),
        intrusion(7, "site-a-7", "start", T0 + 2 * MIN + 6 * MIN),
    ])
    .unwrap();
    let all = s.incidents(&IncidentFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    let f = IncidentFilter {
        kind: Some("intrusion".into()),
        state: Some("open".into()),
        ..Default::default()
    };
    assert_eq!(s.incidents(&f).unwrap().len(), 3);
    // Pagination: newest first, before_id pages on.
    let page1 = s
        .incidents(&IncidentFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    let page2 = s
        .incidents(&IncidentFilter {
            limit: Some(2),
            before_id: Some(page1[1].id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 4);
    assert!(page1[1].id > page2[0].id);
    assert_eq!(
        s.incident_events(id).unwrap().len(),
        4,
        "start, update, end, start"
    );
    // A message repeated inside one batch, and an old seq replayed after newer ones, are
    // stored and filed once.
    let c = s
        .insert_batch(&[
            intrusion(8, "site-a-8", "start", T0 + 9 * MIN),
            intrusion(8, "site-a-8", "start", T0 + 9 * MIN),
            intrusion(4, "site-a-4", "start", T0 + 2 * MIN),
        ])
        .unwrap();
    assert_eq!((c.inserted, c.duplicates), (1, 2));
    let i = s.incident(c.changes[0].incident.id).unwrap().unwrap();
    assert_eq!(i.event_count, 2, "seq 7 and seq 8, once each");
}

#[test]
fn lifecycle_with_audit_trail_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_with_audit_trail_and_conflicts_on(open(&dir));
}

fn lifecycle_with_audit_trail_and_conflicts_on(mut s: Store) {
    let c = s
        .insert_batch(&[intrusion(1, "site-a-1", "start", T0)])
        .unwrap();
    let id = c.changes[0].incident.id;
    let ack = s
        .act(id, Action::Acknowledge, "lan", None, T0 + MIN)
        .unwrap();
    assert_eq!(ack.incident.state, State::Acknowledged);
    assert_eq!(ack.incident.acknowledged_by.as_deref(), Some("lan"));
    assert_eq!(ack.incident.assignee.as_deref(), Some("lan"));
    // A second operator acknowledging the same incident is told it is taken.
    let e = s
        .act(id, Action::Acknowledge, "minh", None, T0 + MIN)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot acknowledge an incident that is acknowledged"
    );
    // Only a user can be assigned.
    let e = s.act(id, Action::Assign, "lan", Some("nobody"), T0 + 2 * MIN);
    assert!(matches!(e, Err(ActionError::Invalid(_))));
    s.put_user("minh", "x", "operator", "test", T0).unwrap();
    s.act(id, Action::Assign, "lan", Some("minh"), T0 + 2 * MIN)
        .unwrap();
    assert!(
        s.act(id, Action::Note, "minh", None, T0).is_err(),
        "empty note"
    );
    s.act(
        id,
        Action::Note,
        "minh",
        Some("police called"),
        T0 + 3 * MIN,
    )
    .unwrap();
    let r = s
        .act(
            id,
            Action::Resolve,
            "minh",
            Some("intruder left"),
            T0 + 4 * MIN,
        )
        .unwrap();
    assert_eq!(r.incident.state, State::Resolved);
    assert_eq!(r.incident.closed_by.as_deref(), Some("minh"));
    // Closed incidents take no new events: the same key opens a new incident.
    let c = s
        .insert_batch(&[intrusion(2, "site-a-2", "start", T0 + 5 * MIN)])
        .unwrap();
    assert_ne!(c.changes[0].incident.id, id);
    let re = s
        .act(id, Action::Reopen, "lan", None, T0 + 6 * MIN)
        .unwrap();
    assert_eq!(re.incident.state, State::Open);
    assert!(re.incident.acknowledged_by.is_none());
    s.act(id, Action::Dismiss, "lan", Some("cat"), T0 + 7 * MIN)
        .unwrap();
    assert!(s.act(999, Action::Acknowledge, "lan", None, T0).is_err());

    let trail = s.audit_trail(Some(id)).unwrap();
    let steps: Vec<(&str, &str, Option<&str>)> = trail
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.note.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            ("system", "opened", None),
            ("lan", "acknowledge", None),
            ("lan", "assign", Some("minh")),
            ("minh", "note", Some("police called")),
            ("minh", "resolve", Some("intruder left")),
            ("lan", "reopen", None),
            ("lan", "dismiss", Some("cat")),
        ]
    );
    assert_eq!(trail[4].from_state.as_deref(), Some("acknowledged"));
    assert_eq!(trail[4].to_state.as_deref(), Some("resolved"));
    assert_eq!(trail[1].at.unix_millis(), T0 + MIN);
}

#[test]
fn unacknowledged_incidents_escalate_on_their_deadline() {
    let dir = tempfile::tempdir().unwrap();
    unacknowledged_incidents_escalate_on_their_deadline_on(open(&dir));
}

fn unacknowledged_incidents_escalate_on_their_deadline_on(mut s: Store) {
    let crit = event(&Ev {
        seq: 1,
        id: "site-a-1",
        phase: "start",
        kind: "intrusion",
        camera: "gate",
        zone: "fence",
        severity: "critical",
        at: T0,
    });
    let c = s
        .insert_batch(&[crit, intrusion(2, "site-a-2", "start", T0)])
        .unwrap();
    let (crit_id, warn_id) = (c.changes[0].incident.id, c.changes[1].incident.id);
    // Critical: 5 min; warning: 15 min (defaults).
    assert!(s.tick(T0 + 5 * MIN - 1).unwrap().is_empty());
    let ch = s.tick(T0 + 5 * MIN).unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].change, ChangeKind::Escalated);
    assert_eq!(ch[0].incident.id, crit_id);
    assert!(ch[0].incident.overdue);
    assert!(
        s.tick(T0 + 6 * MIN).unwrap().is_empty(),
        "once per deadline"
    );
    let ch = s.tick(T0 + 10 * MIN).unwrap();
    assert_eq!(ch.len(), 1, "re-notified after a second deadline");
    assert_eq!(ch[0].incident.escalations, 2);
    // Acknowledging stops it; the warning one escalates at 15 min.
    let a = s
        .act(crit_id, Action::Acknowledge, "lan", None, T0 + 11 * MIN)
        .unwrap();
    assert!(!a.incident.overdue);
    let ch = s.tick(T0 + 20 * MIN).unwrap();
    assert_eq!(
        ch.iter().map(|c| c.incident.id).collect::<Vec<_>>(),
        [warn_id]
    );
    let escalations = s
        .audit_trail(Some(crit_id))
        .unwrap()
        .iter()
        .filter(|a| a.action == "escalated")
        .count();
    assert_eq!(escalations, 2);
}

#[test]
fn health_incidents_have_hysteresis_and_resolve_themselves() {
    let dir = tempfile::tempdir().unwrap();
    health_incidents_have_hysteresis_and_resolve_themselves_on(open(&dir));
}

fn health_incidents_have_hysteresis_and_resolve_themselves_on(mut s: Store) {
    s.insert_batch(&[agent_status("online", T0), camera_status("streaming", T0)])
        .unwrap();
    // A 30 s blip is no incident (hysteresis 60 s).
    s.insert_batch(&[agent_status("offline", T0 + MIN)])
        .unwrap();
    assert!(s.tick(T0 + MIN + 30_000).unwrap().is_empty());
    s.insert_batch(&[agent_status("online", T0 + MIN + 31_000)])
        .unwrap();
    assert!(s.tick(T0 + 3 * MIN).unwrap().is_empty());
    // Down for longer: one incident, opened once.
    s.insert_batch(&[agent_status("offline", T0 + 4 * MIN)])
        .unwrap();
    let ch = s.tick(T0 + 5 * MIN).unwrap();
    assert_eq!(ch.len(), 1);
    let i = &ch[0].incident;
    assert_eq!((i.kind.as_str(), i.camera.as_str()), ("agent_offline", ""));
    assert_eq!(
        i.first_at.unix_millis(),
        T0 + 4 * MIN,
        "dated from the outage"
    );
    assert!(s
        .tick(T0 + 6 * MIN)
        .unwrap()
        .iter()
        .all(|c| c.change == ChangeKind::Escalated));
    // Back online: resolved by the system.
    let c = s
        .insert_batch(&[agent_status("online", T0 + 7 * MIN)])
        .unwrap();
    assert_eq!(c.changes.len(), 1);
    assert_eq!(c.changes[0].incident.state, State::Resolved);
    assert_eq!(c.changes[0].incident.closed_by.as_deref(), Some("system"));
    // Camera down on a live agent.
    s.insert_batch(&[camera_status("reconnecting", T0 + 8 * MIN)])
        .unwrap();
    assert!(s.tick(T0 + 8 * MIN + 59_000).unwrap().is_empty());
    let ch = s.tick(T0 + 9 * MIN).unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].incident.kind, "camera_offline");
    // Another reconnecting status (new fps, same state) does not move the outage's start.
    s.insert_batch(&[camera_status("reconnecting", T0 + 9 * MIN + 1)])
        .unwrap();
    let h = s.health(T0 + 9 * MIN + 1).unwrap();
    assert_eq!(h.cameras[0].open_incidents, 1);
    assert_eq!(
        h.cameras[0].since.as_deref(),
        Some(iso(T0 + 8 * MIN).as_str())
    );
    let c = s
        .insert_batch(&[camera_status("streaming", T0 + 10 * MIN)])
        .unwrap();
    assert_eq!(c.changes[0].incident.state, State::Resolved);
    // The report sees the camera's uptime: down 8..10 min of the 10 min observed so far.
    let r = s.daily_report(T0 / 86_400_000, 0, T0 + 10 * MIN).unwrap();
    assert_eq!(r.uptime.len(), 1);
    assert!((r.uptime[0].uptime - 0.8).abs() < 1e-6, "{:?}", r.uptime);
    // One outage is one incident, whoever notices first, and it resolves when the camera is
    // back. The agent's rule first (critical), then the health check:
    let offline = |seq, id, phase, at| {
        event(&Ev {
            seq,
            id,
            phase,
            kind: "camera_offline",
            camera: "gate",
            zone: "",
            severity: "critical",
            at,
        })
    };
    s.insert_batch(&[
        camera_status("reconnecting", T0 + 20 * MIN),
        offline(10, "site-a-10", "start", T0 + 20 * MIN + 30_000),
    ])
    .unwrap();
    assert!(s
        .tick(T0 + 25 * MIN)
        .unwrap()
        .iter()
        .all(|c| c.change != ChangeKind::Opened));
    let c = s
        .insert_batch(&[camera_status("streaming", T0 + 26 * MIN)])
        .unwrap();
    assert_eq!(c.changes.len(), 1);
    assert_eq!(
        c.changes[0].incident.state,
        State::Resolved,
        "the agent's incident too"
    );
    // The health check first (warning), then the agent's rule 10 minutes later (past the
    // grouping window): it joins, and the incident takes its severity.
    s.insert_batch(&[camera_status("failed", T0 + 30 * MIN)])
        .unwrap();
    let opened = s.tick(T0 + 32 * MIN).unwrap();
    assert_eq!(opened.len(), 1);
    let id = opened[0].incident.id;
    let c = s
        .insert_batch(&[offline(11, "site-a-11", "start", T0 + 42 * MIN)])
        .unwrap();
    assert_eq!(c.changes[0].incident.id, id, "joined the open outage");
    assert_eq!(
        c.changes[0].incident.severity,
        ioc_protocol::Severity::Critical
    );
    let c = s
        .insert_batch(&[
            offline(12, "site-a-11", "end", T0 + 43 * MIN),
            camera_status("streaming", T0 + 43 * MIN),
        ])
        .unwrap();
    assert_eq!(c.changes.len(), 1);
    assert_eq!(c.changes[0].incident.state, State::Resolved);
    let open = s
        .incidents(&IncidentFilter {
            state: Some("open".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(open.iter().all(|i| i.kind != "camera_offline"), "{open:?}");
}

#[test]
fn silences_mute_new_incidents_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    silences_mute_new_incidents_until_they_end_on(open(&dir));
}

fn silences_mute_new_incidents_until_they_end_on(mut s: Store) {
    let sil = s
        .add_silence(
            &SilenceSpec {
                site: "site-a".into(),
                camera: Some("gate".into()),
                ends_at_ms: T0 + 30 * MIN,
                reason: "lens cleaning".into(),
            },
            "lan",
            T0,
        )
        .unwrap();
    assert_eq!(s.silences(T0 + MIN).unwrap().len(), 1);
    let c = s
        .insert_batch(&[event(&Ev {
            seq: 1,
            id: "site-a-1",
            phase: "instant",
            kind: "camera_tamper",
            camera: "gate",
            zone: "",
            severity: "critical",
            at: T0 + MIN,
        })])
        .unwrap();
    let muted = c.changes[0].incident.clone();
    assert!(muted.silenced);
    assert!(
        s.tick(T0 + 20 * MIN).unwrap().is_empty(),
        "silenced: no escalation"
    );
    assert!(s.incidents(&IncidentFilter::default()).unwrap().is_empty());
    let with = IncidentFilter {
        silenced: Some(true),
        ..Default::default()
    };
    assert_eq!(s.incidents(&with).unwrap().len(), 1);
    assert!(s.end_silence(sil.id, "lan", T0 + 21 * MIN).unwrap());
    assert!(s.silences(T0 + 22 * MIN).unwrap().is_empty());
    let c = s
        .insert_batch(&[event(&Ev {
            seq: 2,
            id: "site-a-2",
            phase: "instant",
            kind: "intrusion",
            camera: "gate",
            zone: "yard",
            severity: "critical",
            at: T0 + 23 * MIN,
        })])
        .unwrap();
    assert!(!c.changes[0].incident.silenced);
    let trail = s.audit_trail(None).unwrap();
    assert_eq!(
        trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["silence", "unsilence"]
    );
}

#[test]
fn daily_report_counts_kinds_hours_times_and_traffic() {
    let dir = tempfile::tempdir().unwrap();
    daily_report_counts_kinds_hours_times_and_traffic_on(open(&dir));
}

fn daily_report_counts_kinds_hours_times_and_traffic_on(mut s: Store) {
    // Local day 2024-05-01 at UTC+7 runs from 2024-04-30T17:00Z.
    let off = 7 * 60;
    let start = T0 - 7 * 60 * MIN;
    let mut batch = Vec::new();
    for k in 0..4u64 {
        batch.push(event(&Ev {
            seq: k + 1,
            id: &format!("site-a-{}", k + 1),
            phase: "instant",
            kind: if k < 3 { "intrusion" } else { "wrong_way" },
            camera: "gate",
            zone: &format!("z{k}"),
            severity: "warning",
            at: start + 9 * 60 * MIN + k as i64 * MIN, // 09:00 local
        }));
    }
    let counts = r#"{"schema":"ioc.counts/1","seq":5,"agent":"site-a","camera":"gate","line":"road",
        "interval_start":"2024-05-01T02:00:00.000Z","interval_end":"2024-05-01T02:01:00.000Z",
        "counts":[{"class":"car","direction":"in","count":12},{"class":"car","direction":"out","count":3}]}"#;
    batch.push(Ingested {
        received_at_ms: T0,
        message: Message::Counts {
            counts: parse_counts(counts.as_bytes()).unwrap(),
            json: counts.to_owned(),
        },
    });
    let c = s.insert_batch(&batch).unwrap();
    let ids: Vec<i64> = c.changes.iter().map(|c| c.incident.id).collect();
    let base = start + 9 * 60 * MIN;
    s.act(ids[0], Action::Acknowledge, "lan", None, base + MIN)
        .unwrap();
    s.act(ids[0], Action::Resolve, "lan", None, base + 10 * MIN)
        .unwrap();
    s.act(ids[1], Action::Acknowledge, "lan", None, base + 4 * MIN)
        .unwrap();
    s.act(
        ids[1],
        Action::Dismiss,
        "lan",
        Some("a shadow <b>on the fence</b>"),
        base + 5 * MIN,
    )
    .unwrap();
    let day = ioc_collector::store::parse_day("2024-05-01").unwrap();
    let r = s.daily_report(day, off, T0 + 86_400_000).unwrap();
    assert_eq!(r.total, 4);
    assert_eq!(
        r.by_kind,
        [("intrusion".to_owned(), 3), ("wrong_way".to_owned(), 1)]
    );
    assert_eq!(r.by_hour[9], 4);
    assert_eq!(r.by_hour.iter().sum::<i64>(), 4);
    assert_eq!(r.false_alarm_share, Some(0.5));
    assert_eq!(r.time_to_acknowledge.n, 2);
    assert_eq!(r.time_to_resolve.median_s, Some(600.0));
    assert_eq!(
        r.counts,
        [
            (
                "site-a".into(),
                "gate".into(),
                "road".into(),
                "car".into(),
                "in".into(),
                12
            ),
            (
                "site-a".into(),
                "gate".into(),
                "road".into(),
                "car".into(),
                "out".into(),
                3
            ),
        ]
    );
    let csv = ioc_collector::report::csv(&r);
    assert!(csv.contains("2024-05-01,by_kind,intrusion,,3\n"), "{csv}");
    assert!(
        csv.contains("2024-05-01,traffic,site-a/gate/road,car/in,12\n"),
        "{csv}"
    );
    // The day's incidents for leaders: in time order, who handled them, the operator's note.
    assert_eq!(r.incidents.len(), 4);
    assert_eq!(r.incidents[0].id, ids[0]);
    assert_eq!(r.incidents[0].handled_by.as_deref(), Some("lan"));
    assert_eq!(r.incidents[1].notes, ["a shadow <b>on the fence</b>"]);
    assert_eq!(r.incidents[1].state, "dismissed");
    assert_eq!(r.incidents[3].kind, "wrong_way");
    assert!(r.incidents[3].handled_by.is_none() && r.incidents[3].notes.is_empty());
    let files = ioc_collector::report::picture_files(&s, &r).unwrap();
    let html = ioc_collector::report::html(&r, &ioc_collector::report::pictures(files));
    assert!(html.contains("<svg") && html.contains("Báo cáo"), "{html}");
    // Values in words (Vietnamese / English), dates day first, times on the district's clock,
    // notes escaped.
    for want in [
        "Đi ngược chiều / Wrong way",
        "Báo động giả / False alarm",
        "ngày 01/05/2024",
        "Danh sách sự cố",
        "<tr><td>09:01<br>",
        "a shadow &lt;b&gt;on the fence&lt;/b&gt;",
        "@page{size:A4",
    ] {
        assert!(html.contains(want), "{want:?} not in the report:\n{html}");
    }
    // The day before is empty.
    assert_eq!(s.daily_report(day - 1, off, T0).unwrap().total, 0);
}

#[test]
fn retention_drops_raw_rows_keeps_incidents_and_gap_detection() {
    let dir = tempfile::tempdir().unwrap();
    retention_drops_raw_rows_keeps_incidents_and_gap_detection_on(open(&dir));
}

fn retention_drops_raw_rows_keeps_incidents_and_gap_detection_on(mut s: Store) {
    s.insert_batch(&[
        intrusion(1, "site-a-1", "start", T0),
        intrusion(2, "site-a-1", "end", T0 + MIN),
    ])
    .unwrap();
    let snapshot = || Ingested {
        received_at_ms: T0,
        message: Message::Snapshot {
            agent: "site-a".into(),
            event_id: "site-a-1".into(),
            jpeg: vec![1, 2, 3],
        },
    };
    let c = s.insert_batch(&[snapshot()]).unwrap();
    // The picture came after its incident: the incident is announced again as `evidence`
    // (the console's row gets its thumbnail; webhooks are not told), once; a repeat of the
    // picture announces nothing.
    let changed: Vec<_> = c
        .changes
        .iter()
        .map(|c| (c.incident.id, c.change))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].1, ChangeKind::Evidence);
    assert_eq!(c.changes[0].incident.snapshot.as_deref(), Some("site-a-1"));
    let again = s.insert_batch(&[snapshot()]).unwrap();
    assert!(again.changes.is_empty());
    let file = s.snapshot("site-a", "site-a-1").unwrap().unwrap().path;
    assert!(file.exists());
    s.insert_batch(&[intrusion(3, "site-a-3", "start", T0 + 40 * 86_400_000)])
        .unwrap();
    let (events, snaps, _) = s.apply_retention(T0 + 40 * 86_400_000, 30, 30, 30).unwrap();
    assert_eq!((events, snaps), (2, 1));
    assert!(!file.exists());
    assert_eq!(s.count_events("site-a").unwrap(), 1);
    assert!(
        s.seq_gaps("site-a").unwrap().is_empty(),
        "removed seqs are no gap"
    );
    assert_eq!(s.incidents(&IncidentFilter::default()).unwrap().len(), 2);
}

/// Every test above, on PostgreSQL: one server (Debian's package, a temporary cluster), one
/// fresh database per test.
#[test]
fn every_incident_test_on_postgres() {
    let server = ioc_testkit::postgres::Postgres::start(false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    type Test = fn(Store);
    let tests: &[(&str, Test)] = &[
        (
            "events_group_into_incidents_and_replays_count_once",
            events_group_into_incidents_and_replays_count_once_on,
        ),
        (
            "lifecycle_with_audit_trail_and_conflicts",
            lifecycle_with_audit_trail_and_conflicts_on,
        ),
        (
            "unacknowledged_incidents_escalate_on_their_deadline",
            unacknowledged_incidents_escalate_on_their_deadline_on,
        ),
        (
            "health_incidents_have_hysteresis_and_resolve_themselves",
            health_incidents_have_hysteresis_and_resolve_themselves_on,
        ),
        (
            "silences_mute_new_incidents_until_they_end",
            silences_mute_new_incidents_until_they_end_on,
        ),
        (
            "daily_report_counts_kinds_hours_times_and_traffic",
            daily_report_counts_kinds_hours_times_and_traffic_on,
        ),
        (
            "retention_drops_raw_rows_keeps_incidents_and_gap_detection",
            retention_drops_raw_rows_keeps_incidents_and_gap_detection_on,
        ),
    ];
    for (name, test) in tests {
        let url = server.create_database(name).unwrap();
        let config = ioc_collector::config::PostgresConfig {
            url,
            password_file: Some(server.password_file(dir.path()).unwrap()),
            password: None,
            connect_timeout_sec: 10,
            tls: None,
        };
        let mut s = config.open(&dir.path().join(name)).unwrap();
        assert_eq!(s.dialect(), ioc_collector::store::db::Dialect::Postgres);
        s.set_policy(Policy::default());
        eprintln!("on postgres: {name}");
        test(s);
    }
}
