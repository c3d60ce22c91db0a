//! GRPO-GR training (spec §5): rollouts, rewards and advantages, the loss with its options,
//! AdamW, run directories with exact resume, held-out evaluation, and the laptop demo
//! (synthetic shapes, a small model and a supervised warm start).

pub mod config;
pub mod data;
pub mod evaluate;
pub mod grid;
pub mod loss;
pub mod optim;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod rollout;
pub mod sft;
pub mod trainer;
