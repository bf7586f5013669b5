//! The fast part of the scenario evaluation that `make test` runs (the whole library runs
//! under `make eval`): the scenarios marked `quick`, through the real decoder, detector,
//! scheduler, tracker and rules, at 5 detection fps with a detector that keeps up and at
//! 10 fps with one that cannot (120 ms an inference: about 8 a second, the rest dropped, as
//! on a busy box). Inference time is fixed, so the drops are the same on any machine.
//!
//! Floors are what the code meets today (tests/scenarios/README.md); raise them as it gets
//! better.

use std::path::PathBuf;
use std::time::Duration;

use ioc_eval::eval::{evaluate, Dirs, EvalOptions, Report};
use ioc_eval::metrics::KindScore;
use ioc_eval::simulate::Infer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn totals<'a>(r: &'a Report, key: &str) -> (KindScore, &'a ioc_eval::eval::Totals) {
    let t = r
        .totals
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", r.totals.keys()));
    let mut all = KindScore::default();
    for k in t.kinds.values() {
        all.add(k);
    }
    (all, t)
}

#[test]
fn quick_scenarios_meet_their_floors_on_time_and_when_the_detector_falls_behind() {
    let root = root();
    let dirs = Dirs::under(&root);
    let run = |fps: f64, infer_ms: u64| {
        let opts = EvalOptions {
            fps: vec![fps],
            loads: vec![0],
            infer: Infer::Fixed(Duration::from_millis(infer_ms)),
            workers: 1,
            motion: ioc_agent::motion::MotionConfig::default(),
            quick: true,
            verbose: false,
        };
        evaluate(&root.join("tests/scenarios"), &dirs, &opts).expect("evaluation runs")
    };
    for (fps, infer_ms, key) in [(5.0, 80, "fps=5 load=0"), (10.0, 120, "fps=10 load=0")] {
        let report = run(fps, infer_ms);
        println!("{}", ioc_eval::eval::table(&report));
        let (all, t) = totals(&report, key);
        let dropped: u64 = report.runs.iter().map(|r| r.frames[3]).sum();
        if fps == 10.0 {
            assert!(dropped > 0, "a 120 ms detector at 10 fps must drop frames");
        }
        assert!(
            all.recall() >= 1.0 && all.precision() >= 1.0,
            "{key}: recall {:.2}, precision {:.2}: {:#?}",
            all.recall(),
            all.precision(),
            report
                .runs
                .iter()
                .flat_map(|r| r
                    .score
                    .notes
                    .iter()
                    .map(move |n| format!("{}: {n}", r.scenario)))
                .collect::<Vec<_>>()
        );
        assert_eq!(all.duplicates, 0, "{key}: duplicate incidents");
        assert_eq!(
            all.late, 0,
            "{key}: incidents later than their threshold + 1 s"
        );
        for (line, truth, counted) in &t.lines {
            assert_eq!(truth, counted, "{key}: counts of {line}");
        }
        assert!(
            t.tracks.mota() >= 0.6 && t.tracks.idf1() >= 0.7,
            "{key}: MOTA {:.2}, IDF1 {:.2}",
            t.tracks.mota(),
            t.tracks.idf1()
        );
    }
}

#[test]
fn the_same_seed_makes_the_same_frames_and_truth() {
    let root = root();
    let dirs = Dirs::under(&root);
    let s = ioc_eval::scenario::Scenario::load(&root.join("tests/scenarios/line_two_way.toml"))
        .unwrap();
    let mut det = ioc_eval::eval::load_asset_detector(&dirs.model).unwrap();
    let assets =
        ioc_eval::assets::Assets::load_or_build(&dirs.footage, &dirs.assets, &mut det).unwrap();
    let frames = |s: &ioc_eval::scenario::Scenario| {
        let actors = ioc_eval::world::actors(s, &assets);
        let mut r = ioc_eval::render::Renderer::new(s, &assets, actors.len());
        let mut out = Vec::new();
        let mut hashes = Vec::new();
        let mut boxes = Vec::new();
        for k in 0..60 {
            let b = r.draw(s, &assets, &actors, k as f64 / s.fps as f64, &mut out);
            use sha2::Digest;
            hashes.push(hex::encode(sha2::Sha256::digest(&out)));
            boxes.push(serde_json::to_string(&b).unwrap());
        }
        (hashes, boxes)
    };
    let (a, ab) = frames(&s);
    let (b, bb) = frames(&s);
    assert_eq!(a, b, "frames differ between two renderings of one seed");
    assert_eq!(ab, bb);
    let mut other = s.clone();
    other.seed += 1;
    let (c, _) = frames(&other);
    assert_ne!(a, c, "another seed must give other frames (noise, sprites)");
}
