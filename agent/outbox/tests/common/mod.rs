//! Test helpers: a real mosquitto on a free loopback port with a password file and an ACL that
//! lets each agent write only its own topics (the same rules as `ioc-testkit`'s harness, kept
//! here so this crate's tests do not build GStreamer), and a raw rumqttc "collector".

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto child process; killed on drop.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Broker {
    /// `users`: (name, password, is_collector).
    pub fn start(users: &[(&str, &str, bool)]) -> Broker {
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
        let conf = format!(
            "user {me}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence true\npersistence_location {}/\nautosave_interval 1\n\
             log_dest stderr\nlog_type error\nlog_type warning\n",
            passwd.display(),
            dir.path().join("acl").display(),
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            child: None,
            dir,
            port,
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
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
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
