//! `grit-train`: GRPO-GR on a Qwen2.5-VL or InternVL3 checkpoint, or, with no arguments, the laptop demo.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use grit_model::backend::{BackendKind, dispatch};
use grit_train::config::{DEFAULT_CONFIG, RunConfig};
use grit_train::pipeline::{Pipeline, Stage};
use grit_train::progress::Progress;
use grit_train::rundir::{RunDir, write_atomic};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "grit-train",
    about = "Train grounded visual reasoning with GRPO-GR. Without arguments: the laptop demo \
             (configs/shapes-tiny.toml) on CPU."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A TOML run config (default: the embedded configs/shapes-tiny.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// An HF checkpoint directory (Qwen2.5-VL or InternVL3, told by its config.json) to start from.
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// Training JSONL files (GRIT schema), comma-separated.
    #[arg(long, value_delimiter = ',', global = true)]
    data: Vec<PathBuf>,
    /// Image folders: one per data file, or one for all.
    #[arg(long, value_delimiter = ',', global = true)]
    images: Vec<PathBuf>,
    /// Held-out JSONL files for the before/after evaluation.
    #[arg(long, value_delimiter = ',', global = true)]
    heldout: Vec<PathBuf>,
    #[arg(long, value_delimiter = ',', global = true)]
    heldout_images: Vec<PathBuf>,
    /// The run directory.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[arg(long, global = true)]
    backend: Option<BackendKind>,
    #[arg(long, global = true)]
    steps: Option<usize>,
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// Skip malformed data lines (with a warning) instead of stopping.
    #[arg(long, global = true)]
    skip_bad_lines: bool,
    /// Continue the run in this directory from its newest checkpoint, with its config.
    #[arg(long, global = true)]
    resume: Option<PathBuf>,
    /// No progress output.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Only the demo's warm start: synthetic data, tokenizer, small model, SFT on grounded traces.
    Sft,
    /// Write the synthetic shapes data set (train and held-out JSONL + images) to --out.
    Synth,
}

fn main() {
    let args = Args::parse();
    if let Err(err) = run(args) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.run;
    let (config, run, resume) = match &a.resume {
        Some(dir) => {
            let run = RunDir::new(dir);
            let mut config = RunConfig::load(&run.config())?;
            if let Some(backend) = a.backend {
                config.backend = backend.to_string();
            }
            (config, run, true)
        }
        None => {
            let mut config = match &a.config {
                Some(path) => RunConfig::load(path)?,
                None => RunConfig::parse(DEFAULT_CONFIG, "configs/shapes-tiny.toml")?,
            };
            apply_overrides(&mut config, a);
            let run = RunDir::new(&config.out);
            (config, run, false)
        }
    };
    if let Some(Command::Synth) = args.command {
        let demo = &config.demo;
        let splits = grit_data::synthetic::splits(
            &demo.shapes,
            config.seed,
            demo.train_samples,
            demo.heldout_samples,
        );
        for (items, split) in [(&splits.train, "train"), (&splits.heldout, "heldout")] {
            let source = grit_data::synthetic::write_split(items, &run.root, split)?;
            println!(
                "{} ({} items, images in {})",
                source.file.display(),
                items.len(),
                source.images.display()
            );
        }
        return Ok(());
    }
    if !resume {
        run.ensure_fresh()?;
    }
    run.create()?;
    if !resume {
        write_atomic(&run.config(), config.to_toml().as_bytes())
            .with_context(|| format!("writing {}", run.config().display()))?;
    }
    let backend: BackendKind = config.backend.parse()?;
    let stage = match args.command {
        Some(Command::Sft) => Stage::WarmStart,
        _ => Stage::Full,
    };
    let mut progress = Progress::new(a.quiet);
    progress.note(&format!("run directory: {}", run.root.display()));
    dispatch(
        backend,
        Pipeline {
            config: &config,
            run: &run,
            resume,
            stage,
            progress: &mut progress,
        },
    )?
}

fn apply_overrides(config: &mut RunConfig, a: &RunArgs) {
    if let Some(model) = &a.model {
        config.model = Some(model.clone());
    }
    if !a.data.is_empty() {
        config.data.train = a.data.clone();
        config.data.train_images = a.images.clone();
    }
    if !a.heldout.is_empty() {
        config.data.heldout = a.heldout.clone();
        config.data.heldout_images = a.heldout_images.clone();
    }
    if let Some(out) = &a.out {
        config.out = out.clone();
    }
    if let Some(backend) = a.backend {
        config.backend = backend.to_string();
    }
    if let Some(steps) = a.steps {
        config.grpo.steps = steps;
    }
    if let Some(seed) = a.seed {
        config.seed = seed;
    }
    config.data.skip_bad_lines |= a.skip_bad_lines;
}
