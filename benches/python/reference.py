"""The Python reference the cameras-per-box benchmark compares ioc-agent with.

One process per camera, as a site would run a simple script: OpenCV reads the RTSP stream
(FFmpeg backend, every frame decoded), every 1/fps seconds the newest frame is stretched to
416x416, normalised and run through the same NanoDet-g model with onnxruntime (one
intra-op thread), and decoded with the same post-processing as the agent (score threshold
0.35, per-class NMS at IoU 0.5). It prints one JSON line a second with its counters:

    {"t": 12.0, "detected": 58, "latency_ms": 81.2, "lag_s": 0.1}

`lag_s` is how far reading is behind the stream (wall time since the first frame minus the
stream time of the frames read): a script that cannot keep up falls further behind even
while it still detects 5 frames a second, on older and older frames.

Run by benches/benches/cameras.rs inside the venv deploy/bench-setup.sh makes.
"""

import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32).reshape(3, 1, 1)
SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11


def decode(outputs, src_w, src_h, score_thr=0.35, iou=0.5):
    """NanoDet outputs -> [(class, score, x1, y1, x2, y2)] in source pixels, after NMS."""
    by_shape = {}
    for o in outputs:
        by_shape.setdefault(o.shape[-1], []).append(o.reshape(-1, o.shape[-1]))
    dets = []
    for stride in STRIDES:
        n = ((SIZE + stride - 1) // stride) ** 2
        scores = next(s for s in by_shape[80] if s.shape[0] == n)
        boxes = next(b for b in by_shape[4 * BINS] if b.shape[0] == n)
        cls = scores.argmax(axis=1)
        best = scores[np.arange(n), cls]
        keep = np.nonzero(best >= score_thr)[0]
        if keep.size == 0:
            continue
        grid = (SIZE + stride - 1) // stride
        cx = (keep % grid + 0.5) * stride
        cy = (keep // grid + 0.5) * stride
        d = boxes[keep].reshape(-1, 4, BINS)
        d = np.exp(d - d.max(axis=2, keepdims=True))
        d = d / d.sum(axis=2, keepdims=True)
        dist = (d * np.arange(BINS, dtype=np.float32)).sum(axis=2) * stride
        sx, sy = src_w / SIZE, src_h / SIZE
        for j, k in enumerate(keep):
            dets.append((int(cls[k]), float(best[k]),
                         (cx[j] - dist[j, 0]) * sx, (cy[j] - dist[j, 1]) * sy,
                         (cx[j] + dist[j, 2]) * sx, (cy[j] + dist[j, 3]) * sy))
    dets.sort(key=lambda x: -x[1])
    out = []
    for d in dets:
        ok = True
        for o in out:
            if o[0] != d[0]:
                continue
            iw = max(0.0, min(d[4], o[4]) - max(d[2], o[2]))
            ih = max(0.0, min(d[5], o[5]) - max(d[3], o[3]))
            inter = iw * ih
            union = (d[4] - d[2]) * (d[5] - d[3]) + (o[4] - o[2]) * (o[5] - o[3]) - inter
            if union > 0 and inter / union > iou:
                ok = False
                break
        if ok:
            out.append(d)
        if len(out) >= 100:
            break
    return out


def main():
    url, model, fps, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        print(json.dumps({"error": "cannot open stream"}), flush=True)
        return 1
    stream_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    start = time.monotonic()
    first = None
    frames = 0
    next_due = start
    next_report = start + 1.0
    detected = 0
    lat = []
    while time.monotonic() - start < seconds:
        ok, frame = cap.read()  # every frame is decoded, as cv2 does
        if not ok:
            break
        now = time.monotonic()
        if first is None:
            first = now
        frames += 1
        if now >= next_due:
            next_due = max(next_due + 1.0 / fps, now - 1.0 / fps)
            h, w = frame.shape[:2]
            x = cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
            x = (x.transpose(2, 0, 1).astype(np.float32) - MEAN) / STD
            t0 = time.monotonic()
            outputs = sess.run(None, {name: x[np.newaxis]})
            decode(outputs, w, h)
            lat.append((time.monotonic() - t0) * 1000.0)
            detected += 1
        if now >= next_report:
            next_report += 1.0
            lag = (now - first) - (frames - 1) / stream_fps
            print(json.dumps({"t": round(now - start, 2), "detected": detected,
                              "latency_ms": round(float(np.median(lat)), 1) if lat else None,
                              "lag_s": round(lag, 3)}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
