//! The binary's user and report commands on a real store: `user add` (password from stdin or
//! generated), `user list`, `report` in each format; bad arguments name themselves.

use std::io::Write;
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
