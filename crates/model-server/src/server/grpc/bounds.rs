//! Bounds on a ModelInfer message, checked on its wire bytes before prost decodes it.
//!
//! prost builds every repeated field and map in full, and small wire entries become large
//! structures (a 2-byte input becomes a struct of a few hundred bytes; a 1-byte packed varint
//! dimension an 8-byte `i64`; typed `contents` of one-byte varints 4 or 8 bytes an element).
//! So before decoding, the codec walks the message's fields without allocating and refuses one
//! with more inputs, outputs or raw contents than [`MAX_TENSORS`], more than [`MAX_RANK`]
//! dimensions in a shape, more than [`MAX_PARAMETERS`] parameters in one map, or typed
//! `contents` (not served: [`super`]). What passes decodes to about its own size plus a
//! bounded overhead, which the memory budget's charge covers, as the REST parser's bounds do.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

use super::pb;
use crate::protocol::{MAX_PARAMETERS, MAX_RANK, MAX_TENSORS};

/// A request message checked on its wire bytes before it is decoded.
pub trait Bounded {
    /// Errors: the reason the message is refused (INVALID_ARGUMENT).
    fn check_wire(_bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

impl Bounded for pb::ServerLiveRequest {}
impl Bounded for pb::ServerReadyRequest {}
impl Bounded for pb::ModelReadyRequest {}
impl Bounded for pb::ServerMetadataRequest {}
impl Bounded for pb::ModelMetadataRequest {}

impl Bounded for pb::ModelInferRequest {
    fn check_wire(bytes: &[u8]) -> Result<(), String> {
        check_infer_request(bytes)
    }
}

/// prost's codec, whose decoder first checks the message ([`Bounded`]). Named in build.rs.
#[derive(Debug)]
pub struct BoundedCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = BoundedDecoder<<ProstCodec<T, U> as Codec>::Decoder, U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(self.0.decoder(), PhantomData)
    }
}

/// A decoder that checks a message's wire bytes before the inner decoder decodes them.
#[derive(Debug)]
pub struct BoundedDecoder<D, U>(D, PhantomData<U>);

impl<D, U> Decoder for BoundedDecoder<D, U>
where
    D: Decoder<Item = U, Error = Status>,
    U: Bounded,
{
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        // tonic hands the whole message over in one contiguous buffer.
        if buf.chunk().len() != buf.remaining() {
            return Err(Status::internal(
                "the request message is not in one buffer; cannot check it before decoding",
            ));
        }
        U::check_wire(buf.chunk()).map_err(Status::invalid_argument)?;
        self.0.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// One field of a message on the wire.
enum Field<'a> {
    /// A varint, fixed32 or fixed64 value.
    Scalar,
    /// A length-delimited value: bytes, a string, a nested message or a packed repeated field.
    Bytes(&'a [u8]),
}

const MALFORMED: &str = "malformed ModelInferRequest message";

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(MALFORMED.to_owned())
}

/// The next field's number and value, advancing `buf` past it.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Field<'a>), String> {
    let key = varint(buf)?;
    let skip = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(MALFORMED.to_owned());
        }
        let (value, rest) = buf.split_at(n);
        *buf = rest;
        Ok(value)
    };
    let field = match key & 7 {
        0 => {
            varint(buf)?;
            Field::Scalar
        }
        1 => {
            skip(buf, 8)?;
            Field::Scalar
        }
        2 => {
            let len = usize::try_from(varint(buf)?).map_err(|_| MALFORMED.to_owned())?;
            Field::Bytes(skip(buf, len)?)
        }
        5 => {
            skip(buf, 4)?;
            Field::Scalar
        }
        // Groups (3, 4) are not in this protocol; anything else is not protobuf.
        _ => return Err(MALFORMED.to_owned()),
    };
    Ok((key >> 3, field))
}

fn too_many(what: &str, most: usize) -> String {
    format!("{what}: more than {most}, the most this server takes")
}

/// ModelInferRequest: parameters (4), inputs (5), outputs (6), raw_input_contents (7).
fn check_infer_request(mut buf: &[u8]) -> Result<(), String> {
    let (mut parameters, mut inputs, mut outputs, mut raw) = (0usize, 0usize, 0usize, 0usize);
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            (4, _) => parameters += 1,
            (5, Field::Bytes(input)) => {
                inputs += 1;
                check_tensor(input, inputs, "input", true)?;
            }
            (6, Field::Bytes(output)) => {
                outputs += 1;
                check_tensor(output, outputs, "output", false)?;
            }
            (7, _) => raw += 1,
            _ => {}
        }
        if parameters > MAX_PARAMETERS {
            return Err(too_many("request parameters", MAX_PARAMETERS));
        }
        if inputs > MAX_TENSORS || raw > MAX_TENSORS {
            return Err(too_many("inputs", MAX_TENSORS));
        }
        if outputs > MAX_TENSORS {
            return Err(too_many("requested outputs", MAX_TENSORS));
        }
    }
    Ok(())
}

/// InferInputTensor (name 1, shape 3, parameters 4, contents 5) or InferRequestedOutputTensor
/// (name 1, parameters 2). `index` counts from 1, for messages before the name is known.
fn check_tensor(mut buf: &[u8], index: usize, kind: &str, input: bool) -> Result<(), String> {
    let parameters_field = if input { 4 } else { 2 };
    let mut name: Option<String> = None;
    let (mut dims, mut parameters, mut contents) = (0usize, 0usize, false);
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            (1, Field::Bytes(n)) => name = Some(String::from_utf8_lossy(n).into_owned()),
            // A packed shape holds one varint per byte whose high bit is clear.
            (3, Field::Bytes(packed)) if input => {
                dims += packed.iter().filter(|&&b| b < 0x80).count();
            }
            (3, Field::Scalar) if input => dims += 1,
            (f, _) if f == parameters_field => parameters += 1,
            (5, Field::Bytes(c)) if input && !c.is_empty() => contents = true,
            _ => {}
        }
    }
    let what = match name {
        Some(name) => format!("{kind} '{name}'"),
        None => format!("{kind} {index}"),
    };
    if dims > MAX_RANK {
        return Err(format!(
            "{what}: shape has more than {MAX_RANK} dimensions, the most this server takes"
        ));
    }
    if parameters > MAX_PARAMETERS {
        return Err(too_many(&format!("{what}: parameters"), MAX_PARAMETERS));
    }
    if contents {
        return Err(format!(
            "{what}: typed `contents` are not supported by this server; send the tensors as raw_input_contents"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};

    fn input(name: &str, dims: usize) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![1; dims],
            ..Default::default()
        }
    }

    fn check(msg: &pb::ModelInferRequest) -> Result<(), String> {
        pb::ModelInferRequest::check_wire(&msg.encode_to_vec())
    }

    fn parameter() -> pb::InferParameter {
        pb::InferParameter {
            parameter_choice: Some(pb::infer_parameter::ParameterChoice::BoolParam(true)),
        }
    }

    #[test]
    fn a_request_within_the_bounds_passes() {
        let msg = pb::ModelInferRequest {
            model_name: "m".into(),
            id: "1".into(),
            parameters: (0..MAX_PARAMETERS)
                .map(|i| (format!("p{i}"), parameter()))
                .collect(),
            inputs: (0..MAX_TENSORS)
                .map(|i| input(&format!("x{i}"), MAX_RANK))
                .collect(),
            outputs: vec![InferRequestedOutputTensor {
                name: "y".into(),
                parameters: [("binary_data".to_owned(), parameter())].into(),
            }],
            raw_input_contents: vec![vec![0u8; 300].into(); MAX_TENSORS],
            ..Default::default()
        };
        check(&msg).unwrap();
    }

    #[test]
    fn counts_past_the_bounds_are_refused_before_decoding() {
        let mut msg = pb::ModelInferRequest {
            inputs: vec![input("x", MAX_RANK + 1)],
            ..Default::default()
        };
        assert_eq!(
            check(&msg).unwrap_err(),
            "input 'x': shape has more than 32 dimensions, the most this server takes"
        );
        // Large dimensions take several bytes each; they are counted once each.
        msg.inputs[0].shape = vec![i64::MAX; MAX_RANK];
        check(&msg).unwrap();
        msg.inputs = vec![input("x", 1); MAX_TENSORS + 1];
        assert_eq!(
            check(&msg).unwrap_err(),
            "inputs: more than 256, the most this server takes"
        );
        msg.inputs.clear();
        msg.raw_input_contents = vec![Default::default(); MAX_TENSORS + 1];
        assert!(check(&msg).is_err());
        msg.raw_input_contents.clear();
        msg.parameters = (0..=MAX_PARAMETERS)
            .map(|i| (format!("p{i}"), parameter()))
            .collect();
        assert_eq!(
            check(&msg).unwrap_err(),
            "request parameters: more than 64, the most this server takes"
        );
        msg.parameters.clear();
        msg.outputs = vec![
            InferRequestedOutputTensor {
                name: "y".into(),
                parameters: (0..=MAX_PARAMETERS)
                    .map(|i| (format!("p{i}"), parameter()))
                    .collect(),
            };
            1
        ];
        assert_eq!(
            check(&msg).unwrap_err(),
            "output 'y': parameters: more than 64, the most this server takes"
        );
    }

    #[test]
    fn typed_contents_are_refused_before_decoding() {
        let mut x = input("x", 1);
        x.contents = Some(pb::InferTensorContents {
            int64_contents: vec![1; 1000],
            ..Default::default()
        });
        let msg = pb::ModelInferRequest {
            inputs: vec![x],
            ..Default::default()
        };
        assert_eq!(
            check(&msg).unwrap_err(),
            "input 'x': typed `contents` are not supported by this server; send the tensors as raw_input_contents"
        );
    }

    #[test]
    fn malformed_bytes_are_refused() {
        for bytes in [&[0x2a][..], &[0x2a, 0x05, 0x01], &[0x0b], &[0xff; 11]] {
            assert_eq!(
                pb::ModelInferRequest::check_wire(bytes).unwrap_err(),
                MALFORMED
            );
        }
        assert!(pb::ModelInferRequest::check_wire(&[]).is_ok());
    }
}
