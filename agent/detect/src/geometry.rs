//! Boxes and the mapping between source-frame pixels and model-input pixels.

use serde::Deserialize;

/// An axis-aligned box `x1,y1` (top-left) to `x2,y2` (bottom-right), in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// Box from its edges.
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// Width (0 for an inverted box).
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height (0 for an inverted box).
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area (0 for an inverted box).
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Intersection over union; 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The box clamped into `0..w` × `0..h`.
    pub fn clamp(&self, w: f32, h: f32) -> BBox {
        BBox::new(
            self.x1.clamp(0.0, w),
            self.y1.clamp(0.0, h),
            self.x2.clamp(0.0, w),
            self.y2.clamp(0.0, h),
        )
    }
}

/// How a frame is fitted to the model's input size.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale each axis independently (the aspect ratio changes). NanoDet was trained so.
    #[default]
    Stretch,
    /// Scale uniformly and pad the rest with black, centred. YOLO models expect this.
    Letterbox,
}

/// The affine map from model-input pixels back to source-frame pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizeMap {
    /// Source pixels per model pixel, horizontally.
    pub scale_x: f32,
    /// Source pixels per model pixel, vertically.
    pub scale_y: f32,
    /// Left padding in model pixels.
    pub pad_x: f32,
    /// Top padding in model pixels.
    pub pad_y: f32,
    /// Source frame width, for clamping.
    pub src_w: f32,
    /// Source frame height, for clamping.
    pub src_h: f32,
}

impl ResizeMap {
    /// The map for a `src_w`×`src_h` frame fitted into `dst_w`×`dst_h` by `mode`.
    ///
    /// For letterboxing it reproduces GStreamer `videoscale add-borders=true`:
    /// uniform scale, content centred.
    pub fn new(mode: Resize, src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Self {
        let (sw, sh, dw, dh) = (src_w as f32, src_h as f32, dst_w as f32, dst_h as f32);
        match mode {
            Resize::Stretch => Self {
                scale_x: sw / dw,
                scale_y: sh / dh,
                pad_x: 0.0,
                pad_y: 0.0,
                src_w: sw,
                src_h: sh,
            },
            Resize::Letterbox => {
                let (cw, ch) = letterbox_content(src_w, src_h, dst_w, dst_h);
                Self {
                    scale_x: sw / cw as f32,
                    scale_y: sh / ch as f32,
                    pad_x: ((dst_w - cw) / 2) as f32,
                    pad_y: ((dst_h - ch) / 2) as f32,
                    src_w: sw,
                    src_h: sh,
                }
            }
        }
    }

    /// A model-input box in source-frame pixels, clamped to the frame.
    pub fn to_source(&self, b: &BBox) -> BBox {
        BBox::new(
            (b.x1 - self.pad_x) * self.scale_x,
            (b.y1 - self.pad_y) * self.scale_y,
            (b.x2 - self.pad_x) * self.scale_x,
            (b.y2 - self.pad_y) * self.scale_y,
        )
        .clamp(self.src_w, self.src_h)
    }
}

/// Size of the scaled content inside a letterboxed `dst_w`×`dst_h` frame.
pub fn letterbox_content(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> (u32, u32) {
    // Compare src_w/src_h with dst_w/dst_h in integers to avoid rounding flips.
    if (src_w as u64) * (dst_h as u64) >= (src_h as u64) * (dst_w as u64) {
        let h = ((src_h as u64 * dst_w as u64 + src_w as u64 / 2) / src_w.max(1) as u64) as u32;
        (dst_w, h.clamp(1, dst_h))
    } else {
        let w = ((src_w as u64 * dst_h as u64 + src_h as u64 / 2) / src_h.max(1) as u64) as u32;
        (w.clamp(1, dst_w), dst_h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        let half = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(BBox::default().iou(&BBox::default()), 0.0);
    }

    #[test]
    fn stretch_map_scales_each_axis() {
        let m = ResizeMap::new(Resize::Stretch, 1920, 1080, 416, 416);
        let b = m.to_source(&BBox::new(208.0, 208.0, 416.0, 416.0));
        assert_eq!(b, BBox::new(960.0, 540.0, 1920.0, 1080.0));
    }

    #[test]
    fn letterbox_map_removes_padding_and_scales_uniformly() {
        // 1920x1080 into 640x640: content 640x360, 140 px bars top and bottom.
        assert_eq!(letterbox_content(1920, 1080, 640, 640), (640, 360));
        let m = ResizeMap::new(Resize::Letterbox, 1920, 1080, 640, 640);
        assert_eq!(m.pad_y, 140.0);
        let b = m.to_source(&BBox::new(0.0, 140.0, 320.0, 320.0));
        assert!((b.x2 - 960.0).abs() < 1e-3 && (b.y2 - 540.0).abs() < 1e-3 && b.y1.abs() < 1e-3);
        // Portrait sources pad left and right.
        assert_eq!(letterbox_content(1080, 1920, 640, 640), (360, 640));
    }
}
