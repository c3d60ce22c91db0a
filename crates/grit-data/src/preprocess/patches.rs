//! Rescale, normalize and patchify a resized image into Qwen2-VL's flat `pixel_values` rows.

use image::RgbImage;

use super::PreprocessConfig;

/// Normalized value of every `u8` level per channel, computed exactly as transformers' PIL backend:
/// `f32(f64(v) * (1/255))` (`rescale` upcasts to `f64`, then stores `f32`), then
/// `(x - mean) / std` in `f32`. A lookup table makes the per-pixel work a load.
pub(super) fn normalization_tables(image_mean: [f32; 3], image_std: [f32; 3]) -> [[f32; 256]; 3] {
    let rescale = 1.0f64 / 255.0;
    std::array::from_fn(|c| {
        let (mean, std) = (image_mean[c], image_std[c]);
        std::array::from_fn(|v| ((v as f64 * rescale) as f32 - mean) / std)
    })
}

/// Flattens an image whose sides are multiples of `patch_size · merge_size` into one row per patch.
///
/// Rows are ordered by 2×2 merge groups (the order the patch merger concatenates them): merge
/// blocks in raster order, and within each block its patches in raster order. Each row holds, per
/// channel, `temporal_patch_size` identical copies (a still image is a clip of repeated frames) of
/// the `patch_size²` pixels in raster order; this is transformers'
/// `reshape(C, gh/m, m, p, gw/m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)` with the temporal axis
/// broadcast after `C`.
///
/// # Shapes
/// `image`: `[h, w, 3]` `u8` → returns `[gh·gw, 3·T·p·p]` `f32` row-major, with `gh = h/p`,
/// `gw = w/p`.
pub(super) fn patchify(image: &RgbImage, config: &PreprocessConfig) -> Vec<f32> {
    let tables = normalization_tables(config.image_mean, config.image_std);
    let (p, m, t) = (
        config.patch_size,
        config.merge_size,
        config.temporal_patch_size,
    );
    let width = image.width() as usize;
    let (grid_h, grid_w) = (image.height() as usize / p, width / p);
    let pixels = image.as_raw();
    let plane = p * p;
    let mut out = Vec::with_capacity(grid_h * grid_w * 3 * t * plane);
    for block_y in 0..grid_h / m {
        for block_x in 0..grid_w / m {
            for patch_y in block_y * m..(block_y + 1) * m {
                for patch_x in block_x * m..(block_x + 1) * m {
                    for (channel, table) in tables.iter().enumerate() {
                        let start = out.len();
                        for y in patch_y * p..(patch_y + 1) * p {
                            let row = (y * width + patch_x * p) * 3;
                            let patch_row = pixels[row..row + 3 * p].iter().skip(channel);
                            out.extend(patch_row.step_by(3).map(|&v| table[usize::from(v)]));
                        }
                        for _ in 1..t {
                            out.extend_from_within(start..start + plane);
                        }
                    }
                }
            }
        }
    }
    out
}
