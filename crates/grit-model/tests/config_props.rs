//! `config.json` values a checkpoint may carry never panic: every numeric field of both
//! families' configs (transformers' layouts and InternVL's remote-code one) is set to random
//! values; the config is refused with an error naming its key, or the model it describes builds
//! and runs a prompt with an image.

use grit_model::backend::Cpu;
use grit_model::composition::{Prompt, VisionLanguage};
use grit_model::internvl3::{self, InternVl3Config};
use grit_model::qwen2_5_vl::{self, Qwen2_5VlConfig};
use proptest::prelude::*;
use serde_json::Value;

/// The JSON paths of every number in `value`.
fn numeric_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Number(_) => out.push(at.clone()),
        Value::Object(map) => {
            for (key, v) in map {
                at.push(key.clone());
                numeric_paths(v, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(i.to_string());
                numeric_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn set(value: &mut Value, path: &[String], new: Value) {
    let mut at = value;
    for key in path {
        at = match at {
            Value::Object(map) => map.get_mut(key).expect("path exists"),
            Value::Array(items) => &mut items[key.parse::<usize>().expect("index")],
            _ => unreachable!("paths lead through containers"),
        };
    }
    *at = new;
}

/// Values that break configs in different ways: zero, small odd and even sizes, sizes that
/// divide nothing, negatives, fractions, and sizes no machine can allocate.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(1)),
        Just(Value::from(2)),
        Just(Value::from(3)),
        Just(Value::from(4)),
        Just(Value::from(6)),
        Just(Value::from(8)),
        Just(Value::from(12)),
        Just(Value::from(16)),
        Just(Value::from(28)),
        Just(Value::from(64)),
        Just(Value::from(-1)),
        Just(Value::from(0.5)),
        Just(Value::from(-2.5)),
        Just(Value::from(1u64 << 40)),
        Just(Value::from(u64::MAX)),
    ]
}

/// The number of parameters (roughly) and of image tokens, to skip running what would not fit
/// a test machine: such configs only need to load or be refused without a panic.
fn affordable(hidden: usize, layers: usize, vocab: usize, vision: usize, depth: usize) -> bool {
    let size = usize::saturating_mul;
    size(size(hidden, hidden), layers) < 4_000_000
        && size(vocab, hidden) < 4_000_000
        && size(size(vision, vision), depth) < 4_000_000
}

/// A prompt of one image's tokens alone (any other id might be the image token itself).
fn prompt<I>(image_token: u32, tokens: usize, image: I) -> Prompt<I> {
    Prompt {
        ids: vec![image_token; tokens],
        images: vec![image],
    }
}

fn run_qwen(config: &Qwen2_5VlConfig) {
    let (t, v) = (&config.text, &config.vision);
    if !affordable(
        t.hidden_size.max(t.intermediate_size),
        t.num_hidden_layers,
        t.vocab_size,
        v.hidden_size.max(v.intermediate_size) * v.spatial_merge_size.pow(2),
        v.depth,
    ) || v.patch_dim() > 100_000
    {
        return;
    }
    let device = Default::default();
    let model = config.init::<Cpu>(&device);
    let side = 2 * v.spatial_merge_size;
    let image = qwen2_5_vl::ImageInput {
        pixel_values: vec![0.1; side * side * v.patch_dim()],
        grid: [1, side, side],
    };
    let logits = model
        .forward(&[prompt(config.image_token_id, 4, image)])
        .expect("a valid config runs");
    assert_eq!(logits.dims()[2], t.vocab_size);
}

fn run_internvl(config: &InternVl3Config) {
    let (t, v) = (&config.text, &config.vision);
    let patches = (v.image_size / v.patch_size).pow(2);
    if !affordable(
        t.hidden_size.max(t.intermediate_size),
        t.num_hidden_layers,
        t.vocab_size,
        v.hidden_size.max(v.intermediate_size) * 4,
        v.num_hidden_layers,
    ) || patches > 4096
        || v.image_size > 1024
    {
        return;
    }
    let device = Default::default();
    let model = config.init::<Cpu>(&device);
    let size = v.image_size;
    let image = internvl3::ImageInput {
        pixel_values: vec![0.1; v.num_channels * size * size],
        tiles: 1,
        size,
    };
    let tokens = config.tokens_per_tile();
    let logits = model
        .forward(&[prompt(config.image_token_id, tokens, image)])
        .expect("a valid config runs");
    assert_eq!(logits.dims()[2], t.vocab_size);
}

/// A small config of each kind, as a hub checkpoint would store it.
fn bases() -> Vec<(&'static str, Value)> {
    let mut qwen = Qwen2_5VlConfig::tiny();
    qwen.text.vocab_size = 64;
    qwen.image_token_id = 60;
    qwen.video_token_id = 61;
    qwen.vision_start_token_id = 62;
    qwen.vision_end_token_id = 63;
    let mut internvl = InternVl3Config::tiny();
    internvl.text.vocab_size = 64;
    internvl.image_token_id = 60;
    internvl.vision.image_size = 56;
    // The remote-code layout of the same model.
    let mut remote = internvl.to_hf_json();
    let text = remote["text_config"].take();
    let object = remote.as_object_mut().unwrap();
    object.remove("text_config");
    object.insert("llm_config".into(), text);
    object.insert("select_layer".into(), (-1).into());
    object.insert(
        "architectures".into(),
        serde_json::json!(["InternVLChatModel"]),
    );
    object.insert("model_type".into(), "internvl_chat".into());
    vec![
        ("qwen2_5_vl", qwen.to_hf_json()),
        ("internvl", internvl.to_hf_json()),
        ("internvl_chat", remote),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn random_numbers_in_config_json_are_an_error_or_a_working_model(
        base in 0usize..3,
        picks in proptest::collection::vec((any::<prop::sample::Index>(), odd_value()), 1..4),
    ) {
        let (kind, mut json) = bases().swap_remove(base);
        let mut paths = Vec::new();
        numeric_paths(&json, &mut Vec::new(), &mut paths);
        for (index, value) in picks {
            set(&mut json, index.get::<Vec<String>>(&paths), value);
        }
        match kind {
            "qwen2_5_vl" => match Qwen2_5VlConfig::from_hf_json(&json) {
                Ok(config) => run_qwen(&config),
                Err(e) => prop_assert!(!e.key.is_empty() && !e.message.is_empty(), "{e}"),
            },
            _ => match InternVl3Config::from_hf_json(&json) {
                Ok(config) => run_internvl(&config),
                Err(e) => prop_assert!(!e.key.is_empty() && !e.message.is_empty(), "{e}"),
            },
        }
    }
}

#[test]
fn refusals_name_the_key() {
    let (_, mut qwen) = bases().swap_remove(0);
    qwen["text_config"]["num_key_value_heads"] = 3.into();
    let err = Qwen2_5VlConfig::from_hf_json(&qwen).unwrap_err();
    assert_eq!(err.key, "text_config.num_key_value_heads", "{err}");

    let (_, mut qwen) = bases().swap_remove(0);
    qwen["vision_config"]["patch_size"] = 0.into();
    let err = Qwen2_5VlConfig::from_hf_json(&qwen).unwrap_err();
    assert_eq!(err.key, "vision_config.patch_size", "{err}");

    let (_, mut qwen) = bases().swap_remove(0);
    qwen["text_config"]["num_attention_heads"] = (-1).into();
    let err = Qwen2_5VlConfig::from_hf_json(&qwen).unwrap_err();
    assert_eq!(err.key, "text_config.num_attention_heads", "{err}");

    let (_, mut remote) = bases().swap_remove(2);
    remote["vision_config"]["num_hidden_layers"] = 0.into();
    let err = InternVl3Config::from_hf_json(&remote).unwrap_err();
    assert_eq!(err.key, "vision_config.num_hidden_layers", "{err}");

    let (_, mut remote) = bases().swap_remove(2);
    remote["llm_config"]["hidden_size"] = 30.into();
    let err = InternVl3Config::from_hf_json(&remote).unwrap_err();
    assert_eq!(err.key, "llm_config.hidden_size", "{err}");

    // The file's path leads the message.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_string(&remote).unwrap()).unwrap();
    let err = InternVl3Config::from_hf_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&path.display().to_string()) && err.contains("`llm_config.hidden_size`"),
        "{err}"
    );
}

#[test]
fn a_missing_fullatt_block_indexes_takes_the_transformers_default() {
    let (_, mut qwen) = bases().swap_remove(0);
    qwen["vision_config"]
        .as_object_mut()
        .unwrap()
        .remove("fullatt_block_indexes");
    let config = Qwen2_5VlConfig::from_hf_json(&qwen).unwrap();
    assert_eq!(config.vision.fullatt_block_indexes, vec![7, 15, 23, 31]);
}
