//! Layers shared by the model families, named after their HF checkpoint keys.

use burn::config::Config;
use burn::module::{Initializer, Module, ModuleMapper, Param};
use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::{Error, Result};

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

/// Layer norm as PyTorch's `nn.LayerNorm` stores it (`weight`, `bias`):
/// `(x - mean) / sqrt(var + eps) · weight + bias`, with the biased variance.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub fn new(d_model: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d_model], device),
            bias: Initializer::Zeros.init([d_model], device),
            eps,
        }
    }

    /// # Shapes
    /// - x: `[..., d_model]` → `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let centered = x.clone() - x.mean_dim(D - 1);
        let inv_std = centered
            .clone()
            .square()
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        centered * inv_std * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
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

/// Causal mask over a left-padded batch that also hides the padding; a padding query still
/// sees itself so that no softmax row is empty.
///
/// # Shapes
/// - valid: `[batch · len]`, `true` for real tokens
/// - output: `[batch, 1, len, len]`
pub fn padding_mask<B: Backend>(
    valid: &[bool],
    batch: usize,
    len: usize,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let mut masked = Vec::with_capacity(batch * len * len);
    for valid in valid.chunks(len) {
        for i in 0..len {
            masked.extend((0..len).map(|j| j > i || (!valid[j] && i != j)));
        }
    }
    Tensor::from_data(TensorData::new(masked, [batch, 1, len, len]), device)
}

/// The mask of one decoding step (one new query per row) over `total` keys: the cached prompt
/// (whose left padding `prompt_valid` marks, `None` when no row is padded), then everything
/// decoded since.
pub fn step_mask<B: Backend>(
    prompt_valid: Option<&[Vec<bool>]>,
    total: usize,
    device: &B::Device,
) -> AttentionMask<B> {
    match prompt_valid {
        None => AttentionMask::None,
        Some(valid) => {
            let masked: Vec<bool> = valid
                .iter()
                .flat_map(|row| (0..total).map(move |j| j < row.len() && !row[j]))
                .collect();
            AttentionMask::Explicit(Tensor::from_data(
                TensorData::new(masked, [valid.len(), 1, 1, total]),
                device,
            ))
        }
    }
}

/// The embeddings with `features` written, row after row, over the positions `slots` marks:
/// how image features replace their placeholder tokens.
///
/// # Shapes
/// - embeds: `[batch, len, hidden]`, slots: `[batch · len]`
/// - features: `[n, hidden]` with `n` the number of `true` slots
pub fn scatter_rows<B: Backend>(
    embeds: Tensor<B, 3>,
    features: Tensor<B, 2>,
    slots: &[bool],
) -> Result<Tensor<B, 3>> {
    let [batch, len, hidden] = embeds.dims();
    let flat = batch * len;
    let wanted = slots.iter().filter(|&&s| s).count();
    if wanted != features.dims()[0] {
        return Err(Error::Input(format!(
            "{wanted} image tokens in the prompts, but the images give {} features",
            features.dims()[0]
        )));
    }
    // Select from [text rows; feature rows]: each slot takes the next feature.
    let mut next_feature = flat;
    let index: Vec<i64> = (0..flat)
        .map(|p| {
            if slots[p] {
                next_feature += 1;
                (next_feature - 1) as i64
            } else {
                p as i64
            }
        })
        .collect();
    let device = embeds.device();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [flat]), &device);
    Ok(
        Tensor::cat(vec![embeds.reshape([flat, hidden]), features], 0)
            .select(0, index)
            .reshape([batch, len, hidden]),
    )
}

/// Checks the target counts of [`target_logprobs`]: between 1 and `len - 1` per sequence.
pub fn check_targets(lens: &[usize], targets: &[usize]) -> Result<usize> {
    let width = targets.iter().copied().max().unwrap_or(0);
    if targets.len() != lens.len() || width == 0 || lens.iter().zip(targets).any(|(&l, &t)| t >= l)
    {
        return Err(Error::Input(format!(
            "each sequence needs between 1 and len - 1 target tokens, got {targets:?}"
        )));
    }
    Ok(width)
}

/// Log-probability (temperature 1) of the last `width` tokens of each left-padded sequence from
/// the final hidden states. The LM head runs on `chunk` positions at a time, so
/// `[batch, seq, vocab]` logits never exist at once.
///
/// # Shapes
/// - hidden: `[batch, len, hidden]`, ids: `[batch · len]`
/// - output: `[batch, width]`
pub fn target_logprobs<B: Backend>(
    hidden: Tensor<B, 3>,
    ids: &[u32],
    width: usize,
    chunk: usize,
    lm_head: impl Fn(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 2> {
    let [batch, len, _] = hidden.dims();
    let device = hidden.device();
    // The logits at position p predict the token at p + 1.
    let hidden = hidden.narrow(1, len - width - 1, width);
    let ids: Vec<i64> = ids
        .chunks(len)
        .flat_map(|row| row[len - width..].iter())
        .map(|&t| t as i64)
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, width]), &device);
    let chunk = chunk.max(1);
    let columns: Vec<Tensor<B, 2>> = (0..width)
        .step_by(chunk)
        .map(|start| {
            let n = chunk.min(width - start);
            let logits = lm_head(hidden.clone().narrow(1, start, n));
            log_softmax(logits, 2)
                .gather(2, ids.clone().narrow(1, start, n).unsqueeze_dim(2))
                .squeeze_dim::<2>(2)
        })
        .collect();
    Tensor::cat(columns, 1)
}
