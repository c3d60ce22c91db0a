//! Qwen2.5-VL image preprocessing, reproducing transformers' `Qwen2VLImageProcessorPil` (the PIL
//! backend) fed by `transformers.image_utils.load_image` (grit-method §3):
//!
//! 1. decode to upright 8-bit RGB ([`load_image`]);
//! 2. pick the target size with [`smart_resize`] (multiples of 28, pixel count within
//!    `[min_pixels, max_pixels]`);
//! 3. resize with Pillow's bicubic filter, bit for bit ([`resize_bicubic`]);
//! 4. rescale by 1/255, normalize with the CLIP mean and std, and cut into 14×14 patches repeated
//!    over a temporal patch of 2, ordered by 2×2 merge groups ([`preprocess`]).
//!
//! The boxes a Qwen2.5-VL model writes are absolute pixels of the *processed* image
//! ([`ProcessedImage::processed_size`]); [`ProcessedImage::original_size`] maps them back.
//!
//! InternVL3's tiling lives in [`internvl`].

mod decode;
pub mod internvl;
mod patches;
mod resample;
mod smart_resize;

use std::path::{Path, PathBuf};

use crate::files::{FileError, read_json};

pub use decode::{Decoding, load_image, load_image_as};
pub use image::RgbImage;
pub use resample::resize_bicubic;
pub use smart_resize::smart_resize;

/// OpenAI CLIP per-channel mean (RGB), the normalization Qwen2-VL was trained with. Written as
/// transformers' Python (`f64`) values and rounded to `f32` the way numpy does, so the bits agree.
pub const CLIP_MEAN: [f32; 3] = [
    0.481_454_66_f64 as f32,
    0.457_827_5_f64 as f32,
    0.408_210_73_f64 as f32,
];
/// OpenAI CLIP per-channel standard deviation (RGB), rounded like [`CLIP_MEAN`].
pub const CLIP_STD: [f32; 3] = [
    0.268_629_54_f64 as f32,
    0.261_302_58_f64 as f32,
    0.275_777_11_f64 as f32,
];
/// GRIT's lower pixel bound: 56² = 4 merged tokens.
pub const GRIT_MIN_PIXELS: usize = 56 * 56;
/// GRIT's upper pixel bound: 256 merged tokens of 28×28 px.
pub const GRIT_MAX_PIXELS: usize = 256 * 28 * 28;
/// transformers' / Qwen's default upper pixel bound (16384 merged tokens).
pub const QWEN_MAX_PIXELS: usize = 16384 * 28 * 28;

/// The preprocessor config file of a Hugging Face checkpoint.
pub(crate) const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
/// `PILImageResampling.BICUBIC`, the only filter implemented.
const PIL_BICUBIC: u64 = 3;

/// Everything that can go wrong between an image file and `pixel_values`.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: cannot decode image: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid preprocessing config: {0}")]
    InvalidConfig(String),
    #[error("image of {width}x{height} px has an aspect ratio above 200, which Qwen2-VL rejects")]
    AspectRatio { width: usize, height: usize },
    #[error("image of {width}x{height} px is empty")]
    EmptyImage { width: usize, height: usize },
}

/// Qwen2-VL image processor settings.
///
/// [`Default`] is GRIT's training setup (at most 256 visual tokens per image); a checkpoint's own
/// file is read by [`PreprocessConfig::from_checkpoint_dir`].
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Lower bound on the processed pixel count (transformers' `min_pixels` / `size.shortest_edge`).
    pub min_pixels: usize,
    /// Upper bound on the processed pixel count (`max_pixels` / `size.longest_edge`).
    pub max_pixels: usize,
    /// Side of a vision patch in pixels.
    pub patch_size: usize,
    /// Frames per temporal patch; a still image is repeated this many times.
    pub temporal_patch_size: usize,
    /// Side of the square of patches the merger fuses into one token.
    pub merge_size: usize,
    /// Per-channel (RGB) mean subtracted after scaling to `[0, 1]`.
    pub image_mean: [f32; 3],
    /// Per-channel (RGB) standard deviation divided by after subtracting the mean.
    pub image_std: [f32; 3],
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            min_pixels: GRIT_MIN_PIXELS,
            max_pixels: GRIT_MAX_PIXELS,
            ..Self::qwen_defaults()
        }
    }
}

/// The subset of `preprocessor_config.json` that matters here; the `do_*` switches are read only
/// to refuse files that ask for a pipeline this module does not implement.
#[derive(serde::Deserialize)]
struct RawConfig {
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    size: Option<RawSize>,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    merge_size: Option<usize>,
    image_mean: Option<[f64; 3]>,
    image_std: Option<[f64; 3]>,
    do_resize: Option<bool>,
    do_rescale: Option<bool>,
    do_normalize: Option<bool>,
    do_convert_rgb: Option<bool>,
    rescale_factor: Option<f64>,
    resample: Option<u64>,
}

#[derive(serde::Deserialize)]
struct RawSize {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
}

impl PreprocessConfig {
    /// transformers' `Qwen2VLImageProcessor` class defaults, what a config file falls back to.
    fn qwen_defaults() -> Self {
        Self {
            min_pixels: GRIT_MIN_PIXELS,
            max_pixels: QWEN_MAX_PIXELS,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        }
    }

    /// Reads `dir/preprocessor_config.json` if the checkpoint has one (see
    /// [`Self::from_preprocessor_config`]), otherwise returns GRIT's [`Default`].
    ///
    /// # Errors
    /// As [`Self::from_preprocessor_config`].
    pub fn from_checkpoint_dir(dir: impl AsRef<Path>) -> Result<Self, PreprocessError> {
        let path = dir.as_ref().join(PREPROCESSOR_CONFIG);
        if path.is_file() {
            Self::from_preprocessor_config(path)
        } else {
            Ok(Self::default())
        }
    }

    /// Parses a `preprocessor_config.json` the way transformers 5.x does: keys that are absent take
    /// the image processor's class defaults (`max_pixels` 12845056, not GRIT's), the pixel bounds
    /// come from `size.shortest_edge` / `size.longest_edge`, overridden by top-level `min_pixels` /
    /// `max_pixels` (older files).
    ///
    /// # Errors
    /// I/O and JSON errors, and files that switch off resizing, rescaling, normalization or RGB
    /// conversion, or ask for a different filter or rescale factor, all naming the file.
    pub fn from_preprocessor_config(path: impl AsRef<Path>) -> Result<Self, PreprocessError> {
        let path = path.as_ref();
        let raw: RawConfig = read_json(path)?;
        Self::from_raw(raw).map_err(|message| PreprocessError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    fn from_raw(raw: RawConfig) -> Result<Self, String> {
        let switched_off = [
            ("do_resize", raw.do_resize),
            ("do_rescale", raw.do_rescale),
            ("do_normalize", raw.do_normalize),
            ("do_convert_rgb", raw.do_convert_rgb),
        ];
        if let Some((key, _)) = switched_off.iter().find(|(_, v)| *v == Some(false)) {
            return Err(format!("`{key}: false` is not supported"));
        }
        if let Some(resample) = raw.resample.filter(|&r| r != PIL_BICUBIC) {
            return Err(format!(
                "resample {resample} is not supported (only 3, bicubic)"
            ));
        }
        // Compared with a tolerance: JSON float parsing need not round-trip the last bit.
        if let Some(factor) = raw
            .rescale_factor
            .filter(|f| (f * 255.0 - 1.0).abs() > 1e-9)
        {
            return Err(format!(
                "rescale_factor {factor} is not supported (only 1/255)"
            ));
        }
        let defaults = Self::qwen_defaults();
        let size = raw.size.as_ref();
        let to_f32 = |v: [f64; 3]| v.map(|x| x as f32);
        let config = Self {
            min_pixels: raw
                .min_pixels
                .or(size.and_then(|s| s.shortest_edge))
                .unwrap_or(defaults.min_pixels),
            max_pixels: raw
                .max_pixels
                .or(size.and_then(|s| s.longest_edge))
                .unwrap_or(defaults.max_pixels),
            patch_size: raw.patch_size.unwrap_or(defaults.patch_size),
            temporal_patch_size: raw
                .temporal_patch_size
                .unwrap_or(defaults.temporal_patch_size),
            merge_size: raw.merge_size.unwrap_or(defaults.merge_size),
            image_mean: raw.image_mean.map_or(defaults.image_mean, to_f32),
            image_std: raw.image_std.map_or(defaults.image_std, to_f32),
        };
        config.validate().map(|()| config)
    }

    /// Side of one merged token in pixels; processed sides are multiples of it.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || self.temporal_patch_size == 0 || self.merge_size == 0 {
            return Err(format!(
                "patch_size ({}), temporal_patch_size ({}) and merge_size ({}) must be positive",
                self.patch_size, self.temporal_patch_size, self.merge_size
            ));
        }
        if self.image_std.contains(&0.0) {
            return Err(format!("image_std {:?} contains a zero", self.image_std));
        }
        Ok(())
    }
}

/// One image ready for the Qwen2.5-VL vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// Flattened, normalized patches in merge-group order (see [`preprocess`]).
    ///
    /// # Shapes
    /// `[grid_t·grid_h·grid_w, 3·temporal_patch_size·patch_size²]` row-major (`[N, 1176]` for
    /// Qwen2.5-VL).
    pub pixel_values: Vec<f32>,
    /// `[grid_t, grid_h, grid_w]` in patches; `grid_t` is 1 for a still image.
    pub grid_thw: [usize; 3],
    /// `(width, height)` of the decoded image in pixels.
    pub original_size: (usize, usize),
    /// `(width, height)` after resizing, `(grid_w·patch_size, grid_h·patch_size)`: the frame the
    /// model's boxes are expressed in.
    pub processed_size: (usize, usize),
}

impl ProcessedImage {
    /// Number of patch rows in `pixel_values`.
    pub fn num_patches(&self) -> usize {
        self.grid_thw.iter().product()
    }
}

/// Turns a decoded image into Qwen2.5-VL vision input, matching transformers'
/// `Qwen2VLImageProcessorPil` with `do_resize` (bicubic), `do_rescale`, `do_normalize`.
///
/// # Shapes
/// `image`: `[h, w, 3]` `u8` → `pixel_values` `[grid_h·grid_w, 3·T·p²]` `f32`, with
/// `(grid_h·p, grid_w·p) = smart_resize(h, w)`.
///
/// # Errors
/// [`PreprocessError::AspectRatio`] / [`PreprocessError::EmptyImage`] from [`smart_resize`], and
/// [`PreprocessError::InvalidConfig`] for zero patch sizes or a zero standard deviation.
pub fn preprocess(
    image: &RgbImage,
    config: &PreprocessConfig,
) -> Result<ProcessedImage, PreprocessError> {
    config.validate().map_err(PreprocessError::InvalidConfig)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (processed_h, processed_w) = smart_resize(
        height,
        width,
        config.factor(),
        config.min_pixels,
        config.max_pixels,
    )?;
    let resized = resize_bicubic(image, processed_w as u32, processed_h as u32);
    let grid_thw = [
        1,
        processed_h / config.patch_size,
        processed_w / config.patch_size,
    ];
    Ok(ProcessedImage {
        pixel_values: patches::patchify(&resized, config),
        grid_thw,
        original_size: (width, height),
        processed_size: (processed_w, processed_h),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<PreprocessConfig, String> {
        PreprocessConfig::from_raw(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn config_defaults_are_grit() {
        let c = PreprocessConfig::default();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 200_704));
        assert_eq!(c.factor(), 28);
    }

    #[test]
    fn config_file_keys() {
        // Qwen2.5-VL hub file (4.x style): top-level bounds.
        let c = parse(
            r#"{"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14,
                "temporal_patch_size": 2, "merge_size": 2, "resample": 3,
                "rescale_factor": 0.00392156862745098,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
        )
        .unwrap();
        assert_eq!(c, PreprocessConfig::qwen_defaults());
        // 5.x style: size dict; top-level keys win over it.
        let c = parse(r#"{"size": {"shortest_edge": 100, "longest_edge": 5000}}"#).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (100, 5000));
        let c = parse(r#"{"size": {"shortest_edge": 100, "longest_edge": 5000}, "max_pixels": 7}"#)
            .unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (100, 7));
        // Absent keys: transformers' class defaults, not GRIT's.
        assert_eq!(parse("{}").unwrap().max_pixels, QWEN_MAX_PIXELS);
    }

    #[test]
    fn config_file_rejects_other_pipelines() {
        assert!(
            parse(r#"{"do_normalize": false}"#)
                .unwrap_err()
                .contains("do_normalize")
        );
        assert!(
            parse(r#"{"resample": 2}"#)
                .unwrap_err()
                .contains("resample")
        );
        assert!(parse(r#"{"rescale_factor": 1.0}"#).is_err());
        assert!(parse(r#"{"patch_size": 0}"#).is_err());
    }

    #[test]
    fn patch_rows_follow_merge_groups() {
        // A 56x28 image (grid 2x4): give every 14x14 patch a distinct red level.
        let image = RgbImage::from_fn(56, 28, |x, y| {
            image::Rgb([(10 * (y / 14 * 4 + x / 14)) as u8, 0, 0])
        });
        let config = PreprocessConfig {
            min_pixels: 0,
            ..PreprocessConfig::default()
        };
        let out = preprocess(&image, &config).unwrap();
        assert_eq!(out.grid_thw, [1, 2, 4]);
        assert_eq!(out.processed_size, (56, 28));
        assert_eq!(out.pixel_values.len(), 8 * 1176);
        let red = |v: u8| ((f64::from(v) * (1.0 / 255.0)) as f32 - CLIP_MEAN[0]) / CLIP_STD[0];
        // Merge block (0,0) holds patches (0,0) (0,1) (1,0) (1,1), then block (0,1).
        let order = [0u8, 1, 4, 5, 2, 3, 6, 7];
        for (row, &patch) in out.pixel_values.chunks_exact(1176).zip(&order) {
            // Red channel, both temporal copies, all 196 pixels.
            assert!(
                row[..392].iter().all(|&v| v == red(10 * patch)),
                "patch {patch}"
            );
            assert!(row[392..].iter().all(|&v| v != red(10 * patch)));
        }
    }
}
