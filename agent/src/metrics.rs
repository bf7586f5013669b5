//! The agent's Prometheus metrics (`[metrics] listen`, loopback by default): per camera the
//! frames received, decoded, offered to the detectors, detected, held by motion gating and
//! dropped, failed sessions, its state and detection latency; the detectors' inferences, their
//! time as a histogram and the queue of frames waiting for them; the outbox's depth, size and
//! the age of its oldest entry; the MQTT connection. Counters wherever Prometheus can rate
//! them; the console's fps figures are those rates.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use crate::camera::CameraCounters;
use crate::detect::{CameraDetectStats, DetectStats, Scheduler, INFERENCE_BUCKETS};
use crate::source::{CameraState, CameraStatus};

/// One camera's live figures.
pub struct CameraSource {
    /// Camera id.
    pub id: String,
    /// Source and decoder counters.
    pub counters: Arc<CameraCounters>,
    /// Detection counters.
    pub detect: Arc<CameraDetectStats>,
    /// Live state.
    pub status: watch::Receiver<CameraStatus>,
    /// `detect.fps` for this camera.
    pub target_fps: f64,
}

/// Everything the metrics are read from.
pub struct Sources {
    /// The enabled cameras.
    pub cameras: Vec<CameraSource>,
    /// The detector pool.
    pub detect: Arc<DetectStats>,
    /// The detectors' scheduler, for the queue depth.
    pub queue: Option<Arc<Scheduler>>,
    /// The publisher and its outbox, when `[mqtt]` is configured.
    pub delivery: Option<(Arc<ioc_outbox::PublisherHandle>, ioc_outbox::Outbox)>,
    /// The queue from the rules thread to the delivery thread.
    pub delivery_queue: Option<Arc<crate::delivery::QueueStats>>,
    /// The clip thread's counters, when clips are made.
    pub clips: Option<Arc<crate::clip::ClipStats>>,
    /// The preview thread's counters, when `[mqtt]` is configured.
    pub previews: Option<Arc<crate::preview::PreviewStats>>,
    /// What the detectors run.
    pub detector: DetectorInfo,
}

/// What the detectors run, for `ioc_agent_detector_info`.
#[derive(Clone, Debug, Default)]
pub struct DetectorInfo {
    /// The manifest's model name.
    pub model: String,
    /// `float` or `int8`.
    pub precision: String,
    /// ONNX Runtime's execution provider.
    pub provider: String,
}

/// A label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const STATES: [(CameraState, &str); 5] = [
    (CameraState::Connecting, "connecting"),
    (CameraState::Streaming, "streaming"),
    (CameraState::Reconnecting, "reconnecting"),
    (CameraState::Failed, "failed"),
    (CameraState::Stopped, "stopped"),
];

/// The metrics in the Prometheus text format.
pub fn render(s: &Sources) -> String {
    let mut out = String::new();
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    type Read = fn(&CameraSource) -> u64;
    let per_camera: [(&str, &str, Read); 8] = [
        (
            "frames_received_total",
            "Compressed frames received.",
            |c| c.counters.received.load(Ordering::Relaxed),
        ),
        ("frames_decoded_total", "Frames out of the decoder.", |c| {
            c.counters.decode.decoded.load(Ordering::Relaxed)
        }),
        (
            "frames_offered_total",
            "Decoded frames offered to the detectors (at most detect.fps a second).",
            |c| c.detect.offered.load(Ordering::Relaxed),
        ),
        (
            "frames_detected_total",
            "Frames run through the model.",
            |c| c.detect.detected.load(Ordering::Relaxed),
        ),
        (
            "frames_held_total",
            "Frames judged still by motion gating (no inference needed).",
            |c| c.detect.held.load(Ordering::Relaxed),
        ),
        (
            "frames_dropped_total",
            "Frames replaced by a newer one while the detectors were busy.",
            |c| c.detect.dropped.load(Ordering::Relaxed),
        ),
        (
            "frames_behind_total",
            "Compressed frames the decoder dropped because it fell behind.",
            |c| c.counters.decode.dropped_behind.load(Ordering::Relaxed),
        ),
        (
            "camera_failures_total",
            "Camera sessions that ended in an error (each is retried).",
            |c| c.counters.failures.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in per_camera {
        let _ = writeln!(
            out,
            "# HELP ioc_agent_{name} {help}\n# TYPE ioc_agent_{name} counter"
        );
        for c in &s.cameras {
            let _ = writeln!(
                out,
                "ioc_agent_{name}{{camera=\"{}\"}} {}",
                label(&c.id),
                read(c)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ioc_agent_camera_state The camera's state (1 for the current one).\n\
         # TYPE ioc_agent_camera_state gauge"
    );
    for c in &s.cameras {
        let now = c.status.borrow().state;
        for (st, name) in STATES {
            let _ = writeln!(
                out,
                "ioc_agent_camera_state{{camera=\"{}\",state=\"{name}\"}} {}",
                label(&c.id),
                u8::from(now == st)
            );
        }
    }
    // One family at a time: Prometheus wants a family's series together.
    let _ = writeln!(
        out,
        "# HELP ioc_agent_target_fps Frames a second the camera should be analysed at.\n\
         # TYPE ioc_agent_target_fps gauge"
    );
    for c in &s.cameras {
        let _ = writeln!(
            out,
            "ioc_agent_target_fps{{camera=\"{}\"}} {}",
            label(&c.id),
            c.target_fps
        );
    }
    let _ = writeln!(
        out,
        "# HELP ioc_agent_last_frame_age_seconds Seconds since the camera's latest frame \
         arrived (grows while it is down).\n# TYPE ioc_agent_last_frame_age_seconds gauge"
    );
    for c in &s.cameras {
        if let Some(age) = c.counters.last_frame_age() {
            let _ = writeln!(
                out,
                "ioc_agent_last_frame_age_seconds{{camera=\"{}\"}} {:.3}",
                label(&c.id),
                age.as_secs_f64()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ioc_agent_detect_latency_seconds Median time from decoded frame to detections \
         over the recent frames.\n# TYPE ioc_agent_detect_latency_seconds gauge"
    );
    for c in &s.cameras {
        if let Some((median, _)) = c.detect.latency() {
            let _ = writeln!(
                out,
                "ioc_agent_detect_latency_seconds{{camera=\"{}\"}} {:.4}",
                label(&c.id),
                median.as_secs_f64()
            );
        }
    }
    let d = &s.detector;
    let _ = writeln!(
        out,
        "# HELP ioc_agent_detector_info The model, precision and execution provider the \
         detectors run (always 1).\n# TYPE ioc_agent_detector_info gauge\n\
         ioc_agent_detector_info{{model=\"{}\",precision=\"{}\",provider=\"{}\"}} 1",
        label(&d.model),
        label(&d.precision),
        label(&d.provider)
    );
    let _ = writeln!(
        out,
        "# HELP ioc_agent_inferences_total Inferences run by the detector pool.\n\
         # TYPE ioc_agent_inferences_total counter\nioc_agent_inferences_total {}\n\
         # HELP ioc_agent_inference_errors_total Inferences that failed.\n\
         # TYPE ioc_agent_inference_errors_total counter\nioc_agent_inference_errors_total {}\n\
         # HELP ioc_agent_inference_seconds_total Time spent in inference (with pre- and \
         post-processing).\n# TYPE ioc_agent_inference_seconds_total counter\n\
         ioc_agent_inference_seconds_total {:.3}",
        l(&s.detect.frames),
        l(&s.detect.errors),
        l(&s.detect.busy_us) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "# HELP ioc_agent_inference_duration_seconds Time of one inference (with pre- and \
         post-processing).\n# TYPE ioc_agent_inference_duration_seconds histogram"
    );
    let cumulative = s.detect.inference.cumulative();
    for (le, n) in INFERENCE_BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(
            out,
            "ioc_agent_inference_duration_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "ioc_agent_inference_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
         ioc_agent_inference_duration_seconds_sum {:.6}\n\
         ioc_agent_inference_duration_seconds_count {}",
        cumulative[INFERENCE_BUCKETS.len()],
        l(&s.detect.busy_us) as f64 / 1e6,
        cumulative[INFERENCE_BUCKETS.len()],
    );
    if let Some(q) = &s.queue {
        let _ = writeln!(
            out,
            "# HELP ioc_agent_detect_queue_depth Frames waiting for a detector (at most one per \
             camera: a newer frame replaces a waiting one).\n\
             # TYPE ioc_agent_detect_queue_depth gauge\nioc_agent_detect_queue_depth {}",
            q.waiting()
        );
    }
    if let Some(q) = &s.delivery_queue {
        let _ = writeln!(
            out,
            "# HELP ioc_agent_delivery_queue_depth Rule outputs waiting to be written to the \
             outbox.\n# TYPE ioc_agent_delivery_queue_depth gauge\nioc_agent_delivery_queue_depth {}\n\
             # HELP ioc_agent_delivery_waits_total Times the rules waited for the outbox (its \
             disk fell a whole queue behind).\n# TYPE ioc_agent_delivery_waits_total counter\n\
             ioc_agent_delivery_waits_total {}\n\
             # HELP ioc_agent_delivery_wait_seconds_total Time the rules spent waiting for the \
             outbox.\n# TYPE ioc_agent_delivery_wait_seconds_total counter\n\
             ioc_agent_delivery_wait_seconds_total {:.3}",
            q.depth(),
            q.waits(),
            q.waited().as_secs_f64()
        );
    }
    if let Some((publisher, outbox)) = &s.delivery {
        let p = publisher.stats();
        // How far behind delivery is: the age of the oldest entry not yet acked (0: none).
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let oldest_age = match outbox.oldest_created_ms() {
            Ok(Some(t)) => Some(now_ms.saturating_sub(t).max(0) as f64 / 1000.0),
            Ok(None) => Some(0.0),
            Err(_) => None,
        };
        if let Some(age) = oldest_age {
            let _ = writeln!(
                out,
                "# HELP ioc_agent_outbox_oldest_age_seconds Age of the oldest entry waiting for \
                 the collector's ack (0: none waits).\n\
                 # TYPE ioc_agent_outbox_oldest_age_seconds gauge\n\
                 ioc_agent_outbox_oldest_age_seconds {age:.1}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ioc_agent_outbox_entries Events, counts and snapshots waiting for the \
             collector's ack.\n# TYPE ioc_agent_outbox_entries gauge\nioc_agent_outbox_entries {}\n\
             # HELP ioc_agent_outbox_bytes Bytes held by the outbox.\n\
             # TYPE ioc_agent_outbox_bytes gauge\nioc_agent_outbox_bytes {}\n\
             # HELP ioc_agent_outbox_max_bytes The outbox's size bound.\n\
             # TYPE ioc_agent_outbox_max_bytes gauge\nioc_agent_outbox_max_bytes {}\n\
             # HELP ioc_agent_mqtt_connected Whether the agent is connected to the broker.\n\
             # TYPE ioc_agent_mqtt_connected gauge\nioc_agent_mqtt_connected {}\n\
             # HELP ioc_agent_published_total Outbox entries published for the first time.\n\
             # TYPE ioc_agent_published_total counter\nioc_agent_published_total {}\n\
             # HELP ioc_agent_resent_total Outbox entries published again.\n\
             # TYPE ioc_agent_resent_total counter\nioc_agent_resent_total {}\n\
             # HELP ioc_agent_acked_total Outbox entries the collector acknowledged.\n\
             # TYPE ioc_agent_acked_total counter\nioc_agent_acked_total {}",
            outbox.len(),
            outbox.bytes(),
            outbox.max_bytes(),
            u8::from(p.connected),
            p.published,
            p.resent,
            p.acked
        );
    }
    if let Some(c) = &s.clips {
        let _ = writeln!(
            out,
            "# HELP ioc_agent_clips_total Event clips by outcome: stored in the outbox, skipped \
             (rate cap, no video held, outbox full) or failed.\n\
             # TYPE ioc_agent_clips_total counter"
        );
        for (result, n) in [
            ("stored", &c.stored),
            ("skipped", &c.skipped),
            ("failed", &c.failed),
        ] {
            let _ = writeln!(
                out,
                "ioc_agent_clips_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    if let Some(p) = &s.previews {
        let _ = writeln!(
            out,
            "# HELP ioc_agent_previews_total Camera previews: sent, skipped (no picture yet, not \
             connected, too big) or requests rejected (not valid, unknown camera).\n\
             # TYPE ioc_agent_previews_total counter"
        );
        for (result, n) in [
            ("sent", &p.sent),
            ("skipped", &p.skipped),
            ("rejected", &p.rejected),
        ] {
            let _ = writeln!(
                out,
                "ioc_agent_previews_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sources: Arc<Sources>,
    mut shutdown: watch::Receiver<bool>,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move {
                // The outbox is read through SQLite: off the async threads.
                let text = tokio::task::spawn_blocking(move || render(&sources))
                    .await
                    .unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text,
                )
            }
        }),
    );
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}

/// Binds `addr` for [`serve`], with the config key in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn families_are_contiguous_and_labels_escaped() {
        let camera = |id: &str| CameraSource {
            id: id.into(),
            counters: Arc::default(),
            detect: Arc::default(),
            status: watch::channel(CameraStatus::connecting()).1,
            target_fps: 5.0,
        };
        let s = Sources {
            cameras: vec![camera("gate"), camera("odd\"id")],
            detect: Arc::default(),
            queue: Some(crate::detect::Scheduler::new(
                Vec::new(),
                crate::detect::QueuePolicy::Latest,
            )),
            delivery: None,
            delivery_queue: None,
            clips: None,
            previews: Some(Arc::default()),
            detector: DetectorInfo {
                model: "nanodet".into(),
                precision: "int8".into(),
                provider: "cpu".into(),
            },
        };
        s.detect.inference.observe(Duration::from_millis(3));
        s.detect.inference.observe(Duration::from_millis(40));
        s.detect.inference.observe(Duration::from_secs(3));
        s.detect.busy_us.store(3_043_000, Ordering::Relaxed);
        s.cameras[0].detect.detected.store(7, Ordering::Relaxed);
        s.cameras[0].counters.frame_received();
        let text = render(&s);
        // Only a camera that sent a frame has an age, and it is fresh.
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("ioc_agent_last_frame_age_seconds{camera=\"gate\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("age of gate");
        assert!((0.0..5.0).contains(&age), "{age}");
        assert!(!text.contains("ioc_agent_last_frame_age_seconds{camera=\"odd"));
        assert!(text.contains("ioc_agent_frames_detected_total{camera=\"gate\"} 7\n"));
        assert!(text.contains("ioc_agent_previews_total{result=\"sent\"} 0\n"));
        // Every line is a sample or a comment from its first column (a text-format parser
        // rejects indented comment lines).
        for line in text.lines() {
            assert!(!line.starts_with(char::is_whitespace), "{line:?}");
        }
        assert!(text.contains("camera=\"odd\\\"id\""));
        // Cumulative buckets: 3 ms in every one, 40 ms from 50 ms on, 3 s only in +Inf.
        for (le, n) in [
            ("0.005", 1),
            ("0.035", 1),
            ("0.05", 2),
            ("1", 2),
            ("+Inf", 3),
        ] {
            let line = format!("ioc_agent_inference_duration_seconds_bucket{{le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains("ioc_agent_inference_duration_seconds_count 3\n"));
        assert!(text.contains("ioc_agent_inference_duration_seconds_sum 3.043000\n"));
        assert!(text.contains("ioc_agent_detect_queue_depth 0\n"));
        assert!(text.contains(
            "ioc_agent_detector_info{model=\"nanodet\",precision=\"int8\",provider=\"cpu\"} 1\n"
        ));
        assert!(text.contains("ioc_agent_camera_state{camera=\"gate\",state=\"connecting\"} 1\n"));
        // Every series follows its own family's TYPE line, and no family comes back later.
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_owned();
                assert!(seen.insert(current.clone()), "{current} twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|f| *f == current)
                    .unwrap_or(name);
                assert_eq!(family, current, "{line}");
            }
        }
    }
}
