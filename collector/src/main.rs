//! `ioc-collector`: command-line glue over the library (STYLE §1).
//!
//! - `ioc-collector run --config FILE`: ingest until SIGINT/SIGTERM. The first signal stops
//!   gracefully (the batch in flight is committed and acked, then the client disconnects);
//!   a second one exits at once (nothing unacked is lost: the broker redelivers it).
//! - `ioc-collector check-config FILE`: parse, validate, check the TLS files; exit 1 on error.
//! - `ioc-collector stats --config FILE [--json]`: per-agent event counts and seq gaps.
//!
//! Errors print as `error: {:#}` (the cause chain on one line); logs go to stderr, filtered
//! by `RUST_LOG` (default `info`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ioc_collector::{ingest, Config, Store};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.cmd {
        Cmd::Run { config } => run(&config),
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Stats { config, json } => stats(&config, json),
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
    println!(
        "{}: ok (broker {}:{}, client id {:?}, store {})",
        path.display(),
        c.mqtt.host,
        c.port(),
        c.mqtt.client_id,
        c.store.path.display()
    );
    Ok(())
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ioc-collector")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let handle = ingest::start(&config)?;
        let stop = async {
            signal().await;
            tracing::info!("stopping: finishing the batch in flight (signal again to exit now)");
            tokio::spawn(async {
                signal().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
        };
        handle.run_until(stop, Duration::from_secs(30)).await?;
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn stats(path: &Path, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let config = Config::load(path)?;
    anyhow::ensure!(
        config.store.path.exists(),
        "store {} does not exist (has the collector run with this config?)",
        config.store.path.display()
    );
    let store = Store::open(&config.store.path, &config.store.snapshot_dir)?;
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
