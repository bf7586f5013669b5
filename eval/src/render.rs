//! Drawing one frame of a scenario: the background, each object's shadow and sprite at its
//! perspective size (nearer objects over farther ones), the camera's events (light, cover,
//! focus, pointing) and sensor noise; and the truth of that frame: every object's box and how
//! much of it is visible.

use image::{RgbImage, RgbaImage};

use crate::assets::Assets;
use crate::rng::Rng;
use crate::scenario::{CameraEvent, EventKind, ObjectKind, Scenario};
use crate::truth::TruthBox;
use crate::world::{px_per_m, Actor, Pose};

/// Metres a walker moves between two frames of its source footage (vtest: 10 fps, ~1.3 m/s).
const STRIDE_M: f64 = 0.13;

/// Truth id of the background's object `i` (after the actors' ids).
pub fn static_id(actors: usize, i: usize) -> u32 {
    (actors + 1 + i) as u32
}

/// Reusable drawing state of one clip.
pub struct Renderer {
    w: usize,
    h: usize,
    frame: Vec<f32>,
    owner: Vec<u16>,
    opaque: Vec<u32>,
    noise: Vec<f32>,
    rng: Rng,
    // Last horizontal direction of each actor, so one standing still keeps facing its way.
    facing: Vec<i8>,
}

/// A placed sprite.
struct Placed<'a> {
    actor: usize,
    id: u32,
    sprite: &'a RgbaImage,
    mirror: bool,
    // Destination rectangle in pixels (may reach outside the frame).
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    ground: [f64; 2],
}

impl Renderer {
    /// A renderer for frames the size of the scenario's background.
    pub fn new(s: &Scenario, assets: &Assets, actors: usize) -> Self {
        let (w, h) = (
            assets.background.width() as usize,
            assets.background.height() as usize,
        );
        let mut rng = Rng::new(s.seed, 23);
        // A table of standard normal samples; each frame reads it from a random offset.
        let noise = (0..(1 << 20)).map(|_| rng.normal() as f32).collect();
        Self {
            w,
            h,
            frame: vec![0.0; w * h * 3],
            owner: vec![0; w * h],
            opaque: vec![0; actors + 1],
            noise,
            rng,
            facing: vec![1; actors],
        }
    }

    /// Frame size.
    pub fn size(&self) -> (usize, usize) {
        (self.w, self.h)
    }

    /// Draws the frame at `t` into `out` (packed RGB) and returns the truth of its objects.
    pub fn draw(
        &mut self,
        s: &Scenario,
        assets: &Assets,
        actors: &[Actor],
        t: f64,
        out: &mut Vec<u8>,
    ) -> Vec<TruthBox> {
        let (w, h) = (self.w, self.h);
        let (fw, fh) = (w as f64, h as f64);
        let shift = view_shift(&s.events, t);
        let (sx, sy) = (shift[0] * fw, shift[1] * fh);
        // Background, seen through the turned camera (edges repeat).
        let bg = &assets.background;
        for y in 0..h {
            let yy = (y as f64 + sy).round().clamp(0.0, fh - 1.0) as u32;
            for x in 0..w {
                let xx = (x as f64 + sx).round().clamp(0.0, fw - 1.0) as u32;
                let p = bg.get_pixel(xx, yy);
                let i = (y * w + x) * 3;
                self.frame[i] = p[0] as f32;
                self.frame[i + 1] = p[1] as f32;
                self.frame[i + 2] = p[2] as f32;
            }
        }
        self.owner.fill(0);
        self.opaque.fill(0);

        // Place every object present, far to near.
        let mut placed: Vec<Placed<'_>> = Vec::new();
        for (ai, a) in actors.iter().enumerate() {
            let Some(pose) = a.pose(t) else { continue };
            if pose.dir_x != 0 {
                self.facing[ai] = pose.dir_x;
            }
            let dir = self.facing[ai];
            let g = [pose.ground[0] - shift[0], pose.ground[1] - shift[1]];
            let ppm = px_per_m(&s.camera, pose.ground[1], fh);
            let (sprite, mirror, dw) = match a.kind {
                ObjectKind::Person => {
                    let wk = &assets.walkers[a.sprite % assets.walkers.len()];
                    let frame = walk_frame(&pose, wk.frames.len());
                    let sp = &wk.frames[frame];
                    let th = a.height_m * ppm;
                    let tw = th * sp.width() as f64 / sp.height() as f64;
                    (sp, dir != wk.dir, tw)
                }
                k => {
                    let list = assets.vehicles_of(k);
                    let v = list[a.sprite % list.len()];
                    (&v.image, dir != v.facing, v.length_m * ppm)
                }
            };
            let dh = dw * sprite.height() as f64 / sprite.width() as f64;
            placed.push(Placed {
                actor: ai,
                id: a.id,
                sprite,
                mirror,
                x0: g[0] * fw - dw / 2.0,
                y0: g[1] * fh - dh,
                w: dw,
                h: dh,
                ground: g,
            });
        }
        placed.sort_by(|a, b| a.ground[1].total_cmp(&b.ground[1]));
        for p in &placed {
            self.shadow(p, s.camera.shadow as f32);
        }
        for (k, p) in placed.iter().enumerate() {
            self.sprite(p, k as u16 + 1);
        }
        let mut visible = vec![0u32; placed.len() + 1];
        for &o in &self.owner {
            visible[o as usize] += 1;
        }

        // The camera: light, cover, focus, then the sensor's noise.
        let gain = light_gain(&s.events, t) as f32;
        if (gain - 1.0).abs() > 1e-4 {
            for v in &mut self.frame {
                *v *= gain;
            }
        }
        let blur = defocus_radius(&s.events, t);
        if blur >= 1 {
            box_blur(&mut self.frame, w, h, blur);
        }
        let cover = cover_alpha(&s.events, t) as f32;
        if cover > 0.0 {
            for y in 0..h {
                for x in 0..w {
                    // A cloth or hand over the lens: dull, nearly uniform, slightly shaded.
                    let shade = 96.0 + 10.0 * (x as f32 / w as f32) - 6.0 * (y as f32 / h as f32);
                    let i = (y * w + x) * 3;
                    for (c, tint) in [1.0f32, 0.93, 0.85].iter().enumerate() {
                        self.frame[i + c] =
                            self.frame[i + c] * (1.0 - cover) + cover * shade * tint;
                    }
                }
            }
        }
        let sigma = s.camera.noise as f32;
        out.clear();
        out.resize(w * h * 3, 0);
        let start = self.rng.below(self.noise.len());
        let n = self.noise.len();
        for (i, (o, v)) in out.iter_mut().zip(&self.frame).enumerate() {
            let nz = if sigma > 0.0 {
                self.noise[(start + i * 7) % n] * sigma
            } else {
                0.0
            };
            *o = (v + nz).round().clamp(0.0, 255.0) as u8;
        }

        // The background's own objects: there all along; hidden where objects pass in front,
        // and by a cover or the dark.
        let blind = cover > 0.5 || gain < 0.2;
        let mut boxes: Vec<TruthBox> = Vec::new();
        for (i, o) in assets.statics.iter().enumerate() {
            let b = [
                o.bbox[0] - shift[0],
                o.bbox[1] - shift[1],
                o.bbox[2] - shift[0],
                o.bbox[3] - shift[1],
            ];
            let (x0, y0) = ((b[0] * fw).max(0.0) as usize, (b[1] * fh).max(0.0) as usize);
            let (x1, y1) = (
                ((b[2] * fw).min(fw)).max(0.0) as usize,
                ((b[3] * fh).min(fh)).max(0.0) as usize,
            );
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            let mut free = 0usize;
            for y in y0..y1 {
                free += self.owner[y * w + x0..y * w + x1]
                    .iter()
                    .filter(|&&o| o == 0)
                    .count();
            }
            let full = (b[2] - b[0]) * (b[3] - b[1]) * fw * fh;
            boxes.push(TruthBox {
                id: static_id(actors.len(), i),
                bbox: [
                    b[0].clamp(0.0, 1.0),
                    b[1].clamp(0.0, 1.0),
                    b[2].clamp(0.0, 1.0),
                    b[3].clamp(0.0, 1.0),
                ],
                ground: [(b[0] + b[2]) / 2.0, b[3]],
                visibility: if blind {
                    0.0
                } else {
                    free as f64 / full.max(1.0)
                },
                actor: usize::MAX,
            });
        }
        boxes.extend(placed.iter().enumerate().filter_map(|(k, p)| {
            let x1 = (p.x0 / fw).clamp(0.0, 1.0);
            let y1 = (p.y0 / fh).clamp(0.0, 1.0);
            let x2 = ((p.x0 + p.w) / fw).clamp(0.0, 1.0);
            let y2 = ((p.y0 + p.h) / fh).clamp(0.0, 1.0);
            if x2 <= x1 || y2 <= y1 {
                return None;
            }
            let total = self.opaque[k + 1].max(1);
            Some(TruthBox {
                id: p.id,
                bbox: [x1, y1, x2, y2],
                ground: p.ground,
                visibility: if blind {
                    0.0
                } else {
                    visible[k + 1] as f64 / total as f64
                },
                actor: p.actor,
            })
        }));
        boxes
    }

    fn shadow(&mut self, p: &Placed<'_>, strength: f32) {
        if strength <= 0.0 {
            return;
        }
        let (w, h) = (self.w as f64, self.h as f64);
        let (cx, cy) = (p.ground[0] * w + 0.15 * p.w, p.ground[1] * h);
        let (rx, ry) = (0.6 * p.w, (0.08 * p.h).max(0.12 * p.w));
        let (x0, x1) = (
            (cx - rx).max(0.0) as usize,
            ((cx + rx).min(w - 1.0)).max(0.0) as usize,
        );
        let (y0, y1) = (
            (cy - ry).max(0.0) as usize,
            ((cy + ry).min(h - 1.0)).max(0.0) as usize,
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f64 - cx) / rx).powi(2) + ((y as f64 - cy) / ry).powi(2);
                if d < 1.0 {
                    let k = 1.0 - strength * (1.0 - d as f32).sqrt();
                    let i = (y * self.w + x) * 3;
                    for c in 0..3 {
                        self.frame[i + c] *= k;
                    }
                }
            }
        }
    }

    fn sprite(&mut self, p: &Placed<'_>, owner: u16) {
        let (fw, fh) = (self.w as i64, self.h as i64);
        let (sw, sh) = (p.sprite.width() as f64, p.sprite.height() as f64);
        let (x0, y0) = (p.x0.floor() as i64, p.y0.floor() as i64);
        let (x1, y1) = ((p.x0 + p.w).ceil() as i64, (p.y0 + p.h).ceil() as i64);
        for y in y0..y1 {
            for x in x0..x1 {
                // Sample the sprite at the pixel centre (bilinear).
                let u = ((x as f64 + 0.5 - p.x0) / p.w * sw - 0.5).clamp(0.0, sw - 1.0);
                let v = ((y as f64 + 0.5 - p.y0) / p.h * sh - 0.5).clamp(0.0, sh - 1.0);
                let u = if p.mirror { sw - 1.0 - u } else { u };
                let px = bilinear(p.sprite, u, v);
                let a = px[3] / 255.0;
                if a <= 0.02 {
                    continue;
                }
                if a > 0.5 {
                    self.opaque[owner as usize] += 1;
                }
                if x < 0 || x >= fw || y < 0 || y >= fh {
                    continue;
                }
                let i = (y as usize * self.w + x as usize) * 3;
                for (f, v) in self.frame[i..i + 3].iter_mut().zip(&px[..3]) {
                    *f = *f * (1.0 - a) + v * a;
                }
                if a > 0.5 {
                    self.owner[y as usize * self.w + x as usize] = owner;
                }
            }
        }
    }
}

fn bilinear(img: &RgbaImage, u: f64, v: f64) -> [f32; 4] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (x0, y0) = (u.floor() as usize, v.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = ((u - x0 as f64) as f32, (v - y0 as f64) as f32);
    let p = |x: usize, y: usize| img.get_pixel(x as u32, y as u32).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0f32; 4];
    // Colour weighted by alpha so transparent pixels do not bleed their (black) colour.
    let wts = [
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    ];
    let mut alpha = 0.0;
    for (px, wt) in [a, b, c, d].iter().zip(wts) {
        let aw = wt * px[3] as f32;
        alpha += aw;
        for ch in 0..3 {
            out[ch] += aw * px[ch] as f32;
        }
    }
    if alpha > 0.0 {
        for v in &mut out[..3] {
            *v /= alpha;
        }
    }
    out[3] = alpha;
    out
}

fn walk_frame(pose: &Pose, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if pose.still {
        return n / 2;
    }
    ((pose.dist_m / STRIDE_M) as usize) % n
}

/// Brightness at `t` (dusk falls and stays; the dark lasts its duration).
pub fn light_gain(events: &[CameraEvent], t: f64) -> f64 {
    let mut g = 1.0;
    for e in events {
        match e.kind {
            EventKind::Dim if t >= e.at_sec => {
                let k = ((t - e.at_sec) / e.duration_sec).min(1.0);
                g *= 1.0 + (e.level.unwrap_or(0.35) - 1.0) * k;
            }
            EventKind::Dark if t >= e.at_sec && t < e.at_sec + e.duration_sec => {
                let k = ((t - e.at_sec) / 0.3).min(1.0);
                g *= 1.0 + (e.level.unwrap_or(0.05) - 1.0) * k;
            }
            _ => {}
        }
    }
    g
}

fn ramp(e: &CameraEvent, t: f64, edge: f64) -> f64 {
    if t < e.at_sec || t >= e.at_sec + e.duration_sec {
        return 0.0;
    }
    let a = ((t - e.at_sec) / edge).min(1.0);
    let b = ((e.at_sec + e.duration_sec - t) / edge).min(1.0);
    a.min(b)
}

fn cover_alpha(events: &[CameraEvent], t: f64) -> f64 {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Cover)
        .map(|e| ramp(e, t, 0.4))
        .fold(0.0, f64::max)
}

fn defocus_radius(events: &[CameraEvent], t: f64) -> usize {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Defocus)
        .map(|e| (ramp(e, t, 0.5) * e.level.unwrap_or(6.0)).round() as usize)
        .max()
        .unwrap_or(0)
}

/// How far the view has turned at `t` (normalised); turning takes a second and stays.
pub fn view_shift(events: &[CameraEvent], t: f64) -> [f64; 2] {
    let mut s = [0.0, 0.0];
    for e in events.iter().filter(|e| e.kind == EventKind::Move) {
        if t >= e.at_sec {
            let k = ((t - e.at_sec) / 1.0).min(1.0);
            let d = e.shift.unwrap_or([0.0, 0.0]);
            s[0] += d[0] * k;
            s[1] += d[1] * k;
        }
    }
    s
}

/// Three box blurs (close to a Gaussian) of radius `r`, per channel.
fn box_blur(img: &mut [f32], w: usize, h: usize, r: usize) {
    let mut tmp = vec![0f32; img.len()];
    for _ in 0..3 {
        for y in 0..h {
            for c in 0..3 {
                let mut acc = 0.0;
                for x in 0..=r.min(w - 1) {
                    acc += img[(y * w + x) * 3 + c];
                }
                for x in 0..w {
                    let lo = x.saturating_sub(r);
                    let hi = (x + r).min(w - 1);
                    tmp[(y * w + x) * 3 + c] = acc / (hi - lo + 1) as f32;
                    if x + r + 1 < w {
                        acc += img[(y * w + x + r + 1) * 3 + c];
                    }
                    if x >= r {
                        acc -= img[(y * w + x - r) * 3 + c];
                    }
                }
            }
        }
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for y in 0..=r.min(h - 1) {
                    acc += tmp[(y * w + x) * 3 + c];
                }
                for y in 0..h {
                    let lo = y.saturating_sub(r);
                    let hi = (y + r).min(h - 1);
                    img[(y * w + x) * 3 + c] = acc / (hi - lo + 1) as f32;
                    if y + r + 1 < h {
                        acc += tmp[((y + r + 1) * w + x) * 3 + c];
                    }
                    if y >= r {
                        acc -= tmp[((y - r) * w + x) * 3 + c];
                    }
                }
            }
        }
    }
}

/// The background as RGB (for tests and previews).
pub fn background(assets: &Assets) -> &RgbImage {
    &assets.background
}

/// Writes the frames at `times` as PNG files in `out`, with every truth box drawn (green when
/// mostly visible, red when mostly hidden), for people checking a scenario.
pub fn write_previews(
    s: &Scenario,
    assets: &Assets,
    truth: &crate::truth::Truth,
    times: &[f64],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let actors = crate::world::actors(s, assets);
    let mut r = Renderer::new(s, assets, actors.len());
    let (w, h) = r.size();
    let mut rgb = Vec::new();
    for &t in times {
        let t = (t * s.fps as f64).round() / s.fps as f64;
        r.draw(s, assets, &actors, t, &mut rgb);
        let mut img = RgbImage::from_raw(w as u32, h as u32, rgb.clone())
            .ok_or_else(|| anyhow::anyhow!("frame buffer"))?;
        if let Some(f) = truth.frame_at(t) {
            for b in &f.boxes {
                let colour = if b.visibility >= 0.5 {
                    image::Rgb([0, 220, 0])
                } else {
                    image::Rgb([230, 0, 0])
                };
                let bb = ioc_detect::BBox::new(
                    (b.bbox[0] * w as f64) as f32,
                    (b.bbox[1] * h as f64) as f32,
                    (b.bbox[2] * w as f64) as f32,
                    (b.bbox[3] * h as f64) as f32,
                );
                ioc_agent::annotate::draw_box(&mut img, &bb, colour, 1);
            }
        }
        let p = out.join(format!("{}-{:06.1}.png", s.name, t));
        img.save(&p)?;
        println!("  preview {}", p.display());
    }
    Ok(())
}
