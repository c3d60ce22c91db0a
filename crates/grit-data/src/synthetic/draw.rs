//! Pixels: a varied background and hard-edged shapes, in integer arithmetic only, so that the
//! same seed gives the same bytes on every machine (no `sin` / `cos` whose last bit may differ).

use image::{Rgb, RgbImage};
use rand::RngExt;
use rand::rngs::StdRng;

use super::scene::{Cell, Shape};

/// Whether the pixel at column `i`, row `j` of a `size`-px cell belongs to `shape`, judged at the
/// pixel's centre (`i + ½`, `j + ½`), in doubled coordinates to stay in integers.
pub(super) fn covers(shape: Shape, size: u32, i: u32, j: u32) -> bool {
    let (s, u, v) = (i64::from(size), 2 * i64::from(i) + 1, 2 * i64::from(j) + 1);
    match shape {
        Shape::Square => true,
        // Centre distance within the radius s/2.
        Shape::Circle => (u - s).pow(2) + (v - s).pow(2) <= s * s,
        // Apex at the top middle, base along the bottom row: half-width v/2 at height v.
        Shape::Triangle => 2 * (u - s).abs() <= v,
    }
}

/// The tight extent of `shape` drawn in a `size`-px cell, `[x1, y1, x2, y2]` with exclusive
/// `x2` / `y2`, relative to the cell. Measured on the pixels, so ground truth matches the image.
pub(super) fn extent(shape: Shape, size: u32) -> [u32; 4] {
    let mut bounds = [size, size, 0, 0];
    for j in 0..size {
        for i in 0..size {
            if covers(shape, size, i, j) {
                bounds = [
                    bounds[0].min(i),
                    bounds[1].min(j),
                    bounds[2].max(i + 1),
                    bounds[3].max(j + 1),
                ];
            }
        }
    }
    bounds
}

/// Background channels stay within this range, far from every shape colour (each of which has
/// a channel at or below 60 or at or above 200), so a shape's pixels are exactly those of its
/// colour.
const BACKGROUND_RANGE: (i32, i32) = (64, 192);

/// A muted colour with a gentle linear gradient and light per-pixel noise: enough variation that
/// a model cannot find shapes by a fixed background value, too little to hide them.
pub(super) fn background(side: u32, rng: &mut StdRng) -> RgbImage {
    let grey: i32 = rng.random_range(105..=150);
    let base: [i32; 3] = std::array::from_fn(|_| grey + rng.random_range(-20..=20));
    // Change across the whole image per channel along x and along y.
    let slope: [[i32; 2]; 3] =
        std::array::from_fn(|_| [rng.random_range(-24..=24), rng.random_range(-24..=24)]);
    let span = 2 * (side as i32 - 1);
    RgbImage::from_fn(side, side, |x, y| {
        // Centred coordinates in [-span/2, span/2].
        let (cx, cy) = (2 * x as i32 - span / 2, 2 * y as i32 - span / 2);
        Rgb(std::array::from_fn(|c| {
            let gradient = (slope[c][0] * cx + slope[c][1] * cy) / span;
            let noise = rng.random_range(-4..=4);
            (base[c] + gradient + noise).clamp(BACKGROUND_RANGE.0, BACKGROUND_RANGE.1) as u8
        }))
    })
}

/// Paints `shape` in `color` into its cell.
pub(super) fn paint(image: &mut RgbImage, shape: Shape, cell: Cell, color: [u8; 3]) {
    for j in 0..cell.size {
        for i in 0..cell.size {
            if covers(shape, cell.size, i, j) {
                image.put_pixel(cell.x + i, cell.y + j, Rgb(color));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fill_their_cell_as_designed() {
        for size in [6, 18, 19, 34] {
            assert_eq!(extent(Shape::Square, size), [0, 0, size, size]);
            assert_eq!(extent(Shape::Circle, size), [0, 0, size, size]);
            let [x1, y1, x2, y2] = extent(Shape::Triangle, size);
            // The base spans the cell; an even cell's apex starts one row down.
            assert_eq!((x1, x2, y2), (0, size, size));
            assert_eq!(y1, u32::from(size % 2 == 0));
        }
        // The circle leaves the cell's corners empty, the triangle its top corners.
        assert!(!covers(Shape::Circle, 18, 0, 0));
        assert!(!covers(Shape::Triangle, 18, 0, 9));
        assert!(covers(Shape::Triangle, 18, 8, 9));
    }
}
