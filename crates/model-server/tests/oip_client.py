"""Calls berth-model-server with NVIDIA's tritonclient, as a user of the protocol would.

Usage: python oip_client.py http|grpc MLP_URL STRINGS_URL DTYPES_URL
       python oip_client.py grpc-once MLP_URL     (one inference; prints its status)

Each URL is host:port of a server of the `mlp`, `strings` and `dtypes` models of make_models.py.
Over HTTP, tritonclient sends inputs with the binary tensor data extension and asks for binary
outputs (its defaults); over gRPC, tensors travel as raw_input_contents / raw_output_contents.
Prints one JSON object with what the server answered (shapes, datatypes, the transport's
parameters, the values); the Rust test (tests/tritonclient.rs) checks them. Exits non-zero, with
the client's exception, on any failure.
"""

import json
import sys

import numpy as np


def one_grpc_inference(url: str) -> None:
    """One ModelInfer of the mlp model over gRPC; prints its status code and message."""
    import tritonclient.grpc as client

    mlp = client.InferenceServerClient(url=url)
    x = client.InferInput("x", [1, 3], "FP32")
    x.set_data_from_numpy(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    try:
        result = mlp.infer("mlp", [x], client_timeout=20)
        print(json.dumps({"status": "OK", "y": result.as_numpy("y").reshape(-1).tolist()}))
    except Exception as e:  # tritonclient.utils.InferenceServerException
        print(json.dumps({"status": str(e.status()), "message": e.message()}))


def main() -> None:
    if sys.argv[1] == "grpc-once":
        one_grpc_inference(sys.argv[2])
        return
    protocol, mlp_url, strings_url, dtypes_url = sys.argv[1:5]
    if protocol == "http":
        import tritonclient.http as client

        def binary_output(name, binary=True):
            return client.InferRequestedOutput(name, binary_data=binary)

        def set_data(tensor, array, binary=True):
            tensor.set_data_from_numpy(array, binary_data=binary)

    elif protocol == "grpc":
        import tritonclient.grpc as client

        def binary_output(name, binary=True):
            return client.InferRequestedOutput(name)

        def set_data(tensor, array, binary=True):
            tensor.set_data_from_numpy(array)

    else:
        raise SystemExit(f"unknown protocol {protocol!r}")

    report = {}

    def describe(result, name):
        """The output as the server described it (its data left out) and its values."""
        out = result.get_output(name)
        if protocol == "grpc":
            out = {"name": out.name, "datatype": out.datatype, "shape": list(out.shape)}
        else:
            out = dict(out)
            out["has_data"] = out.pop("data", None) is not None
        values = result.as_numpy(name)
        if values.dtype == np.object_:
            out["values"] = [v.decode("utf-8") for v in values.reshape(-1)]
        elif values.dtype == np.bool_:
            out["values"] = values.reshape(-1).tolist()
        else:
            out["values"] = values.astype(np.float64).reshape(-1).tolist()
        return out

    # The mlp model: health, metadata, and inference with binary input and outputs.
    mlp = client.InferenceServerClient(url=mlp_url)
    report["live"] = mlp.is_server_live()
    report["ready"] = mlp.is_server_ready()
    report["model_ready"] = mlp.is_model_ready("mlp")
    meta = mlp.get_server_metadata()
    model = mlp.get_model_metadata("mlp")
    if protocol == "grpc":
        report["extensions"] = list(meta.extensions)
        report["inputs"] = [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in model.inputs
        ]
    else:
        report["extensions"] = meta["extensions"]
        report["inputs"] = model["inputs"]

    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25], [0.0, 0.0, 0.0]], dtype=np.float32)
    inp = client.InferInput("x", list(x.shape), "FP32")
    set_data(inp, x)
    result = mlp.infer(
        "mlp",
        [inp],
        outputs=[binary_output("y"), binary_output("pre", binary=False)],
        request_id="tc-1",
    )
    report["requested"] = {
        "id": result.get_response().id if protocol == "grpc" else result.get_response()["id"],
        "y": describe(result, "y"),
        "pre": describe(result, "pre"),
    }
    # No outputs named: every output, in binary over HTTP (tritonclient sets binary_data_output).
    result = mlp.infer("mlp", [inp])
    report["all"] = {"y": describe(result, "y"), "pre": describe(result, "pre")}
    # A JSON input beside binary outputs.
    if protocol == "http":
        inp_json = client.InferInput("x", list(x.shape), "FP32")
        set_data(inp_json, x, binary=False)
        result = mlp.infer("mlp", [inp_json], outputs=[binary_output("y")])
        report["json_input"] = {"y": describe(result, "y")}
    # An error comes back as the client's exception with the server's message.
    bad = client.InferInput("x", [3, 2], "FP32")
    set_data(bad, np.zeros((3, 2), dtype=np.float32))
    try:
        mlp.infer("mlp", [bad])
        report["error"] = None
    except Exception as e:  # tritonclient.utils.InferenceServerException
        report["error"] = {"status": str(e.status()), "message": e.message()}

    if protocol == "grpc":
        # Bounds checked on the message's wire bytes before it is decoded: too many inputs, and
        # typed contents (sent with the client's own generated stub, as tritonclient only sends
        # raw contents).
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        many = []
        for i in range(257):
            t = client.InferInput(f"x{i}", [1], "FP32")
            set_data(t, np.zeros(1, dtype=np.float32))
            many.append(t)
        try:
            mlp.infer("mlp", many)
            report["too_many_inputs"] = None
        except Exception as e:
            report["too_many_inputs"] = {"status": str(e.status()), "message": e.message()}
        request = service_pb2.ModelInferRequest(model_name="mlp")
        typed = request.inputs.add(name="x", datatype="FP32", shape=[1, 3])
        typed.contents.fp32_contents.extend([1.0, 2.0, 3.0])
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(mlp_url))
        try:
            stub.ModelInfer(request)
            report["typed_contents"] = None
        except grpc.RpcError as e:
            report["typed_contents"] = {"status": str(e.code()), "message": e.details()}

    # BYTES tensors: 4-byte length-prefixed elements.
    strings = client.InferenceServerClient(url=strings_url)
    s = np.array(["a".encode(), "".encode(), "héllo".encode()], dtype=np.object_)
    inp = client.InferInput("s", [3], "BYTES")
    set_data(inp, s)
    result = strings.infer("strings", [inp], outputs=[binary_output("t")])
    report["strings"] = describe(result, "t")

    # Every numeric datatype and BOOL.
    dtypes = client.InferenceServerClient(url=dtypes_url)
    kinds = {
        "uint8": ("UINT8", np.uint8, [0, 7, 100]),
        "uint16": ("UINT16", np.uint16, [0, 7, 30000]),
        "uint32": ("UINT32", np.uint32, [0, 7, 2_000_000_000]),
        "uint64": ("UINT64", np.uint64, [0, 7, 2**62]),
        "int8": ("INT8", np.int8, [-64, 7, 63]),
        "int16": ("INT16", np.int16, [-16000, 7, 16000]),
        "int32": ("INT32", np.int32, [-(2**29), 7, 2**29]),
        "int64": ("INT64", np.int64, [-(2**61), 7, 2**61]),
        "fp16": ("FP16", np.float16, [1.5, -0.25, 1000.0]),
        "fp32": ("FP32", np.float32, [1.1, -2.5, 3e38 / 4]),
        "fp64": ("FP64", np.float64, [0.1, -1e300, 5e-324]),
    }
    inputs, outputs = [], []
    for name, (datatype, dtype, values) in kinds.items():
        t = client.InferInput(f"in_{name}", [3], datatype)
        set_data(t, np.array(values, dtype=dtype))
        inputs.append(t)
        outputs.append(binary_output(f"out_{name}"))
    t = client.InferInput("in_bool", [3], "BOOL")
    set_data(t, np.array([True, False, True]))
    inputs.append(t)
    outputs.append(binary_output("out_bool"))
    result = dtypes.infer("dtypes", inputs, outputs=outputs)
    report["dtypes"] = {
        name: describe(result, f"out_{name}") for name in list(kinds) + ["bool"]
    }
    report["dtypes_sent"] = {
        name: np.array(values, dtype=dtype).astype(np.float64).tolist()
        for name, (_, dtype, values) in kinds.items()
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
