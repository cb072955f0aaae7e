#!/usr/bin/env python3
"""W4A8 on minilm-l3: PTQ with 4-bit weights, then `qdq finetune --distill`, judged by
ONNX Runtime (the issue-18 measurement; README "Transformers").

    python3 bench/corpus/w4a8_distill.py make DIR
        DIR/train (96) and DIR/eval (48) random-token sentences, as bench.py's minilm()
    QDQ=target/debug/qdq M=target/corpus/minilm-l3.onnx
    $QDQ quantize $M --calib DIR/train --method percentile=99.99 --weight-bits 4 \
        --weights int8 --data DIR/eval -o ptq-w4.onnx --json
    $QDQ finetune $M --calib DIR/train --method percentile=99.99 --weight-bits 4 \
        --weights int8 --distill --distill-loss 461=cosine --epochs 8 --lr 2e-3 \
        --data DIR/eval -o distill-w4.onnx --json
    python3 bench/corpus/w4a8_distill.py judge DIR FLOAT.onnx MODEL.onnx
        onnx.checker full check of MODEL, then ORT's cosine to FP32 of output 3 (the
        sentence embedding) over DIR/eval: mean per item and over all items pooled
        (qdq's report gives the pooled one)
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inputs as I  # noqa: E402


def make(d):
    rng = np.random.default_rng(18)
    for sub, count in (("train", 96), ("eval", 48)):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        for i in range(count):
            ids = I.token_ids(rng, 30522, 6, 30, cls=101, sep=102, reserved=1000)[0]
            np.savez(os.path.join(d, sub, f"{i:03d}.npz"), input_ids=ids,
                     attention_mask=np.ones_like(ids))


def judge(d, float_model, model):
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(model), full_check=True)
    so = ort.SessionOptions()
    # Each Q/DQ node as the standard defines it (no fused integer kernels).
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    cpu = ["CPUExecutionProvider"]
    ref = ort.InferenceSession(float_model, so, providers=cpu)
    got = ort.InferenceSession(model, so, providers=cpu)
    out = ref.get_outputs()[3].name
    per, A, B = [], [], []
    for f in sorted(os.listdir(os.path.join(d, "eval"))):
        z = np.load(os.path.join(d, "eval", f))
        feed = {k: z[k][None] for k in ("input_ids", "attention_mask")}
        a = ref.run([out], feed)[0].ravel().astype(np.float64)
        b = got.run([out], feed)[0].ravel().astype(np.float64)
        per.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        A.append(a)
        B.append(b)
    a, b = np.concatenate(A), np.concatenate(B)
    pooled = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    print(f"{model}: ORT cosine of `{out}`: mean per item {np.mean(per):.6f}, pooled {pooled:.6f}")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        judge(sys.argv[2], sys.argv[3], sys.argv[4])
