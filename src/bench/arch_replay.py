#!/usr/bin/python3
"""The COVID-19 paper's four-model comparison replayed on generated data (driver of arch-replay.sh; not a test).

    arch_replay.py WORK [--patients 60] [--size 64] [--epochs 3] [--threads 2]

One generated data set (cxr-model synth --task covid3: Normal / pneumonia / COVID-19-like bilateral opacities), one
patient split (the first run's, reused with --split-from), one budget (epochs, batch, input size) per architecture:
  custom CNN      cnn (5 conv-BN-ReLU-pool stages) + mlp:32 over the flattened map, sigmoid on COVID-19
  ResNet50+       resnet50 + GAP + Dense(32) + Dense(32) + sigmoid (mlp:32,32)
  VGG16           vgg16_bn + a linear head over the flattened map, sigmoid (from scratch: no ImageNet weights here)
  DenseNet-121    densenet121, three classes, softmax; COVID-19 = argmax, its score P(COVID-19)
Each model is scored on the test patients by PyTorch from its package (the weights the gateway serves); binary
prediction at the threshold on its COVID-19 score (sigmoid, or the three-class softmax's P(COVID-19)) that maximises
Youden's J on the validation patients. Prints AUROC, accuracy, precision, recall, F1 per
architecture beside the paper's accuracy. A side-by-side of ranking on synthetic images, NOT a claim about COVID-19.
Writes WORK/replay.json and the packages under WORK/packages/<id>.
"""
import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "toolkit"))
from cxr_model import codes, dataset, labels as labels_mod, metrics, preprocess, synth, train  # noqa: E402
import cxr_models  # noqa: E402  (train puts src/main/python on the path)

RUNS = [  # id, title, arch, head, activation, labels, paper accuracy
    ("resnet50plus", "ResNet50+", "resnet50", "mlp:32,32", "sigmoid", "COVID-19", 0.906),
    ("cnn", "custom CNN", "cnn", "mlp:32", "sigmoid", "COVID-19", 0.68),
    ("vgg16", "VGG16", "vgg16_bn", "linear", "sigmoid", "COVID-19", 0.823),
    ("densenet121-3class", "DenseNet-121 (3-class)", "densenet121", "linear", "softmax", None, 0.834),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="comma-separated run ids")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = os.path.join(a.work, "data")
    if not os.path.exists(os.path.join(data, "LABELS.csv")):
        synth.generate(data, patients=a.patients, size=max(96, a.size), seed=2020, task="covid3")
    csv = os.path.join(data, "LABELS.csv")
    split_from = None
    results = []
    for rid, title, arch, head, activation, only, paper in RUNS:
        if a.only and rid not in a.only.split(","):
            continue
        out = os.path.join(a.work, "packages", rid)
        argv = ["--data", data, "--labels", csv, "--out", out, "--arch", arch, "--head", head, "--activation", activation,
                "--size", str(a.size), "--epochs", str(a.epochs), "--batch", "16", "--threads", str(a.threads),
                "--patience", "100", "--fresh", "--id", rid, "--seed", "0"]
        if only:
            argv += ["--only", only]
        if split_from:
            argv += ["--split-from", split_from]
        p = argparse.ArgumentParser()
        train.add_arguments(p)
        t0 = time.time()
        train.run(p.parse_args(argv), log=lambda *x: None)
        train_s = time.time() - t0
        if split_from is None:
            split_from = os.path.join(out, "training.json")
        results.append(dict(evaluate(out, data, csv), id=rid, title=title, arch=arch, head=head, activation=activation,
                            paper_accuracy=paper, train_seconds=train_s, patients=a.patients, epochs=a.epochs, size=a.size))
        r = results[-1]
        print("%-24s AUROC %.3f  accuracy %.3f  precision %.3f  recall %.3f  F1 %.3f  (test n=%d, %d COVID; trained in %.0f s)"
              % (title, r["auroc"] or float("nan"), r["accuracy"], r["precision"], r["recall"], r["f1"], r["n"], r["positives"], train_s),
              flush=True)
    pathlib.Path(a.work, "replay.json").write_text(json.dumps(results, indent=1))


def evaluate(pkg, data, csv):
    """Binary COVID-19 metrics of a package on its run's test patients, by PyTorch on the package's weights, at the
    operating threshold chosen on the validation patients (Youden's J = sensitivity + specificity - 1), not at 0.5:
    with a few epochs the scores of every architecture sit on one side of 0.5 and a fixed cut calls every image one
    class, hiding a ranking the scores do have (AUROC)."""
    rec = json.loads(pathlib.Path(pkg, "training.json").read_text())
    lab = labels_mod.read(csv, codes.catalogue(None), None)
    items, _ = dataset.load(data, lab, log=lambda *x: None)
    covid = lab.names.index("COVID-19")
    model, manifest = cxr_models.load_package_model(pkg)
    spec = preprocess.spec_of(manifest)
    names = [l["name"] for l in manifest["labels"]]

    def scores(patients):
        sel = [it for it in items if it.patient_id in patients and known(it.y[covid])]  # None: label not given
        x = torch.from_numpy(np.stack([preprocess.apply(spec, it.gray) for it in sel]))
        with torch.no_grad():
            logits = model(x)[0]
        if manifest["activation"] == "softmax":
            s = torch.softmax(logits, 1).numpy()[:, names.index("COVID-19")]
        else:
            s = torch.sigmoid(logits[:, names.index("COVID-19")]).numpy()
        return s.astype(np.float64), np.array([int(it.y[covid]) for it in sel])

    val_score, val_y = scores(set(rec["split"]["patients"]["validation"]))
    threshold = youden(val_score, val_y)
    score, y = scores(set(rec["split"]["patients"]["test"]))
    pred = score >= threshold
    tp, fp = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum())
    fn, tn = int(((pred == 0) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec_ = tp / (tp + fn) if tp + fn else 0.0
    return {"n": len(y), "positives": int(y.sum()), "auroc": metrics.auroc(y, score), "accuracy": (tp + tn) / len(y),
            "precision": prec, "recall": rec_, "f1": 2 * prec * rec_ / (prec + rec_) if prec + rec_ else 0.0,
            "threshold": threshold, "validation_n": len(val_y), "validation_positives": int(val_y.sum()),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def known(v):
    return v is not None and not np.isnan(v)


def youden(score, y):
    """The cut maximising sensitivity + specificity - 1 on (score, y): midway between adjacent distinct scores, ties
    to the lower cut; 0.5 when the validation patients hold one class only."""
    if y.min() == y.max():
        return 0.5
    u = np.unique(score)
    cuts = np.concatenate([[u[0] - 1e-9], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-9]])
    pos, neg = y == 1, y == 0
    best, cut = -2.0, 0.5
    for c in cuts:
        p = score >= c
        j = p[pos].mean() + (~p[neg]).mean() - 1
        if j > best:
            best, cut = j, float(c)
    return cut

if __name__ == "__main__":
    main()
