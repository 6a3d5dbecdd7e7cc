#!/usr/bin/python3
"""Rescales the classifier head of a package with embedded weights so that each label's logit has
standard deviation SD and mean 0 over the given model inputs (float32 [N, C, S, S]):

    /usr/bin/python3 src/test/python/spread_head.py PACKAGE inputs.f32 [SD]

An untrained head barely moves with the input, so probabilities sit near 0.5 and a quantisation or
preprocessing error hides in them; spread, they cross the threshold across the images. The features
come from the FP32 graph itself (quantize.evaluate); model.onnx is rewritten with the new head.
"""
import json
import os
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


def main(pkg, inputs, sd=2.5):
    manifest = json.load(open(os.path.join(pkg, "manifest.json")))
    if manifest.get("weights") or manifest["head"]["source"] != "initializer" or not manifest["head"].get("bias"):
        raise SystemExit("spread_head needs embedded weights and a head with weight and bias initializers")
    path = os.path.join(pkg, manifest.get("model", "model.onnx"))
    model = onnx.load(path)
    c, s = manifest["input"]["channels"], manifest["input"]["size"]
    x = torch.from_numpy(np.fromfile(inputs, dtype="<f4").reshape(-1, c, s, s))
    with torch.no_grad():
        pooled = quantize.evaluate(model.graph, x, lambda *_: None)[manifest["outputs"]["features"]].mean(dim=(2, 3)).double().numpy()
    inits = {t.name: t for t in model.graph.initializer}
    w, b = spread(pooled, nh.to_array(inits[manifest["head"]["weight"]]), sd)  # [labels, C], Gemm transB=1
    for name, v in ((manifest["head"]["weight"], w), (manifest["head"]["bias"], b)):
        inits[name].CopyFrom(nh.from_array(v.astype(np.float32), name))
    onnx.save(model, path)
    print("head spread to logit SD %g over %d inputs" % (sd, len(x)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(float(v) for v in sys.argv[3:]))
