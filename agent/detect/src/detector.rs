//! One ONNX Runtime session and the buffers around it.
//!
//! [`Detector::load`] refuses a model that is missing, damaged (sha256), not
//! ONNX, or whose input/output shapes do not fit its manifest, with a message
//! that says which. [`Detector::detect`] reuses its tensor and candidate
//! buffers: after the first frame it allocates only what ONNX Runtime does.

use std::path::{Path, PathBuf};

use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::{TensorRef, ValueType};

use crate::choice::{self, InputSize, PrecisionChoice, PrecisionPick};
use crate::geometry::{letterbox_content, Resize};
use crate::manifest::{self, BoxOrder, ColourOrder, ModelManifest, OutputFormat};
use crate::postprocess::{self, DecodeParams, NanodetLevel, SsdLayout};
use crate::yuv::{Order, Placement, Resampler, YuvImage};
use crate::{preprocess, runtime, Detection, Error, ResizeMap, Result};

/// Pixel byte order of a frame handed to the detector.
pub type PixelFormat = ColourOrder;

/// Runtime knobs of a detector (from the agent's `[detect]` config).
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// Thresholds for decoding.
    pub decode: DecodeParams,
    /// ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
    pub intra_threads: usize,
    /// ONNX Runtime inter-op threads (0 = ONNX Runtime's default).
    pub inter_threads: usize,
    /// Let ONNX Runtime's worker threads spin-wait between operators. Faster alone, but the
    /// spinning burns cores that decoding and other sessions need (benches/README.md).
    pub spinning: bool,
    /// Explicit path of the ONNX Runtime library.
    pub ort_library: Option<PathBuf>,
    /// Float or INT8 file of the model (`detect.precision`).
    pub precision: PrecisionChoice,
    /// The input's shape per camera (`detect.input_size`).
    pub input_size: InputSize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            decode: DecodeParams::default(),
            intra_threads: 1,
            inter_threads: 1,
            spinning: false,
            ort_library: None,
            precision: PrecisionChoice::default(),
            input_size: InputSize::default(),
        }
    }
}

/// A frame already fitted to the model's input size for its source
/// ([`Detector::input_size_for`]).
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Packed 3-byte pixels.
    pub data: &'a [u8],
    /// Bytes from one row to the next (GStreamer pads rows to 4 bytes).
    pub stride: usize,
    /// Byte order of each pixel.
    pub format: PixelFormat,
    /// Size of the source frame before it was fitted, to map boxes back.
    pub source_size: (u32, u32),
}

/// Where each decoder input sits among the session outputs, found at load.
#[derive(Clone, Debug)]
enum Plan {
    Nanodet {
        levels: Vec<(u32, usize, usize)>,
    }, // (stride, scores output, boxes output)
    Yolov8 {
        output: usize,
        transposed: bool,
    },
    Ssd {
        boxes: usize,
        scores: usize,
        classes: usize,
        count: Option<usize>,
    },
}

/// A loaded model ready to run.
pub struct Detector {
    session: Session,
    manifest: ModelManifest,
    model_path: PathBuf,
    plan: Plan,
    config: DetectorConfig,
    precision: PrecisionPick,
    num_classes: usize,
    input: Vec<f32>,
    candidates: Vec<Detection>,
    // Decoded frames are scaled and converted here, only when detected. Both buffers grow to
    // the largest input shape seen and are reused from then on.
    resampler: Resampler,
    packed: Vec<u8>,
}

impl Detector {
    /// Loads the manifest at `manifest_path`, its labels and model, and checks
    /// the model against the manifest by running it once on a blank frame.
    pub fn load(manifest_path: &Path, config: DetectorConfig) -> Result<Self> {
        let (manifest, _) = ModelManifest::load(manifest_path)?;
        let manifest_err = |msg: String| Error::Manifest {
            path: manifest_path.to_owned(),
            msg,
        };
        let precision =
            choice::pick_precision(config.precision, &manifest, choice::fast_int8_feature())
                .map_err(manifest_err)?;
        choice::check_input_size(config.input_size, &manifest.input).map_err(manifest_err)?;
        let (file, sha256) = manifest
            .variant(precision.precision)
            .expect("pick_precision picks a variant the manifest has");
        let model_path = manifest_path.parent().unwrap_or(Path::new(".")).join(file);
        let bytes = manifest::read_checked(&model_path, sha256)?;
        let (env, _) = runtime::environment(config.ort_library.as_deref())?;
        let model_err = |msg: String| Error::Model {
            path: model_path.clone(),
            msg,
        };
        let ort_err = |e: ort::Error| {
            Error::Runtime(format!("cannot configure the ONNX Runtime session: {e}"))
        };
        let mut builder = Session::builder(&env)
            .map_err(ort_err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| ort_err(e.into()))?;
        if config.intra_threads > 0 {
            builder = builder
                .with_intra_threads(config.intra_threads)
                .map_err(|e| ort_err(e.into()))?;
        }
        builder = builder
            .with_intra_op_spinning(config.spinning)
            .map_err(|e| ort_err(e.into()))?
            .with_inter_op_spinning(config.spinning)
            .map_err(|e| ort_err(e.into()))?;
        if config.inter_threads > 0 {
            builder = builder
                .with_inter_threads(config.inter_threads)
                .map_err(|e| ort_err(e.into()))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            model_err(format!(
                "ONNX Runtime cannot load it ({e}); is it a complete ONNX file?"
            ))
        })?;
        drop(bytes);
        check_input(&session, &manifest).map_err(model_err)?;
        let (w, h) = (
            manifest.input.width as usize,
            manifest.input.height as usize,
        );
        let mut d = Detector {
            session,
            num_classes: manifest.label_names.len(),
            manifest,
            model_path,
            plan: Plan::Yolov8 {
                output: 0,
                transposed: false,
            },
            config,
            precision,
            input: vec![0.0; 3 * w * h],
            candidates: Vec::with_capacity(1024),
            resampler: Resampler::new(),
            packed: vec![0; 3 * w * h],
        };
        d.plan = d.make_plan()?;
        Ok(d)
    }

    /// The manifest the model was loaded with.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Class names, index = class id.
    pub fn labels(&self) -> &[String] {
        &self.manifest.label_names
    }

    /// The model's reference input size (width, height), from its manifest.
    pub fn input_size(&self) -> (u32, u32) {
        (self.manifest.input.width, self.manifest.input.height)
    }

    /// The input size a frame of `source` (width, height) is fitted to: the camera's shape
    /// when the model takes any size (`detect.input_size`, [`choice::shape_for`]).
    pub fn input_size_for(&self, source: (u32, u32)) -> (u32, u32) {
        choice::shape_for(&self.manifest.input, self.config.input_size, source)
    }

    /// The precision that runs and why it was chosen.
    pub fn precision(&self) -> &PrecisionPick {
        &self.precision
    }

    /// The model file that runs.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// Detects objects in `frame`, writing them into `out` (cleared first) in
    /// source-frame pixels, highest score first.
    pub fn detect(&mut self, frame: &Frame<'_>, out: &mut Vec<Detection>) -> Result<()> {
        let (w, h) = self.input_size_for(frame.source_size);
        let (w, h) = (w as usize, h as usize);
        self.fit_buffers(w, h);
        let spec = &self.manifest.input;
        let need = frame.stride * (h - 1) + w * 3;
        if frame.stride < w * 3 || frame.data.len() < need {
            return Err(Error::Inference(format!(
                "frame of {} bytes with stride {} is not a {w}x{h} 3-channel image",
                frame.data.len(),
                frame.stride
            )));
        }
        preprocess::fill_nchw(
            frame.data,
            w,
            h,
            frame.stride,
            frame.format,
            spec.colour,
            spec.mean,
            spec.std,
            &mut self.input,
        );
        self.finish(frame.source_size, (w as u32, h as u32), out)
    }

    /// Sizes the input buffers for a `w`×`h` input; allocates only for a larger shape than
    /// any before.
    fn fit_buffers(&mut self, w: usize, h: usize) {
        let n = 3 * w * h;
        self.input.resize(n, 0.0);
        self.packed.resize(n, 0);
    }

    /// Detects objects in a decoded YUV frame of any size: it is scaled (area filter) and
    /// converted to the model's input in one pass. Boxes come out in the frame's pixels.
    pub fn detect_yuv(&mut self, frame: &YuvImage<'_>, out: &mut Vec<Detection>) -> Result<()> {
        let (sw, sh) = (frame.width as u32, frame.height as u32);
        let (iw, ih) = self.input_size_for((sw, sh));
        let (w, h) = (iw as usize, ih as usize);
        self.fit_buffers(w, h);
        let spec = &self.manifest.input;
        let place = match spec.resize {
            Resize::Stretch => Placement {
                x: 0,
                y: 0,
                width: w,
                height: h,
            },
            Resize::Letterbox => {
                let (cw, ch) = letterbox_content(sw, sh, iw, ih);
                // Black bars, as GStreamer's videoscale add-borders paints them.
                self.packed.fill(0);
                Placement {
                    x: (w - cw as usize) / 2,
                    y: (h - ch as usize) / 2,
                    width: cw as usize,
                    height: ch as usize,
                }
            }
        };
        let order = match spec.colour {
            ColourOrder::Rgb => Order::Rgb,
            ColourOrder::Bgr => Order::Bgr,
        };
        self.resampler
            .to_rgb(frame, &mut self.packed, w * 3, place, order)
            .map_err(|e| Error::Inference(format!("frame: {e}")))?;
        preprocess::fill_nchw(
            &self.packed,
            w,
            h,
            w * 3,
            spec.colour,
            spec.colour,
            spec.mean,
            spec.std,
            &mut self.input,
        );
        self.finish((sw, sh), (iw, ih), out)
    }

    /// Runs the model on the prepared `input` (width, height) and maps the boxes to a
    /// `source_size` frame.
    fn finish(
        &mut self,
        source_size: (u32, u32),
        input: (u32, u32),
        out: &mut Vec<Detection>,
    ) -> Result<()> {
        let map = ResizeMap::new(
            self.manifest.input.resize,
            source_size.0,
            source_size.1,
            input.0,
            input.1,
        );
        self.run_decode(input)?;
        out.clear();
        out.extend(self.candidates.iter().map(|d| Detection {
            bbox: map.to_source(&d.bbox),
            ..d.clone()
        }));
        Ok(())
    }

    /// Runs the session alone on the input tensor a frame of `source` (width, height) gets,
    /// for benchmarks that compare the pipeline with a bare session loop on the same shape.
    pub fn run_session_only(&mut self, source: (u32, u32)) -> Result<()> {
        let (w, h) = self.input_size_for(source);
        let (w, h) = (w as usize, h as usize);
        self.fit_buffers(w, h);
        let t = TensorRef::from_array_view(([1usize, 3, h, w], &self.input[..3 * w * h]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        self.session
            .run(ort::inputs![t])
            .map_err(|e| Error::Inference(e.to_string()))?;
        Ok(())
    }

    /// Runs the session on `self.input` holding a `width`×`height` input and decodes into
    /// `self.candidates` (model pixels, after NMS).
    fn run_decode(&mut self, (width, height): (u32, u32)) -> Result<()> {
        let (w, h) = (width as usize, height as usize);
        let t = TensorRef::from_array_view(([1usize, 3, h, w], &self.input[..3 * w * h]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![t])
            .map_err(|e| Error::Inference(e.to_string()))?;
        let tensor = |i: usize| -> Result<&[f32]> {
            outputs[i]
                .try_extract_tensor::<f32>()
                .map(|(_, d)| d)
                .map_err(|e| Error::Inference(format!("output {i}: {e}")))
        };
        let params = &self.config.decode;
        let out = &mut self.candidates;
        match &self.plan {
            Plan::Nanodet { levels } => {
                let mut lv = Vec::with_capacity(levels.len());
                for &(stride, s, b) in levels {
                    lv.push(NanodetLevel {
                        stride,
                        scores: tensor(s)?,
                        boxes: tensor(b)?,
                    });
                }
                postprocess::decode_nanodet(
                    &lv,
                    self.num_classes,
                    self.manifest.output.reg_max,
                    width,
                    params,
                    out,
                );
            }
            Plan::Yolov8 { output, transposed } => postprocess::decode_yolov8(
                tensor(*output)?,
                self.num_classes,
                *transposed,
                params,
                out,
            ),
            Plan::Ssd {
                boxes,
                scores,
                classes,
                count,
            } => {
                let n = match count {
                    Some(c) => tensor(*c)?.first().map(|v| v.max(0.0) as usize),
                    None => None,
                };
                let o = &self.manifest.output;
                let layout = SsdLayout {
                    yxyx: o.box_order == BoxOrder::Yxyx,
                    normalized: o.normalized,
                    class_offset: o.class_offset,
                };
                postprocess::decode_ssd(
                    tensor(*boxes)?,
                    tensor(*scores)?,
                    tensor(*classes)?,
                    n,
                    layout,
                    (width, height),
                    params,
                    out,
                );
            }
        }
        out.retain(|d| (d.class_id as usize) < self.num_classes);
        postprocess::nms_per_class(out, params.nms_iou, params.max_detections);
        Ok(())
    }

    /// Runs the model once on a blank input and matches its actual output
    /// shapes to the manifest's decoder.
    fn make_plan(&mut self) -> Result<Plan> {
        let spec = &self.manifest.input;
        let (w, h) = (spec.width as usize, spec.height as usize);
        let names: Vec<String> = self
            .session
            .outputs()
            .iter()
            .map(|o| o.name().to_lowercase())
            .collect();
        let t = TensorRef::from_array_view(([1usize, 3, h, w], &self.input[..3 * w * h]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![t])
            .map_err(|e| Error::Model {
                path: self.model_path.clone(),
                msg: format!("test run on a blank {w}x{h} frame failed: {e}"),
            })?;
        let mut shapes = Vec::new();
        for i in 0..outputs.len() {
            let shape = outputs[i]
                .try_extract_tensor::<f32>()
                .map(|(s, _)| s.iter().map(|&d| d as usize).collect::<Vec<_>>())
                .unwrap_or_default();
            shapes.push(shape);
        }
        let format = self.manifest.output.format;
        let fail = |msg: String| Error::Output {
            format,
            msg: format!("{msg}; outputs are {shapes:?}"),
        };
        let nc = self.num_classes;
        let numel = |s: &Vec<usize>| s.iter().product::<usize>();
        match format {
            OutputFormat::Nanodet => {
                let bins = 4 * (self.manifest.output.reg_max as usize + 1);
                let mut levels = Vec::new();
                for &stride in &self.manifest.output.strides {
                    let n = spec.width.div_ceil(stride) as usize
                        * spec.height.div_ceil(stride) as usize;
                    let find = |c: usize| {
                        shapes
                            .iter()
                            .position(|s| s.len() >= 2 && s[s.len() - 1] == c && numel(s) == n * c)
                    };
                    let scores = find(nc).ok_or_else(|| {
                        fail(format!("no [1,{n},{nc}] score tensor for stride {stride}"))
                    })?;
                    let boxes = find(bins).ok_or_else(|| {
                        fail(format!("no [1,{n},{bins}] box tensor for stride {stride}"))
                    })?;
                    levels.push((stride, scores, boxes));
                }
                Ok(Plan::Nanodet { levels })
            }
            OutputFormat::Yolov8 => {
                let row = 4 + nc;
                for (i, s) in shapes.iter().enumerate() {
                    if s.len() == 3 && s[1] == row {
                        return Ok(Plan::Yolov8 {
                            output: i,
                            transposed: false,
                        });
                    }
                    if s.len() == 3 && s[2] == row {
                        return Ok(Plan::Yolov8 {
                            output: i,
                            transposed: true,
                        });
                    }
                }
                Err(fail(format!(
                    "no [1,{row},N] or [1,N,{row}] output for {nc} labels"
                )))
            }
            OutputFormat::Ssd => {
                let boxes = shapes
                    .iter()
                    .position(|s| s.len() >= 2 && s[s.len() - 1] == 4)
                    .ok_or_else(|| fail("no [1,N,4] box output".into()))?;
                let n = numel(&shapes[boxes]) / 4;
                let per_box: Vec<usize> = (0..shapes.len())
                    .filter(|&i| i != boxes && numel(&shapes[i]) == n)
                    .collect();
                let by_name = |key: &str| per_box.iter().copied().find(|&i| names[i].contains(key));
                let (classes, scores) = match (by_name("class"), by_name("score")) {
                    (Some(c), Some(s)) => (c, s),
                    // TF Object Detection API order: boxes, classes, scores, count.
                    _ if per_box.len() == 2 => (per_box[0], per_box[1]),
                    _ => return Err(fail("cannot tell the score and class outputs apart".into())),
                };
                let count = (0..shapes.len()).find(|&i| numel(&shapes[i]) == 1 && n != 1);
                Ok(Plan::Ssd {
                    boxes,
                    scores,
                    classes,
                    count,
                })
            }
        }
    }
}

fn check_input(session: &Session, manifest: &ModelManifest) -> std::result::Result<(), String> {
    let inputs = session.inputs();
    if inputs.len() != 1 {
        return Err(format!(
            "has {} inputs; ioc-agent feeds exactly one image tensor",
            inputs.len()
        ));
    }
    if let ValueType::Tensor { shape, .. } = inputs[0].dtype() {
        let (w, h) = (manifest.input.width as i64, manifest.input.height as i64);
        if manifest.input.multiple.is_some() && shape.len() == 4 && (shape[2] > 0 || shape[3] > 0) {
            return Err(format!(
                "input {:?} has the fixed shape {:?}, but the manifest's input.multiple says it takes \
                 any size: remove input.multiple or use a file with symbolic height and width",
                inputs[0].name(),
                &shape[..]
            ));
        }
        let ok = shape.len() == 4
            && (shape[1] == 3 || shape[1] < 0)
            && (shape[2] == h || shape[2] < 0)
            && (shape[3] == w || shape[3] < 0);
        if !ok {
            return Err(format!(
                "input {:?} has shape {:?}, but the manifest says [1,3,{h},{w}] (input.width/input.height)",
                inputs[0].name(),
                &shape[..]
            ));
        }
        Ok(())
    } else {
        Err(format!("input {:?} is not a tensor", inputs[0].name()))
    }
}
