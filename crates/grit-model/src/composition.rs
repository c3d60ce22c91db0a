//! One vision-language composition for both families. A family's vision side turns its images
//! into one feature row per image token and says where every token sits (rotary positions);
//! the shared Qwen2 decoder and the LM head do the rest. Padding, embedding, the forward pass,
//! target log-probs and generation's prefill and step are written once, here.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::generate::Decoder;
use crate::kv_cache::KvCache;
use crate::nn::{check_targets, scatter_rows, target_logprobs};
use crate::qwen2::{DecodeState, TextConfig, TextModel};

/// Token ids with each image's placeholder already expanded to one token per feature row, and
/// the images those tokens stand for, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt<I> {
    pub ids: Vec<u32>,
    pub images: Vec<I>,
}

/// Rotary position ids of one unpadded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Positions {
    /// `[rows][seq]`: three rows (temporal, height, width) with M-RoPE, one without.
    pub rows: Vec<Vec<i64>>,
    /// The position of the token after the sequence (the first decoded one).
    pub next: i64,
}

impl Positions {
    /// 0, 1, 2, … in every row: a sequence whose positions are its token indices.
    pub fn sequential(len: usize, rows: usize) -> Self {
        Self {
            rows: vec![(0..len as i64).collect(); rows],
            next: len as i64,
        }
    }
}

/// The shared decoder as a family holds it.
pub struct TextSide<'a, B: Backend> {
    pub config: &'a TextConfig,
    pub model: &'a TextModel<B>,
    /// `None` when the head is tied to the token embeddings.
    pub lm_head: Option<&'a Linear<B>>,
    /// The placeholder token whose embeddings the image features replace.
    pub image_token_id: u32,
}

/// What a model family adds to the shared decoder.
pub trait VisionLanguage {
    /// The backend the weights live on (an associated type rather than a parameter, so that
    /// the blanket [`Decoder`] impl below cannot overlap [`crate::Vlm`]'s).
    type B: Backend;
    /// One image as the family's processor delivers it.
    type Image;

    /// The decoder the image features feed.
    fn text_side(&self) -> TextSide<'_, Self::B>;

    /// Image features, one row per image token, images in order.
    ///
    /// # Shapes
    /// - output: `[Σ tokens of the images, text_hidden]`
    fn image_features(&self, images: &[&Self::Image]) -> Result<Tensor<Self::B, 2>>;

    /// Rotary positions of one unpadded prompt.
    fn positions(&self, prompt: &Prompt<Self::Image>) -> Result<Positions>;

    fn device(&self) -> Device<Self::B> {
        self.text_side().model.device()
    }

    /// # Shapes
    /// - hidden: `[batch, seq, hidden]` → `[batch, seq, vocab]`
    fn logits(&self, hidden: Tensor<Self::B, 3>) -> Tensor<Self::B, 3> {
        let text = self.text_side();
        text.model.logits(text.lm_head, hidden)
    }

    /// Logits at every position of the (left-padded) prompts.
    ///
    /// # Shapes
    /// - output: `[batch, max_len, vocab]`
    fn forward(&self, prompts: &[Prompt<Self::Image>]) -> Result<Tensor<Self::B, 3>>
    where
        Self: Sized,
    {
        let (hidden, _, _) = run_prompts(self, prompts, None)?;
        Ok(self.logits(hidden))
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
    fn target_logprobs(
        &self,
        sequences: &[Prompt<Self::Image>],
        targets: &[usize],
        chunk: usize,
    ) -> Result<Tensor<Self::B, 2>>
    where
        Self: Sized,
    {
        let lens: Vec<usize> = sequences.iter().map(|s| s.ids.len()).collect();
        let width = check_targets(&lens, targets)?;
        let (hidden, padded, _) = run_prompts(self, sequences, None)?;
        Ok(target_logprobs(hidden, &padded.ids, width, chunk, |h| {
            self.logits(h)
        }))
    }
}

impl<M: VisionLanguage> Decoder<M::B> for M {
    type Prompt = Prompt<M::Image>;
    type State = DecodeState<M::B>;

    fn prefill(
        &self,
        prompts: &[Self::Prompt],
        max_new_tokens: usize,
    ) -> Result<(Tensor<M::B, 2>, DecodeState<M::B>)> {
        let (hidden, padded, cache) = run_prompts(self, prompts, Some(max_new_tokens))?;
        let cache = cache.expect("a cache was asked for");
        let text = self.text_side();
        Ok(text.model.after_prefill(
            text.lm_head,
            hidden,
            cache,
            &padded.valid,
            padded.next_position,
        ))
    }

    fn step(&self, tokens: &[u32], state: &mut DecodeState<M::B>) -> Tensor<M::B, 2> {
        let text = self.text_side();
        text.model
            .step_logits(text.config, text.lm_head, tokens, state)
    }

    fn retain(&self, keep: &[usize], state: &mut DecodeState<M::B>) {
        state.retain(keep);
    }
}

/// A prompt batch left-padded to a common length.
struct Padded {
    batch: usize,
    len: usize,
    /// `[batch · len]`
    ids: Vec<u32>,
    valid: Vec<bool>,
    /// `[rows][batch][len]`; padding positions are 0.
    positions: Vec<Vec<Vec<i64>>>,
    next_position: Vec<i64>,
}

fn pad<M: VisionLanguage>(model: &M, prompts: &[Prompt<M::Image>]) -> Result<Padded> {
    let batch = prompts.len();
    let len = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
    if len == 0 {
        return Err(Error::Input("empty prompt".into()));
    }
    let rows = model.text_side().config.position_rows();
    let mut padded = Padded {
        batch,
        len,
        ids: Vec::with_capacity(batch * len),
        valid: Vec::with_capacity(batch * len),
        positions: vec![Vec::with_capacity(batch); rows],
        next_position: Vec::with_capacity(batch),
    };
    for prompt in prompts {
        let n = prompt.ids.len();
        let pad = len - n;
        let positions = model.positions(prompt)?;
        if positions.rows.len() != rows || positions.rows.iter().any(|r| r.len() != n) {
            return Err(Error::Input(format!(
                "{} position rows for a prompt of {n} tokens, the decoder takes {rows}",
                positions.rows.len()
            )));
        }
        // Padding uses token 0: it is masked out, only its embedding row is read.
        padded
            .ids
            .extend(std::iter::repeat_n(0, pad).chain(prompt.ids.iter().copied()));
        padded
            .valid
            .extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, n)));
        for (padded_row, row) in padded.positions.iter_mut().zip(positions.rows) {
            padded_row.push(std::iter::repeat_n(0, pad).chain(row).collect());
        }
        padded.next_position.push(positions.next);
    }
    Ok(padded)
}

/// Token embeddings with the image features written over the image-token positions.
fn embed<M: VisionLanguage>(
    model: &M,
    prompts: &[Prompt<M::Image>],
    padded: &Padded,
) -> Result<Tensor<M::B, 3>> {
    let ids: Vec<i64> = padded.ids.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<M::B, 2, Int>::from_data(
        TensorData::new(ids, [padded.batch, padded.len]),
        &model.device(),
    );
    let text = model.text_side();
    let embeds = text.model.embed(ids);
    let image_token = text.image_token_id;
    let slots: Vec<bool> = padded
        .valid
        .iter()
        .zip(&padded.ids)
        .map(|(&valid, &id)| valid && id == image_token)
        .collect();
    let images: Vec<&M::Image> = prompts.iter().flat_map(|p| &p.images).collect();
    let tokens = slots.iter().filter(|&&s| s).count();
    match (images.is_empty(), tokens) {
        (true, 0) => Ok(embeds),
        (true, n) => Err(Error::Input(format!(
            "{n} image tokens in the prompts, but no images"
        ))),
        (false, _) => scatter_rows(embeds, model.image_features(&images)?, &slots),
    }
}

/// Runs the prompts and returns the final-norm hidden states, with a cache holding them when
/// `cache_room` (positions to leave free for decoding) is given.
#[allow(clippy::type_complexity)]
fn run_prompts<M: VisionLanguage>(
    model: &M,
    prompts: &[Prompt<M::Image>],
    cache_room: Option<usize>,
) -> Result<(Tensor<M::B, 3>, Padded, Option<KvCache<M::B>>)> {
    let padded = pad(model, prompts)?;
    let embeds = embed(model, prompts, &padded)?;
    let text = model.text_side();
    let rope = text.config.rope(&padded.positions, &model.device());
    let (hidden, cache) =
        text.model
            .run_padded(text.config, embeds, &rope, &padded.valid, cache_room);
    Ok((hidden, padded, cache))
}
