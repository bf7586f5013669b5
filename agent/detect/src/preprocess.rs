//! Packed 8-bit frames to the model's normalised `NCHW` f32 tensor.
//!
//! Hot path: runs once per detected frame, writes into a caller-owned buffer
//! and allocates nothing.

use crate::manifest::ColourOrder;

/// Fills `out` (`3 * width * height` floats, planar `NCHW` with N = 1) from a
/// packed 3-byte-per-pixel image whose rows are `stride` bytes apart.
///
/// `src_order` is the byte order of the pixels, `dst_order` the channel order
/// the model wants; `mean` and `std` are in `dst_order`.
#[allow(clippy::too_many_arguments)]
pub fn fill_nchw(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    src_order: ColourOrder,
    dst_order: ColourOrder,
    mean: [f32; 3],
    std: [f32; 3],
    out: &mut [f32],
) {
    let plane = width * height;
    assert!(out.len() >= 3 * plane, "tensor buffer too small");
    assert!(stride >= width * 3 && src.len() >= stride * (height - 1) + width * 3);
    // Channel c of the tensor reads byte map[c] of each pixel.
    let map = if src_order == dst_order {
        [0, 1, 2]
    } else {
        [2, 1, 0]
    };
    let scale = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    for y in 0..height {
        let row = &src[y * stride..y * stride + width * 3];
        let o = y * width;
        for (x, px) in row.chunks_exact(3).enumerate() {
            p0[o + x] = (px[map[0]] as f32 - mean[0]) * scale[0];
            p1[o + x] = (px[map[1]] as f32 - mean[1]) * scale[1];
            p2[o + x] = (px[map[2]] as f32 - mean[2]) * scale[2];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_channels_normalises_and_skips_row_padding() {
        // 2x2 BGR image with 2 bytes of row padding.
        let src = [
            10, 20, 30, 40, 50, 60, 0, 0, //
            70, 80, 90, 100, 110, 120, 0, 0,
        ];
        let mut out = [0f32; 12];
        fill_nchw(
            &src,
            2,
            2,
            8,
            ColourOrder::Bgr,
            ColourOrder::Rgb,
            [0.0, 10.0, 0.0],
            [1.0, 2.0, 10.0],
            &mut out,
        );
        // R plane = byte 2 of each pixel; G = (byte 1 - 10) / 2; B = byte 0 / 10.
        assert_eq!(&out[0..4], &[30.0, 60.0, 90.0, 120.0]);
        assert_eq!(&out[4..8], &[5.0, 20.0, 35.0, 50.0]);
        assert_eq!(&out[8..12], &[1.0, 4.0, 7.0, 10.0]);
    }
}
