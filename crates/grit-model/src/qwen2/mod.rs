//! The Qwen2 text decoder, shared by both families: Qwen2.5-VL runs it with multimodal rotary
//! positions (M-RoPE, three position rows), InternVL3 with plain 1-D RoPE.

pub mod config;

use burn::module::{Initializer, Module};
use burn::nn::{Embedding, EmbeddingConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::kv_cache::{KvCache, LayerCache};
use crate::nn::{
    AttentionMask, RmsNorm, RmsNormConfig, Rotary, SwiGluMlp, grouped_attention, linear,
    padding_mask, step_mask,
};
pub use config::TextConfig;

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    pub num_heads: usize,
    pub num_key_value_heads: usize,
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// - x: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    /// - mask: over `cached + seq` keys
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        mask: AttentionMask<B>,
        cache: Option<&mut LayerCache<B>>,
        start: usize,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        // Rotate in the projections' own [batch, seq, heads, head_dim] layout, then move heads
        // forward for attention.
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, head_dim]);
        let q = rope
            .q
            .apply(heads(self.q_proj.forward(x.clone()), self.num_heads));
        let k = rope.k.apply(heads(
            self.k_proj.forward(x.clone()),
            self.num_key_value_heads,
        ));
        let v = heads(self.v_proj.forward(x), self.num_key_value_heads);
        let (q, k, v) = (q.swap_dims(1, 2), k.swap_dims(1, 2), v.swap_dims(1, 2));
        let (k, v) = match cache {
            Some(cache) => cache.update(start, k, v),
            None => (k, v),
        };
        let out = grouped_attention(q, k, v, mask)
            .swap_dims(1, 2)
            .reshape([batch, seq, hidden]);
        self.o_proj.forward(out)
    }
}

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: SwiGluMlp<B>,
}

#[derive(Module, Debug)]
pub struct TextModel<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
}

impl TextConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TextModel<B> {
        let hidden = self.hidden_size;
        let kv = self.num_key_value_heads * self.head_dim();
        let norm = RmsNormConfig::new(hidden).with_eps(self.rms_norm_eps);
        let layers = (0..self.num_hidden_layers)
            .map(|_| DecoderLayer {
                input_layernorm: norm.init(device),
                self_attn: Attention {
                    q_proj: linear(hidden, hidden, true, device),
                    k_proj: linear(hidden, kv, true, device),
                    v_proj: linear(hidden, kv, true, device),
                    o_proj: linear(hidden, hidden, false, device),
                    num_heads: self.num_attention_heads,
                    num_key_value_heads: self.num_key_value_heads,
                },
                post_attention_layernorm: norm.init(device),
                mlp: SwiGluMlp::new(hidden, self.intermediate_size, false, device),
            })
            .collect();
        TextModel {
            // transformers initializes embeddings with N(0, initializer_range = 0.02); burn's
            // N(0, 1) would make a tied head's first logits hundreds wide.
            embed_tokens: EmbeddingConfig::new(self.vocab_size, hidden)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
            layers,
            norm: norm.init(device),
        }
    }

    /// Rotary tables for the positions of one call. With M-RoPE the half-dimension is split
    /// into `mrope_section` = [temporal, height, width] bands, each rotated by its own position
    /// row; plain RoPE has one row.
    ///
    /// # Shapes
    /// - positions: `[rows][batch][seq]`, rows = [`Self::position_rows`]
    pub fn rope<B: Backend>(&self, positions: &[Vec<Vec<i64>>], device: &B::Device) -> Rope<B> {
        let head_dim = self.head_dim();
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (self.rope_theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let band: Vec<usize> = match self.mrope_section {
            Some(section) => (0..3)
                .flat_map(|row| std::iter::repeat_n(row, section[row]))
                .collect(),
            None => vec![0; half],
        };
        let batch = positions[0].len();
        let seq = positions[0].first().map_or(0, Vec::len);
        let mut angles = Vec::with_capacity(batch * seq * half);
        for (b, s) in (0..batch).flat_map(|b| (0..seq).map(move |s| (b, s))) {
            angles.extend((0..half).map(|j| positions[band[j]][b][s] as f32 * inv_freq[j]));
        }
        Rope {
            q: Rotary::new(&angles, batch, seq, self.num_attention_heads, device),
            k: Rotary::new(&angles, batch, seq, self.num_key_value_heads, device),
        }
    }
}

/// Rotary tables for the positions of one forward call, for query and key heads.
pub struct Rope<B: Backend> {
    pub q: Rotary<B>,
    pub k: Rotary<B>,
}

impl<B: Backend> TextModel<B> {
    /// # Shapes
    /// - ids: `[batch, seq]` → embeddings `[batch, seq, hidden]`
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_tokens.forward(ids)
    }

    /// Runs the decoder over new positions, appending them to `cache` when there is one (a
    /// training pass has none: it sees whole sequences at once); returns the final-norm hidden
    /// states.
    ///
    /// # Shapes
    /// - embeds: `[batch, seq, hidden]`
    /// - mask: over `cache.len() + seq` keys
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        embeds: Tensor<B, 3>,
        rope: &Rope<B>,
        mask: AttentionMask<B>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let start = cache.as_ref().map_or(0, |c| c.len());
        let seq = embeds.dims()[1];
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[i]);
            let attn = layer.self_attn.forward(
                layer.input_layernorm.forward(x.clone()),
                rope,
                mask.clone(),
                layer_cache,
                start,
            );
            x = x + attn;
            let mlp = layer
                .mlp
                .forward(layer.post_attention_layernorm.forward(x.clone()));
            x = x + mlp;
        }
        if let Some(cache) = cache {
            cache.advance(seq);
        }
        self.norm.forward(x)
    }
}

/// What decoding carries between steps, for any model built on this decoder.
pub struct DecodeState<B: Backend> {
    cache: KvCache<B>,
    next_position: Vec<i64>,
    /// `[batch][prompt_len]`, `true` for real tokens; `None` when no row is padded.
    prompt_valid: Option<Vec<Vec<bool>>>,
}

impl<B: Backend> DecodeState<B> {
    /// Keeps the rows `keep` (batch indices, in that order) of the cache, the positions and the
    /// prompt masks.
    pub fn retain(&mut self, keep: &[usize]) {
        self.cache.retain(keep);
        self.next_position = keep.iter().map(|&r| self.next_position[r]).collect();
        if let Some(valid) = &mut self.prompt_valid {
            *valid = keep.iter().map(|&r| valid[r].clone()).collect();
        }
    }
}

impl<B: Backend> TextModel<B> {
    /// Runs left-padded embeddings (`valid`: `[batch · seq]`, `true` for real tokens) causally;
    /// with `cache_room`, also returns a cache holding them with that many positions free.
    ///
    /// # Shapes
    /// - embeds: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    pub fn run_padded(
        &self,
        config: &TextConfig,
        embeds: Tensor<B, 3>,
        rope: &Rope<B>,
        valid: &[bool],
        cache_room: Option<usize>,
    ) -> (Tensor<B, 3>, Option<KvCache<B>>) {
        let [batch, len, _] = embeds.dims();
        let device = embeds.device();
        let mut cache = cache_room.map(|room| {
            KvCache::new(
                config.num_hidden_layers,
                batch,
                config.num_key_value_heads,
                config.head_dim(),
                len + room,
                &device,
            )
        });
        let mask = if valid.contains(&false) {
            AttentionMask::Explicit(padding_mask(valid, batch, len, &device))
        } else {
            AttentionMask::Causal
        };
        let hidden = self.forward(embeds, rope, mask, cache.as_mut());
        (hidden, cache)
    }

    /// Appends one token per row at its next position (text only, so every position row is
    /// the same) and returns its final-norm hidden state.
    ///
    /// # Shapes
    /// - output: `[batch, 1, hidden]`
    pub fn step(
        &self,
        config: &TextConfig,
        tokens: &[u32],
        state: &mut DecodeState<B>,
    ) -> Tensor<B, 3> {
        let device = self.embed_tokens.weight.device();
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [tokens.len(), 1]), &device);
        let column: Vec<Vec<i64>> = state.next_position.iter().map(|&p| vec![p]).collect();
        let rope = config.rope(&vec![column; config.position_rows()], &device);
        let total = state.cache.len() + 1;
        let mask = step_mask(state.prompt_valid.as_deref(), total, &device);
        let hidden = self.forward(self.embed(ids), &rope, mask, Some(&mut state.cache));
        state.next_position.iter_mut().for_each(|p| *p += 1);
        hidden
    }

    /// After a prefill of left-padded rows (`valid`: `[batch · len]`, `true` for real tokens):
    /// the logits at the last position and the state decoding continues from.
    ///
    /// # Shapes
    /// - hidden: `[batch, len, hidden]`; logits: `[batch, vocab]`
    pub fn after_prefill(
        &self,
        lm_head: Option<&Linear<B>>,
        hidden: Tensor<B, 3>,
        cache: KvCache<B>,
        valid: &[bool],
        next_position: Vec<i64>,
    ) -> (Tensor<B, 2>, DecodeState<B>) {
        let len = hidden.dims()[1];
        let logits = self.logits(lm_head, hidden.narrow(1, len - 1, 1));
        let prompt_valid = valid
            .contains(&false)
            .then(|| valid.chunks(len).map(<[bool]>::to_vec).collect());
        let state = DecodeState {
            cache,
            next_position,
            prompt_valid,
        };
        (logits.squeeze_dim::<2>(1), state)
    }

    /// [`Self::step`] through the LM head.
    ///
    /// # Shapes
    /// - output: `[batch, vocab]`
    pub fn step_logits(
        &self,
        config: &TextConfig,
        lm_head: Option<&Linear<B>>,
        tokens: &[u32],
        state: &mut DecodeState<B>,
    ) -> Tensor<B, 2> {
        let hidden = self.step(config, tokens, state);
        self.logits(lm_head, hidden).squeeze_dim::<2>(1)
    }

    pub fn device(&self) -> B::Device {
        self.embed_tokens.weight.device()
    }

    /// Logits through `lm_head`, or through the embedding matrix when the head is tied.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq, hidden]` → `[batch, seq, vocab]`
    pub fn logits(&self, lm_head: Option<&Linear<B>>, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match lm_head {
            Some(head) => head.forward(hidden),
            None => hidden.matmul(self.embed_tokens.weight.val().transpose().unsqueeze()),
        }
    }
}
