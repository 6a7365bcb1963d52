//! Helpers of the integration tests: ONNX models made by `tests/make_models.py`
//! with the real `onnx` Python package, and the real server binary run as a
//! child process on a free loopback port.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `onnx` package installed when `python3` has none.
pub const ONNX_VERSION: &str = "1.20.1";

/// Weights and bias of the `mlp` model, as in make_models.py.
pub const MLP_W: [[f32; 2]; 3] = [[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0]];
pub const MLP_B: [f32; 2] = [0.5, -0.25];

fn tmp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn has_onnx(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import onnx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python interpreter that can `import onnx`: `python3` itself, or a venv
/// under the target directory with the pinned `onnx` installed.
fn python_with_onnx() -> PathBuf {
    let system = PathBuf::from("python3");
    if has_onnx(&system) {
        return system;
    }
    let venv = tmp_dir().join(format!("onnx-{ONNX_VERSION}-venv"));
    let python = venv.join("bin").join("python");
    if has_onnx(&python) {
        return python;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("onnx=={ONNX_VERSION}"),
    ]));
    assert!(has_onnx(&python), "onnx is still missing from {venv:?}");
    python
}

/// The directory the test models are written to, made once per test binary.
pub fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp_dir().join("models");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_models.py");
        run(Command::new(python_with_onnx()).arg(script).arg(&dir));
        dir
    })
}

/// The `model.onnx` directory of one test model.
pub fn model_dir(name: &str) -> PathBuf {
    models().join(name)
}

/// The real server, run as a child process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Where `/metrics` is served (apart from the API).
    pub metrics_addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    client: reqwest::blocking::Client,
}

/// Starts the binary with `args` plus a loopback listen address, and reads
/// its stderr on a thread, sending the address it reports.
#[allow(clippy::type_complexity)]
fn spawn(
    args: &[&str],
) -> (
    Child,
    Arc<Mutex<Vec<String>>>,
    mpsc::Receiver<(bool, SocketAddr)>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-model-server"))
        .args(args)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth-model-server");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            for (metrics, marker) in [
                (false, "listening on http://"),
                (true, "serving metrics on http://"),
            ] {
                if let Some(rest) = line.split(marker).nth(1) {
                    let addr = rest.split(['/', ' ']).next().unwrap_or_default();
                    if let Ok(addr) = addr.parse() {
                        let _ = tx.send((metrics, addr));
                    }
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    (child, lines, rx)
}

impl Server {
    /// Starts the server and waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        let (child, stderr, rx) = spawn(args);
        let (mut addr, mut metrics_addr) = (None, None);
        while addr.is_none() || metrics_addr.is_none() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok((false, a)) => addr = Some(a),
                Ok((true, a)) => metrics_addr = Some(a),
                Err(_) => panic!(
                    "server did not report its addresses; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                ),
            }
        }
        let (addr, metrics_addr) = (addr.unwrap(), metrics_addr.unwrap());
        assert!(addr.ip().is_loopback());
        let server = Server {
            child,
            addr,
            metrics_addr,
            stderr,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let mut server = server;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Readiness as the kubelet probes it: on the metrics address, which needs no token
            // whatever --auth is.
            let status = server
                .client
                .get(format!("http://{}/v2/health/ready", server.metrics_addr))
                .send()
                .map(|r| r.status().as_u16());
            match status {
                Ok(200) => break,
                Ok(503) => {}
                other => panic!(
                    "readiness answered {other:?}; exit status {:?}; stderr:\n{}",
                    server.child.try_wait(),
                    server.stderr()
                ),
            }
            assert!(Instant::now() < deadline, "model did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Starts a server of one of the test models, by its directory.
    pub fn model(name: &str) -> Server {
        let dir = model_dir(name);
        Server::start(&["--model-path", dir.to_str().unwrap()])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client.get(self.url(path)).send().unwrap()
    }

    pub fn post(&self, path: &str, body: impl Into<reqwest::blocking::Body>) -> Answer {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        Answer::from(resp)
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.post(path, serde_json::to_vec(body).unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_exit(&mut self.child, timeout)
    }

    /// Where the gRPC API is served, when the server was started with `--grpc-addr` (it says
    /// so before it says where the REST API listens).
    pub fn grpc_addr(&self) -> SocketAddr {
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .find_map(|l| l.split("serving the gRPC API on ").nth(1))
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("the server reported no gRPC address:\n{}", lines.join("\n")))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary with a model that cannot be served, and returns its exit
/// status and every stderr line.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, Vec<String>) {
    let (mut child, lines, _rx) = spawn(args);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    // Let the reader thread drain the pipe.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("berth-model-server: "));
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = lines.lock().unwrap().clone();
    (status, out)
}

/// A response: status code and parsed JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: serde_json::Value,
    pub text: String,
}

impl From<reqwest::blocking::Response> for Answer {
    fn from(resp: reqwest::blocking::Response) -> Self {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        };
        Answer {
            status,
            content_type,
            body,
            text,
        }
    }
}

impl Answer {
    /// Asserts a protocol error: the status, and a body that is exactly
    /// `{"error": <string>}` whose text contains `needle`.
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/json");
        let obj = self.body.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 1, "{}", self.text);
        let msg = obj["error"].as_str().expect("error is a string");
        assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
    }

    pub fn output(&self, name: &str) -> &serde_json::Value {
        self.body["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no output {name} in {}", self.text))
    }
}

/// The mlp model computed in Rust: relu(x @ W + b) and the pre-activation.
pub fn mlp_expected(x: &[[f32; 3]]) -> (Vec<f32>, Vec<f32>) {
    let mut pre = Vec::new();
    for row in x {
        for j in 0..2 {
            let mut acc = MLP_B[j];
            for (k, w) in MLP_W.iter().enumerate() {
                acc += row[k] * w[j];
            }
            pre.push(acc);
        }
    }
    let y = pre.iter().map(|v| v.max(0.0)).collect();
    (pre, y)
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}
