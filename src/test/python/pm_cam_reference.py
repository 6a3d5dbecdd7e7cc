#!/usr/bin/python3
"""PyTorch reference for org.cxrgateway.inference.ParametricMapFidelityTest.

Reads <work>/request.json: {"package": dir, "cases": [{"pm": file, "image": raw file, "width", "height",
"bits", "cls"}]}. For each case it reads the Parametric Map with pydicom (frame 1, through its Real World
Value Mapping), computes the Grad-CAM of class cls from the same working image with autograd (the
preprocessing of fidelity_reference.py), upsamples it bilinearly onto the part of the map's grid the model
saw (the crop rectangle, scaled and rounded to the grid), min-max normalises it there, and writes
<work>/result.json with, per case, the Pearson correlation inside that rectangle, the largest |value| of the
map outside it, and the correlation with the reference of the next case (a negative control).
"""
import json
import os
import pathlib
import sys

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "main", "python"))
import cxr_models  # noqa: E402
from fidelity_reference import preprocess  # noqa: E402


def map_values(path):
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.astype(np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    group = ds.PerFrameFunctionalGroupsSequence[0]
    rwvm = group.RealWorldValueMappingSequence[0]
    quantity = rwvm.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert quantity.CodeValue == "130403" and quantity.CodingSchemeDesignator == "DCM", quantity
    return frames[0] * float(rwvm.RealWorldValueSlope) + float(rwvm.RealWorldValueIntercept)


def crop_rect(w, h, manifest):
    if manifest["preprocessing"]["crop"] == "center":
        s = min(w, h)
        return (w - s) // 2, (h - s) // 2, s, s
    return 0, 0, w, h


def reference(model, manifest, case, rows, cols):
    w, h, bits = case["width"], case["height"], case["bits"]
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    px = np.fromfile(case["image"], dtype=dtype)
    x = preprocess(px, w, h, bits, manifest)[None]
    logits, feats = model(x)
    feats.retain_grad()
    logits[0, case["cls"]].backward()
    alpha = feats.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * feats).sum(dim=1, keepdim=True))
    # the model saw the crop rectangle of the working image; place it on the map's grid
    cx, cy, cw, ch = crop_rect(w, h, manifest)
    sx, sy = cols / w, rows / h
    x0, y0 = int(round(cx * sx)), int(round(cy * sy))
    rw = max(1, min(cols - x0, int(round(cw * sx))))
    rh = max(1, min(rows - y0, int(round(ch * sy))))
    up = F.interpolate(cam, size=(rh, rw), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    lo, hi = up.min(), up.max()
    up = (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)
    return up.astype(np.float64), (x0, y0, rw, rh)


def main(work):
    torch.set_num_threads(2)
    req = json.loads(pathlib.Path(work, "request.json").read_text())
    model, manifest = cxr_models.load_package_model(req["package"])
    refs, maps = [], []
    for case in req["cases"]:
        pm = map_values(os.path.join(work, case["pm"]))
        ref, rect = reference(model, manifest, case, pm.shape[0], pm.shape[1])
        refs.append((ref, rect))
        maps.append(pm)
    out = []
    for i, pm in enumerate(maps):
        ref, (x0, y0, rw, rh) = refs[i]
        inside = pm[y0:y0 + rh, x0:x0 + rw]
        outside = pm.copy()
        outside[y0:y0 + rh, x0:x0 + rw] = 0
        other, _ = refs[(i + 1) % len(refs)]
        control = float("nan")
        if other.shape == inside.shape:
            control = float(np.corrcoef(inside.ravel(), other.ravel())[0, 1])
        out.append({"correlation": float(np.corrcoef(inside.ravel(), ref.ravel())[0, 1]),
                    "outside": float(np.abs(outside).max()), "std": float(inside.std()),
                    "control": control, "grid": [pm.shape[1], pm.shape[0]], "rect": [x0, y0, rw, rh]})
    pathlib.Path(work, "result.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
