//! Stopping on a signal: SIGINT (Ctrl-C) or SIGTERM (systemd, `docker stop`), for both
//! binaries, so they stop the same way.

/// Resolves on the next SIGINT or SIGTERM (Ctrl-C only, off Unix). Call it again for the
/// next one: a second signal while stopping means "now".
pub async fn shutdown_signal() {
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
