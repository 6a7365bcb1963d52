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

/// `$request_input`. `data` is the raw JSON text of the tensor's data, as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestInput<'a> {
    pub name: String,
    #[serde(deserialize_with = "shape")]
    pub shape: Vec<u64>,
    pub datatype: String,
    #[serde(default, deserialize_with = "parameters")]
    pub parameters: Option<RequestParameters>,
    #[serde(borrow)]
    pub data: &'a RawValue,
}

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
                .saturating_add(o.data.json_bound())
        })
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
    /// (at most what its data's length can hold) times its datatype's element size, plus the
    /// data's length for BYTES. An unknown datatype counts 8 bytes an element (the request is
    /// refused before decoding anyway).
    pub fn decoded_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .map(|input| {
                let raw = input.data.get().len();
                let declared = input.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d));
                let elements = declared.min(max_elements_in(raw) as u64);
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

    /// Checks every `$parameters` object holds only strings, numbers and
    /// booleans, and refuses the binary tensor data extension, which this
    /// server does not implement.
    fn check_parameters(&self) -> Result<(), ApiError> {
        check_parameter_values("request", self.parameters.as_ref())?;
        for input in &self.inputs {
            let what = format!("input '{}'", input.name);
            check_parameter_values(&what, input.parameters.as_ref())?;
            if input
                .parameters
                .as_ref()
                .is_some_and(|p| p.contains_key("binary_data_size"))
            {
                return Err(ApiError::bad_request(format!(
                    "{what}: the binary tensor data extension is not supported; send the data as JSON"
                )));
            }
        }
        for output in self.outputs.iter().flatten() {
            let what = format!("output '{}'", output.name);
            check_parameter_values(&what, output.parameters.as_ref())?;
        }
        Ok(())
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
        assert!(
            err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#)
                .contains("missing field `data`")
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
        assert_eq!(req.inputs[0].data.get(), "[[1, 2],[3, 4]]");
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
    fn binary_data_extension_is_refused() {
        let m = err(
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[],"parameters":{"binary_data_size":4}}]}"#,
        );
        assert!(m.contains("binary tensor data extension"), "{m}");
    }

    #[test]
    fn the_response_bound_is_never_below_its_json_length() {
        use crate::tensor::{EncodedTensor, TensorData};
        let tensor = |name: &str, datatype: &'static str, data: TensorData| EncodedTensor {
            name: name.into(),
            shape: vec![u64::MAX, 3],
            datatype,
            data,
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
