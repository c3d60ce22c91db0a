//! The target size rule of Qwen2-VL / Qwen2.5-VL (`smart_resize`).

use super::PreprocessError;

/// Largest `max(h, w) / min(h, w)` the vision tower accepts; beyond it the image would collapse to a
/// one-patch-wide strip.
const MAX_ASPECT_RATIO: f64 = 200.0;

/// The `(height, width)` an image of `height × width` px is resized to before patchifying: both
/// multiples of `factor` (patch size × merge size, 28 for Qwen2.5-VL), the pixel count within
/// `[min_pixels, max_pixels]` as far as the rounding allows, the aspect ratio kept as well as possible.
///
/// This is the rule of grit-method §3 (and of `qwen_vl_utils`): each side is first rounded to the
/// nearest multiple of `factor` with Python's `round` (halves to even), but never below `factor`;
/// too many pixels scale both sides down by `β = sqrt(h·w / max_pixels)` and floor, too few scale
/// them up by `β = sqrt(min_pixels / (h·w))` and ceil. All arithmetic is `f64`, as in Python, so the
/// result is the same to the last rounding.
///
/// Two places where transformers 5.x differs, neither reachable with GRIT's sizes:
/// - transformers does not clamp the first rounding to `factor`, so a side of at most 14 px rounds
///   to 0 and the image is always scaled up by the `min_pixels` branch; here it stays `factor`
///   unless the `min_pixels` branch applies anyway.
/// - the scale-down floor is clamped to `factor` (as transformers does) so that an extreme aspect
///   ratio with a small `max_pixels` cannot produce a zero-sized side.
///
/// # Errors
/// [`PreprocessError::EmptyImage`] for a zero side, [`PreprocessError::AspectRatio`] when the
/// longer side is more than 200 times the shorter one.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), PreprocessError> {
    if height == 0 || width == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    let (h, w) = (height as f64, width as f64);
    if h.max(w) / h.min(w) > MAX_ASPECT_RATIO {
        return Err(PreprocessError::AspectRatio { width, height });
    }
    let f = factor as f64;
    let round_to_factor = |x: f64| factor.max((x / f).round_ties_even() as usize * factor);
    let mut h_bar = round_to_factor(h);
    let mut w_bar = round_to_factor(w);
    if h_bar * w_bar > max_pixels {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    Ok((h_bar, w_bar))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRIT_MIN: usize = 3136;
    const GRIT_MAX: usize = 200_704;
    const QWEN_MAX: usize = 12_845_056;

    fn grit(h: usize, w: usize) -> (usize, usize) {
        smart_resize(h, w, 28, GRIT_MIN, GRIT_MAX).unwrap()
    }

    #[test]
    fn rounds_to_the_nearest_multiple() {
        assert_eq!(grit(100, 150), (112, 140));
        assert_eq!(grit(280, 420), (280, 420));
        assert_eq!(grit(293, 307), (280, 308)); // 10.46 -> 10, 10.96 -> 11
    }

    #[test]
    fn halves_round_to_even() {
        // 70/28 = 2.5 -> 2, 182/28 = 6.5 -> 6, 126/28 = 4.5 -> 4, 98/28 = 3.5 -> 4.
        assert_eq!(grit(70, 182), (56, 168));
        assert_eq!(grit(126, 98), (112, 112));
        // 42/28 = 1.5 -> 2; the result (56x56 = 3136) sits exactly on min_pixels.
        assert_eq!(grit(42, 42), (56, 56));
    }

    #[test]
    fn small_images_scale_up_to_min_pixels() {
        // 28x28 after rounding is below 3136: beta = sqrt(3136/600) = 2.286.
        assert_eq!(grit(30, 20), (84, 56));
        let (h, w) = grit(1, 1);
        assert_eq!((h, w), (56, 56));
    }

    #[test]
    fn sides_of_at_most_half_a_factor_stay_one_factor() {
        // round(14/28) = round(0.5) = 0 -> clamped to 28; 28 * 560 is above min_pixels.
        // (transformers 5.x keeps the 0 and takes the min_pixels branch: (28, 364).)
        assert_eq!(grit(14, 560), (28, 560));
    }

    #[test]
    fn large_images_scale_down_below_max_pixels() {
        let (h, w) = grit(1080, 1920);
        assert_eq!((h, w), (336, 588));
        assert!(h * w <= GRIT_MAX);
        // Exactly max_pixels stays.
        assert_eq!(grit(448, 448), (448, 448));
        // 476x448 rounds to itself (213248 px > max): beta = 1.031 -> 16.49 -> 16, 15.52 -> 15.
        assert_eq!(grit(476, 448), (448, 420));
    }

    #[test]
    fn qwen_default_max_pixels_only_rounds() {
        assert_eq!(
            smart_resize(1080, 1920, 28, GRIT_MIN, QWEN_MAX).unwrap(),
            (1092, 1932)
        );
    }

    #[test]
    fn aspect_ratio_limit() {
        // 200 exactly is allowed, anything above is not.
        assert_eq!(grit(20, 4000), (28, 4004));
        assert_eq!(grit(20, 3000), (28, 2996));
        let err = smart_resize(20, 4001, 28, GRIT_MIN, GRIT_MAX).unwrap_err();
        assert!(matches!(
            err,
            PreprocessError::AspectRatio {
                width: 4001,
                height: 20
            }
        ));
        assert!(err.to_string().contains("4001x20"), "{err}");
    }

    #[test]
    fn empty_images_are_rejected() {
        assert!(matches!(
            smart_resize(0, 10, 28, GRIT_MIN, GRIT_MAX),
            Err(PreprocessError::EmptyImage { .. })
        ));
    }
}
