//! From the model's coordinate frame to original-image pixels, with degenerate boxes flagged.
//!
//! Ground truth is in original pixels, while models write boxes in their own frame
//! (spec §3): Qwen2.5-VL in absolute pixels of the processed (resized) image, InternVL in
//! 0–1000 normalized coordinates. Mapping scales each axis, sorts the corners and clips to the
//! image; the flags describe what had to be repaired, so evaluation can choose to drop boxes
//! that are degenerate rather than silently score them.

use serde::{Deserialize, Serialize};

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

/// The frame of the coordinates a model writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BoxFrame {
    /// Qwen2.5-VL: absolute pixels of the processed image (grid × 14), so
    /// x·W/processed.width, y·H/processed.height.
    ProcessedPixels { processed: ImageSize },
    /// InternVL: normalized to 0–1000, so x·W/1000, y·H/1000.
    Normalized1000,
}

/// When a box counts as covering the whole image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DegenerateThresholds {
    /// A clipped box whose area is at least this fraction of the image area covers the whole
    /// image (a common way to game "at least one box" rewards).
    pub whole_image_fraction: f64,
}

impl Default for DegenerateThresholds {
    fn default() -> Self {
        Self {
            whole_image_fraction: 0.95,
        }
    }
}

/// How a box (in original pixels, corners sorted, before clipping) relates to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Containment {
    Inside,
    /// Overlaps the image but crosses an edge.
    Partly,
    /// No overlap of positive area (touching an edge from outside counts as entirely outside).
    Entirely,
}

/// What was wrong with a box before it was repaired. None of these drop the box; callers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BoxFlags {
    /// x2 < x1 in the raw output (the corners were swapped).
    pub inverted_x: bool,
    /// y2 < y1 in the raw output.
    pub inverted_y: bool,
    /// A raw coordinate is negative (only the structured extractor can produce one).
    pub negative: bool,
    pub outside: Containment,
    /// Zero width or height after clipping (includes every box entirely outside).
    pub zero_area: bool,
    /// Covers at least [`DegenerateThresholds::whole_image_fraction`] of the image after
    /// clipping.
    pub whole_image: bool,
}

/// A box in original-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelBox {
    /// As the model wrote it, in its frame.
    pub raw: [f64; 4],
    /// `[x1, y1, x2, y2]` in original pixels, corners sorted, clipped to the image.
    pub xyxy: [f64; 4],
    pub flags: BoxFlags,
}

impl PixelBox {
    pub fn area(&self) -> f64 {
        let [x1, y1, x2, y2] = self.xyxy;
        (x2 - x1) * (y2 - y1)
    }
}

impl BoxFrame {
    /// Maps `raw` (`[x1, y1, x2, y2]` in this frame) onto an image of size `image`.
    ///
    /// A zero processed size maps everything to 0 instead of dividing by zero; the box is then
    /// flagged as zero-area.
    pub fn to_pixels(
        self,
        raw: [f64; 4],
        image: ImageSize,
        thresholds: &DegenerateThresholds,
    ) -> PixelBox {
        let (width, height) = (f64::from(image.width), f64::from(image.height));
        let (from_width, from_height) = match self {
            BoxFrame::ProcessedPixels { processed } => {
                (f64::from(processed.width), f64::from(processed.height))
            }
            BoxFrame::Normalized1000 => (1000.0, 1000.0),
        };
        let scale =
            |value: f64, to: f64, from: f64| if from > 0.0 { value * to / from } else { 0.0 };
        let [x1, y1, x2, y2] = raw;
        let (x1, x2) = (scale(x1, width, from_width), scale(x2, width, from_width));
        let (y1, y2) = (
            scale(y1, height, from_height),
            scale(y2, height, from_height),
        );
        let sorted = [x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)];

        let [left, top, right, bottom] = sorted;
        let outside = if right <= 0.0 || bottom <= 0.0 || left >= width || top >= height {
            Containment::Entirely
        } else if left < 0.0 || top < 0.0 || right > width || bottom > height {
            Containment::Partly
        } else {
            Containment::Inside
        };

        let xyxy = [
            left.clamp(0.0, width),
            top.clamp(0.0, height),
            right.clamp(0.0, width),
            bottom.clamp(0.0, height),
        ];
        let clipped_area = (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]);
        let image_area = width * height;
        let flags = BoxFlags {
            inverted_x: raw[2] < raw[0],
            inverted_y: raw[3] < raw[1],
            negative: raw.iter().any(|&v| v < 0.0),
            outside,
            zero_area: clipped_area <= 0.0,
            whole_image: image_area > 0.0
                && clipped_area >= thresholds.whole_image_fraction * image_area,
        };
        PixelBox { raw, xyxy, flags }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: ImageSize = ImageSize {
        width: 640,
        height: 480,
    };
    const QWEN: BoxFrame = BoxFrame::ProcessedPixels {
        processed: ImageSize {
            width: 320,
            height: 240,
        },
    };

    fn map(frame: BoxFrame, raw: [f64; 4]) -> PixelBox {
        frame.to_pixels(raw, IMAGE, &DegenerateThresholds::default())
    }

    fn clean() -> BoxFlags {
        BoxFlags {
            inverted_x: false,
            inverted_y: false,
            negative: false,
            outside: Containment::Inside,
            zero_area: false,
            whole_image: false,
        }
    }

    #[test]
    fn qwen_processed_pixels_scale_per_axis() {
        let mapped = map(QWEN, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(mapped.xyxy, [20.0, 40.0, 60.0, 80.0]);
        assert_eq!(mapped.raw, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(mapped.flags, clean());
        assert_eq!(mapped.area(), 40.0 * 40.0);
    }

    #[test]
    fn internvl_normalized_scale() {
        let mapped = map(BoxFrame::Normalized1000, [100.0, 500.0, 250.0, 1000.0]);
        assert_eq!(mapped.xyxy, [64.0, 240.0, 160.0, 480.0]);
        assert_eq!(mapped.flags, clean());
    }

    #[test]
    fn inverted_corners_are_sorted_and_flagged() {
        let mapped = map(QWEN, [30.0, 40.0, 10.0, 20.0]);
        assert_eq!(mapped.xyxy, [20.0, 40.0, 60.0, 80.0]);
        assert_eq!(
            mapped.flags,
            BoxFlags {
                inverted_x: true,
                inverted_y: true,
                ..clean()
            }
        );
        let mapped = map(QWEN, [10.0, 40.0, 30.0, 20.0]);
        assert!(!mapped.flags.inverted_x && mapped.flags.inverted_y);
    }

    #[test]
    fn partly_outside_is_clipped() {
        let mapped = map(QWEN, [-5.0, 200.0, 100.0, 260.0]);
        assert_eq!(mapped.xyxy, [0.0, 400.0, 200.0, 480.0]);
        assert_eq!(
            mapped.flags,
            BoxFlags {
                negative: true,
                outside: Containment::Partly,
                ..clean()
            }
        );
    }

    #[test]
    fn entirely_outside_has_zero_area() {
        let mapped = map(QWEN, [330.0, 10.0, 400.0, 20.0]);
        assert_eq!(mapped.xyxy, [640.0, 20.0, 640.0, 40.0]);
        assert_eq!(
            mapped.flags,
            BoxFlags {
                outside: Containment::Entirely,
                zero_area: true,
                ..clean()
            }
        );
        // Touching the left edge from outside is still outside.
        let mapped = map(QWEN, [-10.0, 10.0, 0.0, 20.0]);
        assert_eq!(mapped.flags.outside, Containment::Entirely);
    }

    #[test]
    fn edges_are_inside() {
        let mapped = map(QWEN, [0.0, 0.0, 320.0, 10.0]);
        assert_eq!(mapped.flags.outside, Containment::Inside);
    }

    #[test]
    fn zero_area_inside() {
        let mapped = map(QWEN, [10.0, 10.0, 10.0, 50.0]);
        assert_eq!(
            mapped.flags,
            BoxFlags {
                zero_area: true,
                ..clean()
            }
        );
    }

    #[test]
    fn whole_image_threshold() {
        assert!(map(QWEN, [0.0, 0.0, 320.0, 240.0]).flags.whole_image);
        // 0.98 × 0.98 ≈ 0.96 of the area: whole image at 0.95, not at 0.97.
        let raw = [0.0, 0.0, 313.6, 235.2];
        assert!(map(QWEN, raw).flags.whole_image);
        let strict = DegenerateThresholds {
            whole_image_fraction: 0.97,
        };
        assert!(!QWEN.to_pixels(raw, IMAGE, &strict).flags.whole_image);
        // Beyond the image on every side: clipped to the whole image, and partly outside.
        let mapped = map(BoxFrame::Normalized1000, [-100.0, -100.0, 1100.0, 1100.0]);
        assert_eq!(mapped.xyxy, [0.0, 0.0, 640.0, 480.0]);
        assert!(mapped.flags.whole_image);
        assert_eq!(mapped.flags.outside, Containment::Partly);
    }

    #[test]
    fn zero_sizes_do_not_divide_by_zero() {
        let frame = BoxFrame::ProcessedPixels {
            processed: ImageSize {
                width: 0,
                height: 0,
            },
        };
        let mapped = map(frame, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mapped.xyxy, [0.0; 4]);
        assert!(mapped.flags.zero_area);
        let empty = ImageSize {
            width: 0,
            height: 0,
        };
        let mapped = QWEN.to_pixels(
            [1.0, 2.0, 3.0, 4.0],
            empty,
            &DegenerateThresholds::default(),
        );
        assert!(mapped.flags.zero_area && !mapped.flags.whole_image);
    }

    #[test]
    fn serializes_with_a_tag() {
        let json = serde_json::to_string(&QWEN).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"processed_pixels","processed":{"width":320,"height":240}}"#
        );
        let json = serde_json::to_string(&BoxFrame::Normalized1000).unwrap();
        assert_eq!(json, r#"{"kind":"normalized1000"}"#);
    }
}
