//! Checkpoints that do not match the model are errors that name the tensor, its shapes and the
//! file; other float types load to the same numbers.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{fixtures_root, host, max_abs_diff};
use grit_model::Error;
use grit_model::VisionLanguage;
use grit_model::backend::Cpu;
use grit_model::qwen2_5_vl::{Prompt, Qwen2_5Vl};
use grit_model::weights::StoreDtype;
use safetensors::{Dtype, SafeTensors, View};

fn fixture(case: &str) -> std::path::PathBuf {
    fixtures_root().join(case)
}

/// An owned tensor to write back.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn read_tensors(path: &Path) -> HashMap<String, Owned> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let owned = Owned {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                data: view.data().to_vec(),
            };
            (name, owned)
        })
        .collect()
}

/// A copy of `case` whose weights went through `edit`.
fn edited(case: &str, edit: impl FnOnce(&mut HashMap<String, Owned>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(case);
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut tensors = read_tensors(&source.join("model.safetensors"));
    edit(&mut tensors);
    let views: Vec<(&String, &Owned)> = tensors.iter().collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    match Qwen2_5Vl::<Cpu>::load(dir, &Default::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = edited("image_150x100", |t| {
        t.remove("model.norm.weight").unwrap();
    });
    let message = load_error(dir.path());
    assert!(
        message.contains(
            "missing tensor for parameter `model.language_model.norm.weight` (expected shape [64])"
        ),
        "{message}"
    );
}

#[test]
fn an_extra_tensor_is_named_with_its_file() {
    let dir = edited("image_150x100", |t| {
        let extra = Owned {
            dtype: Dtype::F32,
            shape: vec![2],
            data: vec![0; 8],
        };
        t.insert("model.layers.0.mlp.extra_proj.weight".into(), extra);
    });
    let message = load_error(dir.path());
    assert!(
        message.contains("unexpected tensor `model.layers.0.mlp.extra_proj.weight` [2]"),
        "{message}"
    );
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn a_misshaped_tensor_gives_both_shapes() {
    let dir = edited("image_150x100", |t| {
        let head = t.get_mut("lm_head.weight").unwrap();
        head.shape = vec![511, 64];
        head.data.truncate(511 * 64 * 2);
    });
    let message = load_error(dir.path());
    assert!(
        message
            .contains("tensor `lm_head.weight` has shape [511, 64], the model expects [512, 64]"),
        "{message}"
    );
}

#[test]
fn a_non_float_tensor_is_rejected_by_name() {
    let dir = edited("text_only", |t| {
        let norm = t.get_mut("model.norm.weight").unwrap();
        norm.dtype = Dtype::I16;
    });
    let message = load_error(dir.path());
    assert!(message.contains("tensor `model.norm.weight`"), "{message}");
    assert!(message.contains("I16"), "{message}");
}

#[test]
fn a_directory_without_weights_or_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let message = load_error(dir.path());
    assert!(message.contains("config.json"), "{message}");
    std::fs::copy(
        fixture("text_only").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("no model.safetensors or model.safetensors.index.json"),
        "{message}"
    );
}

#[test]
fn an_inconsistent_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(fixture("text_only").join("config.json")).unwrap();
    let config = config.replace(
        "\"mrope_section\": [\n        2,",
        "\"mrope_section\": [\n        3,",
    );
    assert!(config.contains("3,"), "fixture layout changed");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("mrope_section`: [3, 3, 3] must sum to head_dim / 2 = 8"),
        "{message}"
    );
}

fn convert(case: &str, dtype: Dtype) -> tempfile::TempDir {
    edited(case, |tensors| {
        for t in tensors.values_mut() {
            assert_eq!(t.dtype, Dtype::BF16);
            let values = t
                .data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32());
            t.data = match dtype {
                Dtype::F32 => values.flat_map(f32::to_le_bytes).collect(),
                Dtype::F16 => values
                    .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                other => panic!("{other:?}"),
            };
            t.dtype = dtype;
        }
    })
}

#[test]
fn f32_and_f16_checkpoints_load_to_the_same_model() {
    let device = Default::default();
    let prompt = [Prompt {
        ids: vec![5, 17, 42, 99, 3],
        images: Vec::new(),
    }];
    let logits = |dir: &Path| {
        host(
            Qwen2_5Vl::<Cpu>::load(dir, &device)
                .unwrap()
                .forward(&prompt)
                .unwrap(),
        )
        .1
    };
    let reference = logits(&fixture("text_only"));
    // bf16 values are exact in f32, so the model is the same to the bit.
    assert_eq!(logits(convert("text_only", Dtype::F32).path()), reference);
    // f16 has fewer exponent bits; tiny weights round, the logits barely move.
    let diff = max_abs_diff(&logits(convert("text_only", Dtype::F16).path()), &reference);
    assert!(diff < 1e-2, "{diff}");
}

#[test]
fn errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("text_only").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    assert!(matches!(
        Qwen2_5Vl::<Cpu>::load(dir.path(), &Default::default()),
        Err(Error::NoWeights { .. })
    ));
}

#[test]
fn a_saved_model_loads_back_to_the_same_numbers() {
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&fixture("legacy_flat"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path(), StoreDtype::Bf16).unwrap();
    // Same keys as the hub spelling that transformers writes.
    let original = read_tensors(&fixture("image_150x100").join("model.safetensors"));
    let saved = read_tensors(&dir.path().join("model.safetensors"));
    let mut original_keys: Vec<&String> = original.keys().collect();
    let mut saved_keys: Vec<&String> = saved.keys().collect();
    original_keys.sort();
    saved_keys.sort();
    assert_eq!(saved_keys, original_keys);
    let reloaded = Qwen2_5Vl::<Cpu>::load(dir.path(), &device).unwrap();
    let prompt = [Prompt {
        ids: vec![1, 2, 3, 4, 5],
        images: Vec::new(),
    }];
    let before = host(model.forward(&prompt).unwrap()).1;
    let after = host(reloaded.forward(&prompt).unwrap()).1;
    assert_eq!(before, after, "bf16 weights round-trip exactly");
}
