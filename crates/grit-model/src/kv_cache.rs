//! Pre-allocated key/value cache: one buffer per layer sized for the whole generation, written
//! in place step by step (no per-step concatenation).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Keys and values of one attention layer.
pub struct LayerCache<B: Backend> {
    /// `[batch, kv_heads, capacity, head_dim]`; `None` only while being updated.
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
}

/// The cache of every layer, plus how many positions are filled.
pub struct KvCache<B: Backend> {
    pub layers: Vec<LayerCache<B>>,
    len: usize,
    capacity: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn new(
        layers: usize,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        device: &B::Device,
    ) -> Self {
        let buffer = || Some(Tensor::zeros([batch, kv_heads, capacity, head_dim], device));
        Self {
            layers: (0..layers)
                .map(|_| LayerCache {
                    keys: buffer(),
                    values: buffer(),
                })
                .collect(),
            len: 0,
            capacity,
        }
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps the rows `keep` (batch indices, in that order) and drops the others, so that
    /// finished sequences stop costing compute.
    pub fn retain(&mut self, keep: &[usize]) {
        let Some(device) = self
            .layers
            .first()
            .and_then(|l| l.keys.as_ref())
            .map(Tensor::device)
        else {
            return;
        };
        let rows: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
        let indices = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [keep.len()]), &device);
        for layer in &mut self.layers {
            for slot in [&mut layer.keys, &mut layer.values] {
                let buffer = slot.take().expect("cache buffer present");
                *slot = Some(buffer.select(0, indices.clone()));
            }
        }
    }

    /// Marks `n` more positions as filled, once every layer has written them.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
        assert!(self.len <= self.capacity, "KV cache overflow");
    }
}

impl<B: Backend> LayerCache<B> {
    /// Writes `keys`/`values` at positions `start..start + seq` and returns the whole filled
    /// prefix `0..start + seq`.
    ///
    /// # Shapes
    /// - keys, values: `[batch, kv_heads, seq, head_dim]`
    /// - returned: `[batch, kv_heads, start + seq, head_dim]` each
    pub fn update(
        &mut self,
        start: usize,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let end = start + keys.dims()[2];
        let write = |slot: &mut Option<Tensor<B, 4>>, new: Tensor<B, 4>| {
            // Taking the buffer out keeps it uniquely owned, so the write happens in place.
            let buffer = slot.take().expect("cache buffer present");
            let [b, h, _, d] = buffer.dims();
            let buffer = buffer.slice_assign([0..b, 0..h, start..end, 0..d], new);
            let filled = buffer.clone().narrow(2, 0, end);
            *slot = Some(buffer);
            filled
        };
        (write(&mut self.keys, keys), write(&mut self.values, values))
    }
}
