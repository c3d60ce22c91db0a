//! Parity with HF transformers: every case directory under `$GRIT_PARITY_DIR` (default: the
//! committed fixtures) holds a tiny random Qwen2.5-VL checkpoint and the oracle's outputs in
//! `io.safetensors` (see tools/fixtures/README.md). It runs on every backend compiled in: the
//! CPU always, wgpu with the `wgpu` feature, CUDA with `cuda` (ignored by default: it needs an
//! NVIDIA GPU; run it with `--ignored`).

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use common::{fixtures_root, host, max_abs_diff};
use grit_model::VisionLanguage;
use grit_model::backend::{BackendKind, OnBackend, dispatch};
use grit_model::generate::{Decoder, GenerationConfig, Sampling, generate};
use grit_model::qwen2_5_vl::{ImageInput, Prompt, Qwen2_5Vl};
use safetensors::{Dtype, SafeTensors};

const TOLERANCE: f32 = 1e-4;

fn cases() -> Vec<PathBuf> {
    let root = std::env::var_os("GRIT_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(fixtures_root);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("io.safetensors").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no parity cases under {}",
        root.display()
    );
    cases
}

/// The oracle's tensors of one case.
struct Oracle {
    bytes: Vec<u8>,
}

impl Oracle {
    fn open(dir: &Path) -> Self {
        let path = dir.join("io.safetensors");
        Self {
            bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    fn get(&self, key: &str) -> Option<(Vec<usize>, Vec<u8>, Dtype)> {
        let tensors = SafeTensors::deserialize(&self.bytes).expect("io.safetensors");
        let view = tensors.tensor(key).ok()?;
        Some((view.shape().to_vec(), view.data().to_vec(), view.dtype()))
    }

    fn f32(&self, key: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let (shape, data, dtype) = self.get(key)?;
        assert_eq!(dtype, Dtype::F32, "{key}");
        let values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Some((shape, values))
    }

    fn i64(&self, key: &str) -> Option<(Vec<usize>, Vec<i64>)> {
        let (shape, data, dtype) = self.get(key)?;
        assert_eq!(dtype, Dtype::I64, "{key}");
        let values = data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Some((shape, values))
    }

    fn prompt(&self) -> Prompt {
        let (_, ids) = self.i64("input_ids").expect("input_ids");
        let ids = ids.iter().map(|&t| t as u32).collect();
        let mut images = Vec::new();
        if let (Some((_, grids)), Some((shape, pixels))) =
            (self.i64("image_grid_thw"), self.f32("pixel_values"))
        {
            let patch_dim = shape[1];
            let mut offset = 0;
            for grid in grids.chunks(3) {
                let grid = [grid[0] as usize, grid[1] as usize, grid[2] as usize];
                let rows = grid.iter().product::<usize>();
                images.push(ImageInput {
                    pixel_values: pixels[offset * patch_dim..(offset + rows) * patch_dim].to_vec(),
                    grid,
                });
                offset += rows;
            }
        }
        Prompt { ids, images }
    }
}

/// max |Δ| after checking that the shapes agree.
fn compare(what: &str, got: (Vec<usize>, Vec<f32>), want: &(Vec<usize>, Vec<f32>)) -> f32 {
    assert_eq!(got.0, want.0, "{what}: shape");
    max_abs_diff(&got.1, &want.1)
}

/// Checks one case and returns the problems found (empty when it matches the oracle).
fn check_case<B: Backend>(dir: &Path, device: &B::Device) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let mut problems = Vec::new();
    let mut expect_close = |what: &str, diff: f32| {
        println!("{name}: {what} max|Δ| = {diff:.3e}");
        if diff > TOLERANCE {
            problems.push(format!("{name}: {what} max|Δ| = {diff:e} > {TOLERANCE:e}"));
        }
    };
    let model = Qwen2_5Vl::<B>::load(dir, device).unwrap_or_else(|e| panic!("{name}: {e}"));
    let oracle = Oracle::open(dir);
    let prompt = oracle.prompt();

    let (_, want_positions) = oracle.i64("position_ids").expect("position_ids");
    let positions = model.positions(&prompt).expect("positions");
    let got_positions: Vec<i64> = positions.rows.concat();
    let positions_match = got_positions == want_positions;

    if let Some(want) = oracle.f32("vision.image_embeds") {
        let images: Vec<&ImageInput> = prompt.images.iter().collect();
        let got = host(model.image_features(&images).expect("image features"));
        expect_close("image embeds", compare("image embeds", got, &want));
    }

    let want_logits = oracle.f32("logits").expect("logits");
    let logits = model
        .forward(std::slice::from_ref(&prompt))
        .expect("forward");
    expect_close("logits", compare("logits", host(logits), &want_logits));

    // Decode the oracle's tokens step by step through the KV cache.
    let (_, want_ids) = oracle.i64("generated_ids").expect("generated_ids");
    let (step_shape, want_steps) = oracle.f32("generated_step_logits").expect("step logits");
    let vocab = step_shape[1];
    let (mut logits, mut state) = model
        .prefill(std::slice::from_ref(&prompt), want_ids.len())
        .unwrap();
    let mut worst = 0.0f32;
    for (k, &token) in want_ids.iter().enumerate() {
        let want = (
            vec![1, vocab],
            want_steps[k * vocab..(k + 1) * vocab].to_vec(),
        );
        worst = worst.max(compare("step logits", host(logits.clone()), &want));
        if k + 1 < want_ids.len() {
            logits = model.step(&[token as u32], &mut state);
        }
    }
    expect_close("step logits", worst);

    let config = GenerationConfig {
        max_new_tokens: want_ids.len(),
        sampling: Sampling::greedy(),
        eos_token_ids: Vec::new(),
        stop_strings: Vec::new(),
        suppress_tokens: Vec::new(),
    };
    let generated = generate(&model, std::slice::from_ref(&prompt), &config, None, None).unwrap();
    let got_ids: Vec<i64> = generated[0].tokens.iter().map(|&t| t as i64).collect();
    if !positions_match {
        problems.push(format!("{name}: position ids differ from the oracle"));
    }
    if got_ids != want_ids {
        problems.push(format!(
            "{name}: greedy ids {got_ids:?}, oracle {want_ids:?}"
        ));
    }
    problems
}

struct Parity;

impl OnBackend for Parity {
    type Output = Vec<String>;
    fn run<B: Backend>(self, device: B::Device) -> Vec<String> {
        cases()
            .iter()
            .flat_map(|dir| check_case::<B>(dir, &device))
            .collect()
    }
}

fn assert_parity(kind: BackendKind) {
    let problems = dispatch(kind, Parity).unwrap_or_else(|e| panic!("{e}"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn cpu_matches_transformers() {
    assert_parity(BackendKind::Cpu);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_transformers() {
    assert_parity(BackendKind::Wgpu);
}

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cuda_matches_transformers() {
    assert_parity(BackendKind::Cuda);
}

/// Without a GPU, the first CUDA call panics inside cudarc; users get an error instead. With
/// one, the device computes.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_device_is_an_error_not_a_panic() {
    struct Touch;
    impl OnBackend for Touch {
        type Output = Vec<f32>;
        fn run<B: Backend>(self, device: B::Device) -> Vec<f32> {
            let ones = burn::tensor::Tensor::<B, 1>::ones([2], &device);
            (ones.clone() + ones)
                .into_data()
                .convert::<f32>()
                .into_vec()
                .unwrap()
        }
    }
    match dispatch(BackendKind::Cuda, Touch) {
        Ok(sum) => assert_eq!(sum, vec![2.0, 2.0]),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with("backend `cuda` unavailable"),
                "{message}"
            );
        }
    }
}
