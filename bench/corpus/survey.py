#!/usr/bin/env python3
"""Survey the fetched corpus: what each model is, and what qdq makes of it.

Usage:
    python bench/corpus/survey.py [--dir DIR] [--qdq BIN] [--work DIR] [--only ID,ID]
                                  [--timeout S] [--out SURVEY.md] [--json FILE]

Needs onnx, onnxruntime and numpy (the repository's .venv has them). Run fetch.py first;
models that are not in --dir are listed as "not fetched".

For each model of models.json found in --dir (default target/corpus) it records:
  * opset (default domain, plus any other domains), IR version, producer, size
    (with external data files), whether weights live in external data, whether any
    tensor is float16;
  * inputs and outputs (name, dtype, shape; graph inputs that are initializers are
    left out), and the op-type histogram (nodes inside If/Loop/Scan bodies included,
    counted separately);
  * onnx.checker.check_model(path, full_check=True): ok, or the error's first line;
  * onnxruntime (CPU): the session builds, and one item of the survey's input runs;
  * `qdq inspect MODEL`: exit code and the last lines of its output;
  * `qdq quantize MODEL --calib X -o WORK/out/ID.onnx --method max` with 8 seeded random
    items (numpy, seed 0): a .npy when the model has one input, else a .npz with one
    array per input, named like it. Dynamic dimensions get the plausible size from
    SIZES below (else 1 for the first dimension, 16 for the others). Values: images
    uniform in [-1, 1], audio normal * 0.1, token ids in a small range, masks all
    ones/true, a sample-rate scalar 16000. Run under `nice -n 19` with a --timeout
    (default 180 s); exit code, time and the error's first lines are recorded.
    The issue's criterion for a quantize run is "every input float32 with static
    per-item dims"; the column `crit` says whether a model meets it (`dyn` when a
    per-item dim had to be filled in, `no` for non-float inputs). Every model is
    tried anyway, so that dtype and multi-input refusals show up as well.

Writes SURVEY.md (the table, per-model details, and the distinct qdq failures with the
models that hit them) and, with --json, the raw results.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Full input shapes (batch 1) for dynamic dimensions: the size each model is used at.
SIZES = {
    "ppocrv4-det": {"x": [1, 3, 320, 320]},
    "ppocrv4-rec": {"x": [1, 3, 48, 320]},
    "ppocr-cls": {"x": [1, 3, 48, 192]},
    "ppocrv6-det": {"x": [1, 3, 320, 320]},
    "ppocrv6-rec": {"x": [1, 3, 48, 320]},
    "ddddocr-ocr": {"input1": [1, 1, 64, 160]},
    "ddddocr-ocr-old": {"input1": [1, 1, 64, 160]},
    "nudenet-320n": {"images": [1, 3, 320, 320]},
    "magika": {"bytes": [1, 2048]},
    "silero-vad": {"input": [1, 512], "state": [2, 1, 128], "sr": []},
    "silero-vad-half": {"input": [1, 512], "state": [2, 1, 128]},
    "silero-vad-op18": {"input": [1, 512], "state": [2, 1, 128], "sr": []},
    "oww-melspec": {"input": [1, 1280]},
    "oww-embedding": {"input_1": [1, 76, 32, 1]},
    "ar-romanizer-enc": {"src": [1, 16], "src_mask": [1, 16]},
    "minilm-l3": {"input_ids": [1, 32], "attention_mask": [1, 32]},
    "khmersm": {"x": [1, 32], "mask": [1, 32]},
}
AUDIO = {"vad", "audio-frontend", "wakeword", "audio-embedding"}
ITEMS = 8
NOTE_OPS = {
    "Resize", "ConvTranspose", "LSTM", "GRU", "RNN", "If", "Loop", "Scan", "Softmax",
    "LayerNormalization", "MatMul", "Gemm", "Erf", "HardSwish", "HardSigmoid", "Range",
    "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeLSTM",
    "QuantizeLinear", "DequantizeLinear", "Where", "Einsum", "GlobalMaxPool",
}


def dtype_name(elem):
    import onnx
    return onnx.TensorProto.DataType.Name(elem).lower()


def shape_of(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def walk(graph, top=True):
    """Yield (node, in_subgraph) for every node, subgraphs included."""
    import onnx
    for n in graph.node:
        yield n, not top
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from walk(a.g, False)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from walk(g, False)


def all_tensor_types(model):
    """Element types of every tensor: initializers, I/O and value_info, Constant values and
    Cast targets, in the main graph and in every subgraph."""
    import onnx
    types = set()

    def graph_types(g):
        for t in g.initializer:
            types.add(t.data_type)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            types.add(vi.type.tensor_type.elem_type)
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    types.add(a.t.data_type)
                elif a.type == onnx.AttributeProto.GRAPH:
                    graph_types(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sub in a.graphs:
                        graph_types(sub)
                if n.op_type == "Cast" and a.name == "to":
                    types.add(a.i)

    graph_types(model.graph)
    return types


def describe(path):
    import onnx
    from onnx.external_data_helper import uses_external_data
    m = onnx.load(path, load_external_data=False)
    g = m.graph
    inits = {t.name for t in g.initializer}
    ext = any(uses_external_data(t) for t in g.initializer)
    ext_files = sorted({kv.value for t in g.initializer for kv in t.external_data if kv.key == "location"})
    size = os.path.getsize(path) + sum(
        os.path.getsize(os.path.join(os.path.dirname(path), f)) for f in ext_files
        if os.path.exists(os.path.join(os.path.dirname(path), f)))
    hist, sub_hist = collections.Counter(), collections.Counter()
    for n, sub in walk(g):
        (sub_hist if sub else hist)[n.op_type if not n.domain or n.domain == "ai.onnx" else f"{n.domain}:{n.op_type}"] += 1
    fp16 = onnx.TensorProto.FLOAT16 in all_tensor_types(m)
    return {
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "size": size,
        "external_data": ext,
        "external_files": ext_files,
        "float16": fp16,
        "inputs": [{"name": i.name, "dtype": dtype_name(i.type.tensor_type.elem_type), "shape": shape_of(i)}
                   for i in g.input if i.name not in inits],
        "outputs": [{"name": o.name, "dtype": dtype_name(o.type.tensor_type.elem_type), "shape": shape_of(o)}
                    for o in g.output],
        "ops": dict(hist.most_common()),
        "subgraph_ops": dict(sub_hist.most_common()),
        "nodes": sum(hist.values()),
    }


def full_shapes(mid, desc):
    out = {}
    over = SIZES.get(mid, {})
    for inp in desc["inputs"]:
        if inp["name"] in over:
            out[inp["name"]] = list(over[inp["name"]])
            continue
        sh = inp["shape"] or []
        out[inp["name"]] = [d if isinstance(d, int) and d > 0 else (1 if k == 0 else 16) for k, d in enumerate(sh)]
    return out


def criterion(mid, desc):
    if not all(i["dtype"] == "float" for i in desc["inputs"]):
        return "no"
    for i in desc["inputs"]:
        sh = i["shape"] or []
        if any(not (isinstance(d, int) and d > 0) for d in sh[1:]):
            return "dyn"
    return "yes"


def make_values(rng, model, inp, shape):
    name, dt = inp["name"].lower(), inp["dtype"]
    if dt == "bool":
        return np.ones(shape, dtype=bool)
    if dt in ("int64", "int32"):
        npdt = np.int64 if dt == "int64" else np.int32
        if shape == [] or name == "sr":
            return np.full(shape, 16000, dtype=npdt)
        if "mask" in name:
            return np.ones(shape, dtype=npdt)
        if model["id"] == "magika":
            return rng.integers(0, 256, shape).astype(npdt)
        if "minilm" in model["id"]:
            return rng.integers(1000, 2000, shape).astype(npdt)
        return rng.integers(1, 30, shape).astype(npdt)
    npdt = np.float16 if dt == "float16" else np.float32
    if "state" in name or name in ("h",):
        return np.zeros(shape, dtype=npdt)
    if model["task"] in AUDIO:
        return (rng.standard_normal(shape) * 0.1).astype(npdt)
    return rng.uniform(-1, 1, shape).astype(npdt)


def check_onnx(path):
    import onnx
    try:
        onnx.checker.check_model(path, full_check=True)
        return "ok", ""
    except Exception as e:
        return "FAIL", first_lines(f"{type(e).__name__}: {e}", 2)


def check_ort(path, feed):
    import onnxruntime as ort
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        return "FAIL(load)", first_lines(str(e), 2)
    try:
        s.run(None, feed)
        return "ok", ""
    except Exception as e:
        return "FAIL(run)", first_lines(str(e), 2)


def first_lines(text, n):
    lines = [l.rstrip() for l in text.strip().splitlines() if l.strip()]
    return "\n".join(lines[:n])


def last_lines(text, n):
    lines = [l.rstrip() for l in text.strip().splitlines() if l.strip()]
    return "\n".join(lines[-n:])


def run(cmd, timeout):
    t0 = time.time()
    try:
        p = subprocess.run(["nice", "-n", "19"] + cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return "timeout", out, err, time.time() - t0


def error_text(stdout, stderr):
    """The error part of qdq's output: stderr, else the stdout lines that say error."""
    if stderr.strip():
        return stderr
    lines = [l for l in stdout.splitlines() if re.search(r"error|refus|unsupported|cannot|not supported", l, re.I)]
    return "\n".join(lines) or last_lines(stdout, 3)


def survey_model(model, args):
    mid = model["id"]
    path = os.path.join(args.dir, mid + ".onnx")
    r = {"id": mid, "task": model["task"], "package": f"{model['package']}=={model['version']}"}
    if not os.path.exists(path):
        r["missing"] = True
        return r
    desc = describe(path)
    r.update(desc)
    shapes = full_shapes(mid, desc)
    rng = np.random.default_rng(0)
    calib = {i["name"]: make_values(rng, model, i, [ITEMS] + shapes[i["name"]][1:] if shapes[i["name"]] else [ITEMS])
             for i in desc["inputs"]}
    feed = {}
    for i in desc["inputs"]:
        sh = shapes[i["name"]]
        feed[i["name"]] = calib[i["name"]][:1].reshape(sh) if sh and sh[0] == 1 else \
            make_values(np.random.default_rng(1), model, i, sh)
    r["survey_shapes"] = shapes
    r["crit"] = criterion(mid, desc)
    r["checker"], r["checker_err"] = check_onnx(path)
    r["ort"], r["ort_err"] = check_ort(path, feed)

    rc, out, err, dt = run([args.qdq, "inspect", path], 120)
    r["inspect_rc"], r["inspect_tail"] = rc, last_lines(out + "\n" + err, 4)
    r["inspect_err"] = first_lines(err, 3) if rc != 0 else ""
    m = re.search(r"(\d+) nodes, (\d+) weight elements", out)
    if m:
        r["inspect_nodes"], r["inspect_weights"] = int(m.group(1)), int(m.group(2))

    os.makedirs(os.path.join(args.work, "calib"), exist_ok=True)
    os.makedirs(os.path.join(args.work, "out"), exist_ok=True)
    if len(calib) == 1:
        cpath = os.path.join(args.work, "calib", mid + ".npy")
        np.save(cpath, next(iter(calib.values())))
    else:
        cpath = os.path.join(args.work, "calib", mid + ".npz")
        np.savez(cpath, **calib)
    r["calib"] = {k: [str(v.dtype), list(v.shape)] for k, v in calib.items()}
    qout = os.path.join(args.work, "out", mid + ".onnx")
    if os.path.exists(qout):
        os.remove(qout)
    rc, out, err, dt = run([args.qdq, "quantize", path, "--calib", cpath, "-o", qout, "--method", "max"], args.timeout)
    r["quant_rc"], r["quant_s"] = rc, round(dt, 1)
    r["quant_err"] = "" if rc == 0 else first_lines(error_text(out, err), 4)
    r["quant_tail"] = last_lines(out, 3)
    r["quant_out_size"] = os.path.getsize(qout) if os.path.exists(qout) else None
    m = re.search(r"wrote .*", out)
    r["quant_wrote"] = m.group(0) if m else ""
    r["eval_rc"], r["eval"], r["eval_err"] = "", [], ""
    if r["quant_out_size"]:
        r["qort"], r["qort_err"] = check_ort(qout, feed)
        rc, out, err, dt = run([args.qdq, "eval", path, qout, "--data", cpath], args.timeout)
        r["eval_rc"] = rc
        r["eval"] = [l.strip() for l in out.splitlines() if "SQNR" in l and "cosine" in l]
        r["eval_jump"] = next((l.strip() for l in out.splitlines() if l.startswith("largest error jump")), "")
        r["eval_err"] = "" if rc == 0 else first_lines(error_text(out, err), 3)
    else:
        r["qort"], r["qort_err"] = "", ""
    return r


def normalize(err):
    """A failure's signature: the first error line with model-specific names blanked."""
    line = err.strip().splitlines()[0] if err.strip() else "(no message)"
    line = re.sub(r"^(Error|error):\s*", "", line)
    line = re.sub(r"/\S+\.(onnx|npy|npz)", "FILE", line)
    line = re.sub(r"`[^`]*`", "`…`", line)
    line = re.sub(r"'[^']*'", "'…'", line)
    line = re.sub(r"\"[^\"]*\"", '"…"', line)
    line = re.sub(r"\[[^\]]*\]", "[…]", line)
    line = re.sub(r" ?\(x\d+\)", "", line)
    line = re.sub(r"\b(u?int)(8|16|32|64)\b", r"\1N", line)
    line = re.sub(r"\b\d+\b", "N", line)
    return line


def fmt_shape(sh):
    return "?" if sh is None else "[" + ",".join(str(d) for d in sh) + "]"


def fmt_io(ios):
    return "<br>".join(f"`{i['name']}` {i['dtype']}{fmt_shape(i['shape'])}" for i in ios)


def cell(s):
    return s.replace("|", "\\|").replace("\n", "<br>")


def write_md(results, args, path):
    import onnx
    import onnxruntime
    qv = subprocess.run([args.qdq, "--version"], capture_output=True, text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(os.path.getmtime(args.qdq)))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(args.qdq))))
    try:
        commit = subprocess.run(["git", "-C", repo, "log", "-1", f"--before={built}", "--format=%h %s"],
                                capture_output=True, text=True).stdout.strip() or "?"
    except Exception:
        commit = "?"
    L = []
    L.append("# Corpus survey\n")
    L.append(f"Generated by `bench/corpus/survey.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"with {qv} (`{args.qdq}`, built {built}; the newest commit before that: `{commit}`), onnx {onnx.__version__}, "
             f"onnxruntime {onnxruntime.__version__}. Quantize runs: `qdq quantize MODEL --calib X -o OUT --method max`, "
             f"{ITEMS} seeded random items, {args.timeout} s timeout, `nice -n 19`. DIR = the models' folder "
             f"(--dir), WORK = the scratch folder (--work).\n")
    L.append("Columns: `crit` = meets the issue's quantize criterion (every input float32 with static per-item dims; "
             "`dyn` = float32 but a per-item dim was filled in from the survey's SIZES; `no` = a non-float input); "
             "`ext` = external data; `fp16` = some tensor is float16; `chk` = `onnx.checker` full check; "
             "`ort` = onnxruntime loads and runs one item; `inspect`/`quantize` = qdq exit codes "
             "(quantize time in seconds; `ort ok` = onnxruntime loads and runs qdq's QDQ output; SQNR = `qdq eval` "
             "FP32 vs QDQ on the first output, over the same random items: a sanity check only).\n")
    L.append("| id | task | package | MB | opset/IR | inputs | ext | fp16 | chk | ort | inspect | crit | quantize | ops of note |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.get("missing"):
            L.append(f"| {r['id']} | {r['task']} | {r['package']} | not fetched |||||||||||")
            continue
        ops = dict(r["ops"])
        for k, v in r["subgraph_ops"].items():
            ops[k + "(sub)"] = v
        note = ", ".join(f"{k}×{v}" for k, v in ops.items() if k.split("(")[0].split(":")[-1] in NOTE_OPS or ":" in k)
        opset = r["opset"].get("ai.onnx", "?")
        extra_dom = [d for d in r["opset"] if d != "ai.onnx"]
        ops_cell = f"{opset}/{r['ir']}" + (f" +{len(extra_dom)} dom" if extra_dom else "")
        q = f"{r['quant_rc']} ({r['quant_s']}s)" + (f", ort {r['qort']}" if r["qort"] else "")
        if r.get("eval"):
            m = re.search(r"SQNR (-?[\d.]+|inf|-inf|NaN) dB", r["eval"][0])
            q += f", SQNR {m.group(1)} dB" if m else ""
        L.append(f"| {r['id']} | {r['task']} | {r['package']} | {r['size'] / 1e6:.1f} | {ops_cell} | {fmt_io(r['inputs'])} | "
                 f"{'yes' if r['external_data'] else ''} | {'yes' if r['float16'] else ''} | {r['checker']} | {r['ort']} | "
                 f"{r['inspect_rc']} | {r['crit']} | {q} | {cell(note)} |")
    L.append("")

    # failures
    groups = collections.OrderedDict()
    for r in results:
        if r.get("missing"):
            continue
        if r["inspect_rc"] != 0:
            groups.setdefault(("inspect", normalize(r["inspect_err"] or r["inspect_tail"])), []).append(r)
        if r.get("eval_rc") not in ("", 0):
            groups.setdefault(("eval", normalize(r["eval_err"])), []).append(r)
        if r["quant_rc"] != 0:
            sig = "timeout" if r["quant_rc"] == "timeout" else normalize(r["quant_err"])
            groups.setdefault(("quantize", sig), []).append(r)
    L.append("## Distinct qdq failures\n")
    L.append("Grouped by the first error line with file names, quoted names and numbers blanked. "
             "The models' own messages are in the details below.\n")
    if not groups:
        L.append("None.\n")
    for (cmd, sig), rs in groups.items():
        L.append(f"- **{cmd}**: `{sig}` — {', '.join(r['id'] for r in rs)}")
        ex = {"quantize": rs[0]["quant_err"], "eval": rs[0].get("eval_err", "")}.get(
            cmd, rs[0]["inspect_err"] or rs[0]["inspect_tail"])
        if rs[0]["quant_rc"] == "timeout" and cmd == "quantize":
            ex = f"no result in {args.timeout} s"
        L.append("  ```\n  " + ex.replace("\n", "\n  ") + "\n  ```")
    L.append("")

    other = [(r["id"], "checker", r["checker_err"]) for r in results if not r.get("missing") and r["checker"] != "ok"]
    other += [(r["id"], "onnxruntime", r["ort_err"]) for r in results if not r.get("missing") and r["ort"] != "ok"]
    other += [(r["id"], "onnxruntime on qdq's output", r["qort_err"]) for r in results
              if not r.get("missing") and r.get("qort") not in ("", "ok")]
    if other:
        L.append("## Models other tools reject\n")
        for mid, tool, e in other:
            L.append(f"- {mid}, {tool}: `{cell(first_lines(e, 1))[:300]}`")
        L.append("")

    L.append("## Per-model details\n")
    for r in results:
        if r.get("missing"):
            continue
        L.append(f"### {r['id']}\n")
        L.append(f"{r['task']}; {r['package']}; producer `{r['producer']}`; opset {r['opset']}; IR {r['ir']}; "
                 f"{r['size'] / 1e6:.2f} MB; {r['nodes']} top-level nodes"
                 + (f"; external data {r['external_files']}" if r["external_data"] else "")
                 + ("; float16 tensors" if r["float16"] else "") + ".\n")
        L.append(f"- inputs: {fmt_io(r['inputs']).replace('<br>', '; ')}")
        L.append(f"- outputs: {fmt_io(r['outputs']).replace('<br>', '; ')}")
        L.append(f"- ops: " + ", ".join(f"{k} {v}" for k, v in r["ops"].items()))
        if r["subgraph_ops"]:
            L.append(f"- ops inside subgraphs: " + ", ".join(f"{k} {v}" for k, v in r["subgraph_ops"].items()))
        L.append(f"- survey input: " + ", ".join(f"`{k}` {v[0]}{v[1]}" for k, v in r["calib"].items())
                 + f" (onnxruntime: {r['ort']}{'; ' + cell(r['ort_err']) if r['ort_err'] else ''})")
        if r["checker_err"]:
            L.append(f"- checker: {cell(r['checker_err'])}")
        L.append(f"- qdq inspect: exit {r['inspect_rc']}"
                 + (f", {r['inspect_nodes']} nodes, {r['inspect_weights']} weight elements" if "inspect_nodes" in r else "")
                 + (f"; `{cell(r['inspect_err'])}`" if r["inspect_err"] else ""))
        if r["quant_rc"] == 0:
            L.append(f"- qdq quantize: exit 0 in {r['quant_s']} s; {r['quant_wrote']}; "
                     f"{r['quant_out_size'] / 1e6:.2f} MB; onnxruntime on the QDQ model: {r['qort']}"
                     + (f" `{cell(r['qort_err'])}`" if r["qort_err"] else ""))
            if r["eval_rc"] == 0:
                L.append("- qdq eval on the calibration items (random data: a sanity check, not accuracy): "
                         + "; ".join(r["eval"]) + (f"; {r['eval_jump']}" if r.get("eval_jump") else ""))
            else:
                L.append(f"- qdq eval: exit {r['eval_rc']}: `{cell(r['eval_err'])}`")
        else:
            L.append(f"- qdq quantize: exit {r['quant_rc']} after {r['quant_s']} s:")
            L.append("  ```\n  " + (r["quant_err"] or "(no message)").replace("\n", "\n  ") + "\n  ```")
        L.append("")
    text = "\n".join(L) + "\n"
    for p, name in sorted([(os.path.abspath(args.dir), "DIR"), (os.path.abspath(args.work), "WORK")], key=lambda t: -len(t[0])):
        text = text.replace(p, name)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Survey the fetched corpus with onnx, onnxruntime and qdq (see the docstring).")
    ap.add_argument("--dir", default=os.path.join(REPO, "target", "corpus"))
    ap.add_argument("--qdq", default=os.environ.get("QDQ", os.path.join(REPO, "target", "debug", "qdq")))
    ap.add_argument("--work", default=None, help="scratch for calibration data and outputs (default DIR/survey)")
    ap.add_argument("--only", default="")
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--out", default=os.path.join(HERE, "SURVEY.md"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--manifest", default=os.path.join(HERE, "models.json"))
    a = ap.parse_args(argv)
    a.work = a.work or os.path.join(a.dir, "survey")
    if not os.path.exists(a.qdq):
        print(f"survey.py: no qdq binary at {a.qdq} (use --qdq or QDQ=)", file=sys.stderr)
        return 2
    models = json.load(open(a.manifest))["models"]
    if a.only:
        want = set(s.strip() for s in a.only.split(","))
        models = [m for m in models if m["id"] in want]
    results = []
    for m in models:
        print(f"{m['id']} ...", end=" ", flush=True)
        r = survey_model(m, a)
        results.append(r)
        print("not fetched" if r.get("missing") else
              f"checker {r['checker']}, ort {r['ort']}, inspect {r['inspect_rc']}, quantize {r['quant_rc']} ({r['quant_s']} s)",
              flush=True)
    write_md(results, a, a.out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
