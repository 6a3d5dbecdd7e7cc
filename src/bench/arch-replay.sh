#!/usr/bin/env bash
# The COVID-19 paper's four-model comparison replayed on generated data (benchmark, not a test), then inference
# img/s per architecture: our engine (ONNX Runtime as the worker runs it, FP32 and the INT8 variant where
# quantize.py handles the graph) against Debian PyTorch eager FP32 (same package weights, batch and threads; its
# faster memory format), REPS interleaved repetitions, medians with min-max, ratio printed.
#   src/bench/arch-replay.sh    (env: PATIENTS=60 EPOCHS=3 SIZE=64 N=64 BATCH=8 THREADS=2 REPS=3 INT8=1;
#                                SKIP_TRAIN=1 reuses WORK's packages; INT8=0 skips quantize.py, slow on ResNet-50)
# Binary predictions at each model's threshold chosen on the validation patients (Youden's J), printed in the table.
# A ranking side by side with the paper's table on synthetic images: NOT a claim about COVID-19.
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
PATIENTS=${PATIENTS:-60}; EPOCHS=${EPOCHS:-3}; SIZE=${SIZE:-64}; N=${N:-64}; BATCH=${BATCH:-8}; THREADS=${THREADS:-2}; REPS=${REPS:-3}
WORK=${WORK:-target/bench/arch-replay}; mkdir -p "$WORK"
/usr/bin/python3 -c "import torch" 2>/dev/null || die "Debian python3-torch is not installed"
IDS="resnet50plus cnn vgg16 densenet121-3class"
if [ -z "${SKIP_TRAIN:-}" ]; then
  OMP_NUM_THREADS=$THREADS /usr/bin/python3 src/bench/arch_replay.py "$WORK" --patients "$PATIENTS" --epochs "$EPOCHS" \
      --size "$SIZE" --threads "$THREADS" > "$WORK/replay.out" 2> "$WORK/replay.err" || { tail -30 "$WORK/replay.err" >&2; die "arch_replay.py"; }
fi
[ -s "$WORK/replay.json" ] || die "no $WORK/replay.json"
build_test_classpath "$WORK/cp.txt"
CP="target/test-classes:target/classes:$(cat "$WORK/cp.txt")"
# the INT8 variant where quantize.py handles the graph (calibrated on model inputs of the test images)
for id in $IDS; do
  [ "${INT8:-1}" = 1 ] || break
  # quantize.py's calibration interpreter covers DenseNet's operators; a ResNet (Add) or other graph it refuses
  # is reported as "no INT8 variant" and benchmarked at FP32 only
  pkg="$WORK/packages/$id"
  OMP_NUM_THREADS=$THREADS /usr/bin/python3 - "$pkg" "$WORK/calib-$id.f32" <<'PY' || die "calibration tensors for $id"
import json, os, sys, numpy as np
sys.path.insert(0, "toolkit")
from cxr_model import dataset, labels, codes, preprocess
pkg, out = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(pkg, "manifest.json")))
data = os.path.join(os.path.dirname(os.path.dirname(pkg)), "data")
items, _ = dataset.load(data, labels.read(os.path.join(data, "LABELS.csv"), codes.catalogue(None), None), log=lambda *a: None)
spec = preprocess.spec_of(m)
np.stack([preprocess.apply(spec, it.gray) for it in items[:16]]).astype("<f4").tofile(out)
PY
  if /usr/bin/python3 src/main/python/quantize.py "$pkg" --tensors "$WORK/calib-$id.f32" > "$WORK/int8-$id.log" 2>&1; then
    echo "$id: INT8 variant written"
  else
    echo "$id: no INT8 variant (quantize.py: $(grep -v '^\s*$' "$WORK/int8-$id.log" | tail -1))"
  fi
done
get() { sed -n "s/^$1=//p" "$2" | tail -1; }
declare -A FP32 INT8 TORCH CAM
for r in $(seq 1 "$REPS"); do
  for id in $IDS; do
    pkg="$WORK/packages/$id"
    java -Xmx2g -cp "$CP" org.cxrgateway.inference.ArchBench "$THREADS" "$N" "$BATCH" "$WORK/unpacked" "$pkg" \
        > "$WORK/java-$id-$r.out" 2> "$WORK/java-$id-$r.err" || { tail -30 "$WORK/java-$id-$r.err" >&2; die "ArchBench $id"; }
    OMP_NUM_THREADS=$THREADS /usr/bin/python3 src/bench/torch_bench.py "$pkg" "$N" "$BATCH" "$THREADS" \
        > "$WORK/torch-$id-$r.out" 2> "$WORK/torch-$id-$r.err" || { tail -30 "$WORK/torch-$id-$r.err" >&2; die "torch_bench.py $id"; }
    f=$(get "${id}_fp32_img_s" "$WORK/java-$id-$r.out"); t=$(get torch_eager_img_s "$WORK/torch-$id-$r.out")
    [ -n "$f" ] && [ -n "$t" ] || die "a driver printed no figure for $id (see $WORK)"
    FP32[$id]+="$f "; TORCH[$id]+="$t "; CAM[$id]+="$(get "${id}_gradcam_ms" "$WORK/java-$id-$r.out") "
    q=$(get "${id}_int8_img_s" "$WORK/java-$id-$r.out"); [ -n "$q" ] && INT8[$id]+="$q "
    echo "repetition $r $id: engine FP32 $f, INT8 ${q:-n/a}, PyTorch eager $t img/s"
  done
done
echo
/usr/bin/python3 - "$WORK/replay.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
r0 = rows[0]
print("Replay on generated data (binary COVID-like task; same data, split and budget: %s patients, %s epochs, %s px):"
      % (r0.get("patients", "?"), r0.get("epochs", "?"), r0.get("size", "?")))
print("  %-24s %7s %9s %10s %7s %6s %9s   %s" % ("architecture", "AUROC", "accuracy", "precision", "recall", "F1", "threshold", "paper accuracy"))
for r in rows:
    print("  %-24s %7s %9.3f %10.3f %7.3f %6.3f %9.3f   %.3f" % (r["title"], "n/a" if r["auroc"] is None else "%.3f" % r["auroc"],
          r["accuracy"], r["precision"], r["recall"], r["f1"], r.get("threshold", 0.5), r["paper_accuracy"]))
print("  (threshold: Youden's J on the validation patients, %d images, %d COVID-like)" % (r0.get("validation_n", 0), r0.get("validation_positives", 0)))
rank = lambda key: " > ".join(x["title"] for x in sorted(rows, key=lambda x: -(x[key] if x[key] is not None else -1)))
print("  ranking by accuracy here: " + rank("accuracy"))
print("  ranking in the paper:     " + rank("paper_accuracy"))
print("  (test n = %d images, %d COVID-like; synthetic images, not a claim about COVID-19)" % (rows[0]["n"], rows[0]["positives"]))
PY
echo
echo "Inference on CPU, $SIZE px, batch $BATCH, $THREADS threads, img/s over $REPS repetitions (median, min-max):"
for id in $IDS; do
  read -r f fmin fmax <<<"$(stats ${FP32[$id]})"; read -r t tmin tmax <<<"$(stats ${TORCH[$id]})"; read -r c _ _ <<<"$(stats ${CAM[$id]})"
  if [ -n "${INT8[$id]:-}" ]; then read -r q qmin qmax <<<"$(stats ${INT8[$id]})"; qs="$q ($qmin-$qmax)"; qr=$(awk -v a="$q" -v b="$t" 'BEGIN { printf "%.2f", a / b }'); else qs="n/a"; qr="n/a"; fi
  printf "  %-20s engine FP32 %8s (%s-%s)  INT8 %-22s PyTorch eager %8s (%s-%s)  FP32/PyTorch %s  INT8/PyTorch %s  host Grad-CAM %s ms/map\n" \
    "$id" "$f" "$fmin" "$fmax" "$qs" "$t" "$tmin" "$tmax" "$(awk -v a="$f" -v b="$t" 'BEGIN { printf "%.2f", a / b }')" "$qr" "$c"
  result "${id}_fp32_vs_torch" "$(awk -v a="$f" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
done
