"""Writes small models with ONNX Runtime's outputs, in the layout of ONNX's node test
data (DIR/CASE/model.onnx, DIR/CASE/test_data_set_0/input_N.pb and output_N.pb), for
tests/ort_cases.rs: recurrent layers inside control flow, and Einsum in float32 (the
node tests' Einsum cases are float64).

usage: ort_cases.py DIR
       ort_cases.py --real MODEL.onnx DIR NAME=DIMS[:KIND=VALUE] ...
       ort_cases.py --judge CASE_DIR  (ORT's outputs for the case's model and inputs)
The second form writes deterministic inputs for a real model (float inputs of DIMS,
comma-separated, values sin(0.37 i) * 0.5; `DIMS:int64=V` a constant, `DIMS:int64mod=N`
token ids 1 + 7i mod N, `DIMS:bool=1` all true) and ORT's outputs.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(17)


def f32(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_case(root, name, model, feeds):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    # ORT loads (and so checks) every case below
    path = os.path.join(d, "model.onnx")
    onnx.save(model, path)
    run(path, feeds, d)


def run(path, feeds, d):
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    outs = sess.run(None, {n: feeds[n] for n in names})
    for i, n in enumerate(names):
        t = numpy_helper.from_array(feeds[n], n)
        with open(os.path.join(d, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
            f.write(t.SerializeToString())
    for i, (o, y) in enumerate(zip(sess.get_outputs(), outs)):
        t = numpy_helper.from_array(np.asarray(y), o.name)
        with open(os.path.join(d, "test_data_set_0", f"output_{i}.pb"), "wb") as f:
            f.write(t.SerializeToString())


def model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, elem=TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def if_recurrent(root):
    """If whose branches run a bidirectional LSTM (peepholes, clip, ragged lengths,
    initial states, custom activations) or a reverse GRU (linear_before_reset, ragged
    lengths), both on main-graph weights read by name. (ORT has no layout=1 GRU;
    the node tests cover layout 1.)"""
    T, B, I, H = 5, 2, 3, 4
    inits = [
        numpy_helper.from_array(f32(2, 4 * H, I), "lw"),
        numpy_helper.from_array(f32(2, 4 * H, H), "lr"),
        numpy_helper.from_array(f32(2, 8 * H), "lb"),
        numpy_helper.from_array(f32(2, 3 * H), "lp"),
        numpy_helper.from_array(np.array([5, 3], np.int32), "lens"),
        numpy_helper.from_array(f32(1, 3 * H, I), "gw"),
        numpy_helper.from_array(f32(1, 3 * H, H), "gr"),
        numpy_helper.from_array(f32(1, 6 * H), "gb"),
    ]
    lstm = helper.make_node(
        "LSTM", ["x", "lw", "lr", "lb", "lens", "h0", "c0", "lp"], ["ly", "lyh", "lyc"],
        direction="bidirectional", hidden_size=H, clip=2.5,
        activations=["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Softsign", "LeakyRelu"],
        activation_alpha=[0.3, 0.1], activation_beta=[0.4],
    )
    then = helper.make_graph(
        [lstm, helper.make_node("Flatten", ["ly"], ["t_out"]),
         helper.make_node("Add", ["lyh", "lyc"], ["t_state"])],
        "then", [], [vi("t_out"), vi("t_state")])
    gru = [
        helper.make_node("Slice", ["h0", "zero", "one", "zero"], ["gh0"]),
        helper.make_node(
            "GRU", ["x", "gw", "gr", "gb", "lens", "gh0"], ["gy", "gyh"],
            direction="reverse", hidden_size=H, linear_before_reset=1),
        helper.make_node("Flatten", ["gy"], ["e_out"]),
        helper.make_node("Concat", ["gyh", "gyh"], ["e_state"], axis=0),
    ]
    els = helper.make_graph(
        gru, "else", [], [vi("e_out"), vi("e_state")],
        [numpy_helper.from_array(np.array([0], np.int64), "zero"),
         numpy_helper.from_array(np.array([1], np.int64), "one")])
    nodes = [
        helper.make_node("ReduceSum", ["flag"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "thr"], ["cond"]),
        helper.make_node("If", ["cond"], ["out", "state"], then_branch=then, else_branch=els),
    ]
    inits.append(numpy_helper.from_array(np.array(0, np.float32), "thr"))
    m = model(nodes, [vi("x", shape=[T, B, I]), vi("h0", shape=[2, B, H]),
                      vi("c0", shape=[2, B, H]), vi("flag", shape=[1])],
              [vi("out"), vi("state")], inits)
    base = {"x": f32(T, B, I, scale=1.5), "h0": f32(2, B, H), "c0": f32(2, B, H)}
    write_case(root, "if_lstm", m, {**base, "flag": np.array([1.0], np.float32)})
    write_case(root, "if_gru", m, {**base, "flag": np.array([-1.0], np.float32)})


def loop_scan(root):
    """A Loop (trip count and condition) stepping an RNN cell on a loop-carried state
    with a scan output, and a Scan summing reversed rows into axis-1 outputs."""
    B, I, H = 2, 3, 4
    body = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["h_in", "ax0"], ["x1"]),
            helper.make_node("Unsqueeze", ["h_in", "ax0"], ["h_in3"]),
            helper.make_node("RNN", ["x1", "rw", "rr", "rb", "", "h_in3"], ["ry", "rh"],
                             hidden_size=H, activations=["Affine"],
                             activation_alpha=[0.7], activation_beta=[0.1]),
            helper.make_node("Squeeze", ["rh", "ax0"], ["h_out"]),
            helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["h_out", "fi"], ["scan"]),
            helper.make_node("Less", ["fi", "stop"], ["c_out"]),
        ],
        "body",
        [vi("i", TensorProto.INT64, []), vi("c_in", TensorProto.BOOL, []), vi("h_in")],
        [vi("c_out", TensorProto.BOOL, []), vi("h_out"), vi("scan")],
    )
    inits = [
        numpy_helper.from_array(f32(1, H, H), "rw"),
        numpy_helper.from_array(f32(1, H, H), "rr"),
        numpy_helper.from_array(f32(1, 2 * H), "rb"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        numpy_helper.from_array(np.array(4.0, np.float32), "stop"),
        numpy_helper.from_array(np.array(9, np.int64), "m"),
        numpy_helper.from_array(np.array(True), "go"),
    ]
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["acc", "row"], ["acc_out"]),
         helper.make_node("Mul", ["acc_out", "k"], ["each"])],
        "scan_body", [vi("acc", shape=[H]), vi("row", shape=[H])],
        [vi("acc_out", shape=[H]), vi("each", shape=[H])])
    inits.append(numpy_helper.from_array(np.float32(0.5) * np.ones(H, np.float32), "k"))
    inits.append(numpy_helper.from_array(np.zeros(H, np.float32), "acc0"))
    nodes = [
        helper.make_node("Loop", ["m", "go", "h0"], ["h_final", "hs"], body=body),
        helper.make_node("Reshape", ["hs", "rows_shape"], ["rows"]),
        helper.make_node("Scan", ["acc0", "rows"], ["total", "partial"], body=scan_body,
                         num_scan_inputs=1, scan_input_directions=[1],
                         scan_output_axes=[1]),
    ]
    inits.append(numpy_helper.from_array(np.array([-1, H], np.int64), "rows_shape"))
    m = model(nodes, [vi("h0", shape=[B, H])],
              [vi("h_final"), vi("hs"), vi("total"), vi("partial")], inits)
    write_case(root, "loop_rnn_scan", m, {"h0": f32(B, H)})


def einsum(root):
    """Einsum: diagonals, batched products, broadcast ellipses, implicit outputs,
    three operands."""
    cases = [
        ("einsum_batch_diag", "...ii->...i", [(2, 3, 3)]),
        ("einsum_bmm", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("einsum_ellipsis_bcast", "...ij,...jk", [(2, 1, 3, 4), (1, 3, 4, 2)]),
        ("einsum_implicit", "kj,ji", [(3, 4), (4, 2)]),
        ("einsum_sum", "ij->", [(3, 4)]),
        ("einsum_outer", "i,j->ij", [(3,), (4,)]),
        ("einsum_chain", "ij, jk ,kl->li", [(2, 3), (3, 4), (4, 5)]),
        ("einsum_trace_t", "iij->j", [(3, 3, 2)]),
    ]
    for name, eq, shapes in cases:
        names = [f"x{i}" for i in range(len(shapes))]
        node = helper.make_node("Einsum", names, ["y"], equation=eq)
        m = model([node], [vi(n, shape=list(s)) for n, s in zip(names, shapes)],
                  [vi("y")], [], opset=12)
        write_case(root, name, m, {n: f32(*s) for n, s in zip(names, shapes)})


def ml_scaler(root):
    """ai.onnx.ml Scaler before a MatMul (a scikit-learn StandardScaler exported by
    skl2onnx): per-feature offset and scale on float input; one offset and scale for
    every feature on int64 input."""
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    nodes = [
        helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml",
                         offset=[0.5, -1.0, 2.0, 0.0], scale=[2.0, 0.25, -1.0, 3.0]),
        helper.make_node("MatMul", ["s", "w"], ["y"]),
    ]
    g = helper.make_graph(nodes, "g", [vi("x", shape=[3, 4])], [vi("y")],
                          [numpy_helper.from_array(f32(4, 2), "w")])
    write_case(root, "ml_scaler", helper.make_model(g, opset_imports=opsets),
               {"x": f32(3, 4, scale=3.0)})
    node = helper.make_node("Scaler", ["ids"], ["y"], domain="ai.onnx.ml",
                            offset=[3.0], scale=[0.5])
    g = helper.make_graph([node], "g", [vi("ids", TensorProto.INT64, [2, 3])], [vi("y")])
    ids = np.arange(6, dtype=np.int64).reshape(2, 3) * 7 - 10
    write_case(root, "ml_scaler_int", helper.make_model(g, opset_imports=opsets), {"ids": ids})


def quantize_if(root):
    """Opset 12: a MatMul in the main graph (quantized by qdq) whose output an If's
    branches read by name; the then-branch's Squeeze/Unsqueeze carry opset-12 `axes`
    attributes, which an upgrade to opset 13 must rewrite inside the branch."""
    then = helper.make_graph(
        [helper.make_node("Unsqueeze", ["y"], ["y1"], axes=[0]),
         helper.make_node("Squeeze", ["y1"], ["y2"], axes=[0]),
         helper.make_node("Relu", ["y2"], ["t_out"])],
        "then", [], [vi("t_out")])
    els = helper.make_graph([helper.make_node("Neg", ["y"], ["e_out"])], "else", [],
                            [vi("e_out")])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "thr"], ["cond"]),
        helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=els),
    ]
    inits = [numpy_helper.from_array(f32(8, 6), "w"),
             numpy_helper.from_array(np.array(0, np.float32), "thr")]
    m = model(nodes, [vi("x", shape=[4, 8])], [vi("out")], inits, opset=12)
    x = np.abs(f32(4, 8))
    write_case(root, "quantize_if", m, {"x": x})


def judge(d):
    """Reruns ORT on DIR/model.onnx with the inputs stored there, rewriting outputs."""
    path = os.path.join(d, "model.onnx")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    for i, inp in enumerate(sess.get_inputs()):
        t = onnx.load_tensor(os.path.join(d, "test_data_set_0", f"input_{i}.pb"))
        feeds[inp.name] = numpy_helper.to_array(t)
    run(path, feeds, d)


def real(path, d, specs):
    feeds = {}
    for s in specs:
        name, rest = s.split("=", 1)
        if ":" in rest:
            dims, kind = rest.split(":")
            shape = [int(x) for x in dims.split(",") if x]
            ty, v = kind.split("=")
            if ty == "int64":
                feeds[name] = np.full(shape, int(v), np.int64)
            elif ty == "int64mod":
                feeds[name] = (np.arange(int(np.prod(shape))) * 7 % int(v) + 1).reshape(shape)
            else:
                feeds[name] = np.full(shape, v == "1", np.bool_)
        else:
            shape = [int(x) for x in rest.split(",")]
            n = int(np.prod(shape))
            feeds[name] = (np.sin(0.37 * np.arange(n)) * 0.5).astype(np.float32).reshape(shape)
    run(path, feeds, d)


if __name__ == "__main__":
    if sys.argv[1] == "--judge":
        judge(sys.argv[2])
    elif sys.argv[1] == "--real":
        real(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        if_recurrent(sys.argv[1])
        loop_scan(sys.argv[1])
        einsum(sys.argv[1])
        ml_scaler(sys.argv[1])
        quantize_if(sys.argv[1])
        print("ok")
