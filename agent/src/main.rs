//! `ioc-agent` command line: glue only; the work is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ioc_agent::config::AgentConfig;

#[derive(Parser)]
#[command(
    name = "ioc-agent",
    version,
    about = "ioc-edge site agent: cameras -> detections -> incidents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to an RTSP camera and report codec, resolution, frame rate and decode speed.
    Probe {
        /// rtsp://[user:pass@]host[:port]/path
        url: String,
        /// How long to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// RTP over UDP instead of TCP interleaved.
        #[arg(long)]
        udp: bool,
        /// User name (instead of putting it in the URL).
        #[arg(long)]
        username: Option<String>,
        /// Password; prefer the IOC_RTSP_PASSWORD environment variable so it stays out of shell history.
        #[arg(long, env = "IOC_RTSP_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Limit for each RTSP request, seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Detect objects in an image or a video file.
    Detect {
        /// Image (jpg, png, ...) or video (any container GStreamer can demux).
        input: PathBuf,
        /// Model manifest; default: $IOC_MODEL, ./models/nanodet-g-416.toml, /usr/share/ioc-edge/models/nanodet-g-416.toml.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Write the image (or the video frame with the most detections) with boxes drawn.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Minimum score.
        #[arg(long, default_value_t = 0.35)]
        score: f32,
        /// Video: frames per second to detect on (0 = every frame).
        #[arg(long, default_value_t = 5.0)]
        fps: f64,
        /// Which file of the model: float, int8 or auto (INT8 where the CPU has fast INT8).
        #[arg(long, default_value = "float", value_parser = parse_precision)]
        precision: ioc_detect::PrecisionChoice,
        /// The model input's shape: model (its own size), auto (the picture's aspect ratio)
        /// or WIDTHxHEIGHT.
        #[arg(long, default_value = "model")]
        input_size: ioc_detect::InputSize,
        /// Print one JSON object per frame.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file: every error names its key; unknown keys are errors.
    CheckConfig {
        /// The agent config (TOML).
        file: PathBuf,
        /// Skip checks against this machine (model file, GStreamer elements).
        #[arg(long)]
        no_environment: bool,
    },
    /// Run the agent.
    Run {
        /// The agent config (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Seconds between health summaries in the log.
        #[arg(long, default_value_t = 10)]
        summary_every: u64,
    },
}

/// glibc's malloc gives each thread that allocates concurrently an arena of its own, up to 8 per
/// core; the agent's threads (decoders, detector workers, the runtime) mostly allocate at
/// start-up, so the extra arenas only hold memory. Two measured 268–270 → 242–243 MiB RSS with
/// 4 cameras and the same detection rate (benches/README.md). `MALLOC_ARENA_MAX` still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    ioc_base::logs::init("info,retina=warn,ort=warn");
    match real_main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Probe {
            url,
            seconds,
            udp,
            username,
            password,
            timeout,
            json,
        } => {
            let target =
                ioc_agent::probe::target(&url, username.as_deref(), password.as_deref(), udp)
                    .map_err(|e| anyhow::anyhow!("url: {e}"))?;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(ioc_agent::probe::probe(
                &target,
                "avdec_h264",
                "avdec_h265",
                Duration::from_secs_f64(seconds),
                Duration::from_secs_f64(timeout),
            ))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("url:          {}", r.url);
                println!("codec:        {}", r.codec);
                match r.resolution {
                    Some((w, h)) => println!("resolution:   {w}x{h}"),
                    None => println!("resolution:   unknown"),
                }
                println!(
                    "declared fps: {}",
                    r.declared_fps
                        .map(|f| format!("{f:.2}"))
                        .unwrap_or_else(|| "not stated".into())
                );
                println!("received fps: {:.2}", r.received_fps);
                println!("decoded fps:  {:.2}", r.decoded_fps);
                println!("bit rate:     {:.0} kbit/s", r.kbit_per_s);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect {
            input,
            model,
            out,
            score,
            fps,
            precision,
            input_size,
            json,
        } => {
            let model = find_model(model)?;
            let mut dc = ioc_detect::DetectorConfig {
                precision,
                input_size,
                ..Default::default()
            };
            dc.decode.score_threshold = score;
            let mut detector = ioc_detect::Detector::load(&model, dc)?;
            let pick = detector.precision();
            tracing::info!(
                file = %detector.model_path().display(),
                precision = pick.precision.as_str(),
                why = %pick.reason,
                "model loaded"
            );
            let print = |f: &ioc_agent::offline::FrameOut| {
                if json {
                    println!("{}", serde_json::to_string(f).unwrap_or_default());
                } else {
                    for d in &f.detections {
                        println!(
                            "frame {:>5} {:>8.2}s  {:<14} {:.2}  [{:.0}, {:.0}, {:.0}, {:.0}]",
                            f.frame,
                            f.pts_s,
                            d.class,
                            d.score,
                            d.bbox[0],
                            d.bbox[1],
                            d.bbox[2],
                            d.bbox[3]
                        );
                    }
                }
            };
            if ioc_agent::offline::is_still_image(&input) {
                let f = ioc_agent::offline::detect_image(&mut detector, &input, out.as_deref())?;
                print(&f);
            } else {
                ioc_agent::decode::init()?;
                let n = ioc_agent::offline::detect_video(
                    &mut detector,
                    &input,
                    fps,
                    out.as_deref(),
                    print,
                )?;
                eprintln!("{n} frames");
            }
            if let Some(o) = out {
                eprintln!("wrote {}", o.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig {
            file,
            no_environment,
        } => {
            // Every problem in one run: the config's own, then the machine's.
            let (cfg, mut errors) = AgentConfig::load_with_problems(&file)?;
            if !no_environment {
                ioc_agent::decode::init()?;
                errors.extend(cfg.check_environment());
            }
            if !errors.is_empty() {
                eprintln!("{}: {} problem(s)", file.display(), errors.len());
                for e in errors {
                    eprintln!("  {e}");
                }
                return Ok(ExitCode::FAILURE);
            }
            for w in cfg.warnings() {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok (agent {:?}, {} cameras)",
                file.display(),
                cfg.agent.id,
                cfg.cameras.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            summary_every,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("io")
                .build()?;
            rt.block_on(ioc_agent::site::run(
                &config,
                Duration::from_secs(summary_every.max(1)),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find_model(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag.or_else(|| std::env::var_os("IOC_MODEL").map(PathBuf::from)) {
        return Ok(p);
    }
    let candidates = [
        "models/nanodet-g-416.toml",
        "/usr/share/ioc-edge/models/nanodet-g-416.toml",
    ];
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_owned)
        .with_context(|| {
            format!(
                "no model manifest given (--model or IOC_MODEL) and none at {}",
                candidates.join(", ")
            )
        })
}

fn parse_precision(s: &str) -> Result<ioc_detect::PrecisionChoice, String> {
    match s {
        "auto" => Ok(ioc_detect::PrecisionChoice::Auto),
        "float" => Ok(ioc_detect::PrecisionChoice::Float),
        "int8" => Ok(ioc_detect::PrecisionChoice::Int8),
        _ => Err(format!("{s:?} is not auto, float or int8")),
    }
}
