//! Vision-language models for grounded reasoning, written once against burn's backend
//! abstraction: the shared Qwen2 decoder, the Qwen2.5-VL and InternVL3 vision sides composed
//! over it, their weight loading from HF checkpoints, their processors, and generation.

pub mod backend;
pub mod composition;
pub mod error;
pub mod generate;
pub mod hf;
pub mod internvl3;
pub mod kv_cache;
pub mod nn;
pub mod processor;
pub mod qwen2;
pub mod qwen2_5_vl;
pub mod vlm;
pub mod weights;

pub use composition::VisionLanguage;
pub use error::{Error, Result};
pub use vlm::{Family, Prompt, Vlm, VlmConfig};
