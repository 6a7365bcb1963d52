//! The Open Inference Protocol's binary tensor data extension, as KServe ("Binary Tensor Data
//! Extension" of the V2 protocol) and Triton (`docs/protocol/extension_binary_data.md` of
//! triton-inference-server/server, extension name `binary_tensor_data`) define it.
//!
//! A request or response body is a JSON object followed by the binary data of some of its
//! tensors, in the order the tensors appear in the JSON. The `Inference-Header-Content-Length`
//! HTTP header gives the JSON object's length in bytes (`Content-Length` stays the whole body's);
//! each tensor sent as binary data has `parameters.binary_data_size`, its data's length in bytes,
//! and no `data`. A tensor's binary data is its elements in row-major order, little-endian, each
//! at its datatype's native size without stride or padding; a BOOL element is one byte, 1 for
//! true and 0 for false; a BYTES element is a 4-byte little-endian unsigned length followed by
//! that many bytes.
//!
//! An output is answered as binary data when the request's output has `parameters.binary_data:
//! true`, or the request has `parameters.binary_data_output: true` and the output does not say
//! otherwise ([`crate::protocol::InferenceRequest::wants_binary`]). Such a response has
//! `Content-Type: application/octet-stream` and its own `Inference-Header-Content-Length`.

use axum::http::{HeaderMap, HeaderName};
use tract_onnx::prelude::{Datum, Tensor, f16, tract_ndarray};

use crate::error::ApiError;
use crate::protocol::{BINARY_DATA_SIZE, InferenceRequest};
use crate::tensor::{DataType, TensorData, element_count};

/// The header giving the length of a body's JSON object, in bytes.
pub const HEADER_LENGTH: HeaderName = HeaderName::from_static("inference-header-content-length");

/// The length `Inference-Header-Content-Length` gives, if the request has the header.
///
/// Errors: 400 when it is not a decimal byte count.
pub fn header_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(&HEADER_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the Inference-Header-Content-Length header must be the JSON header's length in bytes, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// Splits a body into its JSON object and, when the request announced one with
/// `Inference-Header-Content-Length`, its binary data (what follows the JSON).
///
/// Errors: 400 when the announced length is past the end of the body.
pub fn split_body(
    body: &[u8],
    header_length: Option<u64>,
) -> Result<(&[u8], Option<&[u8]>), ApiError> {
    let Some(announced) = header_length else {
        return Ok((body, None));
    };
    match usize::try_from(announced) {
        Ok(n) if n <= body.len() => {
            let (json, binary) = body.split_at(n);
            Ok((json, Some(binary)))
        }
        _ => Err(ApiError::bad_request(format!(
            "the Inference-Header-Content-Length header says the JSON header is {announced} bytes, but the whole body is {} bytes",
            body.len()
        ))),
    }
}

/// Gives each input announced by `parameters.binary_data_size` its bytes, taken one after the
/// other from `binary` in the order of the request's inputs.
///
/// Errors: 400 naming the input when an input announces binary data and the request has none
/// (no `Inference-Header-Content-Length`), when fewer bytes remain than an input announces, and
/// when bytes remain after the last input's.
pub fn bind_binary_inputs<'a>(
    req: &mut InferenceRequest<'a>,
    binary: Option<&'a [u8]>,
) -> Result<(), ApiError> {
    let total = binary.map_or(0, <[u8]>::len);
    let mut rest = binary.unwrap_or_default();
    let mut last: Option<(String, u64)> = None;
    for input in &mut req.inputs {
        let Some(size) = input.binary_data_size()? else {
            continue;
        };
        let name = &input.name;
        if binary.is_none() {
            return Err(ApiError::bad_request(format!(
                "input '{name}' has parameters.{BINARY_DATA_SIZE} = {size}, but the request has no binary data: send the JSON header's length in the Inference-Header-Content-Length header and the tensors' bytes after it"
            )));
        }
        let take = usize::try_from(size)
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input '{name}' has parameters.{BINARY_DATA_SIZE} = {size}, but only {} bytes of binary data remain for it ({total} after the JSON header in all)",
                    rest.len()
                ))
            })?;
        let (mine, tail) = rest.split_at(take);
        input.binary = Some(mine);
        rest = tail;
        last = Some((name.clone(), size));
    }
    if !rest.is_empty() {
        return Err(ApiError::bad_request(match last {
            Some((name, size)) => format!(
                "{} bytes follow the binary data of the last binary input, '{name}' ({BINARY_DATA_SIZE} {size}); the inputs' binary_data_size must add up to the bytes after the JSON header ({total})",
                rest.len()
            ),
            None => format!(
                "the body has {} bytes after its JSON header (Inference-Header-Content-Length), but no input has parameters.{BINARY_DATA_SIZE}",
                rest.len()
            ),
        }));
    }
    Ok(())
}

/// The bytes one element of `datatype` takes as binary data, or `None` for BYTES, whose
/// elements are as long as their length prefix says.
pub fn binary_size(datatype: DataType) -> Option<usize> {
    match datatype {
        DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
        DataType::Uint16 | DataType::Int16 | DataType::Fp16 => Some(2),
        DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
        DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
        DataType::Bytes => None,
    }
}

/// Decodes one input's binary data into a tensor of `datatype` and `shape`.
///
/// The data's length is checked against the shape and datatype before anything is allocated:
/// a numeric or BOOL tensor must be exactly its element count times its element's size; BYTES
/// data must hold exactly the shape's element count of length-prefixed elements, each of them
/// UTF-8 (tract holds BYTES tensors as text). A BOOL byte must be 0 or 1.
///
/// Errors: 400 naming the input (and the element, for a bad value).
pub fn decode_binary(
    name: &str,
    datatype: DataType,
    shape: &[u64],
    bytes: &[u8],
) -> Result<Tensor, ApiError> {
    let count = element_count(name, shape)?;
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    let Some(size) = binary_size(datatype) else {
        return decode_strings(name, &dims, count, bytes);
    };
    let want = count.checked_mul(size);
    if want != Some(bytes.len()) {
        let want = want.map_or_else(
            || "more bytes than this server can address".to_owned(),
            |w| format!("{w} bytes"),
        );
        return Err(ApiError::bad_request(format!(
            "input '{name}': {BINARY_DATA_SIZE} is {} bytes, but shape {shape:?} of {datatype} takes {want} ({count} elements of {size} bytes)",
            bytes.len()
        )));
    }
    let tensor = match datatype {
        DataType::Bool => {
            if let Some(ix) = bytes.iter().position(|&b| b > 1) {
                return Err(ApiError::bad_request(format!(
                    "input '{name}': element {ix} is not a valid BOOL value: byte {} (binary BOOL is 0 or 1)",
                    bytes[ix]
                )));
            }
            tensor(&dims, bytes.iter().map(|&b| b == 1).collect())
        }
        DataType::Uint8 => tensor(&dims, bytes.to_vec()),
        DataType::Int8 => tensor(&dims, numbers(bytes, i8::from_le_bytes)),
        DataType::Uint16 => tensor(&dims, numbers(bytes, u16::from_le_bytes)),
        DataType::Int16 => tensor(&dims, numbers(bytes, i16::from_le_bytes)),
        DataType::Fp16 => tensor(
            &dims,
            numbers(bytes, |b: [u8; 2]| f16::from_bits(u16::from_le_bytes(b))),
        ),
        DataType::Uint32 => tensor(&dims, numbers(bytes, u32::from_le_bytes)),
        DataType::Int32 => tensor(&dims, numbers(bytes, i32::from_le_bytes)),
        DataType::Fp32 => tensor(&dims, numbers(bytes, f32::from_le_bytes)),
        DataType::Uint64 => tensor(&dims, numbers(bytes, u64::from_le_bytes)),
        DataType::Int64 => tensor(&dims, numbers(bytes, i64::from_le_bytes)),
        DataType::Fp64 => tensor(&dims, numbers(bytes, f64::from_le_bytes)),
        DataType::Bytes => return decode_strings(name, &dims, count, bytes),
    };
    tensor.map_err(|e| {
        ApiError::bad_request(format!(
            "input '{name}': data does not fit shape {shape:?}: {e}"
        ))
    })
}

/// The elements of `bytes`, `N` bytes each (the caller checked the length is a multiple).
fn numbers<T, const N: usize>(bytes: &[u8], from: impl Fn([u8; N]) -> T) -> Vec<T> {
    let (chunks, _) = bytes.as_chunks::<N>();
    chunks.iter().map(|c| from(*c)).collect()
}

fn tensor<T: Datum>(dims: &[usize], values: Vec<T>) -> Result<Tensor, tract_ndarray::ShapeError> {
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(dims), values).map(Tensor::from)
}

/// BYTES elements: a 4-byte little-endian length, then that many bytes, `count` of them filling
/// `bytes` exactly.
fn decode_strings(
    name: &str,
    dims: &[usize],
    count: usize,
    bytes: &[u8],
) -> Result<Tensor, ApiError> {
    let refuse = |msg: String| ApiError::bad_request(format!("input '{name}': {msg}"));
    // Each element takes at least its 4-byte length, so this never over-allocates.
    let mut out: Vec<String> = Vec::with_capacity(count.min(bytes.len() / 4));
    let mut rest = bytes;
    while !rest.is_empty() {
        let ix = out.len();
        if ix == count {
            return Err(refuse(format!(
                "binary BYTES data holds more than the {count} elements shape {dims:?} needs ({} bytes left over)",
                rest.len()
            )));
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(refuse(format!(
                "element {ix} of binary BYTES data has {} bytes left, too few for its 4-byte length",
                rest.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(refuse(format!(
                "element {ix} of binary BYTES data is {len} bytes long, but only {} bytes remain",
                tail.len()
            )));
        }
        let (value, tail) = tail.split_at(len);
        let text = std::str::from_utf8(value).map_err(|e| {
            refuse(format!(
                "element {ix} of binary BYTES data is not UTF-8 text ({e}); this server takes BYTES as text"
            ))
        })?;
        out.push(text.to_owned());
        rest = tail;
    }
    if out.len() != count {
        return Err(refuse(format!(
            "shape {dims:?} needs {count} elements but binary BYTES data holds {}",
            out.len()
        )));
    }
    tensor(dims, out).map_err(|e| refuse(format!("data does not fit shape {dims:?}: {e}")))
}

/// The length of an output's values as binary data.
pub fn binary_len(data: &TensorData) -> u64 {
    let n = |len: usize, size: u64| (len as u64).saturating_mul(size);
    match data {
        TensorData::Bool(v) => n(v.len(), 1),
        TensorData::Uint8(v) => n(v.len(), 1),
        TensorData::Int8(v) => n(v.len(), 1),
        TensorData::Uint16(v) => n(v.len(), 2),
        TensorData::Int16(v) => n(v.len(), 2),
        TensorData::Fp16(v) => n(v.len(), 2),
        TensorData::Uint32(v) => n(v.len(), 4),
        TensorData::Int32(v) => n(v.len(), 4),
        TensorData::Fp32(v) => n(v.len(), 4),
        TensorData::Uint64(v) => n(v.len(), 8),
        TensorData::Int64(v) => n(v.len(), 8),
        TensorData::Fp64(v) => n(v.len(), 8),
        TensorData::Bytes(v) => v
            .iter()
            .map(|s| 4 + s.len() as u64)
            .fold(0, u64::saturating_add),
    }
}

/// Appends an output's values as binary data to `out`.
///
/// Errors: 500 when a BYTES element is longer than its 4-byte length can say (4 GiB).
pub fn write_binary(name: &str, data: &TensorData, out: &mut Vec<u8>) -> Result<(), ApiError> {
    fn each<T: Copy, const N: usize>(out: &mut Vec<u8>, v: &[T], to: impl Fn(T) -> [u8; N]) {
        out.reserve(v.len() * N);
        for &x in v {
            out.extend_from_slice(&to(x));
        }
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => each(out, v, i8::to_le_bytes),
        TensorData::Uint16(v) => each(out, v, u16::to_le_bytes),
        TensorData::Int16(v) => each(out, v, i16::to_le_bytes),
        // Widened from f16 for JSON, so narrowing back is exact.
        TensorData::Fp16(v) => each(out, v, |x| f16::from_f32(x).to_bits().to_le_bytes()),
        TensorData::Uint32(v) => each(out, v, u32::to_le_bytes),
        TensorData::Int32(v) => each(out, v, i32::to_le_bytes),
        TensorData::Fp32(v) => each(out, v, f32::to_le_bytes),
        TensorData::Uint64(v) => each(out, v, u64::to_le_bytes),
        TensorData::Int64(v) => each(out, v, i64::to_le_bytes),
        TensorData::Fp64(v) => each(out, v, f64::to_le_bytes),
        TensorData::Bytes(v) => {
            for (ix, s) in v.iter().enumerate() {
                let len = u32::try_from(s.len()).map_err(|_| {
                    ApiError::internal(format!(
                        "output '{name}': element {ix} is {} bytes, more than binary BYTES data can carry",
                        s.len()
                    ))
                })?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::encode_tensor;

    fn request(json: &str) -> InferenceRequest<'_> {
        InferenceRequest::from_json(json.as_bytes()).unwrap()
    }

    fn bad<T: std::fmt::Debug>(result: Result<T, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    const TWO: &str = r#"{"inputs":[
        {"name":"a","shape":[2],"datatype":"UINT32","parameters":{"binary_data_size":8}},
        {"name":"j","shape":[1],"datatype":"FP32","data":[1.5]},
        {"name":"b","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]}"#;

    #[test]
    fn the_header_length_must_be_a_byte_count() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_length(&headers).unwrap(), None);
        headers.insert(&HEADER_LENGTH, " 42".parse().unwrap());
        assert_eq!(header_length(&headers).unwrap(), Some(42));
        headers.insert(&HEADER_LENGTH, "-1".parse().unwrap());
        let m = bad(header_length(&headers));
        assert!(m.contains(r#"length in bytes, got "-1""#), "{m}");
    }

    #[test]
    fn the_body_splits_at_the_header_length_which_must_be_inside_it() {
        let body = b"{}abc";
        assert_eq!(split_body(body, None).unwrap(), (&body[..], None));
        assert_eq!(
            split_body(body, Some(2)).unwrap(),
            (&b"{}"[..], Some(&b"abc"[..]))
        );
        assert_eq!(
            split_body(body, Some(5)).unwrap(),
            (&body[..], Some(&b""[..]))
        );
        let m = bad(split_body(body, Some(6)));
        assert_eq!(
            m,
            "the Inference-Header-Content-Length header says the JSON header is 6 bytes, but the whole body is 5 bytes"
        );
        assert!(split_body(body, Some(u64::MAX)).is_err());
    }

    #[test]
    fn binary_inputs_take_their_bytes_in_order() {
        let binary = [1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1];
        let mut req = request(TWO);
        bind_binary_inputs(&mut req, Some(&binary)).unwrap();
        assert_eq!(req.inputs[0].binary, Some(&binary[..8]));
        assert_eq!(req.inputs[1].binary, None);
        assert_eq!(req.inputs[2].binary, Some(&binary[8..]));
        let a = &req.inputs[0];
        let t =
            crate::tensor::decode_input(&a.name, DataType::Uint32, &a.shape, a.values().unwrap())
                .unwrap();
        assert_eq!(
            encode_tensor("a", &t).unwrap().data,
            TensorData::Uint32(vec![1, 2])
        );
        let b = &req.inputs[2];
        let t = decode_binary(&b.name, DataType::Bool, &b.shape, b.binary.unwrap()).unwrap();
        assert_eq!(
            encode_tensor("b", &t).unwrap().data,
            TensorData::Bool(vec![true, false, true])
        );
    }

    #[test]
    fn a_binary_input_without_binary_data_is_refused_by_name() {
        let m = bad(bind_binary_inputs(&mut request(TWO), None));
        assert!(
            m.starts_with(
                "input 'a' has parameters.binary_data_size = 8, but the request has no binary data"
            ),
            "{m}"
        );
    }

    #[test]
    fn too_few_bytes_are_refused_naming_the_input_short_of_them() {
        let m = bad(bind_binary_inputs(&mut request(TWO), Some(&[0; 10])));
        assert_eq!(
            m,
            "input 'b' has parameters.binary_data_size = 3, but only 2 bytes of binary data remain for it (10 after the JSON header in all)"
        );
        let m = bad(bind_binary_inputs(&mut request(TWO), Some(&[0; 4])));
        assert!(
            m.starts_with("input 'a' has parameters.binary_data_size = 8, but only 4 bytes"),
            "{m}"
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let m = bad(bind_binary_inputs(&mut request(TWO), Some(&[0; 12])));
        assert_eq!(
            m,
            "1 bytes follow the binary data of the last binary input, 'b' (binary_data_size 3); the inputs' binary_data_size must add up to the bytes after the JSON header (12)"
        );
        let json = r#"{"inputs":[{"name":"j","shape":[1],"datatype":"FP32","data":[1.5]}]}"#;
        let m = bad(bind_binary_inputs(&mut request(json), Some(&[0; 3])));
        assert_eq!(
            m,
            "the body has 3 bytes after its JSON header (Inference-Header-Content-Length), but no input has parameters.binary_data_size"
        );
        // A header that covers the whole body, with no binary input, is plain JSON.
        bind_binary_inputs(&mut request(json), Some(&[])).unwrap();
    }

    #[test]
    fn the_size_must_match_shape_times_datatype_before_anything_is_allocated() {
        let m = bad(decode_binary("x", DataType::Fp32, &[2, 3], &[0; 20]));
        assert_eq!(
            m,
            "input 'x': binary_data_size is 20 bytes, but shape [2, 3] of FP32 takes 24 bytes (6 elements of 4 bytes)"
        );
        // A shape far larger than the data is refused by its size, not allocated.
        let m = bad(decode_binary("x", DataType::Fp64, &[1 << 40], &[0; 8]));
        assert!(m.contains("takes 8796093022208 bytes"), "{m}");
        let m = bad(decode_binary("x", DataType::Fp64, &[u64::MAX, 2], &[0; 8]));
        assert!(
            m.contains("more elements than this server can address"),
            "{m}"
        );
        let m = bad(decode_binary(
            "x",
            DataType::Int64,
            &[u64::MAX / 8 + 1],
            &[0; 8],
        ));
        assert!(m.contains("more bytes than this server can address"), "{m}");
    }

    #[test]
    fn bool_bytes_are_zero_or_one() {
        let m = bad(decode_binary("x", DataType::Bool, &[3], &[0, 1, 2]));
        assert_eq!(
            m,
            "input 'x': element 2 is not a valid BOOL value: byte 2 (binary BOOL is 0 or 1)"
        );
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let data = b"\x01\0\0\0a\0\0\0\0\x06\0\0\0h\xc3\xa9llo";
        let t = decode_binary("s", DataType::Bytes, &[3], data).unwrap();
        assert_eq!(
            encode_tensor("s", &t).unwrap().data,
            TensorData::Bytes(vec!["a".into(), String::new(), "héllo".into()])
        );

        let m = bad(decode_binary("s", DataType::Bytes, &[2], data));
        assert_eq!(
            m,
            "input 's': binary BYTES data holds more than the 2 elements shape [2] needs (10 bytes left over)"
        );
        let m = bad(decode_binary("s", DataType::Bytes, &[4], data));
        assert_eq!(
            m,
            "input 's': shape [4] needs 4 elements but binary BYTES data holds 3"
        );
        let m = bad(decode_binary("s", DataType::Bytes, &[1], b"\x05\0\0\0abc"));
        assert_eq!(
            m,
            "input 's': element 0 of binary BYTES data is 5 bytes long, but only 3 bytes remain"
        );
        let m = bad(decode_binary("s", DataType::Bytes, &[2], b"\0\0\0\0\x01\0"));
        assert_eq!(
            m,
            "input 's': element 1 of binary BYTES data has 2 bytes left, too few for its 4-byte length"
        );
        let m = bad(decode_binary("s", DataType::Bytes, &[1], b"\x01\0\0\0\xff"));
        assert!(
            m.starts_with("input 's': element 0 of binary BYTES data is not UTF-8"),
            "{m}"
        );
    }

    #[test]
    fn every_datatype_round_trips_through_binary_data() {
        let cases: [(DataType, Vec<u8>); 12] = [
            (DataType::Bool, vec![1, 0]),
            (DataType::Uint8, vec![0, 255]),
            (DataType::Int8, vec![0x80, 0x7f]),
            (
                DataType::Uint16,
                [1u16, 65535].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                DataType::Int16,
                [-2i16, 300].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                DataType::Fp16,
                [f16::from_f32(1.5), f16::from_f32(-0.25)]
                    .iter()
                    .flat_map(|x| x.to_bits().to_le_bytes())
                    .collect(),
            ),
            (
                DataType::Uint32,
                [7u32, u32::MAX]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                DataType::Int32,
                [-7i32, i32::MAX]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                DataType::Fp32,
                [1.1f32, -2.0]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                DataType::Uint64,
                [0u64, u64::MAX]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                DataType::Int64,
                [i64::MIN, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                DataType::Fp64,
                [0.1f64, 1e300]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
        ];
        for (dt, bytes) in cases {
            let t = decode_binary("x", dt, &[2], &bytes).unwrap();
            assert_eq!(t.datum_type(), dt.to_datum());
            let enc = encode_tensor("x", &t).unwrap();
            assert_eq!(binary_len(&enc.data), bytes.len() as u64, "{dt}");
            let mut out = Vec::new();
            write_binary("x", &enc.data, &mut out).unwrap();
            assert_eq!(out, bytes, "{dt}");
        }
        let strings = b"\x02\0\0\0hi\0\0\0\0";
        let t = decode_binary("s", DataType::Bytes, &[2], strings).unwrap();
        let enc = encode_tensor("s", &t).unwrap();
        assert_eq!(binary_len(&enc.data), strings.len() as u64);
        let mut out = Vec::new();
        write_binary("s", &enc.data, &mut out).unwrap();
        assert_eq!(out, strings);
    }

    #[test]
    fn a_binary_output_has_its_size_in_place_of_data() {
        let t = decode_binary("y", DataType::Fp32, &[1, 2], &[0; 8]).unwrap();
        let mut enc = encode_tensor("y", &t).unwrap();
        assert_eq!(
            serde_json::to_value(&enc).unwrap(),
            serde_json::json!({"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]})
        );
        enc.binary = true;
        assert_eq!(
            serde_json::to_value(&enc).unwrap(),
            serde_json::json!({"name": "y", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}})
        );
    }
}
