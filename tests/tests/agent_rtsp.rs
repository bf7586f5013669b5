//! End to end: a real RTSP server (gst-rtsp-server, separate process) serving
//! real footage, pulled by the agent's real camera loop, decoded by GStreamer
//! and run through the real ONNX model.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioc_agent::agent::{load_detectors, Agent};
use ioc_agent::config::AgentConfig;
use ioc_agent::detect::{FrameResult, Outcome};
use ioc_agent::source::rtsp::{self, RtspTarget, SourceError};
use ioc_agent::source::CameraState;
use ioc_testkit::{footage, free_port, model_manifest, RtspServer};

/// The tests share two cores with a detector each; run them one at a time
/// (an async mutex: the guard is held across awaits, each test has its own runtime).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(cameras: &str, extra: &str) -> AgentConfig {
    let text = format!(
        r#"
[agent]
id = "test-site"
log_detections = false
[detect]
model = "{model}"
fps = 5
[reconnect]
initial_backoff_ms = 200
max_backoff_ms = 1000
connect_timeout_ms = 3000
idle_timeout_ms = 2000
{extra}
{cameras}
"#,
        model = model_manifest().display()
    );
    AgentConfig::parse(&text).unwrap_or_else(|e| panic!("test config: {e:?}"))
}

fn camera(id: &str, url: &str, more: &str) -> String {
    format!("[[cameras]]\nid = \"{id}\"\nurl = \"{url}\"\n{more}\n")
}

type Results = Arc<Mutex<Vec<FrameResult>>>;

fn start(cfg: &AgentConfig) -> (Agent, Results) {
    let results: Results = Arc::default();
    let r = results.clone();
    let detectors = load_detectors(cfg).expect("model loads");
    let agent = Agent::start(
        cfg,
        detectors,
        // Frames the model ran on (motion gating may hold still ones).
        move |f| {
            if matches!(f.outcome, Outcome::Detected(_)) {
                r.lock().unwrap().push(f.clone())
            }
        },
        |_| {},
    )
    .expect("agent starts");
    (agent, results)
}

async fn wait_state(agent: &Agent, cam: usize, want: CameraState, within: Duration) -> Duration {
    let t0 = Instant::now();
    let mut rx = agent.cameras[cam].handle.status.clone();
    let r = tokio::time::timeout(within, rx.wait_for(|s| s.state == want)).await;
    let last = agent.cameras[cam].handle.status.borrow().clone();
    assert!(
        r.is_ok(),
        "camera {cam} did not reach {want:?} within {within:?}; last status {last:?}"
    );
    t0.elapsed()
}

/// Waits until `done` holds for the results so far, or `within` passes. Throughput
/// depends on the machine (a slow detector drops the oldest frames, by design), so
/// tests wait for enough frames rather than a fixed time.
async fn wait_results(results: &Results, within: Duration, done: impl Fn(&[FrameResult]) -> bool) {
    let t0 = Instant::now();
    while !done(&results.lock().unwrap()) && t0.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vtest_over_rtsp_finds_people_in_nearly_every_frame() {
    let _g = SERIAL.lock().await;
    let server = RtspServer::start(
        &[format!(
            "/vtest={}:h264",
            footage("vtest_h264.mp4").display()
        )],
        0,
        None,
    )
    .unwrap();
    let cfg = config(&camera("vtest", &server.url("/vtest"), ""), "");
    let (agent, results) = start(&cfg);
    wait_state(&agent, 0, CameraState::Streaming, Duration::from_secs(20)).await;
    // About 12 s at 5 detections per second on an idle machine.
    wait_results(&results, Duration::from_secs(50), |f| f.len() >= 60).await;
    let counters = agent.cameras[0].handle.counters.clone();
    agent
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the agent stops in time");

    let frames = results.lock().unwrap().clone();
    let person = 0u16; // COCO class 0
    let with_person = frames
        .iter()
        .filter(|f| f.detections().iter().any(|d| d.class_id == person))
        .count();
    let persons: usize = frames
        .iter()
        .map(|f| {
            f.detections()
                .iter()
                .filter(|d| d.class_id == person)
                .count()
        })
        .sum();
    let n = frames.len();
    eprintln!("{n} frames detected, {with_person} with a person, {persons} persons in all");
    assert!(n >= 40, "only {n} frames reached the detector in 50 s");
    assert!(
        with_person * 100 >= n * 90,
        "persons in only {with_person} of {n} frames"
    );
    assert!(
        persons as f64 / n as f64 >= 2.5,
        "only {persons} persons in {n} frames (the clip shows about 5 a frame)"
    );
    assert!(
        frames.iter().all(|f| f.frame.size() == (768, 576)),
        "boxes must be in source pixels"
    );
    for f in &frames {
        for d in f.detections() {
            assert!(
                d.bbox.x2 <= 768.0
                    && d.bbox.y2 <= 576.0
                    && d.bbox.x1 >= 0.0
                    && d.bbox.x1 < d.bbox.x2
            );
        }
    }
    // Every received frame was decoded, not only the detected ones.
    let received = counters.received.load(std::sync::atomic::Ordering::Relaxed);
    let decoded = counters
        .decode
        .decoded
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        received >= 100 && decoded * 10 >= received * 8,
        "received {received}, decoded {decoded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_1080p_over_tcp_and_h264_over_udp_stream_together() {
    let _g = SERIAL.lock().await;
    let server = RtspServer::start(
        &[
            format!(
                "/hevc={}:h265:loop",
                footage("synthetic_1080p_h265.mp4").display()
            ),
            format!("/avc={}:h264:loop", footage("vtest_h264.mp4").display()),
        ],
        0,
        None,
    )
    .unwrap();
    // UDP on the smaller stream: retina has no reorder buffer, and a loaded machine
    // overflowing a socket buffer with 1080p key frames would only test the kernel.
    let cams = camera("hevc", &server.url("/hevc"), "")
        + &camera("avc", &server.url("/avc"), "transport = \"udp\"");
    let cfg = config(&cams, "");
    let (agent, results) = start(&cfg);
    wait_state(&agent, 0, CameraState::Streaming, Duration::from_secs(20)).await;
    wait_state(&agent, 1, CameraState::Streaming, Duration::from_secs(20)).await;
    let enough = |f: &[FrameResult]| {
        f.iter().filter(|f| f.camera == 0).count() >= 15
            && f.iter().filter(|f| f.camera == 1).count() >= 15
    };
    wait_results(&results, Duration::from_secs(40), enough).await;
    let hevc = agent.cameras[0].handle.counters.clone();
    agent
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the agent stops in time");
    let frames = results.lock().unwrap().clone();
    let from_hevc: Vec<_> = frames.iter().filter(|f| f.camera == 0).collect();
    let from_avc = frames.iter().filter(|f| f.camera == 1).count();
    assert!(
        from_hevc.len() >= 10 && from_avc >= 10,
        "hevc {} frames, avc {from_avc}",
        from_hevc.len()
    );
    assert!(from_hevc.iter().all(|f| f.frame.size() == (1920, 1080)));
    let received = hevc.received.load(std::sync::atomic::Ordering::Relaxed);
    let decoded = hevc
        .decode
        .decoded
        .load(std::sync::atomic::Ordering::Relaxed);
    // 25 fps for several seconds; every frame decoded even though only 5/s are detected.
    assert!(
        received >= 60 && decoded * 10 >= received * 8,
        "received {received}, decoded {decoded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_reported_and_the_camera_comes_back_without_a_restart() {
    let _g = SERIAL.lock().await;
    let port = free_port();
    let mount = [format!(
        "/vtest={}:h264:loop",
        footage("vtest_h264.mp4").display()
    )];
    let mut server = RtspServer::start(&mount, port, None).unwrap();
    let cfg = config(&camera("cam", &server.url("/vtest"), ""), "");
    let (agent, results) = start(&cfg);
    wait_state(&agent, 0, CameraState::Streaming, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    server.kill();
    // Idle timeout is 2 s; the TCP close is usually seen at once.
    let lost_after = wait_state(&agent, 0, CameraState::Reconnecting, Duration::from_secs(6)).await;
    let err = agent.cameras[0]
        .handle
        .status
        .borrow()
        .error
        .clone()
        .unwrap_or_default();
    assert!(!err.is_empty(), "a reconnecting camera says why");
    let before = results.lock().unwrap().len();
    // Down for a while: several attempts fail (refused) and back off.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(
        agent.cameras[0].handle.status.borrow().state,
        CameraState::Streaming
    );

    let _server = RtspServer::start(&mount, port, None).unwrap();
    let back_after = wait_state(&agent, 0, CameraState::Streaming, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = results.lock().unwrap().len();
    let failures = agent.cameras[0]
        .handle
        .counters
        .failures
        .load(std::sync::atomic::Ordering::Relaxed);
    agent
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the agent stops in time");
    eprintln!("lost after {lost_after:?} ({err}); back {back_after:?} after restart; {failures} failed attempts");
    assert!(
        failures >= 2,
        "expected retries while the server was down, saw {failures}"
    );
    assert!(
        after >= before + 5,
        "detections resumed: {before} before, {after} after"
    );
}

fn target(url: &str, user: Option<&str>, pass: Option<&str>) -> RtspTarget {
    RtspTarget::new(url, user, pass, ioc_agent::config::TransportConfig::Tcp).unwrap()
}

async fn connect_err(t: &RtspTarget, timeout: Duration) -> (SourceError, Duration) {
    let t0 = Instant::now();
    let group = Arc::new(retina::client::SessionGroup::default());
    match rtsp::connect(t, timeout, timeout, group).await {
        Ok(_) => panic!("connect to {} unexpectedly succeeded", t.redacted()),
        Err(e) => (e, t0.elapsed()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_path_wrong_credentials_refused_and_silent_ports_fail_clearly_and_in_bounded_time() {
    let _g = SERIAL.lock().await;
    let vtest = footage("vtest_h264.mp4");
    let server = RtspServer::start(
        &[format!("/vtest={}:h264", vtest.display())],
        0,
        Some(("viewer", "right-pass")),
    )
    .unwrap();
    let limit = Duration::from_secs(2);

    let (e, t) = connect_err(
        &target(&server.url("/nothing"), Some("viewer"), Some("right-pass")),
        limit,
    )
    .await;
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    assert!(t < limit * 2, "{t:?}");

    let (e, t) = connect_err(
        &target(&server.url("/vtest"), Some("viewer"), Some("wrong-pass")),
        limit,
    )
    .await;
    assert!(
        matches!(e, SourceError::Auth { .. }) && e.is_permanent(),
        "{e}"
    );
    assert!(
        e.to_string().contains("check username and password")
            && !e.to_string().contains("wrong-pass"),
        "{e}"
    );
    assert!(t < limit * 2, "{t:?}");

    // A port that accepts and never answers (not an RTSP server).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtsp://127.0.0.1:{}/x", silent.local_addr().unwrap().port());
    let (e, t) = connect_err(&target(&url, None, None), limit).await;
    assert!(
        matches!(
            e,
            SourceError::Timeout {
                stage: "DESCRIBE",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("is it an RTSP server"), "{e}");
    assert!(t >= limit && t < limit + Duration::from_secs(2), "{t:?}");

    // Nothing listening.
    let url = format!("rtsp://127.0.0.1:{}/x", free_port());
    let (e, t) = connect_err(&target(&url, None, None), limit).await;
    assert!(matches!(e, SourceError::Unreachable { .. }), "{e}");
    assert!(t < limit, "{t:?}");

    // The right credentials work, from the URL too.
    let ok = format!("rtsp://viewer:right-pass@127.0.0.1:{}/vtest", server.port);
    let group = Arc::new(retina::client::SessionGroup::default());
    let mut s = rtsp::connect(&target(&ok, None, None), limit, limit, group)
        .await
        .expect("right credentials");
    assert_eq!(s.codec, ioc_agent::decode::Codec::H264);
    s.next_frame().await.expect("a frame");
    assert_eq!(s.resolution, Some((768, 576)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_with_wrong_credentials_is_failed_not_streaming_and_keeps_retrying() {
    let _g = SERIAL.lock().await;
    let vtest = footage("vtest_h264.mp4");
    let server = RtspServer::start(
        &[format!("/vtest={}:h264:loop", vtest.display())],
        0,
        Some(("viewer", "right-pass")),
    )
    .unwrap();
    let cam = camera(
        "cam",
        &server.url("/vtest"),
        "username = \"viewer\"\npassword = \"nope\"",
    );
    let cfg = config(&cam, "");
    let (agent, _) = start(&cfg);
    wait_state(&agent, 0, CameraState::Failed, Duration::from_secs(10)).await;
    let st = agent.cameras[0].handle.status.borrow().clone();
    assert!(
        st.error
            .as_deref()
            .unwrap_or_default()
            .contains("authentication refused"),
        "{st:?}"
    );
    agent
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the agent stops in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_takes_the_user_from_the_url_and_the_password_from_the_environment() {
    let _g = SERIAL.lock().await;
    let vtest = footage("vtest_h264.mp4");
    let server = RtspServer::start(
        &[format!("/vtest={}:h264:loop", vtest.display())],
        0,
        Some(("viewer", "right-pass")),
    )
    .unwrap();
    // The README's form: the password stays out of the URL and the shell history.
    let url = format!("rtsp://viewer@127.0.0.1:{}/vtest", server.port);
    let probe = |password: &str| {
        std::process::Command::new(ioc_testkit::workspace_binary("ioc-agent"))
            .args(["probe", &url, "--seconds", "1", "--json"])
            .env("IOC_RTSP_PASSWORD", password)
            .output()
            .unwrap()
    };
    let o = probe("right-pass");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["codec"], "H.264");
    assert!(!r["url"].as_str().unwrap().contains("viewer"), "{r}");
    let o = probe("wrong-pass");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("authentication refused"));
    // rtsps is refused plainly, here and by check-config.
    let o = std::process::Command::new(ioc_testkit::workspace_binary("ioc-agent"))
        .args(["probe", "rtsps://127.0.0.1:1/x"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("rtsps:// (RTSP over TLS) is not supported")
    );
}
