//! The pure parts of the protocol: its tensor datatypes, decoding JSON tensor
//! data (flat or nested, row-major) into tract tensors, and encoding tract
//! tensors back into JSON.

use serde::Serialize;
use serde_json::Value;
use tract_onnx::prelude::{DatumType, Tensor, f16, tract_ndarray};

use crate::error::ApiError;

/// A tensor datatype of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
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

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol's name for the type, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol type name. Names are case-sensitive, as the protocol says.
    pub fn parse(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The protocol type that carries a tract datum type, if any does.
    pub fn from_datum(dt: DatumType) -> Option<DataType> {
        Some(match dt {
            DatumType::Bool => DataType::Bool,
            DatumType::U8 => DataType::Uint8,
            DatumType::U16 => DataType::Uint16,
            DatumType::U32 => DataType::Uint32,
            DatumType::U64 => DataType::Uint64,
            DatumType::I8 => DataType::Int8,
            DatumType::I16 => DataType::Int16,
            DatumType::I32 => DataType::Int32,
            DatumType::I64 => DataType::Int64,
            DatumType::F16 => DataType::Fp16,
            DatumType::F32 => DataType::Fp32,
            DatumType::F64 => DataType::Fp64,
            DatumType::String => DataType::Bytes,
            _ => return None,
        })
    }

    /// The tract datum type for this protocol type.
    pub fn to_datum(self) -> DatumType {
        match self {
            DataType::Bool => DatumType::Bool,
            DataType::Uint8 => DatumType::U8,
            DataType::Uint16 => DatumType::U16,
            DataType::Uint32 => DatumType::U32,
            DataType::Uint64 => DatumType::U64,
            DataType::Int8 => DatumType::I8,
            DataType::Int16 => DatumType::I16,
            DataType::Int32 => DatumType::I32,
            DataType::Int64 => DatumType::I64,
            DataType::Fp16 => DatumType::F16,
            DataType::Fp32 => DatumType::F32,
            DataType::Fp64 => DatumType::F64,
            DataType::Bytes => DatumType::String,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The number of elements a shape holds, or an error if it overflows.
pub fn element_count(name: &str, shape: &[u64]) -> Result<usize, ApiError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "input '{name}': shape {shape:?} holds more elements than this server can address"
            ))
        })
}

/// Decodes one input tensor's `data` given its declared datatype and shape.
///
/// `data` may be flat (`[1, 2, 3, 4]`) or nested in the tensor's natural
/// form (`[[1, 2], [3, 4]]`); a rank-0 tensor may also be a bare scalar.
/// Nested data must match the declared shape exactly; flat data must hold
/// exactly as many elements as the shape.
pub fn decode_tensor(
    name: &str,
    datatype: DataType,
    shape: &[u64],
    data: &Value,
) -> Result<Tensor, ApiError> {
    let count = element_count(name, shape)?;
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    match datatype {
        DataType::Bool => build(name, datatype, &dims, count, data, as_bool),
        DataType::Uint8 => build(name, datatype, &dims, count, data, as_int::<u8>),
        DataType::Uint16 => build(name, datatype, &dims, count, data, as_int::<u16>),
        DataType::Uint32 => build(name, datatype, &dims, count, data, as_int::<u32>),
        DataType::Uint64 => build(name, datatype, &dims, count, data, as_int::<u64>),
        DataType::Int8 => build(name, datatype, &dims, count, data, as_int::<i8>),
        DataType::Int16 => build(name, datatype, &dims, count, data, as_int::<i16>),
        DataType::Int32 => build(name, datatype, &dims, count, data, as_int::<i32>),
        DataType::Int64 => build(name, datatype, &dims, count, data, as_int::<i64>),
        DataType::Fp16 => build(name, datatype, &dims, count, data, |v| {
            v.as_f64().map(f16::from_f64)
        }),
        // Narrowing to f32 is the intended coercion of a JSON number to FP32.
        DataType::Fp32 => build(name, datatype, &dims, count, data, |v| {
            v.as_f64().map(|x| x as f32)
        }),
        DataType::Fp64 => build(name, datatype, &dims, count, data, Value::as_f64),
        DataType::Bytes => build(name, datatype, &dims, count, data, |v| {
            v.as_str().map(str::to_owned)
        }),
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    v.as_bool()
}

/// A JSON number as an integer of type `T`: integral values only (`3` or
/// `3.0`), and within `T`'s range.
fn as_int<T: TryFrom<i128>>(v: &Value) -> Option<T> {
    let Value::Number(n) = v else { return None };
    let wide: i128 = if let Some(i) = n.as_i64() {
        i128::from(i)
    } else if let Some(u) = n.as_u64() {
        i128::from(u)
    } else {
        let f = n.as_f64()?;
        // Only whole floats that fit in i128 without saturating.
        if !f.is_finite() || f.fract() != 0.0 || f.abs() >= 1.7e38 {
            return None;
        }
        f as i128
    };
    T::try_from(wide).ok()
}

fn build<T>(
    name: &str,
    datatype: DataType,
    dims: &[usize],
    count: usize,
    data: &Value,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Tensor, ApiError>
where
    T: tract_onnx::prelude::Datum,
{
    let mut out: Vec<T> = Vec::with_capacity(count.min(1 << 24));
    let mut push = |v: &Value| -> Result<(), ApiError> {
        match convert(v) {
            Some(x) => {
                out.push(x);
                Ok(())
            }
            None => Err(ApiError::bad_request(format!(
                "input '{name}': element {} is not a valid {datatype} value: {}",
                out.len(),
                short(v)
            ))),
        }
    };
    match data {
        Value::Array(items) if items.iter().any(|i| i.is_array()) => {
            walk_nested(name, dims, 0, items, &mut push)?;
        }
        Value::Array(items) => {
            if items.len() != count {
                return Err(ApiError::bad_request(format!(
                    "input '{name}': shape {dims:?} needs {count} elements but data has {}",
                    items.len()
                )));
            }
            for item in items {
                push(item)?;
            }
        }
        scalar if dims.is_empty() => push(scalar)?,
        other => {
            return Err(ApiError::bad_request(format!(
                "input '{name}': data must be an array, got {}",
                short(other)
            )));
        }
    }
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(dims), out)
        .map(Tensor::from)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "input '{name}': data does not fit shape {dims:?}: {e}"
            ))
        })
}

/// Walks nested data that must follow `dims` level by level.
fn walk_nested(
    name: &str,
    dims: &[usize],
    depth: usize,
    items: &[Value],
    push: &mut impl FnMut(&Value) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let Some(&want) = dims.get(depth) else {
        return Err(ApiError::bad_request(format!(
            "input '{name}': nested data is deeper than shape {dims:?}"
        )));
    };
    if items.len() != want {
        return Err(ApiError::bad_request(format!(
            "input '{name}': nested data has {} elements at depth {depth} but shape {dims:?} needs {want}",
            items.len()
        )));
    }
    let leaf = depth + 1 == dims.len();
    for item in items {
        match (item, leaf) {
            (Value::Array(_), true) => {
                return Err(ApiError::bad_request(format!(
                    "input '{name}': nested data is deeper than shape {dims:?}"
                )));
            }
            (Value::Array(inner), false) => walk_nested(name, dims, depth + 1, inner, push)?,
            (scalar, true) => push(scalar)?,
            (_, false) => {
                return Err(ApiError::bad_request(format!(
                    "input '{name}': nested data is shallower than shape {dims:?} at depth {}",
                    depth + 1
                )));
            }
        }
    }
    Ok(())
}

/// A value for an error message, cut short.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Row-major tensor contents, serialized as a flat JSON array.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// FP16 values widened to f32 for JSON, which has no half type.
    Fp16(Vec<f32>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

/// One encoded output tensor: `{name, shape, datatype, data}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub datatype: &'static str,
    pub data: TensorData,
}

/// Encodes a tract tensor as a protocol output tensor.
pub fn encode_tensor(name: &str, tensor: &Tensor) -> Result<EncodedTensor, ApiError> {
    let dt = tensor.datum_type();
    let datatype = DataType::from_datum(dt).ok_or_else(|| {
        ApiError::internal(format!(
            "output '{name}' has datum type {dt:?}, which the protocol cannot carry"
        ))
    })?;
    let fail = |e: tract_onnx::prelude::TractError| {
        ApiError::internal(format!("output '{name}': cannot read tensor: {e}"))
    };
    fn collect<T: tract_onnx::prelude::Datum + Clone, U>(
        tensor: &Tensor,
        map: impl Fn(&T) -> U,
    ) -> Result<Vec<U>, tract_onnx::prelude::TractError> {
        Ok(tensor.to_plain_array_view::<T>()?.iter().map(map).collect())
    }
    let data = match datatype {
        DataType::Bool => TensorData::Bool(collect(tensor, |x: &bool| *x).map_err(fail)?),
        DataType::Uint8 => TensorData::Uint8(collect(tensor, |x: &u8| *x).map_err(fail)?),
        DataType::Uint16 => TensorData::Uint16(collect(tensor, |x: &u16| *x).map_err(fail)?),
        DataType::Uint32 => TensorData::Uint32(collect(tensor, |x: &u32| *x).map_err(fail)?),
        DataType::Uint64 => TensorData::Uint64(collect(tensor, |x: &u64| *x).map_err(fail)?),
        DataType::Int8 => TensorData::Int8(collect(tensor, |x: &i8| *x).map_err(fail)?),
        DataType::Int16 => TensorData::Int16(collect(tensor, |x: &i16| *x).map_err(fail)?),
        DataType::Int32 => TensorData::Int32(collect(tensor, |x: &i32| *x).map_err(fail)?),
        DataType::Int64 => TensorData::Int64(collect(tensor, |x: &i64| *x).map_err(fail)?),
        DataType::Fp16 => TensorData::Fp16(collect(tensor, |x: &f16| x.to_f32()).map_err(fail)?),
        DataType::Fp32 => TensorData::Fp32(collect(tensor, |x: &f32| *x).map_err(fail)?),
        DataType::Fp64 => TensorData::Fp64(collect(tensor, |x: &f64| *x).map_err(fail)?),
        DataType::Bytes => {
            TensorData::Bytes(collect(tensor, |x: &String| x.clone()).map_err(fail)?)
        }
    };
    Ok(EncodedTensor {
        name: name.to_owned(),
        shape: tensor.shape().iter().map(|&d| d as u64).collect(),
        datatype: datatype.as_str(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape_of(t: &Tensor) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn roundtrip(dt: DataType, shape: &[u64], data: Value) -> Value {
        let t = decode_tensor("x", dt, shape, &data).unwrap();
        assert_eq!(t.datum_type(), dt.to_datum());
        let enc = encode_tensor("x", &t).unwrap();
        assert_eq!(enc.datatype, dt.as_str());
        assert_eq!(enc.shape, shape);
        serde_json::to_value(&enc.data).unwrap()
    }

    #[test]
    fn datatype_names_round_trip_and_are_case_sensitive() {
        for dt in DataType::ALL {
            assert_eq!(DataType::parse(dt.as_str()), Some(dt));
            assert_eq!(DataType::from_datum(dt.to_datum()), Some(dt));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::parse("FLOAT"), None);
        assert_eq!(DataType::from_datum(DatumType::TDim), None);
    }

    #[test]
    fn every_datatype_decodes_and_encodes() {
        assert_eq!(
            roundtrip(DataType::Bool, &[3], json!([true, false, true])),
            json!([true, false, true])
        );
        assert_eq!(
            roundtrip(DataType::Uint8, &[3], json!([0, 7, 255])),
            json!([0, 7, 255])
        );
        assert_eq!(
            roundtrip(DataType::Uint16, &[2], json!([0, 65535])),
            json!([0, 65535])
        );
        assert_eq!(
            roundtrip(DataType::Uint32, &[2], json!([1, 4294967295u64])),
            json!([1, 4294967295u64])
        );
        assert_eq!(
            roundtrip(DataType::Uint64, &[2], json!([0, u64::MAX])),
            json!([0, u64::MAX])
        );
        assert_eq!(
            roundtrip(DataType::Int8, &[2], json!([-128, 127])),
            json!([-128, 127])
        );
        assert_eq!(
            roundtrip(DataType::Int16, &[2], json!([-32768, 32767])),
            json!([-32768, 32767])
        );
        assert_eq!(
            roundtrip(DataType::Int32, &[2], json!([i32::MIN, i32::MAX])),
            json!([i32::MIN, i32::MAX])
        );
        assert_eq!(
            roundtrip(DataType::Int64, &[2], json!([i64::MIN, i64::MAX])),
            json!([i64::MIN, i64::MAX])
        );
        assert_eq!(
            roundtrip(DataType::Fp16, &[3], json!([1.5, -2, 0.25])),
            json!([1.5, -2.0, 0.25])
        );
        assert_eq!(
            roundtrip(DataType::Fp32, &[3], json!([1.1, -2, 3.5])),
            json!([1.1f32, -2.0, 3.5])
        );
        assert_eq!(
            roundtrip(DataType::Fp64, &[2], json!([0.1, 1e300])),
            json!([0.1, 1e300])
        );
        assert_eq!(
            roundtrip(DataType::Bytes, &[2], json!(["a", "héllo"])),
            json!(["a", "héllo"])
        );
    }

    #[test]
    fn fp32_output_is_printed_at_f32_precision() {
        let t = decode_tensor("x", DataType::Fp32, &[1], &json!([1.1])).unwrap();
        let enc = encode_tensor("y", &t).unwrap();
        assert_eq!(serde_json::to_string(&enc.data).unwrap(), "[1.1]");
    }

    #[test]
    fn flat_and_nested_data_give_the_same_tensor() {
        let flat =
            decode_tensor("x", DataType::Int32, &[2, 3], &json!([1, 2, 3, 4, 5, 6])).unwrap();
        let nested = decode_tensor(
            "x",
            DataType::Int32,
            &[2, 3],
            &json!([[1, 2, 3], [4, 5, 6]]),
        )
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(shape_of(&flat), vec![2, 3]);
        let deep = decode_tensor(
            "x",
            DataType::Fp64,
            &[2, 1, 2],
            &json!([[[1, 2]], [[3, 4]]]),
        )
        .unwrap();
        let enc = encode_tensor("x", &deep).unwrap();
        assert_eq!(enc.data, TensorData::Fp64(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(enc.shape, vec![2, 1, 2]);
    }

    #[test]
    fn row_major_order_is_kept() {
        let t = decode_tensor(
            "x",
            DataType::Int64,
            &[3, 2],
            &json!([[1, 2], [3, 4], [5, 6]]),
        )
        .unwrap();
        let view = t.to_plain_array_view::<i64>().unwrap();
        assert_eq!(view[[0, 1]], 2);
        assert_eq!(view[[2, 0]], 5);
    }

    #[test]
    fn scalars_and_empty_tensors() {
        let t = decode_tensor("x", DataType::Fp32, &[], &json!(2.5)).unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
        let t = decode_tensor("x", DataType::Fp32, &[], &json!([2.5])).unwrap();
        assert_eq!(
            encode_tensor("x", &t).unwrap().data,
            TensorData::Fp32(vec![2.5])
        );
        let t = decode_tensor("x", DataType::Fp32, &[0, 3], &json!([])).unwrap();
        assert_eq!(t.shape(), &[0, 3]);
        assert_eq!(encode_tensor("x", &t).unwrap().shape, vec![0, 3]);
    }

    fn bad(dt: DataType, shape: &[u64], data: Value) -> String {
        match decode_tensor("x", dt, shape, &data) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn element_count_must_match_shape() {
        let m = bad(DataType::Fp32, &[2, 2], json!([1, 2, 3]));
        assert!(m.contains("needs 4 elements but data has 3"), "{m}");
        let m = bad(DataType::Fp32, &[2, 2], json!([1, 2, 3, 4, 5]));
        assert!(m.contains("needs 4 elements but data has 5"), "{m}");
    }

    #[test]
    fn nested_data_must_match_shape() {
        let m = bad(DataType::Fp32, &[2, 2], json!([[1, 2], [3]]));
        assert!(m.contains("depth 1"), "{m}");
        let m = bad(DataType::Fp32, &[4], json!([[1, 2], [3, 4]]));
        assert!(m.contains("shape [4] needs 4"), "{m}");
        let m = bad(DataType::Fp32, &[2, 2], json!([[1, 2], 3]));
        assert!(m.contains("shallower"), "{m}");
        let m = bad(DataType::Fp32, &[2], json!([[1], [2]]));
        assert!(m.contains("deeper"), "{m}");
        let m = bad(DataType::Fp32, &[1, 1], json!([[[1]]]));
        assert!(m.contains("deeper"), "{m}");
    }

    #[test]
    fn elements_must_fit_the_datatype() {
        let m = bad(DataType::Uint8, &[2], json!([1, 256]));
        assert!(
            m.contains("element 1 is not a valid UINT8 value: 256"),
            "{m}"
        );
        let m = bad(DataType::Uint32, &[1], json!([-1]));
        assert!(m.contains("UINT32"), "{m}");
        let m = bad(DataType::Int8, &[1], json!([-129]));
        assert!(m.contains("INT8"), "{m}");
        let m = bad(DataType::Int64, &[2], json!([1, 1.5]));
        assert!(
            m.contains("element 1 is not a valid INT64 value: 1.5"),
            "{m}"
        );
        let m = bad(DataType::Fp32, &[2], json!([1, "2"]));
        assert!(m.contains("FP32"), "{m}");
        let m = bad(DataType::Bool, &[1], json!([1]));
        assert!(m.contains("BOOL"), "{m}");
        let m = bad(DataType::Bytes, &[1], json!([3]));
        assert!(m.contains("BYTES"), "{m}");
        let m = bad(DataType::Fp64, &[1], json!([null]));
        assert!(m.contains("null"), "{m}");
    }

    #[test]
    fn whole_floats_are_accepted_as_integers() {
        let t = decode_tensor("x", DataType::Int32, &[2], &json!([3.0, -4.0])).unwrap();
        assert_eq!(
            encode_tensor("x", &t).unwrap().data,
            TensorData::Int32(vec![3, -4])
        );
    }

    #[test]
    fn data_must_be_an_array_for_non_scalars() {
        let m = bad(DataType::Fp32, &[1], json!({"a": 1}));
        assert!(m.contains("data must be an array"), "{m}");
        let m = bad(DataType::Fp32, &[1], json!(1.0));
        assert!(m.contains("data must be an array"), "{m}");
    }

    #[test]
    fn huge_shapes_are_rejected_without_allocating() {
        let m = bad(DataType::Fp32, &[u64::MAX, 2], json!([]));
        assert!(m.contains("more elements"), "{m}");
        let m = bad(DataType::Fp32, &[1 << 40], json!([1.0]));
        assert!(m.contains("data has 1"), "{m}");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let m = bad(DataType::Fp32, &[1], json!([long]));
        assert!(m.ends_with("...") && m.len() < 120, "{m}");
    }
}
