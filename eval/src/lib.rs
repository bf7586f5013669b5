//! ioc-eval: scenario clips with exact ground truth, made from real pixels, and the quality of
//! the agent measured on them.
//!
//! The data flow follows a scenario:
//! [`scenario`] (a TOML file: background, objects, paths, camera events, and the camera's
//! rules in the agent's own format) → [`world`] (every object's exact position in time) →
//! [`render`] (frames from real pixels: [`assets`]) → [`video`] (H.264 MP4) and [`truth`]
//! (boxes per frame, the incidents that must be raised) → [`simulate`] (the agent's real
//! pipeline on the clip, as a live camera would meet it, in simulated time) → [`metrics`]
//! (precision, recall, time to detect, line counts, MOTA/IDF1) → [`eval`] (the runs and the
//! report, `ioc-eval run`). [`looks`] measures how well objects' looks tell them apart
//! (`ioc-eval looks`).

pub mod assets;
pub mod eval;
pub mod generate;
pub mod looks;
pub mod metrics;
pub mod render;
pub mod rng;
pub mod scenario;
pub mod simulate;
pub mod truth;
pub mod video;
pub mod world;

/// Bump when a change to the generator changes the clips: cached clips are made again.
pub const GENERATOR_VERSION: &str = "gen-3";
