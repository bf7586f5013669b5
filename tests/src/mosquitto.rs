//! A real mosquitto broker for tests: a child process on a loopback port with
//! a password file, an ACL that lets each agent write only its own topics, and
//! on-disk persistence, so a test can `kill -9` it and start it again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A user of the broker.
#[derive(Clone, Debug)]
pub struct User {
    /// User name (for agents: the agent id).
    pub name: String,
    /// Password.
    pub password: String,
    /// Collectors may read every agent's topics and write acks; agents only their own.
    pub collector: bool,
}

impl User {
    /// An agent user: writes `{root}/v1/agents/{name}/#`, reads its own acks.
    pub fn agent(name: &str, password: &str) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            collector: false,
        }
    }
    /// A collector user.
    pub fn collector(name: &str, password: &str) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            collector: true,
        }
    }
}

/// A running (or stopped) mosquitto with its config in a temporary directory.
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Mosquitto {
    /// Writes the password file and ACL for `users` and starts the broker on `port` (0 = free port).
    pub fn start(users: &[User], port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = if port == 0 { crate::free_port() } else { port };
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "")?;
        for u in users {
            let st = Command::new("mosquitto_passwd")
                .args(["-b", passwd.to_str().unwrap(), &u.name, &u.password])
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "mosquitto_passwd failed");
        }
        let mut acl = String::new();
        for u in users.iter().filter(|u| u.collector) {
            acl.push_str(&format!(
                "user {}\ntopic read ioc/#\ntopic write ioc/v1/agents/+/acks\n\n",
                u.name
            ));
        }
        // Agents: their own topics only, and only read their acks.
        acl.push_str("pattern write ioc/v1/agents/%u/status\n");
        acl.push_str("pattern write ioc/v1/agents/%u/cameras/+/status\n");
        acl.push_str("pattern write ioc/v1/agents/%u/events\n");
        acl.push_str("pattern write ioc/v1/agents/%u/snapshots/+\n");
        acl.push_str("pattern write ioc/v1/agents/%u/counts\n");
        acl.push_str("pattern read ioc/v1/agents/%u/acks\n");
        std::fs::write(dir.path().join("acl"), acl)?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence true\npersistence_location {}/\nautosave_interval 1\nuser {}\n\
             max_queued_messages 0\nmax_inflight_messages 100\n\
             log_dest stderr\nlog_type error\nlog_type warning\n",
            passwd.display(),
            dir.path().join("acl").display(),
            dir.path().join("data").display(),
            // As root, mosquitto would switch to its own user, which cannot write our temp dir.
            whoami()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf)?;
        let mut m = Self {
            child: None,
            dir,
            port,
        };
        m.restart()?;
        Ok(m)
    }

    /// The broker's config directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the broker again (after [`Mosquitto::kill`]) on the same port,
    /// with the same users and whatever it persisted.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let child = Command::new(mosquitto_binary())
            .args([
                "-c",
                self.dir.path().join("mosquitto.conf").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "mosquitto did not start listening on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL: the broker loses whatever it had not persisted.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn whoami() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}
