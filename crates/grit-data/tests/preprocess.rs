//! Oracle test: grit's Qwen2.5-VL preprocessing against transformers' PIL-backend image processor
//! on the cases in `tests/fixtures/preprocess` (written by `tools/fixtures/preprocess_cases.py`).
//!
//! Per case:
//! - our loader gives the upright size transformers saw; where the generator stored Pillow's
//!   decoded image (`decoded.png`), ours must equal it (exactly for PNG, within a few levels for
//!   JPEG, whose decoders differ);
//! - our bicubic resize of Pillow's decoded image equals Pillow's (`resized.png`) bit for bit;
//! - `image_grid_thw` and the processed size match exactly, and `pixel_values` from our pipeline
//!   are within 0.02 of transformers' (stored for small cases; for large ones derived from
//!   `resized.png` with the processor's formula, written out plainly below); for JPEG inputs the
//!   pipeline starts from Pillow's decoded pixels, and the end-to-end result through our own
//!   decoder gets a looser bound;
//! - images transformers rejects are rejected.

use std::path::{Path, PathBuf};

use grit_data::preprocess::{
    PreprocessConfig, PreprocessError, RgbImage, load_image, preprocess, resize_bicubic,
};
use safetensors::{Dtype, SafeTensors};

const PIXEL_TOLERANCE: f32 = 0.02;
/// Largest per-channel level difference accepted between our JPEG decoder (zune-jpeg) and Pillow's
/// (libjpeg-turbo): their IDCT and colour conversion round differently, by 1–2 levels on a few
/// percent of the values and rarely more.
const JPEG_DECODE_TOLERANCE: u8 = 4;
/// End-to-end bound for JPEG inputs: one level is 1/255/std ≈ 0.015, so a 2–3 level decoder
/// difference (slightly amplified by the cubic's negative lobes) cannot meet `PIXEL_TOLERANCE`.
const JPEG_PIXEL_TOLERANCE: f32 = 0.06;

#[derive(serde::Deserialize)]
struct Case {
    input: String,
    min_pixels: usize,
    max_pixels: usize,
    original_size: [usize; 2],
    #[serde(default)]
    processed_size: Option<[usize; 2]>,
    #[serde(default)]
    image_grid_thw: Option<[usize; 3]>,
    #[serde(default)]
    error: Option<String>,
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/preprocess")
}

fn case_dirs() -> Vec<PathBuf> {
    let root = fixture_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read_png(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_rgb8()
}

/// `(pixel_values, image_grid_thw)` from `expected.safetensors`; pixel_values only if stored.
fn read_expected(path: &Path) -> (Option<Vec<f32>>, Vec<i64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let grid = tensors.tensor("image_grid_thw").unwrap();
    assert_eq!((grid.dtype(), grid.shape()), (Dtype::I64, &[1, 3][..]));
    let grid = grid
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let pixels = tensors.tensor("pixel_values").ok().map(|t| {
        assert_eq!((t.dtype(), t.shape()[1]), (Dtype::F32, 1176));
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    });
    (pixels, grid)
}

/// transformers' rescale → normalize → patchify of an already resized image, written index by
/// index from `reshape(C, gh/2, 2, 14, gw/2, 2, 14).transpose(1, 4, 2, 5, 0, 3, 6)` with the
/// temporal axis (2 copies) after C, independently of the library's implementation.
fn reference_pixel_values(resized: &RgbImage, config: &PreprocessConfig) -> Vec<f32> {
    let (w, h) = (resized.width() as usize, resized.height() as usize);
    let (gh, gw) = (h / 14, w / 14);
    let mut out = vec![0.0; gh * gw * 1176];
    for (i, value) in out.iter_mut().enumerate() {
        let (row, col) = (i / 1176, i % 1176);
        let (block, within) = (row / 4, row % 4);
        let (bh, bw) = (block / (gw / 2), block % (gw / 2));
        let (mh, mw) = (within / 2, within % 2);
        let (c, rest) = (col / 392, col % 392);
        let pixel = rest % 196; // both temporal copies are the same frame
        let (py, px) = (pixel / 14, pixel % 14);
        let y = ((bh * 2 + mh) * 14 + py) as u32;
        let x = ((bw * 2 + mw) * 14 + px) as u32;
        let v = resized.get_pixel(x, y).0[c];
        let scaled = (f64::from(v) * (1.0 / 255.0)) as f32;
        *value = (scaled - config.image_mean[c]) / config.image_std[c];
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `(differing channel values, largest level difference)`.
fn image_diff(a: &RgbImage, b: &RgbImage) -> (usize, u8) {
    assert_eq!(a.dimensions(), b.dimensions());
    let diffs = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y));
    diffs.fold((0, 0), |(n, m), d| (n + usize::from(d > 0), m.max(d)))
}

/// Checks one case; returns a line for the summary.
fn check_case(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let case: Case = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap())
        .unwrap_or_else(|e| panic!("{name}/case.json: {e}"));
    let config = PreprocessConfig {
        min_pixels: case.min_pixels,
        max_pixels: case.max_pixels,
        ..PreprocessConfig::default()
    };
    let image = load_image(dir.join(&case.input)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (w, h) = image.dimensions();
    assert_eq!(
        [w as usize, h as usize],
        case.original_size,
        "{name}: decoded size"
    );

    if let Some(error) = case.error {
        let result = preprocess(&image, &config);
        assert!(
            matches!(result, Err(PreprocessError::AspectRatio { .. })),
            "{name}: transformers rejects this image ({error}); we returned {:?}",
            result.map(|p| p.grid_thw)
        );
        return format!("{name:<22} rejected as expected ({error})");
    }

    let mut line = format!("{name:<22}");
    // Decoding, where the generator kept the image the processor resized.
    let is_jpeg = case.input.ends_with(".jpg");
    let pillow_decoded = dir.join("decoded.png");
    let pillow_image = pillow_decoded.is_file().then(|| read_png(&pillow_decoded));
    if let Some(pillow) = &pillow_image {
        let (n, max) = image_diff(&image, pillow);
        let tolerance = if is_jpeg { JPEG_DECODE_TOLERANCE } else { 0 };
        assert!(
            max <= tolerance,
            "{name}: decoded image differs from Pillow's by up to {max} levels"
        );
        line += &format!(" decode: {n} values differ (max {max}),");
    }
    // Everything after decoding is checked from Pillow's pixels, so that JPEG cases test the
    // pipeline rather than the JPEG decoders.
    let reference_input = pillow_image.as_ref().unwrap_or(&image);

    // Resize, bit-exact against Pillow from the same input.
    let [pw, ph] = case.processed_size.expect("processed_size");
    let pillow_resized = read_png(&dir.join("resized.png"));
    let ours = resize_bicubic(reference_input, pw as u32, ph as u32);
    let (n, max) = image_diff(&ours, &pillow_resized);
    assert_eq!(
        n, 0,
        "{name}: bicubic resize differs from Pillow in {n} values (max {max} levels)"
    );

    // Full pipeline.
    let run =
        |input: &RgbImage| preprocess(input, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
    let processed = run(reference_input);
    let (stored, grid) = read_expected(&dir.join("expected.safetensors"));
    let grid: Vec<usize> = grid.into_iter().map(|g| g as usize).collect();
    assert_eq!(processed.grid_thw[..], grid[..], "{name}: image_grid_thw");
    assert_eq!(
        Some(processed.grid_thw),
        case.image_grid_thw,
        "{name}: case.json grid"
    );
    assert_eq!(processed.processed_size, (pw, ph), "{name}: processed size");
    assert_eq!(processed.original_size, (w as usize, h as usize));
    let (expected, source) = match stored {
        Some(pixels) => (pixels, "transformers"),
        None => (
            reference_pixel_values(&pillow_resized, &config),
            "resized.png",
        ),
    };
    assert_eq!(
        processed.pixel_values.len(),
        expected.len(),
        "{name}: pixel_values length"
    );
    let delta = max_abs_diff(&processed.pixel_values, &expected);
    assert!(
        delta <= PIXEL_TOLERANCE,
        "{name}: pixel_values max |Δ| {delta} > {PIXEL_TOLERANCE}"
    );
    line += &format!(
        " grid {:?}, pixel_values max |Δ| {delta:.2e} (vs {source})",
        processed.grid_thw
    );

    if is_jpeg {
        // End to end through our own JPEG decoder.
        let delta = max_abs_diff(&run(&image).pixel_values, &expected);
        assert!(
            delta <= JPEG_PIXEL_TOLERANCE,
            "{name}: end-to-end max |Δ| {delta} > {JPEG_PIXEL_TOLERANCE}"
        );
        line += &format!(", {delta:.2e} from our JPEG decode");
    }
    line
}

#[test]
fn preprocessing_matches_transformers() {
    let dirs = case_dirs();
    assert!(
        !dirs.is_empty(),
        "no cases under {}",
        fixture_root().display()
    );
    // Run every case before failing, so that one report shows them all.
    let failed: Vec<String> = dirs
        .iter()
        .filter_map(|dir| match std::panic::catch_unwind(|| check_case(dir)) {
            Ok(line) => {
                println!("{line}");
                None
            }
            Err(_) => Some(dir.file_name().unwrap().to_string_lossy().into_owned()),
        })
        .collect();
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

#[test]
fn load_errors_name_the_file() {
    let missing = fixture_root().join("no_such_image.png");
    let err = load_image(&missing).unwrap_err();
    assert!(err.to_string().contains("no_such_image.png"), "{err}");

    let not_an_image = fixture_root().join("odd_150x100/case.json");
    let err = load_image(&not_an_image).unwrap_err();
    assert!(matches!(err, PreprocessError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("case.json"), "{err}");
}
