"""Builds the multi-input model of tests/inputs.rs and its data, and runs ONNX Runtime
on every item alone as the outside judge.

usage: inputs_model.py DIR

Model inputs: ids int64 [batch, seq], mask bool [batch, seq], x float [batch, seq, 4],
state float [2, batch, 3] (batch on axis 1, as an RNN state), sr int64 [] (a scalar).
Outputs: y float [batch, seq, 3] = x @ W + ids * mask + sr / 1000 (mask as 0/1),
s float [batch, 3] = state[0] + state[1], twice int64 [batch, seq] = 2 * ids + mask.

Writes DIR/model.onnx; DIR/whole.npz (6 items of seq 5, one array per input, `sr` a
scalar); DIR/items/NNN.npz (6 items, seq 3, 5, 3, 5, 3, 4; no batch axis, item 1 with a
leading axis of 1); DIR/ids.npy, mask.npy (int8 0/1), x.npz, state.npy (the whole.npz
arrays, for NAME=FILE); DIR/ort_whole.npz and DIR/ort_items.npz: ORT's outputs per item
(`y_3` is item 3's y, without the batch axis); and data to refuse (see the end).
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

d = sys.argv[1]
W = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.0) / 7.0
nodes = [
    h.make_node("MatMul", ["x", "W"], ["xw"]),
    h.make_node("Cast", ["ids"], ["idsf"], to=T.FLOAT),
    h.make_node("Cast", ["mask"], ["maskf"], to=T.FLOAT),
    h.make_node("Mul", ["idsf", "maskf"], ["im"]),
    h.make_node("Unsqueeze", ["im", "last"], ["im3"]),
    h.make_node("Cast", ["sr"], ["srf"], to=T.FLOAT),
    h.make_node("Mul", ["srf", "milli"], ["srk"]),
    h.make_node("Add", ["xw", "im3"], ["y0"]),
    h.make_node("Add", ["y0", "srk"], ["y"]),
    h.make_node("ReduceSum", ["state", "zero"], ["s"], keepdims=0),
    h.make_node("Cast", ["mask"], ["maski"], to=T.INT64),
    h.make_node("Mul", ["ids", "two"], ["ids2"]),
    h.make_node("Add", ["ids2", "maski"], ["twice"]),
]
inits = [
    onnx.numpy_helper.from_array(W, "W"),
    onnx.numpy_helper.from_array(np.array([-1], np.int64), "last"),
    onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
    onnx.numpy_helper.from_array(np.array(0.001, np.float32), "milli"),
    onnx.numpy_helper.from_array(np.array(2, np.int64), "two"),
]
graph = h.make_graph(
    nodes,
    "inputs",
    [
        h.make_tensor_value_info("ids", T.INT64, ["batch", "seq"]),
        h.make_tensor_value_info("mask", T.BOOL, ["batch", "seq"]),
        h.make_tensor_value_info("x", T.FLOAT, ["batch", "seq", 4]),
        h.make_tensor_value_info("state", T.FLOAT, [2, "batch", 3]),
        h.make_tensor_value_info("sr", T.INT64, []),
    ],
    [
        h.make_tensor_value_info("y", T.FLOAT, ["batch", "seq", 3]),
        h.make_tensor_value_info("s", T.FLOAT, ["batch", 3]),
        h.make_tensor_value_info("twice", T.INT64, ["batch", "seq"]),
    ],
    inits,
)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, os.path.join(d, "model.onnx"))
sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
rng = np.random.default_rng(17)


def item(seq):
    return {
        "ids": rng.integers(0, 30000, size=seq).astype(np.int64),
        "mask": rng.integers(0, 2, size=seq).astype(bool),
        "x": rng.standard_normal((seq, 4)).astype(np.float32),
        "state": rng.standard_normal((2, 3)).astype(np.float32),
    }


def judge(items, sr, path):
    out = {}
    for i, it in enumerate(items):
        feed = {k: v[None] for k, v in it.items() if k != "state"}
        feed["state"] = it["state"][:, None, :]
        feed["sr"] = np.array(sr, np.int64)
        y, s, twice = sess.run(None, feed)
        out[f"y_{i}"], out[f"s_{i}"], out[f"twice_{i}"] = y[0], s[0], twice[0]
    np.savez(path, **out)


whole = [item(5) for _ in range(6)]
arrays = {k: np.stack([it[k] for it in whole]) for k in whole[0]}
np.savez(os.path.join(d, "whole.npz"), sr=np.array(16000, np.int64), **arrays)
judge(whole, 16000, os.path.join(d, "ort_whole.npz"))
np.save(os.path.join(d, "ids.npy"), arrays["ids"])
np.save(os.path.join(d, "mask.npy"), arrays["mask"].astype(np.int8))
np.savez_compressed(os.path.join(d, "x.npz"), x=arrays["x"])
np.save(os.path.join(d, "state.npy"), arrays["state"])
items = [item(n) for n in [3, 5, 3, 5, 3, 4]]
os.makedirs(os.path.join(d, "items"))
for i, it in enumerate(items):
    a = dict(it, sr=np.array(8000, np.int64))
    if i == 1:
        a["ids"] = a["ids"][None]
    np.savez(os.path.join(d, "items", f"{i:03}.npz"), **a)
judge(items, 8000, os.path.join(d, "ort_items.npz"))

# Data that must be refused: an extra array, a fraction for int64, 2 for bool, five
# items where the others have six, items of the wrong width.
np.savez(os.path.join(d, "extra.npz"), sr=np.array(16000, np.int64), other=arrays["x"], **arrays)
half = arrays["ids"].astype(np.float64)
half[2, 1] = 1.5
np.save(os.path.join(d, "half.npy"), half)
two = arrays["mask"].astype(np.uint8)
two[4, 0] = 2
np.save(os.path.join(d, "two.npy"), two)
np.save(os.path.join(d, "mask5.npy"), arrays["mask"][:5])
np.save(os.path.join(d, "x3.npy"), arrays["x"][..., :3])

# A graph network's inputs, which have no batch axis: each item is a whole graph of its
# own size. feat float [num_nodes, 4], edge_index int64 [2, num_edges], scale float [3]
# (fixed: no batch either). y float [3] = scale * Σ over edges of (feat @ W)[source].
# DIR/graphs/NNN.npz: 5 graphs; DIR/ort_graphs.npz: ORT's y per graph (`y_2`);
# DIR/graphs_bad: the same, graph 2 with an edge to a node it lacks.
gnodes = [
    h.make_node("MatMul", ["feat", "W"], ["hw"]),
    h.make_node("Gather", ["edge_index", "zero_s"], ["src"], axis=0),
    h.make_node("Gather", ["hw", "src"], ["msg"], axis=0),
    h.make_node("ReduceSum", ["msg", "zero"], ["agg"], keepdims=0),
    h.make_node("Mul", ["agg", "scale"], ["y"]),
]
ggraph = h.make_graph(
    gnodes,
    "graph_net",
    [
        h.make_tensor_value_info("feat", T.FLOAT, ["num_nodes", 4]),
        h.make_tensor_value_info("edge_index", T.INT64, [2, "num_edges"]),
        h.make_tensor_value_info("scale", T.FLOAT, [3]),
    ],
    [h.make_tensor_value_info("y", T.FLOAT, [3])],
    [
        onnx.numpy_helper.from_array(W, "W"),
        onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
        onnx.numpy_helper.from_array(np.array(0, np.int64), "zero_s"),
    ],
)
gmodel = h.make_model(ggraph, opset_imports=[h.make_opsetid("", 17)])
gmodel.ir_version = 8
onnx.checker.check_model(gmodel, full_check=True)
onnx.save(gmodel, os.path.join(d, "graph.onnx"))
gsess = ort.InferenceSession(os.path.join(d, "graph.onnx"), providers=["CPUExecutionProvider"])
os.makedirs(os.path.join(d, "graphs"))
gout = {}
for i, (n, e) in enumerate([(4, 6), (6, 9), (4, 5), (7, 12), (5, 5)]):
    g = {
        "feat": rng.normal(0, 1, (n, 4)).astype(np.float32),
        "edge_index": rng.integers(0, n, (2, e)).astype(np.int64),
        "scale": rng.uniform(0.5, 2.0, 3).astype(np.float32),
    }
    np.savez(os.path.join(d, "graphs", f"{i:03}.npz"), **g)
    gout[f"y_{i}"] = gsess.run(None, g)[0]
    # The same graphs, the third with an edge to node 99, which it lacks.
    os.makedirs(os.path.join(d, "graphs_bad"), exist_ok=True)
    if i == 2:
        g["edge_index"][0, 1] = 99
    np.savez(os.path.join(d, "graphs_bad", f"{i:03}.npz"), **g)
np.savez(os.path.join(d, "ort_graphs.npz"), **gout)
