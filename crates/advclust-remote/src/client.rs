//! [`KServeOracle`]: a victim behind an Open Inference Protocol server, as a
//! [`ClusterOracle`] and a [`LabelOracle`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use advclust_core::{ClusterId, ClusterOracle, CoreError, ImageBatch, LabelOracle, Memberships};

use crate::config::{CheckedKServeConfig, Encoding};
use crate::error::{RemoteError, Result};
use crate::protocol::{
    BINARY_DATA, BINARY_EXTENSION, Datatype, INPUT_NAME, InferenceRequest, InferenceResponse,
    LABELS_OUTPUT, MEMBERSHIPS_OUTPUT, MetadataTensor, ModelMetadata, Parameters, QUERY_COUNT,
    RequestInput, RequestOutput, ServerMetadata, TensorData, binary_size_parameter, join_body,
    split_body,
};
use crate::target::KServeTarget;
use crate::transport::{Http, TransportStats};

/// One output the client reads.
#[derive(Debug, Clone)]
struct OutputSpec {
    name: String,
}

/// What a call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Memberships,
    Labels,
}

/// An answer's one output, decoded.
struct Answer {
    values: TensorData,
    shape: Vec<i64>,
    datatype: Datatype,
}

/// A clustering victim served over the Open Inference Protocol (REST), by any server that
/// speaks it: advclust's own `advclust serve`, MLServer, KServe, Triton.
///
/// [`connect`](KServeOracle::connect) checks that server and model are ready and reads the
/// model's metadata: the input's name, datatype and layout (`[-1, C, H, W]` or flattened
/// `[-1, D]`), the memberships output and k, a labels output. Every call is one `infer`
/// request (retried on connection errors, 5xx and 429; see [`crate::RetryPolicy`]); a round of
/// calls ([`ClusterOracle::memberships_of_calls`]) keeps up to `in_flight` requests going at
/// once and returns the answers in order, so results never depend on `in_flight`. Answers
/// are checked: shape, finite values, rows that are distributions, k constant.
#[derive(Debug)]
pub struct KServeOracle {
    target: KServeTarget,
    infer_url: String,
    http: Http,
    metadata: ModelMetadata,
    input: MetadataTensor,
    memberships: Option<OutputSpec>,
    labels: Option<OutputSpec>,
    k: Option<usize>,
    binary: bool,
    in_flight: usize,
    request_ids: AtomicU64,
    last_query_count: Arc<Mutex<Option<u64>>>,
}

impl KServeOracle {
    /// Connects to `target`: server and model readiness, server and model metadata.
    pub fn connect(target: KServeTarget, config: CheckedKServeConfig) -> Result<Self> {
        let http = Http::new(
            config.connect_timeout,
            config.read_timeout,
            config.retry,
            config.credential.clone(),
            config.max_response_bytes,
            config.jitter_seed,
        );
        for path in [
            "/v2/health/ready".to_string(),
            format!("{}/ready", target.model_path()),
        ] {
            let url = target.url(&path);
            let (status, _) = http.get_status(&url)?;
            if status != 200 {
                return Err(RemoteError::NotReady { url, status });
            }
        }
        // Server metadata tells the extensions; a server without the endpoint has none.
        let server: Option<ServerMetadata> = match http.get_status(&target.url("/v2"))? {
            (200, body) => serde_json::from_slice(&body).ok(),
            _ => None,
        };
        let binary_offered = server
            .as_ref()
            .is_some_and(|s| s.extensions.iter().any(|e| e == BINARY_EXTENSION));
        let binary = match config.encoding {
            Encoding::Json => false,
            Encoding::Auto => binary_offered,
            Encoding::Binary if binary_offered => true,
            Encoding::Binary => {
                return Err(RemoteError::Metadata {
                    model: target.model.clone(),
                    reason: format!(
                        "binary encoding asked for, but the server does not advertise {BINARY_EXTENSION}"
                    ),
                });
            }
        };
        let meta_url = target.url(&target.model_path());
        let metadata: ModelMetadata =
            serde_json::from_slice(&http.get(&meta_url)?).map_err(|e| RemoteError::Metadata {
                model: target.model.clone(),
                reason: format!("not model metadata: {e}"),
            })?;
        let ModelLayout {
            input,
            memberships,
            labels,
            k,
        } = read_metadata(&target, &metadata)?;
        Ok(KServeOracle {
            infer_url: target.url(&format!("{}/infer", target.model_path())),
            target,
            http,
            metadata,
            input,
            memberships,
            labels,
            k,
            binary,
            in_flight: config.in_flight,
            request_ids: AtomicU64::new(0),
            last_query_count: Arc::new(Mutex::new(None)),
        })
    }

    /// The model's address.
    pub fn target(&self) -> &KServeTarget {
        &self.target
    }

    /// The model's metadata as the server gave it.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// True when requests and answers use the binary tensor extension.
    pub fn uses_binary(&self) -> bool {
        self.binary
    }

    /// True when the model gives memberships (a score oracle), false when labels only.
    pub fn has_memberships(&self) -> bool {
        self.memberships.is_some()
    }

    /// Transport counters: attempts, retries, failures, answers.
    pub fn stats(&self) -> TransportStats {
        self.http.stats()
    }

    /// The server's own query count: the highest one its answers carried (advclust's server
    /// puts it in the response parameters; it only grows, and with several requests in flight
    /// the answers are decoded in call order, not in the order the server counted them).
    pub fn server_query_count(&self) -> Option<u64> {
        *self
            .last_query_count
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that images of `[C, H, W]` fit the model's input, before any query.
    pub fn expect_images(&self, shape: [usize; 3]) -> Result<()> {
        let [c, h, w] = shape;
        let fits = |d: i64, n: usize| d < 0 || usize::try_from(d) == Ok(n);
        let ok = match self.input.shape.as_slice() {
            [_, dc, dh, dw] => fits(*dc, c) && fits(*dh, h) && fits(*dw, w),
            [_, dd] => c
                .checked_mul(h)
                .and_then(|x| x.checked_mul(w))
                .is_some_and(|d| fits(*dd, d)),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(RemoteError::InputMismatch {
                expected: self.input.shape.clone(),
                actual: shape,
            })
        }
    }

    fn request(&self, batch: &ImageBatch, want: Want) -> Result<(Vec<u8>, Option<usize>)> {
        let [n, c, h, w] = batch.dims();
        self.expect_images([c, h, w])?;
        let n_i = n as i64;
        let shape = if self.input.shape.len() == 2 {
            vec![n_i, (c * h * w) as i64]
        } else {
            vec![n_i, c as i64, h as i64, w as i64]
        };
        let output = match want {
            Want::Memberships => self.memberships.as_ref(),
            Want::Labels => self.labels.as_ref(),
        }
        .ok_or_else(|| RemoteError::Metadata {
            model: self.target.model.clone(),
            reason: match want {
                Want::Memberships => "the model gives no memberships output (labels only)".into(),
                Want::Labels => "the model gives no labels output".into(),
            },
        })?;
        let id = self.request_ids.fetch_add(1, Ordering::Relaxed).to_string();
        let data = TensorData::Fp32(batch.data().to_vec());
        let mut out_params = None;
        let (input, blobs) = if self.binary {
            let bytes = data.to_le_bytes(self.input.datatype)?;
            let mut p = Parameters::new();
            p.insert(BINARY_DATA.into(), true.into());
            out_params = Some(p);
            let input = RequestInput {
                name: self.input.name.clone(),
                shape,
                datatype: self.input.datatype,
                parameters: Some(binary_size_parameter(bytes.len())),
                data: None,
            };
            (input, vec![bytes])
        } else {
            let input = RequestInput {
                name: self.input.name.clone(),
                shape,
                datatype: self.input.datatype,
                parameters: None,
                data: Some(data),
            };
            (input, vec![])
        };
        let request = InferenceRequest {
            id: Some(id),
            parameters: None,
            inputs: vec![input],
            outputs: Some(vec![RequestOutput {
                name: output.name.clone(),
                parameters: out_params,
            }]),
        };
        let (body, header) = join_body(&request, &blobs)?;
        Ok((body, self.binary.then_some(header)))
    }

    /// One infer call: the chosen output of the answer, checked against the request.
    fn infer(&self, batch: &ImageBatch, want: Want) -> Result<Answer> {
        let (body, header) = self.request(batch, want)?;
        let reply = self.http.post(&self.infer_url, &body, header)?;
        let bad = |reason: String| RemoteError::BadAnswer {
            url: self.infer_url.clone(),
            reason,
        };
        let (json, mut rest) =
            split_body(&reply.body, reply.header_length).map_err(|e| bad(e.to_string()))?;
        let response: InferenceResponse = serde_json::from_slice(json).map_err(|e| {
            let start = String::from_utf8_lossy(&json[..json.len().min(80)]).into_owned();
            bad(format!("not an inference response ({e}): {start:?}"))
        })?;
        if let Some(count) = response
            .parameters
            .as_ref()
            .and_then(|p| p.get(QUERY_COUNT))
            .and_then(|v| v.as_u64())
        {
            let mut last = self
                .last_query_count
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *last = Some(last.map_or(count, |seen| seen.max(count)));
        }
        let name = match want {
            Want::Memberships => &self.memberships,
            Want::Labels => &self.labels,
        }
        .as_ref()
        .map(|o| o.name.as_str())
        .unwrap_or_default();
        // Binary tensors follow the JSON part in the order of the outputs.
        let mut found = None;
        for out in &response.outputs {
            let values = out.values(&mut rest).map_err(|e| bad(e.to_string()))?;
            if out.name == name {
                found = Some(Answer {
                    values,
                    shape: out.shape.clone(),
                    datatype: out.datatype,
                });
            }
        }
        found.ok_or_else(|| bad(format!("no output named {name}")))
    }

    fn memberships_answer(&self, batch: &ImageBatch) -> Result<Memberships> {
        let a = self.infer(batch, Want::Memberships)?;
        let bad = |reason: String| RemoteError::BadAnswer {
            url: self.infer_url.clone(),
            reason,
        };
        let n = batch.len();
        let k = self.k.unwrap_or(0);
        if !a.datatype.is_float() {
            return Err(bad(format!("memberships of datatype {}", a.datatype)));
        }
        if a.shape != [n as i64, k as i64] {
            return Err(bad(format!(
                "memberships of shape {:?} for {n} images and k = {k}",
                a.shape
            )));
        }
        Memberships::new(a.values.to_f32(), n, k).map_err(|e| bad(e.to_string()))
    }

    fn labels_answer(&self, batch: &ImageBatch) -> Result<Vec<ClusterId>> {
        let a = self.infer(batch, Want::Labels)?;
        let bad = |reason: String| RemoteError::BadAnswer {
            url: self.infer_url.clone(),
            reason,
        };
        let n = batch.len();
        if !a.datatype.is_integer() || !(a.shape == [n as i64] || a.shape == [n as i64, 1]) {
            return Err(bad(format!(
                "labels of shape {:?} and datatype {}",
                a.shape, a.datatype
            )));
        }
        a.values
            .to_i64()
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| bad(format!("negative cluster id {v}"))))
            .collect()
    }
}

/// What the client reads off a model's metadata.
struct ModelLayout {
    input: MetadataTensor,
    memberships: Option<OutputSpec>,
    labels: Option<OutputSpec>,
    k: Option<usize>,
}

/// The input, memberships output, labels output and k of a model's metadata.
fn read_metadata(target: &KServeTarget, meta: &ModelMetadata) -> Result<ModelLayout> {
    let err = |reason: String| RemoteError::Metadata {
        model: target.model.clone(),
        reason,
    };
    let input = match meta.inputs.as_slice() {
        [one] => one.clone(),
        [] => return Err(err("declares no inputs".into())),
        many => many
            .iter()
            .find(|t| t.name == INPUT_NAME)
            .cloned()
            .ok_or_else(|| err(format!("{} inputs and none named images", many.len())))?,
    };
    if !input.datatype.is_float() || !matches!(input.shape.len(), 2 | 4) {
        return Err(err(format!(
            "input {} is {} of shape {:?}; an FP32/FP64 [-1, C, H, W] or [-1, D] tensor is needed",
            input.name, input.datatype, input.shape
        )));
    }
    let by_name = |name: &str| meta.outputs.iter().find(|t| t.name == name);
    let membership_tensor = match &target.memberships_output {
        Some(name) => Some(by_name(name).cloned().unwrap_or_else(|| MetadataTensor {
            name: name.clone(),
            datatype: Datatype::Fp32,
            shape: vec![-1, -1],
        })),
        None => by_name(MEMBERSHIPS_OUTPUT)
            .or_else(|| by_name("predict_proba"))
            .cloned()
            .or_else(|| {
                let floats: Vec<_> = meta
                    .outputs
                    .iter()
                    .filter(|t| t.datatype.is_float() && t.shape.len() == 2)
                    .collect();
                (floats.len() == 1).then(|| floats[0].clone())
            }),
    };
    let k = match &membership_tensor {
        None => None,
        Some(t) => {
            let from_meta = t
                .shape
                .get(1)
                .and_then(|&d| usize::try_from(d).ok())
                .filter(|&d| d >= 2);
            match (from_meta, target.clusters) {
                (Some(a), Some(b)) if a != b => {
                    return Err(err(format!(
                        "output {} has k = {a}, the address says {b}",
                        t.name
                    )));
                }
                (Some(a), _) => Some(a),
                (None, Some(b)) => Some(b),
                (None, None) => {
                    return Err(err(format!(
                        "output {} does not say k: add ?clusters=<k> to the address",
                        t.name
                    )));
                }
            }
        }
    };
    let labels = match &target.labels_output {
        Some(name) => Some(name.clone()),
        None => by_name(LABELS_OUTPUT)
            .or_else(|| by_name("predict"))
            .map(|t| t.name.clone()),
    };
    if membership_tensor.is_none() && labels.is_none() {
        return Err(err("no memberships or labels output found".into()));
    }
    Ok(ModelLayout {
        input,
        memberships: membership_tensor.map(|t| OutputSpec { name: t.name }),
        labels: labels.map(|name| OutputSpec { name }),
        k,
    })
}

impl ClusterOracle for KServeOracle {
    /// k from the metadata (or the address); 0 for a labels-only model, whose every
    /// memberships call fails.
    fn num_clusters(&self) -> usize {
        self.k.unwrap_or(0)
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        match self.input.shape.as_slice() {
            [_, c, h, w] => Some([
                usize::try_from(*c).ok()?,
                usize::try_from(*h).ok()?,
                usize::try_from(*w).ok()?,
            ]),
            _ => None,
        }
    }

    fn memberships(&mut self, batch: &ImageBatch) -> advclust_core::Result<Memberships> {
        Ok(self.memberships_answer(batch)?)
    }

    fn memberships_of_calls(
        &mut self,
        batches: &[ImageBatch],
    ) -> Vec<advclust_core::Result<Memberships>> {
        let workers = self.in_flight.min(batches.len());
        if workers <= 1 {
            return advclust_core::calls_one_by_one(self, batches);
        }
        // Workers take the next call in order; after a failure none is started. The calls
        // started are a prefix of the round, all of which finish: their answers are
        // returned, so a ledger counts every call the server answered.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let slots: Vec<Mutex<Option<advclust_core::Result<Memberships>>>> =
            batches.iter().map(|_| Mutex::new(None)).collect();
        let this = &*self;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !failed.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(batch) = batches.get(i) else { break };
                        let answer = this.memberships_answer(batch).map_err(CoreError::from);
                        if answer.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map_while(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }
}

impl LabelOracle for KServeOracle {
    fn input_shape(&self) -> Option<[usize; 3]> {
        ClusterOracle::input_shape(self)
    }

    fn labels(&mut self, batch: &ImageBatch) -> advclust_core::Result<Vec<ClusterId>> {
        Ok(self.labels_answer(batch)?)
    }
}
