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

/// Taps of one axis: output sample `i` reads `n[i]` source samples from `start[i]` with
/// weights `w[off[i]..off[i] + n[i]]`.
#[derive(Debug, Default)]
struct Axis {
    start: Vec<u32>,
    n: Vec<u16>,
    off: Vec<u32>,
    w: Vec<u16>,
    // The same taps padded with zero weights to `width` each (the most any output reads),
    // so the horizontal pass runs a loop of fixed length: output `i` reads `width` samples
    // from `padded_start[i]` with weights `padded[i * width..][..width]`. A zero weight
    // adds nothing to an integer sum, so the result is the same to the bit.
    width: usize,
    padded_start: Vec<u32>,
    padded: Vec<u16>,
    // What it was made for, to reuse it for the next frame of the same size.
    key: (usize, usize, u64, u64),
}

impl Axis {
    /// Maps `out` samples onto source samples `[lo, lo + len)` of an axis `src` long.
    fn plan(&mut self, src: usize, lo: f64, len: f64, out: usize) {
        let key = (src, out, lo.to_bits(), len.to_bits());
        if self.key == key && !self.start.is_empty() {
            return;
        }
        self.key = key;
        self.start.clear();
        self.n.clear();
        self.off.clear();
        self.w.clear();
        let scale = len / out as f64;
        let last = src as i64 - 1;
        for i in 0..out {
            self.off.push(self.w.len() as u32);
            if scale >= 1.0 {
                // Area: every source sample under the output sample, equal weights.
                let a = (lo + i as f64 * scale).round() as i64;
                let b = ((lo + (i + 1) as f64 * scale).round() as i64).max(a + 1);
                let (a, b) = (a.clamp(0, last), b.clamp(1, last + 1));
                let n = (b - a).max(1) as u32;
                self.start.push(a as u32);
                self.n.push(n as u16);
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
                self.start.push(i0 as u32);
                if i1 == i0 || f == 0 {
                    self.n.push(1);
                    self.w.push(ONE as u16);
                } else {
                    self.n.push(2);
                    self.w.push((ONE - f) as u16);
                    self.w.push(f as u16);
                }
            }
        }
        self.pad(src);
    }

    /// Fills `padded_start` and `padded` from the taps; a window that would run past the
    /// axis's end starts earlier instead, with zero weights in front.
    fn pad(&mut self, src: usize) {
        self.width = self.n.iter().map(|&n| n as usize).max().unwrap_or(1);
        self.padded_start.clear();
        self.padded.clear();
        for i in 0..self.start.len() {
            let (start, off, n) = (
                self.start[i] as usize,
                self.off[i] as usize,
                self.n[i] as usize,
            );
            // Every tap lies inside the axis, so `width` ≤ `src`.
            let first = start.min(src - self.width);
            let lead = start - first;
            self.padded_start.push(first as u32);
            self.padded.extend(std::iter::repeat_n(0, lead));
            self.padded.extend_from_slice(&self.w[off..off + n]);
            self.padded
                .extend(std::iter::repeat_n(0, self.width - lead - n));
        }
    }

    #[inline]
    fn taps(&self, i: usize) -> (usize, &[u16]) {
        let off = self.off[i] as usize;
        (
            self.start[i] as usize,
            &self.w[off..off + self.n[i] as usize],
        )
    }
}

/// Reusable scaling state (per thread; not shared).
///
/// A horizontal pass over every source row (fixed-length tap loops) into rows of ×16 fixed
/// point at the output's width, then per output row a vertical pass over whole rows and the
/// colour conversion, both plain loops over arrays that the compiler vectorises. The
/// arithmetic is the filter's own, to the bit: integer sums whose order does not matter and
/// the same f32 operations per pixel (the model's input must not move when this code gets
/// faster: one level of rounding is enough to change a borderline detection).
#[derive(Debug, Default)]
pub struct Resampler {
    lx: Axis,
    ly: Axis,
    cx: Axis,
    cy: Axis,
    // Horizontal pass results, ×16 fixed point: luma rows and chroma rows.
    tmp_y: Vec<u16>,
    tmp_u: Vec<u16>,
    tmp_v: Vec<u16>,
    // Vertical pass results of one output row, ×16·ONE.
    acc_y: Vec<u32>,
    acc_u: Vec<u32>,
    acc_v: Vec<u32>,
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
        horizontal::<1>(&self.lx, img.y, img.y_stride, 0, h, ow, &mut self.tmp_y);
        match img.layout {
            YuvLayout::I420 => {
                horizontal::<1>(&self.cx, img.u, img.u_stride, 0, ch, ow, &mut self.tmp_u);
                horizontal::<1>(&self.cx, img.v, img.v_stride, 0, ch, ow, &mut self.tmp_v);
            }
            YuvLayout::Nv12 => {
                horizontal::<2>(&self.cx, img.u, img.u_stride, 0, ch, ow, &mut self.tmp_u);
                horizontal::<2>(&self.cx, img.u, img.u_stride, 1, ch, ow, &mut self.tmp_v);
            }
        }

        // R = Y' + k0·V, G = Y' − k1·U − k2·V, B = Y' + k3·U (U, V centred on 0).
        let k: [f32; 4] = match img.matrix {
            Matrix::Bt601 => [1.402, 0.344_136, 0.714_136, 1.772],
            Matrix::Bt709 => [1.5748, 0.187_324, 0.468_124, 1.8556],
        };
        // Video range: luma 16..235, chroma 16..240 around 128.
        let (ys, yo, cs): (f32, f32, f32) = if img.full_range {
            (1.0, 0.0, 1.0)
        } else {
            (255.0 / 219.0, 16.0, 255.0 / 224.0)
        };
        let (ri, bi) = match order {
            Order::Rgb => (0, 2),
            Order::Bgr => (2, 0),
        };
        // Samples in the tmp rows are ×16; weights are ×ONE.
        let norm = 1.0 / (16.0 * ONE as f32);
        for v in [&mut self.r, &mut self.g, &mut self.b] {
            v.resize(ow, 0);
        }
        for oy in 0..oh {
            vertical(&self.ly, oy, &self.tmp_y, ow, &mut self.acc_y);
            vertical(&self.cy, oy, &self.tmp_u, ow, &mut self.acc_u);
            vertical(&self.cy, oy, &self.tmp_v, ow, &mut self.acc_v);
            let (r, g, b) = (&mut self.r[..ow], &mut self.g[..ow], &mut self.b[..ow]);
            let (ya, ua, va) = (&self.acc_y[..ow], &self.acc_u[..ow], &self.acc_v[..ow]);
            for i in 0..ow {
                // Sums stay under 2²⁴, so through i32 is the same conversion (and SSE2 has it).
                let yf = (ya[i] as i32 as f32 * norm - yo) * ys;
                let uf = (ua[i] as i32 as f32 * norm - 128.0) * cs;
                let vf = (va[i] as i32 as f32 * norm - 128.0) * cs;
                r[i] = to_level(yf + k[0] * vf);
                g[i] = to_level(yf - k[1] * uf - k[2] * vf);
                b[i] = to_level(yf + k[3] * uf);
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
        horizontal::<1>(&self.lx, img.y, img.y_stride, 0, h, out_w, &mut self.tmp_y);
        let round = 8 * ONE;
        for (oy, row) in out.chunks_exact_mut(out_w).enumerate() {
            vertical(&self.ly, oy, &self.tmp_y, out_w, &mut self.acc_y);
            for (o, &v) in row.iter_mut().zip(&self.acc_y) {
                *o = ((v + round) / (16 * ONE)).min(255) as u8;
            }
        }
        Ok(())
    }
}

/// `x.round().clamp(0.0, 255.0) as u8`, without a call to `roundf` per channel: clamping
/// first gives the same result (rounding is monotone and 0 and 255 are whole), and inside
/// [0, 255] rounding half away from zero is the truncation plus one where the (exact)
/// fraction is at least a half.
#[inline(always)]
fn to_level(x: f32) -> u8 {
    let x = x.clamp(0.0, 255.0);
    let t = x as i32;
    (t + ((x - t as f32) >= 0.5) as i32) as u8
}

/// The horizontal pass over `rows` rows of `plane` into `tmp` (`rows × out_w`, samples
/// ×16): output `i` of a row is the weighted sum of `row[(start + k) · STEP + lane]` (STEP 2
/// reads one of NV12's interleaved chroma). Common tap counts get a loop the compiler unrolls.
fn horizontal<const STEP: usize>(
    axis: &Axis,
    plane: &[u8],
    stride: usize,
    lane: usize,
    rows: usize,
    out_w: usize,
    tmp: &mut Vec<u16>,
) {
    tmp.clear();
    tmp.resize(rows * out_w, 0);
    for (r, dst) in tmp.chunks_exact_mut(out_w).enumerate() {
        let row = &plane[r * stride..];
        match axis.width {
            1 => horizontal_row::<1, STEP>(axis, row, lane, dst),
            2 => horizontal_row::<2, STEP>(axis, row, lane, dst),
            3 => horizontal_row::<3, STEP>(axis, row, lane, dst),
            4 => horizontal_row::<4, STEP>(axis, row, lane, dst),
            5 => horizontal_row::<5, STEP>(axis, row, lane, dst),
            6 => horizontal_row::<6, STEP>(axis, row, lane, dst),
            7 => horizontal_row::<7, STEP>(axis, row, lane, dst),
            8 => horizontal_row::<8, STEP>(axis, row, lane, dst),
            9 => horizontal_row::<9, STEP>(axis, row, lane, dst),
            // Motion's small grey image from 720p–4K: 8–13 taps a pixel.
            10 => horizontal_row::<10, STEP>(axis, row, lane, dst),
            11 => horizontal_row::<11, STEP>(axis, row, lane, dst),
            12 => horizontal_row::<12, STEP>(axis, row, lane, dst),
            13 => horizontal_row::<13, STEP>(axis, row, lane, dst),
            n => {
                let outputs = axis.padded_start.iter().zip(axis.padded.chunks_exact(n));
                for ((&start, wts), d) in outputs.zip(dst.iter_mut()) {
                    let s = &row[start as usize * STEP + lane..];
                    let acc: u32 = wts
                        .iter()
                        .enumerate()
                        .map(|(k, &wt)| s[k * STEP] as u32 * wt as u32)
                        .sum();
                    *d = fixed16(acc);
                }
            }
        }
    }
}

fn horizontal_row<const N: usize, const STEP: usize>(
    axis: &Axis,
    row: &[u8],
    lane: usize,
    dst: &mut [u16],
) {
    let outputs = axis.padded_start.iter().zip(axis.padded.chunks_exact(N));
    for ((&start, wts), d) in outputs.zip(dst.iter_mut()) {
        let s = &row[start as usize * STEP + lane..][..(N - 1) * STEP + 1];
        let mut acc = 0u32;
        for k in 0..N {
            acc += s[k * STEP] as u32 * wts[k] as u32;
        }
        *d = fixed16(acc);
    }
}

/// A weighted sum (×ONE) as a sample ×16: four fractional bits kept for the vertical pass.
#[inline(always)]
fn fixed16(acc: u32) -> u16 {
    ((acc * 16 + ONE / 2) / ONE) as u16
}

/// The vertical pass of output row `i`: the rows of `tmp` (each `width` long) it reads,
/// weighted, into `acc` (×16·ONE).
fn vertical(axis: &Axis, i: usize, tmp: &[u16], width: usize, acc: &mut Vec<u32>) {
    let (r0, wts) = axis.taps(i);
    acc.clear();
    acc.resize(width, 0);
    for (j, &wt) in wts.iter().enumerate() {
        let row = &tmp[(r0 + j) * width..][..width];
        for (a, &s) in acc.iter_mut().zip(row) {
            *a += s as u32 * wt as u32;
        }
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

    /// A xorshift generator: the same random frames on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// The random planes of a `w`×`h` frame, with its chroma interleaved too (for NV12).
    struct Planes {
        w: usize,
        h: usize,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        uv: Vec<u8>,
    }

    impl Planes {
        fn random(rng: &mut Rng, w: usize, h: usize) -> Planes {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let y = (0..w * h).map(|_| rng.below(256) as u8).collect();
            let u: Vec<u8> = (0..cw * ch).map(|_| rng.below(256) as u8).collect();
            let v: Vec<u8> = (0..cw * ch).map(|_| rng.below(256) as u8).collect();
            let uv = u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]).collect();
            Planes { w, h, y, u, v, uv }
        }

        /// The frame of test case `case`: both matrices, both ranges and both layouts in turn.
        fn image(&self, case: usize) -> YuvImage<'_> {
            let mut img = i420(self.w, self.h, &self.y, &self.u, &self.v);
            img.matrix = [Matrix::Bt601, Matrix::Bt709][case % 2];
            img.full_range = case.is_multiple_of(3);
            if case % 4 == 1 {
                img.layout = YuvLayout::Nv12;
                img.u = &self.uv;
                img.u_stride = 2 * self.w.div_ceil(2);
            }
            img
        }
    }

    /// An output of up to `max`×`max` pixels, placed 0–2 pixels into its buffer.
    fn random_place(rng: &mut Rng, max: usize) -> Placement {
        let (width, height) = (1 + rng.below(max), 1 + rng.below(max));
        Placement {
            x: rng.below(3),
            y: rng.below(3),
            width,
            height,
        }
    }

    /// The resampler as it was before it was made fast (closures per sample, `roundf` per
    /// channel): the reference the fast passes must match to the bit.
    fn reference(img: &YuvImage<'_>, place: Placement, stride: usize, out: &mut [u8]) {
        let (w, h) = (img.width, img.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ow, oh) = (place.width, place.height);
        let axis = |src: usize, len: f64, n: usize| {
            let mut a = Axis::default();
            a.plan(src, 0.0, len, n);
            a
        };
        let (lx, ly) = (axis(w, w as f64, ow), axis(h, h as f64, oh));
        let (cx, cy) = (axis(cw, w as f64 / 2.0, ow), axis(ch, h as f64 / 2.0, oh));
        let pass = |a: &Axis, rows: usize, f: &dyn Fn(usize, usize) -> u8| {
            let mut tmp = vec![0u16; rows * ow];
            for r in 0..rows {
                for ox in 0..ow {
                    let (x0, wts) = a.taps(ox);
                    let mut acc = 0u32;
                    for (k, &wt) in wts.iter().enumerate() {
                        acc += f(r, x0 + k) as u32 * wt as u32;
                    }
                    tmp[r * ow + ox] = ((acc * 16 + ONE / 2) / ONE) as u16;
                }
            }
            tmp
        };
        let ty = pass(&lx, h, &|r, x| img.y[r * img.y_stride + x]);
        let tu = pass(&cx, ch, &|r, x| img.chroma(r, x).0);
        let tv = pass(&cx, ch, &|r, x| img.chroma(r, x).1);
        let k: [f32; 4] = match img.matrix {
            Matrix::Bt601 => [1.402, 0.344_136, 0.714_136, 1.772],
            Matrix::Bt709 => [1.5748, 0.187_324, 0.468_124, 1.8556],
        };
        let (ys, yo, cs): (f32, f32, f32) = if img.full_range {
            (1.0, 0.0, 1.0)
        } else {
            (255.0 / 219.0, 16.0, 255.0 / 224.0)
        };
        let norm = 1.0 / (16.0 * ONE as f32);
        for oy in 0..oh {
            let (ly0, lw) = ly.taps(oy);
            let (cy0, cwt) = cy.taps(oy);
            for ox in 0..ow {
                let mut yv = 0u32;
                for (j, &wt) in lw.iter().enumerate() {
                    yv += ty[(ly0 + j) * ow + ox] as u32 * wt as u32;
                }
                let (mut uv, mut vv) = (0u32, 0u32);
                for (j, &wt) in cwt.iter().enumerate() {
                    uv += tu[(cy0 + j) * ow + ox] as u32 * wt as u32;
                    vv += tv[(cy0 + j) * ow + ox] as u32 * wt as u32;
                }
                let yf = (yv as f32 * norm - yo) * ys;
                let uf = (uv as f32 * norm - 128.0) * cs;
                let vf = (vv as f32 * norm - 128.0) * cs;
                let px = &mut out[(place.y + oy) * stride + (place.x + ox) * 3..][..3];
                px[0] = (yf + k[0] * vf).round().clamp(0.0, 255.0) as u8;
                px[1] = (yf - k[1] * uf - k[2] * vf).round().clamp(0.0, 255.0) as u8;
                px[2] = (yf + k[3] * uf).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Random frames (odd sizes, both layouts, matrices and ranges, shrink and enlarge,
    /// wide taps of a big shrink, letterbox placements): the same bytes as the reference.
    #[test]
    fn fast_passes_give_the_previous_bytes_exactly() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut r = Resampler::new();
        for case in 0..80 {
            let (w, h) = if case % 10 == 9 {
                (300 + rng.below(400), 200 + rng.below(300))
            } else {
                (2 + rng.below(120), 2 + rng.below(90))
            };
            let planes = Planes::random(&mut rng, w, h);
            let img = planes.image(case);
            let place = random_place(&mut rng, 80);
            let (ow, oh) = (place.width, place.height);
            let stride = (place.x + ow + 1) * 3;
            let mut fast = vec![0u8; stride * (place.y + oh)];
            let mut want = fast.clone();
            r.to_rgb(&img, &mut fast, stride, place, Order::Rgb)
                .unwrap();
            reference(&img, place, stride, &mut want);
            assert_eq!(
                fast, want,
                "case {case}: {w}x{h} -> {ow}x{oh}, {:?}",
                img.layout
            );
            let mut grey = Vec::new();
            r.to_grey(&img, &mut grey, ow, oh).unwrap();
            let (lx, ly) = {
                let (mut a, mut b) = (Axis::default(), Axis::default());
                a.plan(w, 0.0, w as f64, ow);
                b.plan(h, 0.0, h as f64, oh);
                (a, b)
            };
            for oy in 0..oh {
                let (y0, wy) = ly.taps(oy);
                for ox in 0..ow {
                    let (x0, wx) = lx.taps(ox);
                    let mut v = 0u32;
                    for (j, &b) in wy.iter().enumerate() {
                        let mut acc = 0u32;
                        for (i, &a) in wx.iter().enumerate() {
                            acc += planes.y[(y0 + j) * w + x0 + i] as u32 * a as u32;
                        }
                        v += ((acc * 16 + ONE / 2) / ONE) * b as u32;
                    }
                    let g = ((v + 8 * ONE) / (16 * ONE)).min(255) as u8;
                    assert_eq!(grey[oy * ow + ox], g, "case {case}: grey at {ox},{oy}");
                }
            }
        }
    }

    /// `to_level` against `round().clamp()` on a fine grid over and beyond [0, 255] and at
    /// every half-level boundary with its neighbours one ulp away.
    #[test]
    fn levels_round_half_away_from_zero_like_roundf() {
        let want = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        let mut xs: Vec<f32> = (-4096..=300 * 1024).map(|i| i as f32 / 1024.0).collect();
        for k in -2..=260 {
            let half = k as f32 + 0.5;
            xs.extend([
                half,
                f32::from_bits(half.to_bits() - 1),
                f32::from_bits(half.to_bits() + 1),
            ]);
        }
        xs.extend([0.499_999_97, -0.499_999_97, 254.499_98, 1e9, -1e9]);
        for x in xs {
            assert_eq!(to_level(x), want(x), "{x:e}");
        }
    }

    /// The passes against a plain reading of the same filter: every output pixel as
    /// the weighted sum of the source pixels under it, in f64, with the colour matrix in f64.
    /// Random sizes (odd ones too), both layouts, both matrices and ranges, shrink and
    /// enlarge, letterbox placements: at most one level apart anywhere.
    #[test]
    fn fast_passes_agree_with_a_plain_reading_of_the_filter() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut r = Resampler::new();
        for case in 0..60 {
            let (w, h) = (2 + rng.below(90), 2 + rng.below(70));
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let planes = Planes::random(&mut rng, w, h);
            let img = planes.image(case);
            let y = &planes.y;
            let place = random_place(&mut rng, 60);
            let (ow, oh) = (place.width, place.height);
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
