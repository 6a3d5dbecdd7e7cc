#!/bin/bash
# Inference benchmark (not a test). Our worker path (job message -> result message, DenseNet-121
# chest14, micro-batching, Grad-CAM) and engine against Debian PyTorch eager and raw ONNX Runtime,
# same model weights, same batch, same threads, in one run.
#   src/bench/inference-bench.sh [N=64] [BATCH=8] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-64}; BATCH=${2:-8}; THREADS=${3:-2}
WORK=target/bench/inference; mkdir -p "$WORK"
mvn -q -o test-compile
mvn -q -o dependency:build-classpath -Dmdep.outputFile="$WORK/cp.txt" >/dev/null
OUT=$(java -Xmx2g -cp "target/test-classes:target/classes:$(cat "$WORK/cp.txt")" org.cxrgateway.inference.InferenceBench "$N" "$BATCH" "$THREADS" "$WORK" 2>/dev/null | grep '=')
echo "$OUT"
PKG=$(echo "$OUT" | sed -n 's/^package_dir=//p')
TORCH=$(OMP_NUM_THREADS=$THREADS /usr/bin/python3 src/bench/torch_bench.py "$PKG" "$N" "$BATCH" "$THREADS" 2>/dev/null | grep '=')
echo "$TORCH"
OURS=$(echo "$OUT" | sed -n 's/^worker_path_img_s=//p'); PT=$(echo "$TORCH" | sed -n 's/^torch_eager_img_s=//p')
echo "ratio_worker_path_vs_torch_eager=$(python3 -c "print(round($OURS/$PT, 2))") (target >= 2.0)"
