//! Vision-language models for grounded reasoning, written once against burn's backend
//! abstraction: Qwen2.5-VL and InternVL3, their weight loading from HF checkpoints, and
//! generation.

pub mod backend;
pub mod error;
pub mod generate;
pub mod internvl3;
pub mod kv_cache;
pub mod nn;
pub mod qwen2_5_vl;
pub mod vlm;
pub mod weights;

pub use error::{Error, Result};
pub use vlm::{Family, Prompt, Vlm};
