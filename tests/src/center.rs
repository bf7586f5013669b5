//! The center for end-to-end tests with real processes: `ioc-collector run` on a fresh SQLite
//! store, connected to a test broker as user `central`, its console users, logins, and the
//! footage served as a live camera.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{request, Killed};
use crate::{footage, free_port, workspace_binary, RtspServer};

/// The MQTT user and password of the collector (give the broker `User::collector` with them).
pub const COLLECTOR_USER: (&str, &str) = ("central", "central-pw");

/// A running collector.
pub struct Center {
    /// Its config file.
    pub config: PathBuf,
    /// Its SQLite store.
    pub db: PathBuf,
    /// Its console and API port on loopback.
    pub http_port: u16,
    _process: Killed,
}

impl Center {
    /// Writes a collector config in `dir` for the broker on `broker_port`, adds `users`
    /// (`(name, role, password)`), starts the collector and waits until its console listens.
    pub fn start(dir: &Path, broker_port: u16, users: &[(&str, &str, &str)]) -> Center {
        let http_port = free_port();
        let db = dir.join("ioc.db");
        let config = dir.join("collector.toml");
        let (user, password) = COLLECTOR_USER;
        std::fs::write(
            &config,
            format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker_port}\nclient_id = \"c1\"\n\
                 username = \"{user}\"\npassword = \"{password}\"\n\
                 [store]\npath = \"{}\"\nsnapshot_dir = \"{}\"\n\
                 [http]\nlisten = \"127.0.0.1:{http_port}\"\n",
                db.display(),
                dir.join("snapshots").display()
            ),
        )
        .expect("write collector.toml");
        for (name, role, password) in users {
            add_user(&config, name, role, password);
        }
        let process = Killed(
            Command::new(workspace_binary("ioc-collector"))
                .args(["run", "--config", config.to_str().expect("utf-8 path")])
                .env("RUST_LOG", "error")
                .spawn()
                .expect("start ioc-collector"),
        );
        let up = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(Instant::now() < up, "the collector does not listen");
            std::thread::sleep(Duration::from_millis(200));
        }
        Center {
            config,
            db,
            http_port,
            _process: process,
        }
    }

    /// Logs `name` in: an `Authorization` header value.
    pub fn login(&self, name: &str, password: &str) -> String {
        let body = serde_json::json!({ "username": name, "password": password }).to_string();
        let (status, _, body) = request(self.http_port, "POST", "/api/login", &[], &body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("login JSON");
        format!("Bearer {}", v["token"].as_str().expect("a token"))
    }
}

/// Adds a console user with `ioc-collector user add` (the password on stdin).
pub fn add_user(config: &Path, name: &str, role: &str, password: &str) {
    let mut add = Command::new(workspace_binary("ioc-collector"))
        .args([
            "user",
            "add",
            "--config",
            config.to_str().expect("utf-8 path"),
        ])
        .args(["--name", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run ioc-collector user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    assert!(add.wait().expect("user add").success());
}

/// The people footage (`vtest_h264.mp4`) served live at `/vtest`.
pub fn vtest_camera() -> RtspServer {
    RtspServer::start(
        &[format!(
            "/vtest={}:h264",
            footage("vtest_h264.mp4").display()
        )],
        0,
        None,
    )
    .expect("start the RTSP server")
}

/// Events of rule `rule` in the collector's store `db` (0 while it cannot be read).
pub fn stored_events(db: &Path, rule: &str) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM events WHERE json_extract(payload, '$.rule') = ?1",
                [rule],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}
