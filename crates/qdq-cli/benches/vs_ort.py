"""qdq quantize vs ONNX Runtime's quantize_static, same model, same data, one run.

usage: .venv/bin/python crates/qdq-cli/benches/vs_ort.py [QDQ_BINARY] [N_CALIB]
       .venv/bin/python crates/qdq-cli/benches/vs_ort.py [QDQ_BINARY] --resnet50 [N_CALIB [N_EVAL]]

Fashion-MNIST (the default): the bundled Fashion-MNIST CNN (FP32). Data: the first
N_CALIB (default 2048, a multiple of the batch of 32: ORT's entropy calibrator fails on a
ragged last batch) training images of Debian's dataset-fashion-mnist to calibrate, all
10 000 test images to evaluate (accuracy).

--resnet50: ONNX's ResNet-50 from the onnx wheel's light model zoo
(onnx/backend/test/data/light/light_resnet50.onnx, input [1, 3, 224, 224], 25.6 M
parameters). The light zoo ships the architecture with every large weight replaced by
ConstantOfShape(0.02), which gives every input the same class, so weights are drawn here,
seeded: He-normal convolutions, BatchNorm scales in [0.5, 1] (the last of each residual
block in [0.01, 0.05], so that blocks start near identity and the input survives 16 of
them), BatchNorm statistics set to those of 32 further images (as training would), the
classifier centred and scaled on the same images (random features share a large
input-independent part, which alone would pick one class for every input). The model is
converted to opset 13 (ORT writes per-channel QDQ only from 13 on) and saved as a plain
FP32 file of 102 MB. Data: Fashion-MNIST training images (no ImageNet data is at hand
offline), upscaled 8x (nearest) to 224x224 and repeated over 3 channels; the first
N_CALIB (default 32) calibrate, the next N_EVAL (default 50) evaluate. qdq reads them as a
folder of PNG files with ImageNet's --mean/--std (its image loader; channels and size
come from the model); ORT reads the very same floats from .npy. Reported: top-1
agreement of each quantized model with the FP32 model, and the SQNR against FP32 of the
pooled features (the classifier's input: the whole backbone) and of the softmax output,
all three models run by ONNX Runtime. Random weights leave the FP32 logits with
small margins and features whose input-dependent part is a few percent of their size, so
this model is far more sensitive to quantization than a trained one: read the agreement
as a comparison of the two tools, not as what INT8 does to a trained ResNet-50.

Both tools: QDQ format, per-channel weights, symmetric int8 activations, entropy and then
percentile (99.99) calibration. Each tool runs in its own process under /usr/bin/time
(wall seconds, peak RSS). Prints a table and the ratios the issue binds: qdq wall <= 1/2
of ORT's, peak memory <= 1/4, accuracy (agreement) >= ORT's.
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ARGS = [a for a in sys.argv[1:] if a != "--resnet50"]
RESNET = "--resnet50" in sys.argv[1:]
QDQ = ARGS[0] if ARGS else os.path.join(ROOT, "target/release/qdq")
N_CALIB = int(ARGS[1]) if len(ARGS) > 1 else (32 if RESNET else 2048)
N_EVAL = int(ARGS[2]) if len(ARGS) > 2 else 50
N_HEAD = 32  # ResNet-50: images that fit its classifier (see fit_head)
MODEL = os.path.join(ROOT, "crates/qdq-cli/data/fashion-mnist/model.onnx")
DATA = "/usr/share/datasets/fashion-mnist"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


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
model, calib, out, method, name, batch = sys.argv[1:7]
x, batch = np.load(calib), int(batch)
class Reader(CalibrationDataReader):
    def __init__(self):
        self.batches = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])
    def get_next(self):
        return next(self.batches, None)
quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                               "CalibPercentile": 99.99})
"""


def session(path):
    return ort.InferenceSession(path, ort.SessionOptions(), providers=["CPUExecutionProvider"])


def outputs(path, name, x, batch):
    s = session(path)
    return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def predict(path, name, x, batch):
    return outputs(path, name, x, batch).argmax(1)


def compare(model, name, batch, qdq_calib, qdq_flags, ort_calib, score, tmp):
    """Quantizes `model` with both tools, both methods; prints and checks the ratios.
    `score(path)` gives a number (higher is better) and a note."""
    print(f"{'method':<18}{'tool':<6}{'wall s':>8}{'peak MiB':>10}{'score':>10}")
    ok = True
    for ours, theirs in [("entropy", "Entropy"), ("percentile=99.99", "Percentile")]:
        q_out, o_out = os.path.join(tmp, "qdq.onnx"), os.path.join(tmp, "ort.onnx")
        qw, qm = timed([QDQ, "quantize", model, "--calib", qdq_calib, "--method", ours,
                        "--batch", str(batch), "-o", q_out, "--json"] + qdq_flags)
        ow, om = timed([sys.executable, "-c", ORT_SCRIPT, model, ort_calib, o_out, theirs,
                        name, str(batch)])
        (qa, qn), (oa, on) = score(q_out), score(o_out)
        print(f"{ours:<18}{'qdq':<6}{qw:>8.2f}{qm:>10.1f}{qa:>10.4f}{qn}")
        print(f"{'':<18}{'ORT':<6}{ow:>8.2f}{om:>10.1f}{oa:>10.4f}{on}")
        print(f"{'':<18}ratios qdq/ORT: wall {qw / ow:.2f} (<= 0.5), memory {qm / om:.2f} "
              f"(<= 0.25), score {qa - oa:+.4f} (>= 0)", flush=True)
        ok &= qw / ow <= 0.5 and qm / om <= 0.25 and qa >= oa
    print("targets met" if ok else "targets NOT all met")


def fashion_mnist(tmp):
    train = idx("train-images-idx3-ubyte.gz")[:N_CALIB]
    test_x = (idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)[:, None]
    test_y = idx("t10k-labels-idx1-ubyte.gz")
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, (train.astype(np.float32) / 255)[:, None])

    def accuracy(path):
        return float((predict(path, "input", test_x, 500) == test_y).mean()), ""

    print(f"model: bundled Fashion-MNIST CNN, FP32 accuracy {accuracy(MODEL)[0]:.4f}; "
          f"calibration: {N_CALIB} images; score: accuracy on 10 000 test images")
    compare(MODEL, "input", 32, calib, [], calib, accuracy, tmp)


def resnet50_model(path, head_data):
    """The light zoo's ResNet-50 with seeded random weights for its ConstantOfShape ones,
    its classifier fitted to the features of `head_data` (see `fit_head`)."""
    import onnx
    import onnx.version_converter
    from onnx import numpy_helper
    src = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light/light_resnet50.onnx")
    m = onnx.load(src)
    g = m.graph
    rng = np.random.default_rng(0)
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    drawn, nodes = [], []
    for n in g.node:
        if n.op_type != "ConstantOfShape":
            nodes.append(n)
            continue
        name, shape = n.output[0], tuple(int(d) for d in shapes[n.input[0]])
        if name.endswith("_w_0") and len(shape) == 4:
            w = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
        elif name.endswith("_w_0"):
            w = rng.normal(0, np.sqrt(1 / shape[1]), shape)
        elif name.endswith("branch2c_bn_s_0"):
            w = rng.uniform(0.01, 0.05, shape)
        elif name.endswith("_s_0"):
            w = rng.uniform(0.5, 1.0, shape)
        elif name.endswith("_riv_0"):
            w = rng.uniform(0.5, 1.5, shape)
        else:  # BatchNorm means and biases, the classifier's bias
            w = rng.normal(0, 0.1, shape)
        drawn.append(numpy_helper.from_array(w.astype(np.float32), name))
    kept = [t for t in g.initializer if not t.name.endswith("__SHAPE") and "blobs_queue" not in t.name]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept + drawn)
    data = [i for i in g.input if i.name == "gpu_0/data_0"]
    del g.input[:]
    g.input.extend(data)
    m.ir_version = 7  # initializers need not be listed as inputs
    # Opset 13: ORT writes per-channel DequantizeLinear (axis) only from opset 13 on, and
    # leaves an invalid model below it; both tools get the same opset-13 model.
    m = onnx.version_converter.convert_version(m, 13)
    fit_batchnorm(m, head_data, path)
    fit_head(m, head_data, path)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def probe(m, tensors, x, scratch):
    """Values of `tensors` for each item of `x` (batch 1), as [items, ...] arrays."""
    import onnx
    p = onnx.ModelProto()
    p.CopyFrom(m)
    del p.graph.output[:]
    p.graph.output.extend(onnx.helper.make_tensor_value_info(t, 1, None) for t in tensors)
    onnx.save(p, scratch)
    s = session(scratch)
    name = m.graph.input[0].name
    runs = [s.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(tensors))]


def fit_batchnorm(m, x, scratch, passes=3):
    """Random BatchNorm statistics do not normalise, and the features of a deep random
    net then barely depend on the input. Set each BatchNorm's running mean and variance
    to those of its input on `x`, as training would (a few passes, since each layer's
    statistics move with the layers before it)."""
    from onnx import numpy_helper
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    inits = {t.name: t for t in m.graph.initializer}
    for _ in range(passes):
        for bn, v in zip(bns, probe(m, [bn.input[0] for bn in bns], x, scratch)):
            for k, stat in [(3, v.mean((0, 2, 3))), (4, v.var((0, 2, 3)))]:
                inits[bn.input[k]].CopyFrom(numpy_helper.from_array(stat.astype(np.float32), bn.input[k]))


def fit_head(m, x, scratch):
    """Random features share a large input-independent part, so a random classifier
    predicts one class for every input. Centre and scale the classifier's inputs on the
    features of `x` (W' = W / sigma, b' = -W' mu, sigma the mean of the features' standard
    deviations), so that the class depends on the input."""
    from onnx import numpy_helper
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    (f,) = probe(m, [gemm.input[0]], x, scratch)
    mu, sigma = f.mean(0), f.std(0).mean()
    inits = {t.name: t for t in m.graph.initializer}
    w = numpy_helper.to_array(inits[gemm.input[1]]) / sigma  # [1000, 2048] (transB = 1)
    inits[gemm.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), gemm.input[1]))
    inits[gemm.input[2]].CopyFrom(numpy_helper.from_array((-w @ mu).astype(np.float32), gemm.input[2]))


def write_png(path, rgb):
    """An 8-bit RGB PNG (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def resnet50(tmp):
    model, name = os.path.join(tmp, "resnet50.onnx"), "gpu_0/data_0"
    images = idx("train-images-idx3-ubyte.gz")[:N_CALIB + N_EVAL + N_HEAD]
    rgb = np.repeat(np.repeat(np.repeat(images[..., None], 8, 1), 8, 2), 3, 3)  # [N, 224, 224, 3]
    # What qdq's image loader computes: bytes * (1/255), then (x - mean) / std, in float32.
    x = ((rgb.astype(np.float32) * np.float32(1 / 255) - IMAGENET_MEAN) / IMAGENET_STD)
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    resnet50_model(model, x[N_CALIB + N_EVAL:])
    x = x[:N_CALIB + N_EVAL]
    folder = os.path.join(tmp, "calib")
    os.makedirs(folder)
    for i in range(N_CALIB):
        write_png(os.path.join(folder, f"{i:05}.png"), rgb[i])
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, x[:N_CALIB])
    test = x[N_CALIB:]
    import onnx
    fp32 = onnx.load(model)
    pooled = next(n.output[0] for n in fp32.graph.node if n.op_type == "AveragePool")
    reference, features = probe(fp32, [fp32.graph.output[0].name, pooled], test,
                                os.path.join(tmp, "probe.onnx"))

    def sqnr(a, b):
        return 10 * np.log10((a.astype(np.float64) ** 2).sum() / ((a - b).astype(np.float64) ** 2).sum())

    def agreement(path):
        y, f = probe(onnx.load(path), [fp32.graph.output[0].name, pooled], test,
                     os.path.join(tmp, "probe.onnx"))
        return (float((y.argmax(1) == reference.argmax(1)).mean()),
                f"   SQNR: features {sqnr(features, f):.1f} dB, output {sqnr(reference, y):.1f} dB")

    flags = ["--mean", ",".join(map(str, IMAGENET_MEAN)), "--std", ",".join(map(str, IMAGENET_STD))]
    print(f"model: ONNX light-zoo ResNet-50 (seeded weights, 102 MB, batch 1); calibration: "
          f"{N_CALIB} Fashion-MNIST images at 224x224x3 (qdq: PNG folder, ORT: .npy); "
          f"score: top-1 agreement with FP32 on {N_EVAL} more "
          f"({len(set(reference.argmax(1)))} distinct FP32 classes)")
    compare(model, name, 1, folder, flags, calib, agreement, tmp)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        (resnet50 if RESNET else fashion_mnist)(tmp)


if __name__ == "__main__":
    main()
