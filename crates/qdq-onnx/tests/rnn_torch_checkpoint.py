"""Writes a torch-layout recurrent checkpoint and ONNX Runtime's output on it.

usage: rnn_torch_checkpoint.py MODE OUT_DIR      (MODE: lstm, gru or rnn)

A 2-layer bidirectional torch `nn.LSTM` / `nn.GRU` / `nn.RNN` (tanh) of input 3 and
hidden 4, weights uniform in +-0.5 (seeded), saved as torch's state dict would be
(`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `..._reverse`,
`weight_ih_l1`, ...; gates in torch's order) by a plain safetensors writer (no torch
here). The same weights, converted to ONNX's gate order, go into ONNX's `LSTM` / `GRU`
(`linear_before_reset=1`, torch's formula) / `RNN` nodes, one per layer, and ONNX
Runtime runs them on a seeded input `x [seq 5, batch 2, 3]`.

Writes OUT_DIR/{MODE.safetensors, x.bin, y.bin} (y: `[5, 2, 8]`, torch's output
layout, float32 little-endian).
"""
import json
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SEQ, BATCH, INPUT, HIDDEN, LAYERS, DIRS = 5, 2, 3, 4, 2, 2
# torch's gate blocks in ONNX's order: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def onnx_gates(w, mode):
    blocks = np.split(w, len(ORDER[mode]), axis=0)
    return np.concatenate([blocks[i] for i in ORDER[mode]], axis=0)


def main():
    mode, out = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng({"lstm": 1, "gru": 2, "rnn": 3}[mode])
    rows = len(ORDER[mode]) * HIDDEN
    state, nodes, inits = {}, [], []
    prev = "x"
    for layer in range(LAYERS):
        d_in = INPUT if layer == 0 else DIRS * HIDDEN
        W, R, B = [], [], []
        for d in range(DIRS):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            p = {
                "weight_ih": rng.uniform(-0.5, 0.5, (rows, d_in)),
                "weight_hh": rng.uniform(-0.5, 0.5, (rows, HIDDEN)),
                "bias_ih": rng.uniform(-0.5, 0.5, (rows,)),
                "bias_hh": rng.uniform(-0.5, 0.5, (rows,)),
            }
            p = {k: v.astype(np.float32) for k, v in p.items()}
            state.update({k + sfx: v for k, v in p.items()})
            W.append(onnx_gates(p["weight_ih"], mode))
            R.append(onnx_gates(p["weight_hh"], mode))
            B.append(np.concatenate([onnx_gates(p["bias_ih"], mode), onnx_gates(p["bias_hh"], mode)]))
        for name, a in (("W", W), ("R", R), ("B", B)):
            inits.append(numpy_helper.from_array(np.stack(a), f"{name}{layer}"))
        attrs = {"hidden_size": HIDDEN, "direction": "bidirectional"}
        if mode == "gru":
            attrs["linear_before_reset"] = 1
        # Y [seq, dirs, batch, hidden] -> [seq, batch, dirs * hidden], torch's layout.
        nodes.append(helper.make_node(OP[mode], [prev, f"W{layer}", f"R{layer}", f"B{layer}"], [f"y{layer}"], **attrs))
        nodes.append(helper.make_node("Transpose", [f"y{layer}"], [f"t{layer}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([SEQ, BATCH, DIRS * HIDDEN], np.int64), f"shape{layer}"))
        prev = "y" if layer == LAYERS - 1 else f"h{layer}"
        nodes.append(helper.make_node("Reshape", [f"t{layer}", f"shape{layer}"], [prev]))
    graph = helper.make_graph(
        nodes,
        mode,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, BATCH, INPUT])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SEQ, BATCH, DIRS * HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    x = rng.uniform(-1.0, 1.0, (SEQ, BATCH, INPUT)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})
    write_safetensors(f"{out}/{mode}.safetensors", state)
    x.astype("<f4").tofile(f"{out}/x.bin")
    y.astype("<f4").tofile(f"{out}/y.bin")


main()
