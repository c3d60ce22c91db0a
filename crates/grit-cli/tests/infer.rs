//! `grit-infer` end to end on a tiny random Qwen2.5-VL with the real Qwen vocabulary and chat
//! template: the text is gibberish, so the test checks structure, frames and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use grit_data::preprocess::smart_resize;
use grit_data::prompt::ChatTokenizer;
use grit_data::synthetic::add_internvl_tokens;
use grit_model::backend::Cpu;
use grit_model::internvl3::InternVl3Config;
use grit_model::qwen2_5_vl::Qwen2_5VlConfig;
use grit_model::weights::StoreDtype;

fn tokenizer_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer")
}

/// A checkpoint directory: random tiny weights over Qwen2.5's 151,936-token vocabulary with the
/// real special-token ids, plus the tokenizer files.
fn tiny_checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Qwen2_5VlConfig::tiny()
        .init::<Cpu>(&Default::default())
        .save(dir.path(), StoreDtype::Bf16)
        .unwrap();
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
        "generation_config.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(tokenizer_fixture().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// A tiny random InternVL3 (448-px tiles of 256 tokens) with the Qwen2.5 tokenizer plus
/// InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>`, which take the ids InternVL3's own tokenizer
/// gives them (151665–151667).
fn tiny_internvl_checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    InternVl3Config::tiny()
        .init::<Cpu>(&Default::default())
        .save(dir.path(), StoreDtype::Bf16)
        .unwrap();
    for file in ["tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(tokenizer_fixture().join(file), dir.path().join(file)).unwrap();
    }
    let mut tokenizer = ChatTokenizer::from_dir(tokenizer_fixture())
        .unwrap()
        .tokenizer()
        .clone();
    add_internvl_tokens(&mut tokenizer);
    assert_eq!(tokenizer.token_to_id("<IMG_CONTEXT>"), Some(151_667));
    tokenizer
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    dir
}

/// A photo-sized test image: gradients with a few solid shapes.
fn photo(dir: &Path) -> PathBuf {
    let image = image::RgbImage::from_fn(1920, 1080, |x, y| {
        let in_box = (300..700).contains(&x) && (200..600).contains(&y);
        let in_disc = (x as i64 - 1400).pow(2) + (y as i64 - 700).pow(2) < 200 * 200;
        match (in_box, in_disc) {
            (true, _) => image::Rgb([220, 30, 30]),
            (_, true) => image::Rgb([30, 30, 220]),
            _ => image::Rgb([(x / 8) as u8, (y / 5) as u8, 128]),
        }
    });
    let path = dir.join("photo.png");
    image.save(&path).unwrap();
    path
}

/// Runs `grit-infer --model M --image I --question Q` plus `extra`.
fn ask(model: &Path, image: &Path, question: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grit-infer"))
        .arg("--model")
        .arg(model)
        .arg("--image")
        .arg(image)
        .args(["--question", question])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_question_about_a_photo_runs_end_to_end() {
    let model = tiny_checkpoint();
    let work = tempfile::tempdir().unwrap();
    let image = photo(work.path());
    let annotated = work.path().join("annotated.png");
    let output = ask(
        model.path(),
        &image,
        "How many red squares are there?",
        &[
            "--max-new-tokens",
            "12",
            "--out",
            annotated.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // 1920×1080 under GRIT's 200,704-pixel cap.
    let (h, w) = smart_resize(1080, 1920, 28, 3136, 200_704).unwrap();
    assert!(h * w <= 200_704 && w > h);
    assert_eq!(
        report["original_size"],
        serde_json::json!({"width": 1920, "height": 1080})
    );
    assert_eq!(
        report["processed_size"],
        serde_json::json!({"width": w, "height": h})
    );
    assert_eq!(report["family"], "Qwen2.5-VL");
    // The chat template and the question around (h/28)·(w/28) image tokens.
    let prompt_tokens = report["prompt_tokens"].as_u64().unwrap() as usize;
    assert!(prompt_tokens > (h / 28) * (w / 28) + 60, "{prompt_tokens}");
    let tokens = report["completion_tokens"].as_u64().unwrap();
    assert!((1..=12).contains(&tokens), "{tokens}");
    let finish = report["finish_reason"].as_str().unwrap();
    assert!(
        ["length", "eos", "stop_string"].contains(&finish),
        "{finish}"
    );
    if finish == "length" {
        assert_eq!(tokens, 12);
    }
    assert!(report["completion"].is_string());
    assert!(report["boxes"].is_array());
    let written = image::open(&annotated).unwrap();
    assert_eq!((written.width(), written.height()), (1920, 1080));
}

#[test]
fn an_internvl3_checkpoint_is_told_by_its_config_and_tiled() {
    let model = tiny_internvl_checkpoint();
    let work = tempfile::tempdir().unwrap();
    let image = photo(work.path());
    let output = ask(
        model.path(),
        &image,
        "How many red squares are there?",
        &["--max-new-tokens", "6", "--json"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["family"], "InternVL3");
    // 16:9 with at most 2 tiles: a 2×1 grid of 448-px tiles, plus the thumbnail.
    assert_eq!(
        report["processed_size"],
        serde_json::json!({"width": 896, "height": 448})
    );
    let prompt_tokens = report["prompt_tokens"].as_u64().unwrap();
    assert!(
        (3 * 256 + 40..3 * 256 + 200).contains(&prompt_tokens),
        "{prompt_tokens}"
    );
    assert!(
        !report["completion"]
            .as_str()
            .unwrap()
            .contains("<IMG_CONTEXT>")
    );
}

#[test]
fn streaming_prints_the_reasoning_then_a_summary() {
    let model = tiny_checkpoint();
    let work = tempfile::tempdir().unwrap();
    let image = photo(work.path());
    let output = ask(
        model.path(),
        &image,
        "Is the disc right of the square?",
        &[
            "--max-new-tokens",
            "6",
            "--temperature",
            "0.9",
            "--seed",
            "3",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\nanswer: "), "{stdout}");
    let (h, w) = smart_resize(1080, 1920, 28, 3136, 200_704).unwrap();
    let frames = format!("boxes in original pixels (1920×1080; the model saw {w}×{h})");
    assert!(stdout.contains(&frames), "{stdout}");
    assert!(
        stdout.contains("completion tokens, finished by"),
        "{stdout}"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let image = photo(work.path());
    let missing = work.path().join("no-such-model");
    let output = ask(&missing, &image, "?", &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such-model") && stderr.contains("config.json"),
        "{stderr}"
    );

    let model = tiny_checkpoint();
    let not_an_image = work.path().join("notes.png");
    std::fs::write(&not_an_image, "this is text").unwrap();
    let output = ask(model.path(), &not_an_image, "?", &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("notes.png"), "{stderr}");

    std::fs::remove_file(model.path().join("tokenizer.json")).unwrap();
    let output = ask(model.path(), &image, "?", &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
}
