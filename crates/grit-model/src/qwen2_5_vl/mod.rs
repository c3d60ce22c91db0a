//! Qwen2.5-VL: the vision tower and its patch merger over the shared Qwen2 decoder with
//! multimodal rotary positions (M-RoPE), loaded from an unmodified HF checkpoint directory.

pub mod config;
pub mod positions;
pub mod vision;

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

pub use config::{Qwen2_5VlConfig, VisionConfig};
pub use positions::rope_index;

use crate::composition::{self, Positions, TextSide, VisionLanguage};
use crate::error::{Error, Result};
use crate::nn::linear;
use crate::qwen2::TextModel;

use crate::weights::{Checkpoint, StoreDtype, save_dir};
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
pub type Prompt = composition::Prompt<ImageInput>;

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
}

impl<B: Backend> VisionLanguage for Qwen2_5Vl<B> {
    type B = B;
    type Image = ImageInput;

    fn text_side(&self) -> TextSide<'_, B> {
        TextSide {
            config: &self.config.text,
            model: &self.module.model.language_model,
            lm_head: self.module.lm_head.as_ref(),
            image_token_id: self.config.image_token_id,
        }
    }

    /// The vision tower and merger: one row per `<|image_pad|>` token.
    fn image_features(&self, images: &[&ImageInput]) -> Result<Tensor<B, 2>> {
        let patch_dim = self.config.vision.patch_dim();
        let merge = self.config.vision.spatial_merge_size;
        let mut pixels = Vec::new();
        let mut grids = Vec::with_capacity(images.len());
        for image in images {
            let [t, h, w] = image.grid;
            if image.pixel_values.len() != t * h * w * patch_dim
                || !h.is_multiple_of(merge)
                || !w.is_multiple_of(merge)
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

    /// M-RoPE position ids (`get_rope_index` in transformers).
    fn positions(&self, prompt: &Prompt) -> Result<Positions> {
        let grids: Vec<[usize; 3]> = prompt.images.iter().map(|i| i.grid).collect();
        rope_index(
            &prompt.ids,
            self.config.image_token_id,
            &grids,
            self.config.vision.spatial_merge_size,
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
