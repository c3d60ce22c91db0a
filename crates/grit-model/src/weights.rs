//! Reading HF safetensors checkpoints (single file or sharded with an index) into burn modules.
//!
//! Loading walks the module tree with a [`ModuleMapper`]: every parameter's path (its field
//! names, which follow the HF checkpoint keys) is looked up in the checkpoint, so a missing,
//! extra or mis-shaped tensor is reported with its key and both shapes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

const SINGLE_FILE: &str = "model.safetensors";
const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    mmap: Mmap,
}

/// Where one tensor lives.
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the shard's mmap.
    range: std::ops::Range<usize>,
}

/// A memory-mapped HF checkpoint: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub struct Checkpoint {
    shards: Vec<Shard>,
    entries: BTreeMap<String, Entry>,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        let files: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shard_files(&index)?
        } else {
            return Err(Error::NoWeights { dir: dir.into() });
        };
        let mut checkpoint = Checkpoint {
            shards: Vec::new(),
            entries: BTreeMap::new(),
        };
        for path in files {
            checkpoint.add_shard(path)?;
        }
        Ok(checkpoint)
    }

    fn add_shard(&mut self, path: PathBuf) -> Result<()> {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: the file is opened read-only; a checkpoint rewritten while it is being read is
        // outside what any loader can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let bad = |message: String| Error::SafeTensors {
            path: path.clone(),
            message,
        };
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| bad(e.to_string()))?;
        let data_start = 8 + header_len;
        let shard = self.shards.len();
        for (key, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            let entry = Entry {
                shard,
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: data_start + start..data_start + end,
            };
            if self.entries.insert(key.clone(), entry).is_some() {
                return Err(bad(format!(
                    "tensor `{key}` appears in more than one shard"
                )));
            }
        }
        self.shards.push(Shard { path, mmap });
        Ok(())
    }

    /// Replaces the stored tensor `key` by `names.len()` equal slices along its first axis, one
    /// per name, so that a fused tensor (e.g. `attn.qkv.weight`) loads into separate parameters.
    /// Rows are contiguous, so each slice is a byte range of the same mapping: nothing is copied.
    pub fn split_rows(&mut self, key: &str, names: &[String]) -> Result<()> {
        let entry = self
            .entries
            .remove(key)
            .ok_or_else(|| Error::Mismatch(format!("tensor `{key}` is not in the checkpoint")))?;
        let rows = entry.shape.first().copied().unwrap_or(0);
        if names.is_empty() || !rows.is_multiple_of(names.len()) {
            return Err(Error::Tensor {
                key: key.into(),
                path: self.shards[entry.shard].path.clone(),
                message: format!(
                    "shape {:?} does not split into {} equal parts along its first axis",
                    entry.shape,
                    names.len()
                ),
            });
        }
        let part = entry.range.len() / names.len();
        let mut shape = entry.shape.clone();
        shape[0] = rows / names.len();
        for (i, name) in names.iter().enumerate() {
            let start = entry.range.start + i * part;
            self.entries.insert(
                name.clone(),
                Entry {
                    shard: entry.shard,
                    dtype: entry.dtype,
                    shape: shape.clone(),
                    range: start..start + part,
                },
            );
        }
        Ok(())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// The tensor as f32 values, whatever float type it is stored in.
    pub fn read_f32(&self, key: &str) -> Result<TensorData> {
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| Error::Mismatch(format!("tensor `{key}` is not in the checkpoint")))?;
        let shard = &self.shards[entry.shard];
        let bytes = &shard.mmap[entry.range.clone()];
        let values: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::Tensor {
                    key: key.into(),
                    path: shard.path.clone(),
                    message: format!("dtype {other:?} is not a float type this loader reads"),
                });
            }
        };
        Ok(TensorData::new(values, entry.shape.clone()))
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.entries
            .get(key)
            .map(|e| self.shards[e.shard].path.clone())
            .unwrap_or_default()
    }

    /// Fills every parameter of `module` from the checkpoint.
    ///
    /// `module_path` names the module parameter a stored key belongs to (HF has renamed its
    /// prefixes across versions), or `None` for tensors that are knowingly not loaded (tied
    /// `lm_head`, saved rotary buffers). Every other stored tensor must be consumed.
    pub fn load<B: Backend, M: Module<B>>(
        &self,
        module: M,
        module_path: impl Fn(&str) -> Option<String>,
        device: &B::Device,
    ) -> Result<M> {
        let mut by_path = BTreeMap::new();
        for key in self.keys() {
            if let Some(path) = module_path(key)
                && let Some(previous) = by_path.insert(path.clone(), key.to_string())
            {
                return Err(Error::Mismatch(format!(
                    "tensors `{previous}` and `{key}` both name parameter `{path}`"
                )));
            }
        }
        let mut mapper = LoadMapper {
            checkpoint: self,
            by_path,
            device: device.clone(),
            stack: Vec::new(),
            used: BTreeSet::new(),
            problems: Vec::new(),
        };
        let module = module.map(&mut mapper);
        for (path, key) in &mapper.by_path {
            if !mapper.used.contains(path) {
                mapper.problems.push(format!(
                    "unexpected tensor `{key}` {:?} in {}",
                    self.shape(key).unwrap_or_default(),
                    self.path_of(key).display()
                ));
            }
        }
        if mapper.problems.is_empty() {
            Ok(module)
        } else {
            Err(Error::Mismatch(mapper.problems.join("\n")))
        }
    }
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text).map_err(|error| Error::Json {
        path: index.into(),
        error,
    })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let names: BTreeSet<&String> = parsed.weight_map.values().collect();
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

struct LoadMapper<'a, B: Backend> {
    checkpoint: &'a Checkpoint,
    /// Module parameter path -> stored key.
    by_path: BTreeMap<String, String>,
    device: B::Device,
    stack: Vec<String>,
    used: BTreeSet<String>,
    problems: Vec<String>,
}

impl<B: Backend> LoadMapper<'_, B> {
    fn load_tensor<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.stack.join(".");
        let expected = param.lazy_shape().dims::<D>();
        let Some(key) = self.by_path.get(&path).cloned() else {
            self.problems.push(format!(
                "missing tensor for parameter `{path}` (expected shape {expected:?})"
            ));
            return param;
        };
        self.used.insert(path);
        let data = match self.checkpoint.read_f32(&key) {
            Ok(data) => data,
            Err(e) => {
                self.problems.push(e.to_string());
                return param;
            }
        };
        // Every parameter is built in the checkpoint's layout (burn's column-major Linear keeps
        // PyTorch's [out, in]), so the stored shape must equal the initializer's.
        let stored: Vec<usize> = data.shape.to_vec();
        if stored != expected {
            self.problems.push(format!(
                "tensor `{key}` has shape {stored:?}, the model expects {expected:?}"
            ));
            return param;
        }
        // `transform_for_load` applies the parameter's load mapper (the Linear's transposed
        // view) without running its random initializer.
        let id = param.id;
        param.transform_for_load(Tensor::from_data(data, &self.device), id)
    }
}

impl<B: Backend> ModuleMapper<B> for LoadMapper<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        self.load_tensor(param)
    }
}

/// How exported weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDtype {
    /// What the hub ships.
    Bf16,
    F32,
}

impl StoreDtype {
    /// The name `config.json`'s `dtype` gives it.
    pub fn hf_name(self) -> &'static str {
        match self {
            StoreDtype::Bf16 => "bfloat16",
            StoreDtype::F32 => "float32",
        }
    }
}

/// Writes an HF model directory: `config.json` (`config`) and `model.safetensors` (see
/// [`save`]), each under a temporary name first.
pub fn save_dir<B: Backend, M: Module<B>>(
    dir: &Path,
    config: &serde_json::Value,
    module: &M,
    checkpoint_key: impl Fn(&str) -> String,
    dtype: StoreDtype,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // `dtype` names what the safetensors hold, so that transformers' `dtype="auto"` loads the
    // precision that was saved.
    let mut config = config.clone();
    config["dtype"] = dtype.hf_name().into();
    let text = serde_json::to_string_pretty(&config).expect("JSON value");
    let config_path = dir.join("config.json");
    let tmp = dir.join("config.json.partial");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &config_path).map_err(|e| Error::io(&config_path, e))?;
    save(
        module,
        &dir.join("model.safetensors"),
        checkpoint_key,
        dtype,
    )
}

/// Writes every parameter of `module` to a safetensors file, under the key `checkpoint_key`
/// gives for each module path. The file is written beside `path` and renamed into place, so
/// an interrupted export never leaves a truncated checkpoint.
pub fn save<B: Backend, M: Module<B>>(
    module: &M,
    path: &Path,
    checkpoint_key: impl Fn(&str) -> String,
    dtype: StoreDtype,
) -> Result<()> {
    let mut collector = Collector {
        stack: Vec::new(),
        tensors: Vec::new(),
        key: &checkpoint_key,
        dtype,
    };
    module.visit(&mut collector);
    let tmp = path.with_extension("safetensors.partial");
    let views = collector.tensors.iter().map(|(key, shape, bytes)| {
        let dtype = match dtype {
            StoreDtype::Bf16 => Dtype::BF16,
            StoreDtype::F32 => Dtype::F32,
        };
        let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)
            .expect("shape and byte count agree");
        (key.clone(), view)
    });
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize_to_file(views, metadata, &tmp).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(source) => Error::io(&tmp, source),
        other => Error::SafeTensors {
            path: tmp.clone(),
            message: other.to_string(),
        },
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

struct Collector<'a> {
    stack: Vec<String>,
    /// (key, shape, little-endian bytes)
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
    key: &'a dyn Fn(&str) -> String,
    dtype: StoreDtype,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        // The save mapper returns the checkpoint layout (PyTorch's [out, in] for Linear).
        let tensor = param.transform_for_save().into_value();
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("float parameter");
        let bytes = match self.dtype {
            StoreDtype::Bf16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            StoreDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let key = (self.key)(&self.stack.join("."));
        self.tensors.push((key, shape, bytes));
    }
}
