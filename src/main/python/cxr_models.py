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
import pathlib

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


ARCHS = ("densenet121", "densenet169", "densenet201", "resnet50", "vgg16_bn")
TEST_ARCHS = ("tiny",)  # a few dense layers: fast unit tests
# the COVID-19 paper's custom CNN, as a small VGG-style network (5 conv-BN-ReLU + 2x2 max-pool stages, stride 32):
# served and explained by the VGG path (flattened head, guided max-pools)
CUSTOM_CNN_CFG = [16, "M", 32, "M", 64, "M", 128, "M", 128, "M"]
EXTRA_ARCHS = ("cnn",)
DENSENETS = ("densenet121", "densenet169", "densenet201", "tiny")


def family(arch):
    if arch in DENSENETS:
        return "densenet"
    if arch.startswith("resnet"):
        return "resnet"
    if arch.startswith("vgg") or arch == "cnn":
        return "vgg"
    raise ValueError("unknown arch %s (one of %s)" % (arch, ", ".join(ARCHS + EXTRA_ARCHS + TEST_ARCHS)))


def parse_head(text):
    """--head linear | mlp:32,32  ->  () or (32, 32): the hidden widths of the head."""
    if text in (None, "", "linear"):
        return ()
    if text.startswith("mlp:"):
        try:
            widths = tuple(int(v) for v in text[4:].split(","))
        except ValueError:
            widths = ()
        if widths and all(w > 0 for w in widths):
            return widths
    raise ValueError("--head must be linear or mlp:W1,W2,... (positive widths), not %r" % text)


def head_module(in_features, hidden, num_classes):
    """linear: one Linear; mlp: Linear + ReLU per hidden width, then the logit Linear (ResNet50+: GAP + Dense(32) +
    Dense(32) + a sigmoid output unit; the sigmoid is the manifest's activation)."""
    if not hidden:
        return torch.nn.Linear(in_features, num_classes)
    layers, width = [], in_features
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, num_classes))


class TwoHead(torch.nn.Module):
    """A torchvision classifier with outputs (logits, features): features is the last convolutional feature map the
    head reads (Grad-CAM's layer), logits the head's output. Submodules keep torchvision's names (features/classifier,
    conv1..layer4/fc), so torchvision state dicts load unchanged.

      densenet  features -> ReLU (final_relu) = A -> global average pool -> classifier
      resnet    conv1 .. layer4 = A (post-ReLU) -> global average pool -> fc
      vgg       features (ends with the 5th max-pool) = A -> flatten -> classifier
    For DenseNet and ResNet, Grad-CAM on A with a linear head is CAM with alpha = W[c] / (H*W)."""

    def __init__(self, net, arch):
        super().__init__()
        self.arch = arch
        self.family = family(arch)
        if self.family == "densenet":
            self.features = net.features
            self.final_relu = torch.nn.ReLU()
            self.classifier = net.classifier
        elif self.family == "resnet":
            for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"):
                setattr(self, n, getattr(net, n))
        else:
            self.features = net.features
            self.classifier = net.classifier

    @property
    def pool(self):
        return "flatten" if self.family == "vgg" else "avg"

    @property
    def head_name(self):
        return "fc" if self.family == "resnet" else "classifier"

    @property
    def head(self):
        return getattr(self, self.head_name)

    def backbone(self):
        """The modules before the head (what --freeze-backbone-epochs freezes)."""
        return [m for n, m in self.named_children() if n != self.head_name]

    def body(self, x):
        if self.family == "densenet":
            return self.final_relu(self.features(x))
        if self.family == "resnet":
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(x)

    def forward(self, x):
        f = self.body(x)
        pooled = torch.flatten(f, 1) if self.pool == "flatten" else torch.flatten(
            torch.nn.functional.adaptive_avg_pool2d(f, 1), 1)
        return self.head(pooled), f


def head_layers(model):
    """The manifest's head.layers: each Linear of the head by state-dict name, with the activation after it."""
    head, prefix = model.head, model.head_name
    if isinstance(head, torch.nn.Linear):
        return [{"weight": prefix + ".weight", "bias": prefix + ".bias", "activation": "none"}]
    mods = list(head.named_children())
    out = []
    for i, (name, m) in enumerate(mods):
        if isinstance(m, torch.nn.Linear):
            nxt = [n for _, n in mods[i + 1:] if not isinstance(n, (torch.nn.Identity, torch.nn.Dropout))]
            act = "relu" if nxt and isinstance(nxt[0], torch.nn.ReLU) else "none"
            out.append({"weight": "%s.%s.weight" % (prefix, name), "bias": "%s.%s.bias" % (prefix, name), "activation": act})
        elif not isinstance(m, (torch.nn.ReLU, torch.nn.Identity, torch.nn.Dropout)):
            raise ValueError("head module %s.%s (%s) is not Linear/ReLU/Dropout" % (prefix, name, type(m).__name__))
    return out


def head_entry(model):
    """The manifest's head field: linear (one layer over global-average-pooled features, the CAM head) or mlp."""
    layers = head_layers(model)
    if len(layers) == 1 and model.pool == "avg":
        return {"source": "initializer", "weight": layers[0]["weight"], "bias": layers[0]["bias"]}
    return {"source": "initializer", "kind": "mlp", "pool": model.pool, "layers": layers}


def densenet(arch, num_classes, in_channels=3, head=(), size=224):
    """Any supported architecture (the name is historic: it was DenseNet only). head: hidden widths of an MLP head,
    () for linear; size: the input side, which fixes VGG's flattened width."""
    fam = family(arch)
    if arch == "tiny":
        net = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2)
    elif arch == "cnn":
        net = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(CUSTOM_CNN_CFG, batch_norm=True), init_weights=False)
    else:
        net = getattr(torchvision.models, arch)(weights=None)
    if in_channels != 3:
        if fam == "densenet":
            old = net.features.conv0
            net.features.conv0 = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=7, stride=2, padding=3, bias=False)
        elif fam == "resnet":
            net.conv1 = torch.nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            old = net.features[0]
            net.features[0] = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=3, padding=1)
    if fam == "densenet":
        net.classifier = head_module(net.classifier.in_features, head, num_classes)
    elif fam == "resnet":
        net.fc = head_module(net.fc.in_features, head, num_classes)
    else:
        if size % 32:
            raise ValueError("vgg: input size must be a multiple of 32, not %d" % size)
        last = [m for m in net.features if isinstance(m, torch.nn.Conv2d)][-1].out_channels
        flat = last * (size // 32) ** 2
        if head == "torchvision":  # the ImageNet classifier layout (dropouts as identities: indices 0, 3, 6 kept)
            net.classifier = torch.nn.Sequential(torch.nn.Linear(flat, 4096), torch.nn.ReLU(), torch.nn.Identity(),
                                                 torch.nn.Linear(4096, 4096), torch.nn.ReLU(), torch.nn.Identity(),
                                                 torch.nn.Linear(4096, num_classes))
        else:
            net.classifier = head_module(flat, head, num_classes)
    return TwoHead(net, arch).eval()


def seeded_model(arch, num_classes, seed, in_channels=3, head=(), size=224):
    """The model plus its recipe: one entry per floating tensor of the state dict."""
    model = densenet(arch, num_classes, in_channels, head, size)
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
    manifest = json.loads(pathlib.Path(package_dir, "manifest.json").read_text())
    m = onnx.load(os.path.join(package_dir, manifest.get("model", "model.onnx")))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    # the exporter keeps one copy of equal tensors (zero BN biases, equal trained ones) and names the others
    # through Identity nodes: resolve those aliases to the state-dict names
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in inits:
            inits[n.output[0]] = inits[n.input[0]]
    arch = arch or manifest.get("architecture", "densenet121")
    h = manifest["head"]
    hidden = tuple(int(inits[l["weight"]].shape[0]) for l in h["layers"][:-1]) if h.get("kind") == "mlp" else ()
    if h.get("kind") == "mlp" and family(arch) == "vgg" and hidden == (4096, 4096):
        hidden = "torchvision"
    model = densenet(arch, len(manifest["labels"]), manifest["input"]["channels"], hidden, manifest["input"]["size"])
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
