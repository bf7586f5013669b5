//! The `ioc-agent` binary as a user runs it: real model, real images, real
//! config files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ioc_agent::offline::FrameOut;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ioc-agent"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs")
}

fn footage(name: &str) -> PathBuf {
    let p = root().join(".deps/footage").join(name);
    assert!(p.is_file(), "{} missing: run `make setup`", p.display());
    p
}

/// The reference configuration the stills' expectations were taken with (the float model
/// on a square input); `model_variants.rs` holds the INT8 twin and camera shapes to it.
const REFERENCE: [&str; 4] = ["--precision", "float", "--input-size", "416x416"];

fn detect_json(image: &Path) -> FrameOut {
    let mut args = vec!["detect", "--json", image.to_str().unwrap()];
    args.extend(REFERENCE);
    let o = agent(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn centre(b: [f32; 4]) -> (f32, f32) {
    ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
}

/// The centre of the first detection of `class`; panics with what was found when none.
fn centre_of(f: &FrameOut, class: &str) -> (f32, f32) {
    let d = f.detections.iter().find(|d| d.class == class);
    centre(
        d.unwrap_or_else(|| panic!("no {class} in {:?}", f.detections))
            .bbox,
    )
}

#[test]
fn detect_finds_the_dog_the_bicycle_and_the_truck_where_they_are() {
    let img = footage("dog.jpg"); // 768x576
    let out = tempfile::Builder::new().suffix(".jpg").tempfile().unwrap();
    let mut args = vec![
        "detect",
        "--json",
        "--out",
        out.path().to_str().unwrap(),
        img.to_str().unwrap(),
    ];
    args.extend(REFERENCE);
    let o = agent(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference: FrameOut = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(reference.size, (768, 576));
    let annotated = image::open(out.path()).expect("annotated JPEG written");
    assert_eq!((annotated.width(), annotated.height()), (768, 576));
    // INT8 where the CPU is fast at it, on an input of the picture's shape (416x320 here),
    // finds the dog and the bicycle too, and the log says which file ran.
    let o = agent(&[
        "detect",
        "--json",
        "--precision",
        "auto",
        "--input-size",
        "auto",
        img.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && log.contains("nanodet_g_416_coco"),
        "{log}"
    );
    let fast: FrameOut = serde_json::from_slice(&o.stdout).unwrap();
    for f in [&reference, &fast] {
        // The dog sits lower left, the bicycle across the middle.
        let (x, y) = centre_of(f, "dog");
        assert!(x < 384.0 && y > 288.0, "dog at {x},{y}");
        let (x, y) = centre_of(f, "bicycle");
        assert!(
            (200.0..500.0).contains(&x) && (150.0..450.0).contains(&y),
            "bicycle at {x},{y}"
        );
    }
    // The truck, upper right (0.37 on the reference: under the threshold on the others).
    let (x, y) = centre_of(&reference, "truck");
    assert!(x > 450.0 && y < 250.0, "truck at {x},{y}");
}

#[test]
fn detect_finds_the_person_the_horse_and_the_dog_in_person_jpg() {
    let f = detect_json(&footage("person.jpg"));
    let classes: Vec<&str> = f.detections.iter().map(|d| d.class.as_str()).collect();
    for c in ["person", "horse", "dog"] {
        assert!(classes.contains(&c), "no {c} in {classes:?}");
    }
    let x = |c: &str| centre(f.detections.iter().find(|d| d.class == c).unwrap().bbox).0;
    // Left to right: dog, person, horse.
    assert!(
        x("dog") < x("person") && x("person") < x("horse"),
        "{:?}",
        f.detections
    );
}

#[test]
fn detect_on_a_video_reports_people_in_the_vtest_clip() {
    let o = agent(&[
        "detect",
        "--json",
        "--fps",
        "2",
        footage("vtest_h264.mp4").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frames: Vec<FrameOut> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 79.5 s at 2 fps.
    assert!(
        (150..=165).contains(&frames.len()),
        "{} frames",
        frames.len()
    );
    let with_person = frames
        .iter()
        .filter(|f| f.detections.iter().any(|d| d.class == "person"))
        .count();
    assert!(
        with_person * 10 >= frames.len() * 9,
        "{with_person} of {}",
        frames.len()
    );
}

fn model_copy(truncate: bool, keep_sha: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = root().join("models");
    let mut bytes = std::fs::read(m.join("nanodet_g_416_coco.onnx")).unwrap();
    if truncate {
        bytes.truncate(bytes.len() / 2);
    }
    std::fs::write(dir.path().join("nanodet_g_416_coco.onnx"), bytes).unwrap();
    std::fs::copy(
        m.join("coco80_labels.txt"),
        dir.path().join("coco80_labels.txt"),
    )
    .unwrap();
    let mut manifest = std::fs::read_to_string(m.join("nanodet-g-416.toml")).unwrap();
    if !keep_sha {
        manifest = manifest
            .lines()
            .filter(|l| !l.starts_with("sha256"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    std::fs::write(dir.path().join("m.toml"), manifest).unwrap();
    dir
}

/// `detect` on dog.jpg with the manifest in `dir` and `precision`: it must fail; its stderr.
fn detect_fails_with(dir: &tempfile::TempDir, precision: &str) -> String {
    let o = agent(&[
        "detect",
        "--precision",
        precision,
        "--model",
        dir.path().join("m.toml").to_str().unwrap(),
        footage("dog.jpg").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_truncated_model_is_refused_by_its_sha256_and_without_one_by_onnx_runtime() {
    let err = detect_fails_with(&model_copy(true, true), "float");
    assert!(
        err.contains("nanodet_g_416_coco.onnx") && err.contains("damaged, truncated"),
        "{err}"
    );
    let err = detect_fails_with(&model_copy(true, false), "float");
    assert!(
        err.contains("ONNX Runtime cannot load it") && err.contains("complete ONNX file"),
        "{err}"
    );
    // The INT8 twin the manifest names is missing: the error names its file.
    let err = detect_fails_with(&model_copy(false, true), "int8");
    assert!(
        err.contains("nanodet_g_416_coco_int8.onnx") && err.contains("cannot read it"),
        "{err}"
    );
}

#[test]
fn a_missing_or_broken_onnx_runtime_library_says_what_to_do() {
    let img = footage("dog.jpg");
    let o = Command::new(env!("CARGO_BIN_EXE_ioc-agent"))
        .args(["detect", img.to_str().unwrap()])
        .current_dir(root())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("not found at /nonexistent")
            && err.contains("ORT_DYLIB_PATH")
            && err.contains("make setup"),
        "{err}"
    );

    let fake = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(fake.path(), b"not a shared library").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ioc-agent"))
        .args(["detect", img.to_str().unwrap()])
        .current_dir(root())
        .env("ORT_DYLIB_PATH", fake.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot load ONNX Runtime from") && err.contains("make setup"),
        "{err}"
    );
}

#[test]
fn the_example_config_is_valid_here() {
    let o = agent(&["check-config", "config/agent.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 cameras"));
}

#[test]
fn check_config_names_the_file_and_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[agent]\nid = \"x\"\n[[cameras]]\nid = \"a\"\nurl = \"rtsp://h/s\"\ntransprot = \"tcp\"\n",
    )
    .unwrap();
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(p.to_str().unwrap())
            && err.contains("cameras[0]")
            && err.contains("transprot"),
        "{err}"
    );

    // Valid syntax, wrong for this machine: a model that is not there and a decoder that is not installed.
    std::fs::write(
        &p,
        "[agent]\nid = \"x\"\n[detect]\nmodel = \"nope.toml\"\nclasses = []\n[[cameras]]\nid = \"a\"\nurl = \"rtsp://h/s\"\ndecoder = \"nosuchdec\"\n",
    )
    .unwrap();
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("detect.model")
            && err.contains("cameras[0].decoder")
            && err.contains("nosuchdec"),
        "{err}"
    );
    // ...which --no-environment skips.
    assert!(
        agent(&["check-config", "--no-environment", p.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn check_config_checks_the_model_variant_the_input_shape_and_the_broker_user() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("site.toml");
    let model = root().join("models/nanodet-g-416.toml");
    let write = |detect: &str, mqtt: &str| {
        std::fs::write(
            &p,
            format!(
                "[agent]\nid = \"site-7\"\n[detect]\nmodel = \"{}\"\n{detect}\n{mqtt}\n\
                 [[cameras]]\nid = \"a\"\nurl = \"rtsp://h/s\"\n",
                model.display()
            ),
        )
        .unwrap();
    };
    // A shape the model cannot take, and a precision that does not exist.
    write("input_size = \"400x300\"", "");
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("detect.input_size") && err.contains("multiples of 32"),
        "{err}"
    );
    write("precision = \"fp16\"", "");
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("precision"), "{err}");
    // Right ones pass; a broker user that is not the agent id passes with a warning that
    // says why every event would be refused.
    write(
        "precision = \"int8\"\ninput_size = \"384x288\"",
        "[mqtt]\nhost = \"127.0.0.1\"\nusername = \"site7\"\npassword = \"pw\"",
    );
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: mqtt.username") && err.contains("\"site-7\""),
        "{err}"
    );
}

#[test]
fn check_config_reports_every_mistake_of_a_site_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("site.toml");
    let model = root().join("models/nanodet-g-416.toml");
    let text = format!(
        r#"[agent]
id = "site"
[detect]
model = "{}"
classes = ["person", "motorcycle"]
[[cameras]]
id = "gate"
url = "rtsp://10.0.0.9/stream"
[cameras.analytics]
[[cameras.analytics.zones]]
name = "yard"
points = [[0.1, 0.5], [1.2, 0.5], [0.5, 0.9]]
[[cameras.analytics.lines]]
name = "road"
points = [[0.0, 0.5], [1.0, 0.5]]
in_side = "left"
[[cameras.analytics.rules]]
name = "bikes"
kind = "line_crossing"
line = "road"
classes = ["motorbike"]
[[cameras.analytics.rules]]
name = "cars"
kind = "line_crossing"
line = "road"
classes = ["car"]
"#,
        model.display()
    );
    std::fs::write(&p, &text).unwrap();
    let o = agent(&["check-config", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    for want in [
        "3 problem(s)",
        "cameras[0].analytics.zones[0].points: points[1] = [1.2, 0.5] is off the picture: x and \
         y go from 0 (left, top) to 1 (right, bottom)",
        "cameras[0].analytics.rules[0].classes[0]: \"motorbike\" is not a class of model \
         \"nanodet-g-416-coco\" (did you mean \"motorcycle\"?)",
        "cameras[0].analytics.rules[1].classes[0]: \"car\" is filtered out by detect.classes \
         [\"person\", \"motorcycle\"]: rule \"cars\" can never fire; add it there",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // A line without its in side says what the choices are.
    std::fs::write(&p, text.replace("in_side = \"left\"\n", "")).unwrap();
    let err =
        String::from_utf8_lossy(&agent(&["check-config", p.to_str().unwrap()]).stderr).into_owned();
    assert!(
        err.contains("missing field `in_side`") && err.contains("\"left\" or \"right\""),
        "{err}"
    );
}

#[test]
fn logs_are_one_json_object_a_line_when_asked_and_never_coloured_off_a_terminal() {
    let img = footage("dog.jpg");
    let run = |format: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_ioc-agent"))
            .args(["detect", img.to_str().unwrap()])
            .current_dir(root())
            .env("IOC_LOG_FORMAT", format)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let json = run("json");
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"loaded ONNX Runtime\"")),
        "{json}"
    );
    let text = run("text");
    assert!(
        text.contains("loaded ONNX Runtime") && !text.contains('\u{1b}'),
        "{text}"
    );
    let typo = run("jsno");
    assert!(
        typo.contains("IOC_LOG_FORMAT") && typo.contains("jsno"),
        "{typo}"
    );
}
