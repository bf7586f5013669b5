//! The collector under attack, end to end: a real mosquitto (with the shipped
//! `use_username_as_clientid` and per-agent ACL), the whole collector (ingest, store, API),
//! hostile agents as raw MQTT clients and hostile browsers as HTTP clients sending what a
//! browser would. Each test says what must hold and what must be refused.
//!
//! - a malformed-payload and dead-letter storm: every valid event stored exactly once, the
//!   dead letters cut and capped;
//! - a login flood: memory bounded, the attacker throttled, the real user still let in;
//! - spoofing: another agent's snapshot, the collector's client id, an agent's own acks
//!   topic, a seq far in the future;
//! - wrong clocks (1970, 2100, an hour behind): stored, acked, timed by arrival, never expired
//!   early;
//! - CSRF with a foreign Origin; the Content-Security-Policy;
//! - stale health: broker gone, states shown as unknown, the collector's own link shown down;
//! - a crashed agent: its Last Will (dated when it started) marks it offline;
//! - a preview flood at QoS 1 on an agent's own topic: every other site's events still flow.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{broker_with, Agent, Broker};
use ioc_collector::auth::hash_password;
use ioc_collector::clock::SystemClock;
use ioc_collector::service::{Collector, Parts};
use ioc_collector::{Config, ConnState, Store};
use reqwest::{Client, StatusCode};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "a long operator password";
const T: Duration = Duration::from_secs(20);
/// The shipped broker's settings that matter here (config/mosquitto.conf, deploy/demo.sh):
/// client id = user name, and no QoS 1 message dropped for a collector that is behind.
const BROKER_EXTRA: &str =
    "use_username_as_clientid true\nmax_queued_messages 0\nmax_inflight_messages 1000\n";

struct Site {
    collector: Option<Collector>,
    broker: Broker,
    base: String,
    dir: tempfile::TempDir,
}

impl Site {
    async fn start(agents: &[&str], extra_toml: &str) -> Site {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let mut users: Vec<(&str, &str, bool)> = agents.iter().map(|a| (*a, "pw", false)).collect();
        users.push(("central", "pw", true));
        let broker = broker_with(&users, BROKER_EXTRA);
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"collector-1\"\n\
             username = \"central\"\npassword = \"pw\"\n\
             [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n{extra_toml}",
            broker.port,
            dir.path().join("ioc.db").display(),
            dir.path().join("snapshots").display(),
        );
        let cfg = Config::parse(&text, Path::new("hostile.toml")).unwrap();
        cfg.validate(Path::new("hostile.toml")).unwrap();
        {
            let mut s = cfg.store.open().unwrap();
            s.put_user(
                "op",
                &hash_password(PASSWORD).unwrap(),
                "operator",
                "test",
                0,
            )
            .unwrap();
        }
        let collector = Collector::start(&cfg, Arc::new(SystemClock), Parts::All)
            .await
            .unwrap();
        collector.ingest().unwrap().wait_connected(T).await.unwrap();
        let base = format!("http://{}", collector.http_addr);
        // The subscriptions may still be in flight.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Site {
            collector: Some(collector),
            broker,
            base,
            dir,
        }
    }

    fn collector(&self) -> &Collector {
        self.collector.as_ref().unwrap()
    }

    fn store(&self) -> Store {
        Store::open(
            &self.dir.path().join("ioc.db"),
            &self.dir.path().join("snapshots"),
        )
        .unwrap()
    }

    async fn login(&self, from: IpAddr) -> String {
        let r = client_from(from)
            .post(format!("{}/api/login", self.base))
            .json(&json!({"username": "op", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the real user logs in");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Stops the collector; its files stay with the returned directory.
    async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(c) = self.collector.take() {
            c.shutdown(Duration::from_secs(10)).await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

fn client_from(ip: IpAddr) -> Client {
    Client::builder().local_address(ip).build().unwrap()
}

fn event(agent: &str, seq: u64, observed_at: &str, snapshot: Option<&[u8]>) -> Vec<u8> {
    let mut v = json!({
        "schema": "ioc.event/1", "id": format!("{agent}-{seq}"), "seq": seq, "phase": "instant",
        "agent": agent, "camera": "gate", "kind": "intrusion", "severity": "warning",
        "rule": "fence", "zone": "yard", "observed_at": observed_at,
    });
    if let Some(jpeg) = snapshot {
        v["snapshot"] = json!({
            "sha256": hex::encode(Sha256::digest(jpeg)), "size": jpeg.len(),
            "width": 4, "height": 4,
        });
    }
    v.to_string().into_bytes()
}

fn now_iso() -> String {
    ioc_collector::incident::ts(ioc_collector::store::now_ms())
        .as_str()
        .to_owned()
}

fn jpeg(tag: &str) -> Vec<u8> {
    let mut j = b"\xff\xd8\xff\xe0".to_vec();
    j.extend_from_slice(tag.as_bytes());
    j
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_dead_letter_storm_keeps_every_valid_event_once() {
    let site = Site::start(
        &["a1"],
        "[ingest]\ndead_letters_max = 500\ndead_letter_bytes = 256\n",
    )
    .await;
    let mut agent = Agent::connect(site.broker.port, "a1").await;
    let big = vec![b'x'; 8 * 1024]; // under rumqttc's default 10 KiB packet limit
    let bad: [&[u8]; 5] = [
        b"{nope",
        br#"{"schema":"ioc.event/9","seq":1}"#,
        br#"{"schema":"ioc.event/1","seq":"one"}"#,
        b"\x00\x01\x02",
        &big,
    ];
    let now = now_iso();
    for seq in 1..=400u64 {
        agent.publish("events", event("a1", seq, &now, None)).await;
        for b in bad {
            agent.publish("events", b.to_vec()).await;
        }
        agent.publish("snapshots/a1-x", b"GIF89a".to_vec()).await;
    }
    agent.wait_acked(1..=400, Duration::from_secs(120)).await;
    let m = site.collector().ingest().unwrap().metrics().clone();
    // Refusals at the door are counted on arrival, the store's after their commit: wait
    // until every message is committed and acknowledged to the broker.
    until("every bad message counted and committed", || {
        let s = m.snapshot();
        s.dead_lettered >= 400 * 6 && s.mqtt_acks >= s.received
    })
    .await;
    let s = site.store();
    assert_eq!(
        s.count_events("a1").unwrap(),
        400,
        "valid events all stored"
    );
    assert_eq!(s.distinct_seqs("a1").unwrap(), 400, "and each once");
    let kept = s.count_dead_letters().unwrap();
    assert!(kept <= 500, "dead letters capped: {kept}");
    let letters = s.dead_letters(500).unwrap();
    assert!(
        letters.iter().all(|d| d.payload.len() <= 256),
        "payloads cut"
    );
    assert!(
        letters.iter().any(|d| d.size == 8 * 1024),
        "original size kept"
    );
    let snap = m.snapshot();
    assert!(snap.dead_letters_truncated >= 400, "{snap:?}");
    assert!(snap.dead_letters_removed >= 400 * 6 - 500, "{snap:?}");
    // The figures are exported.
    let text = m.render_prometheus();
    assert!(text.contains("ioc_collector_dead_letters_removed_total"));
    site.shutdown().await;
}

/// Peak resident memory of this process (the collector runs in it), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_is_bounded_and_throttled_and_the_user_still_gets_in() {
    let site = Site::start(&[], "").await;
    let attacker = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let operator = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let before = peak_rss();
    let http = client_from(attacker);
    let url = format!("{}/api/login", site.base);
    let started = Instant::now();
    let answers = futures::future::join_all((0..200).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .post(url)
                .json(&json!({"username": "op", "password": format!("guess {i}")}))
                .send()
                .await
                .unwrap();
            (r.status(), r.headers().get("retry-after").is_some())
        }
    }))
    .await;
    let flood_s = started.elapsed().as_secs_f64();
    let grown = peak_rss().saturating_sub(before);
    let throttled = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let refused = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    eprintln!(
        "login flood: 200 concurrent guesses in {flood_s:.1} s: {refused} checked and refused, \
         {throttled} throttled; peak memory grew {} MiB",
        grown >> 20
    );
    assert!(answers.iter().all(|(s, _)| *s != StatusCode::OK));
    assert!(throttled >= 150, "the attacker is throttled: {throttled}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
            .all(|(_, retry)| *retry),
        "429 says when to retry"
    );
    // Unbounded, 200 argon2 checks at 19 MiB each take close to 4 GiB.
    assert!(
        grown < 256 << 20,
        "memory bounded: grew {} MiB",
        grown >> 20
    );
    // The real user, from another address, gets in; the attacker is still refused.
    site.login(operator).await;
    let again = http
        .post(&url)
        .json(&json!({"username": "op", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    site.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_snapshots_client_ids_acks_and_seqs_are_refused() {
    let site = Site::start(&["site-a", "site-b", "site-c"], "").await;
    let mut a = Agent::connect(site.broker.port, "site-a").await;
    let mut b = Agent::connect(site.broker.port, "site-b").await;
    let now = now_iso();
    // B's event declares its JPEG; the JPEG follows.
    let jb = jpeg("site-b evidence");
    b.publish("events", event("site-b", 1, &now, Some(&jb)))
        .await;
    b.wait_acked([1], T).await;
    b.publish("snapshots/site-b-1", jb.clone()).await;
    b.wait_acked_id("site-b-1", T).await;
    // A publishes its own picture for B's event, on its own topic: stored as A's, harmless.
    a.publish("snapshots/site-b-1", jpeg("forged by A")).await;
    a.wait_acked_id("site-b-1", T).await;
    // B, or anyone on B's topic, sending another JPEG for the same event: refused, not acked.
    b.acked_ids.clear();
    b.publish("snapshots/site-b-1", jpeg("swapped")).await;
    let token = site.login(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let http = Client::new();
    let m = site.collector().ingest().unwrap().metrics().clone();
    until("the swap dead-lettered", || {
        m.snapshot()
            .dead_letter_reasons
            .get("snapshot_mismatch")
            .is_some_and(|n| *n == 1)
    })
    .await;
    let served = http
        .get(format!("{}/api/snapshots/site-b/site-b-1", site.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        served.bytes().await.unwrap().as_ref(),
        jb.as_slice(),
        "B's own picture"
    );

    // C connects with the collector's client id: the broker gives it its own instead, so the
    // collector stays connected.
    let errors_before = m.snapshot().connection_errors;
    let mut o = MqttOptions::new("collector-1", "127.0.0.1", site.broker.port);
    o.set_credentials("site-c", "pw");
    let (spoof, mut spoof_loop) = AsyncClient::new(o, 10);
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = spoof_loop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = acks_tx.send(p.topic);
            }
        }
    });
    spoof
        .subscribe("ioc/v1/agents/site-c/acks", QoS::AtLeastOnce)
        .await
        .unwrap();
    // C also tries to write its own acks (which would make its outbox drop unstored events).
    spoof
        .publish(
            "ioc/v1/agents/site-c/acks",
            QoS::AtLeastOnce,
            false,
            br#"{"schema":"ioc.ack/1","seqs":[[1,100]]}"#.to_vec(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        site.collector().ingest().unwrap().conn_state(),
        ConnState::Connected
    );
    assert_eq!(
        m.snapshot().connection_errors,
        errors_before,
        "never knocked off"
    );
    assert!(
        acks_rx.try_recv().is_err(),
        "the broker dropped C's own ack"
    );
    // Ingest still works: B's next event is acked.
    b.publish("events", event("site-b", 2, &now, None)).await;
    b.wait_acked([2], T).await;
    // Acks come in commit order: the swap's would have arrived by now.
    assert!(
        !b.acked_ids.contains("site-b-1"),
        "a refused JPEG is not acked"
    );

    // A seq far beyond B's history is refused (not acked); the maximum is refused at once.
    b.publish("events", event("site-b", 2 + 20_000_000, &now, None))
        .await;
    b.publish("events", event("site-b", u64::MAX, &now, None))
        .await;
    until("seq jumps dead-lettered", || {
        let r = m.snapshot().dead_letter_reasons;
        r.get("seq_jump") == Some(&1) && r.get("seq_out_of_range") == Some(&1)
    })
    .await;
    let s = site.store();
    assert_eq!(s.max_seq("site-b").unwrap(), 2);
    assert_eq!(s.seq_gaps("site-b").unwrap(), vec![]);
    site.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_clocks_are_timed_by_arrival_and_never_expire_early() {
    let site = Site::start(&["box-1970", "box-late"], "").await;
    let mut early = Agent::connect(site.broker.port, "box-1970").await;
    early
        .publish("events", event("box-1970", 1, "1970-01-01T00:05:00Z", None))
        .await;
    early
        .publish("events", event("box-1970", 2, "2100-01-01T00:00:00Z", None))
        .await;
    early
        .publish("events", event("box-1970", 3, "9999-12-31T23:59:59Z", None))
        .await;
    early.wait_acked(1..=3, T).await;
    // An agent an hour behind says so on its live status; its plausible-looking times are
    // replaced too.
    let mut late = Agent::connect(site.broker.port, "box-late").await;
    let hour_ago = ioc_collector::incident::ts(ioc_collector::store::now_ms() - 3_600_000);
    let status = json!({"schema": "ioc.agent-status/1", "state": "online", "version": "1",
                        "cameras": ["gate"], "at": hour_ago.as_str()});
    late.publish("status", status.to_string().into_bytes())
        .await;
    let m = site.collector().ingest().unwrap().metrics().clone();
    until("status stored", || m.snapshot().statuses >= 1).await;
    late.publish("events", event("box-late", 1, hour_ago.as_str(), None))
        .await;
    late.wait_acked([1], T).await;

    let now = ioc_collector::store::now_ms();
    let s = site.store();
    let incidents = s.incidents(&Default::default()).unwrap();
    assert_eq!(incidents.len(), 2, "one incident per box (same key)");
    for i in &incidents {
        let first = i.first_at.unix_millis();
        assert!(
            (now - first).abs() < 60_000,
            "{}: filed at its arrival, not at {}",
            i.site,
            i.first_at.as_str()
        );
    }
    assert_eq!(m.snapshot().clock_corrected, 4);
    // The health page shows the measured skew.
    let token = site.login(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let h: Value = Client::new()
        .get(format!("{}/api/health", site.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let skew = h["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["site"] == "box-late")
        .unwrap()["clock_skew_ms"]
        .as_i64()
        .unwrap();
    assert!((skew + 3_600_000).abs() < 60_000, "skew {skew}");
    // Retention the next hour, and in a week, with 90 days kept: all still there.
    drop(s);
    let dir = site.shutdown().await;
    let mut s = Store::open(&dir.path().join("ioc.db"), &dir.path().join("snapshots")).unwrap();
    for later in [3_600_000, 7 * 86_400_000] {
        let (e, _, _) = s.apply_retention(now + later, 90, 30, 30).unwrap();
        assert_eq!(e, 0);
    }
    assert_eq!(s.count_events("box-1970").unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_are_refused_and_pages_carry_a_csp() {
    let site = Site::start(&[], "").await;
    let token = site.login(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let http = Client::new();
    let cookie = format!("ioc_session={token}");
    let host = site.base.trim_start_matches("http://").to_owned();
    let post = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut r = http
            .post(format!("{}/api/silences", site.base))
            .header("cookie", &cookie)
            .json(&json!({"site": "s", "ends_at_ms": i64::MAX / 2, "reason": "csrf"}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(f) = fetch_site {
            r = r.header("sec-fetch-site", f);
        }
        r.send()
    };
    let foreign = post(Some("https://evil.example"), None).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let cross = post(None, Some("cross-site")).await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let lookalike = post(Some(&format!("http://{host}.evil.example")), None)
        .await
        .unwrap();
    assert_eq!(lookalike.status(), StatusCode::FORBIDDEN);
    // The console itself (same origin) and non-browser clients (no Origin) may.
    let own = post(Some(&format!("http://{host}")), Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(post(None, None).await.unwrap().status(), StatusCode::OK);
    // Behind a proxy that rewrites Host, the browser's host comes as X-Forwarded-Host.
    let proxied = http
        .post(format!("{}/api/silences", site.base))
        .header("cookie", &cookie)
        .header("origin", "https://ioc.example")
        .header("x-forwarded-host", "ioc.example")
        .json(&json!({"site": "s", "ends_at_ms": i64::MAX / 2, "reason": "proxied"}))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    // Nothing was written by the refused requests.
    let list: Value = http
        .get(format!("{}/api/silences", site.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["silences"].as_array().unwrap().len(), 3);
    for page in ["/login", "/"] {
        let r = http
            .get(format!("{}{page}", site.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(
            !r.text().await.unwrap().contains("<script>"),
            "no inline script"
        );
    }
    site.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_health_is_unknown_and_a_cut_off_collector_says_so() {
    let mut site = Site::start(&["a1"], "[incidents]\nstale_after_sec = 2\n").await;
    let a = Agent::connect(site.broker.port, "a1").await;
    let now = now_iso();
    a.publish(
        "status",
        json!({"schema": "ioc.agent-status/1", "state": "online", "version": "1",
               "cameras": ["gate"], "at": now, "clock": "ok"})
        .to_string()
        .into_bytes(),
    )
    .await;
    a.publish(
        "cameras/gate/status",
        json!({"schema": "ioc.camera-status/1", "state": "streaming", "fps": 10.0, "at": now})
            .to_string()
            .into_bytes(),
    )
    .await;
    let token = site.login(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let http = Client::new();
    let health = || async {
        http.get(format!("{}/api/health", site.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let deadline = Instant::now() + T;
    let h = loop {
        let h = health().await;
        if h["cameras"][0]["state"] == "streaming" {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h["agents"][0]["state"], "online");
    assert_eq!(h["collector"]["broker"]["state"], "connected");
    // The broker dies: nothing new can arrive.
    site.broker.kill();
    drop(a);
    let deadline = Instant::now() + T;
    let h = loop {
        let h = health().await;
        if h["cameras"][0]["state"] == "unknown" && h["collector"]["broker"]["state"] != "connected"
        {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        h["agents"][0]["state"], "unknown",
        "never green while blind"
    );
    assert_eq!(h["agents"][0]["last_state"], "online");
    assert_eq!(h["cameras"][0]["last_state"], "streaming");
    assert!(h["cameras"][0]["age_s"].as_i64().unwrap() >= 2);
    site.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_agent_goes_offline_by_its_last_will() {
    let site = Site::start(&["crashy"], "").await;
    let started = ioc_collector::incident::ts(ioc_collector::store::now_ms() - 60_000);
    let status = |state: &str, at: &str| {
        json!({"schema": "ioc.agent-status/1", "state": state, "version": "1",
               "cameras": [], "at": at})
        .to_string()
        .into_bytes()
    };
    // Like the agent: the will is dated when it started, before every `online` it sends.
    let mut o = MqttOptions::new("crashy", "127.0.0.1", site.broker.port);
    o.set_credentials("crashy", "pw");
    o.set_last_will(rumqttc::LastWill::new(
        "ioc/v1/agents/crashy/status",
        status("offline", started.as_str()),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(o, 10);
    let poll = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
        .publish(
            "ioc/v1/agents/crashy/status",
            QoS::AtLeastOnce,
            true,
            status("online", &now_iso()),
        )
        .await
        .unwrap();
    let store = site.store();
    let state = || store.agent_state("crashy").unwrap().map(|s| s.0);
    until("online", || state().as_deref() == Some("online")).await;
    // The process dies: no DISCONNECT, the socket just closes.
    poll.abort();
    drop(client);
    until("offline by the Last Will", || {
        state().as_deref() == Some("offline")
    })
    .await;
    site.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_flood_at_qos_1_does_not_stop_other_sites_events() {
    let site = Site::start(&["evil", "a1"], "").await;
    let evil = Agent::connect(site.broker.port, "evil").await;
    // More QoS 1 previews than the broker lets be in flight to the collector (1000): were
    // they not acknowledged (or taken at QoS 0), every later event would wait behind them.
    for i in 0..1_500u32 {
        let payload = format!("{{\"schema\":\"ioc.preview/1\",\"n\":{i}}}\n").into_bytes();
        evil.publish("previews/gate", payload).await;
    }
    // Let them all reach the broker (and the collector's window) first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut honest = Agent::connect(site.broker.port, "a1").await;
    let now = now_iso();
    for seq in 1..=20u64 {
        honest.publish("events", event("a1", seq, &now, None)).await;
    }
    honest.wait_acked(1..=20, T).await;
    assert_eq!(site.store().count_events("a1").unwrap(), 20);
    site.shutdown().await;
}
