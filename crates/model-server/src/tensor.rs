//! The pure parts of the protocol: its tensor datatypes, decoding JSON tensor
//! data (flat or nested, row-major) into tract tensors, and encoding tract
//! tensors back into JSON.

use serde::{Serialize, de};
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

/// The most elements a JSON array of `raw_len` bytes can hold: each element takes at least one
/// byte and all but the last a separating comma, inside two brackets (`[0,0,0]` is 7 bytes for
/// 3 elements), and a bare scalar is one element.
pub fn max_elements_in(raw_len: usize) -> usize {
    raw_len / 2 + 1
}

/// Decodes one input tensor's `data`, given as its raw JSON text, straight into a typed
/// buffer of the declared datatype (`Vec<f32>` for FP32, `Vec<i64>` for INT64, ...), without
/// building a generic JSON value first.
///
/// `data` may be flat (`[1, 2, 3, 4]`) or nested in the tensor's natural form
/// (`[[1, 2], [3, 4]]`); a rank-0 tensor may also be a bare scalar. Nested data must match the
/// declared shape level by level; flat data must hold exactly as many elements as the shape.
/// Both are checked while parsing: an element past the shape's count, a level longer than its
/// dimension, or a value that is not of the datatype stops the parse at once. A shape that
/// declares more elements than `data`'s length can hold is refused before anything is
/// allocated, so the buffer is never larger than `max_elements_in(data.len())` elements.
///
/// Errors: 400 naming the input and, for a bad value, the element's index.
pub fn decode_tensor(
    name: &str,
    datatype: DataType,
    shape: &[u64],
    data: &str,
) -> Result<Tensor, ApiError> {
    let count = element_count(name, shape)?;
    let most = max_elements_in(data.len());
    if count > most {
        return Err(ApiError::bad_request(format!(
            "input '{name}': shape {shape:?} needs {count} elements but its data ({} bytes) holds at most {most}",
            data.len()
        )));
    }
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    match datatype {
        DataType::Bool => build::<bool>(name, datatype, &dims, count, data),
        DataType::Uint8 => build::<u8>(name, datatype, &dims, count, data),
        DataType::Uint16 => build::<u16>(name, datatype, &dims, count, data),
        DataType::Uint32 => build::<u32>(name, datatype, &dims, count, data),
        DataType::Uint64 => build::<u64>(name, datatype, &dims, count, data),
        DataType::Int8 => build::<i8>(name, datatype, &dims, count, data),
        DataType::Int16 => build::<i16>(name, datatype, &dims, count, data),
        DataType::Int32 => build::<i32>(name, datatype, &dims, count, data),
        DataType::Int64 => build::<i64>(name, datatype, &dims, count, data),
        DataType::Fp16 => build::<f16>(name, datatype, &dims, count, data),
        DataType::Fp32 => build::<f32>(name, datatype, &dims, count, data),
        DataType::Fp64 => build::<f64>(name, datatype, &dims, count, data),
        DataType::Bytes => build::<String>(name, datatype, &dims, count, data),
    }
}

/// Decodes one input's values, given as JSON text ([`decode_tensor`]) or as binary data
/// ([`crate::binary::decode_binary`]).
pub fn decode_input(
    name: &str,
    datatype: DataType,
    shape: &[u64],
    values: crate::protocol::InputData<'_>,
) -> Result<Tensor, ApiError> {
    match values {
        crate::protocol::InputData::Json(text) => decode_tensor(name, datatype, shape, text),
        crate::protocol::InputData::Binary(bytes) => {
            crate::binary::decode_binary(name, datatype, shape, bytes)
        }
    }
}

/// The bytes one decoded element of `datatype` takes in memory (a BYTES element's 24-byte
/// `String` header; its characters come on top and are at most the data's length).
pub fn element_size(datatype: DataType) -> usize {
    match datatype {
        DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
        DataType::Uint16 | DataType::Int16 | DataType::Fp16 => 2,
        DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
        DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
        DataType::Bytes => std::mem::size_of::<String>(),
    }
}

/// A tensor element type and the JSON values that convert to it. Each conversion returns
/// `None` for a value that is not of the type (out of range, fractional for an integer type,
/// or another JSON type).
trait Element: tract_onnx::prelude::Datum + Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

impl Element for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

impl Element for String {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_owned())
    }
}

/// Integer types: integral values only (`3` or `3.0`), within the type's range.
macro_rules! integer_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(f: f64) -> Option<Self> {
                // Only whole floats that fit in i128 without saturating.
                if !f.is_finite() || f.fract() != 0.0 || f.abs() >= 1.7e38 {
                    return None;
                }
                <$t>::try_from(f as i128).ok()
            }
        }
    )*};
}
integer_element!(u8, u16, u32, u64, i8, i16, i32, i64);

// Narrowing a JSON number to the float type is the intended coercion (FP32 of 1.1 is 1.1f32).
impl Element for f32 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}

impl Element for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

impl Element for f16 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(f16::from_f64(v as f64))
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(f16::from_f64(v as f64))
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(f16::from_f64(v))
    }
}

/// Whether the data is flat or nested; known from the first element of the outer array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Unknown,
    Flat,
    Nested,
}

/// The state of one tensor's parse: what it must hold, what it holds so far, and the refusal
/// that stopped it, if any (serde's own error then only unwinds the parse).
struct Decoder<'a, T> {
    name: &'a str,
    datatype: DataType,
    dims: &'a [usize],
    count: usize,
    layout: Layout,
    out: Vec<T>,
    refusal: Option<ApiError>,
}

impl<T: Element> Decoder<'_, T> {
    /// Records a refusal and returns the serde error that stops the parse.
    fn refuse<E: de::Error>(&mut self, msg: String) -> E {
        let msg = format!("input '{}': {msg}", self.name);
        self.refusal = Some(ApiError::BadRequest(msg.clone()));
        E::custom(msg)
    }

    fn push<E: de::Error>(
        &mut self,
        value: Option<T>,
        shown: &dyn Fn() -> String,
    ) -> Result<(), E> {
        if self.out.len() == self.count {
            let (count, dims) = (self.count, self.dims);
            return Err(self.refuse(format!(
                "shape {dims:?} needs {count} elements but data has more"
            )));
        }
        match value {
            Some(v) => {
                self.out.push(v);
                Ok(())
            }
            None => {
                let (ix, dt) = (self.out.len(), self.datatype);
                Err(self.refuse(format!(
                    "element {ix} is not a valid {dt} value: {}",
                    cut(&shown())
                )))
            }
        }
    }
}

/// One array or value at `depth` (0 is `data` itself) of the tensor's data.
struct Node<'d, 'a, T> {
    decoder: &'d mut Decoder<'a, T>,
    depth: usize,
    /// The enclosing nested level already holds all its dimension allows: this value is one
    /// too many, refused before it is read.
    extra: bool,
}

impl<'de, T: Element> de::DeserializeSeed<'de> for Node<'_, '_, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<T: Element> Node<'_, '_, T> {
    fn refuse_extra<E: de::Error>(&mut self) -> Result<(), E> {
        if !self.extra {
            return Ok(());
        }
        let dims = self.decoder.dims;
        let level = self.depth.saturating_sub(1);
        let want = dims.get(level).copied().unwrap_or(0);
        Err(self.decoder.refuse(format!(
            "nested data has more than {want} elements at depth {level}, but shape {dims:?} needs {want}"
        )))
    }

    /// A scalar value here: an element if the layout puts one at this depth.
    fn scalar<E: de::Error>(
        mut self,
        value: Option<T>,
        shown: &dyn Fn() -> String,
    ) -> Result<(), E> {
        self.refuse_extra()?;
        let d = self.decoder;
        let dims = d.dims;
        match self.depth {
            0 if dims.is_empty() => {
                d.layout = Layout::Flat;
                d.push(value, shown)
            }
            0 => Err(d.refuse(format!("data must be an array, got {}", cut(&shown())))),
            1 if d.layout != Layout::Nested => {
                d.layout = Layout::Flat;
                d.push(value, shown)
            }
            depth if depth == dims.len() => d.push(value, shown),
            depth => Err(d.refuse(format!(
                "nested data is shallower than shape {dims:?} at depth {depth}"
            ))),
        }
    }
}

impl<'de, T: Element> de::Visitor<'de> for Node<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tensor data: an array of values, or of arrays following the shape")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(T::from_bool(v), &|| v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(T::from_i64(v), &|| v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(T::from_u64(v), &|| v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(T::from_f64(v), &|| v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(T::from_str(v), &|| format!("{v:?}"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(None, &|| "null".to_owned())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.scalar(None, &|| "an object".to_owned())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.refuse_extra()?;
        let Node {
            decoder: d, depth, ..
        } = self;
        let dims = d.dims;
        if depth == 1 {
            if d.layout == Layout::Flat {
                return Err(d.refuse(format!(
                    "data mixes values and arrays; give it flat, or nested as shape {dims:?}"
                )));
            }
            d.layout = Layout::Nested;
        }
        // In nested data, the array at depth d is one level of dimension d.
        if depth >= 1 && depth >= dims.len() {
            return Err(d.refuse(format!("nested data is deeper than shape {dims:?}")));
        }
        let mut items = 0usize;
        loop {
            // The outer array's layout is known once its first element is read.
            let extra = d.layout == Layout::Nested && dims.get(depth).is_some_and(|&w| items >= w);
            let node = Node {
                decoder: &mut *d,
                depth: depth + 1,
                extra,
            };
            if seq.next_element_seed(node)?.is_none() {
                break;
            }
            items += 1;
        }
        if d.layout == Layout::Nested {
            let want = dims.get(depth).copied().unwrap_or(0);
            if items != want {
                return Err(d.refuse(format!(
                    "nested data has {items} elements at depth {depth} but shape {dims:?} needs {want}"
                )));
            }
        } else if d.out.len() != d.count {
            let (count, got) = (d.count, d.out.len());
            return Err(d.refuse(format!(
                "shape {dims:?} needs {count} elements but data has {got}"
            )));
        }
        Ok(())
    }
}

fn build<T: Element>(
    name: &str,
    datatype: DataType,
    dims: &[usize],
    count: usize,
    data: &str,
) -> Result<Tensor, ApiError> {
    let mut decoder: Decoder<'_, T> = Decoder {
        name,
        datatype,
        dims,
        count,
        layout: Layout::Unknown,
        // Never more than the data can hold (checked by the caller), so never reallocated.
        out: Vec::with_capacity(count.min(max_elements_in(data.len()))),
        refusal: None,
    };
    let mut de = serde_json::Deserializer::from_str(data);
    let parsed = de::DeserializeSeed::deserialize(
        Node {
            decoder: &mut decoder,
            depth: 0,
            extra: false,
        },
        &mut de,
    )
    .and_then(|()| de.end());
    if let Err(e) = parsed {
        return Err(decoder.refusal.take().unwrap_or_else(|| {
            ApiError::bad_request(format!("input '{name}': malformed data: {e}"))
        }));
    }
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(dims), decoder.out)
        .map(Tensor::from)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "input '{name}': data does not fit shape {dims:?}: {e}"
            ))
        })
}

/// A value for an error message, cut short.
fn cut(s: &str) -> String {
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}...")
    } else {
        s.to_owned()
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

impl TensorData {
    /// The bytes the values take in memory (each string's header and characters for BYTES).
    pub fn heap_bytes(&self) -> u64 {
        fn size<T>(v: &[T]) -> u64 {
            std::mem::size_of_val(v) as u64
        }
        match self {
            TensorData::Bool(v) => size(v),
            TensorData::Uint8(v) => size(v),
            TensorData::Uint16(v) => size(v),
            TensorData::Uint32(v) => size(v),
            TensorData::Uint64(v) => size(v),
            TensorData::Int8(v) => size(v),
            TensorData::Int16(v) => size(v),
            TensorData::Int32(v) => size(v),
            TensorData::Int64(v) => size(v),
            TensorData::Fp16(v) | TensorData::Fp32(v) => size(v),
            TensorData::Fp64(v) => size(v),
            TensorData::Bytes(v) => size(v) + v.iter().map(|s| s.len() as u64).sum::<u64>(),
        }
    }
}

impl TensorData {
    /// The most bytes the values take as JSON text: each value's longest form plus a comma
    /// (e.g. 16 for an f32, whose shortest round-trip form is at most 15 characters, such as
    /// `-1.17549435e-38`), and for BYTES six bytes a character (`\u001f`) plus quotes.
    pub fn json_bound(&self) -> u64 {
        let n = |len: usize, each: u64| (len as u64).saturating_mul(each);
        let values = match self {
            TensorData::Bool(v) => n(v.len(), 6),
            TensorData::Uint8(v) => n(v.len(), 4),
            TensorData::Int8(v) => n(v.len(), 5),
            TensorData::Uint16(v) => n(v.len(), 6),
            TensorData::Int16(v) => n(v.len(), 7),
            TensorData::Uint32(v) => n(v.len(), 11),
            TensorData::Int32(v) => n(v.len(), 12),
            TensorData::Uint64(v) => n(v.len(), 21),
            TensorData::Int64(v) => n(v.len(), 21),
            TensorData::Fp16(v) | TensorData::Fp32(v) => n(v.len(), 16),
            TensorData::Fp64(v) => n(v.len(), 25),
            TensorData::Bytes(v) => v
                .iter()
                .map(|s| n(s.len(), 6).saturating_add(3))
                .fold(0, u64::saturating_add),
        };
        values.saturating_add(2)
    }
}

/// One encoded output tensor: `{name, shape, datatype, data}` in JSON, or, when `binary`,
/// `{name, shape, datatype, parameters: {binary_data_size}}` with its values sent after the
/// JSON (the binary data extension, see [`crate::binary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub datatype: &'static str,
    pub data: TensorData,
    /// Whether the values go after the JSON as binary data instead of into `data`.
    pub binary: bool,
}

impl Serialize for EncodedTensor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("EncodedTensor", 4)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("shape", &self.shape)?;
        out.serialize_field("datatype", self.datatype)?;
        if self.binary {
            let size = crate::binary::binary_len(&self.data);
            out.serialize_field(
                "parameters",
                &serde_json::json!({ crate::protocol::BINARY_DATA_SIZE: size }),
            )?;
        } else {
            out.serialize_field("data", &self.data)?;
        }
        out.end()
    }
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
        binary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Decodes `data` as the server does: from its JSON text.
    fn decode_tensor(
        name: &str,
        datatype: DataType,
        shape: &[u64],
        data: &Value,
    ) -> Result<Tensor, ApiError> {
        super::decode_tensor(name, datatype, shape, &data.to_string())
    }

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
        assert_eq!(
            m,
            "input 'x': shape [2, 2] needs 4 elements but data has more"
        );
    }

    /// The raw text of `data`, decoded as the server does.
    fn bad_raw(dt: DataType, shape: &[u64], raw: &str) -> String {
        match super::decode_tensor("x", dt, shape, raw) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn refusals_happen_while_parsing_not_after() {
        // Each of these is refused at the element that breaks the rule: the malformed rest
        // of the text is never reached, or the answer would be a syntax error.
        let m = bad_raw(DataType::Fp32, &[2], "[1, 2, 3, this is not JSON");
        assert_eq!(m, "input 'x': shape [2] needs 2 elements but data has more");
        let m = bad_raw(DataType::Int8, &[3], "[1, 300, not JSON");
        assert_eq!(m, "input 'x': element 1 is not a valid INT8 value: 300");
        let m = bad_raw(DataType::Fp32, &[2, 2], "[[1, 2], [3, 4], [ not JSON");
        assert!(m.contains("more than 2 elements at depth 0"), "{m}");
        // Syntax errors are refused too, naming the input.
        let m = bad_raw(DataType::Fp32, &[2], "[1, 2");
        assert!(m.starts_with("input 'x': malformed data:"), "{m}");
    }

    #[test]
    fn a_shape_larger_than_its_data_can_hold_is_refused_before_allocating() {
        // 7 bytes hold at most 4 elements; a shape of 5 cannot be met by them.
        let m = bad_raw(DataType::Fp32, &[5], "[0,0,0]");
        assert_eq!(
            m,
            "input 'x': shape [5] needs 5 elements but its data (7 bytes) holds at most 4"
        );
        assert_eq!(max_elements_in("[0,0,0]".len()), 4);
        assert_eq!(max_elements_in("0".len()), 1);
    }

    fn values<T: tract_onnx::prelude::Datum + Clone>(t: &Tensor) -> Vec<T> {
        t.to_plain_array_view::<T>()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    #[test]
    fn decoded_buffers_are_typed_and_exactly_sized() {
        let t = super::decode_tensor("x", DataType::Fp32, &[4], "[0,0,0,0]").unwrap();
        assert_eq!(t.datum_type(), DatumType::F32);
        assert_eq!(t.len(), 4);
        let t = super::decode_tensor("x", DataType::Int64, &[2, 2], "[[1,-2],[3,4]]").unwrap();
        assert_eq!(values::<i64>(&t), [1, -2, 3, 4]);
        let t = super::decode_tensor("x", DataType::Uint8, &[3], "[0, 255.0, 7]").unwrap();
        assert_eq!(values::<u8>(&t), [0, 255, 7]);
        let t = super::decode_tensor("x", DataType::Fp16, &[1], "[0.5]").unwrap();
        assert_eq!(values::<f16>(&t), [f16::from_f32(0.5)]);
        let t = super::decode_tensor("x", DataType::Bytes, &[1], r#"["a\"b"]"#).unwrap();
        assert_eq!(values::<String>(&t), ["a\"b".to_owned()]);
    }

    #[test]
    fn flat_and_nested_cannot_be_mixed() {
        let m = bad_raw(DataType::Fp32, &[2, 1], "[1, [2]]");
        assert!(m.contains("mixes values and arrays"), "{m}");
        let m = bad(DataType::Fp32, &[2], json!({"a": 1}));
        assert_eq!(m, "input 'x': data must be an array, got an object");
        let m = bad(DataType::Fp32, &[2], json!([1, {"a": 1}]));
        assert_eq!(
            m,
            "input 'x': element 1 is not a valid FP32 value: an object"
        );
    }

    #[test]
    fn nested_data_must_match_shape() {
        let m = bad(DataType::Fp32, &[2, 2], json!([[1, 2], [3]]));
        assert!(m.contains("depth 1"), "{m}");
        let m = bad(DataType::Fp32, &[4], json!([[1, 2], [3, 4]]));
        assert!(m.contains("deeper than shape [4]"), "{m}");
        let m = bad(DataType::Fp32, &[1, 2], json!([[1, 2], [3, 4]]));
        assert!(m.contains("more than 1 elements at depth 0"), "{m}");
        let m = bad(DataType::Fp32, &[2, 3], json!([[1, 2], [3, 4]]));
        assert!(
            m.contains("nested data has 2 elements at depth 1 but shape [2, 3] needs 3"),
            "{m}"
        );
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
        assert!(m.contains("holds at most"), "{m}");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let m = bad(DataType::Fp32, &[1], json!([long]));
        assert!(m.ends_with("...") && m.len() < 120, "{m}");
    }
}
