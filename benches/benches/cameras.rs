//! How many cameras a box carries, and how much of the CPU the detectors turn into
//! detections (issue 10), each against a reference run in the same invocation:
//!
//! (d) N live RTSP cameras (footage looped by `ioc-rtsp-server`) at 5 detection fps: the
//!     largest N that `ioc-agent run` with the shipped defaults sustains (every camera
//!     analysed at ≥ 0.95 × 5 fps, median latency under a second) against the largest N
//!     that the Python reference (benches/python/reference.py: OpenCV capture, onnxruntime,
//!     the same model and post-processing, one process per camera) sustains; on the busy
//!     footage (`vtest`, people in every frame) and on a quiet site (a generated clip where
//!     someone passes now and then). Agent RSS at 4 cameras.
//! (e) Detection throughput with every camera busy (enough vtest cameras to offer 1.5× what
//!     the bare loops detect on this machine) against bare ONNX Runtime loops on the same
//!     cores (the pool's sessions run back to back on a ready tensor, in parallel).
//! (f) Pool sizing: bare inferences/s of workers × intra-op threads, with ONNX Runtime's
//!     spin-waiting on and off, and the agent's throughput on as many busy cameras with each.
//!
//! Needs release binaries and the reference's venv: `make bench` builds both
//! (`deploy/bench-setup.sh`). `cargo bench -p ioc-benches --bench cameras [-- d|e|f]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioc_detect::{Detector, DetectorConfig};
use ioc_testkit::{footage, model_manifest, workspace_binary, workspace_root, RtspServer};

const TARGET_FPS: f64 = 5.0;
const WARMUP: Duration = Duration::from_secs(12);
const WINDOW: Duration = Duration::from_secs(20);

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// RSS of a process in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// A child's output lines with the time each came.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// Collects a child's stderr (or stdout) lines with the time they came.
fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            l.lock().unwrap().push((Instant::now(), line));
        }
    });
    lines
}

/// `key="value"` or `key=value` in a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        r.split('"').next()?
    } else {
        rest.split_whitespace().next()?
    };
    Some(v.to_owned())
}

/// What one run of N cameras showed.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Per camera, analysed (or detected) frames per second in the window.
    per_camera: Vec<f64>,
    /// Median latency, ms.
    latency_ms: f64,
    /// Max RSS (all processes together), MiB.
    rss_mib: f64,
    /// Inferences per second, all cameras (agent only).
    inferences: f64,
}

impl Outcome {
    fn sustained(&self, n: usize) -> bool {
        self.per_camera.len() == n
            && self.per_camera.iter().all(|&f| f >= 0.95 * TARGET_FPS)
            && self.latency_ms < 1000.0
    }
}

fn agent_config(dir: &Path, urls: &[String], extra_detect: &str) -> PathBuf {
    let mut text = format!(
        "[agent]\nid = \"bench\"\nlog_detections = false\n[detect]\nmodel = \"{}\"\nfps = {TARGET_FPS}\n{extra_detect}\n",
        model_manifest().display()
    );
    for (i, u) in urls.iter().enumerate() {
        text.push_str(&format!("[[cameras]]\nid = \"cam{i}\"\nurl = \"{u}\"\n"));
    }
    let p = dir.join("agent.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `ioc-agent run` on `n` cameras of `url` (shipped defaults plus `extra_detect`).
fn run_agent(url: &str, n: usize, extra_detect: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let urls = vec![url.to_owned(); n];
    let cfg = agent_config(dir.path(), &urls, extra_detect);
    let mut child = Command::new(workspace_binary("ioc-agent"))
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--summary-every",
            "4",
        ])
        .env("RUST_LOG", "info,retina=warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ioc-agent (build it: cargo build --release -p ioc-agent)");
    let lines = collect(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let mut rss: f64 = 0.0;
    while t0.elapsed() < WARMUP + WINDOW {
        std::thread::sleep(Duration::from_millis(500));
        if t0.elapsed() > WARMUP {
            rss = rss.max(rss_mib(child.id()));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let from = t0 + WARMUP;
    let lines = lines.lock().unwrap();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut lat = Vec::new();
    let mut inf = Vec::new();
    for (at, l) in lines.iter().filter(|(at, _)| *at >= from) {
        let _ = at;
        if l.contains("camera health") {
            let cam =
                field(l, "camera").and_then(|c| c.trim_start_matches("cam").parse::<usize>().ok());
            let fps = field(l, "analysed_fps").and_then(|v| v.parse::<f64>().ok());
            if let (Some(c), Some(f)) = (cam, fps) {
                if c < n {
                    per[c].push(f);
                }
            }
            if let Some(v) = field(l, "latency_ms").and_then(|v| v.parse::<f64>().ok()) {
                if v > 0.0 {
                    lat.push(v);
                }
            }
        }
        if l.contains("detector health") {
            if let Some(v) = field(l, "inferences_per_s").and_then(|v| v.parse::<f64>().ok()) {
                inf.push(v);
            }
        }
    }
    Outcome {
        per_camera: per
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .collect(),
        latency_ms: median(lat),
        rss_mib: rss,
        inferences: median(inf),
    }
}

fn python() -> PathBuf {
    workspace_root().join(".deps/bench-venv/bin/python")
}

/// The Python reference: `n` processes on `url`.
fn run_python(url: &str, n: usize) -> Outcome {
    let secs = (WARMUP + WINDOW).as_secs_f64() + 2.0;
    let script = workspace_root().join("benches/python/reference.py");
    let model = workspace_root().join("models/nanodet_g_416_coco.onnx");
    let mut kids: Vec<(Child, Lines)> = (0..n)
        .map(|_| {
            let mut c = Command::new(python())
                .arg(&script)
                .arg(url)
                .arg(&model)
                .arg(TARGET_FPS.to_string())
                .arg(secs.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the reference's venv (deploy/bench-setup.sh)");
            let l = collect(c.stdout.take().unwrap());
            (c, l)
        })
        .collect();
    let t0 = Instant::now();
    let mut rss: f64 = 0.0;
    while t0.elapsed() < WARMUP + WINDOW {
        std::thread::sleep(Duration::from_millis(500));
        if t0.elapsed() > WARMUP {
            rss = rss.max(kids.iter().map(|(c, _)| rss_mib(c.id())).sum());
        }
    }
    let mut per = Vec::new();
    let mut lat = Vec::new();
    let mut lag_growth: f64 = 0.0;
    for (c, lines) in &mut kids {
        let _ = c.kill();
        let _ = c.wait();
        let lines = lines.lock().unwrap();
        let at = |when: Instant| {
            lines
                .iter()
                .rev()
                .filter(|(t, _)| *t <= when)
                .find_map(|(t, l)| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    Some((
                        *t,
                        v["detected"].as_f64()?,
                        v["latency_ms"].as_f64(),
                        v["lag_s"].as_f64().unwrap_or(0.0),
                    ))
                })
        };
        let (a, b) = (at(t0 + WARMUP), at(t0 + WARMUP + WINDOW));
        if let (Some(a), Some(b)) = (a, b) {
            let secs = b.0.duration_since(a.0).as_secs_f64().max(1.0);
            // Detecting 5 frames a second while falling behind the stream is not keeping up.
            let rate = if b.3 - a.3 > 1.0 {
                0.0
            } else {
                (b.1 - a.1) / secs
            };
            per.push(rate);
            lat.extend(b.2);
            lag_growth = lag_growth.max(b.3 - a.3);
        }
    }
    if lag_growth > 1.0 {
        eprintln!("  (python fell {lag_growth:.1} s further behind its streams during the window)");
    }
    Outcome {
        per_camera: per,
        latency_ms: median(lat),
        rss_mib: rss,
        inferences: 0.0,
    }
}

/// The largest N (up to `max`) for which `run(n)` is sustained: doubling, then bisecting.
fn largest(
    max: usize,
    mut run: impl FnMut(usize) -> Outcome,
    label: &str,
) -> (usize, Vec<(usize, Outcome)>) {
    let mut seen: Vec<(usize, Outcome)> = Vec::new();
    let mut check = |n: usize, seen: &mut Vec<(usize, Outcome)>| {
        let o = run(n);
        let ok = o.sustained(n);
        eprintln!(
            "  {label} N={n}: per camera {:?} fps, latency {:.0} ms, RSS {:.0} MiB, inferences {:.1}/s -> {}",
            o.per_camera.iter().map(|f| (f * 10.0).round() / 10.0).collect::<Vec<_>>(),
            o.latency_ms,
            o.rss_mib,
            o.inferences,
            if ok { "sustained" } else { "not sustained" }
        );
        seen.push((n, o));
        ok
    };
    let (mut good, mut bad) = (0usize, max + 1);
    let mut n = 1;
    while n <= max {
        if check(n, &mut seen) {
            good = n;
            n *= 2;
        } else {
            bad = n;
            break;
        }
    }
    if good == 0 {
        return (0, seen);
    }
    if bad > max && good < max {
        // Doubling went past the cap while still sustained: try the cap itself.
        if check(max, &mut seen) {
            return (max, seen);
        }
        bad = max;
    }
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if check(mid, &mut seen) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    (good, seen)
}

/// A quiet site: the generated scenario `benches/quiet_site.toml`.
fn quiet_clip() -> PathBuf {
    let root = workspace_root();
    let dirs = ioc_eval::eval::Dirs::under(&root);
    let s = ioc_eval::scenario::Scenario::load(&root.join("benches/quiet_site.toml")).unwrap();
    let mut det = ioc_eval::eval::load_asset_detector(&dirs.model).unwrap();
    let assets =
        ioc_eval::assets::Assets::load_or_build(&dirs.footage, &dirs.assets, &mut det).unwrap();
    ioc_eval::generate::generate(&s, &assets, &dirs.clips)
        .unwrap()
        .clip
}

fn bench_d() {
    println!("## (d) cameras per box at {TARGET_FPS} detection fps: ioc-agent (shipped defaults) vs the Python reference");
    println!("| footage | ioc-agent: largest N sustained | Python: largest N sustained | ratio | ioc-agent RSS at 4 cameras (MiB) | Python RSS at its largest N (MiB) |");
    println!("|---|---|---|---|---|---|");
    let quiet = quiet_clip();
    // BENCH_FOOTAGE=busy or BENCH_FOOTAGE=quiet runs one of the two.
    let only = std::env::var("BENCH_FOOTAGE").unwrap_or_default();
    for (name, file) in [
        ("vtest (busy)", footage("vtest_h264.mp4")),
        ("quiet site", quiet),
    ] {
        if !only.is_empty() && !name.contains(only.as_str()) {
            continue;
        }
        let server =
            RtspServer::start(&[format!("/cam={}:h264:loop", file.display())], 0, None).unwrap();
        let url = server.url("/cam");
        let (py, py_seen) = largest(32, |n| run_python(&url, n), &format!("python {name}"));
        // BENCH_DETECT adds `[detect]` keys to the agent's config, e.g.
        // `precision = "auto"` and `input_size = "auto"` for INT8 at the camera's shape.
        let detect = std::env::var("BENCH_DETECT").unwrap_or_default();
        let (ours, seen) = largest(
            32,
            |n| run_agent(&url, n, &detect),
            &format!("agent {name}"),
        );
        let rss4 = seen
            .iter()
            .find(|(n, _)| *n == 4)
            .map(|(_, o)| o.rss_mib)
            .unwrap_or_else(|| run_agent(&url, 4, "").rss_mib);
        let py_rss = py_seen
            .iter()
            .find(|(n, _)| *n == py)
            .map_or(0.0, |(_, o)| o.rss_mib);
        println!(
            "| {name} | {ours} | {py} | {:.2} | {rss4:.0} | {py_rss:.0} |",
            ours as f64 / py.max(1) as f64
        );
    }
}

/// Bare ONNX Runtime loops: `workers` sessions of `threads` intra-op threads running back
/// to back in parallel for `secs`, on the input shape the agent gives vtest's 768×576
/// frames (the shipped config: precision and shape as the agent picks them); inferences
/// per second, all together.
const VTEST_SIZE: (u32, u32) = (768, 576);

fn bare_loop(workers: usize, threads: usize, spinning: bool, secs: f64) -> f64 {
    let start = Arc::new(std::sync::Barrier::new(workers));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut d = Detector::load(
                    &model_manifest(),
                    DetectorConfig {
                        intra_threads: threads,
                        spinning,
                        ..DetectorConfig::default()
                    },
                )
                .unwrap();
                d.run_session_only(VTEST_SIZE).unwrap();
                start.wait();
                let t0 = Instant::now();
                let mut n = 0u64;
                while t0.elapsed().as_secs_f64() < secs {
                    d.run_session_only(VTEST_SIZE).unwrap();
                    n += 1;
                }
                n as f64 / t0.elapsed().as_secs_f64()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Cameras that offer half as much again as `bare` inferences/s at the target rate.
fn busy_cameras(bare: f64) -> usize {
    ((1.5 * bare / TARGET_FPS).ceil() as usize).clamp(4, 64)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn bench_e() {
    let size = ioc_agent::config::DetectConfig::default().pool_size(cores());
    println!("## (e) detection throughput with every camera busy vs bare ONNX Runtime loops on the same cores");
    println!("| pool (workers × threads) | cameras | agent, every camera busy (inferences/s) | bare loops, same pool (inferences/s) | ratio |");
    println!("|---|---|---|---|---|");
    let server = RtspServer::start(
        &[format!(
            "/cam={}:h264:loop",
            footage("vtest_h264.mp4").display()
        )],
        0,
        None,
    )
    .unwrap();
    let url = server.url("/cam");
    // Enough cameras to offer half as much again as the bare loops can detect, whatever the
    // machine: the agent must be busy, not idling at its target rate.
    let n = busy_cameras(bare_loop(size.workers, size.threads, false, 10.0));
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        bare.push(bare_loop(size.workers, size.threads, false, 15.0));
        // Motion gating off: every frame offered is a frame to detect.
        ours.push(run_agent(&url, n, "[detect.motion]\nenabled = false").inferences);
    }
    let (o, b) = (median(ours), median(bare));
    println!(
        "| {} × {} | {n} | {o:.1} | {b:.1} | {:.2} |",
        size.workers,
        size.threads,
        o / b
    );
}

fn bench_f() {
    println!(
        "## (f) pool sizing on {} cores: bare inferences/s, and the agent with every camera busy",
        cores()
    );
    println!("| workers × threads | spin-waiting | bare loops (inferences/s) | agent, every vtest camera busy at 5 fps (inferences/s) | ratio |");
    println!("|---|---|---|---|---|");
    let server = RtspServer::start(
        &[format!(
            "/cam={}:h264:loop",
            footage("vtest_h264.mp4").display()
        )],
        0,
        None,
    )
    .unwrap();
    let url = server.url("/cam");
    let c = cores();
    // Busy for the fastest pool: more than every pool can detect.
    let n = busy_cameras(bare_loop(c, 1, false, 10.0));
    let mut configs = vec![(1, c, false), (1, c, true), (c, 1, false), (c, 1, true)];
    if c >= 4 {
        configs.push((c / 2, 2, false));
    }
    configs.push((1, 1, false));
    for (w, t, spin) in configs {
        let bare = bare_loop(w, t, spin, 10.0);
        let extra = format!(
            "workers = {w}\nintra_threads = {t}\nort_spinning = {spin}\n[detect.motion]\nenabled = false"
        );
        let o = run_agent(&url, n, &extra);
        println!(
            "| {w} × {t} | {} | {bare:.1} | {:.1} | {:.2} |",
            if spin { "on" } else { "off" },
            o.inferences,
            o.inferences / bare
        );
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |k: &str| which.is_empty() || which.iter().any(|w| w == k);
    ioc_agent::decode::init().unwrap();
    if run("f") {
        bench_f();
    }
    if run("e") {
        bench_e();
    }
    if run("d") {
        bench_d();
    }
}
