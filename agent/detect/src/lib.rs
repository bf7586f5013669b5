//! Object detection for `ioc-agent`.
//!
//! The data flow inside this crate follows one frame:
//! [`manifest`] says how a model wants its input and how to read its output;
//! [`preprocess`] turns a packed 8-bit BGR/RGB image (already at the model's
//! input size) into the model's normalised `NCHW` tensor; [`Detector`] runs it
//! through one ONNX Runtime session; [`postprocess`] decodes the raw tensors
//! (NanoDet, YOLOv8/YOLO11, SSD) and applies per-class NMS; boxes come out in
//! source-frame pixels.
//!
//! Threading: a [`Detector`] is `Send` but not shared; the agent owns one per
//! model on a dedicated thread and feeds it through a bounded queue.

pub mod choice;
pub mod detector;
pub mod geometry;
pub mod manifest;
pub mod postprocess;
pub mod preprocess;
pub mod runtime;
pub mod yuv;

pub use choice::{InputSize, PrecisionChoice, PrecisionPick};
pub use detector::{Detector, DetectorConfig, Frame, PixelFormat};
pub use geometry::{BBox, Resize, ResizeMap};
pub use manifest::{ModelManifest, OutputFormat, Precision};

/// One detected object, in source-frame pixel coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Index into the model's label list.
    pub class_id: u16,
    /// Confidence in 0..=1.
    pub score: f32,
    /// Box in source-frame pixels.
    pub bbox: BBox,
}

/// Errors of this crate. Messages name the file or key at fault and say how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model manifest could not be read or is invalid.
    #[error("model manifest {path}: {msg}")]
    Manifest {
        /// The manifest file.
        path: std::path::PathBuf,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// The model file is missing, damaged or does not match its manifest.
    #[error("model {path}: {msg}")]
    Model {
        /// The model file.
        path: std::path::PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The ONNX Runtime library could not be found or loaded.
    #[error("{0}")]
    Runtime(String),
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model's outputs do not fit the decoder named in the manifest.
    #[error("model output does not match format {format:?}: {msg}")]
    Output {
        /// The output format from the manifest.
        format: OutputFormat,
        /// What did not match.
        msg: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
