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

torchvision state dicts of DenseNet-121/169/201, ResNet-50 and VGG16-BN (fine-tuned on your labels; the
architecture and head are recognised from the keys and shapes, --arch to insist): a linear head (fc /
classifier), the COVID-19 paper's ResNet50+ head (GAP + Dense(32) + Dense(32) + output: fc.0, fc.2, fc.4) or
VGG's torchvision classifier (classifier.0, .3, .6, at 224 x 224). --labels names the outputs (codes from the
built-in catalogue: ChestX-ray14, Normal, COVID-19) and --activation says how they are read:

    /usr/bin/python3 src/main/python/import_weights.py torchvision resnet50plus.pt --out /models/covid-r50 \
        --labels COVID-19 --activation sigmoid

A checkpoint of any other architecture is refused with the keys that do not fit the nearest supported one.

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
import pathlib
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
CODES.update({n: (v, s, m) for (n, v, s, m) in make_demo_models.COVID3})

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
        out[k] = v
    # a Sequential(Linear, Sigmoid) head (CheXNet): classifier.0 is the only layer; an MLP head keeps its indices
    for head in ("classifier", "fc"):
        if head + ".0.weight" in out and not any(k.startswith(head + ".") and not k.startswith(head + ".0.") for k in out):
            out = {(head + "." + k[len(head) + 3:] if k.startswith(head + ".0.") else k): v for k, v in out.items()}
    return out


def head_of(sd, arch):
    """(hidden widths or 'torchvision', labels) of the head in a torchvision-layout state dict."""
    prefix = "fc" if cxr_models.family(arch) == "resnet" else "classifier"
    if prefix + ".weight" in sd:
        return (), int(sd[prefix + ".weight"].shape[0])
    idx = sorted(int(k.split(".")[1]) for k in sd if k.startswith(prefix + ".") and k.endswith(".weight")
                 and k.split(".")[1].isdigit())
    if not idx:
        return None, None
    widths = tuple(int(sd["%s.%d.weight" % (prefix, i)].shape[0]) for i in idx)
    if cxr_models.family(arch) == "vgg" and idx == [0, 3, 6]:
        return "torchvision", widths[-1]
    if idx != list(range(0, 2 * len(idx), 2)):
        return None, None
    return widths[:-1], widths[-1]


def match_architecture(sd, size, channels, want=None, fam=None):
    """The supported architecture whose state dict has exactly these keys and shapes; otherwise SystemExit naming
    the keys that do not fit the nearest one (unexpected: in the checkpoint but not the architecture)."""
    keys = {k for k in sd if not k.endswith("num_batches_tracked")}
    best = None
    for arch in ([want] if want else [a for a in cxr_models.ARCHS if fam is None or cxr_models.family(a) == fam]):
        hidden, n_out = head_of(sd, arch)
        if n_out is None:
            hidden, n_out = (), 2
        try:
            model = cxr_models.densenet(arch, n_out, channels, hidden, size)
        except ValueError as e:
            raise SystemExit("%s: %s" % (arch, e))
        own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        unexpected = sorted(keys - own.keys())
        missing = sorted(own.keys() - keys)
        shapes = sorted(k for k in keys & own.keys() if tuple(sd[k].shape) != tuple(own[k].shape))
        if not unexpected and not missing and not shapes:
            return arch, model
        score = len(unexpected) + len(missing) + len(shapes)
        if best is None or score < best[0]:
            best = (score, arch, unexpected, missing, shapes)
    _, arch, unexpected, missing, shapes = best
    raise SystemExit("checkpoint is not a supported torchvision architecture (%s; head linear, mlp over pooled features or "
                     "VGG's classifier): "
                     "nearest is %s with %d unexpected key(s) %s, %d missing key(s) %s, %d of another shape %s"
                     % (", ".join(cxr_models.ARCHS), arch, len(unexpected), unexpected[:8], len(missing), missing[:8],
                        len(shapes), ["%s %s vs %s" % (k, list(sd[k].shape), list(model_shape(arch, sd, size, channels, k)))
                                      for k in shapes[:4]]))


def model_shape(arch, sd, size, channels, key):
    hidden, n_out = head_of(sd, arch)
    return cxr_models.densenet(arch, n_out or 2, channels, hidden or (), size).state_dict()[key].shape


def convert_torchvision(checkpoint, out, pid, version, intended_use, diagnostic, labels, activation, arch=None,
                        threshold=0.5, preset=None, spec_file=None):
    """A torchvision-layout checkpoint of any supported architecture and head."""
    sd = normalise_keys(load_state_dict(checkpoint))
    first = next((k for k in ("features.conv0.weight", "conv1.weight", "features.0.weight") if k in sd), None)
    if first is None:
        raise SystemExit("checkpoint has none of features.conv0.weight (DenseNet), conv1.weight (ResNet), features.0.weight"
                         " (VGG) after key normalisation; its first keys: %s" % sorted(sd)[:8])
    channels = int(sd[first].shape[1])
    spec, spec_channels, size = preprocessing("jrzech", preset, spec_file)
    if spec_channels != channels:
        raise SystemExit("preprocessing makes %d channel(s), the checkpoint takes %d" % (spec_channels, channels))
    fam = {"features.conv0.weight": "densenet", "conv1.weight": "resnet", "features.0.weight": "vgg"}[first]
    arch, model = match_architecture(sd, size, channels, arch, fam)
    model.load_state_dict({k: v for k, v in sd.items()}, strict=False)
    n_out = head_of(sd, arch)[1]
    names = [n.strip() for n in labels.split(",")] if labels else []
    if len(names) != n_out:
        raise SystemExit("--labels names %d output(s), the checkpoint's head has %d" % (len(names), n_out))
    unknown = [n for n in names if n not in CODES]
    if unknown:
        raise SystemExit("--labels: no code for %s (known: %s)" % (unknown, ", ".join(sorted(CODES))))
    if activation == "softmax" and n_out < 2:
        raise SystemExit("--activation softmax needs at least 2 outputs")
    return write(model, out, pid, version, intended_use, diagnostic, arch, channels, size, spec, names,
                 [threshold] * n_out, None, activation, "torchvision " + arch)


def write(model, out, pid, version, intended_use, diagnostic, arch, channels, size, spec, names, thresholds, reported,
          activation, kind):
    os.makedirs(out, exist_ok=True)
    cxr_models.export_onnx(model, os.path.join(out, "model.onnx"), channels, size)
    # the guided-backpropagation adjoint of the same weights: guided Grad-CAM in the worker
    guided_backprop.export(model, os.path.join(out, "guided.onnx"), channels, size)
    with torch.no_grad():
        feats = model(torch.zeros(1, channels, size, size))[1]
    labels = {"labels": [(n,) + CODES[n] for n in names], "activation": activation, "reported": reported,
              "crop": None, "title": "%s (%s)" % (pid, kind)}
    m = make_demo_models.manifest(pid, labels, arch, channels, size, int(feats.shape[1]), int(feats.shape[2]),
                                  None, version=version, intended_use=intended_use, diagnostic=diagnostic,
                                  head=cxr_models.head_entry(model))
    m["guided"] = guided_backprop.manifest_entry(model)
    m["formatVersion"] = 2
    m["preprocessing"] = {"upstream": spec["upstream"], "steps": spec["steps"]}
    for label, t in zip(m["labels"], thresholds):
        label["threshold"] = min(max(t, 0.0), 1.0)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
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
    return write(model, out, pid, version, intended_use, diagnostic, arch, channels, size, spec, names, thresholds,
                 reported, "sigmoid", kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["chexnet", "xrv", "torchvision"])
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
    ap.add_argument("--arch", help="chexnet/xrv: densenet121 (tiny: tests); torchvision: insist on one of " + ", ".join(cxr_models.ARCHS))
    ap.add_argument("--labels", help="torchvision: the output names, comma-separated, in output order")
    ap.add_argument("--activation", choices=["sigmoid", "softmax"], default="sigmoid", help="torchvision: how the outputs are read")
    quantize.add_arguments(ap, images=True)
    a = ap.parse_args()
    if a.preset and a.preprocessing:
        ap.error("--preset and --preprocessing exclude each other")
    if a.kind == "torchvision":
        d = convert_torchvision(a.checkpoint, a.out, a.id or "torchvision", a.version, a.intended_use, a.diagnostic, a.labels,
                                a.activation, a.arch, a.threshold, a.preset, a.preprocessing)
    else:
        d = convert(a.kind, a.checkpoint, a.out, a.id or a.kind, a.version, a.intended_use, a.diagnostic,
                    a.arch or "densenet121", a.threshold, a.preset, a.preprocessing)
    if a.int8:
        manifest = json.loads(pathlib.Path(d, "manifest.json").read_text())
        quantize.quantize_with_args(d, a, quantize.images_to_tensors(manifest, a.int8))
    print("wrote", d)


if __name__ == "__main__":
    main()
