//! Analytics pushed from the center (protocol `ioc.analytics/1`): checked exactly as
//! `check-config` checks the site file's, applied to the running camera without restarting
//! it, kept on disk so a restart with the broker down runs them too, and reported back
//! (`ioc.analytics-state/1`).
//!
//! Only a camera's `analytics` section comes from the center; its URL, credentials, decoder
//! and rates stay the site file's. A pushed version replaces the file's analytics of that
//! camera while it is newer than nothing: the file's own analytics run until the first push.
//! A push that fails any check changes nothing: the camera keeps what it ran, and the state
//! says which version was refused and every problem, by key.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use ioc_protocol::{AnalyticsProblem, AnalyticsPush, AnalyticsState, RefusedVersion, Timestamp};
use ioc_tracking::AnalyticsConfig;

use crate::analytics::CameraAnalytics;
use crate::config::AgentConfig;

/// Checks `push.analytics` as `check-config` checks a camera's `[cameras.analytics]`: the
/// keys, every value, the classes against the model (`model`, `labels`) and
/// `detect.classes`, and that the rules build. Keys are relative to the analytics section.
pub fn check(
    cfg: &AgentConfig,
    model: &str,
    labels: &[String],
    push: &AnalyticsPush,
) -> Result<AnalyticsConfig, Vec<AnalyticsProblem>> {
    let problem = |key: String, message: String| AnalyticsProblem { key, message };
    let size = serde_json::to_vec(&push.analytics).map_or(0, |v| v.len());
    if size > ioc_protocol::analytics::MAX_ANALYTICS_BYTES {
        return Err(vec![problem(
            String::new(),
            format!(
                "{size} bytes of JSON is more than {}",
                ioc_protocol::analytics::MAX_ANALYTICS_BYTES
            ),
        )]);
    }
    // The same structural checks the center ran before storing it (one code path,
    // `AnalyticsConfig::from_json`); the classes only the agent can check.
    let to_problems = |e: ioc_tracking::ConfigErrors| -> Vec<AnalyticsProblem> {
        e.0.into_iter().map(|e| problem(e.key, e.message)).collect()
    };
    let a = AnalyticsConfig::parse_json(&push.analytics).map_err(to_problems)?;
    let mut problems = a.validate().err().map(to_problems).unwrap_or_default();
    problems.extend(
        cfg.rule_class_problems(&a, model, labels)
            .into_iter()
            .map(|(k, m)| problem(k, m)),
    );
    if problems.is_empty() {
        if let Err(e) = CameraAnalytics::new(&a, labels) {
            problems.extend(e.into_iter().map(|line| match line.split_once(": ") {
                Some((k, m)) => problem(k.to_owned(), m.to_owned()),
                None => problem(String::new(), line),
            }));
        }
    }
    problems.truncate(ioc_protocol::analytics::MAX_PROBLEMS);
    if problems.is_empty() {
        Ok(a)
    } else {
        Err(problems)
    }
}

/// Where pushed analytics are kept: one `{camera}.json` (the whole push) per camera.
#[derive(Clone, Debug)]
pub struct Kept {
    dir: PathBuf,
}

impl Kept {
    /// Kept in `dir` (created when first needed).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder of an agent whose outbox is at `outbox`: next to it.
    pub fn beside(outbox: &Path) -> Self {
        Self::new(
            outbox
                .parent()
                .map_or_else(|| PathBuf::from("analytics"), |d| d.join("analytics")),
        )
    }

    fn path(&self, camera: &str) -> PathBuf {
        self.dir.join(format!("{camera}.json"))
    }

    /// The push kept for `camera`, if any (a file that cannot be read is reported and
    /// ignored: the site file's analytics run).
    pub fn load(&self, camera: &str) -> Option<AnalyticsPush> {
        let path = self.path(camera);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the kept analytics");
                return None;
            }
        };
        match ioc_protocol::parse::<AnalyticsPush>(&bytes) {
            Ok(p) if p.camera == camera => Some(p),
            Ok(p) => {
                tracing::error!(path = %path.display(), camera = %p.camera, "kept analytics are for another camera; ignored");
                None
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "kept analytics are not valid; ignored");
                None
            }
        }
    }

    /// Keeps `push` durably (written aside, synced, renamed into place).
    pub fn store(&self, push: &AnalyticsPush) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let bytes = ioc_protocol::encode(push).map_err(std::io::Error::other)?;
        let path = self.path(&push.camera);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// What a camera runs: the pushed version (none: the site file's) and the section itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    /// Camera id.
    pub id: String,
    /// The pushed version it runs; none: the site file's analytics.
    pub version: Option<u64>,
    /// The analytics section it runs, as JSON (none: no analytics).
    pub analytics: Option<serde_json::Value>,
}

impl Running {
    fn state(&self, refused: Option<RefusedVersion>) -> AnalyticsState {
        AnalyticsState {
            schema: ioc_protocol::ANALYTICS_STATE_SCHEMA.into(),
            camera: self.id.clone(),
            running_version: self.version,
            refused,
            analytics: self.analytics.clone(),
            at: Timestamp::now(),
        }
    }
}

/// A camera's analytics at start-up: the kept push if it still passes the checks (the model
/// or `detect.classes` may have changed since), else the site file's (`file`). Returns what to
/// run instead of the file's, what runs, and the state to report.
pub fn at_start(
    cfg: &AgentConfig,
    model: &str,
    labels: &[String],
    kept: &Kept,
    camera: &str,
    file: Option<&AnalyticsConfig>,
) -> (Option<AnalyticsConfig>, Running, AnalyticsState) {
    let mut running = Running {
        id: camera.to_owned(),
        version: None,
        analytics: file.and_then(|a| serde_json::to_value(a).ok()),
    };
    let Some(push) = kept.load(camera) else {
        let state = running.state(None);
        return (None, running, state);
    };
    match check(cfg, model, labels, &push) {
        Ok(a) => {
            tracing::info!(
                camera,
                version = push.version,
                "running the analytics pushed from the center (kept on disk)"
            );
            running.version = Some(push.version);
            running.analytics = Some(push.analytics);
            let state = running.state(None);
            (Some(a), running, state)
        }
        Err(problems) => {
            tracing::error!(
                camera,
                version = push.version,
                problems = %describe(&problems),
                "the kept analytics no longer pass the checks; running the site file's"
            );
            let state = running.state(Some(RefusedVersion {
                version: push.version,
                problems,
            }));
            (None, running, state)
        }
    }
}

fn describe(problems: &[AnalyticsProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the applier needs of the running agent.
pub struct Applier {
    /// The agent's config (for the checks).
    pub cfg: AgentConfig,
    /// The model's name and labels.
    pub model: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// What each enabled camera runs (index = camera index).
    pub cameras: Vec<Running>,
    /// Where pushes are kept.
    pub kept: Kept,
    /// Makes a camera run new analytics (the rules thread's).
    pub apply: Box<dyn Fn(usize, CameraAnalytics, Arc<AnalyticsConfig>) + Send>,
    /// Reports a camera's state (the publisher's, retained).
    pub report: Box<dyn Fn(&AnalyticsState) + Send>,
}

impl Applier {
    /// Handles pushes until the channel closes (on the `ioc-analytics` thread).
    pub fn run(mut self, pushes: Receiver<(String, Vec<u8>)>) {
        while let Ok((camera, payload)) = pushes.recv() {
            self.handle(&camera, &payload);
        }
    }

    /// One push received on `.../analytics/{camera}`.
    pub fn handle(&mut self, camera: &str, payload: &[u8]) {
        let Some(i) = self.cameras.iter().position(|c| c.id == camera) else {
            tracing::warn!(
                camera,
                "analytics pushed for a camera this agent does not run (enabled); ignored"
            );
            return;
        };
        let running = self.cameras[i].version;
        if payload.is_empty() {
            // The center cleared the retained push: what runs keeps running (until a restart,
            // which runs the kept copy too). Say so rather than guess.
            tracing::info!(
                camera,
                "the center cleared its analytics push; keeping what runs"
            );
            return;
        }
        let push = match ioc_protocol::parse::<AnalyticsPush>(payload) {
            Ok(p) if p.camera == camera => p,
            Ok(p) => {
                tracing::warn!(camera, other = %p.camera, "analytics push names another camera than its topic; ignored");
                return;
            }
            Err(e) => {
                tracing::warn!(camera, error = %e, "analytics push that is not valid; ignored");
                return;
            }
        };
        if running.is_some_and(|v| push.version <= v) {
            // The retained copy again (a reconnect), or an older one: nothing to do; say
            // again what runs.
            (self.report)(&self.cameras[i].state(None));
            return;
        }
        match check(&self.cfg, &self.model, &self.labels, &push) {
            Ok(a) => {
                // Kept first: a version that runs is one a restart runs too.
                if let Err(e) = self.kept.store(&push) {
                    tracing::error!(camera, version = push.version, error = %e, "cannot keep the pushed analytics on disk; not applied");
                    (self.report)(&self.cameras[i].state(Some(RefusedVersion {
                        version: push.version,
                        problems: vec![AnalyticsProblem {
                            key: String::new(),
                            message: format!("the agent cannot keep it on disk: {e}"),
                        }],
                    })));
                    return;
                }
                let analytics = match CameraAnalytics::new(&a, &self.labels) {
                    Ok(x) => x.with_camera_id(camera),
                    Err(e) => {
                        // `check` built it already; this cannot fail differently.
                        tracing::error!(camera, problems = %e.join("; "), "pushed analytics do not build");
                        return;
                    }
                };
                (self.apply)(i, analytics, Arc::new(a));
                self.cameras[i].version = Some(push.version);
                self.cameras[i].analytics = Some(push.analytics);
                tracing::info!(camera, version = push.version, by = %push.changed_by, "applied the analytics pushed from the center");
                (self.report)(&self.cameras[i].state(None));
            }
            Err(problems) => {
                tracing::warn!(camera, version = push.version, problems = %describe(&problems), "refused the analytics pushed from the center; the camera keeps what it ran");
                (self.report)(&self.cameras[i].state(Some(RefusedVersion {
                    version: push.version,
                    problems,
                })));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const CFG: &str = r#"
[agent]
id = "site-1"
[detect]
classes = ["person", "car"]
[[cameras]]
id = "gate"
url = "rtsp://10.0.0.1/stream"
"#;

    fn labels() -> Vec<String> {
        ["person", "bicycle", "car", "motorcycle"]
            .map(String::from)
            .to_vec()
    }

    fn push(version: u64, analytics: serde_json::Value) -> AnalyticsPush {
        AnalyticsPush {
            schema: ioc_protocol::ANALYTICS_SCHEMA.into(),
            camera: "gate".into(),
            version,
            analytics,
            changed_by: "lan".into(),
            changed_at: Timestamp::from_unix(1_800_000_000, 0),
        }
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "zones": [{ "name": "lawn", "points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]] }],
            "rules": [{ "name": "entry", "kind": "intrusion", "zone": "lawn", "classes": ["person"] }],
        })
    }

    #[test]
    fn pushed_analytics_are_checked_as_check_config_checks_the_file() {
        let cfg = AgentConfig::parse(CFG).unwrap();
        let a = check(&cfg, "m", &labels(), &push(1, good())).unwrap();
        assert_eq!(a.rules[0].name, "entry");
        // Every problem, by key: a point outside the picture, a class the model does not
        // have (with a hint), one detect.classes filters out.
        let bad = serde_json::json!({
            "zones": [{ "name": "lawn", "points": [[0.1, 0.1], [1.2, 0.1], [0.9, 0.9]] }],
            "rules": [
                { "name": "entry", "kind": "intrusion", "zone": "lawn", "classes": ["motorbike"] },
                { "name": "bikes", "kind": "intrusion", "zone": "lawn", "classes": ["bicycle"] },
            ],
        });
        let p = check(&cfg, "m", &labels(), &push(2, bad)).unwrap_err();
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"zones[0].points"), "{p:?}");
        assert!(keys.contains(&"rules[0].classes[0]"), "{p:?}");
        assert!(keys.contains(&"rules[1].classes[0]"), "{p:?}");
        assert!(
            p.iter()
                .any(|p| p.message.contains("did you mean \"motorcycle\"")),
            "{p:?}"
        );
        // A misspelt key names its path.
        let typo = serde_json::json!({ "zones": [{ "name": "lawn", "pionts": [] }] });
        let p = check(&cfg, "m", &labels(), &push(3, typo)).unwrap_err();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].key.starts_with("zones[0]") && p[0].message.contains("pionts"),
            "{p:?}"
        );
    }

    #[test]
    fn the_applier_applies_keeps_and_reports_and_refuses_without_changing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let kept = Kept::new(dir.path().join("analytics"));
        let applied = Arc::new(Mutex::new(Vec::new()));
        let reported = Arc::new(Mutex::new(Vec::<AnalyticsState>::new()));
        let (a2, r2) = (applied.clone(), reported.clone());
        let mut applier = Applier {
            cfg: AgentConfig::parse(CFG).unwrap(),
            model: "m".into(),
            labels: labels(),
            cameras: vec![Running {
                id: "gate".into(),
                version: None,
                analytics: None,
            }],
            kept: kept.clone(),
            apply: Box::new(move |i, _, cfg: Arc<AnalyticsConfig>| {
                a2.lock().unwrap().push((i, cfg.rules.len()));
            }),
            report: Box::new(move |s| r2.lock().unwrap().push(s.clone())),
        };
        let payload = |p: &AnalyticsPush| ioc_protocol::encode(p).unwrap();
        applier.handle("gate", &payload(&push(1, good())));
        assert_eq!(*applied.lock().unwrap(), [(0, 1)]);
        assert_eq!(reported.lock().unwrap()[0].running_version, Some(1));
        assert_eq!(
            reported.lock().unwrap()[0].analytics,
            Some(good()),
            "what runs, for the editor"
        );
        assert_eq!(kept.load("gate").unwrap().version, 1);
        // The same version again (the retained copy after a reconnect): not applied twice.
        applier.handle("gate", &payload(&push(1, good())));
        assert_eq!(applied.lock().unwrap().len(), 1);
        // A broken one: refused, nothing applied or kept, the state says why.
        let broken = serde_json::json!({ "zones": [{ "name": "z", "points": [[0.1, 0.1]] }] });
        applier.handle("gate", &payload(&push(2, broken)));
        assert_eq!(applied.lock().unwrap().len(), 1);
        assert_eq!(kept.load("gate").unwrap().version, 1);
        let last = reported.lock().unwrap().last().unwrap().clone();
        assert_eq!(last.running_version, Some(1));
        let refused = last.refused.unwrap();
        assert_eq!(refused.version, 2);
        assert!(
            refused.problems[0].key.starts_with("zones[0]"),
            "{refused:?}"
        );
        // Another camera's, or not valid at all: ignored.
        applier.handle("other", &payload(&push(5, good())));
        applier.handle("gate", b"{nope");
        assert_eq!(applied.lock().unwrap().len(), 1);
        // At the next start the kept version runs.
        let cfg = AgentConfig::parse(CFG).unwrap();
        let (run, running, state) = at_start(&cfg, "m", &labels(), &kept, "gate", None);
        assert_eq!(run.map(|a| a.rules.len()), Some(1));
        assert_eq!(running.version, Some(1));
        assert_eq!(state.running_version, Some(1));
        assert_eq!(state.analytics, Some(good()));
        // Without a kept push the file's analytics run, and the state carries them.
        let empty = Kept::new(dir.path().join("none"));
        let file: AnalyticsConfig = serde_json::from_value(good()).unwrap();
        let (run, running, state) = at_start(&cfg, "m", &labels(), &empty, "gate", Some(&file));
        assert!(run.is_none() && running.version.is_none() && state.running_version.is_none());
        assert_eq!(state.analytics.unwrap()["rules"][0]["name"], "entry");
    }
}
