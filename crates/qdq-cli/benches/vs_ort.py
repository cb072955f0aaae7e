"""qdq quantize vs ONNX Runtime's quantize_static, same model, same data, one run.

usage: .venv/bin/python crates/qdq-cli/benches/vs_ort.py [QDQ_BINARY] [N_CALIB]

Model: the bundled Fashion-MNIST CNN (FP32). Data: the first N_CALIB (default 2048, a multiple of the batch of 32: ORT's entropy calibrator fails on a ragged last batch)
training images of Debian's dataset-fashion-mnist to calibrate, all 10 000 test images
to evaluate. Both tools: QDQ format, per-channel weights, symmetric int8 activations,
entropy and then percentile (99.99) calibration. Each tool runs in its own process
under /usr/bin/time (wall seconds, peak RSS); both quantized files are evaluated by
ONNX Runtime on the test set. Prints a table and the ratios the issue binds:
qdq wall <= 1/2 of ORT's, peak memory <= 1/4, accuracy >= ORT's.
"""
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
QDQ = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/qdq")
N_CALIB = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
MODEL = os.path.join(ROOT, "crates/qdq-cli/data/fashion-mnist/model.onnx")
DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        b = f.read()
    rank = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (wall s, peak RSS MiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd, check=True,
                       stdout=subprocess.DEVNULL)
        wall, kib = t.read().split()[-2:]
    return float(wall), int(kib) / 1024


ORT_SCRIPT = r"""
import sys, numpy as np
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
model, calib, out, method = sys.argv[1:5]
x = np.load(calib)
class Reader(CalibrationDataReader):
    def __init__(self):
        self.batches = iter([{"input": x[i:i + 32]} for i in range(0, len(x), 32)])
    def get_next(self):
        return next(self.batches, None)
quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                               "CalibPercentile": 99.99})
"""


def accuracy(path, x, y):
    opts = ort.SessionOptions()
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    pred = np.concatenate([s.run(None, {"input": x[i:i + 500]})[0].argmax(1)
                           for i in range(0, len(x), 500)])
    return float((pred == y).mean())


def main():
    train = idx("train-images-idx3-ubyte.gz")[:N_CALIB]
    test_x = (idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)[:, None]
    test_y = idx("t10k-labels-idx1-ubyte.gz")
    tmp = tempfile.mkdtemp()
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, (train.astype(np.float32) / 255)[:, None])
    fp32 = accuracy(MODEL, test_x, test_y)
    print(f"model: bundled Fashion-MNIST CNN, FP32 accuracy {fp32:.4f}; calibration: {N_CALIB} images")
    print(f"{'method':<18}{'tool':<6}{'wall s':>8}{'peak MiB':>10}{'accuracy':>10}")
    ok = True
    for ours, theirs in [("entropy", "Entropy"), ("percentile=99.99", "Percentile")]:
        q_out, o_out = os.path.join(tmp, "qdq.onnx"), os.path.join(tmp, "ort.onnx")
        qw, qm = timed([QDQ, "quantize", MODEL, "--calib", calib, "--method", ours,
                        "--batch", "32", "-o", q_out, "--json"])
        ow, om = timed([sys.executable, "-c", ORT_SCRIPT, MODEL, calib, o_out, theirs])
        qa, oa = accuracy(q_out, test_x, test_y), accuracy(o_out, test_x, test_y)
        print(f"{ours:<18}{'qdq':<6}{qw:>8.2f}{qm:>10.1f}{qa:>10.4f}")
        print(f"{'':<18}{'ORT':<6}{ow:>8.2f}{om:>10.1f}{oa:>10.4f}")
        print(f"{'':<18}ratios qdq/ORT: wall {qw / ow:.2f} (<= 0.5), memory {qm / om:.2f} (<= 0.25), "
              f"accuracy {qa - oa:+.4f} (>= 0)")
        ok &= qw / ow <= 0.5 and qm / om <= 0.25 and qa >= oa
    print("targets met" if ok else "targets NOT all met")


if __name__ == "__main__":
    main()
