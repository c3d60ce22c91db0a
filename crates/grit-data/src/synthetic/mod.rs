//! A synthetic grounded data set for the laptop demo: coloured shapes on a varied background,
//! counting and spatial questions in the GRIT schema, the reasoning traces a GRIT model should
//! write for them, and a small tokenizer for a model trained from scratch.
//!
//! Real GRIT data (TallyQA, VSR) needs a pretrained 3B model; this task is small enough for a
//! tiny Qwen2.5-VL to learn in minutes on a CPU, so the whole pipeline (warm start on
//! [`grounded_trace`], GRPO with the rewards, evaluation with grounding IoU) can run anywhere.
//! Everything is deterministic in the seed.
//!
//! - [`generate`] / [`splits`]: items (sample, image, objects, question);
//! - [`write_split`]: images and a JSONL file that [`crate::dataset::load`] reads;
//! - [`grounded_trace`]: the completion for supervised warm start;
//! - [`build_tokenizer`], [`tokenizer_corpus`], [`write_tokenizer_dir`]: the checkpoint's
//!   tokenizer files.

mod config;
mod draw;
mod questions;
mod scene;
mod tokenizer;
mod trace;
mod write;

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::dataset::Sample;

pub use config::{CountBy, ShapesConfig};
pub use questions::{COUNT_DATASET, Category, Question, Relation, SPATIAL_DATASET, SPATIAL_MARGIN};
pub use scene::{Color, Object, Shape};
pub use tokenizer::{
    SPECIAL_TOKENS, TAG_TOKENS, add_internvl_tokens, build_tokenizer, min_vocab_size,
    tokenizer_corpus, unresized, write_tokenizer_dir,
};
pub use trace::grounded_trace;
pub use write::write_split;

/// One generated example: the data-file line, its image, and the structure behind both.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The JSONL line: question, answer, image name, data set, referents' boxes, size.
    pub sample: Sample,
    /// The pixels, `image_size` square, written as [`Sample::image`] by [`write_split`].
    pub image: RgbImage,
    /// Every object in the image, in reading order (top to bottom, then left to right).
    pub objects: Vec<Object>,
    /// What [`Item::sample`] asks, with indices into [`Item::objects`].
    pub question: Question,
}

/// Train and held-out items from one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Images named `train_00000.png`, ….
    pub train: Vec<Item>,
    /// Images named `heldout_00000.png`, ….
    pub heldout: Vec<Item>,
}

/// The split name [`generate`] gives its images.
pub const GENERATED_SPLIT: &str = "shapes";

/// The image file name of the `index`-th item of `split`: `train_00042.png`.
pub fn image_name(split: &str, index: usize) -> String {
    format!("{split}_{index:05}.png")
}

/// `count` items from `seed`, images named `shapes_00000.png`, …; the same config and seed give
/// the same items, bit for bit.
///
/// # Errors
/// The config's first setting out of range ([`ShapesConfig::validate`]), or shapes that do not
/// fit its images.
pub fn generate(config: &ShapesConfig, seed: u64, count: usize) -> Result<Vec<Item>, String> {
    config.check_ranges()?;
    generate_unchecked(config, seed, count)
}

pub(crate) fn generate_unchecked(
    config: &ShapesConfig,
    seed: u64,
    count: usize,
) -> Result<Vec<Item>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|index| item(config, &mut rng, image_name(GENERATED_SPLIT, index)))
        .collect()
}

fn item(config: &ShapesConfig, rng: &mut StdRng, image: String) -> Result<Item, String> {
    let (question, placed) = questions::sample(config, rng)?;
    let pixels = scene::render(config.image_size, rng, &placed);
    let objects: Vec<Object> = placed.iter().map(|p| p.object).collect();
    let bboxs = question
        .referents(&objects)
        .iter()
        .map(|o| o.bbox)
        .collect();
    let sample = Sample {
        question: question.text(&objects),
        answer: question.answer(&objects),
        image,
        dataset: question.dataset().to_owned(),
        bboxs: Some(bboxs),
        width: Some(config.image_size),
        height: Some(config.image_size),
    };
    Ok(Item {
        sample,
        image: pixels,
        objects,
        question,
    })
}

/// `train` and `heldout` items from seeds derived from `seed`, one per split, so the held-out
/// images are new scenes rather than a slice of the training stream, and growing one split
/// leaves the other as it was.
///
/// # Errors
/// As [`generate`].
pub fn splits(
    config: &ShapesConfig,
    seed: u64,
    train: usize,
    heldout: usize,
) -> Result<Splits, String> {
    let mut seeds = StdRng::seed_from_u64(seed);
    let (train_seed, heldout_seed): (u64, u64) = (seeds.random(), seeds.random());
    let named = |mut items: Vec<Item>, split: &str| {
        for (index, item) in items.iter_mut().enumerate() {
            item.sample.image = image_name(split, index);
        }
        items
    };
    Ok(Splits {
        train: named(generate(config, train_seed, train)?, "train"),
        heldout: named(generate(config, heldout_seed, heldout)?, "heldout"),
    })
}
