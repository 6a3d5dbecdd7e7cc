#!/usr/bin/env bash
# Benchmark (not a test): issue 13's third INT8 figure, the AUROC change of the INT8 variant against FP32 on a
# trained model's synthetic validation set, both scored by the gateway itself (cxr-model validate --precision).
# The model is train-bench.sh's DenseNet-121 (run first when $WORK/chest-model is missing: about 20 min on 2 quiet
# cores); its copy gets the INT8 variant from cxr-model quantize (calibrated on INT8_IMAGES of its own training
# images; unset, INT8_FLOAT and INT8_BLOCKS leave quantize.py's defaults; INT8_FLOAT: the convolutions left float,
# set but empty: none; INT8_BLOCKS: uint8 or float; INT8_WEIGHT_BITS: 7 or 8, 8 on CPUs with VNNI only). Prints each label's AUROC both ways, the change, and the largest
# change against the bound 0.005; with them issue 13's other INT8 figures on this trained model and its own head:
# max |dp| per image and label, decisions flipped at the package's thresholds, and the Grad-CAM correlation of the
# findings positive at FP32. These are the INT8 variant's alone (cxr.inference.int8-decision-margin 0); a third run at
# the gateway's default margin gives the decisions it flips then, and the images its decision guard scored again at
# FP32. SUBSET=validation (default) or test.
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${WORK:-/tmp/cxr-train-bench}"; SUBSET="${SUBSET:-validation}"; INT8_IMAGES="${INT8_IMAGES:-64}"
echo "start $(date -u +%FT%TZ), OMP_NUM_THREADS=${OMP_NUM_THREADS:-2 (bin/cxr-model default)}, $(uptime)"
[[ -f target/quarkus-app/quarkus-run.jar ]] || mvn -B -q -DskipTests package
if [[ ! -f "$W/chest-model/training.json" ]]; then
  echo "no trained model in $W/chest-model: running train-bench.sh first (TRANSFER=0)"
  WORK="$W" TRANSFER=0 toolkit/bench/train-bench.sh
fi
rm -rf "$W/chest-model-int8" "$W/int8-auroc"
cp -r "$W/chest-model" "$W/chest-model-int8"
q=(--package "$W/chest-model-int8" --data "$W/chest" --labels "$W/chest/LABELS.csv" --int8-images "$INT8_IMAGES")
if [[ -n "${INT8_FLOAT+set}" ]]; then
  read -ra fl <<<"$INT8_FLOAT"  # split on blanks, never glob-expanded: a name may hold wildcards (denselayer[12])
  q+=(--int8-float "${fl[@]}")
fi
[[ -n "${INT8_BLOCKS:-}" ]] && q+=(--int8-blocks "$INT8_BLOCKS")
[[ -n "${INT8_WEIGHT_BITS:-}" ]] && q+=(--int8-weight-bits "$INT8_WEIGHT_BITS")
t0=$SECONDS
bin/cxr-model quantize "${q[@]}"
echo "quantisation (calibration and GPTQ): $((SECONDS - t0)) s"
for p in fp32 int8 int8-guarded; do
  margin=(); [[ $p == int8 ]] && margin=(--int8-decision-margin 0)
  bin/cxr-model validate --package "$W/chest-model-int8" --data "$W/chest" --labels "$W/chest/LABELS.csv" --subset "$SUBSET" \
    --precision "${p:0:4}" "${margin[@]}" --no-plots --save-cams --out "$W/int8-auroc/$p"
done
/usr/bin/python3 - "$W/int8-auroc" "$SUBSET" "$W/chest-model-int8/manifest.json" <<'PY'
import csv, json, sys
w, subset, manifest = sys.argv[1:4]
f, q = (json.load(open("%s/%s/report.json" % (w, p))) for p in ("fp32", "int8"))
m = json.load(open(manifest))
int8 = m["int8"]
print("\nINT8 against FP32, AUROC on the %s set (%d images), both scored by the gateway; INT8 scheme %s, convs left float: %s" % (
    subset, f["images"], int8["scheme"], " ".join(int8["floatConvs"]) or "none"))
# per image and label: the probability change, and decisions flipped at the package's operating thresholds
thr = {l["name"]: l["threshold"] for l in m["labels"]}
sf, sq = ({r["file"]: r for r in csv.DictReader(open("%s/%s/scores.csv" % (w, p)))} for p in ("fp32", "int8"))
dp, flips, pairs = 0.0, 0, 0
for file, r in sf.items():
    for n in thr:
        if r.get(n) and sq[file].get(n):
            a, b = float(r[n]), float(sq[file][n])
            dp, pairs = max(dp, abs(a - b)), pairs + 1
            flips += (a >= thr[n]) != (b >= thr[n])
print("  max |dp| %.4f over %d image-label pairs; decisions flipped at the package thresholds: %d" % (dp, pairs, flips))
# the error the decision guard must cover: in log-odds, over the scores near a threshold (within 2 of its log-odds)
import math
lo = lambda p: math.log(p) - math.log1p(-p) if 0 < p < 1 else math.copysign(math.inf, p - 0.5)
near = [abs(lo(float(r[n])) - lo(float(sq[file][n]))) for file, r in sf.items() for n in thr
        if r.get(n) and sq[file].get(n) and abs(lo(float(r[n])) - lo(thr[n])) < 2]
print("  max log-odds change of the %d scores within 2 of their threshold's: %.3f (the decision margin must exceed it; "
      "cxr-model validate --precision int8 --write-margin measures and records one)" % (
    len(near), max(near) if near else float("nan")))
g = json.load(open("%s/int8-guarded/report.json" % w))
sg = {r["file"]: r for r in csv.DictReader(open("%s/int8-guarded/scores.csv" % w))}
gflips = sum((float(r[n]) >= thr[n]) != (float(sf[file][n]) >= thr[n]) for file, r in sg.items() for n in thr if r.get(n) and sf[file].get(n))
guard = g["int8DecisionGuard"]
print("  with the gateway's decision guard (margin %g): decisions flipped %d; %d of %d images scored again at FP32 (%.0f%%)" % (
    guard["margin"], gflips, guard["refereedImages"], g["images"], 100.0 * guard["refereedImages"] / g["images"]))
# Grad-CAM correlation, INT8 against FP32, over the findings positive at FP32 (the maps the gateway renders)
import numpy as np
cf, cq = (np.load("%s/%s/cams.npz" % (w, p)) for p in ("fp32", "int8"))
assert list(cf["files"]) == list(cq["files"]) and list(cf["labels"]) == list(cq["labels"])
rs = []
for i, file in enumerate(cf["files"]):
    for j, n in enumerate(cf["labels"]):
        a, b = cf["cams"][i, j].ravel(), cq["cams"][i, j].ravel()
        if np.isnan(a).any() or np.isnan(b).any() or float(sf[file][n]) < thr[n]:
            continue
        if a.std() == 0 or b.std() == 0:
            rs.append(1.0 if np.allclose(a, b) else 0.0)
        else:
            rs.append(float(np.corrcoef(a, b)[0, 1]))
print("  Grad-CAM correlation over %d positive findings: min %.4f, median %.4f (%d x %d maps)" % (
    len(rs), min(rs) if rs else float("nan"), float(np.median(rs)) if rs else float("nan"), *cf["cams"].shape[2:]))
worst = 0.0
for a, b in zip(f["labels"], q["labels"]):
    if a["auroc"] is None or b["auroc"] is None:
        print("  %-14s no AUROC (%s)" % (a["name"], a.get("warning", "")))
        continue
    d = b["auroc"] - a["auroc"]
    worst = max(worst, abs(d))
    print("  %-14s FP32 %.4f  INT8 %.4f  change %+.4f" % (a["name"], a["auroc"], b["auroc"], d))
print("largest AUROC change %.4f (bound 0.005: %s)" % (worst, "met" if worst <= 0.005 else "NOT met"))
gworst = max((abs(b["auroc"] - a["auroc"]) for a, b in zip(f["labels"], g["labels"]) if a["auroc"] is not None and b["auroc"] is not None), default=0.0)
print("with the decision guard: largest AUROC change %.4f" % gworst)
PY
echo "bench wall time: ${SECONDS} s; end $(date -u +%FT%TZ), $(uptime)"
