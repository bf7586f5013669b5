//! Making a scenario's clip (H.264 MP4) and truth (JSON), cached by the scenario file's
//! content and the generator version: `<cache>/<name>-<fingerprint>.{mp4,json}`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::assets::Assets;
use crate::render::Renderer;
use crate::scenario::{EventKind, Scenario};
use crate::truth::{Truth, TruthFrame, TruthObject};
use crate::video::{EncodeSettings, Encoder};
use crate::world::actors;

/// A generated scenario.
pub struct Generated {
    /// The clip.
    pub clip: PathBuf,
    /// Its truth.
    pub truth: Truth,
}

/// The clip and truth of `s`, made now unless cached in `cache`.
pub fn generate(s: &Scenario, assets: &Assets, cache: &Path) -> anyhow::Result<Generated> {
    std::fs::create_dir_all(cache)?;
    let stem = format!("{}-{}", s.name, s.fingerprint()?);
    let clip = cache.join(format!("{stem}.mp4"));
    let truth_path = cache.join(format!("{stem}.json"));
    if clip.is_file() && truth_path.is_file() {
        if let Ok(truth) = serde_json::from_str::<Truth>(&std::fs::read_to_string(&truth_path)?) {
            return Ok(Generated { clip, truth });
        }
    }
    let truth = render_clip(s, assets, &clip)?;
    let tmp = truth_path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string(&truth)?)?;
    std::fs::rename(&tmp, &truth_path)?;
    Ok(Generated { clip, truth })
}

/// Renders every frame of `s` into `clip` and returns its truth.
pub fn render_clip(s: &Scenario, assets: &Assets, clip: &Path) -> anyhow::Result<Truth> {
    let actors = actors(s, assets);
    let mut r = Renderer::new(s, assets, actors.len());
    let (w, h) = r.size();
    let tmp = clip.with_extension("mp4.tmp");
    let mut enc = Encoder::create(
        &tmp,
        w,
        h,
        EncodeSettings {
            fps: s.fps,
            bitrate_kbps: s.camera.bitrate_kbps,
            keyint: (s.camera.keyint_sec * s.fps as f64).round().max(1.0) as u32,
        },
    )?;
    let n = (s.duration_sec * s.fps as f64).round() as usize;
    let mut frames = Vec::with_capacity(n);
    let mut rgb = Vec::new();
    for k in 0..n {
        let t = k as f64 / s.fps as f64;
        let boxes = r.draw(s, assets, &actors, t, &mut rgb);
        enc.push_rgb(&rgb)
            .with_context(|| format!("{}: frame {k}", s.name))?;
        frames.push(TruthFrame { t, boxes });
    }
    enc.finish()?;
    std::fs::rename(&tmp, clip)?;
    let mut truth = Truth {
        scenario: s.name.clone(),
        fps: s.fps,
        size: (w as u32, h as u32),
        duration_sec: n as f64 / s.fps as f64,
        objects: actors
            .iter()
            .map(|a| TruthObject {
                id: a.id,
                name: a.name.clone(),
                class: a.kind.class().to_owned(),
            })
            .chain(assets.statics.iter().enumerate().map(|(i, o)| TruthObject {
                id: crate::render::static_id(actors.len(), i),
                name: format!("background {} {}", o.class, i + 1),
                class: o.class.clone(),
            }))
            .collect(),
        frames,
        stream_gaps: s
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Drop)
            .map(|e| [e.at_sec, e.duration_sec])
            .collect(),
        incidents: Vec::new(),
        line_counts: Default::default(),
    };
    truth.derive(s);
    Ok(truth)
}
