//! The real pixels scenarios are made of, built once from what `deploy/setup.sh` fetched and
//! cached under `.deps/scenario-assets/`:
//!
//! - **background** `plaza`: the per-pixel median of every 8th frame of OpenCV's `vtest.avi`
//!   (Debian `opencv-doc`): the walkways, grass, road and parked vehicles without the people.
//! - **walkers**: people cut from `vtest.avi` frame by frame: the detector finds each person,
//!   the difference from the background gives their outline (shadow included), and boxes
//!   followed across frames give a real walk cycle of each person.
//! - **vehicles**: photographs of real vehicles already cut out (Debian
//!   `tuxpaint-stamps-default`: sedan, beetle, sports car, pickup, bus, refuse lorry, fire
//!   engine, dumper).

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use ioc_detect::yuv::{Order, Placement, Resampler};
use ioc_detect::Detector;

use crate::scenario::ObjectKind;
use crate::video::for_each_frame;

/// Bump when the way assets are made changes: the cache is rebuilt.
const ASSETS_VERSION: &str = "assets-1";

/// A person walking: the same person's outline in consecutive frames.
#[derive(Clone, Debug)]
pub struct Walker {
    /// Frames, each cropped to the person (feet at the bottom centre).
    pub frames: Vec<RgbaImage>,
    /// Direction the person walks in the source: +1 right, −1 left.
    pub dir: i8,
}

/// A vehicle photograph with transparent surroundings.
#[derive(Clone, Debug)]
pub struct VehicleSprite {
    /// The picture, cropped to the vehicle.
    pub image: RgbaImage,
    /// Car, truck or bus.
    pub kind: ObjectKind,
    /// +1 when the front is on the right, −1 on the left.
    pub facing: i8,
    /// Real length in metres (sets its size on the image).
    pub length_m: f64,
}

/// A real object that is part of the background (a parked van): always there, so part of
/// every clip's truth.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StaticObject {
    /// Model class name.
    pub class: String,
    /// Box `[x1, y1, x2, y2]`, normalised.
    pub bbox: [f64; 4],
}

/// Everything a scenario is drawn from.
pub struct Assets {
    /// The empty scene.
    pub background: RgbImage,
    /// The objects in it.
    pub statics: Vec<StaticObject>,
    /// People.
    pub walkers: Vec<Walker>,
    /// Vehicles.
    pub vehicles: Vec<VehicleSprite>,
}

/// The vehicle photographs used, from `tuxpaint-stamps-default` (see `deploy/setup.sh`).
const VEHICLES: &[(&str, ObjectKind, i8, f64)] = &[
    ("sedan.png", ObjectKind::Car, 1, 4.8),
    ("beetle.png", ObjectKind::Car, 1, 4.1),
    ("sportscar2.png", ObjectKind::Car, 1, 4.4),
    ("truck.png", ObjectKind::Truck, 1, 5.5),
    ("garbagetruck.png", ObjectKind::Truck, -1, 8.5),
    ("firetruck.png", ObjectKind::Truck, -1, 9.5),
    ("green_korean_bus.png", ObjectKind::Bus, -1, 10.5),
];

impl Assets {
    /// Loads the cached assets, building them first when missing. `footage` is the folder
    /// `deploy/setup.sh` fills (`vtest.avi`, `sprites/`), `cache` where built assets go,
    /// `detector` finds the people in the footage.
    pub fn load_or_build(
        footage: &Path,
        cache: &Path,
        detector: &mut Detector,
    ) -> anyhow::Result<Self> {
        let dir = cache.join(ASSETS_VERSION);
        // Tests in one binary run in parallel and may all find the cache missing: one builds,
        // the others wait; a build in another process is never seen half-written because
        // it is made in a private folder and renamed into place.
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        {
            let _one = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
            if !dir.join("done").is_file() {
                build_into_place(footage, &dir, detector)?;
            }
        }
        let background = image::open(dir.join("background.png"))
            .with_context(|| format!("{}", dir.join("background.png").display()))?
            .to_rgb8();
        let statics_path = dir.join("background-objects.json");
        if !statics_path.is_file() {
            let found = static_objects(&background, detector)?;
            write_atomically(
                &statics_path,
                serde_json::to_string_pretty(&found)?.as_bytes(),
            )?;
        }
        let statics: Vec<StaticObject> =
            serde_json::from_str(&std::fs::read_to_string(&statics_path)?)?;
        let index: Vec<(usize, i8)> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("walkers.json")).context("walkers.json")?,
        )?;
        let mut walkers = Vec::new();
        for (i, (n, dir_x)) in index.into_iter().enumerate() {
            let frames = (0..n)
                .map(|k| {
                    let p = dir.join(format!("walkers/{i:02}/{k:03}.png"));
                    image::open(&p)
                        .map(|im| im.to_rgba8())
                        .with_context(|| p.display().to_string())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            walkers.push(Walker { frames, dir: dir_x });
        }
        let mut vehicles = Vec::new();
        for &(file, kind, facing, length_m) in VEHICLES {
            let p = footage.join("sprites").join(file);
            let image = image::open(&p)
                .with_context(|| {
                    format!(
                        "{} is missing: run `make setup` (deploy/setup.sh)",
                        p.display()
                    )
                })?
                .to_rgba8();
            vehicles.push(VehicleSprite {
                image: crop_to_alpha(&image),
                kind,
                facing,
                length_m,
            });
        }
        anyhow::ensure!(
            walkers.len() >= 4,
            "only {} walkers were found in vtest.avi",
            walkers.len()
        );
        Ok(Self {
            background,
            statics,
            walkers,
            vehicles,
        })
    }

    /// The vehicle sprites of a kind.
    pub fn vehicles_of(&self, kind: ObjectKind) -> Vec<&VehicleSprite> {
        self.vehicles.iter().filter(|v| v.kind == kind).collect()
    }
}

/// The road users the detector finds in the empty scene (parked vehicles, a standing person).
fn static_objects(bg: &RgbImage, detector: &mut Detector) -> anyhow::Result<Vec<StaticObject>> {
    let (w, h) = (bg.width() as usize & !1, bg.height() as usize & !1);
    let rgb = image::imageops::crop_imm(bg, 0, 0, w as u32, h as u32).to_image();
    let mut yuv = Vec::new();
    crate::video::rgb_to_i420(rgb.as_raw(), w, h, &mut yuv);
    let (cw, ch) = (w / 2, h / 2);
    let img = ioc_detect::yuv::YuvImage {
        layout: ioc_detect::yuv::YuvLayout::I420,
        width: w,
        height: h,
        y: &yuv[..w * h],
        y_stride: w,
        u: &yuv[w * h..w * h + cw * ch],
        u_stride: cw,
        v: &yuv[w * h + cw * ch..],
        v_stride: cw,
        matrix: ioc_detect::yuv::Matrix::Bt601,
        full_range: false,
    };
    let mut dets = Vec::new();
    detector.detect_yuv(&img, &mut dets)?;
    let labels = detector.labels();
    Ok(dets
        .iter()
        .filter(|d| d.score >= 0.45)
        .filter_map(|d| {
            let class = labels.get(d.class_id as usize)?;
            ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
                .contains(&class.as_str())
                .then(|| StaticObject {
                    class: class.clone(),
                    bbox: [
                        d.bbox.x1 as f64 / w as f64,
                        d.bbox.y1 as f64 / h as f64,
                        d.bbox.x2 as f64 / w as f64,
                        d.bbox.y2 as f64 / h as f64,
                    ],
                })
        })
        .collect())
}

/// The smallest rectangle holding every visible pixel.
fn crop_to_alpha(img: &RgbaImage) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p[3] > 16 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return img.clone();
    }
    image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image()
}

fn to_rgb(frame: &ioc_agent::decode::DecodedFrame, rs: &mut Resampler) -> anyhow::Result<RgbImage> {
    let (w, h) = frame.size();
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    let place = Placement {
        x: 0,
        y: 0,
        width: w as usize,
        height: h as usize,
    };
    frame
        .with_image(|img| rs.to_rgb(img, &mut buf, w as usize * 3, place, Order::Rgb))
        .and_then(|r| r)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    RgbImage::from_raw(w, h, buf).context("frame")
}

/// A person found in one frame, cut out.
struct Cut {
    frame: usize,
    bbox: [f32; 4],
    sprite: RgbaImage,
}

/// Builds the assets in a folder of this process's own and renames it to `dir`; when another
/// process got there first, its complete copy is kept.
fn build_into_place(footage: &Path, dir: &Path, detector: &mut Detector) -> anyhow::Result<()> {
    let parent = dir.parent().context("assets folder has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    let tmp = parent.join(format!(
        ".{}.building-{}",
        ASSETS_VERSION,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    build(footage, &tmp, detector)?;
    if dir.join("done").is_file() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }
    // A stale, unfinished folder from an older layout or a killed build.
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::ensure!(
            dir.join("done").is_file(),
            "moving the built assets to {}: {e}",
            dir.display()
        );
    }
    Ok(())
}

/// Writes `path` through a temporary file and a rename, so readers never see half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    Ok(())
}

fn build(footage: &Path, dir: &Path, detector: &mut Detector) -> anyhow::Result<()> {
    let vtest = footage.join("vtest.avi");
    anyhow::ensure!(
        vtest.is_file(),
        "{} is missing: run `make setup` (deploy/setup.sh)",
        vtest.display()
    );
    eprintln!("building scenario assets from {} (once)", vtest.display());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("walkers"))?;
    let mut rs = Resampler::new();

    // 1. The empty scene: the median of every 8th frame.
    let mut samples: Vec<RgbImage> = Vec::new();
    let mut n = 0usize;
    for_each_frame(&vtest, 0.0, |f| {
        if n.is_multiple_of(8) {
            samples.push(to_rgb(&f, &mut rs)?);
        }
        n += 1;
        Ok(())
    })?;
    anyhow::ensure!(samples.len() >= 10, "vtest.avi has too few frames");
    let (w, h) = samples[0].dimensions();
    let mut bg = RgbImage::new(w, h);
    let mut vals = vec![0u8; samples.len()];
    for y in 0..h {
        for x in 0..w {
            let mut px = [0u8; 3];
            for (c, p) in px.iter_mut().enumerate() {
                for (v, s) in vals.iter_mut().zip(&samples) {
                    *v = s.get_pixel(x, y)[c];
                }
                let mid = vals.len() / 2;
                *p = *vals.select_nth_unstable(mid).1;
            }
            bg.put_pixel(x, y, Rgb(px));
        }
    }
    drop(samples);
    bg.save(dir.join("background.png"))?;

    // 2. People: isolated person detections, cut out by their difference from the scene.
    let person = detector
        .labels()
        .iter()
        .position(|l| l == "person")
        .context("the model has no person class")? as u16;
    let mut cuts: Vec<Cut> = Vec::new();
    let mut dets = Vec::new();
    let mut k = 0usize;
    for_each_frame(&vtest, 0.0, |f| {
        let index = k;
        k += 1;
        f.with_image(|img| detector.detect_yuv(img, &mut dets))
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        let rgb = to_rgb(&f, &mut rs)?;
        for (i, d) in dets.iter().enumerate() {
            if d.class_id != person || d.score < 0.6 {
                continue;
            }
            let b = d.bbox;
            let (bw, bh) = (b.x2 - b.x1, b.y2 - b.y1);
            // Big enough to keep its detail, whole, upright, and alone.
            let (mx, my) = (0.15 * bw, 0.06 * bh);
            let e = [b.x1 - mx, b.y1 - my, b.x2 + mx, b.y2 + my];
            if bh < 60.0
                || bw / bh > 0.65
                || e[0] < 2.0
                || e[1] < 2.0
                || e[2] > w as f32 - 3.0
                || e[3] > h as f32 - 3.0
            {
                continue;
            }
            let alone = dets.iter().enumerate().all(|(j, o)| {
                j == i
                    || o.score < 0.3
                    || o.bbox.x2 < e[0] - 4.0
                    || o.bbox.x1 > e[2] + 4.0
                    || o.bbox.y2 < e[1] - 4.0
                    || o.bbox.y1 > e[3] + 4.0
            });
            if !alone {
                continue;
            }
            if let Some(sprite) = cut_out(&rgb, &bg, e) {
                cuts.push(Cut {
                    frame: index,
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                    sprite,
                });
            }
        }
        Ok(())
    })?;

    // 3. Walk cycles: the same person in consecutive frames.
    let mut seqs: Vec<Vec<usize>> = Vec::new();
    let mut open: Vec<usize> = Vec::new(); // indices into seqs
    let mut by_frame: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, c) in cuts.iter().enumerate() {
        by_frame.entry(c.frame).or_default().push(i);
    }
    let mut last_frame = None;
    for (frame, list) in by_frame {
        if last_frame != Some(frame.wrapping_sub(1)) {
            open.clear();
        }
        last_frame = Some(frame);
        let mut next_open = Vec::new();
        for ci in list {
            let b = cuts[ci].bbox;
            let found = open.iter().position(|&s| {
                let p = cuts[*seqs[s].last().expect("non-empty")].bbox;
                iou(p, b) > 0.4
            });
            match found {
                Some(pos) => {
                    let s = open.remove(pos);
                    seqs[s].push(ci);
                    next_open.push(s);
                }
                None => {
                    seqs.push(vec![ci]);
                    next_open.push(seqs.len() - 1);
                }
            }
        }
        open = next_open;
    }
    let mut kept: Vec<(Vec<usize>, i8)> = seqs
        .into_iter()
        .filter(|s| s.len() >= 10)
        .map(|s| {
            let (a, b) = (cuts[s[0]].bbox, cuts[s[s.len() - 1]].bbox);
            let dx = (b[0] + b[2]) - (a[0] + a[2]);
            (s, if dx >= 0.0 { 1 } else { -1 })
        })
        .collect();
    // Longest first, at most 40 frames each, at most 40 people.
    kept.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    kept.truncate(40);
    let mut index = Vec::new();
    for (i, (s, dir_x)) in kept.iter().enumerate() {
        let d = dir.join(format!("walkers/{i:02}"));
        std::fs::create_dir_all(&d)?;
        let frames: Vec<&usize> = s.iter().take(40).collect();
        for (k, &&ci) in frames.iter().enumerate() {
            cuts[ci].sprite.save(d.join(format!("{k:03}.png")))?;
        }
        index.push((frames.len(), *dir_x));
    }
    eprintln!("  {} walkers, {} frames of people", index.len(), cuts.len());
    std::fs::write(dir.join("walkers.json"), serde_json::to_string(&index)?)?;
    std::fs::write(dir.join("done"), ASSETS_VERSION)?;
    Ok(())
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = iw * ih;
    let u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i;
    if u <= 0.0 {
        0.0
    } else {
        i / u
    }
}

/// The person inside `rect` of `frame`: pixels that differ from the empty scene, the largest
/// connected blob, with a soft edge; cropped to it (feet at the bottom).
fn cut_out(frame: &RgbImage, bg: &RgbImage, rect: [f32; 4]) -> Option<RgbaImage> {
    let (x0, y0) = (rect[0].max(0.0) as u32, rect[1].max(0.0) as u32);
    let x1 = (rect[2] as u32).min(frame.width());
    let y1 = (rect[3] as u32).min(frame.height());
    let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
    if w < 8 || h < 16 {
        return None;
    }
    let mut fg = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (
                frame.get_pixel(x0 + x as u32, y0 + y as u32),
                bg.get_pixel(x0 + x as u32, y0 + y as u32),
            );
            let d = (0..3)
                .map(|c| (a[c] as i32 - b[c] as i32).abs())
                .max()
                .unwrap_or(0);
            fg[y * w + x] = d > 28;
        }
    }
    // Close small holes (3×3 dilate then erode).
    let fg = erode(&dilate(&fg, w, h), w, h);
    // The largest 4-connected blob.
    let mut label = vec![0u32; w * h];
    let (mut best, mut best_n, mut next) = (0u32, 0usize, 1u32);
    for start in 0..w * h {
        if !fg[start] || label[start] != 0 {
            continue;
        }
        let mut stack = vec![start];
        label[start] = next;
        let mut count = 0;
        while let Some(i) = stack.pop() {
            count += 1;
            let (x, y) = (i % w, i / w);
            let mut push = |j: usize| {
                if fg[j] && label[j] == 0 {
                    label[j] = next;
                    stack.push(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < w {
                push(i + 1);
            }
            if y > 0 {
                push(i - w);
            }
            if y + 1 < h {
                push(i + w);
            }
        }
        if count > best_n {
            best_n = count;
            best = next;
        }
        next += 1;
    }
    // A person fills a fair part of their box.
    if best_n < w * h / 6 {
        return None;
    }
    let (mut bx0, mut by0, mut bx1, mut by1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if label[y * w + x] == best {
                bx0 = bx0.min(x);
                by0 = by0.min(y);
                bx1 = bx1.max(x + 1);
                by1 = by1.max(y + 1);
            }
        }
    }
    let (cw, ch) = (bx1 - bx0, by1 - by0);
    if cw < 6 || ch < 16 || ch < (h * 6) / 10 {
        return None;
    }
    let mut out = RgbaImage::new(cw as u32, ch as u32);
    for y in 0..ch {
        for x in 0..cw {
            // Soft edge: the share of the 3×3 neighbourhood inside the blob.
            let mut inside = 0u32;
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    let (xx, yy) = ((bx0 + x) as i32 + dx, (by0 + y) as i32 + dy);
                    if xx >= 0
                        && yy >= 0
                        && (xx as usize) < w
                        && (yy as usize) < h
                        && label[yy as usize * w + xx as usize] == best
                    {
                        inside += 1;
                    }
                }
            }
            let p = frame.get_pixel(x0 + (bx0 + x) as u32, y0 + (by0 + y) as u32);
            out.put_pixel(
                x as u32,
                y as u32,
                Rgba([p[0], p[1], p[2], (inside * 255 / 9) as u8]),
            );
        }
    }
    Some(out)
}

fn dilate(m: &[bool], w: usize, h: usize) -> Vec<bool> {
    morph(m, w, h, true)
}

fn erode(m: &[bool], w: usize, h: usize) -> Vec<bool> {
    morph(m, w, h, false)
}

fn morph(m: &[bool], w: usize, h: usize, grow: bool) -> Vec<bool> {
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut any = false;
            let mut all = true;
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                    let v = xx >= 0
                        && yy >= 0
                        && (xx as usize) < w
                        && (yy as usize) < h
                        && m[yy as usize * w + xx as usize];
                    any |= v;
                    all &= v;
                }
            }
            out[y * w + x] = if grow { any } else { all };
        }
    }
    out
}

/// Where the footage and assets are: `$IOC_FOOTAGE_DIR` or `.deps/footage` of the workspace,
/// and `.deps/scenario-assets` next to it.
pub fn default_dirs(root: &Path) -> (PathBuf, PathBuf) {
    let footage = std::env::var_os("IOC_FOOTAGE_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join(".deps/footage"));
    let cache = footage
        .parent()
        .map(|p| p.join("scenario-assets"))
        .unwrap_or_else(|| root.join(".deps/scenario-assets"));
    (footage, cache)
}
