//! End-to-end tests: the real `berth-model-server` binary, real ONNX models
//! written by the `onnx` Python package, and HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod issuer;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[test]
fn health_and_metadata() {
    let server = Server::model("mlp");

    let live = server.get("/v2/health/live");
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().unwrap(), "");
    let ready = server.get("/v2/health/ready");
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().unwrap(), "");
    let model_ready = server.get("/v2/models/mlp/ready");
    assert_eq!(model_ready.status(), 200);
    assert_eq!(model_ready.text().unwrap(), "");
    assert_eq!(server.get("/v2/models/nope/ready").status(), 404);
    assert_eq!(server.get("/v2/models/mlp/versions/1/ready").status(), 404);

    let meta = Answer::from(server.get("/v2"));
    assert_eq!(meta.status, 200);
    assert_eq!(meta.content_type, "application/json");
    assert_eq!(meta.body["name"], "berth-model-server");
    assert_eq!(meta.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta.body["extensions"], json!(["binary_tensor_data"]));

    let model = Answer::from(server.get("/v2/models/mlp"));
    assert_eq!(model.status, 200);
    assert_eq!(
        model.body,
        json!({
            "name": "mlp",
            "platform": "onnx_onnxv1",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [
                {"name": "pre", "datatype": "FP32", "shape": [-1, 2]},
                {"name": "y", "datatype": "FP32", "shape": [-1, 2]}
            ]
        })
    );
    Answer::from(server.get("/v2/models/nope")).assert_error(404, "unknown model 'nope'");
    Answer::from(server.get("/v2/models/mlp/versions/1"))
        .assert_error(404, "unknown version '1' of model 'mlp'");
}

#[test]
fn mlp_inference_nested_and_flat() {
    let server = Server::model("mlp");
    let x = [[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.25], [0.0, 0.0, 0.0]];
    let (pre, y) = mlp_expected(&x);

    // Nested data, with an id that must come back.
    let resp = server.post_json(
        "/v2/models/mlp/infer",
        &json!({
            "id": "req-42",
            "inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP32", "data": x}]
        }),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.content_type, "application/json");
    assert_eq!(resp.body["model_name"], "mlp");
    assert_eq!(resp.body["id"], "req-42");
    assert!(resp.body.get("model_version").is_none());
    let outputs = resp.body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["name"], "pre");
    assert_eq!(outputs[0]["datatype"], "FP32");
    assert_eq!(outputs[0]["shape"], json!([3, 2]));
    assert_close(&floats(&outputs[0]["data"]), &pre);
    assert_eq!(outputs[1]["name"], "y");
    assert_close(&floats(&outputs[1]["data"]), &y);
    // Relu really clamps: the second row's pre-activations are negative.
    assert!(pre[2] < 0.0 && y[2] == 0.0);

    // Flat data, batch of 1, no id: none in the answer.
    let resp = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.body.get("id").is_none(), "{}", resp.text);
    assert_eq!(resp.output("y")["shape"], json!([1, 2]));
    assert_close(&floats(&resp.output("y")["data"]), &y[0..2]);
}

#[test]
fn outputs_filter_returns_only_the_named_outputs_in_order() {
    let server = Server::model("mlp");
    let x = [[2.0f32, -1.0, 0.5]];
    let (pre, y) = mlp_expected(&x);
    let input = json!([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x}]);

    let resp = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": input, "outputs": [{"name": "y"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let outputs = resp.body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "y");
    assert_close(&floats(&outputs[0]["data"]), &y);

    let resp = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": input, "outputs": [{"name": "y", "parameters": {"binary_data": false}}, {"name": "pre"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let names: Vec<&Value> = resp.body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["name"])
        .collect();
    assert_eq!(names, [&json!("y"), &json!("pre")]);
    assert_close(&floats(&resp.output("pre")["data"]), &pre);

    // An empty list asks for nothing in particular: every output.
    let resp = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": input, "outputs": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["outputs"].as_array().unwrap().len(), 2);

    server
        .post_json(
            "/v2/models/mlp/infer",
            &json!({"inputs": input, "outputs": [{"name": "logits"}]}),
        )
        .assert_error(400, "unknown output 'logits'");
    server
        .post_json(
            "/v2/models/mlp/infer",
            &json!({"inputs": input, "outputs": [{"name": "y"}, {"name": "y"}]}),
        )
        .assert_error(400, "requested twice");
}

#[test]
fn bad_requests_get_protocol_errors() {
    let server = Server::model("mlp");
    let infer = "/v2/models/mlp/infer";
    let post = |body: Value| server.post_json(infer, &body);

    post(
        json!({"inputs": [{"name": "q", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    )
    .assert_error(400, "unknown input 'q'");
    post(json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}))
        .assert_error(400, "shape [1, 4] does not match the model's [-1, 3]");
    post(json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}))
        .assert_error(400, "does not match");
    post(
        json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    )
    .assert_error(
        400,
        "needs 6 elements but its data (7 bytes) holds at most 4",
    );
    post(json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7]}]}))
        .assert_error(400, "input 'x': shape [2, 3] needs 6 elements but data has more");
    post(json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}))
        .assert_error(400, "input 'x': shape [1, 3] needs 3 elements but data has more");
    post(json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5]]}]}))
        .assert_error(400, "nested data has 2 elements");
    post(
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}),
    )
    .assert_error(400, "datatype FP64 does not match the model's FP32");
    post(json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}))
        .assert_error(400, "does not take strings");
    post(
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FLOAT", "data": [1, 2, 3]}]}),
    )
    .assert_error(400, "unknown datatype 'FLOAT'");
    post(json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "two", 3]}]}))
        .assert_error(400, "element 1 is not a valid FP32 value");
    post(json!({"inputs": []})).assert_error(400, "missing input 'x'");
    post(json!({"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    ]}))
    .assert_error(400, "given twice");
    post(json!({"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": []}]}))
        .assert_error(400, "malformed inference request");
    server
        .post(infer, "{\"inputs\": [")
        .assert_error(400, "malformed inference request");
    server
        .post(infer, "not json")
        .assert_error(400, "malformed inference request");
    server
        .post(infer, "")
        .assert_error(400, "malformed inference request");

    // Unknown models and versions are 404, before the body is looked at.
    server
        .post("/v2/models/other/infer", "{}")
        .assert_error(404, "unknown model 'other'");
    server
        .post("/v2/models/mlp/versions/2/infer", "{}")
        .assert_error(404, "unknown version '2'");
    Answer::from(server.get("/v2/models/mlp/infer")).assert_error(405, "not allowed");
    Answer::from(server.get("/v3/whatever")).assert_error(404, "no such endpoint");
}

#[test]
fn oversized_bodies_are_refused() {
    let dir = model_dir("mlp");
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--max-request-bytes",
        "1000",
    ]);
    let data: Vec<f32> = vec![0.5; 600];
    server
        .post_json(
            "/v2/models/mlp/infer",
            &json!({"inputs": [{"name": "x", "shape": [200, 3], "datatype": "FP32", "data": data}]}),
        )
        .assert_error(413, "too large");
}

#[test]
fn requests_are_admitted_against_the_memory_budget() {
    let dir = model_dir("mlp");
    // 256 KiB. A request of n rows of "0," is about 6n bytes, charged 18n before its body is
    // read (its FP32 data may decode to 2 bytes more per byte); its response (two [n, 2]
    // FP32 outputs, and their JSON text) about 34n more once the model has run.
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--memory-budget-bytes",
        "262144",
    ]);
    let rows = |n: usize| -> String {
        let zeros = vec!["0"; n * 3].join(",");
        format!(
            r#"{{"inputs":[{{"name":"x","shape":[{n},3],"datatype":"FP32","data":[{zeros}]}}]}}"#
        )
    };
    // 1,000 rows, well inside: the model's run is charged what was measured at load (peak
    // resident memory around probe runs), which reads higher on a loaded machine — 3,000 rows
    // were charged 289,037 bytes once in a CI run, over the 262,144.
    let answer = server.post("/v2/models/mlp/infer", rows(1_000));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(floats(&answer.output("y")["data"]).len(), 2_000);
    // Its run or its response would not fit: refused before the model runs or before the
    // response is encoded.
    server
        .post("/v2/models/mlp/infer", rows(10_000))
        .assert_error(413, "answering this request takes");
    // Its body could never fit: refused before it is read.
    server.post("/v2/models/mlp/infer", rows(15_000)).assert_error(
        413,
        "more than the server's memory budget of 262144 bytes; send smaller batches, or raise --memory-budget-bytes",
    );
    assert!(
        server
            .stderr()
            .contains("memory budget for request bodies and decoded tensors"),
        "{}",
        server.stderr()
    );
}

#[test]
fn two_inputs_share_their_batch_dimension() {
    let server = Server::model("add");
    let meta = Answer::from(server.get("/v2/models/add"));
    assert_eq!(
        meta.body["inputs"],
        json!([
            {"name": "a", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "b", "datatype": "FP32", "shape": [-1, 4]}
        ])
    );
    let resp = server.post_json(
        "/v2/models/add/infer",
        &json!({"inputs": [
            {"name": "b", "shape": [2, 4], "datatype": "FP32", "data": [[10, 20, 30, 40], [0.5, 0.25, 0.125, 0]]},
            {"name": "a", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.output("sum")["shape"], json!([2, 4]));
    assert_close(
        &floats(&resp.output("sum")["data"]),
        &[11.0, 22.0, 33.0, 44.0, 5.5, 6.25, 7.125, 8.0],
    );
    server
        .post_json(
            "/v2/models/add/infer",
            &json!({"inputs": [
                {"name": "a", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]},
                {"name": "b", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            ]}),
        )
        .assert_error(400, "dimension 'N' is 1 here but 2 in input 'a'");
}

#[test]
fn int64_model() {
    let server = Server::model("int64");
    let meta = Answer::from(server.get("/v2/models/int64"));
    assert_eq!(
        meta.body["inputs"],
        json!([{"name": "x", "datatype": "INT64", "shape": [-1]}])
    );
    let big = 1i64 << 60;
    let resp = server.post_json(
        "/v2/models/int64/infer",
        &json!({"id": "i", "inputs": [{"name": "x", "shape": [4], "datatype": "INT64", "data": [0, -5, 7, big]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.output("y"),
        &json!({"name": "y", "datatype": "INT64", "shape": [4], "data": [1, -14, 22, big * 3 + 1]})
    );
    server
        .post_json(
            "/v2/models/int64/infer",
            &json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]}),
        )
        .assert_error(400, "not a valid INT64 value: 1.5");
}

#[test]
fn every_numeric_datatype_and_bool() {
    let server = Server::model("dtypes");
    // (name, datatype, input, expected = input + input)
    let cases: Vec<(&str, &str, Value, Value)> = vec![
        ("uint8", "UINT8", json!([0, 1, 100]), json!([0, 2, 200])),
        (
            "uint16",
            "UINT16",
            json!([0, 1, 30000]),
            json!([0, 2, 60000]),
        ),
        (
            "uint32",
            "UINT32",
            json!([0, 1, 2_000_000_000u32]),
            json!([0, 2, 4_000_000_000u32]),
        ),
        (
            "uint64",
            "UINT64",
            json!([0, 1, 1u64 << 62]),
            json!([0, 2, 1u64 << 63]),
        ),
        ("int8", "INT8", json!([-64, 1, 63]), json!([-128, 2, 126])),
        (
            "int16",
            "INT16",
            json!([-1000, 1, 16000]),
            json!([-2000, 2, 32000]),
        ),
        (
            "int32",
            "INT32",
            json!([-7, 1, 1 << 29]),
            json!([-14, 2, 1 << 30]),
        ),
        (
            "int64",
            "INT64",
            json!([-7, 1, 1i64 << 61]),
            json!([-14, 2, 1i64 << 62]),
        ),
        (
            "fp16",
            "FP16",
            json!([0.5, -1.25, 1000]),
            json!([1.0, -2.5, 2000.0]),
        ),
        (
            "fp32",
            "FP32",
            json!([0.1, -1.5, 3]),
            json!([0.2, -3.0, 6.0]),
        ),
        (
            "fp64",
            "FP64",
            json!([0.1, -1.5, 1e300]),
            json!([0.2, -3.0, 2e300]),
        ),
    ];
    let mut inputs: Vec<Value> = cases
        .iter()
        .map(|(name, dt, data, _)| {
            json!({"name": format!("in_{name}"), "shape": [3], "datatype": dt, "data": data})
        })
        .collect();
    inputs.push(
        json!({"name": "in_bool", "shape": [3], "datatype": "BOOL", "data": [true, false, true]}),
    );

    let meta = Answer::from(server.get("/v2/models/dtypes"));
    assert_eq!(meta.status, 200);
    for (name, dt, _, _) in &cases {
        let found = meta.body["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == format!("in_{name}"))
            .unwrap();
        assert_eq!(found["datatype"], *dt);
        assert_eq!(found["shape"], json!([-1]));
    }

    let resp = server.post_json("/v2/models/dtypes/infer", &json!({"inputs": inputs}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    for (name, dt, _, want) in &cases {
        let out = resp.output(&format!("out_{name}"));
        assert_eq!(out["datatype"], *dt, "{name}");
        assert_eq!(out["shape"], json!([3]), "{name}");
        if dt.starts_with("FP") {
            let got: Vec<f64> = out["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    ((g - w) / w.abs().max(1.0)).abs() < 1e-6,
                    "{name}: {got:?} vs {want:?}"
                );
            }
        } else {
            assert_eq!(&out["data"], want, "{name}");
        }
    }
    let out = resp.output("out_bool");
    assert_eq!(out["datatype"], "BOOL");
    assert_eq!(out["data"], json!([false, true, false]));

    // A value out of its type's range is a 400, not a wrap-around.
    let mut bad = inputs.clone();
    bad[0]["data"] = json!([0, 1, 256]);
    server
        .post_json("/v2/models/dtypes/infer", &json!({"inputs": bad}))
        .assert_error(400, "not a valid UINT8 value: 256");
}

#[test]
fn bytes_tensors_are_utf8_strings() {
    let server = Server::model("strings");
    let meta = Answer::from(server.get("/v2/models/strings"));
    assert_eq!(
        meta.body["inputs"],
        json!([{"name": "s", "datatype": "BYTES", "shape": [-1]}])
    );
    let resp = server.post_json(
        "/v2/models/strings/infer",
        &json!({"inputs": [{"name": "s", "shape": [3], "datatype": "BYTES", "data": ["héllo", "", "w"]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.output("t"),
        &json!({"name": "t", "shape": [3], "datatype": "BYTES", "data": ["héllo", "", "w"]})
    );
    server
        .post_json(
            "/v2/models/strings/infer",
            &json!({"inputs": [{"name": "s", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
        )
        .assert_error(400, "datatype FP32 does not match the model's BYTES");
}

#[test]
fn versioned_model_from_a_file_path() {
    let file = model_dir("mlp").join("model.onnx");
    let server = Server::start(&[
        "--model-path",
        file.to_str().unwrap(),
        "--model-name",
        "scorer",
        "--model-version",
        "7",
    ]);
    let meta = Answer::from(server.get("/v2/models/scorer/versions/7"));
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(meta.body["name"], "scorer");
    assert_eq!(meta.body["versions"], json!(["7"]));
    assert_eq!(
        server.get("/v2/models/scorer/versions/7/ready").status(),
        200
    );
    assert_eq!(
        server.get("/v2/models/scorer/versions/8/ready").status(),
        404
    );
    assert_eq!(server.get("/v2/models/mlp/ready").status(), 404);

    let body = json!({"id": "v", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}]});
    for path in [
        "/v2/models/scorer/versions/7/infer",
        "/v2/models/scorer/infer",
    ] {
        let resp = server.post_json(path, &body);
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.body["model_name"], "scorer");
        assert_eq!(resp.body["model_version"], "7");
        assert_eq!(resp.body["id"], "v");
    }
    server
        .post_json("/v2/models/scorer/versions/8/infer", &body)
        .assert_error(404, "unknown version '8' of model 'scorer'");
}

#[test]
fn fixed_shape_model() {
    let server = Server::model("fixed");
    let meta = Answer::from(server.get("/v2/models/fixed"));
    assert_eq!(
        meta.body["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [2, 2]}])
    );
    let resp = server.post_json(
        "/v2/models/fixed/infer",
        &json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_close(
        &floats(&resp.output("y")["data"]),
        &[11.0, 12.0, 13.0, 14.0],
    );
    server
        .post_json(
            "/v2/models/fixed/infer",
            &json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        )
        .assert_error(400, "[1, 4] does not match the model's [2, 2]");
}

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_count_requests_and_time_inference() {
    let server = Server::model("mlp");
    let ok =
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    for _ in 0..3 {
        assert_eq!(server.post_json("/v2/models/mlp/infer", &ok).status, 200);
    }
    assert_eq!(server.post("/v2/models/mlp/infer", "{").status, 400);
    assert_eq!(server.post("/v2/models/zzz/infer", "{}").status, 404);

    // Metrics are served on their own address only, never on the API's.
    assert_eq!(server.get("/metrics").status(), 404);
    let resp = reqwest::blocking::get(format!("http://{}/metrics", server.metrics_addr)).unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().unwrap();
    let get = |series: &str| {
        metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        get(r#"berth_model_server_requests_total{endpoint="infer",code="200"}"#),
        3.0
    );
    assert_eq!(
        get(r#"berth_model_server_requests_total{endpoint="infer",code="400"}"#),
        1.0
    );
    assert_eq!(
        get(r#"berth_model_server_requests_total{endpoint="infer",code="404"}"#),
        1.0
    );
    assert!(get(r#"berth_model_server_requests_total{endpoint="ready",code="200"}"#) >= 1.0);
    assert_eq!(
        get("berth_model_server_inference_duration_seconds_count"),
        3.0
    );
    assert!(get("berth_model_server_inference_duration_seconds_sum") > 0.0);
    assert!(text.contains("# TYPE berth_model_server_inference_duration_seconds histogram"));
    assert!(get("berth_model_server_model_load_duration_seconds") > 0.0);
    assert_eq!(get("berth_model_server_model_ready"), 1.0);
    // The metrics request itself is the one in flight.
    assert_eq!(get("berth_model_server_requests_in_flight"), 1.0);
    assert!(get(r#"berth_model_server_request_duration_seconds_count{endpoint="infer"}"#) >= 5.0);
}

/// Sends the head of an inference request announcing `len` bytes of body, and none of it.
fn send_head(addr: std::net::SocketAddr, len: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    )
    .unwrap();
    stream.flush().unwrap();
    stream
}

/// One inference slot, one place in the queue: a slow client holds the slot (its body is read
/// only once it has one), a second waits, a third is refused with 429 at once, and the slot
/// holder that never finishes its body gets 408 after the body timeout, freeing the slot.
#[test]
fn waiting_requests_are_bounded_and_slow_bodies_time_out() {
    let server = Server::start(&[
        "--model-path",
        model_dir("mlp").to_str().unwrap(),
        "--inference-threads",
        "1",
        "--max-queued-requests",
        "1",
        "--request-body-timeout-secs",
        "2",
    ]);
    let ok =
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let body = serde_json::to_vec(&ok).unwrap();
    let mut holder = send_head(server.addr, body.len());
    std::thread::sleep(Duration::from_millis(300));
    let mut waiter = send_head(server.addr, body.len());
    std::thread::sleep(Duration::from_millis(300));

    let refused = server.post_json("/v2/models/mlp/infer", &ok);
    refused.assert_error(429, "busy");

    // The waiter sends its body now; it is read once the holder's slot frees up.
    waiter.write_all(&body).unwrap();
    let (status, text) = read_response(&mut holder);
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("did not arrive within 2 s"), "{text}");
    let (status, text) = read_response(&mut waiter);
    assert_eq!(status, 200, "{text}");
    assert_eq!(server.post_json("/v2/models/mlp/infer", &ok).status, 200);
}

/// Reads one HTTP/1.1 response (Content-Length framed) from a stream.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a full response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let head = &text[..head_end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, text[head_end + 4..head_end + 4 + len].to_owned());
            }
        }
    }
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let mut server = Server::model("mlp");
    let body = serde_json::to_vec(
        &json!({"id": "in-flight", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    )
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);

    // A request whose body is only half sent when the signal arrives.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.addr,
        body.len()
    )
    .unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.stderr().contains("SIGTERM received"),
        "{}",
        server.stderr()
    );
    // No longer accepting: new connections are refused.
    assert!(TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)).is_err());
    // The in-flight request still completes.
    stream.write_all(rest).unwrap();
    let (status, text) = read_response(&mut stream);
    assert_eq!(status, 200, "{text}");
    let resp: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(resp["id"], "in-flight");
    let (_, y) = mlp_expected(&[[1.0, 2.0, 3.0]]);
    assert_close(&floats(&resp["outputs"][1]["data"]), &y);
    drop(stream);

    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

#[test]
fn sigint_on_an_idle_server_exits_zero() {
    let mut server = Server::model("int64");
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(server.stderr().contains("shut down cleanly"));
}

/// Asserts the binary exits non-zero, with a last stderr line that is the one
/// fatal message, naming `file` and containing `reason`.
fn assert_unloadable(args: &[&str], file: &str, reason: &str) {
    let (status, lines) = run_to_exit(args);
    let all = lines.join("\n");
    assert!(!status.success(), "exited {status:?}; stderr:\n{all}");
    assert_eq!(status.code(), Some(1), "stderr:\n{all}");
    assert!(!all.contains("panicked"), "stderr:\n{all}");
    let fatal: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("berth-model-server: "))
        .collect();
    assert_eq!(fatal.len(), 1, "stderr:\n{all}");
    let msg = fatal[0];
    assert!(
        msg.starts_with(&format!("berth-model-server: cannot load model {file}: ")),
        "{msg}"
    );
    assert!(msg.contains(reason), "{msg:?} lacks {reason:?}");
}

#[test]
fn unloadable_models_exit_non_zero_with_one_clear_line() {
    let tmp = models().join("broken");
    std::fs::create_dir_all(&tmp).unwrap();

    let missing = tmp.join("missing.onnx");
    assert_unloadable(
        &["--model-path", missing.to_str().unwrap()],
        missing.to_str().unwrap(),
        "No such file or directory",
    );

    let garbage = tmp.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07 this is not an ONNX model \xff\xff\xff").unwrap();
    assert_unloadable(
        &["--model-path", garbage.to_str().unwrap()],
        garbage.to_str().unwrap(),
        "not a readable ONNX model",
    );

    let empty_dir = tmp.join("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    assert_unloadable(
        &["--model-path", empty_dir.to_str().unwrap()],
        empty_dir.to_str().unwrap(),
        "the directory has no model.onnx",
    );

    let unsupported = model_dir("unsupported");
    let file = unsupported.join("model.onnx");
    assert_unloadable(
        &["--model-path", unsupported.to_str().unwrap()],
        file.to_str().unwrap(),
        "Frobnicate",
    );
}

/// `--auth oidc` on the real binary: the public port (health included) needs a valid token, the
/// probes on the metrics address do not, and the checks are counted.
#[test]
fn oidc_guards_the_public_port_and_leaves_the_probes_open() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = issuer::SigningKey::es256("k1");
    let issuer = runtime.block_on(issuer::Issuer::start(&[&key]));
    let dir = model_dir("mlp");
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--auth",
        "oidc",
        "--oidc-issuer",
        &issuer.url,
        "--oidc-audience",
        "team-models",
        "--oidc-role",
        "model-user",
    ]);
    let client = reqwest::blocking::Client::new();
    let body = json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]});
    let infer = |token: Option<&str>| {
        let mut request = client.post(server.url("/v2/models/mlp/infer")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    let refused = infer(None);
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(r#"Bearer realm="berth", error="invalid_token""#),
        "{challenge}"
    );
    let other_audience = key.sign(&issuer.claims("another-project"));
    assert_eq!(infer(Some(&other_audience)).status(), 401);
    let mut no_role = issuer.claims("team-models");
    no_role["resource_access"] = json!({});
    assert_eq!(infer(Some(&key.sign(&no_role))).status(), 403);
    let token = key.sign(&issuer.claims("team-models"));
    let answer = infer(Some(&token));
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().unwrap();
    assert_eq!(answer["model_name"], "mlp");

    assert_eq!(server.get("/v2/health/live").status(), 401);
    assert_eq!(server.get("/v2/health/ready").status(), 401);
    let probe = |path: &str| {
        client
            .get(format!("http://{}{path}", server.metrics_addr))
            .send()
            .unwrap()
    };
    assert_eq!(probe("/v2/health/live").status(), 200);
    assert_eq!(probe("/v2/health/ready").status(), 200);
    let metrics = probe("/metrics").text().unwrap();
    for series in [
        r#"berth_model_auth_requests_total{result="allowed"} 1"#,
        r#"berth_model_auth_requests_total{result="forbidden"} 1"#,
        r#"berth_model_auth_requests_total{result="unauthenticated"} 4"#,
    ] {
        assert!(metrics.contains(series), "{series} missing in {metrics}");
    }
}

/// Regression (the model's run was not charged: valid large batches took 1,166 MiB against a
/// 640 MiB budget): the working memory of a model that widens each 4-byte row to 64 KiB is
/// measured at load, and a request whose run would take more than the budget is refused with
/// 413 before the model runs, while a small one is answered.
#[test]
fn the_models_run_is_charged_in_the_memory_budget() {
    let dir = model_dir("widen");
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--memory-budget-bytes",
        &(16u64 << 20).to_string(),
    ]);
    let rows = |n: usize| -> String {
        let ones = vec!["1"; n].join(",");
        format!(
            r#"{{"inputs":[{{"name":"x","shape":[{n},1],"datatype":"FP32","data":[{ones}]}}]}}"#
        )
    };
    let answer = server.post("/v2/models/widen/infer", rows(4));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(floats(&answer.output("y")["data"]), vec![16384.0; 4]);

    let metrics = reqwest::blocking::get(format!("http://{}/metrics", server.metrics_addr))
        .unwrap()
        .text()
        .unwrap();
    let per_byte: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_model_server_model_working_memory_per_input_byte "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no working-memory figure in {metrics}"));
    // 64 KiB of Tile output per 4 input bytes; the measurement is in pages, so allow slack.
    assert!(
        per_byte > 8_000.0,
        "the run's working memory per input byte was measured as {per_byte}"
    );
    assert!(
        metrics.contains("berth_model_server_memory_budget_bytes 16777216"),
        "{metrics}"
    );

    // 1,000 rows: 4 KB of input, about 64 MiB while the model runs.
    server
        .post("/v2/models/widen/infer", rows(1_000))
        .assert_error(413, "answering this request takes");
}
