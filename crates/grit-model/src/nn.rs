//! Layers shared by the model families, named after their HF checkpoint keys.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

/// Root-mean-square norm as HF writes it: `weight * x / sqrt(mean(x²) + eps)`.
#[derive(Config, Debug)]
pub struct RmsNormConfig {
    pub d_model: usize,
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl RmsNormConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> RmsNorm<B> {
        RmsNorm {
            weight: Initializer::Ones.init([self.d_model], device),
            eps: self.eps,
        }
    }
}

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// # Shapes
    /// - x: `[..., d_model]` → `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let inv_rms = x
            .clone()
            .square()
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        x * inv_rms * self.weight.val().unsqueeze()
    }
}

/// A linear layer stored as PyTorch stores it (`[out, in]`), so checkpoints load and export
/// without copies; the matmul reads the transposed view.
pub fn linear<B: Backend>(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_layout(LinearLayout::Col)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

/// `x·cos + rotate_half(x)·sin`, where `rotate_half([a, b]) = [-b, a]` over the last dimension.
///
/// # Shapes
/// - x: `[batch, heads, seq, head_dim]`
/// - cos, sin: broadcastable to x, e.g. `[batch, 1, seq, head_dim]`
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos + rotated * sin
}

/// Scaled dot-product attention where each key/value head serves `heads / kv_heads` query
/// heads (GQA), without materializing repeated keys: the query heads of one group are stacked
/// along the sequence axis instead.
///
/// # Shapes
/// - q: `[batch, heads, q_len, head_dim]`
/// - k, v: `[batch, kv_heads, kv_len, head_dim]`
/// - mask: `[batch, 1, q_len, kv_len]`, `true` where attention is not allowed
/// - output: `[batch, heads, q_len, head_dim]`
pub fn grouped_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
) -> Tensor<B, 4> {
    let [batch, heads, q_len, head_dim] = q.dims();
    let [_, kv_heads, kv_len, _] = k.dims();
    let group = heads / kv_heads;
    let q = q.reshape([batch, kv_heads, group * q_len, head_dim]);
    let mask = mask.map(|m| {
        m.repeat_dim(2, group)
            .expand([batch, kv_heads, group * q_len, kv_len])
    });
    attention(q, k, v, mask, None, AttentionModuleOptions::default())
        .reshape([batch, heads, q_len, head_dim])
}
