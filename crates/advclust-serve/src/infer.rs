//! Inference requests in, answers out: parsing and validating a body (JSON or JSON plus
//! binary tensors) against the model, and encoding its memberships and labels.

use advclust_core::{ImageBatch, Memberships};
use advclust_remote::protocol::{
    BINARY_DATA, Datatype, InferenceRequest, InferenceResponse, Parameters, QUERY_COUNT,
    ResponseOutput, TensorData, binary_size_parameter, join_body, split_body,
};

use crate::error::{Result, ServeError};
use crate::model::{INPUT_NAME, LABELS_OUTPUT, MEMBERSHIPS_OUTPUT, ModelSpec};

pub use advclust_remote::protocol::BINARY_DATA_OUTPUT;

/// An output the model offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Memberships,
    Labels,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Memberships => MEMBERSHIPS_OUTPUT,
            Output::Labels => LABELS_OUTPUT,
        }
    }
}

/// An output a request asks for, and whether in binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub output: Output,
    pub binary: bool,
}

/// A validated inference request.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub id: Option<String>,
    pub batch: ImageBatch,
    pub outputs: Vec<Wanted>,
}

/// An encoded answer: the body, and the length of its JSON part when binary tensors follow.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// Parses and validates a request body; `header_length` is the value of
/// `Inference-Header-Content-Length`, if sent. No model work happens here.
pub(crate) fn decode(
    spec: &ModelSpec,
    body: &[u8],
    header_length: Option<usize>,
    max_images: usize,
) -> Result<Decoded> {
    let (json, mut rest) = split_body(body, header_length)?;
    let request: InferenceRequest = serde_json::from_slice(json)
        .map_err(|e| ServeError::bad(format!("malformed inference request: {e}")))?;
    let outputs = wanted_outputs(spec, &request)?;
    let input = match request.inputs.as_slice() {
        [one] => one,
        many => {
            return Err(ServeError::bad(format!(
                "the model takes exactly one input ({INPUT_NAME:?}), the request has {}",
                many.len()
            )));
        }
    };
    if input.name != INPUT_NAME {
        return Err(ServeError::bad(format!(
            "unknown input {:?}: the model's input is {INPUT_NAME:?}",
            input.name
        )));
    }
    if !input.datatype.is_float() {
        return Err(ServeError::bad(format!(
            "input {INPUT_NAME:?} has datatype {}; FP32 (or FP64) expected",
            input.datatype
        )));
    }
    let dims = image_dims(spec, &input.shape, max_images)?;
    let values = input.values(&mut rest)?;
    if !rest.is_empty() {
        return Err(ServeError::bad(format!(
            "{} byte(s) of binary data after the last tensor",
            rest.len()
        )));
    }
    let pixels = match values {
        TensorData::Fp32(v) => v,
        other => other.to_f32(),
    };
    let batch = ImageBatch::unit(pixels, dims)
        .map_err(|e| ServeError::bad(format!("input {INPUT_NAME:?}: {e}")))?;
    Ok(Decoded {
        id: request.id,
        batch,
        outputs,
    })
}

/// A boolean parameter (absent: `None`; anything but a boolean: refused).
fn bool_parameter(parameters: Option<&Parameters>, name: &str) -> Result<Option<bool>> {
    match parameters.and_then(|p| p.get(name)) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| ServeError::bad(format!("parameter {name} must be a boolean, got {v}"))),
    }
}

/// The outputs asked for (all the model offers when the request names none).
fn wanted_outputs(spec: &ModelSpec, request: &InferenceRequest) -> Result<Vec<Wanted>> {
    let default_binary =
        bool_parameter(request.parameters.as_ref(), BINARY_DATA_OUTPUT)?.unwrap_or(false);
    let offered: &[Output] = if spec.labels_only {
        &[Output::Labels]
    } else {
        &[Output::Memberships, Output::Labels]
    };
    let requested = match &request.outputs {
        Some(list) if !list.is_empty() => list,
        _ => {
            return Ok(offered
                .iter()
                .map(|&output| Wanted {
                    output,
                    binary: default_binary,
                })
                .collect());
        }
    };
    let mut wanted: Vec<Wanted> = Vec::with_capacity(requested.len());
    for r in requested {
        let output = match r.name.as_str() {
            MEMBERSHIPS_OUTPUT if spec.labels_only => {
                return Err(ServeError::bad(format!(
                    "output {MEMBERSHIPS_OUTPUT:?} is not available: the model is served \
                     label-only (output {LABELS_OUTPUT:?})"
                )));
            }
            MEMBERSHIPS_OUTPUT => Output::Memberships,
            LABELS_OUTPUT => Output::Labels,
            other => {
                let names: Vec<_> = offered.iter().map(|o| o.name()).collect();
                return Err(ServeError::bad(format!(
                    "unknown output {other:?}; the model offers {names:?}"
                )));
            }
        };
        if wanted.iter().any(|w| w.output == output) {
            return Err(ServeError::bad(format!(
                "output {:?} requested twice",
                output.name()
            )));
        }
        let binary = bool_parameter(r.parameters.as_ref(), BINARY_DATA)?.unwrap_or(default_binary);
        wanted.push(Wanted { output, binary });
    }
    Ok(wanted)
}

/// `[B, C, H, W]` of an input shape `[B, C, H, W]` or `[B, C*H*W]`, checked against the
/// model and the batch limit before any data is read.
fn image_dims(spec: &ModelSpec, shape: &[i64], max_images: usize) -> Result<[usize; 4]> {
    let dims = shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                ServeError::bad(format!("negative dimension {d} in input shape {shape:?}"))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let batch = dims.first().copied().unwrap_or(0);
    if dims.len() >= 2 && batch == 0 {
        return Err(ServeError::bad("the request holds no image (batch size 0)"));
    }
    if batch > max_images {
        return Err(ServeError::TooLarge(format!(
            "{batch} images in one request; this server takes at most {max_images}"
        )));
    }
    let expected = match spec.input_shape {
        Some([c, h, w]) => match c.checked_mul(h).and_then(|x| x.checked_mul(w)) {
            Some(flat) => format!("[B, {c}, {h}, {w}] or [B, {flat}]"),
            None => format!("[B, {c}, {h}, {w}]"),
        },
        None => "[B, C, H, W]".to_string(),
    };
    match (dims.as_slice(), spec.input_shape) {
        (&[b, c, h, w], Some(s)) if [c, h, w] == s => Ok([b, c, h, w]),
        (&[b, c, h, w], None) => Ok([b, c, h, w]),
        (&[b, flat], Some([c, h, w]))
            if Some(flat) == c.checked_mul(h).and_then(|x| x.checked_mul(w)) =>
        {
            Ok([b, c, h, w])
        }
        _ => Err(ServeError::bad(format!(
            "input shape {shape:?} does not fit the model, which takes {expected}"
        ))),
    }
}

/// Refuses an oracle answer that does not fit the request (`batch_size` rows) and the model
/// (`k` columns).
pub(crate) fn check_answer(
    spec: &ModelSpec,
    batch_size: usize,
    memberships: &Memberships,
) -> Result<()> {
    if memberships.n() != batch_size || memberships.k() != spec.k {
        return Err(ServeError::Internal(format!(
            "the oracle answered {} x {} memberships for {batch_size} image(s) and k = {}",
            memberships.n(),
            memberships.k(),
            spec.k
        )));
    }
    Ok(())
}

/// Encodes the answer to a request of `outputs` from the oracle's memberships (already
/// checked by [`check_answer`]).
pub(crate) fn encode(
    spec: &ModelSpec,
    id: Option<String>,
    outputs: &[Wanted],
    batch_size: usize,
    memberships: &Memberships,
    query_count: u64,
) -> Result<Encoded> {
    let dim = |d: usize| i64::try_from(d).map_err(|_| ServeError::Internal("size overflow".into()));
    let (n, k) = (dim(batch_size)?, dim(spec.k)?);
    let mut blobs = Vec::new();
    let mut tensors = Vec::with_capacity(outputs.len());
    for wanted in outputs {
        let (shape, datatype, data) = match wanted.output {
            Output::Memberships => (
                vec![n, k],
                Datatype::Fp32,
                TensorData::Fp32(memberships.data().to_vec()),
            ),
            Output::Labels => {
                let labels = memberships
                    .labels()
                    .into_iter()
                    .map(dim)
                    .collect::<Result<Vec<i64>>>()?;
                (vec![n], Datatype::Int64, TensorData::Int64(labels))
            }
        };
        let (parameters, data) = if wanted.binary {
            let bytes = data
                .to_le_bytes(datatype)
                .map_err(|e| ServeError::Internal(e.to_string()))?;
            let p = binary_size_parameter(bytes.len());
            blobs.push(bytes);
            (Some(p), None)
        } else {
            (None, Some(data))
        };
        tensors.push(ResponseOutput {
            name: wanted.output.name().into(),
            shape,
            datatype,
            parameters,
            data,
        });
    }
    let mut parameters = Parameters::new();
    parameters.insert(QUERY_COUNT.into(), query_count.into());
    let response = InferenceResponse {
        model_name: spec.name.clone(),
        model_version: Some(spec.version.clone()),
        id,
        parameters: Some(parameters),
        outputs: tensors,
    };
    if blobs.is_empty() {
        let body =
            serde_json::to_vec(&response).map_err(|e| ServeError::Internal(e.to_string()))?;
        return Ok(Encoded {
            body,
            header_length: None,
        });
    }
    let (body, header) =
        join_body(&response, &blobs).map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(Encoded {
        body,
        header_length: Some(header),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(labels_only: bool) -> ModelSpec {
        ModelSpec {
            name: "m".into(),
            version: "1".into(),
            k: 2,
            input_shape: Some([1, 2, 2]),
            labels_only,
        }
    }

    #[test]
    fn shapes_fit_or_are_refused() {
        let s = spec(false);
        assert_eq!(image_dims(&s, &[3, 1, 2, 2], 10).unwrap(), [3, 1, 2, 2]);
        assert_eq!(image_dims(&s, &[3, 4], 10).unwrap(), [3, 1, 2, 2]);
        assert!(image_dims(&s, &[3, 5], 10).is_err());
        assert!(image_dims(&s, &[3, 1, 2], 10).is_err());
        assert!(image_dims(&s, &[0, 1, 2, 2], 10).is_err());
        assert!(image_dims(&s, &[-1, 1, 2, 2], 10).is_err());
        assert_eq!(
            image_dims(&s, &[11, 1, 2, 2], 10)
                .unwrap_err()
                .http_status(),
            413
        );
        assert!(image_dims(&s, &[], 10).is_err());
    }

    #[test]
    fn outputs_default_to_all_offered() {
        let req: InferenceRequest =
            serde_json::from_str(r#"{"inputs": [], "parameters": {"binary_data_output": true}}"#)
                .unwrap();
        let all = wanted_outputs(&spec(false), &req).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|w| w.binary));
        assert_eq!(wanted_outputs(&spec(true), &req).unwrap().len(), 1);
        let bad: InferenceRequest = serde_json::from_str(
            r#"{"inputs": [], "outputs": [{"name": "labels"}, {"name": "labels"}]}"#,
        )
        .unwrap();
        assert!(wanted_outputs(&spec(false), &bad).is_err());
    }
}
