"""One preprocessing spec for training (here) and serving (inference/Preprocessor.java).

The spec is the manifest's own: spec_of(manifest) gives what apply() needs. The interface is the one
of src/main/python/cxr_preprocessing.py (branch preproc, issue 8): apply(spec, gray_u8 HxW) ->
float32 [C, S, S]. Until that module is merged this file carries the formatVersion 1 pipeline the
Java Preprocessor runs today, step for step (its javadoc): x = pixel / 255; crop (center: largest
centred square, integer division; resize / none: the whole image); bilinear resize with
align_corners=False and no antialiasing; imagenet: 3 channels (x - mean) / std; xrv: x * 2048 - 1024.
"""
import numpy as np
import torch
import torch.nn.functional as F

try:  # the shared module of branch preproc, once merged
    import cxr_preprocessing as _shared  # noqa: F401
except ImportError:
    _shared = None

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def spec_of(manifest):
    if _shared is not None and manifest.get("formatVersion", 1) >= 2:
        return manifest["preprocessing"]
    p = manifest["preprocessing"]
    return {"crop": p["crop"], "normalisation": p["normalisation"],
            "size": manifest["input"]["size"], "channels": manifest["input"]["channels"]}


def validate(spec):
    if _shared is not None and "steps" in spec:
        return _shared.validate(spec)
    if spec["crop"] not in ("center", "resize", "none") or spec["normalisation"] not in ("imagenet", "xrv"):
        raise ValueError("unsupported preprocessing %r" % (spec,))
    if spec["normalisation"] == "imagenet" and spec["channels"] != 3:
        raise ValueError("imagenet normalisation needs 3 channels")
    if spec["normalisation"] == "xrv" and spec["channels"] != 1:
        raise ValueError("xrv normalisation needs 1 channel")


def crop_box(spec, w, h):
    if spec["crop"] == "center":
        s = min(w, h)
        return (w - s) // 2, (h - s) // 2, s, s
    if spec["crop"] == "none" and (w != spec["size"] or h != spec["size"]):
        raise ValueError("image is %dx%d but preprocessing.crop none needs %d" % (w, h, spec["size"]))
    return 0, 0, w, h


def apply(spec, gray_u8):
    if _shared is not None and "steps" in spec:
        return _shared.apply(spec, gray_u8)
    h, w = gray_u8.shape
    x0, y0, cw, ch = crop_box(spec, w, h)
    x = torch.from_numpy(gray_u8[y0:y0 + ch, x0:x0 + cw].astype(np.float32) / np.float32(255.0))
    size = spec["size"]
    x = F.interpolate(x[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
    if spec["normalisation"] == "xrv":
        return (x * np.float32(2048.0) - np.float32(1024.0))[None].astype(np.float32)
    return ((x[None] - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)
