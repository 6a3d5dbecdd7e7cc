#!/usr/bin/python3
"""Rescales the classifier head of a package with embedded weights so that each label's logit has
standard deviation SD and mean 0 over the given model inputs (float32 [N, C, S, S]):

    /usr/bin/python3 src/test/python/spread_head.py PACKAGE inputs.f32 [SD] [--subspace SHARE]

An untrained head barely moves with the input, so probabilities sit near 0.5 and a quantisation or
preprocessing error hides in them; spread, they cross the threshold across the images.

--subspace SHARE (linear DenseNet heads; the INT8 fidelity test): each label's weight row is first replaced
by a seeded random combination of the principal directions of the pooled features' variation across the
inputs, as many as hold SHARE of that variance (subspace_head), then spread as above. A random row is almost
orthogonal to the few directions in which an untrained backbone's features vary between images, so spreading
it takes a weight norm far beyond a trained head's, and that norm multiplies every error in the features.
Measured (|w| |f| / SD of the logit, the gain from feature to logit, means over labels): random spread head
27.6 on the tiny DenseNet, 231 on DenseNet-121 at 128^2; the trained DenseNet-121 of train-bench.sh (128^2,
20 epochs) 2.5-4.5 on its validation set; subspace heads at SHARE 0.95 4.6 (tiny). Such a head still reads
the features that vary between the images, so its outputs move with the input. The features
come from the FP32 graph itself (quantize.evaluate); model.onnx is rewritten with the new head. An mlp head
(manifest head.kind mlp) is spread layer by layer (spread_layers), its inputs from the package's torch model.
"""
import json
import os
import pathlib
import sys

import numpy as np
import onnx
import onnx.numpy_helper as nh
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "main", "python"))
import quantize  # noqa: E402


def spread(pooled, w, sd=2.5):
    """(weight, bias) of a linear head over pooled features [N, C]: weight w [labels, C] rescaled per label so
    that its logit has standard deviation sd over the N inputs, bias so that its mean is 0 (float64)."""
    pooled, w = np.asarray(pooled, np.float64), np.asarray(w, np.float64)
    w = w * (sd / np.maximum((pooled @ w.T).std(0), 1e-12))[:, None]
    return w, -(pooled @ w.T).mean(0)


def subspace_head(pooled, labels, share=0.95, seed=13):
    """[labels, C]: seeded random combinations (standard normal coefficients) of the unit principal directions of
    the pooled features [N, C] centred over the N inputs, the first r of them, r the fewest holding share of the
    variance, made orthogonal to the mean feature vector; and r. spread() then sets each logit's SD (its bias is 0)."""
    x = np.asarray(pooled, np.float64)
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    cum = np.cumsum(s ** 2) / max(np.sum(s ** 2), 1e-300)
    r = int(np.searchsorted(cum, share) + 1)
    z = np.random.default_rng(seed).standard_normal((labels, r))
    w = z @ vt[:r]
    # orthogonal to the mean feature vector: the logits' mean over the inputs is then 0 without a bias, as with the
    # trained head (bias within 0.03, mean w.f within 0.5 SD), so a finding's Grad-CAM map (which leaves the bias
    # out) carries its logit. With the bias carrying it (up to +9, 3.7 SD) a positive finding's map was negative
    # but for 1-7 of its 784 pixels, and the correlation of two such maps is noise (0.00-0.80 on the tiny DenseNet).
    m = x.mean(0)
    return w - np.outer(w @ m, m) / max(m @ m, 1e-300), r


def gain(pooled, w, bias):
    """Per label |w| |f| / SD of the logit over the inputs: how much an error in the features, relative to
    their size, is magnified in the logit relative to its spread."""
    x = np.asarray(pooled, np.float64)
    return np.linalg.norm(w, axis=1) * np.linalg.norm(x, axis=1).mean() / np.maximum((x @ w.T + bias).std(0), 1e-300)


def spread_layers(x, layers, sd=2.5):
    """An mlp head, layer by layer: [(weight [out, in], bias)] over head inputs x [N, in]. Each hidden layer's
    pre-activations get SD 1 and mean 0 over the inputs (so its ReLUs are on for some inputs and off for others:
    the masks, which Grad-CAM's backward depends on, vary), the last layer's logits SD sd and mean 0 (float64)."""
    x = np.asarray(x, np.float64)
    out = []
    for i, (w, _) in enumerate(layers):
        last = i == len(layers) - 1
        w, b = spread(x, w, sd if last else 1.0)
        out.append((w, b))
        x = np.maximum(x @ w.T + b, 0)
    return out


def spread_mlp(pkg, manifest, x, sd):
    """Rewrites the mlp head's initializers in model.onnx; the head inputs come from the package's torch model."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "main", "python"))
    import cxr_models
    model, _ = cxr_models.load_package_model(pkg)
    with torch.no_grad():
        f = model(x)[1]
    head_in = (torch.flatten(f, 1) if manifest["head"].get("pool") == "flatten" else f.mean(dim=(2, 3))).double().numpy()
    path = os.path.join(pkg, manifest.get("model", "model.onnx"))
    onnx_model = onnx.load(path)
    inits = {t.name: t for t in onnx_model.graph.initializer}
    h = manifest["head"]
    layers = h["layers"] if h.get("kind") == "mlp" else [{"weight": h["weight"], "bias": h["bias"]}]
    new = spread_layers(head_in, [(nh.to_array(inits[l["weight"]]), None) for l in layers], sd)
    for l, (w, b) in zip(layers, new):
        for name, v in ((l["weight"], w), (l["bias"], b)):
            inits[name].CopyFrom(nh.from_array(v.astype(np.float32), name))
    onnx.save(onnx_model, path)
    print("head (%d layers) spread: hidden pre-activations SD 1, logit SD %g over %d inputs" % (len(layers), sd, len(x)))


def main(pkg, inputs, sd=2.5, subspace=None):
    manifest = json.loads(pathlib.Path(pkg, "manifest.json").read_text())
    torch_path = manifest["head"].get("kind") == "mlp" or manifest.get("architecture", "densenet121") not in (
        "densenet121", "densenet169", "densenet201", "tiny")
    if torch_path and subspace is not None:
        raise SystemExit("spread_head --subspace is for a linear DenseNet head")
    if torch_path and not manifest.get("weights"):
        c, s = manifest["input"]["channels"], manifest["input"]["size"]
        return spread_mlp(pkg, manifest, torch.from_numpy(np.fromfile(inputs, dtype="<f4").reshape(-1, c, s, s)), sd)
    if manifest.get("weights") or manifest["head"]["source"] != "initializer" or not manifest["head"].get("bias"):
        raise SystemExit("spread_head needs embedded weights and a head with weight and bias initializers")
    path = os.path.join(pkg, manifest.get("model", "model.onnx"))
    model = onnx.load(path)
    c, s = manifest["input"]["channels"], manifest["input"]["size"]
    x = torch.from_numpy(np.fromfile(inputs, dtype="<f4").reshape(-1, c, s, s))
    with torch.no_grad():
        pooled = quantize.evaluate(model.graph, x, lambda *_: None)[manifest["outputs"]["features"]].mean(dim=(2, 3)).double().numpy()
    inits = {t.name: t for t in model.graph.initializer}
    w0 = nh.to_array(inits[manifest["head"]["weight"]])  # [labels, C], Gemm transB=1
    if subspace is not None:
        w0, r = subspace_head(pooled, len(w0), subspace)
        print("head rows drawn from the %d principal direction(s) holding %g of the pooled features' variance" % (r, subspace))
    w, b = spread(pooled, w0, sd)
    print("gain |w| |f| / SD(logit) per label: %s" % " ".join("%.1f" % v for v in gain(pooled, w, b)))
    for name, v in ((manifest["head"]["weight"], w), (manifest["head"]["bias"], b)):
        inits[name].CopyFrom(nh.from_array(v.astype(np.float32), name))
    onnx.save(model, path)
    print("head spread to logit SD %g over %d inputs" % (sd, len(x)))


if __name__ == "__main__":
    args = sys.argv[1:]
    share = None
    if "--subspace" in args:
        i = args.index("--subspace")
        share = float(args[i + 1])
        del args[i:i + 2]
    main(args[0], args[1], *(float(v) for v in args[2:]), subspace=share)
