//! Outgoing webhooks end to end: an agent's events through a real mosquitto, the collector,
//! and a real HTTP receiver on loopback that refuses the first attempts (HTTP 500). The
//! critical incident arrives after the retries, once accepted, signed, with one delivery id
//! across attempts; the warning one is filtered out by severity. Over https, a receiver is
//! trusted only through the configured CA: a CA of the same name with another key is refused.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{Agent, Broker};
use ioc_collector::clock::SystemClock;
use ioc_collector::service::{Collector, Parts};
use ioc_collector::webhook::hmac_sha256;
use ioc_collector::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SECRET: &str = "webhook test secret 0123456789";

/// A collector on `broker` with a store in `dir` and `extra` appended to its config (the
/// webhooks), connected to the broker.
async fn collector(broker: &Broker, dir: &std::path::Path, extra: &str) -> Collector {
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"webhook-test\"\n\
         username = \"c\"\npassword = \"pw\"\n\
         [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n{extra}",
        broker.port,
        dir.join("ioc.db").display(),
        dir.join("snaps").display(),
    );
    let path = std::path::Path::new("test.toml");
    let cfg = Config::parse(&text, path).unwrap();
    cfg.check_environment(path).unwrap();
    let collector = Collector::start(&cfg, Arc::new(SystemClock), Parts::All)
        .await
        .unwrap();
    collector
        .ingest()
        .unwrap()
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    collector
}

#[derive(Default)]
struct Received {
    /// `(delivery id, signature header, body)` of every attempt, answered or not.
    attempts: Vec<(String, String, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_incidents_reach_the_receiver_signed_after_retries() {
    // The receiver: 500 for the first two attempts, 200 after.
    let got = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = listener.local_addr().unwrap();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let mut r = g.lock().unwrap();
                r.attempts
                    .push((h("x-ioc-delivery"), h("x-ioc-signature"), body));
                if r.attempts.len() <= 2 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let broker = Broker::with_users(&[("gate-site", "pw", false), ("c", "pw", true)]);
    let dir = tempfile::tempdir().unwrap();
    let collector = collector(
        &broker,
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\
             [[webhooks]]\nname = \"pager\"\nurl = \"http://{receiver}/hook?token=t\"\n\
             secret = \"{SECRET}\"\nseverities = [\"critical\"]\nmax_backoff_sec = 1\n\
             changes = [\"opened\", \"changed\", \"escalated\"]\n"
        ),
    )
    .await;

    let mut agent = Agent::connect(broker.port, "gate-site").await;
    let now = ioc_collector::incident::ts(ioc_collector::store::now_ms());
    // The critical event's snapshot arrives after it: that is evidence, not a `changed`
    // incident, so it is not announced (the receiver asked for `changed` too).
    let jpeg = b"\xff\xd8\xff\xe0 a snapshot".to_vec();
    for (seq, kind, severity) in [(1, "loitering", "warning"), (2, "intrusion", "critical")] {
        let mut ev = json!({
            "schema": "ioc.event/1", "id": format!("gate-site-{seq}"), "seq": seq,
            "phase": "instant", "agent": "gate-site", "camera": "north-gate", "kind": kind,
            "severity": severity, "rule": format!("{kind} rule"), "zone": "fence",
            "observed_at": now.as_str(),
        });
        if seq == 2 {
            ev["snapshot"] = json!({
                "sha256": hex::encode(Sha256::digest(&jpeg)), "size": jpeg.len(),
                "width": 4, "height": 4,
            });
        }
        agent.publish("events", ev.to_string().into_bytes()).await;
    }
    agent.publish("snapshots/gate-site-2", jpeg.clone()).await;

    let t0 = Instant::now();
    while got.lock().unwrap().attempts.len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "only {} attempts arrived",
            got.lock().unwrap().attempts.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retried_after = t0.elapsed();
    agent
        .wait_acked_id("gate-site-2", Duration::from_secs(10))
        .await; // the snapshot is stored
                // Nothing more comes: the warning was filtered, the accepted one is not sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = std::mem::take(&mut got.lock().unwrap().attempts);
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    // One delivery id across the retries, so the receiver can drop repeats.
    let delivery = &attempts[0].0;
    assert!(delivery.starts_with("pager-"), "{delivery}");
    assert!(attempts.iter().all(|a| &a.0 == delivery));
    // Waited between attempts (1 s each, jittered).
    assert!(
        retried_after > Duration::from_millis(1500),
        "{retried_after:?}"
    );
    for (_, sig, body) in &attempts {
        // t=UNIX,sha256=HMAC(secret, "UNIX." + body)
        let (t, mac) = sig
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",sha256="))
            .unwrap_or_else(|| panic!("signature {sig:?}"));
        let want = hmac_sha256(SECRET.as_bytes(), format!("{t}.{body}").as_bytes());
        assert_eq!(mac, hex::encode(want), "bad signature");
        let age = ioc_collector::store::now_ms() / 1000 - t.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "{age}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["schema"], "ioc.webhook/1");
        assert_eq!(v["change"], "opened");
        assert_eq!(v["incident"]["kind"], "intrusion");
        assert_eq!(v["incident"]["severity"], "critical");
        assert_eq!(v["incident"]["rule"], "intrusion rule");
        assert_eq!(v["incident"]["site"], "gate-site");
    }
    collector.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// A blocking HTTPS receiver on loopback (rustls, the test CA's `localhost` certificate):
/// answers 200 to every request and hands each body to `bodies`.
fn tls_receiver(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (u16, std::sync::mpsc::Receiver<String>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, tx) = (config.clone(), tx.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                loop {
                    let Ok(n) = tls.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let _ = tx.send(text[end + 4..end + 4 + len].to_owned());
                        let _ = tls.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        let _ = tls.flush();
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_checked_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, wrong) = ioc_testkit::pki::make(dir.path());
    let (port, bodies) = tls_receiver(&pki.cert, &pki.key);
    let broker = Broker::with_users(&[("gate-site", "pw", false), ("c", "pw", true)]);
    let token = "metrics-token-0123456789abcdef0123456789";
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nmetrics_token = \"{token}\"\n\
         [[webhooks]]\nname = \"tls\"\nurl = \"https://localhost:{port}/hook\"\n\
         secret = \"{SECRET}\"\nca_file = \"{}\"\n\
         [[webhooks]]\nname = \"wrong-ca\"\nurl = \"https://localhost:{port}/hook\"\n\
         secret = \"{SECRET}\"\nca_file = \"{}\"\nmax_attempts = 1\n",
        pki.ca.display(),
        wrong[0].display(),
    );
    let collector = collector(&broker, dir.path(), &extra).await;
    let agent = Agent::connect(broker.port, "gate-site").await;
    let now = ioc_collector::incident::ts(ioc_collector::store::now_ms());
    let ev = json!({
        "schema": "ioc.event/1", "id": "gate-site-1", "seq": 1, "phase": "instant",
        "agent": "gate-site", "camera": "north-gate", "kind": "intrusion",
        "severity": "critical", "rule": "fence", "zone": "fence", "observed_at": now.as_str(),
    });
    agent.publish("events", ev.to_string().into_bytes()).await;
    let body = tokio::task::spawn_blocking(move || bodies.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the https receiver got the notification");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["webhook"].as_str(), v["change"].as_str()),
        (Some("tls"), Some("opened"))
    );
    // The receiver whose certificate the other CA did not sign is refused by the TLS check:
    // counted as failed, never delivered.
    let metrics = format!("http://{}/metrics", collector.http_addr);
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        let text = http
            .get(&metrics)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = |w: &str, r: &str| {
            format!(
                "ioc_collector_webhook_notifications_total{{webhook=\"{w}\",result=\"{r}\"}} 1\n"
            )
        };
        if text.contains(&line("tls", "delivered")) && text.contains(&line("wrong-ca", "failed")) {
            assert!(!text.contains(&line("wrong-ca", "delivered")), "{text}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    collector.shutdown(Duration::from_secs(10)).await.unwrap();
}
