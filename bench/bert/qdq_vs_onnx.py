"""Why ONNX Runtime's output on an exported QDQ model differs from qdq's forward.

usage: qdq_vs_onnx.py MODEL.onnx AMAX.safetensors X.bin QDQ_OUT.bin

MODEL.onnx: qdq's export (one float input, one float output); AMAX.safetensors: the
same model saved by `qdq::nn::save_safetensors` (the `<quantizer>._amax` tensors); X.bin
and QDQ_OUT.bin: the input and qdq's output, float32 little-endian. Runs with ONNX
Runtime, every graph optimization off (the file as written):

1. the file itself, against qdq's output;
2. the file with each QuantizeLinear -> DequantizeLinear pair replaced by the
   arithmetic qdq and pytorch-quantization compute, `clip(round(x * k)) / k` with
   `k = max_bound / amax` in float32, against qdq's output;
6. the file of 2. with every activation pair rounding at `x * k * (1 + 4 * 2^-23)`
   (a few ulps of float noise where each code is decided), per sentence against 2.;
4. the file of 2. on `x * (1 + 2^-23)` (each input moved by at most one ulp) against
   the file of 2. on `x`: how far float rounding noise alone moves the quantized output;
3. on the file's own activations and weights, each QuantizeLinear's input quantized
   both ways: ONNX's `round(x / scale)` (scale = amax / max_bound in float32) and the
   reference's `round(x * k)`; counts the values whose codes differ, and by how much,
   and per sentence the activations within 8 ulps of a rounding tie (where a few ulps
   of float summation order decide the code) next to that sentence's difference;

Prints one line per check. Exits 1 if the file or the safetensors cannot be read.
"""
import json
import re
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def read_amax(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name.endswith("._amax") and h["dtype"] == "F32":
            a, b = h["data_offsets"]
            out[name[: -len("._amax")]] = np.frombuffer(data[a:b], "<f4").reshape(-1)
    return out


def run(model, x, extra=()):
    """ONNX Runtime on `model` as written; the graph output and the `extra` values."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name, elem in extra:
        m.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3  # the bypassed pairs leave their scales unread
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {m.graph.input[0].name: x})


def pairs(model):
    """(Q node, DQ node, quantizer name) of every pair."""
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = []
    for q in model.graph.node:
        if q.op_type != "QuantizeLinear":
            continue
        (dq,) = consumers[q.output[0]]
        prefix = q.name[: -len("_QuantizeLinear")]
        out.append((q, dq, prefix))
    return out


def quantizer_amax(amax, prefix):
    # A quantizer used k > 1 times is lowered as `name`, `name.1`, ...
    if prefix in amax:
        return amax[prefix]
    return amax[re.sub(r"\.\d+$", "", prefix)]


def reference(model, qdq, inits, amax, nudge):
    """`model` with each Q/DQ pair computed as pytorch-quantization does,
    `clip(round(x * k)) / k`, placed where its QuantizeLinear was; activations round
    at `x * k * (1 + nudge)`."""
    ref = onnx.ModelProto()
    ref.CopyFrom(model)
    g = ref.graph
    replaced, dqs = {}, set()
    for i, (q, dq, prefix) in enumerate(qdq):
        scale = inits[q.input[1]]
        zp = inits[q.input[2]]
        lo, hi = (0.0, 255.0) if zp.dtype == np.uint8 else (-128.0, 127.0)
        bound = np.float32(255 if zp.dtype == np.uint8 else 127)
        k = (bound / quantizer_amax(amax, prefix).astype(np.float32)).astype(np.float32)
        if scale.size > 1:
            axis = next((at.i for at in q.attribute if at.name == "axis"), 1)
            shape = [1] * inits[q.input[0]].ndim
            shape[axis] = scale.size
            k = k.reshape(shape)
        else:
            k = k.reshape([])
        n = [f"ref{i}_{v}" for v in ("k", "lo", "hi", "m", "r", "c", "kr")]
        k_round = k if q.input[0] in inits else (k * np.float32(1 + nudge)).astype(np.float32)
        g.initializer.extend([
            numpy_helper.from_array(k, n[0]),
            numpy_helper.from_array(k_round, n[6]),
            numpy_helper.from_array(np.array(lo, np.float32), n[1]),
            numpy_helper.from_array(np.array(hi, np.float32), n[2]),
        ])
        replaced[q.name] = [
            helper.make_node("Mul", [q.input[0], n[6]], [n[3]]),
            helper.make_node("Round", [n[3]], [n[4]]),
            helper.make_node("Clip", [n[4], n[1], n[2]], [n[5]]),
            helper.make_node("Div", [n[5], n[0]], [dq.output[0]]),
        ]
        dqs.add(dq.name)
    del g.node[:]
    for node in model.graph.node:
        if node.name in replaced:
            g.node.extend(replaced[node.name])
        elif node.name not in dqs:
            g.node.append(node)
    return ref


def main():
    model_path, amax_path, x_path, ours_path = sys.argv[1:5]
    model = onnx.load(model_path)
    amax = read_amax(amax_path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.fromfile(x_path, "<f4").reshape([-1] + dims[1:])
    ours = np.fromfile(ours_path, "<f4")

    def report(what, theirs):
        theirs = theirs.reshape(-1)
        a, b = ours.reshape(len(x), -1), theirs.reshape(len(x), -1)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        print(f"{what}: max |diff| {np.abs(ours - theirs).max():.2e}, min cosine {cos.min():.7f}")

    qdq = pairs(model)
    extra = [(q.input[0], TensorProto.FLOAT) for q, _, _ in qdq if q.input[0] not in inits]
    outs = run(model, x, extra)
    report("ONNX Runtime on the exported file vs qdq", outs[0])
    acts = {name: v for (name, _), v in zip(extra, outs[1:])}

    # 3. Each quantizer's input, quantized both ways.
    total = differ = worst = 0
    touched = set()
    near = np.zeros(len(x), np.int64)  # activations within 8 ulps of a rounding tie, per sentence
    for q, _, prefix in qdq:
        xin = inits.get(q.input[0], acts.get(q.input[0]))
        scale = inits[q.input[1]].astype(np.float32)
        zp = inits[q.input[2]]
        lo, hi = (0, 255) if zp.dtype == np.uint8 else (-128, 127)
        bound = np.float32(255 if zp.dtype == np.uint8 else 127)
        a = quantizer_amax(amax, prefix).astype(np.float32)
        axis = next((at.i for at in q.attribute if at.name == "axis"), 1)
        shape = [1] * xin.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        s, k = scale.reshape(shape), (bound / a).reshape(shape)
        q_onnx = np.clip(np.rint(xin / s), lo, hi)
        q_ref = np.clip(np.rint(xin * k), lo, hi)
        d = np.abs(q_onnx - q_ref)
        if q.input[0] not in inits:
            t = (xin * k).astype(np.float32)
            tie = np.abs(np.abs(t - np.trunc(t)) - np.float32(0.5)) <= 8 * np.spacing(np.abs(t))
            near += tie.reshape(len(x), -1).sum(1)
        total += d.size
        differ += int((d > 0).sum())
        worst = max(worst, float(d.max()))
        if (d > 0).any():
            touched.add(prefix)
    print(
        f"on the file's own inputs to its {len(qdq)} QuantizeLinear nodes: {differ} of {total} values "
        f"({len(touched)} quantizers) get another code from ONNX's round(x / scale) than from "
        f"pytorch-quantization's round(x * max_bound / amax), by at most {worst:.0f} step"
    )

    per = np.abs(ours.reshape(len(x), -1) - outs[0].reshape(len(x), -1)).max(1)
    print(
        "per sentence: activations within 8 ulps of a rounding tie "
        + ", ".join(str(n) for n in near)
        + "; max |diff| to qdq "
        + ", ".join(f"{v:.0e}" for v in per)
    )

    # 2. The file with the reference's arithmetic in place of each pair, where its
    # QuantizeLinear was (so the order stays topological).
    theirs = run(reference(model, qdq, inits, amax, 0.0), x)[0]
    report("ONNX Runtime, each Q/DQ pair computed as pytorch-quantization does, vs qdq", theirs)
    # 6. How far a few ulps of float noise at each activation quantizer's input move
    # the output: the rounding multiplier of every activation pair scaled by 1 + 4 * 2^-23.
    (noisy,) = run(reference(model, qdq, inits, amax, 4 * 2.0**-23), x)
    per = np.abs(noisy.reshape(len(x), -1) - theirs.reshape(len(x), -1)).max(1)
    print(
        "ONNX Runtime (pytorch-quantization's arithmetic), every activation's rounding point moved by 4 ulps: "
        "max |diff| per sentence " + ", ".join(f"{v:.0e}" for v in per)
    )
    # 5. The float ops alone: every pair bypassed, against qdq with its quantizers off
    # (QDQ_OUT.bin's neighbour `export_qdq_float.bin`, when the example wrote it).
    float_path = ours_path.replace("export_qdq.bin", "export_qdq_float.bin")
    try:
        float_ours = np.fromfile(float_path, "<f4")
    except OSError:
        float_ours = None
    if float_ours is not None and float_path != ours_path:
        bare = onnx.ModelProto()
        bare.CopyFrom(model)
        rename = {dq.output[0]: q.input[0] for q, dq, _ in qdq}
        skip = {n.name for q, dq, _ in qdq for n in (q, dq)}
        del bare.graph.node[:]
        for node in model.graph.node:
            if node.name in skip:
                continue
            n = onnx.NodeProto()
            n.CopyFrom(node)
            for j, i in enumerate(n.input):
                n.input[j] = rename.get(i, i)
            bare.graph.node.append(n)
        for o in bare.graph.output:
            if o.name in rename:
                sys.exit("a Q/DQ pair feeds the graph output")
        (fl,) = run(bare, x)
        print(f"float ops only (every Q/DQ pair bypassed vs qdq with every quantizer off): max |diff| {np.abs(fl.reshape(-1) - float_ours).max():.2e}")
    # 4. How far one ulp moves the quantized network: the same file on x * (1 + 2^-23).
    (nudged,) = run(reference(model, qdq, inits, amax, 0.0), (x * np.float32(1 + 2**-23)).astype(np.float32))
    print(
        "ONNX Runtime (pytorch-quantization's arithmetic) on x vs on x * (1 + 2^-23): "
        f"max |diff| {np.abs(nudged - theirs).max():.2e}"
    )


main()
