//! The whole collector in one process: the store's writer thread, MQTT ingest, the HTTP API
//! and console, and the periodic work (escalation, health incidents, retention, the daily
//! report). `ioc-collector run` is this plus signal handling; tests start it the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn, Instrument};

use crate::api::{self, ApiConfig, AppState};
use crate::clock::Clock;
use crate::config::Config;
use crate::hub::Hub;
use crate::ingest::{self, IngestHandle};
use crate::store::day_name;
use crate::writer::StoreWriter;

/// A running collector.
pub struct Collector {
    /// Where the HTTP server listens (the real port when the config said `:0`).
    pub http_addr: SocketAddr,
    /// Ingest, if MQTT is configured to run.
    ingest: Option<IngestHandle>,
    writer: StoreWriter,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    hub: Hub,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

/// What to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Ingest, API, periodic work.
    All,
    /// API and periodic work only (tests of the API, a read-only console).
    NoIngest,
}

impl Collector {
    /// Starts everything `config` describes (call inside a Tokio runtime).
    pub async fn start(
        config: &Config,
        clock: Arc<dyn Clock>,
        parts: Parts,
    ) -> anyhow::Result<Self> {
        let mut store = config.store.open().context("cannot open the store")?;
        store.set_policy(config.policy());
        // The reader opens after the writer has migrated the schema.
        let mut reader = config
            .store
            .open()
            .context("cannot open the store for reading")?;
        reader.set_policy(config.policy());
        let (writer, writer_thread) =
            StoreWriter::spawn(store).context("cannot start the store writer")?;
        let hub = Hub::default();
        let ingest = match parts {
            Parts::All => Some(ingest::start_with_writer(
                config,
                writer.clone(),
                Some(hub.clone()),
            )?),
            Parts::NoIngest => None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let webhooks = crate::webhook::spawn(&config.webhooks, &hub, shutdown_rx.clone())?;
        let api_config = ApiConfig {
            session: Duration::from_secs(config.http.session_hours * 3600),
            secure_cookie: config.http.secure_cookie,
            metrics_token: config
                .http
                .metrics_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            utc_offset_minutes: config.reports.utc_offset_minutes,
            broker: ingest.as_ref().map(|i| i.conn_watch()),
            webhooks: webhooks.stats.clone(),
            previews: ingest.as_ref().map(|i| i.previews().clone()),
            analytics: ingest.as_ref().map(|i| i.analytics().clone()),
        };
        let state = AppState::new(
            reader,
            writer.clone(),
            hub.clone(),
            clock.clone(),
            ingest.as_ref().map(|i| i.metrics().clone()),
            &api_config,
            shutdown_rx.clone(),
        );
        let listener = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        // The live stream writes small messages; Nagle's algorithm would hold each one back
        // for the browser's delayed ACK (~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        info!(%http_addr, "console and API listening");
        let mut tasks = webhooks.tasks;
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(
            async move {
                let app = api::router(state);
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                // The peer address keys the login throttle.
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    error!(error = %e, "http server failed");
                }
            }
            .instrument(tracing::info_span!("http")),
        ));
        let periodic = Periodic {
            writer: writer.clone(),
            hub: hub.clone(),
            clock,
            every: Duration::from_secs(config.incidents.check_every_sec.max(1)),
            events_days: config.retention.events_days,
            snapshots_days: config.retention.snapshots_days,
            dead_letters_days: config.retention.dead_letters_days,
            report_dir: config.reports.dir.clone(),
            report_at_min: config.reports.at_minutes().unwrap_or(360),
            utc_offset_minutes: config.reports.utc_offset_minutes,
        };
        tasks.push(tokio::spawn(
            periodic
                .run(shutdown_rx)
                .instrument(tracing::info_span!("periodic")),
        ));
        Ok(Collector {
            http_addr,
            ingest,
            writer,
            writer_thread: Some(writer_thread),
            hub,
            shutdown_tx,
            tasks,
        })
    }

    /// The live-stream hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The store's writer.
    pub fn writer(&self) -> &StoreWriter {
        &self.writer
    }

    /// Ingest, when running.
    pub fn ingest(&self) -> Option<&IngestHandle> {
        self.ingest.as_ref()
    }

    /// Resolves if ingest stops by itself (its store writer died): the collector is then of
    /// no use and should exit so that its supervisor restarts it. Pending without ingest.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.ingest.as_mut() {
            Some(i) => i.stopped().await.into(),
            None => std::future::pending().await,
        }
    }

    /// Graceful stop: ingest finishes its batch, the HTTP server closes, the writer drains.
    pub async fn shutdown(mut self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        let result = match self.ingest.take() {
            Some(i) => i.shutdown(deadline).await.map_err(anyhow::Error::from),
            None => Ok(()),
        };
        for mut t in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                warn!("a task did not stop in time; aborting it");
                t.abort();
            }
        }
        // The writer thread ends when the last handle is gone; a handle still held by a
        // stuck HTTP connection must not hang the shutdown.
        drop(self.writer);
        if let Some(t) = self.writer_thread.take() {
            let join = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout(Duration::from_secs(10), join)
                .await
                .is_err()
            {
                warn!("the store writer did not stop in time");
            }
        }
        result
    }
}

struct Periodic {
    writer: StoreWriter,
    hub: Hub,
    clock: Arc<dyn Clock>,
    every: Duration,
    events_days: u64,
    snapshots_days: u64,
    dead_letters_days: u64,
    report_dir: Option<PathBuf>,
    report_at_min: i64,
    utc_offset_minutes: i64,
}

impl Periodic {
    async fn run(self, mut shutdown_rx: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention: Option<i64> = None;
        loop {
            tokio::select! {
                _ = shutdown_rx.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            let now = self.clock.now_ms();
            match self.writer.call(move |s| s.tick(now)).await {
                Ok(Ok(changes)) => {
                    for c in &changes {
                        info!(incident = c.incident.id, kind = %c.incident.kind,
                              site = %c.incident.site, change = ?c.change, "incident check");
                    }
                    self.hub.incidents(&changes);
                }
                Ok(Err(e)) => error!(error = %e, "incident checks failed"),
                Err(_) => return,
            }
            if last_retention.is_none_or(|t| now.saturating_sub(t) >= 3_600_000) {
                last_retention = Some(now);
                let (ed, sd, dd) = (
                    self.events_days,
                    self.snapshots_days,
                    self.dead_letters_days,
                );
                match self
                    .writer
                    .call(move |s| s.apply_retention(now, ed, sd, dd))
                    .await
                {
                    Ok(Ok((e, s, d))) if e + s + d > 0 => {
                        info!(
                            events = e,
                            snapshots = s,
                            dead_letters = d,
                            "retention removed old rows"
                        )
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => error!(error = %e, "retention failed"),
                    Err(_) => return,
                }
            }
            if let Some(dir) = &self.report_dir {
                self.maybe_write_report(dir, now).await;
            }
        }
    }

    /// After `report_at` local time, writes yesterday's report if it is not there yet.
    async fn maybe_write_report(&self, dir: &Path, now: i64) {
        let off = self.utc_offset_minutes * 60_000;
        let local = now + off;
        let today = local.div_euclid(86_400_000);
        if local.rem_euclid(86_400_000) < self.report_at_min * 60_000 {
            return;
        }
        let day = today - 1;
        let html_path = dir.join(format!("{}.html", day_name(day)));
        if html_path.exists() {
            return;
        }
        let offm = self.utc_offset_minutes;
        let report = match self
            .writer
            .call(move |s| {
                let r = s.daily_report(day, offm, now)?;
                let files = crate::report::picture_files(s, &r)?;
                Ok::<_, crate::store::StoreError>((r, files))
            })
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                error!(error = %e, "cannot compute the daily report");
                return;
            }
            Err(_) => return,
        };
        let (report, files) = report;
        // Reading and shrinking the pictures is file work: off the store's thread.
        let pictures =
            match tokio::task::spawn_blocking(move || crate::report::pictures(files)).await {
                Ok(p) => p,
                Err(_) => return,
            };
        if let Err(e) = write_report(dir, &report, &pictures) {
            error!(error = %format!("{e:#}"), dir = %dir.display(), "cannot write the daily report");
        } else {
            info!(date = %report.date, dir = %dir.display(), "daily report written");
        }
    }
}

/// Writes `{date}.csv` then `{date}.html` (with `pictures` inside) into `dir` (the HTML last:
/// its presence means done).
pub fn write_report(
    dir: &Path,
    r: &crate::store::DailyReport,
    pictures: &crate::report::Pictures,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (ext, body) in [
        ("csv", crate::report::csv(r)),
        ("html", crate::report::html(r, pictures)),
    ] {
        let path = dir.join(format!("{}.{ext}", r.date));
        let tmp = dir.join(format!(".{}.{ext}.tmp", r.date));
        std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename to {}", path.display()))?;
    }
    Ok(())
}
