//! Qwen2.5-VL: the vision tower, the Qwen2 decoder with M-RoPE, and the LM head, loaded from an
//! unmodified HF checkpoint directory.

pub mod config;
pub mod positions;
pub mod text;
pub mod vision;

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

pub use config::{Qwen2_5VlConfig, TextConfig, VisionConfig};
pub use positions::{Positions, rope_index};

use crate::error::{Error, Result};
use crate::generate::Decoder;
use crate::kv_cache::KvCache;
use crate::nn::{check_targets, linear, scatter_rows, target_logprobs};
use crate::weights::{Checkpoint, StoreDtype, save_dir};
pub use text::DecodeState;
use text::TextModel;
use vision::VisionTransformer;

/// One image as the processor delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// `[t·h·w, channels·temporal·patch·patch]`, row-major.
    pub pixel_values: Vec<f32>,
    /// `[t, h, w]` in patches.
    pub grid: [usize; 3],
}

/// Token ids with `<|image_pad|>` already expanded, and the images those tokens stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub images: Vec<ImageInput>,
}

/// The module tree, with the field names of the HF checkpoint keys (transformers 5.x layout).
#[derive(Module, Debug)]
pub struct Qwen2_5VlForConditionalGeneration<B: Backend> {
    pub model: Qwen2_5VlModel<B>,
    /// `None` when tied to `model.language_model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
}

#[derive(Module, Debug)]
pub struct Qwen2_5VlModel<B: Backend> {
    pub visual: VisionTransformer<B>,
    pub language_model: TextModel<B>,
}

/// A ready-to-run Qwen2.5-VL: weights plus the configuration the forward pass needs.
#[derive(Module, Debug)]
pub struct Qwen2_5Vl<B: Backend> {
    pub config: Qwen2_5VlConfig,
    pub module: Qwen2_5VlForConditionalGeneration<B>,
}

impl Qwen2_5VlConfig {
    /// A randomly initialized model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Qwen2_5Vl<B> {
        let lm_head = (!self.tie_word_embeddings)
            .then(|| linear(self.text.hidden_size, self.text.vocab_size, false, device));
        Qwen2_5Vl {
            config: self.clone(),
            module: Qwen2_5VlForConditionalGeneration {
                model: Qwen2_5VlModel {
                    visual: self.vision.init(device),
                    language_model: self.text.init(device),
                },
                lm_head,
            },
        }
    }
}

/// The module path a stored key loads into: hub checkpoints from transformers 4.x use
/// `visual.*` and `model.*` where 5.x writes `model.visual.*` and `model.language_model.*`.
fn module_path(key: &str, tied: bool) -> Option<String> {
    if key.ends_with(".inv_freq") || (tied && key == "lm_head.weight") {
        return None;
    }
    let key = if let Some(rest) = key.strip_prefix("visual.") {
        format!("model.visual.{rest}")
    } else if let Some(rest) = key
        .strip_prefix("model.")
        .filter(|r| !r.starts_with("visual.") && !r.starts_with("language_model."))
    {
        format!("model.language_model.{rest}")
    } else {
        key.to_string()
    };
    Some(
        key.replace("merger.mlp.0.", "merger.mlp.fc1.")
            .replace("merger.mlp.2.", "merger.mlp.fc2."),
    )
}

/// The key a module path is stored under, as transformers' `save_pretrained` writes hub
/// checkpoints (`visual.*`, `model.*`, `lm_head.*`).
fn checkpoint_key(path: &str) -> String {
    let path = path
        .replace("merger.mlp.fc1.", "merger.mlp.0.")
        .replace("merger.mlp.fc2.", "merger.mlp.2.");
    if let Some(rest) = path.strip_prefix("model.visual.") {
        format!("visual.{rest}")
    } else if let Some(rest) = path.strip_prefix("model.language_model.") {
        format!("model.{rest}")
    } else {
        path
    }
}

/// A prompt batch left-padded to a common length.
struct Padded {
    batch: usize,
    len: usize,
    /// `[batch · len]`
    ids: Vec<u32>,
    valid: Vec<bool>,
    /// `[3][batch][len]`; padding positions are 0.
    positions: [Vec<Vec<i64>>; 3],
    next_position: Vec<i64>,
}

impl<B: Backend> Qwen2_5Vl<B> {
    /// Loads `config.json` and the safetensors weights of an HF checkpoint directory.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = Qwen2_5VlConfig::from_hf_file(&dir.join("config.json"))?;
        let checkpoint = Checkpoint::open(dir)?;
        let mut model = config.init::<B>(device);
        let tied = config.tie_word_embeddings;
        model.module = checkpoint
            .load(model.module, |key| module_path(key, tied), device)
            .map_err(|e| match e {
                Error::Mismatch(m) => Error::Mismatch(format!("{}: {m}", dir.display())),
                other => other,
            })?;
        Ok(model)
    }

    /// Writes `config.json` and `model.safetensors` in the hub layout, which [`Self::load`] and
    /// transformers both read.
    pub fn save(&self, dir: &Path, dtype: StoreDtype) -> Result<()> {
        save_dir(
            dir,
            &self.config.to_hf_json(),
            &self.module,
            checkpoint_key,
            dtype,
        )
    }

    pub fn device(&self) -> B::Device {
        self.module.model.language_model.device()
    }

    /// Merged image features, one row per `<|image_pad|>` token, images in order.
    ///
    /// # Shapes
    /// - output: `[Σ t·h·w / merge², hidden]`
    pub fn image_features(&self, images: &[&ImageInput]) -> Result<Tensor<B, 2>> {
        let patch_dim = self.config.vision.patch_dim();
        let mut pixels = Vec::new();
        let mut grids = Vec::with_capacity(images.len());
        for image in images {
            let [t, h, w] = image.grid;
            let merge = self.config.vision.spatial_merge_size;
            if image.pixel_values.len() != t * h * w * patch_dim || h % merge != 0 || w % merge != 0
            {
                return Err(Error::Input(format!(
                    "image grid {:?} needs {}×{patch_dim} pixel values with h, w multiples of {merge}, got {}",
                    image.grid,
                    t * h * w,
                    image.pixel_values.len()
                )));
            }
            pixels.extend_from_slice(&image.pixel_values);
            grids.push(image.grid);
        }
        let rows = pixels.len() / patch_dim;
        let pixels = Tensor::from_data(TensorData::new(pixels, [rows, patch_dim]), &self.device());
        Ok(self.module.model.visual.forward(pixels, &grids))
    }

    /// M-RoPE position ids of one prompt.
    pub fn positions(&self, prompt: &Prompt) -> Result<Positions> {
        let grids: Vec<[usize; 3]> = prompt.images.iter().map(|i| i.grid).collect();
        rope_index(
            &prompt.ids,
            self.config.image_token_id,
            &grids,
            self.config.vision.spatial_merge_size,
        )
    }

    fn pad(&self, prompts: &[Prompt]) -> Result<Padded> {
        let batch = prompts.len();
        let len = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        if len == 0 {
            return Err(Error::Input("empty prompt".into()));
        }
        let mut padded = Padded {
            batch,
            len,
            ids: Vec::with_capacity(batch * len),
            valid: Vec::with_capacity(batch * len),
            positions: Default::default(),
            next_position: Vec::with_capacity(batch),
        };
        for prompt in prompts {
            let pad = len - prompt.ids.len();
            let positions = self.positions(prompt)?;
            // Padding uses token 0: it is masked out, only its embedding row is read.
            padded
                .ids
                .extend(std::iter::repeat_n(0, pad).chain(prompt.ids.iter().copied()));
            padded.valid.extend(
                std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, prompt.ids.len())),
            );
            for (row, ids) in padded.positions.iter_mut().zip(&positions.rows) {
                row.push(
                    std::iter::repeat_n(0, pad)
                        .chain(ids.iter().copied())
                        .collect(),
                );
            }
            padded.next_position.push(positions.next());
        }
        Ok(padded)
    }

    /// Token embeddings with the image features written over the `<|image_pad|>` positions.
    fn embed(&self, prompts: &[Prompt], padded: &Padded) -> Result<Tensor<B, 3>> {
        let text = &self.module.model.language_model;
        let ids: Vec<i64> = padded.ids.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids, [padded.batch, padded.len]),
            &self.device(),
        );
        let embeds = text.embed(ids);
        let images: Vec<&ImageInput> = prompts.iter().flat_map(|p| &p.images).collect();
        if images.is_empty() {
            return Ok(embeds);
        }
        let features = self.image_features(&images)?;
        let slots: Vec<bool> = padded
            .valid
            .iter()
            .zip(&padded.ids)
            .map(|(&valid, &id)| valid && id == self.config.image_token_id)
            .collect();
        scatter_rows(embeds, features, &slots)
    }

    /// # Shapes
    /// - hidden: `[batch, seq, hidden]` → `[batch, seq, vocab]`
    pub fn lm_head(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        self.module
            .model
            .language_model
            .logits(self.module.lm_head.as_ref(), hidden)
    }

    /// Runs the prompts and returns the final-norm hidden states, with a cache holding them when
    /// `cache_room` (positions to leave free for decoding) is given.
    fn run_prompts(
        &self,
        prompts: &[Prompt],
        cache_room: Option<usize>,
    ) -> Result<(Tensor<B, 3>, Padded, Option<KvCache<B>>)> {
        let padded = self.pad(prompts)?;
        let embeds = self.embed(prompts, &padded)?;
        let rope = self.config.text.rope(&padded.positions, &self.device());
        let (hidden, cache) = self.module.model.language_model.run_padded(
            &self.config.text,
            embeds,
            &rope,
            &padded.valid,
            cache_room,
        );
        Ok((hidden, padded, cache))
    }

    /// Logits at every position of the (left-padded) prompts.
    ///
    /// # Shapes
    /// - output: `[batch, max_len, vocab]`
    pub fn forward(&self, prompts: &[Prompt]) -> Result<Tensor<B, 3>> {
        let (hidden, _, _) = self.run_prompts(prompts, None)?;
        Ok(self.lm_head(hidden))
    }

    /// Log-probability (temperature 1) of the last `targets[b]` tokens of each sequence given
    /// everything before them: what a policy-gradient loss needs. The LM head runs on `chunk`
    /// positions at a time and only on the target positions, so `[batch, seq, vocab]` logits
    /// never exist at once (the real vocabulary has 151,936 entries).
    ///
    /// Sequences are left-padded, so targets are right-aligned: row `b`'s values are its last
    /// `targets[b]` columns; the columns before them are padding (finite, to be masked).
    ///
    /// # Shapes
    /// - output: `[batch, max(targets)]`
    pub fn target_logprobs(
        &self,
        sequences: &[Prompt],
        targets: &[usize],
        chunk: usize,
    ) -> Result<Tensor<B, 2>> {
        let lens: Vec<usize> = sequences.iter().map(|s| s.ids.len()).collect();
        let width = check_targets(&lens, targets)?;
        let (hidden, padded, _) = self.run_prompts(sequences, None)?;
        Ok(target_logprobs(hidden, &padded.ids, width, chunk, |h| {
            self.lm_head(h)
        }))
    }
}

impl<B: Backend> Decoder<B> for Qwen2_5Vl<B> {
    type Prompt = Prompt;
    type State = DecodeState<B>;

    fn prefill(
        &self,
        prompts: &[Prompt],
        max_new_tokens: usize,
    ) -> Result<(Tensor<B, 2>, DecodeState<B>)> {
        let (hidden, padded, cache) = self.run_prompts(prompts, Some(max_new_tokens))?;
        let cache = cache.expect("a cache was asked for");
        Ok(self.module.model.language_model.after_prefill(
            self.module.lm_head.as_ref(),
            hidden,
            cache,
            &padded.valid,
            padded.next_position,
        ))
    }

    fn step(&self, tokens: &[u32], state: &mut DecodeState<B>) -> Tensor<B, 2> {
        let text = &self.module.model.language_model;
        text.step_logits(
            &self.config.text,
            self.module.lm_head.as_ref(),
            tokens,
            state,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{checkpoint_key, module_path};

    #[test]
    fn both_hub_layouts_map_to_the_module_tree() {
        let cases = [
            (
                "visual.blocks.0.attn.qkv.weight",
                "model.visual.blocks.0.attn.qkv.weight",
            ),
            (
                "model.visual.merger.mlp.2.bias",
                "model.visual.merger.mlp.fc2.bias",
            ),
            (
                "model.layers.1.mlp.up_proj.weight",
                "model.language_model.layers.1.mlp.up_proj.weight",
            ),
            (
                "model.language_model.norm.weight",
                "model.language_model.norm.weight",
            ),
            ("lm_head.weight", "lm_head.weight"),
        ];
        for (key, path) in cases {
            assert_eq!(module_path(key, false).as_deref(), Some(path), "{key}");
        }
        assert_eq!(module_path("lm_head.weight", true), None);
        for (key, _) in cases.iter().filter(|(key, _)| {
            !key.starts_with("model.visual.") && !key.starts_with("model.language_model.")
        }) {
            let path = module_path(key, false).unwrap();
            assert_eq!(checkpoint_key(&path), *key);
        }
        assert_eq!(
            module_path("model.layers.0.self_attn.rotary_emb.inv_freq", false),
            None
        );
    }
}
