//! Image files to upright 8-bit RGB, as transformers' `load_image` produces them
//! (`PIL.Image.open` → `ImageOps.exif_transpose` → `.convert("RGB")`), including what the image
//! processor's `convert_to_rgb` then does to PNG colour keys — except that RGBA images are
//! composited onto white, as GRIT's own loader (`to_rgb` in its `vision_process.py`, from
//! qwen-vl-utils) does before anything else sees them.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::error::{DecodingError, ImageFormatHint};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use super::PreprocessError;
use crate::files::FileError;

/// Decodes an image file (PNG, JPEG or WebP, recognised by content) into upright 8-bit RGB with the
/// pixel values the Python pipeline (transformers' `load_image`, then the PIL image processor's
/// `convert_to_rgb`) gives:
///
/// - the EXIF orientation (JPEG, WebP, PNG `eXIf`) is applied, as `ImageOps.exif_transpose` does;
/// - an RGBA image (Pillow mode `RGBA`: PNG colour type RGBA of 8 or 16 bits, WebP with alpha) is
///   composited onto white with Pillow's `paste(image, mask=alpha)` rounding, as GRIT's `to_rgb`
///   does; other alpha (gray+alpha, palette or colour-key transparency) is dropped by
///   `.convert("RGB")` there too (plain `load_image` would drop RGBA's alpha as well);
/// - a PNG `tRNS` colour key, however, survives `.convert("RGB")` as Pillow's `transparency`
///   info, and `convert_to_rgb` paints every pixel of that colour white;
/// - grayscale is replicated into the three channels;
/// - 16-bit samples follow Pillow's decoders: RGB(A) and gray+alpha PNGs keep the high byte
///   (`v >> 8`), while a 16-bit gray PNG opens as mode `I;16`, whose conversion to RGB **clips**
///   at 255 (`min(v, 255)`) instead of scaling, so most of such an image saturates. That is what
///   the Python pipeline feeds the model, so it is reproduced rather than fixed.
///
/// JPEG decoding uses zune-jpeg, not Pillow's libjpeg-turbo, and the two round differently: 1–2
/// levels on a few percent of the values, rarely up to 4. Lossless formats decode identically.
///
/// # Errors
/// [`PreprocessError::File`] when the file cannot be opened, [`PreprocessError::Decode`] when its
/// content is not a supported image; both name the file.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage, PreprocessError> {
    load_image_as(path, Decoding::FIXED)
}

/// How an image file becomes RGB: the repaired pipeline ([`Decoding::FIXED`]) or what one of the
/// official loaders does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoding {
    /// Apply the EXIF orientation. The official loaders (`Image.open` without
    /// `exif_transpose`) do not, so a rotated photo reaches the model as stored.
    pub exif: bool,
    /// Composite RGBA onto white and paint a PNG colour key white, as GRIT's Qwen loader
    /// (`to_rgb`) and the HF processor do; otherwise drop alpha and keep the key's colour, as
    /// InternVL's `Image.open(path).convert('RGB')` does.
    pub on_white: bool,
}

impl Decoding {
    /// Upright, transparency on white.
    pub const FIXED: Self = Self {
        exif: true,
        on_white: true,
    };
    /// GRIT's Qwen2.5-VL loader (`fetch_image`): as stored, transparency on white.
    pub const OFFICIAL_QWEN: Self = Self {
        exif: false,
        on_white: true,
    };
    /// GRIT's InternVL loader: as stored, alpha dropped.
    pub const OFFICIAL_INTERNVL: Self = Self {
        exif: false,
        on_white: false,
    };
}

/// [`load_image`] with the given [`Decoding`].
///
/// # Errors
/// As [`load_image`].
pub fn load_image_as(
    path: impl AsRef<Path>,
    decoding: Decoding,
) -> Result<RgbImage, PreprocessError> {
    let path = path.as_ref();
    let decode_err = |source| PreprocessError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|source| FileError::io(path, source))?;
    let reader_format = reader.format();
    let png = match reader_format {
        Some(ImageFormat::Png) => read_png_header(path).map_err(decode_err)?,
        _ => PngHeader::default(),
    };
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let orientation = decoder.orientation().map_err(decode_err)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    if decoding.exif {
        image.apply_orientation(orientation);
    }
    let rgba = match reader_format {
        Some(ImageFormat::Png) => png.rgba,
        _ => matches!(
            image,
            DynamicImage::ImageRgba8(_) | DynamicImage::ImageRgba16(_)
        ),
    };
    let mut rgb = match (rgba, decoding.on_white) {
        (true, true) => composite_on_white(&to_rgba8_like_pillow(image)),
        (true, false) => DynamicImage::ImageRgba8(to_rgba8_like_pillow(image)).to_rgb8(),
        (false, _) => to_rgb8_like_pillow(image, png.gray16),
    };
    if let Some(key) = png.color_key.filter(|_| decoding.on_white) {
        for pixel in rgb.pixels_mut().filter(|p| p.0 == key) {
            pixel.0 = [255; 3];
        }
    }
    Ok(rgb)
}

/// What Pillow's PNG plugin keeps from the header that the image crate folds into its output.
#[derive(Default)]
struct PngHeader {
    /// Colour type RGBA (Pillow mode `RGBA`), the only alpha GRIT composites onto white.
    rgba: bool,
    /// 16-bit grayscale: Pillow's mode `I;16`, clipped (not scaled) to 8 bits, with or without a
    /// `tRNS` chunk (which the image crate turns into an alpha channel).
    gray16: bool,
    /// The colour `convert_to_rgb` paints white, if any.
    color_key: Option<[u8; 3]>,
}

/// Reads a PNG's header chunks (everything before the image data).
fn read_png_header(path: &Path) -> Result<PngHeader, ImageError> {
    let file = File::open(path).map_err(ImageError::IoError)?;
    let reader = png::Decoder::new(BufReader::new(file))
        .read_info()
        .map_err(|e| {
            ImageError::Decoding(DecodingError::new(
                ImageFormatHint::Exact(ImageFormat::Png),
                e,
            ))
        })?;
    let info = reader.info();
    Ok(PngHeader {
        rgba: info.color_type == png::ColorType::Rgba,
        gray16: info.color_type == png::ColorType::Grayscale
            && info.bit_depth == png::BitDepth::Sixteen,
        color_key: info.trns.as_deref().and_then(|trns| {
            pillow_color_key(
                info.color_type,
                info.bit_depth,
                trns,
                info.palette.as_deref(),
            )
        }),
    })
}

/// The RGB colour that a PNG's `tRNS` chunk makes white in the Python pipeline.
///
/// Pillow stores the chunk as `info["transparency"]`, `convert("RGB")` translates it into the new
/// mode, and `convert_to_rgb` then makes that colour fully transparent and composites onto white.
/// The translation, reproduced here (checked against Pillow 13):
/// - palette: only a chunk with exactly one fully transparent entry and every other entry opaque
///   becomes a key (that entry's colour); per-entry alpha is dropped;
/// - RGB (8 or 16 bits): the three samples, truncated to their low byte (compared with the 8-bit
///   pixels, i.e. the high bytes, for 16-bit images);
/// - gray of 2, 4 or 8 bits: the sample replicated, `(k, k, k)`;
/// - gray of 1 or 16 bits: Pillow keeps a single integer (`255·k` for 1 bit), which matches the
///   RGB pixel `(k & 255, 0, 0)`: only black pixels, and only when the low byte is 0.
fn pillow_color_key(
    color_type: png::ColorType,
    bit_depth: png::BitDepth,
    trns: &[u8],
    palette: Option<&[u8]>,
) -> Option<[u8; 3]> {
    // The png crate keeps 16-bit samples as big-endian pairs and has already reduced shallower
    // ones to a byte each; Pillow keeps the low byte.
    let low = |i: usize| match bit_depth {
        png::BitDepth::Sixteen => trns.get(2 * i + 1).copied(),
        _ => trns.get(i).copied(),
    };
    match (color_type, bit_depth) {
        (png::ColorType::Indexed, _) => {
            let index = trns.iter().position(|&a| a == 0)?;
            let others_opaque = trns
                .iter()
                .enumerate()
                .all(|(i, &a)| i == index || a == 255);
            let color = palette?.get(3 * index..3 * index + 3)?;
            others_opaque.then(|| [color[0], color[1], color[2]])
        }
        (png::ColorType::Rgb, _) => Some([low(0)?, low(1)?, low(2)?]),
        (png::ColorType::Grayscale, png::BitDepth::One) => Some([low(0)?.wrapping_mul(255), 0, 0]),
        (png::ColorType::Grayscale, png::BitDepth::Sixteen) => Some([low(0)?, 0, 0]),
        (png::ColorType::Grayscale, _) => Some([low(0)?; 3]),
        _ => None,
    }
}

/// Converts any decoded image to 8-bit RGB the way Pillow's decoders and `convert("RGB")` would
/// have (see [`load_image`]).
///
/// `gray16_png`: the image is a 16-bit gray PNG whose `tRNS` chunk the image crate turned into
/// alpha; Pillow clips it like any other 16-bit gray image.
fn to_rgb8_like_pillow(image: DynamicImage, gray16_png: bool) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(gray) => {
            let clipped = gray.pixels().map(|p| clip_u16(p.0[0]));
            gray_to_rgb(gray.width(), gray.height(), clipped)
        }
        DynamicImage::ImageLumaA16(gray) if gray16_png => {
            let clipped = gray.pixels().map(|p| clip_u16(p.0[0]));
            gray_to_rgb(gray.width(), gray.height(), clipped)
        }
        DynamicImage::ImageLumaA16(gray) => {
            let high = gray.pixels().map(|p| high_byte(p.0[0]));
            gray_to_rgb(gray.width(), gray.height(), high)
        }
        DynamicImage::ImageRgb16(rgb) => {
            let high = rgb.pixels().flat_map(|p| p.0.map(high_byte));
            RgbImage::from_vec(rgb.width(), rgb.height(), high.collect()).expect("same size")
        }
        // 8-bit gray (alpha dropped) and the RGBA the image crate makes of palette or colour-key
        // transparency (alpha dropped; RGBA proper is composited before): the image crate's conversion
        // replicates gray and drops alpha exactly as Pillow does. Float images cannot come out of
        // the PNG, JPEG or WebP decoders.
        other => other.to_rgb8(),
    }
}

/// 16-bit samples keep their high byte, as Pillow's PNG decoder does.
fn to_rgba8_like_pillow(image: DynamicImage) -> image::RgbaImage {
    match image {
        DynamicImage::ImageRgba16(rgba) => {
            let high = rgba.pixels().flat_map(|p| p.0.map(high_byte));
            image::RgbaImage::from_vec(rgba.width(), rgba.height(), high.collect())
                .expect("same size")
        }
        other => other.to_rgba8(),
    }
}

/// Pillow's `Image.new("RGB", size, white).paste(image, mask=alpha)`: per channel
/// `(255·(255 − a) + c·a) / 255`, rounded the way Pillow's `DIV255` rounds.
fn composite_on_white(rgba: &image::RgbaImage) -> RgbImage {
    let div255 = |v: u32| {
        let v = v + 128;
        ((v + (v >> 8)) >> 8) as u8
    };
    let pixels = rgba.pixels().flat_map(|p| {
        let a = u32::from(p.0[3]);
        [0, 1, 2].map(|c| div255(255 * (255 - a) + u32::from(p.0[c]) * a))
    });
    RgbImage::from_vec(rgba.width(), rgba.height(), pixels.collect()).expect("same size")
}

fn clip_u16(v: u16) -> u8 {
    v.min(255) as u8
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

fn gray_to_rgb(width: u32, height: u32, gray: impl Iterator<Item = u8>) -> RgbImage {
    let rgb = gray.flat_map(|v| [v; 3]).collect();
    RgbImage::from_vec(width, height, rgb).expect("same size")
}

#[cfg(test)]
mod tests {
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};

    use super::*;

    #[test]
    fn rgba_is_composited_onto_white_with_pillow_rounding() {
        let pixels = [
            [10u8, 20, 30, 0],
            [10, 20, 30, 255],
            [0, 100, 200, 128],
            [7, 7, 7, 1],
        ];
        let rgba = ImageBuffer::from_fn(4, 1, |x, _| Rgba(pixels[x as usize]));
        let rgb = composite_on_white(&rgba);
        // (255·(255 − a) + c·a) / 255, rounded to nearest.
        let expected = [
            [255, 255, 255],
            [10, 20, 30],
            [127, 177, 227],
            [254, 254, 254],
        ];
        let got: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        assert_eq!(got, expected);
    }

    fn fixture(case: &str, file: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/preprocess")
            .join(case)
            .join(file)
    }

    #[test]
    fn the_official_loaders_keep_the_stored_orientation() {
        let path = fixture("exif6_jpeg_84x60", "input.jpg");
        let upright = load_image_as(&path, Decoding::FIXED).unwrap();
        assert_eq!(upright.dimensions(), (60, 84));
        for official in [Decoding::OFFICIAL_QWEN, Decoding::OFFICIAL_INTERNVL] {
            let stored = load_image_as(&path, official).unwrap();
            assert_eq!(stored.dimensions(), (84, 60));
            // Orientation 6 turns the stored image a quarter clockwise.
            assert_eq!(stored.get_pixel(0, 59), upright.get_pixel(0, 0));
        }
    }

    #[test]
    fn internvls_loader_drops_alpha_and_keeps_colour_keys() {
        for case in ["rgba_80x60", "rgb_trns_90x60"] {
            let path = fixture(case, "input.png");
            let white = load_image_as(&path, Decoding::OFFICIAL_QWEN).unwrap();
            let dropped = load_image_as(&path, Decoding::OFFICIAL_INTERNVL).unwrap();
            assert_ne!(white, dropped, "{case}");
            let toward_white = white
                .pixels()
                .zip(dropped.pixels())
                .all(|(w, d)| w.0.iter().zip(d.0).all(|(&w, d)| w >= d));
            assert!(
                toward_white,
                "{case}: compositing only takes pixels toward white"
            );
        }
    }

    #[test]
    fn other_alpha_is_dropped_not_composited() {
        let rgba = ImageBuffer::from_pixel(2, 1, Rgba([10u8, 20, 30, 0]));
        let rgb = to_rgb8_like_pillow(DynamicImage::ImageRgba8(rgba), false);
        assert!(rgb.pixels().all(|p| p.0 == [10, 20, 30]));
        let la = ImageBuffer::from_pixel(1, 1, LumaA([77u8, 3]));
        assert_eq!(
            to_rgb8_like_pillow(DynamicImage::ImageLumaA8(la), false).as_raw(),
            &[77; 3]
        );
    }

    #[test]
    fn sixteen_bit_follows_pillow() {
        let values = [0u16, 255, 256, 0x7f80, 0xff7f, 65535];
        let gray = ImageBuffer::from_fn(6, 1, |x, _| Luma([values[x as usize]]));
        let rgb = to_rgb8_like_pillow(DynamicImage::ImageLuma16(gray), false);
        let r: Vec<u8> = rgb.pixels().map(|p| p.0[0]).collect();
        assert_eq!(r, [0, 255, 255, 255, 255, 255]);

        let color = ImageBuffer::from_fn(6, 1, |x, _| Rgb([values[x as usize]; 3]));
        let rgb = to_rgb8_like_pillow(DynamicImage::ImageRgb16(color), false);
        let r: Vec<u8> = rgb.pixels().map(|p| p.0[0]).collect();
        assert_eq!(r, [0, 0, 1, 127, 255, 255]);

        let la = ImageBuffer::from_fn(6, 1, |x, _| LumaA([values[x as usize], 0]));
        let rgb = to_rgb8_like_pillow(DynamicImage::ImageLumaA16(la.clone()), false);
        let r: Vec<u8> = rgb.pixels().map(|p| p.0[1]).collect();
        assert_eq!(r, [0, 0, 1, 127, 255, 255]);
        let rgb = to_rgb8_like_pillow(DynamicImage::ImageLumaA16(la), true);
        let r: Vec<u8> = rgb.pixels().map(|p| p.0[2]).collect();
        assert_eq!(r, [0, 255, 255, 255, 255, 255]);
    }

    #[test]
    fn color_keys_follow_pillow() {
        use png::{BitDepth, ColorType};
        let palette = [10, 20, 30, 40, 50, 60, 70, 80, 90];
        let key = |ct, bd, trns: &[u8]| pillow_color_key(ct, bd, trns, Some(&palette));
        // One transparent entry, the rest opaque (a short chunk leaves later entries opaque).
        assert_eq!(
            key(ColorType::Indexed, BitDepth::Eight, &[255, 0]),
            Some([40, 50, 60])
        );
        // Partial or several transparent entries: Pillow drops the transparency.
        assert_eq!(key(ColorType::Indexed, BitDepth::Eight, &[0, 0]), None);
        assert_eq!(
            key(ColorType::Indexed, BitDepth::Four, &[128, 255, 0]),
            None
        );
        assert_eq!(
            key(ColorType::Rgb, BitDepth::Eight, &[1, 2, 3]),
            Some([1, 2, 3])
        );
        assert_eq!(
            key(ColorType::Rgb, BitDepth::Sixteen, &[5, 1, 6, 2, 7, 3]),
            Some([1, 2, 3])
        );
        assert_eq!(
            key(ColorType::Grayscale, BitDepth::Eight, &[5]),
            Some([5; 3])
        );
        assert_eq!(key(ColorType::Grayscale, BitDepth::Two, &[3]), Some([3; 3]));
        assert_eq!(
            key(ColorType::Grayscale, BitDepth::Sixteen, &[1, 0]),
            Some([0, 0, 0])
        );
        assert_eq!(
            key(ColorType::Grayscale, BitDepth::One, &[1]),
            Some([255, 0, 0])
        );
    }
}
