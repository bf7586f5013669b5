//! Model manifests: everything the agent must know to feed a model and read
//! its output, so that another model is a config change, not a code change.
//!
//! A manifest is a small TOML file next to the model (see
//! `models/nanodet-g-416.toml`). Paths inside it are relative to the manifest.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Resize, Result};

/// A parsed and validated model manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// A short name for logs and metrics.
    pub name: String,
    /// The ONNX file, relative to the manifest.
    pub file: PathBuf,
    /// Expected sha256 of the ONNX file (hex). Strongly recommended: a damaged
    /// or truncated file is then refused before ONNX Runtime sees it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Label file (one class name per line, line number = class id), relative to the manifest.
    pub labels: PathBuf,
    /// Input description.
    pub input: InputSpec,
    /// Output description.
    pub output: OutputSpec,
    /// The same weights quantized to INT8 (see `models/make_variants.py`): run where the CPU
    /// has fast INT8 instructions (`detect.precision`).
    #[serde(default)]
    pub int8: Option<Variant>,
    /// Label names, read from `labels` at load.
    #[serde(skip)]
    pub label_names: Vec<String>,
}

/// Another file of the same model (same input, output and labels), e.g. its INT8 twin.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The ONNX file, relative to the manifest.
    pub file: PathBuf,
    /// Expected sha256 of the file (hex).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Channel order of the model's input tensor.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColourOrder {
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
    /// Red, green, blue.
    Rgb,
}

/// How to build the input tensor.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// The graph takes any width and height that are multiples of this (its largest stride):
    /// `width`×`height` is then the reference size the input shape of each camera is derived
    /// from (`detect.input_size`). Unset: the model takes only `width`×`height`.
    #[serde(default)]
    pub multiple: Option<u32>,
    /// Channel order of the tensor.
    pub colour: ColourOrder,
    /// How a frame is fitted into width×height.
    #[serde(default)]
    pub resize: Resize,
    /// Per-channel mean subtracted from 0..255 values, in tensor channel order.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in tensor channel order.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
}

fn default_std() -> [f32; 3] {
    [1.0; 3]
}

/// Which decoder reads the model's output tensors.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// NanoDet / GFL: per stride a score tensor `[1,N,C]` (sigmoid applied) and a
    /// distribution box tensor `[1,N,4*(reg_max+1)]`.
    Nanodet,
    /// Ultralytics YOLOv8 / YOLO11 export: `[1,4+C,N]` (or `[1,N,4+C]`), boxes as
    /// centre x, centre y, width, height in input pixels, class scores after sigmoid.
    Yolov8,
    /// SSD / TF Object Detection API style: boxes `[1,N,4]`, scores `[1,N]`,
    /// classes `[1,N]` (and optionally a count), NMS usually already applied.
    Ssd,
}

/// How to decode the output.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The decoder.
    pub format: OutputFormat,
    /// NanoDet: the strides of the feature maps.
    #[serde(default = "default_strides")]
    pub strides: Vec<u32>,
    /// NanoDet: the largest distance bin (bins per side = reg_max + 1).
    #[serde(default = "default_reg_max")]
    pub reg_max: u32,
    /// SSD: box coordinate order, `"yxyx"` (TF) or `"xyxy"`.
    #[serde(default)]
    pub box_order: BoxOrder,
    /// SSD: boxes are normalised 0..1 (true) or in input pixels (false).
    #[serde(default = "default_true")]
    pub normalized: bool,
    /// SSD: subtract this from the class ids the model gives (1 for TF models
    /// whose class 0 is "background").
    #[serde(default)]
    pub class_offset: i32,
}

/// Coordinate order of SSD boxes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BoxOrder {
    /// ymin, xmin, ymax, xmax.
    #[default]
    Yxyx,
    /// xmin, ymin, xmax, ymax.
    Xyxy,
}

fn default_strides() -> Vec<u32> {
    vec![8, 16, 32]
}
fn default_reg_max() -> u32 {
    7
}
fn default_true() -> bool {
    true
}

impl ModelManifest {
    /// Reads and validates a manifest and its label file. Does not touch the model file.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut m = Self::parse(&text).map_err(|msg| Error::Manifest {
            path: path.to_owned(),
            msg,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let labels = dir.join(&m.labels);
        let text = std::fs::read_to_string(&labels).map_err(|source| Error::Io {
            path: labels.clone(),
            source,
        })?;
        m.label_names = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if m.label_names.is_empty() {
            return Err(Error::Manifest {
                path: path.to_owned(),
                msg: format!("labels: {} holds no class names", labels.display()),
            });
        }
        let model = dir.join(&m.file);
        Ok((m, model))
    }

    /// Parses and validates the manifest text; the error names the key.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let de = toml::Deserializer::new(text);
        let m: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().to_owned();
            if key == "." {
                msg
            } else {
                format!("{key}: {msg}")
            }
        })?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let i = &self.input;
        if i.width == 0 || i.height == 0 || i.width > 8192 || i.height > 8192 {
            return Err(format!(
                "input.width/input.height: {}x{} is not a plausible input size",
                i.width, i.height
            ));
        }
        if let Some(k) = i.std.iter().position(|s| *s == 0.0 || !s.is_finite()) {
            return Err(format!("input.std[{k}]: must be a non-zero number"));
        }
        if let Some(m) = i.multiple {
            if m == 0 || !i.width.is_multiple_of(m) || !i.height.is_multiple_of(m) {
                return Err(format!(
                    "input.multiple: {m} must be non-zero and divide input.width and input.height ({}x{})",
                    i.width, i.height
                ));
            }
        }
        let hex64 = |key: &str, h: &Option<String>| match h {
            Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Err(format!("{key}: {h:?} is not 64 hex digits"))
            }
            _ => Ok(()),
        };
        hex64("sha256", &self.sha256)?;
        if let Some(v) = &self.int8 {
            hex64("int8.sha256", &v.sha256)?;
        }
        if self.output.format == OutputFormat::Nanodet {
            if self.output.strides.is_empty() || self.output.strides.contains(&0) {
                return Err("output.strides: must list non-zero strides".into());
            }
            if self.output.reg_max == 0 || self.output.reg_max > 64 {
                return Err(format!(
                    "output.reg_max: {} is out of range 1..=64",
                    self.output.reg_max
                ));
            }
        }
        Ok(())
    }

    /// The file and expected sha256 of a precision, relative to the manifest's directory
    /// (`None`: the manifest has no such variant).
    pub fn variant(&self, precision: Precision) -> Option<(&Path, Option<&str>)> {
        match precision {
            Precision::Float => Some((&self.file, self.sha256.as_deref())),
            Precision::Int8 => self
                .int8
                .as_ref()
                .map(|v| (v.file.as_path(), v.sha256.as_deref())),
        }
    }

    /// Reads the model file and checks it against `sha256` when the manifest has one.
    pub fn read_model(&self, model_path: &Path) -> Result<Vec<u8>> {
        read_checked(model_path, self.sha256.as_deref())
    }
}

/// Numeric precision of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float weights and activations.
    Float,
    /// 8-bit integer (quantized) weights and activations.
    Int8,
}

impl Precision {
    /// The name used in configs, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Float => "float",
            Precision::Int8 => "int8",
        }
    }
}

/// Reads a model file and checks it against `sha256` when one is given.
pub fn read_checked(model_path: &Path, sha256: Option<&str>) -> Result<Vec<u8>> {
    let bytes = std::fs::read(model_path).map_err(|source| Error::Model {
        path: model_path.to_owned(),
        msg: format!("cannot read it: {source}"),
    })?;
    if let Some(want) = sha256 {
        let got = hex::encode(Sha256::digest(&bytes));
        if !got.eq_ignore_ascii_case(want) {
            return Err(Error::Model {
                path: model_path.to_owned(),
                msg: format!(
                    "sha256 is {got} ({} bytes) but the manifest expects {want}: the file is damaged, \
                     truncated or a different model; restore it or update the manifest",
                    bytes.len()
                ),
            });
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "m"
file = "m.onnx"
labels = "l.txt"
[input]
width = 416
height = 416
colour = "bgr"
mean = [1.0, 2.0, 3.0]
std = [1.0, 1.0, 1.0]
[output]
format = "nanodet"
"#;

    #[test]
    fn parses_a_manifest_with_defaults() {
        let m = ModelManifest::parse(GOOD).unwrap();
        assert_eq!(m.input.resize, Resize::Stretch);
        assert_eq!(m.output.strides, vec![8, 16, 32]);
        assert_eq!(m.output.format, OutputFormat::Nanodet);
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let e =
            ModelManifest::parse(&GOOD.replace("colour = \"bgr\"", "colour = \"bgr\"\ncolor = 1"))
                .unwrap_err();
        assert!(e.contains("input") && e.contains("color"), "{e}");
        let e = ModelManifest::parse(&GOOD.replace("\"nanodet\"", "\"yolo5\"")).unwrap_err();
        assert!(e.starts_with("output.format"), "{e}");
        let e =
            ModelManifest::parse(&GOOD.replace("std = [1.0, 1.0, 1.0]", "std = [1.0, 0.0, 1.0]"))
                .unwrap_err();
        assert!(e.starts_with("input.std[1]"), "{e}");
    }

    #[test]
    fn a_model_file_that_does_not_match_its_sha256_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l.txt"), "person\ncar\n").unwrap();
        std::fs::write(dir.path().join("m.onnx"), b"not the model").unwrap();
        let text = format!("sha256 = \"{}\"\n{GOOD}", "ab".repeat(32));
        std::fs::write(dir.path().join("m.toml"), text).unwrap();
        let (m, model) = ModelManifest::load(&dir.path().join("m.toml")).unwrap();
        assert_eq!(m.label_names, vec!["person", "car"]);
        let e = m.read_model(&model).unwrap_err().to_string();
        assert!(e.contains("damaged, truncated"), "{e}");
    }
}
