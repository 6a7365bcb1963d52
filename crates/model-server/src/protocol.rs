//! JSON objects of the Open Inference Protocol (KServe "V2") REST API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::tensor::{DataType, EncodedTensor, element_size, max_elements_in};

/// The most dimensions a request's tensor shape may have. Each is held as a `u64` (four times its
/// two bytes of JSON text at least), so an unbounded shape would let a small body take memory the
/// server's budget does not charge.
pub const MAX_RANK: usize = 32;
/// The most entries one `$parameters` object of a request may have.
pub const MAX_PARAMETERS: usize = 64;
/// The most inputs, and the most requested outputs, of one request.
pub const MAX_TENSORS: usize = 256;

/// A JSON array of at most `N` elements, refused while parsing as soon as it has one more.
fn at_most<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> de::Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {N} elements")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
            while let Some(item) = seq.next_element()? {
                if items.len() == N {
                    return Err(de::Error::custom(format!(
                        "more than {N} elements, the most this server takes"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded::<T, N>(std::marker::PhantomData))
}

fn shape<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    at_most::<D, u64, MAX_RANK>(deserializer)
}

fn inputs<'de, 'a, D>(deserializer: D) -> Result<Vec<RequestInput<'a>>, D::Error>
where
    D: de::Deserializer<'de>,
    'de: 'a,
{
    at_most::<D, RequestInput<'a>, MAX_TENSORS>(deserializer)
}

fn outputs<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<RequestOutput>>, D::Error> {
    struct Outputs(Vec<RequestOutput>);
    impl<'de> Deserialize<'de> for Outputs {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            at_most::<D, RequestOutput, MAX_TENSORS>(deserializer).map(Outputs)
        }
    }
    Ok(Option::<Outputs>::deserialize(deserializer)?.map(|o| o.0))
}

/// A request's `$parameters`: at most [`MAX_PARAMETERS`] entries, refused while parsing.
fn parameters<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RequestParameters>, D::Error> {
    struct Bounded;
    impl<'de> de::Visitor<'de> for Bounded {
        type Value = Option<RequestParameters>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an object of at most {MAX_PARAMETERS} parameters")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut parameters = RequestParameters::new();
            while let Some((key, value)) = map.next_entry::<String, ParameterValue>()? {
                parameters.insert(key, value);
                if parameters.len() > MAX_PARAMETERS {
                    return Err(de::Error::custom(format!(
                        "more than {MAX_PARAMETERS} parameters, the most this server takes"
                    )));
                }
            }
            Ok(Some(parameters))
        }
    }
    deserializer.deserialize_any(Bounded)
}

/// `$parameters` of a response: name/value pairs whose values are strings, numbers or booleans.
pub type Parameters = Map<String, Value>;

/// `$parameters` of a request, as read: each value a string, number or boolean, or a mark
/// that it was something else (skipped without being built, and refused with its name by
/// [`InferenceRequest::from_json`]).
pub type RequestParameters = BTreeMap<String, ParameterValue>;

/// One value of a request's `$parameters`.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterValue {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(String),
    /// An array, object or null: not a parameter value. Its contents are skipped, never held.
    Invalid,
}

impl<'de> Deserialize<'de> for ParameterValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl<'de> de::Visitor<'de> for Scalar {
            type Value = ParameterValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParameterValue, E> {
                Ok(ParameterValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParameterValue, E> {
                Ok(ParameterValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParameterValue, E> {
                Ok(ParameterValue::Uint(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParameterValue, E> {
                Ok(ParameterValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParameterValue, E> {
                Ok(ParameterValue::String(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ParameterValue, E> {
                Ok(ParameterValue::Invalid)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ParameterValue, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(ParameterValue::Invalid)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ParameterValue, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(ParameterValue::Invalid)
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

/// `$metadata_server_response`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `$metadata_tensor`: a shape uses -1 for a dimension of variable size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// `$metadata_model_response`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// `$inference_request`, borrowing each input's tensor data from the request body.
///
/// Nothing in it is a generic JSON value: tensor `data` stays the body's raw text until
/// [`crate::tensor::decode_tensor`] parses it into a typed buffer, parameters are scalars, and
/// unknown fields are skipped without being built.
#[derive(Debug, Clone, Deserialize)]
pub struct InferenceRequest<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "parameters")]
    pub parameters: Option<RequestParameters>,
    #[serde(borrow, deserialize_with = "inputs")]
    pub inputs: Vec<RequestInput<'a>>,
    #[serde(default, deserialize_with = "outputs")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// `$request_input`. `data` is the raw JSON text of the tensor's data, as sent; an input sent
/// with the binary data extension has no `data` but `parameters.binary_data_size`, and its
/// bytes are bound to `binary` by [`crate::binary::bind_binary_inputs`].
#[derive(Debug, Clone, Deserialize)]
pub struct RequestInput<'a> {
    pub name: String,
    #[serde(deserialize_with = "shape")]
    pub shape: Vec<u64>,
    pub datatype: String,
    #[serde(default, deserialize_with = "parameters")]
    pub parameters: Option<RequestParameters>,
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
    /// The input's bytes in the body after the JSON header (binary data extension).
    #[serde(skip)]
    pub binary: Option<&'a [u8]>,
}

/// Where one input's values are: JSON text, or raw bytes of the binary data extension.
#[derive(Debug, Clone, Copy)]
pub enum InputData<'a> {
    Json(&'a str),
    Binary(&'a [u8]),
}

impl<'a> RequestInput<'a> {
    /// The input's values. Errors: 400 when it has neither `data` nor bound binary data (an
    /// input whose `binary_data_size` was not bound is refused by
    /// [`crate::binary::bind_binary_inputs`] first).
    pub fn values(&self) -> Result<InputData<'a>, ApiError> {
        match (self.data, self.binary) {
            (Some(data), None) => Ok(InputData::Json(data.get())),
            (None, Some(bytes)) => Ok(InputData::Binary(bytes)),
            _ => Err(ApiError::bad_request(format!(
                "input '{}': give its values either as `data` or as binary data announced by parameters.binary_data_size",
                self.name
            ))),
        }
    }

    /// `parameters.binary_data_size`, if given. Errors: 400 unless it is a non-negative integer.
    pub fn binary_data_size(&self) -> Result<Option<u64>, ApiError> {
        match self
            .parameters
            .as_ref()
            .and_then(|p| p.get(BINARY_DATA_SIZE))
        {
            None => Ok(None),
            Some(ParameterValue::Uint(n)) => Ok(Some(*n)),
            Some(ParameterValue::Int(n)) if *n >= 0 => Ok(Some(n.unsigned_abs())),
            Some(_) => Err(ApiError::bad_request(format!(
                "input '{}': parameter '{BINARY_DATA_SIZE}' must be a non-negative integer (bytes)",
                self.name
            ))),
        }
    }
}

/// The binary data extension's parameter of an input (and of a response output): the size of
/// the tensor's binary data, in bytes.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// The binary data extension's parameter of a requested output: answer it as binary data.
pub const BINARY_DATA: &str = "binary_data";
/// The binary data extension's parameter of a request: answer every output as binary data,
/// unless the output's own `binary_data` says otherwise.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";

/// `$request_output`.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default, deserialize_with = "parameters")]
    pub parameters: Option<RequestParameters>,
}

/// `$inference_response`.
#[derive(Debug, Clone, Serialize)]
pub struct InferenceResponse {
    pub model_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    pub outputs: Vec<EncodedTensor>,
}

impl InferenceResponse {
    /// The most bytes the response takes as JSON text: each output's values at their longest
    /// ([`crate::tensor::TensorData::json_bound`]), its name escaped at worst, its shape, and
    /// the fixed keys.
    pub fn json_bound(&self) -> u64 {
        let text = |s: &str| (s.len() as u64).saturating_mul(6).saturating_add(2);
        let fixed = 256
            + text(&self.model_name)
            + self.model_version.as_deref().map_or(0, text)
            + self.id.as_deref().map_or(0, text)
            + self
                .parameters
                .as_ref()
                .and_then(|p| serde_json::to_vec(p).ok())
                .map_or(0, |v| v.len() as u64);
        self.outputs.iter().fold(fixed, |sum, o| {
            sum.saturating_add(128)
                .saturating_add(text(&o.name))
                .saturating_add(o.shape.len() as u64 * 21)
                .saturating_add(if o.binary {
                    // `"parameters":{"binary_data_size":<u64>}` in place of `"data":...`.
                    64
                } else {
                    o.data.json_bound()
                })
        })
    }
}

impl InferenceResponse {
    /// The bytes of the outputs sent as binary data after the JSON header.
    pub fn binary_len(&self) -> u64 {
        self.outputs
            .iter()
            .filter(|o| o.binary)
            .map(|o| crate::binary::binary_len(&o.data))
            .fold(0, u64::saturating_add)
    }

    /// Whether any output is sent as binary data (the response is then the JSON header
    /// followed by their bytes, see [`crate::binary`]).
    pub fn has_binary(&self) -> bool {
        self.outputs.iter().any(|o| o.binary)
    }
}

impl<'a> InferenceRequest<'a> {
    /// Parses a request body, mapping every JSON or schema error to a 400. Tensor data is
    /// checked for JSON syntax only (without building anything); its values are decoded later.
    pub fn from_json(body: &'a [u8]) -> Result<Self, ApiError> {
        let req: InferenceRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("malformed inference request: {e}")))?;
        req.check_parameters()?;
        Ok(req)
    }

    /// The bytes the inputs' decoded buffers take: for each input, its shape's element count
    /// (at most what its data's length can hold: a JSON array's elements, or binary data's
    /// bytes over the element's binary size, 4 for BYTES' length prefix) times its
    /// datatype's element size, plus the data's length for BYTES. An unknown datatype counts 8
    /// bytes an element (the request is refused before decoding anyway).
    pub fn decoded_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .map(|input| {
                let (raw, most) = match (input.data, input.binary) {
                    (Some(data), _) => (data.get().len(), max_elements_in(data.get().len())),
                    (None, Some(b)) => {
                        // A BYTES element takes its 4-byte length at least.
                        let each = DataType::parse(&input.datatype)
                            .map_or(1, |dt| crate::binary::binary_size(dt).unwrap_or(4));
                        (b.len(), b.len() / each)
                    }
                    (None, None) => (0, 0),
                };
                let declared = input.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d));
                let elements = declared.min(most as u64);
                match DataType::parse(&input.datatype) {
                    Some(DataType::Bytes) => elements
                        .saturating_mul(element_size(DataType::Bytes) as u64)
                        .saturating_add(raw as u64),
                    Some(dt) => elements.saturating_mul(element_size(dt) as u64),
                    None => elements.saturating_mul(8),
                }
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Checks every `$parameters` object holds only strings, numbers and booleans, that the
    /// binary data extension's parameters have their types, and that each input gives its
    /// values one way: `data`, or `binary_data_size`.
    fn check_parameters(&self) -> Result<(), ApiError> {
        check_parameter_values("request", self.parameters.as_ref())?;
        bool_parameter("request", self.parameters.as_ref(), BINARY_DATA_OUTPUT)?;
        for input in &self.inputs {
            let what = format!("input '{}'", input.name);
            check_parameter_values(&what, input.parameters.as_ref())?;
            match (input.data.is_some(), input.binary_data_size()?.is_some()) {
                (true, true) => {
                    return Err(ApiError::bad_request(format!(
                        "{what} has both `data` and parameters.{BINARY_DATA_SIZE}; send its values one way"
                    )));
                }
                (false, false) => {
                    return Err(ApiError::bad_request(format!(
                        "{what} has no `data`, and no parameters.{BINARY_DATA_SIZE} announcing binary data"
                    )));
                }
                _ => {}
            }
        }
        for output in self.outputs.iter().flatten() {
            let what = format!("output '{}'", output.name);
            check_parameter_values(&what, output.parameters.as_ref())?;
            bool_parameter(&what, output.parameters.as_ref(), BINARY_DATA)?;
        }
        Ok(())
    }

    /// Whether the output `name` is to be answered as binary data: its own `binary_data`
    /// parameter if the request lists it with one, else the request's `binary_data_output`
    /// (false when neither is given), as the binary data extension says.
    pub fn wants_binary(&self, name: &str) -> bool {
        let own = self
            .outputs
            .iter()
            .flatten()
            .find(|o| o.name == name)
            .and_then(|o| {
                bool_parameter("", o.parameters.as_ref(), BINARY_DATA)
                    .ok()
                    .flatten()
            });
        own.or_else(|| {
            bool_parameter("", self.parameters.as_ref(), BINARY_DATA_OUTPUT)
                .ok()
                .flatten()
        })
        .unwrap_or(false)
    }
}

/// A boolean parameter, if given. Errors: 400 naming `what` when it is not a boolean.
fn bool_parameter(
    what: &str,
    params: Option<&RequestParameters>,
    key: &str,
) -> Result<Option<bool>, ApiError> {
    match params.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(ParameterValue::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request(format!(
            "{what}: parameter '{key}' must be a boolean"
        ))),
    }
}

fn check_parameter_values(what: &str, params: Option<&RequestParameters>) -> Result<(), ApiError> {
    for (key, value) in params.into_iter().flatten() {
        if *value == ParameterValue::Invalid {
            return Err(ApiError::bad_request(format!(
                "{what}: parameter '{key}' must be a string, number or boolean"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parameters_and_tensor_lists_are_bounded_while_parsing() {
        let input = |shape: &str, parameters: &str| {
            format!(
                r#"{{"name":"x","shape":{shape},"datatype":"FP32","parameters":{parameters},"data":[1]}}"#
            )
        };
        let request = |inputs: &str| format!(r#"{{"inputs":[{inputs}]}}"#);
        let dims = |n: usize| format!("[{}]", vec!["1"; n].join(","));
        let params = |n: usize| {
            format!(
                "{{{}}}",
                (0..n)
                    .map(|i| format!(r#""p{i}":1"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let ok = request(&input(&dims(MAX_RANK), &params(MAX_PARAMETERS)));
        assert!(InferenceRequest::from_json(ok.as_bytes()).is_ok());

        let deep = request(&input(&dims(MAX_RANK + 1), "{}"));
        let e = err(&deep);
        assert!(e.contains("more than 32 elements"), "{e}");

        let many = request(&input("[1]", &params(MAX_PARAMETERS + 1)));
        let e = err(&many);
        assert!(e.contains("more than 64 parameters"), "{e}");

        let inputs = vec![input("[1]", "{}"); MAX_TENSORS + 1].join(",");
        let e = err(&request(&inputs));
        assert!(e.contains("more than 256 elements"), "{e}");

        // Refused at the first element past the bound, even if the body is cut off after it.
        let cut = format!(
            r#"{{"inputs":[{{"name":"x","shape":{},"#,
            dims(MAX_RANK + 1)
        );
        let cut = &cut[..cut.len() - 2];
        let e = err(cut);
        assert!(e.contains("more than 32 elements"), "{e}");

        let null_outputs = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":null,"parameters":null}"#;
        let parsed = InferenceRequest::from_json(null_outputs.as_bytes());
        assert!(
            parsed
                .as_ref()
                .is_ok_and(|r| r.outputs.is_none() && r.parameters.is_none())
        );
    }

    fn err(body: &str) -> String {
        match InferenceRequest::from_json(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_spec_example() {
        let body = r#"{
          "id" : "42",
          "inputs" : [
            { "name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32", "data" : [ 1, 2, 3, 4 ] },
            { "name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ true ] }
          ],
          "outputs" : [ { "name" : "output0" } ]
        }"#;
        let req = InferenceRequest::from_json(body.as_bytes()).unwrap();
        assert_eq!(req.id.as_deref(), Some("42"));
        assert_eq!(req.inputs.len(), 2);
        assert_eq!(req.inputs[0].shape, vec![2, 2]);
        assert_eq!(req.outputs.unwrap()[0].name, "output0");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert!(err("{").starts_with("malformed inference request"));
        assert!(err("[]").starts_with("malformed inference request"));
        assert!(err(r#"{"id": "1"}"#).contains("missing field `inputs`"));
        assert!(
            err(r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[]}]}"#)
                .contains("-1")
        );
        assert_eq!(
            err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#),
            "input 'x' has no `data`, and no parameters.binary_data_size announcing binary data"
        );
        // Unknown fields are ignored, so clients that send extras keep working.
        assert!(InferenceRequest::from_json(br#"{"inputs":[], "bogus": 1}"#).is_ok());
    }

    #[test]
    fn parameters_must_be_scalars() {
        let m = err(r#"{"parameters": {"a": [1]}, "inputs": []}"#);
        assert!(m.contains("parameter 'a'"), "{m}");
        let m = err(
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"p":{}}}]}"#,
        );
        assert!(m.contains("input 'x': parameter 'p'"), "{m}");
        let ok = r#"{"parameters": {"a": 1, "b": "s", "c": true}, "inputs": []}"#;
        assert!(InferenceRequest::from_json(ok.as_bytes()).is_ok());
    }

    #[test]
    fn tensor_data_is_kept_as_raw_text_and_counted_by_its_shape() {
        let body = br#"{"inputs":[
            {"name":"a","shape":[2,2],"datatype":"FP32","data":[[1, 2],[3, 4]]},
            {"name":"b","shape":[3],"datatype":"INT64","data":[0,0,0]},
            {"name":"s","shape":[1],"datatype":"BYTES","data":["abc"]}]}"#;
        let req = InferenceRequest::from_json(body).unwrap();
        assert_eq!(req.inputs[0].data.unwrap().get(), "[[1, 2],[3, 4]]");
        assert_eq!(req.decoded_bytes(), 4 * 4 + 3 * 8 + (24 + 7));
        // A shape larger than its data can hold counts only what the data's length can hold
        // (3 bytes: 2 elements), as the decoder never holds more.
        let req = InferenceRequest::from_json(
            br#"{"inputs":[{"name":"a","shape":[1000000000],"datatype":"FP64","data":[0]}]}"#,
        )
        .unwrap();
        assert_eq!(req.decoded_bytes(), 2 * 8);
    }

    #[test]
    fn non_scalar_parameters_are_skipped_and_refused_by_name() {
        let zeros = vec!["0"; 100_000].join(",");
        let body = format!(r#"{{"parameters": {{"big": [[{zeros}]], "ok": 1}}, "inputs": []}}"#);
        let m = err(&body);
        assert_eq!(
            m,
            "request: parameter 'big' must be a string, number or boolean"
        );
        let m = err(r#"{"parameters": {"n": null}, "inputs": []}"#);
        assert!(m.contains("parameter 'n'"), "{m}");
    }

    #[test]
    fn binary_data_parameters_are_checked() {
        let input = |params: &str, data: &str| {
            format!(
                r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32"{data},"parameters":{params}}}]}}"#
            )
        };
        let m = err(&input(r#"{"binary_data_size":4}"#, r#","data":[1]"#));
        assert_eq!(
            m,
            "input 'x' has both `data` and parameters.binary_data_size; send its values one way"
        );
        for bad in ["-1", "1.5", r#""4""#, "true"] {
            let m = err(&input(&format!(r#"{{"binary_data_size":{bad}}}"#), ""));
            assert_eq!(
                m,
                "input 'x': parameter 'binary_data_size' must be a non-negative integer (bytes)"
            );
        }
        let body = input(r#"{"binary_data_size":4}"#, "");
        let req = InferenceRequest::from_json(body.as_bytes()).unwrap();
        assert_eq!(req.inputs[0].binary_data_size().unwrap(), Some(4));
        assert!(req.inputs[0].data.is_none());

        let m = err(r#"{"inputs":[],"parameters":{"binary_data_output":1}}"#);
        assert_eq!(
            m,
            "request: parameter 'binary_data_output' must be a boolean"
        );
        let m = err(r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}"#);
        assert_eq!(m, "output 'y': parameter 'binary_data' must be a boolean");
    }

    #[test]
    fn an_output_is_binary_by_its_own_parameter_else_by_the_requests() {
        fn req(body: &str) -> InferenceRequest<'_> {
            InferenceRequest::from_json(body.as_bytes()).unwrap()
        }
        let none = req(r#"{"inputs":[]}"#);
        assert!(!none.wants_binary("y"));
        let all = req(r#"{"inputs":[],"parameters":{"binary_data_output":true}}"#);
        assert!(all.wants_binary("y"));
        let mixed = req(r#"{"inputs":[],"parameters":{"binary_data_output":true},
                "outputs":[{"name":"y","parameters":{"binary_data":false}},{"name":"pre"}]}"#);
        assert!(!mixed.wants_binary("y"));
        assert!(mixed.wants_binary("pre"));
        let own =
            req(r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#);
        assert!(own.wants_binary("y"));
        assert!(!own.wants_binary("pre"));
    }

    #[test]
    fn binary_inputs_are_counted_by_their_bytes() {
        let mut req = InferenceRequest::from_json(
            br#"{"inputs":[
            {"name":"a","shape":[1000000],"datatype":"FP64","parameters":{"binary_data_size":16}},
            {"name":"s","shape":[1000],"datatype":"BYTES","parameters":{"binary_data_size":12}}]}"#,
        )
        .unwrap();
        req.inputs[0].binary = Some(&[0; 16]);
        req.inputs[1].binary = Some(b"\x03\0\0\0abcdefgh");
        // 2 f64 elements in 16 bytes (the shape's million is refused at decoding), and at most 3
        // strings (4 bytes each at least) beside the 12 bytes.
        assert_eq!(req.decoded_bytes(), 2 * 8 + (3 * 24 + 12));
    }

    #[test]
    fn the_response_bound_is_never_below_its_json_length() {
        use crate::tensor::{EncodedTensor, TensorData};
        let tensor = |name: &str, datatype: &'static str, data: TensorData| EncodedTensor {
            name: name.into(),
            shape: vec![u64::MAX, 3],
            datatype,
            data,
            binary: false,
        };
        let resp = InferenceResponse {
            model_name: "m\u{1}\"".into(),
            model_version: Some("v".into()),
            id: Some("\n\n".into()),
            parameters: None,
            outputs: vec![
                tensor("a\u{1f}", "BOOL", TensorData::Bool(vec![false; 3])),
                tensor("b", "UINT8", TensorData::Uint8(vec![255; 3])),
                tensor("c", "INT8", TensorData::Int8(vec![-128; 3])),
                tensor("d", "UINT16", TensorData::Uint16(vec![u16::MAX; 3])),
                tensor("e", "INT16", TensorData::Int16(vec![i16::MIN; 3])),
                tensor("f", "UINT32", TensorData::Uint32(vec![u32::MAX; 3])),
                tensor("g", "INT32", TensorData::Int32(vec![i32::MIN; 3])),
                tensor("h", "UINT64", TensorData::Uint64(vec![u64::MAX; 3])),
                tensor("i", "INT64", TensorData::Int64(vec![i64::MIN; 3])),
                tensor(
                    "j",
                    "FP32",
                    TensorData::Fp32(vec![-f32::MIN_POSITIVE, f32::MIN, -1.0e-45]),
                ),
                tensor(
                    "k",
                    "FP64",
                    TensorData::Fp64(vec![-f64::MIN_POSITIVE, f64::MIN, -5e-324]),
                ),
                tensor(
                    "l",
                    "BYTES",
                    TensorData::Bytes(vec!["\u{1}\u{2}".into(), String::new()]),
                ),
            ],
        };
        let len = serde_json::to_vec(&resp).unwrap().len() as u64;
        assert!(resp.json_bound() >= len, "{} < {len}", resp.json_bound());
        // Each value's bound is at least its own text.
        for o in &resp.outputs {
            let text = serde_json::to_vec(&o.data).unwrap().len() as u64;
            assert!(
                o.data.json_bound() >= text,
                "{}: {} < {text}",
                o.name,
                o.data.json_bound()
            );
        }
    }

    #[test]
    fn response_omits_absent_optional_fields() {
        let resp = InferenceResponse {
            model_name: "m".into(),
            model_version: None,
            id: None,
            parameters: None,
            outputs: vec![],
        };
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            serde_json::json!({"model_name": "m", "outputs": []})
        );
    }
}
