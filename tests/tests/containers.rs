//! The container files (`deploy/container/`) against what they are built from. No container
//! engine runs on the build machine, so this checks the parts that can drift without one:
//! the images copy the package names `deploy/package.sh` writes, the configs the compose file
//! mounts pass each binary's own `check-config`, and every repository file it mounts exists.

use std::process::Command;

use ioc_testkit::{workspace_binary, workspace_root};

#[test]
fn images_copy_the_packages_that_package_sh_names() {
    let root = workspace_root();
    let package_sh = std::fs::read_to_string(root.join("deploy/package.sh")).unwrap();
    // package.sh writes NAME_VERSION_ARCH.deb with ARCH amd64 or arm64: Docker's TARGETARCH
    // uses the same names.
    assert!(package_sh.contains(r#""$OUT/${name}_${VERSION}_${ARCH}.deb""#));
    for arch in ["amd64)", "arm64)"] {
        assert!(package_sh.contains(arch), "package.sh builds {arch}");
    }
    for name in ["ioc-agent", "ioc-collector"] {
        let short = name.trim_start_matches("ioc-");
        let file = root.join(format!("deploy/container/Dockerfile.{short}"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("COPY {name}_*_${{TARGETARCH}}.deb /tmp/")),
            "{}",
            file.display()
        );
        assert!(text.contains(&format!("ENTRYPOINT [\"/usr/bin/{name}\"]")));
        assert!(text.contains("USER ioc-edge"), "{name} runs as root");
    }
}

#[test]
fn compose_configs_pass_check_config_and_mounts_exist() {
    let dir = workspace_root().join("deploy/container");
    let run = |bin: &str, args: &[&str]| {
        let o = Command::new(workspace_binary(bin))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{bin} {args:?}:\n{text}");
    };
    // The model path is the image's (/usr/share/ioc-edge): checked without this machine.
    let agent = dir.join("agent.toml");
    run(
        "ioc-agent",
        &["check-config", "--no-environment", agent.to_str().unwrap()],
    );
    let collector = dir.join("collector.toml");
    run(
        "ioc-collector",
        &["check-config", collector.to_str().unwrap()],
    );

    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    // Files the installer makes (header steps) are not in the repository.
    let made_by_installer = ["./passwd", "./pg_password"];
    let mut mounted = 0;
    for line in compose.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let Some(i) = line.find("./") else { continue };
        let start = if line[..i].ends_with('.') { i - 1 } else { i };
        let path: String = line[start..]
            .chars()
            .take_while(|c| !matches!(c, ':' | ' ' | '"'))
            .collect();
        if made_by_installer.contains(&path.as_str()) {
            continue;
        }
        mounted += 1;
        assert!(
            dir.join(&path).exists(),
            "compose.yaml mounts {path}: missing"
        );
    }
    assert!(mounted >= 4, "{mounted}");
}
