"""Outside judge of the CLI's transformer test (crates/qdq-cli/tests/transformer.rs).

    transformer.py judge FP32 QUANT EVAL_DIR   prints JSON: onnx.checker's full check,
        ONNX Runtime's run of QUANT on every evaluation item (.npz, items of different
        sequence lengths), the cosine of QUANT's to FP32's output per item (mean, min),
        the input and output dims as written (names for dynamic dims), and the count of
        QuantizeLinear nodes with their zero-point element types.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def dims(v):
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


def main(argv):
    if argv[0] != "judge":
        sys.exit(f"unknown command {argv[0]}")
    fp32, quant, ev = Path(argv[1]), Path(argv[2]), Path(argv[3])
    row = {}
    try:
        onnx.checker.check_model(str(quant), full_check=True)
        row["valid"] = "ok"
    except Exception as e:  # noqa: BLE001
        row["valid"] = f"checker: {str(e).splitlines()[0][:200]}"
        print(json.dumps(row))
        return
    m = onnx.load(str(quant))
    row["opset"] = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    row["dims"] = {v.name: dims(v) for v in list(m.graph.input) + list(m.graph.output)}
    inits = {t.name: t.data_type for t in m.graph.initializer}
    q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    row["quantize_linear"] = len(q)
    row["zero_point_types"] = sorted({onnx.TensorProto.DataType.Name(inits.get(n.input[2], 0)) for n in q if len(n.input) > 2})
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    a = ort.InferenceSession(str(fp32), o, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(quant), o, providers=["CPUExecutionProvider"])
    cos, lengths = [], set()
    for p in sorted(ev.glob("*.npz")):
        item = dict(np.load(p))
        lengths.add(int(item["input_ids"].shape[1]))
        r, g = a.run(None, item)[0].ravel(), b.run(None, item)[0].ravel()
        cos.append(float(np.dot(r, g) / (np.linalg.norm(r) * np.linalg.norm(g) + 1e-30)))
    row.update(items=len(cos), lengths=len(lengths), cosine_mean=float(np.mean(cos)), cosine_min=float(np.min(cos)))
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
