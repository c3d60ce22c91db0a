//! What a synthetic data set looks like: image size, how many shapes, how large, which questions.

use serde::{Deserialize, Serialize};

/// The side a Qwen2.5-VL image must be a multiple of to reach the model unresized (14-px patches
/// merged 2×2).
const PATCH_FACTOR: u32 = 28;

/// What a counting question names: "How many red shapes", "How many circles", or "How many red
/// circles".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountBy {
    Color,
    Shape,
    ColorAndShape,
}

/// Settings of [`generate`](super::generate). The defaults make a task a tiny model trained from
/// scratch on a CPU can learn in minutes: 112-px images (16 visual tokens), one to four shapes
/// of 18 to 34 px, 60% counting questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapesConfig {
    /// Side of the square images in pixels: a multiple of 28 and at least 56, so that the
    /// Qwen2.5-VL preprocessor keeps it as it is.
    pub image_size: u32,
    /// Fewest shapes in an image (at least 1).
    pub min_objects: usize,
    /// Most shapes in an image; also the largest count a question can have.
    pub max_objects: usize,
    /// Smallest answer a counting question can have. GRIT's grounded reward pays for a box
    /// before `<rethink>`, which a correct "0" can never earn, so a run that trains with it
    /// counts from 1.
    pub min_count: usize,
    /// Smallest side of a shape's square cell, in pixels.
    pub min_shape_size: u32,
    /// Largest side of a shape's square cell, in pixels.
    pub max_shape_size: u32,
    /// Share of counting questions; the rest ask where one shape is relative to another.
    pub counting_fraction: f64,
    /// The kinds of counting question, drawn uniformly.
    pub count_by: Vec<CountBy>,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            image_size: 112,
            min_objects: 1,
            max_objects: 4,
            min_count: 0,
            min_shape_size: 18,
            max_shape_size: 34,
            counting_fraction: 0.6,
            count_by: vec![CountBy::ColorAndShape, CountBy::Shape, CountBy::Color],
        }
    }
}

/// Bounds far above any demo's, low enough that a typo cannot ask for a scene no layout holds
/// or an image no machine stores.
const MAX_IMAGE_SIZE: u32 = 4096;
const MAX_OBJECTS: usize = 64;

/// Items generated to check that a config's shapes fit its images.
const FIT_TRIAL_ITEMS: usize = 8;
const FIT_TRIAL_SEED: u64 = 0x5eed;

/// The smallest shape side: below it a triangle is no longer told apart from a square.
const MIN_SHAPE_SIZE: u32 = 6;

impl ShapesConfig {
    /// Why the config cannot generate images, if it cannot: a setting out of range, or shapes
    /// that do not fit the image (found by generating a few items the way a run would).
    ///
    /// # Errors
    /// A message naming the first setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        self.check_ranges()?;
        // Questions draw up to `max_objects` shapes at up to the largest size; a config whose
        // shapes cannot be laid out fails here rather than deep inside a run.
        super::generate_unchecked(self, FIT_TRIAL_SEED, FIT_TRIAL_ITEMS).map(|_| ())
    }

    /// The settings' ranges alone.
    pub(crate) fn check_ranges(&self) -> Result<(), String> {
        let side = self.image_size;
        if side < 2 * PATCH_FACTOR || !side.is_multiple_of(PATCH_FACTOR) {
            return Err(format!(
                "image_size {side} must be a multiple of {PATCH_FACTOR} and at least {}",
                2 * PATCH_FACTOR
            ));
        }
        if side > MAX_IMAGE_SIZE {
            return Err(format!("image_size {side} exceeds {MAX_IMAGE_SIZE}"));
        }
        if self.max_objects > MAX_OBJECTS {
            return Err(format!(
                "max_objects {} exceeds {MAX_OBJECTS}",
                self.max_objects
            ));
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects {
            return Err(format!(
                "objects per image {}..={} must be a non-empty range starting at 1 or more",
                self.min_objects, self.max_objects
            ));
        }
        if self.min_count > self.max_objects {
            return Err(format!(
                "min_count {} must not exceed max_objects {}",
                self.min_count, self.max_objects
            ));
        }
        if self.min_shape_size < MIN_SHAPE_SIZE
            || self.min_shape_size > self.max_shape_size
            || self.max_shape_size > side
        {
            return Err(format!(
                "shape size {}..={} must lie within {MIN_SHAPE_SIZE}..={side}",
                self.min_shape_size, self.max_shape_size
            ));
        }
        if !(0.0..=1.0).contains(&self.counting_fraction) {
            return Err(format!(
                "counting_fraction {} must lie within 0..=1",
                self.counting_fraction
            ));
        }
        if self.counting_fraction > 0.0 && self.count_by.is_empty() {
            return Err("count_by must name at least one kind of counting question".to_owned());
        }
        if self.counting_fraction < 1.0 && self.max_objects < 2 {
            return Err("spatial questions need max_objects of 2 or more".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(ShapesConfig::default().validate(), Ok(()));
        let bad = [
            ShapesConfig {
                image_size: 100,
                ..Default::default()
            },
            ShapesConfig {
                min_objects: 0,
                ..Default::default()
            },
            ShapesConfig {
                max_shape_size: 200,
                ..Default::default()
            },
            ShapesConfig {
                count_by: Vec::new(),
                ..Default::default()
            },
            ShapesConfig {
                min_count: 5,
                ..Default::default()
            },
            ShapesConfig {
                counting_fraction: 1.5,
                ..Default::default()
            },
            ShapesConfig {
                min_objects: 1,
                max_objects: 1,
                ..Default::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn missing_keys_take_defaults_and_unknown_keys_are_refused() {
        let config: ShapesConfig = serde_json::from_str(r#"{"max_objects": 3}"#).unwrap();
        assert_eq!(
            config,
            ShapesConfig {
                max_objects: 3,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<ShapesConfig>(r#"{"max_object": 3}"#).is_err());
    }
}
