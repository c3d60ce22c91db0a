//! Layers shared by the model families, named after their HF checkpoint keys.

use burn::config::Config;
use burn::module::{Initializer, Module, ModuleMapper, Param};
use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

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

/// The gated MLP of Qwen2 blocks: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct SwiGluMlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> SwiGluMlp<B> {
    pub fn new(hidden: usize, intermediate: usize, bias: bool, device: &B::Device) -> Self {
        Self {
            gate_proj: linear(hidden, intermediate, bias, device),
            up_proj: linear(hidden, intermediate, bias, device),
            down_proj: linear(intermediate, hidden, bias, device),
        }
    }

    /// # Shapes
    /// - x: `[..., hidden]` → `[..., hidden]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
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

/// Repairs what burn loses when a module moves between a backend and its autodiff wrapper
/// (`valid`, `from_inner`): every `Linear` weight gets back the save/load mappers of
/// [`linear`]'s column-major layout (without them an export writes `[in, out]` instead of the
/// checkpoint's `[out, in]`), and, going to autodiff, every parameter is marked as requiring
/// gradients (weights loaded on a plain backend carry `false`).
pub struct RestoreParams {
    containers: Vec<String>,
    require_grad: bool,
}

impl RestoreParams {
    pub fn apply<B: Backend, M: Module<B>>(module: M, require_grad: bool) -> M {
        module.map(&mut Self {
            containers: Vec::new(),
            require_grad,
        })
    }
}

impl<B: Backend> ModuleMapper<B> for RestoreParams {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.containers.push(format!("{container_type}.{name}"));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let param = param.set_require_grad(self.require_grad);
        // The derive enters each field with its struct's name: `Struct:Linear` + `weight`.
        if D == 2 && self.containers.last().map(String::as_str) == Some("Struct:Linear.weight") {
            param
                .save_mapper(|t| t.swap_dims(0, 1))
                .load_mapper(|t| t.swap_dims(0, 1))
        } else {
            param
        }
    }
}

/// cos/sin of a rotary embedding, laid out exactly like the tensors they rotate so that
/// applying them is plain element-wise work on contiguous memory.
#[derive(Clone, Debug)]
pub struct Rotary<B: Backend> {
    /// `[batch, seq, heads, head_dim]`
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
    /// `rotate_half` as a signed permutation matrix, `[1, 1, head_dim, head_dim]`: each output
    /// column has a single ±1, so the product is exact.
    rotate_half: Tensor<B, 4>,
}

impl<B: Backend> Rotary<B> {
    /// `angles` holds `head_dim / 2` angles per (batch, seq) row; as in HF, the full-width
    /// table is the angles twice over (`cat(freqs, freqs)`).
    pub fn new(angles: &[f32], batch: usize, seq: usize, heads: usize, device: &B::Device) -> Self {
        let half = angles.len() / (batch * seq);
        let head_dim = 2 * half;
        let mut cos = Vec::with_capacity(batch * seq * heads * head_dim);
        let mut sin = Vec::with_capacity(batch * seq * heads * head_dim);
        for row in angles.chunks(half) {
            for _ in 0..heads {
                for _ in 0..2 {
                    cos.extend(row.iter().map(|a| a.cos()));
                    sin.extend(row.iter().map(|a| a.sin()));
                }
            }
        }
        let mut rotate = vec![0.0f32; head_dim * head_dim];
        for j in 0..half {
            // out[j] = -x[j + half], out[j + half] = x[j]
            rotate[(j + half) * head_dim + j] = -1.0;
            rotate[j * head_dim + j + half] = 1.0;
        }
        let shape = [batch, seq, heads, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
            rotate_half: Tensor::from_data(
                TensorData::new(rotate, [1, 1, head_dim, head_dim]),
                device,
            ),
        }
    }

    /// `x·cos + rotate_half(x)·sin`, where `rotate_half([a, b]) = [-b, a]`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, heads, head_dim]` → same
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let rotated = x.clone().matmul(self.rotate_half.clone());
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// Which key positions each query may attend to.
#[derive(Clone, Debug)]
pub enum AttentionMask<B: Backend> {
    /// Every query sees every key.
    None,
    /// Queries are the last `q_len` of the `kv_len` positions and see keys up to their own.
    Causal,
    /// `[batch, 1, q_len, kv_len]`, `true` where attention is not allowed.
    Explicit(Tensor<B, 4, Bool>),
}

/// Query rows per causal block: blocks above the diagonal are skipped, not masked.
const CAUSAL_BLOCK: usize = 64;

/// Scaled dot-product attention where each key/value head serves `heads / kv_heads` query
/// heads (GQA).
///
/// # Shapes
/// - q: `[batch, heads, q_len, head_dim]`
/// - k, v: `[batch, kv_heads, kv_len, head_dim]`
/// - output: `[batch, heads, q_len, head_dim]`
pub fn grouped_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: AttentionMask<B>,
) -> Tensor<B, 4> {
    let [batch, heads, q_len, head_dim] = q.dims();
    let [_, kv_heads, kv_len, _] = k.dims();
    let group = heads / kv_heads;
    match mask {
        AttentionMask::Causal => {
            let k = repeat_kv(k, group);
            let v = repeat_kv(v, group);
            let causal = AttentionModuleOptions {
                is_causal: true,
                ..Default::default()
            };
            let blocks: Vec<Tensor<B, 4>> = (0..q_len)
                .step_by(CAUSAL_BLOCK)
                .map(|start| {
                    let rows = CAUSAL_BLOCK.min(q_len - start);
                    let keys = kv_len - q_len + start + rows;
                    attention(
                        q.clone().narrow(2, start, rows),
                        k.clone().narrow(2, 0, keys),
                        v.clone().narrow(2, 0, keys),
                        None,
                        None,
                        causal,
                    )
                })
                .collect();
            Tensor::cat(blocks, 2)
        }
        // One key/value head per group: stack the group's query heads along the sequence axis
        // instead of repeating keys.
        AttentionMask::None | AttentionMask::Explicit(_) => {
            let q = q.reshape([batch, kv_heads, group * q_len, head_dim]);
            let mask = match mask {
                AttentionMask::Explicit(m) => {
                    let kv_len = m.dims()[3];
                    Some(
                        m.repeat_dim(2, group)
                            .expand([batch, kv_heads, group * q_len, kv_len]),
                    )
                }
                _ => None,
            };
            attention(q, k, v, mask, None, AttentionModuleOptions::default())
                .reshape([batch, heads, q_len, head_dim])
        }
    }
}

/// # Shapes
/// - x: `[batch, kv_heads, seq, head_dim]` → `[batch, kv_heads · group, seq, head_dim]`
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, group: usize) -> Tensor<B, 4> {
    if group == 1 {
        return x;
    }
    let [batch, kv_heads, seq, head_dim] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([batch, kv_heads, group, seq, head_dim])
        .reshape([batch, kv_heads * group, seq, head_dim])
}
