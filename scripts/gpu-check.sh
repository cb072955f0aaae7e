#!/usr/bin/env bash
# qdq's GPU measurements in one prepared run.
#
#   scripts/gpu-check.sh build   here: builds the check against PyTorch's LibTorch and
#                                puts it, stripped, in gpu-bin/ (git-ignored)
#   scripts/gpu-check.sh run     on the GPU machine: parity, speed, the ResNet-50
#                                calibration, and the PyTorch anchors on the same card;
#                                logs go to $OUT (or gpu-out/)
#
# The build needs PyTorch 2.11 in /opt/torch/.venv (the GPU machine's own path, so the
# binary's embedded library path finds LibTorch there without LD_LIBRARY_PATH):
#   python3.12 -m venv /opt/torch/.venv && /opt/torch/.venv/bin/pip install torch==2.11.0
# With the device tool: run(command="scripts/gpu-check.sh run", carry=["gpu-bin"]).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
    export PATH=/opt/torch/.venv/bin:$PATH LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1
    cargo build --release -p qdq-vision --features gpu --example gpu_check --target-dir target/gpu
    mkdir -p gpu-bin
    cp target/gpu/release/examples/gpu_check gpu-bin/
    strip gpu-bin/gpu_check
    # Fashion-MNIST there: all of it for the full-size chapter, and for the reduced
    # chapter the test set with the first 4096 training images (it uses 1024).
    src=${QDQ_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
    mkdir -p gpu-bin/fashion-mnist gpu-bin/fashion-mnist-full
    cp "$src"/*.gz gpu-bin/fashion-mnist-full/
    cp "$src"/t10k-*.gz gpu-bin/fashion-mnist/
    python3 - "$src" gpu-bin/fashion-mnist 4096 <<'PY'
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for name, item in (("train-images-idx3-ubyte.gz", 784), ("train-labels-idx1-ubyte.gz", 1)):
    raw = gzip.open(f"{src}/{name}").read()
    dims = raw[3]
    header = bytearray(raw[: 4 + 4 * dims])
    header[4:8] = struct.pack(">I", n)
    with gzip.open(f"{dst}/{name}", "wb") as f:
        f.write(bytes(header) + raw[4 + 4 * dims : 4 + 4 * dims + n * item])
PY
    ls -lR gpu-bin/
    ;;
run)
    out=${OUT:-gpu-out}
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"
    # LibTorch itself, and NVRTC (which compiles qdq's kernels at start-up): PyTorch's
    # pip copies of both, or the CUDA toolkit's NVRTC.
    torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    site=$(dirname "$(dirname "$torch_lib")")
    for d in /usr/local/cuda/lib64 "$site/nvidia/cu13/lib" "$torch_lib"; do
        [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
    done
    export QDQ_PYTHON=python3
    status=0
    timeout 300 ./gpu-bin/gpu_check --chapter gpu-bin/fashion-mnist "${@:2}" 2>&1 \
        | tee "$out/gpu_check.log" || status=$?
    PYTHONUNBUFFERED=1 timeout 90 python3 scripts/gpu_anchors.py 2>&1 | tee "$out/anchors.log" || status=$?
    # Last, as it is the longest: the README's full-size chapter on this GPU.
    timeout 180 ./gpu-bin/gpu_check --skip-checks --full-chapter gpu-bin/fashion-mnist-full \
        --low-bits-qat-fraction 0.5 2>&1 | tee "$out/full_chapter.log" || status=$?
    exit $status
    ;;
*)
    echo "usage: scripts/gpu-check.sh build|run [--quick]" >&2
    exit 2
    ;;
esac
