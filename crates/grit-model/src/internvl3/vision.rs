//! InternViT (class token, absolute position embeddings, pre-norm blocks with layer scale), the
//! 0.5 pixel shuffle and the `mlp1` projector, with transformers' module names.
//!
//! Every tile is an independent image: attention never crosses tiles, so tiles are the batch.

use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::config::{InternVl3Config, PROJECTOR_NORM_EPS, VisionConfig};
use crate::nn::{AttentionMask, LayerNorm, RmsNorm, RmsNormConfig, grouped_attention, linear};

/// `Conv2d` with kernel = stride = one patch, stored as the checkpoint stores it.
#[derive(Module, Debug)]
pub struct Conv2dProjection<B: Backend> {
    /// `[hidden, channels, patch, patch]`
    pub weight: Param<Tensor<B, 4>>,
    pub bias: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    pub projection: Conv2dProjection<B>,
}

impl<B: Backend> PatchEmbeddings<B> {
    /// # Shapes
    /// - pixel_values: `[tiles, channels, h·patch, w·patch]` → `[tiles, h·w, hidden]`
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let [hidden, c, p, _] = self.projection.weight.dims();
        let [tiles, _, height, width] = pixel_values.dims();
        let (h, w) = (height / p, width / p);
        // One row per patch, its values in the kernel's (channel, y, x) order: the conv is a matmul.
        let patches = pixel_values
            .reshape([tiles, c, h, p, w, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([tiles * h * w, c * p * p]);
        let weight = self.projection.weight.val().reshape([hidden, c * p * p]);
        (patches.matmul(weight.transpose()) + self.projection.bias.val().unsqueeze()).reshape([
            tiles,
            h * w,
            hidden,
        ])
    }
}

#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// `[1, 1, hidden]`
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1 + grid², hidden]`: the class token's, then the patch grid's in raster order.
    pub position_embeddings: Param<Tensor<B, 3>>,
    pub patch_embeddings: PatchEmbeddings<B>,
}

impl<B: Backend> VisionEmbeddings<B> {
    /// # Shapes
    /// - pixel_values: `[tiles, channels, height, width]` → `[tiles, 1 + h·w, hidden]`
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let patch = self.patch_embeddings.projection.weight.dims()[2];
        let [tiles, _, height, width] = pixel_values.dims();
        let patches = self.patch_embeddings.forward(pixel_values);
        let hidden = patches.dims()[2];
        let cls = self.cls_token.val().expand([tiles, 1, hidden]);
        let x = Tensor::cat(vec![cls, patches], 1);
        x + self.positions(height / patch, width / patch)
    }

    /// The position embeddings for an `h × w` patch grid: as stored when it is the trained
    /// square grid, otherwise the patch part bicubically resampled as `F.interpolate(...,
    /// mode="bicubic", align_corners=False)` does (the class token's row is kept).
    ///
    /// # Shapes
    /// - output: `[1, 1 + h·w, hidden]`
    fn positions(&self, h: usize, w: usize) -> Tensor<B, 3> {
        let table = self.position_embeddings.val();
        let [_, rows, hidden] = table.dims();
        let side = ((rows - 1) as f64).sqrt().round() as usize;
        if h == side && w == side {
            return table;
        }
        let device = table.device();
        let cls = table.clone().narrow(1, 0, 1);
        // [side, side, hidden] → [hidden, side, side]; out = Wy · grid · Wxᵀ per channel.
        let grid = table
            .narrow(1, 1, side * side)
            .reshape([side, side, hidden])
            .permute([2, 0, 1]);
        let wy = Tensor::<B, 2>::from_data(bicubic_matrix(side, h), &device);
        let wx = Tensor::<B, 2>::from_data(bicubic_matrix(side, w), &device);
        let resized = wy
            .unsqueeze::<3>()
            .matmul(grid)
            .matmul(wx.transpose().unsqueeze::<3>());
        let patches = resized.permute([1, 2, 0]).reshape([1, h * w, hidden]);
        Tensor::cat(vec![cls, patches], 1)
    }
}

/// PyTorch's bicubic resampling of one axis (`upsample_bicubic2d`, `align_corners=False`) as a
/// dense `[output, input]` matrix: cubic convolution with `A = -0.75` over four taps around
/// `(i + 0.5) · in/out - 0.5`, clamped at the borders, computed in `f32` like the kernel.
fn bicubic_matrix(input: usize, output: usize) -> TensorData {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f32 / output as f32;
    let mut matrix = vec![0.0f32; output * input];
    for (i, row) in matrix.chunks_exact_mut(input).enumerate() {
        let source = scale * (i as f32 + 0.5) - 0.5;
        let floor = (source.floor() as i64).min(input as i64 - 1);
        let t = (source - floor as f32).clamp(0.0, 1.0);
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, weight) in weights.into_iter().enumerate() {
            let index = (floor - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            row[index] += weight;
        }
    }
    TensorData::new(matrix, [output, input])
}

#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub projection_layer: Linear<B>,
    /// Over the whole width, before the split into heads.
    pub q_norm: Option<RmsNorm<B>>,
    pub k_norm: Option<RmsNorm<B>>,
    pub num_heads: usize,
}

impl<B: Backend> VisionAttention<B> {
    /// # Shapes
    /// - x: `[tiles, seq, hidden]` → `[tiles, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [tiles, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let norm = |t: Tensor<B, 3>, n: &Option<RmsNorm<B>>| match n {
            Some(n) => n.forward(t),
            None => t,
        };
        let heads = |t: Tensor<B, 3>| {
            t.reshape([tiles, seq, self.num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let q = heads(norm(self.q_proj.forward(x.clone()), &self.q_norm));
        let k = heads(norm(self.k_proj.forward(x.clone()), &self.k_norm));
        let v = heads(self.v_proj.forward(x));
        let out = grouped_attention(q, k, v, AttentionMask::None)
            .swap_dims(1, 2)
            .reshape([tiles, seq, hidden]);
        self.projection_layer.forward(out)
    }
}

#[derive(Module, Debug)]
pub struct VisionMlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

#[derive(Module, Debug)]
pub struct VisionLayer<B: Backend> {
    pub layernorm_before: LayerNorm<B>,
    pub attention: VisionAttention<B>,
    /// Layer scale of the attention branch (`ls1` in the remote code).
    pub lambda_1: Param<Tensor<B, 1>>,
    pub layernorm_after: LayerNorm<B>,
    pub mlp: VisionMlp<B>,
    /// Layer scale of the MLP branch (`ls2`).
    pub lambda_2: Param<Tensor<B, 1>>,
}

impl<B: Backend> VisionLayer<B> {
    /// # Shapes
    /// - x: `[tiles, seq, hidden]` → same
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let attn = self
            .attention
            .forward(self.layernorm_before.forward(x.clone()));
        let x = x + attn * self.lambda_1.val().unsqueeze();
        let h = self.layernorm_after.forward(x.clone());
        let mlp = self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(h)));
        x + mlp * self.lambda_2.val().unsqueeze()
    }
}

#[derive(Module, Debug)]
pub struct VisionEncoder<B: Backend> {
    pub layer: Vec<VisionLayer<B>>,
}

#[derive(Module, Debug)]
pub struct VisionModel<B: Backend> {
    pub embeddings: VisionEmbeddings<B>,
    pub encoder: VisionEncoder<B>,
    /// Only without mean pooling (transformers' `use_mean_pooling: false`).
    pub layernorm: Option<LayerNorm<B>>,
}

impl<B: Backend> VisionModel<B> {
    /// The last hidden states, class token first.
    ///
    /// # Shapes
    /// - pixel_values: `[tiles, channels, height, width]` (sides multiples of the patch)
    /// - output: `[tiles, 1 + (height/patch)·(width/patch), hidden]`
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.embeddings.forward(pixel_values);
        let x = self
            .encoder
            .layer
            .iter()
            .fold(x, |x, layer| layer.forward(x));
        match &self.layernorm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }
}

/// `mlp1` of the remote code: LayerNorm, Linear, GELU, Linear.
#[derive(Module, Debug)]
pub struct MultiModalProjector<B: Backend> {
    pub layer_norm: LayerNorm<B>,
    pub linear_1: Linear<B>,
    pub linear_2: Linear<B>,
}

impl<B: Backend> MultiModalProjector<B> {
    /// # Shapes
    /// - x: `[..., 4·vision_hidden]` → `[..., text_hidden]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = self.linear_1.forward(self.layer_norm.forward(x));
        self.linear_2.forward(gelu(x))
    }
}

/// Pixel shuffle with ratio 0.5 (`ps_version` v2): each 2×2 block of patches becomes one token
/// whose channels are the block's top-left, top-right, bottom-left, bottom-right patches.
///
/// # Shapes
/// - x: `[tiles, h·w, hidden]` (patch grid in raster order, `h`, `w` even)
/// - output: `[tiles, (h/2)·(w/2), 4·hidden]`
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
    let [tiles, _, hidden] = x.dims();
    let s = InternVl3Config::SHUFFLE;
    x.reshape([tiles, h / s, s, w / s, s, hidden])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([tiles, (h / s) * (w / s), s * s * hidden])
}

impl VisionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionModel<B> {
        let hidden = self.hidden_size;
        let norm = || LayerNorm::new(hidden, self.layer_norm_eps, device);
        let qk_norm = || {
            self.use_qk_norm.then(|| {
                RmsNormConfig::new(hidden)
                    .with_eps(self.layer_norm_eps)
                    .init(device)
            })
        };
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| VisionLayer {
                layernorm_before: norm(),
                attention: VisionAttention {
                    q_proj: linear(hidden, hidden, self.attention_bias, device),
                    k_proj: linear(hidden, hidden, self.attention_bias, device),
                    v_proj: linear(hidden, hidden, self.attention_bias, device),
                    projection_layer: linear(hidden, hidden, true, device),
                    q_norm: qk_norm(),
                    k_norm: qk_norm(),
                    num_heads: self.num_attention_heads,
                },
                lambda_1: Initializer::Constant { value: 0.1 }.init([hidden], device),
                layernorm_after: norm(),
                mlp: VisionMlp {
                    fc1: linear(hidden, self.intermediate_size, true, device),
                    fc2: linear(self.intermediate_size, hidden, true, device),
                },
                lambda_2: Initializer::Constant { value: 0.1 }.init([hidden], device),
            })
            .collect();
        let grid = self.grid();
        VisionModel {
            embeddings: VisionEmbeddings {
                cls_token: normal.init([1, 1, hidden], device),
                position_embeddings: normal.init([1, 1 + grid * grid, hidden], device),
                patch_embeddings: PatchEmbeddings {
                    projection: Conv2dProjection {
                        weight: normal.init(
                            [hidden, self.num_channels, self.patch_size, self.patch_size],
                            device,
                        ),
                        bias: Initializer::Zeros.init([hidden], device),
                    },
                },
            },
            encoder: VisionEncoder { layer },
            layernorm: (!self.use_mean_pooling).then(norm),
        }
    }
}

impl InternVl3Config {
    pub fn init_projector<B: Backend>(&self, device: &B::Device) -> MultiModalProjector<B> {
        let s = Self::SHUFFLE;
        let merged = self.vision.hidden_size * s * s;
        let hidden = self.text.hidden_size;
        MultiModalProjector {
            layer_norm: LayerNorm::new(merged, PROJECTOR_NORM_EPS, device),
            linear_1: linear(merged, hidden, true, device),
            linear_2: linear(hidden, hidden, true, device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn bicubic_rows_sum_to_one_and_same_size_is_identity() {
        for (input, output) in [(8, 6), (32, 40), (4, 4), (3, 11)] {
            let m = bicubic_matrix(input, output).into_vec::<f32>().unwrap();
            for row in m.chunks(input) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
            }
            if input == output {
                for (i, row) in m.chunks(input).enumerate() {
                    assert!(row.iter().enumerate().all(|(j, &v)| v == f32::from(i == j)));
                }
            }
        }
    }

    #[test]
    fn pixel_shuffle_folds_two_by_two_blocks() {
        // A 2×4 grid of 1-channel patches numbered in raster order.
        let device = Default::default();
        let x = Tensor::<Cpu, 3>::from_data(
            TensorData::new((0..8).map(|v| v as f32).collect(), [1, 8, 1]),
            &device,
        );
        let out = pixel_shuffle(x, 2, 4)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        assert_eq!(out, vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
    }
}
