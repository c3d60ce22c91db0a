//! Writes a randomly initialized toy Qwen2.5-VL (`Qwen2_5VlConfig::tiny`) as an HF checkpoint,
//! to try the whole pipeline without downloading weights (add a tokenizer: the committed
//! `tests/fixtures/tokenizer/*` files fit it).
//!
//! `cargo run --example tiny_checkpoint -p grit-cli -- OUT_DIR`

use grit_model::backend::Cpu;
use grit_model::qwen2_5_vl::Qwen2_5VlConfig;
use grit_model::weights::StoreDtype;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .ok_or("usage: tiny_checkpoint OUT_DIR")?;
    Qwen2_5VlConfig::tiny()
        .init::<Cpu>(&Default::default())
        .save(out.as_ref(), StoreDtype::Bf16)?;
    Ok(())
}
