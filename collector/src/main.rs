//! `ioc-collector`: command-line glue over the library (STYLE §1).
//!
//! - `ioc-collector run --config FILE`: ingest, console/API, escalation and reports until
//!   SIGINT/SIGTERM. The first signal stops gracefully (the batch in flight is committed and
//!   acked, then the client disconnects); a second one exits at once (nothing unacked is
//!   lost: the broker redelivers it).
//! - `ioc-collector user add --config FILE --name NAME --role ROLE`: creates or updates a
//!   console user; the password comes from stdin, or is generated and printed.
//! - `ioc-collector report --config FILE [--date YYYY-MM-DD] [--format html|csv|json]`:
//!   prints a daily report (default yesterday).
//! - `ioc-collector check-config FILE`: parse, validate, check the TLS files; exit 1 on error.
//! - `ioc-collector stats --config FILE [--json]`: per-agent event counts and seq gaps.
//! - `ioc-collector agents add ID [--passwd FILE]` / `agents remove ID --passwd FILE`: an
//!   agent's broker credentials in mosquitto's password file, and its `[mqtt]` section.
//!
//! Errors print as `error: {:#}` (the cause chain on one line); logs go to stderr, filtered
//! by `RUST_LOG` (default `info`).

use ioc_base::signal::shutdown_signal as signal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ioc_collector::auth::{self, Role};
use ioc_collector::clock::SystemClock;
use ioc_collector::service::{Collector, Parts};
use ioc_collector::{Config, Store};

#[derive(Parser)]
#[command(
    name = "ioc-collector",
    version,
    about = "ioc-edge collector: MQTT ingest and store"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ingest from the broker until SIGINT/SIGTERM.
    Run {
        /// The config file (see collector.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file (syntax, values, TLS files) and exit.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Print per-agent event counts and sequence gaps from the store.
    Stats {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage console users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Manage agents' broker credentials (mosquitto's password file).
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Print a daily report.
    Report {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The local day, YYYY-MM-DD (default: yesterday).
        #[arg(long)]
        date: Option<String>,
        /// html, csv or json.
        #[arg(long, default_value = "html")]
        format: String,
    },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Give agent ID a new broker password: written into the password file (or printed as
    /// the line to add), and printed as the `[mqtt]` section for the agent's config.
    Add {
        /// The agent id (its MQTT user name): a-z, 0-9, '-', '_'.
        id: String,
        /// mosquitto's password file to write (e.g. /etc/mosquitto/passwd).
        #[arg(long)]
        passwd: Option<PathBuf>,
        /// The broker as the agent reaches it.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The broker's port as the agent reaches it [default: 8883 with --ca-file, else 1883].
        #[arg(long)]
        port: Option<u16>,
        /// The CA certificate on the agent's box, for TLS (omit for a plain connection).
        #[arg(long)]
        ca_file: Option<String>,
        /// The broker's ACL file, checked so that ID is not one of its `user` blocks (it would
        /// get that block's rights) [default: `acl` beside the password file, if there].
        #[arg(long)]
        acl: Option<PathBuf>,
    },
    /// Revoke agent ID: remove it from the password file.
    Remove {
        /// The agent id.
        id: String,
        /// mosquitto's password file.
        #[arg(long)]
        passwd: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user, or set an existing user's password and role.
    Add {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Login name.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Read the password from stdin (first line) instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ioc_base::logs::init("info");
    let result = match cli.cmd {
        Cmd::Run { config } => run(&config),
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Stats { config, json } => stats(&config, json),
        Cmd::User {
            cmd:
                UserCmd::Add {
                    config,
                    name,
                    role,
                    password_stdin,
                },
        } => user_add(&config, &name, &role, password_stdin),
        Cmd::User {
            cmd: UserCmd::List { config },
        } => user_list(&config),
        Cmd::Agents {
            cmd:
                AgentsCmd::Add {
                    id,
                    passwd,
                    host,
                    port,
                    ca_file,
                    acl,
                },
        } => {
            let port = port.unwrap_or(if ca_file.is_some() { 8883 } else { 1883 });
            let acl = acl.or_else(|| {
                let beside = passwd.as_deref()?.parent()?.join("acl");
                beside.is_file().then_some(beside)
            });
            agents_add(
                &id,
                passwd.as_deref(),
                acl.as_deref(),
                &host,
                port,
                ca_file.as_deref(),
            )
        }
        Cmd::Agents {
            cmd: AgentsCmd::Remove { id, passwd },
        } => agents_remove(&id, &passwd),
        Cmd::Report {
            config,
            date,
            format,
        } => report(&config, date.as_deref(), &format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`stats | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    config.check_environment(path)?;
    Ok(config)
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let c = load(path)?;
    for w in c.warnings() {
        eprintln!("{}: warning: {w}", path.display());
    }
    println!(
        "{}: ok (broker {}:{}, client id {:?}, store {})",
        path.display(),
        c.mqtt.host,
        c.port(),
        c.mqtt.client_id,
        c.store.describe()
    );
    Ok(())
}

fn agents_add(
    id: &str,
    passwd: Option<&Path>,
    acl: Option<&Path>,
    host: &str,
    port: u16,
    ca_file: Option<&str>,
) -> anyhow::Result<()> {
    use ioc_collector::broker;
    ioc_protocol::validate_agent_id(id).map_err(|e| anyhow::anyhow!("agent id {id:?}: {e}"))?;
    let acl_note = match acl {
        Some(acl) => {
            let text = std::fs::read_to_string(acl)
                .with_context(|| format!("cannot read the ACL {}", acl.display()))?;
            if broker::acl_users(&text).iter().any(|u| u == id) {
                anyhow::bail!(
                    "agent id {id:?} is a `user {id}` block of {}: an agent of that name would get \
                     that block's rights (a collector's), not only its own topics; choose another id",
                    acl.display()
                );
            }
            format!(
                "{id:?} falls under the `pattern` lines of {} (its own topics only)",
                acl.display()
            )
        }
        None => format!(
            "no ACL checked (--acl FILE checks that {id:?} is not one of its `user` blocks); \
             the shipped ACL (config/mosquitto.acl) limits agents to their own topics"
        ),
    };
    let password = broker::generate_password();
    match passwd {
        Some(file) => {
            let renewed = broker::set_user(file, id, &password)
                .with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!(
                "{} agent {id:?} in {}; reload the broker to apply it \
                 (systemctl reload mosquitto, or kill -HUP its process)",
                if renewed { "new password for" } else { "added" },
                file.display()
            );
        }
        None => eprintln!(
            "add this line to the broker's password file, then reload the broker:\n{id}:{}",
            broker::mosquitto_hash(&password)
        ),
    }
    eprintln!(
        "{acl_note}.\nthe agent's [agent] id must be {id:?} (the broker's ACL keys on it).\n\
         put this in the agent's config and keep it secret (it is not stored anywhere else):"
    );
    print!(
        "{}",
        broker::agent_mqtt_section(id, &password, host, port, ca_file)
    );
    Ok(())
}

fn agents_remove(id: &str, passwd: &Path) -> anyhow::Result<()> {
    let removed = ioc_collector::broker::remove_user(passwd, id)
        .with_context(|| format!("cannot write {}", passwd.display()))?;
    if removed {
        eprintln!(
            "removed agent {id:?} from {}; reload the broker to apply it",
            passwd.display()
        );
        Ok(())
    } else {
        anyhow::bail!("agent {id:?} is not in {}", passwd.display())
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    for w in config.warnings() {
        tracing::warn!(config = %path.display(), "{w}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ioc-collector")
        // Reads and password checks run on blocking threads: a cap keeps a flood of requests
        // from turning into thousands of threads (they queue instead).
        .max_blocking_threads(64)
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let collector =
            Collector::start(&config, std::sync::Arc::new(SystemClock), Parts::All).await?;
        // Under systemd (Type=notify): started, and alive while the runtime runs tasks.
        ioc_base::systemd::notify("READY=1");
        if let Some(every) = ioc_base::systemd::watchdog_interval() {
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    t.tick().await;
                    ioc_base::systemd::notify("WATCHDOG=1");
                }
            });
        }
        let stop = async {
            signal().await;
            ioc_base::systemd::notify("STOPPING=1");
            tracing::info!("stopping: finishing the batch in flight (signal again to exit now)");
            tokio::spawn(async {
                signal().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
        };
        let mut collector = collector;
        tokio::select! {
            _ = stop => {}
            e = collector.failed() => {
                tracing::error!(error = %e, "ingest stopped; exiting");
                let _ = collector.shutdown(Duration::from_secs(5)).await;
                return Err(e);
            }
        }
        collector.shutdown(Duration::from_secs(30)).await?;
        Ok(())
    })
}

fn stats(path: &Path, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let config = Config::load(path)?;
    anyhow::ensure!(
        config.store.postgres.is_some() || config.store.path.exists(),
        "store {} does not exist (has the collector run with this config?)",
        config.store.path.display()
    );
    let store = config.store.open()?;
    let agents = store.summary()?;
    let dead = store.count_dead_letters()?;
    let mut out = std::io::stdout().lock();
    if json {
        let agents: Vec<_> = agents
            .iter()
            .map(|a| {
                serde_json::json!({
                    "agent": a.agent,
                    "events": a.events,
                    "counts": a.counts,
                    "max_seq": a.max_seq,
                    "gaps": a.gaps,
                    "state": a.state,
                })
            })
            .collect();
        let doc = serde_json::json!({ "agents": agents, "dead_letters": dead });
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>10} {:>8} {:>10} {:<8} gaps",
        "agent", "events", "counts", "max_seq", "state"
    )?;
    for a in &agents {
        let gaps = if a.gaps.is_empty() {
            "-".to_owned()
        } else {
            a.gaps
                .iter()
                .map(|(f, l)| {
                    if f == l {
                        format!("{f}")
                    } else {
                        format!("{f}-{l}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        writeln!(
            out,
            "{:<24} {:>10} {:>8} {:>10} {:<8} {gaps}",
            a.agent,
            a.events,
            a.counts,
            a.max_seq,
            a.state.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "dead letters: {dead}")?;
    Ok(())
}

fn open_store(path: &Path) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(path)?;
    let store = config.store.open()?;
    Ok((config, store))
}

fn user_add(path: &Path, name: &str, role: &str, password_stdin: bool) -> anyhow::Result<()> {
    let role = Role::parse(role)
        .with_context(|| format!("--role {role:?}: expected viewer, operator or admin"))?;
    auth::check_username(name).map_err(|m| anyhow::anyhow!("--name {name:?}: {m}"))?;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (auth::generate_password(), true)
    };
    let hash = auth::hash_password(&password)?;
    let (_, mut store) = open_store(path)?;
    store.put_user(
        name,
        &hash,
        role.as_str(),
        "cli",
        ioc_collector::store::now_ms(),
    )?;
    if generated {
        // The one place a password is shown: to whoever created the account.
        println!("user {name} ({}) password: {password}", role.as_str());
    } else {
        println!("user {name} ({}) set", role.as_str());
    }
    Ok(())
}

fn user_list(path: &Path) -> anyhow::Result<()> {
    let (_, store) = open_store(path)?;
    for (name, role) in store.users()? {
        println!("{name}\t{role}");
    }
    Ok(())
}

fn report(path: &Path, date: Option<&str>, format: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let (config, store) = open_store(path)?;
    let off = config.reports.utc_offset_minutes;
    let now = ioc_collector::store::now_ms();
    let day = match date {
        Some(d) => ioc_collector::store::parse_day(d)
            .with_context(|| format!("--date {d:?}: expected YYYY-MM-DD"))?,
        None => (now + off * 60_000).div_euclid(86_400_000) - 1,
    };
    let r = store.daily_report(day, off, now)?;
    let text = match format {
        "html" => {
            let files = ioc_collector::report::picture_files(&store, &r)?;
            ioc_collector::report::html(&r, &ioc_collector::report::pictures(files))
        }
        "csv" => ioc_collector::report::csv(&r),
        "json" => serde_json::to_string_pretty(&r)? + "\n",
        other => anyhow::bail!("--format {other:?}: expected html, csv or json"),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
