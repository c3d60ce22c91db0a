//! What the end-to-end trainer tests share.

/// The `[demo]` model sizes of a miniature demo run: a model that trains in well under a second
/// a step, big enough to exercise every part (GQA, a vision block, a tied head).
pub const MINIATURE_MODEL: &str = "vocab_size = 300
hidden_size = 32
intermediate_size = 64
layers = 1
heads = 2
kv_heads = 1
vision_hidden_size = 16
vision_depth = 1
vision_heads = 2";
