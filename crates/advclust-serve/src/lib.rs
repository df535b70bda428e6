//! # advclust-serve
//!
//! Serves any advclust clustering oracle over the Open Inference Protocol (KServe v2 REST),
//! so that attacks can query a victim across a network exactly as they would a third-party
//! model server, and so that the client side (`advclust-remote`) can be tested against a
//! server that misbehaves on purpose.
//!
//! The idea: a victim is a [`ClusterOracle`]; the server wraps one oracle per replica in a
//! [`ServedModel`] and answers the protocol's routes with it:
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/health/live`, `GET /v2/health/ready` | 200 |
//! | `GET /v2` | server metadata, extension `binary_tensor_data` |
//! | `GET /v2/models/{m}[/versions/{v}]` | input `images` FP32 `[-1, C, H, W]`; outputs `memberships` FP32 `[-1, K]` (not in label-only mode) and `labels` INT64 `[-1]` |
//! | `GET /v2/models/{m}[/versions/{v}]/ready` | 200, or 404 for another model |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | the requested outputs, with `parameters.query_count` |
//! | `GET /metrics` | Prometheus counters |
//!
//! An inference request carries one FP32 (or FP64) tensor `images` of shape `[B, C, H, W]`
//! (or `[B, C*H*W]`), values finite and in `[0, 1]`, as JSON (flat or nested arrays) or as
//! binary data after the JSON part (header `Inference-Header-Content-Length`). Outputs asked
//! for with `binary_data: true` (or all, with the request parameter `binary_data_output`)
//! come back in binary the same way. Every refusal is an HTTP error status with the body
//! `{"error": "..."}`, decided before any model work: 400 for a malformed request or one that
//! does not fit the model, 404 for another model, 413 for a body or batch over the limits,
//! 403 (`"query budget exhausted: ..."`) once the optional budget of answered requests or
//! images is spent. Sizes from the request are checked arithmetic; bad input never panics.
//!
//! Each request takes a free replica (requests beyond the replicas wait) and runs the oracle
//! on a blocking thread; the answer depends on the input only (the oracles are
//! deterministic), not on the replica or the timing. The server counts what it answered: the
//! response's `query_count` is the model's answered requests so far, this one included, and
//! `/metrics` exposes `advclust_queries_total`, `advclust_images_total`,
//! `advclust_requests_total{route, status}` and `advclust_faults_injected_total{kind}`, so a
//! client's count can be reconciled with the server's.
//!
//! A seeded [`FaultPlan`] makes the server fail like real ones (HTTP 500, 503 or 429 with
//! `Retry-After`, a dropped connection, a long delay), decided from the seed and the request's
//! sequence number only, before the model is called; a faulted request is never counted as
//! answered.
//!
//! ```
//! use advclust_core::{ClusterOracle, ImageBatch, Memberships, ParamGuard, QueryBudget, Result};
//! use advclust_serve::{ServeConfig, ServedModel, ServerHandle};
//!
//! /// Two clusters: dark and bright images.
//! struct Brightness;
//! impl ClusterOracle for Brightness {
//!     fn num_clusters(&self) -> usize { 2 }
//!     fn input_shape(&self) -> Option<[usize; 3]> { Some([1, 2, 2]) }
//!     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
//!         let mut out = Vec::new();
//!         for i in 0..batch.len() {
//!             let p = batch.image(i).unwrap().iter().sum::<f32>() / 4.0;
//!             out.extend([1.0 - p, p]);
//!         }
//!         Memberships::new(out, batch.len(), 2)
//!     }
//! }
//!
//! let model = ServedModel::new("victim", Box::new(Brightness));
//! let config = ServeConfig::new().budget(QueryBudget::batch_calls(100)).check().unwrap();
//! let server = ServerHandle::start("127.0.0.1:0", model, config).unwrap();
//! let url = format!("{}/v2/models/victim/infer", server.url());
//! // POST {"inputs": [{"name": "images", "shape": [1, 1, 2, 2], "datatype": "FP32",
//! //                   "data": [0.9, 0.9, 0.9, 0.9]}]} to `url`; the answer's `labels` is [1].
//! # let _ = url;
//! assert_eq!(server.stats().answered_requests, 0);
//! server.shutdown().unwrap();
//! ```
//!
//! [`ClusterOracle`]: advclust_core::ClusterOracle

#![warn(missing_docs)]

mod config;
mod error;
mod faults;
mod infer;
mod model;
mod routes;
mod server;
mod state;

pub use config::{
    CheckedServeConfig, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IMAGES, DEFAULT_WORKER_THREADS,
    MAX_WORKER_THREADS, ServeConfig,
};
pub use error::{Result, ServeError};
pub use faults::{FaultKind, FaultPlan, MAX_FAULT_DELAY};
pub use infer::BINARY_DATA_OUTPUT;
pub use model::{INPUT_NAME, LABELS_OUTPUT, MEMBERSHIPS_OUTPUT, PLATFORM, Replica, ServedModel};
pub use routes::{DROPPED_STATUS, SERVER_NAME, UNMATCHED_ROUTE};
pub use server::{ServerHandle, serve, shutdown_signal};
pub use state::ServerStats;
