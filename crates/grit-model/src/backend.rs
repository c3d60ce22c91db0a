//! Picking a burn backend at run time: the pure-Rust CPU backend (`Flex`, always built), `Wgpu`
//! and `Cuda` behind cargo features.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::error::{Error, Result};

pub type Cpu = burn::backend::Flex;
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Cpu,
    Wgpu,
    Cuda,
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(Error::Input(format!(
                "unknown backend `{other}` (expected cpu, wgpu or cuda)"
            ))),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Work written once for any backend; [`dispatch`] runs it on the one picked at run time.
pub trait OnBackend {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on `kind`, after checking that the device answers: a missing GPU or driver is
/// an error here rather than a panic deep inside the first tensor operation.
pub fn dispatch<T: OnBackend>(kind: BackendKind, task: T) -> Result<T::Output> {
    match kind {
        BackendKind::Cpu => Ok(task.run::<Cpu>(Default::default())),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            let device = Default::default();
            probe::<Wgpu>(kind, &device)?;
            Ok(task.run::<Wgpu>(device))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let device = Default::default();
            probe::<Cuda>(kind, &device)?;
            Ok(task.run::<Cuda>(device))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::Backend {
            backend: other.to_string(),
            message: format!("this binary was built without the `{other}` cargo feature"),
        }),
    }
}

/// Touches the device once, turning a panic (no GPU, no driver) into an error.
pub fn probe<B: Backend>(kind: BackendKind, device: &B::Device) -> Result<()> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Tensor::<B, 1>::ones([1], device).into_data();
    }));
    std::panic::set_hook(hook);
    outcome.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the device failed to initialize".into());
        Error::Backend {
            backend: kind.to_string(),
            message,
        }
    })
}
