#!/usr/bin/python3
"""PyTorch reference for org.cxrgateway.inference.GuidedBackpropFidelityTest.

    guided_reference.py WORK [--arch densenet121|resnet50|vgg16_bn|...] [--head linear|mlp:32,32] [--size 224] [--images 2] [--labels 3]

Builds a seeded DenseNet (full-size densenet121 by default, 224 x 224) whose head is arranged so that
its logits move with the input, writes into WORK:
  guided.onnx, plain.onnx   the adjoint graphs of guided_backprop.py, guiding on and off (weights embedded)
  input_<i>.f32             the test images, [1, 3, S, S] float32 little-endian
  guided_<i>.f32            PyTorch autograd on a copy of the model in which EVERY ReLU (the functional
                            one before the pool included) is a guided-ReLU autograd Function, [labels, 3, S, S]
  plain_<i>.f32             torch.autograd.grad of each logit of the unmodified model, [labels, 3, S, S]
  logits_<i>.f32            the model's logits, [labels]
  reference.json            sizes, and how far the captum / pytorch-grad-cam variant (final functional ReLU
                            left unguided) is from the all-guided reference
ONNX Runtime (Java) then executes the graphs and compares; there is no Python onnxruntime here.
"""
import argparse
import copy
import json
import os
import pathlib
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "main", "python"))
sys.path.insert(0, HERE)
import cxr_models  # noqa: E402
import guided_backprop  # noqa: E402


class GuidedReLU(torch.autograd.Function):
    """Springenberg et al. 2015: pass a gradient back only where the input AND the gradient are positive."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * (x > 0).to(g.dtype)


class GuidedModule(torch.nn.Module):
    def forward(self, x):  # not in place: the forward input is what the mask needs
        return GuidedReLU.apply(x)


class GuidedTwoHead(torch.nn.Module):
    """A copy of a TwoHead (any family) with every nn.ReLU replaced, the head's included; guide_final=False leaves
    DenseNet's final ReLU before the pool (torchvision's functional F.relu) plain, as captum does."""

    def __init__(self, model, guide_final):
        super().__init__()
        m = copy.deepcopy(model)
        for parent in m.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.ReLU) and (guide_final or not (parent is m and name == "final_relu")):
                    setattr(parent, name, GuidedModule())
        self.m = m

    def forward(self, x):
        return self.m(x)[0]


def test_images(n, size, seed):
    """Smooth random fields (a few blurred blobs), ImageNet-normalised grey replicated to 3 channels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        z = torch.rand(1, 1, size // 16, size // 16, generator=g)
        z = torch.nn.functional.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)
        z = (z - z.min()) / (z.max() - z.min())
        z = z + 0.05 * torch.rand(1, 1, size, size, generator=g)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        out.append(((z.repeat(1, 3, 1, 1) - mean) / std).float())
    return out


def arrange_head(model, images):
    """An MLP head (or any non-DenseNet head): spread_head.spread_layers over the chosen images. A DenseNet linear head:
    the rule below (the figures of the DenseNet-121 test were measured with it)."""
    if not (model.family == "densenet" and isinstance(model.head, torch.nn.Linear)):
        import spread_head
        with torch.no_grad():
            f = torch.cat([model(x)[1] for x in images])
            head_in = torch.flatten(f, 1) if model.pool == "flatten" else f.mean(dim=(2, 3))
            sd = model.state_dict()
            layers = cxr_models.head_layers(model)
            new = spread_head.spread_layers(head_in.double().numpy(), [(sd[l["weight"]].double().numpy(), None) for l in layers])
            for l, (w, b) in zip(layers, new):
                sd[l["weight"]].copy_(torch.from_numpy(w))
                sd[l["bias"]].copy_(torch.from_numpy(b))
        return model
    return _arrange_linear(model, images)


def _arrange_linear(model, images):
    """Seeded weights give logits that barely depend on the input. Point each class's weight row along
    how one test image's pooled features differ from the others', so logits move with the input."""
    with torch.no_grad():
        pooled = torch.cat([torch.flatten(torch.nn.functional.adaptive_avg_pool2d(model(x)[1], 1), 1)
                            for x in images])
        centred = pooled - pooled.mean(0, keepdim=True)
        w = model.classifier.weight
        for c in range(w.shape[0]):
            d = centred[c % len(images)]
            # keep a little of the seeded row so classes sharing an image still differ
            row = d / (d.norm() + 1e-12) + 0.1 * w[c] / w[c].norm()
            w[c] = row / row.norm() * 2.0 / max(float(centred.norm(dim=1).mean()), 1e-6)
        model.classifier.bias.copy_(-(w @ pooled.mean(0)))
    return model


def grads(model, x, labels, guided):
    """[labels, C, S, S]: d logit_c / d x per class."""
    out = []
    for c in range(labels):
        xi = x.clone().requires_grad_(True)
        logits = model(xi) if guided else model(xi)[0]
        (g,) = torch.autograd.grad(logits[0, c], xi)
        out.append(g[0])
    return torch.stack(out)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []


# ONNX Runtime's and PyTorch's float32 kernels round alike closely enough for the 1e-4 bound only where both use
# AVX-512 (Intel, where it was established); on an AVX2-only CPU (AMD EPYC, measured) their kernels round
# differently, near-ties at ReLUs and max-pools flip between them on images no PyTorch screening can foresee, and
# the test holds the graph to a relaxed maximum with the cosine bound kept (GuidedBackpropFidelityTest).
STRICT = "avx512f" in _cpu_flags()


def fp32_backends(run):
    """run() under each of PyTorch's CPU convolution back-ends: oneDNN (the default) and the native kernels."""
    out = [run()]
    with torch.backends.mkldnn.flags(enabled=False):
        out.append(run())
    return out


def screen(model, candidates, want):
    """The first `want` candidates whose guided gradient is not FRAGILE. A pre-activation within float32
    rounding of 0 at a ReLU, or two max-pool inputs within rounding of each other, flips a mask or an
    argmax between any two float32 implementations (ONNX Runtime vs PyTorch, even PyTorch fp32 vs fp64),
    moving a whole receptive field's gradient; no float32 graph can then meet 1e-4 of the maximum. Such an
    image is recognised as one whose fp32 and fp64 autograd references (seeded head, class 0: the forward
    decides fragility, and fp64 autograd is slow) differ by more than 1e-5 of the max, with PyTorch's fp32 run
    through both of its CPU convolution back-ends (oneDNN and its native kernels): which near-ties flip depends
    on the implementation's rounding, and on an AVX2 CPU (AMD EPYC, measured) each back-end flipped ties on
    images the other did not (VGG16-BN at 64 px: 5e-7 vs 1.5e-3 on one image, 2.6e-2 vs 7e-7 on the other)."""
    wide = GuidedTwoHead(model, guide_final=True).double().eval()
    narrow = GuidedTwoHead(model, guide_final=True).eval()
    plain64 = copy.deepcopy(model).double().eval()
    chosen, fragile, floors = [], [], []
    for i, x in enumerate(candidates):
        g64 = grads(wide, x.double(), 1, True)
        rel = max(float((g32 - g64).abs().max() / g64.abs().max()) for g32 in fp32_backends(
            lambda: grads(narrow, x, 1, True).double()))
        if rel <= 1e-5:
            # guiding off passes gradients through every ReLU, so every near-tie shows: PyTorch fp32 vs fp64
            # already differ by 1e-4..1e-2 of the max on every candidate tried; this is the floor the
            # guiding-off comparison is held to (class 0; fp64 autograd is slow)
            p64 = grads(plain64, x.double(), 1, False)
            floors.append(max(float((p32 - p64).abs().max() / p64.abs().max())
                              for p32 in fp32_backends(lambda: grads(model, x, 1, False).double())))
        (fragile if rel > 1e-5 else chosen).append({"candidate": i, "fp32VsFp64": rel})
        if len(chosen) == want:
            break
    if len(chosen) < want and not STRICT:
        # without AVX-512 no candidate may pass (DenseNet-121 at 224 px: 0 of 6, the least fragile at 5.5e-5); the
        # least fragile are taken, and the comparison is held to the relaxed bound recorded with it
        fragile.sort(key=lambda f: f["fp32VsFp64"])
        chosen, fragile = chosen + fragile[:want - len(chosen)], fragile[want - len(chosen):]
    if len(chosen) < want:
        raise SystemExit("only %d of %d candidate images are not fragile: %s" % (len(chosen), len(candidates), fragile))
    return [candidates[c["candidate"]] for c in chosen], {"chosen": chosen, "fragile": fragile,
                                                         "plainFp32VsFp64": floors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--labels", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--head", default="linear", help="linear | mlp:W1,W2")
    ap.add_argument("--candidates", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.work, exist_ok=True)
    model, _ = cxr_models.seeded_model(a.arch, a.labels, 2017, head=cxr_models.parse_head(a.head), size=a.size)
    candidates = test_images(a.candidates, a.size, 15)
    images, fragile = screen(model, candidates, a.images)
    arrange_head(model, images)
    guided_backprop.export(model, os.path.join(a.work, "guided.onnx"), 3, a.size, guided=True)
    guided_backprop.export(model, os.path.join(a.work, "plain.onnx"), 3, a.size, guided=False)
    all_guided = GuidedTwoHead(model, guide_final=True).eval()
    captum_like = GuidedTwoHead(model, guide_final=False).eval()
    final_rel_max, final_rel_mean, logit_spread = [], [], []
    all_logits = []
    for i, x in enumerate(images):
        x.numpy().astype("<f4").tofile(os.path.join(a.work, "input_%d.f32" % i))
        with torch.no_grad():
            logits = model(x)[0][0]
        all_logits.append(logits.numpy())
        logits.numpy().astype("<f4").tofile(os.path.join(a.work, "logits_%d.f32" % i))
        ref = grads(all_guided, x, a.labels, True)
        ref.numpy().astype("<f4").tofile(os.path.join(a.work, "guided_%d.f32" % i))
        grads(model, x, a.labels, False).numpy().astype("<f4").tofile(os.path.join(a.work, "plain_%d.f32" % i))
        other = grads(captum_like, x, a.labels, True)
        for c in range(a.labels):
            d = (other[c] - ref[c]).abs()
            scale = float(ref[c].abs().max())
            final_rel_max.append(float(d.max()) / scale)
            final_rel_mean.append(float(d.mean()) / float(ref[c].abs().mean()))
    # the float32 floor of the forward logits: PyTorch fp32 (either convolution back-end) vs fp64 on the same
    # weights and images; a spread head turns back-end rounding into 2e-4..3e-3 of a logit (ResNet-50, AVX2)
    wide = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        logit_floor = [max(float((l32.double() - wide(x.double())[0]).abs().max())
                           for l32 in fp32_backends(lambda: model(x)[0])) for x in images]
    spread = np.std(np.stack(all_logits), axis=0)
    reference = {"images": a.images, "labels": a.labels, "channels": 3, "size": a.size, "arch": a.arch, "head": a.head,
                 "screening": fragile, "logitsFp32VsFp64": logit_floor, "strictBounds": STRICT,
                 "logitStdAcrossImages": [float(s) for s in spread],
                 "unguidedFinalRelu": {"maxAbsDiffOverMaxAbsRef": max(final_rel_max),
                                       "meanAbsDiffOverMeanAbsRef": float(np.mean(final_rel_mean))}}
    pathlib.Path(a.work, "reference.json").write_text(json.dumps(reference, indent=1))
    print("unguided final ReLU vs all guided: max |diff|/max|ref| = %.4f, mean |diff|/mean |ref| = %.4f"
          % (max(final_rel_max), float(np.mean(final_rel_mean))))


if __name__ == "__main__":
    main()
