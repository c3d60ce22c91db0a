//! A whole run, top-down: resolve the model and data (building the laptop demo's when no model is
//! given), evaluate the starting policy, train with GRPO-GR, evaluate again, and write the
//! before/after report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::Backend;
use grit_data::completion::BoxFrame;
use grit_data::dataset::DataSource;
use grit_data::hub::ImageProcessor;
use grit_data::preprocess::internvl::TileConfig;
use grit_data::prompt::internvl::IMG_CONTEXT;
use grit_data::prompt::{ChatTokenizer, PromptStyle};
use grit_data::synthetic::{self, Item};
use grit_model::backend::OnBackend;
use grit_model::processor::Processor;
use grit_model::weights::StoreDtype;
use grit_model::{Vlm, VlmConfig};
use grit_run::{JsonlWriter, Report, RunDir, copy_tokenizer_files, write_atomic};
use tokenizers::Tokenizer;

use crate::config::{DemoConfig, DemoFamily, RunConfig};
use crate::data::{Example, derive_seed, prepare, sources};
use crate::evaluate::markdown_table;
use crate::grid;
use crate::progress::Progress;
use crate::sft::{Demonstration, warm_start};
use crate::trainer::{Setup, run_eval, train};

/// What to do in a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Everything: (demo warm start,) evaluation, GRPO-GR, evaluation, report.
    Full,
    /// Only the demo's data, tokenizer, model and supervised warm start.
    WarmStart,
}

pub struct Pipeline<'a> {
    pub config: &'a RunConfig,
    pub run: &'a RunDir,
    pub resume: bool,
    pub stage: Stage,
    pub progress: &'a mut Progress,
}

impl OnBackend for Pipeline<'_> {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        run::<B>(self, &device)
    }
}

fn run<B: Backend>(p: Pipeline<'_>, device: &B::Device) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = p.config;
    let progress = p.progress;
    let (initial_model, train_sources, heldout_sources, warm_start_seconds) = match &config.model {
        Some(model) => (
            model.clone(),
            sources(&config.data.train, &config.data.train_images)?,
            sources(&config.data.heldout, &config.data.heldout_images)?,
            None,
        ),
        None => {
            let t = Instant::now();
            let demo = demo::<B>(config, p.run, device, progress)?;
            (
                demo.model,
                vec![demo.train],
                vec![demo.heldout],
                Some(t.elapsed().as_secs_f64()),
            )
        }
    };
    if p.stage == Stage::WarmStart {
        progress.note(&format!("warm-started model: {}", initial_model.display()));
        return Ok(());
    }

    let processor = Processor::from_dir(&initial_model, &config.processor_options())?;
    let style = config.grpo.prompt;
    let skip = config.data.skip_bad_lines;
    let train_examples = prepare(&train_sources, skip, &processor, style)?;
    let heldout = prepare(&heldout_sources, skip, &processor, style)?;
    let rewards = config.reward_config()?;
    let mut judge = config
        .judge
        .build(rewards.mode, Some(&p.run.judge_cache()))?;
    let setup = Setup {
        config,
        run: p.run,
        initial_model: &initial_model,
        processor: &processor,
        train: &train_examples,
        heldout: &heldout,
        rewards: &rewards,
    };

    let mut eval_seconds = 0.0;
    let mut evaluate = |model: &Path, name: &str, progress: &mut Progress| {
        if heldout.is_empty() {
            return anyhow::Ok(None);
        }
        let t = Instant::now();
        let model = Vlm::<B>::load(model, device)?;
        let summary = run_eval(&setup, &model, judge.as_mut(), name, progress)?;
        eval_seconds += t.elapsed().as_secs_f64();
        progress.note(&format!(
            "held-out evaluation `{name}`:\n{}",
            markdown_table(&summary)
        ));
        Ok(Some(summary))
    };
    let before = evaluate(&initial_model, "before", progress)?;
    let grpo_started = Instant::now();
    let mut train_judge = config
        .judge
        .build(rewards.mode, Some(&p.run.judge_cache()))?;
    let last = train::<B>(&setup, train_judge.as_mut(), device, p.resume, progress)?;
    progress.finish();
    let grpo_seconds = grpo_started.elapsed().as_secs_f64();
    let after = evaluate(&last, "after", progress)?;

    let report = Report {
        before,
        after,
        warm_start_seconds,
        grpo_seconds,
        eval_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(
        &p.run.report_json(),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let grid = write_grid(p.run)?;
    let text = report_markdown(&report, grid);
    write_atomic(&p.run.report_md(), text.as_bytes())?;
    progress.note(&text);
    Ok(())
}

/// Writes the before/after grid of the two evaluations' first items; its file name, relative to
/// report.md, when there was one.
fn write_grid(run: &RunDir) -> anyhow::Result<Option<String>> {
    let before = grid::read_items(&run.eval("before"))?;
    let after = grid::read_items(&run.eval("after"))?;
    match grid::before_after_grid(&before, &after, grid::GRID_ITEMS)? {
        Some(image) => {
            let path = run.report_grid();
            write_atomic(&path, &grid::png(&image)?)?;
            Ok(path.file_name().map(|n| n.to_string_lossy().into_owned()))
        }
        None => Ok(None),
    }
}

fn report_markdown(report: &Report, grid: Option<String>) -> String {
    let mut out = String::from("# Run report\n\n");
    for (name, summary) in [
        ("Before GRPO-GR", &report.before),
        ("After GRPO-GR", &report.after),
    ] {
        if let Some(summary) = summary {
            out.push_str(&format!("## {name}\n\n{}\n", markdown_table(summary)));
        }
    }
    if let Some(grid) = grid {
        out.push_str(&format!(
            "## Held-out items\n\nBefore GRPO-GR on the left, after on the right: ground truth \
             in white, the model's boxes in magenta, numbered in the order it wrote them; the bar \
             under each image is green for a right answer, red for a wrong one.\n\n\
             ![held-out items before and after GRPO-GR]({grid})\n\n"
        ));
    }
    if let Some(s) = report.warm_start_seconds {
        out.push_str(&format!("Warm start (data, tokenizer, SFT): {s:.0} s\n"));
    }
    out.push_str(&format!(
        "GRPO-GR: {:.0} s; evaluation: {:.0} s; total: {:.0} s\n",
        report.grpo_seconds, report.eval_seconds, report.total_seconds
    ));
    out
}

/// The demo's inputs, written under `RUN/demo/`.
struct Demo {
    /// The warm-started model: GRPO-GR's initial policy and reference.
    model: PathBuf,
    train: DataSource,
    heldout: DataSource,
}

/// Synthetic shapes, a tokenizer trained on their prompts and traces, a small model of the
/// configured family sized for it, and the supervised warm start. A finished warm start (resume) is reused as it is.
fn demo<B: Backend>(
    config: &RunConfig,
    run: &RunDir,
    device: &B::Device,
    progress: &mut Progress,
) -> anyhow::Result<Demo> {
    let dir = run.demo();
    let demo = &config.demo;
    let data_dir = dir.join("data");
    let base = dir.join("base");
    let sft_dir = dir.join("sft");
    let source = |split: &str| DataSource {
        file: data_dir.join(format!("{split}.jsonl")),
        images: data_dir.join("images"),
    };
    // A finished warm start (renamed into place last) means its data was written whole: resuming
    // reuses both rather than drawing thousands of images again.
    if sft_dir.join("model.safetensors").is_file()
        && source("train").file.is_file()
        && source("heldout").file.is_file()
    {
        progress.note(&format!("reusing the warm start in {}", sft_dir.display()));
        return Ok(Demo {
            model: sft_dir,
            train: source("train"),
            heldout: source("heldout"),
        });
    }
    let splits = demo.splits(config.seed)?;
    let train = synthetic::write_split(&splits.train, &data_dir, "train")?;
    let heldout = synthetic::write_split(&splits.heldout, &data_dir, "heldout")?;
    let mut tokenizer =
        synthetic::build_tokenizer(&synthetic::tokenizer_corpus(&splits.train), demo.vocab_size);
    if demo.family == DemoFamily::InternVl3 {
        synthetic::add_internvl_tokens(&mut tokenizer);
    }
    let model_config = demo_model_config(demo, &tokenizer)?;
    // The processor takes the demo's square images whole: unresized, or as one tile.
    let qwen = synthetic::unresized(demo.shapes.image_size);
    let tiles = match &model_config {
        VlmConfig::InternVl3(c) => TileConfig {
            tile_size: c.vision.image_size,
            tokens_per_tile: c.tokens_per_tile(),
            ..TileConfig::default()
        },
        VlmConfig::Qwen2_5Vl(_) => TileConfig::default(),
    };
    let image_processor = match demo.family {
        DemoFamily::Qwen2_5Vl => ImageProcessor::Qwen2_5Vl(&qwen),
        DemoFamily::InternVl3 => ImageProcessor::InternVl3(&tiles),
    };
    synthetic::write_tokenizer_dir(&base, &tokenizer, image_processor)?;
    let chat = ChatTokenizer::from_dir(&base)?;
    B::seed(device, derive_seed(config.seed, "init", 0));
    let model = model_config.init::<B>(device);
    model.save(&base, StoreDtype::F32)?;
    progress.note(&format!(
        "demo: {} train / {} held-out images, tokenizer of {} tokens, {} in {}",
        splits.train.len(),
        splits.heldout.len(),
        model.vocab_size(),
        model.family().name(),
        base.display()
    ));

    let processor = Processor::from_dir(&base, &config.processor_options())?;
    let examples = prepare(
        std::slice::from_ref(&train),
        false,
        &processor,
        PromptStyle::Grit,
    )?;
    let demonstrations = demonstrations(&splits.train, &examples, &chat)?;
    let model = model.trainable();
    let mut log = JsonlWriter::append_to(&dir.join("sft_metrics.jsonl"))?;
    let model = warm_start(
        model,
        &demonstrations,
        &config.sft,
        config.seed,
        progress,
        &mut |m| log.write(m),
    )?;
    // Written whole into a staging folder, then renamed: a warm start is either there or not.
    let staging = dir.join("sft.partial");
    model.valid().save(&staging, StoreDtype::F32)?;
    copy_tokenizer_files(&base, &staging)?;
    std::fs::rename(&staging, &sft_dir)
        .with_context(|| format!("moving the warm start into {}", sft_dir.display()))?;
    Ok(Demo {
        model: sft_dir,
        train,
        heldout,
    })
}

/// Each training item's trace, tokenized, ending with `<|im_end|>`; `examples` are the items'
/// lines in the written file, in the same order.
fn demonstrations<'a>(
    items: &[Item],
    examples: &'a [Example],
    tokenizer: &ChatTokenizer,
) -> anyhow::Result<Vec<Demonstration<'a>>> {
    anyhow::ensure!(
        items.len() == examples.len(),
        "one example per generated item"
    );
    let im_end = crate::rollout::im_end_id(tokenizer);
    items
        .iter()
        .zip(examples)
        .map(|(item, example)| {
            let (width, height) = match example.frame {
                BoxFrame::ProcessedPixels { processed } => (processed.width, processed.height),
                BoxFrame::Normalized1000 => (1000, 1000),
            };
            let scale = [
                f64::from(width) / f64::from(example.original.width),
                f64::from(height) / f64::from(example.original.height),
            ];
            let mut completion = tokenizer.encode(&synthetic::grounded_trace(item, scale))?;
            completion.push(im_end);
            Ok(Demonstration {
                example,
                completion,
            })
        })
        .collect()
}

/// The demo's model: its family and size over the tokenizer's vocabulary and image tokens.
fn demo_model_config(demo: &DemoConfig, tokenizer: &Tokenizer) -> anyhow::Result<VlmConfig> {
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .with_context(|| format!("the demo tokenizer has no {token}"))
    };
    let image_tokens = match demo.family {
        DemoFamily::Qwen2_5Vl => [
            id("<|image_pad|>")?,
            id("<|vision_start|>")?,
            id("<|vision_end|>")?,
        ],
        DemoFamily::InternVl3 => [id(IMG_CONTEXT)?; 3],
    };
    let config = demo.model_config(tokenizer.get_vocab_size(true), image_tokens);
    config.validate()?;
    Ok(config)
}
