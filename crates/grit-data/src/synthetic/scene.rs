//! The objects of a scene and where they go: shapes in square cells, placed at random, fully
//! inside the image and apart from each other.

use image::RgbImage;
use rand::RngExt;
use rand::rngs::StdRng;

use super::ShapesConfig;
use super::draw;

/// The outline of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Circle,
    Square,
    /// Pointing up.
    Triangle,
}

impl Shape {
    /// Every shape, in a fixed order for sampling.
    pub const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

    /// The noun in questions and traces.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }
}

/// The fill of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
}

impl Color {
    /// Every colour, in a fixed order for sampling.
    pub const ALL: [Color; 4] = [Color::Red, Color::Green, Color::Blue, Color::Yellow];

    /// The adjective in questions and traces.
    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
        }
    }

    /// The exact pixel value; each has a channel at or below 60 or at or above 200, outside the
    /// background's range, so the object's pixels are exactly the pixels of this value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [220, 40, 40],
            Color::Green => [40, 170, 60],
            Color::Blue => [40, 80, 220],
            Color::Yellow => [235, 205, 40],
        }
    }
}

/// One drawn shape and its ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    /// The tight box of its pixels, `[x1, y1, x2, y2]` in original pixels, `x2` / `y2` one past
    /// the last column / row.
    pub bbox: [f64; 4],
}

impl Object {
    /// "red circle": how questions and traces name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.color.name(), self.shape.name())
    }

    /// The centre of its box, which spatial relations are judged on.
    pub fn center(&self) -> [f64; 2] {
        let [x1, y1, x2, y2] = self.bbox;
        [(x1 + x2) / 2.0, (y1 + y2) / 2.0]
    }
}

/// The square a shape is drawn in: top-left corner and side, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cell {
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

/// An object with the cell it is drawn in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Placed {
    pub object: Object,
    pub cell: Cell,
}

impl Placed {
    /// What it is, which tells apart the objects a spatial question names.
    pub fn kind(&self) -> (Shape, Color) {
        (self.object.shape, self.object.color)
    }
}

/// Empty pixels required between two objects' boxes, so that no two shapes touch.
const GAP: u32 = 2;
/// Positions tried for one object before the layout starts over.
const TRIES_PER_OBJECT: usize = 100;
/// Layouts tried before giving up on a config that cannot fit its shapes.
const LAYOUTS: usize = 1000;

/// Places `kinds` in that order at random sizes and positions, inside the image and at least
/// [`GAP`] pixels apart, until `accept` takes the layout (objects in `kinds` order). Returns them
/// in reading order, top to bottom, then left to right by their boxes' top-left corners, the
/// order traces name them in; an error when no accepted layout is found in [`LAYOUTS`] tries
/// (the shapes do not fit the image).
pub(super) fn place(
    config: &ShapesConfig,
    rng: &mut StdRng,
    kinds: &[(Shape, Color)],
    accept: impl Fn(&[Object]) -> bool,
) -> Result<Vec<Placed>, String> {
    for _ in 0..LAYOUTS {
        if let Some(mut placed) = try_layout(config, rng, kinds) {
            let objects: Vec<Object> = placed.iter().map(|p| p.object).collect();
            if accept(&objects) {
                placed.sort_by(|a, b| {
                    let (a, b) = (a.object.bbox, b.object.bbox);
                    a[1].total_cmp(&b[1]).then(a[0].total_cmp(&b[0]))
                });
                return Ok(placed);
            }
        }
    }
    Err(format!(
        "{} shapes of up to {} px do not fit a {} px image",
        kinds.len(),
        config.max_shape_size,
        config.image_size
    ))
}

fn try_layout(
    config: &ShapesConfig,
    rng: &mut StdRng,
    kinds: &[(Shape, Color)],
) -> Option<Vec<Placed>> {
    let mut placed: Vec<Placed> = Vec::with_capacity(kinds.len());
    for &(shape, color) in kinds {
        let found = (0..TRIES_PER_OBJECT).find_map(|_| {
            let size = rng.random_range(config.min_shape_size..=config.max_shape_size);
            let cell = Cell {
                x: rng.random_range(0..=config.image_size - size),
                y: rng.random_range(0..=config.image_size - size),
                size,
            };
            let [x1, y1, x2, y2] = draw::extent(shape, size);
            let bbox = [cell.x + x1, cell.y + y1, cell.x + x2, cell.y + y2].map(f64::from);
            let object = Object { shape, color, bbox };
            placed
                .iter()
                .all(|other| apart(&other.object.bbox, &bbox))
                .then_some(Placed { object, cell })
        })?;
        placed.push(found);
    }
    Some(placed)
}

/// At least [`GAP`] empty pixels between the boxes along one axis.
fn apart(a: &[f64; 4], b: &[f64; 4]) -> bool {
    let gap = f64::from(GAP);
    a[2] + gap <= b[0] || b[2] + gap <= a[0] || a[3] + gap <= b[1] || b[3] + gap <= a[1]
}

/// The image of a layout: background first, then every shape.
pub(super) fn render(side: u32, rng: &mut StdRng, placed: &[Placed]) -> RgbImage {
    let mut image = draw::background(side, rng);
    for p in placed {
        draw::paint(&mut image, p.object.shape, p.cell, p.object.color.rgb());
    }
    image
}
