//! A tiny InternVL3 through the whole pipeline on synthetic shapes: built, warm-started, trained
//! with GRPO-GR for a few steps, evaluated, checkpointed in transformers' layout; then
//! `grit-eval` and `--resume` take the run's checkpoint as they take a Qwen2.5-VL one.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{MINIATURE_MODEL, read_rows, run};

const STEPS: usize = 3;

fn config(out: &Path) -> String {
    format!(
        r#"
out = "{}"
seed = 5
[demo]
family = "internvl3"
train_samples = 16
heldout_samples = 4
{MINIATURE_MODEL}
[sft]
steps = 3
batch = 4
[grpo]
steps = {STEPS}
prompts_per_step = 2
group_size = 3
micro_batch = 3
rollout_batch = 6
temperature = 1.0
top_k = 0
max_new_tokens = 10
learning_rate = 1e-2
beta = 0.05
logprob_chunk = 4
freeze_vision = true
[rewards]
mode = "compat"
[eval]
batch = 4
max_new_tokens = 10
[checkpoint]
every = 0
"#,
        out.display()
    )
}

#[test]
fn a_tiny_internvl3_trains_evaluates_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    let config_path = out.join("run.toml");
    std::fs::write(&config_path, config(&out)).unwrap();
    run(
        env!("CARGO_BIN_EXE_grit-train"),
        &["--config", config_path.to_str().unwrap(), "--quiet"],
    );
    let model_type = |dir: &Path| -> Value {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["model_type"].clone()
    };
    assert_eq!(model_type(&out.join("demo/base")), "internvl");

    let metrics = read_rows(&out.join("metrics.jsonl"));
    assert_eq!(metrics.len(), STEPS);
    for m in &metrics {
        for key in ["loss", "kl", "grad_norm", "total_reward"] {
            assert!(m[key].as_f64().unwrap().is_finite(), "{key}: {m}");
        }
    }
    assert!(
        metrics
            .iter()
            .any(|m| m["grad_norm"].as_f64().unwrap() > 0.0)
    );

    // 112-px shapes become one 112-px tile; boxes are read in 0–1000.
    let rollouts = read_rows(&out.join("rollouts.jsonl"));
    assert_eq!(rollouts.len(), STEPS * 2 * 3);
    for r in &rollouts {
        assert_eq!(
            r["processed_size"],
            serde_json::json!({"width": 112, "height": 112})
        );
    }

    // The checkpoint is transformers' InternVL layout, and loads back as InternVL3.
    let last = out.join(format!("checkpoints/step-{STEPS:06}"));
    assert_eq!(model_type(&last), "internvl");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(report["before"].is_object() && report["after"].is_object());
    // The report shows the held-out items before and after as one picture beside it.
    let grid = image::open(out.join("report-grid.png")).unwrap();
    assert!(
        grid.width() > 2 * 112 && grid.height() > 112,
        "{}x{}",
        grid.width(),
        grid.height()
    );
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("](report-grid.png)"), "{markdown}");

    let data = out.join("demo/data");
    let eval = run(
        env!("CARGO_BIN_EXE_grit-eval"),
        &[
            "--model",
            last.to_str().unwrap(),
            "--data",
            data.join("heldout.jsonl").to_str().unwrap(),
            "--images",
            data.join("images").to_str().unwrap(),
            "--max-new-tokens",
            "6",
            "--mode",
            "compat",
            "--out",
            dir.path().join("eval").to_str().unwrap(),
        ],
    );
    assert!(eval.contains("| overall | 4 |"), "{eval}");

    // Two more steps from the last checkpoint.
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        &format!("steps = {STEPS}\nprompts_per_step"),
        &format!("steps = {}\nprompts_per_step", STEPS + 2),
    );
    std::fs::write(out.join("config.toml"), config).unwrap();
    let log = run(
        env!("CARGO_BIN_EXE_grit-train"),
        &["--resume", out.to_str().unwrap()],
    );
    assert!(
        log.contains(&format!("resuming after step {STEPS} ")),
        "{log}"
    );
    assert_eq!(read_rows(&out.join("metrics.jsonl")).len(), STEPS + 2);

    compat_draws_a_fresh_jpeg_for_each_pass(&out.join("demo"));
}

/// Compat InternVL3 re-encodes every tile as JPEG for generation and again for the loss, as the
/// official trainer renders the prompt twice; fixed mode and evaluation use the clean tiles.
fn compat_draws_a_fresh_jpeg_for_each_pass(demo: &Path) {
    use grit_data::dataset::DataSource;
    use grit_data::prompt::PromptStyle;
    use grit_data::rewards::Mode;
    use grit_model::processor::{Processor, ProcessorOptions};
    use grit_train::data::{for_pass, prepare};

    let processor = |mode| {
        let options = ProcessorOptions {
            mode,
            ..ProcessorOptions::default()
        };
        Processor::from_dir(&demo.join("base"), &options).unwrap()
    };
    let (compat, fixed) = (processor(Mode::Compat), processor(Mode::Fixed));
    assert!(compat.augments() && !fixed.augments());
    let source = DataSource::pair(
        &[demo.join("data/train.jsonl")],
        &[demo.join("data/images")],
    )
    .unwrap();
    let pixels = |e: &grit_train::data::Example| match &e.prompt {
        grit_model::Prompt::InternVl3(p) => p.images[0].pixel_values.clone(),
        other => panic!("not an InternVL prompt: {other:?}"),
    };
    let examples = prepare(&source, false, &compat, PromptStyle::Grit).unwrap();
    let step: Vec<_> = examples.iter().take(2).collect();
    let rollout = for_pass(&step, &compat, PromptStyle::Grit, 1).unwrap();
    let loss = for_pass(&step, &compat, PromptStyle::Grit, 2).unwrap();
    let again = for_pass(&step, &compat, PromptStyle::Grit, 1).unwrap();
    for i in 0..2 {
        assert_ne!(pixels(&rollout[i]), pixels(&loss[i]));
        assert_ne!(pixels(&rollout[i]), pixels(step[i]));
        assert_eq!(pixels(&rollout[i]), pixels(&again[i]));
        assert_eq!(rollout[i].prompt.ids(), step[i].prompt.ids());
    }
    let fixed_examples = prepare(&source, false, &fixed, PromptStyle::Grit).unwrap();
    let fixed_step: Vec<_> = fixed_examples.iter().take(2).collect();
    let pass = for_pass(&fixed_step, &fixed, PromptStyle::Grit, 1).unwrap();
    assert!(
        pass.iter()
            .all(|e| matches!(e, std::borrow::Cow::Borrowed(_)))
    );
    assert_eq!(pixels(&pass[0]), pixels(step[0]));
}
