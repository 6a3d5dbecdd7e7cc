#!/usr/bin/python3
"""Convert real DenseNet-121 weights into a cxr-gateway model package (folder with manifest.json and
model.onnx, weights embedded).

CheXNet style (torchvision DenseNet-121 state dict, 14 outputs, ImageNet normalisation, 3 channels);
'module.' (DataParallel) and 'densenet121.' prefixes, old 'norm.1'-style keys and a
Sequential(Linear, Sigmoid) head ('classifier.0.') are accepted:

    /usr/bin/python3 src/main/python/import_weights.py chexnet model.pth.tar --out /models/chexnet --version 1.0

TorchXRayVision densenet121-res224-* (1 channel, [-1024, 1024], 18 outputs, op_threshs as
operating thresholds). xrv publishes pickled modules; turn one into a state dict where
torchxrayvision is installed:  torch.save(xrv.models.DenseNet(weights="densenet121-res224-all").state_dict(), "all.pt")

    /usr/bin/python3 src/main/python/import_weights.py xrv all.pt --out /models/xrv-all --version 1.0

--int8 IMAGE... also writes the INT8 variant (quantize.py: model.int8.onnx, for
cxr.inference.precision=int8), calibrated on those working images (8-bit PNG/JPEG, a few dozen of
the kind the gateway will see).

Preprocessing (manifest formatVersion 2, src/main/python/cxr_preprocessing.py): the package states
the pipeline the weights were trained with, and the gateway reproduces it exactly.
  --preset chexnet (default for chexnet): arnoweng/CheXNet's test transform, centre view:
           Resize(256) + CenterCrop(224), PIL bilinear (antialiased), ImageNet normalisation
  --preset jrzech: jrzech/reproduce-chexnet: Resize(224) + CenterCrop(224), PIL bilinear, ImageNet
  --preset xrv (default for xrv): TorchXRayVision's normalize to [-1024, 1024], XRayCenterCrop,
           XRayResizer(224) (skimage, antialiased)
  --preprocessing FILE.json: any other pipeline, as a cxr_preprocessing spec {"upstream", "steps"}

The result is validated by the Java loader at start; set diagnostic/intended use to what your
weights are cleared for (default: research use, not diagnostic).
"""
import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cxr_models  # noqa: E402
import cxr_preprocessing  # noqa: E402
import guided_backprop  # noqa: E402
import make_demo_models  # noqa: E402
import quantize  # noqa: E402

XRV_LABELS = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
              "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
              "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]

CODES = {n: (v, s, m) for (n, v, s, m) in make_demo_models.CHEST14}
CODES.update({
    # no confirmed SNOMED CT mapping checked here: local codes (Code Value is SH: at most 16 characters),
    # documented in schemas/sr/README.md
    "Lung Lesion": ("LUNG_LESION", "99CXR", "Lung lesion"),
    "Fracture": ("FRACTURE", "99CXR", "Fracture"),
    "Lung Opacity": ("LUNG_OPACITY", "99CXR", "Lung opacity"),
    "Enlarged Cardiomediastinum": ("ENLCARDMED", "99CXR", "Enlarged cardiomediastinum"),
})

OLD_KEY = re.compile(r"\.(norm|relu|conv)\.(\d+)\.")


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SystemExit("%s: not a state dict (got %s)" % (path, type(obj).__name__))
    return obj


def normalise_keys(sd):
    """torchvision DenseNet keys, whatever wrapper the checkpoint was saved from."""
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        k = k[len("densenet121."):] if k.startswith("densenet121.") else k
        k = k[len("model."):] if k.startswith("model.") else k
        k = OLD_KEY.sub(lambda m: ".%s%s." % (m.group(1), m.group(2)), k)
        k = k.replace("classifier.0.", "classifier.")
        out[k] = v
    return out


def preprocessing(kind, preset=None, spec_file=None):
    """The preprocessing spec: a preset (default: the one of the checkpoint layout) or a JSON file."""
    if spec_file:
        with open(spec_file) as f:
            spec = json.load(f)
    else:
        spec = cxr_preprocessing.PRESETS[preset or kind]
    try:
        cxr_preprocessing.validate(spec)
        channels, size = cxr_preprocessing.model_input(spec)
    except ValueError as e:
        raise SystemExit("preprocessing: %s" % e)
    return spec, channels, size


def convert(kind, checkpoint, out, pid, version, intended_use, diagnostic, arch="densenet121", threshold=0.5,
            preset=None, spec_file=None):
    sd = normalise_keys(load_state_dict(checkpoint))
    op_threshs = sd.pop("op_threshs", None)
    if "classifier.weight" not in sd or "features.conv0.weight" not in sd:
        raise SystemExit("checkpoint has no features.conv0.weight / classifier.weight after key normalisation")
    n_out = sd["classifier.weight"].shape[0]
    channels = sd["features.conv0.weight"].shape[1]
    if kind == "chexnet":
        if channels != 3:
            raise SystemExit("a CheXNet-style checkpoint has 3 input channels, this one has %d" % channels)
        names = [n for (n, _, _, _) in make_demo_models.CHEST14]
        if n_out != len(names):
            raise SystemExit("a CheXNet-style checkpoint has 14 outputs, this one has %d" % n_out)
        thresholds = [threshold] * n_out
        reported = None
    else:
        if channels != 1:
            raise SystemExit("a TorchXRayVision checkpoint has 1 input channel, this one has %d" % channels)
        names = list(XRV_LABELS)
        if n_out != len(names):
            raise SystemExit("a TorchXRayVision DenseNet has 18 outputs, this one has %d" % n_out)
        if op_threshs is not None:
            thresholds = [float(t) if t == t else threshold for t in op_threshs.tolist()]  # NaN = not trained
            reported = [n for n, t in zip(names, op_threshs.tolist()) if t == t]
        else:
            thresholds, reported = [threshold] * n_out, None
    spec, spec_channels, size = preprocessing(kind, preset, spec_file)
    if spec_channels != channels:
        raise SystemExit("preprocessing makes %d channel(s), the checkpoint takes %d" % (spec_channels, channels))
    model = cxr_models.densenet(arch, n_out, channels)
    missing, unexpected = model.load_state_dict({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit("checkpoint does not fit %s: missing %s, unexpected %s" % (arch, missing[:5], unexpected[:5]))
    os.makedirs(out, exist_ok=True)
    cxr_models.export_onnx(model, os.path.join(out, "model.onnx"), channels, size)
    # the guided-backpropagation adjoint of the same weights: guided Grad-CAM in the worker
    guided_backprop.export(model, os.path.join(out, "guided.onnx"), channels, size)
    feats = model(torch.zeros(1, channels, size, size))[1]
    labels = {"labels": [(n,) + CODES[n] for n in names], "activation": "sigmoid", "reported": reported,
              "crop": None, "title": "%s (%s)" % (pid, kind)}
    m = make_demo_models.manifest(pid, labels, arch, channels, size, int(feats.shape[1]), int(feats.shape[2]),
                                  None, version=version, intended_use=intended_use, diagnostic=diagnostic)
    m["guided"] = guided_backprop.manifest_entry(model)
    m["formatVersion"] = 2
    m["preprocessing"] = {"upstream": spec["upstream"], "steps": spec["steps"]}
    for label, t in zip(m["labels"], thresholds):
        label["threshold"] = min(max(t, 0.0), 1.0)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["chexnet", "xrv"])
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--id", help="package id (default: chexnet or xrv)")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--intended-use", default="Research use only. Not a medical device; not for diagnostic use.")
    ap.add_argument("--diagnostic", action="store_true", help="only if the weights are cleared for diagnostic use")
    ap.add_argument("--threshold", type=float, default=0.5, help="operating threshold where the checkpoint has none")
    ap.add_argument("--preset", choices=sorted(cxr_preprocessing.PRESETS),
                    help="the upstream preprocessing (default: chexnet for chexnet, xrv for xrv)")
    ap.add_argument("--preprocessing", metavar="FILE.json", help="any other preprocessing spec (cxr_preprocessing.py)")
    ap.add_argument("--arch", default="densenet121", help=argparse.SUPPRESS)  # tests: the tiny variant
    quantize.add_arguments(ap, images=True)
    a = ap.parse_args()
    if a.preset and a.preprocessing:
        ap.error("--preset and --preprocessing exclude each other")
    d = convert(a.kind, a.checkpoint, a.out, a.id or a.kind, a.version, a.intended_use, a.diagnostic, a.arch, a.threshold,
                a.preset, a.preprocessing)
    if a.int8:
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        quantize.quantize_with_args(d, a, quantize.images_to_tensors(manifest, a.int8))
    print("wrote", d)


if __name__ == "__main__":
    main()
