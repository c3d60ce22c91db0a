//! Drawing boxes onto an image for people to look at: outlined rectangles with a numbered tag,
//! no font files needed (digits come from a built-in 3×5 bitmap font).

use image::{Rgb, RgbImage};

/// One box to draw, in the image's pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub color: [u8; 3],
    /// Shown in a tag at the box's top-left corner.
    pub number: usize,
}

/// 3×5 glyphs for 0–9, one row per entry, bit 2 = leftmost column.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// Draws every mark; line width and digit size grow with the image so that both stay visible
/// on a phone photo and on a thumbnail.
pub fn draw_marks(image: &mut RgbImage, marks: &[Mark]) {
    let scale = (image.width().max(image.height()) / 400).max(1);
    for mark in marks {
        let color = Rgb(mark.color);
        let clamp_x = |v: f32| v.round().clamp(0.0, image.width().saturating_sub(1) as f32) as u32;
        let clamp_y = |v: f32| {
            v.round()
                .clamp(0.0, image.height().saturating_sub(1) as f32) as u32
        };
        let (x1, x2) = (clamp_x(mark.x1.min(mark.x2)), clamp_x(mark.x1.max(mark.x2)));
        let (y1, y2) = (clamp_y(mark.y1.min(mark.y2)), clamp_y(mark.y1.max(mark.y2)));
        for t in 0..2 * scale {
            outline(
                image,
                x1 + t,
                y1 + t,
                x2.saturating_sub(t),
                y2.saturating_sub(t),
                color,
            );
        }
        tag(image, x1, y1, mark.number, color, scale);
    }
}

fn outline(image: &mut RgbImage, x1: u32, y1: u32, x2: u32, y2: u32, color: Rgb<u8>) {
    if x1 > x2 || y1 > y2 {
        return;
    }
    for x in x1..=x2 {
        image.put_pixel(x, y1, color);
        image.put_pixel(x, y2, color);
    }
    for y in y1..=y2 {
        image.put_pixel(x1, y, color);
        image.put_pixel(x2, y, color);
    }
}

/// A filled tag in the mark's colour with the number in black or white, whichever reads better.
fn tag(image: &mut RgbImage, x: u32, y: u32, number: usize, color: Rgb<u8>, scale: u32) {
    let digits: Vec<usize> = number
        .to_string()
        .bytes()
        .map(|b| (b - b'0') as usize)
        .collect();
    let pixel = 2 * scale;
    let (width, height) = ((digits.len() as u32 * 4 + 1) * pixel, 7 * pixel);
    let luminance = 0.299 * color[0] as f32 + 0.587 * color[1] as f32 + 0.114 * color[2] as f32;
    let ink = if luminance > 140.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    };
    let mut put = |px: u32, py: u32, c: Rgb<u8>| {
        if px < image.width() && py < image.height() {
            image.put_pixel(px, py, c);
        }
    };
    for dy in 0..height {
        for dx in 0..width {
            put(x + dx, y + dy, color);
        }
    }
    for (i, &digit) in digits.iter().enumerate() {
        for (row, bits) in DIGITS[digit].iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) != 0 {
                    let left = x + (1 + i as u32 * 4 + col) * pixel;
                    let top = y + (1 + row as u32) * pixel;
                    for dy in 0..pixel {
                        for dx in 0..pixel {
                            put(left + dx, top + dy, ink);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines_and_tags_land_where_the_box_is() {
        let mut image = RgbImage::from_pixel(100, 80, Rgb([10, 10, 10]));
        let mark = Mark {
            x1: 20.0,
            y1: 30.0,
            x2: 60.0,
            y2: 70.0,
            color: [255, 0, 0],
            number: 7,
        };
        draw_marks(&mut image, &[mark]);
        assert_eq!(image.get_pixel(60, 50), &Rgb([255, 0, 0]), "right edge");
        assert_eq!(image.get_pixel(40, 70), &Rgb([255, 0, 0]), "bottom edge");
        assert_eq!(image.get_pixel(40, 50), &Rgb([10, 10, 10]), "inside stays");
        assert_eq!(image.get_pixel(5, 5), &Rgb([10, 10, 10]), "outside stays");
        // The tag at the top-left corner holds white ink on red.
        let tag_pixels: Vec<_> = (30..44)
            .flat_map(|y| (20..30).map(move |x| (x, y)))
            .collect();
        assert!(
            tag_pixels
                .iter()
                .any(|&(x, y)| image.get_pixel(x, y) == &Rgb([255, 255, 255]))
        );
    }

    #[test]
    fn boxes_outside_or_inverted_are_clamped_not_panicking() {
        let mut image = RgbImage::new(10, 10);
        let mark = Mark {
            x1: 50.0,
            y1: -5.0,
            x2: -3.0,
            y2: 400.0,
            color: [0, 255, 0],
            number: 123,
        };
        draw_marks(&mut image, &[mark]);
        assert_eq!(image.get_pixel(9, 5), &Rgb([0, 255, 0]));
    }
}
