//! `ioc-eval`: glue only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ioc_eval::eval::{evaluate, table, Dirs, EvalOptions};
use ioc_eval::simulate::Infer;

#[derive(Parser)]
#[command(
    name = "ioc-eval",
    version,
    about = "Scenario clips with exact ground truth, and the agent's quality measured on them"
)]
struct Cli {
    /// Workspace root (default: the current directory).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Makes the clips and truth of scenario files (cached in .deps/scenarios/).
    Generate {
        /// A scenario file or a folder of them.
        path: PathBuf,
        /// Also write these frames (seconds) as PNG with the truth boxes drawn.
        #[arg(long, value_delimiter = ',')]
        preview: Vec<f64>,
        /// Where previews go.
        #[arg(long, default_value = "scenario-preview")]
        out: PathBuf,
    },
    /// How well looks tell objects apart: the same object at two times against two objects
    /// of one class, on every scenario's clip.
    Looks {
        /// A scenario file or a folder of them.
        path: PathBuf,
    },
    /// Runs the agent's pipeline on every scenario and scores it.
    Run {
        /// A scenario file or a folder of them.
        path: PathBuf,
        /// Detection rates, e.g. `5,10`.
        #[arg(long, value_delimiter = ',', default_value = "5,10")]
        fps: Vec<f64>,
        /// CPU hog threads for each pass, e.g. `0,2` (0 = unloaded).
        #[arg(long, value_delimiter = ',', default_value = "0")]
        load: Vec<usize>,
        /// Inference time: `measured` (this machine now), `measured*1.5`, or fixed `80ms`.
        #[arg(long, default_value = "measured")]
        infer: String,
        /// Parallel detector workers.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Turn motion gating off.
        #[arg(long)]
        no_motion: bool,
        /// Only the scenarios marked `quick = true`.
        #[arg(long)]
        quick: bool,
        /// Write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Print every rule event, and the tracks once a second.
        #[arg(long, short)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,ort=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match real_main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_infer(s: &str) -> anyhow::Result<Infer> {
    if s == "measured" {
        return Ok(Infer::Measured(1.0));
    }
    if let Some(k) = s.strip_prefix("measured*") {
        let k: f64 = k
            .parse()
            .with_context(|| format!("--infer {s:?}: factor"))?;
        return Ok(Infer::Measured(k));
    }
    if let Some(ms) = s.strip_suffix("ms") {
        let ms: f64 = ms
            .parse()
            .with_context(|| format!("--infer {s:?}: milliseconds"))?;
        return Ok(Infer::Fixed(Duration::from_secs_f64(ms / 1000.0)));
    }
    anyhow::bail!("--infer {s:?}: expected measured, measured*K or a time like 80ms")
}

/// The pictures scenarios are drawn from (made once, cached).
fn load_assets(dirs: &Dirs) -> anyhow::Result<ioc_eval::assets::Assets> {
    let mut detector = ioc_eval::eval::load_asset_detector(&dirs.model)?;
    ioc_eval::assets::Assets::load_or_build(&dirs.footage, &dirs.assets, &mut detector)
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = match cli.root {
        Some(r) => r,
        None => std::env::current_dir()?,
    };
    let dirs = Dirs::under(&root);
    match cli.command {
        Command::Generate { path, preview, out } => {
            let scenarios = ioc_eval::scenario::Scenario::load_all(&path)?;
            let assets = load_assets(&dirs)?;
            for s in &scenarios {
                let g = ioc_eval::generate::generate(s, &assets, &dirs.clips)?;
                println!(
                    "{}: {} ({} objects, {} frames); {} incidents expected",
                    s.name,
                    g.clip.display(),
                    g.truth.objects.len(),
                    g.truth.frames.len(),
                    g.truth.incidents.len()
                );
                for e in &g.truth.incidents {
                    println!(
                        "  {:>6.1}s..{:>6.1}s  due {:>6.1}s  {} {}{}",
                        e.start_sec,
                        e.end_sec,
                        e.due_sec,
                        e.kind.as_str(),
                        e.rule,
                        e.direction
                            .map(|d| format!(" {d:?}"))
                            .or(e.cause.map(|c| format!(" {c:?}")))
                            .unwrap_or_default()
                    );
                }
                for (l, c) in &g.truth.line_counts {
                    println!("  line {l}: in {} out {}", c[0], c[1]);
                }
                if !preview.is_empty() {
                    std::fs::create_dir_all(&out)?;
                    ioc_eval::render::write_previews(s, &assets, &g.truth, &preview, &out)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Looks { path } => {
            let scenarios = ioc_eval::scenario::Scenario::load_all(&path)?;
            let assets = load_assets(&dirs)?;
            let mut all = ioc_eval::looks::LookStats::default();
            for s in &scenarios {
                let g = ioc_eval::generate::generate(s, &assets, &dirs.clips)?;
                let actors = ioc_eval::world::actors(s, &assets);
                let sprite = |id: u32| {
                    actors
                        .iter()
                        .find(|a| a.id == id)
                        .map_or(usize::MAX, |a| a.sprite)
                };
                let samples = ioc_eval::looks::sample_clip(&g.clip, &g.truth, sprite)?;
                let mut one = ioc_eval::looks::LookStats::default();
                one.add(&samples);
                println!(
                    "{:<28} {} looks, {} same-object pairs, {} two-object pairs",
                    s.name,
                    samples.len(),
                    one.same.len(),
                    one.different.len()
                );
                all.add(&samples);
            }
            println!("\n{}", all.table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            path,
            fps,
            load,
            infer,
            workers,
            no_motion,
            quick,
            json,
            verbose,
        } => {
            let motion = ioc_agent::motion::MotionConfig {
                enabled: !no_motion,
                ..Default::default()
            };
            let opts = EvalOptions {
                fps,
                loads: load,
                infer: parse_infer(&infer)?,
                workers,
                motion,
                quick,
                verbose,
            };
            let report = evaluate(&path, &dirs, &opts)?;
            println!("{}", table(&report));
            if let Some(j) = json {
                std::fs::write(&j, serde_json::to_string_pretty(&report)?)
                    .with_context(|| j.display().to_string())?;
                eprintln!("wrote {}", j.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
