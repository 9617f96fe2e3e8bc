"""Builds one single-layer ONNX model per quantizable layer, in float32 and int8, from the layer
inventory that `bitalloc inspect --model M --json` prints.

  /usr/bin/python3 bench/cpu_layers.py INVENTORY.json OUT_DIR

Writes OUT_DIR/<layer>.f32.onnx and OUT_DIR/<layer>.int8.onnx and OUT_DIR/index.json (layer name,
input shape, files). Float: Conv (group = channels for depthwise) or MatMul. Int8 (activations u8,
weights s8, per-tensor scales): QuantizeLinear -> QLinearConv / QLinearMatMul -> DequantizeLinear,
the QDQ form onnxruntime runs with its integer kernels (VNNI on x86 when present). Weights are random
(timings do not depend on their values). 'same' padding is derived from the input and output sizes.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def pads_for(in_size, out_size, kernel, stride):
    pads_begin, pads_end = [], []
    for i in range(2):
        s = max(stride[i], 1)
        total = max(0, (out_size[i] - 1) * s + kernel[i] - in_size[i])
        pads_begin.append(total // 2)
        pads_end.append(total - total // 2)
    return pads_begin + pads_end


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path)


def conv_models(layer, out_dir, rng):
    name = layer["name"]
    cin, cout = layer["inChannels"], layer["outChannels"]
    kh, kw = layer["kernel"]
    stride = [max(s, 1) for s in layer["stride"]]
    depthwise = layer["kind"] == "depthwise"
    group = cin if depthwise else 1
    h, w = layer["inSize"]
    oh, ow = layer["outSize"]
    x_shape = [1, cin, h, w]
    y_shape = [1, cout, oh, ow]
    w_shape = [cout, cin // group, kh, kw]
    attrs = dict(kernel_shape=[kh, kw], strides=stride, pads=pads_for([h, w], [oh, ow], [kh, kw], stride), group=group)

    wf = rng.standard_normal(w_shape).astype(np.float32) * 0.1
    bf = np.zeros([cout], dtype=np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(wf, "w"), numpy_helper.from_array(bf, "b")],
    )
    save(g, os.path.join(out_dir, f"{name}.f32.onnx"))

    wq = rng.integers(-127, 128, size=w_shape, dtype=np.int8)
    bq = np.zeros([cout], dtype=np.int32)
    inits = [
        numpy_helper.from_array(np.array(0.02, dtype=np.float32), "x_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "x_zp"),
        numpy_helper.from_array(wq, "w_q"),
        numpy_helper.from_array(np.array(0.01, dtype=np.float32), "w_scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.05, dtype=np.float32), "y_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "y_zp"),
        numpy_helper.from_array(bq, "b_q"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"]),
        helper.make_node("QLinearConv", ["x_q", "x_scale", "x_zp", "w_q", "w_scale", "w_zp", "y_scale", "y_zp", "b_q"], ["y_q"], **attrs),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zp"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        name + "_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    save(g, os.path.join(out_dir, f"{name}.int8.onnx"))
    return x_shape


def dense_models(layer, out_dir, rng):
    name = layer["name"]
    k, n = layer["inChannels"], layer["outChannels"]
    x_shape = [1, k]
    wf = rng.standard_normal([k, n]).astype(np.float32) * 0.1
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(wf, "w")],
    )
    save(g, os.path.join(out_dir, f"{name}.f32.onnx"))
    inits = [
        numpy_helper.from_array(np.array(0.02, dtype=np.float32), "x_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "x_zp"),
        numpy_helper.from_array(rng.integers(-127, 128, size=[k, n], dtype=np.int8), "w_q"),
        numpy_helper.from_array(np.array(0.01, dtype=np.float32), "w_scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.05, dtype=np.float32), "y_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "y_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"]),
        helper.make_node("QLinearMatMul", ["x_q", "x_scale", "x_zp", "w_q", "w_scale", "w_zp", "y_scale", "y_zp"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zp"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        name + "_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        inits,
    )
    save(g, os.path.join(out_dir, f"{name}.int8.onnx"))
    return x_shape


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    inventory, out_dir = sys.argv[1], sys.argv[2]
    with open(inventory) as f:
        data = json.load(f)
    layers = data["layers"] if isinstance(data, dict) else data
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    index = []
    for layer in layers:
        if layer["kind"] == "dense":
            shape = dense_models(layer, out_dir, rng)
        else:
            shape = conv_models(layer, out_dir, rng)
        index.append({"name": layer["name"], "inputShape": shape, "f32": f"{layer['name']}.f32.onnx", "int8": f"{layer['name']}.int8.onnx"})
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"layers": index}, f, indent=1)
    print(f"wrote {2 * len(index)} models to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
