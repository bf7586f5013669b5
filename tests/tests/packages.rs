//! The Debian packages (`deploy/package.sh`, `make packages`) as an installer gets them: built
//! from this workspace's binaries, unpacked into a scratch root, their systemd units accepted
//! by `systemd-analyze verify` with no warning, and each binary started the way its unit
//! starts it (`ExecStartPre` check, then `ExecStart`), paths mapped into the scratch root.
//! The arm64 packages are built from the cross-compiled binaries (`make cross`) and their
//! agent runs the packaged model with the packaged ONNX Runtime under qemu-user.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use ioc_testkit::{footage, workspace_binary, workspace_root};

fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The unit's `key=` lines (e.g. `ExecStart`), split into words, `/usr`, `/etc` and
/// `/var/lib/ioc-edge` mapped to where the test put them.
fn unit_command(unit: &str, key: &str, map: &dyn Fn(&str) -> String) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in the unit"));
    line.split_whitespace().map(map).collect()
}

/// Builds both packages for `arch` from the binaries in `bin` and unpacks them into `root`.
fn build_and_unpack(bin: &Path, arch: &str, tmp: &Path, root: &Path) {
    let out = tmp.join(format!("debs-{arch}"));
    let (ok, text) = run(Command::new("bash")
        .arg(workspace_root().join("deploy/package.sh"))
        .arg(bin)
        .arg(&out)
        .env("ARCH", arch));
    assert!(ok, "{text}");
    for name in ["ioc-agent", "ioc-collector"] {
        let deb = out.join(format!("{name}_0.1.0_{arch}.deb"));
        let (ok, info) = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
        assert!(ok, "{info}");
        assert!(info.contains(&format!("Package: {name}")), "{info}");
        assert!(info.contains(&format!("Architecture: {arch}")), "{info}");
        let (ok, text) = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root));
        assert!(ok, "{text}");
        if name == "ioc-agent" {
            assert!(info.contains("gstreamer1.0-libav"), "{info}");
        } else {
            assert!(info.contains("mosquitto"), "{info}");
        }
    }
    for f in PACKAGED {
        assert!(root.join(f).is_file(), "{f} not in the {arch} packages");
    }
}

const PACKAGED: [&str; 8] = [
    "usr/bin/ioc-agent",
    "usr/bin/ioc-collector",
    "usr/lib/ioc-edge/libonnxruntime.so.1.31.1",
    "usr/share/ioc-edge/models/nanodet-g-416.toml",
    "usr/share/ioc-edge/models/nanodet_g_416_coco.onnx",
    "usr/share/ioc-edge/models/nanodet_g_416_coco_int8.onnx",
    "etc/ioc-edge/agent.toml",
    "etc/ioc-edge/collector.toml",
];

#[test]
fn packages_install_verify_and_start_from_their_units() {
    let bin = workspace_binary("ioc-agent").parent().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    build_and_unpack(&bin, arch.trim(), tmp.path(), &root);
    let state = tmp.path().join("state");
    let r = root.display().to_string();
    let s = state.display().to_string();
    let map_path = move |p: &str| -> String {
        p.replace("/var/lib/ioc-edge", &s)
            .replace("/usr/", &format!("{r}/usr/"))
            .replace("/etc/ioc-edge/", &format!("{r}/etc/ioc-edge/"))
    };
    for name in ["ioc-agent", "ioc-collector"] {
        let unit_path = root.join(format!("lib/systemd/system/{name}.service"));
        let unit = std::fs::read_to_string(&unit_path).unwrap();
        for hardening in [
            "ProtectSystem=strict",
            "NoNewPrivileges=true",
            "PrivateTmp=true",
            "Restart=on-failure",
        ] {
            assert!(unit.contains(hardening), "{name}: {hardening} missing");
        }
        // systemd checks that the commands exist: point them at the unpacked binaries.
        let copy = tmp.path().join(format!("{name}.service"));
        std::fs::write(
            &copy,
            unit.replace("/usr/bin/", &format!("{}/usr/bin/", root.display())),
        )
        .unwrap();
        let (ok, text) = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
        assert!(ok && text.trim().is_empty(), "{name}.service: {text}");

        // The packaged config, its absolute paths mapped into the scratch root.
        let cfg_name = if name == "ioc-agent" {
            "agent.toml"
        } else {
            "collector.toml"
        };
        let cfg = root.join("etc/ioc-edge").join(cfg_name);
        // The console on a free port (8080 may be taken on this machine).
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "127.0.0.1:8080",
            &format!("127.0.0.1:{}", ioc_testkit::free_port()),
        );
        std::fs::write(&cfg, map_path(&text)).unwrap();
        std::fs::create_dir_all(&state).unwrap();

        let pre = unit_command(&unit, "ExecStartPre", &map_path);
        let (ok, text) = run(Command::new(&pre[0]).args(&pre[1..]).env("NO_COLOR", "1"));
        assert!(ok, "{name} ExecStartPre {pre:?}: {text}");
        let start = unit_command(&unit, "ExecStart", &map_path);
        // systemd's side of Type=notify and WatchdogSec: a socket, and a 2 s watchdog.
        assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
        let notify_path = tmp.path().join(format!("{name}.notify"));
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        notify.set_nonblocking(true).unwrap();
        let mut child = Command::new(&start[0])
            .args(&start[1..])
            .env("NO_COLOR", "1")
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            // The unit needs no ORT_DYLIB_PATH: the agent looks in /usr/lib/ioc-edge/, which
            // is in the scratch root here.
            .env(
                "ORT_DYLIB_PATH",
                root.join("usr/lib/ioc-edge/libonnxruntime.so.1.31.1"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let want = if name == "ioc-agent" {
            "ioc-agent running"
        } else {
            "listening"
        };
        // Give it time to start, then stop it as systemd does.
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(4));
        assert!(child.try_wait().unwrap().is_none(), "{name} exited early");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "{name} did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = lines.join().unwrap().join("\n");
        assert!(status.success(), "{name}: {status:?}\n{log}");
        assert!(log.contains(want), "{name} did not start: {log}");
        assert!(!log.contains('\u{1b}'), "colour codes in {name}'s log");
        let mut said = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = notify.recv(&mut buf) {
            said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        // Ready first, a watchdog ping at least every second over 4 s, stopping on SIGTERM
        // (pings may go on while it stops: a long shutdown must not trip the watchdog).
        assert_eq!(
            said.first().map(String::as_str),
            Some("READY=1"),
            "{name}: {said:?}"
        );
        assert!(
            said.iter().filter(|s| *s == "WATCHDOG=1").count() >= 2,
            "{name}: {said:?}"
        );
        assert!(said.iter().any(|s| s == "STOPPING=1"), "{name}: {said:?}");
    }
}

/// Where `make cross` put the arm64 binaries of this build profile.
fn arm64_binaries() -> PathBuf {
    let native = workspace_binary("ioc-agent").parent().unwrap().to_owned();
    let profile = native.file_name().unwrap();
    native
        .parent()
        .unwrap()
        .join("aarch64-unknown-linux-gnu")
        .join(profile)
}

#[test]
fn arm64_packages_carry_arm64_binaries_and_the_agent_detects_under_qemu() {
    let bin = arm64_binaries();
    // `make cross` leaves this when the cross tool chain could not be installed here.
    let unavailable = bin
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("cross-unavailable");
    if let Ok(why) = std::fs::read_to_string(&unavailable) {
        eprintln!("SKIPPED (arm64): {}", why.trim());
        return;
    }
    assert!(
        bin.join("ioc-agent").is_file() && bin.join("ioc-collector").is_file(),
        "no arm64 binaries in {}: `make cross` builds them (`make test` does)",
        bin.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    build_and_unpack(&bin, "arm64", tmp.path(), &root);
    for f in [
        "usr/bin/ioc-agent",
        "usr/bin/ioc-collector",
        "usr/lib/ioc-edge/libonnxruntime.so.1.31.1",
    ] {
        let (ok, header) = run(Command::new("readelf").arg("-h").arg(root.join(f)));
        assert!(ok && header.contains("AArch64"), "{f}: {header}");
    }

    // The packaged agent, model and ONNX Runtime on the darknet test image, under qemu-user
    // (the arm64 system libraries come from Debian multiarch: deploy/cross-setup.sh). The
    // emulated CPU is a Cortex-A72 (a Raspberry Pi 4): qemu's default "max" CPU offers SVE,
    // which ONNX Runtime then uses and qemu emulates far slower (over 5 min against 37 s here).
    let t0 = Instant::now();
    let (ok, text) = run(Command::new("qemu-aarch64")
        .args(["-cpu", "cortex-a72"])
        .arg(root.join("usr/bin/ioc-agent"))
        .arg("detect")
        .arg(footage("dog.jpg"))
        .arg("--model")
        .arg(root.join("usr/share/ioc-edge/models/nanodet-g-416.toml"))
        .arg("--json")
        .env(
            "ORT_DYLIB_PATH",
            root.join("usr/lib/ioc-edge/libonnxruntime.so.1.31.1"),
        )
        .env("NO_COLOR", "1"));
    assert!(ok, "arm64 detect failed:\n{text}");
    let frame: serde_json::Value = text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from detect: {text}"));
    let classes: Vec<&str> = frame["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .filter_map(|d| d["class"].as_str())
        .collect();
    for want in ["bicycle", "dog"] {
        assert!(classes.contains(&want), "{want} not in {classes:?}");
    }
    eprintln!(
        "arm64 detect under qemu: {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The collector's packaged config passes its own check on arm64 too.
    let cfg = root.join("etc/ioc-edge/collector.toml");
    let (ok, text) = run(Command::new("qemu-aarch64")
        .args(["-cpu", "cortex-a72"])
        .arg(root.join("usr/bin/ioc-collector"))
        .arg("check-config")
        .arg(&cfg)
        .env("NO_COLOR", "1"));
    assert!(ok, "arm64 collector check-config:\n{text}");
}
