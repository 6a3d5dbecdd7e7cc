"""Shared model tooling for cxr-gateway: the DenseNet wrapper with two outputs, the portable
seeded weight generator and the ONNX export. Used by make_demo_models.py, import_weights.py and
the fidelity references run from the JUnit tests. Run with Debian's /usr/bin/python3
(python3-torch 1.13, python3-torchvision 0.14, python3-onnx 1.12).

Why a portable generator instead of torch.manual_seed: the demo weights are regenerated
bit-for-bit by the Java side (org.cxrgateway.inference.WeightRecipe) from a small recipe, so
the app ships a ~0.2 MB graph and a recipe instead of 2 x 28 MB of random numbers, and still
runs without Python. The generator is SplitMix64 on (FNV-1a(name) ^ seed, element index); every
arithmetic step is exact or a single IEEE float32 operation, so numpy and Java agree bit-exactly.
"""
import json
import math
import os

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torchvision

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def uniform_pm1(seed, name, count):
    """count float32 values in [-1, 1): exact multiples of 2^-23."""
    state = np.uint64((fnv1a64(name) ^ seed) & MASK64)
    idx = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = state + idx * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u24 = (z >> np.uint64(40)).astype(np.float32)
    return u24 * np.float32(2.0 ** -23) - np.float32(1.0)


def f32(x):
    """The float32 nearest x, as a Python float (its repr round-trips through Java Float.parseFloat)."""
    return float(np.float32(x))


def rule_for(name, shape):
    """(scale, offset) of value = u * scale + offset for one state-dict tensor."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if name.endswith("running_var"):
        return f32(0.5), f32(1.0)
    if name.endswith("running_mean"):
        return f32(0.1), f32(0.0)
    if len(shape) == 4:  # conv: He-uniform, keeps activations O(1) through 120 convolutions
        return f32(math.sqrt(6.0 / fan_in)), f32(0.0)
    if len(shape) == 2:  # linear head: torch's default bound 1/sqrt(fan_in)
        return f32(1.0 / math.sqrt(shape[1])), f32(0.0)
    if name.startswith("classifier") or ".classifier" in name:
        return f32(0.5), f32(0.0)
    if name.endswith("weight"):  # batch-norm gamma
        return f32(0.25), f32(1.0)
    return f32(0.1), f32(0.0)  # batch-norm beta


def generate(seed, name, shape, scale, offset):
    n = int(np.prod(shape))
    u = uniform_pm1(seed, name, n)
    return (u * np.float32(scale) + np.float32(offset)).astype(np.float32).reshape(shape)


class TwoHead(torch.nn.Module):
    """DenseNet with outputs (logits, features); features are taken AFTER the final ReLU, which is
    the tensor torchvision pools, so Grad-CAM on it equals CAM with alpha = W[c] / (H*W)."""

    def __init__(self, densenet):
        super().__init__()
        self.features = densenet.features
        self.classifier = densenet.classifier

    def forward(self, x):
        f = torch.relu(self.features(x))
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(f, 1), 1)
        return self.classifier(pooled), f


def densenet(arch, num_classes, in_channels=3):
    if arch == "densenet121":
        net = torchvision.models.densenet121(weights=None)
    elif arch == "tiny":
        # a few dense layers: same building blocks (pre-activation BN-ReLU-Conv, transitions,
        # final norm5 + ReLU), small enough for fast unit tests
        net = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2)
    else:
        raise ValueError("unknown arch " + arch)
    if in_channels != 3:
        old = net.features.conv0
        net.features.conv0 = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=7, stride=2, padding=3, bias=False)
    net.classifier = torch.nn.Linear(net.classifier.in_features, num_classes)
    return TwoHead(net).eval()


def seeded_model(arch, num_classes, seed, in_channels=3):
    """The model plus its recipe: one entry per floating tensor of the state dict."""
    model = densenet(arch, num_classes, in_channels)
    sd = model.state_dict()
    recipe = []
    new = {}
    for name, t in sd.items():
        if not t.is_floating_point():
            new[name] = t
            continue
        scale, offset = rule_for(name, list(t.shape))
        new[name] = torch.from_numpy(generate(seed, name, list(t.shape), scale, offset))
        recipe.append({"name": name, "shape": list(t.shape), "scale": scale, "offset": offset})
    model.load_state_dict(new)
    return model, recipe


def export_onnx(model, path, channels, size, external_weights=None, opset=13):
    """ONNX with input 'input' [N,C,size,size], outputs 'logits' and 'features', dynamic batch.
    TrainingMode.PRESERVE (model in eval) skips torch's Conv+BN folding, so every initializer keeps
    its state-dict name and value; ONNX Runtime folds BN itself at session creation."""
    model.eval()
    dummy = torch.zeros(1, channels, size, size)
    torch.onnx.export(model, dummy, path, opset_version=opset, input_names=["input"],
                      output_names=["logits", "features"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    m = onnx.load(path)
    if external_weights:
        # weights to one side file; only the graph (a few hundred kB) is kept with the package
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=external_weights, size_threshold=0)
    onnx.checker.check_model(path)
    return path


def external_layout(onnx_path):
    """name -> (offset, length) of every initializer stored in the external data file."""
    m = onnx.load(onnx_path, load_external_data=False)
    out = {}
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            kv = {e.key: e.value for e in t.external_data}
            out[t.name] = (int(kv.get("offset", 0)), int(kv["length"]), kv["location"])
    return out


def load_package_model(package_dir, arch=None):
    """A torch TwoHead model whose weights are read back from a package's ONNX initializers (with
    external data, if any): the reference runs exactly the shipped weights."""
    manifest = json.load(open(os.path.join(package_dir, "manifest.json")))
    m = onnx.load(os.path.join(package_dir, manifest.get("model", "model.onnx")))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    arch = arch or manifest.get("architecture", "densenet121")
    model = densenet(arch, len(manifest["labels"]), manifest["input"]["channels"])
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        if name in inits:
            new[name] = torch.from_numpy(np.array(inits[name]).reshape(t.shape).copy())
        elif not t.is_floating_point():
            new[name] = t
        else:
            raise KeyError("initializer missing for " + name)
    model.load_state_dict(new)
    return model.eval(), manifest
