//! The test kit of ioc-edge: real components started as real processes, and nothing that
//! needs GStreamer, so every crate's tests can use it.
//!
//! - [`mosquitto::Mosquitto`]: a real broker with per-agent credentials and the ACL of the
//!   shipped `config/mosquitto.acl`, optionally a TLS listener; it can be killed and
//!   restarted with what it persisted.
//! - [`postgres::Postgres`]: a temporary PostgreSQL cluster.
//! - [`proxy::TcpProxy`]: a TCP proxy a test can cut (connections dropped) or freeze
//!   (nothing passes, nothing closes, as a dead uplink).
//! - [`mqtt::Raw`]: a plain MQTT client that hands over what it receives.
//! - [`pki::make`]: a CA, a broker certificate and wrong CAs for TLS tests.
//! - [`RtspServer`]: the `ioc-rtsp-server` binary (crate `tests/rtsp-server`) as a child
//!   process, so a test can kill it and start it again like a camera going away.
//! - Fixture paths: [`footage`], [`model_manifest`], [`workspace_binary`]; events:
//!   `ioc_protocol::Event::example`.
//!
//! The end-to-end tests of the whole chain live in this crate's `tests/`.

pub mod browser;
pub mod center;
pub mod http;
pub mod mosquitto;
pub mod mqtt;
pub mod pki;
pub mod postgres;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workspace root (where `Cargo.toml` and `.deps/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// A footage file prepared by `make setup`; panics with the fix when it is missing.
pub fn footage(name: &str) -> PathBuf {
    let dir = std::env::var_os("IOC_FOOTAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".deps/footage"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        workspace_root().join(dir)
    };
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `make setup` (deploy/setup.sh) first",
        p.display()
    );
    p
}

/// The default model manifest of the repository.
pub fn model_manifest() -> PathBuf {
    workspace_root().join("models/nanodet-g-416.toml")
}

/// A binary of this workspace, next to the running test executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "binary {name} not found near {}: build it first (cargo build --workspace --bins)",
        exe.display()
    );
}

/// An `ioc-rtsp-server` child process, killed on drop.
pub struct RtspServer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl RtspServer {
    /// Starts the server with `mounts` (`PATH=FILE:CODEC[:loop]`) on `port`
    /// (0 = any free port) and waits until it listens.
    pub fn start(mounts: &[String], port: u16, auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let mut cmd = Command::new(workspace_binary("ioc-rtsp-server"));
        cmd.args(["--port", &port.to_string()]);
        for m in mounts {
            cmd.args(["--mount", m]);
        }
        if let Some((u, p)) = auth {
            cmd.args(["--user", u]).env("IOC_RTSP_SERVER_PASSWORD", p);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!("ioc-rtsp-server did not start listening");
            }
        };
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| {
                anyhow::anyhow!("unexpected first line from ioc-rtsp-server: {line:?}")
            })?;
        Ok(Self { child, port })
    }

    /// `rtsp://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, path)
    }

    /// Kills the server at once (SIGKILL), as a crashed camera would go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
