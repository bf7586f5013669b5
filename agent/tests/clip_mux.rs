//! The clip path on real encoded footage, without a network: the access units of the
//! bundled H.264 and H.265 files (as a camera sends them: Annex B, parameter sets before key
//! frames) go through a [`ClipRing`], a window is cut and muxed to MP4, and the MP4 is
//! decoded again frame by frame.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use ioc_agent::clip::{mux_mp4, ClipRing, Unit};
use ioc_agent::clock::{ClockMode, Epoch, SessionClock};
use ioc_agent::decode::{Codec, DecodeSettings, Pipeline};

fn footage(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.deps/footage")
        .join(name)
}

/// The file's access units with their times, as a camera would send them.
fn access_units(file: &Path, codec: Codec) -> Vec<Unit> {
    gst::init().unwrap();
    let (parse, caps) = match codec {
        Codec::H264 => ("h264parse", "video/x-h264"),
        Codec::H265 => ("h265parse", "video/x-h265"),
    };
    let desc = format!(
        "filesrc location={} ! qtdemux ! {parse} config-interval=-1 ! \
         {caps},stream-format=byte-stream,alignment=au ! appsink name=sink sync=false",
        file.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let b = sample.buffer().unwrap();
        let t = b.pts().unwrap().nseconds() as f64 / 1e9;
        out.push(Unit {
            t,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1.7e9 + t),
            key: !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data: bytes::Bytes::copy_from_slice(&b.map_readable().unwrap()),
        });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Decodes `mp4`: (frames, last pts in seconds).
fn decode(mp4: &[u8], dir: &Path, decoder: &str) -> (u64, f64) {
    let file = dir.join("clip.mp4");
    std::fs::write(&file, mp4).unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let last_ms = Arc::new(AtomicU64::new(0));
    let (f, l) = (frames.clone(), last_ms.clone());
    let p = Pipeline::for_file(
        &file,
        &DecodeSettings {
            decoder: decoder.into(),
            fps: 0.0,
            realtime: false,
            threads: 1,
        },
        Default::default(),
        Arc::new(SessionClock::new(
            Epoch::now(),
            ClockMode::Flat { offset_sec: 0.0 },
            0.0,
        )),
        Box::new(move |frame| {
            f.fetch_add(1, Ordering::Relaxed);
            l.fetch_max(frame.pts().as_millis() as u64, Ordering::Relaxed);
        }),
    )
    .unwrap();
    p.wait(Some(Duration::from_secs(60))).unwrap();
    (
        frames.load(Ordering::Relaxed),
        last_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    )
}

#[test]
fn a_window_of_real_h264_footage_becomes_a_playable_mp4() {
    let units = access_units(&footage("vtest_h264.mp4"), Codec::H264);
    assert!(units.len() > 700, "{} access units", units.len());
    // The ring keeps 5 s + a GOP; the footage is 10 fps with a key frame every 20 frames.
    let ring = ClipRing::new(5.0, 40 << 20);
    ring.reset(Codec::H264);
    for u in units.iter().take(400) {
        ring.push(u.clone());
    }
    let newest = ring.newest().unwrap();
    assert!((newest - 39.9).abs() < 0.05, "{newest}");
    // An incident decided at 37.0 s, 2 s either side: from the key frame at 34 s.
    let (codec, cut) = ring.cut(35.0, 39.0, usize::MAX);
    assert_eq!(codec, Some(Codec::H264));
    assert!(cut[0].key && (cut[0].t - 34.0).abs() < 0.05, "{}", cut[0].t);
    assert!((cut.last().unwrap().t - 39.0).abs() < 0.05);
    let dir = tempfile::tempdir().unwrap();
    let mp4 = mux_mp4(Codec::H264, &cut, &dir.path().join("work")).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    // Nothing left behind in the scratch folder.
    assert_eq!(
        std::fs::read_dir(dir.path().join("work")).unwrap().count(),
        0
    );
    let (frames, last) = decode(&mp4, dir.path(), "avdec_h264");
    assert_eq!(frames, cut.len() as u64, "every frame decodes");
    assert!(
        (last - (cut.last().unwrap().t - cut[0].t)).abs() < 0.15,
        "{last}"
    );
    // A byte cap cuts the end, never the start.
    let total: usize = cut.iter().map(|u| u.data.len()).sum();
    let (_, short) = ring.cut(35.0, 39.0, total / 2);
    assert!(short.len() < cut.len() && short[0].t == cut[0].t);
    let mp4 = mux_mp4(Codec::H264, &short, &dir.path().join("work")).unwrap();
    assert!(mp4.len() < total, "{} bytes", mp4.len());
    assert_eq!(decode(&mp4, dir.path(), "avdec_h264").0, short.len() as u64);
}

#[test]
fn h265_streams_give_mp4_clips_too() {
    let units = access_units(&footage("synthetic_1080p_h265.mp4"), Codec::H265);
    let ring = ClipRing::new(30.0, 40 << 20);
    ring.reset(Codec::H265);
    for u in &units {
        ring.push(u.clone());
    }
    let (_, cut) = ring.cut(0.0, 3.0, usize::MAX);
    assert!(cut[0].key && cut.len() >= 70, "{} frames", cut.len());
    let dir = tempfile::tempdir().unwrap();
    let mp4 = mux_mp4(Codec::H265, &cut, &dir.path().join("work")).unwrap();
    let (frames, _) = decode(&mp4, dir.path(), "avdec_h265");
    assert_eq!(frames, cut.len() as u64);
}
