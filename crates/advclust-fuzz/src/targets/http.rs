//! The Open Inference Protocol bodies, both ways.
//!
//! * `http-infer-request`: a real in-process `advclust-serve` server on loopback, sent raw
//!   HTTP requests with mutated paths, `Inference-Header-Content-Length` values, JSON parts and
//!   binary parts. It must answer every one with 200 (and a well-formed response) or a 4xx
//!   carrying `{"error": ...}`; a 5xx, a dropped connection or a panic in a worker fails.
//! * `http-infer-response`: `advclust-remote`'s `KServeOracle`, connected to a scripted server
//!   that answers its infer calls with mutated bodies (and header values).
//! * `http-model-metadata`: `KServeOracle::connect` against mutated server and model metadata.
//!
//! A header part holding `=` stands for the length of the JSON part, so that seeds stay valid
//! whatever the JSON part's mutations do to its length.

use std::net::SocketAddr;
use std::time::Duration;

use advclust_core::{ClusterOracle, ImageBatch, LabelOracle, Memberships, ParamGuard};
use advclust_remote::protocol::{ErrorBody, InferenceResponse, split_body};
use advclust_remote::{KServeConfig, KServeOracle, KServeTarget, RetryPolicy};
use advclust_serve::{ServeConfig, ServedModel, ServerHandle};

use super::data::Seeds;
use super::http_wire::{Script, ScriptedServer, header_value, roundtrip};
use super::{Outcome, Setup, Target, TargetInfo, check};
use crate::mutator::{Layout, PartKind, parts};
use crate::{FuzzError, Result};

/// Images of the served model: 1 x 4 x 4.
const SHAPE: [usize; 3] = [1, 4, 4];

/// Two clusters by mean brightness.
struct Brightness;

impl ClusterOracle for Brightness {
    fn num_clusters(&self) -> usize {
        2
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(SHAPE)
    }

    fn memberships(&mut self, batch: &ImageBatch) -> advclust_core::Result<Memberships> {
        let rows: Vec<f32> = (0..batch.len())
            .flat_map(|i| {
                let img = batch.image(i).unwrap_or(&[]);
                let p = (img.iter().sum::<f32>() / img.len().max(1) as f32).clamp(0.0, 1.0);
                [1.0 - p, p]
            })
            .collect();
        Memberships::new(rows, batch.len(), 2)
    }
}

/// The header value a header part stands for (`None`: no header).
fn header_for(part: &[u8], json_len: usize) -> Option<String> {
    match part {
        [] => None,
        b"=" => Some(json_len.to_string()),
        other => Some(header_value(other)),
    }
}

fn json_part(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

fn f32_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Request seeds: `[path, header, JSON, binary]`.
pub fn request_seeds() -> Seeds {
    use serde_json::json;
    let px: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
    let infer = b"/v2/models/victim/infer".to_vec();
    let seed = |path: &[u8], header: &[u8], j: serde_json::Value, bin: Vec<u8>| {
        parts::join(&[path.to_vec(), header.to_vec(), json_part(j), bin])
    };
    let nested: Vec<Vec<f32>> = px.chunks(4).map(|r| r.to_vec()).collect();
    vec![
        (
            "json-flat.bin".into(),
            seed(
                &infer,
                b"",
                json!({"inputs": [{"name": "images", "shape": [1, 1, 4, 4], "datatype": "FP32", "data": px}]}),
                vec![],
            ),
        ),
        (
            "json-nested-fp64-labels.bin".into(),
            seed(
                &infer,
                b"",
                json!({"id": "7", "inputs": [{"name": "images", "shape": [1, 1, 4, 4], "datatype": "FP64", "data": [[nested]]}], "outputs": [{"name": "labels"}]}),
                vec![],
            ),
        ),
        (
            "json-two-flattened-binary-out.bin".into(),
            seed(
                b"/v2/models/victim/versions/1/infer",
                b"",
                json!({"inputs": [{"name": "images", "shape": [2, 16], "datatype": "FP32", "data": [px.clone(), px.clone()]}], "outputs": [{"name": "memberships", "parameters": {"binary_data": true}}, {"name": "labels"}]}),
                vec![],
            ),
        ),
        (
            "binary-in-binary-out.bin".into(),
            seed(
                &infer,
                b"=",
                json!({"parameters": {"binary_data_output": true}, "inputs": [{"name": "images", "shape": [1, 1, 4, 4], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}),
                f32_le(&px),
            ),
        ),
    ]
}

struct InferRequest {
    server: ServerHandle,
}

impl InferRequest {
    fn judge(&self, answer: super::http_wire::Answer) -> Outcome {
        match answer.status {
            200 => {
                let header = answer
                    .header("inference-header-content-length")
                    .and_then(|v| v.parse::<usize>().ok());
                let body = answer.body.as_slice();
                let parsed = split_body(body, header)
                    .map_err(|e| e.to_string())
                    .and_then(|(json, rest)| {
                        let r: InferenceResponse =
                            serde_json::from_slice(json).map_err(|e| e.to_string())?;
                        let mut rest = rest;
                        for out in &r.outputs {
                            out.values(&mut rest).map_err(|e| e.to_string())?;
                        }
                        Ok(r)
                    });
                match parsed {
                    Ok(_) => Outcome::Accepted,
                    Err(e) => Outcome::Finding(format!("a 200 answer that does not parse: {e}")),
                }
            }
            400..=499 => match serde_json::from_slice::<ErrorBody>(&answer.body) {
                Ok(e) => Outcome::Rejected(format!("{}: {}", answer.status, e.error)),
                Err(_) => Outcome::Finding(format!(
                    "a {} answer without an error object: {:?}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(120)])
                )),
            },
            s => Outcome::Finding(format!(
                "the server answered {s}: {}",
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
            )),
        }
    }
}

impl Target for InferRequest {
    fn name(&self) -> &'static str {
        "http-infer-request"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 4);
        // Only characters a request target may hold, and not too many: hyper answers others
        // itself (an empty 400, a 414) and that says nothing about advclust-serve.
        let mut path: String = header_value(&p[0])
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%?".contains(*c))
            .take(1024)
            .collect();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let header = header_for(&p[1], p[2].len());
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        match &header {
            Some(h) => head.push_str(&format!(
                "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {h}\r\n"
            )),
            None => head.push_str("Content-Type: application/json\r\n"),
        }
        let mut body = p[2].clone();
        body.extend_from_slice(&p[3]);
        match roundtrip(self.server.addr(), &head, &body) {
            Ok(a) => self.judge(a),
            Err(e) => Outcome::Finding(format!("no HTTP answer: {e}")),
        }
    }
}

/// `advclust-serve`'s request decoding, through a real server on loopback.
pub const HTTP_INFER_REQUEST: TargetInfo = TargetInfo {
    name: "http-infer-request",
    corpus: "http-infer-request",
    layout: Layout::Parts(&[
        PartKind::Text,
        PartKind::Text,
        PartKind::Json,
        PartKind::Bytes,
    ]),
    max_len: 1 << 18,
    ci_iterations: 60_000,
    about: "inference requests to advclust-serve: path, header length, JSON and binary parts",
    build: |_: &Setup| -> Result<Box<dyn Target>> {
        let config = ServeConfig::new()
            .worker_threads(2)
            .max_images_per_request(64)
            .check()
            .map_err(|e| FuzzError::Setup(format!("serve config: {e}")))?;
        let server = ServerHandle::start(
            "127.0.0.1:0",
            ServedModel::new("victim", Box::new(Brightness)),
            config,
        )
        .map_err(|e| FuzzError::Setup(format!("starting advclust-serve: {e}")))?;
        Ok(Box::new(InferRequest { server }))
    },
};

/// Server metadata advertising the binary extension.
fn server_metadata() -> Vec<u8> {
    json_part(
        serde_json::json!({"name": "scripted", "version": "1", "extensions": ["binary_tensor_data"]}),
    )
}

/// Model metadata of the 1 x 4 x 4, k = 2 model.
fn model_metadata() -> Vec<u8> {
    json_part(serde_json::json!({
        "name": "victim", "versions": ["1"], "platform": "scripted",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 1, 4, 4]}],
        "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "labels", "datatype": "INT64", "shape": [-1]}
        ]
    }))
}

/// A valid JSON answer for two images.
fn two_image_answer() -> serde_json::Value {
    serde_json::json!({
        "model_name": "victim", "model_version": "1", "id": "0",
        "parameters": {"query_count": 5},
        "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [2, 2], "data": [0.25, 0.75, 0.5, 0.5]},
            {"name": "labels", "datatype": "INT64", "shape": [2], "data": [1, 0]}
        ]
    })
}

/// Response seeds: `[header, JSON, binary]`.
pub fn response_seeds() -> Seeds {
    use serde_json::json;
    let seed =
        |h: &[u8], j: serde_json::Value, b: Vec<u8>| parts::join(&[h.to_vec(), json_part(j), b]);
    let binary = json!({
        "model_name": "victim",
        "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
            {"name": "labels", "datatype": "INT32", "shape": [2, 1], "parameters": {"binary_data_size": 8}}
        ]
    });
    let mut bin = f32_le(&[0.1, 0.9, 0.7, 0.3]);
    bin.extend([1i32, 0].iter().flat_map(|v| v.to_le_bytes()));
    vec![
        ("json.bin".into(), seed(b"", two_image_answer(), vec![])),
        (
            "json-nested-fp64.bin".into(),
            seed(
                b"",
                json!({"model_name": "victim", "outputs": [
                    {"name": "memberships", "datatype": "FP64", "shape": [2, 2], "data": [[0.2, 0.8], [0.6, 0.4]]},
                    {"name": "labels", "datatype": "UINT8", "shape": [2], "data": [true, false]}
                ]}),
                vec![],
            ),
        ),
        ("binary.bin".into(), seed(b"=", binary, bin)),
    ]
}

fn client_config() -> Result<advclust_remote::CheckedKServeConfig> {
    KServeConfig::new()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(5))
        .retry(RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        })
        .check()
        .map_err(|e| FuzzError::Setup(format!("client config: {e}")))
}

fn target_of(addr: SocketAddr) -> Result<KServeTarget> {
    format!("kserve+http://{addr}/models/victim")
        .parse()
        .map_err(|e| FuzzError::Setup(format!("target: {e}")))
}

/// Runs memberships and labels calls on two images: accepted if either answer is accepted,
/// a finding if an accepted answer has the wrong size.
fn query(oracle: &mut KServeOracle) -> Outcome {
    let Some(shape) = ClusterOracle::input_shape(oracle) else {
        return Outcome::Rejected("no image shape".into());
    };
    let d = shape.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    let Some(d) = d.filter(|&d| d <= 4096) else {
        return Outcome::Accepted;
    };
    let Ok(batch) = ImageBatch::unit(vec![0.5; 2 * d], [2, shape[0], shape[1], shape[2]]) else {
        return Outcome::Rejected("batch".into());
    };
    let k = oracle.num_clusters();
    let m = match oracle.memberships(&batch) {
        Ok(m) => check(m.n() == 2 && m.k() == k, || {
            format!(
                "memberships of {}x{} for 2 images and k = {k}",
                m.n(),
                m.k()
            )
        }),
        Err(e) => Outcome::Rejected(e.to_string()),
    };
    let l = match oracle.labels(&batch) {
        Ok(l) => check(l.len() == 2, || format!("{} labels for 2 images", l.len())),
        Err(e) => Outcome::Rejected(e.to_string()),
    };
    m.and(l)
}

struct InferResponse {
    server: ScriptedServer,
    oracle: KServeOracle,
}

impl Target for InferResponse {
    fn name(&self) -> &'static str {
        "http-infer-response"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 3);
        let header = header_for(&p[0], p[1].len());
        let mut body = p[1].clone();
        body.extend_from_slice(&p[2]);
        self.server.update(|s| {
            s.infer_header = header;
            s.infer_body = body;
        });
        query(&mut self.oracle)
    }
}

/// `KServeOracle`'s reading of infer answers, from a scripted server.
pub const HTTP_INFER_RESPONSE: TargetInfo = TargetInfo {
    name: "http-infer-response",
    corpus: "http-infer-response",
    layout: Layout::Parts(&[PartKind::Text, PartKind::Json, PartKind::Bytes]),
    max_len: 1 << 18,
    ci_iterations: 60_000,
    about: "infer answers read by KServeOracle (JSON and binary outputs, header length)",
    build: |_: &Setup| -> Result<Box<dyn Target>> {
        let server = ScriptedServer::start(Script {
            server_metadata: server_metadata(),
            model_metadata: model_metadata(),
            infer_header: None,
            infer_body: json_part(two_image_answer()),
        })?;
        let oracle = KServeOracle::connect(target_of(server.addr())?, client_config()?)
            .map_err(|e| FuzzError::Setup(format!("connecting to the scripted server: {e}")))?;
        Ok(Box::new(InferResponse { server, oracle }))
    },
};

/// Metadata seeds: `[server metadata, model metadata]`.
pub fn metadata_seeds() -> Seeds {
    use serde_json::json;
    let flat = json_part(json!({
        "name": "victim", "platform": "sklearn",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 16]}],
        "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}, {"name": "predict", "datatype": "INT64", "shape": [-1]}]
    }));
    vec![
        (
            "advclust.bin".into(),
            parts::join(&[server_metadata(), model_metadata()]),
        ),
        (
            "mlserver-flat.bin".into(),
            parts::join(&[
                json_part(json!({"name": "mlserver", "version": "1.6", "extensions": []})),
                flat,
            ]),
        ),
    ]
}

struct ModelMetadataTarget {
    server: ScriptedServer,
    target: KServeTarget,
    config: advclust_remote::CheckedKServeConfig,
}

impl Target for ModelMetadataTarget {
    fn name(&self) -> &'static str {
        "http-model-metadata"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 2);
        self.server.update(|s| {
            s.server_metadata = p[0].clone();
            s.model_metadata = p[1].clone();
        });
        match KServeOracle::connect(self.target.clone(), self.config.clone()) {
            Ok(mut oracle) => {
                let _ = oracle.expect_images(SHAPE);
                query(&mut oracle)
            }
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// `KServeOracle::connect`'s reading of server and model metadata.
pub const HTTP_MODEL_METADATA: TargetInfo = TargetInfo {
    name: "http-model-metadata",
    corpus: "http-model-metadata",
    layout: Layout::Parts(&[PartKind::Json, PartKind::Json]),
    max_len: 1 << 16,
    ci_iterations: 30_000,
    about: "server and model metadata read by KServeOracle::connect",
    build: |_: &Setup| -> Result<Box<dyn Target>> {
        let server = ScriptedServer::start(Script {
            server_metadata: server_metadata(),
            model_metadata: model_metadata(),
            infer_header: None,
            infer_body: json_part(two_image_answer()),
        })?;
        Ok(Box::new(ModelMetadataTarget {
            target: target_of(server.addr())?,
            config: client_config()?,
            server,
        }))
    },
};
