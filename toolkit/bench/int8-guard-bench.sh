#!/usr/bin/env bash
# Benchmark (not a test): what cxr.inference.precision=int8 serves, the INT8 variant with the gateway's decision guard
# (DecisionGuard: an image with a score within cxr.inference.int8-decision-margin (log-odds) of a threshold is scored again
# at FP32), against the variant alone, the FP32 engine and Debian PyTorch eager FP32 (same weights, batch and threads,
# its faster memory format), on a trained model and its own images: the guard's cost depends on how many images score
# near a threshold, which a demo model (every probability at its threshold) or random inputs cannot show.
# The model and its INT8 variant are int8-auroc.sh's ($WORK/chest-model-int8, run first when missing), or PACKAGE (e.g.
# the copy cxr-model validate --write-margin wrote, whose measured margin the guard then takes); the images are the
# SUBSET (validation, default, or test) of its split, preprocessed as the package states. REPS interleaved
# repetitions (Java driver, then PyTorch), medians with min and max; each Java run alternates its three engines 5 times.
#   toolkit/bench/int8-guard-bench.sh    (env: WORK=/tmp/cxr-train-bench [PACKAGE=$WORK/chest-model-int8] SUBSET=validation BATCH=8 THREADS=2 REPS=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
W="${WORK:-/tmp/cxr-train-bench}"; SUBSET="${SUBSET:-validation}"; BATCH=${BATCH:-8}; THREADS=${THREADS:-2}; REPS=${REPS:-3}
echo "start $(date -u +%FT%TZ), $(uptime)"
PKG="${PACKAGE:-$W/chest-model-int8}"
if [[ -z "${PACKAGE:-}" && ! -f "$PKG/model.int8.onnx" ]]; then
  echo "no INT8 variant in $W/chest-model-int8: running int8-auroc.sh first"
  WORK="$W" toolkit/bench/int8-auroc.sh || die "int8-auroc.sh"
fi
B=target/bench/int8-guard; mkdir -p "$B"
build_test_classpath "$B/cp.txt"
CP="target/test-classes:target/classes:$(cat "$B/cp.txt")"
[[ -f "$PKG/model.int8.onnx" && -f "$PKG/training.json" ]] || die "$PKG: no INT8 variant or no training.json (its split)"
N=$(/usr/bin/python3 - "$PKG" "$W/chest" "$W/chest/LABELS.csv" "$SUBSET" "$B/inputs.f32" <<'PY'
import json, sys
sys.path.insert(0, "toolkit")
import numpy as np
from cxr_model import codes, dataset, labels as labels_mod, preprocess
pkg, data, labels, subset, out = sys.argv[1:6]
manifest = json.load(open(pkg + "/manifest.json"))
keep = set(json.load(open(pkg + "/training.json"))["split"]["patients"][subset])
cat = codes.catalogue(None)
for l in manifest["labels"]:
    cat.setdefault(l["name"], (l["code"]["value"], l["code"]["scheme"], l["code"]["meaning"]))
lab = labels_mod.read(labels, cat, [l["name"] for l in manifest["labels"]])
lab.rows = [r for r in lab.rows if r["patient_id"] in keep]
items, _ = dataset.load(data, lab, log=lambda *a: None)
spec = preprocess.spec_of(manifest)
np.stack([preprocess.apply(spec, it.gray) for it in items]).astype("<f4").tofile(out)
print(len(items))
PY
) || die "preprocessing the $SUBSET images"
[[ "$N" -gt 0 ]] || die "no $SUBSET images"
echo "$N $SUBSET images of $PKG, batch $BATCH, $THREADS threads"

get() { sed -n "s/^$1=//p" "$2" | tail -1; }
declare -a FP32 INT8 GUARDED TORCH
for r in $(seq 1 "$REPS"); do
  java -Xmx2g -cp "$CP" org.cxrgateway.inference.Int8GuardBench "$PKG" "$B/inputs.f32" "$BATCH" "$THREADS" "$B/work" \
      > "$B/java-$r.out" 2> "$B/java-$r.err" || { tail -30 "$B/java-$r.err" >&2; die "Int8GuardBench"; }
  OMP_NUM_THREADS=$THREADS /usr/bin/python3 src/bench/torch_bench.py "$PKG" "$N" "$BATCH" "$THREADS" \
      > "$B/torch-$r.out" 2> "$B/torch-$r.err" || { tail -30 "$B/torch-$r.err" >&2; die "torch_bench.py"; }
  FP32+=("$(get fp32_img_s "$B/java-$r.out")"); INT8+=("$(get int8_img_s "$B/java-$r.out")")
  GUARDED+=("$(get int8_guarded_img_s "$B/java-$r.out")"); TORCH+=("$(get torch_eager_img_s "$B/torch-$r.out")")
  for v in "${FP32[-1]}" "${INT8[-1]}" "${GUARDED[-1]}" "${TORCH[-1]}"; do [ -n "$v" ] || die "a driver printed no figure (see $B)"; done
  echo "repetition $r: INT8 guarded ${GUARDED[-1]}, INT8 alone ${INT8[-1]}, FP32 ${FP32[-1]}, PyTorch ${TORCH[-1]} img/s"
done
read -r g gmin gmax <<<"$(stats "${GUARDED[@]}")"; read -r q qmin qmax <<<"$(stats "${INT8[@]}")"
read -r f fmin fmax <<<"$(stats "${FP32[@]}")"; read -r t tmin tmax <<<"$(stats "${TORCH[@]}")"
o="$B/java-$REPS.out"
echo "decision guard: margin $(get margin "$o"); $(get refereed_images "$o") of $(get images "$o") images scored again at FP32 per pass;" \
  "decisions flipped against FP32 with it $(get flips_int8_guarded "$o"), without it $(get flips_int8 "$o") (INT8 alone max |dp| $(get int8_max_dp "$o"))"
printf '  %-22s %8.2f (%.2f-%.2f) img/s\n' "INT8, decision guard" "$g" "$gmin" "$gmax" "INT8 alone" "$q" "$qmin" "$qmax" \
  "FP32 engine" "$f" "$fmin" "$fmax" "PyTorch eager FP32" "$t" "$tmin" "$tmax"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "  INT8 guarded / PyTorch: $(ratio "$g" "$t"); INT8 alone / PyTorch: $(ratio "$q" "$t"); FP32 / PyTorch: $(ratio "$f" "$t"); INT8 guarded / FP32: $(ratio "$g" "$f")"
result int8_guarded_vs_torch "$(ratio "$g" "$t")"
result int8_guarded_vs_fp32 "$(ratio "$g" "$f")"
[[ "$(get flips_int8_guarded "$o")" == 0 ]] || echo "NOTE: the guard left decisions flipped: the variant's error exceeds the margin on some image"
echo "bench wall time: ${SECONDS} s; end $(date -u +%FT%TZ), $(uptime)"
