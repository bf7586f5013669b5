//! The store's single writer: a named OS thread that owns the [`Store`] and runs jobs sent
//! to it, one at a time, in order (STYLE §6: blocking work off the async runtime).
//!
//! Async code calls [`StoreWriter::call`] with a closure; it runs on the thread
//! `ioc-store-writer` and its result comes back through a oneshot channel. Because there is
//! one thread, there is one writer: ingest batches, operators' incident actions (the API),
//! the periodic incident check and retention never race for SQLite's write lock. The job queue is bounded by its callers: ingest awaits each batch
//! before gathering the next.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use crate::store::Store;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// The writer thread is gone (it panicked, or was stopped).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the store writer thread has stopped")]
pub struct WriterGone;

/// A handle to the writer thread; clones share the thread. The thread stops when the last
/// handle is dropped, after finishing queued jobs.
#[derive(Clone)]
pub struct StoreWriter {
    job_tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter {
    /// Moves `store` to a new thread named `ioc-store-writer`.
    pub fn spawn(mut store: Store) -> std::io::Result<(StoreWriter, thread::JoinHandle<()>)> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let join = thread::Builder::new()
            .name("ioc-store-writer".into())
            .spawn(move || {
                for job in job_rx {
                    job(&mut store);
                }
                tracing::debug!("store writer stopped");
            })?;
        Ok((StoreWriter { job_tx }, join))
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, WriterGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = reply_tx.send(f(store));
        });
        self.job_tx.send(job).map_err(|_| WriterGone)?;
        reply_rx.await.map_err(|_| WriterGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("x.db"), &dir.path().join("s")).unwrap();
        let (w, join) = StoreWriter::spawn(store).unwrap();
        let name = w
            .call(|_| thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("ioc-store-writer"));
        let n = w.call(|s| s.count_events("a").unwrap()).await.unwrap();
        assert_eq!(n, 0);
        drop(w);
        join.join().unwrap();
    }
}
