"""Small transformer encoders written the way PyTorch's exporter writes them (node names
`/encoder/layer.0/attention/self/query/MatMul`, shape arithmetic on int64 `Shape` values,
`Add(bias, MatMul)`, GELU as Erf, the attention mask from an int64 input), with seeded
random weights, for the placement tests (crates/qdq-onnx/tests/transformer_placement.rs)
and the CLI's transformer test (crates/qdq-cli/tests/transformer.rs).

    transformer_fixtures.py models DIR           writes DIR/{bert_post_ln,bert_pre_ln,vit}.onnx
    transformer_fixtures.py items DIR N SEED     one .npz per item for bert_*: input_ids and
                                                 attention_mask int64 [1, L], L from 5 to 16,
                                                 the last 0 to 2 positions masked (padding)

bert_post_ln: post-LayerNorm (BERT), LayerNorm decomposed (ReduceMean/Sub/Pow/Sqrt/Div,
opset 14 export style); bert_pre_ln: pre-LayerNorm, opset-17 LayerNormalization;
vit: patch Conv, class-token Expand + Concat, position Add, pre-LN blocks, classifier
on the class token. Every dynamic dimension is named (`batch`, `sequence`).
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H, HEADS, FFN, VOCAB, MAXPOS, LAYERS = 32, 4, 64, 100, 64, 2
DH = H // HEADS


class Builder:
    def __init__(self, seed):
        self.nodes, self.inits = [], []
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name, shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op, name, inputs, **attrs):
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def i64(self, values):
        self.k += 1
        return self.const(f"onnx::Const_{self.k}", np.asarray(values, dtype=np.int64))

    def f32(self, value):
        self.k += 1
        return self.const(f"onnx::Const_{self.k}", np.asarray(value, dtype=np.float32))

    def linear(self, prefix, x, n_in, n_out):
        """PyTorch's nn.Linear on a 3-D input: MatMul(x, W [in, out]) then Add(bias, .)."""
        w = self.weight(f"onnx::MatMul_{prefix.strip('/').replace('/', '.')}", (n_in, n_out))
        b = self.const(f"{prefix.strip('/').replace('/', '.')}.bias", np.zeros(n_out, np.float32) + 0.01)
        mm = self.op("MatMul", f"{prefix}/MatMul", [x, w])
        return self.op("Add", f"{prefix}/Add", [b, mm])

    def layer_norm(self, prefix, x, decomposed):
        g = self.const(f"{prefix.strip('/').replace('/', '.')}.weight", np.ones(H, np.float32))
        b = self.const(f"{prefix.strip('/').replace('/', '.')}.bias", np.zeros(H, np.float32))
        if not decomposed:
            return self.op("LayerNormalization", f"{prefix}/LayerNormalization", [x, g, b], axis=-1, epsilon=1e-12)
        mean = self.op("ReduceMean", f"{prefix}/ReduceMean", [x], axes=[-1])
        sub = self.op("Sub", f"{prefix}/Sub", [x, mean])
        pow_ = self.op("Pow", f"{prefix}/Pow", [sub, self.f32(2.0)])
        var = self.op("ReduceMean", f"{prefix}/ReduceMean_1", [pow_], axes=[-1])
        add = self.op("Add", f"{prefix}/Add", [var, self.f32(1e-12)])
        sqrt = self.op("Sqrt", f"{prefix}/Sqrt", [add])
        div = self.op("Div", f"{prefix}/Div", [sub, sqrt])
        mul = self.op("Mul", f"{prefix}/Mul", [div, g])
        return self.op("Add", f"{prefix}/Add_1", [mul, b])

    def gelu(self, prefix, x):
        """HF's exact GELU as the exporter writes it: x * 0.5 * (1 + erf(x / sqrt 2))."""
        div = self.op("Div", f"{prefix}/Div", [x, self.f32(1.4142135)])
        erf = self.op("Erf", f"{prefix}/Erf", [div])
        add = self.op("Add", f"{prefix}/Add", [erf, self.f32(1.0)])
        mul = self.op("Mul", f"{prefix}/Mul", [x, add])
        return self.op("Mul", f"{prefix}/Mul_1", [mul, self.f32(0.5)])

    def dims(self, prefix, x, axes):
        """Shape(x) gathered at `axes`, each unsqueezed to [1] (int64): the exporter's shape arithmetic."""
        shape = self.op("Shape", f"{prefix}/Shape", [x])
        out = []
        for a in axes:
            d = self.op("Gather", f"{prefix}/Gather_{a}", [shape, self.i64(a)], axis=0)
            out.append(self.op("Unsqueeze", f"{prefix}/Unsqueeze_{a}", [d, self.i64([0])]))
        return out

    def heads(self, prefix, x, perm):
        """[B, S, H] -> [B, heads, S, dh] (or [B, heads, dh, S]) via a dynamic Reshape."""
        b, s = self.dims(prefix, x, [0, 1])
        shape = self.op("Concat", f"{prefix}/Concat", [b, s, self.i64([HEADS]), self.i64([DH])], axis=0)
        r = self.op("Reshape", f"{prefix}/Reshape", [x, shape])
        return self.op("Transpose", f"{prefix}/Transpose", [r], perm=perm)

    def attention(self, prefix, x, mask):
        q = self.heads(f"{prefix}/self/query_t", self.linear(f"{prefix}/self/query", x, H, H), [0, 2, 1, 3])
        k = self.heads(f"{prefix}/self/key_t", self.linear(f"{prefix}/self/key", x, H, H), [0, 2, 3, 1])
        v = self.heads(f"{prefix}/self/value_t", self.linear(f"{prefix}/self/value", x, H, H), [0, 2, 1, 3])
        scores = self.op("MatMul", f"{prefix}/self/MatMul", [q, k])
        scaled = self.op("Div", f"{prefix}/self/Div", [scores, self.f32(np.sqrt(DH))])
        masked = self.op("Add", f"{prefix}/self/Add", [scaled, mask]) if mask else scaled
        probs = self.op("Softmax", f"{prefix}/self/Softmax", [masked], axis=-1)
        ctx = self.op("MatMul", f"{prefix}/self/MatMul_1", [probs, v])
        t = self.op("Transpose", f"{prefix}/self/Transpose", [ctx], perm=[0, 2, 1, 3])
        b, s = self.dims(f"{prefix}/self/merge", t, [0, 1])
        shape = self.op("Concat", f"{prefix}/self/Concat", [b, s, self.i64([H])], axis=0)
        merged = self.op("Reshape", f"{prefix}/self/Reshape", [t, shape])
        return self.linear(f"{prefix}/output/dense", merged, H, H)

    def ffn(self, prefix, x):
        h = self.gelu(f"{prefix}/intermediate/intermediate_act_fn", self.linear(f"{prefix}/intermediate/dense", x, H, FFN))
        return self.linear(f"{prefix}/output/dense", h, FFN, H)

    def block(self, i, x, mask, pre_ln, decomposed):
        p = f"/encoder/layer.{i}"
        if pre_ln:
            a = self.attention(f"{p}/attention", self.layer_norm(f"{p}/layernorm_before", x, decomposed), mask)
            x = self.op("Add", f"{p}/attention/Add", [a, x])
            f = self.ffn(p, self.layer_norm(f"{p}/layernorm_after", x, decomposed))
            return self.op("Add", f"{p}/output/Add", [f, x])
        a = self.attention(f"{p}/attention", x, mask)
        x = self.layer_norm(f"{p}/attention/output/LayerNorm", self.op("Add", f"{p}/attention/output/Add", [a, x]), decomposed)
        f = self.ffn(p, x)
        return self.layer_norm(f"{p}/output/LayerNorm", self.op("Add", f"{p}/output/Add", [f, x]), decomposed)

    def model(self, inputs, outputs, opset):
        g = helper.make_graph(self.nodes, "encoder", inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def bert(pre_ln, decomposed, opset):
    b = Builder(1 if pre_ln else 2)
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    am = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    words = b.op("Gather", "/embeddings/word_embeddings/Gather", [b.weight("embeddings.word_embeddings.weight", (VOCAB, H), 0.5), "input_ids"])
    (seq,) = b.dims("/embeddings", "input_ids", [1])
    pos_ids = b.op("Slice", "/embeddings/Slice", [b.const("embeddings.position_ids", np.arange(MAXPOS, dtype=np.int64)[None]), b.i64([0]), seq, b.i64([1])])
    pos = b.op("Gather", "/embeddings/position_embeddings/Gather", [b.weight("embeddings.position_embeddings.weight", (MAXPOS, H), 0.5), pos_ids])
    x = b.op("Add", "/embeddings/Add", [words, pos])
    x = b.layer_norm("/embeddings/LayerNorm", x, decomposed)
    # HF's extended mask: (1 - mask[:, None, None, :]) * finfo.min, through Cast to float.
    m = b.op("Unsqueeze", "/Unsqueeze", ["attention_mask", b.i64([1])])
    m = b.op("Unsqueeze", "/Unsqueeze_1", [m, b.i64([2])])
    m = b.op("Cast", "/Cast", [m], to=TensorProto.FLOAT)
    m = b.op("Sub", "/Sub", [b.f32(1.0), m])
    mask = b.op("Mul", "/Mul", [m, b.f32(-3.4028234663852886e38)])
    for i in range(LAYERS):
        x = b.block(i, x, mask, pre_ln, decomposed)
    if pre_ln:
        x = b.layer_norm("/encoder/LayerNorm", x, decomposed)
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="/Identity"))
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", H])
    return b.model([ids, am], [out], opset)


def vit():
    b = Builder(3)
    px = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 32, 32])
    conv = b.op("Conv", "/embeddings/patch_embeddings/projection/Conv",
                ["pixel_values", b.weight("embeddings.patch_embeddings.projection.weight", (H, 3, 8, 8), 0.05),
                 b.const("embeddings.patch_embeddings.projection.bias", np.zeros(H, np.float32))],
                kernel_shape=[8, 8], strides=[8, 8])
    bsz, ch = b.dims("/embeddings/patch_embeddings", conv, [0, 1])
    shape = b.op("Concat", "/embeddings/patch_embeddings/Concat", [bsz, ch, b.i64([-1])], axis=0)
    flat = b.op("Reshape", "/embeddings/patch_embeddings/Reshape", [conv, shape])
    patches = b.op("Transpose", "/embeddings/patch_embeddings/Transpose", [flat], perm=[0, 2, 1])
    (bsz2,) = b.dims("/embeddings", "pixel_values", [0])
    cls_shape = b.op("Concat", "/embeddings/Concat", [bsz2, b.i64([1]), b.i64([H])], axis=0)
    cls = b.op("Expand", "/embeddings/Expand", [b.weight("embeddings.cls_token", (1, 1, H), 0.5), cls_shape])
    tokens = b.op("Concat", "/embeddings/Concat_1", [cls, patches], axis=1)
    x = b.op("Add", "/embeddings/Add", [tokens, b.weight("embeddings.position_embeddings", (1, 17, H), 0.5)])
    for i in range(LAYERS):
        x = b.block(i, x, None, True, False)
    x = b.layer_norm("/layernorm", x, False)
    first = b.op("Gather", "/Gather", [x, b.i64(0)], axis=1)
    w = b.weight("classifier.weight", (10, H))
    b.nodes.append(helper.make_node("Gemm", [first, w, b.const("classifier.bias", np.zeros(10, np.float32))], ["logits"], name="/classifier/Gemm", transB=1))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    return b.model([px], [out], 17)


def items(folder, n, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        length = int(rng.integers(5, 17))
        ids = rng.integers(1, VOCAB, size=(1, length)).astype(np.int64)
        mask = np.ones((1, length), np.int64)
        pad = int(rng.integers(0, 3))
        if pad:
            mask[:, -pad:] = 0
            ids[:, -pad:] = 0
        np.savez(folder / f"{i:05d}.npz", input_ids=ids, attention_mask=mask)


def main(argv):
    if argv[0] == "models":
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        onnx.save(bert(False, True, 14), out / "bert_post_ln.onnx")
        onnx.save(bert(True, False, 17), out / "bert_pre_ln.onnx")
        onnx.save(vit(), out / "vit.onnx")
    elif argv[0] == "items":
        items(Path(argv[1]), int(argv[2]), int(argv[3]))
    else:
        sys.exit(f"unknown command {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
