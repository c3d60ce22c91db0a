//! Bicubic resampling with the exact arithmetic of Pillow's `Image.resize(size, Image.BICUBIC)`
//! (`ImagingResample` in `libImaging/Resample.c`), so that the `u8` pixels match transformers'
//! PIL backend bit for bit.
//!
//! What has to be reproduced:
//! - two separable passes, each rounded and clipped to `u8` (the second pass reads the 8-bit
//!   intermediate image, not a wider one), in Pillow 13's order: horizontal first, unless the
//!   height shrinks by more than twice as many pixels as the width does (Pillow ≤ 12 always went
//!   horizontal first, so such images differ from older Pillows by a few levels);
//! - a cubic convolution kernel with `a = -0.5` whose support is widened by the downscale factor
//!   (antialiasing when shrinking, plain interpolation when enlarging);
//! - the tap window and weights computed in `f64` exactly as Pillow does, normalized to sum 1, then
//!   converted to fixed point with 22 fractional bits (rounding half away from zero);
//! - integer accumulation starting from half a unit of the final shift (so that it rounds to
//!   nearest), an arithmetic shift, and a clip to `0..=255`.

use image::RgbImage;

/// Fractional bits of the fixed-point weights: 32 bits minus 8 for the pixel value and 2 headroom
/// bits for kernels whose partial sums leave `[0, 1]` (the cubic has negative lobes).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Added before the final shift so that it rounds to nearest instead of truncating.
const ROUNDING_BIAS: i32 = 1 << (PRECISION_BITS - 1);
/// Kernel radius of the cubic in input pixels at scale 1.
const CUBIC_SUPPORT: f64 = 2.0;
const CHANNELS: usize = 3;

/// Resizes an RGB image to `width × height` with Pillow's (13.x) bicubic filter.
///
/// Equal sizes return a copy; an axis whose size is unchanged is not filtered (Pillow skips it, and
/// filtering would be the identity anyway).
pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let src = image.as_raw();
    let pixels = match (out_w != in_w, out_h != in_h) {
        (false, false) => src.clone(),
        (true, false) => resample_rows(src, in_w, 0..in_h, &AxisFilter::new(in_w, out_w)),
        (false, true) => resample_columns(src, in_w * CHANNELS, &AxisFilter::new(in_h, out_h)),
        (true, true) if vertical_first(in_w, in_h, out_w, out_h) => {
            let tmp = resample_columns(src, in_w * CHANNELS, &AxisFilter::new(in_h, out_h));
            resample_rows(&tmp, in_w, 0..out_h, &AxisFilter::new(in_w, out_w))
        }
        (true, true) => {
            let vertical = AxisFilter::new(in_h, out_h);
            // Only the rows the vertical filter reads need a horizontal pass.
            let rows = vertical.input_range();
            let first_row = rows.start;
            let tmp = resample_rows(src, in_w, rows, &AxisFilter::new(in_w, out_w));
            resample_columns(&tmp, out_w * CHANNELS, &vertical.shifted(first_row))
        }
    };
    RgbImage::from_raw(width, height, pixels).expect("buffer length matches the output size")
}

/// Pillow 13 filters vertically first when the height loses more than twice as many pixels as the
/// width (which may grow), so that the costlier horizontal pass runs on fewer rows. The order
/// changes the rounding of the 8-bit intermediate image, so it has to be the same.
fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    let shrink_h = in_h as i64 - out_h as i64;
    let shrink_w = in_w as i64 - out_w as i64;
    shrink_h > 0 && shrink_h > 2 * shrink_w
}

/// Pillow's bicubic kernel (cubic convolution with `a = -0.5`), evaluated in the same order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The fixed-point filter taps of one axis: for output sample `i`, the weights
/// `weights[i * stride..][..len_i]` apply to input samples `first_i..first_i + len_i`.
struct AxisFilter {
    /// `(first input index, number of taps)` per output sample.
    spans: Vec<(usize, usize)>,
    /// Per-output weights, `stride` apart (the largest possible tap count).
    weights: Vec<i32>,
    stride: usize,
}

impl AxisFilter {
    /// Precomputes the taps for resampling `in_size` samples to `out_size` (Pillow's
    /// `precompute_coeffs` followed by `normalize_coeffs_8bpc`).
    fn new(in_size: usize, out_size: usize) -> Self {
        // Pillow takes the extent from a `float` box, hence the detour through f32.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = CUBIC_SUPPORT * filter_scale;
        let stride = support.ceil() as usize * 2 + 1;
        let inv_filter_scale = 1.0 / filter_scale;

        let mut spans = Vec::with_capacity(out_size);
        let mut weights = vec![0; out_size * stride];
        let mut taps = Vec::with_capacity(stride);
        for (i, fixed) in weights.chunks_exact_mut(stride).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as` truncates toward zero, like C's `(int)` cast.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            taps.clear();
            taps.extend(
                (first..end).map(|x| bicubic((x as f64 - center + 0.5) * inv_filter_scale)),
            );
            let sum: f64 = taps.iter().sum();
            for (w, &tap) in fixed.iter_mut().zip(&taps) {
                let normalized = if sum == 0.0 { tap } else { tap / sum };
                *w = to_fixed_point(normalized);
            }
            spans.push((first, end - first));
        }
        Self {
            spans,
            weights,
            stride,
        }
    }

    /// The input samples read by any output sample.
    fn input_range(&self) -> std::ops::Range<usize> {
        let first = self.spans.first().map_or(0, |s| s.0);
        let end = self.spans.last().map_or(0, |s| s.0 + s.1);
        first..end
    }

    /// The same filter applied to an input that starts `offset` samples later.
    fn shifted(mut self, offset: usize) -> Self {
        for span in &mut self.spans {
            span.0 -= offset;
        }
        self
    }

    /// `(first input index, weights)` per output sample.
    fn taps(&self) -> impl Iterator<Item = (usize, &[i32])> {
        self.spans
            .iter()
            .zip(self.weights.chunks_exact(self.stride))
            .map(|(&(first, len), w)| (first, &w[..len]))
    }
}

/// A weight in `[-1, 2)` as a signed fixed-point number, rounding half away from zero.
fn to_fixed_point(weight: f64) -> i32 {
    let scaled = weight * f64::from(1u32 << PRECISION_BITS);
    (if scaled < 0.0 {
        scaled - 0.5
    } else {
        scaled + 0.5
    }) as i32
}

/// Rounds an accumulator back to a pixel value.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over rows `rows` of an interleaved RGB image `in_w` pixels wide.
fn resample_rows(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    filter: &AxisFilter,
) -> Vec<u8> {
    let in_stride = in_w * CHANNELS;
    let out_stride = filter.spans.len() * CHANNELS;
    let mut out = vec![0; rows.len() * out_stride];
    let src_rows = src[rows.start * in_stride..rows.end * in_stride].chunks_exact(in_stride);
    for (line, out_line) in src_rows.zip(out.chunks_exact_mut(out_stride)) {
        for ((first, weights), px) in filter.taps().zip(out_line.chunks_exact_mut(CHANNELS)) {
            let window = &line[first * CHANNELS..(first + weights.len()) * CHANNELS];
            let mut acc = [ROUNDING_BIAS; CHANNELS];
            for (&w, rgb) in weights.iter().zip(window.chunks_exact(CHANNELS)) {
                for (a, &v) in acc.iter_mut().zip(rgb) {
                    *a += i32::from(v) * w;
                }
            }
            for (p, a) in px.iter_mut().zip(acc) {
                *p = clip8(a);
            }
        }
    }
    out
}

/// Vertical pass over an image whose rows are `stride` bytes; every byte is filtered
/// independently, so the inner loop is a plain multiply-add over whole rows.
fn resample_columns(src: &[u8], stride: usize, filter: &AxisFilter) -> Vec<u8> {
    let mut out = vec![0; filter.spans.len() * stride];
    let mut acc = vec![0i32; stride];
    for ((first, weights), out_line) in filter.taps().zip(out.chunks_exact_mut(stride)) {
        acc.fill(ROUNDING_BIAS);
        let lines = src[first * stride..(first + weights.len()) * stride].chunks_exact(stride);
        for (&w, line) in weights.iter().zip(lines) {
            for (a, &v) in acc.iter_mut().zip(line) {
                *a += i32::from(v) * w;
            }
        }
        for (p, &a) in out_line.iter_mut().zip(&acc) {
            *p = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (in_size, out_size) in [(1920, 588), (20, 56), (333, 336), (7, 3), (3000, 2996)] {
            let filter = AxisFilter::new(in_size, out_size);
            for (first, weights) in filter.taps() {
                assert!(first + weights.len() <= in_size);
                let sum: i32 = weights.iter().sum();
                // Each weight is rounded separately, so the sum may be off by a few units.
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i32,
                    "{sum}"
                );
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([200, 3, 97]));
        for (w, h) in [(56, 28), (28, 56), (14, 14), (37, 50), (80, 23)] {
            let out = resize_bicubic(&image, w, h);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [200, 3, 97]));
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let image = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bicubic(&image, 5, 4), image);
    }

    #[test]
    fn overshoot_is_clipped() {
        // A hard edge enlarged with a cubic rings above 255 and below 0; both must clip.
        let image = RgbImage::from_fn(8, 1, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let out = resize_bicubic(&image, 32, 1);
        let row: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(row[0], 0);
        assert_eq!(row[31], 255);
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
    }
}
