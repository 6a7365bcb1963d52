//! Compiles proto/grpc_predict_v2.proto (the Open Inference Protocol's gRPC API) into Rust with
//! protox, a protobuf compiler in Rust, and tonic-prost-build: no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        // Raw tensor contents as `Bytes`: slices of the received message, not copies.
        .bytes(".inference")
        // prost's codec, checking a ModelInfer message's counts on the wire before decoding.
        .codec_path("crate::server::grpc::bounds::BoundedCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
