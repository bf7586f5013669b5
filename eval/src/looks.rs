//! How well looks ([`ioc_tracking::Appearance`]) tell objects apart on the scenario clips:
//! every object seen whole and alone (truth visibility ≥ 0.95, no other truth box over it),
//! measured on the decoded frames as the agent measures detections, then compared in pairs:
//! the same object at two times at least a second apart, and two different objects of one
//! class. `ioc-eval looks` prints the distributions against the thresholds the tracker and
//! the rules use.

use std::path::Path;

use ioc_tracking::appearance::{OTHER_OBJECT, SAME_OBJECT};
use ioc_tracking::{Appearance, BBox};
use serde::Serialize;

use crate::truth::Truth;
use crate::video::for_each_frame;

/// Looks measured per second of clip.
const SAMPLE_FPS: f64 = 2.0;
/// At most this many looks per object (evenly spaced), to bound the pairs.
const PER_OBJECT: usize = 24;

/// One object's look at one time.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Truth object id.
    pub object: u32,
    /// Its class.
    pub class: String,
    /// The picture it was drawn from (two objects drawn from one person's frames are the same
    /// person to any look: such pairs are left out).
    pub sprite: usize,
    /// Clip time.
    pub t: f64,
    /// What it looked like.
    pub look: Appearance,
}

/// Similarity distributions of same-object and different-object pairs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LookStats {
    /// Similarities of one object with itself, a second or more apart.
    pub same: Vec<f32>,
    /// Similarities of two objects of one class.
    pub different: Vec<f32>,
}

impl LookStats {
    /// Adds the pairs of one clip's samples.
    pub fn add(&mut self, samples: &[Sample]) {
        let mut by_obj: std::collections::BTreeMap<u32, Vec<&Sample>> = Default::default();
        for s in samples {
            by_obj.entry(s.object).or_default().push(s);
        }
        let thinned: Vec<Vec<&Sample>> = by_obj
            .into_values()
            .map(|v| {
                let step = v.len().div_ceil(PER_OBJECT).max(1);
                v.into_iter().step_by(step).collect()
            })
            .collect();
        for (i, a) in thinned.iter().enumerate() {
            for (k, x) in a.iter().enumerate() {
                for y in &a[k + 1..] {
                    if (x.t - y.t).abs() >= 1.0 {
                        self.same.push(x.look.similarity(&y.look));
                    }
                }
            }
            for b in &thinned[i + 1..] {
                for x in a {
                    for y in b
                        .iter()
                        .filter(|y| y.class == x.class && y.sprite != x.sprite)
                    {
                        self.different.push(x.look.similarity(&y.look));
                    }
                }
            }
        }
    }

    /// A table of the distributions and the share of pairs on each side of each threshold.
    pub fn table(&self) -> String {
        let q = |v: &[f32], p: f64| -> f32 {
            let mut s = v.to_vec();
            s.sort_by(f32::total_cmp);
            s.get(((s.len().saturating_sub(1)) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(f32::NAN)
        };
        let share = |v: &[f32], f: &dyn Fn(f32) -> bool| {
            100.0 * v.iter().filter(|&&x| f(x)).count() as f64 / v.len().max(1) as f64
        };
        let mut out = String::from(
            "| pairs | n | p5 | p50 | p95 | < other (0.5) | ≥ same (0.75) |\n|---|---|---|---|---|---|---|\n",
        );
        for (name, v) in [
            ("same object", &self.same),
            ("two objects", &self.different),
        ] {
            out += &format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.1} % | {:.1} % |\n",
                v.len(),
                q(v, 0.05),
                q(v, 0.5),
                q(v, 0.95),
                share(v, &|x| x < OTHER_OBJECT),
                share(v, &|x| x >= SAME_OBJECT),
            );
        }
        out
    }
}

/// The looks of every object seen whole and alone in `clip`, a few times a second;
/// `sprite(id)` names the picture each object was drawn from.
pub fn sample_clip(
    clip: &Path,
    truth: &Truth,
    sprite: impl Fn(u32) -> usize,
) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for_each_frame(clip, SAMPLE_FPS, |frame| {
        let t = frame.time.pts.as_secs_f64();
        let Some(tf) = truth.frame_at(t) else {
            return Ok(());
        };
        let alone = |i: usize| {
            let a = &tf.boxes[i].bbox;
            let area = (a[2] - a[0]) * (a[3] - a[1]);
            tf.boxes.iter().enumerate().all(|(j, b)| {
                let b = &b.bbox;
                let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
                let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
                j == i || iw * ih <= 0.1 * area
            })
        };
        let measured = frame.with_image(|img| {
            for (i, b) in tf.boxes.iter().enumerate() {
                if b.visibility < 0.95 || !alone(i) {
                    continue;
                }
                let [x1, y1, x2, y2] = b.bbox.map(|v| v as f32);
                let bbox = BBox::new(x1, y1, x2, y2);
                let Some(look) =
                    Appearance::measure(bbox, img.width, img.height, |x, y| img.pixel(x, y))
                else {
                    continue;
                };
                let class = truth
                    .objects
                    .iter()
                    .find(|o| o.id == b.id)
                    .map(|o| o.class.clone())
                    .unwrap_or_default();
                out.push(Sample {
                    object: b.id,
                    class,
                    sprite: sprite(b.id),
                    t,
                    look,
                });
            }
        });
        measured.map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    Ok(out)
}
