//! A trained checkpoint opens in transformers as any hub model does: for a miniature run of each
//! family, `AutoProcessor` + `AutoModelForImageTextToText` load the checkpoint directory alone,
//! `processor.apply_chat_template` gives grit's prompt ids, and greedy `generate` writes
//! `grit-infer`'s completion token for token (tools/fixtures/hub_oracle.py). The files that makes
//! possible are checked everywhere; the transformers side runs where the fixture venv exists
//! (`.venv-fixtures`, see tools/fixtures/README.md), as the benchmark's does.

use std::path::{Path, PathBuf};
use std::process::Command;

use grit_cli::infer::{Args, infer};
use grit_data::prompt::PromptStyle;
use grit_model::backend::BackendKind;

mod common;
use common::{MINIATURE_MODEL, succeed};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A miniature run of `family` to its step-2 checkpoint. Learning rates are small so that the
/// policy stays near its random start, whose greedy completions vary from token to token (a
/// miniature trained hard collapses onto one token, a weaker check).
fn trained(dir: &Path, family: &str) -> PathBuf {
    let out = dir.join(family);
    let config = format!(
        r#"
out = "{}"
seed = 11
[demo]
family = "{family}"
train_samples = 16
heldout_samples = 2
{MINIATURE_MODEL}
[sft]
steps = 150
batch = 8
learning_rate = 3e-3
[grpo]
steps = 2
prompts_per_step = 2
group_size = 2
micro_batch = 4
rollout_batch = 4
max_new_tokens = 8
learning_rate = 1e-4
[eval]
batch = 2
max_new_tokens = 8
[checkpoint]
every = 2
"#,
        out.display()
    );
    let file = dir.join(format!("{family}.toml"));
    std::fs::write(&file, config).unwrap();
    succeed(Command::new(env!("CARGO_BIN_EXE_grit-train")).args([
        "--config",
        &file.display().to_string(),
        "--quiet",
    ]));
    out.join("checkpoints/step-000002")
}

fn check_family(family: &str, model_type: &str, files: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = trained(dir.path(), family);
    // What the hub layout needs besides the weights, and a dtype that names what is stored.
    for file in files {
        assert!(checkpoint.join(file).is_file(), "{family}: no {file}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], model_type);
    assert_eq!(config["dtype"], "float32");

    let image = dir
        .path()
        .join(family)
        .join("demo/data/images/heldout_00000.png");
    let question = "How many red shapes are there?";
    let args = Args {
        model: checkpoint.clone(),
        image: image.clone(),
        question: question.to_owned(),
        backend: BackendKind::Cpu,
        prompt: PromptStyle::Grit,
        max_new_tokens: 24,
        temperature: 0.0,
        top_k: 50,
        top_p: 1.0,
        seed: 0,
        min_pixels: None,
        max_pixels: None,
        max_tiles: None,
        out: None,
        json: true,
    };
    let ours = infer(&args).unwrap();
    let python = root().join(".venv-fixtures/bin/python");
    if !python.is_file() {
        println!("{family}: transformers side skipped (no .venv-fixtures)");
        return;
    }
    let output = Command::new(python)
        .current_dir(root().join("tools/fixtures"))
        .arg("hub_oracle.py")
        .args(["--model", &checkpoint.display().to_string()])
        .args(["--image", &image.display().to_string()])
        .args(["--question", question])
        .args([
            "--prompt-ids",
            &serde_json::to_string(&ours.prompt_ids).unwrap(),
        ])
        .args([
            "--completion-ids",
            &serde_json::to_string(&ours.completion_ids).unwrap(),
        ])
        .args(["--max-new-tokens", "24", "--family", model_type])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{family}: grit-infer wrote {:?}\n{stdout}", ours.completion);
    assert!(
        output.status.success(),
        "{family}: transformers disagrees:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_qwen2_5_vl_checkpoint_is_a_hub_model() {
    check_family(
        "qwen2_5_vl",
        "qwen2_5_vl",
        &[
            "tokenizer.json",
            "tokenizer_config.json",
            "chat_template.jinja",
            "generation_config.json",
            "preprocessor_config.json",
        ],
    );
}

#[test]
fn an_internvl3_checkpoint_is_a_hub_model() {
    check_family(
        "internvl3",
        "internvl",
        &[
            "tokenizer.json",
            "tokenizer_config.json",
            "chat_template.jinja",
            "generation_config.json",
            "preprocessor_config.json",
            "processor_config.json",
        ],
    );
}
