#!/usr/bin/python3
"""Generate the two demo model packages (chest14, covid3) reproducibly.

    /usr/bin/python3 src/main/python/make_demo_models.py --out src/main/resources/models

Untrained: torchvision densenet121(weights=None) with a new head and seeded weights (see
cxr_models.py for the portable generator). Each package folder holds manifest.json, model.onnx (the
graph; weights are external) and weights.recipe.json, from which the Java side regenerates
weights.bin bit-for-bit at start-up. --embed writes a self-contained model.onnx instead (what a
real-weights package looks like) and is what the tests use for the tiny variant.
"""
import argparse
import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cxr_models  # noqa: E402
import guided_backprop  # noqa: E402

DEMO_USE = ("Untrained demonstration model with seeded random weights. NOT FOR DIAGNOSTIC USE: "
            "its outputs carry no clinical meaning.")

CHEST14 = [
    ("Atelectasis", "46621007", "SCT", "Atelectasis"),
    ("Cardiomegaly", "8186001", "SCT", "Cardiomegaly"),
    ("Effusion", "60046008", "SCT", "Pleural effusion"),
    ("Infiltration", "112121", "DCM", "Infiltrate"),
    ("Mass", "4147007", "SCT", "Mass"),
    ("Nodule", "786838002", "SCT", "Pulmonary nodule"),
    ("Pneumonia", "233604007", "SCT", "Pneumonia"),
    ("Pneumothorax", "36118008", "SCT", "Pneumothorax"),
    ("Consolidation", "95436008", "SCT", "Lung consolidation"),
    ("Edema", "19242006", "SCT", "Pulmonary edema"),
    ("Emphysema", "87433001", "SCT", "Pulmonary emphysema"),
    ("Fibrosis", "51615001", "SCT", "Fibrosis of lung"),
    # no confirmed SNOMED CT code: local scheme, documented in the README
    ("Pleural_Thickening", "PLTHICK", "99CXR", "Pleural thickening"),
    ("Hernia", "84089009", "SCT", "Hiatal hernia"),
]

COVID3 = [
    ("Normal", "17621005", "SCT", "Normal"),
    ("Pneumonia", "233604007", "SCT", "Pneumonia"),
    ("COVID-19", "840539006", "SCT", "COVID-19"),
]

PACKAGES = {
    "chest14": dict(labels=CHEST14, activation="sigmoid", reported=None, crop="resize", seed=14_2024,
                    title="ChestX-ray14 findings (demo)"),
    "covid3": dict(labels=COVID3, activation="softmax", reported=["COVID-19"], crop="center", seed=3_2024,
                   title="Normal / pneumonia / COVID-19 (demo)"),
}

# not built into the app: the COVID-19 paper's binary task (one sigmoid output), for --only covid2
EXTRA = {
    "covid2": dict(labels=[("COVID-19", "840539006", "SCT", "COVID-19")], activation="sigmoid", reported=None,
                   crop="center", seed=2_2024, title="COVID-19 vs not, binary (demo)"),
}


def manifest(pid, spec, arch, channels, size, feature_channels, feature_size, normalisation, weights=None,
             version="0.1.0-demo", intended_use=DEMO_USE, diagnostic=False, head=None):
    m = {
        "formatVersion": 1,
        "id": pid,
        "version": version,
        "title": spec["title"],
        "architecture": arch,
        "intendedUse": intended_use,
        "diagnostic": diagnostic,
        "model": "model.onnx",
        "activation": spec["activation"],
        "labels": [{"name": n, "code": {"value": v, "scheme": s, "meaning": mn}, "threshold": spec.get("threshold", 0.5)}
                   for (n, v, s, mn) in spec["labels"]],
        "input": {"name": "input", "channels": channels, "size": size, "layout": "NCHW"},
        "preprocessing": {"crop": spec["crop"], "normalisation": normalisation},
        "outputs": {"logits": "logits", "features": "features",
                    "featureChannels": feature_channels, "featureSize": feature_size},
        "head": head or {"source": "initializer", "weight": "classifier.weight", "bias": "classifier.bias"},
    }
    if spec.get("reported"):
        m["reportedLabels"] = spec["reported"]
    if weights:
        m["weights"] = weights
    return m


def build(out_dir, pid, spec, arch="densenet121", size=224, embed=False, seed=None, guided=True, head=()):
    seed = spec["seed"] if seed is None else seed
    os.makedirs(out_dir, exist_ok=True)
    model, recipe = cxr_models.seeded_model(arch, len(spec["labels"]), seed, head=head, size=size)
    onnx_path = os.path.join(out_dir, "model.onnx")
    weights = None
    guided_path = os.path.join(out_dir, "guided.onnx")
    # onnx appends external data to an existing weights.bin: a leftover would shift every offset
    for stale in (guided_path, os.path.join(out_dir, "weights.bin")):
        if os.path.exists(stale):
            os.remove(stale)
    if embed:
        cxr_models.export_onnx(model, onnx_path, 3, size)
        if guided:
            guided_backprop.export(model, guided_path, 3, size)
    else:
        cxr_models.export_onnx(model, onnx_path, 3, size, external_weights="weights.bin")
        layout = cxr_models.external_layout(onnx_path)
        entries = []
        by_name = {r["name"]: r for r in recipe}
        data = pathlib.Path(out_dir, "weights.bin").read_bytes()
        for name, (offset, length, _) in sorted(layout.items(), key=lambda kv: kv[1][0]):
            r = by_name.get(name)
            if r is None:
                raise SystemExit("initializer %s is not a generated state-dict tensor" % name)
            want = cxr_models.generate(seed, name, r["shape"], r["scale"], r["offset"]).tobytes()
            # the exporter must not have changed a value: the Java regeneration relies on it
            if len(want) != length or data[offset:offset + length] != want:
                raise SystemExit("exported initializer %s differs from its recipe" % name)
            entries.append(dict(r, position=offset, length=length))
        pathlib.Path(out_dir, "weights.recipe.json").write_text(json.dumps(
            {"seed": seed, "generator": "splitmix64-fnv1a-v1", "file": "weights.bin", "fileLength": len(data),
             "tensors": entries}, indent=0))
        if guided:
            # the adjoint graph references the same weights.bin at the same offsets: weights are held once
            guided_backprop.export(model, guided_path, 3, size, external_layout=layout)
        os.remove(os.path.join(out_dir, "weights.bin"))
        weights = {"recipe": "weights.recipe.json", "file": "weights.bin"}
    with_features = model(__import__("torch").zeros(1, 3, size, size))[1]
    m = manifest(pid, spec, arch, 3, size, int(with_features.shape[1]), int(with_features.shape[2]),
                 "imagenet", weights, head=cxr_models.head_entry(model))
    if guided:
        m["guided"] = guided_backprop.manifest_entry(model)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="src/main/resources/models")
    ap.add_argument("--only", choices=sorted(PACKAGES) + sorted(EXTRA), help="build one package")
    ap.add_argument("--arch", default="densenet121", choices=list(cxr_models.ARCHS + cxr_models.EXTRA_ARCHS + cxr_models.TEST_ARCHS))
    ap.add_argument("--head", default="linear", help="linear | mlp:W1,W2 (ResNet50+: mlp:32,32)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--embed", action="store_true", help="weights inside model.onnx instead of a recipe")
    ap.add_argument("--seed", type=int, help="override the package seed")
    ap.add_argument("--no-guided", action="store_true", help="no guided-backpropagation graph (Grad-CAM only)")
    a = ap.parse_args()
    if (a.arch != "densenet121" or a.head != "linear") and not a.embed:
        ap.error("the weight recipe (Java regeneration) covers the built-in DenseNet-121 packages: add --embed")
    for pid, spec in {**PACKAGES, **EXTRA}.items():
        if (a.only and pid != a.only) or (not a.only and pid in EXTRA):
            continue
        d = build(os.path.join(a.out, pid), pid, spec, a.arch, a.size, a.embed, a.seed, not a.no_guided,
                  cxr_models.parse_head(a.head))
        print("wrote", d)


if __name__ == "__main__":
    main()
