//! Run configs never panic: every numeric key of the demo's TOML is set to random values; the
//! config is refused at load time with an error naming the file and the key, or the demo's data
//! and model it describes are built and run.

use grit_model::Family;
use grit_model::backend::Cpu;
use grit_model::{Prompt, Vlm};
use grit_train::config::{DEFAULT_CONFIG, RunConfig};
use proptest::prelude::*;
use toml::Value;

/// The dotted paths of every number in `value`.
fn numeric_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Integer(_) | Value::Float(_) => out.push(at.clone()),
        Value::Table(table) => {
            for (key, v) in table {
                at.push(key.clone());
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
        at = at.get_mut(key.as_str()).expect("path exists");
    }
    *at = new;
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Integer(0)),
        Just(Value::Integer(1)),
        Just(Value::Integer(2)),
        Just(Value::Integer(3)),
        Just(Value::Integer(5)),
        Just(Value::Integer(16)),
        Just(Value::Integer(28)),
        Just(Value::Integer(112)),
        Just(Value::Integer(-1)),
        Just(Value::Integer(i64::MAX)),
        Just(Value::Float(0.0)),
        Just(Value::Float(0.5)),
        Just(Value::Float(1.5)),
        Just(Value::Float(-1.0)),
        Just(Value::Float(f64::NAN)),
        Just(Value::Float(f64::INFINITY)),
    ]
}

/// The demo config with every optional numeric key present, as TOML.
fn base() -> Value {
    let config = RunConfig::parse(DEFAULT_CONFIG, "shapes-tiny.toml").unwrap();
    let mut value: Value = toml::from_str(&config.to_toml()).unwrap();
    let data = value.get_mut("data").unwrap().as_table_mut().unwrap();
    data.insert("min_pixels".into(), Value::Integer(3136));
    data.insert("max_pixels".into(), Value::Integer(200_704));
    data.insert("max_tiles".into(), Value::Integer(2));
    let grpo = value.get_mut("grpo").unwrap().as_table_mut().unwrap();
    grpo.insert("clip_eps_low".into(), Value::Float(0.2));
    grpo.insert("clip_eps_high".into(), Value::Float(0.28));
    value
}

/// Builds what the demo builds from an accepted config, small: a few items of its data and its
/// model, which runs a prompt.
fn build_demo(config: &RunConfig) {
    let mut demo = config.demo.clone();
    demo.train_samples = demo.train_samples.min(3);
    demo.heldout_samples = demo.heldout_samples.min(2);
    demo.splits(config.seed).expect("accepted shapes generate");
    let d = &demo;
    let n = |v: usize| v as u128;
    let weights = (n(d.vocab_size) + n(d.layers) * (n(d.intermediate_size) + n(d.hidden_size)))
        * n(d.hidden_size)
        + n(d.vision_depth) * n(d.vision_hidden_size).pow(2);
    if weights > 4_000_000 {
        return;
    }
    let model: Vlm<Cpu> = demo
        .model_config(d.vocab_size, [0, 1, 2])
        .init(&Default::default());
    let family = match model {
        Vlm::Qwen2_5Vl(_) => Family::Qwen2_5Vl,
        Vlm::InternVl3(_) => Family::InternVl3,
    };
    let logits = model
        .forward(&[Prompt::text(family, vec![3, 4, 5])])
        .unwrap();
    assert_eq!(logits.dims()[2], d.vocab_size);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_numbers_in_the_run_toml_are_an_error_naming_the_key_or_a_working_demo(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), odd_value()), 1..4),
    ) {
        let mut value = base();
        let mut paths = Vec::new();
        numeric_paths(&value, &mut Vec::new(), &mut paths);
        for (index, new) in picks {
            set(&mut value, index.get::<Vec<String>>(&paths), new);
        }
        let text = toml::to_string(&value).unwrap();
        match RunConfig::parse(&text, "run.toml") {
            Ok(config) => build_demo(&config),
            Err(e) => {
                let message = format!("{e:#}");
                prop_assert!(message.starts_with("run.toml: "), "{message}");
            }
        }
    }
}

#[test]
fn refusals_name_the_file_and_the_key() {
    for (edit, key) in [
        ("[demo]\nheads = 0\n", "`[demo] heads`"),
        ("[demo]\nkv_heads = 3\n", "`[demo] kv_heads`"),
        ("[demo]\nvision_depth = 0\n", "`[demo] vision_depth`"),
        ("[grpo]\nmicro_batch = 0\n", "`[grpo] micro_batch`"),
        ("[grpo]\ntop_p = 0.0\n", "`[grpo] top_p`"),
        ("[checkpoint]\ndtype = \"f8\"\n", "dtype"),
    ] {
        let err = RunConfig::parse(edit, "run.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("run.toml: ") && err.contains(key),
            "{edit}: {err}"
        );
    }
    // Shapes that cannot fit the image: refused at load time, not deep inside the demo.
    let err = RunConfig::parse(
        "[demo.shapes]\nimage_size = 56\nmin_objects = 4\nmax_objects = 4\nmin_shape_size = 30\n\
         max_shape_size = 34\n",
        "run.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("run.toml: [demo.shapes]: ") && err.contains("do not fit"),
        "{err}"
    );
}
