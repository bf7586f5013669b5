//! A scenario file: what the camera sees (background, people and vehicles on scripted paths,
//! passers-by, camera events) and the camera's rules, in the agent's own config format.
//!
//! Coordinates are normalised image coordinates (0..1, y down) of an object's *ground point*:
//! a person's feet, a vehicle's wheels (box bottom-centre, as the agent's rules use). Sizes
//! follow the camera's perspective (`[camera] person_height`); speeds are in metres per
//! second on the ground. Parsing is strict: an unknown key is an error that names it.

use std::path::{Path, PathBuf};

use ioc_tracking::AnalyticsConfig;
use serde::Deserialize;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (default: the file name without `.toml`).
    #[serde(default)]
    pub name: String,
    /// What it shows and what must (not) happen, for people.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice (sprites, passers-by, noise).
    #[serde(default)]
    pub seed: u64,
    /// Length of the clip.
    pub duration_sec: f64,
    /// Frame rate of the clip.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Background asset (`plaza`: the empty scene of OpenCV's `vtest.avi`).
    #[serde(default = "default_background")]
    pub background: String,
    /// Camera model and stream settings.
    #[serde(default)]
    pub camera: CameraModel,
    /// Things that happen to the camera (covered, defocused, turned, dusk, dark, stream drop).
    #[serde(default)]
    pub events: Vec<CameraEvent>,
    /// Scripted objects.
    #[serde(default)]
    pub objects: Vec<ObjectScript>,
    /// Random passers-by.
    #[serde(default)]
    pub crowd: Vec<CrowdScript>,
    /// Groups of people who gather at a place, stay, and leave.
    #[serde(default)]
    pub group: Vec<GroupScript>,
    /// Random vehicles driving along a lane.
    #[serde(default)]
    pub traffic: Vec<TrafficScript>,
    /// The camera's analytics, exactly as `[cameras.analytics]` in `agent.toml`.
    pub analytics: AnalyticsConfig,
    /// Whether the scenario runs in the fast subset of `make test` (the rest run in
    /// `make eval`).
    #[serde(default)]
    pub quick: bool,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

fn default_fps() -> u32 {
    15
}
fn default_background() -> String {
    "plaza".into()
}

/// `[camera]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraModel {
    /// Sensor noise, standard deviation in grey levels.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// H.264 bit rate.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// Key frame interval.
    #[serde(default = "default_keyint")]
    pub keyint_sec: f64,
    /// Perspective: the image height (0..1) of a 1.7 m person whose feet are at image y, at
    /// two or more y values; linear in between and beyond.
    #[serde(default = "default_person_height")]
    pub person_height: Vec<[f64; 2]>,
    /// Shadow strength under objects (0 = none, 1 = black).
    #[serde(default = "default_shadow")]
    pub shadow: f64,
}

impl Default for CameraModel {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

fn default_noise() -> f64 {
    2.0
}
fn default_bitrate() -> u32 {
    1500
}
fn default_keyint() -> f64 {
    2.0
}
fn default_person_height() -> Vec<[f64; 2]> {
    // Measured on vtest.avi (median person box height by feet height, 1 frame/s): 0.093 of
    // the image at y = 0.25, 0.148 at 0.5, 0.247 at 0.9.
    vec![[0.25, 0.093], [0.9, 0.245]]
}
fn default_shadow() -> f64 {
    0.25
}

impl CameraModel {
    /// Height (0..1 of the image) of a 1.7 m person with feet at `y`.
    pub fn person_height_at(&self, y: f64) -> f64 {
        let mut p = self.person_height.clone();
        p.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let n = p.len();
        if n == 0 {
            return 0.1;
        }
        if n == 1 {
            return p[0][1].max(0.01);
        }
        let i = p
            .iter()
            .position(|q| q[0] >= y)
            .unwrap_or(n - 1)
            .clamp(1, n - 1);
        let (a, b) = (p[i - 1], p[i]);
        let h = if (b[0] - a[0]).abs() < 1e-9 {
            a[1]
        } else {
            a[1] + (b[1] - a[1]) * (y - a[0]) / (b[0] - a[0])
        };
        h.max(0.01)
    }
}

/// `[[events]]`: something that happens to the camera.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraEvent {
    /// What happens.
    pub kind: EventKind,
    /// When it starts.
    pub at_sec: f64,
    /// How long it lasts (dim: how long the light takes to fall; it stays dim).
    pub duration_sec: f64,
    /// dim, dark: brightness at the end (×); defocus: blur radius in pixels.
    #[serde(default)]
    pub level: Option<f64>,
    /// move: how far the view turns, normalised `[dx, dy]`.
    #[serde(default)]
    pub shift: Option<[f64; 2]>,
}

/// Camera event kinds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Something covers the lens (a grey, textureless view).
    Cover,
    /// The lens is out of focus (blur).
    Defocus,
    /// The camera is turned: the view shifts and stays shifted.
    Move,
    /// Dusk: the light falls slowly (not tamper).
    Dim,
    /// The light goes out (dark).
    Dark,
    /// The stream stops for `duration_sec` (no frames), then comes back.
    Drop,
}

/// What kind of object.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A walking person (cut from `vtest.avi`).
    Person,
    /// A car.
    Car,
    /// A truck (pickup, lorry).
    Truck,
    /// A bus.
    Bus,
}

impl ObjectKind {
    /// The model's class name for it.
    pub fn class(self) -> &'static str {
        match self {
            ObjectKind::Person => "person",
            ObjectKind::Car => "car",
            ObjectKind::Truck => "truck",
            ObjectKind::Bus => "bus",
        }
    }

    /// Typical speed, m/s.
    pub fn default_speed(self) -> f64 {
        match self {
            ObjectKind::Person => 1.3,
            _ => 6.0,
        }
    }
}

/// A pause at a waypoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// Waypoint index.
    pub at: usize,
    /// How long.
    pub sec: f64,
}

/// `[[objects]]`: one object on a scripted path.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectScript {
    /// Name, for the truth file and messages.
    #[serde(default)]
    pub id: String,
    /// Kind.
    pub kind: ObjectKind,
    /// Sprite number of the kind (default: chosen by the seed).
    #[serde(default)]
    pub sprite: Option<usize>,
    /// Ground-point waypoints; the object appears at the first and is gone after the last.
    pub path: Vec<[f64; 2]>,
    /// Speed along the path, m/s.
    #[serde(default)]
    pub speed_mps: Option<f64>,
    /// Per-segment speeds, m/s (overrides `speed_mps` for segment i).
    #[serde(default)]
    pub speeds_mps: Vec<f64>,
    /// When it appears.
    #[serde(default)]
    pub start_sec: f64,
    /// Pauses.
    #[serde(default)]
    pub stops: Vec<Stop>,
    /// Real height in metres (people; default by seed, 1.55–1.85).
    #[serde(default)]
    pub height_m: Option<f64>,
}

/// `[[crowd]]`: random passers-by crossing the scene.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdScript {
    /// How many.
    pub count: usize,
    /// Kind (default person).
    #[serde(default = "default_person")]
    pub kind: ObjectKind,
    /// Start times are spread over this window.
    pub start_sec: [f64; 2],
    /// Speeds are drawn from this range, m/s.
    #[serde(default = "default_walk")]
    pub speed_mps: [f64; 2],
    /// Ground region `[x1, y1, x2, y2]` they walk through: each enters at one side of it and
    /// leaves at the other (left↔right, or top↔bottom with `vertical`).
    pub region: [f64; 4],
    /// Walk top↔bottom instead of left↔right.
    #[serde(default)]
    pub vertical: bool,
}

fn default_person() -> ObjectKind {
    ObjectKind::Person
}
fn default_walk() -> [f64; 2] {
    [1.0, 1.6]
}

/// `[[group]]`: people who walk to a place, stand there together, then leave.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupScript {
    /// How many.
    pub count: usize,
    /// Where they gather (ground point).
    pub at: [f64; 2],
    /// How far apart they stand (normalised radius).
    #[serde(default = "default_spread")]
    pub spread: f64,
    /// When the first arrives (they arrive over a few seconds).
    pub arrive_sec: f64,
    /// How long they stay once all are there.
    pub stay_sec: f64,
    /// Where they come from and go to: `left` or `right` edge.
    #[serde(default = "default_side")]
    pub from: String,
}

fn default_spread() -> f64 {
    0.06
}
fn default_side() -> String {
    "left".into()
}

/// `[[traffic]]`: random vehicles along a lane.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficScript {
    /// How many.
    pub count: usize,
    /// Kinds to draw from.
    #[serde(default = "default_vehicle_kinds")]
    pub kinds: Vec<ObjectKind>,
    /// The lane, as ground-point waypoints, in the direction of travel.
    pub lane: Vec<[f64; 2]>,
    /// Start times are spread over this window (at least `min_gap_sec` apart).
    pub start_sec: [f64; 2],
    /// Speeds, m/s.
    #[serde(default = "default_drive")]
    pub speed_mps: [f64; 2],
    /// Least time between two vehicles.
    #[serde(default = "default_gap")]
    pub min_gap_sec: f64,
}

fn default_vehicle_kinds() -> Vec<ObjectKind> {
    vec![ObjectKind::Car]
}
fn default_drive() -> [f64; 2] {
    [5.0, 9.0]
}
fn default_gap() -> f64 {
    2.5
}

impl Scenario {
    /// Reads and checks a scenario file; errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let de = toml::Deserializer::new(&text);
        let mut s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            anyhow::anyhow!(
                "{}: {key}: {}",
                path.display(),
                e.into_inner().message().trim()
            )
        })?;
        s.path = path.to_owned();
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let errors = s.validate();
        if !errors.is_empty() {
            anyhow::bail!("{}: {}", path.display(), errors.join("\n  "));
        }
        Ok(s)
    }

    /// Pure checks; every problem as `key: message`.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if !(self.duration_sec > 0.0 && self.duration_sec <= 3600.0) {
            e.push(format!(
                "duration_sec: {} is not within (0, 3600]",
                self.duration_sec
            ));
        }
        if !(1..=60).contains(&self.fps) {
            e.push(format!("fps: {} is not within 1..60", self.fps));
        }
        if self.background != "plaza" {
            e.push(format!(
                "background: unknown {:?} (known: \"plaza\")",
                self.background
            ));
        }
        if self.camera.person_height.len() < 2 {
            e.push("camera.person_height: needs at least two [y, height] points".into());
        }
        let unit = |v: f64| (-1.0..=2.0).contains(&v);
        for (i, o) in self.objects.iter().enumerate() {
            if o.path.len() < 2 {
                e.push(format!("objects[{i}].path: needs at least two points"));
            }
            if o.path.iter().flatten().any(|v| !unit(*v)) {
                e.push(format!("objects[{i}].path: points must be normalised (-1..2: off-frame starts allowed)"));
            }
            for s in &o.stops {
                if s.at >= o.path.len() {
                    e.push(format!(
                        "objects[{i}].stops: waypoint {} does not exist",
                        s.at
                    ));
                }
            }
            if o.speed_mps.is_some_and(|v| v <= 0.0) || o.speeds_mps.iter().any(|v| *v <= 0.0) {
                e.push(format!("objects[{i}].speed_mps: must be > 0"));
            }
        }
        for (i, c) in self.crowd.iter().enumerate() {
            if c.start_sec[1] < c.start_sec[0] || c.speed_mps[0] <= 0.0 {
                e.push(format!(
                    "crowd[{i}]: start_sec and speed_mps are [low, high] with positive speeds"
                ));
            }
        }
        for (i, t) in self.traffic.iter().enumerate() {
            if t.lane.len() < 2 || t.kinds.is_empty() {
                e.push(format!(
                    "traffic[{i}]: needs a lane of two or more points and a kind"
                ));
            }
        }
        for (i, g) in self.group.iter().enumerate() {
            if g.from != "left" && g.from != "right" {
                e.push(format!(
                    "group[{i}].from: {:?} is not \"left\" or \"right\"",
                    g.from
                ));
            }
        }
        for (i, ev) in self.events.iter().enumerate() {
            if ev.kind == EventKind::Move && ev.shift.is_none() {
                e.push(format!("events[{i}].shift: required for a move"));
            }
            if ev.duration_sec <= 0.0 {
                e.push(format!("events[{i}].duration_sec: must be > 0"));
            }
        }
        if let Err(errs) = self.analytics.validate() {
            e.extend(
                errs.0
                    .into_iter()
                    .map(|x| format!("analytics.{}: {}", x.key, x.message)),
            );
        }
        e
    }

    /// Every scenario file in `dir` (sorted), or `dir` itself when it is a file.
    pub fn load_all(dir: &Path) -> anyhow::Result<Vec<Scenario>> {
        if dir.is_file() {
            return Ok(vec![Self::load(dir)?]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("{}: no scenario (*.toml) files", dir.display());
        }
        files.iter().map(|f| Self::load(f)).collect()
    }

    /// The text the clip depends on, to name its cache entry.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        use sha2::Digest;
        let text = std::fs::read(&self.path)?;
        let mut h = sha2::Sha256::new();
        h.update(crate::GENERATOR_VERSION.as_bytes());
        h.update(&text);
        Ok(hex::encode(&h.finalize()[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perspective_interpolates_and_extrapolates() {
        let c = CameraModel::default();
        assert!((c.person_height_at(0.25) - 0.093).abs() < 1e-9);
        assert!((c.person_height_at(0.575) - 0.169).abs() < 1e-9);
        assert!(c.person_height_at(1.0) > 0.26);
        assert!(c.person_height_at(0.05) >= 0.01);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(
            &p,
            "duration_sec = 10\n[[objects]]\nkind = \"person\"\npath = [[0,0],[1,1]]\nspeeed_mps = 1\n[analytics]\n",
        )
        .unwrap();
        let e = Scenario::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("x.toml") && e.contains("objects[0]") && e.contains("speeed_mps"),
            "{e}"
        );
        std::fs::write(
            &p,
            "duration_sec = 10\n[[objects]]\nkind = \"person\"\npath = [[0,0]]\n[analytics]\n",
        )
        .unwrap();
        let e = Scenario::load(&p).unwrap_err().to_string();
        assert!(e.contains("objects[0].path"), "{e}");
    }
}
