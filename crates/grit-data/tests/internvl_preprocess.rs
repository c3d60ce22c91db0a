//! Oracle test: grit's InternVL3 tiling against transformers' `GotOcr2ImageProcessorPil` with
//! InternVL's settings, on the cases in `tests/fixtures/internvl3_tiles` (written by
//! `tools/fixtures/internvl_cases.py`): the tile grid for many image sizes and tile limits at
//! 448 px, and complete `pixel_values` at small tile sizes, all exactly.

use std::path::{Path, PathBuf};

use grit_data::preprocess::internvl::{
    IMAGENET_MEAN, IMAGENET_STD, TileConfig, preprocess_tiles, tile_grid,
};
use grit_data::preprocess::load_image;
use safetensors::{Dtype, SafeTensors};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/internvl3_tiles")
}

#[derive(serde::Deserialize)]
struct Grids {
    tile_size: usize,
    min_num: usize,
    cases: Vec<GridCase>,
}

#[derive(serde::Deserialize)]
struct GridCase {
    width: usize,
    height: usize,
    max_num: usize,
    grid: (usize, usize),
    tiles: usize,
}

#[test]
fn grids_match_transformers() {
    let text = std::fs::read_to_string(root().join("grids.json")).unwrap();
    let grids: Grids = serde_json::from_str(&text).unwrap();
    assert!(grids.cases.len() > 100);
    let mut wrong = Vec::new();
    for case in &grids.cases {
        let grid = tile_grid(
            case.width,
            case.height,
            grids.min_num,
            case.max_num,
            grids.tile_size,
        );
        let tiles = grid.0 * grid.1 + usize::from(grid.0 * grid.1 > 1);
        if (grid, tiles) != (case.grid, case.tiles) {
            wrong.push(format!(
                "{}x{} max {}: {grid:?} / {tiles} tiles, transformers {:?} / {}",
                case.width, case.height, case.max_num, case.grid, case.tiles
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[derive(serde::Deserialize)]
struct PixelCase {
    width: usize,
    height: usize,
    tile_size: usize,
    min_num: usize,
    max_num: usize,
    grid: (usize, usize),
    tiles: usize,
    image_mean: [f64; 3],
    image_std: [f64; 3],
}

#[test]
fn pixel_values_match_transformers_exactly() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5);
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let case: PixelCase =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        assert_eq!(case.image_mean.map(|v| v as f32), IMAGENET_MEAN);
        assert_eq!(case.image_std.map(|v| v as f32), IMAGENET_STD);
        let image = load_image(dir.join("input.png")).unwrap();
        let config = TileConfig {
            tile_size: case.tile_size,
            min_tiles: case.min_num,
            max_tiles: case.max_num,
            ..TileConfig::default()
        };
        let out = preprocess_tiles(&image, &config).unwrap();
        assert_eq!(out.original_size, (case.width, case.height), "{name}");
        assert_eq!((out.grid, out.tiles), (case.grid, case.tiles), "{name}");
        assert_eq!(out.num_image_tokens, case.tiles * 256, "{name}");

        let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
        let tensors = SafeTensors::deserialize(&bytes).unwrap();
        let view = tensors.tensor("pixel_values").unwrap();
        assert_eq!(view.dtype(), Dtype::F32);
        let size = case.tile_size;
        assert_eq!(view.shape(), [case.tiles, 3, size, size], "{name}");
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let differing = want
            .iter()
            .zip(&out.pixel_values)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing,
            0,
            "{name}: {differing} of {} values differ",
            want.len()
        );
    }
}
