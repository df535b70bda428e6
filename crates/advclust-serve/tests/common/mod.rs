//! Test oracles and a small blocking HTTP client.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use advclust_core::{
    ClusterOracle, CoreError, ImageBatch, Memberships, ParamGuard, Result as CoreResult,
};
use advclust_remote::protocol::{InferenceResponse, TensorData, split_body};
use advclust_serve::{CheckedServeConfig, ServeConfig, ServedModel, ServerHandle};
use serde_json::{Value, json};

/// `[C, H, W]` of the test model (not square, so that a mix-up of H and W shows).
pub const SHAPE: [usize; 3] = [2, 3, 2];
/// Values per image.
pub const IMAGE_LEN: usize = 12;
/// Clusters of the test model.
pub const K: usize = 3;

/// Memberships from mean brightness: dark, mid and bright images, softly.
#[derive(Debug, Clone, Copy)]
pub struct Brightness;

impl ClusterOracle for Brightness {
    fn num_clusters(&self) -> usize {
        K
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(SHAPE)
    }
    fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
        brightness_memberships(batch)
    }
}

fn brightness_memberships(batch: &ImageBatch) -> CoreResult<Memberships> {
    let mut logits = Vec::with_capacity(batch.len() * K);
    for i in 0..batch.len() {
        let img = batch.image(i).expect("image in range");
        let p = img.iter().sum::<f32>() / img.len() as f32;
        for c in [0.1f32, 0.5, 0.9] {
            logits.push(-30.0 * (p - c) * (p - c));
        }
    }
    Memberships::from_logits(&logits, batch.len(), K)
}

/// Like [`Brightness`], with no fixed input shape.
#[derive(Debug, Clone, Copy)]
pub struct AnyShape;

impl ClusterOracle for AnyShape {
    fn num_clusters(&self) -> usize {
        K
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        None
    }
    fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
        brightness_memberships(batch)
    }
}

/// A rendezvous: every call waits until `parties` calls are inside at once (or fails after
/// a timeout), and records the most calls inside at once.
#[derive(Debug, Clone)]
pub struct Gate {
    state: Arc<(Mutex<(usize, usize)>, Condvar)>,
    parties: usize,
    inside: Arc<AtomicUsize>,
    pub max_inside: Arc<AtomicUsize>,
}

impl Gate {
    pub fn new(parties: usize) -> Self {
        Gate {
            state: Arc::new((Mutex::new((0, 0)), Condvar::new())),
            parties,
            inside: Arc::new(AtomicUsize::new(0)),
            max_inside: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// A [`Brightness`] oracle that passes a [`Gate`] on every call.
#[derive(Debug, Clone)]
pub struct Gated(pub Gate);

impl ClusterOracle for Gated {
    fn num_clusters(&self) -> usize {
        K
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(SHAPE)
    }
    fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
        let gate = &self.0;
        let now = gate.inside.fetch_add(1, Ordering::SeqCst) + 1;
        gate.max_inside.fetch_max(now, Ordering::SeqCst);
        let (lock, cvar) = &*gate.state;
        let mut arrived = lock.lock().unwrap();
        arrived.0 += 1;
        cvar.notify_all();
        let (arrived, timeout) = cvar
            .wait_timeout_while(arrived, Duration::from_secs(20), |a| a.0 < gate.parties)
            .unwrap();
        drop(arrived);
        gate.inside.fetch_sub(1, Ordering::SeqCst);
        if timeout.timed_out() {
            return Err(CoreError::Transport(
                "gate: the other calls never came".into(),
            ));
        }
        brightness_memberships(batch)
    }
}

/// A [`Brightness`] oracle that takes `delay` per call, reports when a call started, and
/// records the most calls inside at once (over every clone).
#[derive(Debug, Clone)]
pub struct Slow {
    pub delay: Duration,
    pub started: Arc<AtomicUsize>,
    pub inside: Arc<AtomicUsize>,
    pub max_inside: Arc<AtomicUsize>,
}

impl Slow {
    pub fn new(delay: Duration) -> Self {
        Slow {
            delay,
            started: Arc::default(),
            inside: Arc::default(),
            max_inside: Arc::default(),
        }
    }
}

impl ClusterOracle for Slow {
    fn num_clusters(&self) -> usize {
        K
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(SHAPE)
    }
    fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_inside.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.inside.fetch_sub(1, Ordering::SeqCst);
        brightness_memberships(batch)
    }
}

pub fn config() -> CheckedServeConfig {
    ServeConfig::new().check().unwrap()
}

/// A server of one [`Brightness`] replica named `m`.
pub fn start(config: CheckedServeConfig) -> ServerHandle {
    ServerHandle::start(
        "127.0.0.1:0",
        ServedModel::new("m", Box::new(Brightness)),
        config,
    )
    .unwrap()
}

/// A client that reads 4xx/5xx bodies instead of failing.
pub fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(30))
}

pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// An HTTP answer: status, headers of interest, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub header_length: Option<usize>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error message of an error answer (panics if the body is not an error object).
    pub fn error(&self) -> String {
        let v = self.json();
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error object: {v}"))
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read(mut r: ureq::http::Response<ureq::Body>) -> Result<Answer, ureq::Error> {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = r.status().as_u16();
    let content_type = header("content-type");
    let header_length = header("inference-header-content-length").map(|v| v.parse().unwrap());
    let retry_after = header("retry-after");
    let body = r.body_mut().with_config().limit(256 << 20).read_to_vec()?;
    Ok(Answer {
        status,
        content_type,
        header_length,
        retry_after,
        body,
    })
}

pub fn try_get(agent: &ureq::Agent, url: &str) -> Result<Answer, ureq::Error> {
    read(agent.get(url).call()?)
}

pub fn get(url: &str) -> Answer {
    try_get(&agent(), url).unwrap()
}

/// POSTs `body`, with `Inference-Header-Content-Length` when `header_length` is given.
pub fn try_post(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
    header_length: Option<usize>,
) -> Result<Answer, ureq::Error> {
    let mut req = agent.post(url);
    req = match header_length {
        Some(n) => req
            .header("Content-Type", "application/octet-stream")
            .header("Inference-Header-Content-Length", n.to_string()),
        None => req.header("Content-Type", "application/json"),
    };
    read(req.send(body)?)
}

pub fn post(url: &str, body: &[u8], header_length: Option<usize>) -> Answer {
    try_post(&agent(), url, body, header_length).unwrap()
}

pub fn post_json(url: &str, body: &Value) -> Answer {
    post(url, &serde_json::to_vec(body).unwrap(), None)
}

/// `n` images, image `i` of brightness about `(i + 1) / (n + 1)`, with a small pattern.
pub fn images(n: usize) -> Vec<f32> {
    (0..n * IMAGE_LEN)
        .map(|j| {
            let (i, p) = (j / IMAGE_LEN, j % IMAGE_LEN);
            let base = (i + 1) as f32 / (n + 1) as f32;
            (base + 0.01 * (p as f32 - 6.0)).clamp(0.0, 1.0)
        })
        .collect()
}

/// A JSON inference request of `data` as `[n, C, H, W]` FP32.
pub fn json_request(data: &[f32]) -> Value {
    let n = data.len() / IMAGE_LEN;
    json!({
        "id": "req-1",
        "inputs": [{
            "name": "images",
            "shape": [n, SHAPE[0], SHAPE[1], SHAPE[2]],
            "datatype": "FP32",
            "data": data,
        }]
    })
}

/// The oracle's own answer.
pub fn direct(data: &[f32]) -> Memberships {
    let n = data.len() / IMAGE_LEN;
    let batch = ImageBatch::unit(data.to_vec(), [n, SHAPE[0], SHAPE[1], SHAPE[2]]).unwrap();
    Brightness.memberships(&batch).unwrap()
}

/// Outputs of an answer (JSON or binary), by name, as raw tensor data.
pub fn outputs(answer: &Answer) -> (InferenceResponse, Vec<(String, TensorData)>) {
    let (json, mut rest) = split_body(&answer.body, answer.header_length).unwrap();
    let response: InferenceResponse = serde_json::from_slice(json).unwrap();
    let tensors = response
        .outputs
        .iter()
        .map(|o| {
            let v = o.values(&mut rest).unwrap();
            (o.name.clone(), v)
        })
        .collect();
    assert!(rest.is_empty(), "bytes left after the last output");
    (response, tensors)
}

/// Memberships (as f32 bits) and labels of an answer.
pub fn decoded(answer: &Answer) -> (Option<Vec<u32>>, Option<Vec<i64>>, u64) {
    let (response, tensors) = outputs(answer);
    let mut m = None;
    let mut l = None;
    for (name, v) in tensors {
        match name.as_str() {
            "memberships" => m = Some(v.to_f32().iter().map(|x| x.to_bits()).collect()),
            "labels" => l = Some(v.to_i64().unwrap()),
            other => panic!("unexpected output {other}"),
        }
    }
    let count = response.parameters.as_ref().unwrap()["query_count"]
        .as_u64()
        .unwrap();
    (m, l, count)
}

/// The value of the metric line `name{labels}` in a Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}
