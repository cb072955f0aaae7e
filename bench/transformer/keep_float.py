#!/usr/bin/env python3
"""How many layers a model needs in float to come within 1% of FP32: `qdq sensitivity`'s
ranking, then `qdq quantize` with the N most sensitive layers left in float (`--skip` each
node, which is what `--keep-float-sensitive N` does), scored on bench.py's evaluation items.

    qdq sensitivity MODEL --calib WORK/MODEL/calib --method max --json > rank.json
    target/bench-venv/bin/python bench/transformer/keep_float.py --qdq target/release/qdq \\
        --model ppocrv4-rec --ranking rank.json --work target/corpus-bench --n 0,1,2,4,8 -- --method max

WORK/MODEL/{calib,eval} are bench.py's items (run it first). Flags after `--` go to every
`qdq quantize`. Prints one JSON row per N and a markdown table (--out).
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "corpus"))
import bench as B  # noqa: E402


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qdq", type=Path, required=True)
    ap.add_argument("--model", required=True, help="a bench.py model id")
    ap.add_argument("--models", type=Path, default=B.ROOT / "target" / "corpus")
    ap.add_argument("--ranking", type=Path, required=True, help="`qdq sensitivity --json` output")
    ap.add_argument("--work", type=Path, default=B.ROOT / "target" / "corpus-bench")
    ap.add_argument("--n", default="0,1,2,4,8")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    mid = args.model
    src = args.models / f"{mid}.onnx"
    work = args.work / mid
    calib, ev = work / "calib", work / "eval"
    items, truths = B.load_items(ev), B.load_truths(ev)
    refs = B.run_all(src, items)
    truth = B.TRUTH[mid](src) if mid in B.TRUTH and truths is not None else None
    ranking = [layer["node"] for layer in json.loads(args.ranking.read_text())["layers"]]
    rows = []
    if truth is not None:
        print(json.dumps({"n": "FP32", "truth": truth(refs, truths, src)}), flush=True)
    for n in [int(x) for x in args.n.split(",")]:
        out = work / f"keep-float-{n}.onnx"
        skips = [a for node in ranking[:n] for a in ("--skip", node)]
        cmd = [str(args.qdq), "quantize", str(src), "--calib", str(calib), "-o", str(out)] + extra + skips
        rc, secs, rss = B.measured(cmd, args.timeout, work / f"keep-float-{n}.log")
        row = {"n": n, "float": ranking[:n], "rc": rc, "seconds": round(secs, 1), "peak_mib": round(rss)}
        if rc == 0:
            score, cos, gots = B.evaluate(refs, out, items, B.MODELS[mid][2])
            row.update(score=round(score, 4), cosine=round(cos, 5))
            if truth is not None:
                row["truth"] = truth(gots, truths, src)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [f"| layers in float | {B.MODELS[mid][1]} | cosine | truth | s | MiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        t = ", ".join(f"{k} {v:.4f}" for k, v in r.get("truth", {}).items())
        lines.append(f"| {r['n']} | {r.get('score', '—')} | {r.get('cosine', '—')} | {t} | {r['seconds']} | {r['peak_mib']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
