#!/usr/bin/env python3
"""KServe's Python ModelServer serving an ONNX model with onnxruntime: the anchor of
bench/model-server/run.sh. A custom kserve.Model is how KServe's own documentation serves a model
its Python runtimes do not cover; the session is onnxruntime's CPU provider with its defaults.

    kserve_onnx.py --model_name mlp --model_path models/mlp/model.onnx --http_port 8080 --workers 1

Every ModelServer flag (--http_port, --grpc_port, --workers, ...) is KServe's own.
"""

import argparse

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server

DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.bool_): "BOOL",
}


class OnnxModel(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.session = None
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    # With --workers > 1, KServe pickles the model into each worker process: an onnxruntime session
    # cannot be pickled, so each worker opens its own.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["session"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        results = self.session.run(None, feeds)
        outputs = []
        for name, array in zip(self.outputs, results):
            out = InferOutput(name=name, shape=list(array.shape), datatype=DATATYPES[array.dtype])
            out.set_data_from_numpy(array, binary_data=False)
            outputs.append(out)
        return InferResponse(
            model_name=self.name, infer_outputs=outputs, response_id=payload.id
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True, help="the .onnx file")
    args, _ = parser.parse_known_args()
    ModelServer().start([OnnxModel(args.model_name, args.model_path)])
