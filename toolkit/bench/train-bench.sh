#!/usr/bin/env bash
# Benchmark (not a test): DenseNet-121 at reduced resolution on generated images, validated through the
# gateway's own scorer (the jar is built first when missing). Prints test AUROC per finding, the nodule
# pointing game, the transfer-learning experiment (3-class softmax from the chest model vs from scratch,
# <= 100 images) and training images/s. SIZE, PATIENTS, EPOCHS override the defaults; about 40 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${WORK:-/tmp/cxr-train-bench}"; SIZE="${SIZE:-128}"; PATIENTS="${PATIENTS:-300}"; EPOCHS="${EPOCHS:-20}"
[[ -f target/quarkus-app/quarkus-run.jar ]] || mvn -B -q -DskipTests package
mkdir -p "$W"
bin/cxr-model synth --out "$W/chest" --patients "$PATIENTS" --size 256 --seed 11
bin/cxr-model train --data "$W/chest" --labels "$W/chest/LABELS.csv" --out "$W/chest-model" --size "$SIZE" --epochs "$EPOCHS" --fresh
bin/cxr-model validate --package "$W/chest-model" --data "$W/chest" --labels "$W/chest/LABELS.csv" --subset test --out "$W/chest-report"
bin/cxr-model synth --out "$W/covid" --patients 96 --studies 1-1 --size 256 --seed 12 --task covid3
common=(--data "$W/covid" --labels "$W/covid/LABELS.csv" --activation softmax --size "$SIZE" --epochs "$EPOCHS" --fresh)
bin/cxr-model train "${common[@]}" --out "$W/covid-scratch" --lr 1e-3
bin/cxr-model train "${common[@]}" --out "$W/covid-finetuned" --init "$W/chest-model" --freeze-backbone-epochs 2 --lr 3e-4
for m in covid-scratch covid-finetuned; do
  bin/cxr-model validate --package "$W/$m" --data "$W/covid" --labels "$W/covid/LABELS.csv" --subset test --out "$W/$m-report"
done
/usr/bin/python3 - "$W" <<'PY'
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
for m in ("covid-scratch", "covid-finetuned"):
    r = json.load(open("%s/%s-report/report.json" % (w, m)))
    aucs = [l["auroc"] for l in r["labels"] if l["auroc"] is not None]
    print("%-16s mean AUROC %.3f  %s" % (m, sum(aucs) / len(aucs) if aucs else float("nan"), {l["name"]: l["auroc"] for l in r["labels"]}))
PY
