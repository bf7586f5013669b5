//! Test helpers: a real mosquitto on a free loopback port with a password file and an ACL that
//! lets each agent write only its own topics (the same rules as `ioc-testkit`'s harness, kept
//! here so this crate's tests do not build GStreamer), optionally with a TLS listener too, a raw
//! rumqttc "collector", and a TCP proxy that a test can silence.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// PEM files for the broker's TLS listener.
pub struct TlsFiles {
    /// The CA that signed `cert`.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A mosquitto child process; killed on drop.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The plain TCP listener.
    pub port: u16,
    /// The TLS listener, with [`Broker::start_tls`].
    pub tls_port: Option<u16>,
}

impl Broker {
    /// `users`: (name, password, is_collector).
    pub fn start(users: &[(&str, &str, bool)]) -> Broker {
        Self::start_with(users, None)
    }

    /// As [`Broker::start`], plus a TLS listener on `tls_port` that presents `tls.cert`.
    /// Same users and ACL on both listeners.
    pub fn start_tls(users: &[(&str, &str, bool)], tls: &TlsFiles) -> Broker {
        Self::start_with(users, Some(tls))
    }

    fn start_with(users: &[(&str, &str, bool)], tls: Option<&TlsFiles>) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "").unwrap();
        for (name, pw, _) in users {
            let st = Command::new("mosquitto_passwd")
                .args(["-b", passwd.to_str().unwrap(), name, pw])
                .stdout(Stdio::null())
                .status()
                .expect("mosquitto_passwd");
            assert!(st.success());
        }
        let mut acl = String::new();
        for (name, _, collector) in users {
            if *collector {
                acl.push_str(&format!(
                    "user {name}\ntopic read ioc/#\ntopic write ioc/v1/agents/+/acks\n\n"
                ));
            }
        }
        for t in [
            "status",
            "cameras/+/status",
            "events",
            "snapshots/+",
            "counts",
        ] {
            acl.push_str(&format!("pattern write ioc/v1/agents/%u/{t}\n"));
        }
        acl.push_str("pattern read ioc/v1/agents/%u/acks\n");
        std::fs::write(dir.path().join("acl"), acl).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        // Run as root, mosquitto drops to user `mosquitto`, which cannot write our temp dir:
        // stay the current user.
        let me = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mut conf = format!(
            "user {me}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence true\npersistence_location {}/\nautosave_interval 1\n\
             log_dest stderr\nlog_type error\nlog_type warning\n",
            passwd.display(),
            dir.path().join("acl").display(),
            dir.path().join("data").display()
        );
        // Global settings (password file, ACL) apply to every listener: mosquitto 2's default
        // `per_listener_settings false`.
        let tls_port = tls.map(|t| {
            let tls_port = free_port();
            conf.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
            tls_port
        });
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            child: None,
            dir,
            port,
            tls_port,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        self.kill();
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("mosquitto"));
        let child = Command::new(bin)
            .args([
                "-c",
                self.dir.path().join("mosquitto.conf").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in std::iter::once(self.port).chain(self.tls_port) {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "mosquitto did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw MQTT client: every received publish comes out of `rx` as (topic, payload).
pub struct Raw {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    pub pubacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects as `user` (clean session) and subscribes to `filters`; returns once subscribed.
pub async fn raw(port: u16, id: &str, user: &str, pw: &str, filters: &[&str]) -> Raw {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, pw);
    o.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut el) = AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    let pubacks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pa = pubacks.clone();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    pa.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
            .await
            .expect("suback")
            .unwrap();
    }
    Raw {
        client,
        rx,
        pubacks,
        task,
    }
}

/// Waits up to `secs` for `cond`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy from a free loopback port to `127.0.0.1:target` that a test can silence:
/// after [`Proxy::freeze`] it forwards nothing and closes nothing (bytes read are dropped), as
/// when a site's uplink dies without a FIN or RST, so only keep-alive notices; connections
/// made while frozen are closed at once. Everything stops when it is dropped.
pub struct Proxy {
    pub port: u16,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every pump.
            let mut pumps = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if f.load(Ordering::SeqCst) {
                    continue; // dropped: closed
                }
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                pumps.spawn(pump(cr, sw, f.clone()));
                pumps.spawn(pump(sr, cw, f.clone()));
            }
        });
        Proxy { port, frozen, task }
    }

    /// From now on nothing goes through, in either direction, and nothing is closed.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if frozen.load(Ordering::SeqCst) {
                    continue;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    // Ending one direction (peer closed) while frozen would tell the other side: keep the
    // write half open until the proxy is dropped.
    if frozen.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}
