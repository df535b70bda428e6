//! # advclust
//!
//! Adversarial robustness testing for deep clustering models, in Rust on burn. A black-box
//! attacker queries a clustering model for soft memberships; a generator learns a bounded
//! perturbation that drives the model's clustering far from the clean one, while a
//! discriminator keeps the perturbed images looking like the data; per-image score-based
//! attacks ([`perimage`]: NES, SPSA, SimBA, Square) are the baselines it is measured against
//! at equal queries ([`baselines`]). This umbrella crate
//! re-exports the workspace's crates and chooses the compute backend: cargo features `flex`
//! (pure-Rust CPU, the default), `tch` (LibTorch: CUDA or CPU) and `wgpu` (GPU, or a software
//! Vulkan driver) decide which backends are compiled in, and [`device`] picks one at run time.
//!
//! ```
//! let device = advclust::device(None).unwrap(); // the best compiled-in backend
//! let flex = advclust::device(Some("flex")).unwrap();
//! assert!(advclust::compiled_backends().contains(&"flex"));
//! # let _ = (device, flex);
//! ```

pub use advclust_core as core;
pub use advclust_data as data;
pub use advclust_defense as defense;
pub use advclust_gan as gan;
pub use advclust_metrics as metrics;
pub use advclust_models as models;
pub use advclust_perimage as perimage;
pub use advclust_plot as plot;
pub use advclust_remote as remote;
pub use advclust_serve as serve;
pub use burn;

pub mod baselines;
pub mod defend;
pub mod pipeline;
pub mod retrain;
pub mod run_dir;
pub mod table;
pub mod transfer;

use burn::tensor::Device;

/// Errors of the umbrella crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend name is not one advclust knows.
    #[error("unknown backend {0:?}; known: flex, tch, tch-cpu, tch-cuda[:N], wgpu, wgpu-cpu")]
    UnknownBackend(String),
    /// The backend is known but was not compiled in.
    #[error(
        "backend {name:?} is not compiled in (enable the cargo feature `{feature}`); compiled: {compiled:?}"
    )]
    BackendNotCompiled {
        /// Requested backend.
        name: String,
        /// The feature that enables it.
        feature: &'static str,
        /// Backends this binary has.
        compiled: Vec<&'static str>,
    },
    /// The backend is compiled in but its hardware is not there.
    #[error("backend {0:?} is compiled in but not available on this machine")]
    BackendUnavailable(String),
    /// An error of advclust-core.
    #[error(transparent)]
    Core(#[from] advclust_core::CoreError),
    /// An error of advclust-data.
    #[error(transparent)]
    Data(#[from] advclust_data::DataError),
    /// An error of advclust-metrics.
    #[error(transparent)]
    Metrics(#[from] advclust_metrics::MetricsError),
    /// An error of the attack (advclust-gan).
    #[error(transparent)]
    Attack(#[from] advclust_gan::AttackError),
    /// An error of a victim model (advclust-models).
    #[error(transparent)]
    Model(#[from] advclust_models::ModelError),
    /// A defense failed.
    #[error(transparent)]
    Defense(#[from] advclust_defense::DefenseError),
    /// An error of a per-image attack (advclust-perimage).
    #[error(transparent)]
    PerImage(#[from] advclust_perimage::PerImageError),
    /// An error of a model-server victim (advclust-remote).
    #[error(transparent)]
    Remote(#[from] advclust_remote::RemoteError),
    /// An error of the model server (advclust-serve).
    #[error(transparent)]
    Serve(#[from] advclust_serve::ServeError),
    /// An error drawing a figure (advclust-plot).
    #[error(transparent)]
    Figure(#[from] advclust_plot::figures::FigureError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--out` already holds a run (pass `--force` to replace it).
    #[error("{} already holds a run; pass --force to replace it, or choose another --out", .0.display())]
    OutputOccupied(std::path::PathBuf),
    /// `--resume` was given but there is no complete checkpoint to resume from.
    #[error("nothing to resume: no checkpoint in {} (run without --resume to start)", .0.display())]
    NothingToResume(std::path::PathBuf),
    /// Serialising a report failed.
    #[error("JSON: {0}")]
    Json(String),
    /// Images of one shape meet a model of another (e.g. a generator and a transfer target).
    #[error("{what} works on {shape:?} images but {target} takes {target_shape:?}")]
    ShapeMismatch {
        /// What produced the images (a dataset, a generator).
        what: String,
        /// Its `[C, H, W]`.
        shape: [usize; 3],
        /// The model they were meant for.
        target: String,
        /// Its input `[C, H, W]`.
        target_shape: [usize; 3],
    },
    /// A command-line or pipeline argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The backends compiled into this build, best first.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "tch") {
        v.push("tch");
    }
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    v
}

/// Environment variable read by [`device`] when no name is given.
pub const BACKEND_ENV: &str = "ADVCLUST_BACKEND";

/// The device to compute on.
///
/// `name` picks a backend: `flex`; `tch` (CUDA device 0 when LibTorch sees a GPU, else CPU),
/// `tch-cpu`, `tch-cuda` or `tch-cuda:N`; `wgpu` (the best adapter wgpu finds) or `wgpu-cpu`
/// (a software adapter). With `None` the `ADVCLUST_BACKEND` environment variable is read, and
/// failing that the best compiled-in backend is used: wgpu, then tch, then flex.
pub fn device(name: Option<&str>) -> Result<Device, Error> {
    let env = std::env::var(BACKEND_ENV).ok();
    let name = name
        .map(str::to_owned)
        .or(env)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| compiled_backends().first().map(|s| s.to_string()))
        .ok_or_else(|| Error::UnknownBackend(String::new()))?;
    let name = name.trim().to_ascii_lowercase();
    let not_compiled = |feature: &'static str| Error::BackendNotCompiled {
        name: name.clone(),
        feature,
        compiled: compiled_backends(),
    };
    let (base, index) = match name.split_once(':') {
        Some((b, i)) => {
            let i = i
                .parse::<usize>()
                .map_err(|_| Error::UnknownBackend(name.clone()))?;
            (b, Some(i))
        }
        None => (name.as_str(), None),
    };
    match base {
        "flex" | "cpu" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[cfg(not(feature = "flex"))]
            return Err(not_compiled("flex"));
        }
        "tch" | "tch-cpu" | "tch-cuda" | "cuda" | "libtorch" => {
            #[cfg(feature = "tch")]
            {
                return tch_device(base, index);
            }
            #[cfg(not(feature = "tch"))]
            {
                let _ = index;
                return Err(not_compiled("tch"));
            }
        }
        "wgpu" | "wgpu-cpu" => {
            #[cfg(feature = "wgpu")]
            {
                use burn::tensor::DeviceKind;
                let kind = match (base, index) {
                    ("wgpu-cpu", _) => DeviceKind::Cpu,
                    (_, Some(i)) => DeviceKind::DiscreteGpu(i),
                    _ => DeviceKind::DefaultDevice,
                };
                return Ok(Device::wgpu(kind));
            }
            #[cfg(not(feature = "wgpu"))]
            return Err(not_compiled("wgpu"));
        }
        _ => {}
    }
    Err(Error::UnknownBackend(name))
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn 0.22 deprecates burn-tch; it is still the LibTorch route
fn tch_device(base: &str, index: Option<usize>) -> Result<Device, Error> {
    let cuda = tch::Cuda::is_available();
    match base {
        "tch-cpu" | "libtorch" => Ok(Device::libtorch()),
        "tch" if !cuda && index.is_none() => Ok(Device::libtorch()),
        _ if cuda => Ok(Device::libtorch_cuda(index.unwrap_or(0))),
        _ => Err(Error::BackendUnavailable(base.to_string())),
    }
}
