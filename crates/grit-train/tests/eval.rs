//! `grit-eval` end to end on a small random model and synthetic shapes: every item scored
//! once, resumable, and two evaluations compared.

use std::path::Path;
use std::process::Command;

use grit_data::hub::ImageProcessor;
use grit_data::prompt::ChatTokenizer;
use grit_data::synthetic::{
    ShapesConfig, build_tokenizer, splits, tokenizer_corpus, unresized, write_split,
    write_tokenizer_dir,
};
use grit_model::backend::Cpu;
use grit_model::qwen2::TextConfig;
use grit_model::qwen2_5_vl::{Qwen2_5VlConfig, VisionConfig};
use grit_model::weights::StoreDtype;
use serde_json::Value;

mod common;
use common::{read_rows, succeed};

/// A random Qwen2.5-VL with the shapes tokenizer, and 8 held-out items.
fn inputs(dir: &Path) {
    let items = splits(&ShapesConfig::default(), 1, 16, 8).unwrap();
    write_split(&items.heldout, &dir.join("data"), "heldout").unwrap();
    let tokenizer = build_tokenizer(&tokenizer_corpus(&items.train), 300);
    let model = dir.join("model");
    write_tokenizer_dir(
        &model,
        &tokenizer,
        ImageProcessor::Qwen2_5Vl(&unresized(112)),
    )
    .unwrap();
    let vision_tokens = ChatTokenizer::from_dir(&model).unwrap().vision_tokens();
    let text = TextConfig::new(300, 32, 64, 1, 2, 1).with_mrope_section(Some([2, 3, 3]));
    let vision = VisionConfig::new(1, 16, 2, 32, 32, vec![0]);
    let mut config = Qwen2_5VlConfig::new(text, vision);
    config.image_token_id = vision_tokens.image_pad;
    config.vision_start_token_id = vision_tokens.start;
    config.vision_end_token_id = vision_tokens.end;
    config
        .init::<Cpu>(&Default::default())
        .save(&model, StoreDtype::F32)
        .unwrap();
}

fn grit_eval(dir: &Path, extra: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grit-eval"));
    command
        .args([
            "--model",
            &dir.join("model").display().to_string(),
            "--data",
            &dir.join("data/heldout.jsonl").display().to_string(),
            "--images",
            &dir.join("data/images").display().to_string(),
            "--max-new-tokens",
            "8",
            "--batch",
            "3",
        ])
        .args(extra);
    String::from_utf8(succeed(&mut command).stdout).unwrap()
}

fn samples(out: &Path) -> Vec<Value> {
    read_rows(&out.join("samples.jsonl"))
}

#[test]
fn each_item_once_resumable_and_comparable() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let out = dir.path().join("model/eval/heldout-grit");

    let first = grit_eval(dir.path(), &["--limit", "4"]);
    assert!(first.contains("| overall | 4 |"), "{first}");
    let early = samples(&out);
    assert_eq!(early.len(), 4);

    // A second run scores only what is missing and keeps what was there.
    let second = grit_eval(dir.path(), &[]);
    assert!(second.contains("| overall | 8 |"), "{second}");
    let all = samples(&out);
    assert_eq!(all.len(), 8);
    assert_eq!(&all[..4], &early[..]);
    let mut ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    for row in &all {
        assert!(row["metrics"]["completion_length"].as_u64().unwrap() <= 8);
        assert!(
            row["judge_score"].is_number(),
            "the rule judge scores every item: {row}"
        );
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["overall"]["samples"], 8);
    assert!(
        std::fs::read_to_string(out.join("summary.md"))
            .unwrap()
            .contains("| overall |")
    );

    let direct = grit_eval(dir.path(), &["--prompt", "direct", "--name", "direct"]);
    assert!(direct.contains("| overall | 8 |"));
    let output = succeed(
        Command::new(env!("CARGO_BIN_EXE_grit-eval"))
            .args(["--compare"])
            .arg(&out)
            .arg(dir.path().join("model/eval/direct"))
            .arg("--grid")
            .arg(dir.path().join("grid.png")),
    );
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("| overall | accuracy % |"), "{table}");
    // Eight shared items, two 224-px cells a row.
    let grid = image::open(dir.path().join("grid.png")).unwrap();
    assert!(
        grid.width() > 2 * 224 && grid.height() > 8 * 224,
        "{}x{}",
        grid.width(),
        grid.height()
    );
}
