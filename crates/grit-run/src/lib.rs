//! The run directory: the contract between the trainer, the evaluator and the viewer.
//!
//! ```text
//! RUN/
//!   .lock                    held by the one process writing the run (its pid and host inside)
//!   config.toml              the resolved configuration (what `--resume` reads)
//!   metrics.jsonl            one [`StepMetrics`] per optimizer step
//!   rollouts.jsonl           one [`RolloutRow`] per completion
//!   checkpoints/step-NNNNNN/ an HF model directory plus optimizer.safetensors and
//!                            trainer_state.json ([`TrainerState`])
//!   eval/<name>/             samples.jsonl ([`EvalRow`] per item), summary.json, summary.md
//!   report.json, report.md   [`Report`]: held-out results before and after GRPO-GR
//!   demo/                    the demo's data, tokenizer, models and sft_metrics.jsonl
//!                            ([`SftMetrics`])
//! ```
//!
//! Every file is either appended one whole line at a time or replaced by a rename, so a crash
//! (or `kill -9`) leaves at worst a half line at the end of a JSONL file, which readers skip
//! and `--resume` cuts, and never a half checkpoint. A failed write (a full disk) is an error
//! naming the file, and whatever it had half written is taken back.

mod dir;
mod files;
mod lock;
mod schema;

pub use dir::{RunDir, TOKENIZER_FILES, copy_tokenizer_files, relative_to};
pub use files::{JsonlWriter, read_jsonl, truncate_jsonl, write_atomic};
pub use lock::RunLock;
pub use schema::{EvalRow, Report, RolloutBox, RolloutRow, SftMetrics, StepMetrics, TrainerState};
