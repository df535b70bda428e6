//! The protocol surface: health, metadata, JSON and binary inference, label-only mode, and
//! the refusal of bad requests.

mod common;

use advclust_core::ParamGuard;
use advclust_remote::protocol::{
    Datatype, InferenceRequest, ModelMetadata, RequestInput, RequestOutput, ServerMetadata,
    TensorData, binary_size_parameter, join_body,
};
use advclust_serve::{ServeConfig, ServedModel, ServerHandle};
use common::*;
use serde_json::json;

#[test]
fn health_metadata_and_readiness() {
    let server = start(config());
    let url = server.url();
    assert_eq!(get(&format!("{url}/v2/health/live")).status, 200);
    assert_eq!(get(&format!("{url}/v2/health/ready")).status, 200);

    let meta: ServerMetadata = serde_json::from_slice(&get(&format!("{url}/v2")).body).unwrap();
    assert_eq!(meta.name, "advclust-serve");
    assert_eq!(meta.extensions, vec!["binary_tensor_data".to_string()]);

    for path in ["/v2/models/m", "/v2/models/m/versions/1"] {
        let a = get(&format!("{url}{path}"));
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        let m: ModelMetadata = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.versions, Some(vec!["1".into()]));
        assert_eq!(m.inputs.len(), 1);
        assert_eq!(m.inputs[0].name, "images");
        assert_eq!(m.inputs[0].datatype, Datatype::Fp32);
        assert_eq!(m.inputs[0].shape, vec![-1, 2, 3, 2]);
        let outs: Vec<_> = m
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.datatype, o.shape.clone()))
            .collect();
        assert_eq!(
            outs,
            vec![
                ("memberships", Datatype::Fp32, vec![-1, 3]),
                ("labels", Datatype::Int64, vec![-1])
            ]
        );
    }
    assert_eq!(get(&format!("{url}/v2/models/m/ready")).status, 200);
    assert_eq!(
        get(&format!("{url}/v2/models/m/versions/1/ready")).status,
        200
    );

    for path in [
        "/v2/models/other",
        "/v2/models/m/versions/2",
        "/v2/models/other/ready",
        "/v2/models/m/versions/2/ready",
        "/v2/nowhere",
    ] {
        let a = get(&format!("{url}{path}"));
        assert_eq!(a.status, 404, "{path}");
        assert!(!a.error().is_empty());
    }
    // Wrong method: 405 with an error object.
    let a = get(&format!("{url}/v2/models/m/infer"));
    assert_eq!(a.status, 405);
    assert!(!a.error().is_empty());
    server.shutdown().unwrap();
}

#[test]
fn json_inference_equals_the_oracle() {
    let server = start(config());
    let infer = format!("{}/v2/models/m/infer", server.url());
    let data = images(5);
    let want = direct(&data);
    let want_bits: Vec<u32> = want.data().iter().map(|x| x.to_bits()).collect();
    let want_labels: Vec<i64> = want.labels().iter().map(|&l| l as i64).collect();
    assert!(want_labels.contains(&0) && want_labels.contains(&2));

    let a = post_json(&infer, &json_request(&data));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    let v = a.json();
    assert_eq!(v["id"], "req-1");
    assert_eq!(v["model_name"], "m");
    assert_eq!(v["model_version"], "1");
    assert_eq!(v["outputs"][0]["shape"], json!([5, 3]));
    assert_eq!(v["outputs"][0]["datatype"], "FP32");
    assert_eq!(v["outputs"][1]["shape"], json!([5]));
    assert_eq!(v["outputs"][1]["datatype"], "INT64");
    let (m, l, count) = decoded(&a);
    assert_eq!(m.unwrap(), want_bits);
    assert_eq!(l.unwrap(), want_labels);
    assert_eq!(count, 1);

    // The same input again: the same answer, one more query.
    let again = post_json(&infer, &json_request(&data));
    let (m2, l2, count2) = decoded(&again);
    assert_eq!(
        (m2.unwrap(), l2.unwrap(), count2),
        (want_bits.clone(), want_labels.clone(), 2)
    );

    // Nested arrays, a flattened shape, FP64 and the version route all read alike.
    let nested: Vec<Vec<Vec<Vec<f32>>>> = data
        .chunks(12)
        .map(|img| {
            img.chunks(6)
                .map(|ch| ch.chunks(2).map(<[f32]>::to_vec).collect())
                .collect()
        })
        .collect();
    let bodies = [
        json!({"inputs": [{"name": "images", "shape": [5, 2, 3, 2], "datatype": "FP32", "data": nested}]}),
        json!({"inputs": [{"name": "images", "shape": [5, 12], "datatype": "FP32", "data": data}]}),
        json!({"inputs": [{"name": "images", "shape": [5, 2, 3, 2], "datatype": "FP64", "data": data}]}),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let a = post_json(
            &format!("{}/v2/models/m/versions/1/infer", server.url()),
            body,
        );
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(a.json().get("id").is_none());
        let (m, l, count) = decoded(&a);
        assert_eq!(m.unwrap(), want_bits, "body {i}");
        assert_eq!(l.unwrap(), want_labels);
        assert_eq!(count, 3 + i as u64);
    }

    // Only the labels.
    let mut only = json_request(&data);
    only["outputs"] = json!([{"name": "labels"}]);
    let a = post_json(&infer, &only);
    let (m, l, _) = decoded(&a);
    assert!(m.is_none());
    assert_eq!(l.unwrap(), want_labels);
    assert_eq!(server.stats().answered_requests, 6);
    assert_eq!(server.stats().answered_images, 30);
    server.shutdown().unwrap();
}

fn binary_request(
    data: &[f32],
    outputs: Option<Vec<RequestOutput>>,
    all_binary: bool,
) -> (Vec<u8>, usize) {
    let n = data.len() / IMAGE_LEN;
    let blob = TensorData::Fp32(data.to_vec())
        .to_le_bytes(Datatype::Fp32)
        .unwrap();
    let parameters = all_binary.then(|| {
        let mut p = serde_json::Map::new();
        p.insert("binary_data_output".into(), true.into());
        p
    });
    let req = InferenceRequest {
        id: Some("bin".into()),
        parameters,
        inputs: vec![RequestInput {
            name: "images".into(),
            shape: vec![n as i64, 2, 3, 2],
            datatype: Datatype::Fp32,
            parameters: Some(binary_size_parameter(blob.len())),
            data: None,
        }],
        outputs,
    };
    join_body(&req, &[blob]).unwrap()
}

fn binary_output(name: &str, binary: bool) -> RequestOutput {
    let mut p = serde_json::Map::new();
    p.insert("binary_data".into(), binary.into());
    RequestOutput {
        name: name.into(),
        parameters: Some(p),
    }
}

#[test]
fn binary_requests_and_answers_equal_json_bit_for_bit() {
    let server = start(config());
    let infer = format!("{}/v2/models/m/infer", server.url());
    let data = images(7);
    let json_answer = post_json(&infer, &json_request(&data));
    let (jm, jl, _) = decoded(&json_answer);

    // Binary in, JSON out.
    let (body, header) = binary_request(&data, None, false);
    let a = post(&infer, &body, Some(header));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header_length, None);
    assert_eq!(a.json()["id"], "bin");
    let (m, l, count) = decoded(&a);
    assert_eq!(
        (m.as_ref(), l.as_ref(), count),
        (jm.as_ref(), jl.as_ref(), 2)
    );

    // Binary in, binary out (request-wide parameter).
    let (body, header) = binary_request(&data, None, true);
    let a = post(&infer, &body, Some(header));
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type.as_deref(), Some("application/octet-stream"));
    let n = a.header_length.expect("binary answer has the header");
    assert_eq!(a.body.len(), n + 7 * 3 * 4 + 7 * 8);
    let (response, _) = outputs(&a);
    assert!(response.outputs.iter().all(|o| o.data.is_none()));
    let (m, l, count) = decoded(&a);
    assert_eq!(
        (m.as_ref(), l.as_ref(), count),
        (jm.as_ref(), jl.as_ref(), 3)
    );

    // Per-output choice: memberships binary, labels JSON.
    let outs = vec![
        binary_output("memberships", true),
        binary_output("labels", false),
    ];
    let (body, header) = binary_request(&data, Some(outs), false);
    let a = post(&infer, &body, Some(header));
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), a.header_length.unwrap() + 7 * 3 * 4);
    let (response, _) = outputs(&a);
    assert!(response.outputs[0].data.is_none() && response.outputs[1].data.is_some());
    let (m, l, _) = decoded(&a);
    assert_eq!((m.as_ref(), l.as_ref()), (jm.as_ref(), jl.as_ref()));

    // An output's own `binary_data: false` overrides the request-wide default.
    let (body, header) = binary_request(&data, Some(vec![binary_output("labels", false)]), true);
    let a = post(&infer, &body, Some(header));
    assert_eq!(a.header_length, None);
    assert_eq!(decoded(&a).1.as_ref(), jl.as_ref());
    server.shutdown().unwrap();
}

#[test]
fn label_only_mode_offers_labels_only() {
    let model = ServedModel::new("m", Box::new(Brightness)).labels_only(true);
    let server = ServerHandle::start("127.0.0.1:0", model, config()).unwrap();
    let url = server.url();
    let m: ModelMetadata =
        serde_json::from_slice(&get(&format!("{url}/v2/models/m")).body).unwrap();
    assert_eq!(m.outputs.len(), 1);
    assert_eq!(m.outputs[0].name, "labels");

    let data = images(4);
    let want: Vec<i64> = direct(&data).labels().iter().map(|&l| l as i64).collect();
    let a = post_json(&format!("{url}/v2/models/m/infer"), &json_request(&data));
    assert_eq!(a.status, 200);
    let (mem, labels, count) = decoded(&a);
    assert!(mem.is_none());
    assert_eq!(labels.unwrap(), want);
    assert_eq!(count, 1);

    let mut ask = json_request(&data);
    ask["outputs"] = json!([{"name": "memberships"}]);
    let a = post_json(&format!("{url}/v2/models/m/infer"), &ask);
    assert_eq!(a.status, 400);
    assert!(a.error().contains("label-only"), "{}", a.error());
    assert_eq!(server.stats().answered_requests, 1);
    server.shutdown().unwrap();
}

#[test]
fn bad_requests_are_refused_without_model_work() {
    let config = ServeConfig::new()
        .max_images_per_request(8)
        .max_body_bytes(4096)
        .check()
        .unwrap();
    let server = start(config);
    let url = server.url();
    let infer = format!("{url}/v2/models/m/infer");
    let good = images(2);
    let input = |shape: serde_json::Value, datatype: &str, data: serde_json::Value| json!({"inputs": [{"name": "images", "shape": shape, "datatype": datatype, "data": data}]});
    let mut out_of_box = good.clone();
    out_of_box[3] = 1.5;
    let mut negative = good.clone();
    negative[0] = -0.01;
    let json_cases = [
        (
            "wrong shape",
            input(json!([2, 1, 3, 4]), "FP32", json!(good)),
            400,
        ),
        (
            "wrong flat shape",
            input(json!([2, 13]), "FP32", json!(good)),
            400,
        ),
        ("rank 3", input(json!([2, 6, 2]), "FP32", json!(good)), 400),
        (
            "negative dim",
            input(json!([-2, 2, 3, 2]), "FP32", json!(good)),
            400,
        ),
        (
            "empty batch",
            input(json!([0, 2, 3, 2]), "FP32", json!([])),
            400,
        ),
        (
            "data too short",
            input(json!([3, 2, 3, 2]), "FP32", json!(good)),
            400,
        ),
        (
            "above 1",
            input(json!([2, 2, 3, 2]), "FP32", json!(out_of_box)),
            400,
        ),
        (
            "below 0",
            input(json!([2, 2, 3, 2]), "FP32", json!(negative)),
            400,
        ),
        (
            "integer type",
            input(json!([2, 2, 3, 2]), "INT64", json!(good)),
            400,
        ),
        (
            "no data",
            json!({"inputs": [{"name": "images", "shape": [2, 2, 3, 2], "datatype": "FP32"}]}),
            400,
        ),
        (
            "string data",
            input(json!([1, 2, 3, 2]), "FP32", json!(vec!["a"; 12])),
            400,
        ),
        (
            "too many images",
            input(json!([9, 2, 3, 2]), "FP32", json!([])),
            413,
        ),
        (
            "overflowing shape",
            input(json!([1, i64::MAX]), "FP32", json!([])),
            400,
        ),
        ("no input", json!({"inputs": []}), 400),
        (
            "wrong input name",
            json!({"inputs": [{"name": "x", "shape": [2, 2, 3, 2], "datatype": "FP32", "data": good}]}),
            400,
        ),
        (
            "unknown output",
            {
                let mut r = json_request(&good);
                r["outputs"] = json!([{"name": "logits"}]);
                r
            },
            400,
        ),
        (
            "non-bool binary flag",
            {
                let mut r = json_request(&good);
                r["parameters"] = json!({"binary_data_output": "yes"});
                r
            },
            400,
        ),
    ];
    for (what, body, status) in &json_cases {
        let a = post_json(&infer, body);
        assert_eq!(a.status, *status, "{what}: {}", a.text());
        assert!(!a.error().is_empty(), "{what}");
    }

    // Raw bodies: truncated JSON, too big, binary parts that do not fit.
    let full = serde_json::to_vec(&json_request(&good)).unwrap();
    let nan = {
        let mut d = good.clone();
        d[5] = f32::NAN;
        d
    };
    let bin = |data: &[f32], claimed: usize| {
        let blob = TensorData::Fp32(data.to_vec())
            .to_le_bytes(Datatype::Fp32)
            .unwrap();
        let req = json!({"inputs": [{"name": "images", "shape": [2, 2, 3, 2], "datatype": "FP32",
                         "parameters": {"binary_data_size": claimed}}]});
        join_body(&req, &[blob]).unwrap()
    };
    let (nan_body, nan_header) = bin(&nan, 96);
    let (past_body, past_header) = bin(&good, 97);
    let (short_body, short_header) = bin(&good, 95);
    let raw_cases: Vec<(&str, Vec<u8>, Option<usize>, u16)> = vec![
        ("truncated JSON", full[..full.len() / 2].to_vec(), None, 400),
        ("not JSON", b"images please".to_vec(), None, 400),
        ("body too big", vec![b' '; 5000], None, 413),
        ("NaN pixel", nan_body, Some(nan_header), 400),
        ("binary size past body", past_body, Some(past_header), 400),
        (
            "binary size short of the tensor",
            short_body,
            Some(short_header),
            400,
        ),
        ("header past body", full.clone(), Some(full.len() + 1), 400),
        ("binary size without header", bin(&good, 96).0, None, 400),
    ];
    for (what, body, header, status) in raw_cases {
        let a = post(&infer, &body, header);
        assert_eq!(a.status, status, "{what}: {}", a.text());
        assert!(!a.error().is_empty(), "{what}");
    }
    let a = post(&infer, &full, None);
    assert_eq!(a.status, 200);
    let bad_header = agent()
        .post(&infer)
        .header("Inference-Header-Content-Length", "lots")
        .send(&full[..])
        .unwrap();
    assert_eq!(bad_header.status().as_u16(), 400);

    // Unknown models: 404 with an error object.
    for path in ["/v2/models/x/infer", "/v2/models/m/versions/9/infer"] {
        let a = post(&format!("{url}{path}"), &full, None);
        assert_eq!(a.status, 404, "{path}");
        assert!(a.error().contains("unknown model"));
    }

    // The server is alive, nothing bad was answered, and the next good request is query 2.
    assert_eq!(get(&format!("{url}/v2/health/live")).status, 200);
    let stats = server.stats();
    assert_eq!(stats.answered_requests, 1);
    assert_eq!(stats.oracle_failures, 0);
    let (_, _, count) = decoded(&post(&infer, &full, None));
    assert_eq!(count, 2);
    server.shutdown().unwrap();
}

#[test]
fn models_without_a_fixed_shape_take_any_four_dimensional_batch() {
    let model = ServedModel::new("any", Box::new(AnyShape));
    let server = ServerHandle::start("127.0.0.1:0", model, config()).unwrap();
    let url = server.url();
    let m: ModelMetadata =
        serde_json::from_slice(&get(&format!("{url}/v2/models/any")).body).unwrap();
    assert_eq!(m.inputs[0].shape, vec![-1, -1, -1, -1]);
    let infer = format!("{url}/v2/models/any/infer");
    let ok = json!({"inputs": [{"name": "images", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": vec![0.5; 4]}]});
    assert_eq!(post_json(&infer, &ok).status, 200);
    for shape in [
        json!([1, 4]),
        json!([1, 4_294_967_296i64, 4_294_967_296i64, 4_294_967_296i64]),
    ] {
        let body = json!({"inputs": [{"name": "images", "shape": shape, "datatype": "FP32", "data": vec![0.5; 4]}]});
        let a = post_json(&infer, &body);
        assert_eq!(a.status, 400, "{}", a.text());
        assert!(!a.error().is_empty());
    }
    server.shutdown().unwrap();
}

#[test]
fn invalid_models_and_configs_do_not_start() {
    let cases = [
        ServedModel::with_replicas("m", vec![]),
        ServedModel::new("bad name", Box::new(Brightness)),
        ServedModel::new("m", Box::new(Brightness)).version(""),
        ServedModel::with_replicas("m", vec![Box::new(Brightness), Box::new(AnyShape)]),
    ];
    for model in cases {
        let shown = format!("{model:?}");
        assert!(
            ServerHandle::start("127.0.0.1:0", model, config()).is_err(),
            "{shown}"
        );
    }
    assert!(ServeConfig::new().max_body_bytes(0).check().is_err());
}
