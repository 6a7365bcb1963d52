//! `berth-model-server`: Berth's ONNX runtime.
//!
//! Serves one ONNX model, run by tract, over the KServe Open Inference
//! Protocol (V2) REST API: health, server and model metadata, and inference
//! with JSON tensors or the binary tensor data extension, and its gRPC API
//! (`--grpc-addr`); plus Prometheus metrics on `/metrics`. Callers of the public ports can
//! be checked ([`auth`]: OIDC bearer JWTs or Kubernetes ServiceAccount tokens), and the same
//! check can stand in front of another runtime ([`proxy`]).

pub mod auth;
pub mod binary;
pub mod budget;
pub mod config;
pub mod error;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod proxy;
pub mod server;
pub mod tensor;
pub mod working;

pub use config::{Cli, Command, Config};
pub use server::{RunError, run};
