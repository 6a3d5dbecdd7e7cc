#!/usr/bin/python3
"""The INT8 variant of a model package: static QDQ quantisation, calibrated on working images.

    /usr/bin/python3 src/main/python/quantize.py PACKAGE --images a.png b.png ...   (8-bit grey or RGB)
    /usr/bin/python3 src/main/python/quantize.py PACKAGE --tensors calib.f32        (preprocessed, float32 [N, C, S, S])

writes PACKAGE/model.int8.onnx (self-contained: its weights are inside, also for a demo package whose
model.onnx takes a regenerated weights.bin) and names it in the manifest (field int8). The gateway
runs it with cxr.inference.precision=int8. Also used by import_weights.py --int8 and cxr-model train --int8.

The graph, in the QDQ form ONNX Runtime's CPU provider fuses into QLinearConv (U8S8, VNNI on AVX-512):
  - concatenations chained (chain_concats): each dense layer's concatenation extends the previous one instead of
    concatenating every earlier feature map anew, so each quantised feature map is dequantised once;
  - each BatchNormalization that directly follows a Conv is folded into it first (conv0/norm0 and
    every conv1/norm2): a quantised conv cannot be followed by a float BN without a round trip;
  - every Conv not left float (--float, below): weights in int8 with 7 bits of range by default (|w| <= 64, WEIGHT_QMAX:
    8 bits saturate ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI; --weight-bits 8 for CPUs with it), symmetric, per output channel (zero point 0); bias int32 at scale
    s_input * s_weight; the weights rounded to minimise the conv's output error on the calibration
    images (GPTQ), not each to nearest; input and output uint8, per tensor, scales from calibration. Where the conv
    feeds a ReLU only, the ReLU's output is quantised instead (zero point 0), so ORT drops the ReLU
    into the QLinearConv;
  - with --blocks uint8 (--int8-blocks on the importer and trainer; the default), each dense block whose convs are
    all quantised then runs in uint8 from its input to its last concatenation (uint8_dense_blocks): QLinearConcat (ONNX Runtime's
    contrib operator) extends one uint8 concatenation, whose scale is the last concatenation's calibrated range, and
    each BN-ReLU on it (DenseNet's pre-activation) is a depthwise 1x1 QLinearConv. The manifest's scheme says so
    (qdq-u8s8+uint8-dense-blocks). Each layer output is rounded once more, into the block's scale: --blocks float
    keeps the BN-ReLU and the concatenations float;
  - BN-ReLU otherwise, pooling, the feature map and the classifier stay float:
    the feature map is what Grad-CAM reads, and the head (1024 x labels multiply-adds, nothing beside the
    convolutions) is the one the gateway's CAM uses, so the logits stay features . head exactly.
Activation ranges come from evaluating the folded FP32 graph itself (a small torch interpreter of its
operators: no onnxruntime in Debian's Python), over every calibration image: per tensor the candidate
(99.9th, 99.99th, 99.999th percentile or min/max) with the least rounding-plus-clipping error (mse,
default), or one percentile, or min/max. The same pass gathers each conv's input moments for GPTQ.

--float NAME... leaves convolutions float (mixed precision): path components of their node names, with shell
wildcards (conv0, denseblock4, transition3, denseblock1/denselayer[12]/conv1), or a whole node name; by default
DEFAULT_FLOAT (below), --float alone none. The manifest names them (int8.floatConvs) beside weightBits and the
calibration.
"""
import argparse
import fnmatch
import json
import os
import pathlib
import sys

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as nh
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cxr_preprocessing  # noqa: E402

INT8_FILE = "model.int8.onnx"
# The defaults, the fastest DenseNet-121 mix measured that keeps trained models' validation figures within issue 13's
# fidelity bound (README, INT8 variant; on one model's test set a probability moved by 0.023):
# the stem and the first two 1x1 convs of block 1 float (they read the image and block 1's widest-ranging
# concatenations: quantised, they moved probabilities by 0.020 instead of 0.014), and the dense blocks whose convs are
# all quantised in uint8 (block 1, with float convs, keeps the float layout: in uint8 it moved them by 0.065).
# Default names that a model lacks are skipped; names given (--float / --int8-float) must each name a conv.
DEFAULT_FLOAT = ("conv0", "denseblock1/denselayer[12]/conv1")
BLOCK_LAYOUTS = ("float", "uint8")  # dense blocks (--blocks / --int8-blocks): BN-ReLU float, or uint8_dense_blocks
DEFAULT_BLOCKS = "uint8"

# 7-bit weights in int8 (ONNX Runtime's reduce_range), the default: on x86 CPUs without VNNI (AVX2 only, e.g. the
# 2-core AMD EPYC Zen 3 of earlier CI runs) MLAS multiplies U8S8 with VPMADDUBSW, which adds two u8 x s8 products into a
# saturating int16: 255 * 127 * 2 > 32767. With |w| <= 64 the pair stays below 32767 on every CPU. Measured on that
# machine (Int8FidelityTest's tiny DenseNet): 8-bit weights gave max |dp| 0.90 and 57 flips against FP32 through ONNX
# Runtime, while the same graph simulated exactly (evaluate) gave 0.025; 7-bit weights 0.043, matching their simulation.
# 8-bit weights (--weight-bits 8) halve the weights' rounding step and are exact where the CPU accumulates in int32
# (VNNI: AVX512_VNNI or AVX_VNNI; ARM's dot products); the gateway refuses such a package on an x86 CPU without VNNI.
WEIGHT_QMAX = {7: 64, 8: 127}
DEFAULT_WEIGHT_BITS = 7


def _attrs(node):
    return {a.name: oh.get_attribute_value(a) for a in node.attribute}


def _pads4(p):
    # ONNX [top, left, bottom, right] -> F.pad's (left, right, top, bottom)
    return (p[1], p[3], p[0], p[2])


def _op(node, x, c):
    """One node on torch tensors; x: its inputs (None where absent), c: the initializers as tensors."""
    a, t = _attrs(node), node.op_type
    if t == "Conv":
        pads = a.get("pads", [0, 0, 0, 0])
        y = F.pad(x[0], _pads4(pads)) if pads[0] != pads[2] or pads[1] != pads[3] else x[0]
        same = pads[0] == pads[2] and pads[1] == pads[3]
        return F.conv2d(y, x[1], x[2] if len(x) > 2 else None, a.get("strides", [1, 1]),
                        (pads[0], pads[1]) if same else 0, a.get("dilations", [1, 1]), a.get("group", 1))
    if t == "BatchNormalization":
        return F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))
    if t == "Relu":
        return torch.relu(x[0])
    if t == "Identity":  # the exporter's alias of an initializer equal to another
        return x[0]
    if t in ("MaxPool", "AveragePool"):
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError("%s %s: auto_pad is not supported" % (t, node.name))
        pads = a.get("pads", [0, 0, 0, 0])
        k, s = a["kernel_shape"], a.get("strides", [1, 1])
        if t == "MaxPool":
            y = F.pad(x[0], _pads4(pads), value=float("-inf"))
            return F.max_pool2d(y, k, s, 0, 1, bool(a.get("ceil_mode", 0)))
        if any(pads) and not a.get("count_include_pad", 0):
            raise ValueError("AveragePool %s: padding without count_include_pad is not supported" % node.name)
        return F.avg_pool2d(F.pad(x[0], _pads4(pads)), k, s, 0, bool(a.get("ceil_mode", 0)))
    if t == "Concat":
        return torch.cat(x, a["axis"])
    if t == "Constant":
        return torch.from_numpy(nh.to_array(a["value"]).copy())
    if t == "Pad":
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        p = [int(v) for v in x[1].tolist()]
        n = len(p) // 2
        if mode != "constant" or any(p[:2]) or any(p[n:n + 2]):
            raise ValueError("Pad %s: only constant padding of H and W is supported" % node.name)
        value = float(x[2]) if len(x) > 2 and x[2] is not None else 0.0
        return F.pad(x[0], (p[3], p[n + 3], p[2], p[n + 2]), value=value)
    if t == "GlobalAveragePool":
        return x[0].mean(dim=(2, 3), keepdim=True)
    if t == "Flatten":
        return torch.flatten(x[0], a.get("axis", 1))
    if t == "Gemm":
        w = x[1].T if a.get("transB", 0) else x[1]
        y = a.get("alpha", 1.0) * ((x[0].T if a.get("transA", 0) else x[0]) @ w)
        return y + a.get("beta", 1.0) * x[2] if len(x) > 2 else y
    if t in ("QuantizeLinear", "DequantizeLinear"):
        # per tensor, or per channel along axis: the QDQ graph simulated in float (checks, not serving)
        shape = [1] * x[0].dim()
        if x[1].dim() == 1:
            shape[a.get("axis", 1)] = -1
        s, z = x[1].double().reshape(shape), x[2].double().reshape(shape)
        if t == "DequantizeLinear":
            return ((x[0].double() - z) * s).float()
        lo, hi = (0, 255) if x[2].dtype == torch.uint8 else (-128, 127)
        return torch.clamp(torch.round(x[0].double() / s) + z, lo, hi).to(x[2].dtype)
    raise ValueError("operator %s (%s) is not supported by the calibration interpreter" % (t, node.name))


def evaluate(graph, x, visit):
    """Runs the graph on input batch x; visit(name, tensor) sees every tensor produced, once, after
    which it is freed when its last consumer has run (DenseNet's concatenations are large)."""
    c = {t.name: torch.from_numpy(nh.to_array(t).copy()) for t in graph.initializer}
    uses = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    keep = {o.name for o in graph.output}
    env = {graph.input[0].name: x}
    visit(graph.input[0].name, x)
    for n in graph.node:
        ins = [env.get(i, c.get(i)) if i else None for i in n.input]
        y = _op(n, ins, c)
        env[n.output[0]] = y
        visit(n.output[0], y)
        for i in n.input:
            if i in env:
                uses[i] -= 1
                if uses[i] == 0 and i not in keep:
                    del env[i]
    return {o: env[o] for o in keep}


def _consumers(graph):
    """tensor name -> the nodes that read it, in graph order."""
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    return readers


def fold_batch_norms(model):
    """Conv -> BatchNormalization (the conv's only consumer) becomes one Conv with the BN in its
    weights and bias; the folded conv keeps the BN's output name."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers = _consumers(g)
    outputs = {o.name for o in g.output}
    arr = lambda name: nh.to_array(inits[name]).astype(np.float64)  # noqa: E731
    drop, keep_nodes = set(), []
    for n in g.node:
        if id(n) in drop:
            continue
        cs = consumers.get(n.output[0], [])
        if n.op_type == "Conv" and len(cs) == 1 and cs[0].op_type == "BatchNormalization" and n.output[0] not in outputs \
                and all(i in inits for i in list(n.input[1:]) + list(cs[0].input[1:])):
            bn = cs[0]
            gamma, beta, mean, var = (arr(i) for i in bn.input[1:5])
            k = gamma / np.sqrt(var + _attrs(bn).get("epsilon", 1e-5))
            w = arr(n.input[1]) * k[:, None, None, None]
            b = (arr(n.input[2]) if len(n.input) > 2 else 0.0) * k + beta - mean * k
            wn, bname = n.input[1] + ".bn_folded", n.input[1].rsplit(".", 1)[0] + ".bias.bn_folded"
            g.initializer.extend([nh.from_array(w.astype(np.float32), wn), nh.from_array(b.astype(np.float32), bname)])
            conv = oh.make_node("Conv", [n.input[0], wn, bname], [bn.output[0]], name=n.name, **_attrs(n))
            keep_nodes.append(conv)
            drop.add(id(bn))
        else:
            keep_nodes.append(n)
    del g.node[:]
    g.node.extend(keep_nodes)
    _drop_unused(g)
    return model


def chain_concats(model):
    """A Concat whose first inputs are exactly another Concat's inputs (same axis, earlier in the graph) takes that
    Concat's output in their place: DenseNet as exported concatenates all earlier features anew for every layer,
    Concat(x0, y1, ..., yi), and becomes Concat(Concat(x0, ..., yi-1), yi). The same values, copied once fewer.
    Why it matters for INT8: ONNX Runtime gives every consumer of a DequantizeLinear its own copy of it, so a
    layer's output read by all later concatenations of its block was dequantised once per reader (545 DQ nodes in
    DenseNet-121 instead of 63, an eighth of the INT8 run's kernel time)."""
    g = model.graph
    seen = {}  # (inputs, axis) of each Concat so far -> its output
    for n in g.node:
        if n.op_type != "Concat":
            continue
        ins, axis = tuple(n.input), _attrs(n).get("axis")
        for k in range(len(ins) - 1, 1, -1):
            prev = seen.get((ins[:k], axis))
            if prev is not None:
                del n.input[:]
                n.input.extend((prev,) + ins[k:])
                break
        seen[(ins, axis)] = n.output[0]
    return model


def dense_blocks(graph):
    """The dense blocks of a chained graph (chain_concats): per block, x0 (its input), the aliases of x0 (one-input
    Concats), the outputs of its chained Concats in order, and the last of them (what the transition or the final
    norm reads). By tensor name, so that they still name the same tensors once build_qdq has rebuilt the nodes."""
    prod = {o: n for n in graph.node for o in n.output}
    cons = _consumers(graph)
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Concat" and len(n.input) == 1}
    blocks = []
    for n in graph.node:
        if n.op_type != "Concat" or len(n.input) != 2:
            continue
        first = prod.get(n.input[0])
        if first is not None and first.op_type == "Concat" and len(first.input) == 2:
            continue  # a link, not the start of a chain
        x0 = alias.get(n.input[0], n.input[0])
        chain = [n]
        while True:
            nxt = [c for c in cons.get(chain[-1].output[0], []) if c.op_type == "Concat" and len(c.input) == 2
                   and c.input[0] == chain[-1].output[0]]
            if len(nxt) != 1:
                break
            chain.append(nxt[0])
        blocks.append({"x0": x0, "aliases": [a for a, x in alias.items() if x == x0],
                       "concats": [c.output[0] for c in chain], "final": chain[-1].output[0]})
    return blocks


def uint8_dense_blocks(model, blocks, ranges, qmax=WEIGHT_QMAX[DEFAULT_WEIGHT_BITS]):
    """Runs each dense block in uint8 from its input to its last concatenation: ONNX Runtime's QLinearConcat
    extends the block's uint8 concatenation with each layer's uint8 output (no dequantised copy), and each layer's
    BN-ReLU, which reads the whole concatenation, becomes a depthwise 1x1 QLinearConv: per channel, weight a = gamma
    / sqrt(var + eps) (int8 +-64 at scale |a| / 64: exact), bias beta - mean a (int32), output the uint8 of the
    ReLU quantised as before (zero point 0, so the clamp at 0 is the ReLU). In the float layout these float steps
    (BatchNormalization, QuantizeLinear, Concat of float maps, DequantizeLinear and the Transposes around each NHWC
    QLinearConv) take 30% of the INT8 DenseNet-121's kernel time on a 2-core AVX2 CPU.
    The block's concatenation has one uint8 scale, its last concatenation's calibrated range (every earlier one is
    a subset of its channels): each layer's output is requantised into it once. A block is left as it is unless
    every layer output it concatenates is quantised and every BN-ReLU reading it feeds a quantised conv; whatever
    else reads its last concatenation (the final norm: the feature map stays float) gets it dequantised.
    Returns the number of blocks converted."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    arr = lambda name: nh.to_array(inits[name])  # noqa: E731
    cons = _consumers(g)
    drop, before, new_inits, converted = set(), {}, [], 0

    def bn_relu_q(bn):
        """BatchNormalization -> Relu -> QuantizeLinear, each the only reader of the previous: (relu, q) or None."""
        r = cons.get(bn.output[0], [])
        if bn.op_type != "BatchNormalization" or len(r) != 1 or r[0].op_type != "Relu":
            return None
        q = cons.get(r[0].output[0], [])
        return (r[0], q[0]) if len(q) == 1 and q[0].op_type == "QuantizeLinear" else None

    made = {n.output[0]: n for n in g.node}
    for b in blocks:
        # in the QDQ graph each chained Concat reads (previous, DQ(layer output)); aliases of x0 are one-input Concats
        concats = [made[o] for o in b["concats"]]
        pieces = [c.input[1] for c in concats]
        x0 = b["x0"] + "_dq" if b["x0"] + "_dq" in made else b["x0"]  # the block's input as the QDQ graph reads it
        inner = [x0] + b["aliases"] + b["concats"][:-1]
        readers = [r for t in inner for r in cons.get(t, []) if r.op_type != "Concat"]
        if b["final"] not in ranges or any(not p.endswith("_dq") or p[:-3] + "_q" not in made for p in pieces) \
                or any(bn_relu_q(r) is None for r in readers):
            continue
        scale, zero = uint8_params(*ranges[b["final"]])
        tag = b["final"] + "_u8"
        sn, zn = tag + "_scale", tag + "_zp"
        new_inits += [nh.from_array(np.array(scale, np.float32), sn), nh.from_array(np.array(zero, np.uint8), zn)]
        u8 = {x0: b["x0"] + "_u8"}
        first = next(n for n in g.node if x0 in n.input)  # x0's first reader: its one-input Concat, if any
        before.setdefault(id(first), []).append(oh.make_node("QuantizeLinear", [x0, sn, zn], [u8[x0]], name=b["x0"] + "_u8_Q"))
        for a in b["aliases"]:
            u8[a] = u8[x0]
        for c in concats:
            prev, y = c.input[0], c.input[1][:-3]
            out = c.output[0] + "_u8"
            before.setdefault(id(c), []).append(oh.make_node(
                "QLinearConcat", [sn, zn, u8[prev], sn, zn, y + "_q", y + "_scale", y + "_zp"], [out],
                name=c.name + "_u8", domain="com.microsoft", axis=1))
            drop.add(id(c))
            u8[c.output[0]] = out
        for t in inner + [b["final"]]:
            for r in cons.get(t, []):
                if r.op_type == "Concat":
                    continue
                rq = bn_relu_q(r)
                if rq is None:  # a float reader of the last concatenation
                    dq = t + "_u8_dq"
                    before.setdefault(id(r), []).append(oh.make_node("DequantizeLinear", [u8[t], sn, zn], [dq], name=dq))
                    for k, i in enumerate(r.input):
                        if i == t:
                            r.input[k] = dq
                    continue
                relu, q = rq
                gamma, beta, mean, var = (arr(i).astype(np.float64) for i in r.input[1:5])
                a = gamma / np.sqrt(var + _attrs(r).get("epsilon", 1e-5))
                shift = beta - mean * a
                # |a| / qmax per channel, and never so small that the bias leaves int32 (a channel with a = 0 is its bias)
                ws = np.maximum(np.maximum(np.abs(a) / qmax, np.abs(shift) / (float(scale) * 2.0 ** 30)), 1e-30)
                wq = np.round(a / ws).astype(np.int8).reshape(-1, 1, 1, 1)
                bias = np.round(shift / (float(scale) * ws)).astype(np.int32)
                name = r.name + "_u8"
                new_inits += [nh.from_array(wq, name + "_w"), nh.from_array(ws.astype(np.float32), name + "_w_scale"),
                              nh.from_array(np.zeros(len(ws), np.int8), name + "_w_zp"), nh.from_array(bias, name + "_b")]
                before.setdefault(id(r), []).append(oh.make_node(
                    "QLinearConv", [u8[t], sn, zn, name + "_w", name + "_w_scale", name + "_w_zp", q.input[1], q.input[2],
                                    name + "_b"], [q.output[0]], name=name, group=len(ws), kernel_shape=[1, 1]))
                drop |= {id(r), id(relu), id(q)}
        converted += 1
    nodes = []
    for n in g.node:
        nodes += before.get(id(n), [])
        if id(n) not in drop:
            nodes.append(n)
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    nodes = [n for n in nodes if any(o in used for o in n.output)]  # the layer outputs' DequantizeLinear, now unread
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    if converted and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(oh.make_opsetid("com.microsoft", 1))
    _drop_unused(g)
    return converted


def _drop_unused(g):
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


def quantised_tensors(graph, keep_float=()):
    """conv name -> (input tensor, tensor quantised as its output): the ReLU's output where the conv feeds only a ReLU.
    Convs named in keep_float are left out (they stay float)."""
    consumers = _consumers(graph)
    out = {}
    for n in graph.node:
        if n.op_type == "Conv" and n.name not in keep_float:
            cs = consumers.get(n.output[0], [])
            y = cs[0].output[0] if len(cs) == 1 and cs[0].op_type == "Relu" else n.output[0]
            out[n.name] = (n.input[0], y)
    return out


def weight_scales(w, qmax):
    """int8 symmetric per output channel: the scale of each output channel, max |w| / qmax."""
    return (np.maximum(np.abs(w).reshape(w.shape[0], -1).max(1), 1e-12) / float(qmax)).astype(np.float32)


def round_weights(w, h=None, damp=0.01, qmax=WEIGHT_QMAX[DEFAULT_WEIGHT_BITS]):
    """int8 weights [Cout, ...] in [-qmax, qmax] and their per-channel scales. With h, the second moments of the conv's
    input patches over the calibration images ([K, K], K = Cin * kh * kw), rounded column by column
    with each rounding error spread over the columns not yet rounded (GPTQ, Frantar et al. 2023): the
    output error E||(W - Q) x||^2 is what is minimised, not each weight's own. On Int8FidelityTest's tiny
    DenseNet the weights alone (8-bit), rounded to nearest, moved probabilities by up to 0.029; with GPTQ 0.012."""
    sw = weight_scales(w, qmax)
    if h is None:
        return np.clip(np.round(w / sw.reshape(-1, *([1] * (w.ndim - 1)))), -qmax, qmax).astype(np.int8), sw
    W = torch.from_numpy(w.reshape(w.shape[0], -1).astype(np.float64))
    s = torch.from_numpy(sw.astype(np.float64))
    H = h.double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.diag(H).mean() * torch.eye(len(H), dtype=H.dtype)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for i in range(W.shape[1]):
        Q[:, i] = torch.clamp(torch.round(W[:, i] / s), -qmax, qmax)
        err = (W[:, i] - Q[:, i] * s) / U[i, i]
        W[:, i + 1:] -= err[:, None] * U[i, i + 1:][None, :]
    return Q.numpy().astype(np.int8).reshape(w.shape), sw


PERCENTILES = (99.9, 99.99, 99.999)  # the candidate ranges of method mse, beside min/max


def calibrate(graph, tensors, calibration, method="mse", percentile=99.99, batch=4, positions=64):
    """Passes of the FP32 graph over the calibration images, returning
      ranges: tensor -> (low, high), low <= 0 <= high so that 0 is exact. percentile: the mean over
              batches of each batch's percentile at either tail; minmax: the overall min and max; mse:
              of those candidates (PERCENTILES and min/max), the one whose uint8 rounding and clipping
              err least (squared error) over the calibration activations, a second pass. Too wide a
              range rounds every value coarsely, too narrow a one clips the few large ones; which costs
              more differs from tensor to tensor;
      moments: conv name -> sum of x x^T over its input patches x, at most `positions` seeded positions
              per image (round_weights)."""
    ps = PERCENTILES if method == "mse" else (percentile,) if method == "percentile" else ()
    lows = {t: {p: [] for p in ps} for t in tensors}
    highs = {t: {p: [] for p in ps} for t in tensors}
    extremes = {t: [np.inf, -np.inf] for t in tensors}
    convs_of = {}
    for n in graph.node:
        if n.op_type == "Conv" and _attrs(n).get("group", 1) == 1:
            convs_of.setdefault(n.input[0], []).append(n)
    moments = {}
    pick = torch.Generator().manual_seed(0)

    def first(name, y):
        for n in convs_of.get(name, []):
            a = _attrs(n)
            pads = a.get("pads", [0, 0, 0, 0])
            y2 = F.pad(y, _pads4(pads)) if any(pads) else y
            cols = F.unfold(y2, a["kernel_shape"], a.get("dilations", [1, 1]), 0, a.get("strides", [1, 1]))  # [N, K, L]
            if cols.shape[2] > positions:
                cols = cols[:, :, torch.randperm(cols.shape[2], generator=pick)[:positions]]
            xs = cols.permute(1, 0, 2).reshape(cols.shape[1], -1)
            moments[n.name] = moments.get(n.name, 0) + xs @ xs.T
        if name not in extremes:
            return
        v = y.detach().reshape(-1).float()
        extremes[name] = [min(extremes[name][0], float(v.min())), max(extremes[name][1], float(v.max()))]
        n = v.numel()
        for p in ps:
            highs[name][p].append(float(torch.kthvalue(v, max(1, min(n, int(np.ceil(n * p / 100.0))))).values))
            lows[name][p].append(float(torch.kthvalue(v, max(1, min(n, int(np.floor(n * (100.0 - p) / 100.0)) + 1))).values))

    x = torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))

    def run(visit):
        with torch.no_grad():
            for s in range(0, len(x), batch):
                evaluate(graph, x[s:s + batch], visit)

    run(first)
    candidates = {t: [(min(0.0, float(np.mean(lows[t][p]))), max(0.0, float(np.mean(highs[t][p])))) for p in ps]
                  + [(min(0.0, extremes[t][0]), max(0.0, extremes[t][1]))] for t in tensors}
    if method != "mse":
        return {t: c[0] for t, c in candidates.items()}, moments
    errors = {t: np.zeros(len(c)) for t, c in candidates.items()}

    def second(name, y):
        if name in errors:
            v = y.detach().reshape(-1)
            for j, (lo, hi) in enumerate(candidates[name]):
                scale, zero = (float(u) for u in uint8_params(lo, hi))
                q = torch.clamp(torch.round(v / scale) + zero, 0, 255)
                errors[name][j] += float((((q - zero) * scale - v) ** 2).sum(dtype=torch.float64))

    run(second)
    return {t: candidates[t][int(np.argmin(errors[t]))] for t in tensors}, moments


def uint8_params(lo, hi):
    scale = max(hi - lo, 1e-8) / 255.0
    return np.float32(scale), np.uint8(int(np.clip(round(-lo / scale), 0, 255)))


def build_qdq(model, ranges, moments=None, keep_float=(), qmax=WEIGHT_QMAX[DEFAULT_WEIGHT_BITS]):
    """Inserts the QDQ pairs of the folded graph (module docstring) and quantises the conv weights
    (round_weights into [-qmax, qmax], with the input moments of calibrate where given); the convs in keep_float stay float."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    convs = quantised_tensors(g, keep_float)
    act = {}  # tensor -> (scale, zero point, name of its dequantised copy)
    new_inits = []
    for name in sorted({t for pair in convs.values() for t in pair}):
        s, z = uint8_params(*ranges[name])
        act[name] = (s, z, name + "_dq")
        new_inits += [nh.from_array(np.array(s, np.float32), name + "_scale"), nh.from_array(np.array(z, np.uint8), name + "_zp")]

    def qdq(name):
        return [oh.make_node("QuantizeLinear", [name, name + "_scale", name + "_zp"], [name + "_q"], name=name + "_Q"),
                oh.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zp"], [name + "_dq"], name=name + "_DQ")]

    outputs = {o.name for o in g.output}
    nodes = qdq(g.input[0].name) if g.input[0].name in act else []
    for n in g.node:
        ins = [act[i][2] if i in act and i not in outputs else i for i in n.input]
        if n.op_type == "Conv" and n.name in convs:
            if n.input[1] not in inits or (len(n.input) > 2 and n.input[2] not in inits):
                raise ValueError("Conv %s: weights and bias must be initializers" % n.name)
            wq, sw = round_weights(nh.to_array(inits[n.input[1]]).astype(np.float32), (moments or {}).get(n.name), qmax=qmax)
            wn = n.input[1]
            new_inits += [nh.from_array(wq, wn + "_q"), nh.from_array(sw, wn + "_scale"),
                          nh.from_array(np.zeros(len(sw), np.int8), wn + "_zp")]
            nodes.append(oh.make_node("DequantizeLinear", [wn + "_q", wn + "_scale", wn + "_zp"], [wn + "_dq"], axis=0))
            ins[1] = wn + "_dq"
            if len(n.input) > 2:
                sb = (act[n.input[0]][0] * sw).astype(np.float32)
                b = nh.to_array(inits[n.input[2]]).astype(np.float64)
                bq = np.clip(np.round(b / sb), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
                bn = n.input[2]
                new_inits += [nh.from_array(bq, bn + "_q"), nh.from_array(sb, bn + "_scale"),
                              nh.from_array(np.zeros(len(sb), np.int32), bn + "_zp")]
                nodes.append(oh.make_node("DequantizeLinear", [bn + "_q", bn + "_scale", bn + "_zp"], [bn + "_dq"], axis=0))
                ins[2] = bn + "_dq"
        nodes.append(oh.make_node(n.op_type, ins, list(n.output), name=n.name, **_attrs(n)))
        for o in n.output:
            if o in act:
                nodes += qdq(o)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    _drop_unused(g)
    return model


def _names_conv(pattern, conv):
    """Whether pattern names the conv: its whole node name, or consecutive path components (between '/') of it,
    each matched with shell wildcards (fnmatch): conv0, denseblock4, denseblock1/*/conv1."""
    if pattern == conv:
        return True
    want, have = pattern.strip("/").split("/"), conv.split("/")
    return any(all(fnmatch.fnmatchcase(h, w) for h, w in zip(have[i:i + len(want)], want))
               for i in range(len(have) - len(want) + 1))


def float_convs(graph, patterns=None):
    """The convs left float: those a pattern names (_names_conv), e.g. conv0 (the stem), denseblock4, transition3,
    denseblock1/*/conv1 (block 1's 1x1 convs), or a conv's whole node name. A pattern naming no conv is an error;
    patterns None: DEFAULT_FLOAT, those of them the model has."""
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    keep = set()
    for p in DEFAULT_FLOAT if patterns is None else patterns:
        hit = {c for c in convs if _names_conv(p, c)}
        if not hit and patterns is not None:
            raise ValueError("--float %s names no convolution of the model" % p)
        keep |= hit
    return [c for c in convs if c in keep]


def quantize_package(pkg_dir, calibration, method="mse", percentile=99.99, log=print, keep_float=None, blocks=DEFAULT_BLOCKS,
                     weight_bits=DEFAULT_WEIGHT_BITS):
    """Writes pkg_dir/model.int8.onnx from the package's model.onnx, calibrated on calibration
    (float32 [N, C, S, S], the preprocessed model inputs), and names it in manifest.json; the convs
    matching keep_float (float_convs; None: the defaults) stay float; blocks: "uint8" (uint8_dense_blocks, the
    default) or "float" (BN-ReLU and concatenations float: slower, one rounding less per layer output); weight_bits: 7
    (every CPU) or 8 (CPUs with int32 dot products only: WEIGHT_QMAX)."""
    if blocks not in BLOCK_LAYOUTS:
        raise ValueError("dense blocks must be one of %s, not %s" % ("/".join(BLOCK_LAYOUTS), blocks))
    if weight_bits not in WEIGHT_QMAX:
        raise ValueError("weight bits must be one of %s, not %s" % ("/".join(map(str, WEIGHT_QMAX)), weight_bits))
    mpath = os.path.join(pkg_dir, "manifest.json")
    manifest = json.loads(pathlib.Path(mpath).read_text())
    c, s = manifest["input"]["channels"], manifest["input"]["size"]
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or calibration.shape[1:] != (c, s, s) or len(calibration) == 0:
        raise ValueError("calibration must be float32 [N, %d, %d, %d] with N >= 1, got %s" % (c, s, s, calibration.shape))
    fp32 = onnx.load(os.path.join(pkg_dir, manifest.get("model", "model.onnx")))  # external weights read in
    model = chain_concats(fold_batch_norms(onnx.load(os.path.join(pkg_dir, manifest.get("model", "model.onnx")))))
    # the rewritten graph must compute the package's model: the calibration ranges are only as good as this
    with torch.no_grad():
        probe = torch.from_numpy(calibration[:2])
        a, b = evaluate(fp32.graph, probe, lambda *_: None), evaluate(model.graph, probe, lambda *_: None)
    logits = manifest["outputs"]["logits"]
    diff = float((a[logits] - b[logits]).abs().max()) / max(1.0, float(a[logits].abs().max()))
    if diff > 1e-3:
        raise ValueError("folding the batch norms and chaining the concatenations changed the logits by %.3g (relative)" % diff)
    floats = float_convs(model.graph, keep_float)
    tensors = {t for pair in quantised_tensors(model.graph, floats).values() for t in pair}
    dense = dense_blocks(model.graph) if blocks == "uint8" else []
    tensors |= {b["final"] for b in dense}  # each block's concatenation gets the range of its last one
    ranges, moments = calibrate(model.graph, tensors, calibration, method, percentile)
    build_qdq(model, ranges, moments, floats, WEIGHT_QMAX[weight_bits])
    u8_blocks = uint8_dense_blocks(model, dense, ranges, WEIGHT_QMAX[weight_bits]) if dense else 0
    model.graph.name = (model.graph.name or "model") + "-int8"
    out = os.path.join(pkg_dir, INT8_FILE)
    onnx.save(model, out)
    onnx.checker.check_model(out)
    cal = {"method": method, "images": int(len(calibration))}
    if method == "percentile":
        cal["percentile"] = percentile
    scheme = "qdq-u8s8" + ("+uint8-dense-blocks" if u8_blocks else "")
    manifest["int8"] = {"file": INT8_FILE, "scheme": scheme, "weightBits": weight_bits, "floatConvs": floats, "calibration": cal}
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    log("wrote %s: %d quantised convolutions (%d-bit weights), %d left float, %d dense blocks in uint8, calibrated on %d images (%s)" % (
        out, sum(1 for n in model.graph.node if n.op_type == "Conv") - len(floats), weight_bits, len(floats), u8_blocks, len(calibration),
        "percentile %g" % percentile if method == "percentile" else method))
    return out


def images_to_tensors(manifest, paths):
    """8-bit image files (PNG, JPEG, ...: converted to grey) preprocessed as the package states."""
    from PIL import Image
    spec = cxr_preprocessing.spec_of(manifest)
    return np.stack([cxr_preprocessing.apply(spec, np.asarray(Image.open(p).convert("L"))) for p in paths])


def add_arguments(ap, images):
    """The --int8 options of a tool that writes a package (importer: images=True, --int8 takes the
    calibration images; trainer: images=False, --int8 calibrates on its training images; cxr-model quantize:
    images=None, no --int8 switch, as making the variant is all it does)."""
    if images:
        ap.add_argument("--int8", nargs="+", metavar="IMAGE", help="also write the INT8 variant (model.int8.onnx), calibrated "
                        "on these working images (8-bit PNG/JPEG, preprocessed as the package states)")
    else:
        if images is False:
            ap.add_argument("--int8", action="store_true", help="also write the INT8 variant (model.int8.onnx), calibrated on "
                            "--int8-images of the training images")
        ap.add_argument("--int8-images", type=int, default=64, help="calibration images, evenly spread over the training set (default 64)")
    ap.add_argument("--int8-method", choices=["mse", "percentile", "minmax"], default="mse",
                    help="activation ranges (calibrate): mse (default), percentile, or min/max over the calibration images")
    ap.add_argument("--int8-percentile", type=float, default=99.99, help="with --int8-method percentile: the percentile (default 99.99)")
    ap.add_argument("--int8-float", nargs="*", default=None, metavar="NAME",
                    help="convolutions left float: path components of their node names, with shell wildcards (conv0, "
                         "denseblock4, denseblock1/*/conv1), or a whole node name; with no NAME every conv is quantised "
                         "(default: %s, those of them the model has)" % " ".join(DEFAULT_FLOAT))
    ap.add_argument("--int8-blocks", choices=BLOCK_LAYOUTS, default=DEFAULT_BLOCKS,
                    help="dense blocks whose convs are all quantised: uint8 from input to last concatenation (the default: "
                         "1.2-1.3x faster on AVX2, one rounding more per layer output), or float BN-ReLU and "
                         "concatenations (see the README's INT8 variant)")
    ap.add_argument("--int8-weight-bits", type=int, choices=sorted(WEIGHT_QMAX), default=DEFAULT_WEIGHT_BITS,
                    help="conv weight range: 7 (the default, exact on every CPU) or 8 (finer; only for x86 CPUs with VNNI, "
                         "or ARM: on AVX2 alone ONNX Runtime's int16 sums saturate, and the gateway refuses the package)")


def quantize_with_args(pkg_dir, a, calibration, log=print):
    """quantize_package with the options add_arguments added; calibration: model inputs, at most
    a.int8_images of them (evenly spread) where the option exists."""
    k = getattr(a, "int8_images", None)
    if k and len(calibration) > k:
        calibration = calibration[np.linspace(0, len(calibration) - 1, k).round().astype(int)]
    return quantize_package(pkg_dir, calibration, a.int8_method, a.int8_percentile, log, a.int8_float, a.int8_blocks,
                            a.int8_weight_bits)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="calibration images (8-bit PNG/JPEG)")
    src.add_argument("--tensors", help="calibration tensors: little-endian float32 [N, C, S, S], already preprocessed")
    ap.add_argument("--method", choices=["mse", "percentile", "minmax"], default="mse", help="activation ranges (calibrate)")
    ap.add_argument("--percentile", type=float, default=99.99)
    ap.add_argument("--float", nargs="*", default=None, metavar="NAME", dest="keep_float",
                    help="convolutions left float (float_convs; with no NAME none; default: %s, those the model has)" % " ".join(DEFAULT_FLOAT))
    ap.add_argument("--blocks", choices=BLOCK_LAYOUTS, default=DEFAULT_BLOCKS,
                    help="dense blocks whose convs are all quantised: uint8 (uint8_dense_blocks, the default) or float BN-ReLU")
    ap.add_argument("--weight-bits", type=int, choices=sorted(WEIGHT_QMAX), default=DEFAULT_WEIGHT_BITS,
                    help="conv weight range: 7 (default, every CPU) or 8 (x86 with VNNI, or ARM; WEIGHT_QMAX)")
    a = ap.parse_args()
    manifest = json.loads(pathlib.Path(a.package, "manifest.json").read_text())
    if a.images:
        x = images_to_tensors(manifest, a.images)
    else:
        c, s = manifest["input"]["channels"], manifest["input"]["size"]
        x = np.fromfile(a.tensors, dtype="<f4").reshape(-1, c, s, s)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    try:
        quantize_package(a.package, x, a.method, a.percentile, keep_float=a.keep_float, blocks=a.blocks, weight_bits=a.weight_bits)
    except ValueError as e:  # bad input (calibration shape, a --float name): one line, not a traceback
        raise SystemExit("quantize.py: %s" % e)


if __name__ == "__main__":
    main()
