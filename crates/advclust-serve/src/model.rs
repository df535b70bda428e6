//! The served model: a name, a version, one oracle per replica, and the pool that lends a
//! free replica to each request.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use advclust_core::ClusterOracle;
use advclust_remote::protocol::{Datatype, MetadataTensor, ModelMetadata};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Result, ServeError};

pub use advclust_remote::protocol::{INPUT_NAME, LABELS_OUTPUT, MEMBERSHIPS_OUTPUT};
/// The `platform` reported in model metadata.
pub const PLATFORM: &str = "advclust";

/// One oracle replica, owned by the server.
pub type Replica = Box<dyn ClusterOracle + Send>;

/// A clustering oracle to serve, under a name and version, with one oracle per replica: `R`
/// replicas answer `R` requests at once. Every replica must be the same victim (same `k`, same
/// input shape, in eval mode) so that the answer does not depend on which one computed it.
///
/// ```
/// use advclust_core::{ClusterOracle, ImageBatch, Memberships, Result};
/// use advclust_serve::ServedModel;
///
/// struct Uniform;
/// impl ClusterOracle for Uniform {
///     fn num_clusters(&self) -> usize { 2 }
///     fn input_shape(&self) -> Option<[usize; 3]> { Some([1, 2, 2]) }
///     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
///         Memberships::new(vec![0.5; 2 * batch.len()], batch.len(), 2)
///     }
/// }
/// let model = ServedModel::new("victim", Box::new(Uniform)).version("3").labels_only(true);
/// assert_eq!(model.name(), "victim");
/// assert_eq!(model.metadata().unwrap().outputs.len(), 1);
/// ```
pub struct ServedModel {
    name: String,
    version: String,
    replicas: Vec<Replica>,
    labels_only: bool,
}

impl fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("replicas", &self.replicas.len())
            .field("labels_only", &self.labels_only)
            .finish()
    }
}

impl ServedModel {
    /// One replica of `oracle` served as `name`, version `"1"`, with memberships.
    pub fn new(name: impl Into<String>, oracle: Replica) -> Self {
        ServedModel::with_replicas(name, vec![oracle])
    }

    /// Several replicas of one victim served as `name` (at least one).
    pub fn with_replicas(name: impl Into<String>, replicas: Vec<Replica>) -> Self {
        ServedModel {
            name: name.into(),
            version: "1".into(),
            replicas,
            labels_only: false,
        }
    }

    /// The version reported and accepted in `.../versions/{v}` routes.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Label-only mode (the decision-based setting): only the `labels` output is offered,
    /// and a request for `memberships` is refused with HTTP 400.
    pub fn labels_only(mut self, labels_only: bool) -> Self {
        self.labels_only = labels_only;
        self
    }

    /// The model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of replicas.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// The model metadata this server answers with, after validating the model.
    pub fn metadata(&self) -> Result<ModelMetadata> {
        Ok(self.spec()?.metadata())
    }

    /// Validates the model: a URL-safe name and version, at least one replica, every
    /// replica with the same `k >= 1` and input shape (no zero dimension).
    pub(crate) fn spec(&self) -> Result<ModelSpec> {
        for (what, s) in [("name", &self.name), ("version", &self.version)] {
            let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if s.is_empty() || s.len() > 128 || !s.chars().all(safe) {
                return Err(ServeError::InvalidModel(format!(
                    "model {what} {s:?} must be 1 to 128 characters of [A-Za-z0-9._-]"
                )));
            }
        }
        let first = self
            .replicas
            .first()
            .ok_or_else(|| ServeError::InvalidModel("no replica to serve".into()))?;
        let (k, shape) = (first.num_clusters(), first.input_shape());
        if k == 0 {
            return Err(ServeError::InvalidModel(
                "the oracle has k = 0 clusters".into(),
            ));
        }
        if shape.is_some_and(|s| s.contains(&0)) {
            return Err(ServeError::InvalidModel(format!(
                "the oracle's input shape {shape:?} has a zero dimension"
            )));
        }
        if let Some(i) = self
            .replicas
            .iter()
            .position(|r| r.num_clusters() != k || r.input_shape() != shape)
        {
            return Err(ServeError::InvalidModel(format!(
                "replica {i} differs from replica 0 (k {} vs {k}, input {:?} vs {shape:?})",
                self.replicas[i].num_clusters(),
                self.replicas[i].input_shape()
            )));
        }
        Ok(ModelSpec {
            name: self.name.clone(),
            version: self.version.clone(),
            k,
            input_shape: shape,
            labels_only: self.labels_only,
        })
    }

    pub(crate) fn into_pool(self) -> Pool {
        Pool::new(self.replicas)
    }
}

/// What the server knows about the model, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelSpec {
    pub name: String,
    pub version: String,
    pub k: usize,
    pub input_shape: Option<[usize; 3]>,
    pub labels_only: bool,
}

impl ModelSpec {
    pub fn metadata(&self) -> ModelMetadata {
        let dim = |d: usize| i64::try_from(d).unwrap_or(-1);
        let mut input = vec![-1];
        match self.input_shape {
            Some(s) => input.extend(s.map(dim)),
            None => input.extend([-1, -1, -1]),
        }
        let mut outputs = Vec::new();
        if !self.labels_only {
            outputs.push(MetadataTensor {
                name: MEMBERSHIPS_OUTPUT.into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, dim(self.k)],
            });
        }
        outputs.push(MetadataTensor {
            name: LABELS_OUTPUT.into(),
            datatype: Datatype::Int64,
            shape: vec![-1],
        });
        ModelMetadata {
            name: self.name.clone(),
            versions: Some(vec![self.version.clone()]),
            platform: PLATFORM.into(),
            inputs: vec![MetadataTensor {
                name: INPUT_NAME.into(),
                datatype: Datatype::Fp32,
                shape: input,
            }],
            outputs,
        }
    }

    /// True when `name` (and `version`, if given) is this model.
    pub fn is(&self, name: &str, version: Option<&str>) -> bool {
        name == self.name && version.is_none_or(|v| v == self.version)
    }
}

/// The replicas and the free list that lends each to one request at a time.
pub(crate) struct Pool {
    replicas: Vec<Mutex<Replica>>,
    free: Mutex<Vec<usize>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    fn new(replicas: Vec<Replica>) -> Self {
        let n = replicas.len();
        Pool {
            replicas: replicas.into_iter().map(Mutex::new).collect(),
            free: Mutex::new((0..n).rev().collect()),
            permits: Arc::new(Semaphore::new(n)),
        }
    }

    /// Replicas in use right now.
    pub fn busy(&self) -> usize {
        self.replicas.len() - self.permits.available_permits()
    }

    /// Waits for a free replica and lends it until the returned lease is dropped.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ServeError::Internal("the replica pool is closed".into()))?;
        let index = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .ok_or_else(|| ServeError::Internal("no free replica under a permit".into()))?;
        Ok(Lease {
            pool: Arc::clone(self),
            index,
            _permit: permit,
        })
    }
}

/// Exclusive use of one replica; returns it to the pool when dropped (also on a panic of
/// the oracle, so the pool never shrinks).
pub(crate) struct Lease {
    pool: Arc<Pool>,
    index: usize,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Runs `f` on the leased replica (blocking; call it from a blocking thread).
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn ClusterOracle) -> T) -> T {
        // A poisoned lock means an earlier call panicked; the oracle is in eval mode and
        // keeps no per-call state, so it is still usable.
        let mut guard = self.pool.replicas[self.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut **guard)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Return the index before the permit (a field, dropped after this) frees a waiter.
        self.pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.index);
    }
}
