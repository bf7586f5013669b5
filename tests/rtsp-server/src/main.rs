//! `ioc-rtsp-server`: serves footage files as live RTSP cameras (tests, demo, benchmarks).
//!
//! `ioc-rtsp-server --port 8554 --mount /vtest=.deps/footage/vtest_h264.mp4:h264:loop`
//! prints `listening on rtsp://127.0.0.1:PORT` once it accepts connections.

use std::io::Write;

use clap::Parser;
use gstreamer::glib;
use gstreamer_rtsp_server::prelude::*;

#[derive(Parser)]
#[command(about = "Serve footage files as live RTSP cameras")]
struct Args {
    /// Address to bind; loopback unless you mean otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// Port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// PATH=FILE:CODEC[:loop], CODEC h264 or h265; repeatable.
    #[arg(long = "mount", required = true)]
    mounts: Vec<String>,
    /// Require this user (with --password) by Basic auth.
    #[arg(long)]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, env = "IOC_RTSP_SERVER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mounts = args
        .mounts
        .iter()
        .map(|m| ioc_rtsp_server::parse_mount(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let auth = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
        (None, None) => None,
        _ => anyhow::bail!("--user and --password go together"),
    };
    let server = ioc_rtsp_server::build(&args.address, args.port, &mounts, auth)?;
    let main_loop = glib::MainLoop::new(None, false);
    let _source = server.attach(None)?;
    println!(
        "listening on rtsp://{}:{}",
        args.address,
        server.bound_port()
    );
    std::io::stdout().flush()?;
    main_loop.run();
    Ok(())
}
