//! # advclust-remote
//!
//! Clustering victims that live behind a model server. Users rarely attack a model inside
//! their own process: the models they care about are served, and the industry's common wire
//! format for that is the Open Inference Protocol (KServe v2, spoken by KServe, MLServer,
//! Triton and OpenVINO Model Server). This crate has both halves of that format that advclust
//! needs: the messages ([`protocol`]: metadata, inference requests and responses, the error
//! object, the binary tensor extension), and [`KServeOracle`], a client that turns a served
//! model into a [`ClusterOracle`] (memberships) or a [`LabelOracle`] (cluster ids only), so
//! that every query-only attack of advclust runs against it unchanged.
//!
//! The client is built to be trusted with a query budget: it discovers the input layout and
//! k from the model's metadata and refuses images that do not fit before any query; it
//! retries connection failures, timeouts, 5xx and 429 answers with capped exponential
//! backoff, jitter and `Retry-After`, counts a retried call once (the [`Budgeted`] ledger
//! charges only answered calls and records failed ones apart), checks every answer (shape,
//! finite values, distributions, a constant k), keeps several requests in flight for a
//! round of calls while returning answers in order, and sends credentials it never prints.
//!
//! ```no_run
//! use advclust_core::{Budgeted, ClusterOracle, ImageBatch, ParamGuard, QueryBudget};
//! use advclust_remote::{KServeConfig, KServeOracle};
//!
//! let target = "kserve+http://127.0.0.1:8080/models/cc".parse()?;
//! let config = KServeConfig::new().in_flight(4).check()?;
//! let oracle = KServeOracle::connect(target, config)?;
//! oracle.expect_images([1, 28, 28])?;
//! let mut victim = Budgeted::new(oracle, QueryBudget::batch_calls(100));
//! let images = ImageBatch::unit(vec![0.5; 2 * 784], [2, 1, 28, 28])?;
//! let m = victim.memberships(&images)?;
//! assert_eq!(m.n(), 2);
//! assert_eq!(victim.counts().batch_calls, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`ClusterOracle`]: advclust_core::ClusterOracle
//! [`LabelOracle`]: advclust_core::LabelOracle
//! [`Budgeted`]: advclust_core::Budgeted

#![warn(missing_docs)]

mod client;
mod config;
mod error;
pub mod protocol;
mod target;
mod transport;

pub use client::KServeOracle;
pub use config::{CheckedKServeConfig, Encoding, KServeConfig};
pub use error::{RemoteError, Result};
pub use target::{KServeTarget, SCHEME_PREFIX};
pub use transport::{Credential, RetryPolicy, TransportStats};
