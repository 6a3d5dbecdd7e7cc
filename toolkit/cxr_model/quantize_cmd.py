"""cxr-model quantize: the INT8 variant of a trained package (model.int8.onnx, named in its manifest), calibrated
on working images of the package's own training set, as `cxr-model train --int8` would have made it. For a package
trained without --int8, or to try other calibration options on one. The quantisation itself is
src/main/python/quantize.py (static QDQ, GPTQ-rounded weights, activation ranges by calibration).
"""
import json
import os
import pathlib

import numpy as np
import torch

import quantize

from . import codes, dataset, labels as labels_mod, preprocess


def add_arguments(ap):
    ap.add_argument("--package", required=True, help="a package cxr-model train wrote (its training.json names the split)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True, help="the LABELS.csv it was trained on")
    ap.add_argument("--codes", help="CSV name,value,scheme,meaning adding label codes")
    quantize.add_arguments(ap, images=None)


def run(a, log=print):
    manifest = json.loads(pathlib.Path(a.package, "manifest.json").read_text())
    record_file = os.path.join(a.package, "training.json")
    if not os.path.exists(record_file):
        raise SystemExit("quantize: %s has no training.json: calibrate an imported package with quantize.py --images" % a.package)
    train_patients = set(json.loads(pathlib.Path(record_file).read_text())["split"]["patients"]["train"])
    names = [l["name"] for l in manifest["labels"]]
    cat = codes.catalogue(a.codes)
    for l in manifest["labels"]:
        cat.setdefault(l["name"], (l["code"]["value"], l["code"]["scheme"], l["code"]["meaning"]))
    lab = labels_mod.read(a.labels, cat, names)
    lab.rows = [r for r in lab.rows if r["patient_id"] in train_patients]
    if not lab.rows:
        raise labels_mod.LabelError("no rows of the package's training set in %s" % a.labels)
    # evenly spread over the training rows, as train --int8 takes them
    k = min(a.int8_images, len(lab.rows))
    lab.rows = [lab.rows[i] for i in np.linspace(0, len(lab.rows) - 1, k).round().astype(int)]
    items, skipped = dataset.load(a.data, lab, log=log)
    if not items:
        raise SystemExit("quantize: none of the %d calibration images could be read" % k)
    spec = preprocess.spec_of(manifest)
    x = np.stack([preprocess.apply(spec, it.gray) for it in items]).astype(np.float32)
    log("calibrating on %d training images of %s" % (len(x), a.package))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    quantize.quantize_with_args(a.package, a, x, log)
