//! What a detector runs: which file of the model (float or INT8) and which input shape for a
//! camera. Pure decisions, so they are tested without ONNX Runtime.
//!
//! - **Precision.** INT8 takes about half the time of float on CPUs with 8-bit dot-product
//!   instructions (x86 VNNI), keeping ≥ 95 % of the float model's detections
//!   (`agent/tests/model_variants.rs`); elsewhere its kernels are emulated and the gain is
//!   not measured, so `auto` picks it only where it was.
//! - **Input shape.** Stretching a 16:9 frame into a square squeezes every object and wastes
//!   the model's time on rows that carry no extra picture; a model that takes any multiple of
//!   its stride is fed an input of the camera's own shape instead.

use serde::Deserialize;

use crate::manifest::{InputSpec, ModelManifest, Precision};

/// `detect.precision`: which file of the model to run. The default stays float until the
/// scenario library can judge INT8 without bias (`tests/scenarios/README.md`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// INT8 where the CPU has fast INT8 and the manifest has an INT8 file, float otherwise.
    Auto,
    /// Always the float file.
    #[default]
    Float,
    /// The INT8 file (an error if the manifest has none).
    Int8,
}

/// The precision chosen and why, for the log, the health and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecisionPick {
    /// The precision that runs.
    pub precision: Precision,
    /// Why, in a few words ("CPU has avx512_vnni", "detect.precision = \"float\"").
    pub reason: String,
}

/// The CPU feature that makes INT8 inference fast here, if any.
pub fn fast_int8_feature() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            return Some("avx512_vnni");
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            return Some("avx_vnni");
        }
    }
    None
}

/// Picks the precision for `choice` given the manifest and the CPU's fast-INT8 feature.
pub fn pick_precision(
    choice: PrecisionChoice,
    manifest: &ModelManifest,
    fast_int8: Option<&str>,
) -> std::result::Result<PrecisionPick, String> {
    let has_int8 = manifest.int8.is_some();
    let pick = |precision, reason: String| Ok(PrecisionPick { precision, reason });
    match choice {
        PrecisionChoice::Float => pick(Precision::Float, "detect.precision = \"float\"".into()),
        PrecisionChoice::Int8 if has_int8 => {
            pick(Precision::Int8, "detect.precision = \"int8\"".into())
        }
        PrecisionChoice::Int8 => Err(format!(
            "detect.precision = \"int8\" but model {:?} has no [int8] file in its manifest",
            manifest.name
        )),
        PrecisionChoice::Auto => match (has_int8, fast_int8) {
            (true, Some(f)) => pick(Precision::Int8, format!("CPU has {f}")),
            (true, None) => pick(
                Precision::Float,
                "no fast INT8 on this CPU (x86 VNNI); set detect.precision = \"int8\" after measuring it"
                    .into(),
            ),
            (false, _) => pick(Precision::Float, "the model has no INT8 file".into()),
        },
    }
}

/// `detect.input_size`: the model input's shape for each camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputSize {
    /// The model's own size from its manifest (416x416 for the default model).
    #[default]
    Model,
    /// The camera's aspect ratio when the model takes any size, else the model's size.
    Auto,
    /// This width and height for every camera.
    Fixed(u32, u32),
}

impl std::str::FromStr for InputSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => return Ok(InputSize::Auto),
            "model" => return Ok(InputSize::Model),
            _ => {}
        }
        let parsed = s
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
        match parsed {
            Some((w, h)) if w > 0 && h > 0 => Ok(InputSize::Fixed(w, h)),
            _ => Err(format!(
                "{s:?} is not \"model\", \"auto\" or WIDTHxHEIGHT (e.g. \"416x320\")"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for InputSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for InputSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSize::Model => f.write_str("model"),
            InputSize::Auto => f.write_str("auto"),
            InputSize::Fixed(w, h) => write!(f, "{w}x{h}"),
        }
    }
}

/// Checks a fixed size against what the model takes.
pub fn check_input_size(size: InputSize, spec: &InputSpec) -> std::result::Result<(), String> {
    let InputSize::Fixed(w, h) = size else {
        return Ok(());
    };
    match spec.multiple {
        Some(m) if w.is_multiple_of(m) && h.is_multiple_of(m) && w <= 4096 && h <= 4096 => Ok(()),
        Some(m) => Err(format!(
            "detect.input_size: {w}x{h} must be multiples of {m} (at most 4096) for this model"
        )),
        None if (w, h) == (spec.width, spec.height) => Ok(()),
        None => Err(format!(
            "detect.input_size: this model takes only {}x{} (its manifest has no input.multiple)",
            spec.width, spec.height
        )),
    }
}

/// The input shape for a `frame` (width, height) of a camera.
///
/// With `Auto` and a model that takes any multiple `m`: the frame's long side gets the
/// reference size's long side and the short side follows the frame's aspect ratio, rounded up
/// to a multiple of `m` (never more than the reference's short side: 4:3 → 416×320,
/// 16:9 → 416×256, 2.35:1 → 416×192; portrait frames likewise turned).
pub fn shape_for(spec: &InputSpec, size: InputSize, frame: (u32, u32)) -> (u32, u32) {
    let (fw, fh) = (frame.0.max(1) as u64, frame.1.max(1) as u64);
    match (size, spec.multiple) {
        (InputSize::Fixed(w, h), _) => (w, h),
        (InputSize::Model, _) | (InputSize::Auto, None) => (spec.width, spec.height),
        (InputSize::Auto, Some(m)) => {
            let (rw, rh) = (spec.width as u64, spec.height as u64);
            let m = m as u64;
            let round_up = |v: u64| v.div_ceil(m).max(1) * m;
            if fw >= fh {
                let h = round_up((rw * fh).div_ceil(fw)).min(rh.max(m));
                (rw as u32, h as u32)
            } else {
                let w = round_up((rh * fw).div_ceil(fh)).min(rw.max(m));
                (w as u32, rh as u32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ColourOrder;

    fn spec(multiple: Option<u32>) -> InputSpec {
        InputSpec {
            width: 416,
            height: 416,
            multiple,
            colour: ColourOrder::Bgr,
            resize: Default::default(),
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    #[test]
    fn the_input_follows_the_camera_shape() {
        let s = spec(Some(32));
        let auto = InputSize::Auto;
        assert_eq!(shape_for(&s, auto, (768, 576)), (416, 320)); // 4:3
        assert_eq!(shape_for(&s, auto, (1920, 1080)), (416, 256)); // 16:9
        assert_eq!(shape_for(&s, auto, (1280, 544)), (416, 192)); // 2.35:1
        assert_eq!(shape_for(&s, auto, (640, 640)), (416, 416));
        assert_eq!(shape_for(&s, auto, (1080, 1920)), (256, 416)); // portrait
        assert_eq!(shape_for(&s, auto, (4000, 10)), (416, 32)); // never zero
                                                                // A model of fixed size, or a size the config fixes, is used as it is.
        assert_eq!(shape_for(&spec(None), auto, (1920, 1080)), (416, 416));
        assert_eq!(
            shape_for(&s, InputSize::Fixed(384, 288), (1920, 1080)),
            (384, 288)
        );
    }

    #[test]
    fn input_sizes_parse_and_are_checked_against_the_model() {
        assert_eq!("auto".parse(), Ok(InputSize::Auto));
        assert_eq!("model".parse(), Ok(InputSize::Model));
        assert_eq!(
            shape_for(&spec(Some(32)), InputSize::Model, (1920, 1080)),
            (416, 416)
        );
        assert_eq!("416x320".parse(), Ok(InputSize::Fixed(416, 320)));
        for bad in ["416", "x320", "0x32", "416×320", "big"] {
            assert!(bad.parse::<InputSize>().is_err(), "{bad}");
        }
        let fixed = InputSize::Fixed(400, 320);
        assert!(check_input_size(fixed, &spec(Some(32)))
            .unwrap_err()
            .contains("multiples of 32"));
        assert!(check_input_size(InputSize::Fixed(416, 320), &spec(Some(32))).is_ok());
        assert!(check_input_size(InputSize::Fixed(416, 320), &spec(None))
            .unwrap_err()
            .contains("only 416x416"));
    }

    #[test]
    fn int8_runs_only_where_it_is_fast_or_asked_for() {
        let mut m = crate::ModelManifest::parse(
            "name = \"m\"\nfile = \"m.onnx\"\nlabels = \"l\"\n[input]\nwidth = 32\nheight = 32\n\
             colour = \"rgb\"\n[output]\nformat = \"yolov8\"\n",
        )
        .unwrap();
        let auto = PrecisionChoice::Auto;
        let p = |c, m: &ModelManifest, f| pick_precision(c, m, f).map(|p| p.precision);
        // No INT8 file: float whatever the CPU; asking for INT8 is an error naming the key.
        assert_eq!(p(auto, &m, Some("avx512_vnni")), Ok(Precision::Float));
        let e = pick_precision(PrecisionChoice::Int8, &m, None).unwrap_err();
        assert!(
            e.contains("detect.precision") && e.contains("[int8]"),
            "{e}"
        );
        m.int8 = Some(crate::manifest::Variant {
            file: "m8.onnx".into(),
            sha256: None,
        });
        let pick = pick_precision(auto, &m, Some("avx512_vnni")).unwrap();
        assert_eq!(pick.precision, Precision::Int8);
        assert!(pick.reason.contains("avx512_vnni"), "{}", pick.reason);
        assert_eq!(p(auto, &m, None), Ok(Precision::Float));
        assert_eq!(p(PrecisionChoice::Int8, &m, None), Ok(Precision::Int8));
        assert_eq!(
            p(PrecisionChoice::Float, &m, Some("avx_vnni")),
            Ok(Precision::Float)
        );
    }
}
