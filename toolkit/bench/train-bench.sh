#!/usr/bin/env bash
# Benchmark (not a test): DenseNet-121 at reduced resolution on generated images, validated through the
# gateway's own scorer (the jar is built first when missing). Prints test AUROC per finding, the nodule
# pointing game, the transfer-learning experiment (3-class softmax from the chest model vs from scratch,
# <= 100 images) and training images/s. SIZE, PATIENTS, EPOCHS override the defaults; about an hour on 2 quiet
# cores (73 min measured with one training thread beside other work, 3.8 images/s). The defaults are the recipe
# that meets issue 9's targets (2026-12-06: SIZE=192, 30 epochs, SCHEDULE=cosine annealing the chest model's LR
# over all its epochs with no early stop, OVERSAMPLE=1 drawing rare positives more often: Nodule AUROC 0.980,
# pointing game 17/18, every finding's AUROC >= 0.958). Smaller and shorter runs did not: SIZE=128 with 20 epochs
# gave Nodule AUROC 0.983 but pointing 14/18 (a 4 x 4 Grad-CAM grid, coarse for nodules of 7-11 model pixels), 30
# epochs at 128 14/18 again, SIZE=160 with 20 epochs 0.801 and 12/18; LR-on-plateau without oversampling at 128
# 0.885 and 7/18. SCHEDULE=plateau OVERSAMPLE=0 for that old recipe; TRANSFER=0 leaves the transfer experiment
# out (TRANSFER_EPOCHS, default 20, for its models). On a machine other jobs load, OMP_NUM_THREADS=1 trains
# about 8x faster than 2 (2.6 against 0.3 images/s at load average 15: two OpenMP threads wait on each other at
# every barrier).
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${WORK:-/tmp/cxr-train-bench}"; SIZE="${SIZE:-192}"; PATIENTS="${PATIENTS:-300}"; EPOCHS="${EPOCHS:-30}"
SCHEDULE="${SCHEDULE:-cosine}"; OVERSAMPLE="${OVERSAMPLE:-1}"; TRANSFER="${TRANSFER:-1}"; TRANSFER_EPOCHS="${TRANSFER_EPOCHS:-20}"
echo "start $(date -u +%FT%TZ), OMP_NUM_THREADS=${OMP_NUM_THREADS:-2 (bin/cxr-model default)}, $(uptime)"
[[ -f target/quarkus-app/quarkus-run.jar ]] || mvn -B -q -DskipTests package
mkdir -p "$W"
bin/cxr-model synth --out "$W/chest" --patients "$PATIENTS" --size 256 --seed 11
chest=(--lr-schedule "$SCHEDULE")
[[ "$SCHEDULE" == cosine ]] && chest+=(--patience "$EPOCHS")
[[ "$OVERSAMPLE" != 0 ]] && chest+=(--oversample)
bin/cxr-model train --data "$W/chest" --labels "$W/chest/LABELS.csv" --out "$W/chest-model" --size "$SIZE" --epochs "$EPOCHS" --fresh "${chest[@]}"
bin/cxr-model validate --package "$W/chest-model" --data "$W/chest" --labels "$W/chest/LABELS.csv" --subset test --out "$W/chest-report"
if [[ "$TRANSFER" != 0 ]]; then
bin/cxr-model synth --out "$W/covid" --patients 96 --studies 1-1 --size 256 --seed 12 --task covid3
common=(--data "$W/covid" --labels "$W/covid/LABELS.csv" --activation softmax --size "$SIZE" --epochs "$TRANSFER_EPOCHS" --fresh)
bin/cxr-model train "${common[@]}" --out "$W/covid-scratch" --lr 1e-3
bin/cxr-model train "${common[@]}" --out "$W/covid-finetuned" --init "$W/chest-model" --freeze-backbone-epochs 2 --lr 3e-4
for m in covid-scratch covid-finetuned; do
  bin/cxr-model validate --package "$W/$m" --data "$W/covid" --labels "$W/covid/LABELS.csv" --subset test --out "$W/$m-report"
done
fi
/usr/bin/python3 - "$W" "$TRANSFER" <<'PY'
import json, sys
w = sys.argv[1]
r = json.load(open(w + "/chest-report/report.json"))
print("\nchest model, patient-disjoint test set (scored by the gateway):")
for l in r["labels"]:
    pg = l.get("pointing_game")
    print("  %-14s AUROC %s  pointing game %s" % (l["name"], l["auroc"], pg and "%.2f (%d/%d within %g model px; strictly inside %d/%d)" % (
        pg["value"], pg["hits"], pg["n"], pg["tolerance_model_pixels"], pg["strict"]["hits"], pg["n"])))
t = json.load(open(w + "/chest-model/training.json"))
print("training images/s: %.2f" % t["train_images_per_s"])
print("training wall time: %.0f s" % t["wall_seconds"])
for m in ("covid-scratch", "covid-finetuned") if sys.argv[2] != "0" else ():
    r = json.load(open("%s/%s-report/report.json" % (w, m)))
    aucs = [l["auroc"] for l in r["labels"] if l["auroc"] is not None]
    print("%-16s mean AUROC %.3f  %s" % (m, sum(aucs) / len(aucs) if aucs else float("nan"), {l["name"]: l["auroc"] for l in r["labels"]}))
PY
echo "bench wall time: ${SECONDS} s; end $(date -u +%FT%TZ), $(uptime)"
