//! InternVL3 image preprocessing: dynamic tiling (InternVL's `dynamic_preprocess`, which
//! transformers' `GotOcr2ImageProcessor` reproduces with `crop_to_patches`), grit-method §3:
//!
//! 1. pick the tile grid whose aspect ratio is closest to the image's among all `cols × rows`
//!    with `min_tiles ≤ cols·rows ≤ max_tiles` ([`tile_grid`]);
//! 2. resize the image to `cols·size × rows·size` with Pillow's bicubic filter and cut it into
//!    tiles, row by row; when there is more than one tile, add the whole image resized to one
//!    tile (the thumbnail);
//! 3. rescale by 1/255 and normalize with the ImageNet mean and std.
//!
//! Boxes an InternVL model writes are in a 0–1000 frame of the original image.

use std::path::Path;

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::patches::normalization_tables;
use super::{PreprocessError, resize_bicubic};

/// ImageNet per-channel mean (RGB), rounded to `f32` from transformers' Python values.
pub const IMAGENET_MEAN: [f32; 3] = [0.485_f64 as f32, 0.456_f64 as f32, 0.406_f64 as f32];
/// ImageNet per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229_f64 as f32, 0.224_f64 as f32, 0.225_f64 as f32];
/// InternVL3's tile side in pixels.
pub const INTERNVL_TILE_SIZE: usize = 448;
/// GRIT trains InternVL3 with at most two tiles (plus the thumbnail).
pub const GRIT_MAX_TILES: usize = 2;
/// Image tokens per 448-px tile: 32×32 patches of 14 px, halved per side by the pixel shuffle.
pub const INTERNVL_TOKENS_PER_TILE: usize = 256;

/// Tiling settings. [`Default`] is GRIT's training setup.
#[derive(Debug, Clone, PartialEq)]
pub struct TileConfig {
    /// Side of a square tile in pixels.
    pub tile_size: usize,
    pub min_tiles: usize,
    /// The grid's tile count limit (the thumbnail is not counted).
    pub max_tiles: usize,
    /// Add the whole image as one more tile when the grid has several.
    pub use_thumbnail: bool,
    /// `<IMG_CONTEXT>` tokens each tile becomes.
    pub tokens_per_tile: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl Default for TileConfig {
    fn default() -> Self {
        Self {
            tile_size: INTERNVL_TILE_SIZE,
            min_tiles: 1,
            max_tiles: GRIT_MAX_TILES,
            use_thumbnail: true,
            tokens_per_tile: INTERNVL_TOKENS_PER_TILE,
            image_mean: IMAGENET_MEAN,
            image_std: IMAGENET_STD,
        }
    }
}

/// The tiling keys of a `GotOcr2ImageProcessor` config.
#[derive(serde::Deserialize)]
struct RawTiles {
    crop_to_patches: Option<bool>,
    min_patches: Option<usize>,
    max_patches: Option<usize>,
}

impl TileConfig {
    /// GRIT's [`Default`], with the tile counts of `dir/preprocessor_config.json` where that file
    /// tiles (`crop_to_patches: true`, as grit writes its checkpoints), so a run's checkpoint is
    /// evaluated with the tiles it was trained with. A file that does not tile (the hub's
    /// processor default) leaves GRIT's 2.
    ///
    /// # Errors
    /// I/O and JSON errors and counts out of range, naming the file.
    pub fn from_checkpoint_dir(dir: &Path) -> Result<Self, PreprocessError> {
        let path = dir.join(super::PREPROCESSOR_CONFIG);
        let mut config = Self::default();
        if !path.is_file() {
            return Ok(config);
        }
        let raw: RawTiles = crate::files::read_json(&path)?;
        if raw.crop_to_patches == Some(true) {
            config.min_tiles = raw.min_patches.unwrap_or(config.min_tiles);
            config.max_tiles = raw.max_patches.unwrap_or(config.max_tiles);
        }
        config.validate().map_err(|e| PreprocessError::Config {
            path,
            message: e.to_string(),
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), PreprocessError> {
        if self.tile_size == 0 || self.min_tiles == 0 || self.min_tiles > self.max_tiles {
            return Err(PreprocessError::InvalidConfig(format!(
                "tile_size ({}) and min_tiles ({}) must be positive and min_tiles at most \
                 max_tiles ({})",
                self.tile_size, self.min_tiles, self.max_tiles
            )));
        }
        if self.image_std.contains(&0.0) {
            return Err(PreprocessError::InvalidConfig(format!(
                "image_std {:?} contains a zero",
                self.image_std
            )));
        }
        Ok(())
    }
}

/// The `(columns, rows)` of tiles for a `width × height` image.
///
/// Candidates are visited by tile count (ties in the order columns-major, as transformers lists
/// them); a strictly closer aspect ratio wins, and on an exact tie the later (larger) grid wins
/// only while the image covers more than half of it: `w·h > ½·size²·cols·rows`.
pub fn tile_grid(
    width: usize,
    height: usize,
    min_tiles: usize,
    max_tiles: usize,
    tile_size: usize,
) -> (usize, usize) {
    let mut grids: Vec<(usize, usize)> = (1..=max_tiles)
        .flat_map(|cols| (1..=max_tiles).map(move |rows| (cols, rows)))
        .filter(|&(cols, rows)| (min_tiles..=max_tiles).contains(&(cols * rows)))
        .collect();
    grids.sort_by_key(|&(cols, rows)| cols * rows);
    let aspect = width as f64 / height as f64;
    let area = (width * height) as f64;
    let tile_area = (tile_size * tile_size) as f64;
    let mut best = (1, 1);
    let mut best_diff = f64::INFINITY;
    for (cols, rows) in grids {
        let diff = (aspect - cols as f64 / rows as f64).abs();
        if diff < best_diff {
            best_diff = diff;
            best = (cols, rows);
        } else if diff == best_diff && area > 0.5 * tile_area * (cols * rows) as f64 {
            best = (cols, rows);
        }
    }
    best
}

/// One image as InternVL3's vision tower takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TiledImage {
    /// Normalized tiles, channel-major: the grid's tiles row by row, then the thumbnail.
    ///
    /// # Shapes
    /// `[tiles, 3, tile_size, tile_size]` row-major.
    pub pixel_values: Vec<f32>,
    /// Tiles in `pixel_values`, thumbnail included.
    pub tiles: usize,
    pub tile_size: usize,
    /// `(columns, rows)` of the grid.
    pub grid: (usize, usize),
    /// `(width, height)` of the decoded image in pixels: the frame that 0–1000 boxes map onto.
    pub original_size: (usize, usize),
    /// `<IMG_CONTEXT>` tokens the image takes in the prompt.
    pub num_image_tokens: usize,
}

/// Tiles a decoded image as transformers' `GotOcr2ImageProcessorPil` does with
/// `crop_to_patches` (InternVL's `dynamic_preprocess` and transform).
///
/// # Errors
/// [`PreprocessError::EmptyImage`], and [`PreprocessError::InvalidConfig`] for a zero tile size,
/// `min_tiles` of zero or above `max_tiles`, or a zero standard deviation.
pub fn preprocess_tiles(
    image: &RgbImage,
    config: &TileConfig,
) -> Result<TiledImage, PreprocessError> {
    tile(image, config, None)
}

/// The JPEG qualities InternVL's training transform draws from (`qualities = range(75, 101)`).
pub const JPEG_QUALITIES: std::ops::RangeInclusive<u8> = 75..=100;

/// [`preprocess_tiles`] with InternVL's training augmentation (`build_transform(is_train=True)`):
/// every tile, the thumbnail included, is saved as JPEG at a quality drawn uniformly from
/// [`JPEG_QUALITIES`] and decoded again before it is normalized. The draws come from `seed`.
///
/// The encoder is the image crate's (baseline, 4:2:0, the IJG tables scaled by quality, as
/// libjpeg's); its bytes are not Pillow's, so the degradation matches in kind and strength, not
/// pixel for pixel.
///
/// # Errors
/// As [`preprocess_tiles`].
pub fn preprocess_tiles_jpeg(
    image: &RgbImage,
    config: &TileConfig,
    seed: u64,
) -> Result<TiledImage, PreprocessError> {
    tile(image, config, Some(&mut StdRng::seed_from_u64(seed)))
}

fn tile(
    image: &RgbImage,
    config: &TileConfig,
    mut jpeg: Option<&mut StdRng>,
) -> Result<TiledImage, PreprocessError> {
    config.validate()?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    let size = config.tile_size;
    let (cols, rows) = tile_grid(width, height, config.min_tiles, config.max_tiles, size);
    let resized = resize_bicubic(image, (cols * size) as u32, (rows * size) as u32);
    let tables = normalization_tables(config.image_mean, config.image_std);
    let grid_tiles = cols * rows;
    let thumbnail = (config.use_thumbnail && grid_tiles > 1)
        .then(|| resize_bicubic(image, size as u32, size as u32));
    let tiles = grid_tiles + usize::from(thumbnail.is_some());
    let mut pixel_values = Vec::with_capacity(tiles * 3 * size * size);
    let squares = (0..grid_tiles)
        .map(|tile| (&resized, (tile % cols) * size, (tile / cols) * size))
        .chain(thumbnail.as_ref().map(|t| (t, 0, 0)));
    for (source, x0, y0) in squares {
        match jpeg.as_deref_mut() {
            Some(rng) => {
                let square = image::imageops::crop_imm(
                    source,
                    x0 as u32,
                    y0 as u32,
                    size as u32,
                    size as u32,
                )
                .to_image();
                let degraded = jpeg_round_trip(&square, rng.random_range(JPEG_QUALITIES))?;
                push_tile(&mut pixel_values, &degraded, 0, 0, size, &tables);
            }
            None => push_tile(&mut pixel_values, source, x0, y0, size, &tables),
        }
    }
    Ok(TiledImage {
        pixel_values,
        tiles,
        tile_size: size,
        grid: (cols, rows),
        original_size: (width, height),
        num_image_tokens: tiles * config.tokens_per_tile,
    })
}

/// The image saved as JPEG at `quality` and decoded again.
fn jpeg_round_trip(image: &RgbImage, quality: u8) -> Result<RgbImage, PreprocessError> {
    let mut bytes = Vec::new();
    let encode =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(image);
    let invalid = |e: image::ImageError| {
        PreprocessError::InvalidConfig(format!("JPEG round trip at quality {quality}: {e}"))
    };
    encode.map_err(invalid)?;
    let decoded =
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).map_err(invalid)?;
    Ok(decoded.to_rgb8())
}

/// Appends the `size × size` square at `(x0, y0)` of `image`, normalized, channel by channel.
fn push_tile(
    out: &mut Vec<f32>,
    image: &RgbImage,
    x0: usize,
    y0: usize,
    size: usize,
    tables: &[[f32; 256]; 3],
) {
    let stride = image.width() as usize * 3;
    let pixels = image.as_raw();
    for (channel, table) in tables.iter().enumerate() {
        for y in y0..y0 + size {
            let row = &pixels[y * stride + x0 * 3..y * stride + (x0 + size) * 3];
            out.extend(
                row.iter()
                    .skip(channel)
                    .step_by(3)
                    .map(|&v| table[usize::from(v)]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_that_tiles_keeps_its_tile_count() {
        let dir = tempfile::tempdir().unwrap();
        let write = |json: &str| std::fs::write(dir.path().join("preprocessor_config.json"), json);
        assert_eq!(
            TileConfig::from_checkpoint_dir(dir.path())
                .unwrap()
                .max_tiles,
            2
        );
        write(r#"{"crop_to_patches": true, "min_patches": 1, "max_patches": 6}"#).unwrap();
        assert_eq!(
            TileConfig::from_checkpoint_dir(dir.path())
                .unwrap()
                .max_tiles,
            6
        );
        // The hub's processor default does not tile: GRIT's 2 stay.
        write(r#"{"crop_to_patches": false, "max_patches": 12}"#).unwrap();
        assert_eq!(
            TileConfig::from_checkpoint_dir(dir.path())
                .unwrap()
                .max_tiles,
            2
        );
        write(r#"{"crop_to_patches": true, "min_patches": 3, "max_patches": 2}"#).unwrap();
        let error = TileConfig::from_checkpoint_dir(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("preprocessor_config.json"),
            "{error}"
        );
    }

    #[test]
    fn jpeg_tiles_are_degraded_reproducibly_and_differ_by_draw() {
        let image = RgbImage::from_fn(900, 500, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let config = TileConfig::default();
        let clean = preprocess_tiles(&image, &config).unwrap();
        let a = preprocess_tiles_jpeg(&image, &config, 1).unwrap();
        let b = preprocess_tiles_jpeg(&image, &config, 1).unwrap();
        let c = preprocess_tiles_jpeg(&image, &config, 2).unwrap();
        assert_eq!((a.grid, a.tiles), (clean.grid, clean.tiles));
        assert_eq!(a.pixel_values, b.pixel_values);
        assert_ne!(a.pixel_values, c.pixel_values);
        // Degraded, but close: JPEG at quality ≥ 75 moves a normalized value by little on average.
        let mean_error = a
            .pixel_values
            .iter()
            .zip(&clean.pixel_values)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / a.pixel_values.len() as f32;
        assert!(mean_error > 0.0 && mean_error < 0.5, "{mean_error}");
    }

    #[test]
    fn grit_grids() {
        // max 2: one tile, or two side by side / stacked.
        assert_eq!(tile_grid(448, 448, 1, 2, 448), (1, 1));
        assert_eq!(tile_grid(1000, 400, 1, 2, 448), (2, 1));
        assert_eq!(tile_grid(400, 1000, 1, 2, 448), (1, 2));
        // Equal ratios: 2×2 only once the image covers more than half of it.
        assert_eq!(tile_grid(600, 600, 1, 4, 448), (1, 1));
        assert_eq!(tile_grid(700, 700, 1, 4, 448), (2, 2));
    }

    #[test]
    fn tiles_are_cut_row_by_row_then_the_thumbnail() {
        // 4×2 px, tile 2: a 2×1 grid; tile 0 is the left half.
        let image = RgbImage::from_fn(4, 2, |x, _| image::Rgb([if x < 2 { 0 } else { 255 }; 3]));
        let config = TileConfig {
            tile_size: 2,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            ..TileConfig::default()
        };
        let out = preprocess_tiles(&image, &config).unwrap();
        assert_eq!(
            (out.grid, out.tiles, out.num_image_tokens),
            ((2, 1), 3, 768)
        );
        let tile = 3 * 2 * 2;
        assert!(out.pixel_values[..tile].iter().all(|&v| v == 0.0));
        assert!(out.pixel_values[tile..2 * tile].iter().all(|&v| v == 1.0));
        assert_eq!(out.pixel_values.len(), 3 * tile);
    }

    #[test]
    fn bad_configs_are_errors() {
        let image = RgbImage::new(4, 4);
        let config = TileConfig {
            min_tiles: 3,
            ..TileConfig::default()
        };
        assert!(preprocess_tiles(&image, &config).is_err());
        assert!(matches!(
            preprocess_tiles(&RgbImage::new(0, 4), &TileConfig::default()),
            Err(PreprocessError::EmptyImage { .. })
        ));
    }
}
