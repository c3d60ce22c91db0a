//! Training and evaluation examples: each GRIT sample with its image preprocessed and its prompt
//! tokenized once, and the seeded order in which steps visit them.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use grit_data::completion::{BoxFrame, ImageSize};
use grit_data::dataset::{DataSource, LoadOptions, Record, load};
use grit_data::preprocess::RgbImage;
use grit_data::prompt::PromptStyle;
use grit_model::Prompt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use grit_model::processor::Processor;

/// One sample, ready for the model.
#[derive(Debug, Clone)]
pub struct Example {
    pub record: Record,
    pub prompt: Prompt,
    pub original: ImageSize,
    /// The size the model saw (Qwen2.5-VL: the resized image; InternVL3: the tile grid).
    pub processed: ImageSize,
    /// The frame the model's boxes are in.
    pub frame: BoxFrame,
    /// The decoded image, kept where training draws a fresh augmentation of it for every pass
    /// ([`Processor::augments`]).
    pub image: Option<Arc<RgbImage>>,
}

/// Pairs files with image folders: one folder per file, or one for all.
pub fn sources(files: &[PathBuf], images: &[PathBuf]) -> anyhow::Result<Vec<DataSource>> {
    Ok(DataSource::pair(files, images)?)
}

/// Loads, preprocesses and tokenizes every sample of `sources`.
pub fn prepare(
    sources: &[DataSource],
    skip_bad_lines: bool,
    processor: &Processor,
    style: PromptStyle,
) -> anyhow::Result<Vec<Example>> {
    let loaded = load(sources, LoadOptions { skip_bad_lines })?;
    for skipped in &loaded.skipped {
        eprintln!("warning: skipped {skipped}");
    }
    loaded
        .records
        .into_iter()
        .map(|record| {
            let at = format!("{}:{}", record.at.file.display(), record.at.line);
            example(record, processor, style).with_context(|| at)
        })
        .collect()
}

fn example(record: Record, processor: &Processor, style: PromptStyle) -> anyhow::Result<Example> {
    let image = processor.load_image(&record.image_path)?;
    let encoded = processor
        .encode(&image, &record.sample.question, style)
        .with_context(|| format!("preprocessing {}", record.image_path.display()))?;
    Ok(Example {
        prompt: encoded.prompt,
        original: encoded.original,
        processed: encoded.processed,
        frame: encoded.frame,
        record,
        image: processor.augments().then(|| Arc::new(image)),
    })
}

/// The step's examples as one pass sees them: with a fresh augmentation drawn from `seed` where
/// the processor [augments](Processor::augments) (the official trainer renders InternVL's
/// images anew for generation and again for the reference and loss passes), else as prepared.
pub fn for_pass<'a>(
    examples: &[&'a Example],
    processor: &Processor,
    style: PromptStyle,
    seed: u64,
) -> anyhow::Result<Vec<Cow<'a, Example>>> {
    examples
        .iter()
        .enumerate()
        .map(|(i, &example)| {
            let Some(image) = &example.image else {
                return Ok(Cow::Borrowed(example));
            };
            let question = &example.record.sample.question;
            let encoded = processor
                .encode_for_training(image, question, style, derive_seed(seed, "image", i as u64))
                .with_context(|| {
                    format!("preprocessing {}", example.record.image_path.display())
                })?;
            Ok(Cow::Owned(Example {
                prompt: encoded.prompt,
                ..example.clone()
            }))
        })
        .collect()
}

/// The example indices step `step` trains on: consecutive slices of a sequence of epochs, each
/// a fresh permutation seeded by `(seed, epoch)`, so any step's batch can be recomputed on
/// resume without replaying the ones before it.
pub fn step_indices(examples: usize, per_step: usize, seed: u64, step: u64) -> Vec<usize> {
    (0..per_step as u64)
        .map(|i| {
            let global = step * per_step as u64 + i;
            let epoch = global / examples as u64;
            epoch_order(examples, seed, epoch)[(global % examples as u64) as usize]
        })
        .collect()
}

fn epoch_order(examples: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..examples).collect();
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, "epoch", epoch));
    order.shuffle(&mut rng);
    order
}

/// An independent seed for one use (`what`) at one index, so streams never overlap and each
/// can be recomputed on its own.
pub fn derive_seed(seed: u64, what: &str, index: u64) -> u64 {
    // SplitMix64 over the inputs: cheap and well mixed.
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in what.bytes().chain(index.to_le_bytes()) {
        x = (x ^ u64::from(b)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_visits_every_example_once() {
        let n = 7;
        let mut seen: Vec<usize> = (0..7)
            .flat_map(|step| step_indices(n, 3, 5, step))
            .collect();
        // Any step is recomputed on its own (a resume) exactly as it came in the sequence.
        assert_eq!(step_indices(n, 3, 5, 4), seen[12..15]);
        let (first, second) = seen.split_at_mut(n);
        first.sort();
        assert_eq!(first, (0..n).collect::<Vec<_>>());
        second[..n].sort();
        assert_eq!(&second[..n], (0..n).collect::<Vec<_>>());
        assert_ne!(step_indices(n, 3, 5, 0), step_indices(n, 3, 6, 0));
    }
}
