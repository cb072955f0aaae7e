"""The corpus test's outside judge (crates/qdq-cli/tests/corpus.rs), built on the corpus
benchmark's own inputs and metrics (bench/corpus/bench.py), so the test and the
benchmark measure the same thing.

    corpus.py items MODELS_DIR ID N SEED OUT_DIR   one .npz per item (bench's generators)
    corpus.py judge MODELS_DIR ID QUANT EVAL_DIR   prints JSON {"valid": ..., "score": ...}:
        onnx.checker full check and an ONNX Runtime run of QUANT, then bench's task
        metric of QUANT against the FP32 model on the evaluation items.
"""

import json
import sys
from pathlib import Path

try:
    import PIL  # noqa: F401  (bench/corpus/inputs.py draws text and scenes with it)
except ImportError:
    sys.exit("the corpus test needs Pillow: pip install -r crates/qdq-onnx/tests/requirements.txt")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "corpus"))
import bench  # noqa: E402


def main(argv):
    cmd, models = argv[0], Path(argv[1])
    ctx = bench.Ctx(models)
    if cmd == "items":
        mid, n, seed, out = argv[2], int(argv[3]), int(argv[4]), Path(argv[5])
        items, truths = bench.make_items(mid, n, seed, ctx)
        bench.save_items(items, out, truths)
    elif cmd == "judge":
        mid, quant, ev = argv[2], Path(argv[3]), Path(argv[4])
        items = bench.load_items(ev)
        row = {"valid": bench.validity(quant, items[0])}
        if row["valid"] == "ok":
            refs = bench.run_all(models / f"{mid}.onnx", items)
            score, cos, _ = bench.evaluate(refs, quant, items, bench.MODELS[mid][2])
            row.update(score=score, cosine=cos, metric=bench.MODELS[mid][1])
        print(json.dumps(row))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
