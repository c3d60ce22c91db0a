//! InternVL3: InternViT over 448-px tiles, the 0.5 pixel shuffle, the `mlp1` projector and the
//! Qwen2 decoder (shared with Qwen2.5-VL, with 1-D RoPE), loaded from an unmodified checkpoint
//! in transformers' layout or the original remote-code one.

pub mod config;
pub mod vision;

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

pub use config::{CheckpointLayout, InternVl3Config, VisionConfig};

use crate::composition::{self, Positions, TextSide, VisionLanguage};
use crate::error::{Error, Result};
use crate::nn::linear;
use crate::qwen2::TextModel;

use crate::weights::{Checkpoint, StoreDtype, save_dir};
use vision::{MultiModalProjector, VisionModel, pixel_shuffle};

/// One image as the tiler delivers it: its tiles (the grid, then the thumbnail when there is
/// more than one), normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// `[tiles, 3, size, size]`, row-major.
    pub pixel_values: Vec<f32>,
    pub tiles: usize,
    /// Tile side in pixels (448 for InternVL3).
    pub size: usize,
}

/// Token ids with `<IMG_CONTEXT>` already expanded (one per token of every tile), and the
/// images those tokens stand for.
pub type Prompt = composition::Prompt<ImageInput>;

/// The module tree, with the field names of transformers' `InternVLForConditionalGeneration`.
#[derive(Module, Debug)]
pub struct InternVlForConditionalGeneration<B: Backend> {
    pub model: InternVlModel<B>,
    /// `None` when tied to `model.language_model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
}

#[derive(Module, Debug)]
pub struct InternVlModel<B: Backend> {
    pub vision_tower: VisionModel<B>,
    pub multi_modal_projector: MultiModalProjector<B>,
    pub language_model: TextModel<B>,
}

/// A ready-to-run InternVL3: weights plus the configuration the forward pass needs.
#[derive(Module, Debug)]
pub struct InternVl3<B: Backend> {
    pub config: InternVl3Config,
    /// The layout the weights were read from.
    pub layout: CheckpointLayout,
    pub module: InternVlForConditionalGeneration<B>,
}

/// What the vision side computes for a batch of tiles, step by step.
pub struct VisionOutputs<B: Backend> {
    /// `[tiles, 1 + patches, vision_hidden]`, class token first.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[tiles, patches / 4, 4·vision_hidden]`
    pub pixel_shuffled: Tensor<B, 3>,
    /// `[tiles · patches / 4, text_hidden]`: one row per `<IMG_CONTEXT>`, in order.
    pub image_embeds: Tensor<B, 2>,
}

impl InternVl3Config {
    /// A randomly initialized model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> InternVl3<B> {
        let lm_head = (!self.tie_word_embeddings)
            .then(|| linear(self.text.hidden_size, self.text.vocab_size, false, device));
        InternVl3 {
            config: self.clone(),
            layout: CheckpointLayout::Transformers,
            module: InternVlForConditionalGeneration {
                model: InternVlModel {
                    vision_tower: self.vision.init(device),
                    multi_modal_projector: self.init_projector(device),
                    language_model: self.text.init(device),
                },
                lm_head,
            },
        }
    }
}

/// The module path of a transformers-layout key: hub checkpoints (what `save_pretrained`
/// writes) use `vision_tower.*`, `multi_modal_projector.*`, `language_model.model.*` and
/// `language_model.lm_head.*`; the 5.x in-memory names are `model.*` and `lm_head.*`.
fn transformers_path(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("language_model.model.") {
        format!("model.language_model.{rest}")
    } else if let Some(rest) = key.strip_prefix("language_model.lm_head.") {
        format!("lm_head.{rest}")
    } else if key.starts_with("vision_tower.") || key.starts_with("multi_modal_projector.") {
        format!("model.{key}")
    } else {
        key.to_string()
    }
}

/// The name [`split_fused_qkv`] gives one third of a fused `attn.qkv` tensor.
fn split_key(key: &str, part: &str) -> String {
    key.replace(".attn.qkv.", &format!(".attn.qkv[{part}]."))
}

/// The module path of a remote-code key (after [`split_fused_qkv`]).
fn remote_path(key: &str) -> Option<String> {
    if let Some(rest) = key.strip_prefix("vision_model.") {
        let renamed = rest
            .replace("embeddings.class_embedding", "embeddings.cls_token")
            .replace(
                "embeddings.position_embedding",
                "embeddings.position_embeddings",
            )
            .replace(
                "embeddings.patch_embedding.",
                "embeddings.patch_embeddings.projection.",
            )
            .replace("encoder.layers.", "encoder.layer.")
            .replace(".attn.qkv[q].", ".attention.q_proj.")
            .replace(".attn.qkv[k].", ".attention.k_proj.")
            .replace(".attn.qkv[v].", ".attention.v_proj.")
            .replace(".attn.proj.", ".attention.projection_layer.")
            .replace(".attn.q_norm.", ".attention.q_norm.")
            .replace(".attn.k_norm.", ".attention.k_norm.")
            .replace(".norm1.", ".layernorm_before.")
            .replace(".norm2.", ".layernorm_after.");
        let renamed = match renamed.rsplit_once('.') {
            Some((layer, "ls1")) => format!("{layer}.lambda_1"),
            Some((layer, "ls2")) => format!("{layer}.lambda_2"),
            _ => renamed,
        };
        return Some(format!("model.vision_tower.{renamed}"));
    }
    if let Some(rest) = key.strip_prefix("mlp1.") {
        let (index, leaf) = rest.split_once('.')?;
        let layer = match index {
            "0" => "layer_norm",
            "1" => "linear_1",
            "3" => "linear_2",
            _ => return None,
        };
        return Some(format!("model.multi_modal_projector.{layer}.{leaf}"));
    }
    Some(transformers_path(key))
}

/// The module path a stored key loads into, `None` for tensors knowingly not loaded (rotary
/// buffers, a tied head). Unknown names pass through unchanged, so the loader reports them.
fn module_path(key: &str, layout: CheckpointLayout, tied: bool) -> Option<String> {
    if key.ends_with(".inv_freq") {
        return None;
    }
    let path = match layout {
        CheckpointLayout::Transformers => transformers_path(key),
        CheckpointLayout::RemoteCode => remote_path(key).unwrap_or_else(|| key.to_string()),
    };
    (!(tied && path == "lm_head.weight")).then_some(path)
}

/// The key a module path is stored under, as transformers' `save_pretrained` writes it.
fn checkpoint_key(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("model.language_model.") {
        format!("language_model.model.{rest}")
    } else if let Some(rest) = path.strip_prefix("lm_head.") {
        format!("language_model.lm_head.{rest}")
    } else if let Some(rest) = path.strip_prefix("model.") {
        rest.to_string()
    } else {
        path.to_string()
    }
}

/// Splits every remote-code `attn.qkv` tensor into its q, k and v rows.
fn split_fused_qkv(checkpoint: &mut Checkpoint) -> Result<()> {
    let fused: Vec<String> = checkpoint
        .keys()
        .filter(|k| k.starts_with("vision_model.") && k.contains(".attn.qkv."))
        .map(str::to_string)
        .collect();
    for key in fused {
        let parts = ["q", "k", "v"].map(|p| split_key(&key, p));
        checkpoint.split_rows(&key, &parts)?;
    }
    Ok(())
}

/// `<IMG_CONTEXT>`'s id from the remote-code checkpoint's `added_tokens.json`, if it has one.
fn image_token_from_added_tokens(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join("added_tokens.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let tokens: std::collections::BTreeMap<String, u32> =
        serde_json::from_str(&text).map_err(|error| Error::Json {
            path: path.clone(),
            error,
        })?;
    Ok(tokens.get("<IMG_CONTEXT>").copied())
}

impl InternVl3Config {
    /// The configuration of the checkpoint in `dir` and its layout; a remote-code checkpoint's
    /// `<IMG_CONTEXT>` id comes from its `added_tokens.json` (its config does not name it).
    pub fn from_dir(dir: &Path) -> Result<(Self, CheckpointLayout)> {
        let config_path = dir.join("config.json");
        let mut json = crate::hf::read_json(&config_path)?;
        let layout = CheckpointLayout::of_config(&json);
        if layout == CheckpointLayout::RemoteCode
            && let Some(id) = image_token_from_added_tokens(dir)?
        {
            json["image_token_id"] = id.into();
        }
        let config = Self::from_hf_json(&json).map_err(|e| e.in_file(&config_path))?;
        Ok((config, layout))
    }
}

impl<B: Backend> InternVl3<B> {
    /// Loads `config.json` and the safetensors weights of a checkpoint directory in either
    /// layout (see [`InternVl3Config::from_dir`]).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let (config, layout) = InternVl3Config::from_dir(dir)?;
        let mut checkpoint = Checkpoint::open(dir)?;
        if layout == CheckpointLayout::RemoteCode {
            split_fused_qkv(&mut checkpoint)?;
        }
        let mut model = config.init::<B>(device);
        model.layout = layout;
        let tied = config.tie_word_embeddings;
        model.module = checkpoint
            .load(model.module, |key| module_path(key, layout, tied), device)
            .map_err(|e| match e {
                Error::Mismatch(m) => Error::Mismatch(format!("{}: {m}", dir.display())),
                other => other,
            })?;
        Ok(model)
    }

    /// Writes `config.json` and `model.safetensors` in transformers' hub layout, which
    /// [`Self::load`] and transformers both read.
    pub fn save(&self, dir: &Path, dtype: StoreDtype) -> Result<()> {
        save_dir(
            dir,
            &self.config.to_hf_json(),
            &self.module,
            checkpoint_key,
            dtype,
        )
    }

    /// The vision tower, pixel shuffle and projector over the tiles of `images`, in order.
    /// Consecutive images with the same tile size run as one batch.
    pub fn vision(&self, images: &[&ImageInput]) -> Result<VisionOutputs<B>> {
        if images.is_empty() {
            return Err(Error::Input("no images to encode".into()));
        }
        let patch = self.config.vision.patch_size;
        let channels = self.config.vision.num_channels;
        let mut runs: Vec<(usize, usize, Vec<f32>)> = Vec::new();
        for image in images {
            let size = image.size;
            let grid = size / patch;
            if image.pixel_values.len() != image.tiles * channels * size * size
                || !size.is_multiple_of(patch)
                || !grid.is_multiple_of(InternVl3Config::SHUFFLE)
            {
                return Err(Error::Input(format!(
                    "{} tiles of {size} px need {} pixel values and a side of an even number of \
                     {patch}-px patches, got {}",
                    image.tiles,
                    image.tiles * channels * size * size,
                    image.pixel_values.len()
                )));
            }
            match runs.last_mut() {
                Some((s, tiles, pixels)) if *s == size => {
                    *tiles += image.tiles;
                    pixels.extend_from_slice(&image.pixel_values);
                }
                _ => runs.push((size, image.tiles, image.pixel_values.clone())),
            }
        }
        let mut outputs = Vec::with_capacity(runs.len());
        for (size, tiles, pixels) in runs {
            let pixels = Tensor::<B, 4>::from_data(
                TensorData::new(pixels, [tiles, channels, size, size]),
                &self.device(),
            );
            outputs.push(self.vision_tiles(pixels));
        }
        if outputs.len() == 1 {
            return Ok(outputs.pop().expect("one run"));
        }
        let cat3 = |f: fn(&VisionOutputs<B>) -> Tensor<B, 3>| {
            Tensor::cat(outputs.iter().map(f).collect(), 0)
        };
        Ok(VisionOutputs {
            last_hidden_state: cat3(|o| o.last_hidden_state.clone()),
            pixel_shuffled: cat3(|o| o.pixel_shuffled.clone()),
            image_embeds: Tensor::cat(outputs.iter().map(|o| o.image_embeds.clone()).collect(), 0),
        })
    }

    /// # Shapes
    /// - pixels: `[tiles, channels, size, size]`
    fn vision_tiles(&self, pixels: Tensor<B, 4>) -> VisionOutputs<B> {
        let [_, _, height, width] = pixels.dims();
        let patch = self.config.vision.patch_size;
        let (h, w) = (height / patch, width / patch);
        let last_hidden_state = self.module.model.vision_tower.forward(pixels);
        // The class token carries no place in the image.
        let patches = last_hidden_state.clone().narrow(1, 1, h * w);
        let pixel_shuffled = pixel_shuffle(patches, h, w);
        let [tiles, tokens, merged] = pixel_shuffled.dims();
        let projected = self
            .module
            .model
            .multi_modal_projector
            .forward(pixel_shuffled.clone().reshape([tiles * tokens, merged]));
        VisionOutputs {
            last_hidden_state,
            pixel_shuffled,
            image_embeds: projected,
        }
    }
}

impl<B: Backend> VisionLanguage for InternVl3<B> {
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

    /// InternViT, pixel shuffle and projector: one row per `<IMG_CONTEXT>` token.
    fn image_features(&self, images: &[&ImageInput]) -> Result<Tensor<B, 2>> {
        Ok(self.vision(images)?.image_embeds)
    }

    /// Token indices: InternVL3's decoder uses plain 1-D positions, images included.
    fn positions(&self, prompt: &Prompt) -> Result<Positions> {
        Ok(Positions::sequential(prompt.ids.len(), 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_map_to_the_module_tree() {
        let transformers = [
            (
                "vision_tower.encoder.layer.0.attention.q_proj.weight",
                "model.vision_tower.encoder.layer.0.attention.q_proj.weight",
            ),
            (
                "multi_modal_projector.linear_2.bias",
                "model.multi_modal_projector.linear_2.bias",
            ),
            (
                "language_model.model.layers.1.mlp.up_proj.weight",
                "model.language_model.layers.1.mlp.up_proj.weight",
            ),
            ("language_model.lm_head.weight", "lm_head.weight"),
        ];
        for (key, path) in transformers {
            let layout = CheckpointLayout::Transformers;
            assert_eq!(module_path(key, layout, false).as_deref(), Some(path));
            assert_eq!(checkpoint_key(path), key);
            // The 5.x in-memory names are the module paths themselves.
            assert_eq!(module_path(path, layout, false).as_deref(), Some(path));
        }
        let remote = [
            (
                "vision_model.embeddings.class_embedding",
                "model.vision_tower.embeddings.cls_token",
            ),
            (
                "vision_model.embeddings.position_embedding",
                "model.vision_tower.embeddings.position_embeddings",
            ),
            (
                "vision_model.embeddings.patch_embedding.bias",
                "model.vision_tower.embeddings.patch_embeddings.projection.bias",
            ),
            (
                "vision_model.encoder.layers.2.attn.qkv[k].weight",
                "model.vision_tower.encoder.layer.2.attention.k_proj.weight",
            ),
            (
                "vision_model.encoder.layers.0.attn.proj.bias",
                "model.vision_tower.encoder.layer.0.attention.projection_layer.bias",
            ),
            (
                "vision_model.encoder.layers.0.ls1",
                "model.vision_tower.encoder.layer.0.lambda_1",
            ),
            (
                "vision_model.encoder.layers.11.norm2.weight",
                "model.vision_tower.encoder.layer.11.layernorm_after.weight",
            ),
            (
                "mlp1.0.weight",
                "model.multi_modal_projector.layer_norm.weight",
            ),
            ("mlp1.3.bias", "model.multi_modal_projector.linear_2.bias"),
            (
                "language_model.model.norm.weight",
                "model.language_model.norm.weight",
            ),
            ("language_model.lm_head.weight", "lm_head.weight"),
        ];
        for (key, path) in remote {
            let got = module_path(key, CheckpointLayout::RemoteCode, false);
            assert_eq!(got.as_deref(), Some(path), "{key}");
        }
        assert_eq!(
            module_path(
                "language_model.lm_head.weight",
                CheckpointLayout::RemoteCode,
                true
            ),
            None
        );
    }
}
