//! Decoded frames as the decoder gives them (planar YUV 4:2:0: I420 or NV12) to what the
//! detector, snapshots, motion and tamper checks need: scaled RGB/BGR or grey, in one pass.
//!
//! The agent keeps frames in the decoder's own format and converts only the frames someone
//! looks at, so a frame the detector skips (motion gating, overload) costs no scaling and no
//! colour conversion. Shrinking averages every source pixel under an output pixel (area
//! filter, no aliasing of fine textures); enlarging is bilinear. Separable passes, integer
//! weights; scratch buffers are owned by a [`Resampler`] and reused, so a warmed-up resampler
//! allocates nothing.

/// How the chroma of a 4:2:0 frame is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvLayout {
    /// Three planes: Y, then U, then V (GStreamer `I420`).
    I420,
    /// Two planes: Y, then interleaved U,V (GStreamer `NV12`, hardware decoders).
    Nv12,
}

/// The YUV→RGB matrix of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (standard definition).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD and most IP cameras).
    Bt709,
}

/// A borrowed 4:2:0 frame.
#[derive(Clone, Copy, Debug)]
pub struct YuvImage<'a> {
    /// Chroma storage.
    pub layout: YuvLayout,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luma plane.
    pub y: &'a [u8],
    /// Bytes between luma rows.
    pub y_stride: usize,
    /// U plane (I420) or the interleaved UV plane (NV12).
    pub u: &'a [u8],
    /// Bytes between rows of `u`.
    pub u_stride: usize,
    /// V plane (I420; ignored for NV12).
    pub v: &'a [u8],
    /// Bytes between rows of `v`.
    pub v_stride: usize,
    /// Colour matrix.
    pub matrix: Matrix,
    /// Full-range (0..255) rather than video-range (16..235) samples.
    pub full_range: bool,
}

impl YuvImage<'_> {
    /// Checks that the planes hold the frame the sizes describe.
    pub fn check(&self) -> Result<(), String> {
        let (w, h) = (self.width, self.height);
        if w < 2 || h < 2 {
            return Err(format!("{w}x{h} is too small"));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let need = |stride: usize, row: usize, rows: usize| stride * (rows - 1) + row;
        if self.y_stride < w || self.y.len() < need(self.y_stride, w, h) {
            return Err("luma plane is too small".into());
        }
        let (uw, check_v) = match self.layout {
            YuvLayout::I420 => (cw, true),
            YuvLayout::Nv12 => (2 * cw, false),
        };
        if self.u_stride < uw || self.u.len() < need(self.u_stride, uw, ch) {
            return Err("chroma plane is too small".into());
        }
        if check_v && (self.v_stride < cw || self.v.len() < need(self.v_stride, cw, ch)) {
            return Err("V plane is too small".into());
        }
        Ok(())
    }

    /// The `[Y, U, V]` samples of pixel `(x, y)` (chroma of its 2×2 block). Panics outside
    /// a frame that passed [`Self::check`].
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let (u, v) = self.chroma(y / 2, x / 2);
        [self.y[y * self.y_stride + x], u, v]
    }

    fn chroma(&self, row: usize, x: usize) -> (u8, u8) {
        match self.layout {
            YuvLayout::I420 => (
                self.u[row * self.u_stride + x],
                self.v[row * self.v_stride + x],
            ),
            YuvLayout::Nv12 => {
                let i = row * self.u_stride + 2 * x;
                (self.u[i], self.u[i + 1])
            }
        }
    }
}

/// Byte order of packed output pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// R, G, B.
    Rgb,
    /// B, G, R.
    Bgr,
}

/// A rectangle of output pixels inside a packed destination (for letterboxing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// Fixed-point weight scale (weights of one output sample sum to this).
const ONE: u32 = 1 << 12;

/// Source samples `[start, start + n)` of one output sample, weights `w[off..off + n]`.
#[derive(Clone, Copy, Debug)]
struct Tap {
    start: u32,
    off: u32,
    n: u32,
}

/// Taps of one axis, one [`Tap`] per output sample.
#[derive(Debug, Default)]
struct Axis {
    taps: Vec<Tap>,
    w: Vec<u16>,
    // The same taps padded with zero weights to `width` each (the most any output reads),
    // so the horizontal pass runs a loop of fixed length: output `i` reads `width` samples
    // from `starts[i]` with weights `padded[i * width..][..width]`.
    width: usize,
    starts: Vec<u32>,
    padded: Vec<u16>,
    // What it was made for, to reuse it for the next frame of the same size.
    key: (usize, usize, u64, u64),
}

impl Axis {
    /// Maps `out` samples onto source samples `[lo, lo + len)` of an axis `src` long.
    fn plan(&mut self, src: usize, lo: f64, len: f64, out: usize) {
        let key = (src, out, lo.to_bits(), len.to_bits());
        if self.key == key && !self.taps.is_empty() {
            return;
        }
        self.key = key;
        self.taps.clear();
        self.w.clear();
        let scale = len / out as f64;
        let last = src as i64 - 1;
        for i in 0..out {
            let off = self.w.len() as u32;
            if scale >= 1.0 {
                // Area: every source sample under the output sample, equal weights.
                let a = (lo + i as f64 * scale).round() as i64;
                let b = ((lo + (i + 1) as f64 * scale).round() as i64).max(a + 1);
                let (a, b) = (a.clamp(0, last), b.clamp(1, last + 1));
                let n = (b - a).max(1) as u32;
                self.taps.push(Tap {
                    start: a as u32,
                    off,
                    n,
                });
                let each = ONE / n;
                for k in 0..n {
                    // The rounding remainder goes to the first tap so the weights sum to ONE.
                    let extra = if k == 0 { ONE - each * n } else { 0 };
                    self.w.push((each + extra) as u16);
                }
            } else {
                // Bilinear between the two nearest source samples.
                let c = lo + (i as f64 + 0.5) * scale - 0.5;
                let c0 = c.floor();
                let f = ((c - c0) * ONE as f64).round() as u32;
                let i0 = (c0 as i64).clamp(0, last);
                let i1 = (c0 as i64 + 1).clamp(0, last);
                if i1 == i0 || f == 0 {
                    self.w.push(ONE as u16);
                } else {
                    self.w.push((ONE - f) as u16);
                    self.w.push(f as u16);
                }
                self.taps.push(Tap {
                    start: i0 as u32,
                    off,
                    n: self.w.len() as u32 - off,
                });
            }
        }
        self.pad(src);
    }

    /// Fills `starts` and `padded` from the taps; a window that would run past the axis's
    /// end starts earlier instead, with zero weights in front.
    fn pad(&mut self, src: usize) {
        self.width = self.taps.iter().map(|t| t.n as usize).max().unwrap_or(1);
        self.starts.clear();
        self.padded.clear();
        for t in &self.taps {
            let (start, n) = (t.start as usize, t.n as usize);
            // n ≤ src, and so is width: every tap lies inside the axis.
            let first = start.min(src - self.width);
            self.starts.push(first as u32);
            let lead = start - first;
            self.padded.extend(std::iter::repeat_n(0, lead));
            self.padded
                .extend_from_slice(&self.w[t.off as usize..t.off as usize + n]);
            self.padded
                .extend(std::iter::repeat_n(0, self.width - lead - n));
        }
    }

    #[inline]
    fn taps(&self, i: usize) -> (usize, &[u16]) {
        let t = self.taps[i];
        (
            t.start as usize,
            &self.w[t.off as usize..(t.off + t.n) as usize],
        )
    }
}

/// Reusable scaling state (per thread; not shared).
///
/// Each output row is made in two passes: a vertical one over whole source rows (contiguous,
/// so the compiler vectorises it) into one row of ×16 fixed-point samples, then a horizontal
/// one that reads only the taps of the output's pixels. Doing the vertical pass first means
/// a shrink touches each source pixel once with vector code and runs the scalar, gathered
/// pass only at the output's size.
#[derive(Debug, Default)]
pub struct Resampler {
    lx: Axis,
    ly: Axis,
    cx: Axis,
    cy: Axis,
    // Vertical pass results, ×16 fixed point: one source-wide row of luma and of chroma
    // (`tmp_u` holds the interleaved UV of NV12).
    tmp_y: Vec<u16>,
    tmp_u: Vec<u16>,
    tmp_v: Vec<u16>,
    acc: Vec<u32>,
    // Horizontal pass results of one output row, ×16·ONE.
    out_y: Vec<u32>,
    out_u: Vec<u32>,
    out_v: Vec<u32>,
    // One output row's colour planes before interleaving.
    r: Vec<u8>,
    g: Vec<u8>,
    b: Vec<u8>,
}

impl Resampler {
    /// A resampler with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `img` scaled to `place` (the whole source frame) into `out`, a packed 3-byte
    /// image with rows `stride` bytes apart, in byte order `order`. Pixels of `out` outside
    /// `place` are left alone (the caller paints letterbox bars).
    pub fn to_rgb(
        &mut self,
        img: &YuvImage<'_>,
        out: &mut [u8],
        stride: usize,
        place: Placement,
        order: Order,
    ) -> Result<(), String> {
        img.check()?;
        let (ow, oh) = (place.width, place.height);
        if ow == 0 || oh == 0 {
            return Ok(());
        }
        if stride < (place.x + ow) * 3
            || out.len() < stride * (place.y + oh - 1) + (place.x + ow) * 3
        {
            return Err("output buffer too small".into());
        }
        let (w, h) = (img.width, img.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.lx.plan(w, 0.0, w as f64, ow);
        self.ly.plan(h, 0.0, h as f64, oh);
        // Chroma sample k covers luma 2k..2k+2: the same window in half units.
        self.cx.plan(cw, 0.0, w as f64 / 2.0, ow);
        self.cy.plan(ch, 0.0, h as f64 / 2.0, oh);
        for v in [&mut self.out_y, &mut self.out_u, &mut self.out_v] {
            v.resize(ow, 0);
        }
        for v in [&mut self.r, &mut self.g, &mut self.b] {
            v.resize(ow, 0);
        }

        let c = Coefficients::new(img.matrix, img.full_range);
        let (ri, bi) = match order {
            Order::Rgb => (0, 2),
            Order::Bgr => (2, 0),
        };
        for oy in 0..oh {
            self.luma_row(img, oy);
            match img.layout {
                YuvLayout::I420 => {
                    vertical(
                        &self.cy,
                        oy,
                        img.u,
                        img.u_stride,
                        cw,
                        &mut self.acc,
                        &mut self.tmp_u,
                    );
                    vertical(
                        &self.cy,
                        oy,
                        img.v,
                        img.v_stride,
                        cw,
                        &mut self.acc,
                        &mut self.tmp_v,
                    );
                    horizontal::<1>(&self.cx, &self.tmp_u, 0, &mut self.out_u);
                    horizontal::<1>(&self.cx, &self.tmp_v, 0, &mut self.out_v);
                }
                YuvLayout::Nv12 => {
                    vertical(
                        &self.cy,
                        oy,
                        img.u,
                        img.u_stride,
                        2 * cw,
                        &mut self.acc,
                        &mut self.tmp_u,
                    );
                    horizontal::<2>(&self.cx, &self.tmp_u, 0, &mut self.out_u);
                    horizontal::<2>(&self.cx, &self.tmp_u, 1, &mut self.out_v);
                }
            }
            // Colour in planes first (integer code the compiler vectorises), then interleaved.
            let (r, g, b) = (&mut self.r[..ow], &mut self.g[..ow], &mut self.b[..ow]);
            let (yr, ur, vr) = (&self.out_y[..ow], &self.out_u[..ow], &self.out_v[..ow]);
            for i in 0..ow {
                // ×16·ONE = 2¹⁶ → ×2⁸; U, V centred on 0.
                let y = (yr[i] >> 8) as i32 - c.y_offset;
                let u = (ur[i] >> 8) as i32 - (128 << 8);
                let v = (vr[i] >> 8) as i32 - (128 << 8);
                // ×2⁸ samples × ×2¹² coefficients = ×2²⁰, plus a half for rounding.
                let yt = y * c.y_scale + (1 << 19);
                r[i] = ((yt + c.r_v * v) >> 20).clamp(0, 255) as u8;
                g[i] = ((yt - c.g_u * u - c.g_v * v) >> 20).clamp(0, 255) as u8;
                b[i] = ((yt + c.b_u * u) >> 20).clamp(0, 255) as u8;
            }
            let row = &mut out[(place.y + oy) * stride + place.x * 3..][..ow * 3];
            for (px, ((&r, &g), &b)) in row.chunks_exact_mut(3).zip(r.iter().zip(&*g).zip(&*b)) {
                px[ri] = r;
                px[1] = g;
                px[bi] = b;
            }
        }
        Ok(())
    }

    /// Writes the luma of `img` scaled to `out_w`×`out_h` into `out` (packed, no padding).
    pub fn to_grey(
        &mut self,
        img: &YuvImage<'_>,
        out: &mut Vec<u8>,
        out_w: usize,
        out_h: usize,
    ) -> Result<(), String> {
        img.check()?;
        out.clear();
        out.resize(out_w * out_h, 0);
        if out_w == 0 || out_h == 0 {
            return Ok(());
        }
        let (w, h) = (img.width, img.height);
        self.lx.plan(w, 0.0, w as f64, out_w);
        self.ly.plan(h, 0.0, h as f64, out_h);
        self.out_y.resize(out_w, 0);
        let round = 8 * ONE;
        for (oy, row) in out.chunks_exact_mut(out_w).enumerate() {
            self.luma_row(img, oy);
            for (o, &v) in row.iter_mut().zip(&self.out_y) {
                *o = ((v + round) / (16 * ONE)).min(255) as u8;
            }
        }
        Ok(())
    }

    /// Output row `oy` of the luma plane into `out_y` (×16·ONE), on planned `lx`, `ly`.
    fn luma_row(&mut self, img: &YuvImage<'_>, oy: usize) {
        vertical(
            &self.ly,
            oy,
            img.y,
            img.y_stride,
            img.width,
            &mut self.acc,
            &mut self.tmp_y,
        );
        horizontal::<1>(&self.lx, &self.tmp_y, 0, &mut self.out_y);
    }
}

/// YUV→RGB in ×2¹² fixed point: R = Y' + k0·V, G = Y' − k1·U − k2·V, B = Y' + k3·U, with
/// the video-range stretch (luma 16..235, chroma 16..240) folded into the factors. In i32
/// the largest sum is under 2³⁰.
struct Coefficients {
    /// The black level, ×2⁸.
    y_offset: i32,
    y_scale: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl Coefficients {
    fn new(matrix: Matrix, full_range: bool) -> Self {
        let k: [f64; 4] = match matrix {
            Matrix::Bt601 => [1.402, 0.344_136, 0.714_136, 1.772],
            Matrix::Bt709 => [1.5748, 0.187_324, 0.468_124, 1.8556],
        };
        let (ys, yo, cs) = if full_range {
            (1.0, 0, 1.0)
        } else {
            (255.0 / 219.0, 16 << 8, 255.0 / 224.0)
        };
        let fixed = |x: f64| (x * ONE as f64).round() as i32;
        Self {
            y_offset: yo,
            y_scale: fixed(ys),
            r_v: fixed(k[0] * cs),
            g_u: fixed(k[1] * cs),
            g_v: fixed(k[2] * cs),
            b_u: fixed(k[3] * cs),
        }
    }
}

/// The vertical pass of output row `i`: the `width` samples of each source row it reads,
/// weighted, into `tmp` (×16 fixed point). `acc` is scratch.
fn vertical(
    axis: &Axis,
    i: usize,
    plane: &[u8],
    stride: usize,
    width: usize,
    acc: &mut Vec<u32>,
    tmp: &mut Vec<u16>,
) {
    let (r0, wts) = axis.taps(i);
    acc.clear();
    acc.resize(width, 0);
    for (j, &wt) in wts.iter().enumerate() {
        let row = &plane[(r0 + j) * stride..][..width];
        for (a, &s) in acc.iter_mut().zip(row) {
            *a += s as u32 * wt as u32;
        }
    }
    tmp.clear();
    // ×16 keeps four fractional bits for the horizontal pass.
    tmp.extend(acc.iter().map(|&a| ((a * 16 + ONE / 2) / ONE) as u16));
}

/// The horizontal pass over one row of vertical-pass samples: output `i` is the weighted sum
/// of `src[(start + k) · STEP + lane]` (STEP 2 reads one of NV12's interleaved chroma).
/// Common tap counts get a loop the compiler unrolls.
fn horizontal<const STEP: usize>(axis: &Axis, src: &[u16], lane: usize, dst: &mut [u32]) {
    match axis.width {
        1 => horizontal_n::<1, STEP>(axis, src, lane, dst),
        2 => horizontal_n::<2, STEP>(axis, src, lane, dst),
        3 => horizontal_n::<3, STEP>(axis, src, lane, dst),
        4 => horizontal_n::<4, STEP>(axis, src, lane, dst),
        5 => horizontal_n::<5, STEP>(axis, src, lane, dst),
        6 => horizontal_n::<6, STEP>(axis, src, lane, dst),
        n => {
            let outputs = axis.starts.iter().zip(axis.padded.chunks_exact(n));
            for ((&start, wts), d) in outputs.zip(dst.iter_mut()) {
                let s = &src[start as usize * STEP + lane..];
                *d = wts
                    .iter()
                    .enumerate()
                    .map(|(k, &wt)| s[k * STEP] as u32 * wt as u32)
                    .sum();
            }
        }
    }
}

fn horizontal_n<const N: usize, const STEP: usize>(
    axis: &Axis,
    src: &[u16],
    lane: usize,
    dst: &mut [u32],
) {
    let outputs = axis.starts.iter().zip(axis.padded.chunks_exact(N));
    for ((&start, wts), d) in outputs.zip(dst.iter_mut()) {
        let s = &src[start as usize * STEP + lane..][..(N - 1) * STEP + 1];
        let mut acc = 0u32;
        for k in 0..N {
            acc += s[k * STEP] as u32 * wts[k] as u32;
        }
        *d = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A w×h I420 frame of one colour, and the same as NV12.
    fn solid(w: usize, h: usize, yuv: [u8; 3]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y = vec![yuv[0]; w * h];
        let u = vec![yuv[1]; cw * ch];
        let v = vec![yuv[2]; cw * ch];
        let uv: Vec<u8> = (0..cw * ch).flat_map(|_| [yuv[1], yuv[2]]).collect();
        (y, u, v, uv)
    }

    fn i420<'a>(w: usize, h: usize, y: &'a [u8], u: &'a [u8], v: &'a [u8]) -> YuvImage<'a> {
        YuvImage {
            layout: YuvLayout::I420,
            width: w,
            height: h,
            y,
            y_stride: w,
            u,
            u_stride: w.div_ceil(2),
            v,
            v_stride: w.div_ceil(2),
            matrix: Matrix::Bt601,
            full_range: false,
        }
    }

    #[test]
    fn video_range_colours_convert_to_rgb_in_either_byte_order() {
        // BT.601 video range: pure red is Y 81, U 90, V 240; white Y 235, U = V = 128.
        let (y, u, v, _) = solid(8, 6, [81, 90, 240]);
        let img = i420(8, 6, &y, &u, &v);
        let mut out = vec![0u8; 4 * 3 * 3];
        let place = Placement {
            x: 0,
            y: 0,
            width: 4,
            height: 3,
        };
        let mut r = Resampler::new();
        r.to_rgb(&img, &mut out, 12, place, Order::Rgb).unwrap();
        for px in out.chunks_exact(3) {
            assert!(px[0] >= 250 && px[1] <= 4 && px[2] <= 4, "{px:?}");
        }
        r.to_rgb(&img, &mut out, 12, place, Order::Bgr).unwrap();
        assert!(out[2] >= 250 && out[0] <= 4);
        let (y, u, v, _) = solid(8, 6, [235, 128, 128]);
        r.to_rgb(&i420(8, 6, &y, &u, &v), &mut out, 12, place, Order::Rgb)
            .unwrap();
        assert!(out.iter().all(|&b| b == 255), "{out:?}");
    }

    #[test]
    fn nv12_and_i420_give_the_same_pixels() {
        let (w, h) = (10, 6);
        let y: Vec<u8> = (0..w * h).map(|i| (i * 7 % 200 + 20) as u8).collect();
        let (cw, ch) = (5, 3);
        let u: Vec<u8> = (0..cw * ch).map(|i| (100 + i * 3) as u8).collect();
        let v: Vec<u8> = (0..cw * ch).map(|i| (150 - i * 2) as u8).collect();
        let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
        let a = i420(w, h, &y, &u, &v);
        let b = YuvImage {
            layout: YuvLayout::Nv12,
            u: &uv,
            u_stride: 2 * cw,
            ..a
        };
        let place = Placement {
            x: 0,
            y: 0,
            width: 7,
            height: 5,
        };
        let (mut oa, mut ob) = (vec![0u8; 7 * 5 * 3], vec![0u8; 7 * 5 * 3]);
        let mut r = Resampler::new();
        r.to_rgb(&a, &mut oa, 21, place, Order::Rgb).unwrap();
        r.to_rgb(&b, &mut ob, 21, place, Order::Rgb).unwrap();
        assert_eq!(oa, ob);
    }

    #[test]
    fn shrinking_averages_and_places_inside_letterbox_bars() {
        // Left half black, right half white (luma), shrunk 4× into the middle of a padded row.
        let (w, h) = (16, 4);
        let y: Vec<u8> = (0..w * h)
            .map(|i| if i % w < 8 { 16 } else { 235 })
            .collect();
        let (_, u, v, _) = solid(w, h, [0, 128, 128]);
        let img = i420(w, h, &y, &u, &v);
        let mut out = vec![7u8; 6 * 3];
        let place = Placement {
            x: 1,
            y: 0,
            width: 4,
            height: 1,
        };
        Resampler::new()
            .to_rgb(&img, &mut out, 18, place, Order::Rgb)
            .unwrap();
        assert_eq!(&out[..3], &[7, 7, 7], "left bar untouched");
        assert_eq!(&out[15..], &[7, 7, 7], "right bar untouched");
        assert_eq!(&out[3..6], &[0, 0, 0]);
        assert_eq!(&out[12..15], &[255, 255, 255]);
        let mut grey = Vec::new();
        Resampler::new().to_grey(&img, &mut grey, 2, 1).unwrap();
        assert_eq!(grey, vec![16, 235]);
        // 2 output pixels over a 16-wide edge at 8: an odd split averages both sides.
        Resampler::new().to_grey(&img, &mut grey, 3, 1).unwrap();
        assert!(grey[1] > 16 && grey[1] < 235, "{grey:?}");
    }

    #[test]
    fn enlarging_is_bilinear_and_a_short_plane_is_refused() {
        let (w, h) = (2, 2);
        let y = [0u8, 200, 0, 200];
        let (_, u, v, _) = solid(w, h, [0, 128, 128]);
        let img = i420(w, h, &y, &u, &v);
        let mut grey = Vec::new();
        Resampler::new().to_grey(&img, &mut grey, 4, 1).unwrap();
        assert_eq!(grey[0], 0);
        assert_eq!(grey[3], 200);
        assert!(
            grey[1] > 0 && grey[1] < grey[2] && grey[2] < 200,
            "{grey:?}"
        );
        let bad = YuvImage { y: &y[..3], ..img };
        assert!(Resampler::new().to_grey(&bad, &mut grey, 4, 1).is_err());
    }

    /// The fast passes against a plain reading of the same filter: every output pixel as
    /// the weighted sum of the source pixels under it, in f64, with the colour matrix in f64.
    /// Random sizes (odd ones too), both layouts, both matrices and ranges, shrink and
    /// enlarge, letterbox placements: at most one level apart anywhere.
    #[test]
    fn fast_passes_agree_with_a_plain_reading_of_the_filter() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut r = Resampler::new();
        for case in 0..60 {
            let (w, h) = (2 + next(90), 2 + next(70));
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let y: Vec<u8> = (0..w * h).map(|_| next(256) as u8).collect();
            let u: Vec<u8> = (0..cw * ch).map(|_| next(256) as u8).collect();
            let v: Vec<u8> = (0..cw * ch).map(|_| next(256) as u8).collect();
            let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
            let mut img = i420(w, h, &y, &u, &v);
            img.matrix = if case % 2 == 0 {
                Matrix::Bt601
            } else {
                Matrix::Bt709
            };
            img.full_range = case % 3 == 0;
            if case % 4 == 1 {
                img.layout = YuvLayout::Nv12;
                img.u = &uv;
                img.u_stride = 2 * cw;
            }
            let (ow, oh) = (1 + next(60), 1 + next(60));
            let place = Placement {
                x: next(3),
                y: next(3),
                width: ow,
                height: oh,
            };
            let stride = (place.x + ow + 1) * 3;
            let mut out = vec![0u8; stride * (place.y + oh)];
            r.to_rgb(&img, &mut out, stride, place, Order::Rgb).unwrap();
            let mut grey = Vec::new();
            r.to_grey(&img, &mut grey, ow, oh).unwrap();

            // The plain reading, on taps planned by the same rules.
            let plan = |src: usize, len: f64, out: usize| {
                let mut a = Axis::default();
                a.plan(src, 0.0, len, out);
                (0..out)
                    .map(|i| {
                        let (s, w) = a.taps(i);
                        let w: Vec<f64> = w.iter().map(|&x| x as f64 / ONE as f64).collect();
                        (s, w)
                    })
                    .collect::<Vec<_>>()
            };
            let (lx, ly) = (plan(w, w as f64, ow), plan(h, h as f64, oh));
            let (cx, cy) = (plan(cw, w as f64 / 2.0, ow), plan(ch, h as f64 / 2.0, oh));
            let sample =
                |xs: &(usize, Vec<f64>), ys: &(usize, Vec<f64>), f: &dyn Fn(usize, usize) -> u8| {
                    let mut acc = 0.0;
                    for (j, wy) in ys.1.iter().enumerate() {
                        for (k, wx) in xs.1.iter().enumerate() {
                            acc += wy * wx * f(xs.0 + k, ys.0 + j) as f64;
                        }
                    }
                    acc
                };
            let k: [f64; 4] = match img.matrix {
                Matrix::Bt601 => [1.402, 0.344_136, 0.714_136, 1.772],
                Matrix::Bt709 => [1.5748, 0.187_324, 0.468_124, 1.8556],
            };
            let (ys, yo, cs) = if img.full_range {
                (1.0, 0.0, 1.0)
            } else {
                (255.0 / 219.0, 16.0, 255.0 / 224.0)
            };
            for oy in 0..oh {
                for ox in 0..ow {
                    let yl = sample(&lx[ox], &ly[oy], &|x, yy| y[yy * w + x]);
                    let uc = sample(&cx[ox], &cy[oy], &|x, yy| img.chroma(yy, x).0);
                    let vc = sample(&cx[ox], &cy[oy], &|x, yy| img.chroma(yy, x).1);
                    let g0 = grey[oy * ow + ox] as f64;
                    assert!(
                        (g0 - yl.round()).abs() <= 1.0,
                        "case {case}: grey {g0} vs {yl}"
                    );
                    let (yf, uf, vf) = ((yl - yo) * ys, (uc - 128.0) * cs, (vc - 128.0) * cs);
                    let want = [yf + k[0] * vf, yf - k[1] * uf - k[2] * vf, yf + k[3] * uf];
                    let at = (place.y + oy) * stride + (place.x + ox) * 3;
                    for c in 0..3 {
                        let e = want[c].round().clamp(0.0, 255.0);
                        let got = out[at + c] as f64;
                        assert!((got - e).abs() <= 1.0, "case {case} ({w}x{h} -> {ow}x{oh}, {:?}) pixel {ox},{oy} channel {c}: {got} vs {e}", img.layout);
                    }
                }
            }
            // Nothing written outside the placement.
            for (i, &b) in out.iter().enumerate() {
                let (row, col) = (i / stride, (i % stride) / 3);
                let inside = (place.y..place.y + oh).contains(&row)
                    && (place.x..place.x + ow).contains(&col);
                assert!(
                    inside || b == 0,
                    "case {case}: byte {i} outside the placement written"
                );
            }
        }
    }
}
