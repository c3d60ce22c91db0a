//! Images decoded once per path and kept as textures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

/// A decoded image, or why it could not be.
pub enum Slot {
    Ready {
        texture: TextureHandle,
        /// The file's own size: boxes are in these pixels even when the texture was shrunk.
        size: [u32; 2],
    },
    Failed(String),
}

#[derive(Default)]
pub struct ImageCache {
    slots: HashMap<PathBuf, Slot>,
}

impl ImageCache {
    /// The texture of `path`, decoding it the first time it is asked for.
    pub fn get(&mut self, ctx: &egui::Context, path: &Path) -> &Slot {
        self.slots
            .entry(path.to_owned())
            .or_insert_with(|| match decode(ctx, path) {
                Ok((image, size)) => Slot::Ready {
                    texture: ctx.load_texture(
                        path.display().to_string(),
                        image,
                        TextureOptions::LINEAR,
                    ),
                    size,
                },
                Err(e) => Slot::Failed(format!("{e:#}")),
            })
    }
}

/// Decoded by the model path's own loader, so the picture is upright by the same EXIF rule the
/// boxes were written against.
fn decode(ctx: &egui::Context, path: &Path) -> anyhow::Result<(ColorImage, [u32; 2])> {
    let image = image::DynamicImage::ImageRgb8(grit_data::preprocess::load_image(path)?);
    let size = [image.width(), image.height()];
    // A texture larger than the GPU allows would be refused; a photo shown in a panel does not
    // need more pixels than that anyway.
    let max_side = ctx.input(|i| i.max_texture_side) as u32;
    let image = if size[0] > max_side || size[1] > max_side {
        image.resize(max_side, max_side, image::imageops::FilterType::Triangle)
    } else {
        image
    };
    let rgb = image.to_rgb8();
    let pixels = [rgb.width() as usize, rgb.height() as usize];
    Ok((ColorImage::from_rgb(pixels, rgb.as_raw()), size))
}
