//! What a decoded frame costs before the model sees it: scaling and colour conversion into
//! the detector's input (`to_rgb`) and the motion check's small grey image (`to_grey`), at
//! SD (vtest's 768×576) and 1080p. `cargo bench -p ioc-detect --bench yuv`.

use criterion::{criterion_group, criterion_main, Criterion};
use ioc_detect::yuv::{Matrix, Order, Placement, Resampler, YuvImage, YuvLayout};
use std::hint::black_box;

/// Planes of a `w`×`h` I420 frame with texture everywhere (no constant runs to flatter
/// anything).
fn planes(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y = (0..w * h).map(|i| ((i * 7919) >> 3) as u8).collect();
    let u = (0..cw * ch).map(|i| ((i * 104_729) >> 4) as u8).collect();
    let v = (0..cw * ch).map(|i| ((i * 1_299_709) >> 5) as u8).collect();
    (y, u, v)
}

fn frames(c: &mut Criterion) {
    // (source size, detector input the letterbox gives it, motion's grey image)
    for ((w, h), (ow, oh), (gw, gh)) in [
        ((768, 576), (416, 312), (160, 120)),
        ((1920, 1080), (416, 234), (160, 90)),
    ] {
        let (y, u, v) = planes(w, h);
        let img = YuvImage {
            layout: YuvLayout::I420,
            width: w,
            height: h,
            y: &y,
            y_stride: w,
            u: &u,
            u_stride: w.div_ceil(2),
            v: &v,
            v_stride: w.div_ceil(2),
            matrix: Matrix::Bt601,
            full_range: false,
        };
        let mut r = Resampler::new();
        let mut out = vec![0u8; 416 * 416 * 3];
        let place = Placement {
            x: 0,
            y: (416 - oh) / 2,
            width: ow,
            height: oh,
        };
        c.bench_function(&format!("to_rgb {w}x{h} -> {ow}x{oh}"), |b| {
            b.iter(|| {
                r.to_rgb(black_box(&img), &mut out, 416 * 3, place, Order::Rgb)
                    .unwrap()
            })
        });
        let mut grey = Vec::new();
        c.bench_function(&format!("to_grey {w}x{h} -> {gw}x{gh}"), |b| {
            b.iter(|| r.to_grey(black_box(&img), &mut grey, gw, gh).unwrap())
        });
    }
}

criterion_group!(benches, frames);
criterion_main!(benches);
