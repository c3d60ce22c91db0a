//! Writing items as a GRIT data set on disk: PNG images and one JSONL file.

use std::fs;
use std::io::{self, Cursor};
use std::path::Path;

use image::ImageFormat;

use super::Item;
use crate::dataset::DataSource;
use crate::files::FileError;

/// Writes every item's image to `dir/images/` under its [`Sample::image`] name and the samples
/// to `dir/{split}.jsonl`, returning the pair for [`crate::dataset::load`]. The JSONL file
/// appears whole or not at all (written to `{split}.jsonl.partial`, then renamed), so an
/// interrupted run never leaves a data file that names missing images.
///
/// [`Sample::image`]: crate::dataset::Sample::image
///
/// # Errors
/// Any file or folder that cannot be written, naming it.
pub fn write_split(items: &[Item], dir: &Path, split: &str) -> Result<DataSource, FileError> {
    let images = dir.join("images");
    fs::create_dir_all(&images).map_err(|e| FileError::io(&images, e))?;
    let mut lines = String::new();
    for item in items {
        let path = images.join(&item.sample.image);
        let mut png = Cursor::new(Vec::new());
        item.image
            .write_to(&mut png, ImageFormat::Png)
            .map_err(|e| FileError::io(&path, io::Error::other(e)))?;
        fs::write(&path, png.into_inner()).map_err(|e| FileError::io(&path, e))?;
        lines.push_str(&serde_json::to_string(&item.sample).expect("a Sample always serializes"));
        lines.push('\n');
    }
    let file = dir.join(format!("{split}.jsonl"));
    let partial = dir.join(format!("{split}.jsonl.partial"));
    fs::write(&partial, lines).map_err(|e| FileError::io(&partial, e))?;
    fs::rename(&partial, &file).map_err(|e| FileError::io(&file, e))?;
    Ok(DataSource { file, images })
}
