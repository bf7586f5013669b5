//! `ioc-outbox-loadgen`: appends synthetic events to an outbox at a steady rate and publishes
//! them through the [`Publisher`](ioc_outbox::Publisher), for end-to-end tests.
//!
//! It **resumes**: events are appended only while the outbox's next seq is `<= --count`, so
//! after a `kill -9` the same command line continues where the outbox left off (every event
//! whose `appended <seq>` line was printed is durable). Output on stdout, one line each:
//! `appended <seq>` after each durable append, then `done` once every event up to `--count`
//! has been acknowledged by the collector (the outbox is empty); then it exits 0. Logs go to
//! stderr (`RUST_LOG`, default `info`).
//!
//! Event ids are `{agent}-{seq}` (`ioc_protocol::incident_id`), phase `instant`, kind
//! `line_crossing`, camera `cam-1`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use ioc_outbox::{MqttConfig, Outbox, OutboxConfig, Publisher};
use ioc_protocol::Event;

#[derive(Debug, Parser)]
#[command(
    name = "ioc-outbox-loadgen",
    about = "append and publish synthetic events through a durable outbox"
)]
struct Args {
    /// The outbox file (created if missing).
    #[arg(long)]
    outbox: PathBuf,
    /// Agent id (also the MQTT client id and, by default, user name).
    #[arg(long)]
    agent: String,
    /// Last seq to append (events 1..=count).
    #[arg(long)]
    count: u64,
    /// Events per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// MQTT user name (default: the agent id).
    #[arg(long)]
    username: Option<String>,
    /// Name of the environment variable holding the MQTT password.
    #[arg(long)]
    password_env: Option<String>,
    /// Re-send after this many seconds without the collector's ack.
    #[arg(long, default_value_t = 5.0)]
    ack_timeout_sec: f64,
    /// Most reconnect backoff.
    #[arg(long, default_value_t = 2.0)]
    reconnect_max_sec: f64,
    /// Outbox size bound in bytes.
    #[arg(long, default_value_t = ioc_outbox::store::DEFAULT_MAX_BYTES)]
    max_bytes: u64,
}

fn event(agent: &str, seq: u64) -> Event {
    Event::example(agent, seq)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate {} must be a positive number",
        args.rate
    );
    let password = match &args.password_env {
        Some(var) => {
            Some(std::env::var(var).with_context(|| format!("--password-env: ${var} is not set"))?)
        }
        None => None,
    };
    let outbox = Outbox::open(
        &args.outbox,
        OutboxConfig {
            max_bytes: args.max_bytes,
        },
    )?;
    let mut cfg = MqttConfig::new(&args.host, args.port);
    cfg.username = Some(args.username.clone().unwrap_or_else(|| args.agent.clone()));
    cfg.password = password.map(Into::into);
    cfg.ack_timeout_sec = args.ack_timeout_sec;
    cfg.reconnect_max_sec = args.reconnect_max_sec;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    rt.block_on(run(args, outbox, cfg))
}

async fn run(args: Args, outbox: Outbox, cfg: MqttConfig) -> anyhow::Result<()> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let publisher = Publisher::spawn(
        outbox.clone(),
        cfg,
        &args.agent,
        None,
        env!("CARGO_PKG_VERSION"),
        vec!["cam-1".into()],
        shutdown_rx,
    )?;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut next_at = Instant::now();
    let stdout = std::io::stdout();
    loop {
        let ob = outbox.clone();
        let agent = args.agent.clone();
        let count = args.count;
        let appended = tokio::task::spawn_blocking(move || {
            if ob.next_seq()? > count {
                return Ok(None);
            }
            ob.append_event(|seq| event(&agent, seq)).map(Some)
        })
        .await??;
        let Some(seq) = appended else { break };
        {
            let mut out = stdout.lock();
            writeln!(out, "appended {seq}")?;
            out.flush()?;
        }
        publisher.notify();
        next_at += period;
        tokio::time::sleep_until(next_at.into()).await;
    }
    let mut last_log = Instant::now();
    while !outbox.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            let s = publisher.stats();
            tracing::info!(
                waiting = outbox.len(),
                connected = s.connected,
                published = s.published,
                resent = s.resent,
                acked = s.acked,
                last_error = s.last_error.as_deref().unwrap_or(""),
                "waiting for acks"
            );
        }
    }
    {
        let mut out = stdout.lock();
        writeln!(out, "done")?;
        out.flush()?;
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), publisher.join()).await;
    Ok(())
}
