"""Builds the small BERT-style encoder of tests/distill.rs and its unlabeled data, and
judges a quantized file of it with ONNX Runtime.

usage: distill_bert.py make DIR
       distill_bert.py judge DIR MODEL    (checks MODEL with onnx.checker's full check,
                                           prints the cosine of its outputs to the
                                           float model's over DIR/eval, by ORT)

The encoder is what torch.onnx writes for a 2-layer BERT (hidden 16, 2 heads, FFN 32,
vocabulary 50), opset 17, seeded random weights: inputs input_ids and attention_mask,
int64 [batch, sequence]; word embedding Gather + position embedding Slice; an additive
mask built with Where; per layer one fused QKV projection Split in three, heads by
Reshape/Transpose, Softmax(Q·Kᵀ/√d + mask)·V (MatMuls of two activations), output
projection, residual, LayerNormalization (layer 1 the opset-17 op, layer 2 its
ReduceMean/Sub/Pow/Sqrt/Div decomposition), GELU by Erf. Outputs: hidden
[batch, sequence, 16] and pooled [batch, 16] (the first token's vector).

Writes DIR/model.onnx, DIR/calib/NNN.npz (24 items, sequences of 6 and 9 tokens, some
padded) and DIR/eval/NNN.npz (8 held-out items).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

H, HEADS, FF, VOCAB, POS = 16, 2, 32, 50, 16
D = H // HEADS


def build(rng):
    inits, nodes = [], []

    def init(name, a):
        inits.append(nh.from_array(np.asarray(a), name))
        return name

    def w(name, *shape, scale=0.3):
        return init(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def n(op, ins, outs, **kw):
        nodes.append(h.make_node(op, ins, outs, name=outs[0] + "_" + op, **kw))
        return outs[0]

    init("zero_i", np.array([0], np.int64))
    init("one_i", np.array([1], np.int64))
    init("neg", np.array(-10000.0, np.float32))
    init("zf", np.array(0.0, np.float32))
    init("two", np.array(2.0, np.float32))
    init("eps", np.array(1e-12, np.float32))
    init("sqrt2", np.array(np.sqrt(2.0), np.float32))
    init("onef", np.array(1.0, np.float32))
    init("half", np.array(0.5, np.float32))
    init("scale", np.array(1.0 / np.sqrt(D), np.float32))
    init("heads_shape", np.array([0, 0, HEADS, D], np.int64))
    init("merge_shape", np.array([0, 0, H], np.int64))
    init("split", np.array([H, H, H], np.int64))
    init("mask_axes", np.array([1, 2], np.int64))

    # Embeddings: words by Gather, positions by a Slice of the table to the sequence.
    words = n("Gather", [w("word_emb", VOCAB, H, scale=1.0), "input_ids"], ["words"])
    shape = n("Shape", ["input_ids"], ["ids_shape"])
    seq = n("Gather", [shape, "one_i"], ["seq"], axis=0)
    pos = n("Slice", [w("pos_emb", POS, H, scale=0.5), "zero_i", seq, "zero_i"], ["pos"])
    x = n("Add", [words, pos], ["emb"])
    x = n("LayerNormalization", [x, init("emb_g", np.ones(H, np.float32)),
                                 init("emb_b", np.zeros(H, np.float32))], ["emb_ln"], axis=-1)
    # Additive mask [batch, 1, 1, seq]: 0 where attended, -10000 at padding.
    keep = n("Cast", ["attention_mask"], ["keep"], to=T.BOOL)
    bias = n("Where", [keep, "zf", "neg"], ["mask_bias"])
    bias = n("Unsqueeze", [bias, "mask_axes"], ["mask4"])

    for l in range(2):
        p = f"l{l}_"
        qkv = n("MatMul", [x, w(p + "qkv_w", H, 3 * H)], [p + "qkv_mm"])
        qkv = n("Add", [qkv, w(p + "qkv_b", 3 * H, scale=0.1)], [p + "qkv"])
        n("Split", [qkv, "split"], [p + "q", p + "k", p + "v"], axis=-1)
        heads = {}
        for t, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            r = n("Reshape", [p + t, "heads_shape"], [p + t + "_r"])
            heads[t] = n("Transpose", [r], [p + t + "_t"], perm=perm)
        s = n("MatMul", [heads["q"], heads["k"]], [p + "scores"])
        s = n("Mul", [s, "scale"], [p + "scaled"])
        s = n("Add", [s, bias], [p + "masked"])
        a = n("Softmax", [s], [p + "probs"], axis=-1)
        c = n("MatMul", [a, heads["v"]], [p + "ctx"])
        c = n("Transpose", [c], [p + "ctx_t"], perm=[0, 2, 1, 3])
        c = n("Reshape", [c, "merge_shape"], [p + "ctx_m"])
        o = n("MatMul", [c, w(p + "o_w", H, H)], [p + "o_mm"])
        o = n("Add", [o, w(p + "o_b", H, scale=0.1)], [p + "o"])
        r = n("Add", [o, x], [p + "res1"])
        g1, b1 = w(p + "ln1_g", H, scale=0.1), w(p + "ln1_b", H, scale=0.1)
        if l == 0:
            x = n("LayerNormalization", [r, g1, b1], [p + "ln1"], axis=-1)
        else:  # as exporters before opset 17 write it
            mu = n("ReduceMean", [r], [p + "mu"], axes=[-1])
            d = n("Sub", [r, mu], [p + "d"])
            var = n("ReduceMean", [n("Pow", [d, "two"], [p + "d2"])], [p + "var"], axes=[-1])
            sd = n("Sqrt", [n("Add", [var, "eps"], [p + "ve"])], [p + "sd"])
            x = n("Add", [n("Mul", [n("Div", [d, sd], [p + "nrm"]), g1], [p + "ng"]), b1],
                  [p + "ln1"])
        f = n("MatMul", [x, w(p + "f1_w", H, FF)], [p + "f1_mm"])
        f = n("Add", [f, w(p + "f1_b", FF, scale=0.1)], [p + "f1"])
        e = n("Erf", [n("Div", [f, "sqrt2"], [p + "f1s"])], [p + "erf"])
        f = n("Mul", [n("Mul", [f, n("Add", [e, "onef"], [p + "e1"])], [p + "fe"]), "half"],
              [p + "gelu"])
        f = n("MatMul", [f, w(p + "f2_w", FF, H)], [p + "f2_mm"])
        f = n("Add", [f, w(p + "f2_b", H, scale=0.1)], [p + "f2"])
        r = n("Add", [f, x], [p + "res2"])
        x = n("LayerNormalization", [r, w(p + "ln2_g", H, scale=0.1), w(p + "ln2_b", H, scale=0.1)],
              [p + "ln2"], axis=-1)
    n("Identity", [x], ["hidden"])
    n("Gather", [x, init("first", np.array(0, np.int64))], ["pooled"], axis=1)
    # Scales near 1 keep LayerNorm's gains from shrinking the signal to nothing.
    for t in inits:
        if t.name.endswith("_g"):
            a = nh.to_array(t) + 1.0
            t.CopyFrom(nh.from_array(a.astype(np.float32), t.name))
    ids = [h.make_tensor_value_info(k, T.INT64, ["batch", "sequence"])
           for k in ("input_ids", "attention_mask")]
    outs = [h.make_tensor_value_info("hidden", T.FLOAT, ["batch", "sequence", H]),
            h.make_tensor_value_info("pooled", T.FLOAT, ["batch", H])]
    g = h.make_graph(nodes, "tiny_bert", ids, outs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def items(rng, folder, count, first):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        seq = 6 if i % 2 == 0 else 9
        ids = rng.integers(3, VOCAB, size=seq).astype(np.int64)
        ids[0] = 1  # [CLS]
        mask = np.ones(seq, np.int64)
        pad = int(rng.integers(0, 3))
        if pad:
            ids[-pad:], mask[-pad:] = 0, 0
        np.savez(os.path.join(folder, f"{first + i:03d}.npz"), input_ids=ids, attention_mask=mask)


def read_items(folder):
    out = []
    for f in sorted(os.listdir(folder)):
        z = np.load(os.path.join(folder, f))
        out.append({k: z[k][None] for k in ("input_ids", "attention_mask")})
    return out


def judge(d, model):
    import onnxruntime as ort

    # Graph optimizations off: ORT then runs each Q/DQ node as the standard defines it.
    # With them on, its fused integer kernels score this encoder's INT8 file lower
    # (cosine 0.959 instead of 0.9992 for plain `qdq quantize`), for PTQ and QAT alike.
    # The file is what ONNX defines: the checker's full check (types and shapes
    # inferred) first.
    onnx.checker.check_model(onnx.load(model), full_check=True)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    cpu = ["CPUExecutionProvider"]
    ref = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=cpu)
    got = ort.InferenceSession(model, so, providers=cpu)
    a, b = [], []
    for feed in read_items(os.path.join(d, "eval")):
        a.append(ref.run(["hidden"], feed)[0].ravel())
        b.append(got.run(["hidden"], feed)[0].ravel())
    a, b = np.concatenate(a).astype(np.float64), np.concatenate(b).astype(np.float64)
    print(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        d = sys.argv[2]
        rng = np.random.default_rng(18)
        onnx.save(build(rng), os.path.join(d, "model.onnx"))
        items(rng, os.path.join(d, "calib"), 24, 0)
        items(rng, os.path.join(d, "eval"), 8, 100)
    else:
        judge(sys.argv[2], sys.argv[3])
