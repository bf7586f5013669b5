//! Output decoders (NanoDet, YOLOv8/YOLO11, SSD) and per-class NMS.
//!
//! Decoders work on plain `&[f32]` slices plus shapes so they can be tested on
//! constructed tensors without ONNX Runtime. Boxes come out in model-input
//! pixels; [`crate::ResizeMap`] takes them back to the source frame.

use crate::{BBox, Detection};

/// Thresholds shared by every decoder.
#[derive(Clone, Copy, Debug)]
pub struct DecodeParams {
    /// Minimum class score to keep a candidate.
    pub score_threshold: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub nms_iou: f32,
    /// Keep at most this many detections per frame (highest scores first).
    pub max_detections: usize,
}

impl Default for DecodeParams {
    fn default() -> Self {
        Self {
            score_threshold: 0.35,
            nms_iou: 0.5,
            max_detections: 100,
        }
    }
}

/// One NanoDet level: the score and box tensors of one stride.
pub struct NanodetLevel<'a> {
    /// Feature-map stride in input pixels.
    pub stride: u32,
    /// `[N, C]` class scores, sigmoid applied, row-major.
    pub scores: &'a [f32],
    /// `[N, 4 * (reg_max + 1)]` side-distance distributions (logits).
    pub boxes: &'a [f32],
}

/// Decodes NanoDet/GFL outputs for an input of `width`×`height` into `out`
/// (cleared first), before NMS. Each anchor point keeps its best class.
pub fn decode_nanodet(
    levels: &[NanodetLevel<'_>],
    num_classes: usize,
    reg_max: u32,
    width: u32,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let bins = reg_max as usize + 1;
    for level in levels {
        let grid_w = width.div_ceil(level.stride) as usize;
        let n = level.scores.len() / num_classes;
        let s = level.stride as f32;
        for i in 0..n {
            let row = &level.scores[i * num_classes..(i + 1) * num_classes];
            let (class_id, score) = argmax(row);
            if score < params.score_threshold {
                continue;
            }
            let cx = ((i % grid_w) as f32 + 0.5) * s;
            let cy = ((i / grid_w) as f32 + 0.5) * s;
            let dist = &level.boxes[i * 4 * bins..(i + 1) * 4 * bins];
            let side = |k: usize| expected_bin(&dist[k * bins..(k + 1) * bins]) * s;
            out.push(Detection {
                class_id: class_id as u16,
                score,
                bbox: BBox::new(cx - side(0), cy - side(1), cx + side(2), cy + side(3)),
            });
        }
    }
}

/// Decodes a YOLOv8/YOLO11 `[1, 4 + C, N]` output (or `[1, N, 4 + C]` when
/// `transposed`) into `out` (cleared first), before NMS.
pub fn decode_yolov8(
    data: &[f32],
    num_classes: usize,
    transposed: bool,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let row = 4 + num_classes;
    let n = data.len() / row;
    // at(i, k): attribute k of candidate i, whatever the layout.
    let at = |i: usize, k: usize| {
        if transposed {
            data[i * row + k]
        } else {
            data[k * n + i]
        }
    };
    for i in 0..n {
        let mut best = (0usize, f32::MIN);
        for c in 0..num_classes {
            let v = at(i, 4 + c);
            if v > best.1 {
                best = (c, v);
            }
        }
        if best.1 < params.score_threshold {
            continue;
        }
        let (cx, cy, w, h) = (at(i, 0), at(i, 1), at(i, 2), at(i, 3));
        out.push(Detection {
            class_id: best.0 as u16,
            score: best.1,
            bbox: BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
        });
    }
}

/// SSD decoding options from the manifest.
#[derive(Clone, Copy, Debug)]
pub struct SsdLayout {
    /// Boxes are `ymin,xmin,ymax,xmax` (true) or `xmin,ymin,xmax,ymax`.
    pub yxyx: bool,
    /// Boxes are normalised 0..1; scaled by the input size when true.
    pub normalized: bool,
    /// Subtracted from the class ids the model gives.
    pub class_offset: i32,
}

/// Decodes SSD-style `boxes [N,4]`, `scores [N]`, `classes [N]` into `out`
/// (cleared first). `count` limits N when the model reports it.
#[allow(clippy::too_many_arguments)]
pub fn decode_ssd(
    boxes: &[f32],
    scores: &[f32],
    classes: &[f32],
    count: Option<usize>,
    layout: SsdLayout,
    input: (u32, u32),
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let n = scores.len().min(classes.len()).min(boxes.len() / 4);
    let n = count.map_or(n, |c| c.min(n));
    let (sx, sy) = if layout.normalized {
        (input.0 as f32, input.1 as f32)
    } else {
        (1.0, 1.0)
    };
    for i in 0..n {
        if scores[i] < params.score_threshold {
            continue;
        }
        let class = classes[i].round() as i32 - layout.class_offset;
        if !(0..=u16::MAX as i32).contains(&class) {
            continue;
        }
        let b = &boxes[i * 4..i * 4 + 4];
        let (x1, y1, x2, y2) = if layout.yxyx {
            (b[1], b[0], b[3], b[2])
        } else {
            (b[0], b[1], b[2], b[3])
        };
        out.push(Detection {
            class_id: class as u16,
            score: scores[i],
            bbox: BBox::new(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
        });
    }
}

/// Per-class greedy non-maximum suppression in place: highest score first, a
/// box is dropped when it overlaps a kept box of the same class by more than
/// `iou`. Keeps at most `max` boxes; leaves them sorted by descending score.
pub fn nms_per_class(dets: &mut Vec<Detection>, iou: f32, max: usize) {
    dets.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = 0;
    for i in 0..dets.len() {
        if kept == max {
            break;
        }
        let suppressed = dets[..kept]
            .iter()
            .any(|k| k.class_id == dets[i].class_id && k.bbox.iou(&dets[i].bbox) > iou);
        if !suppressed {
            dets.swap(kept, i);
            kept += 1;
        }
    }
    dets.truncate(kept);
}

fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::MIN);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Σ k·softmax(logits)_k: the expected bin of a distance distribution.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    let mut weighted = 0.0;
    for (k, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * k as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: u16, score: f32, b: [f32; 4]) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox::new(b[0], b[1], b[2], b[3]),
        }
    }

    #[test]
    fn nms_suppresses_overlaps_within_a_class_only() {
        let mut d = vec![
            det(0, 0.6, [0.0, 0.0, 10.0, 10.0]),
            det(0, 0.9, [1.0, 1.0, 11.0, 11.0]),
            det(1, 0.8, [0.0, 0.0, 10.0, 10.0]), // other class: kept
            det(0, 0.7, [50.0, 50.0, 60.0, 60.0]), // far away: kept
        ];
        nms_per_class(&mut d, 0.5, 100);
        let scores: Vec<f32> = d.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.7]);
        nms_per_class(&mut d, 0.5, 2);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn nanodet_decodes_point_centre_and_expected_distances() {
        // One level, stride 8, 16x16 input: a 2x2 grid, 2 classes, reg_max 1 (2 bins).
        let mut scores = vec![0.0f32; 4 * 2];
        scores[3 * 2 + 1] = 0.9; // point 3 = (x 1, y 1), class 1
        scores[2 * 2] = 0.2; // under threshold
        let mut boxes = vec![0.0f32; 4 * 4 * 2];
        // Point 3: left/top certain bin 1 (1 * 8 px), right/bottom uniform (0.5 * 8 px).
        let p = &mut boxes[3 * 8..4 * 8];
        p.copy_from_slice(&[-20.0, 20.0, -20.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
        let level = NanodetLevel {
            stride: 8,
            scores: &scores,
            boxes: &boxes,
        };
        let mut out = Vec::new();
        decode_nanodet(&[level], 2, 1, 16, &DecodeParams::default(), &mut out);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!((d.class_id, d.score), (1, 0.9));
        // Centre (12, 12).
        let b = d.bbox;
        assert!(
            (b.x1 - 4.0).abs() < 1e-3 && (b.y1 - 4.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.x2 - 16.0).abs() < 1e-3 && (b.y2 - 16.0).abs() < 1e-3,
            "{b:?}"
        );
    }

    #[test]
    fn yolov8_reads_both_layouts() {
        // Three candidates, two classes; candidate 1 is a class-1 box at (50,40) 20x10.
        let cand = [
            [10.0, 10.0, 4.0, 4.0, 0.1, 0.2],
            [50.0, 40.0, 20.0, 10.0, 0.3, 0.95],
            [90.0, 90.0, 8.0, 8.0, 0.5, 0.1],
        ];
        let rows: Vec<f32> = cand.iter().flatten().copied().collect();
        let mut cols = vec![0.0; 18];
        for (i, c) in cand.iter().enumerate() {
            for (k, v) in c.iter().enumerate() {
                cols[k * 3 + i] = *v;
            }
        }
        let p = DecodeParams::default();
        for (data, transposed) in [(&rows, true), (&cols, false)] {
            let mut out = Vec::new();
            decode_yolov8(data, 2, transposed, &p, &mut out);
            assert_eq!(out.len(), 2, "transposed={transposed}");
            assert_eq!(out[0].class_id, 1);
            assert_eq!(out[0].bbox, BBox::new(40.0, 35.0, 60.0, 45.0));
            assert_eq!((out[1].class_id, out[1].score), (0, 0.5));
        }
    }

    #[test]
    fn ssd_scales_normalised_yxyx_boxes_and_offsets_classes() {
        let boxes = [0.1, 0.2, 0.5, 0.6, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.1, 0.1];
        let scores = [0.9, 0.1, 0.8];
        let classes = [1.0, 3.0, 0.0]; // with offset 1, class 0 is background: dropped
        let layout = SsdLayout {
            yxyx: true,
            normalized: true,
            class_offset: 1,
        };
        let mut out = Vec::new();
        decode_ssd(
            &boxes,
            &scores,
            &classes,
            None,
            layout,
            (100, 200),
            &DecodeParams::default(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 0);
        let b = out[0].bbox;
        assert!((b.x1 - 20.0).abs() < 1e-4 && (b.y1 - 20.0).abs() < 1e-4);
        assert!((b.x2 - 60.0).abs() < 1e-4 && (b.y2 - 100.0).abs() < 1e-4);
        // A reported count limits what is read.
        decode_ssd(
            &boxes,
            &scores,
            &[1.0, 1.0, 1.0],
            Some(1),
            layout,
            (100, 200),
            &DecodeParams::default(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
