//! The client against a scripted HTTP peer on 127.0.0.1: every way a server can answer badly
//! (wrong shapes, NaN, rows that are not distributions, k changing, HTML pages, truncated
//! bodies, dropped connections, 5xx/429, missing metadata) is a typed error, retried where
//! retrying can help, and counted exactly once by a `Budgeted` ledger when answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use advclust_core::{
    Budgeted, ClusterOracle, ErrorKind, ImageBatch, LabelOracle, ParamGuard, QueryBudget,
};
use advclust_remote::{
    Credential, KServeConfig, KServeOracle, RemoteError, RetryPolicy, protocol::InferenceRequest,
};
use serde_json::json;

/// What the scripted peer does with one request.
enum Reply {
    Status(u16, String, Vec<(String, String)>),
    Raw(Vec<u8>),
    Drop,
}

fn ok_json(v: serde_json::Value) -> Reply {
    Reply::Status(200, v.to_string(), vec![])
}

/// One scripted way of answering an infer request.
type InferScript = Box<dyn Fn(&[u8]) -> Reply + Send + Sync>;

type Handler = dyn Fn(&str, &str, &[u8], &[(String, String)]) -> Reply + Send + Sync;

/// A one-thread HTTP/1.1 peer answering each connection once with `handler`.
struct Peer {
    addr: String,
    requests: Arc<AtomicUsize>,
}

impl Peer {
    fn start(handler: Arc<Handler>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (h, c) = (handler.clone(), count.clone());
                std::thread::spawn(move || serve_one(stream, &*h, &c));
            }
        });
        Peer { addr, requests }
    }

    fn target(&self, query: &str) -> advclust_remote::KServeTarget {
        format!("kserve+http://{}/models/victim{query}", self.addr)
            .parse()
            .unwrap()
    }
}

fn serve_one(stream: TcpStream, handler: &Handler, count: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    count.fetch_add(1, Ordering::SeqCst);
    let mut stream = stream;
    match handler(&method, &path, &body, &headers) {
        Reply::Drop => {}
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Reply::Status(status, body, extra) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    }
}

fn metadata(outputs: serde_json::Value) -> serde_json::Value {
    json!({
        "name": "victim", "platform": "test",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 2, 2]}],
        "outputs": outputs,
    })
}

fn default_outputs() -> serde_json::Value {
    json!([
        {"name": "memberships", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "labels", "datatype": "INT64", "shape": [-1]}
    ])
}

/// Memberships (1 - p, p) with p the mean pixel, as a correct server answers.
fn correct_answer(body: &[u8]) -> serde_json::Value {
    let req: InferenceRequest = serde_json::from_slice(body).unwrap();
    let input = &req.inputs[0];
    let data = input.data.as_ref().unwrap().to_f32();
    let n = input.shape[0] as usize;
    let mut m = Vec::new();
    let mut labels = Vec::new();
    for img in data.chunks(data.len() / n) {
        let p = img.iter().sum::<f32>() / img.len() as f32;
        m.extend([1.0 - p, p]);
        labels.push(if p > 0.5 { 1 } else { 0 });
    }
    let wanted = req.outputs.as_ref().unwrap()[0].name.clone();
    let out = if wanted == "labels" {
        json!({"name": "labels", "datatype": "INT64", "shape": [n], "data": labels})
    } else {
        json!({"name": wanted, "datatype": "FP32", "shape": [n, 2], "data": m})
    };
    json!({"model_name": "victim", "id": req.id, "outputs": [out]})
}

/// A peer that is healthy except that `infer` answers with `infer`.
fn peer_with(
    outputs: serde_json::Value,
    infer: impl Fn(usize, &[u8]) -> Reply + Send + Sync + 'static,
) -> Peer {
    let calls = AtomicUsize::new(0);
    Peer::start(Arc::new(
        move |_m: &str, path: &str, body: &[u8], _h: &[(String, String)]| match path {
            "/v2/health/ready" | "/v2/models/victim/ready" => {
                Reply::Status(200, String::new(), vec![])
            }
            "/v2" => ok_json(json!({"name": "peer", "version": "1", "extensions": []})),
            "/v2/models/victim" => ok_json(metadata(outputs.clone())),
            "/v2/models/victim/infer" => infer(calls.fetch_add(1, Ordering::SeqCst), body),
            _ => Reply::Status(404, json!({"error": "no route"}).to_string(), vec![]),
        },
    ))
}

fn fast_config() -> advclust_remote::CheckedKServeConfig {
    KServeConfig::new()
        .read_timeout(Duration::from_millis(500))
        .retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        })
        .check()
        .unwrap()
}

fn images(n: usize) -> ImageBatch {
    let data: Vec<f32> = (0..n * 4).map(|i| (i % 7) as f32 / 7.0).collect();
    ImageBatch::unit(data, [n, 1, 2, 2]).unwrap()
}

#[test]
fn a_correct_server_answers_memberships_and_labels_in_order() {
    let peer = peer_with(default_outputs(), |_, body| ok_json(correct_answer(body)));
    let mut oracle = KServeOracle::connect(peer.target(""), fast_config()).unwrap();
    assert_eq!(oracle.num_clusters(), 2);
    assert_eq!(ClusterOracle::input_shape(&oracle), Some([1, 2, 2]));
    assert!(oracle.expect_images([1, 2, 2]).is_ok());
    assert!(matches!(
        oracle.expect_images([3, 2, 2]),
        Err(RemoteError::InputMismatch { .. })
    ));
    let batch = images(5);
    let m = oracle.memberships(&batch).unwrap();
    assert_eq!((m.n(), m.k()), (5, 2));
    let labels = oracle.labels(&batch).unwrap();
    assert_eq!(labels, m.labels());
    // A round of calls in flight gives the answers of one-by-one calls, in order.
    let calls: Vec<ImageBatch> = (1..=6).map(images).collect();
    let one_by_one: Vec<_> = calls
        .iter()
        .map(|b| oracle.memberships(b).unwrap())
        .collect();
    let mut parallel = KServeOracle::connect(
        peer.target(""),
        KServeConfig::new().in_flight(4).check().unwrap(),
    )
    .unwrap();
    let answers: Vec<_> = parallel
        .memberships_of_calls(&calls)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers, one_by_one);
}

#[test]
fn retried_calls_are_counted_once_and_failures_are_not_charged() {
    // Every other infer attempt fails: 503, 429 with Retry-After, a dropped connection.
    let peer = peer_with(default_outputs(), |i, body| match i % 6 {
        1 => Reply::Status(503, json!({"error": "busy"}).to_string(), vec![]),
        3 => Reply::Status(429, "{}".into(), vec![("Retry-After".into(), "0".into())]),
        5 => Reply::Drop,
        _ => ok_json(correct_answer(body)),
    });
    let oracle = KServeOracle::connect(peer.target(""), fast_config()).unwrap();
    let mut budgeted = Budgeted::new(oracle, QueryBudget::batch_calls(10));
    for n in 1..=6 {
        budgeted.memberships(&images(n)).unwrap();
    }
    let counts = budgeted.counts();
    assert_eq!(
        (counts.batch_calls, counts.images, counts.failed_calls),
        (6, 21, 0)
    );
    let stats = budgeted.inner().stats();
    assert_eq!(stats.retries, 5, "{stats:?}");
    assert_eq!(stats.retryable_statuses, 4);
    assert_eq!(stats.connection_failures, 1);

    // A server that is gone: a typed transport error, recorded as a failure, not charged.
    let dead = peer_with(default_outputs(), |_, _| Reply::Drop);
    let oracle = KServeOracle::connect(dead.target(""), fast_config()).unwrap();
    let mut budgeted = Budgeted::new(oracle, QueryBudget::batch_calls(1));
    let err = budgeted.memberships(&images(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.to_string().contains("4 attempt(s)"), "{err}");
    let counts = budgeted.counts();
    assert_eq!((counts.batch_calls, counts.failed_calls), (0, 1));
    assert_eq!(dead.requests.load(Ordering::SeqCst), 4 + 4);
}

#[test]
fn bad_answers_are_typed_errors() {
    let cases: Vec<(&str, InferScript)> = vec![
        (
            "wrong shape",
            Box::new(|_: &[u8]| {
                ok_json(json!({"model_name": "victim", "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 0.5]}]}))
            }),
        ),
        (
            "NaN",
            Box::new(|b: &[u8]| {
                let mut a = correct_answer(b);
                a["outputs"][0]["data"][0] = json!(null);
                ok_json(a)
            }),
        ),
        (
            "not a distribution",
            Box::new(|b: &[u8]| {
                let mut a = correct_answer(b);
                a["outputs"][0]["data"][0] = json!(3.0);
                ok_json(a)
            }),
        ),
        (
            "k changed",
            Box::new(|_: &[u8]| {
                ok_json(json!({"model_name": "victim", "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [2, 3], "data": [1, 0, 0, 1, 0, 0]}]}))
            }),
        ),
        (
            "html",
            Box::new(|_: &[u8]| {
                Reply::Status(200, "<html><body>Login</body></html>".into(), vec![])
            }),
        ),
        (
            "truncated",
            Box::new(|_: &[u8]| {
                Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"model_name\"".to_vec())
            }),
        ),
        (
            "missing output",
            Box::new(|_: &[u8]| ok_json(json!({"model_name": "victim", "outputs": []}))),
        ),
        (
            "data length",
            Box::new(|_: &[u8]| {
                ok_json(json!({"model_name": "victim", "outputs": [
            {"name": "memberships", "datatype": "FP32", "shape": [2, 2], "data": [1, 0, 0]}]}))
            }),
        ),
        (
            "header past body",
            Box::new(|_: &[u8]| {
                Reply::Status(
                    200,
                    "{}".into(),
                    vec![("Inference-Header-Content-Length".into(), "99".into())],
                )
            }),
        ),
    ];
    for (name, infer) in cases {
        let peer = peer_with(default_outputs(), move |_, b| infer(b));
        let oracle = KServeOracle::connect(peer.target(""), fast_config()).unwrap();
        let mut budgeted = Budgeted::new(oracle, QueryBudget::UNLIMITED);
        let err = budgeted.memberships(&images(2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport, "{name}: {err}");
        assert!(!err.to_string().contains('\n'), "{name}: one line: {err}");
        assert_eq!(budgeted.counts().batch_calls, 0, "{name}: not charged");
        assert_eq!(budgeted.counts().failed_calls, 1, "{name}");
    }
}

#[test]
fn rejections_and_a_spent_server_budget_are_told_apart() {
    let peer = peer_with(default_outputs(), |i, b| match i {
        0 => Reply::Status(
            400,
            json!({"error": "bad input tensor"}).to_string(),
            vec![],
        ),
        1 => ok_json(correct_answer(b)),
        _ => Reply::Status(
            403,
            json!({"error": "query budget exhausted: 2 calls"}).to_string(),
            vec![],
        ),
    });
    let mut oracle = KServeOracle::connect(peer.target(""), fast_config()).unwrap();
    let e = oracle.memberships(&images(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected);
    assert!(e.to_string().contains("bad input tensor"), "{e}");
    oracle.memberships(&images(1)).unwrap();
    let e = oracle.memberships(&images(1)).unwrap_err();
    assert!(e.is_budget_exhausted(), "{e}");
    // Neither a 400 nor a 403 is retried.
    assert_eq!(oracle.stats().retries, 0);
}

#[test]
fn metadata_problems_are_found_at_connect() {
    // No metadata endpoint.
    let peer = Peer::start(Arc::new(
        |_m: &str, path: &str, _b: &[u8], _h: &[(String, String)]| match path {
            "/v2/health/ready" | "/v2/models/victim/ready" => {
                Reply::Status(200, String::new(), vec![])
            }
            _ => Reply::Status(404, "not found".into(), vec![]),
        },
    ));
    let err = KServeOracle::connect(peer.target(""), fast_config()).unwrap_err();
    assert!(
        matches!(err, RemoteError::Rejected { status: 404, .. }),
        "{err}"
    );

    // k not given anywhere; then given by the address.
    let outputs = json!([{"name": "probs", "datatype": "FP64", "shape": [-1, -1]}]);
    let peer = peer_with(outputs, |_, b| ok_json(correct_answer(b)));
    let err = KServeOracle::connect(peer.target(""), fast_config()).unwrap_err();
    assert!(err.to_string().contains("clusters"), "{err}");
    let mut oracle = KServeOracle::connect(peer.target("?clusters=2"), fast_config()).unwrap();
    assert_eq!(oracle.memberships(&images(3)).unwrap().n(), 3);
    // The address and the metadata disagree on k.
    let peer = peer_with(default_outputs(), |_, b| ok_json(correct_answer(b)));
    assert!(KServeOracle::connect(peer.target("?clusters=3"), fast_config()).is_err());

    // Not ready.
    let peer = Peer::start(Arc::new(
        |_m: &str, _p: &str, _b: &[u8], _h: &[(String, String)]| {
            Reply::Status(503, "{}".into(), vec![])
        },
    ));
    let err = KServeOracle::connect(peer.target(""), fast_config()).unwrap_err();
    assert!(
        matches!(err, RemoteError::Unreachable { attempts: 4, .. }),
        "{err}"
    );
}

#[test]
fn the_credential_is_sent_as_a_header() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let peer = Peer::start(Arc::new(
        move |_m: &str, path: &str, body: &[u8], h: &[(String, String)]| {
            s.lock().unwrap().push(
                h.iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.clone()),
            );
            match path {
                "/v2/health/ready" | "/v2/models/victim/ready" => {
                    Reply::Status(200, String::new(), vec![])
                }
                "/v2/models/victim" => ok_json(metadata(default_outputs())),
                "/v2/models/victim/infer" => ok_json(correct_answer(body)),
                _ => Reply::Status(404, "{}".into(), vec![]),
            }
        },
    ));
    let config = KServeConfig::new()
        .credential(Credential::bearer("t0ken").unwrap())
        .check()
        .unwrap();
    let mut oracle = KServeOracle::connect(peer.target(""), config).unwrap();
    oracle.memberships(&images(1)).unwrap();
    assert!(!format!("{oracle:?}").contains("t0ken"));
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 4);
    assert!(seen.iter().all(|v| v.as_deref() == Some("Bearer t0ken")));
}
