#!/usr/bin/env python3
"""Writes the small ONNX models that berth-model-server's tests and benchmark use.

Usage: make_models.py OUT_DIR

Needs the `onnx` package (the tests install a pinned version into a venv when
`import onnx` fails). Every model is written with an explicit IR version and
opset so the files do not depend on the onnx package's defaults.

Models (each in its own directory as model.onnx, the layout the server expects):
  mlp/       x: FP32 [N, 3] -> pre = x @ W + b (FP32 [N, 2]), y = Relu(pre) (FP32 [N, 2])
  add/       a: FP32 [N, 4], b: FP32 [N, 4] -> sum = a + b (FP32 [N, 4])
  int64/     x: INT64 [N] -> y = x * 3 + 1 (INT64 [N])
  dtypes/    one input per numeric datatype, in_<t>: <t> [-1] -> out_<t> = in_<t> + in_<t>,
             plus in_bool: BOOL [-1] -> out_bool = Not(in_bool)
  fixed/     x: FP32 [2, 2] (no dynamic dim) -> y = x + 10
  strings/   s: STRING [N] -> t = Identity(s) (STRING [N]), the protocol's BYTES
  unsupported/ an op from a domain no runtime knows
  widen/     x: FP32 [N, 1] -> y = ReduceSum(Tile(x, [1, 16384]), axis 1) (FP32 [N, 1]): its run
             holds 64 KiB per row while its inputs and outputs hold 4 bytes
"""

import os
import sys

import onnx
from onnx import TensorProto, helper

IR_VERSION = 8
OPSET = 17

# Weights of the mlp model, row-major [3, 2], and its bias [2]. The Rust tests
# compute the expected outputs from the same numbers.
MLP_W = [1.0, -1.0, 2.0, 0.5, -3.0, 1.0]
MLP_B = [0.5, -0.25]


def save(graph, out_dir, name, opset_imports=None):
    model = helper.make_model(
        graph,
        producer_name="berth-model-server-tests",
        opset_imports=opset_imports or [helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    if name != "unsupported":
        onnx.checker.check_model(model)
    path = os.path.join(out_dir, name)
    os.makedirs(path, exist_ok=True)
    onnx.save(model, os.path.join(path, "model.onnx"))


def mlp(out_dir):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    pre = helper.make_tensor_value_info("pre", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], MLP_W)
    b = helper.make_tensor("B", TensorProto.FLOAT, [2], MLP_B)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "B"], ["pre"], name="bias"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "mlp", [x], [pre, y], initializer=[w, b])
    save(graph, out_dir, "mlp")


def add(out_dir):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"], name="add")]
    save(helper.make_graph(nodes, "add", [a, b], [s]), out_dir, "add")


def int64(out_dir):
    x = helper.make_tensor_value_info("x", TensorProto.INT64, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])
    three = helper.make_tensor("three", TensorProto.INT64, [], [3])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    nodes = [
        helper.make_node("Mul", ["x", "three"], ["x3"], name="mul"),
        helper.make_node("Add", ["x3", "one"], ["y"], name="add"),
    ]
    graph = helper.make_graph(nodes, "int64", [x], [y], initializer=[three, one])
    save(graph, out_dir, "int64")


DTYPES = [
    ("uint8", TensorProto.UINT8),
    ("uint16", TensorProto.UINT16),
    ("uint32", TensorProto.UINT32),
    ("uint64", TensorProto.UINT64),
    ("int8", TensorProto.INT8),
    ("int16", TensorProto.INT16),
    ("int32", TensorProto.INT32),
    ("int64", TensorProto.INT64),
    ("fp16", TensorProto.FLOAT16),
    ("fp32", TensorProto.FLOAT),
    ("fp64", TensorProto.DOUBLE),
]


def dtypes(out_dir):
    inputs, outputs, nodes = [], [], []
    for name, elem in DTYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, [None]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, [None]))
        nodes.append(
            helper.make_node("Add", [f"in_{name}", f"in_{name}"], [f"out_{name}"], name=f"add_{name}")
        )
    inputs.append(helper.make_tensor_value_info("in_bool", TensorProto.BOOL, [None]))
    outputs.append(helper.make_tensor_value_info("out_bool", TensorProto.BOOL, [None]))
    nodes.append(helper.make_node("Not", ["in_bool"], ["out_bool"], name="not_bool"))
    save(helper.make_graph(nodes, "dtypes", inputs, outputs), out_dir, "dtypes")


def fixed(out_dir):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    ten = helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0])
    nodes = [helper.make_node("Add", ["x", "ten"], ["y"], name="add")]
    save(helper.make_graph(nodes, "fixed", [x], [y], initializer=[ten]), out_dir, "fixed")


def strings(out_dir):
    s = helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])
    t = helper.make_tensor_value_info("t", TensorProto.STRING, ["N"])
    nodes = [helper.make_node("Identity", ["s"], ["t"], name="identity")]
    save(helper.make_graph(nodes, "strings", [s], [t]), out_dir, "strings")


def unsupported(out_dir):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], name="frob", domain="berth.test")]
    graph = helper.make_graph(nodes, "unsupported", [x], [y])
    save(
        graph,
        out_dir,
        "unsupported",
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("berth.test", 1)],
    )


def widen(out_dir):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [2], [1, 16384])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Tile", ["x", "repeats"], ["wide"], name="tile"),
        helper.make_node("ReduceSum", ["wide", "axes"], ["y"], name="sum", keepdims=1),
    ]
    graph = helper.make_graph(nodes, "widen", [x], [y], initializer=[repeats, axes])
    save(graph, out_dir, "widen")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for make in (mlp, add, int64, dtypes, fixed, strings, unsupported, widen):
        make(out_dir)
    print(f"wrote models to {out_dir} with onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
