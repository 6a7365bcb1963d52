//! The real server called by a real third-party client of the protocol: NVIDIA's `tritonclient`
//! (pinned in tools/pyclients/requirements.lock), which sends tensors with the binary data
//! extension and asks for binary outputs by default. `tests/oip_client.py` makes the calls and
//! prints what it got; this test checks it.
//!
//! The client's venv comes from `BERTH_PYCLIENTS_DIR` (set by `cargo xtask test`, which runs
//! tools/pyclients/install.sh). Without it the test runs that script itself, except under CI
//! (`CI` set), where a missing venv is a failure: the suite must not pass without the client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// The directory of the pinned clients' venv.
fn pyclients() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var_os("BERTH_PYCLIENTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if std::env::var_os("CI").is_some() => panic!(
            "BERTH_PYCLIENTS_DIR is not set under CI: run the tests with `cargo xtask test`, which builds the pinned tritonclient venv (tools/pyclients/install.sh)"
        ),
        None => {
            eprintln!("BERTH_PYCLIENTS_DIR is not set: running tools/pyclients/install.sh");
            let out = Command::new("bash")
                .arg(repo.join("tools/pyclients/install.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run tools/pyclients/install.sh");
            assert!(out.status.success(), "tools/pyclients/install.sh failed");
            let stdout = String::from_utf8(out.stdout).unwrap();
            PathBuf::from(
                stdout
                    .lines()
                    .last()
                    .expect("install.sh printed its directory"),
            )
        }
    };
    assert!(
        dir.join("bin/python").exists(),
        "{} has no bin/python: run tools/pyclients/install.sh",
        dir.display()
    );
    dir
}

/// Runs tests/oip_client.py over `protocol` against the three servers; returns its report.
fn run_client(protocol: &str, urls: [String; 3]) -> Value {
    run_script(&[protocol.to_owned()], &urls)
}

fn run_script(args: &[String], urls: &[String]) -> Value {
    let protocol = &args[0];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oip_client.py");
    let out = Command::new(pyclients().join("bin/python"))
        .arg(script)
        .args(args)
        .args(urls)
        .output()
        .expect("run tests/oip_client.py");
    assert!(
        out.status.success(),
        "tritonclient ({protocol}) failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn values(v: &Value) -> Vec<f32> {
    floats(&v["values"])
}

const X: [[f32; 3]; 3] = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25], [0.0, 0.0, 0.0]];

/// Asserts what both transports must give: the numbers of each model.
fn check_numbers(report: &Value) {
    assert_eq!(report["live"], true);
    assert_eq!(report["ready"], true);
    assert_eq!(report["model_ready"], true);
    assert_eq!(
        report["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1, 3]}])
    );
    let (pre, y) = mlp_expected(&X);
    assert_eq!(report["requested"]["id"], "tc-1");
    for case in ["requested", "all"] {
        let got = &report[case];
        assert_eq!(got["y"]["shape"], json!([3, 2]), "{case}");
        assert_eq!(got["y"]["datatype"], "FP32", "{case}");
        assert_close(&values(&got["y"]), &y);
        assert_close(&values(&got["pre"]), &pre);
    }
    assert_eq!(
        report["error"]["message"],
        "input 'x': shape [3, 2] does not match the model's [-1, 3]"
    );
    assert_eq!(report["strings"]["values"], json!(["a", "", "héllo"]));
    // The dtypes model doubles every number and negates the booleans; the values went both ways
    // at their native width, so doubling is exact (integers near 2^63 and FP64's smallest
    // subnormal included).
    let sent = report["dtypes_sent"].as_object().unwrap();
    assert_eq!(sent.len(), 11);
    for (name, input) in sent {
        let out = &report["dtypes"][name];
        let want: Vec<f64> = input
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() * 2.0)
            .collect();
        let got: Vec<f64> = out["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // Exact but for serde_json's parsing of long decimals (not the last bit of 1.5e38).
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g == w || (g - w).abs() <= w.abs() * 1e-15);
        assert!(same, "{name}: {got:?} is not {want:?}");
    }
    assert_eq!(
        report["dtypes"]["bool"]["values"],
        json!([false, true, false])
    );
}

/// A server of one of the test models with its gRPC API on too.
fn server(name: &str) -> Server {
    let dir = model_dir(name);
    Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
    ])
}

/// Both transports against the same three servers.
#[test]
fn tritonclient_http_and_grpc() {
    let servers = [server("mlp"), server("strings"), server("dtypes")];
    let http = run_client("http", servers.each_ref().map(|s| s.addr.to_string()));
    check_http(&http);
    let grpc = run_client(
        "grpc",
        servers.each_ref().map(|s| s.grpc_addr().to_string()),
    );
    check_numbers(&grpc);
    assert_eq!(grpc["error"]["status"], "StatusCode.INVALID_ARGUMENT");
    // Refused on the message's wire bytes, before it is decoded.
    assert_eq!(
        grpc["too_many_inputs"],
        json!({"status": "StatusCode.INVALID_ARGUMENT", "message": "inputs: more than 256, the most this server takes"})
    );
    assert_eq!(
        grpc["typed_contents"],
        json!({"status": "StatusCode.INVALID_ARGUMENT", "message": "input 'x': typed `contents` are not supported by this server; send the tensors as raw_input_contents"})
    );
    assert_eq!(grpc["extensions"], json!(["binary_tensor_data"]));
}

fn check_http(report: &Value) {
    check_numbers(report);
    assert_eq!(report["error"]["status"], "400");
    assert_eq!(report["extensions"], json!(["binary_tensor_data"]));

    // The transport was the binary extension: binary outputs carry binary_data_size, no data.
    let binary = |o: &Value, size: u64| {
        assert_eq!(o["parameters"]["binary_data_size"], size, "{o}");
        assert_eq!(o["has_data"], false, "{o}");
    };
    binary(&report["requested"]["y"], 24);
    // `pre` was asked for as JSON.
    assert_eq!(report["requested"]["pre"]["has_data"], true);
    assert!(report["requested"]["pre"].get("parameters").is_none());
    // No outputs named: tritonclient sets binary_data_output, so both come back binary.
    binary(&report["all"]["y"], 24);
    binary(&report["all"]["pre"], 24);
    // A JSON input beside a binary output.
    binary(&report["json_input"]["y"], 24);
    assert_close(&values(&report["json_input"]["y"]), &mlp_expected(&X).1);
    // BYTES: 3 elements of 4-byte lengths plus 1 + 0 + 6 bytes of UTF-8.
    binary(&report["strings"], 19);
    let sizes = [
        ("uint8", 3),
        ("int8", 3),
        ("bool", 3),
        ("uint16", 6),
        ("int16", 6),
        ("fp16", 6),
        ("uint32", 12),
        ("int32", 12),
        ("fp32", 12),
        ("uint64", 24),
        ("int64", 24),
        ("fp64", 24),
    ];
    for (name, size) in sizes {
        binary(&report["dtypes"][name], size);
    }
}

/// gRPC inferences are held to the REST API's limits: the queue of waiting requests, shared
/// with REST, and the memory budget, both taken before the message is read.
#[test]
fn grpc_shares_the_queue_and_the_memory_budget() {
    use std::io::Write;
    let dir = model_dir("mlp");
    let once =
        |server: &Server| run_script(&["grpc-once".to_owned()], &[server.grpc_addr().to_string()]);
    // One slot and no queue: a REST request that holds the slot (its body never comes) makes a
    // gRPC inference busy, as a second REST request would be (429).
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--inference-threads",
        "1",
        "--max-queued-requests",
        "0",
    ]);
    assert_eq!(once(&server)["status"], "OK");
    let mut holder = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        holder,
        "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    )
    .unwrap();
    holder.flush().unwrap();
    // The holder takes the slot as soon as its headers are read.
    let mut busy = Value::Null;
    for _ in 0..50 {
        busy = once(&server);
        if busy["status"] != "OK" {
            break;
        }
    }
    assert_eq!(busy["status"], "StatusCode.UNAVAILABLE", "{busy}");
    assert!(
        busy["message"]
            .as_str()
            .unwrap()
            .contains("the server is busy"),
        "{busy}"
    );
    drop(holder);

    // A budget smaller than what a largest message can take: refused before it is read, as a
    // REST request of that size is (413).
    let server = Server::start(&[
        "--model-path",
        dir.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--max-request-bytes",
        "1048576",
        "--memory-budget-bytes",
        "2097152",
    ]);
    let refused = once(&server);
    assert_eq!(
        refused["status"], "StatusCode.RESOURCE_EXHAUSTED",
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("more than the server's memory budget of 2097152 bytes"),
        "{refused}"
    );
}
