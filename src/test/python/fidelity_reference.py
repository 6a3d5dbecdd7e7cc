#!/usr/bin/python3
"""PyTorch reference for the Java fidelity tests (org.cxrgateway.inference.FidelityTest).

Reads <work>/request.json written by the test:
  {"package": dir, "images": [{"file", "width", "height", "bits"}], "tensor": file, "n": N,
   "camClasses": [..], "camSize": [h, w]}
and writes, all little-endian float32:
  pre_<i>.f32     the reference preprocessing of image i ([C, size, size])
  logits.f32      [N, labels] of the model on the Java input tensor
  features.f32    [N, C, H, W] post-ReLU features
  cam_<i>_<c>.f32 autograd Grad-CAM of image i, class c, upsampled to camSize, min-max normalised
"""
import json
import os
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "main", "python"))
import cxr_models  # noqa: E402
import cxr_preprocessing  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)


def preprocess(pixels, w, h, bits, manifest):
    """formatVersion 2: the spec applied by the libraries (8-bit images); 1: the pipeline documented in Preprocessor.java."""
    if manifest["formatVersion"] == 2:
        if bits != 8:
            raise SystemExit("formatVersion 2 reference preprocessing takes 8-bit images")
        return torch.from_numpy(cxr_preprocessing.apply(manifest["preprocessing"], pixels.reshape(h, w)))
    x = torch.from_numpy(pixels.astype(np.float32)) / np.float32(2 ** bits - 1)
    x = x.reshape(h, w)
    size = manifest["input"]["size"]
    crop = manifest["preprocessing"]["crop"]
    if crop == "center":
        s = min(w, h)
        x0, y0 = (w - s) // 2, (h - s) // 2
        x = x[y0:y0 + s, x0:x0 + s]
    x = F.interpolate(x[None, None], size=(size, size), mode="bilinear", align_corners=False, antialias=False)[0, 0]
    if manifest["preprocessing"]["normalisation"] == "xrv":
        return (x * 2048.0 - 1024.0)[None]
    return (x[None].expand(3, size, size) - MEAN[:, None, None]) / STD[:, None, None]


def main(work):
    torch.set_num_threads(2)
    req = json.loads(pathlib.Path(work, "request.json").read_text())
    model, manifest = cxr_models.load_package_model(req["package"])
    for i, im in enumerate(req["images"]):
        dtype = np.uint8 if im["bits"] == 8 else np.dtype("<u2")
        px = np.fromfile(os.path.join(work, im["file"]), dtype=dtype)
        pre = preprocess(px, im["width"], im["height"], im["bits"], manifest)
        pre.numpy().astype("<f4").tofile(os.path.join(work, "pre_%d.f32" % i))
    c, s = manifest["input"]["channels"], manifest["input"]["size"]
    x = torch.from_numpy(np.fromfile(os.path.join(work, req["tensor"]), dtype="<f4").reshape(req["n"], c, s, s))
    logits, feats = model(x)
    feats.retain_grad()
    logits.detach().numpy().astype("<f4").tofile(os.path.join(work, "logits.f32"))
    feats.detach().numpy().astype("<f4").tofile(os.path.join(work, "features.f32"))
    oh, ow = req["camSize"]
    for cls in req["camClasses"]:
        model.zero_grad()
        if feats.grad is not None:
            feats.grad = None
        # per-image logits are independent, so one backward of the sum gives every image's gradient
        logits[:, cls].sum().backward(retain_graph=True)
        alpha = feats.grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * feats).sum(dim=1, keepdim=True))
        up = F.interpolate(cam, size=(oh, ow), mode="bilinear", align_corners=False, antialias=False)[:, 0]
        for i in range(up.shape[0]):
            m = up[i]
            lo, hi = m.min(), m.max()
            m = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
            m.detach().numpy().astype("<f4").tofile(os.path.join(work, "cam_%d_%d.f32" % (i, cls)))


if __name__ == "__main__":
    main(sys.argv[1])
