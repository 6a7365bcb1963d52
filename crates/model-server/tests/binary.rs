//! End-to-end tests of the binary tensor data extension: the real `berth-model-server` binary,
//! the `mlp`, `strings` and `dtypes` models of `tests/make_models.py`, and request bodies built
//! here byte by byte as the extension lays them out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

/// A response: status, headers that matter here, the JSON header and the binary data after it.
struct Binary {
    status: u16,
    content_type: String,
    header_length: Option<usize>,
    json: Value,
    binary: Vec<u8>,
}

/// Posts `json` followed by `binary` with `Inference-Header-Content-Length` set to `header`
/// (the JSON's length when `None`).
fn post(server: &Server, json: &Value, binary: &[u8], header: Option<&str>) -> Binary {
    let mut body = serde_json::to_vec(json).unwrap();
    let length = header.map_or_else(|| body.len().to_string(), str::to_owned);
    body.extend_from_slice(binary);
    let resp = reqwest::blocking::Client::new()
        .post(server.url("/v2/models/mlp/infer"))
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", length)
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let get = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = get("content-type").unwrap_or_default();
    let header_length = get("inference-header-content-length").map(|v| v.parse().unwrap());
    let bytes = resp.bytes().unwrap().to_vec();
    let split = header_length.unwrap_or(bytes.len());
    Binary {
        status,
        content_type,
        header_length,
        json: serde_json::from_slice(&bytes[..split]).unwrap(),
        binary: bytes[split..].to_vec(),
    }
}

fn le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn x_input(size: usize) -> Value {
    json!({"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": size}})
}

const X: [[f32; 3]; 2] = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25]];

#[test]
fn binary_inputs_and_outputs_with_the_mlp_model() {
    let server = Server::model("mlp");
    let meta = Answer::from(server.get("/v2"));
    assert_eq!(meta.body["extensions"], json!(["binary_tensor_data"]));
    let (pre, y) = mlp_expected(&X);
    let x = le(&X.concat());

    // Binary input; `y` asked for as binary data, `pre` as JSON: the response is the JSON header
    // and y's 16 bytes, announced by its own Inference-Header-Content-Length.
    let resp = post(
        &server,
        &json!({
            "id": "b1",
            "inputs": [x_input(x.len())],
            "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "pre"}]
        }),
        &x,
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.json);
    assert_eq!(resp.content_type, "application/octet-stream");
    assert!(resp.header_length.is_some());
    assert_eq!(resp.json["id"], "b1");
    let outputs = resp.json["outputs"].as_array().unwrap();
    assert_eq!(
        outputs[0],
        json!({"name": "y", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}})
    );
    assert_eq!(outputs[1]["name"], "pre");
    assert_close(&floats(&outputs[1]["data"]), &pre);
    assert_close(&from_le(&resp.binary), &y);

    // `binary_data_output` answers every output in binary, in the order they are listed.
    let resp = post(
        &server,
        &json!({"inputs": [x_input(x.len())], "parameters": {"binary_data_output": true}}),
        &x,
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.json);
    let names: Vec<&str> = resp.json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pre", "y"]);
    assert_eq!(resp.binary.len(), 32);
    assert_close(&from_le(&resp.binary[..16]), &pre);
    assert_close(&from_le(&resp.binary[16..]), &y);

    // Binary input, JSON outputs: a plain JSON response without the header.
    let resp = post(&server, &json!({"inputs": [x_input(x.len())]}), &x, None);
    assert_eq!(resp.status, 200, "{}", resp.json);
    assert_eq!(resp.content_type, "application/json");
    assert_eq!(resp.header_length, None);
    assert_close(&floats(&resp.json["outputs"][1]["data"]), &y);
}

#[test]
fn malformed_binary_requests_get_a_400_naming_the_input() {
    let server = Server::model("mlp");
    let x = le(&X.concat());
    let expect = |resp: Binary, needle: &str| {
        assert_eq!(resp.status, 400, "{}", resp.json);
        let msg = resp.json["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
    };
    let request = |size: usize| json!({"inputs": [x_input(size)]});

    // The announced size does not match [2, 3] of FP32.
    expect(
        post(&server, &request(20), &x[..20], None),
        "input 'x': binary_data_size is 20 bytes, but shape [2, 3] of FP32 takes 24 bytes",
    );
    // More bytes announced than sent.
    expect(
        post(&server, &request(24), &x[..20], None),
        "input 'x' has parameters.binary_data_size = 24, but only 20 bytes",
    );
    // Bytes left over after the last binary input.
    let mut extra = x.clone();
    extra.push(0);
    expect(
        post(&server, &request(24), &extra, None),
        "1 bytes follow the binary data of the last binary input, 'x'",
    );
    // The header length is past the end of the body.
    let json_len = serde_json::to_vec(&request(24)).unwrap().len();
    expect(
        post(
            &server,
            &request(24),
            &x,
            Some(&(json_len + 25).to_string()),
        ),
        "the Inference-Header-Content-Length header says the JSON header is",
    );
    expect(
        post(&server, &request(24), &x, Some("many")),
        "Inference-Header-Content-Length header must be the JSON header's length in bytes",
    );
    // binary_data_size without the header: the body is all JSON, the binary part is missing.
    let resp = server.post(
        "/v2/models/mlp/infer",
        serde_json::to_vec(&request(24)).unwrap(),
    );
    resp.assert_error(
        400,
        "input 'x' has parameters.binary_data_size = 24, but the request has no binary data",
    );
    // A header length cutting the JSON short is malformed JSON.
    expect(
        post(&server, &request(24), &x, Some("10")),
        "malformed inference request",
    );
}
