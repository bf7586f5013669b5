//! Decoding from bytes as a collector sees them: versions, unknown fields, errors, README.

use ioc_protocol::{
    encode, parse_ack, parse_agent_status, parse_camera_status, parse_counts, parse_counts_for,
    parse_event, parse_event_for, Ack, AgentState, AgentStatus, CameraState, CameraStatus,
    ClassCount, CountDirection, Counts, Event, EventKind, Phase, ProtocolError, Timestamp,
    COUNTS_SCHEMA,
};
use serde_json::{json, Value};

/// The example in README.md, so the doc cannot rot.
fn readme_event_json() -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```json\n")
        .expect("README.md has a ```json block")
        + 8;
    let len = readme[start..].find("```").expect("the json block ends");
    readme[start..start + len].to_owned()
}

fn readme_value() -> Value {
    serde_json::from_str(&readme_event_json()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn readme_example_parses_and_round_trips() {
    let e = parse_event(readme_event_json().as_bytes()).unwrap();
    assert_eq!(e.id, "site-1-41");
    assert_eq!(e.phase, Phase::Start);
    assert_eq!(e.kind, EventKind::Loitering);
    assert_eq!(e.details.dwell_s, Some(30.2));
    assert_eq!(e.snapshot.as_ref().unwrap().width, 1280);
    let again = parse_event(&encode(&e).unwrap()).unwrap();
    assert_eq!(again, e);
    // Every field of the README example is one the type knows (so the example is complete and
    // serialising gives back the same document).
    let v: Value = serde_json::from_slice(&encode(&e).unwrap()).unwrap();
    assert_eq!(v, readme_value());
}

#[test]
fn unknown_fields_are_ignored_or_kept() {
    let mut v = readme_value();
    v["priority_hint"] = json!({"nested": [1, 2, 3]});
    v["objects"][0]["color"] = json!("red");
    v["snapshot"]["format"] = json!("jpeg");
    v["details"]["plate"] = json!("B-XY 123");
    v["kind"] = json!("smoke");
    let e = parse_event(&bytes(&v)).unwrap();
    assert_eq!(e.kind, EventKind::Other("smoke".into()));
    assert_eq!(e.details.extra["plate"], "B-XY 123");
    // details.extra survives a re-encode; top-level unknowns are dropped.
    let out: Value = serde_json::from_slice(&encode(&e).unwrap()).unwrap();
    assert_eq!(out["details"]["plate"], "B-XY 123");
    assert!(out.get("priority_hint").is_none());
}

#[test]
fn optional_fields_may_be_absent() {
    let mut v = readme_value();
    for k in ["zone", "line", "ended_at", "objects", "details", "snapshot"] {
        v.as_object_mut().unwrap().remove(k);
    }
    let e = parse_event(&bytes(&v)).unwrap();
    assert!(e.objects.is_empty() && e.snapshot.is_none() && e.zone.is_none());
}

#[test]
fn newer_version_is_rejected_specifically() {
    let mut v = readme_value();
    v["schema"] = json!("ioc.event/2");
    v["something_new"] = json!(true);
    match parse_event(&bytes(&v)) {
        Err(ProtocolError::UnsupportedVersion { expected, found }) => {
            assert_eq!(expected, "ioc.event/1");
            assert_eq!(found, "ioc.event/2");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    // Even if the rest would not decode as v1.
    let v2 = br#"{"schema":"ioc.event/2","id":42}"#;
    let err = parse_event(v2).unwrap_err();
    assert!(matches!(err, ProtocolError::UnsupportedVersion { .. }));
    assert_eq!(
        err.to_string(),
        "unsupported schema version \"ioc.event/2\": this reader understands \"ioc.event/1\""
    );
}

#[test]
fn other_schema_and_missing_schema() {
    let counts = br#"{"schema":"ioc.counts/1"}"#;
    assert!(matches!(
        parse_event(counts),
        Err(ProtocolError::WrongSchema { .. })
    ));
    let mut v = readme_value();
    v.as_object_mut().unwrap().remove("schema");
    assert!(matches!(
        parse_event(&bytes(&v)),
        Err(ProtocolError::MissingSchema { .. })
    ));
    assert!(matches!(
        parse_event(br#"{"schema": 1}"#),
        Err(ProtocolError::BadShape { .. })
    ));
}

#[test]
fn malformed_json() {
    for bad in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"schema\":\"ioc.event/1\",}",
        b"\xff\xfe",
        &readme_event_json().as_bytes()[..100],
    ] {
        match parse_event(bad) {
            Err(ProtocolError::MalformedJson(_)) => {}
            other => panic!(
                "{:?}: expected MalformedJson, got {other:?}",
                String::from_utf8_lossy(bad)
            ),
        }
    }
    let e = parse_event(b"{").unwrap_err().to_string();
    assert!(e.starts_with("malformed JSON: "), "{e}");
    // JSON, but not an object.
    assert!(matches!(
        parse_event(b"[1, 2]"),
        Err(ProtocolError::BadShape { .. })
    ));
}

#[test]
fn wrong_shape_and_invalid_values() {
    let mut v = readme_value();
    v["seq"] = json!("forty-one");
    let e = parse_event(&bytes(&v)).unwrap_err();
    assert!(matches!(e, ProtocolError::BadShape { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("ioc.event/1 payload does not match the schema: invalid type"),
        "{e}"
    );

    let mut v = readme_value();
    v["observed_at"] = json!("2024-05-01 12:00:30");
    let e = parse_event(&bytes(&v)).unwrap_err();
    assert!(e.to_string().contains("invalid timestamp"), "{e}");

    let mut v = readme_value();
    v["objects"][0]["score"] = json!(1.5);
    v["agent"] = json!("Site 1");
    match parse_event(&bytes(&v)) {
        Err(ProtocolError::Invalid(i)) => {
            let fields: Vec<_> = i.problems.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, ["agent", "objects[0].score"]);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn agent_must_match_topic() {
    let json = readme_event_json();
    assert!(parse_event_for("site-1", json.as_bytes()).is_ok());
    let e = parse_event_for("site-2", json.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "payload agent \"site-1\" differs from topic agent \"site-2\""
    );
}

#[test]
fn encode_refuses_invalid() {
    let mut e: Event = parse_event(readme_event_json().as_bytes()).unwrap();
    e.objects[0].score = f32::NAN;
    assert!(matches!(encode(&e), Err(ProtocolError::Invalid(_))));
}

#[test]
fn every_payload_round_trips_through_bytes() {
    let at = Timestamp::parse("2024-05-01T12:00:00.000Z").unwrap();
    let s = AgentStatus::new(
        AgentState::Online,
        "0.1.0",
        vec!["cam-1".into()],
        at.clone(),
    );
    assert_eq!(parse_agent_status(&encode(&s).unwrap()).unwrap(), s);

    let mut c = CameraStatus::new(CameraState::Reconnecting, at.clone());
    c.error = Some("connection refused".into());
    assert_eq!(parse_camera_status(&encode(&c).unwrap()).unwrap(), c);

    let counts = Counts {
        schema: COUNTS_SCHEMA.into(),
        seq: 7,
        agent: "site-1".into(),
        camera: "cam-1".into(),
        line: "entry".into(),
        interval_start: at.clone(),
        interval_end: Timestamp::parse("2024-05-01T12:01:00.000Z").unwrap(),
        counts: vec![ClassCount {
            class: "person".into(),
            direction: CountDirection::Out,
            count: 3,
        }],
    };
    assert_eq!(parse_counts(&encode(&counts).unwrap()).unwrap(), counts);
    assert!(matches!(
        parse_counts_for("other", &encode(&counts).unwrap()),
        Err(ProtocolError::AgentMismatch { .. })
    ));

    let ack = Ack::new([1, 2, 3, 10], vec!["site-1-1".into()]);
    assert_eq!(parse_ack(&encode(&ack).unwrap()).unwrap(), ack);

    // Cross-type: an ack on the status topic is a wrong schema, not a crash.
    assert!(matches!(
        parse_agent_status(&encode(&ack).unwrap()),
        Err(ProtocolError::WrongSchema { .. })
    ));
    // Status readers ignore unknown fields too.
    let mut v: Value = serde_json::from_slice(&encode(&c).unwrap()).unwrap();
    v["bitrate_kbps"] = json!(2048);
    assert_eq!(parse_camera_status(&bytes(&v)).unwrap(), c);
}
