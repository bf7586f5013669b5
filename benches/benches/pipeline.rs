//! Whole-pipeline benchmarks on real footage, each against a reference run in
//! the same process (see benches/README.md for the method and figures).
//!
//! (a) decode + detect frames/s of the agent pipeline vs a bare ONNX Runtime
//!     session loop on the same model and threads;
//! (b) decode-only frames/s of the agent's stream pipeline (appsrc fed from
//!     memory, as from RTSP; frames leave in the decoder's YUV) vs
//!     `gst-launch-1.0 ... ! fakesink sync=false` doing the same decode;
//! (c) CPU and RSS of `ioc-agent run` on one live 1080p25 RTSP camera at 5
//!     detection fps.
//!
//! `cargo bench -p ioc-benches --bench pipeline [-- a|b|c]`; `ROUNDS=5` for more rounds.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioc_agent::clock::{ClockMode, Epoch, SessionClock};
use ioc_agent::decode::{Codec, DecodeSettings, Pipeline};
use ioc_agent::detect::{CameraPlan, DetectorPool, QueuePolicy, Scheduler};
use ioc_agent::motion::{Motion, MotionConfig};
use ioc_detect::{Detector, DetectorConfig};
use ioc_rtsp_server as rtsp_server;
use ioc_testkit::{footage, model_manifest, workspace_binary, RtspServer};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

fn detector() -> Detector {
    Detector::load(&model_manifest(), DetectorConfig::default()).expect("model")
}

fn settings(fps: f64) -> DecodeSettings {
    DecodeSettings {
        decoder: "avdec_h264".into(),
        fps,
        realtime: false,
        threads: 0,
    }
}

fn flat_clock() -> Arc<SessionClock> {
    Arc::new(SessionClock::new(
        Epoch::now(),
        ClockMode::Flat { offset_sec: 0.0 },
        0.0,
    ))
}

/// (a) Pipeline: file -> decode -> every frame detected, frames/s over the first `limit` frames.
fn pipeline_detect_fps(file: &Path, limit: u64) -> f64 {
    let plan = CameraPlan {
        target_fps: 1000.0,
        motion: MotionConfig {
            enabled: false,
            ..MotionConfig::default()
        },
    };
    let sched = Scheduler::new(vec![plan], QueuePolicy::Block);
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(Mutex::new(None::<Instant>));
    let (d, f) = (done.clone(), finished.clone());
    let pool = DetectorPool::spawn(
        vec![detector()],
        sched.clone(),
        None,
        Arc::new(move |_| {
            if d.fetch_add(1, Ordering::Relaxed) + 1 == limit {
                *f.lock().unwrap() = Some(Instant::now());
            }
        }),
    )
    .unwrap();
    let q = sched.clone();
    let t0 = Instant::now();
    let pushed = Arc::new(AtomicU64::new(0));
    let p2 = pushed.clone();
    let pipeline = Pipeline::for_file(
        file,
        &settings(0.0),
        Default::default(),
        flat_clock(),
        Box::new(move |frame| {
            if p2.fetch_add(1, Ordering::Relaxed) < limit {
                q.push(ioc_agent::detect::DetectJob {
                    camera: 0,
                    frame,
                    motion: Motion::default(),
                    queued_at: Instant::now(),
                });
            }
        }),
    )
    .unwrap();
    while finished.lock().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = finished
        .lock()
        .unwrap()
        .unwrap()
        .duration_since(t0)
        .as_secs_f64();
    drop(pipeline);
    pool.shutdown();
    limit as f64 / secs
}

/// (a) Reference: the same session, same threads, run `limit` times on a ready tensor of
/// the shape a `source` frame gets.
fn raw_session_fps(limit: u64, source: (u32, u32)) -> f64 {
    let mut d = detector();
    let t0 = Instant::now();
    for _ in 0..limit {
        d.run_session_only(source).unwrap();
    }
    limit as f64 / t0.elapsed().as_secs_f64()
}

/// (b) Agent stream pipeline fed from memory; returns decoded frames/s.
fn ours_decode_fps(clip: &rtsp_server::Clip, codec: Codec, fps: f64) -> f64 {
    let mut s = settings(fps);
    s.decoder = match codec {
        Codec::H264 => "avdec_h264".into(),
        Codec::H265 => "avdec_h265".into(),
    };
    let p = Pipeline::for_stream(
        codec,
        &s,
        Default::default(),
        flat_clock(),
        Box::new(|_| {}),
    )
    .unwrap();
    let t0 = Instant::now();
    for (i, b) in clip.frames.iter().enumerate() {
        // Keep the queue short instead of letting the live-camera policy drop GOPs.
        while p.queued() >= 32 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let data = b.map_readable().unwrap().as_slice().to_vec();
        let key = !b.flags().contains(gstreamer::BufferFlags::DELTA_UNIT);
        p.push(data, clip.frame_duration * i as u32, key).unwrap();
    }
    p.end_of_stream();
    p.wait(Some(Duration::from_secs(120))).unwrap();
    let n = p.stats().decoded.load(Ordering::Relaxed);
    assert!(
        n as usize + 2 >= clip.frames.len(),
        "decoded {n} of {}",
        clip.frames.len()
    );
    n as f64 / t0.elapsed().as_secs_f64()
}

/// (b) Reference: gst-launch doing the same decode of every frame.
fn gst_launch_fps(file: &Path, codec: Codec, frames: usize) -> f64 {
    let (parse, dec) = match codec {
        Codec::H264 => ("h264parse", "avdec_h264"),
        Codec::H265 => ("h265parse", "avdec_h265"),
    };
    let t0 = Instant::now();
    let st = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(
            format!("filesrc location={} ! qtdemux ! {parse} ! {dec} output-corrupt=false ! fakesink sync=false", file.display())
                .split_whitespace(),
        )
        .status()
        .expect("gst-launch-1.0");
    assert!(st.success());
    frames as f64 / t0.elapsed().as_secs_f64()
}

fn bench_a() {
    println!("## (a) decode + detect vs a bare ORT session loop (1 intra-op thread)");
    println!("| footage | pipeline fps (median) | bare session fps (median) | ratio |");
    println!("|---|---|---|---|");
    for (name, limit, source) in [
        ("vtest_h264.mp4", 60u64, (768, 576)),
        ("synthetic_1080p_h264.mp4", 60, (1920, 1080)),
        ("synthetic_1080p_h265.mp4", 60, (1920, 1080)),
    ] {
        let file = footage(name);
        let (mut ours, mut reference) = (Vec::new(), Vec::new());
        for _ in 0..rounds() {
            reference.push(raw_session_fps(limit, source));
            ours.push(pipeline_detect_fps(&file, limit));
        }
        let (o, r) = (median(ours), median(reference));
        println!("| {name} | {o:.2} | {r:.2} | {:.3} |", o / r);
    }
}

fn bench_b() {
    println!("## (b) decode-only vs gst-launch-1.0 on the same stream");
    println!("| footage | agent, every frame handed on (fps) | agent at detect.fps=5 (fps) | gst-launch decode only (fps) | ratio (every frame) | ratio (5 fps) |");
    println!("|---|---|---|---|---|---|");
    for (name, codec) in [
        ("vtest_h264.mp4", Codec::H264),
        ("synthetic_1080p_h264.mp4", Codec::H264),
        ("synthetic_1080p_h265.mp4", Codec::H265),
    ] {
        let file = footage(name);
        let tc = match codec {
            Codec::H264 => rtsp_server::Codec::H264,
            Codec::H265 => rtsp_server::Codec::H265,
        };
        let clip = rtsp_server::load_clip(&file, tc).unwrap();
        let n = clip.frames.len();
        let (mut o_all, mut o_5, mut r_dec) = (vec![], vec![], vec![]);
        for _ in 0..rounds() {
            r_dec.push(gst_launch_fps(&file, codec, n));
            o_all.push(ours_decode_fps(&clip, codec, 0.0));
            o_5.push(ours_decode_fps(&clip, codec, 5.0));
        }
        let (oa, o5, rd) = (median(o_all), median(o_5), median(r_dec));
        println!(
            "| {name} | {oa:.1} | {o5:.1} | {rd:.1} | {:.3} | {:.3} |",
            oa / rd,
            o5 / rd
        );
    }
}

/// utime + stime of `pid` in seconds, and VmRSS in MiB.
fn proc_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, rss_kb / 1024.0)
}

/// Median CPU (% of one core) over four 5 s windows after a 5 s warm-up, and max RSS in MiB.
fn measure(child: &mut std::process::Child) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs(5)); // connect, load, warm up
    let mut cpu = Vec::new();
    let mut rss_max: f64 = 0.0;
    let (mut last, _) = proc_usage(child.id());
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(5));
        let (now, rss) = proc_usage(child.id());
        cpu.push((now - last) / 5.0 * 100.0);
        rss_max = rss_max.max(rss);
        last = now;
    }
    let _ = child.kill();
    let _ = child.wait();
    (median(cpu), rss_max)
}

fn bench_c() {
    println!("## (c) one live 1080p25 RTSP camera: ioc-agent run at detect.fps = 5 vs gst-launch decoding the same stream");
    println!("| stream | ioc-agent CPU % | ioc-agent RSS MiB | gst-launch decode-only CPU % | gst-launch RSS MiB | agent minus decode, CPU % | 5 bare inferences/s, CPU % |");
    println!("|---|---|---|---|---|---|---|");
    for (name, codec) in [
        ("synthetic_1080p_h264.mp4", "h264"),
        ("synthetic_1080p_h265.mp4", "h265"),
    ] {
        let server = RtspServer::start(
            &[format!("/cam={}:{codec}:loop", footage(name).display())],
            0,
            None,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("agent.toml");
        std::fs::write(
            &cfg,
            format!(
                "[agent]\nid = \"bench\"\nlog_detections = false\n[detect]\nmodel = \"{}\"\nfps = 5\n[[cameras]]\nid = \"cam\"\nurl = \"{}\"\n",
                model_manifest().display(),
                server.url("/cam")
            ),
        )
        .unwrap();
        let mut agent = Command::new(workspace_binary("ioc-agent"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let (agent_cpu, agent_rss) = measure(&mut agent);
        let launch = format!(
            "rtspsrc location={} protocols=tcp latency=0 ! rtp{codec}depay ! {codec}parse ! avdec_{codec} ! fakesink sync=false",
            server.url("/cam")
        );
        let mut reference = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(launch.split_whitespace())
            .spawn()
            .unwrap();
        let (ref_cpu, ref_rss) = measure(&mut reference);
        // What 5 inferences a second cost alone, for comparison.
        let raw = raw_session_fps(20, (1920, 1080));
        println!(
            "| {name} | {agent_cpu:.1} | {agent_rss:.0} | {ref_cpu:.1} | {ref_rss:.0} | {:.1} | {:.1} |",
            agent_cpu - ref_cpu,
            5.0 / raw * 100.0
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
    if run("a") {
        bench_a();
    }
    if run("b") {
        bench_b();
    }
    if run("c") {
        bench_c();
    }
}
