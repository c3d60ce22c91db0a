//! AdamW with PyTorch's semantics, global grad-norm clipping, and the learning-rate schedule.
//!
//! Written here rather than taken from `burn::optim` for two reasons: the official recipe clips
//! the norm of *all* gradients together (burn clips each parameter on its own), and the moment
//! estimates are kept by parameter path, so they are saved next to an HF checkpoint and found
//! again on `--resume` whatever ids burn gives the reloaded parameters.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use grit_run::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    /// The official recipe: (0.9, 0.999), eps 1e-8, no weight decay, clip at 1.0.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Half a cosine from the peak to 0 over the steps after warm-up (transformers'
    /// `get_cosine_schedule_with_warmup`).
    #[default]
    Cosine,
    Constant,
}

/// The learning rate of optimizer step `step` (0-based) of `total`.
pub fn learning_rate(
    peak: f64,
    schedule: Schedule,
    warmup: usize,
    step: usize,
    total: usize,
) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let progress = (step - warmup) as f64 / span;
            peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// First and second moments of one parameter, kept off the autodiff graph.
struct Moments {
    exp_avg: TensorData,
    exp_avg_sq: TensorData,
}

/// AdamW state: the step count and the moments by parameter path.
pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimizer steps taken.
    pub steps: u64,
    moments: HashMap<String, Moments>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            moments: HashMap::new(),
        }
    }

    /// Clips the gradients' global norm and updates every parameter that has a gradient.
    pub fn step<AB, M>(&mut self, module: M, grads: GradientsParams, lr: f64) -> (M, StepReport)
    where
        AB: AutodiffBackend,
        M: AutodiffModule<AB>,
    {
        let mut norm = GradNorm {
            grads: &grads,
            sum_sq: 0.0,
        };
        Module::<AB>::visit(&module, &mut norm);
        let grad_norm = norm.sum_sq.sqrt();
        let scale = match self.config.max_grad_norm {
            // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when that is below 1.
            Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        self.steps += 1;
        let mut update = Update {
            adamw: self,
            grads,
            lr,
            scale,
            path: Vec::new(),
        };
        let module = Module::<AB>::map(module, &mut update);
        (module, StepReport { grad_norm })
    }

    /// Writes the moments (keyed by parameter path) and the step count as safetensors.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut tensors: Vec<(String, RawF32)> = Vec::new();
        for (name, m) in &self.moments {
            tensors.push((format!("{name}.exp_avg"), RawF32::of(&m.exp_avg)));
            tensors.push((format!("{name}.exp_avg_sq"), RawF32::of(&m.exp_avg_sq)));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let metadata = HashMap::from([("steps".to_owned(), self.steps.to_string())]);
        let bytes = safetensors::serialize(tensors, Some(metadata))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        write_atomic(path, &bytes)
    }

    /// Reads what [`Self::save`] wrote.
    pub fn load(config: AdamWConfig, path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading optimizer state {}: {e}", path.display()))?;
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        let steps = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{}: no `steps` in the metadata", path.display()))?;
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        let mut moments = HashMap::new();
        for name in file.names() {
            let Some(param) = name.strip_suffix(".exp_avg") else {
                continue;
            };
            let read = |key: &str| -> anyhow::Result<TensorData> {
                let view = file
                    .tensor(key)
                    .map_err(|e| anyhow::anyhow!("{}: tensor `{key}`: {e}", path.display()))?;
                if view.dtype() != Dtype::F32 {
                    anyhow::bail!("{}: tensor `{key}` is not f32", path.display());
                }
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Ok(TensorData::new(values, view.shape().to_vec()))
            };
            moments.insert(
                param.to_owned(),
                Moments {
                    exp_avg: read(name)?,
                    exp_avg_sq: read(&format!("{param}.exp_avg_sq"))?,
                },
            );
        }
        Ok(Self {
            config,
            steps,
            moments,
        })
    }
}

impl AdamW {
    /// Checks loaded moments against the model they will update: every moment must belong to a
    /// parameter of the same shape (a state saved for another model is an error naming the
    /// parameter and `path`, the file it came from, not a panic inside the first step).
    pub fn check_against<B: burn::tensor::backend::Backend, M: Module<B>>(
        &self,
        module: &M,
        path: &Path,
    ) -> anyhow::Result<()> {
        let mut shapes = Shapes::default();
        module.visit(&mut shapes);
        for (name, moments) in &self.moments {
            match shapes.by_path.get(name) {
                None => anyhow::bail!(
                    "{}: moments for `{name}`, which the model does not have",
                    path.display()
                ),
                Some(shape) if *shape != moments.exp_avg.shape.to_vec() => anyhow::bail!(
                    "{}: moments for `{name}` have shape {:?}, the parameter {shape:?}",
                    path.display(),
                    moments.exp_avg.shape.to_vec()
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Every parameter's shape by path, named as [`Update`] names them.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    by_path: HashMap<String, Vec<usize>>,
}

impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.by_path
            .insert(self.path.join("."), param.lazy_shape().dims::<D>().to_vec());
    }
}

/// Sums the squared gradients of every parameter.
struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sum_sq: f64,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(grad) = self.grads.get::<AB::InnerBackend, D>(param.id) {
            self.sum_sq += grad.powi_scalar(2).sum().into_scalar().to_f64();
        }
    }
}

trait ToF64 {
    fn to_f64(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64(self) -> f64 {
        self.elem()
    }
}

struct Update<'a> {
    adamw: &'a mut AdamW,
    grads: GradientsParams,
    lr: f64,
    scale: f64,
    path: Vec<String>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for Update<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let id: ParamId = param.id;
        let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let value = tensor.inner();
        let device = value.device();
        let c = &self.adamw.config;
        let t = self.adamw.steps as i32;
        let grad = grad.mul_scalar(self.scale);
        let key = self.path.join(".");
        let (exp_avg, exp_avg_sq) = match self.adamw.moments.remove(&key) {
            Some(m) => (
                Tensor::<AB::InnerBackend, D>::from_data(m.exp_avg, &device),
                Tensor::<AB::InnerBackend, D>::from_data(m.exp_avg_sq, &device),
            ),
            None => (value.zeros_like(), value.zeros_like()),
        };
        let exp_avg = exp_avg.mul_scalar(c.beta1) + grad.clone().mul_scalar(1.0 - c.beta1);
        let exp_avg_sq =
            exp_avg_sq.mul_scalar(c.beta2) + grad.powi_scalar(2).mul_scalar(1.0 - c.beta2);
        // torch.optim.AdamW: decoupled decay first, then the bias-corrected step.
        let value = value.mul_scalar(1.0 - self.lr * c.weight_decay);
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        let denom = exp_avg_sq
            .clone()
            .div_scalar(bias2)
            .sqrt()
            .add_scalar(c.eps);
        let value = value - exp_avg.clone().div(denom).mul_scalar(self.lr / bias1);
        self.adamw.moments.insert(
            key,
            Moments {
                exp_avg: exp_avg.into_data(),
                exp_avg_sq: exp_avg_sq.into_data(),
            },
        );
        let mut tensor = Tensor::from_inner(value);
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// An f32 tensor's bytes for `safetensors::serialize`.
struct RawF32 {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl RawF32 {
    fn of(data: &TensorData) -> Self {
        let values = data
            .clone()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 data");
        Self {
            shape: data.shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl View for RawF32 {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.bytes[..]).into()
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use grit_model::backend::Cpu;
    use grit_model::nn::{RmsNorm, RmsNormConfig};

    type B = Autodiff<Cpu>;

    /// Loss Σ w·c, so the gradient of the norm weight w is c.
    fn grads_of(norm: &RmsNorm<B>, c: [f32; 3]) -> GradientsParams {
        let c = Tensor::<B, 1>::from_floats(c, &Default::default());
        let loss = (norm.weight.val() * c).sum();
        GradientsParams::from_grads(loss.backward(), norm)
    }

    fn weights(norm: &RmsNorm<B>) -> Vec<f32> {
        norm.weight.val().into_data().into_vec().unwrap()
    }

    /// torch.optim.AdamW, written out for one scalar.
    fn torch_adamw(p: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut p, mut m, mut v) = (p, 0.0, 0.0);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let denom = (v / (1.0 - b2.powi(t))).sqrt() + eps;
            p -= lr / (1.0 - b1.powi(t)) * m / denom;
        }
        p
    }

    #[test]
    fn adamw_matches_torch_and_clips_the_global_norm() {
        let device = Default::default();
        let config = AdamWConfig {
            weight_decay: 0.1,
            max_grad_norm: None,
            ..AdamWConfig::default()
        };
        let mut norm: RmsNorm<B> = RmsNormConfig::new(3).init(&device);
        let mut adamw = AdamW::new(config.clone());
        let steps = [[1.0, 2.0, -3.0], [0.5, -1.0, 2.0]];
        for c in steps {
            let grads = grads_of(&norm, c);
            let (next, report) = adamw.step(norm, grads, 0.1);
            norm = next;
            let expected = c.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            assert!((report.grad_norm - expected).abs() < 1e-5);
        }
        for (i, w) in weights(&norm).into_iter().enumerate() {
            let grads: Vec<f64> = steps.iter().map(|c| f64::from(c[i])).collect();
            let expected = torch_adamw(1.0, &grads, 0.1, 0.1);
            assert!((f64::from(w) - expected).abs() < 1e-6, "{w} vs {expected}");
        }

        // Clipping scales all gradients together: with norm 1, gradient c / |c|.
        let mut clipped = AdamW::new(AdamWConfig {
            max_grad_norm: Some(1.0),
            beta1: 0.0,
            beta2: 0.0,
            ..AdamWConfig::default()
        });
        let norm: RmsNorm<B> = RmsNormConfig::new(3).init(&device);
        let grads = grads_of(&norm, [3.0, 0.0, -4.0]);
        let (norm, report) = clipped.step(norm, grads, 1.0);
        assert!((report.grad_norm - 5.0).abs() < 1e-6);
        // β1 = β2 = 0: the step is lr·g/(|g| + eps) whatever the scale, so check the moments.
        let m = &clipped.moments["weight"];
        let m: Vec<f32> = m.exp_avg.clone().into_vec().unwrap();
        assert!(
            (m[0] - 0.6).abs() < 1e-5 && (m[2] + 0.8).abs() < 1e-5,
            "{m:?}"
        );
        assert!((weights(&norm)[1] - 1.0).abs() < 1e-7);
    }

    #[test]
    fn saved_state_continues_identically() {
        let device = Default::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        let mut norm: RmsNorm<B> = RmsNormConfig::new(3).init(&device);
        let mut adamw = AdamW::new(AdamWConfig::default());
        let (next, _) = adamw.step(norm.clone(), grads_of(&norm, [1.0, -2.0, 0.5]), 0.1);
        norm = next;
        adamw.save(&path).unwrap();
        let mut loaded = AdamW::load(AdamWConfig::default(), &path).unwrap();
        assert_eq!(loaded.steps, adamw.steps);
        loaded.check_against(&norm, &path).unwrap();
        let wider: RmsNorm<B> = RmsNormConfig::new(4).init(&device);
        let err = loaded.check_against(&wider, &path).unwrap_err().to_string();
        assert!(
            err.contains("`weight` have shape [3], the parameter [4]"),
            "{err}"
        );
        let (a, _) = adamw.step(norm.clone(), grads_of(&norm, [0.3, 0.3, -1.0]), 0.1);
        let (b, _) = loaded.step(norm.clone(), grads_of(&norm, [0.3, 0.3, -1.0]), 0.1);
        assert_eq!(weights(&a), weights(&b));
        assert_ne!(weights(&a), weights(&norm));
    }

    #[test]
    fn cosine_schedule_matches_transformers() {
        // get_cosine_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10), peak 1.
        let lr = |s| learning_rate(1.0, Schedule::Cosine, 2, s, 10);
        assert_eq!(lr(0), 0.0);
        assert_eq!(lr(1), 0.5);
        assert_eq!(lr(2), 1.0);
        assert!((lr(6) - 0.5).abs() < 1e-12);
        assert!(lr(9) > 0.0 && lr(9) < 0.04);
        assert_eq!(learning_rate(3.0, Schedule::Constant, 0, 7, 10), 3.0);
    }
}
