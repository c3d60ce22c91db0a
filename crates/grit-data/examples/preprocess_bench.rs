//! Single-threaded throughput of Qwen2.5-VL preprocessing on a 1920×1080 RGB image (GRIT's
//! config: resized to 588×336, 1008 patches).
//!
//! `cargo run --release -p grit-data --example preprocess_bench [-- RUNS]`

use std::time::Instant;

use grit_data::preprocess::{PreprocessConfig, RgbImage, preprocess};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// A photo-like test image: smooth gradients plus per-pixel hash noise, so the resampler cannot
/// benefit from flat regions.
fn synthetic_image() -> RgbImage {
    RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let noise = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 32;
        let r = (x * 255 / WIDTH + noise) as u8;
        let g = (y * 255 / HEIGHT + noise) as u8;
        let b = ((x + y) % 256) as u8;
        image::Rgb([r, g, b])
    })
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(50, |s| s.parse().expect("RUNS must be a number"));
    let image = synthetic_image();
    let config = PreprocessConfig::default();
    let mut times_ms = Vec::with_capacity(runs);
    let mut processed = None;
    for _ in 0..runs {
        let start = Instant::now();
        processed = Some(preprocess(&image, &config).expect("preprocess"));
        times_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times_ms.sort_by(f64::total_cmp);
    let processed = processed.expect("at least one run");
    println!(
        "preprocess {WIDTH}x{HEIGHT} -> {}x{} (grid {:?}): median {:.2} ms, min {:.2} ms over {runs} runs",
        processed.processed_size.0,
        processed.processed_size.1,
        processed.grid_thw,
        times_ms[runs / 2],
        times_ms[0],
    );
}
