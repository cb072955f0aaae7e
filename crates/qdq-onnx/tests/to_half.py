"""Converts a float32 ONNX model to float16 or bfloat16, as users' FP16 exports are:
float initializers, inputs, outputs, value_info and Cast targets.

usage: to_half.py SRC.onnx DST.onnx float16|bfloat16
"""
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
code = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}[kind]
m = onnx.load(src)
g = m.graph
for i, t in enumerate(g.initializer):
    if t.data_type == TensorProto.FLOAT:
        a = numpy_helper.to_array(t)
        if kind == "float16":
            n = numpy_helper.from_array(a.astype(np.float16), t.name)
        else:
            b = a.astype(np.float32).view(np.uint32)
            bits = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
            n = TensorProto(name=t.name, data_type=code, dims=a.shape, raw_data=bits.tobytes())
        g.initializer[i].CopyFrom(n)
for v in list(g.input) + list(g.output) + list(g.value_info):
    if v.type.tensor_type.elem_type == TensorProto.FLOAT:
        v.type.tensor_type.elem_type = code
for n in g.node:
    for a in n.attribute:
        if a.name == "to" and a.i == TensorProto.FLOAT:
            a.i = code
onnx.checker.check_model(m, full_check=True)
onnx.save(m, dst)
