#!/usr/bin/env bash
# GPU training benchmark (not a test), for a machine with an NVIDIA GPU and PyTorch with CUDA (an H200 when
# one is at hand): full-size DenseNet-121 at 224 x 224 on generated chest radiographs, bf16 autocast and
# channels_last against plain fp32, each for EPOCHS epochs; prints training images/s from training.json.
# Needs only Python and PyTorch (no JDK): the packages are written, not validated here.
# PATIENTS, EPOCHS, BATCH override the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${WORK:-/tmp/cxr-train-gpu}"; PATIENTS="${PATIENTS:-200}"; EPOCHS="${EPOCHS:-2}"; BATCH="${BATCH:-64}"
PY="${PYTHON:-python3}"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to PyTorch")'
rm -rf "$W"; mkdir -p "$W"
export PYTHONPATH="$PWD/toolkit${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -m cxr_model.cli synth --out "$W/chest" --patients "$PATIENTS" --size 512 --seed 11
run() {  # name, extra options
  "$PY" -m cxr_model.cli train --data "$W/chest" --labels "$W/chest/LABELS.csv" --out "$W/$1" --size 224 \
     --epochs "$EPOCHS" --batch "$BATCH" --device cuda --fresh "${@:2}"
}
run fp32
run bf16-cl --bf16 --channels-last
"$PY" - "$W" <<'PY'
import json, sys
import torch
w = sys.argv[1]
print("GPU:", torch.cuda.get_device_name(0), "torch", torch.__version__)
r = {}
for m in ("fp32", "bf16-cl"):
    t = json.load(open("%s/%s/training.json" % (w, m)))
    # the first epoch includes cuDNN autotuning and warm-up: report the later epochs where there are any
    eps = t["epochs"][1:] or t["epochs"]
    r[m] = sum(e["images"] for e in eps) / sum(e["seconds"] for e in eps)
    print("RESULT train_%s_images_per_s=%.1f" % (m.replace("-", "_"), r[m]))
print("RESULT bf16_channels_last_speedup=%.2f" % (r["bf16-cl"] / r["fp32"]))
PY
