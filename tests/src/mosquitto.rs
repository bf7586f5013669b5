//! A real mosquitto broker for tests: a child process on a loopback port with a password
//! file and the ACL of the shipped `config/mosquitto.acl` (each agent writes only its own
//! topics; one block per collector user), on-disk persistence (a test can `kill -9` it and
//! start it again), and optionally a TLS listener with the same users.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Queued QoS 1 messages per client, as the shipped `config/mosquitto.conf`: large enough for
/// every outage a test makes, and not 0 ("no limit"): mosquitto 2.0.11 with 0 drops the
/// message that follows a publish the ACL denied (`queue_bound_keeps_what_follows_a_denied_publish`).
pub const QUEUED: u32 = 100_000;

/// A user of the broker.
#[derive(Clone, Debug)]
pub struct User {
    /// User name (for agents: the agent id).
    pub name: String,
    /// Password.
    pub password: String,
    /// Collectors read every agent's topics and write acks; agents only their own topics.
    pub collector: bool,
}

impl User {
    /// An agent user: writes its own topics, reads its own acks.
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

/// Users from `(name, password, is_collector)`, the short form tests write.
pub fn users(list: &[(&str, &str, bool)]) -> Vec<User> {
    list.iter()
        .map(|&(n, p, c)| {
            if c {
                User::collector(n, p)
            } else {
                User::agent(n, p)
            }
        })
        .collect()
}

/// PEM files for the broker's TLS listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed `cert`.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// How to start a broker: see [`Mosquitto::options`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    users: Vec<User>,
    port: u16,
    tls: Option<TlsFiles>,
    extra: String,
}

impl Options {
    /// These users (with their ACL).
    pub fn users(mut self, users: Vec<User>) -> Self {
        self.users = users;
        self
    }
    /// The plain listener's port (default: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// A TLS listener too, on a free port, presenting `tls.cert`; same users and ACL.
    pub fn tls(mut self, tls: &TlsFiles) -> Self {
        self.tls = Some(tls.clone());
        self
    }
    /// More lines of mosquitto config (global settings).
    pub fn extra(mut self, lines: &str) -> Self {
        self.extra = lines.to_owned();
        self
    }
    /// Writes the files and starts the broker; returns once every listener accepts.
    pub fn start(self) -> anyhow::Result<Mosquitto> {
        Mosquitto::start_options(self)
    }
}

/// A running (or stopped) mosquitto with its config in a temporary directory.
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The plain listener's port (127.0.0.1).
    pub port: u16,
    /// The TLS listener's port, when started with [`Options::tls`].
    pub tls_port: Option<u16>,
}

impl Mosquitto {
    /// Options for a broker with no users yet.
    pub fn options() -> Options {
        Options::default()
    }

    /// Starts a broker for `users` on `port` (0 = a free port).
    pub fn start(users: &[User], port: u16) -> anyhow::Result<Self> {
        Self::options().users(users.to_vec()).port(port).start()
    }

    /// Starts a broker for `(name, password, is_collector)` users on a free port; panics
    /// when it cannot (a test cannot go on without it).
    pub fn with_users(list: &[(&str, &str, bool)]) -> Self {
        Self::options()
            .users(users(list))
            .start()
            .expect("mosquitto")
    }

    fn start_options(o: Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = if o.port == 0 {
            crate::free_port()
        } else {
            o.port
        };
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "")?;
        for u in &o.users {
            let st = Command::new("mosquitto_passwd")
                .args(["-b", passwd.to_str().unwrap(), &u.name, &u.password])
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "mosquitto_passwd failed");
        }
        std::fs::write(dir.path().join("acl"), acl(&o.users)?)?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence true\npersistence_location {}/\nautosave_interval 1\nuser {}\n\
             max_queued_messages {QUEUED}\nmax_inflight_messages 100\n{}\n\
             log_dest stderr\nlog_type error\nlog_type warning\n",
            passwd.display(),
            dir.path().join("acl").display(),
            dir.path().join("data").display(),
            // As root, mosquitto would switch to its own user, which cannot write our temp dir.
            whoami(),
            o.extra,
        );
        // Global settings (password file, ACL) apply to every listener: mosquitto 2's
        // default `per_listener_settings false`.
        let tls_port = o.tls.as_ref().map(|t| {
            let tls_port = crate::free_port();
            conf.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
            tls_port
        });
        std::fs::write(dir.path().join("mosquitto.conf"), conf)?;
        let mut m = Self {
            child: None,
            dir,
            port,
            tls_port,
        };
        m.restart()?;
        Ok(m)
    }

    /// The broker's config directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the broker again (after [`Mosquitto::kill`]) on the same ports, with the same
    /// users and whatever it persisted.
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
        for port in std::iter::once(self.port).chain(self.tls_port) {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "mosquitto did not start listening on {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// SIGKILL: the broker loses whatever it had not persisted; its ports stay closed.
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

/// The shipped ACL (`config/mosquitto.acl`) for `users`: its agent `pattern` lines as they
/// are, and its `user collector` block once per collector user. Tests thus run against the
/// rules a site installs, not a copy that may drift.
pub fn acl(users: &[User]) -> anyhow::Result<String> {
    let path = crate::workspace_root().join("config/mosquitto.acl");
    let shipped =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut patterns = String::new();
    let mut collector_topics = Vec::new();
    let mut in_collector = false;
    for line in shipped.lines().map(str::trim) {
        if line.starts_with("pattern ") {
            patterns.push_str(line);
            patterns.push('\n');
        } else if let Some(name) = line.strip_prefix("user ") {
            in_collector = name.trim() == "collector";
        } else if in_collector && line.starts_with("topic ") {
            collector_topics.push(line.to_owned());
        }
    }
    anyhow::ensure!(
        !patterns.is_empty() && !collector_topics.is_empty(),
        "{}: no agent patterns or no `user collector` block",
        path.display()
    );
    // As in the shipped file: the patterns (they apply to every user), then the user blocks.
    let mut out = patterns;
    for u in users.iter().filter(|u| u.collector) {
        out.push_str(&format!(
            "\nuser {}\n{}\n",
            u.name,
            collector_topics.join("\n")
        ));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acl_is_the_shipped_one_with_a_block_per_collector() {
        let a = acl(&users(&[
            ("a1", "x", false),
            ("c1", "x", true),
            ("c2", "x", true),
        ]))
        .unwrap();
        assert!(a.contains("pattern write ioc/v1/agents/%u/events"), "{a}");
        assert!(a.contains("pattern read  ioc/v1/agents/%u/acks"), "{a}");
        assert!(!a.contains("pattern write ioc/v1/agents/%u/acks"), "{a}");
        // Only collectors ask agents for previews.
        assert!(
            a.contains("pattern read  ioc/v1/agents/%u/preview-requests"),
            "{a}"
        );
        assert!(
            !a.contains("pattern write ioc/v1/agents/%u/preview-requests"),
            "{a}"
        );
        for c in ["c1", "c2"] {
            assert!(a.contains(&format!("user {c}\ntopic read  ioc/#")), "{a}");
        }
        assert!(
            !a.contains("user a1") && !a.contains("user collector"),
            "{a}"
        );
    }
}
