#!/usr/bin/env python3
"""Makes the model catalogue's variants of NanoDet-g from its float ONNX file.

Run by `models/make-variants.sh` (which builds a throw-away virtualenv with the pinned
packages and the calibration frames); the outputs are committed with their sha256 in
`nanodet-g-416.toml` and `PROVENANCE.md`, like the float file. Two steps:

1. **Any input size.** tf2onnx wrote the input as [1,3,416,416]; every operator after it
   (convolutions, the 2x Resize of the feature pyramid, the reshapes to [1,-1,C]) works for
   any height and width that are multiples of 32 (the largest stride). Making the input's
   two spatial dims symbolic lets the agent feed each camera an input of its own shape
   (416x320 for 4:3, 416x256 for 16:9) instead of stretching it into a square.
2. **INT8.** Static quantization, QDQ format, per-channel signed weights and unsigned
   activations (U8S8, what ONNX Runtime's VNNI kernels run fastest). Only
   Conv, LeakyRelu, Add, Concat, Resize and MaxPool are quantized: with the default
   operator list the Sigmoid of the score heads and the Pad/Split/Reshape/Transpose around
   them are quantized too and the scores collapse (best score on dog.jpg 0.16 instead of
   0.68). Keeping the first convolution and the heads in float was measured to cost about
   50 % more time for no gain in kept detections, so they are quantized.
   Calibration: frames of vtest.avi (the project's footage) and of three road scenes the
   project's scenario generator makes from it (traffic_flowing, wrong_way,
   parked_behind_bus: vehicles on the move, parked, hidden), at the square and the 4:3 input
   shapes; never the still images the quality test decodes. vtest alone has no vehicle on the
   move: calibrated on it, INT8 scored cars lower than float and lost a queue of them that
   float found (tests/scenarios/congestion_queue.toml, not a calibration scene); vehicles
   pasted by hand on vtest frames did not bring it back, the generator's road scenes did.

Usage: make_variants.py FLOAT_IN FLOAT_OUT INT8_OUT FRAMES_DIR
FRAMES_DIR holds raw BGR frames `*.WxH.bgr` (uint8, H*W*3) made by make-variants.sh.
"""

import glob
import os
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32).reshape(3, 1, 1)
QUANTIZED_OPS = ["Conv", "LeakyRelu", "Add", "Concat", "Resize", "MaxPool"]


def make_symbolic(src: str, dst: str) -> None:
    m = onnx.load(src)
    (inp,) = m.graph.input
    dims = inp.type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "height"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "width"
    # Output shapes were already symbolic (unk__*); intermediate shapes are not stored.
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def tensor(frame: np.ndarray) -> np.ndarray:
    """HxWx3 BGR uint8 -> [1,3,H,W] float, normalised as the manifest says."""
    x = frame.astype(np.float32).transpose(2, 0, 1)
    return ((x - MEAN) / STD)[None]


def load_frames(frames_dir: str):
    out = []
    for path in sorted(glob.glob(os.path.join(frames_dir, "*.bgr"))):
        w, h = (int(v) for v in path.rsplit(".", 2)[1].split("x"))
        raw = np.fromfile(path, dtype=np.uint8)
        n = raw.size // (w * h * 3)
        out.extend(raw[: n * w * h * 3].reshape(n, h, w, 3))
    if not out:
        sys.exit(f"no calibration frames in {frames_dir}")
    return out


class Frames(CalibrationDataReader):
    def __init__(self, name: str, frames):
        self.name = name
        self.it = iter(frames)

    def get_next(self):
        f = next(self.it, None)
        return None if f is None else {self.name: tensor(f)}


def main() -> None:
    float_in, float_out, int8_out, frames_dir = sys.argv[1:5]
    make_symbolic(float_in, float_out)
    prepped = int8_out + ".prep.onnx"
    quant_pre_process(float_out, prepped, skip_symbolic_shape=True)
    frames = load_frames(frames_dir)
    name = onnx.load(float_out).graph.input[0].name
    quantize_static(
        prepped,
        int8_out,
        Frames(name, frames),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=QUANTIZED_OPS,
        calibrate_method=CalibrationMethod.MinMax,
    )
    os.remove(prepped)
    print(f"{len(frames)} calibration frames; wrote {float_out} and {int8_out}")


if __name__ == "__main__":
    main()
