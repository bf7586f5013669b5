//! A real PostgreSQL server for tests and benchmarks: Debian's `postgresql` package, a fresh
//! cluster in a temporary directory, listening on a free loopback port, with password
//! (SCRAM) authentication for one superuser, `ioc`.
//!
//! PostgreSQL refuses to run as root; as root the harness runs `initdb` and `postgres` as the
//! package's `postgres` user (`setpriv`) and hands it the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser the cluster is created with.
pub const USER: &str = "ioc";

/// A running PostgreSQL cluster; stopped (immediate shutdown) and deleted on drop.
pub struct Postgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The server's arguments but the port.
    args: Vec<String>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The superuser's password.
    pub password: String,
}

/// The directory of Debian's PostgreSQL programs (the newest installed), or `$IOC_PG_BIN`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("IOC_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            anyhow::anyhow!(
                "/usr/lib/postgresql: {e} (install Debian's postgresql package: make setup)"
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL server under /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `program` as the `postgres` user when we are root, else as ourselves.
fn as_owner(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

impl Postgres {
    /// Creates a cluster and starts it. `durable: false` turns off fsync (tests that do not
    /// measure anything); benchmarks keep PostgreSQL's defaults.
    pub fn start(durable: bool) -> anyhow::Result<Self> {
        Self::start_inner(durable, None)
    }

    /// Like [`Postgres::start`], with TLS on (clients may still connect in clear): the
    /// server presents `cert_pem` (with `key_pem`).
    pub fn start_tls(durable: bool, cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        Self::start_inner(durable, Some((cert_pem, key_pem)))
    }

    fn start_inner(durable: bool, tls: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("ioc-pg-").tempdir()?;
        let password = format!("pw-{}-{}", std::process::id(), crate::free_port());
        std::fs::write(dir.path().join("pwfile"), format!("{password}\n"))?;
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(dir.path().join("server.crt"), cert)?;
            let key_path = dir.path().join("server.key");
            std::fs::write(&key_path, key)?;
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        }
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(
                st.success(),
                "chown postgres {} failed",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        let out = as_owner(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pwfile").display()))
            .arg("--no-sync")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::free_port();
        let mut args: Vec<String> = vec!["-D".into(), data.display().to_string()];
        let mut set = |kv: String| args.extend(["-c".into(), kv]);
        set("listen_addresses=127.0.0.1".into());
        set(format!("unix_socket_directories={}", dir.path().display()));
        set("max_connections=50".into());
        set("shared_buffers=64MB".into());
        if !durable {
            set("fsync=off".into());
            set("synchronous_commit=off".into());
        }
        if tls.is_some() {
            set("ssl=on".into());
            set(format!(
                "ssl_cert_file={}",
                dir.path().join("server.crt").display()
            ));
            set(format!(
                "ssl_key_file={}",
                dir.path().join("server.key").display()
            ));
        }
        let mut pg = Postgres {
            child: None,
            dir,
            bin,
            args,
            port,
            password,
        };
        pg.spawn()?;
        Ok(pg)
    }

    /// Starts the server process on the cluster and waits until it accepts connections.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let child = as_owner(&self.bin, "postgres")
            .args(&self.args)
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Stops the server at once and starts it again on the same cluster and port, as after a
    /// crash: clients' connections are cut.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Starts a server stopped by [`Postgres::stop`] again, on the same cluster and port.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the server is running");
        self.spawn()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!("postgres exited ({st}): {}", self.log());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "postgres not ready in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Creates database `name` and returns its URL (without the password).
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                name,
            ])
            .env("PGPASSWORD", &self.password)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(self.url(name))
    }

    /// The URL of database `name` (without the password).
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Writes the password to a file (for `store.postgres.password_file`) in `dir`.
    pub fn password_file(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let p = dir.join("pg-password");
        std::fs::write(&p, format!("{}\n", self.password))?;
        Ok(p)
    }

    /// Runs `sql` with `psql` on database `name`; returns its unaligned output.
    pub fn psql(&self, name: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args([
                "-d",
                name,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Stops the server at once (SIGQUIT: immediate shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
