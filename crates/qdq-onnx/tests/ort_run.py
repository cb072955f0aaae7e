"""Checks an ONNX file with the ONNX checker and runs it with ONNX Runtime.

usage: ort_run.py MODEL.onnx [INPUT.bin DIMS OUTPUT.bin]

INPUT.bin / OUTPUT.bin hold raw little-endian float32 (cast to and from the
model's own float type: float16 models take float16); DIMS is comma-separated.
With only MODEL, the file is checked, not run (custom-domain models). Prints the
output shape on success; exits 1 with the error otherwise.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model = onnx.load(sys.argv[1])
onnx.checker.check_model(model, full_check=True)
if len(sys.argv) == 2:
    print("checked")
    sys.exit(0)
dims = [int(d) for d in sys.argv[3].split(",")]
x = np.fromfile(sys.argv[2], dtype="<f4").reshape(dims)
opts = ort.SessionOptions()
# Run the graph as written: no Q/DQ folding, so ORT computes what the file says.
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
first = sess.get_inputs()[0]
if first.type == "tensor(float16)":
    x = x.astype(np.float16)
(y,) = sess.run(None, {first.name: x})
y.astype("<f4").tofile(sys.argv[4])
print(",".join(str(d) for d in y.shape))
