//! `grounded_region_specific_thinking_format_reward_think_rethink`: boxes in the reasoning and
//! the count bonus, in {0, 0.5, 1, 1.5}.
//!
//! Compat (the official function):
//! - 0 when the text has no `<rethink>`;
//! - boxes are the official regex's matches ([`compat_boxes`]) in the text before the first
//!   `<rethink>`, duplicates included;
//! - +0.5 if there is at least one box;
//! - +1 if the **batch's first sample's** dataset is exactly `tallyqa` and the number of boxes
//!   equals `int(answer)`. Python's `and` short-circuits, so `int(answer)` is only evaluated
//!   for such a batch, and a non-integer answer there raises: here
//!   [`RewardError::NotAnInteger`].
//!
//! Fixed: the sample's own dataset decides (one of [`RewardConfig::counting_datasets`]), a
//! non-integer answer earns no bonus instead of an error, identical boxes count once, with
//! [`RewardConfig::degenerate_guard`] set, degenerate boxes do not count, and with
//! [`RewardConfig::strict_boxes`] only four-number lists are boxes.

use super::python::{self, PyInt};
use super::{Mode, RewardConfig, RewardError, Sample};
use crate::completion::{Segments, compat_boxes, structured_boxes};

/// The grounded format + count reward. `batch_first_dataset` is the dataset of the batch's
/// first sample, which compat mode uses for every row (fixed mode ignores it).
pub fn grounded_region_specific_thinking_format_reward_think_rethink(
    config: &RewardConfig,
    text: &str,
    sample: &Sample,
    batch_first_dataset: &str,
) -> Result<f64, RewardError> {
    let Some(cut) = text.find("<rethink>") else {
        return Ok(0.0);
    };
    let reasoning = &text[..cut];
    let boxes = compat_boxes(reasoning, &Segments::default());
    match config.mode {
        Mode::Compat => {
            let mut reward = if boxes.is_empty() { 0.0 } else { 0.5 };
            if batch_first_dataset == "tallyqa" {
                let count = python::int(sample.answer)
                    .ok_or_else(|| RewardError::NotAnInteger(sample.answer.to_owned()))?;
                if count == PyInt::Value(boxes.len() as i128) {
                    reward += 1.0;
                }
            }
            Ok(reward)
        }
        Mode::Fixed => {
            let boxes = if config.strict_boxes {
                let segments = Segments::parse(reasoning);
                counted_boxes(
                    config,
                    sample,
                    structured_boxes(reasoning, &segments)
                        .iter()
                        .map(|b| b.coords),
                )
            } else {
                counted_boxes(config, sample, boxes.iter().map(|b| b.coords))
            };
            let mut reward = if boxes.is_empty() { 0.0 } else { 0.5 };
            let counting = config.counting_datasets.iter().any(|d| d == sample.dataset);
            if counting && python::int(sample.answer) == Some(PyInt::Value(boxes.len() as i128)) {
                reward += 1.0;
            }
            Ok(reward)
        }
    }
}

/// Fixed mode: distinct boxes that pass the degenerate guard.
fn counted_boxes(
    config: &RewardConfig,
    sample: &Sample,
    boxes: impl Iterator<Item = [f64; 4]>,
) -> Vec<[f64; 4]> {
    let mut kept: Vec<[f64; 4]> = Vec::new();
    for coords in boxes {
        if let Some(guard) = &config.degenerate_guard {
            let [x1, y1, x2, y2] = coords;
            if guard.zero_area && (x1 == x2 || y1 == y2) {
                continue;
            }
            if let Some((frame, image)) = sample.frame {
                let thresholds = guard.whole_image.unwrap_or_default();
                let mapped = frame.to_pixels(coords, image, &thresholds);
                if guard.zero_area && mapped.flags.zero_area {
                    continue;
                }
                if guard.whole_image.is_some() && mapped.flags.whole_image {
                    continue;
                }
            }
        }
        if !kept.contains(&coords) {
            kept.push(coords);
        }
    }
    kept
}
