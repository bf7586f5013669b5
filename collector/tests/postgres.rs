//! What only the PostgreSQL backend has, on a real server (Debian's package, a temporary
//! cluster on a free loopback port): migrations shared by collectors starting together,
//! a newer schema refused, several collectors writing one agent's events at once without
//! opening an incident twice, a clip whose parts reach two collectors put together once, and clear errors for a wrong password or a server that is down.
//! The rest of the store's behaviour is tested on both engines by `incidents.rs`, `api.rs`
//! and `ingest_mosquitto.rs`.

use std::sync::{Arc, Barrier};

use ioc_collector::config::PostgresConfig;
use ioc_collector::store::{IncidentFilter, StoreError, SCHEMA_VERSION};
use ioc_collector::{Ingested, Message, Store};
use ioc_protocol::parse_event;
use ioc_testkit::postgres::Postgres;

fn pg_config(server: &Postgres, dir: &std::path::Path, db: &str) -> PostgresConfig {
    PostgresConfig {
        url: server.url(db),
        password_file: Some(server.password_file(dir).unwrap()),
        password: None,
        connect_timeout_sec: 5,
        tls: None,
    }
}

fn event(seq: u64, at_ms: i64) -> Ingested {
    let json = serde_json::json!({
        "schema": "ioc.event/1", "id": format!("site-a-{seq}"), "seq": seq, "phase": "instant",
        "agent": "site-a", "camera": "gate", "kind": "intrusion", "severity": "warning",
        "rule": "r", "zone": "yard",
        "observed_at": ioc_collector::incident::ts(at_ms).as_str(),
    })
    .to_string();
    Ingested {
        received_at_ms: at_ms,
        message: Message::Event {
            event: Box::new(parse_event(json.as_bytes()).unwrap()),
            json,
        },
    }
}

#[test]
fn collectors_sharing_a_database_migrate_once_and_file_each_event_once() {
    let server = Postgres::start(false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    server.create_database("shared").unwrap();
    let config = pg_config(&server, dir.path(), "shared");

    // Three collectors start at the same moment on an empty database.
    let start = Arc::new(Barrier::new(3));
    let stores: Vec<Store> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let (start, config, snaps) = (start.clone(), &config, dir.path().join("s"));
                s.spawn(move || {
                    start.wait();
                    let store = config.open(&snaps);
                    (i, store)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (i, r) = h.join().unwrap();
                r.unwrap_or_else(|e| panic!("collector {i}: {e}"))
            })
            .collect()
    });
    for s in &stores {
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }
    assert_eq!(
        server
            .psql("shared", "SELECT COUNT(*) FROM ioc_schema")
            .unwrap(),
        "1"
    );

    // Each collector receives a share of one agent's events (a shared subscription splits
    // them), in batches, all at once: they belong to one incident, opened once.
    const PER: u64 = 60;
    let t0 = 1_714_521_600_000;
    let start = Arc::new(Barrier::new(stores.len()));
    let n = stores.len() as u64;
    std::thread::scope(|s| {
        for (i, mut store) in stores.into_iter().enumerate() {
            let start = start.clone();
            s.spawn(move || {
                start.wait();
                let mine: Vec<u64> = (1..=PER * n).filter(|q| q % n == i as u64).collect();
                for chunk in mine.chunks(5) {
                    let batch: Vec<_> = chunk.iter().map(|&q| event(q, t0 + q as i64)).collect();
                    store.insert_batch(&batch).unwrap();
                }
            });
        }
    });
    let reader = config.open(&dir.path().join("s")).unwrap();
    assert_eq!(reader.count_events("site-a").unwrap(), PER * n);
    assert_eq!(reader.seq_gaps("site-a").unwrap(), vec![]);
    let all = reader.incidents(&IncidentFilter::default()).unwrap();
    assert_eq!(all.len(), 1, "one incident, not one per collector: {all:?}");
    assert_eq!(all[0].event_count, (PER * n) as i64);
    assert_eq!(
        server
            .psql(
                "shared",
                "SELECT COUNT(*) FROM events WHERE incident_id IS DISTINCT FROM \
                 (SELECT MIN(id) FROM incidents)"
            )
            .unwrap(),
        "0",
        "every event filed under the incident"
    );

    // A clip whose two parts reach two collectors at the same moment is put together once
    // (the agent's lock serialises the two batches: the second sees both parts).
    let mp4: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&mp4))
    };
    let now = ioc_protocol::Timestamp::now();
    let parts = ioc_protocol::split_clip("gate", &mp4, &sha, 25_000, 10.0, now);
    assert_eq!(parts.len(), 2);
    let part = |i: usize| Ingested {
        received_at_ms: t0,
        message: Message::ClipPart {
            agent: "site-a".into(),
            event_id: "site-a-1".into(),
            header: Box::new(parts[i].0.clone()),
            data: parts[i].1.to_vec(),
        },
    };
    let start = Arc::new(Barrier::new(2));
    std::thread::scope(|s| {
        for i in 0..2 {
            let (start, config, snaps, item) =
                (start.clone(), &config, dir.path().join("s"), part(i));
            s.spawn(move || {
                let mut store = config.open(&snaps).unwrap();
                start.wait();
                let c = store.insert_batch(&[item]).unwrap();
                assert_eq!(
                    c.agents["site-a"].clip_parts,
                    [("site-a-1".to_owned(), i as u32)]
                );
            });
        }
    });
    let clip = reader
        .clip("site-a", "site-a-1")
        .unwrap()
        .expect("one clip");
    assert_eq!(std::fs::read(&clip.path).unwrap(), mp4);
    assert_eq!(
        server
            .psql("shared", "SELECT COUNT(*) FROM clip_parts")
            .unwrap(),
        "0"
    );

    // A database from a newer collector is refused, by name.
    server
        .psql("shared", "UPDATE ioc_schema SET version = version + 1")
        .unwrap();
    drop(reader);
    let err = config.open(&dir.path().join("s")).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert!(err.to_string().contains("/shared"), "{err}");
}

#[test]
fn wrong_password_and_dead_server_are_clear_errors() {
    let mut server = Postgres::start(false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    server.create_database("ioc").unwrap();
    let mut config = pg_config(&server, dir.path(), "ioc");
    config.password_file = None;
    config.password = Some(ioc_collector::config::Secret::new("not the password"));
    let err = config.open(&dir.path().join("s")).unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}/ioc", server.port)),
        "{err}"
    );
    assert!(
        !err.contains("not the password"),
        "no secret in errors: {err}"
    );

    let missing = PostgresConfig {
        password_file: Some(dir.path().join("nope")),
        password: None,
        ..config.clone()
    };
    let err = missing.open(&dir.path().join("s")).unwrap_err().to_string();
    assert!(
        err.contains("password_file") && err.contains("nope"),
        "{err}"
    );

    let good = pg_config(&server, dir.path(), "ioc");
    drop(good.open(&dir.path().join("s")).unwrap());
    server.stop();
    let err = good.open(&dir.path().join("s")).unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made at test time (no key is
/// committed): `(ca_pem, server_cert_pem, server_key_pem)`.
fn make_pki(ca_name: &str) -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

#[test]
fn tls_to_the_server_is_verified() {
    let (ca_pem, cert, key) = make_pki("ioc-edge test CA");
    let server = Postgres::start_tls(false, &cert, &key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    server.create_database("ioc").unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    let mut config = pg_config(&server, dir.path(), "ioc");
    config.tls = Some(ioc_collector::config::TlsConfig {
        ca_file: dir.path().join("ca.pem"),
        client_cert: None,
        client_key: None,
    });
    let mut store = config.open(&dir.path().join("s")).unwrap();
    store.insert_batch(&[event(1, 1_714_521_600_000)]).unwrap();
    assert_eq!(store.count_events("site-a").unwrap(), 1);
    assert_eq!(
        server
            .psql(
                "ioc",
                "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'ioc-collector' AND s.ssl"
            )
            .unwrap(),
        "1",
        "the collector's connection is encrypted"
    );
    drop(store);

    // A server whose certificate another CA signed is refused, and the data stays put.
    let (other_ca, _, _) = make_pki("someone else's CA");
    std::fs::write(dir.path().join("other.pem"), other_ca).unwrap();
    config.tls.as_mut().unwrap().ca_file = dir.path().join("other.pem");
    let err = config.open(&dir.path().join("s")).unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn a_restarted_server_is_reconnected_to_and_nothing_is_lost() {
    let mut server = Postgres::start(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    server.create_database("ioc").unwrap();
    let config = pg_config(&server, dir.path(), "ioc");
    let mut store = config.open(&dir.path().join("s")).unwrap();
    let t0 = 1_714_521_600_000;
    store.insert_batch(&[event(1, t0)]).unwrap();

    // The server crashes and comes back: the connection is gone. A batch tried then fails
    // whole (ingest retries it, unacked); a later try reconnects and commits it.
    server.restart().unwrap();
    let batch = [event(2, t0 + 1), event(3, t0 + 2)];
    let mut failures = 0;
    while let Err(e) = store.insert_batch(&batch) {
        failures += 1;
        assert!(failures < 5, "no reconnect after {failures} tries: {e}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(failures <= 1, "one failed try at most: {failures}");
    assert_eq!(store.count_events("site-a").unwrap(), 3);
    assert_eq!(store.seq_gaps("site-a").unwrap(), vec![]);
    let all = store.incidents(&IncidentFilter::default()).unwrap();
    assert_eq!((all.len(), all[0].event_count), (1, 3));

    // Reads reconnect too (the API's connection).
    let reader = config.open(&dir.path().join("s")).unwrap();
    server.restart().unwrap();
    let n = (0..5).find_map(|_| {
        reader.count_events("site-a").ok().or_else(|| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            None
        })
    });
    assert_eq!(n, Some(3));
}
