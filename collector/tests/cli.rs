//! The binary's user and report commands on a real store: `user add` (password from stdin or
//! generated), `user list`, `report` in each format; bad arguments name themselves. `agents
//! add/remove` against a real mosquitto reading the password file they write.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"cli-test\"\n\
         [store]\npath = \"data/ioc.db\"\nsnapshot_dir = \"data/snaps\"\n\
         [reports]\nutc_offset_minutes = 420\n",
    )
    .unwrap();
    (dir, cfg)
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ioc-collector"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_are_added_and_reports_printed() {
    let (dir, cfg) = setup();
    let cfg = cfg.to_str().unwrap();
    let (ok, out, err) = run(&["user", "add", "--config", cfg, "--name", "lan"], None);
    assert!(ok, "{err}");
    let generated = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(out.contains("user lan (operator) password: "), "{out}");
    assert_eq!(generated.len(), 16);
    assert!(!err.contains(&generated), "the password is not logged");
    let (ok, out, err) = run(
        &[
            "user",
            "add",
            "--config",
            cfg,
            "--name",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a very long password\n"),
    );
    assert!(ok, "{err}");
    assert!(!out.contains("a very long password"));
    let (ok, out, _) = run(&["user", "list", "--config", cfg], None);
    assert!(ok);
    assert_eq!(out, "boss\tadmin\nlan\toperator\n");
    // The stored hashes are argon2id and check against the passwords.
    let store = ioc_collector::Store::open(
        &dir.path().join("data/ioc.db"),
        &dir.path().join("data/snaps"),
    )
    .unwrap();
    let boss = store.user("boss").unwrap().unwrap();
    assert!(ioc_collector::auth::verify_password(
        "a very long password",
        &boss.password_hash
    ));
    let lan = store.user("lan").unwrap().unwrap();
    assert!(ioc_collector::auth::verify_password(
        &generated,
        &lan.password_hash
    ));

    // Bad input names what is wrong.
    let (ok, _, err) = run(
        &[
            "user", "add", "--config", cfg, "--name", "x", "--role", "boss",
        ],
        None,
    );
    assert!(!ok && err.contains("--role \"boss\""), "{err}");
    let (ok, _, err) = run(
        &[
            "user",
            "add",
            "--config",
            cfg,
            "--name",
            "y",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok && err.contains("at least 10 characters"), "{err}");
    let (ok, _, err) = run(&["user", "add", "--config", cfg, "--name", "a b"], None);
    assert!(!ok && err.contains("--name \"a b\""), "{err}");

    for (format, marker) in [
        ("html", "<svg"),
        ("csv", "2026-11-27,total,incidents,,0"),
        ("json", "\"date\": \"2026-11-27\""),
    ] {
        let (ok, out, err) = run(
            &[
                "report",
                "--config",
                cfg,
                "--date",
                "2026-11-27",
                "--format",
                format,
            ],
            None,
        );
        assert!(ok, "{err}");
        assert!(out.contains(marker), "{format}: {out}");
    }
    let (ok, _, err) = run(&["report", "--config", cfg, "--date", "27/11/2026"], None);
    assert!(!ok && err.contains("--date \"27/11/2026\""), "{err}");
}

/// Starts mosquitto on a free port with `passwd` as its password file; returns it and the port.
fn mosquitto_with(passwd: &std::path::Path, dir: &std::path::Path) -> (std::process::Child, u16) {
    // As root, mosquitto would switch to its own user, which cannot read our files.
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    mosquitto_as(passwd, dir, me.trim())
}

/// Like [`mosquitto_with`], the broker dropping to `user` before it reads the password file
/// (as Debian's mosquitto does: started as root, it runs as `mosquitto`).
fn mosquitto_as(
    passwd: &std::path::Path,
    dir: &std::path::Path,
    user: &str,
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             use_username_as_clientid true\nlog_dest stderr\nlog_type error\nuser {user}\n",
            passwd.display(),
        ),
    )
    .unwrap();
    let child = Command::new(
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("mosquitto"),
    )
    .arg("-c")
    .arg(&conf)
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, port)
}

/// Whether the broker on `port` accepts `user`/`password`.
async fn accepts(port: u16, user: &str, password: &str) -> bool {
    let mut o = rumqttc::MqttOptions::new(user, "127.0.0.1", port);
    o.set_credentials(user, password);
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                return a.code == rumqttc::ConnectReturnCode::Success
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn agents_add_gives_a_password_the_real_broker_accepts_and_remove_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let p = passwd.to_str().unwrap();
    let (ok, mqtt, err) = run(
        &[
            "agents",
            "add",
            "site-7",
            "--passwd",
            p,
            "--host",
            "ioc.example",
            "--port",
            "8883",
            "--ca-file",
            "/etc/ioc-edge/ca.pem",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(err.contains("added agent \"site-7\""), "{err}");
    // The printed section is a ready [mqtt] for the agent.
    assert!(
        mqtt.starts_with("[mqtt]\nhost = \"ioc.example\"\nport = 8883\nusername = \"site-7\"\n"),
        "{mqtt}"
    );
    assert!(
        mqtt.ends_with("[mqtt.tls]\nca_file = \"/etc/ioc-edge/ca.pem\"\n"),
        "{mqtt}"
    );
    let password = mqtt
        .lines()
        .find_map(|l| l.strip_prefix("password = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_owned();
    let stored = std::fs::read_to_string(&passwd).unwrap();
    assert!(!stored.contains(&password), "only the hash is stored");
    let (mut broker, port) = mosquitto_with(&passwd, dir.path());
    assert!(
        accepts(port, "site-7", &password).await,
        "the broker takes it"
    );
    assert!(!accepts(port, "site-7", "not it").await);
    let _ = broker.kill();
    let _ = broker.wait();
    // Renewing replaces the line; removing revokes.
    let (ok, _, err) = run(&["agents", "add", "site-7", "--passwd", p], None);
    assert!(
        ok && err.contains("new password for agent \"site-7\""),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&passwd).unwrap().lines().count(), 1);
    let (ok, _, err) = run(&["agents", "remove", "site-7", "--passwd", p], None);
    assert!(ok, "{err}");
    let (mut broker, port) = mosquitto_with(&passwd, dir.path());
    assert!(!accepts(port, "site-7", &password).await, "revoked");
    let _ = broker.kill();
    let _ = broker.wait();
    // A bad id is refused before anything is written.
    let (ok, _, err) = run(&["agents", "add", "Site 7", "--passwd", p], None);
    assert!(!ok && err.contains("agent id"), "{err}");
    let (ok, _, err) = run(&["agents", "remove", "nobody", "--passwd", p], None);
    assert!(!ok && err.contains("is not in"), "{err}");
}

/// What an admin in a hurry meets: `agents add` as root on the password file of a broker that
/// reads it as its own user, twelve adds at once, and an id that names an ACL `user` block.
#[tokio::test]
async fn agents_add_keeps_the_broker_able_to_read_its_file_and_loses_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let p = passwd.to_str().unwrap();
    // Twelve at once: every one is in the file afterwards.
    let children: Vec<_> = (0..12)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_ioc-collector"))
                .args(["agents", "add", &format!("site-{i}"), "--passwd", p])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut passwords = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8(o.stdout).unwrap();
        // Without --ca-file the section is a plain connection on 1883, as printed.
        assert!(
            out.contains("port = 1883\n") && !out.contains("[mqtt.tls]"),
            "{out}"
        );
        let pw = out
            .lines()
            .find_map(|l| l.strip_prefix("password = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_owned();
        passwords.push(pw);
    }
    let lines = std::fs::read_to_string(&passwd).unwrap();
    assert_eq!(lines.lines().count(), 12, "{lines}");
    // An id named like a `user` block of the ACL beside the file is refused, nothing written.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/mosquitto.acl"),
        dir.path().join("acl"),
    )
    .unwrap();
    let (ok, _, err) = run(&["agents", "add", "collector", "--passwd", p], None);
    assert!(!ok && err.contains("`user collector` block"), "{err}");
    let (ok, _, err) = run(&["agents", "add", "site-12", "--passwd", p], None);
    assert!(
        ok && err.contains("falls under the `pattern` lines"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&passwd).unwrap().lines().count(),
        13
    );

    // A broker that drops to its own user (Debian's) still reads the file after a rewrite
    // made as root: only where this test runs as root and that user exists.
    let is_root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0";
    let has_user = Command::new("id")
        .arg("mosquitto")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(is_root && has_user) {
        eprintln!("skipping the broker-user part: not root, or no user `mosquitto`");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fresh = tempfile::tempdir().unwrap();
    std::fs::set_permissions(fresh.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = fresh.path().join("passwd");
    let f = file.to_str().unwrap();
    let add = |id: &str| {
        let (ok, out, err) = run(&["agents", "add", id, "--passwd", f], None);
        assert!(ok, "{err}");
        out.lines()
            .find_map(|l| l.strip_prefix("password = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_owned()
    };
    let first = add("site-a");
    // Created for the broker's user, owner-only.
    let m = std::fs::metadata(&file).unwrap();
    let uid: u32 = String::from_utf8(
        Command::new("id")
            .args(["-u", "mosquitto"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert_eq!((m.uid(), m.permissions().mode() & 0o777), (uid, 0o600));
    let second = add("site-b"); // a rewrite, as root
    let m = std::fs::metadata(&file).unwrap();
    assert_eq!((m.uid(), m.permissions().mode() & 0o777), (uid, 0o600));
    let (mut broker, port) = mosquitto_as(&file, fresh.path(), "mosquitto");
    assert!(
        accepts(port, "site-a", &first).await,
        "the broker reads the file"
    );
    assert!(accepts(port, "site-b", &second).await);
    let _ = broker.kill();
    let _ = broker.wait();
}
