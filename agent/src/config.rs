//! The agent's configuration file: strict parsing, then validation that
//! gathers every error by key, then (for `check-config` and `run`) checks
//! against the environment (model file, GStreamer elements).
//!
//! Every error names the file and the key, e.g.
//! `config/agent.toml: cameras[1].transport: unknown variant "udpp", expected "tcp" or "udp"`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole `agent.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Identity of this agent.
    pub agent: AgentSection,
    /// Detection settings shared by all cameras.
    #[serde(default)]
    pub detect: DetectConfig,
    /// Decoder elements.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Reconnect and timeout policy for cameras.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// The MQTT broker events are delivered to; without it incidents are only logged.
    #[serde(default)]
    pub mqtt: Option<ioc_outbox::MqttConfig>,
    /// The durable outbox events wait in until the collector acknowledges them.
    #[serde(default)]
    pub outbox: OutboxSection,
    /// Event snapshots.
    #[serde(default)]
    pub snapshot: crate::snapshot::SnapshotConfig,
    /// Event clips (MP4 around each incident, sent like snapshots).
    #[serde(default)]
    pub clips: crate::clip::ClipConfig,
    /// Camera previews for the center (answered on request; periodic when configured).
    #[serde(default)]
    pub preview: crate::preview::PreviewConfig,
    /// The cameras.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// `[metrics]`: Prometheus metrics over HTTP; absent: not served.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Directory of the config file; relative paths inside it are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[agent]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Unique id of this agent (site box): `[a-z0-9_-]`, used in MQTT topics.
    pub id: String,
    /// Log every detection at info level (useful while installing; noisy).
    #[serde(default = "yes")]
    pub log_detections: bool,
    /// The site's offset from UTC in minutes (420 for Viet Nam), for rule schedules.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// The site's name for people (the console shows it instead of the id).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[detect]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Model manifest (TOML), relative to the config file.
    #[serde(default = "default_model")]
    pub model: PathBuf,
    /// Frames per second handed to the detector per camera.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Minimum score of a detection.
    #[serde(default = "default_score")]
    pub score_threshold: f32,
    /// IoU of per-class NMS.
    #[serde(default = "default_iou")]
    pub nms_iou: f32,
    /// At most this many detections per frame.
    #[serde(default = "default_max_det")]
    pub max_detections: usize,
    /// Class names to keep; empty keeps every class of the model.
    #[serde(default)]
    pub classes: Vec<String>,
    /// No longer used (each camera now keeps only its newest frame); accepted with a warning
    /// so older configs still load.
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// Detector workers, each with its own model session; 0 sizes the pool to the machine.
    #[serde(default)]
    pub workers: usize,
    /// ONNX Runtime intra-op threads per worker; 0 sizes it to the machine.
    #[serde(default)]
    pub intra_threads: usize,
    /// ONNX Runtime inter-op threads per worker.
    #[serde(default = "one")]
    pub inter_threads: usize,
    /// Let ONNX Runtime's threads spin-wait between operators (faster alone, but the
    /// spinning takes cores from decoding and the other workers).
    #[serde(default)]
    pub ort_spinning: bool,
    /// Motion gating: run the model only where something moves (plus a refresh).
    #[serde(default)]
    pub motion: crate::motion::MotionConfig,
    /// Path of `libonnxruntime.so`; default: `$ORT_DYLIB_PATH`, then system paths.
    #[serde(default)]
    pub ort_library: Option<PathBuf>,
    /// `"float"` (default), `"int8"`, or `"auto"` (INT8 where the CPU has fast INT8 and the
    /// model an INT8 file).
    #[serde(default)]
    pub precision: ioc_detect::PrecisionChoice,
    /// The model input's shape: `"model"` (default, its manifest's size), `"auto"` (each
    /// camera's aspect ratio when the model takes any size: 416x320 for 4:3, 416x256 for
    /// 16:9), or `"WIDTHxHEIGHT"` for every camera.
    #[serde(default)]
    pub input_size: ioc_detect::InputSize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// How the detector pool is sized on a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    /// Workers (model sessions).
    pub workers: usize,
    /// ONNX Runtime intra-op threads per worker.
    pub threads: usize,
}

impl DetectConfig {
    /// The pool size: as configured, or sized to `cores` (see benches/README.md for the
    /// measurements behind the choice): one single-threaded session per core, so each
    /// inference runs on one core without waiting on the others, and decoding takes the
    /// gaps; at most 8.
    pub fn pool_size(&self, cores: usize) -> PoolSize {
        let cores = cores.max(1);
        let workers = if self.workers > 0 {
            self.workers
        } else {
            cores.min(8)
        };
        let threads = if self.intra_threads > 0 {
            self.intra_threads
        } else {
            (cores / workers).max(1)
        };
        PoolSize { workers, threads }
    }
}

/// `[outbox]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// The SQLite file, relative to the config file.
    #[serde(default = "default_outbox_path")]
    pub path: PathBuf,
    /// Size bound; when full, snapshots go first, then the oldest events (logged and counted).
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
}

impl Default for OutboxSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

fn default_outbox_path() -> PathBuf {
    "ioc-agent-outbox.db".into()
}
fn default_outbox_bytes() -> u64 {
    256 * 1024 * 1024
}

/// Why `rtsps://` is refused (by `check-config`, and by the source when it meets one).
pub const RTSPS_UNSUPPORTED: &str = "rtsps:// (RTSP over TLS) is not supported: use rtsp:// \
     on a trusted network, or carry it over a VPN or an SSH tunnel";

/// `[decode]`: GStreamer decoder elements per codec.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// H.264 decoder element, e.g. `avdec_h264` (software), `vah264dec`, `nvh264dec`, `v4l2h264dec`.
    #[serde(default = "default_h264")]
    pub h264: String,
    /// H.265 decoder element.
    #[serde(default = "default_h265")]
    pub h265: String,
    /// Threads per software (libav) decoder; 0 = automatic: one when the box has at least
    /// as many cameras as cores (the cameras already fill the cores, and each extra decoder
    /// thread holds frames: ~5 MiB a camera), else libav's own choice (one per core).
    #[serde(default)]
    pub threads: u32,
}

impl DecodeConfig {
    /// Threads for each camera's decoder with `cameras` enabled on `cores`; 0 leaves it to
    /// the decoder.
    pub fn threads_for(&self, cameras: usize, cores: usize) -> u32 {
        match self.threads {
            0 if cameras >= cores.max(1) => 1,
            n => n,
        }
    }
}

impl Default for DecodeConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// `[reconnect]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First wait after a failure.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// Limit for each of DESCRIBE, SETUP and PLAY.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// A stream that delivers no frame for this long is dropped and reconnected.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl ReconnectConfig {
    /// `initial_backoff_ms` as a duration.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    /// `max_backoff_ms` as a duration.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// RTP transport for RTSP.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportConfig {
    /// Interleaved on the RTSP TCP connection: works through NAT and firewalls.
    #[default]
    Tcp,
    /// Separate UDP ports, for cameras and servers that only speak UDP.
    Udp,
}

/// `[metrics]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` answers (default 127.0.0.1:9464: loopback; there is no login).
    #[serde(default = "default_metrics_listen")]
    pub listen: std::net::SocketAddr,
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// `[[cameras]]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique id within the agent: `[a-z0-9_-]`, used in MQTT topics.
    pub id: String,
    /// Human name for the console.
    #[serde(default)]
    pub name: Option<String>,
    /// `rtsp://host[:port]/path`. Credentials may be in the URL but are better in
    /// `username`/`password`; they are never logged either way.
    #[serde(default)]
    pub url: Option<String>,
    /// A video file instead of a camera (any container GStreamer can demux).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// File sources: play at the file's own pace (true) or as fast as decoding allows.
    #[serde(default = "yes")]
    pub realtime: bool,
    /// RTSP user name.
    #[serde(default)]
    pub username: Option<String>,
    /// RTSP password.
    #[serde(default)]
    pub password: Option<String>,
    /// RTP transport.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Overrides `detect.fps` for this camera.
    #[serde(default)]
    pub detect_fps: Option<f64>,
    /// Overrides the decoder element for this camera.
    #[serde(default)]
    pub decoder: Option<String>,
    /// A disabled camera is validated but not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Tracking, zones, lines and incident rules (see agent/tracking/README.md).
    #[serde(default)]
    pub analytics: Option<ioc_tracking::AnalyticsConfig>,
    /// The same, from a file of its own (relative to this config's folder), e.g. one scene
    /// shared by several configs; read at load, instead of `analytics`.
    #[serde(default)]
    pub analytics_file: Option<PathBuf>,
}

/// By hand: the password and the URL's credentials must not reach a log through `{:?}`.
impl std::fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.url.as_deref().map(|u| match url::Url::parse(u) {
            Ok(mut p) => {
                let _ = p.set_username("");
                let _ = p.set_password(None);
                p.to_string()
            }
            Err(_) => "<not a URL>".to_owned(),
        });
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &url)
            .field("file", &self.file)
            .field("realtime", &self.realtime)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("detect_fps", &self.detect_fps)
            .field("decoder", &self.decoder)
            .field("enabled", &self.enabled)
            .field("analytics", &self.analytics)
            .field("analytics_file", &self.analytics_file)
            .finish()
    }
}

impl CameraConfig {
    /// Detection rate of this camera.
    pub fn fps(&self, detect: &DetectConfig) -> f64 {
        self.detect_fps.unwrap_or(detect.fps)
    }
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_model() -> PathBuf {
    "../models/nanodet-g-416.toml".into()
}
fn default_fps() -> f64 {
    5.0
}
fn default_score() -> f32 {
    0.35
}
fn default_iou() -> f32 {
    0.5
}
fn default_max_det() -> usize {
    100
}
fn default_h264() -> String {
    "avdec_h264".into()
}
fn default_h265() -> String {
    "avdec_h265".into()
}
fn default_initial_backoff() -> u64 {
    1_000
}
fn default_max_backoff() -> u64 {
    30_000
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    10_000
}

/// A configuration that failed to load: the file and every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// `key: problem` lines.
    pub errors: Vec<String>,
}

impl ConfigError {
    fn render(&self) -> String {
        let p = self.path.display();
        match self.errors.as_slice() {
            [one] => format!("{p}: {one}"),
            many => {
                let mut s = format!("{p}: {} errors", many.len());
                for e in many {
                    s.push_str(&format!("\n  {e}"));
                }
                s
            }
        }
    }
}

impl AgentConfig {
    /// Reads, parses and validates `path` (no environment checks).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |errors| ConfigError {
            path: path.to_owned(),
            errors,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(vec![format!("cannot read: {e}")]))?;
        Self::parse_in(&text, path.parent().unwrap_or(Path::new(""))).map_err(fail)
    }

    /// Reads and parses `path` without stopping at the first problem: the config and every
    /// problem [`AgentConfig::validate`] finds (`check-config` adds the machine's). Only an
    /// unreadable file or a syntax or type error is an `Err`.
    pub fn load_with_problems(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let fail = |errors| ConfigError {
            path: path.to_owned(),
            errors,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(vec![format!("cannot read: {e}")]))?;
        let mut cfg = Self::deserialize_text(&text).map_err(fail)?;
        cfg.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let mut problems = cfg.include_analytics();
        problems.extend(cfg.validate());
        Ok((cfg, problems))
    }

    /// Parses and validates config text (relative paths from the working directory); errors
    /// are `key: problem`.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        Self::parse_in(text, Path::new(""))
    }

    /// As [`AgentConfig::parse`], for a config in folder `base`.
    fn parse_in(text: &str, base: &Path) -> Result<Self, Vec<String>> {
        let mut cfg = Self::deserialize_text(text)?;
        cfg.base_dir = base.to_owned();
        let mut errors = cfg.include_analytics();
        errors.extend(cfg.validate());
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// Reads each camera's `analytics_file` into its `analytics`; problems name the key, the
    /// file and, for TOML and type errors, the line in that file.
    fn include_analytics(&mut self) -> Vec<String> {
        let mut e = Vec::new();
        let base = self.base_dir.clone();
        for (i, c) in self.cameras.iter_mut().enumerate() {
            let Some(file) = &c.analytics_file else {
                continue;
            };
            let key = format!("cameras[{i}].analytics_file");
            if c.analytics.is_some() {
                e.push(format!(
                    "{key}: give the camera's analytics inline ([cameras.analytics]) or in a \
                     file, not both"
                ));
                continue;
            }
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(err) => {
                    e.push(format!("{key}: cannot read {}: {err}", path.display()));
                    continue;
                }
            };
            let de = toml::Deserializer::new(&text);
            match serde_path_to_error::deserialize::<_, ioc_tracking::AnalyticsConfig>(de) {
                Ok(a) => c.analytics = Some(a),
                Err(err) => {
                    let at = err.path().to_string();
                    let inner = err.into_inner();
                    let line = inner.span().map(|s| ioc_base::line_of(&text, s.start));
                    let line = line.map(|l| format!(", line {l}")).unwrap_or_default();
                    let at = if at == "." {
                        String::new()
                    } else {
                        format!("{at}: ")
                    };
                    e.push(format!(
                        "{key}: {}{line}: {at}{}",
                        path.display(),
                        inner.message().trim()
                    ));
                }
            }
        }
        e
    }

    /// Only the TOML and types; a problem names its key and line, with the valid values
    /// where serde does not list them.
    fn deserialize_text(text: &str) -> Result<Self, Vec<String>> {
        let de = toml::Deserializer::new(text);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().trim().to_owned();
            let line = inner
                .span()
                .map(|s| format!(" (line {})", ioc_base::line_of(text, s.start)))
                .unwrap_or_default();
            let hint = if msg.contains("missing field `in_side`") {
                ": the side a crossing goes *into* counts as \"in\": \"left\" or \"right\" of \
                 the line walked from its first point to its second"
            } else {
                ""
            };
            vec![if key == "." {
                format!("{msg}{hint}{line}")
            } else {
                format!("{key}: {msg}{hint}{line}")
            }]
        })?;
        Ok(cfg)
    }

    /// What is allowed but probably wrong, each naming its key (printed by `check-config`,
    /// logged at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(user) = self.mqtt.as_ref().and_then(|m| m.username.as_deref()) {
            if user != self.agent.id {
                w.push(format!(
                    "mqtt.username: {user:?} is not agent.id {:?}: the shipped broker ACL \
                     (config/mosquitto.acl) lets a user write only under its own name, so every \
                     event would be refused; use the id as the user name (ioc-collector agents \
                     add {:?})",
                    self.agent.id, self.agent.id
                ));
            }
        }
        w
    }

    /// Pure checks; returns every problem, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        check_id(&mut e, "agent.id", &self.agent.id);
        check_name(&mut e, "agent.name", self.agent.name.as_deref());
        if self.agent.utc_offset_minutes.abs() > 14 * 60 {
            e.push(format!(
                "agent.utc_offset_minutes: {} is not within ±14 h",
                self.agent.utc_offset_minutes
            ));
        }
        let d = &self.detect;
        if !(d.fps > 0.0 && d.fps <= 120.0) {
            e.push(format!("detect.fps: {} is not in (0, 120]", d.fps));
        }
        if !(0.0..=1.0).contains(&d.score_threshold) {
            e.push(format!(
                "detect.score_threshold: {} is not in [0, 1]",
                d.score_threshold
            ));
        }
        if !(0.0..=1.0).contains(&d.nms_iou) {
            e.push(format!("detect.nms_iou: {} is not in [0, 1]", d.nms_iou));
        }
        d.motion.validate(&mut e);
        if d.max_detections == 0 {
            e.push("detect.max_detections: must be at least 1".into());
        }
        for (k, v) in [
            ("workers", d.workers),
            ("intra_threads", d.intra_threads),
            ("inter_threads", d.inter_threads),
        ] {
            if v > 64 {
                e.push(format!("detect.{k}: {v} is more than 64"));
            }
        }
        let r = &self.reconnect;
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            e.push(format!(
                "reconnect.initial_backoff_ms: {} must be > 0 and <= reconnect.max_backoff_ms ({})",
                r.initial_backoff_ms, r.max_backoff_ms
            ));
        }
        for (k, v) in [
            ("connect_timeout_ms", r.connect_timeout_ms),
            ("idle_timeout_ms", r.idle_timeout_ms),
        ] {
            if v < 100 {
                e.push(format!("reconnect.{k}: {v} ms is too short (at least 100)"));
            }
        }
        match self.mqtt.as_ref().map(|m| m.validate()) {
            Some(Err(ioc_outbox::PublisherError::Config(problems))) => {
                e.extend(problems.iter().map(ToString::to_string))
            }
            Some(Err(other)) => e.push(format!("mqtt: {other}")),
            _ => {}
        }
        if self.outbox.max_bytes < 1024 * 1024 {
            e.push(format!(
                "outbox.max_bytes: {} is below 1 MiB",
                self.outbox.max_bytes
            ));
        }
        if self.snapshot.max_width < 64 || !(1..=100).contains(&self.snapshot.quality) {
            e.push("snapshot: max_width must be >= 64 and quality 1..=100".into());
        }
        if self.clips.enabled {
            e.extend(
                self.clips
                    .problems()
                    .into_iter()
                    .map(|(k, m)| format!("{k}: {m}")),
            );
            // A part travels as one MQTT message: its header and topic ride along.
            if let Some(m) = &self.mqtt {
                let room = (m.max_packet_bytes as u64).saturating_sub(8 * 1024);
                if self.clips.part_bytes > room {
                    e.push(format!(
                        "clips.part_bytes: {} does not fit in one MQTT packet of \
                         mqtt.max_packet_bytes ({}) with its header; at most {room}",
                        self.clips.part_bytes, m.max_packet_bytes
                    ));
                }
            }
        }
        e.extend(
            self.preview
                .problems()
                .into_iter()
                .map(|(k, m)| format!("{k}: {m}")),
        );
        if let Some(m) = &self.mqtt {
            // A preview travels as one QoS 0 message with its header (up to 64 KiB of boxes).
            let room = m.max_packet_bytes.saturating_sub(68 * 1024);
            if self.preview.enabled && self.preview.max_bytes > room {
                e.push(format!(
                    "preview.max_bytes: {} does not fit in one MQTT packet of \
                     mqtt.max_packet_bytes ({}) with its header; at most {room}",
                    self.preview.max_bytes, m.max_packet_bytes
                ));
            }
        }
        if self.cameras.is_empty() {
            e.push("cameras: no camera configured; add a [[cameras]] table".into());
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = format!("cameras[{i}]");
            check_id(&mut e, &format!("{key}.id"), &c.id);
            check_name(&mut e, &format!("{key}.name"), c.name.as_deref());
            if let Some(j) = seen.insert(&c.id, i) {
                e.push(format!(
                    "{key}.id: duplicate camera id {:?} (also cameras[{j}])",
                    c.id
                ));
            }
            match (&c.url, &c.file) {
                (Some(_), Some(_)) => e.push(format!("{key}: give either url or file, not both")),
                (None, None) => e.push(format!("{key}: needs url (rtsp://...) or file")),
                (Some(u), None) => match url::Url::parse(u) {
                    Ok(p) if p.scheme() == "rtsps" => {
                        e.push(format!("{key}.url: {}", RTSPS_UNSUPPORTED))
                    }
                    Ok(p) if p.scheme() == "rtsp" => {
                        if p.host_str().is_none_or(str::is_empty) {
                            e.push(format!("{key}.url: has no host"));
                        }
                        if !p.username().is_empty() && c.username.is_some() {
                            e.push(format!("{key}.username: credentials are both in url and username; keep one"));
                        }
                    }
                    Ok(p) => e.push(format!("{key}.url: scheme {:?} is not rtsp", p.scheme())),
                    // The URL may hold a password: do not echo it.
                    Err(err) => e.push(format!("{key}.url: not a valid URL ({err})")),
                },
                (None, Some(_)) => {}
            }
            let url_user = c
                .url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .is_some_and(|u| !u.username().is_empty());
            if c.password.is_some() && c.username.is_none() && !url_user {
                e.push(format!(
                    "{key}.password: set without a user name (username, or rtsp://user@host/…)"
                ));
            }
            if let Some(f) = c.detect_fps {
                if !(f > 0.0 && f <= 120.0) {
                    e.push(format!("{key}.detect_fps: {f} is not in (0, 120]"));
                }
            }
            if let Some(Err(errs)) = c.analytics.as_ref().map(|a| a.validate()) {
                // Problems of an included file name it too.
                let from = c
                    .analytics_file
                    .as_ref()
                    .map(|f| format!(" (in {})", f.display()))
                    .unwrap_or_default();
                e.extend(
                    errs.0
                        .into_iter()
                        .map(|x| format!("{key}.analytics.{}{from}: {}", x.key, x.message)),
                );
            }
        }
        e
    }

    /// A rule's class the model never reports, or that `detect.classes` filters out, makes a
    /// rule that can never fire: `(key within the analytics, message)` for each, the model
    /// being `model` with `labels`.
    pub fn rule_class_problems(
        &self,
        a: &ioc_tracking::AnalyticsConfig,
        model: &str,
        labels: &[String],
    ) -> Vec<(String, String)> {
        let mut e = Vec::new();
        for (ri, r) in a.rules.iter().enumerate() {
            for (k, c) in r.classes.iter().enumerate() {
                let key = format!("rules[{ri}].classes[{k}]");
                if !labels.iter().any(|l| l == c) {
                    let hint = did_you_mean(c, labels)
                        .map(|l| format!(" (did you mean {l:?}?)"))
                        .unwrap_or_default();
                    e.push((
                        key,
                        format!("{c:?} is not a class of model {model:?}{hint}"),
                    ));
                } else if !self.detect.classes.is_empty() && !self.detect.classes.contains(c) {
                    e.push((
                        key,
                        format!(
                            "{c:?} is filtered out by detect.classes {:?}: rule {:?} can never \
                             fire; add it there",
                            self.detect.classes, r.name
                        ),
                    ));
                }
            }
        }
        e
    }

    /// Resolves a path from the config relative to the config file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Checks against the machine: the model manifest and file, label names in
    /// `detect.classes`, and that every decoder element exists. Needs `gst::init`.
    pub fn check_environment(&self) -> Vec<String> {
        let mut e = Vec::new();
        let manifest_path = self.resolve(&self.detect.model);
        match ioc_detect::ModelManifest::load(&manifest_path) {
            Err(err) => e.push(format!("detect.model: {err}")),
            Ok((m, _)) => {
                // The file that would run here (float or INT8), and the input shape.
                match ioc_detect::choice::pick_precision(
                    self.detect.precision,
                    &m,
                    ioc_detect::choice::fast_int8_feature(),
                ) {
                    Err(msg) => e.push(msg),
                    Ok(pick) => {
                        let (file, sha) = m.variant(pick.precision).expect("picked");
                        let dir = manifest_path.parent().unwrap_or(Path::new("."));
                        if let Err(err) = ioc_detect::manifest::read_checked(&dir.join(file), sha) {
                            e.push(format!("detect.model: {err}"));
                        }
                    }
                }
                if let Err(msg) =
                    ioc_detect::choice::check_input_size(self.detect.input_size, &m.input)
                {
                    e.push(msg);
                }
                let not_a_class = |c: &str| {
                    let hint = did_you_mean(c, &m.label_names)
                        .map(|l| format!(" (did you mean {l:?}?)"))
                        .unwrap_or_default();
                    format!("{c:?} is not a class of model {:?}{hint}", m.name)
                };
                for (i, c) in self.detect.classes.iter().enumerate() {
                    if !m.label_names.iter().any(|l| l == c) {
                        e.push(format!("detect.classes[{i}]: {}", not_a_class(c)));
                    }
                }
                for (ci, cam) in self.cameras.iter().enumerate() {
                    let Some(a) = &cam.analytics else { continue };
                    for (key, message) in self.rule_class_problems(a, &m.name, &m.label_names) {
                        e.push(format!("cameras[{ci}].analytics.{key}: {message}"));
                    }
                }
            }
        }
        let mut decoders = vec![
            ("decode.h264".to_owned(), self.decode.h264.clone()),
            ("decode.h265".to_owned(), self.decode.h265.clone()),
        ];
        // A disabled camera may wait for hardware that is not fitted yet.
        for (i, c) in self.cameras.iter().enumerate().filter(|(_, c)| c.enabled) {
            if let Some(d) = &c.decoder {
                decoders.push((format!("cameras[{i}].decoder"), d.clone()));
            }
            if let Some(f) = &c.file {
                let f = self.resolve(f);
                if !f.is_file() {
                    e.push(format!("cameras[{i}].file: {} does not exist", f.display()));
                }
            }
        }
        for (key, desc) in decoders {
            // A decoder may be a small bin ("vah264dec ! vapostproc"): check each element.
            let mut installed = true;
            for name in desc
                .split('!')
                .filter_map(|part| part.split_whitespace().next())
            {
                if gstreamer::ElementFactory::find(name).is_none() {
                    installed = false;
                    e.push(format!("{key}: GStreamer element {name:?} is not installed (gst-inspect-1.0 {name})"));
                }
            }
            // Properties too ("avdec_h264 max-threads=1"): build it once, as the camera will.
            if installed {
                if let Err(err) = gstreamer::parse::bin_from_description(&desc, true) {
                    e.push(format!("{key}: {desc:?} is not a valid decoder: {err}"));
                }
            }
        }
        if self.clips.enabled && self.mqtt.is_some() {
            for name in ["h264parse", "h265parse", "mp4mux"] {
                if gstreamer::ElementFactory::find(name).is_none() {
                    e.push(format!(
                        "clips: GStreamer element {name:?} is not installed (gst-inspect-1.0 \
                         {name}); install it or set clips.enabled = false"
                    ));
                }
            }
        }
        e
    }
}

/// The candidate closest to `word`, if it looks like what was meant: a few letters off
/// ("persons" → "person"), or the same first four letters ("motorbike" → "motorcycle").
fn did_you_mean<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    let word = word.to_lowercase();
    let stem: String = word.chars().take(4).collect();
    candidates
        .iter()
        .filter_map(|c| {
            let d = distance(&word, c);
            let close = d <= (c.chars().count() / 3).max(2);
            let same_stem = stem.chars().count() == 4 && c.starts_with(&stem);
            (close || same_stem).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn check_id(e: &mut Vec<String>, key: &str, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        e.push(format!("{key}: {id:?} must be 1-64 characters of a-z, 0-9, '-' or '_' (it is used in MQTT topics)"));
    }
}

/// A name for people, sent in the status messages: what the protocol accepts as a label.
fn check_name(e: &mut Vec<String>, key: &str, name: Option<&str>) {
    let Some(name) = name else { return };
    if name.trim().is_empty() {
        e.push(format!(
            "{key}: must not be empty (leave it out to show the id)"
        ));
    } else if name.len() > 128 {
        e.push(format!("{key}: {} bytes is longer than 128", name.len()));
    } else if name.chars().any(char::is_control) {
        e.push(format!("{key}: {name:?} contains control characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[agent]
id = "site-1"
[[cameras]]
id = "cam-a"
url = "rtsp://10.0.0.1/stream"
[[cameras]]
id = "cam-b"
file = "clip.mp4"
"#;

    #[test]
    fn defaults_fill_in() {
        let c = AgentConfig::parse(OK).unwrap();
        assert_eq!(c.detect.fps, 5.0);
        assert_eq!(c.decode.h264, "avdec_h264");
        assert_eq!(c.cameras[0].transport, TransportConfig::Tcp);
        assert_eq!(c.reconnect.max_backoff_ms, 30_000);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let e = AgentConfig::parse(&OK.replace("id = \"cam-b\"", "id = \"cam-b\"\nfsp = 3"))
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("cameras[1]") && e[0].contains("fsp"),
            "{e:?}"
        );
        let e = AgentConfig::parse(
            &OK.replace("id = \"cam-a\"", "id = \"cam-a\"\ntransport = \"udpp\""),
        )
        .unwrap_err();
        assert!(e[0].starts_with("cameras[0].transport:"), "{e:?}");
    }

    #[test]
    fn clip_settings_are_checked_with_their_keys() {
        let text = OK.replace(
            "[agent]",
            "[clips]\npre_s = 40\npart_bytes = 2097152\n\
             [mqtt]\nhost = \"127.0.0.1\"\nmax_packet_bytes = 1048576\n[agent]",
        );
        let e = AgentConfig::parse(&text).unwrap_err();
        assert_eq!(
            e,
            [
                "clips.pre_s: 40 must be within 0..=30 seconds",
                "clips.part_bytes: 2097152 does not fit in one MQTT packet of \
                 mqtt.max_packet_bytes (1048576) with its header; at most 1040384"
            ]
        );
        let e =
            AgentConfig::parse(&OK.replace("[agent]", "[clips]\npost = 3\n[agent]")).unwrap_err();
        assert!(e[0].starts_with("clips") && e[0].contains("post"), "{e:?}");
        // Off means unchecked.
        let off = OK.replace("[agent]", "[clips]\nenabled = false\npre_s = 40\n[agent]");
        assert!(AgentConfig::parse(&off).is_ok());
    }

    #[test]
    fn preview_settings_are_checked_with_their_keys() {
        let text = OK.replace(
            "[agent]",
            "[preview]\nquality = 0\nmax_bytes = 1048576\n\
             [mqtt]\nhost = \"127.0.0.1\"\nmax_packet_bytes = 1048576\n[agent]",
        );
        let e = AgentConfig::parse(&text).unwrap_err();
        assert_eq!(
            e,
            [
                "preview.quality: 0 must be within 1..=100",
                "preview.max_bytes: 1048576 does not fit in one MQTT packet of \
                 mqtt.max_packet_bytes (1048576) with its header; at most 978944"
            ]
        );
        let e = AgentConfig::parse(&OK.replace("[agent]", "[preview]\nevery = 3\n[agent]"))
            .unwrap_err();
        assert!(
            e[0].starts_with("preview") && e[0].contains("every"),
            "{e:?}"
        );
    }

    #[test]
    fn validation_gathers_every_error_with_its_key() {
        let text = OK
            .replace("id = \"cam-b\"", "id = \"cam-a\"")
            .replace("rtsp://10.0.0.1/stream", "http://x/")
            .replace("[agent]", "[detect]\nfps = 0\n[agent]");
        let e = AgentConfig::parse(&text).unwrap_err();
        let joined = e.join("\n");
        assert!(joined.contains("detect.fps:"), "{joined}");
        assert!(
            joined.contains("cameras[1].id: duplicate camera id \"cam-a\""),
            "{joined}"
        );
        assert!(
            joined.contains("cameras[0].url: scheme \"http\""),
            "{joined}"
        );
        assert_eq!(e.len(), 3, "{joined}");
    }

    #[test]
    fn decoder_threads_follow_the_cameras_per_core() {
        let auto = DecodeConfig::default();
        assert_eq!(auto.threads_for(1, 4), 0);
        assert_eq!(auto.threads_for(4, 4), 1);
        assert_eq!(auto.threads_for(9, 2), 1);
        let set = DecodeConfig {
            threads: 3,
            ..DecodeConfig::default()
        };
        assert_eq!(set.threads_for(9, 2), 3);
    }

    #[test]
    fn decoders_with_properties_are_checked_as_built() {
        gstreamer::init().unwrap();
        let decoder_problems = |d: &str| {
            let text = OK.replace("[agent]", &format!("[decode]\nh264 = {d:?}\n[agent]"));
            let c = AgentConfig::parse(&text).unwrap();
            c.check_environment()
                .into_iter()
                .filter(|p| p.starts_with("decode.h264"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            decoder_problems("avdec_h264 max-threads=1"),
            Vec::<String>::new()
        );
        let e = decoder_problems("avdec_h264 max-thread=1").join("\n");
        assert!(e.contains("max-thread"), "{e}");
        let e = decoder_problems("avdec_h264x").join("\n");
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn debug_output_hides_camera_credentials() {
        let text = OK.replace(
            "rtsp://10.0.0.1/stream",
            "rtsp://admin:url-secret@10.0.0.1/stream",
        );
        let mut cfg = AgentConfig::parse(&text).unwrap();
        cfg.cameras[1].password = Some("key-secret".into());
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("url-secret") && !shown.contains("key-secret"),
            "{shown}"
        );
        assert!(shown.contains("10.0.0.1") && shown.contains("<redacted>"));
    }

    #[test]
    fn names_are_checked_as_the_status_messages_carry_them() {
        let text = OK
            .replace(
                "id = \"site-1\"",
                "id = \"site-1\"\nname = \"Phường Hàng Trống\"",
            )
            .replace(
                "id = \"cam-a\"",
                "id = \"cam-a\"\nname = \"Cổng Bắc / North gate\"",
            );
        let cfg = AgentConfig::parse(&text).unwrap();
        assert_eq!(cfg.agent.name.as_deref(), Some("Phường Hàng Trống"));
        let long = "x".repeat(129);
        let text = OK
            .replace("id = \"site-1\"", "id = \"site-1\"\nname = \" \"")
            .replace(
                "id = \"cam-a\"",
                &format!("id = \"cam-a\"\nname = \"{long}\""),
            );
        let e = AgentConfig::parse(&text).unwrap_err();
        assert!(
            e.contains(&"agent.name: must not be empty (leave it out to show the id)".to_owned()),
            "{e:?}"
        );
        assert!(
            e.contains(&"cameras[0].name: 129 bytes is longer than 128".to_owned()),
            "{e:?}"
        );
    }

    #[test]
    fn a_bad_url_error_does_not_echo_the_password() {
        let text = OK.replace("rtsp://10.0.0.1/stream", "rtsp://admin:s3cret@[bad/stream");
        let e = AgentConfig::parse(&text).unwrap_err().join("\n");
        assert!(e.contains("cameras[0].url") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn analytics_errors_are_named_under_the_camera() {
        let text = format!(
            "{OK}\n[cameras.analytics]\n[[cameras.analytics.zones]]\nname = \"z\"\npoints = [[0.1, 0.1], [0.2, 0.2]]\n"
        );
        let e = AgentConfig::parse(&text).unwrap_err().join("\n");
        assert!(e.contains("cameras[1].analytics.zones[0].points"), "{e}");
        let text = format!("{OK}\n[cameras.analytics]\nzonez = []\n");
        let e = AgentConfig::parse(&text).unwrap_err().join("\n");
        assert!(
            e.contains("cameras[1].analytics") && e.contains("zonez"),
            "{e}"
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "[agent]\nid = \"Bad Id\"\n").unwrap();
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains("agent.id") && e.contains("cameras"), "{e}");
    }

    /// A camera's analytics from a file of their own, relative to the config's folder; the
    /// shipped vtest scene loads; every problem names the key and the file (and its line).
    #[test]
    fn analytics_come_from_a_file_named_in_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scenes")).unwrap();
        let scene = dir.path().join("scenes/gate.toml");
        let config = dir.path().join("agent.toml");
        let with = |extra: &str| {
            std::fs::write(
                &config,
                format!("{OK}analytics_file = \"scenes/gate.toml\"\n{extra}"),
            )
            .unwrap();
            AgentConfig::load(&config)
        };
        std::fs::write(
            &scene,
            "[[zones]]\nname = \"gate\"\npoints = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]\n\
             [[rules]]\nname = \"in\"\nkind = \"intrusion\"\nzone = \"gate\"\n",
        )
        .unwrap();
        let cfg = with("").unwrap();
        let a = cfg.cameras[1]
            .analytics
            .as_ref()
            .expect("read from the file");
        assert_eq!(a.zones[0].name, "gate");

        let e = with("[cameras.analytics]\n").unwrap_err().to_string();
        assert!(
            e.contains("cameras[1].analytics_file") && e.contains("not both"),
            "{e}"
        );

        std::fs::write(&scene, "[[zones]]\nname = \"gate\"\npionts = []\n").unwrap();
        let e = with("").unwrap_err().to_string();
        assert!(
            e.contains("cameras[1].analytics_file")
                && e.contains("gate.toml, line 3")
                && e.contains("pionts"),
            "{e}"
        );

        std::fs::write(
            &scene,
            "[[zones]]\nname = \"gate\"\npoints = [[0.1, 0.1], [0.2, 0.2]]\n",
        )
        .unwrap();
        let e = with("").unwrap_err().to_string();
        assert!(
            e.contains("cameras[1].analytics.zones[0].points (in scenes/gate.toml)"),
            "{e}"
        );

        std::fs::remove_file(&scene).unwrap();
        let e = with("").unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("gate.toml"), "{e}");

        // The scene the demo and the end-to-end tests share.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/scenes/vtest.toml");
        std::fs::write(
            &config,
            format!("{OK}analytics_file = \"{}\"\n", shipped.display()),
        )
        .unwrap();
        let cfg = AgentConfig::load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.cameras[1].analytics.is_some());
    }
}
