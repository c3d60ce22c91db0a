//! The report's picture: held-out items with their ground-truth boxes and the boxes the policy
//! drew while thinking, before GRPO-GR on the left and after it on the right, so a reader sees
//! whether training taught the model to point, not only to answer.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::Context;
use grit_data::annotate::{Mark, draw_marks};
use grit_data::preprocess::load_image;
use grit_run::{EvalRow, read_jsonl};
use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage};

/// Items shown: enough to judge a trend by eye, few enough to stay one screen tall.
pub const GRID_ITEMS: usize = 8;
/// The side of one cell; each image is scaled to fit it.
const CELL: u32 = 224;
/// White space between cells and around the grid.
const GAP: u32 = 6;
/// Height of the bar under each cell that says whether the answer was right.
const VERDICT: u32 = 6;

// Apart from every colour the demo paints its shapes in, as the viewer's white ground truth.
pub const GROUND_TRUTH: [u8; 3] = [255, 255, 255];
pub const PREDICTED: [u8; 3] = [255, 0, 255];
const RIGHT: [u8; 3] = [0, 170, 60];
const WRONG: [u8; 3] = [230, 40, 40];

/// What a cell shows of one evaluated item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `file:line` of the sample, what pairs the two evaluations' rows.
    pub id: String,
    pub image: PathBuf,
    /// In original-image pixels, as are `boxes`.
    pub gt_boxes: Vec<[f64; 4]>,
    pub boxes: Vec<[f64; 4]>,
    pub right: bool,
}

impl From<&EvalRow> for Item {
    fn from(row: &EvalRow) -> Self {
        Self {
            id: row.id.clone(),
            image: row.image.clone(),
            gt_boxes: row.gt_boxes.clone(),
            boxes: row.boxes.iter().map(|b| b.pixels.xyxy).collect(),
            right: row.judge_score.is_some_and(|s| s >= 1.0),
        }
    }
}

/// The items of an evaluation (its directory `eval/NAME/` or its summary.json), image paths
/// resolved as the viewer resolves them: as written when that exists, else against the run
/// directory that holds the evaluation.
pub fn read_items(evaluation: &Path) -> anyhow::Result<Vec<Item>> {
    let dir = if evaluation.is_file() {
        evaluation.parent().unwrap_or(Path::new(""))
    } else {
        evaluation
    };
    let run = dir.parent().and_then(Path::parent);
    let rows: Vec<EvalRow> = read_jsonl(&dir.join("samples.jsonl"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut item = Item::from(row);
            if let Some(run) = run.filter(|_| item.image.is_relative() && !item.image.exists()) {
                item.image = run.join(&item.image);
            }
            item
        })
        .collect())
}

/// The grid of the first `items` held-out items both evaluations scored (in `before`'s order),
/// one row per item: before | after. `None` when no item is in both.
pub fn before_after_grid(
    before: &[Item],
    after: &[Item],
    items: usize,
) -> anyhow::Result<Option<RgbImage>> {
    let pairs: Vec<(&Item, &Item)> = before
        .iter()
        .filter_map(|b| after.iter().find(|a| a.id == b.id).map(|a| (b, a)))
        .take(items)
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let row_height = CELL + VERDICT + GAP;
    let mut grid = RgbImage::from_pixel(
        2 * CELL + 3 * GAP,
        pairs.len() as u32 * row_height + GAP,
        Rgb([255, 255, 255]),
    );
    for (i, (b, a)) in pairs.into_iter().enumerate() {
        let image = load_image(&b.image)
            .with_context(|| format!("grid image of held-out item {}", b.id))?;
        let top = GAP + i as u32 * row_height;
        for (column, item) in [b, a].into_iter().enumerate() {
            let left = GAP + column as u32 * (CELL + GAP);
            let cell = cell(&image, item);
            let x = left + (CELL - cell.width()) / 2;
            imageops::replace(&mut grid, &cell, x.into(), top.into());
            let verdict = if item.right { RIGHT } else { WRONG };
            let bar = RgbImage::from_pixel(cell.width(), VERDICT, Rgb(verdict));
            imageops::replace(&mut grid, &bar, x.into(), (top + cell.height()).into());
        }
    }
    Ok(Some(grid))
}

/// `image` scaled to fit a cell, ground truth and the item's boxes drawn on it. Small images
/// are enlarged without smoothing so that a synthetic shape keeps its edges.
fn cell(image: &RgbImage, item: &Item) -> RgbImage {
    let scale = CELL as f32 / image.width().max(image.height()).max(1) as f32;
    let (w, h) = (
        ((image.width() as f32 * scale).round() as u32).clamp(1, CELL),
        ((image.height() as f32 * scale).round() as u32).clamp(1, CELL),
    );
    let filter = if scale >= 1.0 {
        FilterType::Nearest
    } else {
        FilterType::Triangle
    };
    let mut cell = imageops::resize(image, w, h, filter);
    let mark = |color: [u8; 3]| {
        move |(i, b): (usize, &[f64; 4])| Mark {
            x1: b[0] as f32 * scale,
            y1: b[1] as f32 * scale,
            x2: b[2] as f32 * scale,
            y2: b[3] as f32 * scale,
            color,
            number: i + 1,
        }
    };
    let marks: Vec<Mark> = (item.gt_boxes.iter().enumerate())
        .map(mark(GROUND_TRUTH))
        .chain(item.boxes.iter().enumerate().map(mark(PREDICTED)))
        .collect();
    draw_marks(&mut cell, &marks);
    cell
}

/// The grid as PNG bytes.
pub fn png(grid: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Cursor::new(Vec::new());
    grid.write_to(&mut bytes, ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, image: &str, boxes: &[[f64; 4]], right: bool) -> Item {
        Item {
            id: id.into(),
            image: image.into(),
            gt_boxes: vec![[10.0, 10.0, 50.0, 50.0]],
            boxes: boxes.to_vec(),
            right,
        }
    }

    #[test]
    fn rows_pair_items_by_id_and_draw_both_kinds_of_box_and_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_pixel(112, 112, Rgb([128, 128, 128]))
            .save(dir.path().join("a.png"))
            .unwrap();
        let a = dir.path().join("a.png");
        let a = a.to_str().unwrap();
        let before = [
            item("x:1", a, &[], false),
            item("only-before:2", a, &[], false),
        ];
        let after = [item("x:1", a, &[[60.0, 60.0, 100.0, 100.0]], true)];
        let grid = before_after_grid(&before, &after, GRID_ITEMS)
            .unwrap()
            .expect("one shared item");
        assert_eq!(
            grid.dimensions(),
            (2 * CELL + 3 * GAP, CELL + VERDICT + 2 * GAP)
        );
        // 112 px scale by 2: the ground truth's left edge is at x = 20 in both cells, the
        // prediction's (60 → 120) only in the right one.
        let (left, right, y) = (GAP, 2 * GAP + CELL, GAP + 60);
        assert_eq!(grid.get_pixel(left + 20, y), &Rgb(GROUND_TRUTH));
        assert_eq!(grid.get_pixel(right + 20, y), &Rgb(GROUND_TRUTH));
        assert_eq!(grid.get_pixel(left + 120, GAP + 160), &Rgb([128, 128, 128]));
        assert_eq!(grid.get_pixel(right + 120, GAP + 160), &Rgb(PREDICTED));
        let bar = GAP + CELL + VERDICT / 2;
        assert_eq!(grid.get_pixel(left + 100, bar), &Rgb(WRONG));
        assert_eq!(grid.get_pixel(right + 100, bar), &Rgb(RIGHT));
        assert!(png(&grid).unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn no_shared_item_means_no_grid_and_a_missing_image_is_named() {
        let before = [item("x:1", "missing.png", &[], false)];
        let other = [item("y:1", "missing.png", &[], false)];
        assert!(before_after_grid(&before, &other, 4).unwrap().is_none());
        let err = before_after_grid(&before, &before, 4).unwrap_err();
        assert!(format!("{err:#}").contains("held-out item x:1"), "{err:#}");
    }
}
