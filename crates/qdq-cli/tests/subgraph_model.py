"""Builds the models of tests/subgraphs.rs and judges what qdq writes for them.

usage: subgraph_model.py make DIR
       subgraph_model.py judge FLOAT.onnx QDQ.onnx
       subgraph_model.py stored QDQ.onnx STORED.onnx

`make` writes DIR/branches.onnx: x float [batch, 2, 8], sr int64 [] (a sample rate, as
silero-vad takes it). `If (sr == 16000)`: then_branch Conv(x, Wt) -> Relu -> MatMul(Mt)
with Wt an initializer of the main graph and Mt one of the branch; else_branch the same
with both weights `Constant` nodes of the branch (node names conv_t/mm_t, conv_e/mm_e).
Then `Loop` (M = 2, named `loop`) whose body computes y = Relu(MatMul(y, Wl)) (`mm_l`,
Wl of the main graph). Output z [batch, 4, 8]. DIR/calib.npz: 6 items, sr = 16000 only
(the else branch is never taken). DIR/eval16.npz and DIR/eval8.npz: 4 other items at
each rate.

Also DIR/reshape1.onnx, a model that declares a dynamic batch but reshapes to a batch
of 1 (as khmersm's attention does): x [batch, 4] -> Reshape([1, 4]) -> MatMul(W [4, 3])
-> y [batch, 3]; DIR/items.npz: 5 items of x.

And DIR/bigpool.onnx: x [batch, 1, 1024, 1024] -> MaxPool 40x40 (stride 1) -> Conv 1x1
-> y, whose pooling window work (output x window, 1.55e9 values an item) passes the
runtime's 2^31 limit on two items but not on one; DIR/bigitems.npz: 3 items (the
calibration pass runs the first alone, to size its runs, then the other two together).

`judge` checks QDQ.onnx with onnx.checker (full_check), runs it and FLOAT.onnx with ONNX
Runtime on eval16 and eval8 (next to FLOAT.onnx), and prints JSON: `q` the
QuantizeLinear nodes of each graph (by scope), `cos16`/`cos8` the cosine of the
quantized output to the float one.

`stored` checks STORED.onnx (written with `--weights int8`) with onnx.checker
(full_check), runs both files with ONNX Runtime on eval16 and eval8 and prints JSON:
`weight_q` the outputs of QDQ.onnx's QuantizeLinear nodes that read constants (by
scope), `int8` STORED.onnx's INT8 initializers other than zero points (by scope), `q` its QuantizeLinear
nodes, `floats` which of the fixture's float weights (Wt, Wl, Mt, We, Me) it still
holds anywhere, `diff` the largest |difference| of the two files' outputs.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


def weights(seed, shape):
    return np.random.default_rng(seed).normal(0, 0.5, shape).astype(np.float32)


def const(name, array):
    return h.make_node("Constant", [], [name], name=name + "_const", value=nh.from_array(array, name))


def make(d):
    os.makedirs(d, exist_ok=True)
    out_t = h.make_tensor_value_info("t_out", T.FLOAT, None)
    then_g = h.make_graph(
        [
            h.make_node("Conv", ["x", "Wt"], ["t_c"], name="conv_t", pads=[1, 1]),
            h.make_node("Relu", ["t_c"], ["t_r"], name="relu_t"),
            h.make_node("MatMul", ["t_r", "Mt"], ["t_out"], name="mm_t"),
        ],
        "then",
        [],
        [out_t],
        [nh.from_array(weights(2, (8, 8)), "Mt")],
    )
    else_g = h.make_graph(
        [
            const("We", weights(3, (4, 2, 3))),
            const("Me", weights(4, (8, 8))),
            h.make_node("Conv", ["x", "We"], ["e_c"], name="conv_e", pads=[1, 1]),
            h.make_node("Relu", ["e_c"], ["e_r"], name="relu_e"),
            h.make_node("MatMul", ["e_r", "Me"], ["e_out"], name="mm_e"),
        ],
        "else",
        [],
        [h.make_tensor_value_info("e_out", T.FLOAT, None)],
    )
    body = h.make_graph(
        [
            h.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
            h.make_node("MatMul", ["y_in", "Wl"], ["l_m"], name="mm_l"),
            h.make_node("Relu", ["l_m"], ["y_out"], name="relu_l"),
        ],
        "body",
        [
            h.make_tensor_value_info("iter", T.INT64, []),
            h.make_tensor_value_info("cond_in", T.BOOL, []),
            h.make_tensor_value_info("y_in", T.FLOAT, None),
        ],
        [
            h.make_tensor_value_info("cond_out", T.BOOL, []),
            h.make_tensor_value_info("y_out", T.FLOAT, None),
        ],
    )
    graph = h.make_graph(
        [
            h.make_node("Equal", ["sr", "rate16"], ["is16"], name="is16k"),
            h.make_node("If", ["is16"], ["h"], name="branch", then_branch=then_g, else_branch=else_g),
            h.make_node("Loop", ["trips", "", "h"], ["z"], name="loop", body=body),
        ],
        "branches",
        [
            h.make_tensor_value_info("x", T.FLOAT, ["batch", 2, 8]),
            h.make_tensor_value_info("sr", T.INT64, []),
        ],
        [h.make_tensor_value_info("z", T.FLOAT, ["batch", 4, 8])],
        [
            nh.from_array(weights(1, (4, 2, 3)), "Wt"),
            nh.from_array(weights(5, (8, 8)) * 0.5, "Wl"),
            nh.from_array(np.array(16000, np.int64), "rate16"),
            nh.from_array(np.array(2, np.int64), "trips"),
        ],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(d, "branches.onnx"))
    rng = np.random.default_rng(7)
    for name, n, sr in [("calib", 6, 16000), ("eval16", 4, 16000), ("eval8", 4, 8000)]:
        x = rng.normal(0, 1, (n, 2, 8)).astype(np.float32)
        np.savez(os.path.join(d, name + ".npz"), x=x, sr=np.array(sr, np.int64))

    g = h.make_graph(
        [
            h.make_node("Reshape", ["x", "one_batch"], ["x1"], name="to_batch1"),
            h.make_node("MatMul", ["x1", "W"], ["y"], name="mm"),
        ],
        "reshape1",
        [h.make_tensor_value_info("x", T.FLOAT, ["batch", 4])],
        [h.make_tensor_value_info("y", T.FLOAT, ["batch", 3])],
        [
            nh.from_array(np.array([1, 4], np.int64), "one_batch"),
            nh.from_array(weights(6, (4, 3)), "W"),
        ],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(d, "reshape1.onnx"))
    np.savez(os.path.join(d, "items.npz"), x=rng.normal(0, 1, (5, 4)).astype(np.float32))

    g = h.make_graph(
        [
            h.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[40, 40]),
            h.make_node("Conv", ["p", "Wc"], ["y"], name="conv"),
        ],
        "bigpool",
        [h.make_tensor_value_info("x", T.FLOAT, ["batch", 1, 1024, 1024])],
        [h.make_tensor_value_info("y", T.FLOAT, ["batch", 1, 985, 985])],
        [nh.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "Wc")],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(d, "bigpool.onnx"))
    np.savez(os.path.join(d, "bigitems.npz"), x=rng.normal(0, 1, (3, 1, 1024, 1024)).astype(np.float32))


def graphs(graph, scope, out):
    """Every graph of `graph` with its scope (`node/attribute/` per level), main first."""
    out.append((scope, graph))
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                graphs(a.g, f"{scope}{n.name}/{a.name}/", out)
    return out


def q_nodes(graph):
    return {scope: [n.name for n in g.node if n.op_type == "QuantizeLinear"] for scope, g in graphs(graph, "", [])}


def ort_run(path, feed):
    """The first output of `path` on `feed`, in ONNX Runtime with every optimization off."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def judge(float_path, qdq_path):
    model = onnx.load(qdq_path)
    onnx.checker.check_model(model, full_check=True)
    result = {"q": q_nodes(model.graph)}
    d = os.path.dirname(float_path)
    for rate in ["16", "8"]:
        data = np.load(os.path.join(d, f"eval{rate}.npz"))
        feed = {"x": data["x"], "sr": data["sr"]}
        f, q = ort_run(float_path, feed).ravel(), ort_run(qdq_path, feed).ravel()
        result["cos" + rate] = float(f @ q / (np.linalg.norm(f) * np.linalg.norm(q)))
    print(json.dumps(result))


def stored(qdq_path, stored_path):
    qdq, st = onnx.load(qdq_path), onnx.load(stored_path)
    onnx.checker.check_model(st, full_check=True)
    constants = set()
    for _, g in graphs(qdq.graph, "", []):
        constants |= {t.name for t in g.initializer}
        constants |= {n.output[0] for n in g.node if n.op_type == "Constant"}
    weight_q = {
        scope: sorted(n.output[0] for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] in constants)
        for scope, g in graphs(qdq.graph, "", [])
    }
    def int8_weights(g):
        zero_points = {n.input[2] for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2}
        return sorted(t.name for t in g.initializer if t.data_type == T.INT8 and t.name not in zero_points)

    int8 = {scope: int8_weights(g) for scope, g in graphs(st.graph, "", [])}
    held = set()
    for _, g in graphs(st.graph, "", []):
        held |= {t.name for t in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    d = os.path.dirname(qdq_path)
    diff = 0.0
    for rate in ["16", "8"]:
        data = np.load(os.path.join(d, f"eval{rate}.npz"))
        feed = {"x": data["x"], "sr": data["sr"]}
        diff = max(diff, float(np.max(np.abs(ort_run(qdq_path, feed) - ort_run(stored_path, feed)))))
    result = {
        "weight_q": weight_q,
        "int8": int8,
        "q": q_nodes(st.graph),
        "floats": sorted(held & {"Wt", "Wl", "Mt", "We", "Me"}),
        "diff": diff,
    }
    print(json.dumps(result))


if sys.argv[1] == "make":
    make(sys.argv[2])
elif sys.argv[1] == "stored":
    stored(sys.argv[2], sys.argv[3])
else:
    judge(sys.argv[2], sys.argv[3])
