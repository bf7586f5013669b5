//! The evaluation: every scenario at every detection rate, with and without a CPU hog, scored
//! against its truth; a readable table and a JSON report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ioc_agent::motion::MotionConfig;
use ioc_detect::{postprocess::DecodeParams, Detector, DetectorConfig};
use serde::{Deserialize, Serialize};

use crate::assets::Assets;
use crate::generate::generate;
use crate::metrics::{
    score_incidents, score_lines, score_tracks, KindScore, Raised, RunScore, TrackScore,
};
use crate::scenario::Scenario;
use crate::simulate::{simulate, Infer, SimOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Detection rates.
    pub fps: Vec<f64>,
    /// CPU hog threads for the loaded runs (none: only unloaded runs); 0 in the list is an
    /// unloaded run.
    pub loads: Vec<usize>,
    /// Inference time model.
    pub infer: Infer,
    /// Parallel detector workers.
    pub workers: usize,
    /// Motion gating.
    pub motion: MotionConfig,
    /// Only scenarios marked `quick`.
    pub quick: bool,
    /// Print every rule event and the tracks at each second.
    pub verbose: bool,
}

/// Where things are.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// Model manifest.
    pub model: PathBuf,
    /// Footage from `deploy/setup.sh`.
    pub footage: PathBuf,
    /// Built assets.
    pub assets: PathBuf,
    /// Generated clips.
    pub clips: PathBuf,
}

impl Dirs {
    /// The workspace's layout under `root`.
    pub fn under(root: &Path) -> Self {
        let (footage, assets) = crate::assets::default_dirs(root);
        let clips = assets
            .parent()
            .map(|p| p.join("scenarios"))
            .unwrap_or_else(|| root.join(".deps/scenarios"));
        Self {
            model: root.join("models/nanodet-g-416.toml"),
            footage,
            assets,
            clips,
        }
    }
}

/// One scenario at one setting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// Scenario name.
    pub scenario: String,
    /// Detection rate.
    pub fps: f64,
    /// Hog threads.
    pub load: usize,
    /// Scores.
    pub score: RunScore,
    /// Frames offered, detected, held, dropped.
    pub frames: [u64; 4],
    /// Median real inference time, ms.
    pub infer_ms: f64,
    /// Median and max simulated latency, ms.
    pub latency_ms: (f64, f64),
}

/// Totals of one setting.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Per kind.
    pub kinds: BTreeMap<String, KindScore>,
    /// Tracking.
    pub tracks: TrackScore,
    /// Line counts: `(line of scenario, truth in/out, counted in/out)`.
    pub lines: Vec<(String, [u32; 2], [u32; 2])>,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Every run.
    pub runs: Vec<Run>,
    /// Per setting `"fps=5 load=2"`.
    pub totals: BTreeMap<String, Totals>,
}

/// Spinning threads that load the CPU while they live.
pub struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hog {
    /// `n` spinning threads.
    pub fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let s = stop.clone();
                std::thread::Builder::new()
                    .name(format!("hog-{i}"))
                    .spawn(move || {
                        let mut x = 1u64;
                        while !s.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            }
                            std::hint::black_box(x);
                        }
                    })
                    .expect("hog thread")
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The detector the scenario assets (the people cut out of vtest) are made with: always the
/// float model on its square input, so the clips, and the truth they carry, stay the same
/// whatever the agent's defaults are (a model change must not change the test material).
pub fn load_asset_detector(model: &Path) -> anyhow::Result<Detector> {
    Ok(Detector::load(
        model,
        DetectorConfig {
            precision: ioc_detect::PrecisionChoice::Float,
            input_size: ioc_detect::InputSize::Fixed(416, 416),
            ..DetectorConfig::default()
        },
    )?)
}

/// The precision under evaluation: `$IOC_EVAL_PRECISION` (`float`, `int8`) or the agent's
/// default (`auto`), so one build compares both on the same library (and
/// `$IOC_EVAL_INPUT_SIZE`, e.g. `416x416`, the input shape).
fn precision() -> ioc_detect::PrecisionChoice {
    match std::env::var("IOC_EVAL_PRECISION").as_deref() {
        Ok("float") => ioc_detect::PrecisionChoice::Float,
        Ok("int8") => ioc_detect::PrecisionChoice::Int8,
        _ => ioc_detect::PrecisionChoice::Auto,
    }
}

/// The agent's default detector on one thread (as each of its workers runs).
pub fn load_detector(model: &Path) -> anyhow::Result<Detector> {
    let d = ioc_agent::config::DetectConfig::default();
    Ok(Detector::load(
        model,
        DetectorConfig {
            decode: DecodeParams {
                score_threshold: d.score_threshold,
                nms_iou: d.nms_iou,
                max_detections: d.max_detections,
            },
            intra_threads: 1,
            inter_threads: 1,
            spinning: false,
            ort_library: None,
            precision: precision(),
            input_size: std::env::var("IOC_EVAL_INPUT_SIZE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(d.input_size),
        },
    )?)
}

fn setting(fps: f64, load: usize) -> String {
    format!("fps={fps} load={load}")
}

/// Generates what is missing and runs every scenario in `dir` at every setting.
pub fn evaluate(dir: &Path, dirs: &Dirs, opts: &EvalOptions) -> anyhow::Result<Report> {
    let scenarios: Vec<Scenario> = Scenario::load_all(dir)?
        .into_iter()
        .filter(|s| !opts.quick || s.quick)
        .collect();
    anyhow::ensure!(
        !scenarios.is_empty(),
        "{}: no scenario to run",
        dir.display()
    );
    let assets = Assets::load_or_build(
        &dirs.footage,
        &dirs.assets,
        &mut load_asset_detector(&dirs.model)?,
    )?;
    let mut detector = load_detector(&dirs.model)?;
    let mut report = Report::default();
    for s in &scenarios {
        let g = generate(s, &assets, &dirs.clips)?;
        let rules: Vec<(String, ioc_tracking::RuleKind)> = s
            .analytics
            .rules
            .iter()
            .map(|r| (r.name.clone(), r.kind))
            .collect();
        for &load in &opts.loads {
            let _hog = (load > 0).then(|| Hog::start(load));
            for &fps in &opts.fps {
                let sim = simulate(
                    &g.clip,
                    &g.truth,
                    &s.analytics,
                    &mut detector,
                    &SimOptions {
                        detect_fps: fps,
                        workers: opts.workers,
                        infer: opts.infer,
                        motion: opts.motion.clone(),
                    },
                )?;
                if opts.verbose {
                    for e in &sim.events {
                        eprintln!(
                            "  {:7.2}s {:?} {:?} {} objects {:?}",
                            e.observed_at_sec,
                            e.kind,
                            e.phase,
                            e.rule,
                            e.objects
                                .iter()
                                .map(|o| (o.track_id, o.class.as_str()))
                                .collect::<Vec<_>>()
                        );
                    }
                    let mut next = 0.0;
                    for f in &sim.tracks {
                        if f.t >= next {
                            next = f.t
                                + std::env::var("IOC_EVAL_TRACE_EVERY")
                                    .ok()
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(1.0);
                            let list: Vec<String> = f
                                .tracks
                                .iter()
                                .map(|(id, b)| {
                                    format!("{id}@({:.2},{:.2})", (b[0] + b[2]) / 2.0, b[3])
                                })
                                .collect();
                            eprintln!("  {:7.2}s tracks {} lost {:?}", f.t, list.join(" "), f.lost);
                        }
                    }
                }
                let mut score =
                    score_incidents(&g.truth, &Raised::from_events(&sim.events), &rules);
                score.lines = score_lines(&g.truth, &sim.counts);
                score.tracks = score_tracks(&g.truth, &sim.tracks);
                let run = Run {
                    scenario: s.name.clone(),
                    fps,
                    load,
                    score,
                    frames: [sim.offered, sim.detected, sim.held, sim.dropped],
                    infer_ms: sim.infer_ms,
                    latency_ms: sim.latency_ms,
                };
                eprintln!("{}", run_line(&run));
                let t = report.totals.entry(setting(fps, load)).or_default();
                for (k, v) in &run.score.kinds {
                    t.kinds.entry(k.clone()).or_default().add(v);
                }
                t.tracks.add(&run.score.tracks);
                for (l, c) in &run.score.lines {
                    t.lines
                        .push((format!("{}/{l}", s.name), c.truth, c.counted));
                }
                report.runs.push(run);
            }
        }
    }
    Ok(report)
}

fn run_line(r: &Run) -> String {
    let (mut tp, mut exp, mut fp) = (0, 0, 0);
    for k in r.score.kinds.values() {
        tp += k.tp;
        exp += k.tp + k.missed;
        fp += k.fp + k.duplicates;
    }
    format!(
        "{:<28} fps {:>4} load {} | found {tp}/{exp}, false/duplicate {fp} | MOTA {:.2} IDF1 {:.2} | frames {} offered, {} detected, {} held, {} dropped | inference {:.0} ms{}",
        r.scenario,
        r.fps,
        r.load,
        r.score.tracks.mota(),
        r.score.tracks.idf1(),
        r.frames[0],
        r.frames[1],
        r.frames[2],
        r.frames[3],
        r.infer_ms,
        if r.score.notes.is_empty() {
            String::new()
        } else {
            format!("\n    {}", r.score.notes.join("\n    "))
        }
    )
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The report as Markdown tables.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    for (setting, t) in &r.totals {
        s.push_str(&format!("\n### {setting}\n\n"));
        s.push_str("| kind | expected | found | missed | false | duplicate | late | precision | recall | time to detect, median / max (s) |\n|---|---|---|---|---|---|---|---|---|---|\n");
        let mut all = KindScore::default();
        for (k, v) in &t.kinds {
            all.add(v);
            s.push_str(&format!(
                "| {k} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} / {:.1} |\n",
                v.tp + v.missed,
                v.tp,
                v.missed,
                v.fp,
                v.duplicates,
                v.late,
                v.precision(),
                v.recall(),
                median(&v.ttd),
                v.ttd.iter().copied().fold(0.0, f64::max),
            ));
        }
        s.push_str(&format!(
            "| **all** | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | |\n",
            all.tp + all.missed,
            all.tp,
            all.missed,
            all.fp,
            all.duplicates,
            all.late,
            all.precision(),
            all.recall()
        ));
        let tr = &t.tracks;
        s.push_str(&format!(
            "\nTracking: MOTA {:.3}, IDF1 {:.3}, {} identity switches, {} fragmentations over {} truth boxes ({} missed, {} false).\n",
            tr.mota(),
            tr.idf1(),
            tr.id_switches,
            tr.fragmentations,
            tr.gt,
            tr.fn_,
            tr.fp
        ));
        if !t.lines.is_empty() {
            s.push_str("\n| line | truth in / out | counted in / out |\n|---|---|---|\n");
            for (l, tr, c) in &t.lines {
                s.push_str(&format!(
                    "| {l} | {} / {} | {} / {} |\n",
                    tr[0], tr[1], c[0], c[1]
                ));
            }
        }
    }
    s
}
