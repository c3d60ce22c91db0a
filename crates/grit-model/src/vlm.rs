//! Either model family behind one type, so that every program takes whichever checkpoint its
//! `config.json` describes: the trainer, the evaluator, inference and the viewer hold a [`Vlm`]
//! and never name a family.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde_json::Value;

use crate::composition::{self, VisionLanguage};
use crate::error::{Error, Result};
use crate::generate::Decoder;
use crate::hf::{ConfigError, read_json};
use crate::internvl3::{self, InternVl3, InternVl3Config};
use crate::nn::RestoreParams;
use crate::qwen2::DecodeState;
use crate::qwen2_5_vl::{self, Qwen2_5Vl, Qwen2_5VlConfig};
use crate::weights::StoreDtype;

/// The architectures grit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Qwen2_5Vl,
    InternVl3,
}

impl Family {
    /// The family a checkpoint directory holds, from its `config.json`'s `model_type`
    /// (`qwen2_5_vl`; `internvl` for transformers' layout, `internvl_chat` for the original
    /// remote code).
    pub fn detect(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let json = read_json(&path)?;
        match json.get("model_type").and_then(Value::as_str) {
            Some("qwen2_5_vl") => Ok(Family::Qwen2_5Vl),
            Some("internvl" | "internvl_chat") => Ok(Family::InternVl3),
            other => Err(Error::Config {
                path,
                message: format!(
                    "model_type {}: grit runs `qwen2_5_vl` (Qwen2.5-VL) and `internvl` or \
                     `internvl_chat` (InternVL3)",
                    other.map_or("missing".to_owned(), |t| format!("`{t}`"))
                ),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Qwen2_5Vl => "Qwen2.5-VL",
            Family::InternVl3 => "InternVL3",
        }
    }
}

/// A prompt in the form its family's processor delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Qwen2_5Vl(qwen2_5_vl::Prompt),
    InternVl3(internvl3::Prompt),
}

impl Prompt {
    pub fn ids(&self) -> &[u32] {
        match self {
            Prompt::Qwen2_5Vl(p) => &p.ids,
            Prompt::InternVl3(p) => &p.ids,
        }
    }

    /// The same images with `tail` (a completion) appended to the ids: a training sequence.
    pub fn extended(&self, tail: &[u32]) -> Prompt {
        fn extend<I: Clone>(p: &composition::Prompt<I>, tail: &[u32]) -> composition::Prompt<I> {
            composition::Prompt {
                ids: [&p.ids, tail].concat(),
                images: p.images.clone(),
            }
        }
        match self {
            Prompt::Qwen2_5Vl(p) => Prompt::Qwen2_5Vl(extend(p, tail)),
            Prompt::InternVl3(p) => Prompt::InternVl3(extend(p, tail)),
        }
    }

    /// A text-only prompt for `family`.
    pub fn text(family: Family, ids: Vec<u32>) -> Prompt {
        match family {
            Family::Qwen2_5Vl => Prompt::Qwen2_5Vl(composition::Prompt {
                ids,
                images: Vec::new(),
            }),
            Family::InternVl3 => Prompt::InternVl3(composition::Prompt {
                ids,
                images: Vec::new(),
            }),
        }
    }

    fn family(&self) -> Family {
        match self {
            Prompt::Qwen2_5Vl(_) => Family::Qwen2_5Vl,
            Prompt::InternVl3(_) => Family::InternVl3,
        }
    }
}

/// The hyper-parameters of either family.
#[derive(Debug, Clone, PartialEq)]
pub enum VlmConfig {
    Qwen2_5Vl(Qwen2_5VlConfig),
    InternVl3(InternVl3Config),
}

impl VlmConfig {
    /// The checks the model needs before any tensor is built.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        match self {
            VlmConfig::Qwen2_5Vl(c) => c.validate(),
            VlmConfig::InternVl3(c) => c.validate(),
        }
    }

    /// The config of the checkpoint in `dir`, for the family its `config.json` names.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(match Family::detect(dir)? {
            Family::Qwen2_5Vl => {
                VlmConfig::Qwen2_5Vl(Qwen2_5VlConfig::from_hf_file(&dir.join("config.json"))?)
            }
            Family::InternVl3 => VlmConfig::InternVl3(InternVl3Config::from_dir(dir)?.0),
        })
    }

    /// A randomly initialized model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Vlm<B> {
        match self {
            VlmConfig::Qwen2_5Vl(c) => Vlm::Qwen2_5Vl(c.init(device)),
            VlmConfig::InternVl3(c) => Vlm::InternVl3(c.init(device)),
        }
    }
}

/// A vision-language model of either family.
// A program holds one or two models and moves them only between training steps, so the size
// difference costs nothing; boxing would hide the variants from burn's module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Vlm<B: Backend> {
    Qwen2_5Vl(Qwen2_5Vl<B>),
    InternVl3(InternVl3<B>),
}

/// The family's own prompts out of `prompts`, which must all be of that family.
fn unwrap<'a, P>(
    prompts: &'a [Prompt],
    family: Family,
    pick: impl Fn(&'a Prompt) -> Option<&'a P>,
) -> Result<Vec<P>>
where
    P: Clone + 'a,
{
    prompts
        .iter()
        .map(|p| {
            pick(p).cloned().ok_or_else(|| {
                Error::Input(format!(
                    "a {} prompt given to a {} model",
                    p.family().name(),
                    family.name()
                ))
            })
        })
        .collect()
}

fn qwen_prompts(prompts: &[Prompt]) -> Result<Vec<qwen2_5_vl::Prompt>> {
    unwrap(prompts, Family::Qwen2_5Vl, |p| match p {
        Prompt::Qwen2_5Vl(p) => Some(p),
        Prompt::InternVl3(_) => None,
    })
}

fn internvl_prompts(prompts: &[Prompt]) -> Result<Vec<internvl3::Prompt>> {
    unwrap(prompts, Family::InternVl3, |p| match p {
        Prompt::InternVl3(p) => Some(p),
        Prompt::Qwen2_5Vl(_) => None,
    })
}

impl<B: Backend> Vlm<B> {
    /// Loads the checkpoint directory as the family its `config.json` names.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(match Family::detect(dir)? {
            Family::Qwen2_5Vl => Vlm::Qwen2_5Vl(Qwen2_5Vl::load(dir, device)?),
            Family::InternVl3 => Vlm::InternVl3(InternVl3::load(dir, device)?),
        })
    }

    /// Writes the model as an HF checkpoint directory (transformers' layout).
    pub fn save(&self, dir: &Path, dtype: StoreDtype) -> Result<()> {
        match self {
            Vlm::Qwen2_5Vl(m) => m.save(dir, dtype),
            Vlm::InternVl3(m) => m.save(dir, dtype),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Vlm::Qwen2_5Vl(_) => Family::Qwen2_5Vl,
            Vlm::InternVl3(_) => Family::InternVl3,
        }
    }

    pub fn device(&self) -> B::Device {
        match self {
            Vlm::Qwen2_5Vl(m) => m.device(),
            Vlm::InternVl3(m) => m.device(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Vlm::Qwen2_5Vl(m) => m.config.text.vocab_size,
            Vlm::InternVl3(m) => m.config.text.vocab_size,
        }
    }

    /// Logits at every position of the (left-padded) prompts.
    ///
    /// # Shapes
    /// - output: `[batch, max_len, vocab]`
    pub fn forward(&self, prompts: &[Prompt]) -> Result<Tensor<B, 3>> {
        match self {
            Vlm::Qwen2_5Vl(m) => m.forward(&qwen_prompts(prompts)?),
            Vlm::InternVl3(m) => m.forward(&internvl_prompts(prompts)?),
        }
    }

    /// Log-probabilities of the last `targets[b]` tokens of each sequence, the LM head run
    /// `chunk` positions at a time (see [`Qwen2_5Vl::target_logprobs`]).
    ///
    /// # Shapes
    /// - output: `[batch, max(targets)]`
    pub fn target_logprobs(
        &self,
        sequences: &[Prompt],
        targets: &[usize],
        chunk: usize,
    ) -> Result<Tensor<B, 2>> {
        match self {
            Vlm::Qwen2_5Vl(m) => m.target_logprobs(&qwen_prompts(sequences)?, targets, chunk),
            Vlm::InternVl3(m) => m.target_logprobs(&internvl_prompts(sequences)?, targets, chunk),
        }
    }

    /// The vision tower (InternVL3: InternViT, without the projector; Qwen2.5-VL: the whole
    /// `visual` module, merger included, as its recipes freeze it) stops receiving gradients.
    pub fn freeze_vision(self) -> Self {
        match self {
            Vlm::Qwen2_5Vl(mut m) => {
                m.module.model.visual = m.module.model.visual.no_grad();
                Vlm::Qwen2_5Vl(m)
            }
            Vlm::InternVl3(mut m) => {
                m.module.model.vision_tower = m.module.model.vision_tower.no_grad();
                Vlm::InternVl3(m)
            }
        }
    }

    /// The same weights with gradient tracking, for training.
    pub fn trainable(self) -> Vlm<Autodiff<B>> {
        RestoreParams::apply(Vlm::from_inner(self), true)
    }
}

impl<B: Backend> Vlm<Autodiff<B>> {
    /// The same weights without gradient tracking, for rollouts and evaluation.
    pub fn valid(&self) -> Vlm<B> {
        RestoreParams::apply(AutodiffModule::valid(self), false)
    }
}

impl<B: Backend> Decoder<B> for Vlm<B> {
    type Prompt = Prompt;
    type State = DecodeState<B>;

    fn prefill(
        &self,
        prompts: &[Prompt],
        max_new_tokens: usize,
    ) -> Result<(Tensor<B, 2>, DecodeState<B>)> {
        match self {
            Vlm::Qwen2_5Vl(m) => m.prefill(&qwen_prompts(prompts)?, max_new_tokens),
            Vlm::InternVl3(m) => m.prefill(&internvl_prompts(prompts)?, max_new_tokens),
        }
    }

    fn step(&self, tokens: &[u32], state: &mut DecodeState<B>) -> Tensor<B, 2> {
        match self {
            Vlm::Qwen2_5Vl(m) => m.step(tokens, state),
            Vlm::InternVl3(m) => m.step(tokens, state),
        }
    }

    fn retain(&self, keep: &[usize], state: &mut DecodeState<B>) {
        state.retain(keep);
    }
}

impl<B: Backend> From<Qwen2_5Vl<B>> for Vlm<B> {
    fn from(model: Qwen2_5Vl<B>) -> Self {
        Vlm::Qwen2_5Vl(model)
    }
}

impl<B: Backend> From<InternVl3<B>> for Vlm<B> {
    fn from(model: InternVl3<B>) -> Self {
        Vlm::InternVl3(model)
    }
}
