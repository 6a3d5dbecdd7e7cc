#!/usr/bin/python3
"""The model-input preprocessing of a cxr-gateway model package (manifest formatVersion 2,
`preprocessing`), applied WITH the libraries the upstream pipelines use: PIL through torchvision's
functional resize, torch.nn.functional.interpolate, skimage.transform.resize.

One spec drives training (this module) and serving (org.cxrgateway.inference.Preprocessor, which
reproduces these libraries in Java; PreprocessorLibraryTest proves the two equal).

    import cxr_preprocessing
    cxr_preprocessing.validate(spec)                 # ValueError naming the offending step
    x = cxr_preprocessing.apply(spec, gray_u8)       # HxW uint8 -> float32 [C, S, S]

A spec is {"upstream": "<the pipeline it reproduces>", "steps": [step, ...]}, applied in order to
a grey image that starts as 8-bit (0 = black):

  {"op": "resize", "to": "short-side"|"long-side", "size": N, "filter": F}
  {"op": "resize", "to": "exact", "width": W, "height": H, "filter": F}     (or "size": N = N x N)
      short-side: torchvision Resize(N): short side N, long side int(N * long / short);
      long-side: long side N, short side int(N * short / long);
      F = pil-bilinear | pil-bicubic: PIL Image.resize on the 8-bit image (what torchvision Resize
          does to a PIL image: antialiased, 8-bit fixed point), so only before "normalize";
          torch-bilinear | torch-bilinear-antialias: F.interpolate(mode="bilinear",
          align_corners=False, antialias=False|True) on float32;
          skimage-linear: skimage.transform.resize(order=1, mode="constant", cval=0,
          preserve_range=True), Gaussian prefilter sigma = max(0, (factor - 1) / 2) when shrinking.
  {"op": "center-crop", "size": N | "fraction": f | "square": true, "offset": O}
      a centred square of side N, int(f * min(w, h)) or min(w, h); O = torchvision (default:
      top = int(round((h - s) / 2.0)), Python rounding), floor ((h - s) // 2) or xrv
      (h // 2 - s // 2, TorchXRayVision's XRayCenterCrop).
  {"op": "channels", "count": 1|3}         grey replicated to 3 channels (every op is per channel)
  {"op": "normalize", "kind": K, "mean": [..], "std": [..]}
      the image is x = u8 / 255 in [0, 1] until here (ToTensor); K = imagenet ((x - mean) / std,
      mean 0.485 0.456 0.406, std 0.229 0.224 0.225), xrv (x * 2048 - 1024, TorchXRayVision's
      normalize(img, 255)), fixed (the given mean/std, one value or one per channel), per-image
      ((x - mean(x)) / std(x), population std over the image; 0 where std is 0).
"""
import numpy as np

FILTERS = ("pil-bilinear", "pil-bicubic", "torch-bilinear", "torch-bilinear-antialias", "skimage-linear")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 8192


def _int(step, key, lo=1, hi=MAX_SIDE):
    v = step.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError("step %s: %s must be an integer in [%d, %d], got %r" % (step.get("op"), key, lo, hi, v))
    return v


def validate(spec):
    """Raises ValueError for a spec that the gateway would reject; returns the spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or not spec["steps"]:
        raise ValueError("preprocessing needs a non-empty 'steps' list")
    if not isinstance(spec.get("upstream"), str) or not spec["upstream"]:
        raise ValueError("preprocessing needs 'upstream': the pipeline it reproduces")
    normalized = False
    for i, s in enumerate(spec["steps"]):
        op = s.get("op") if isinstance(s, dict) else None
        where = "steps[%d] (%s)" % (i, op)
        if op == "resize":
            if s.get("filter") not in FILTERS:
                raise ValueError("%s: filter must be one of %s" % (where, ", ".join(FILTERS)))
            if s["filter"].startswith("pil-") and normalized:
                raise ValueError("%s: PIL filters work on the 8-bit image, so they must come before normalize" % where)
            to = s.get("to")
            if to in ("short-side", "long-side"):
                _int(s, "size")
            elif to == "exact":
                if "size" in s:
                    _int(s, "size")
                else:
                    _int(s, "width"), _int(s, "height")
            else:
                raise ValueError("%s: 'to' must be short-side, long-side or exact" % where)
        elif op == "center-crop":
            given = [k for k in ("size", "fraction", "square") if k in s]
            if len(given) != 1:
                raise ValueError("%s: exactly one of size, fraction, square" % where)
            if "size" in s:
                _int(s, "size")
            if "fraction" in s and not (isinstance(s["fraction"], (int, float)) and 0 < s["fraction"] <= 1):
                raise ValueError("%s: fraction must be in (0, 1]" % where)
            if "square" in s and s["square"] is not True:
                raise ValueError("%s: square must be true" % where)
            if s.get("offset", "torchvision") not in ("torchvision", "floor", "xrv"):
                raise ValueError("%s: offset must be torchvision, floor or xrv" % where)
        elif op == "channels":
            if s.get("count") not in (1, 3):
                raise ValueError("%s: count must be 1 or 3" % where)
        elif op == "normalize":
            if normalized:
                raise ValueError("%s: normalize twice" % where)
            normalized = True
            kind = s.get("kind")
            if kind == "fixed":
                for k in ("mean", "std"):
                    v = s.get(k)
                    if not isinstance(v, list) or len(v) not in (1, 3) or not all(isinstance(x, (int, float)) for x in v):
                        raise ValueError("%s: %s must be a list of 1 or 3 numbers" % (where, k))
                if any(x <= 0 for x in s["std"]):
                    raise ValueError("%s: std must be positive" % where)
            elif kind not in ("imagenet", "xrv", "per-image"):
                raise ValueError("%s: kind must be imagenet, xrv, fixed or per-image" % where)
        else:
            raise ValueError("%s: unknown op" % where)
    if not normalized:
        raise ValueError("preprocessing needs a normalize step")
    return spec


def resized_size(step, w, h):
    """(width, height) after a resize step, torchvision's integer rule for short-side."""
    to = step["to"]
    if to == "exact":
        return (step["size"], step["size"]) if "size" in step else (step["width"], step["height"])
    short, long_ = (w, h) if w <= h else (h, w)
    if to == "short-side":
        ns, nl = step["size"], int(step["size"] * long_ / short)
    else:
        nl, ns = step["size"], int(step["size"] * short / long_)
    return (ns, nl) if w <= h else (nl, ns)


def crop_box(step, w, h):
    """(x0, y0, side) of a center-crop step on a w x h image."""
    if "size" in step:
        s = step["size"]
    elif "fraction" in step:
        s = int(step["fraction"] * min(w, h))
    else:
        s = min(w, h)
    if s > w or s > h or s < 1:
        raise ValueError("center-crop of %d does not fit a %dx%d image" % (s, w, h))
    off = step.get("offset", "torchvision")
    if off == "torchvision":
        return int(round((w - s) / 2.0)), int(round((h - s) / 2.0)), s
    if off == "floor":
        return (w - s) // 2, (h - s) // 2, s
    return w // 2 - s // 2, h // 2 - s // 2, s


def apply(spec, gray_u8):
    """HxW uint8 (0 = black) -> float32 [C, H', W'] per the spec, computed by the libraries."""
    import torch
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    validate(spec)
    a = np.asarray(gray_u8)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise ValueError("apply needs an HxW uint8 image, got %s %s" % (a.dtype, a.shape))
    pil = Image.fromarray(a, mode="L")  # the 8-bit image (L or RGB), until the first float step
    x = None  # float32 [C, H, W] from then on
    for s in spec["steps"]:
        h, w = (pil.height, pil.width) if x is None else x.shape[1:]
        op = s["op"]
        if op == "resize":
            nw, nh = resized_size(s, w, h)
            f = s["filter"]
            if f.startswith("pil-"):
                if x is not None:  # only crops since the last PIL step: still exact 8-bit levels
                    planes = np.round(x * 255.0).astype(np.uint8)
                    pil = Image.fromarray(planes[0], mode="L") if len(planes) == 1 else \
                        Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)), mode="RGB")
                    x = None
                mode = InterpolationMode.BILINEAR if f == "pil-bilinear" else InterpolationMode.BICUBIC
                pil = TF.resize(pil, [nh, nw], interpolation=mode)  # = torchvision Resize on a PIL image
                continue
            if x is None:
                x = TF.to_tensor(pil).numpy()
            if f.startswith("torch-"):
                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
                x = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False,
                                  antialias=(f == "torch-bilinear-antialias"))[0].numpy()
            else:
                from skimage.transform import resize
                # XRayResizer's own call, per plane: resize(img, (1, size, size), mode="constant", preserve_range=True)
                x = np.concatenate([resize(p[None], (1, nh, nw), mode="constant", preserve_range=True)
                                    for p in x]).astype(np.float32)
        elif op == "center-crop":
            x0, y0, side = crop_box(s, w, h)
            if x is None:
                pil = TF.crop(pil, y0, x0, side, side)
            else:
                x = x[:, y0:y0 + side, x0:x0 + side]
        elif op == "channels":
            c = s["count"]
            if x is None:
                pil = pil.convert("RGB" if c == 3 else "L")
            else:
                x = np.repeat(x[:1], c, axis=0)
        else:  # normalize
            if x is None:
                x = TF.to_tensor(pil).numpy()  # u8 / 255, float32
            kind = s["kind"]
            if kind == "xrv":
                # TorchXRayVision normalize(img, 255): (2 * (img / 255) - 1) * 1024, float32
                x = ((np.float32(2.0) * x - np.float32(1.0)) * np.float32(1024.0)).astype(np.float32)
            elif kind == "per-image":
                m, sd = float(np.mean(x, dtype=np.float64)), float(np.std(x, dtype=np.float64))
                x = ((x - m) / sd if sd > 0 else np.zeros_like(x)).astype(np.float32)
            else:
                mean = IMAGENET_MEAN if kind == "imagenet" else tuple(s["mean"])
                std = IMAGENET_STD if kind == "imagenet" else tuple(s["std"])
                c = x.shape[0]
                mean = list(mean) * c if len(mean) == 1 else list(mean)[:c]
                std = list(std) * c if len(std) == 1 else list(std)[:c]
                x = TF.normalize(torch.from_numpy(np.ascontiguousarray(x)), mean, std).numpy()
    if x is None:
        x = TF.to_tensor(pil).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


# The importer presets: each names the upstream pipeline it reproduces.
PRESETS = {
    "chexnet": {
        "upstream": "arnoweng/CheXNet test transform, centre view of TenCrop: torchvision Resize(256) "
                    "(PIL bilinear, antialiased), CenterCrop(224), ToTensor, ImageNet Normalize",
        "steps": [
            {"op": "resize", "to": "short-side", "size": 256, "filter": "pil-bilinear"},
            {"op": "center-crop", "size": 224, "offset": "torchvision"},
            {"op": "channels", "count": 3},
            {"op": "normalize", "kind": "imagenet"},
        ],
    },
    "jrzech": {
        "upstream": "jrzech/reproduce-chexnet: torchvision Resize(224) (PIL bilinear, antialiased), "
                    "CenterCrop(224), ToTensor, ImageNet Normalize",
        "steps": [
            {"op": "resize", "to": "short-side", "size": 224, "filter": "pil-bilinear"},
            {"op": "center-crop", "size": 224, "offset": "torchvision"},
            {"op": "channels", "count": 3},
            {"op": "normalize", "kind": "imagenet"},
        ],
    },
    "xrv": {
        "upstream": "TorchXRayVision: normalize(img, 255) to [-1024, 1024], XRayCenterCrop, "
                    "XRayResizer(224) (skimage.transform.resize, antialiased)",
        "steps": [
            {"op": "normalize", "kind": "xrv"},
            {"op": "center-crop", "square": True, "offset": "xrv"},
            {"op": "resize", "to": "exact", "size": 224, "filter": "skimage-linear"},
            {"op": "channels", "count": 1},
        ],
    },
}


def spec_of(manifest):
    """The steps a package's manifest means: formatVersion 2 states them; formatVersion 1 (crop +
    normalisation) means what inference/Preprocessor.java's stepsOfVersion1 says: center (largest
    centred square, integer division) or resize (the whole image) or none (the image is already the
    input size), then F.interpolate bilinear without antialias to size x size, channels, normalize."""
    if manifest.get("formatVersion", 1) >= 2:
        return manifest["preprocessing"]
    p, size, channels = manifest["preprocessing"], manifest["input"]["size"], manifest["input"]["channels"]
    steps = []
    if p["crop"] == "center":
        steps.append({"op": "center-crop", "square": True, "offset": "floor"})
    if p["crop"] != "none":
        steps.append({"op": "resize", "to": "exact", "size": size, "filter": "torch-bilinear"})
    steps += [{"op": "channels", "count": channels}, {"op": "normalize", "kind": p["normalisation"]}]
    return {"upstream": "formatVersion 1: crop %s, %s" % (p["crop"], p["normalisation"]), "steps": steps}


def model_input(spec):
    """(channels, side) of the model input the spec makes whatever the image: the last resize or crop
    must fix the side (an exact square resize or a center-crop of a size); ValueError otherwise."""
    validate(spec)
    side, channels = None, 1
    for s in spec["steps"]:
        if s["op"] == "resize":
            side = None
            if s["to"] == "exact":
                w, h = resized_size(s, 0, 0)
                side = w if w == h else None
        elif s["op"] == "center-crop":
            side = s.get("size")
        elif s["op"] == "channels":
            channels = s["count"]
    if side is None:
        raise ValueError("the last resize or crop must fix a square input side (exact resize or center-crop of a size)")
    return channels, side


def output_shape(spec, w, h):
    """(channels, height, width) that apply() returns for a w x h image."""
    c = 1
    for s in spec["steps"]:
        if s["op"] == "resize":
            w, h = resized_size(s, w, h)
        elif s["op"] == "center-crop":
            _, _, side = crop_box(s, w, h)
            w = h = side
        elif s["op"] == "channels":
            c = s["count"]
    return c, h, w


if __name__ == "__main__":
    import json
    import pathlib
    import sys
    for name, spec in PRESETS.items():
        validate(spec)
    if len(sys.argv) == 2:
        print(json.dumps(validate(json.loads(pathlib.Path(sys.argv[1]).read_text())), indent=2))
