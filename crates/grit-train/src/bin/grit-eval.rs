//! `grit-eval`: answer accuracy and grounding IoU of a checkpoint on GRIT test sets (spec §7),
//! greedy, each item once, resumable; or `--compare A B` of two evaluations.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::{Parser, ValueEnum};
use grit_data::metrics::{Aggregate, MetricsSummary};
use grit_data::preprocess::internvl::GRIT_MAX_TILES;
use grit_data::preprocess::{GRIT_MAX_PIXELS, GRIT_MIN_PIXELS};
use grit_data::prompt::PromptStyle;
use grit_data::rewards::{Mode, RewardConfig};
use grit_judge::{JudgeConfig, OpenAiJudgeConfig};
use grit_model::Vlm;
use grit_model::backend::{BackendKind, OnBackend, dispatch};
use grit_model::processor::{Processor, ProcessorOptions};
use grit_run::{RunDir, write_atomic};
use grit_train::data::{prepare, sources};
use grit_train::evaluate::{EvalSettings, evaluate, markdown_table};
use grit_train::grid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "grit-eval",
    about = "Evaluate a checkpoint on GRIT JSONL test sets: accuracy, grounding IoU, format"
)]
struct Args {
    /// An HF checkpoint directory, a run directory (its newest checkpoint), or a checkpoint
    /// inside one.
    #[arg(long, required_unless_present = "compare")]
    model: Option<PathBuf>,
    /// Test files (GRIT JSONL), comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "compare")]
    data: Vec<PathBuf>,
    /// Image folders: one per data file, or one for all.
    #[arg(long, value_delimiter = ',')]
    images: Vec<PathBuf>,
    /// The instruction after the question: grit (think, rethink, answer), direct (the bare
    /// question, zero-shot baseline judged on the whole response), sft (list the boxes, then
    /// answer), grit-icl / grit-icl-internvl (the official one-shot example, Qwen JSON boxes /
    /// InternVL `<ref><box>`).
    #[arg(long, default_value_t = PromptStyle::Grit)]
    prompt: PromptStyle,
    /// paper: the paper's evaluation (compat judge text and parsing, the OpenAI judge, Qwen2.5-VL
    /// at 3136–200704 pixels, InternVL3 at 2 tiles, greedy, 1000 tokens); flags given beside it
    /// win.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// rule (offline: exact match, numbers, yes/no) or openai (an OpenAI-compatible API)
    /// [default: rule].
    #[arg(long, value_enum)]
    judge: Option<JudgeKind>,
    /// For `--judge openai`: `[judge]` settings as TOML (base_url, model, api_key_env, cache…).
    #[arg(long)]
    judge_config: Option<PathBuf>,
    /// compat: the official judge question text and score parsing, images as the official
    /// evaluation loads them (and InternVL3 prompts without the assistant header); fixed: the
    /// repaired ones [default: fixed].
    #[arg(long)]
    mode: Option<Mode>,
    /// Qwen2.5-VL: the processed image's fewest pixels (default: the checkpoint's).
    #[arg(long)]
    min_pixels: Option<usize>,
    /// Qwen2.5-VL: the processed image's most pixels (default: the checkpoint's).
    #[arg(long)]
    max_pixels: Option<usize>,
    /// InternVL3: the most 448-px tiles per image (default: GRIT's 2).
    #[arg(long)]
    max_tiles: Option<usize>,
    /// Evaluate only the first N items of the files.
    #[arg(long)]
    limit: Option<usize>,
    /// Items generated together.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// The longest completion, in tokens.
    #[arg(long, default_value_t = 1000)]
    max_new_tokens: usize,
    /// Where tensors live: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// The evaluation's name (default: the data files' stems and the prompt style).
    #[arg(long)]
    name: Option<String>,
    /// Where to write (default: RUN/eval/NAME for a run, else MODEL/eval/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip malformed data lines (with a warning) instead of stopping.
    #[arg(long)]
    skip_bad_lines: bool,
    /// Print two evaluations (their directories or summary.json files) side by side.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// With --compare: also draw the first items both scored, A left and B right, with ground
    /// truth and the model's boxes, to this PNG file.
    #[arg(long, requires = "compare")]
    grid: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum JudgeKind {
    Rule,
    Openai,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Preset {
    Paper,
}

impl Args {
    /// Fills what the preset decides and no flag gave.
    fn apply_preset(&mut self) {
        let defaults = match self.preset {
            Some(Preset::Paper) => (
                Mode::Compat,
                JudgeKind::Openai,
                Some(GRIT_MIN_PIXELS),
                Some(GRIT_MAX_PIXELS),
                Some(GRIT_MAX_TILES),
            ),
            None => (Mode::Fixed, JudgeKind::Rule, None, None, None),
        };
        self.mode.get_or_insert(defaults.0);
        self.judge.get_or_insert(defaults.1);
        self.min_pixels = self.min_pixels.or(defaults.2);
        self.max_pixels = self.max_pixels.or(defaults.3);
        self.max_tiles = self.max_tiles.or(defaults.4);
    }
}

fn main() {
    if let Err(err) = run(Args::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(mut args: Args) -> anyhow::Result<()> {
    args.apply_preset();
    if let Some(pair) = &args.compare {
        let a = read_summary(&pair[0])?;
        let b = read_summary(&pair[1])?;
        print!("{}", comparison(&a, &b, &pair[0], &pair[1]));
        if let Some(out) = &args.grid {
            let (a, b) = (grid::read_items(&pair[0])?, grid::read_items(&pair[1])?);
            let image = grid::before_after_grid(&a, &b, grid::GRID_ITEMS)?.with_context(|| {
                format!(
                    "{} and {} share no item",
                    pair[0].display(),
                    pair[1].display()
                )
            })?;
            write_atomic(out, &grid::png(&image)?)?;
            println!("\nwrote {}", out.display());
        }
        return Ok(());
    }
    let given = args.model.clone().expect("clap requires --model");
    let (model, run) = resolve_model(&given)?;
    let style = args.prompt;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.data, style));
    let out = match (&args.out, &run) {
        (Some(out), _) => out.clone(),
        (None, Some(run)) => run.eval(&name),
        (None, None) => model.join("eval").join(&name),
    };
    let mode = args.mode.expect("set by apply_preset");
    let processor = Processor::from_dir(
        &model,
        &ProcessorOptions {
            min_pixels: args.min_pixels,
            max_pixels: args.max_pixels,
            max_tiles: args.max_tiles,
            mode,
        },
    )?;
    let mut examples = prepare(
        &sources(&args.data, &args.images)?,
        args.skip_bad_lines,
        &processor,
        style,
    )?;
    if let Some(limit) = args.limit {
        examples.truncate(limit);
    }
    let judge = match (args.judge.expect("set by apply_preset"), &args.judge_config) {
        (JudgeKind::Rule, _) => JudgeConfig::Rule,
        (JudgeKind::Openai, None) => JudgeConfig::Openai(OpenAiJudgeConfig::default()),
        (JudgeKind::Openai, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
    };
    let mut rewards = RewardConfig::new(mode);
    rewards.prompt_style = style;
    // Evaluation reports the judge's raw score (spec §7).
    rewards.binarize_judge = false;
    let started = Instant::now();
    let summary = dispatch(
        args.backend,
        Eval {
            model: &model,
            processor: &processor,
            examples: &examples,
            judge,
            judge_cache: run
                .as_ref()
                .map_or_else(|| out.join("judge-cache.jsonl"), RunDir::judge_cache),
            rewards: &rewards,
            settings: EvalSettings {
                max_new_tokens: args.max_new_tokens,
                style,
                batch: args.batch,
                grounding: Default::default(),
                paths_relative_to: None,
            },
            out: &out,
        },
    )??;
    let seconds = started.elapsed().as_secs_f64();
    println!("{}", markdown_table(&summary));
    println!(
        "{} items in {seconds:.1} s ({:.2} items/s); written to {}",
        examples.len(),
        examples.len() as f64 / seconds,
        out.display()
    );
    Ok(())
}

struct Eval<'a> {
    model: &'a Path,
    processor: &'a Processor,
    examples: &'a [grit_train::data::Example],
    judge: JudgeConfig,
    /// Fixed mode's judge replies: the run's, else beside the evaluation.
    judge_cache: PathBuf,
    rewards: &'a RewardConfig,
    settings: EvalSettings,
    out: &'a Path,
}

impl OnBackend for Eval<'_> {
    type Output = anyhow::Result<MetricsSummary>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let model = Vlm::<B>::load(self.model, &device)?;
        let mut judge = self
            .judge
            .build(self.rewards.mode, Some(&self.judge_cache))?;
        let bar = indicatif::ProgressBar::new(self.examples.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "eval {bar:30} {pos}/{len} [{elapsed_precise} < {eta}]",
            )
            .expect("valid template"),
        );
        let summary = evaluate(
            &model,
            self.processor,
            self.examples,
            judge.as_mut(),
            self.rewards,
            &self.settings,
            self.out,
            &mut |done| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        Ok(summary)
    }
}

/// A model directory (with `config.json`), a run directory (its newest checkpoint) or a
/// checkpoint of a run; returns the model and, for a run, the run.
fn resolve_model(path: &Path) -> anyhow::Result<(PathBuf, Option<RunDir>)> {
    let run_of = |dir: &Path| {
        dir.parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))
            .and_then(Path::parent)
            .map(RunDir::new)
    };
    if path.join("config.json").is_file() {
        return Ok((path.to_owned(), run_of(path)));
    }
    let run = RunDir::new(path);
    match run.list_checkpoints()?.pop() {
        Some((_, checkpoint)) => Ok((checkpoint, Some(run))),
        None => anyhow::bail!(
            "{}: neither a model directory (no config.json) nor a run with checkpoints",
            path.display()
        ),
    }
}

fn default_name(data: &[PathBuf], style: PromptStyle) -> String {
    let stems: Vec<String> = data
        .iter()
        .filter_map(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    format!("{}-{style}", stems.join("+"))
}

fn read_summary(path: &Path) -> anyhow::Result<MetricsSummary> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Reads one metric of an aggregate.
type Getter = fn(&Aggregate) -> Option<f64>;

/// Accuracy and IoU of A and B per dataset (and overall) with B − A in points.
fn comparison(a: &MetricsSummary, b: &MetricsSummary, name_a: &Path, name_b: &Path) -> String {
    let mut out = format!(
        "A = {}\nB = {}\n\n| dataset | metric | A | B | B − A |\n|---|---|---:|---:|---:|\n",
        name_a.display(),
        name_b.display()
    );
    let mut names: Vec<&String> = a.per_dataset.keys().chain(b.per_dataset.keys()).collect();
    names.sort();
    names.dedup();
    let empty = Aggregate::default();
    let rows = names
        .into_iter()
        .map(|n| {
            (
                n.as_str(),
                a.per_dataset.get(n).unwrap_or(&empty),
                b.per_dataset.get(n).unwrap_or(&empty),
            )
        })
        .chain(std::iter::once(("overall", &a.overall, &b.overall)));
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}", 100.0 * v));
    for (name, x, y) in rows {
        let metrics: [(&str, Getter); 4] = [
            ("accuracy %", |g| g.answer_accuracy),
            ("IoU %", |g| g.best_iou),
            ("Hungarian IoU %", |g| g.hungarian_iou),
            ("format %", |g| g.format_compliance),
        ];
        for (metric, get) in metrics {
            let delta = match (get(x), get(y)) {
                (Some(p), Some(q)) => format!("{:+.1}", 100.0 * (q - p)),
                _ => "–".to_owned(),
            };
            out.push_str(&format!(
                "| {name} | {metric} | {} | {} | {delta} |\n",
                pct(get(x)),
                pct(get(y))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_paper_preset_is_the_papers_evaluation_and_flags_win() {
        let parse = |args: &[&str]| {
            let mut args = super::Args::try_parse_from(
                ["grit-eval", "--model", "m", "--data", "d.jsonl"]
                    .iter()
                    .chain(args),
            )
            .unwrap();
            args.apply_preset();
            args
        };
        let paper = parse(&["--preset", "paper"]);
        assert_eq!(paper.mode, Some(super::Mode::Compat));
        assert_eq!(paper.judge, Some(super::JudgeKind::Openai));
        assert_eq!(
            (paper.min_pixels, paper.max_pixels, paper.max_tiles),
            (Some(3136), Some(200_704), Some(2))
        );
        assert_eq!(paper.max_new_tokens, 1000);
        let plain = parse(&[]);
        assert_eq!(plain.mode, Some(super::Mode::Fixed));
        assert_eq!(plain.judge, Some(super::JudgeKind::Rule));
        assert_eq!(plain.max_pixels, None);
        let flags_win = parse(&["--preset", "paper", "--judge", "rule", "--max-tiles", "6"]);
        assert_eq!(flags_win.judge, Some(super::JudgeKind::Rule));
        assert_eq!(flags_win.max_tiles, Some(6));
    }

    #[test]
    fn every_flag_of_grit_eval_has_help() {
        let missing = grit_cli::undocumented_args(&super::Args::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
