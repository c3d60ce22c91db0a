//! `grit-train`: GRPO-GR on a Qwen2.5-VL or InternVL3 checkpoint, or, with no arguments, the laptop demo.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use grit_model::backend::{BackendKind, dispatch};
use grit_run::{RunDir, write_atomic};
use grit_train::config::{DEFAULT_CONFIG, RunConfig};
use grit_train::pipeline::{Pipeline, Stage};
use grit_train::plan::{self, HubPreset};
use grit_train::progress::Progress;

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
    /// Held-out JSONL files for the before/after evaluation, comma-separated.
    #[arg(long, value_delimiter = ',', global = true)]
    heldout: Vec<PathBuf>,
    /// Image folders of the held-out files: one per file, or one for all.
    #[arg(long, value_delimiter = ',', global = true)]
    heldout_images: Vec<PathBuf>,
    /// The run directory (default: the config's `out`).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Where tensors live: cpu, wgpu or cuda (default: the config's `backend`).
    #[arg(long, global = true)]
    backend: Option<BackendKind>,
    /// GRPO-GR optimizer steps (default: the config's `[grpo] steps`).
    #[arg(long, global = true)]
    steps: Option<usize>,
    /// Seed of the data order, sampling and the demo (default: the config's `seed`).
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
    /// Print the memory one GRPO-GR step needs per device (weights, gradients, optimizer state,
    /// reference, rollout KV cache, activations) for --model, a hub preset or the demo's model,
    /// and whether it fits --gpu-memory.
    Plan {
        /// A hub model's config written into the project, instead of --model.
        #[arg(long, value_enum)]
        preset: Option<HubPreset>,
        /// The device's memory, e.g. 80GB (binary: an 80 GB card holds 80 GiB).
        #[arg(long, value_parser = plan::parse_memory)]
        gpu_memory: Option<u64>,
    },
}

fn main() {
    // Under a file-size limit (`ulimit -f`) a write past it then fails with an error naming the
    // file, which the trainer reports, instead of the signal killing the process mid-write.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
                config.backend = backend;
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
    if let Some(Command::Plan { preset, gpu_memory }) = args.command {
        return print_plan(&config, preset, gpu_memory);
    }
    if let Some(Command::Synth) = args.command {
        let splits = config.demo.splits(config.seed)?;
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
    run.create()?;
    let _lock = run.lock("grit-train")?;
    if !resume {
        run.ensure_fresh()?;
        write_atomic(&run.config(), config.to_toml().as_bytes())?;
    }
    let stage = match args.command {
        Some(Command::Sft) => Stage::WarmStart,
        _ => Stage::Full,
    };
    let mut progress = Progress::new(a.quiet);
    progress.note(&format!("run directory: {}", run.root.display()));
    dispatch(
        config.backend,
        Pipeline {
            config: &config,
            run: &run,
            resume,
            stage,
            progress: &mut progress,
        },
    )?
}

/// `grit-train plan`: the step's memory per device, and what makes it fit.
fn print_plan(
    config: &RunConfig,
    preset: Option<HubPreset>,
    gpu_memory: Option<u64>,
) -> anyhow::Result<()> {
    let mut config = config.clone();
    let (model, name) = match (preset, &config.model) {
        (Some(preset), _) => (preset.config()?, preset.name().to_owned()),
        (None, Some(dir)) => {
            if config.data.max_pixels.is_none() {
                config.data.max_pixels = Some(
                    grit_data::preprocess::PreprocessConfig::from_checkpoint_dir(dir)?.max_pixels,
                );
            }
            (
                grit_model::VlmConfig::from_dir(dir)?,
                dir.display().to_string(),
            )
        }
        (None, None) => {
            let vocab = config.demo.vocab_size;
            (
                config.demo.model_config(vocab, [0, 1, 2]),
                "the demo's model".to_owned(),
            )
        }
    };
    let memory = plan::plan(&config, &model, &name);
    print!("{memory}");
    if let Some(budget) = gpu_memory {
        let gib = |n: u64| n as f64 / (1u64 << 30) as f64;
        let total = memory.total();
        if total <= budget {
            println!(
                "\nfits in {:.0} GiB ({:.2} GiB free)",
                gib(budget),
                gib(budget - total)
            );
        } else {
            println!(
                "\ndoes not fit in {:.0} GiB: {:.2} GiB over",
                gib(budget),
                gib(total - budget)
            );
            match plan::fitting_settings(&config, &model, budget) {
                Some(changes) => println!("it fits with: {}", changes.join(", ")),
                None => println!(
                    "no batch setting makes it fit: weights, gradients, optimizer state and reference alone need {:.2} GiB in f32",
                    gib(memory.fixed())
                ),
            }
        }
    }
    Ok(())
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
        config.backend = backend;
    }
    if let Some(steps) = a.steps {
        config.grpo.steps = steps;
    }
    if let Some(seed) = a.seed {
        config.seed = seed;
    }
    config.data.skip_bad_lines |= a.skip_bad_lines;
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_grit_train_has_help() {
        let missing = grit_cli::undocumented_args(&super::Args::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
