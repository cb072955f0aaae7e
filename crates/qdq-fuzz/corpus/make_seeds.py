"""Writes the seed corpora of qdq's fuzz targets (run from this folder with the
workspace's .venv Python: numpy and onnx). The files are committed; rerun only to
change them. Small on purpose: fuzzers mutate small inputs fastest."""
import gzip, io, os, random, struct, zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = random.Random(15)


def put(target, name, data):
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, name), "wb") as f:
        f.write(data)


def conv_model(opset=17, qdq=False):
    w = numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2, 1, 1), "w")
    nodes, inits = [], [w]
    x = "x"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq")]
        x = "xd"
    nodes += [helper.make_node("Conv", [x, "w"], ["c"], name="conv", pads=[0, 0, 0, 0]),
              helper.make_node("Relu", ["c"], ["r"], name="relu"),
              helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Shape", ["p"], ["shp"], name="shape"),
              helper.make_node("Gather", ["shp", "zero"], ["b"], name="gather", axis=0),
              helper.make_node("Unsqueeze", ["b", "axes"], ["bu"], name="unsq"),
              helper.make_node("Concat", ["bu", "minus1"], ["newshape"], name="concat", axis=0),
              helper.make_node("Reshape", ["p", "newshape"], ["flat"], name="reshape"),
              helper.make_node("Gemm", ["flat", "fc"], ["y"], name="fc", transB=1)]
    inits += [numpy_helper.from_array(np.array(0, np.int64), "zero"),
              numpy_helper.from_array(np.array([0], np.int64), "axes"),
              numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
              numpy_helper.from_array(np.linspace(-0.5, 0.5, 24, dtype=np.float32).reshape(2, 12), "fc")]
    g = helper.make_graph(nodes, "seed",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


put("onnx_model", "conv_gemm_opset17.onnx", conv_model())
put("onnx_model", "conv_gemm_opset11.onnx", conv_model(opset=11))
put("onnx_model", "qdq_conv.onnx", conv_model(qdq=True))

put("calibration_cache", "qdq.json", b'{"entries": {"x": {"amax": [1.5], "method": "entropy"}}}')
put("calibration_cache", "weights.json",
    b'{"entries": {"x": {"amax": [0.25], "method": "max"}, "w": {"amax": [1.0, 0.5, 2.0], "method": "max"}}}')
put("calibration_cache", "trt_table.txt", b"TRT-8601-EntropyCalibration2\nx: 3c010204\ny: 3d000000\n")

# data_file: the first byte picks the reader (0 npy, 1 npz, 2 IDX, 3 gzip IDX, 4 PNG).
a = (np.arange(2 * 1 * 3 * 3, dtype=np.float32) / 7).reshape(2, 1, 3, 3)
b = io.BytesIO(); np.save(b, a); put("data_file", "f32.npy", b"\x00" + b.getvalue())
b = io.BytesIO(); np.save(b, np.arange(6, dtype=np.uint8).reshape(2, 3)); put("data_file", "u8.npy", b"\x00" + b.getvalue())
b = io.BytesIO(); np.savez(b, x=a, labels=np.array([0, 1])); put("data_file", "stored.npz", b"\x01" + b.getvalue())
b = io.BytesIO(); np.savez_compressed(b, x=a); put("data_file", "deflated.npz", b"\x01" + b.getvalue())
idx = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 3, 3) + bytes(range(18))
put("data_file", "images.idx", b"\x02" + idx)
put("data_file", "labels.idx", b"\x02" + bytes([0, 0, 8, 1]) + struct.pack(">I", 4) + bytes([0, 1, 2, 9]))
put("data_file", "images.idx.gz", b"\x03" + gzip.compress(idx, mtime=0))
# A minimal 2x2 grayscale PNG.
import zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x00\x30\x40")) + chunk(b"IEND", b""))
put("data_file", "gray.png", b"\x04" + png)

# runtime_graph: arbitrary bytes drive the graph builder; any bytes are a valid seed.
for k in range(16):
    put("runtime_graph", f"random{k:02}.bin", rng.randbytes(96))
