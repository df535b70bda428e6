//! The Open Inference Protocol (KServe v2) REST messages, and the binary tensor data extension.
//!
//! Both sides of advclust speak it: [`crate::KServeOracle`] as a client and `advclust-serve` as
//! a server. Only what a clustering victim needs is typed: metadata, inference requests and
//! responses with numeric tensors, the error object. Tensor data in JSON may be flat or nested
//! arrays (the protocol allows both); it is flattened on reading. Sizes come from the peer,
//! so every element count is computed with checked arithmetic and checked against the data.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{RemoteError, Result};

/// The server extension name of the binary tensor data extension.
pub const BINARY_EXTENSION: &str = "binary_tensor_data";
/// The HTTP header giving the length of the JSON part of a body that carries binary tensors.
pub const INFERENCE_HEADER_LENGTH: &str = "Inference-Header-Content-Length";
/// The `parameters` key giving the size in bytes of a tensor sent after the JSON part.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// The `parameters` key of a requested output asking for it in binary.
pub const BINARY_DATA: &str = "binary_data";
/// The request `parameters` key asking for every output in binary.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// Name of the image input of advclust's served models.
pub const INPUT_NAME: &str = "images";
/// Name of the soft-membership output (FP32 `[B, K]`) of advclust's served models; the
/// client looks for it first.
pub const MEMBERSHIPS_OUTPUT: &str = "memberships";
/// Name of the cluster-id output (INT64 `[B]`) of advclust's served models.
pub const LABELS_OUTPUT: &str = "labels";
/// The response `parameters` key under which advclust's server reports its query count.
pub const QUERY_COUNT: &str = "query_count";

/// Free-form `parameters` of a request, tensor or response (name to string, number or bool).
pub type Parameters = serde_json::Map<String, serde_json::Value>;

/// Element types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    /// Bytes per element in the binary encoding (`None` for the variable-size `BYTES`).
    pub fn element_size(self) -> Option<usize> {
        use Datatype::*;
        match self {
            Bool | Uint8 | Int8 => Some(1),
            Uint16 | Int16 | Fp16 => Some(2),
            Uint32 | Int32 | Fp32 => Some(4),
            Uint64 | Int64 | Fp64 => Some(8),
            Bytes => None,
        }
    }

    /// True for the floating-point types advclust can read memberships from (FP32, FP64).
    pub fn is_float(self) -> bool {
        matches!(self, Datatype::Fp32 | Datatype::Fp64)
    }

    /// True for the integer types advclust can read cluster ids from.
    pub fn is_integer(self) -> bool {
        use Datatype::*;
        matches!(
            self,
            Uint8 | Uint16 | Uint32 | Uint64 | Int8 | Int16 | Int32 | Int64
        )
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(s.as_str().unwrap_or("?"))
    }
}

/// Numeric tensor contents, row-major. Written as a flat JSON array; read from flat or nested
/// arrays of numbers or booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats (what advclust sends: images, memberships).
    Fp32(Vec<f32>),
    /// Numbers as read from JSON, or 64-bit floats.
    Fp64(Vec<f64>),
    /// Integers (cluster ids).
    Int64(Vec<i64>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `f32` (nearest), whatever their stored type.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::Fp32(v) => v.clone(),
            TensorData::Fp64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Int64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers; a non-integral or out-of-range value is an error.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let from_float = |i: usize, x: f64| {
            if x.fract() == 0.0 && x.abs() <= 9.0e15 {
                Ok(x as i64)
            } else {
                Err(RemoteError::NotAnInteger { index: i, value: x })
            }
        };
        match self {
            TensorData::Int64(v) => Ok(v.clone()),
            TensorData::Fp64(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| from_float(i, x))
                .collect(),
            TensorData::Fp32(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| from_float(i, x as f64))
                .collect(),
        }
    }

    /// Little-endian bytes of these values as `datatype` (FP32, FP64 or INT64).
    pub fn to_le_bytes(&self, datatype: Datatype) -> Result<Vec<u8>> {
        Ok(match datatype {
            Datatype::Fp32 => self.to_f32().iter().flat_map(|x| x.to_le_bytes()).collect(),
            Datatype::Fp64 => match self {
                TensorData::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                other => other
                    .to_f32()
                    .iter()
                    .flat_map(|&x| (x as f64).to_le_bytes())
                    .collect(),
            },
            Datatype::Int64 => self
                .to_i64()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            other => return Err(RemoteError::UnsupportedDatatype(other)),
        })
    }

    /// Decodes `count` little-endian elements of `datatype` from `bytes` (exactly that many
    /// bytes). FP16 and BYTES are not numeric tensors advclust reads.
    pub fn from_le_bytes(datatype: Datatype, count: usize, bytes: &[u8]) -> Result<Self> {
        let size = datatype
            .element_size()
            .filter(|_| datatype != Datatype::Fp16)
            .ok_or(RemoteError::UnsupportedDatatype(datatype))?;
        let expected = count.checked_mul(size).ok_or(RemoteError::SizeOverflow)?;
        if bytes.len() != expected {
            return Err(RemoteError::BinarySizeMismatch {
                expected,
                actual: bytes.len(),
            });
        }
        let mut chunks = bytes.chunks_exact(size);
        let arr = |c: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            a
        };
        use Datatype::*;
        Ok(match datatype {
            Fp32 => TensorData::Fp32(
                chunks
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Fp64 => TensorData::Fp64(chunks.map(|c| f64::from_le_bytes(arr(c))).collect()),
            Bool | Uint8 => TensorData::Int64(chunks.map(|c| c[0] as i64).collect()),
            Int8 => TensorData::Int64(chunks.map(|c| c[0] as i8 as i64).collect()),
            Uint16 => TensorData::Int64(
                chunks
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                    .collect(),
            ),
            Int16 => TensorData::Int64(
                chunks
                    .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                    .collect(),
            ),
            Uint32 => TensorData::Int64(
                chunks
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            Int32 => TensorData::Int64(
                chunks
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            Int64 => TensorData::Int64(chunks.map(|c| i64::from_le_bytes(arr(c))).collect()),
            Uint64 => {
                let mut out = Vec::with_capacity(count);
                for (i, c) in chunks.by_ref().enumerate() {
                    let v = u64::from_le_bytes(arr(c));
                    out.push(i64::try_from(v).map_err(|_| RemoteError::NotAnInteger {
                        index: i,
                        value: v as f64,
                    })?);
                }
                TensorData::Int64(out)
            }
            Fp16 | Bytes => unreachable!("rejected above"),
        })
    }
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::Fp32(v) => v.serialize(s),
            TensorData::Fp64(v) => v.serialize(s),
            TensorData::Int64(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Nesting deeper than any tensor rank the protocol carries is refused (stack bound).
        const MAX_DEPTH: usize = 16;
        struct Flat<'a> {
            out: &'a mut Vec<f64>,
            depth: usize,
        }
        impl<'de> de::DeserializeSeed<'de> for Flat<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Flat<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a boolean, or a (nested) array of them")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
                self.out.push(v);
                Ok(())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
                self.out.push(v as f64);
                Ok(())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
                self.out.push(v as f64);
                Ok(())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
                self.out.push(if v { 1.0 } else { 0.0 });
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                if self.depth >= MAX_DEPTH {
                    return Err(de::Error::custom("tensor data nested too deeply"));
                }
                while seq
                    .next_element_seed(Flat {
                        out: &mut *self.out,
                        depth: self.depth + 1,
                    })?
                    .is_some()
                {}
                Ok(())
            }
        }
        let mut out = Vec::new();
        d.deserialize_any(Flat {
            out: &mut out,
            depth: 0,
        })?;
        Ok(TensorData::Fp64(out))
    }
}

/// Number of elements of a tensor of `shape`, checked against overflow; negative (variable)
/// dimensions are an error here (a concrete tensor has none).
pub fn element_count(shape: &[i64]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).map_err(|_| RemoteError::NegativeDimension(d))?;
        acc.checked_mul(d).ok_or(RemoteError::SizeOverflow)
    })
}

/// A tensor's description in model metadata (`-1` marks a variable dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub datatype: Datatype,
    /// Shape, `-1` for variable dimensions.
    pub shape: Vec<i64>,
}

/// `GET v2`: the server's name, version and extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// Server name.
    pub name: String,
    /// Server version.
    pub version: String,
    /// Protocol extensions it supports (e.g. [`BINARY_EXTENSION`]).
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `GET v2/models/{name}`: the model's inputs and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Versions the server has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    /// The framework or runtime serving it.
    #[serde(default)]
    pub platform: String,
    /// Inputs the model takes.
    #[serde(default)]
    pub inputs: Vec<MetadataTensor>,
    /// Outputs the model gives.
    #[serde(default)]
    pub outputs: Vec<MetadataTensor>,
}

/// A tensor of an inference request (an input) or response (an output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferTensor {
    /// Tensor name (from the model metadata).
    pub name: String,
    /// Shape of the whole batch.
    pub shape: Vec<i64>,
    /// Element type.
    pub datatype: Datatype,
    /// Tensor parameters (e.g. [`BINARY_DATA_SIZE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Contents, absent when sent in binary after the JSON part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TensorData>,
}

impl InferTensor {
    /// The tensor's values: inline JSON, or its binary bytes taken from `rest` (the binary
    /// part of the body, consumed in tensor order), checked against the element count its
    /// shape implies.
    pub fn values(&self, rest: &mut &[u8]) -> Result<TensorData> {
        let count = element_count(&self.shape)?;
        let values = match (binary_size(self.parameters.as_ref())?, &self.data) {
            (Some(size), _) => {
                TensorData::from_le_bytes(self.datatype, count, take_binary(rest, size)?)?
            }
            (None, Some(d)) => d.clone(),
            (None, None) => return Err(RemoteError::NoData(self.name.clone())),
        };
        if values.len() != count {
            return Err(RemoteError::DataLengthMismatch {
                name: self.name.clone(),
                expected: count,
                actual: values.len(),
            });
        }
        Ok(values)
    }
}

/// One input tensor of an inference request.
pub type RequestInput = InferTensor;

/// One output tensor of an inference response.
pub type ResponseOutput = InferTensor;

/// One output a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// Output parameters (e.g. [`BINARY_DATA`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `POST v2/models/{name}/infer` body (its JSON part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// Request id, echoed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Input tensors.
    pub inputs: Vec<RequestInput>,
    /// Outputs wanted (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// The answer to an inference request (its JSON part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// Model that answered.
    pub model_name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The request's id, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response parameters (advclust's server puts [`QUERY_COUNT`] here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// Output tensors.
    pub outputs: Vec<ResponseOutput>,
}

/// The protocol's error object: `{"error": "<message>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// The `binary_data_size` parameter of a tensor, if any (must be a non-negative integer).
pub fn binary_size(parameters: Option<&Parameters>) -> Result<Option<usize>> {
    match parameters.and_then(|p| p.get(BINARY_DATA_SIZE)) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| RemoteError::BadParameter {
                name: BINARY_DATA_SIZE,
                value: v.to_string(),
            }),
    }
}

/// A `parameters` object holding one `binary_data_size`.
pub fn binary_size_parameter(bytes: usize) -> Parameters {
    let mut p = Parameters::new();
    p.insert(
        BINARY_DATA_SIZE.into(),
        serde_json::Value::from(bytes as u64),
    );
    p
}

/// Splits a body into its JSON part and the binary part that follows. `header_length` is the
/// value of [`INFERENCE_HEADER_LENGTH`] (`None`: all JSON).
pub fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8])> {
    match header_length {
        None => Ok((body, &[])),
        Some(n) if n <= body.len() => Ok(body.split_at(n)),
        Some(n) => Err(RemoteError::HeaderLengthPastBody {
            header_length: n,
            body: body.len(),
        }),
    }
}

/// Takes `size` bytes off the front of `rest` (the next binary tensor).
pub fn take_binary<'a>(rest: &mut &'a [u8], size: usize) -> Result<&'a [u8]> {
    if size > rest.len() {
        return Err(RemoteError::BinarySizeMismatch {
            expected: size,
            actual: rest.len(),
        });
    }
    let (head, tail) = rest.split_at(size);
    *rest = tail;
    Ok(head)
}

/// Joins a JSON part and binary tensors into one body; returns it with the JSON part's length
/// (for [`INFERENCE_HEADER_LENGTH`]).
pub fn join_body(json: &impl Serialize, blobs: &[Vec<u8>]) -> Result<(Vec<u8>, usize)> {
    let mut body = serde_json::to_vec(json).map_err(|e| RemoteError::Json(e.to_string()))?;
    let header = body.len();
    for b in blobs {
        body.extend_from_slice(b);
    }
    Ok((body, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_flat_data_read_alike() {
        let flat: TensorData = serde_json::from_str("[1, 2.5, 3, 4]").unwrap();
        let nested: TensorData = serde_json::from_str("[[1, 2.5], [3, 4]]").unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.to_f32(), vec![1.0, 2.5, 3.0, 4.0]);
        let bools: TensorData = serde_json::from_str("[true, false]").unwrap();
        assert_eq!(bools.to_i64().unwrap(), vec![1, 0]);
        assert!(serde_json::from_str::<TensorData>("[\"a\"]").is_err());
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(serde_json::from_str::<TensorData>(&deep).is_err());
    }

    #[test]
    fn binary_round_trip_and_sizes() {
        let d = TensorData::Fp32(vec![0.1, -2.0, 3.5]);
        let bytes = d.to_le_bytes(Datatype::Fp32).unwrap();
        assert_eq!(bytes.len(), 12);
        assert_eq!(
            TensorData::from_le_bytes(Datatype::Fp32, 3, &bytes).unwrap(),
            d
        );
        assert!(TensorData::from_le_bytes(Datatype::Fp32, 4, &bytes).is_err());
        assert!(TensorData::from_le_bytes(Datatype::Fp32, usize::MAX, &bytes).is_err());
        let ids = TensorData::Int64(vec![3, 0, 9]);
        let b = ids.to_le_bytes(Datatype::Int64).unwrap();
        assert_eq!(
            TensorData::from_le_bytes(Datatype::Int64, 3, &b).unwrap(),
            ids
        );
        assert_eq!(element_count(&[256, 1, 28, 28]).unwrap(), 200_704);
        assert!(element_count(&[-1, 3]).is_err());
        assert!(element_count(&[i64::MAX, i64::MAX]).is_err());
    }

    #[test]
    fn bodies_split_where_the_header_says() {
        let req = InferenceRequest {
            id: Some("7".into()),
            parameters: None,
            inputs: vec![RequestInput {
                name: "images".into(),
                shape: vec![1, 2],
                datatype: Datatype::Fp32,
                parameters: Some(binary_size_parameter(8)),
                data: None,
            }],
            outputs: None,
        };
        let blob = TensorData::Fp32(vec![0.25, 0.75])
            .to_le_bytes(Datatype::Fp32)
            .unwrap();
        let (body, header) = join_body(&req, &[blob]).unwrap();
        let (json, mut rest) = split_body(&body, Some(header)).unwrap();
        let back: InferenceRequest = serde_json::from_slice(json).unwrap();
        let v = back.inputs[0].values(&mut rest).unwrap();
        assert_eq!(v.to_f32(), vec![0.25, 0.75]);
        assert!(rest.is_empty());
        assert!(split_body(&body, Some(body.len() + 1)).is_err());
    }
}
