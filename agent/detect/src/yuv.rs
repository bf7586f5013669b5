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
        horizontal(&self.lx, h, ow, &mut self.tmp_y, |r, x| {
            img.y[r * img.y_stride + x]
        });
        horizontal(&self.cx, ch, ow, &mut self.tmp_u, |r, x| img.chroma(r, x).0);
        horizontal(&self.cx, ch, ow, &mut self.tmp_v, |r, x| img.chroma(r, x).1);

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
        for oy in 0..oh {
            let (ly0, lw) = self.ly.taps(oy);
            let (cy0, cwt) = self.cy.taps(oy);
            let row = &mut out[(place.y + oy) * stride + place.x * 3..][..ow * 3];
            for (ox, px) in row.chunks_exact_mut(3).enumerate() {
                let mut yv = 0u32;
                for (j, &wt) in lw.iter().enumerate() {
                    yv += self.tmp_y[(ly0 + j) * ow + ox] as u32 * wt as u32;
                }
                let (mut uv, mut vv) = (0u32, 0u32);
                for (j, &wt) in cwt.iter().enumerate() {
                    uv += self.tmp_u[(cy0 + j) * ow + ox] as u32 * wt as u32;
                    vv += self.tmp_v[(cy0 + j) * ow + ox] as u32 * wt as u32;
                }
                let yf = (yv as f32 * norm - yo) * ys;
                let uf = (uv as f32 * norm - 128.0) * cs;
                let vf = (vv as f32 * norm - 128.0) * cs;
                let r = yf + k[0] * vf;
                let g = yf - k[1] * uf - k[2] * vf;
                let b = yf + k[3] * uf;
                px[ri] = r.round().clamp(0.0, 255.0) as u8;
                px[1] = g.round().clamp(0.0, 255.0) as u8;
                px[bi] = b.round().clamp(0.0, 255.0) as u8;
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
        horizontal(&self.lx, h, out_w, &mut self.tmp_y, |r, x| {
            img.y[r * img.y_stride + x]
        });
        let round = 8 * ONE;
        for oy in 0..out_h {
            let (ly0, lw) = self.ly.taps(oy);
            for ox in 0..out_w {
                let mut v = 0u32;
                for (j, &wt) in lw.iter().enumerate() {
                    v += self.tmp_y[(ly0 + j) * out_w + ox] as u32 * wt as u32;
                }
                out[oy * out_w + ox] = ((v + round) / (16 * ONE)).min(255) as u8;
            }
        }
        Ok(())
    }
}

/// The horizontal pass over `rows` source rows into `tmp` (`rows × out_w`, samples ×16).
fn horizontal(
    axis: &Axis,
    rows: usize,
    out_w: usize,
    tmp: &mut Vec<u16>,
    sample: impl Fn(usize, usize) -> u8,
) {
    tmp.clear();
    tmp.resize(rows * out_w, 0);
    for r in 0..rows {
        let dst = &mut tmp[r * out_w..(r + 1) * out_w];
        for (ox, d) in dst.iter_mut().enumerate() {
            let (x0, wts) = axis.taps(ox);
            let mut acc = 0u32;
            for (k, &wt) in wts.iter().enumerate() {
                acc += sample(r, x0 + k) as u32 * wt as u32;
            }
            // ×16 keeps four fractional bits for the vertical pass.
            *d = ((acc * 16 + ONE / 2) / ONE) as u16;
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

    /// The passes against a plain reading of the same filter: every output pixel as
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
