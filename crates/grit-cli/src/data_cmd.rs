//! `grit data`: tools for GRIT JSONL data files. `grit data check FILE… --images DIR…` lists
//! every problem (malformed lines, missing or unreadable images, inverted boxes, boxes outside
//! the image, `width` / `height` that disagree with the image) as `file:line: kind: message`,
//! then the counts; it fails when anything is wrong.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use grit_data::dataset::{CheckOptions, DataSource, check};

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check JSONL data files against their images; exit non-zero when anything is wrong.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// JSONL data files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Image folders: one for all files, or one per file in the same order.
    #[arg(long, required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Decode every image fully instead of reading only its header (slower, catches truncated
    /// files).
    #[arg(long)]
    pub decode: bool,
    /// Pixels a box may exceed the image by before it counts as outside.
    #[arg(long, default_value_t = 0.0)]
    pub box_tolerance: f64,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `grit data` subcommand, writing its report to `out`. `Ok(false)` when the data has
/// problems; `Err` when the command itself cannot run (bad arguments, a failed write).
pub fn run(args: &DataArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    match &args.command {
        DataCommand::Check(args) => run_check(args, out),
    }
}

fn run_check(args: &CheckArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let sources = DataSource::pair(&args.files, &args.images)?;
    let options = CheckOptions {
        decode: args.decode,
        box_tolerance: args.box_tolerance,
    };
    let report = check(&sources, &options);
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        for problem in &report.problems {
            writeln!(out, "{problem}")?;
        }
        writeln!(
            out,
            "{} file(s), {} line(s), {} sample(s), {} image(s) read: {} problem(s)",
            report.files,
            report.lines,
            report.samples,
            report.images,
            report.problems.len()
        )?;
        for (kind, count) in &report.counts {
            writeln!(out, "  {kind}: {count}")?;
        }
    }
    out.flush().context("writing the report")?;
    Ok(report.is_ok())
}
