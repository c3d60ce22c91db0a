//! InternVL3 parity with HF transformers: every case directory under `tests/fixtures/internvl3`
//! holds one tiny random model saved in both checkpoint layouts (`hf/`: transformers'
//! `save_pretrained`; `remote/`: the original `InternVLChatModel` keys with fused `attn.qkv`) and
//! the oracle's outputs in `io.safetensors` (see tools/fixtures/README.md).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{fixtures_root, host, max_abs_diff};
use grit_model::VisionLanguage;
use grit_model::backend::Cpu;
use grit_model::generate::{Decoder, GenerationConfig, Sampling, generate};
use grit_model::internvl3::{CheckpointLayout, ImageInput, InternVl3, Prompt};
use grit_model::weights::StoreDtype;
use safetensors::{Dtype, SafeTensors};

const TOLERANCE: f32 = 1e-4;
const LAYOUTS: [(&str, CheckpointLayout); 2] = [
    ("hf", CheckpointLayout::Transformers),
    ("remote", CheckpointLayout::RemoteCode),
];

fn cases() -> Vec<PathBuf> {
    let root = fixtures_root().join("../internvl3");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("io.safetensors").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 2, "InternVL3 cases under {}", root.display());
    cases
}

/// The oracle's tensors of one case.
struct Oracle {
    tensors: BTreeMap<String, (Vec<usize>, Dtype, Vec<u8>)>,
}

impl Oracle {
    fn open(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("io.safetensors")).unwrap();
        let parsed = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = parsed
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, (v.shape().to_vec(), v.dtype(), v.data().to_vec())))
            .collect();
        Self { tensors }
    }

    fn f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, dtype, data) = &self.tensors[key];
        assert_eq!(*dtype, Dtype::F32, "{key}");
        let values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (shape.clone(), values)
    }

    fn i64(&self, key: &str) -> Vec<i64> {
        let (_, dtype, data) = &self.tensors[key];
        assert_eq!(*dtype, Dtype::I64, "{key}");
        data.chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn prompt(&self) -> Prompt {
        let ids = self.i64("input_ids").iter().map(|&t| t as u32).collect();
        let (shape, pixels) = self.f32("pixel_values");
        let size = shape[2];
        let per_tile = 3 * size * size;
        let mut offset = 0;
        let images = self
            .i64("num_tiles")
            .iter()
            .map(|&tiles| {
                let tiles = tiles as usize;
                let image = ImageInput {
                    pixel_values: pixels[offset..offset + tiles * per_tile].to_vec(),
                    tiles,
                    size,
                };
                offset += tiles * per_tile;
                image
            })
            .collect();
        Prompt { ids, images }
    }
}

fn compare(what: &str, got: (Vec<usize>, Vec<f32>), want: &(Vec<usize>, Vec<f32>)) -> f32 {
    assert_eq!(got.0, want.0, "{what}: shape");
    max_abs_diff(&got.1, &want.1)
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        sampling: Sampling::greedy(),
        eos_token_ids: Vec::new(),
        stop_strings: Vec::new(),
        suppress_tokens: Vec::new(),
    }
}

/// Checks one layout of one case; returns the problems found and the full logits.
fn check(dir: &Path, layout: &str, expected: CheckpointLayout) -> (Vec<String>, Vec<f32>) {
    let name = format!("{}/{layout}", dir.file_name().unwrap().to_string_lossy());
    let device = Default::default();
    let model = InternVl3::<Cpu>::load(&dir.join(layout), &device)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(model.layout, expected, "{name}");
    let oracle = Oracle::open(dir);
    let prompt = oracle.prompt();
    let mut problems = Vec::new();
    let mut expect_close = |what: &str, diff: f32| {
        println!("{name}: {what} max|Δ| = {diff:.3e}");
        if diff > TOLERANCE {
            problems.push(format!("{name}: {what} max|Δ| = {diff:e} > {TOLERANCE:e}"));
        }
    };

    let images: Vec<&ImageInput> = prompt.images.iter().collect();
    let vision = model.vision(&images).expect("vision");
    for (key, got) in [
        ("vision.last_hidden_state", host(vision.last_hidden_state)),
        ("vision.pixel_shuffled", host(vision.pixel_shuffled)),
        ("vision.image_embeds", host(vision.image_embeds)),
    ] {
        expect_close(key, compare(key, got, &oracle.f32(key)));
    }

    let logits = host(
        model
            .forward(std::slice::from_ref(&prompt))
            .expect("forward"),
    );
    expect_close(
        "logits",
        compare("logits", logits.clone(), &oracle.f32("logits")),
    );

    let want_ids = oracle.i64("generated_ids");
    let (step_shape, want_steps) = oracle.f32("generated_step_logits");
    let vocab = step_shape[1];
    let (mut step, mut state) = model
        .prefill(std::slice::from_ref(&prompt), want_ids.len())
        .unwrap();
    let mut worst = 0.0f32;
    for (k, &token) in want_ids.iter().enumerate() {
        let want = (
            vec![1, vocab],
            want_steps[k * vocab..(k + 1) * vocab].to_vec(),
        );
        worst = worst.max(compare("step logits", host(step.clone()), &want));
        if k + 1 < want_ids.len() {
            step = model.step(&[token as u32], &mut state);
        }
    }
    expect_close("step logits", worst);

    let generated = generate(
        &model,
        std::slice::from_ref(&prompt),
        &greedy(want_ids.len()),
        None,
        None,
    )
    .unwrap();
    let got_ids: Vec<i64> = generated[0].tokens.iter().map(|&t| t as i64).collect();
    if got_ids != want_ids {
        problems.push(format!(
            "{name}: greedy ids {got_ids:?}, oracle {want_ids:?}"
        ));
    }
    (problems, logits.1)
}

#[test]
fn both_layouts_match_transformers() {
    let mut problems = Vec::new();
    for dir in cases() {
        let mut logits = Vec::new();
        for (layout, expected) in LAYOUTS {
            let (p, l) = check(&dir, layout, expected);
            problems.extend(p);
            logits.push(l);
        }
        // Same weights, same arithmetic: the layouts must agree exactly.
        if logits[0] != logits[1] {
            problems.push(format!(
                "{}: the two layouts give different logits",
                dir.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A left-padded batch decodes each row as it would alone.
#[test]
fn padded_batches_decode_like_single_prompts() {
    let dir = &cases()[0];
    let model = InternVl3::<Cpu>::load(&dir.join("hf"), &Default::default()).unwrap();
    let full = Oracle::open(dir).prompt();
    let mut short = full.clone();
    short.ids.drain(..4);
    let prompts = [full, short];
    let config = greedy(6);
    let batch = generate(&model, &prompts, &config, None, None).unwrap();
    for (row, prompt) in prompts.iter().enumerate() {
        let alone = generate(&model, std::slice::from_ref(prompt), &config, None, None).unwrap();
        assert_eq!(batch[row].tokens, alone[0].tokens, "row {row}");
        let worst = max_abs_diff(&batch[row].logprobs, &alone[0].logprobs);
        assert!(worst < 1e-4, "row {row}: logprobs differ by {worst}");
    }
}

/// A remote-code checkpoint saves in transformers' layout: the same keys and shapes as
/// `save_pretrained`'s file, and the same logits after reloading.
#[test]
fn remote_checkpoints_save_in_the_transformers_layout() {
    let dir = &cases()[0];
    let device = Default::default();
    let remote = InternVl3::<Cpu>::load(&dir.join("remote"), &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    remote.save(out.path(), StoreDtype::Bf16).unwrap();
    let shapes = |path: PathBuf| -> BTreeMap<String, Vec<usize>> {
        let bytes = std::fs::read(path).unwrap();
        let parsed = SafeTensors::deserialize(&bytes).unwrap();
        parsed
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.shape().to_vec()))
            .collect()
    };
    assert_eq!(
        shapes(out.path().join("model.safetensors")),
        shapes(dir.join("hf/model.safetensors"))
    );
    let saved_bytes = std::fs::read(out.path().join("model.safetensors")).unwrap();
    let hf_bytes = std::fs::read(dir.join("hf/model.safetensors")).unwrap();
    let (saved, hf) = (
        SafeTensors::deserialize(&saved_bytes).unwrap(),
        SafeTensors::deserialize(&hf_bytes).unwrap(),
    );
    for (key, view) in hf.tensors() {
        assert_eq!(saved.tensor(&key).unwrap().data(), view.data(), "{key}");
    }
    let reloaded = InternVl3::<Cpu>::load(out.path(), &device).unwrap();
    assert_eq!(reloaded.layout, CheckpointLayout::Transformers);
    assert_eq!(reloaded.config, remote.config);
    let prompt = Oracle::open(dir).prompt();
    let a = host(remote.forward(std::slice::from_ref(&prompt)).unwrap());
    let b = host(reloaded.forward(std::slice::from_ref(&prompt)).unwrap());
    assert_eq!(a, b);
}

/// A copy of `dir` whose weights went through `edit`.
fn edited(
    dir: &Path,
    edit: impl FnOnce(&mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.path().join(path.file_name().unwrap())).unwrap();
    }
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = parsed
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (dtype, shape, data))| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (k.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &out.path().join("model.safetensors")).unwrap();
    out
}

fn load_error(dir: &Path) -> String {
    match InternVl3::<Cpu>::load(dir, &Default::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loading_errors_name_the_tensor_shape_and_file() {
    let remote = cases()[0].join("remote");
    let key = "vision_model.encoder.layers.1.attn.qkv.weight";
    // A fused tensor that does not split in three.
    let dir = edited(&remote, |t| {
        let (_, shape, data) = t.get_mut(key).unwrap();
        shape[0] -= 1;
        data.truncate(shape.iter().product::<usize>() * 2);
    });
    let message = load_error(dir.path());
    assert!(
        message.contains(key) && message.contains("model.safetensors"),
        "{message}"
    );

    // Thirds of the wrong width are named by their fused key.
    let dir = edited(&remote, |t| {
        let (_, shape, data) = t.get_mut(key).unwrap();
        shape[0] -= 3;
        data.truncate(shape.iter().product::<usize>() * 2);
    });
    let message = load_error(dir.path());
    assert!(
        message.contains("vision_model.encoder.layers.1.attn.qkv[q].weight")
            && message.contains("the model expects"),
        "{message}"
    );

    // A missing projector tensor, an unexpected extra one.
    let dir = edited(&remote, |t| {
        let moved = t.remove("mlp1.1.bias").unwrap();
        t.insert("mlp1.2.bias".into(), moved);
    });
    let message = load_error(dir.path());
    assert!(
        message.contains("model.multi_modal_projector.linear_1.bias")
            && message.contains("unexpected tensor `mlp1.2.bias`"),
        "{message}"
    );
}
