//! The Qwen2.5-VL vision tower: patch embedding, 2-D rotary, window / full attention blocks and
//! the 2×2 patch merger.
//!
//! Patches arrive in the processor's order: for each image, merge groups of 2×2 patches in
//! row-major order of the merged grid. Window blocks attend inside square windows of merged
//! tokens, so the sequence is permuted window by window before the blocks and restored after
//! the merger; full-attention blocks attend across each whole image.

use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::config::VisionConfig;
use crate::nn::{
    AttentionMask, RmsNorm, RmsNormConfig, Rotary, SwiGluMlp, grouped_attention, linear,
};

const VISION_ROPE_THETA: f32 = 10_000.0;
const NORM_EPS: f64 = 1e-6;

/// `Conv3d` with kernel = stride = one patch: a matmul over flattened patches.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// `[embed, channels, temporal, patch, patch]` as in the checkpoint.
    pub proj: Conv3dWeight<B>,
}

#[derive(Module, Debug)]
pub struct Conv3dWeight<B: Backend> {
    pub weight: Param<Tensor<B, 5>>,
}

impl<B: Backend> PatchEmbed<B> {
    /// # Shapes
    /// - pixel_values: `[patches, channels·temporal·patch·patch]` → `[patches, embed]`
    pub fn forward(&self, pixel_values: Tensor<B, 2>) -> Tensor<B, 2> {
        let [embed, c, t, p, q] = self.proj.weight.dims();
        let weight = self.proj.weight.val().reshape([embed, c * t * p * q]);
        pixel_values.matmul(weight.transpose())
    }
}

#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    pub num_heads: usize,
}

impl<B: Backend> VisionAttention<B> {
    /// # Shapes
    /// - x: `[seq, hidden]` → `[seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 2>,
        rope: &Rotary<B>,
        segments: &Segments<B>,
    ) -> Tensor<B, 2> {
        let [seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let qkv = self.qkv.forward(x);
        // Each of q, k, v as [1, seq, heads, head_dim].
        let part = |i: usize| {
            qkv.clone()
                .narrow(1, i * hidden, hidden)
                .reshape([1, seq, self.num_heads, head_dim])
        };
        let (q, k, v) = (rope.apply(part(0)), rope.apply(part(1)), part(2));
        let out = match segments {
            // Equal segments lie one after another: attend in a batch of segments, not over a
            // block-diagonal mask of the whole sequence.
            Segments::Equal(len) => {
                let batch = |t: Tensor<B, 4>| {
                    t.reshape([seq / len, *len, self.num_heads, head_dim])
                        .swap_dims(1, 2)
                };
                grouped_attention(batch(q), batch(k), batch(v), AttentionMask::None)
            }
            Segments::Masked(mask) => grouped_attention(
                q.swap_dims(1, 2),
                k.swap_dims(1, 2),
                v.swap_dims(1, 2),
                mask.clone(),
            ),
        };
        let out = out.swap_dims(1, 2).reshape([seq, hidden]);
        self.proj.forward(out)
    }
}

#[derive(Module, Debug)]
pub struct VisionBlock<B: Backend> {
    pub norm1: RmsNorm<B>,
    pub attn: VisionAttention<B>,
    pub norm2: RmsNorm<B>,
    pub mlp: SwiGluMlp<B>,
    /// Attends across the whole image instead of inside its window.
    pub full_attention: bool,
}

impl<B: Backend> VisionBlock<B> {
    fn forward(
        &self,
        x: Tensor<B, 2>,
        rope: &Rotary<B>,
        masks: &AttentionMasks<B>,
    ) -> Tensor<B, 2> {
        let segments = if self.full_attention {
            &masks.full
        } else {
            &masks.window
        };
        let attn = self
            .attn
            .forward(self.norm1.forward(x.clone()), rope, segments);
        let x = x + attn;
        let mlp = self.mlp.forward(self.norm2.forward(x.clone()));
        x + mlp
    }
}

/// `ln_q`, then the MLP over each 2×2 group of patches (`mlp.0`, GELU, `mlp.2`).
#[derive(Module, Debug)]
pub struct PatchMerger<B: Backend> {
    pub ln_q: RmsNorm<B>,
    pub mlp: MergerMlp<B>,
}

/// The checkpoint's `nn.Sequential(Linear, GELU, Linear)`: `fc1` is stored as `mlp.0`, `fc2` as
/// `mlp.2` (see [`super::module_path`]).
#[derive(Module, Debug)]
pub struct MergerMlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> PatchMerger<B> {
    /// # Shapes
    /// - x: `[patches, hidden]` → `[patches / merge², out_hidden]`
    fn forward(&self, x: Tensor<B, 2>, merge_unit: usize) -> Tensor<B, 2> {
        let [patches, hidden] = x.dims();
        let x = self
            .ln_q
            .forward(x)
            .reshape([patches / merge_unit, hidden * merge_unit]);
        self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    pub patch_embed: PatchEmbed<B>,
    pub blocks: Vec<VisionBlock<B>>,
    pub merger: PatchMerger<B>,
    pub spatial_merge_size: usize,
    pub window_size: usize,
    pub patch_size: usize,
}

impl VisionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTransformer<B> {
        let hidden = self.hidden_size;
        let norm = RmsNormConfig::new(hidden).with_eps(NORM_EPS);
        let merged = hidden * self.spatial_merge_size * self.spatial_merge_size;
        let blocks = (0..self.depth)
            .map(|i| VisionBlock {
                norm1: norm.init(device),
                attn: VisionAttention {
                    qkv: linear(hidden, 3 * hidden, true, device),
                    proj: linear(hidden, hidden, true, device),
                    num_heads: self.num_heads,
                },
                norm2: norm.init(device),
                mlp: SwiGluMlp::new(hidden, self.intermediate_size, true, device),
                full_attention: self.fullatt_block_indexes.contains(&i),
            })
            .collect();
        VisionTransformer {
            patch_embed: PatchEmbed {
                proj: Conv3dWeight {
                    weight: Initializer::Normal {
                        mean: 0.0,
                        std: 0.02,
                    }
                    .init(
                        [
                            hidden,
                            self.in_channels,
                            self.temporal_patch_size,
                            self.patch_size,
                            self.patch_size,
                        ],
                        device,
                    ),
                },
            },
            blocks,
            merger: PatchMerger {
                ln_q: norm.init(device),
                mlp: MergerMlp {
                    fc1: linear(merged, merged, true, device),
                    fc2: linear(merged, self.out_hidden_size, true, device),
                },
            },
            spatial_merge_size: self.spatial_merge_size,
            window_size: self.window_size,
            patch_size: self.patch_size,
        }
    }
}

impl<B: Backend> VisionTransformer<B> {
    /// Image features in the order the `<|image_pad|>` tokens appear.
    ///
    /// # Shapes
    /// - pixel_values: `[patches, channels·temporal·patch·patch]`
    /// - grids: one `[t, h, w]` per image, in patches; `Σ t·h·w = patches`
    /// - output: `[patches / merge², out_hidden]`
    pub fn forward(&self, pixel_values: Tensor<B, 2>, grids: &[[usize; 3]]) -> Tensor<B, 2> {
        let device = pixel_values.device();
        let layout = WindowLayout::new(grids, self.spatial_merge_size, self.merge_window());
        let unit = self.spatial_merge_size * self.spatial_merge_size;
        let hidden = self.patch_embed.proj.weight.dims()[0];

        let x = self.patch_embed.forward(pixel_values);
        let patch_order = index_tensor::<B>(&layout.patch_order(unit), &device);
        let x = x.select(0, patch_order);
        let heads = self.blocks[0].attn.num_heads;
        let rope = vision_rotary(
            &layout,
            grids,
            self.spatial_merge_size,
            heads,
            hidden / heads,
            &device,
        );
        let masks = AttentionMasks {
            window: segment_mask(&layout.window_segments(unit), &device),
            full: segment_mask(&layout.image_segments(grids), &device),
        };
        let x = self
            .blocks
            .iter()
            .fold(x, |x, block| block.forward(x, &rope, &masks));
        let merged = self.merger.forward(x, unit);
        merged.select(0, index_tensor::<B>(&layout.restore_order(), &device))
    }

    fn merge_window(&self) -> usize {
        self.window_size / self.spatial_merge_size / self.patch_size
    }
}

/// The window permutation of merged tokens, as `get_vision_window_index` builds it.
struct WindowLayout {
    /// Merged-token index (natural order) for each position of the windowed sequence.
    window_index: Vec<usize>,
    /// Merged tokens in each window, in order; empty windows are dropped.
    window_lengths: Vec<usize>,
}

impl WindowLayout {
    fn new(grids: &[[usize; 3]], merge: usize, window: usize) -> Self {
        let mut window_index = Vec::new();
        let mut window_lengths = Vec::new();
        let mut offset = 0;
        for &[t, h, w] in grids {
            let (mh, mw) = (h / merge, w / merge);
            // Like the reference: a grid that divides evenly still gets one (empty) padding row.
            let windows_h = (mh + window - mh % window) / window;
            let windows_w = (mw + window - mw % window) / window;
            for frame in 0..t {
                for wy in 0..windows_h {
                    for wx in 0..windows_w {
                        let before = window_index.len();
                        for y in wy * window..((wy + 1) * window).min(mh) {
                            for x in wx * window..((wx + 1) * window).min(mw) {
                                window_index.push(offset + (frame * mh + y) * mw + x);
                            }
                        }
                        let len = window_index.len() - before;
                        if len > 0 {
                            window_lengths.push(len);
                        }
                    }
                }
            }
            offset += t * mh * mw;
        }
        Self {
            window_index,
            window_lengths,
        }
    }

    /// Patch rows of the windowed sequence: each merged token brings its `unit` patches.
    fn patch_order(&self, unit: usize) -> Vec<usize> {
        self.window_index
            .iter()
            .flat_map(|&m| (0..unit).map(move |u| m * unit + u))
            .collect()
    }

    fn restore_order(&self) -> Vec<usize> {
        let mut restore = vec![0; self.window_index.len()];
        for (position, &m) in self.window_index.iter().enumerate() {
            restore[m] = position;
        }
        restore
    }

    /// Segment id of every patch of the windowed sequence for window attention.
    fn window_segments(&self, unit: usize) -> Vec<usize> {
        self.window_lengths
            .iter()
            .enumerate()
            .flat_map(|(i, &len)| std::iter::repeat_n(i, len * unit))
            .collect()
    }

    /// Segment id for full attention: one segment per frame of each image.
    fn image_segments(&self, grids: &[[usize; 3]]) -> Vec<usize> {
        grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .enumerate()
            .flat_map(|(i, len)| std::iter::repeat_n(i, len))
            .collect()
    }
}

/// The 2-D rotary embedding of the windowed sequence: each head's half-dimension holds the
/// patch row's angles, then the patch column's.
fn vision_rotary<B: Backend>(
    layout: &WindowLayout,
    grids: &[[usize; 3]],
    merge: usize,
    heads: usize,
    head_dim: usize,
    device: &B::Device,
) -> Rotary<B> {
    // (row, column) of every patch in the processor's order: merge groups, row-major.
    let mut positions = Vec::new();
    for &[t, h, w] in grids {
        for _ in 0..t {
            for by in 0..h / merge {
                for bx in 0..w / merge {
                    for dy in 0..merge {
                        for dx in 0..merge {
                            positions.push((by * merge + dy, bx * merge + dx));
                        }
                    }
                }
            }
        }
    }
    let spatial_dim = head_dim / 2;
    let inv_freq: Vec<f32> = (0..spatial_dim)
        .step_by(2)
        .map(|i| 1.0 / VISION_ROPE_THETA.powf(i as f32 / spatial_dim as f32))
        .collect();
    let mut angles = Vec::with_capacity(positions.len() * spatial_dim);
    for patch in layout.patch_order(merge * merge) {
        let (row, col) = positions[patch];
        for coord in [row, col] {
            angles.extend(inv_freq.iter().map(|&f| coord as f32 * f));
        }
    }
    Rotary::new(&angles, 1, positions.len(), heads, device)
}

struct AttentionMasks<B: Backend> {
    window: Segments<B>,
    full: Segments<B>,
}

/// Which patches attend to each other: consecutive segments of one length, or any segments
/// through a mask.
pub enum Segments<B: Backend> {
    Equal(usize),
    Masked(AttentionMask<B>),
}

/// Keeps attention inside each segment of consecutive equal ids.
fn segment_mask<B: Backend>(segments: &[usize], device: &B::Device) -> Segments<B> {
    let n = segments.len();
    let count = segments.last().map_or(0, |&last| last + 1);
    if count > 0 && n.is_multiple_of(count) {
        let len = n / count;
        if segments.iter().enumerate().all(|(i, &s)| s == i / len) {
            return Segments::Equal(len);
        }
    }
    let blocked: Vec<bool> = segments
        .iter()
        .flat_map(|a| segments.iter().map(move |b| a != b))
        .collect();
    Segments::Masked(AttentionMask::Explicit(Tensor::from_data(
        TensorData::new(blocked, [1, 1, n, n]),
        device,
    )))
}

fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::Distribution;

    #[test]
    fn equal_segments_attend_in_a_batch_exactly_like_the_mask() {
        let device = Default::default();
        let ids = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        let Segments::<Cpu>::Equal(3) = segment_mask(&ids, &device) else {
            panic!("three equal segments");
        };
        let Segments::<Cpu>::Masked(mask) = segment_mask(&[0, 0, 1], &device) else {
            panic!("unequal segments need a mask");
        };
        assert!(matches!(mask, AttentionMask::Explicit(_)));

        let attn = VisionAttention::<Cpu> {
            qkv: crate::nn::linear(8, 24, true, &device),
            proj: crate::nn::linear(8, 8, true, &device),
            num_heads: 2,
        };
        let angles: Vec<f32> = (0..9 * 2).map(|i| i as f32 * 0.1).collect();
        let rope = Rotary::new(&angles, 1, 9, 2, &device);
        let x = Tensor::<Cpu, 2>::random([9, 8], Distribution::Normal(0.0, 1.0), &device);
        let blocked: Vec<bool> = ids
            .iter()
            .flat_map(|a| ids.iter().map(move |b| a != b))
            .collect();
        let masked = Segments::Masked(AttentionMask::Explicit(Tensor::from_data(
            TensorData::new(blocked, [1, 1, 9, 9]),
            &device,
        )));
        let batched = attn.forward(x.clone(), &rope, &Segments::Equal(3));
        let reference = attn.forward(x, &rope, &masked);
        let diff = (batched - reference).abs().max().into_scalar();
        assert!(diff < 1e-5, "max |Δ| = {diff}");
    }
}
