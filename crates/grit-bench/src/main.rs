//! `grit-bench`: times our forward pass over a prompt and greedy decoding against HF
//! transformers on the same checkpoint, in one run, and prints both with their ratio.
//!
//! The transformers side runs `tools/fixtures/bench_hf.py` with the fixture venv's Python when
//! it exists (or `--python`).

// glibc returns large freed blocks to the OS and faults them back in on every forward pass.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Parser;
use grit_model::VisionLanguage;
use grit_model::backend::{BackendKind, OnBackend, dispatch};
use grit_model::generate::{Decoder, GenerationConfig, Sampling, argmax, generate};
use grit_model::qwen2_5_vl::{Prompt, Qwen2_5Vl};

#[derive(Parser, Debug, Clone)]
#[command(about = "Forward and decode speed of grit vs HF transformers on one checkpoint")]
struct Args {
    /// HF checkpoint directory.
    #[arg(long, default_value = "tests/fixtures/qwen2_5_vl/text_only")]
    model: PathBuf,
    /// Tokens of the prompt whose forward pass (prefill) is timed.
    #[arg(long, default_value_t = 256)]
    prompt_len: usize,
    /// Tokens decoded greedily after the prompt.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Timed runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Where tensors live: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// Python with torch + transformers; default: .venv-fixtures/bin/python if present.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Device for the transformers side (cpu or cuda).
    #[arg(long, default_value = "cpu")]
    hf_device: String,
    /// The transformers side of the benchmark.
    #[arg(long, default_value = "tools/fixtures/bench_hf.py")]
    hf_script: PathBuf,
}

#[derive(Debug)]
struct Timing {
    forward_ms: f64,
    decode_tokens_per_s: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

struct Bench<'a>(&'a Args);

impl OnBackend for Bench<'_> {
    type Output = anyhow::Result<Timing>;

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<Timing> {
        let args = self.0;
        let model = Qwen2_5Vl::<B>::load(&args.model, &device)?;
        // Ordinary text tokens: below every special id of the checkpoint.
        let first_special = model
            .config
            .image_token_id
            .min(model.config.vision_start_token_id);
        let ids = (0..args.prompt_len)
            .map(|i| (i as u32 * 7919 + 13) % first_special)
            .collect();
        let prompt = [Prompt {
            ids,
            images: Vec::new(),
        }];
        let sync = |t: burn::tensor::Tensor<B, 2>| {
            t.into_data();
        };

        let forward = || -> anyhow::Result<f64> {
            let start = Instant::now();
            model.forward(&prompt)?.into_data();
            Ok(start.elapsed().as_secs_f64() * 1e3)
        };
        forward()?;
        let forward_ms = median(
            (0..args.repeats)
                .map(|_| forward())
                .collect::<anyhow::Result<_>>()?,
        );

        // Decode speed: prefill untimed, then `new_tokens` greedy steps through the cache.
        let decode = || -> anyhow::Result<f64> {
            let (logits, mut state) = model.prefill(&prompt, args.new_tokens)?;
            sync(logits);
            let mut token = 0u32;
            let start = Instant::now();
            for _ in 0..args.new_tokens {
                let logits = model.step(&[token], &mut state);
                let row = logits
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .unwrap();
                token = argmax(&row);
            }
            Ok(args.new_tokens as f64 / start.elapsed().as_secs_f64())
        };
        decode()?;
        let decode_tokens_per_s = median(
            (0..args.repeats)
                .map(|_| decode())
                .collect::<anyhow::Result<_>>()?,
        );
        // The same path users take must also work end to end.
        let config = GenerationConfig {
            max_new_tokens: 4,
            sampling: Sampling::greedy(),
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            suppress_tokens: Vec::new(),
        };
        generate(&model, &prompt, &config, None, None)?;
        Ok(Timing {
            forward_ms,
            decode_tokens_per_s,
        })
    }
}

fn transformers(args: &Args, python: &Path) -> anyhow::Result<Timing> {
    let output = Command::new(python)
        .arg(&args.hf_script)
        .arg("--model")
        .arg(&args.model)
        .args(["--prompt-len", &args.prompt_len.to_string()])
        .args(["--new-tokens", &args.new_tokens.to_string()])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--device", &args.hf_device])
        .arg("--no-generate")
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "bench_hf.py failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .context("bench_hf.py printed nothing")?;
    let json: serde_json::Value = serde_json::from_str(line)?;
    let field = |name: &str| {
        json[name]
            .as_f64()
            .with_context(|| format!("{name} in {line}"))
    };
    Ok(Timing {
        forward_ms: field("forward_ms")?,
        decode_tokens_per_s: field("decode_tokens_per_s")?,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ours = dispatch(args.backend, Bench(&args))??;
    println!(
        "model {} | prompt {} tokens | decode {} tokens | median of {}",
        args.model.display(),
        args.prompt_len,
        args.new_tokens,
        args.repeats
    );
    println!("{:<28} {:>12} {:>16}", "", "forward ms", "decode tok/s");
    println!(
        "{:<28} {:>12.3} {:>16.1}",
        format!("grit ({})", args.backend),
        ours.forward_ms,
        ours.decode_tokens_per_s
    );
    let python = args
        .python
        .clone()
        .or_else(|| Some(PathBuf::from(".venv-fixtures/bin/python")).filter(|p| p.exists()));
    match python {
        Some(python) => {
            let hf = transformers(&args, &python)?;
            println!(
                "{:<28} {:>12.3} {:>16.1}",
                format!("transformers ({})", args.hf_device),
                hf.forward_ms,
                hf.decode_tokens_per_s
            );
            println!(
                "{:<28} {:>11.2}x {:>15.2}x",
                "grit speed-up",
                hf.forward_ms / ours.forward_ms,
                ours.decode_tokens_per_s / hf.decode_tokens_per_s
            );
        }
        None => {
            println!("(transformers side skipped: no .venv-fixtures; see tools/fixtures/README.md)")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_grit_bench_has_help() {
        let missing = grit_cli::undocumented_args(&super::Args::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
